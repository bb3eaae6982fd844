//! `simian serve` end to end: the daemon plus the control API on 127.0.0.1, driven by a real
//! HTTP client (ureq): health, the schedule the daemon made, history with paging, the apps,
//! kills with their statuses, the kill switch that survives a restart, the token, every kind
//! of bad request, and a clean stop on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use util::served::serve;
use util::{Sandbox, free_port};

const TOKEN: &str = "test-token-7f3a";

/// Every sample of an OpenMetrics text, as read by Python's prometheus-client parser:
/// `name{label=value,...}` (labels sorted) to value.
fn parse_metrics(text: &str) -> std::collections::BTreeMap<String, f64> {
    simian_testkit::require_python_modules(&["prometheus_client"], "pip install prometheus-client");
    let script = [
        "import json, sys",
        "from prometheus_client.openmetrics.parser import text_string_to_metric_families",
        "out = {}",
        "for family in text_string_to_metric_families(sys.stdin.read()):",
        "    for s in family.samples:",
        "        labels = ','.join(f'{k}={v}' for k, v in sorted(s.labels.items()))",
        "        out[s.name + '{' + labels + '}'] = s.value",
        "print(json.dumps(out))",
    ]
    .join("\n");
    let mut child = std::process::Command::new("python3")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the parser refused the metrics:\n{text}"
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A static inventory of app web, 5 clusters of 2 (zones a and b).
fn sandbox(monkey: &str) -> Sandbox {
    let s = Sandbox::new();
    s.write("inventory.json", &util::inventory(5));
    s.write(
        "simian.toml",
        &util::config(
            monkey,
            "mean_time_between_kills = 1\nmin_time_between_kills = 1",
            "sqlite://simian.db",
        ),
    );
    s
}

#[test]
fn kills_the_kill_switch_and_errors_through_the_api() {
    let s = sandbox("dry_run = false");
    let api = serve(&s, Some(TOKEN), &[]);
    assert_eq!(api.get("/healthz"), (200, json!({"status": "ok"})));

    // Mutations need the token.
    let kill = json!({"app": "web", "cluster": "web-prod-c0"}).to_string();
    assert_eq!(api.send("POST", "/api/v1/terminate", None, &kill).0, 401);
    assert_eq!(
        api.send("POST", "/api/v1/terminate", Some("wrong"), &kill)
            .0,
        401
    );
    let (status, body) = api.send("POST", "/api/v1/terminate", Some(TOKEN), &kill);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["termination"]["state"], "simulated", "{body}");
    assert_eq!(body["termination"]["cluster"], "web-prod-c0");
    // The same group again: refused by the minimum time, 409 with the check.
    let (status, body) = api.send("POST", "/api/v1/terminate", Some(TOKEN), &kill);
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["refusal"]["check"], "min_time_between_kills");

    // The kill switch: off, with who and why; the next kill is refused.
    let off = json!({"enabled": false, "changed_by": "alice", "reason": "incident 42"}).to_string();
    let (status, body) = api.send("PUT", "/api/v1/kill-switch", Some(TOKEN), &off);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["kills_allowed"], false);
    assert_eq!(body["set"]["changed_by"], "alice");
    let other = json!({"app": "web", "cluster": "web-prod-c1"}).to_string();
    let (status, body) = api.send("POST", "/api/v1/terminate", Some(TOKEN), &other);
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["refusal"]["check"], "kill_switch");
    assert!(
        body["refusal"]["reason"]
            .as_str()
            .unwrap()
            .contains("alice")
    );
    // The CLI sees it too: it is the store's, not the server's.
    let out = s.run(&["terminate", "web", "--cluster", "web-prod-c2"]);
    out.expect(3);
    assert!(
        out.stderr().contains("turned off by alice"),
        "{}",
        out.stderr()
    );

    // Bad requests, each said.
    for (method, path, body, status) in [
        (
            "POST",
            "/api/v1/terminate",
            "{\"app\": \"web\", \"colour\": 1}",
            400,
        ),
        ("POST", "/api/v1/terminate", "not json", 400),
        ("POST", "/api/v1/terminate", "", 400),
        ("PUT", "/api/v1/kill-switch", "{\"enabled\": true}", 400),
        (
            "PUT",
            "/api/v1/kill-switch",
            "{\"enabled\": true, \"changed_by\": \" \"}",
            400,
        ),
    ] {
        let (got, answer) = api.send(method, path, Some(TOKEN), body);
        assert_eq!(got, status, "{method} {path} {body}: {answer}");
        assert!(answer["error"].is_string(), "{answer}");
    }
    let big = format!("{{\"app\": \"{}\"}}", "x".repeat(70 * 1024));
    assert_eq!(
        api.send("POST", "/api/v1/terminate", Some(TOKEN), &big).0,
        413
    );
    assert_eq!(api.get("/api/v1/nope").0, 404);
    assert_eq!(
        api.send("POST", "/api/v1/schedule", Some(TOKEN), "{}").0,
        405
    );
    assert_eq!(api.get("/api/v1/terminations?limit=0").0, 400);
    assert_eq!(api.get("/api/v1/terminations?limt=5").0, 400);
    assert_eq!(api.get("/api/v1/schedule?date=tomorrow").0, 400);

    // History, newest first, a page at a time.
    let (status, page) = api.get("/api/v1/terminations?limit=1");
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let (_, refusals) = api.get("/api/v1/refusals");
    assert_eq!(refusals["items"][0]["check"], "kill_switch", "{refusals}");
    assert_eq!(refusals["items"].as_array().unwrap().len(), 3, "{refusals}");
    let (_, first) = api.get("/api/v1/refusals?limit=2");
    let next = first["next"].as_str().unwrap().to_string();
    let (_, second) = api.get(&next);
    assert_eq!(second["items"].as_array().unwrap().len(), 1, "{second}");
    assert!(second["next"].is_null(), "{second}");
    assert_eq!(second["items"][0]["check"], "min_time_between_kills");

    // The apps, with their eligible instances now.
    let (_, apps) = api.get("/api/v1/apps");
    assert_eq!(apps["apps"][0]["name"], "web");
    assert_eq!(
        apps["apps"][0]["eligible"].as_array().unwrap().len(),
        10,
        "{apps}"
    );

    let (status, doc) = api.get("/api/v1/openapi.json");
    assert_eq!(status, 200);
    assert!(doc["paths"]["/api/v1/kill-switch"]["put"].is_object());

    // Stopped and started again: the switch, kept in the store, is still off.
    drop(api);
    let api = serve(&s, Some(TOKEN), &[]);
    let (_, switch) = api.get("/api/v1/kill-switch");
    assert_eq!(switch["kills_allowed"], false, "{switch}");
    let on = json!({"enabled": true, "changed_by": "bob"}).to_string();
    assert_eq!(
        api.send("PUT", "/api/v1/kill-switch", Some(TOKEN), &on).0,
        200
    );
    let (status, body) = api.send("POST", "/api/v1/terminate", Some(TOKEN), &other);
    assert_eq!(status, 200, "{body}");
}

/// A refused request still reads its body, so the connection carries the next request: a
/// client that pools connections (as most do) never sees one cut under it.
#[test]
fn a_refusal_leaves_the_connection_usable() {
    use std::io::{Read as _, Write as _};
    let s = sandbox("dry_run = false");
    let api = serve(&s, Some(TOKEN), &[]);
    let address = api.base.trim_start_matches("http://").to_string();
    let body = json!({"app": "web", "cluster": "web-prod-c0"}).to_string();
    for (what, auth) in [
        ("no token", String::new()),
        (
            "a wrong token",
            "authorization: Bearer wrong\r\n".to_string(),
        ),
        ("no route", String::new()),
    ] {
        let path = if what == "no route" {
            "/api/v1/nope"
        } else {
            "/api/v1/terminate"
        };
        let mut conn = std::net::TcpStream::connect(&address).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        // The headers first, the body a moment later, as a client streaming a body does.
        write!(
            conn,
            "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n{auth}content-length: {}\r\n\r\n",
            body.len()
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        // Refused and cut before this, the writes fail: the count of answers below says so.
        let _ = conn.write_all(body.as_bytes());
        let _ = conn.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        let mut answers = String::new();
        let _ = conn.read_to_string(&mut answers);
        let statuses: Vec<&str> = answers
            .match_indices("HTTP/1.1 ")
            .map(|(at, _)| &answers[at..])
            .collect();
        assert_eq!(
            statuses.len(),
            2,
            "{what}: one connection, two answers:\n{answers}"
        );
        assert!(
            statuses[1].starts_with("HTTP/1.1 200"),
            "{what}:\n{answers}"
        );
    }
}

#[test]
fn the_daemon_runs_underneath_and_stops_cleanly() {
    let s = sandbox("dry_run = false\nseed = 4");
    let clock = util::day_clock();
    let clock: Vec<&str> = clock.iter().map(String::as_str).collect();
    let mut api = serve(&s, None, &clock);
    // Without a token nothing can be changed, everything can be read.
    let kill = json!({"app": "web"}).to_string();
    let (status, body) = api.send("POST", "/api/v1/terminate", None, &kill);
    assert_eq!(status, 403, "{body}");
    assert!(body["error"].as_str().unwrap().contains("SIMIAN_API_TOKEN"));
    let (status, day) = api.get("/api/v1/schedule?date=2026-03-02");
    assert_eq!(status, 200, "{day}");
    let planned = day["entries"].as_array().unwrap().len();
    assert!(planned >= 1, "{day}");
    // The accelerated day passes; every planned kill fires, and the history shows it.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, day) = api.get("/api/v1/schedule?date=2026-03-02");
        let pending = day["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["status"] == "pending")
            .count();
        if pending == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{day}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, kills) = api.get("/api/v1/terminations");
    assert_eq!(kills["items"].as_array().unwrap().len(), planned, "{kills}");
    assert!(
        kills["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["origin"] == "schedule")
    );

    // The metrics, read by the reference parser (Python's prometheus-client).
    let mut r = api
        .agent
        .get(&format!("{}/metrics", api.base))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let content_type = r
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = r.body_mut().read_to_string().unwrap();
    let samples = parse_metrics(&text);
    let value = |key: &str| {
        samples
            .get(key)
            .copied()
            .unwrap_or_else(|| panic!("no {key} in:\n{text}"))
    };
    assert_eq!(
        value("simian_terminations_total{app=web,origin=schedule,state=simulated}"),
        planned as f64
    );
    assert_eq!(value("simian_kill_delay_seconds_count{}"), planned as f64);
    assert_eq!(value("simian_planned_kills{}"), planned as f64);
    assert_eq!(value("simian_pending_kills{}"), 0.0);
    assert_eq!(value("simian_kills_allowed{}"), 1.0);
    assert!(value("simian_provider_list_seconds_count{provider=inv}") >= 1.0);
    assert!(value("simian_store_seconds_count{operation=claim}") >= planned as f64);
    assert_eq!(
        value(&format!(
            "simian_build_info{{version={}}}",
            env!("CARGO_PKG_VERSION")
        )),
        1.0
    );
    let pid = rustix::process::Pid::from_raw(api.child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = api.child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
}

#[test]
fn beyond_loopback_a_token_is_required() {
    let s = sandbox("");
    let port = free_port().to_string();
    let out = util::Run(
        s.command(&["serve", "--listen", &format!("0.0.0.0:{port}")])
            .env_remove("SIMIAN_API_TOKEN")
            .output()
            .unwrap(),
    );
    out.expect(2);
    assert!(
        out.stderr().contains("needs an API token"),
        "{}",
        out.stderr()
    );
    util::expect_config_error(
        &s,
        "[server]\nlisten = \"localhost\"\n",
        "is not an address and port",
    );
}

/// A change of the kill switch reaches the notifiers, with who and why.
#[test]
fn a_kill_switch_change_is_told() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::{BufRead as _, Read as _, Write as _};
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                line.clear();
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let _ = stream.write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n");
            let _ = tx.send(serde_json::from_slice::<Value>(&body).unwrap());
        }
    });
    let s = sandbox("");
    let config = std::fs::read_to_string(s.path().join("simian.toml")).unwrap();
    s.write(
        "simian.toml",
        &format!("{config}\n[[notifiers]]\nkind = \"webhook\"\nurl = \"{url}\"\nevents = [\"kill_switch\"]\n"),
    );
    let api = serve(&s, Some(TOKEN), &[]);
    let off = json!({"enabled": false, "changed_by": "carol", "reason": "freeze"}).to_string();
    assert_eq!(
        api.send("PUT", "/api/v1/kill-switch", Some(TOKEN), &off).0,
        200
    );
    let told = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(told["event"], "kill_switch", "{told}");
    assert_eq!(told["kill_switch"]["changed_by"], "carol");
    assert_eq!(told["kill_switch"]["enabled"], false);
}
