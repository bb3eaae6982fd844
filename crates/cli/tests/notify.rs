//! `[[notifiers]]` against a local HTTP receiver this test runs on 127.0.0.1: the webhook's
//! JSON and its HMAC signature, Slack's text, the events (termination, refusal, schedule, drill
//! start and end), retries after failures, a receiver that never answers (the kill is not held
//! up), and the config's checks (URLs and secrets never printed).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use util::{Sandbox, expect_config_error};

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Received {
    headers: Vec<(String, String)>,
    body: serde_json::Value,
    raw: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A receiver on 127.0.0.1 that answers each request with the next status of `script`
/// (200 once the script is used up; 0: read the request and never answer).
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
}

fn receiver(script: &[u16]) -> Receiver {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/hook/T000/secret-path",
        listener.local_addr().unwrap()
    );
    let got = Arc::new(Mutex::new(Vec::new()));
    let (log, script) = (Arc::clone(&got), script.to_vec());
    std::thread::spawn(move || {
        let mut script = script.into_iter();
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut headers = Vec::new();
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            loop {
                line.clear();
                reader.read_line(&mut line).unwrap();
                if line.trim().is_empty() {
                    break;
                }
                let (k, v) = line.split_once(':').unwrap();
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
            let length: usize = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .map(|(_, v)| v.parse().unwrap())
                .unwrap_or(0);
            let mut raw = vec![0; length];
            reader.read_exact(&mut raw).unwrap();
            let body = serde_json::from_slice(&raw).unwrap_or_default();
            log.lock().unwrap().push(Received { headers, body, raw });
            let status = script.next().unwrap_or(200);
            if status == 0 {
                held.push(stream);
                continue;
            }
            let mut stream = stream;
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    Receiver { url, got }
}

impl Receiver {
    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until `n` requests came.
    fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.got();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A static inventory of web (5 clusters of 2) with `notifier` appended to the config.
fn sandbox(monkey: &str, notifier: &str) -> Sandbox {
    let s = Sandbox::new();
    s.write("inventory.json", &util::inventory(5));
    let config = util::config(
        monkey,
        "mean_time_between_kills = 1\nmin_time_between_kills = 1",
        "sqlite://simian.db",
    );
    s.write("simian.toml", &format!("{config}\n{notifier}\n"));
    s
}

#[test]
fn a_kill_and_a_refusal_reach_a_signed_webhook() {
    let r = receiver(&[]);
    let s = sandbox(
        "dry_run = false",
        &format!(
            "[[notifiers]]\nkind = \"webhook\"\nurl = \"{}\"\nsecret_env = \"SIMIAN_TEST_HOOK_SECRET\"\nevents = [\"termination\", \"refusal\"]",
            r.url
        ),
    );
    let run = |args: &[&str]| {
        util::Run(
            s.command(args)
                .env("SIMIAN_TEST_HOOK_SECRET", "s3cret")
                .output()
                .unwrap(),
        )
    };
    run(&["terminate", "web", "--cluster", "web-prod-c0"]).expect(0);
    run(&["terminate", "web", "--cluster", "web-prod-c0"]).expect(3);
    let got = r.wait_for(2, Duration::from_secs(5));
    assert_eq!(got.len(), 2, "{got:?}");
    let kill = &got[0];
    assert_eq!(kill.body["event"], "termination", "{:?}", kill.body);
    assert_eq!(kill.body["termination"]["state"], "simulated");
    assert_eq!(kill.body["termination"]["cluster"], "web-prod-c0");
    assert!(kill.body["simian"]["version"].is_string());
    // The signature is HMAC-SHA256 of the exact body, under the secret from the environment.
    let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap();
    mac.update(&kill.raw);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        kill.header("x-simian-signature"),
        Some(format!("sha256={hex}").as_str())
    );
    assert_eq!(kill.header("content-type"), Some("application/json"));
    let refusal = &got[1];
    assert_eq!(refusal.body["event"], "refusal");
    assert_eq!(refusal.body["refusal"]["check"], "min_time_between_kills");
}

#[test]
fn failures_are_retried_and_a_silent_receiver_holds_nothing_up() {
    let flaky = receiver(&[500, 503]);
    let s = sandbox(
        "dry_run = false",
        &format!("[[notifiers]]\nkind = \"slack\"\nurl = \"{}\"", flaky.url),
    );
    s.run(&["terminate", "web"]).expect(0);
    let got = flaky.wait_for(3, Duration::from_secs(5));
    assert_eq!(got.len(), 3, "two failures, then delivered: {got:?}");
    let text = got[2].body["text"].as_str().unwrap();
    assert!(
        text.starts_with("Simian killed (simulated) instance i-"),
        "{text}"
    );
    assert_eq!(got[0].raw, got[2].raw, "the same message each time");

    // A receiver that accepts and never answers: the kill is recorded at once, and the
    // command waits at most its drain time for the notification.
    let silent = receiver(&[0, 0, 0, 0, 0]);
    let s = sandbox(
        "dry_run = false",
        &format!(
            "[[notifiers]]\nkind = \"webhook\"\nurl = \"{}\"\ntimeout = \"1s\"",
            silent.url
        ),
    );
    let started = Instant::now();
    let out = s.run(&["terminate", "web", "--json"]);
    out.expect(0);
    assert_eq!(out.json()["termination"]["state"], "simulated");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "held up {:?}",
        started.elapsed()
    );
    let history = s.run(&["history", "--json"]).json();
    assert_eq!(history["terminations"].as_array().unwrap().len(), 1);
}

#[test]
fn drills_and_schedules_are_told() {
    let r = receiver(&[]);
    let s = sandbox(
        "dry_run = false\nseed = 1",
        &format!(
            "[[notifiers]]\nkind = \"webhook\"\nurl = \"{}\"\nevents = [\"drill_started\", \"drill_ended\", \"schedule\"]",
            r.url
        ),
    );
    s.run(&["gorilla", "us-east-1a"]).expect(0);
    let got = r.wait_for(2, Duration::from_secs(5));
    let events: Vec<&str> = got
        .iter()
        .map(|g| g.body["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["drill_started", "drill_ended"], "{got:?}");
    assert_eq!(got[1].body["drill"]["ending"], "completed");
    assert_eq!(got[1].body["drill"]["target"], "us-east-1a");

    let clock = util::day_clock();
    let clock: Vec<&str> = clock.iter().map(String::as_str).collect();
    let _daemon = util::start_daemon(&s, &clock);
    let got = r.wait_for(3, Duration::from_secs(15));
    let schedule = got.iter().find(|g| g.body["event"] == "schedule");
    let schedule = schedule.unwrap_or_else(|| panic!("no schedule event: {got:?}"));
    assert_eq!(schedule.body["schedule"]["date"], "2026-03-02");
    assert!(
        !schedule.body["schedule"]["entries"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn notifier_settings_are_checked_and_secrets_never_printed() {
    let s = Sandbox::new();
    let base = "[store]\nurl = \"sqlite://simian.db\"\n";
    for (notifier, wanted) in [
        (
            "kind = \"email\"\nurl = \"http://x\"",
            "is not a notifier kind",
        ),
        ("kind = \"webhook\"", "neither url nor url_env"),
        (
            "kind = \"webhook\"\nurl = \"ftp://x\"",
            "is not an http:// or https:// URL",
        ),
        (
            "kind = \"webhook\"\nurl_env = \"SIMIAN_TEST_NOT_SET_ANYWHERE\"",
            "SIMIAN_TEST_NOT_SET_ANYWHERE is not set",
        ),
        (
            "kind = \"slack\"\nurl = \"http://x\"\nsecret_env = \"X\"",
            "is for kind = \"webhook\"",
        ),
        (
            "kind = \"webhook\"\nurl = \"http://x\"\nevents = [\"kill\"]",
            "\"kill\" is not an event",
        ),
        (
            "kind = \"webhook\"\nurl = \"http://x\"\nretries = 3",
            "retries",
        ),
    ] {
        expect_config_error(&s, &format!("{base}[[notifiers]]\n{notifier}\n"), wanted);
    }
    s.write(
        "simian.toml",
        &format!("{base}[[notifiers]]\nkind = \"slack\"\nurl_env = \"SIMIAN_TEST_SLACK_URL\"\n"),
    );
    let out = util::Run(
        s.command(&["config", "check", "--offline", "--json"])
            .env(
                "SIMIAN_TEST_SLACK_URL",
                "https://hooks.example.invalid/T1/B2/tok3n",
            )
            .output()
            .unwrap(),
    );
    out.expect(0);
    let j = out.json();
    assert_eq!(j["notifiers"][0]["kind"], "slack", "{j}");
    assert_eq!(
        j["notifiers"][0]["url_from"], "url_env SIMIAN_TEST_SLACK_URL",
        "{j}"
    );
    assert!(!out.stdout().contains("tok3n") && !out.stderr().contains("tok3n"));
    let text = util::Run(
        s.command(&["config", "check", "--offline"])
            .env(
                "SIMIAN_TEST_SLACK_URL",
                "https://hooks.example.invalid/T1/B2/tok3n",
            )
            .output()
            .unwrap(),
    );
    text.expect(0);
    assert!(
        text.stdout()
            .contains("notify    slack (url_env SIMIAN_TEST_SLACK_URL; events "),
        "{}",
        text.stdout()
    );
    assert!(!text.stdout().contains("tok3n"));
}
