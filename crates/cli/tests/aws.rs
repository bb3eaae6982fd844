//! The `simian` binary on EC2 instances of Auto Scaling groups through `kind = "aws"`, against
//! moto's AWS emulator (`simian_testkit::aws`): the config's keys, `eligible`, `terminate` (the
//! group replaces the instance), the minimum time between kills, and the daemon terminating
//! instances on schedule over a day on an accelerated clock.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use simian_core::TerminationState;
use simian_testkit::aws::Moto;
use util::{Sandbox, day_clock, expect_config_error, finish_day, fired_once_per_group};

const R: &str = "us-east-1";

fn spread() -> Vec<(&'static str, usize)> {
    vec![("us-east-1a", 1), ("us-east-1b", 1), ("us-east-1c", 1)]
}

fn sandbox(moto: &Moto, monkey: &str, app: &str) -> Sandbox {
    let s = Sandbox::new();
    s.write(
        "simian.toml",
        &format!(
            "[monkey]\ntime_zone = \"America/Los_Angeles\"\n{monkey}\n\n[store]\nurl = \"sqlite://simian.db\"\n\n\
             [providers.aws]\nkind = \"aws\"\naccount = \"prod\"\nregions = [\"{R}\"]\nendpoint_url = \"{}\"\n\n\
             [[apps]]\nname = \"web\"\nprovider = \"aws\"\n{app}\n",
            moto.url()
        ),
    );
    s
}

#[test]
#[ignore = "needs python3 with moto[server] (the AWS API emulator): scripts/test.sh installs it (then pass --include-ignored)"]
fn terminate_kills_one_instance_that_the_group_replaces_then_the_minimum_time_refuses() {
    let moto = Moto::start();
    let launched = moto.group(R, "web-prod-v003", &spread(), &[("team", "core")]);
    moto.group(R, "billing-prod", &spread(), &[]);
    let s = sandbox(&moto, "", "mean_time_between_kills = 2");
    let eligible = s.run(&["eligible", "web", "--json"]).json();
    let rows = eligible.as_array().unwrap();
    assert_eq!(rows.len(), 3, "{eligible}");
    assert_eq!(rows[0]["cluster"], "web-prod", "{eligible}");
    assert_eq!(rows[0]["account"], "prod", "{eligible}");
    assert_eq!(rows[0]["region"], R, "{eligible}");
    let zones: BTreeSet<&str> = rows.iter().map(|r| r["zone"].as_str().unwrap()).collect();
    assert_eq!(zones.len(), 3, "{eligible}");

    let out = s.run(&["terminate", "web", "--no-dry-run", "--json"]);
    out.expect(0);
    let t = out.json();
    assert_eq!(t["termination"]["state"], "killed", "{t}");
    let victim = t["termination"]["instance_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(launched.iter().any(|m| m.id == victim), "{t}");
    let now = moto.members(R, "web-prod-v003").unwrap();
    assert_eq!(now.len(), 3, "the group replaced it: {now:?}");
    assert!(
        !now.iter().any(|m| m.id == victim),
        "the recorded instance left"
    );

    let again = s.run(&["terminate", "web", "--no-dry-run", "--json"]);
    again.expect(3);
    assert_eq!(again.json()["refusal"]["check"], "min_time_between_kills");
    let after = moto.members(R, "web-prod-v003").unwrap();
    assert_eq!(after, now, "nothing else was touched");
    assert_eq!(moto.members(R, "billing-prod").unwrap().len(), 3);
}

#[test]
#[ignore = "needs python3 with moto[server] (the AWS API emulator): scripts/test.sh installs it (then pass --include-ignored)"]
fn the_daemon_terminates_instances_on_schedule() {
    let groups = ["web-prod-a", "web-prod-b", "web-prod-c", "web-prod-d"];
    let moto = Moto::start();
    let mut launched = BTreeSet::new();
    for g in groups {
        for m in moto.group(R, g, &spread(), &[]) {
            launched.insert(m.id);
        }
    }
    let s = sandbox(
        &moto,
        "dry_run = false\nseed = 3",
        "mean_time_between_kills = 1\nmin_time_between_kills = 1",
    );
    let clock = day_clock();
    let clock: Vec<&str> = clock.iter().map(String::as_str).collect();
    finish_day(&s, &clock, Instant::now(), Duration::from_millis(8500));
    let kills = fired_once_per_group(&s, groups.len());
    for k in &kills {
        assert_eq!(k.state, TerminationState::Killed, "{k:?}");
        assert!(launched.contains(&k.instance_id), "{k:?}");
    }
    for g in groups {
        let now = moto.members(R, g).unwrap();
        assert_eq!(now.len(), 3, "{g} replaced its instance: {now:?}");
        let original = now.iter().filter(|m| launched.contains(&m.id)).count();
        assert_eq!(
            original, 2,
            "{g}: exactly one of its instances was terminated"
        );
    }
}

/// Every key of the provider is checked, with the file, the line and the fix.
#[test]
fn aws_settings_are_checked() {
    let s = Sandbox::new();
    let app = "\n[[apps]]\nname = \"web\"\nprovider = \"aws\"\n";
    for (provider, wanted) in [
        ("kind = \"aws\"\nregions = [\"us-east-1\"]", "needs account"),
        ("kind = \"aws\"\naccount = \"prod\"", "needs regions"),
        (
            "kind = \"aws\"\naccount = \"prod\"\nregions = []",
            "regions is empty",
        ),
        (
            "kind = \"aws\"\naccount = \"prod\"\nregions = [\"US East\"]",
            "not an AWS region name",
        ),
        (
            "kind = \"aws\"\naccount = \"prod\"\nregions = [\"us-east-1\", \"us-east-1\"]",
            "twice",
        ),
        (
            "kind = \"aws\"\naccount = \"prod\"\nregions = [\"us-east-1\"]\nendpoint_url = \"127.0.0.1:5000\"",
            "not an http:// or https:// URL",
        ),
        (
            "kind = \"aws\"\naccount = \"prod\"\nregions = [\"us-east-1\"]\nselector = { team = \"core\" }",
            "selector is a setting of kind",
        ),
        (
            "kind = \"aws\"\naccount = \"prod\"\nregions = [\"us-east-1\"]\ngrace_period = \"5s\"",
            "grace_period is a setting of kind",
        ),
        (
            "kind = \"process\"\nregions = [\"us-east-1\"]",
            "regions is a setting of kind = \"aws\"",
        ),
        (
            "kind = \"aws\"\naccount = \"prod\"\nregions = [\"us-east-1\"]\nprofile = \"\"",
            "profile is empty",
        ),
    ] {
        expect_config_error(&s, &format!("[providers.aws]\n{provider}\n{app}"), wanted);
    }
    // A good one resolves, every default shown, the app among those listed.
    s.write(
        "simian.toml",
        &format!("[providers.aws]\nkind = \"aws\"\naccount = \"prod\"\nregions = [\"us-east-1\", \"eu-west-1\"]\nprofile = \"chaos\"\n{app}allow_single_replica = true\n"),
    );
    let out = s.run(&["config", "check", "--offline", "--json"]);
    out.expect(0);
    let a = &out.json()["providers"]["aws"];
    assert_eq!(a["opt_in_tag"], "simian:app", "{a}");
    assert_eq!(a["regions"][1], "eu-west-1", "{a}");
    assert_eq!(a["profile"], "chaos", "{a}");
    assert_eq!(a["apps"][0], "web", "{a}");
    assert_eq!(a["allow_single_replica"][0], "web", "{a}");
}

/// Chaos Gorilla on AWS: every instance of the zone, in every opted-in group, terminated
/// through the provider in parallel, each recorded with origin `gorilla`; the groups replace
/// them; pause and isolate are refused naming what the provider supports.
#[test]
#[ignore = "needs python3 with moto[server] (the AWS API emulator): scripts/test.sh installs it (then pass --include-ignored)"]
fn gorilla_terminates_the_zone_in_every_group() {
    let moto = Moto::start();
    let mut launched = Vec::new();
    for g in ["web-prod-a", "web-prod-b"] {
        launched.extend(moto.group(R, g, &spread(), &[]));
    }
    let s = sandbox(&moto, "dry_run = false", "");
    let out = s.run(&[
        "gorilla",
        "us-east-1b",
        "--mode",
        "pause",
        "--duration",
        "1m",
    ]);
    out.expect(3);
    assert!(
        out.stderr().contains("which supports terminate"),
        "{}",
        out.stderr()
    );

    let out = s.run(&["gorilla", "us-east-1b", "--json"]);
    out.expect(0);
    let j = out.json();
    let acted = j["acted"].as_array().unwrap();
    assert_eq!(
        acted.len(),
        2,
        "one instance of each group is in us-east-1b: {j}"
    );
    assert!(acted.iter().all(|a| a["outcome"] == "killed"), "{j}");
    let in_b: BTreeSet<String> = launched
        .iter()
        .filter(|m| m.zone == "us-east-1b")
        .map(|m| m.id.clone())
        .collect();
    let killed: BTreeSet<String> = acted
        .iter()
        .map(|a| a["instance"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(killed, in_b, "exactly the zone's instances");
    for g in ["web-prod-a", "web-prod-b"] {
        let now = moto.members(R, g).unwrap();
        assert!(now.iter().all(|m| !in_b.contains(&m.id)), "{g}: {now:?}");
    }
    let history = s.run(&["history", "--json"]).json();
    let kills = history["terminations"].as_array().unwrap();
    assert_eq!(kills.len(), 2, "{history}");
    assert!(
        kills
            .iter()
            .all(|k| k["origin"] == "gorilla" && k["drill"] == 1),
        "{history}"
    );
}
