//! The dashboard of `simian serve`, in headless Chromium (Debian's `chromium`, driven over
//! the DevTools protocol): every page at a desktop and a phone width, screenshotted (into
//! `target/tmp/dashboard/`) and checked in its DOM against what the API says: the day's
//! schedule and its countdown, history with its filters and paging, the apps by zone, the
//! kill switch changed through its form and confirmation without JavaScript, and the proxies
//! of an attached `simian proxy`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use simian_testkit::browser::{Browser, Tab};
use util::served::{Served, serve};
use util::{Sandbox, free_port};

const TOKEN: &str = "dashboard-token-51c2";

/// Desktop and phone viewports: (name, width, height, mobile).
const DEVICES: &[(&str, u32, u32, bool)] =
    &[("desktop", 1280, 900, false), ("phone", 390, 844, true)];

/// A `simian proxy` of the test's own, killed when dropped.
struct Proxy(std::process::Child);

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A proxy server with one proxy (to a closed port, never dialled) and one latency toxic.
fn proxy(s: &Sandbox) -> (Proxy, u16) {
    let port = free_port();
    let mut cmd = s.command(&["proxy", "--host", "127.0.0.1", "--port", &port.to_string()]);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let proxy = Proxy(cmd.spawn().unwrap());
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .new_agent();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(15);
    while agent.get(&format!("{base}/version")).call().is_err() {
        assert!(Instant::now() < deadline, "simian proxy never answered");
        std::thread::sleep(Duration::from_millis(50));
    }
    agent
        .post(&format!("{base}/proxies"))
        .send(
            json!({"name": "orders-db", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"})
                .to_string(),
        )
        .unwrap();
    agent
        .post(&format!("{base}/proxies/orders-db/toxics"))
        .send(json!({"name": "slow", "type": "latency", "stream": "downstream", "attributes": {"latency": 250}}).to_string())
        .unwrap();
    (proxy, port)
}

/// The sandbox: app web over a static inventory of 5 clusters of 2 in two zones plus a
/// canary, a fixed seed, and the proxy attached.
fn sandbox(proxy_port: u16) -> Sandbox {
    let s = Sandbox::new();
    s.write("inventory.json", &util::inventory(5));
    let config = util::config(
        "seed = 7",
        "mean_time_between_kills = 1\nmin_time_between_kills = 1",
        "sqlite://simian.db",
    );
    s.write(
        "simian.toml",
        &format!("{config}\n[server]\nproxy_api = \"http://127.0.0.1:{proxy_port}\"\n"),
    );
    s
}

fn shots() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard")
}

/// Checks what every page shares, and screenshots it as `name-device.png`.
fn check_frame(tab: &mut Tab, name: &str, device: &str, width: u32, current: &str) {
    let wide = tab
        .eval("document.documentElement.scrollWidth")
        .unwrap()
        .as_u64()
        .unwrap();
    assert!(
        wide <= u64::from(width),
        "{name} at {device}: the page is {wide}px wide in a {width}px viewport"
    );
    assert_eq!(
        tab.eval("document.querySelector('nav a[aria-current=page]').getAttribute('href')")
            .unwrap(),
        current,
        "{name}: the navigation marks the page"
    );
    assert_eq!(
        tab.eval("document.querySelectorAll('nav a').length")
            .unwrap(),
        5,
        "{name}: five pages, the proxies among them since a proxy is attached"
    );
    let (w, h) = tab
        .screenshot(&shots().join(format!("{name}-{device}.png")))
        .unwrap();
    assert_eq!(w, width, "{name} at {device}: the screenshot's width");
    assert!(h >= 400, "{name} at {device}: a {h}px high page");
}

fn text(tab: &mut Tab, selector: &str) -> String {
    tab.eval(&format!(
        "(document.querySelector({selector:?}) || {{textContent: ''}}).textContent"
    ))
    .unwrap()
    .as_str()
    .unwrap()
    .to_string()
}

fn count(tab: &mut Tab, selector: &str) -> u64 {
    tab.eval(&format!("document.querySelectorAll({selector:?}).length"))
        .unwrap()
        .as_u64()
        .unwrap()
}

/// Some history: a kill asked for through the API, a refusal by the kill switch.
fn make_history(served: &Served) {
    let (code, _) = served.send(
        "PUT",
        "/api/v1/kill-switch",
        Some(TOKEN),
        r#"{"enabled": false, "changed_by": "setup", "reason": "a refusal for the audit trail"}"#,
    );
    assert_eq!(code, 200);
    let (code, body) = served.send(
        "POST",
        "/api/v1/terminate",
        Some(TOKEN),
        r#"{"app": "web"}"#,
    );
    assert_eq!(code, 409, "{body}");
    let (code, _) = served.send(
        "PUT",
        "/api/v1/kill-switch",
        Some(TOKEN),
        r#"{"enabled": true, "changed_by": "setup"}"#,
    );
    assert_eq!(code, 200);
    for _ in 0..3 {
        let (code, body) = served.send(
            "POST",
            "/api/v1/terminate",
            Some(TOKEN),
            r#"{"app": "web"}"#,
        );
        assert_eq!(code, 200, "{body}");
    }
}

#[test]
#[ignore = "needs Debian's chromium: scripts/test.sh installs it (or install it and pass --include-ignored)"]
fn every_page_works_in_chromium_at_desktop_and_phone_widths() {
    let browser = Browser::start().unwrap();
    let scratch = Sandbox::new();
    let (_proxy, proxy_port) = proxy(&scratch);
    let s = sandbox(proxy_port);
    // Monday 2 March 2026, 12:00 in Los Angeles, on a real-time clock: the morning's kills
    // are behind, the afternoon's ahead, and none falls due while the test looks.
    let served = serve(
        &s,
        Some(TOKEN),
        &[
            "--clock-start",
            "2026-03-02T20:00:00Z",
            "--clock-speed",
            "1",
        ],
    );
    make_history(&served);
    let (_, day) = served.get("/api/v1/schedule");
    let entries = day["entries"].as_array().unwrap().clone();
    let status_count =
        |status: &str| entries.iter().filter(|e| e["status"] == status).count() as u64;
    assert!(
        status_count("pending") > 0,
        "the afternoon has pending kills: {day}"
    );
    let (_, terminations) = served.get("/api/v1/terminations");
    let (_, refusals) = served.get("/api/v1/refusals");
    let (_, apps) = served.get("/api/v1/apps");
    let eligible = apps["apps"][0]["eligible"].as_array().unwrap().clone();
    let zones: std::collections::BTreeSet<&str> = eligible
        .iter()
        .map(|i| i["zone"].as_str().unwrap())
        .collect();

    for &(device, width, height, mobile) in DEVICES {
        let mut tab = browser.tab(width, height, mobile).unwrap();
        let base = &served.base;

        // Today: the counts, a mark per planned kill by status, the countdown ticking.
        tab.open(&format!("{base}/")).unwrap();
        assert_eq!(
            text(&mut tab, "#counts [data-status=planned] dd"),
            entries.len().to_string()
        );
        for status in ["fired", "refused", "pending", "missed"] {
            assert_eq!(
                count(&mut tab, &format!("#timeline .kill.{status}")),
                status_count(status),
                "{device}: {status} marks"
            );
            assert_eq!(
                text(&mut tab, &format!("#counts [data-status={status}] dd")),
                status_count(status).to_string()
            );
        }
        assert_eq!(count(&mut tab, "#schedule tbody tr"), entries.len() as u64);
        assert_eq!(count(&mut tab, "#now"), 1, "the line shows now");
        let before = text(&mut tab, "#next-kill .countdown");
        assert!(before.starts_with("in "), "{before}");
        std::thread::sleep(Duration::from_millis(2100));
        let after = text(&mut tab, "#next-kill .countdown");
        assert_ne!(before, after, "{device}: the countdown ticks");
        check_frame(&mut tab, "today", device, width, "/");

        // History: every kill, then the refusals through the filter form, then paging.
        tab.open(&format!("{base}/history")).unwrap();
        assert_eq!(
            count(&mut tab, "#history tbody tr"),
            terminations["items"].as_array().unwrap().len() as u64
        );
        check_frame(&mut tab, "history", device, width, "/history");
        tab.eval(
            "document.querySelector('select[name=kind]').value = 'refusals';\
             document.querySelector('input[name=app]').value = 'web';\
             document.querySelector('form.filters').submit()",
        )
        .unwrap();
        tab.wait_loaded().unwrap();
        assert_eq!(
            tab.eval("location.search").unwrap(),
            "?kind=refusals&app=web&since="
        );
        let refusal_rows = count(&mut tab, "#history[data-kind=refusals] tbody tr");
        assert_eq!(
            refusal_rows,
            refusals["items"].as_array().unwrap().len() as u64
        );
        assert!(
            text(&mut tab, "#history tbody").contains("a refusal for the audit trail")
                || text(&mut tab, "#history tbody").contains("kill switch"),
            "the audit trail says why"
        );
        check_frame(&mut tab, "refusals", device, width, "/history");
        tab.open(&format!("{base}/history?limit=2")).unwrap();
        let first: Vec<Value> = serde_json::from_value(
            tab.eval("[...document.querySelectorAll('#history tbody tr td:first-child')].map(td => Number(td.textContent))")
                .unwrap(),
        )
        .unwrap();
        assert_eq!(first.len(), 2);
        tab.eval("document.getElementById('older').click()")
            .unwrap();
        tab.wait_loaded().unwrap();
        let second: Vec<Value> = serde_json::from_value(
            tab.eval("[...document.querySelectorAll('#history tbody tr td:first-child')].map(td => Number(td.textContent))")
                .unwrap(),
        )
        .unwrap();
        assert!(!second.is_empty());
        assert!(
            second[0].as_u64() < first[1].as_u64(),
            "the older page starts below the first: {first:?} then {second:?}"
        );

        // Apps: the eligible instances, by zone.
        tab.open(&format!("{base}/apps")).unwrap();
        assert_eq!(
            count(&mut tab, "section[data-app=web] .zone"),
            zones.len() as u64
        );
        assert_eq!(
            count(&mut tab, "section[data-app=web] li[data-instance]"),
            eligible.len() as u64
        );
        check_frame(&mut tab, "apps", device, width, "/apps");

        // Proxies: the attached proxy's proxy and its toxic.
        tab.open(&format!("{base}/proxies")).unwrap();
        assert_eq!(count(&mut tab, "tr[data-proxy=orders-db]"), 1);
        let toxics = text(&mut tab, "tr[data-proxy=orders-db] .toxics");
        assert!(
            toxics.contains("slow") && toxics.contains("latency=250"),
            "{toxics}"
        );
        check_frame(&mut tab, "proxies", device, width, "/proxies");

        // The kill switch, without JavaScript: the form, the confirmation, a wrong token
        // refused, the right one obeyed, and the API agrees.
        tab.scripts(false).unwrap();
        tab.open(&format!("{base}/kill-switch")).unwrap();
        assert_eq!(
            tab.eval("document.getElementById('kill-switch').dataset.allowed")
                .unwrap(),
            "true"
        );
        check_frame(&mut tab, "kill-switch", device, width, "/kill-switch");
        let who = format!("oncall-{device}");
        tab.eval(&format!(
            "document.querySelector('input[name=changed_by]').value = {who:?};\
             document.querySelector('input[name=reason]').value = 'game day';\
             document.querySelector('form.change button').click()"
        ))
        .unwrap();
        tab.wait_loaded().unwrap();
        assert!(text(&mut tab, "#confirm").contains("stop every kill"));
        check_frame(
            &mut tab,
            "kill-switch-confirm",
            device,
            width,
            "/kill-switch",
        );
        tab.eval(
            "document.querySelector('input[name=token]').value = 'wrong';\
             document.querySelector('form.change button').click()",
        )
        .unwrap();
        tab.wait_loaded().unwrap();
        assert!(text(&mut tab, "[role=alert]").contains("token"));
        assert_eq!(served.get("/api/v1/kill-switch").1["kills_allowed"], true);
        tab.eval("history.back()").unwrap();
        tab.wait_loaded().unwrap();
        tab.eval(&format!(
            "document.querySelector('input[name=token]').value = {TOKEN:?};\
             document.querySelector('form.change button').click()"
        ))
        .unwrap();
        tab.wait_loaded().unwrap();
        assert_eq!(tab.eval("location.pathname").unwrap(), "/kill-switch");
        assert_eq!(
            tab.eval("document.getElementById('kill-switch').dataset.allowed")
                .unwrap(),
            "false"
        );
        assert_eq!(text(&mut tab, "#switch-state"), "kills stopped");
        let (_, switch) = served.get("/api/v1/kill-switch");
        assert_eq!(switch["kills_allowed"], false);
        assert_eq!(switch["set"]["changed_by"], who.as_str());
        assert_eq!(switch["set"]["reason"], "game day");
        // Allow kills again for the next device, through the API.
        let (code, _) = served.send(
            "PUT",
            "/api/v1/kill-switch",
            Some(TOKEN),
            r#"{"enabled": true, "changed_by": "test"}"#,
        );
        assert_eq!(code, 200);
        tab.scripts(true).unwrap();
    }
}
