//! `simian demo`: a local fleet under fire, with zero setup.
//!
//! It runs the real engine, not a simulation of it: the `process` provider finds the demo's
//! instances through their environment, the monkey's daemon makes each day's schedule and
//! fires it through every kill-time check into a SQLite store in a temporary folder, and the
//! kills are real SIGTERMs. Only the clock is compressed ([`clock::WorkdayClock`]).
//!
//! Around the engine: a [`fleet`] of `simian demo-service` processes with a supervisor that
//! replaces the dead, a [`balancer`] in front (robust, or `--fragile`), a [`load`] generator,
//! and a live [`view`]. Everything it starts carries a label unique to the run, it kills only
//! those, and it stops them all on exit, Ctrl-C or SIGTERM.

pub mod balancer;
pub mod clock;
pub mod containers;
pub mod fleet;
pub mod http;
pub mod load;
pub mod service;
pub mod view;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use anyhow::{Context, bail};
use jiff::civil::date;
use jiff::tz::TimeZone;
use serde::Serialize;
use simian_core::{
    Clock as _, Grouping, HistoryFilter, NoGuardian, NoOutageCheck, Provider, TerminationState,
};
use simian_monkey::{AppPolicy, Calendar, Daemon, Engine, Policy};
use simian_providers::{DockerConfig, DockerProvider, ProcessConfig, ProcessProvider};

use crate::clock::WorkdayClock;
use crate::containers::Containers;
use crate::fleet::{Backend, Fleet};
use crate::load::Load;

/// The demo calendar always starts on this Monday, so a seed replays the same kills.
pub const FIRST_DAY: (i16, i8, i8) = (2026, 3, 2);
/// Requests per second from the load generator.
pub const REQUEST_RATE: u32 = 100;
/// How long the supervisor waits before replacing a dead instance.
pub const REPLACE_AFTER: Duration = Duration::from_secs(1);

/// What to run.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Zones.
    pub zones: u8,
    /// Replicas per zone.
    pub replicas: u8,
    /// Simulated work days.
    pub days: u16,
    /// Seed of the schedule.
    pub seed: u64,
    /// Availability target, percent.
    pub target: f64,
    /// Balancer without retries or health checks.
    pub fragile: bool,
    /// Real seconds per simulated day.
    pub day_seconds: f64,
    /// Print the summary as JSON.
    pub json: bool,
    /// Run the fleet as Docker containers through the docker provider.
    pub docker: bool,
    /// Chaos Gorilla too: zone 2 is paused for one simulated hour at noon of the first day.
    pub gorilla: bool,
}

/// What the Chaos Gorilla drill of `--gorilla` did.
#[derive(Clone, Debug, Serialize)]
pub struct GorillaFigures {
    /// The zone that went dark.
    pub zone: String,
    /// How: `pause`.
    pub mode: String,
    /// Instances paused.
    pub instances: usize,
    /// How long it lasted, in real seconds (one simulated hour).
    pub real_seconds: f64,
    /// From the first pause sent to every instance verified paused.
    pub acting_ms: u128,
    /// From the first resume sent to every instance verified running.
    pub undo_ms: u128,
    /// `completed`, or `aborted` when the steady state was lost.
    pub ending: String,
    /// In words.
    pub detail: String,
    /// The steady-state probe (the balancer) during the drill: availability, percent.
    pub probe_availability: f64,
    /// Its p99 latency during the drill, in milliseconds.
    pub probe_p99_ms: Option<f64>,
}

/// Longest run of failed requests.
#[derive(Clone, Debug, Serialize)]
pub struct Burst {
    /// Failed requests in a row.
    pub requests: u64,
    /// From the first failure sent to the last one answered.
    pub ms: f64,
}

/// What happened.
#[derive(Clone, Debug, Serialize)]
pub struct DemoSummary {
    /// The run's unique label (`SIMIAN_LABEL_RUN`, or the container label `run`).
    pub run_id: String,
    /// Where the fleet ran: `process` or `docker`.
    pub provider: String,
    /// The schedule seed.
    pub seed: u64,
    /// Simulated work days.
    pub days: u16,
    /// Fragile mode.
    pub fragile: bool,
    /// Instances killed.
    pub kills: u64,
    /// Kills by cluster.
    pub kills_per_group: BTreeMap<String, u64>,
    /// Kills the checks refused, with their reasons.
    pub refusals: Vec<String>,
    /// Instances started to replace dead ones.
    pub replacements: u64,
    /// Requests sent.
    pub requests: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Percentage of requests that succeeded.
    pub availability: f64,
    /// Median latency.
    pub p50_ms: f64,
    /// 99th percentile latency.
    pub p99_ms: f64,
    /// Longest error burst.
    pub longest_error_burst: Burst,
    /// The first few errors, in words.
    pub error_examples: Vec<String>,
    /// The target.
    pub target: f64,
    /// Availability met the target.
    pub met_target: bool,
    /// Ctrl-C or SIGTERM cut the run short.
    pub interrupted: bool,
    /// The Chaos Gorilla drill (`--gorilla`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gorilla: Option<GorillaFigures>,
}

/// Runs the demo and prints its summary.
pub fn run(options: DemoOptions) -> anyhow::Result<DemoSummary> {
    let interrupted = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, interrupted.clone())
            .context("installing the signal handlers")?;
    }
    let summary = run_inner(&options, &interrupted)?;
    print(&summary, options.json)?;
    if summary.interrupted {
        bail!("interrupted: every demo process was stopped");
    }
    Ok(summary)
}

fn run_inner(o: &DemoOptions, interrupted: &Arc<AtomicBool>) -> anyhow::Result<DemoSummary> {
    let run_id = format!("demo-{:016x}", rand::random::<u64>());
    let dir = tempfile::Builder::new()
        .prefix("simian-demo-")
        .tempdir()
        .context("creating a temporary folder")?;
    let tz = TimeZone::get("America/Los_Angeles")
        .context("loading the America/Los_Angeles time zone")?;
    let calendar = Calendar::weekdays(tz.clone());
    let (y, m, d) = FIRST_DAY;
    let days = calendar.work_days_from(date(y, m, d), usize::from(o.days));
    let policy = Policy {
        enabled: true,
        dry_run: false,
        calendar: calendar.clone(),
        max_kills_per_day: 100,
        seed: Some(o.seed),
        apps: vec![AppPolicy {
            name: fleet::APP.into(),
            provider: "demo".into(),
            enabled: true,
            // Every zone's cluster loses an instance every simulated day ...
            mean_time_between_kills: 1.0,
            // ... and never two within a work day.
            min_time_between_kills: 1,
            grouping: Grouping::Cluster,
            regions_independent: false,
            exceptions: vec![],
        }],
    };

    let (notes_tx, notes_rx) = mpsc::channel();
    let backend = if o.docker {
        Backend::Containers(Containers::prepare(&run_id)?)
    } else {
        Backend::Processes
    };
    let mut fleet = Fleet::start(
        backend,
        &run_id,
        o.zones,
        o.replicas,
        REPLACE_AFTER,
        notes_tx.clone(),
    )?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // The load stops (and drains) before the balancer, so no request finds it gone.
    let (stop_lb, lb_stopped) = tokio::sync::watch::channel(false);
    let (stop_load, load_stopped) = tokio::sync::watch::channel(false);
    let lb = runtime.block_on(balancer::start(fleet.slots.clone(), !o.fragile, lb_stopped))?;
    let load = Arc::new(Load::default());
    let load_task = runtime.spawn(load::run(lb, REQUEST_RATE, load.clone(), load_stopped));

    // The real engine over the demo's own fleet, selected by this run's unique label.
    let selector = BTreeMap::from([("run".to_string(), run_id.clone())]);
    let provider: Arc<dyn Provider> = if o.docker {
        Arc::new(
            DockerProvider::new(
                "demo",
                DockerConfig {
                    grace_period: Duration::from_secs(2),
                    kill_timeout: Duration::from_secs(10),
                    selector,
                    ..DockerConfig::default()
                },
            )
            .map_err(|e| anyhow::anyhow!(e))?,
        )
    } else {
        Arc::new(ProcessProvider::new(
            "demo",
            ProcessConfig {
                grace_period: Duration::from_secs(2),
                kill_timeout: Duration::from_secs(5),
                selector,
            },
        ))
    };
    let store = simian_store::open("sqlite://simian-demo.db", dir.path())?;
    let clock = Arc::new(WorkdayClock::new(
        &calendar,
        &days,
        Duration::from_secs_f64(o.day_seconds),
    ));
    let kills = Arc::new(AtomicU64::new(0));
    let providers = BTreeMap::from([("demo".to_string(), provider)]);
    let drills = simian_drills::Drills::new(
        store.clone(),
        providers.clone(),
        Arc::new(policy.clone()),
        Arc::new(NoOutageCheck),
        Arc::new(NoGuardian),
    )
    .with_timing(simian_drills::Timing {
        interval: Duration::from_millis(100),
        before_rounds: 3,
        after: Duration::from_secs(1),
        window: Duration::from_secs(1),
    });
    let engine = Arc::new(Engine::new(
        providers,
        store.clone(),
        clock.clone(),
        Arc::new(NoOutageCheck),
        Arc::new(view::NoteNotifier::new(
            notes_tx.clone(),
            tz.clone(),
            kills.clone(),
        )),
        Arc::new(policy),
        o.seed,
    ));
    let monkey_stop = Arc::new(AtomicBool::new(false));
    let monkey = {
        let (engine, stop) = (engine.clone(), monkey_stop.clone());
        std::thread::Builder::new()
            .name("demo-monkey".into())
            .spawn(move || Daemon::new(engine, Duration::from_millis(20)).run(&stop))?
    };

    let view_stop = Arc::new(AtomicBool::new(false));
    let gorilla = std::thread::scope(|scope| {
        let gauges = view::Gauges {
            clock: clock.clone(),
            tz: tz.clone(),
            load: load.clone(),
            kills: kills.clone(),
            replacements: fleet.replacements.clone(),
        };
        let stop = view_stop.clone();
        let view = scope.spawn(move || view::draw(gauges, notes_rx, stop, o.json));
        let gorilla = (o.gorilla && o.zones >= 2).then(|| {
            let (clock, drills, notes, tz) = (clock.clone(), &drills, notes_tx.clone(), tz.clone());
            scope.spawn(move || gorilla_drill(drills, &clock, lb, &notes, &tz, interrupted))
        });
        while clock.position().is_some() && !interrupted.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
        }
        // Let the last replacement come up and the load see it, then stop.
        if !interrupted.load(Ordering::SeqCst) {
            std::thread::sleep(REPLACE_AFTER + Duration::from_millis(300));
        }
        view_stop.store(true, Ordering::SeqCst);
        let _ = view.join();
        gorilla
            .map(|g| {
                g.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("the drill thread panicked")))
            })
            .transpose()
    })?;

    monkey_stop.store(true, Ordering::SeqCst);
    let monkey_result = monkey.join();
    let _ = stop_load.send(true);
    let _ = runtime.block_on(load_task);
    let _ = stop_lb.send(true);
    fleet.stop();
    runtime.shutdown_timeout(Duration::from_secs(1));
    match monkey_result {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(e).context("the monkey failed"),
        Err(_) => bail!("the monkey thread panicked"),
    }

    let history = store.terminations(&HistoryFilter::default())?;
    let mut kills_per_group = BTreeMap::new();
    for t in history
        .iter()
        .filter(|t| t.state == TerminationState::Killed)
    {
        *kills_per_group.entry(t.cluster.clone()).or_insert(0u64) += 1;
    }
    let refusals = store
        .refusals(&HistoryFilter::default())?
        .into_iter()
        .map(|r| {
            format!(
                "{} {}: {}",
                r.at.to_zoned(tz.clone()).strftime("%a %H:%M"),
                r.check,
                r.reason
            )
        })
        .collect();
    let samples = load.samples();
    let requests = samples.len() as u64;
    let errors = samples.iter().filter(|s| !s.ok).count() as u64;
    let availability = if requests == 0 {
        0.0
    } else {
        100.0 * (requests - errors) as f64 / requests as f64
    };
    let (burst, burst_time) = load::longest_error_burst(&samples);
    let clusters: BTreeSet<&String> = kills_per_group.keys().collect();
    tracing::debug!(?clusters, "demo finished");
    Ok(DemoSummary {
        run_id,
        provider: if o.docker { "docker" } else { "process" }.into(),
        seed: o.seed,
        days: o.days,
        fragile: o.fragile,
        kills: kills_per_group.values().sum(),
        kills_per_group,
        refusals,
        replacements: fleet.replacements.load(Ordering::SeqCst),
        requests,
        errors,
        availability,
        p50_ms: load::quantile_ms(&samples, 0.50),
        p99_ms: load::quantile_ms(&samples, 0.99),
        longest_error_burst: Burst {
            requests: burst,
            ms: burst_time.as_secs_f64() * 1000.0,
        },
        error_examples: load.error_examples(),
        target: o.target,
        met_target: requests > 0 && availability >= o.target,
        interrupted: interrupted.load(Ordering::SeqCst),
        gorilla: gorilla.flatten(),
    })
}

/// The zone `--gorilla` takes down.
pub const GORILLA_ZONE: &str = "z2";

/// At noon of the first simulated day, zone 2 goes dark for one simulated hour: a real drill
/// (the drills runner, the store, the process or docker provider's pause), with the balancer
/// as its steady-state probe. `None` when the run ended before noon.
fn gorilla_drill(
    drills: &simian_drills::Drills,
    clock: &WorkdayClock,
    balancer: std::net::SocketAddr,
    notes: &mpsc::Sender<view::Note>,
    tz: &TimeZone,
    interrupted: &AtomicBool,
) -> anyhow::Result<Option<GorillaFigures>> {
    let (y, m, d) = FIRST_DAY;
    let noon = date(y, m, d)
        .at(12, 0, 0, 0)
        .to_zoned(tz.clone())?
        .timestamp();
    while clock.now() < noon {
        if clock.position().is_none() || interrupted.load(Ordering::SeqCst) {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let duration = clock.real_for(Duration::from_secs(3600));
    let request = simian_drills::DrillRequest {
        kind: simian_core::DrillKind::Gorilla,
        target: GORILLA_ZONE.into(),
        mode: simian_core::DrillMode::Pause,
        apps: Vec::new(),
        duration,
        abort_below: 95.0,
        probes: vec![format!("http://{balancer}/")],
        dry_run: Some(false),
    };
    let prepared = match drills.prepare(request)? {
        Ok(p) => p,
        Err(refused) => {
            let _ = notes.send(view::Note::Drill(format!(
                "Chaos Gorilla refused: {}",
                refused.reason
            )));
            return Ok(None);
        }
    };
    let _ = notes.send(view::Note::Drill(format!(
        "Chaos Gorilla: zone {GORILLA_ZONE} goes dark (pause) for one hour"
    )));
    let probe: Box<dyn simian_drills::Probe> = Box::new(simian_drills::HttpProbe::new(
        &format!("http://{balancer}/"),
        Duration::from_secs(3),
    ));
    let finished = match drills.execute(prepared, &[probe], interrupted, &|_| {})? {
        Ok(f) => f,
        Err(refused) => {
            let _ = notes.send(view::Note::Drill(format!(
                "Chaos Gorilla refused: {}",
                refused.reason
            )));
            return Ok(None);
        }
    };
    let ending = finished
        .drill
        .ending
        .map_or("running", simian_core::DrillEnding::as_str)
        .to_string();
    let _ = notes.send(view::Note::Drill(format!(
        "Chaos Gorilla: zone {GORILLA_ZONE} is back ({ending})"
    )));
    let during = finished.report.first().map(|r| r.during.clone());
    Ok(Some(GorillaFigures {
        zone: GORILLA_ZONE.into(),
        mode: "pause".into(),
        instances: finished.acted.len(),
        real_seconds: duration.as_secs_f64(),
        acting_ms: finished.acting_ms,
        undo_ms: finished.undo_ms,
        ending,
        detail: finished.drill.detail.clone().unwrap_or_default(),
        probe_availability: during.as_ref().map_or(100.0, |d| d.availability),
        probe_p99_ms: during.and_then(|d| d.p99_ms),
    }))
}

fn print(s: &DemoSummary, json: bool) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(s)?)?;
        return Ok(());
    }
    let mode = if s.fragile {
        "fragile (no retries, no health checks)"
    } else {
        "robust (health checks, retries)"
    };
    writeln!(out)?;
    writeln!(
        out,
        "simian demo: {} simulated work day(s), seed {}, {}, balancer {mode}",
        s.days,
        s.seed,
        if s.provider == "docker" {
            "a fleet of Docker containers"
        } else {
            "a fleet of local processes"
        }
    )?;
    writeln!(out)?;
    writeln!(out, "  kills           {}", s.kills)?;
    for (cluster, n) in &s.kills_per_group {
        writeln!(out, "    {cluster:<14}{n}")?;
    }
    writeln!(out, "  replacements    {}", s.replacements)?;
    writeln!(out, "  requests        {}", s.requests)?;
    writeln!(out, "  errors          {}", s.errors)?;
    writeln!(
        out,
        "  availability    {:.3}%  (target {}%)",
        s.availability, s.target
    )?;
    writeln!(
        out,
        "  latency         p50 {:.2} ms, p99 {:.2} ms",
        s.p50_ms, s.p99_ms
    )?;
    writeln!(
        out,
        "  longest burst   {} failed request(s) over {:.0} ms",
        s.longest_error_burst.requests, s.longest_error_burst.ms
    )?;
    if let Some(g) = &s.gorilla {
        writeln!(
            out,
            "  chaos gorilla   zone {} paused ({} instances) for one simulated hour ({:.1} s): {}",
            g.zone, g.instances, g.real_seconds, g.ending
        )?;
        writeln!(
            out,
            "                  all paused in {} ms, all resumed in {} ms; the balancer answered {:.2}% of probes during it (p99 {})",
            g.acting_ms,
            g.undo_ms,
            g.probe_availability,
            g.probe_p99_ms.map_or("-".into(), |v| format!("{v:.1} ms"))
        )?;
    }
    writeln!(out)?;
    if s.met_target {
        writeln!(
            out,
            "The fleet lost {} instance(s) and its users did not notice. Try --fragile to see what Chaos Monkey finds.",
            s.kills
        )?;
    } else if s.fragile {
        writeln!(
            out,
            "Without retries and health checks, every kill reached the users. That is what Chaos Monkey is for: finding this before an outage does."
        )?;
    } else {
        writeln!(out, "Availability fell below the target.")?;
    }
    Ok(())
}
