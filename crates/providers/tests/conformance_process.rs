//! The provider conformance suite on local processes this test spawns.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod conformance;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use conformance::Fixture;
use simian_core::{FaultKind, Instance, Provider};
use simian_providers::{ProcessConfig, ProcessProvider};

/// Processes started by one test, tagged with its run id; killed and reaped at the end.
struct Processes {
    run: String,
    children: Vec<Child>,
    /// Each child's instance id, read when it was started.
    ids: Vec<String>,
}

impl Drop for Processes {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn processes(tag: &str) -> Processes {
    Processes {
        run: format!(
            "{tag}-{}-{}",
            std::process::id(),
            jiff::Timestamp::now().as_nanosecond()
        ),
        children: Vec::new(),
        ids: Vec::new(),
    }
}

fn start_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat[stat.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap()
}

impl Processes {
    fn spawn(&mut self, env: &[(&str, &str)]) -> usize {
        let mut cmd = Command::new("sleep");
        cmd.arg("600")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        let pid = child.id();
        self.ids.push(format!("{pid}@{}", start_ticks(pid)));
        self.children.push(child);
        self.children.len() - 1
    }
}

impl Fixture for Processes {
    fn provider(&self) -> Box<dyn Provider> {
        Box::new(ProcessProvider::new(
            "local",
            ProcessConfig {
                grace_period: Duration::from_secs(2),
                kill_timeout: Duration::from_secs(5),
                selector: BTreeMap::from([("run".to_string(), self.run.clone())]),
            },
        ))
    }

    fn start(&mut self, app: &str, stack: &str, zone: &str, team: &str) -> usize {
        let run = self.run.clone();
        let mut env = vec![
            ("SIMIAN_APP", app),
            ("SIMIAN_ZONE", zone),
            ("SIMIAN_LABEL_TEAM", team),
            ("SIMIAN_LABEL_RUN", run.as_str()),
        ];
        if !stack.is_empty() {
            env.push(("SIMIAN_STACK", stack));
        }
        self.spawn(&env)
    }

    fn start_not_opted_in(&mut self) -> usize {
        let run = self.run.clone();
        self.spawn(&[("SIMIAN_LABEL_RUN", run.as_str())])
    }

    fn start_elsewhere(&mut self, app: &str) -> usize {
        let other = format!("{}-elsewhere", self.run);
        self.spawn(&[("SIMIAN_APP", app), ("SIMIAN_LABEL_RUN", other.as_str())])
    }

    fn id(&self, handle: usize) -> String {
        self.ids[handle].clone()
    }

    fn alive(&mut self, handle: usize) -> bool {
        self.children[handle].try_wait().unwrap().is_none()
    }

    fn stop(&mut self, handle: usize) {
        let _ = self.children[handle].kill();
        let _ = self.children[handle].wait();
    }

    fn remove(&mut self, handle: usize) {
        self.stop(handle);
    }

    fn faulted(&mut self, handle: usize, kind: FaultKind) -> bool {
        assert_eq!(kind, FaultKind::Pause, "processes are only paused");
        let pid = self.children[handle].id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        stat.rfind(')')
            .is_some_and(|at| stat[at + 1..].trim_start().starts_with('T'))
    }

    fn protected(&mut self) -> (Box<dyn Provider>, Instance, Option<usize>) {
        let me = std::process::id();
        let instance = Instance::builder(format!("{me}@{}", start_ticks(me)), "web").build();
        (self.provider(), instance, None)
    }

    fn settle(&self) {
        std::thread::sleep(Duration::from_millis(100));
    }
}

conformance_tests!(processes);
