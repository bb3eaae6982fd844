//! `simian demo`, end to end: a short run kills and replaces instances and meets its target;
//! `--fragile` shows errors; Ctrl-C stops it; and no demo process outlives any of them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

use std::process::Stdio;
use std::time::Duration;

use util::Sandbox;

/// Processes that carry this run's label, found through their environment.
fn survivors(run_id: &str) -> Vec<u32> {
    let needle = format!("SIMIAN_LABEL_RUN={run_id}");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|env| env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()))
                .unwrap_or(false)
        })
        .collect()
}

fn demo(args: &[&str]) -> (i32, serde_json::Value, String) {
    let s = Sandbox::new();
    let out = s.run(
        &[
            &["demo", "--days", "2", "--day-seconds", "6", "--json"],
            args,
        ]
        .concat(),
    );
    let summary = serde_json::from_slice(&out.0.stdout).unwrap_or(serde_json::Value::Null);
    (out.code(), summary, out.stderr())
}

#[test]
fn a_short_demo_kills_replaces_and_cleans_up() {
    let robust = std::thread::spawn(|| demo(&["--seed", "3"]));
    let fragile = std::thread::spawn(|| demo(&["--seed", "3", "--fragile"]));
    let interrupted = std::thread::spawn(|| {
        let s = Sandbox::new();
        let child = s
            .command(&["demo", "--days", "3", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_secs(4));
        let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
        let started = std::time::Instant::now();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap_or_default(),
            started.elapsed(),
        )
    });

    let (code, s, err) = robust.join().unwrap();
    assert_eq!(code, 0, "{s}\n{err}");
    let kills = s["kills"].as_u64().unwrap();
    assert!(
        kills >= 3,
        "μ = 1 over 3 zones and 2 days plans 6 kills: {s}"
    );
    assert!(s["replacements"].as_u64().unwrap() >= kills - 1, "{s}");
    assert!(s["requests"].as_u64().unwrap() > 500, "{s}");
    assert!(s["availability"].as_f64().unwrap() >= 99.9, "{s}");
    assert!(
        s["p50_ms"].as_f64().unwrap() > 0.0
            && s["p99_ms"].as_f64().unwrap() >= s["p50_ms"].as_f64().unwrap()
    );
    assert_eq!(s["met_target"], true);
    for key in [
        "kills",
        "replacements",
        "requests",
        "errors",
        "availability",
        "p50_ms",
        "p99_ms",
    ] {
        assert!(s.get(key).is_some(), "{key} missing");
    }
    assert!(
        survivors(s["run_id"].as_str().unwrap()).is_empty(),
        "a robust demo process survived"
    );

    let (code, f, err) = fragile.join().unwrap();
    assert_eq!(code, 1, "the fragile fleet misses the target: {f}\n{err}");
    assert!(f["errors"].as_u64().unwrap() > 0, "{f}");
    assert!(f["availability"].as_f64().unwrap() < 99.9);
    assert_eq!(f["met_target"], false);
    assert_eq!(
        f["kills"], s["kills"],
        "the same seed replays the same kills"
    );
    assert!(
        survivors(f["run_id"].as_str().unwrap()).is_empty(),
        "a fragile demo process survived"
    );

    let (code, i, took) = interrupted.join().unwrap();
    assert_eq!(code, Some(1), "interrupted: {i}");
    assert_eq!(i["interrupted"], true);
    assert!(
        took < Duration::from_secs(5),
        "Ctrl-C stops the demo promptly ({took:?})"
    );
    assert!(
        survivors(i["run_id"].as_str().unwrap()).is_empty(),
        "an interrupted demo process survived"
    );
}
