//! The `simian` binary on pods through `kind = "kubernetes"`, against the Kubernetes API
//! emulator (`simian_testkit::kube`): the config's keys, `eligible`, `terminate` (an
//! eviction, recorded and verified), a PodDisruptionBudget's refusal, the minimum time between
//! kills, and the daemon killing pods on schedule over a day on an accelerated clock.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

use std::time::{Duration, Instant};

use simian_core::{Check, HistoryFilter, TerminationState};
use simian_testkit::kube::{Emulator, PodSpec};
use util::{Sandbox, day_clock, expect_config_error, finish_day, fired_once_per_group};

fn sandbox(e: &Emulator, provider: &str, app: &str) -> Sandbox {
    sandbox_with(e, "time_zone = \"UTC\"", provider, app)
}

fn sandbox_with(e: &Emulator, monkey: &str, provider: &str, app: &str) -> Sandbox {
    let s = Sandbox::new();
    s.write(
        "simian.toml",
        &format!(
            "[monkey]\n{monkey}\n\n[store]\nurl = \"sqlite://simian.db\"\n\n\
             [providers.k8s]\nkind = \"kubernetes\"\nkubeconfig = \"{}\"\nnamespaces = [\"shop\"]\n\
             selector = \"tier=backend\"\n{provider}\n\n\
             [[apps]]\nname = \"web\"\nprovider = \"k8s\"\n{app}\n",
            e.kubeconfig().display()
        ),
    );
    s
}

/// `groups` Deployments of app `web` with `per_group` pods each, in namespace shop.
fn deployments(e: &Emulator, groups: usize, per_group: usize) {
    e.node("node-a", "us-west-2", "us-west-2a");
    for g in 0..groups {
        let rs = format!("web{g}-1");
        e.replica_set("shop", &rs, &format!("web{g}"));
        for n in 0..per_group {
            e.pod(&PodSpec {
                namespace: "shop",
                name: &format!("{rs}-{n}"),
                labels: vec![("simian.io/app", "web"), ("tier", "backend")],
                owner: Some(("ReplicaSet", &rs)),
                node: "node-a",
                ready: true,
                age_secs: 3600,
            });
        }
    }
}

#[test]
#[ignore = "needs python3 with kmock (the Kubernetes API emulator): scripts/test.sh installs it (then pass --include-ignored)"]
fn the_daemon_evicts_pods_on_schedule() {
    let groups = 4;
    let e = Emulator::start();
    deployments(&e, groups, 3);
    let s = sandbox_with(
        &e,
        "time_zone = \"America/Los_Angeles\"\ndry_run = false\nseed = 3",
        "",
        "mean_time_between_kills = 1\nmin_time_between_kills = 1",
    );
    let clock = day_clock();
    let clock: Vec<&str> = clock.iter().map(String::as_str).collect();
    finish_day(&s, &clock, Instant::now(), Duration::from_millis(8500));
    let kills = fired_once_per_group(&s, groups);
    for k in &kills {
        assert_eq!(k.state, TerminationState::Killed, "{k:?}");
        let name = k.instance_id.split('/').nth(1).unwrap();
        assert!(
            e.get_pod("shop", name).is_none(),
            "{k:?}: the pod was evicted"
        );
    }
    let left = (0..groups)
        .flat_map(|g| (0..3).map(move |n| format!("web{g}-1-{n}")))
        .filter(|name| e.get_pod("shop", name).is_some())
        .count();
    assert_eq!(left, groups * 2, "each kill evicted exactly one pod");
    assert_eq!(
        e.events("shop").len(),
        groups,
        "an Event on every killed pod"
    );
}

fn fleet(e: &Emulator, replicas: usize) {
    e.node("node-a", "eu-west-1", "eu-west-1a");
    e.replica_set("shop", "web-1", "web");
    for n in 0..replicas {
        e.pod(&PodSpec {
            namespace: "shop",
            name: &format!("web-1-{n}"),
            labels: vec![("simian.io/app", "web"), ("tier", "backend")],
            owner: Some(("ReplicaSet", "web-1")),
            node: "node-a",
            ready: true,
            age_secs: 3600,
        });
    }
}

#[test]
#[ignore = "needs python3 with kmock (the Kubernetes API emulator): scripts/test.sh installs it (then pass --include-ignored)"]
fn terminate_evicts_exactly_one_pod_then_the_minimum_time_refuses() {
    let e = Emulator::start();
    fleet(&e, 3);
    let s = sandbox(&e, "minimum_age = \"10m\"", "mean_time_between_kills = 2");
    let eligible = s.run(&["eligible", "web", "--json"]).json();
    let rows = eligible.as_array().unwrap();
    assert_eq!(rows.len(), 3, "{eligible}");
    assert_eq!(rows[0]["cluster"], "shop/Deployment/web", "{eligible}");
    assert_eq!(rows[0]["account"], "test-cluster", "{eligible}");

    let out = s.run(&["terminate", "web", "--no-dry-run", "--json"]);
    out.expect(0);
    let t = out.json();
    assert_eq!(t["termination"]["state"], "killed", "{t}");
    let victim = t["termination"]["instance_id"]
        .as_str()
        .unwrap()
        .to_string();
    let name = victim.split('/').nth(1).unwrap();
    assert!(
        e.get_pod("shop", name).is_none(),
        "the recorded pod was evicted"
    );
    assert_eq!(e.events("shop").len(), 1, "with an Event on it");

    let again = s.run(&["terminate", "web", "--no-dry-run", "--json"]);
    again.expect(3);
    assert_eq!(again.json()["refusal"]["check"], "min_time_between_kills");
    let left: usize = (0..3)
        .filter(|n| e.get_pod("shop", &format!("web-1-{n}")).is_some())
        .count();
    assert_eq!(left, 2, "nothing else was touched");
}

#[test]
#[ignore = "needs python3 with kmock (the Kubernetes API emulator): scripts/test.sh installs it (then pass --include-ignored)"]
fn an_eviction_a_budget_forbids_is_a_refusal_with_exit_3_that_blocks_nothing_later() {
    let e = Emulator::start();
    fleet(&e, 3);
    e.budget("shop", "web-budget", ("simian.io/app", "web"), 0);
    let s = sandbox(&e, "", "mean_time_between_kills = 2");

    let out = s.run(&["terminate", "web", "--no-dry-run", "--json"]);
    out.expect(3);
    let refusal = &out.json()["refusal"];
    assert_eq!(refusal["check"], "disruption_budget", "{refusal}");
    let reason = refusal["reason"].as_str().unwrap();
    assert!(reason.contains("web-budget"), "{reason}");
    let victim = refusal["instance_id"].as_str().unwrap().to_string();
    assert!(victim.starts_with("shop/web-1-"), "{victim}");
    let left = (0..3)
        .filter(|n| e.get_pod("shop", &format!("web-1-{n}")).is_some())
        .count();
    assert_eq!(left, 3, "nothing was evicted");
    assert!(
        e.events("shop").is_empty(),
        "no Event for a kill that did not happen"
    );

    // The history keeps both sides: the termination, refused, and the refusal naming it.
    let store = simian_store::open("sqlite://simian.db", s.path()).unwrap();
    let kills = store.terminations(&HistoryFilter::default()).unwrap();
    assert_eq!(kills.len(), 1, "{kills:#?}");
    assert_eq!(kills[0].state, TerminationState::Refused, "{kills:#?}");
    assert_eq!(kills[0].instance_id, victim);
    assert!(kills[0].detail.contains("web-budget"), "{kills:#?}");
    let refusals = store.refusals(&HistoryFilter::default()).unwrap();
    assert_eq!(refusals.len(), 1, "{refusals:#?}");
    assert_eq!(refusals[0].check, Check::DisruptionBudget);
    drop(store);

    // A refused kill is not a kill: once the budget allows it, the next one is not held
    // back by the minimum time between kills.
    let (code, _) = e.request(
        "DELETE",
        "/apis/policy/v1/namespaces/shop/poddisruptionbudgets/web-budget",
        None,
    );
    assert_eq!(code, 200, "the budget is removed");
    let again = s.run(&["terminate", "web", "--no-dry-run", "--json"]);
    again.expect(0);
    assert_eq!(again.json()["termination"]["state"], "killed");
    let left = (0..3)
        .filter(|n| e.get_pod("shop", &format!("web-1-{n}")).is_some())
        .count();
    assert_eq!(left, 2, "exactly one pod was evicted");
}

/// Every key of the provider is checked, with the file, the line and the fix.
#[test]
fn kubernetes_settings_are_checked() {
    let s = Sandbox::new();
    let base = "[providers.k8s]\nkind = \"kubernetes\"\n";
    for (extra, app, wanted) in [
        ("action = \"drain\"", "", "unknown action \"drain\""),
        ("selector = \"tier in backend\"", "", "selector"),
        ("namespaces = [\"Shop\"]", "", "not a namespace name"),
        ("minimum_age = \"soon\"", "", "minimum_age"),
        (
            "path = \"x.json\"",
            "",
            "path is a setting of kind = \"static\"",
        ),
        ("", "allow_single_replica = \"yes\"", "invalid type"),
    ] {
        expect_config_error(
            &s,
            &format!("{base}{extra}\n\n[[apps]]\nname = \"web\"\nprovider = \"k8s\"\n{app}\n"),
            wanted,
        );
    }
    // allow_single_replica belongs to apps of a kubernetes provider.
    s.write(
        "simian.toml",
        "[providers.local]\nkind = \"process\"\n\n[[apps]]\nname = \"web\"\nprovider = \"local\"\nallow_single_replica = true\n",
    );
    let out = s.run(&["config", "check", "--offline"]);
    out.expect(2);
    assert!(
        out.stderr().contains("kubernetes or aws provider"),
        "{}",
        out.stderr()
    );
    // A good one resolves, every default shown.
    s.write(
        "simian.toml",
        &format!("{base}selector = {{ tier = \"backend\" }}\naction = \"delete\"\ngrace_period = \"5s\"\n\n[[apps]]\nname = \"web\"\nprovider = \"k8s\"\nallow_single_replica = true\n"),
    );
    let out = s.run(&["config", "check", "--offline", "--json"]);
    out.expect(0);
    let k = &out.json()["providers"]["k8s"];
    assert_eq!(k["selector"], "tier=backend", "{k}");
    assert_eq!(k["action"], "delete", "{k}");
    assert_eq!(k["allow_single_replica"][0], "web", "{k}");
}

/// Pods of app `web` in zones a (two) and b (one), on nodes that carry the zones.
fn zoned(e: &Emulator) {
    e.node("node-a", "us-west-2", "us-west-2a");
    e.node("node-b", "us-west-2", "us-west-2b");
    e.replica_set("shop", "web-1", "web");
    for (name, node) in [
        ("web-1-a0", "node-a"),
        ("web-1-a1", "node-a"),
        ("web-1-b0", "node-b"),
    ] {
        e.pod(&PodSpec {
            namespace: "shop",
            name,
            labels: vec![("simian.io/app", "web"), ("tier", "backend")],
            owner: Some(("ReplicaSet", "web-1")),
            node,
            ready: true,
            age_secs: 3600,
        });
    }
}

/// The isolation label each pod carries (`None`: not isolated).
fn isolation(e: &Emulator, name: &str) -> Option<String> {
    e.get_pod("shop", name).unwrap()["metadata"]["labels"]["simian.io/isolated"]
        .as_str()
        .map(str::to_string)
}

fn policies(e: &Emulator) -> Vec<serde_json::Value> {
    let (status, list) = e.request(
        "GET",
        "/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies",
        None,
    );
    assert_eq!(status, 200, "{list}");
    list["items"].as_array().cloned().unwrap_or_default()
}

/// Both pods of zone a are labelled, each under a policy of its own.
fn zone_a_isolated(e: &Emulator) -> bool {
    policies(e).len() == 2
        && ["web-1-a0", "web-1-a1"]
            .iter()
            .all(|n| isolation(e, n).is_some())
}

/// Waits until `done` holds, or fails saying `what` did not happen.
fn within_15s(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done() {
        assert!(Instant::now() < deadline, "not within 15 s: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
#[ignore = "needs python3 with kmock (the Kubernetes API emulator): scripts/test.sh installs it (then pass --include-ignored)"]
fn isolate_puts_the_zone_behind_a_deny_all_policy_and_removes_it() {
    let e = Emulator::start();
    zoned(&e);
    let s = sandbox_with(&e, "dry_run = false", "", "");
    let drill = s
        .command(&[
            "gorilla",
            "us-west-2a",
            "--mode",
            "isolate",
            "--duration",
            "3s",
            "--json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    within_15s("zone a is isolated", || zone_a_isolated(&e));
    // During: each pod of zone a is selected by a policy that allows nothing; b is untouched.
    for p in policies(&e) {
        let spec = &p["spec"];
        assert_eq!(
            spec["policyTypes"],
            serde_json::json!(["Ingress", "Egress"]),
            "{p}"
        );
        assert!(spec["ingress"].is_null() && spec["egress"].is_null(), "{p}");
        let lease = spec["podSelector"]["matchLabels"]["simian.io/isolated"]
            .as_str()
            .unwrap();
        assert!(
            ["web-1-a0", "web-1-a1"]
                .iter()
                .any(|n| isolation(&e, n).as_deref() == Some(lease)),
            "{p}"
        );
    }
    assert_eq!(isolation(&e, "web-1-b0"), None);
    let out = util::Run(drill.wait_with_output().unwrap());
    out.expect(0);
    assert_eq!(out.json()["drill"]["ending"], "completed");
    assert!(policies(&e).is_empty(), "the policies are gone");
    for n in ["web-1-a0", "web-1-a1", "web-1-b0"] {
        assert_eq!(isolation(&e, n), None, "{n}");
    }

    // SIGKILL mid-drill: the guardian removes them at the deadline.
    let mut drill = s
        .command(&[
            "gorilla",
            "us-west-2a",
            "--mode",
            "isolate",
            "--duration",
            "2s",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    within_15s("zone a is isolated again", || zone_a_isolated(&e));
    drill.kill().unwrap();
    drill.wait().unwrap();
    within_15s("the guardian undoes the isolation", || {
        policies(&e).is_empty()
            && ["web-1-a0", "web-1-a1"]
                .iter()
                .all(|n| isolation(&e, n).is_none())
    });
    // Pause is not something pods can do.
    let out = s.run(&[
        "gorilla",
        "us-west-2a",
        "--mode",
        "pause",
        "--duration",
        "1s",
    ]);
    out.expect(3);
    assert!(
        out.stderr().contains("supports terminate, isolate"),
        "{}",
        out.stderr()
    );
}
