//! The provider conformance suite on the real Docker engine. Each test builds its own image
//! with no base, holding only Debian's static busybox (nothing is pulled), starts containers
//! labelled with a run id unique to the test, and removes every container and the image it
//! created when it ends, passed or failed (`simian_testkit::docker`). `scripts/test.sh`
//! installs busybox-static.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod conformance;

use std::collections::BTreeMap;
use std::time::Duration;

use conformance::Fixture;
use simian_core::{FaultKind, Instance, Provider};
use simian_providers::{DockerConfig, DockerProvider};
use simian_testkit::docker::{Lab, RUN_LABEL, docker};

/// One test's lab, with handles for the conformance suite.
struct Containers {
    lab: Lab,
    ids: Vec<String>,
}

fn containers(tag: &str) -> Containers {
    Containers {
        lab: Lab::new(tag),
        ids: Vec::new(),
    }
}

impl Containers {
    fn keep(&mut self, id: String) -> usize {
        self.ids.push(id);
        self.ids.len() - 1
    }

    fn docker_provider(&self) -> DockerProvider {
        DockerProvider::new(
            "containers",
            DockerConfig {
                // busybox as PID 1 ignores SIGTERM: the grace period ends in SIGKILL.
                grace_period: Duration::from_secs(1),
                kill_timeout: Duration::from_secs(10),
                selector: BTreeMap::from([(RUN_LABEL.to_string(), self.lab.run.clone())]),
                ..DockerConfig::default()
            },
        )
        .unwrap()
    }
}

impl Fixture for Containers {
    fn provider(&self) -> Box<dyn Provider> {
        Box::new(self.docker_provider())
    }

    fn start(&mut self, app: &str, stack: &str, zone: &str, team: &str) -> usize {
        let mut labels = vec![("simian.app", app), ("simian.zone", zone), ("team", team)];
        if !stack.is_empty() {
            labels.push(("simian.stack", stack));
        }
        let id = self.lab.start(&labels);
        self.keep(id)
    }

    fn start_not_opted_in(&mut self) -> usize {
        let id = self.lab.start(&[]);
        self.keep(id)
    }

    fn start_elsewhere(&mut self, app: &str) -> usize {
        let other = format!("{}-elsewhere", self.lab.run);
        let id = self.lab.start_with_run(&[("simian.app", app)], &other);
        self.keep(id)
    }

    fn id(&self, handle: usize) -> String {
        self.ids[handle].clone()
    }

    fn alive(&mut self, handle: usize) -> bool {
        self.lab.running(&self.ids[handle])
    }

    fn stop(&mut self, handle: usize) {
        docker(&["stop", "-t", "0", &self.ids[handle]]);
    }

    fn remove(&mut self, handle: usize) {
        docker(&["rm", "-f", &self.ids[handle]]);
    }

    fn faulted(&mut self, handle: usize, kind: FaultKind) -> bool {
        let id = &self.ids[handle];
        match kind {
            FaultKind::Pause => self.lab.paused(id),
            FaultKind::Isolate => {
                docker(&["inspect", "-f", "{{len .NetworkSettings.Networks}}", id]) == "0"
            }
            // Containers take no toxics: the suite never asks for one.
            FaultKind::Toxic => false,
        }
    }

    fn protected(&mut self) -> (Box<dyn Provider>, Instance, Option<usize>) {
        let own = self.start("web", "prod", "z1", "core");
        let provider = self
            .docker_provider()
            .with_own_container(self.ids[own].clone());
        let instance = Instance::builder(self.ids[own].as_str(), "web").build();
        (Box::new(provider), instance, Some(own))
    }
}

conformance_tests!(
    containers,
    ignore = "needs the Docker engine and busybox-static: scripts/test.sh installs it (then pass --include-ignored)"
);

/// A stopped engine (here: a socket path with no engine behind it) is an error that names
/// the socket and says what to do, every time it is asked; nothing panics.
#[test]
fn no_engine_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("docker.sock");
    let p = DockerProvider::new(
        "containers",
        DockerConfig {
            host: Some(format!("unix://{}", socket.display())),
            ..DockerConfig::default()
        },
    )
    .unwrap();
    for _ in 0..2 {
        let e = p.instances().unwrap_err().to_string();
        assert!(
            e.contains(&socket.display().to_string()) && e.contains("start the engine"),
            "{e}"
        );
    }
    // A socket file that nothing listens on: connection refused.
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    drop(_listener);
    let e = p.instances().unwrap_err().to_string();
    assert!(e.contains(&socket.display().to_string()), "{e}");
}

/// Listing costs one request to the engine, however many containers run.
#[test]
#[ignore = "needs the Docker engine and busybox-static: scripts/test.sh installs it (then pass --include-ignored)"]
fn listing_is_one_request() {
    let mut f = containers("one-request");
    for n in 0..6 {
        let zone = format!("z{n}");
        f.lab
            .start(&[("simian.app", "web"), ("simian.zone", &zone)]);
    }
    let p = f.docker_provider();
    assert_eq!(p.instances().unwrap().len(), 6);
    let before = p.api_calls();
    assert_eq!(p.instances().unwrap().len(), 6);
    assert_eq!(p.api_calls() - before, 1);
}
