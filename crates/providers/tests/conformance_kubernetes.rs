//! The provider conformance suite on pods served by the Kubernetes API emulator
//! (`simian_testkit::kube`: kmock from PyPI, with pod eviction added), through real kube-rs
//! HTTP calls. Each test starts its own emulator and labels its pods with a run id unique
//! to the test; the provider's selector sees only that run. `scripts/test.sh` installs kmock.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod conformance;

use std::collections::BTreeSet;

use conformance::Fixture;
use simian_core::{FaultKind, Instance, Provider};
use simian_providers::kubernetes::Selector;
use simian_providers::{KubernetesConfig, KubernetesProvider};
use simian_testkit::kube::{Emulator, PodSpec};

const NS: &str = "shop";

/// One test's emulator and the pods it made.
struct Pods {
    emulator: Emulator,
    run: String,
    pods: Vec<(String, String)>,
    zones: BTreeSet<String>,
}

fn pods(tag: &str) -> Pods {
    Pods {
        emulator: Emulator::start(),
        run: format!("{tag}-{}", std::process::id()),
        pods: Vec::new(),
        zones: BTreeSet::new(),
    }
}

impl Pods {
    fn kube_provider(&self) -> KubernetesProvider {
        KubernetesProvider::new(
            "k8s",
            KubernetesConfig {
                kubeconfig: Some(self.emulator.kubeconfig()),
                account: Some("local".into()),
                namespaces: vec![NS.into()],
                selector: Selector::parse(&format!("simian-test.run={}", self.run)).unwrap(),
                single_replica_apps: ["web".to_string(), "api".to_string()].into(),
                ..KubernetesConfig::default()
            },
        )
        .unwrap()
    }

    fn add(&mut self, labels: Vec<(&str, &str)>, zone: &str) -> usize {
        if self.zones.insert(zone.to_string()) {
            self.emulator.node(&format!("node-{zone}"), "local", zone);
        }
        let name = format!("pod-{}", self.pods.len());
        let node = format!("node-{zone}");
        let uid = self.emulator.pod(&PodSpec {
            namespace: NS,
            name: &name,
            labels,
            owner: None,
            node: &node,
            ready: true,
            age_secs: 3600,
        });
        self.pods.push((name, uid));
        self.pods.len() - 1
    }
}

impl Fixture for Pods {
    fn provider(&self) -> Box<dyn Provider> {
        Box::new(self.kube_provider())
    }

    fn start(&mut self, app: &str, stack: &str, zone: &str, team: &str) -> usize {
        let run = self.run.clone();
        let cluster = if stack.is_empty() {
            app.to_string()
        } else {
            format!("{app}-{stack}")
        };
        let mut labels = vec![
            ("simian.io/app", app),
            ("simian.io/cluster", cluster.as_str()),
            ("team", team),
            ("simian-test.run", run.as_str()),
        ];
        if !stack.is_empty() {
            labels.push(("simian.io/stack", stack));
        }
        self.add(labels, zone)
    }

    fn start_not_opted_in(&mut self) -> usize {
        let run = self.run.clone();
        self.add(vec![("simian-test.run", run.as_str())], "z1")
    }

    fn start_elsewhere(&mut self, app: &str) -> usize {
        let other = format!("{}-elsewhere", self.run);
        self.add(
            vec![("simian.io/app", app), ("simian-test.run", other.as_str())],
            "z1",
        )
    }

    fn id(&self, handle: usize) -> String {
        let (name, uid) = &self.pods[handle];
        format!("{NS}/{name}/{uid}")
    }

    fn alive(&mut self, handle: usize) -> bool {
        let (name, uid) = &self.pods[handle];
        self.emulator.get_pod(NS, name).is_some_and(|p| {
            p["metadata"]["uid"] == uid.as_str()
                && p["metadata"]["deletionTimestamp"].is_null()
                && p["status"]["phase"] == "Running"
        })
    }

    fn stop(&mut self, handle: usize) {
        let name = &self.pods[handle].0;
        let (status, answer) = self.emulator.request(
            "PATCH",
            &format!("/api/v1/namespaces/{NS}/pods/{name}"),
            Some(serde_json::json!({"status": {"phase": "Failed"}})),
        );
        assert!(status < 300, "{status} {answer}");
    }

    fn remove(&mut self, handle: usize) {
        let name = self.pods[handle].0.clone();
        self.emulator.delete_pod(NS, &name);
    }

    fn faulted(&mut self, handle: usize, kind: FaultKind) -> bool {
        assert_eq!(kind, FaultKind::Isolate, "pods are only isolated");
        let name = &self.pods[handle].0;
        let Some(lease) = self.emulator.get_pod(NS, name).and_then(|p| {
            p["metadata"]["labels"]["simian.io/isolated"]
                .as_str()
                .map(str::to_string)
        }) else {
            return false;
        };
        let (status, policy) = self.emulator.request(
            "GET",
            &format!(
                "/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies/simian-isolate-{lease}"
            ),
            None,
        );
        status == 200 && policy["spec"]["policyTypes"] == serde_json::json!(["Ingress", "Egress"])
    }

    fn protected(&mut self) -> (Box<dyn Provider>, Instance, Option<usize>) {
        let own = self.start("web", "prod", "z1", "core");
        let provider = self.kube_provider().with_own_pod(NS, &self.pods[own].0);
        let instance = Instance::builder(self.id(own).as_str(), "web").build();
        (Box::new(provider), instance, Some(own))
    }
}

conformance_tests!(
    pods,
    ignore = "needs python3 with kmock (the Kubernetes API emulator): scripts/test.sh installs it (then pass --include-ignored)"
);
