//! The aws provider against moto's AWS emulator (`simian_testkit::aws`), through real AWS SDK
//! calls: Frigga names and opt-in tags, zones from a real spread over three Availability
//! Zones, eligibility states, the suspended-process and single-instance refusals,
//! `already_gone`, the group replacing what was killed, and pagination past 100 groups.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use simian_core::{Instance, KillOutcome, Provider, ProviderError};
use simian_providers::aws::IAM_ACTIONS;
use simian_providers::{AwsConfig, AwsProvider};
use simian_testkit::aws::Moto;

const NEEDS: &str = "needs python3 with moto[server] (the AWS API emulator): scripts/test.sh installs it (then pass --include-ignored)";
const R: &str = "us-east-1";

fn provider(moto: &Moto, apps: &[&str], tune: impl FnOnce(&mut AwsConfig)) -> AwsProvider {
    let mut config = AwsConfig::new("prod", &[R]);
    config.endpoint_url = Some(moto.url());
    config.static_credentials = Some(("testing".into(), "testing".into()));
    config.apps = apps.iter().map(|a| a.to_string()).collect();
    tune(&mut config);
    AwsProvider::new("aws", config).unwrap()
}

fn spread(n: usize) -> Vec<(&'static str, usize)> {
    vec![("us-east-1a", n), ("us-east-1b", n), ("us-east-1c", n)]
}

fn ids(p: &dyn Provider) -> BTreeSet<String> {
    p.instances()
        .unwrap()
        .into_iter()
        .map(|i| i.id.to_string())
        .collect()
}

fn find(p: &dyn Provider, id: &str) -> Instance {
    p.instances()
        .unwrap()
        .into_iter()
        .find(|i| i.id == id)
        .unwrap_or_else(|| panic!("{id} is listed"))
}

#[test]
#[ignore = "needs python3 with moto[server] (the AWS API emulator): scripts/test.sh installs it (then pass --include-ignored)"]
fn names_tags_and_zones_make_the_instances() {
    let _ = NEEDS;
    let moto = Moto::start();
    let web = moto.group(R, "web-prod-east-v012", &spread(1), &[("team", "core")]);
    let web_next = moto.group(R, "web-prod-east-v013", &spread(1), &[]);
    let api = moto.group(
        R,
        "eks-workers-8f3a",
        &spread(1),
        &[("simian:app", "api"), ("simian:stack", "blue")],
    );
    let other = moto.group(R, "billing-prod", &spread(1), &[]);
    let p = provider(&moto, &["web", "api"], |_| {});
    let all = p.instances().unwrap();
    assert_eq!(all.len(), 9, "{all:#?}");
    assert!(
        !all.iter().any(|i| i.id == other[0].id),
        "not a configured app"
    );

    let w = find(&p, &web[1].id);
    assert_eq!(
        (
            w.app.as_str(),
            w.stack.as_str(),
            w.detail.as_str(),
            w.cluster.as_str()
        ),
        ("web", "prod", "east", "web-prod-east")
    );
    assert_eq!((w.account.as_str(), w.region.as_str()), ("prod", R));
    assert_eq!(w.zone, web[1].zone.as_str());
    assert_eq!(w.labels.get("team").map(|v| v.as_str()), Some("core"));
    assert_eq!(
        w.labels.get("asg").map(|v| v.as_str()),
        Some("web-prod-east-v012")
    );
    let zones: BTreeSet<&str> = web.iter().map(|m| m.zone.as_str()).collect();
    assert_eq!(zones.len(), 3, "a real spread: {web:?}");
    assert_eq!(
        find(&p, &web_next[0].id).cluster,
        "web-prod-east",
        "every push of a cluster is one group"
    );

    let a = find(&p, &api[0].id);
    assert_eq!(
        (a.app.as_str(), a.stack.as_str(), a.cluster.as_str()),
        ("api", "blue", "api-blue")
    );
    assert!(
        a.labels.get("simian:app").is_none(),
        "the opt-in tags are fields, not labels"
    );
}

#[test]
#[ignore = "needs python3 with moto[server] (the AWS API emulator): scripts/test.sh installs it (then pass --include-ignored)"]
fn only_in_service_and_healthy_instances_are_eligible() {
    let moto = Moto::start();
    let g = moto.group(R, "web-prod", &spread(2), &[]);
    moto.health(R, &g[0].id, "Unhealthy");
    moto.standby(R, "web-prod", &g[1].id);
    let p = provider(&moto, &["web"], |_| {});
    let listed = ids(&p);
    assert_eq!(listed.len(), 4, "{listed:?}");
    assert!(!listed.contains(&g[0].id) && !listed.contains(&g[1].id));
}

#[test]
#[ignore = "needs python3 with moto[server] (the AWS API emulator): scripts/test.sh installs it (then pass --include-ignored)"]
fn a_suspended_terminate_process_and_a_single_instance_are_refused_with_the_reason() {
    let moto = Moto::start();
    let g = moto.group(R, "web-prod", &spread(1), &[]);
    let p = provider(&moto, &["web"], |_| {});
    let victim = find(&p, &g[0].id);
    moto.suspend(R, "web-prod", &["Terminate"]);
    assert!(
        ids(&p).is_empty(),
        "a group that cannot replace is not eligible"
    );
    match p.terminate(&victim, 1) {
        Err(ProviderError::Refused { reason, .. }) => {
            assert!(reason.contains("Terminate process"), "{reason}")
        }
        other => panic!("{other:?}"),
    }

    let single = moto.group(R, "api-prod", &[("us-east-1a", 1)], &[]);
    let p = provider(&moto, &["api"], |_| {});
    assert!(ids(&p).is_empty(), "the only instance is not eligible");
    let allowed = provider(&moto, &["api"], |c| {
        c.single_instance_apps = ["api".to_string()].into()
    });
    let victim = find(&allowed, &single[0].id);
    match p.terminate(&victim, 1) {
        Err(ProviderError::Refused { reason, .. }) => {
            assert!(reason.contains("allow_single_replica"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(moto.members(R, "api-prod").unwrap()[0].id, single[0].id);
    assert!(matches!(
        allowed.terminate(&victim, 1).unwrap(),
        KillOutcome::Killed { .. }
    ));
}

#[test]
#[ignore = "needs python3 with moto[server] (the AWS API emulator): scripts/test.sh installs it (then pass --include-ignored)"]
fn the_group_replaces_the_killed_instance_at_the_same_capacity() {
    let moto = Moto::start();
    let g = moto.group(R, "web-prod", &spread(1), &[]);
    let p = provider(&moto, &["web"], |_| {});
    let victim = find(&p, &g[2].id);
    match p.terminate(&victim, 1).unwrap() {
        KillOutcome::Killed { detail } => {
            assert!(detail.contains("web-prod"), "{detail}");
            assert!(detail.contains("replaces"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    let now = moto.members(R, "web-prod").unwrap();
    assert_eq!(now.len(), 3, "replaced, not scaled in: {now:?}");
    assert!(!now.iter().any(|m| m.id == g[2].id), "the victim left");
    assert!(
        now.iter().any(|m| m.id == g[0].id) && now.iter().any(|m| m.id == g[1].id),
        "nothing else was touched"
    );
    assert_eq!(p.terminate(&victim, 1).unwrap(), KillOutcome::AlreadyGone);
}

#[test]
#[ignore = "needs python3 with moto[server] (the AWS API emulator): scripts/test.sh installs it (then pass --include-ignored)"]
fn an_instance_that_left_its_group_is_already_gone_and_untouched() {
    let moto = Moto::start();
    let g = moto.group(R, "web-prod", &spread(1), &[]);
    let p = provider(&moto, &["web"], |_| {});
    let victim = find(&p, &g[0].id);
    moto.detach(R, "web-prod", &g[0].id);
    assert_eq!(p.terminate(&victim, 1).unwrap(), KillOutcome::AlreadyGone);
}

#[test]
#[ignore = "needs python3 with moto[server] (the AWS API emulator): scripts/test.sh installs it (then pass --include-ignored)"]
fn a_listing_costs_one_call_per_page_of_100_groups() {
    let moto = Moto::start();
    moto.many(R, "web-prod", 250, 2, &[]);
    let p = provider(&moto, &["web"], |_| {});
    let before = p.api_calls();
    let all = p.instances().unwrap();
    assert_eq!(all.len(), 500);
    let groups: BTreeSet<&str> = all
        .iter()
        .map(|i| i.labels.get("asg").unwrap().as_str())
        .collect();
    assert_eq!(groups.len(), 250, "every page was read");
    assert_eq!(p.api_calls() - before, 3, "250 groups: 3 pages, 3 calls");
}

#[test]
fn an_unreachable_endpoint_names_the_region_and_the_action() {
    let mut config = AwsConfig::new("prod", &[R]);
    config.endpoint_url = Some("http://127.0.0.1:1".into());
    config.static_credentials = Some(("testing".into(), "testing".into()));
    config.apps = ["web".to_string()].into();
    let p = AwsProvider::new("aws", config).unwrap();
    // Static credentials: the credential chain is never consulted, so nothing (no instance
    // metadata request) leaves the machine.
    let err = p.groups().unwrap_err();
    assert!(err.contains(R), "{err}");
    assert!(err.contains("DescribeAutoScalingGroups"), "{err}");
}

/// A stand-in for an Auto Scaling endpoint that throttles (moto never does): it answers the
/// first `throttled` requests with the API's `Throttling` error, then an empty listing, and
/// counts the requests it saw.
fn throttling_endpoint(
    throttled: usize,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::atomic::Ordering;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let (status, text) = if n < throttled {
                (
                    "400 Bad Request",
                    "<ErrorResponse xmlns=\"https://autoscaling.amazonaws.com/doc/2011-01-01/\"><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>1</RequestId></ErrorResponse>",
                )
            } else {
                (
                    "200 OK",
                    "<DescribeAutoScalingGroupsResponse xmlns=\"http://autoscaling.amazonaws.com/doc/2011-01-01/\"><DescribeAutoScalingGroupsResult><AutoScalingGroups/></DescribeAutoScalingGroupsResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></DescribeAutoScalingGroupsResponse>",
                )
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: text/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                text.len()
            );
        }
    });
    (url, seen)
}

#[test]
fn throttling_is_retried_with_backoff() {
    let (url, seen) = throttling_endpoint(2);
    let mut config = AwsConfig::new("prod", &[R]);
    config.endpoint_url = Some(url);
    config.static_credentials = Some(("testing".into(), "testing".into()));
    let p = AwsProvider::new("aws", config).unwrap();
    assert_eq!(p.groups().unwrap(), Vec::new(), "the third try succeeds");
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 3);
    assert_eq!(p.api_calls(), 1, "one call, retried inside the SDK");

    let (url, seen) = throttling_endpoint(usize::MAX);
    let mut config = AwsConfig::new("prod", &[R]);
    config.endpoint_url = Some(url);
    config.static_credentials = Some(("testing".into(), "testing".into()));
    let err = AwsProvider::new("aws", config)
        .unwrap()
        .groups()
        .unwrap_err();
    assert!(err.contains("Throttling"), "{err}");
    assert_eq!(
        seen.load(std::sync::atomic::Ordering::SeqCst),
        5,
        "five attempts, then the error"
    );
}

#[test]
fn the_iam_policy_in_the_docs_grants_exactly_the_actions_the_provider_calls() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/aws-iam-policy.json"
    );
    let policy: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let granted: BTreeSet<String> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["Action"].as_array().unwrap().iter())
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    let called: BTreeSet<String> = IAM_ACTIONS.iter().map(|a| a.to_string()).collect();
    assert_eq!(granted, called);
    // And the source calls exactly those: every `client.<operation>()` it makes.
    let source =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/aws/mod.rs")).unwrap();
    let mut operations = BTreeSet::new();
    for (at, _) in source.match_indices("client") {
        let before = source[..at].chars().next_back().unwrap_or(' ');
        if before.is_alphanumeric() || before == '_' {
            continue;
        }
        let rest = source[at + "client".len()..].trim_start();
        let Some(rest) = rest.strip_prefix('.') else {
            continue;
        };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        let camel: String = name
            .split('_')
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            })
            .collect();
        operations.insert(format!("autoscaling:{camel}"));
    }
    assert_eq!(operations, called, "the operations src/aws/mod.rs calls");
}
