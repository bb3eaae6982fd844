//! Benchmark of a Chaos Gorilla pause drill: a zone of processes (30, 100, 300) and of Docker
//! containers (20, 60) is paused through the drills runner, held for one second, and resumed.
//! Two figures per run, both from the runner's own clock:
//!
//! * to paused: from the first lease recorded to every instance verified paused (SIGSTOP seen
//!   in `/proc`, or the engine's `Paused` state);
//! * to resumed: from the deadline to every instance verified running again.
//!
//! Each size runs with the runner's parallelism (32 at once) and one by one (width 1), in the
//! same run; for containers, the Docker CLI (`docker pause` then `docker unpause` with every
//! id, which the CLI sends one after the other) is timed on the same containers too. Three
//! rounds each; medians and ranges.
//!
//! Everything acted on was started here, carries a run label unique to this run, and is
//! removed at the end. Without a Docker engine the container part is skipped (said so).
//!
//! ```sh
//! cargo bench -p simian-drills --bench drill
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use jiff::tz::TimeZone;
use simian_core::{DrillKind, DrillMode, Grouping, NoGuardian, NoOutageCheck, Provider};
use simian_drills::{DrillRequest, Drills, Timing};
use simian_monkey::{AppPolicy, Calendar, Policy};
use simian_providers::{DockerConfig, DockerProvider, ProcessConfig, ProcessProvider};
use simian_testkit::docker::{Lab, RUN_LABEL};
use simian_testkit::measure::median_and_range;

const ROUNDS: usize = 3;
const HOLD: Duration = Duration::from_secs(1);

fn policy() -> Policy {
    Policy {
        enabled: true,
        dry_run: false,
        calendar: Calendar::weekdays(TimeZone::UTC),
        max_kills_per_day: 100_000,
        seed: None,
        apps: vec![AppPolicy {
            name: "bench".into(),
            provider: "fleet".into(),
            enabled: true,
            mean_time_between_kills: 1.0,
            min_time_between_kills: 0,
            grouping: Grouping::Cluster,
            regions_independent: true,
            exceptions: Vec::new(),
        }],
    }
}

/// One drill over zone z1; (ms to paused, ms to resumed).
fn drill(provider: Arc<dyn Provider>, width: usize, expected: usize) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let store = simian_store::open("sqlite://bench.db", dir.path()).unwrap();
    let drills = Drills::new(
        store,
        BTreeMap::from([("fleet".to_string(), provider)]),
        Arc::new(policy()),
        Arc::new(NoOutageCheck),
        Arc::new(NoGuardian),
    )
    .with_timing(Timing::default())
    .with_width(width);
    let request = DrillRequest {
        kind: DrillKind::Gorilla,
        target: "z1".into(),
        mode: DrillMode::Pause,
        apps: Vec::new(),
        duration: HOLD,
        abort_below: 0.0,
        probes: Vec::new(),
        dry_run: Some(false),
    };
    let prepared = drills.prepare(request).unwrap().unwrap();
    let finished = drills
        .execute(prepared, &[], &AtomicBool::new(false), &|_| {})
        .unwrap()
        .unwrap();
    let made = finished
        .acted
        .iter()
        .filter(|a| a.outcome == "made")
        .count();
    assert_eq!(
        made, expected,
        "every instance paused: {:?}",
        finished.acted
    );
    assert!(
        finished.acted.iter().all(|a| a
            .undone
            .as_deref()
            .is_some_and(|u| !u.starts_with("nothing"))),
        "every instance resumed"
    );
    (finished.acting_ms as f64, finished.undo_ms as f64)
}

fn report(label: &str, samples: Vec<(f64, f64)>) {
    let (paused, resumed): (Vec<f64>, Vec<f64>) = samples.into_iter().unzip();
    let (pm, plo, phi) = median_and_range(paused);
    let (rm, rlo, rhi) = median_and_range(resumed);
    println!(
        "{label:<38} to paused {pm:>8.1} ms ({plo:.1}-{phi:.1})   to resumed {rm:>8.1} ms ({rlo:.1}-{rhi:.1})"
    );
}

struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn processes(run: &str, n: usize) -> Processes {
    let spawn = |zone: &str| {
        Command::new("sleep")
            .arg("600")
            .env("SIMIAN_APP", "bench")
            .env("SIMIAN_ZONE", zone)
            .env("SIMIAN_LABEL_RUN", run)
            .stdin(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut children: Vec<Child> = (0..n).map(|_| spawn("z1")).collect();
    children.push(spawn("z2"));
    std::thread::sleep(Duration::from_millis(200));
    Processes(children)
}

/// `command ID...`, as docker CLI arguments.
fn with_ids<'a>(command: &'a str, ids: &'a [String]) -> Vec<&'a str> {
    let mut args = vec![command];
    args.extend(ids.iter().map(String::as_str));
    args
}

fn main() {
    println!("Chaos Gorilla pause drill, {ROUNDS} rounds per line, held {HOLD:?}");
    for n in [30usize, 100, 300] {
        let run = format!("bench-drill-{}-{n}", std::process::id());
        let _fleet = processes(&run, n);
        let provider: Arc<dyn Provider> = Arc::new(ProcessProvider::new(
            "fleet",
            ProcessConfig {
                selector: BTreeMap::from([("run".to_string(), run.clone())]),
                ..ProcessConfig::default()
            },
        ));
        for (width, how) in [(simian_drills::PARALLEL, "simian"), (1, "one by one")] {
            let samples = (0..ROUNDS)
                .map(|_| drill(Arc::clone(&provider), width, n))
                .collect();
            report(&format!("{n} processes, {how}"), samples);
        }
    }

    let docker_ok = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !docker_ok || !std::path::Path::new("/bin/busybox").exists() {
        println!("containers: SKIPPED (no Docker engine, or no /bin/busybox from busybox-static)");
        return;
    }
    for n in [20usize, 60] {
        let mut lab = Lab::new("bench-drill");
        let run = lab.run.clone();
        let mut ids = Vec::new();
        for _ in 0..n {
            ids.push(lab.start(&[("simian.app", "bench"), ("simian.zone", "z1")]));
        }
        lab.start(&[("simian.app", "bench"), ("simian.zone", "z2")]);
        let provider: Arc<dyn Provider> = Arc::new(
            DockerProvider::new(
                "fleet",
                DockerConfig {
                    selector: BTreeMap::from([(RUN_LABEL.to_string(), run)]),
                    ..DockerConfig::default()
                },
            )
            .unwrap(),
        );
        for (width, how) in [(simian_drills::PARALLEL, "simian"), (1, "one by one")] {
            let samples = (0..ROUNDS)
                .map(|_| drill(Arc::clone(&provider), width, n))
                .collect();
            report(&format!("{n} containers, {how}"), samples);
        }
        let cli = (0..ROUNDS)
            .map(|_| {
                let t = Instant::now();
                simian_testkit::docker::docker(&with_ids("pause", &ids));
                let paused = t.elapsed().as_secs_f64() * 1000.0;
                std::thread::sleep(HOLD);
                let t = Instant::now();
                simian_testkit::docker::docker(&with_ids("unpause", &ids));
                (paused, t.elapsed().as_secs_f64() * 1000.0)
            })
            .collect();
        report(&format!("{n} containers, docker pause/unpause CLI"), cli);
    }
}
