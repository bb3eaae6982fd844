//! The process provider against real processes that this test spawns, labelled with a run id
//! unique to the test, so nothing else on the machine can be selected or touched.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use simian_core::{Instance, KillOutcome, Provider, ProviderError};
use simian_providers::{ProcessConfig, ProcessProvider};

/// Children that are killed and reaped however the test ends.
struct Fleet(Vec<Child>);

impl Drop for Fleet {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn run_id(tag: &str) -> String {
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        jiff::Timestamp::now().as_nanosecond()
    )
}

fn spawn(script: &str, env: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn a test process")
}

fn provider(run: &str, grace_ms: u64) -> ProcessProvider {
    ProcessProvider::new(
        "local",
        ProcessConfig {
            grace_period: Duration::from_millis(grace_ms),
            kill_timeout: Duration::from_secs(5),
            selector: BTreeMap::from([("run".to_string(), run.to_string())]),
        },
    )
}

fn by_pid<'a>(instances: &'a [Instance], child: &Child) -> &'a Instance {
    let prefix = format!("{}@", child.id());
    instances
        .iter()
        .find(|i| i.id.starts_with(&prefix))
        .expect("the child is listed")
}

fn alive(child: &mut Child) -> bool {
    child.try_wait().unwrap().is_none()
}

#[test]
fn lists_only_labelled_processes_with_their_environment() {
    let run = run_id("list");
    let mut fleet = Fleet(vec![
        spawn(
            "exec sleep 600",
            &[
                ("SIMIAN_APP", "shop"),
                ("SIMIAN_LABEL_RUN", &run),
                ("SIMIAN_STACK", "prod"),
                ("SIMIAN_DETAIL", "east"),
                ("SIMIAN_ZONE", "z1"),
                ("SIMIAN_REGION", "r1"),
                ("SIMIAN_ACCOUNT", "acct"),
            ],
        ),
        spawn(
            "exec sleep 600",
            &[
                ("SIMIAN_APP", "shop"),
                ("SIMIAN_LABEL_RUN", &run),
                ("SIMIAN_CLUSTER", "shop-api-west"),
            ],
        ),
        // Same app, another run: not ours.
        spawn(
            "exec sleep 600",
            &[("SIMIAN_APP", "shop"), ("SIMIAN_LABEL_RUN", "someone-else")],
        ),
        // Labelled but no app: not a candidate.
        spawn("exec sleep 600", &[("SIMIAN_LABEL_RUN", &run)]),
    ]);
    std::thread::sleep(Duration::from_millis(100));
    let instances = provider(&run, 100).instances().unwrap();
    assert_eq!(instances.len(), 2, "{instances:#?}");
    let a = by_pid(&instances, &fleet.0[0]);
    assert_eq!(
        (
            a.app.as_str(),
            a.cluster.as_str(),
            a.zone.as_str(),
            a.region.as_str(),
            a.account.as_str()
        ),
        ("shop", "shop-prod-east", "z1", "r1", "acct")
    );
    let b = by_pid(&instances, &fleet.0[1]);
    assert_eq!(
        (
            b.stack.as_str(),
            b.detail.as_str(),
            b.account.as_str(),
            b.region.as_str()
        ),
        ("api", "west", "local", "local")
    );
    assert!(fleet.0.iter_mut().all(alive));
}

#[test]
fn sigterm_kills_exactly_the_drawn_process() {
    let run = run_id("term");
    let env = [("SIMIAN_APP", "shop"), ("SIMIAN_LABEL_RUN", run.as_str())];
    let mut fleet = Fleet((0..3).map(|_| spawn("exec sleep 600", &env)).collect());
    std::thread::sleep(Duration::from_millis(100));
    let p = provider(&run, 2000);
    let instances = p.instances().unwrap();
    let victim = by_pid(&instances, &fleet.0[1]).clone();

    let outcome = p.terminate(&victim, 1).unwrap();
    assert!(
        matches!(&outcome, KillOutcome::Killed { detail } if detail.starts_with("SIGTERM;")),
        "{outcome:?}"
    );
    let status = fleet.0[1].wait().unwrap();
    assert!(!status.success());
    assert!(
        alive(&mut fleet.0[0]) && alive(&mut fleet.0[2]),
        "nothing else was touched"
    );
    // A second attempt on the same instance is a no-op, never a kill of something else.
    assert_eq!(p.terminate(&victim, 1).unwrap(), KillOutcome::AlreadyGone);
    assert_eq!(p.instances().unwrap().len(), 2);
}

#[test]
fn sigkill_follows_an_ignored_sigterm_after_the_grace_period() {
    let run = run_id("kill");
    let mut fleet = Fleet(vec![spawn(
        "trap '' TERM; exec sleep 600",
        &[("SIMIAN_APP", "stubborn"), ("SIMIAN_LABEL_RUN", &run)],
    )]);
    std::thread::sleep(Duration::from_millis(100));
    let p = provider(&run, 300);
    let victim = p.instances().unwrap().remove(0);
    let started = std::time::Instant::now();
    let outcome = p.terminate(&victim, 1).unwrap();
    assert!(
        matches!(&outcome, KillOutcome::Killed { detail } if detail.contains("SIGKILL")),
        "{outcome:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "waited the grace period"
    );
    let status = fleet.0[0].wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9));
}

#[test]
fn refuses_init_itself_and_processes_that_are_not_candidates() {
    let run = run_id("refuse");
    let p = provider(&run, 100);
    let me = std::process::id();
    let start = std::fs::read_to_string(format!("/proc/{me}/stat")).unwrap();
    let start: u64 = start[start.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap();
    for id in [
        "1@1".to_string(),
        format!("{me}@{start}"),
        "garbage".to_string(),
    ] {
        let i = Instance::builder(id.clone(), "shop").build();
        assert!(
            matches!(p.terminate(&i, 1), Err(ProviderError::Refused { .. })),
            "{id} must be refused"
        );
    }
    // A live process of ours that does not carry SIMIAN_APP=shop is refused, not killed.
    let mut fleet = Fleet(vec![spawn(
        "exec sleep 600",
        &[("SIMIAN_APP", "other"), ("SIMIAN_LABEL_RUN", &run)],
    )]);
    std::thread::sleep(Duration::from_millis(100));
    let mut i = p.instances().unwrap().remove(0);
    i.app = "shop".into();
    assert!(matches!(
        p.terminate(&i, 1),
        Err(ProviderError::Refused { .. })
    ));
    assert!(alive(&mut fleet.0[0]));
}

/// A process whose SIMIAN_* environment holds a control character is never an instance: its
/// text could rewrite the terminal of whoever lists instances.
#[test]
fn processes_with_control_characters_are_skipped() {
    let run = run_id("control");
    let fleet = Fleet(vec![
        spawn(
            "exec sleep 30",
            &[("SIMIAN_APP", "web"), ("SIMIAN_LABEL_RUN", &run)],
        ),
        spawn(
            "exec sleep 30",
            &[("SIMIAN_APP", "web\u{1b}[2J"), ("SIMIAN_LABEL_RUN", &run)],
        ),
        spawn(
            "exec sleep 30",
            &[
                ("SIMIAN_APP", "web"),
                ("SIMIAN_ZONE", "a\u{7}"),
                ("SIMIAN_LABEL_RUN", &run),
            ],
        ),
    ]);
    std::thread::sleep(Duration::from_millis(200));
    let instances = provider(&run, 100).instances().unwrap();
    let ids: Vec<&str> = instances.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(instances.len(), 1, "{ids:?}");
    assert!(
        ids[0].starts_with(&format!("{}@", fleet.0[0].id())),
        "{ids:?}"
    );
}
