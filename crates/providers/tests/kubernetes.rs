//! The Kubernetes provider's own rules, on pods served by the API emulator
//! (`simian_testkit::kube`) through real kube-rs calls: ownership grouping, zones from nodes,
//! opt-in, minimum age, the single-replica refusal, disruption budgets (429), a pod
//! recreated under the same name, the Event on a killed pod, and the cost of a listing.
//! The conformance suite (`conformance_kubernetes.rs`) covers what every provider shares.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use simian_core::{Check, KillOutcome, Provider, ProviderError};
use simian_providers::kubernetes::Selector;
use simian_providers::{KubernetesAction, KubernetesConfig, KubernetesProvider};
use simian_testkit::kube::{Emulator, PodSpec, kubeconfig_text};

const NEEDS: &str = "needs python3 with kmock (the Kubernetes API emulator): scripts/test.sh installs it (then pass --include-ignored)";

fn provider(e: &Emulator, tweak: impl FnOnce(&mut KubernetesConfig)) -> KubernetesProvider {
    let mut config = KubernetesConfig {
        kubeconfig: Some(e.kubeconfig()),
        ..KubernetesConfig::default()
    };
    tweak(&mut config);
    KubernetesProvider::new("k8s", config).unwrap()
}

fn pod<'a>(
    namespace: &'a str,
    name: &'a str,
    app: &'a str,
    owner: Option<(&'a str, &'a str)>,
) -> PodSpec<'a> {
    PodSpec {
        namespace,
        name,
        labels: vec![("simian.io/app", app), ("tier", "backend")],
        owner,
        node: "node-a",
        ready: true,
        age_secs: 3600,
    }
}

fn ids(p: &KubernetesProvider) -> Vec<String> {
    let mut v: Vec<String> = p
        .instances()
        .unwrap()
        .into_iter()
        .map(|i| i.id.to_string())
        .collect();
    v.sort();
    v
}

#[test]
#[ignore = "needs python3 with kmock (the Kubernetes API emulator): scripts/test.sh installs it (then pass --include-ignored)"]
fn pods_group_by_owning_workload_and_take_zones_from_nodes() {
    let _ = NEEDS;
    let e = Emulator::start();
    e.node("node-a", "eu-west-1", "eu-west-1a");
    e.node("node-b", "eu-west-1", "eu-west-1b");
    e.replica_set("shop", "web-5d8f", "web");
    for (name, node) in [("web-5d8f-1", "node-a"), ("web-5d8f-2", "node-b")] {
        e.pod(&PodSpec {
            node,
            ..pod("shop", name, "web", Some(("ReplicaSet", "web-5d8f")))
        });
    }
    for name in ["db-0", "db-1"] {
        e.pod(&pod("shop", name, "db", Some(("StatefulSet", "db"))));
    }
    // Two bare pods of one app, grouped by an explicit cluster label.
    for name in ["solo-1", "solo-2"] {
        let mut p = pod("shop", name, "solo", None);
        p.labels.push(("simian.io/cluster", "solo-main"));
        e.pod(&p);
    }
    let p = provider(&e, |_| {});
    let mut seen: Vec<(String, String, String, String, String)> = p
        .instances()
        .unwrap()
        .into_iter()
        .map(|i| {
            (
                i.id.split('/').nth(1).unwrap().to_string(),
                i.cluster.to_string(),
                i.zone.to_string(),
                i.region.to_string(),
                i.account.to_string(),
            )
        })
        .collect();
    seen.sort();
    let row = |n: &str, c: &str, z: &str| {
        (
            n.to_string(),
            c.to_string(),
            z.to_string(),
            "eu-west-1".to_string(),
            "test-cluster".to_string(),
        )
    };
    assert_eq!(
        seen,
        vec![
            row("db-0", "shop/StatefulSet/db", "eu-west-1a"),
            row("db-1", "shop/StatefulSet/db", "eu-west-1a"),
            row("solo-1", "solo-main", "eu-west-1a"),
            row("solo-2", "solo-main", "eu-west-1a"),
            row("web-5d8f-1", "shop/Deployment/web", "eu-west-1a"),
            row("web-5d8f-2", "shop/Deployment/web", "eu-west-1b"),
        ],
        "the account defaults to the kubeconfig context"
    );
    let web = p
        .instances()
        .unwrap()
        .into_iter()
        .find(|i| i.app == "web")
        .unwrap();
    assert_eq!(web.labels.get("tier").map(|v| v.as_str()), Some("backend"));
    assert!(
        web.labels.get("simian.io/app").is_none(),
        "Simian's own labels are fields"
    );
}

#[test]
#[ignore = "needs python3 with kmock (the Kubernetes API emulator): scripts/test.sh installs it (then pass --include-ignored)"]
fn only_opted_in_ready_old_enough_pods_outside_kube_system_are_instances() {
    let e = Emulator::start();
    e.node("node-a", "r", "z");
    e.replica_set("shop", "web-1", "web");
    let owner = Some(("ReplicaSet", "web-1"));
    e.pod(&pod("shop", "ok-1", "web", owner));
    e.pod(&pod("shop", "ok-2", "web", owner));
    e.pod(&PodSpec {
        labels: vec![("tier", "backend")],
        ..pod("shop", "not-opted-in", "web", owner)
    });
    e.pod(&PodSpec {
        ready: false,
        ..pod("shop", "not-ready", "web", owner)
    });
    e.pod(&PodSpec {
        age_secs: 30,
        ..pod("shop", "too-young", "web", owner)
    });
    e.pod(&pod("kube-system", "dns-1", "dns", None));
    e.pod(&pod("kube-system", "dns-2", "dns", None));
    let p = provider(&e, |c| c.minimum_age = Duration::from_secs(600));
    let names: Vec<String> = ids(&p)
        .iter()
        .map(|i| i.split('/').nth(1).unwrap().to_string())
        .collect();
    assert_eq!(names, vec!["ok-1", "ok-2"]);
    // Named explicitly, kube-system is listed like any other namespace.
    let p = provider(&e, |c| {
        c.namespaces = vec!["kube-system".into()];
        c.single_replica_apps = ["dns".to_string()].into();
    });
    assert_eq!(ids(&p).len(), 2);
    // A selector narrows the listing, on the client side too (the emulator ignores it).
    let p = provider(&e, |c| {
        c.selector = Selector::parse("tier!=backend").unwrap()
    });
    assert!(ids(&p).is_empty());
}

#[test]
#[ignore = "needs python3 with kmock (the Kubernetes API emulator): scripts/test.sh installs it (then pass --include-ignored)"]
fn the_only_ready_replica_is_refused_unless_the_app_allows_it() {
    let e = Emulator::start();
    e.node("node-a", "r", "z");
    e.replica_set("shop", "web-1", "web");
    e.pod(&pod("shop", "web-a", "web", Some(("ReplicaSet", "web-1"))));
    e.pod(&PodSpec {
        ready: false,
        ..pod("shop", "web-b", "web", Some(("ReplicaSet", "web-1")))
    });
    let p = provider(&e, |_| {});
    assert!(ids(&p).is_empty(), "one ready replica: not eligible");
    let allowed = provider(&e, |c| c.single_replica_apps = ["web".to_string()].into());
    let victim = allowed.instances().unwrap().pop().unwrap();
    match p.terminate(&victim, 1) {
        Err(ProviderError::Refused { reason, .. }) => {
            assert!(
                reason.contains("only ready replica of shop/Deployment/web"),
                "{reason}"
            );
            assert!(reason.contains("allow_single_replica"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(e.get_pod("shop", "web-a").is_some(), "left alone");
    assert!(matches!(
        allowed.terminate(&victim, 1).unwrap(),
        KillOutcome::Killed { .. }
    ));
    assert!(e.get_pod("shop", "web-a").is_none());
}

#[test]
#[ignore = "needs python3 with kmock (the Kubernetes API emulator): scripts/test.sh installs it (then pass --include-ignored)"]
fn an_eviction_a_budget_forbids_is_refused_with_the_budget_named() {
    let e = Emulator::start();
    e.node("node-a", "r", "z");
    e.replica_set("shop", "web-1", "web");
    for name in ["web-a", "web-b"] {
        e.pod(&pod("shop", name, "web", Some(("ReplicaSet", "web-1"))));
    }
    e.budget("shop", "web-budget", ("simian.io/app", "web"), 0);
    let p = provider(&e, |_| {});
    let victim = p.instances().unwrap().pop().unwrap();
    match p.terminate(&victim, 1) {
        Ok(KillOutcome::Refused { check, reason }) => {
            assert_eq!(check, Check::DisruptionBudget);
            assert!(reason.contains("PodDisruptionBudget"), "{reason}");
            assert!(reason.contains("web-budget"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(ids(&p).len(), 2, "nothing was evicted");
    // A plain delete does not consult budgets.
    let deleting = provider(&e, |c| {
        c.action = KubernetesAction::Delete;
        c.grace_period = Some(Duration::from_secs(5));
    });
    assert!(matches!(
        deleting.terminate(&victim, 1).unwrap(),
        KillOutcome::Killed { .. }
    ));
    let (_, name, _) = simian_providers::kubernetes::fleet::parse_id(&victim.id).unwrap();
    assert!(e.get_pod("shop", name).is_none(), "deleted");
}

#[test]
#[ignore = "needs python3 with kmock (the Kubernetes API emulator): scripts/test.sh installs it (then pass --include-ignored)"]
fn a_pod_recreated_under_the_same_name_is_already_gone_and_untouched() {
    let e = Emulator::start();
    e.node("node-a", "r", "z");
    e.replica_set("shop", "web-1", "web");
    for name in ["web-a", "web-b"] {
        e.pod(&pod("shop", name, "web", Some(("ReplicaSet", "web-1"))));
    }
    let p = provider(&e, |_| {});
    let victim = p
        .instances()
        .unwrap()
        .into_iter()
        .find(|i| i.id.contains("/web-a/"))
        .unwrap();
    // Its controller replaces it under the same name (a StatefulSet does): a new UID.
    e.delete_pod("shop", "web-a");
    let new_uid = e.pod(&pod("shop", "web-a", "web", Some(("ReplicaSet", "web-1"))));
    assert_eq!(p.terminate(&victim, 1).unwrap(), KillOutcome::AlreadyGone);
    let now = e.get_pod("shop", "web-a").unwrap();
    assert_eq!(
        now["metadata"]["uid"],
        new_uid.as_str(),
        "the new pod is untouched"
    );
}

#[test]
#[ignore = "needs python3 with kmock (the Kubernetes API emulator): scripts/test.sh installs it (then pass --include-ignored)"]
fn a_killed_pod_gets_an_event_saying_why() {
    let e = Emulator::start();
    e.node("node-a", "r", "z");
    e.replica_set("shop", "web-1", "web");
    let uids: Vec<String> = ["web-a", "web-b"]
        .iter()
        .map(|n| e.pod(&pod("shop", n, "web", Some(("ReplicaSet", "web-1")))))
        .collect();
    let p = provider(&e, |_| {});
    let victim = p
        .instances()
        .unwrap()
        .into_iter()
        .find(|i| i.id.contains("/web-a/"))
        .unwrap();
    match p.terminate(&victim, 41).unwrap() {
        KillOutcome::Killed { detail } => {
            assert!(detail.starts_with("evicted shop/web-a"), "{detail}")
        }
        other => panic!("{other:?}"),
    }
    let events = e.events("shop");
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(event["reason"], "SimianTermination");
    assert_eq!(event["involvedObject"]["name"], "web-a");
    assert_eq!(event["involvedObject"]["uid"], uids[0].as_str());
    let message = event["message"].as_str().unwrap();
    assert!(message.contains("app web"), "{message}");
    assert!(message.contains("termination 41 "), "{message}");
}

#[test]
#[ignore = "needs python3 with kmock (the Kubernetes API emulator): scripts/test.sh installs it (then pass --include-ignored)"]
fn a_listing_costs_one_call_per_kind_however_many_pods() {
    let e = Emulator::start();
    e.node("node-a", "r", "z");
    e.replica_set("shop", "web-1", "web");
    for n in 0..40 {
        e.pod(&pod(
            "shop",
            &format!("web-{n}"),
            "web",
            Some(("ReplicaSet", "web-1")),
        ));
    }
    let p = provider(&e, |c| c.namespaces = vec!["shop".into()]);
    assert_eq!(p.instances().unwrap().len(), 40);
    let before = p.api_calls();
    assert_eq!(p.instances().unwrap().len(), 40);
    assert_eq!(p.api_calls() - before, 3, "pods, replica sets, nodes");
}

/// A provider whose kubeconfig (written in `dir`) points at 127.0.0.1:`port`.
fn provider_at(dir: &tempfile::TempDir, port: u16) -> KubernetesProvider {
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        kubeconfig_text(&format!("http://127.0.0.1:{port}")),
    )
    .unwrap();
    KubernetesProvider::new(
        "k8s",
        KubernetesConfig {
            kubeconfig: Some(kubeconfig),
            ..KubernetesConfig::default()
        },
    )
    .unwrap()
}

/// No API server where the kubeconfig points: a clear error naming the server, every time.
#[test]
fn an_unreachable_api_server_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let p = provider_at(&dir, port);
    for _ in 0..2 {
        let e = p.instances().unwrap_err().to_string();
        assert!(
            e.contains(&format!("127.0.0.1:{port}")) && e.contains("cannot reach"),
            "{e}"
        );
    }
    let missing = KubernetesProvider::new(
        "k8s",
        KubernetesConfig {
            kubeconfig: Some(dir.path().join("nope")),
            ..KubernetesConfig::default()
        },
    )
    .unwrap();
    let e = missing.instances().unwrap_err().to_string();
    assert!(
        e.contains("cannot read the kubeconfig") && e.contains("nope"),
        "{e}"
    );
}

/// A server whose list never advances (it hands back the same continue token) is an error,
/// not a listing that never ends.
#[test]
fn a_list_that_never_advances_is_an_error() {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut conn = conn;
                loop {
                    let mut line = String::new();
                    while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                        line.clear();
                    }
                    if line != "\r\n" {
                        return;
                    }
                    let body = r#"{"kind":"PodList","apiVersion":"v1","metadata":{"continue":"same"},"items":[]}"#;
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                        body.len()
                    );
                    if conn.write_all(head.as_bytes()).is_err()
                        || conn.write_all(body.as_bytes()).is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let p = provider_at(&dir, port);
    let e = p.instances().unwrap_err().to_string();
    assert!(e.contains("continue token \"same\" twice"), "{e}");
    assert!(p.api_calls() <= 3, "{} calls", p.api_calls());
}
