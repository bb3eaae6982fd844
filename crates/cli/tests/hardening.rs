//! What a hostile review of the CLI found (issue 19), each pinned by a test: closed pipes,
//! out-of-range clock flags and the end of time, manual kills among blocked groups,
//! simulated kills, control characters, store and config messages, and secrets in output.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use util::{Sandbox, config, inventory};

fn sandbox(monkey: &str, app: &str, clusters: usize) -> Sandbox {
    let s = Sandbox::new();
    s.write("inventory.json", &inventory(clusters));
    s.write("simian.toml", &config(monkey, app, "sqlite://simian.db"));
    s
}

/// `simian schedule --days 3660 | head -1`: the reader goes away; simian stops quietly.
#[test]
fn a_closed_output_pipe_ends_the_command_quietly() {
    let s = sandbox("", "mean_time_between_kills = 1", 30);
    for args in [
        &[
            "schedule",
            "--date",
            "2026-03-02",
            "--days",
            "3660",
            "--seed",
            "1",
        ][..],
        &[
            "schedule",
            "--date",
            "2026-03-02",
            "--days",
            "3660",
            "--json",
        ][..],
    ] {
        let mut child = s
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(!first.is_empty());
        // The reader is dropped here, as `head -1` exits.
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn out_of_range_clock_flags_are_usage_errors() {
    let s = sandbox("", "", 2);
    let start = ["monkey", "--clock-start", "2026-03-02T16:58:00Z"];
    for extra in [
        &["--clock-speed", "1e300"][..],
        &["--clock-speed", "0"][..],
        &["--clock-speed", "NaN"][..],
        &["--clock-anchor", "1e300"][..],
        &["--clock-anchor", "1e19"][..],
        &["--clock-anchor", "inf"][..],
    ] {
        let out = s.run(&[&start[..], extra].concat());
        out.expect(2);
        assert!(
            out.stderr().contains("--clock-") && !out.stderr().contains("panicked"),
            "{extra:?}: {}",
            out.stderr()
        );
    }
}

/// CPU time (user + system) of a process, from /proc, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / rustix::param::clock_ticks_per_second() as f64
}

/// A simulated clock that runs into the end of representable time: the daemon says so once
/// and backs off, instead of retrying thousands of times a second.
#[test]
fn the_daemon_backs_off_at_the_end_of_time() {
    let s = sandbox("", "mean_time_between_kills = 1", 3);
    let child = s
        .command(&[
            "monkey",
            "--clock-start",
            "9999-12-30T12:00:00Z",
            "--clock-speed",
            "1000000",
        ])
        .env("SIMIAN_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let cpu = cpu_seconds(child.id());
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(cpu < 1.0, "{cpu} s of CPU in 3 s: the daemon spins\n{log}");
    let warnings = log.matches("end of representable time").count();
    assert_eq!(warnings, 1, "said once:\n{log}");
    assert!(log.lines().count() < 30, "{log}");
}

/// A manual kill of an app draws among the groups that may still lose an instance; it is
/// refused only when none may.
#[test]
fn a_manual_kill_finds_the_groups_that_are_still_free() {
    let s = sandbox("dry_run = false", "mean_time_between_kills = 2", 10);
    for c in 0..8 {
        let cluster = format!("web-prod-c{c}");
        s.run(&["terminate", "web", "--cluster", &cluster])
            .expect(0);
    }
    let mut clusters = Vec::new();
    for _ in 0..2 {
        let out = s.run(&["terminate", "web", "--json"]);
        out.expect(0);
        clusters.push(
            out.json()["termination"]["cluster"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    clusters.sort();
    assert_eq!(clusters, ["web-prod-c8", "web-prod-c9"]);
    let refused = s.run(&["terminate", "web", "--json"]);
    refused.expect(3);
    let r = refused.json();
    assert_eq!(r["refusal"]["check"], "min_time_between_kills");
    assert!(
        r["refusal"]["reason"]
            .as_str()
            .unwrap()
            .contains("each of the 10 groups"),
        "{r}"
    );
}

/// A kill on a static inventory touches nothing real, and says so in the record.
#[test]
fn a_kill_on_a_static_inventory_is_simulated() {
    let s = sandbox("", "", 2);
    let out = s.run(&["terminate", "web", "--no-dry-run", "--json"]);
    out.expect(0);
    assert_eq!(out.json()["termination"]["state"], "simulated");
    let history = s.run(&["history", "--json"]).json();
    assert_eq!(history["terminations"][0]["state"], "simulated");
    let table = s.run(&["history"]);
    assert!(table.stdout().contains("simulated"), "{}", table.stdout());
}

#[test]
fn control_characters_in_an_inventory_are_rejected() {
    let s = sandbox("", "", 1);
    s.write(
        "inventory.json",
        r#"{"instances": [{"id": "i-1", "app": "web", "account": "prod", "region": "r"},
                          {"id": "i-\u001b]0;pwned\u0007", "app": "web", "account": "prod", "region": "r"}]}"#,
    );
    let out = s.run(&["eligible", "web"]);
    out.expect(2);
    let err = out.stderr();
    assert!(
        err.contains("instance #2") && err.contains("control character"),
        "{err}"
    );
    assert!(!err.contains('\u{1b}') && !err.contains('\u{7}'), "{err:?}");
}

#[test]
fn eligible_json_always_carries_labels() {
    let s = sandbox("", "", 1);
    let v = s.run(&["eligible", "web", "--json"]).json();
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .all(|i| i["labels"].is_object()),
        "{v}"
    );
}

/// Writes a table the first migration creates, so the migration fails.
fn sqlite(path: &std::path::Path, sql: &str) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(sql).unwrap();
}

#[test]
fn store_errors_say_what_failed_and_refuse_a_newer_schema() {
    // A migration that fails: said in one line, without the migration's SQL.
    let s = sandbox("", "", 1);
    sqlite(
        &s.path().join("simian.db"),
        "CREATE TABLE schedules (x INTEGER);",
    );
    let out = s.run(&["history"]);
    out.expect(1);
    let err = out.stderr();
    assert!(err.contains("schema version 1"), "{err}");
    assert!(
        !err.contains("CREATE TABLE") && !err.contains("[store] url"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    // A store written by a newer Simian is refused, with both versions.
    let s = sandbox("", "", 1);
    s.run(&["history"]).expect(0);
    sqlite(
        &s.path().join("simian.db"),
        "INSERT INTO simian_migrations (version, applied_at_ms) VALUES (99, 0);",
    );
    for args in [
        &["history"][..],
        &["terminate", "web"][..],
        &["config", "check"][..],
    ] {
        let out = s.run(args);
        out.expect(1);
        let err = out.stderr();
        assert!(
            err.contains("schema version 99") && err.contains("up to 5"),
            "{args:?}: {err}"
        );
        assert!(!err.starts_with("error: [store] url"), "{args:?}: {err}");
    }
}

#[test]
fn config_check_reaches_the_store_and_keeps_secrets() {
    let port = util::free_port();
    let url = format!("postgres://simian@127.0.0.1:{port}/db?password=hunter2&sslmode=disable");
    let s = Sandbox::new();
    s.write("inventory.json", &inventory(1));
    s.write("simian.toml", &config("", "", &url));
    let out = s.run(&["config", "check"]);
    out.expect(1);
    let err = out.stderr();
    assert!(
        err.contains("[store] url") && err.contains("password=***"),
        "{err}"
    );
    let offline = s.run(&["config", "check", "--offline"]);
    offline.expect(0);
    assert!(
        offline.stdout().contains("not checked (--offline)"),
        "{}",
        offline.stdout()
    );
    let json = s.run(&["config", "check", "--offline", "--json"]);
    json.expect(0);
    for text in [out.stdout(), err, offline.stdout(), json.stdout()] {
        assert!(!text.contains("hunter2"), "{text}");
    }

    // A reachable store is said to be; a SQLite file is not created by a check.
    let s = sandbox("", "", 1);
    let ok = s.run(&["config", "check"]);
    ok.expect(0);
    assert!(
        ok.stdout().contains("created on first use"),
        "{}",
        ok.stdout()
    );
    assert!(!s.path().join("simian.db").exists());
    s.run(&["history"]).expect(0);
    let ok = s.run(&["config", "check"]);
    assert!(ok.stdout().contains("reachable"), "{}", ok.stdout());
}

#[test]
fn config_check_warns_when_no_app_is_configured() {
    let s = Sandbox::new();
    s.write(
        "simian.toml",
        "[monkey]\ntime_zone = \"UTC\"\n\n[store]\nurl = \"sqlite://simian.db\"\n",
    );
    let out = s.run(&["config", "check"]);
    out.expect(0);
    assert!(out.stderr().contains("no [[apps]]"), "{}", out.stderr());
}

#[test]
fn unknown_provider_kinds_list_what_this_build_has() {
    let s = Sandbox::new();
    s.write(
        "simian.toml",
        "[store]\nurl = \"sqlite://simian.db\"\n\n[providers.p]\nkind = \"dokcer\"\n",
    );
    let out = s.run(&["config", "check"]);
    out.expect(2);
    let err = out.stderr();
    let hint = err
        .lines()
        .find(|l| l.contains("hint:"))
        .unwrap_or_default();
    assert!(err.contains("unknown kind"), "{err}");
    for kind in ["process", "static", "docker", "kubernetes", "aws"] {
        assert!(hint.contains(kind), "{kind}: {err}");
    }
}

/// A slow consumer is not a closed pipe: everything arrives.
#[test]
fn a_slow_reader_still_gets_everything() {
    let s = sandbox("", "mean_time_between_kills = 1", 3);
    let mut child = s
        .command(&[
            "schedule",
            "--date",
            "2026-03-02",
            "--days",
            "30",
            "--seed",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let began = Instant::now();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines().count();
    assert!(began.elapsed() < Duration::from_secs(10));
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert!(lines > 10, "{lines}");
}

/// Every docker setting is checked where it is written, with the fix.
#[test]
fn docker_provider_settings_are_validated() {
    let s = Sandbox::new();
    let base = "[store]\nurl = \"sqlite://simian.db\"\n\n[providers.c]\nkind = \"docker\"\n";
    for (extra, says, hint) in [
        ("action = \"explode\"\n", "unknown action", "stop"),
        (
            "action = \"pause\"\npause_for = \"0s\"\n",
            "pause_for must be more than 0",
            "5m",
        ),
        (
            "action = \"pause\"\npause_for = \"forever\"\n",
            "is not a duration",
            "10s",
        ),
        (
            "signal = \"SIGKILL\"\n",
            "signal is a setting of action = \"kill\"",
            "remove signal",
        ),
        (
            "action = \"kill\"\nsignal = \"9000\"\n",
            "not a signal",
            "SIGKILL",
        ),
        (
            "action = \"kill\"\nsignal = \"sig kill\"\n",
            "not a signal",
            "SIGKILL",
        ),
        (
            "host = \"/var/run/docker.sock\"\n",
            "not a Docker engine address",
            "unix:///",
        ),
        (
            "pause_for = \"5m\"\n",
            "pause_for is a setting of action = \"pause\"",
            "remove pause_for",
        ),
        (
            "path = \"x.json\"\n",
            "path is a setting of kind = \"static\"",
            "remove path",
        ),
        ("grace_period = \"soon\"\n", "grace_period", ""),
    ] {
        s.write("simian.toml", &format!("{base}{extra}"));
        let out = s.run(&["config", "check", "--offline"]);
        out.expect(2);
        let err = out.stderr();
        assert!(
            err.contains("simian.toml:") && err.contains(says) && err.contains(hint),
            "{extra}: {err}"
        );
    }
    s.write(
        "simian.toml",
        &format!(
            "{base}action = \"kill\"\nsignal = \"SIGINT\"\nselector = {{ team = \"core\" }}\n"
        ),
    );
    let out = s.run(&["config", "check", "--offline", "--json"]);
    out.expect(0);
    let c = &out.json()["providers"]["c"];
    assert_eq!(
        (
            c["kind"].as_str(),
            c["action"].as_str(),
            c["signal"].as_str()
        ),
        (Some("docker"), Some("kill"), Some("SIGINT"))
    );
    // For other kinds, docker's keys are errors.
    s.write(
        "simian.toml",
        "[store]\nurl = \"sqlite://simian.db\"\n\n[providers.p]\nkind = \"process\"\naction = \"kill\"\n",
    );
    let out = s.run(&["config", "check", "--offline"]);
    out.expect(2);
    assert!(
        out.stderr()
            .contains("action is a setting of kind = \"docker\""),
        "{}",
        out.stderr()
    );
}
