(function () {
  var next = document.getElementById("next-kill");
  if (!next || !next.dataset.realSeconds) return;
  var real = Number(next.dataset.realSeconds), sim = Number(next.dataset.simSeconds);
  var out = next.querySelector(".countdown"), began = Date.now();
  function words(s) {
    s = Math.round(s);
    if (s <= 0) return "now";
    if (s < 60) return "in " + s + " s";
    if (s < 3600) return "in " + Math.floor(s / 60) + " min " + String(s % 60).padStart(2, "0") + " s";
    return "in " + Math.floor(s / 3600) + " h " + String(Math.floor(s % 3600 / 60)).padStart(2, "0") + " min";
  }
  var timer = setInterval(function () {
    var left = real - (Date.now() - began) / 1000;
    if (left <= 0) { clearInterval(timer); location.reload(); return; }
    out.textContent = words(real > 0 ? sim * left / real : 0);
  }, 1000);
})();
