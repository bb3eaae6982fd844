//! The `simian` binary, end to end: configs, schedules, kills, refusals and races.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

use std::process::Stdio;
use std::sync::{Arc, Barrier};

use util::{Sandbox, config, inventory};

fn sandbox(monkey: &str, app: &str) -> Sandbox {
    let s = Sandbox::new();
    s.write("inventory.json", &inventory(4));
    s.write("simian.toml", &config(monkey, app, "sqlite://simian.db"));
    s
}

#[test]
fn config_check_prints_the_resolved_values() {
    let s = sandbox("", "mean_time_between_kills = 2");
    let out = s.run(&["config", "check", "--json"]);
    out.expect(0);
    let v = out.json();
    assert_eq!(v["monkey"]["dry_run"], true, "dry_run defaults to true");
    assert_eq!(v["monkey"]["start_hour"], 9);
    assert_eq!(v["monkey"]["end_hour"], 15);
    assert_eq!(
        v["monkey"]["work_days"],
        serde_json::json!(["mon", "tue", "wed", "thu", "fri"])
    );
    assert_eq!(v["apps"][0]["daily_kill_probability"], 0.5);
    assert_eq!(v["apps"][0]["grouping"], "cluster");
    let human = s.run(&["config", "check"]);
    human.expect(0);
    assert!(human.stdout().contains("dry run"), "{}", human.stdout());
}

#[test]
fn config_lookup_follows_flag_then_env_then_cwd() {
    let s = sandbox("", "");
    s.write(
        "other.toml",
        &config("max_kills_per_day = 7", "", "sqlite://simian.db"),
    );
    let v = s.run(&["config", "check", "--json"]).json();
    assert_eq!(v["monkey"]["max_kills_per_day"], 100);
    let out = s
        .command(&["config", "check", "--json"])
        .env("SIMIAN_CONFIG", "other.toml")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["monkey"]["max_kills_per_day"], 7);
    let v = s
        .run(&["--config", "simian.toml", "config", "check", "--json"])
        .json();
    assert_eq!(v["monkey"]["max_kills_per_day"], 100);
    let missing = s.run(&["--config", "nope.toml", "config", "check"]);
    missing.expect(2);
    assert!(
        missing.stderr().contains("nope.toml") && missing.stderr().contains("hint"),
        "{}",
        missing.stderr()
    );
}

/// Every kind of mistake exits 2 and names the file, the line and the key.
#[test]
fn bad_configs_exit_2_with_file_line_key_and_hint() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "[monkey]\ndry_rn = true\n",
            "bad.toml:2",
            "did you mean dry_run",
        ),
        (
            "[monkey]\nstart_hour = \"nine\"\n",
            "bad.toml:2",
            "start_hour",
        ),
        (
            "[monkey]\nstart_hour = 15\nend_hour = 9\n",
            "bad.toml:3",
            "end_hour",
        ),
        ("[monkey]\nend_hour = 25\n", "bad.toml:2", "end_hour"),
        (
            "[monkey]\ntime_zone = \"Mars/Olympus\"\n",
            "bad.toml:2",
            "time_zone",
        ),
        (
            "[monkey]\nholidays = [\"2026-02-30\"]\n",
            "bad.toml:2",
            "holidays",
        ),
        (
            "[monkey]\nwork_days = [\"funday\"]\n",
            "bad.toml:2",
            "work_days",
        ),
        ("[store]\nurl = \"mysql://x\"\n", "bad.toml:2", "url"),
        (
            "[[apps]]\nname = \"web\"\nprovider = \"nope\"\n",
            "bad.toml:3",
            "provider \"nope\"",
        ),
        (
            "[providers.p]\nkind = \"process\"\n[[apps]]\nname = \"web\"\nprovider = \"p\"\nmean_time_between_kills = 0\n",
            "bad.toml:6",
            "mean_time_between_kills",
        ),
        (
            "[providers.p]\nkind = \"process\"\n[[apps]]\nname = \"web\"\nprovider = \"p\"\nmean_time_between_kills = -2.5\n",
            "bad.toml:6",
            "mean_time_between_kills",
        ),
        (
            "[providers.p]\nkind = \"process\"\n[[apps]]\nname = \"web\"\nprovider = \"p\"\nmin_time_between_kills = -1\n",
            "bad.toml:6",
            "min_time_between_kills",
        ),
        (
            "[providers.p]\nkind = \"process\"\n[[apps]]\nname = \"web\"\nprovider = \"p\"\ngrouping = \"zone\"\n",
            "bad.toml:6",
            "grouping",
        ),
        (
            "[providers.p]\nkind = \"process\"\n[[apps]]\nname = \"web\"\nprovider = \"p\"\nexceptions = [{ account = \"prod\", cluster = \"x\" }]\n",
            "bad.toml:6",
            "cluster",
        ),
        (
            "[providers.p]\nkind = \"process\"\ngrace_period = \"soon\"\n",
            "bad.toml:3",
            "grace_period",
        ),
        (
            "[providers.p]\nkind = \"process\"\npath = \"x.json\"\n",
            "bad.toml:3",
            "path",
        ),
        ("[providers.p]\nkind = \"vmware\"\n", "bad.toml:2", "kind"),
        (
            "[providers.p]\nkind = \"static\"\npath = \"missing.json\"\n",
            "bad.toml",
            "missing.json",
        ),
        ("[outage]\ncommand = []\n", "bad.toml:2", "command"),
        ("this is not toml\n", "bad.toml:1", ""),
    ];
    let s = Sandbox::new();
    for (text, location, key) in cases {
        s.write("bad.toml", text);
        let out = s.run(&["--config", "bad.toml", "config", "check"]);
        let err = out.stderr();
        assert_eq!(out.code(), 2, "{text:?}\n{err}");
        assert!(
            err.contains(location),
            "{text:?}: expected {location} in\n{err}"
        );
        assert!(err.contains(key), "{text:?}: expected {key} in\n{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn schedule_json_is_reproducible_and_has_no_side_effects() {
    let s = sandbox("", "mean_time_between_kills = 2");
    let args = [
        "schedule",
        "--date",
        "2026-03-08",
        "--days",
        "14",
        "--seed",
        "42",
        "--json",
    ];
    let a = s.run(&args);
    a.expect(0);
    let b = s.run(&args);
    assert_eq!(
        a.0.stdout, b.0.stdout,
        "same seed, same inventory: byte-identical"
    );
    let planned = a.json();
    let planned = planned.as_array().unwrap();
    assert!(!planned.is_empty());
    for k in planned {
        let time = k["time"].as_str().unwrap();
        // RFC 3339 with the zone's offset: PST before 8 March, PDT from it.
        assert!(
            time.ends_with("-07:00") || time.ends_with("-08:00"),
            "{time}"
        );
        let hour: u32 = time[11..13].parse().unwrap();
        assert!((9..15).contains(&hour), "{time}");
        for key in ["app", "account", "region", "stack", "cluster"] {
            assert!(k.get(key).is_some(), "{key} missing in {k}");
        }
        assert_ne!(
            k["cluster"], "web-prod-canary",
            "never-eligible clusters are not planned"
        );
    }
    let other = s.run(&[
        "schedule",
        "--date",
        "2026-03-08",
        "--days",
        "14",
        "--seed",
        "43",
        "--json",
    ]);
    assert_ne!(a.0.stdout, other.0.stdout);
    assert!(
        !s.path().join("simian.db").exists(),
        "schedule must not touch the store"
    );
}

#[test]
fn terminate_runs_every_check_and_exits_3_on_refusal() {
    let s = sandbox("", "mean_time_between_kills = 2");
    // Dry run by default: recorded, nothing done.
    let first = s.run(&["terminate", "web", "--cluster", "web-prod-c0", "--json"]);
    first.expect(0);
    let t = first.json();
    assert_eq!(t["decision"], "terminated");
    assert_eq!(t["termination"]["dry_run"], true);
    assert_eq!(t["termination"]["state"], "dry_run");
    // A second dry run in the group is refused by the minimum time.
    let second = s.run(&["terminate", "web", "--cluster", "web-prod-c0", "--json"]);
    second.expect(3);
    assert_eq!(second.json()["refusal"]["check"], "min_time_between_kills");
    // A real kill is not blocked by the dry run; the next real one is.
    s.run(&[
        "terminate",
        "web",
        "--cluster",
        "web-prod-c0",
        "--no-dry-run",
    ])
    .expect(0);
    let again = s.run(&[
        "terminate",
        "web",
        "--cluster",
        "web-prod-c0",
        "--no-dry-run",
    ]);
    again.expect(3);
    assert!(
        again.stderr().contains("min_time_between_kills"),
        "{}",
        again.stderr()
    );
    // Exceptions and never-eligible suffixes leave nothing to draw from.
    let canary = s.run(&["terminate", "web", "--cluster", "web-prod-canary"]);
    canary.expect(3);
    assert!(
        canary.stderr().contains("eligibility"),
        "{}",
        canary.stderr()
    );
    let unknown = s.run(&["terminate", "nope"]);
    unknown.expect(3);
    assert!(
        unknown.stderr().contains("not configured"),
        "{}",
        unknown.stderr()
    );

    let history = s.run(&["history", "--refusals", "--json"]).json();
    assert_eq!(history["terminations"].as_array().unwrap().len(), 2);
    assert_eq!(history["refusals"].as_array().unwrap().len(), 4);
    let web = s
        .run(&["history", "--app", "nope", "--refusals", "--json"])
        .json();
    assert_eq!(web["terminations"].as_array().unwrap().len(), 0);
    assert_eq!(web["refusals"].as_array().unwrap().len(), 1);
    s.run(&["history", "--since", "yesterday"]).expect(2);
    let table = s.run(&["history"]);
    table.expect(0);
    assert!(
        table.stdout().starts_with("ID  RECORDED"),
        "{}",
        table.stdout()
    );
}

#[test]
fn kill_switch_outage_app_switch_and_daily_cap_refuse() {
    let s = sandbox("enabled = false", "");
    let out = s.run(&["terminate", "web", "--json"]);
    out.expect(3);
    assert_eq!(out.json()["refusal"]["check"], "kill_switch");

    let s = sandbox("", "enabled = false");
    assert_eq!(
        s.run(&["terminate", "web", "--json"]).expect(3).json()["refusal"]["check"],
        "app_disabled"
    );

    for (script, refused) in [
        ("echo true", true),
        ("echo maybe", true),
        ("exit 1", true),
        ("echo false", false),
    ] {
        let s = Sandbox::new();
        s.write("inventory.json", &inventory(2));
        let mut text = config("", "", "sqlite://simian.db");
        text.push_str(&format!(
            "\n[outage]\ncommand = [\"sh\", \"-c\", \"{script}\"]\n"
        ));
        s.write("simian.toml", &text);
        let out = s.run(&["terminate", "web", "--json"]);
        if refused {
            out.expect(3);
            assert_eq!(out.json()["refusal"]["check"], "outage", "{script}");
        } else {
            out.expect(0);
        }
    }

    let s = sandbox("max_kills_per_day = 2", "min_time_between_kills = 0");
    s.run(&["terminate", "web", "--cluster", "web-prod-c0"])
        .expect(0);
    s.run(&["terminate", "web", "--cluster", "web-prod-c1"])
        .expect(0);
    let capped = s.run(&["terminate", "web", "--cluster", "web-prod-c2", "--json"]);
    capped.expect(3);
    assert_eq!(capped.json()["refusal"]["check"], "max_kills_per_day");
}

#[test]
fn eligible_lists_what_a_kill_could_draw() {
    let s = sandbox(
        "",
        "exceptions = [{ account = \"prod\", region = \"*\", stack = \"prod\", detail = \"c1\" }]",
    );
    let v = s.run(&["eligible", "web", "--json"]).json();
    let ids: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids.len(),
        6,
        "{ids:?}: 4 clusters x 2, minus c1 (excepted), minus the canary"
    );
    assert!(!ids.contains(&"i-1-0") && !ids.contains(&"i-canary"));
    let v = s
        .run(&["eligible", "web", "--cluster", "web-prod-c2", "--json"])
        .json();
    assert_eq!(v.as_array().unwrap().len(), 2);
    s.run(&["eligible", "nope"]).expect(2);
}

/// Two `simian terminate` processes race on the same group and the same database: exactly
/// one kills, the other is refused, round after round, on SQLite and on PostgreSQL.
#[test]
fn racing_terminate_processes_kill_exactly_once_on_sqlite() {
    racing_terminate_processes_kill_exactly_once("sqlite://simian.db".into());
}

#[test]
#[ignore = "needs PostgreSQL: scripts/test.sh starts one (or set SIMIAN_TEST_POSTGRES_URL and pass --include-ignored)"]
fn racing_terminate_processes_kill_exactly_once_on_postgres() {
    racing_terminate_processes_kill_exactly_once(util::postgres_url("race"));
}

fn racing_terminate_processes_kill_exactly_once(store: String) {
    {
        let s = Sandbox::new();
        s.write("inventory.json", &inventory(6));
        s.write("simian.toml", &config("", "", &store));
        // Apply migrations before the race, as an installed daemon would have.
        s.run(&["history"]).expect(0);
        for round in 0..6 {
            let cluster = format!("web-prod-c{round}");
            let barrier = Arc::new(Barrier::new(2));
            let racers: Vec<_> = (0..2)
                .map(|_| {
                    let mut cmd = s.command(&[
                        "terminate",
                        "web",
                        "--cluster",
                        &cluster,
                        "--no-dry-run",
                        "--json",
                    ]);
                    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
                    let barrier = barrier.clone();
                    std::thread::spawn(move || {
                        barrier.wait();
                        cmd.output().unwrap()
                    })
                })
                .collect();
            let mut codes: Vec<i32> = racers
                .into_iter()
                .map(|h| h.join().unwrap().status.code().unwrap())
                .collect();
            codes.sort();
            assert_eq!(codes, vec![0, 3], "{store} round {round}");
        }
        let history = s.run(&["history", "--refusals", "--json"]).json();
        assert_eq!(
            history["terminations"].as_array().unwrap().len(),
            6,
            "{store}"
        );
        let refusals = history["refusals"].as_array().unwrap();
        assert_eq!(refusals.len(), 6, "{store}");
        assert!(
            refusals
                .iter()
                .all(|r| r["check"] == "min_time_between_kills")
        );
    }
}
