//! Simian's own faults in experiments (`simian` provider, natively run `chaostoxi` functions):
//! made on a real `simian proxy` server, leased before they are made, and removed whatever
//! ends the run, including a SIGKILL of the runner.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use util::{Sandbox, free_port};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `simian proxy` API on loopback with one proxy, `db`; the API's URL.
fn proxy_server(s: &Sandbox) -> (Killed, String) {
    let port = free_port();
    let server = Killed(
        s.command(&["proxy", "--host", "127.0.0.1", "--port", &port.to_string()])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let api = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while ureq::get(&format!("{api}/version")).call().is_err() {
        assert!(Instant::now() < deadline, "the proxy server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let listen = free_port();
    let upstream = free_port();
    ureq::post(&format!("{api}/proxies"))
        .header("Content-Type", "application/json")
        .send(json!({"name": "db", "listen": format!("127.0.0.1:{listen}"), "upstream": format!("127.0.0.1:{upstream}")}).to_string())
        .unwrap();
    (server, api)
}

fn toxics(api: &str) -> Vec<String> {
    let list = get(&format!("{api}/proxies/db/toxics"));
    list.as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

fn get(url: &str) -> Value {
    let text = ureq::get(url)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn sandbox() -> Sandbox {
    let s = Sandbox::new();
    s.write("simian.toml", "[store]\nurl = \"sqlite://simian.db\"\n");
    s
}

#[test]
fn a_toxic_is_removed_at_its_lease_even_after_a_sigkill_of_the_runner() {
    let s = sandbox();
    let (_server, api) = proxy_server(&s);
    let experiment = json!({
        "title": "slow database", "description": "a latency toxic for three seconds",
        "method": [
            {"type": "action", "name": "slow-db", "provider": {"type": "simian", "action": "toxic",
              "arguments": {"api": api, "proxy": "db", "type": "latency", "attributes": {"latency": 200}, "duration": 3}}},
            {"type": "action", "name": "long", "provider": {"type": "process", "path": "sleep", "arguments": ["30"]}}
        ]
    });
    s.write("slow.json", &experiment.to_string());
    let mut runner = Killed(
        s.command(&["run", "slow.json"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let began = Instant::now();
    let deadline = began + Duration::from_secs(10);
    while toxics(&api).is_empty() {
        assert!(Instant::now() < deadline, "the toxic was never added");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    runner.0.kill().unwrap(); // SIGKILL: nothing in the runner can clean up now
    runner.0.wait().unwrap();
    assert_eq!(
        toxics(&api),
        ["slow-db"],
        "the toxic outlives its runner until the deadline"
    );
    while !toxics(&api).is_empty() {
        assert!(
            began.elapsed() < Duration::from_secs(3 + 3),
            "the toxic is still there {:?} after it was added for 3 s",
            began.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        began.elapsed() >= Duration::from_millis(2500),
        "removed at the deadline, not before"
    );
    // The lease is on record as ended (the guardian writes that just after the removal).
    let db = rusqlite::Connection::open(s.path().join("simian.db")).unwrap();
    let read = || -> (String, Option<String>) {
        db.query_row("SELECT kind, ending FROM leases", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while read().1.is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let (kind, ending) = read();
    assert_eq!(kind, "toxic");
    assert!(
        ending.is_some_and(|e| e.contains("removed")),
        "the guardian ended the lease"
    );
}

#[test]
fn toxics_are_removed_when_the_run_ends_and_chaostoxi_functions_run_natively() {
    let s = sandbox();
    let (_server, api) = proxy_server(&s);
    let experiment = json!({
        "title": "toxics", "description": "chaostoxi functions and a simian toxic",
        "configuration": {"toxiproxy_url": api},
        "method": [
            {"type": "action", "name": "latency", "provider": {"type": "python", "module": "chaostoxi.toxic.actions",
              "func": "create_latency_toxic", "arguments": {"for_proxy": "db", "toxic_name": "lat", "latency": 100}}},
            {"type": "action", "name": "limit", "provider": {"type": "python", "module": "chaostoxi.toxic.actions",
              "func": "create_limiter_toxic", "arguments": {"for_proxy": "db", "toxic_name": "lim", "bytes_limit": 1000}}},
            {"type": "action", "name": "bandwidth", "provider": {"type": "simian", "action": "toxic",
              "arguments": {"proxy": "db", "name": "bw", "type": "bandwidth", "stream": "upstream", "attributes": {"rate": 10}}}},
            {"type": "probe", "name": "three", "provider": {"type": "http", "url": format!("{api}/proxies/db/toxics")}}
        ],
        "rollbacks": [
            {"type": "action", "name": "unlat", "provider": {"type": "python", "module": "chaostoxi.toxic.actions",
              "func": "delete_toxic", "arguments": {"for_proxy": "db", "toxic_name": "lat"}}},
            {"type": "action", "name": "disable", "provider": {"type": "python", "module": "chaostoxi.proxy.actions",
              "func": "disable_proxy", "arguments": {"proxy_name": "db"}}},
            {"type": "action", "name": "enable", "provider": {"type": "python", "module": "chaostoxi.proxy.actions",
              "func": "enable_proxy", "arguments": {"proxy_name": "db"}}}
        ]
    });
    s.write("toxics.json", &experiment.to_string());
    let run = s.run(&["run", "toxics.json"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let journal: Value =
        serde_json::from_str(&std::fs::read_to_string(s.path().join("journal.json")).unwrap())
            .unwrap();
    let runs = journal["run"].as_array().unwrap();
    assert_eq!(
        runs[0]["output"], true,
        "create_latency_toxic returns True, as the extension does"
    );
    assert_eq!(runs[1]["output"], true);
    assert_eq!(runs[2]["output"]["toxic"]["stream"], "upstream");
    let during: Vec<&str> = runs[3]["output"]["body"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        during.len(),
        3,
        "all three toxics were in place during the method: {during:?}"
    );
    let rollbacks = journal["rollbacks"].as_array().unwrap();
    assert_eq!(
        rollbacks[0]["output"], true,
        "delete_toxic returns True when it removed one"
    );
    assert_eq!(rollbacks[1]["output"], true);
    assert_eq!(rollbacks[2]["output"], true);
    // The two toxics the rollbacks left are removed as the run ends, and said so.
    let undone: Vec<&str> = journal["simian"]["undone"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["ending"].as_str().unwrap())
        .collect();
    assert_eq!(undone.len(), 2, "{undone:?}");
    assert!(undone.iter().all(|e| e.contains("removed")), "{undone:?}");
    assert!(toxics(&api).is_empty(), "nothing is left on the proxy");
    let proxy = get(&format!("{api}/proxies/db"));
    assert_eq!(proxy["enabled"], true);
}

#[test]
fn simian_faults_without_a_store_and_unknown_python_are_refused_up_front() {
    let s = Sandbox::new();
    let experiment = json!({"title": "t", "description": "d", "method": [
        {"type": "action", "name": "slow", "provider": {"type": "simian", "action": "toxic",
          "arguments": {"proxy": "db", "type": "latency", "attributes": {"latency": 1}}}}]});
    s.write("e.json", &experiment.to_string());
    let run = s.run(&["run", "e.json"]);
    assert_eq!(run.code(), 2);
    assert!(
        run.stderr().contains("need its configuration and store"),
        "{}",
        run.stderr()
    );
    assert!(run.stderr().contains("simian.toml"), "{}", run.stderr());
    for (provider, words) in [
        (
            json!({"type": "simian", "action": "toxic", "arguments": {"proxy": "db", "type": "lag"}}),
            "\"lag\" is not one of",
        ),
        (
            json!({"type": "simian", "action": "toxic", "arguments": {"proxy": "db", "type": "latency", "every": 1}}),
            "unknown argument \"every\"",
        ),
        (
            json!({"type": "simian", "action": "explode", "arguments": {}}),
            "no action \"explode\"",
        ),
        (
            json!({"type": "python", "module": "chaostoxi.toxic.actions", "func": "create_latency_toxic", "arguments": {"for_proxy": "db", "toxic_name": "x"}}),
            "missing the argument 'latency'",
        ),
        (
            json!({"type": "python", "module": "chaosk8s.node.actions", "func": "drain_nodes", "arguments": {}}),
            "chaosk8s.node.actions.drain_nodes",
        ),
    ] {
        let e = json!({"title": "t", "description": "d", "method": [{"type": "action", "name": "a", "provider": provider}]});
        s.write("bad.json", &e.to_string());
        let run = s.run(&["validate", "bad.json"]);
        assert_eq!(run.code(), 2);
        assert!(run.stderr().contains(words), "{words}: {}", run.stderr());
    }
}

#[test]
fn simian_terminate_kills_a_count_or_a_percent_through_every_check_and_records_them() {
    // With min_time_between_kills = 0 the floor is "no kill since today at end_hour": after
    // end_hour a second kill in the group is refused, as in Chaos Monkey. A window that ends at
    // midnight keeps that floor in the future, so every kill here passes at any hour.
    let (s, run) = util::process_fleet(
        "web",
        "end_hour = 24",
        "mean_time_between_kills = 1\nmin_time_between_kills = 0",
    );
    let mut fleet: Vec<std::process::Child> =
        (0..4).map(|_| util::labelled_sleep("web", &run)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let experiment = json!({
        "title": "lose half the fleet", "description": "two kills, then half of what is left",
        "method": [
            {"type": "action", "name": "two", "provider": {"type": "simian", "action": "terminate", "arguments": {"app": "web", "count": 2}}},
            {"type": "action", "name": "half", "provider": {"type": "simian", "action": "terminate", "arguments": {"app": "web", "percent": 50}}},
            {"type": "action", "name": "rehearsal", "provider": {"type": "simian", "action": "terminate", "arguments": {"app": "web", "dry_run": true}}},
            {"type": "action", "name": "nobody", "provider": {"type": "simian", "action": "terminate", "arguments": {"app": "web", "stack": "nonexistent"}}}
        ]
    });
    s.write("kill.json", &experiment.to_string());
    let out = s.run(&["run", "kill.json"]);
    let journal: Value =
        serde_json::from_str(&std::fs::read_to_string(s.path().join("journal.json")).unwrap())
            .unwrap();
    let runs = journal["run"].as_array().unwrap();
    assert_eq!(out.code(), 0, "{}\n{:#}", out.stderr(), journal["run"]);
    assert_eq!(
        runs[0]["output"]["terminations"].as_array().unwrap().len(),
        2
    );
    assert_eq!(
        runs[1]["output"]["terminations"].as_array().unwrap().len(),
        1,
        "50% of the 2 left"
    );
    assert_eq!(runs[2]["output"]["terminations"][0]["dry_run"], true);
    assert_eq!(
        runs[3]["status"], "failed",
        "no instance matches: the action fails"
    );
    assert!(
        runs[3]["exception"][0]
            .as_str()
            .unwrap()
            .contains("nothing was terminated")
            || runs[3]["exception"][0]
                .as_str()
                .unwrap()
                .contains("no eligible"),
        "{}",
        runs[3]["exception"]
    );
    std::thread::sleep(Duration::from_millis(300));
    let dead = fleet
        .iter_mut()
        .map(|c| c.try_wait().unwrap())
        .filter(Option::is_some)
        .count();
    assert_eq!(dead, 3, "three of the four were killed");
    // The same records as `simian terminate`: in the history.
    let history = s.run(&["history", "--json"]);
    let kills = history.json();
    let recorded = kills["terminations"]
        .as_array()
        .map(|a| a.iter().filter(|t| t["dry_run"] == false).count())
        .unwrap_or(0);
    assert_eq!(recorded, 3, "{}", history.stdout());
    for mut c in fleet {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// The state letter of process `pid` (`S` sleeping, `T` stopped).
fn state(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("State:"))
        .unwrap()
        .trim()
        .chars()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn simian_pause_freezes_an_instance_for_the_method_and_the_run_resumes_it() {
    let (s, run) = util::process_fleet("web", "", "mean_time_between_kills = 1");
    let mut victim = util::labelled_sleep("web", &run);
    std::thread::sleep(Duration::from_millis(200));
    let pid = victim.id();
    let experiment = json!({
        "title": "a frozen instance", "description": "pause the one web instance for the method",
        "method": [
            {"type": "action", "name": "freeze", "provider": {"type": "simian", "action": "pause",
              "arguments": {"app": "web", "count": 1, "duration": 600}}},
            {"type": "probe", "name": "state", "provider": {"type": "process", "path": "grep",
              "arguments": ["^State", format!("/proc/{pid}/status")]}}
        ]
    });
    s.write("pause.json", &experiment.to_string());
    let out = s.run(&["run", "pause.json"]);
    assert_eq!(out.code(), 0, "{}", out.stderr());
    let journal: Value =
        serde_json::from_str(&std::fs::read_to_string(s.path().join("journal.json")).unwrap())
            .unwrap();
    assert_eq!(
        journal["run"][0]["output"]["paused"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "{:#}",
        journal["run"][0]
    );
    assert!(
        journal["run"][1]["output"]["stdout"]
            .as_str()
            .unwrap()
            .contains("stopped"),
        "frozen during the method: {}",
        journal["run"][1]["output"]
    );
    assert_eq!(
        state(pid),
        "S",
        "resumed when the run ended, long before its 600 s lease"
    );
    assert_eq!(journal["simian"]["undone"][0]["kind"], "pause");
    // A pause without a duration is refused before anything runs.
    let bad = json!({"title": "t", "description": "d", "method": [{"type": "action", "name": "p",
        "provider": {"type": "simian", "action": "pause", "arguments": {"app": "web"}}}]});
    s.write("bad.json", &bad.to_string());
    let refused = s.run(&["validate", "bad.json"]);
    assert_eq!(refused.code(), 2);
    assert!(
        refused.stderr().contains("needs duration"),
        "{}",
        refused.stderr()
    );
    let _ = victim.kill();
    let _ = victim.wait();
}

#[test]
fn simian_gorilla_runs_the_same_drill_as_the_command_and_kong_needs_its_confirmation() {
    let (s, run) = util::process_fleet("web", "", "mean_time_between_kills = 1");
    let mut fleet: Vec<(std::process::Child, &str)> = ["z1", "z1", "z2", "z2"]
        .into_iter()
        .map(|zone| {
            let child = std::process::Command::new("sleep")
                .arg("600")
                .env("SIMIAN_APP", "web")
                .env("SIMIAN_ZONE", zone)
                .env("SIMIAN_LABEL_RUN", &run)
                .spawn()
                .unwrap();
            (child, zone)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let experiment = json!({
        "title": "zone z1 goes dark", "description": "a paused zone, through the experiment",
        "method": [
            {"type": "action", "name": "rehearse", "provider": {"type": "simian", "action": "gorilla",
              "arguments": {"zone": "z1", "mode": "pause", "duration": 1, "dry_run": true}}},
            {"type": "action", "name": "dark", "provider": {"type": "simian", "action": "gorilla",
              "arguments": {"zone": "z1", "mode": "pause", "duration": 1}}}
        ]
    });
    s.write("gorilla.json", &experiment.to_string());
    let out = s.run(&["run", "gorilla.json"]);
    let journal: Value =
        serde_json::from_str(&std::fs::read_to_string(s.path().join("journal.json")).unwrap())
            .unwrap();
    assert_eq!(out.code(), 0, "{}\n{:#}", out.stderr(), journal["run"]);
    let rehearsal = &journal["run"][0]["output"];
    assert_eq!(rehearsal["drill"]["dry_run"], true, "{rehearsal:#}");
    let dark = &journal["run"][1]["output"];
    assert_eq!(dark["drill"]["ending"], "completed", "{dark:#}");
    assert_eq!(
        dark["acted"].as_array().unwrap().len(),
        2,
        "both z1 instances were paused: {dark:#}"
    );
    assert!(
        journal["run"][1]["duration"].as_f64().unwrap() >= 1.0,
        "the action lasts as long as the drill"
    );
    // Every instance is running again, z1's resumed by the drill's own undo.
    for (child, zone) in &fleet {
        assert_eq!(state(child.id()), "S", "{zone}");
    }
    // The drills are on record, as `simian outages` lists them.
    let outages = s.run(&["outages", "--json"]);
    assert_eq!(outages.code(), 0, "{}", outages.stderr());
    assert!(outages.stdout().contains("gorilla"), "{}", outages.stdout());
    // Kong without its confirmation is refused before anything runs.
    let kong = json!({"title": "t", "description": "d", "method": [{"type": "action", "name": "k",
        "provider": {"type": "simian", "action": "kong", "arguments": {"region": "local"}}}]});
    s.write("kong.json", &kong.to_string());
    let refused = s.run(&["validate", "kong.json"]);
    assert_eq!(refused.code(), 2);
    assert!(refused.stderr().contains("confirm"), "{}", refused.stderr());
    for (child, _) in &mut fleet {
        let _ = child.kill();
        let _ = child.wait();
    }
}

#[test]
#[ignore = "needs python3 with kmock (the Kubernetes API emulator): scripts/test.sh installs it (then pass --include-ignored)"]
fn chaosk8s_terminate_pods_runs_natively_through_the_kubernetes_provider() {
    use simian_testkit::kube::{Emulator, PodSpec};
    let e = Emulator::start();
    e.node("node-a", "us-west-2", "us-west-2a");
    for (name, labels, age) in [
        ("web-0", vec![("app", "web")], 300),
        ("web-1", vec![("app", "web")], 900),
        ("web-2", vec![("app", "web")], 600),
        ("db-0", vec![("app", "db")], 1200),
    ] {
        e.pod(&PodSpec {
            namespace: "shop",
            name,
            labels,
            owner: None,
            node: "node-a",
            ready: true,
            age_secs: age,
        });
    }
    let s = Sandbox::new();
    s.write(
        "simian.toml",
        &format!(
            "[store]\nurl = \"sqlite://simian.db\"\n\n[providers.k8s]\nkind = \"kubernetes\"\nkubeconfig = \"{}\"\nnamespaces = [\"shop\"]\n",
            e.kubeconfig().display()
        ),
    );
    let experiment = json!({
        "title": "lose the two oldest web pods", "description": "chaosk8s, without Python",
        "method": [{"type": "action", "name": "kill-pods", "provider": {"type": "python",
            "module": "chaosk8s.pod.actions", "func": "terminate_pods",
            "arguments": {"label_selector": "app=web", "ns": "shop", "qty": 2, "order": "oldest", "grace_period": 0}}}]
    });
    s.write("pods.json", &experiment.to_string());
    let out = s.run(&["run", "pods.json"]);
    let journal: Value =
        serde_json::from_str(&std::fs::read_to_string(s.path().join("journal.json")).unwrap())
            .unwrap();
    assert_eq!(out.code(), 0, "{}\n{:#}", out.stderr(), journal["run"]);
    assert_eq!(
        journal["run"][0]["output"],
        json!(["web-1", "web-2"]),
        "the extension's return value: the deleted pods"
    );
    assert!(e.get_pod("shop", "web-1").is_none());
    assert!(e.get_pod("shop", "web-2").is_none());
    assert!(
        e.get_pod("shop", "web-0").is_some(),
        "the youngest web pod stays"
    );
    assert!(
        e.get_pod("shop", "db-0").is_some(),
        "the selector is honoured"
    );
    // A mode the extension does not know is refused before anything runs.
    let bad = json!({"title": "t", "description": "d", "method": [{"type": "action", "name": "k",
        "provider": {"type": "python", "module": "chaosk8s.pod.actions", "func": "terminate_pods", "arguments": {"mode": "half"}}}]});
    s.write("bad.json", &bad.to_string());
    let refused = s.run(&["validate", "bad.json"]);
    assert_eq!(refused.code(), 2);
    assert!(
        refused.stderr().contains("mode \"half\""),
        "{}",
        refused.stderr()
    );
}
