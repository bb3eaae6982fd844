//! `simian run`, `simian validate` and `simian report`: Chaos Toolkit experiments.
//!
//! Exit codes, for CI/CD gates: 0 the hypothesis held, 1 it deviated, or the run failed, was
//! aborted or was stopped (a stop condition or a signal), 2 the file is invalid (the
//! reference runner says 1 there; Simian keeps 2 for every bad input).

use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};
use simian_experiments::{
    Dry, Faults, HowMany, HypothesisStrategy, Interrupt, Kills, Observer, Options,
    RollbackStrategy, Stopped, Vars, load, report, run as runner, validate as check,
};

use crate::args::{Global, ReportArgs, RunArgs, ValidateArgs};
use crate::output::safe;

use super::UsageError;

pub fn run(g: &Global, a: RunArgs) -> anyhow::Result<u8> {
    if !(a.hypothesis_frequency.is_finite() && a.hypothesis_frequency > 0.0) {
        return Err(UsageError(format!(
            "--hypothesis-frequency {} is not a number of seconds above 0",
            a.hypothesis_frequency
        ))
        .into());
    }
    let mut vars = Vars::default();
    for f in &a.var_files {
        vars.add_file(f)
            .map_err(|e| UsageError(format!("--var-file {e}")))?;
    }
    for v in &a.vars {
        vars.add_var(v).map_err(UsageError)?;
    }
    let experiment = loaded(&a.experiment, &vars)?;
    // Simian's own actions: kills through the engine, faults leased in the store with a
    // guardian before they are made.
    let (faults, kills) = if simian_experiments::needs_simian(&experiment) {
        let settings = super::settings(g).map_err(|e| {
            UsageError(format!(
                "{}: this experiment uses Simian's own actions (kills, toxics), which need its configuration and store: {e}",
                a.experiment.display()
            ))
        })?;
        let store = crate::wire::store(&settings)?;
        let guardian = Arc::new(crate::guardian::ProcessGuardian::new(&settings.path));
        let engine = crate::wire::engine(&settings, Arc::new(simian_core::SystemClock))?;
        let kills: Arc<dyn Kills> = Arc::new(EngineKills {
            global: g.clone(),
            settings,
            engine,
            store: store.clone(),
        });
        (Some(Arc::new(Faults::new(store, guardian))), Some(kills))
    } else {
        (None, None)
    };
    let options = Options {
        dry: a.dry.as_deref().and_then(Dry::parse),
        rollback_strategy: a
            .rollback_strategy
            .as_deref()
            .and_then(RollbackStrategy::parse),
        hypothesis_strategy: a
            .hypothesis_strategy
            .as_deref()
            .and_then(HypothesisStrategy::parse),
        hypothesis_frequency: std::time::Duration::from_secs_f64(
            a.hypothesis_frequency.min(86_400.0),
        ),
        fail_fast: a.fail_fast,
        vars,
        faults,
        kills,
    };
    let interrupt = Arc::new(Interrupt::new());
    let hard_stop = Arc::new(Interrupt::new());
    watch_signals(interrupt.clone(), hard_stop.clone())?;
    eprintln!("running experiment {}", a.experiment.display());
    let journal = runner::run(
        experiment,
        &options,
        interrupt,
        hard_stop,
        Arc::new(Progress),
    )
    .map_err(|e| UsageError(format!("{}: {e}", a.experiment.display())))?;
    let text = serde_json::to_string_pretty(&journal)?;
    std::fs::write(&a.journal_path, text + "\n").map_err(|e| {
        anyhow::anyhow!(
            "cannot write the journal to {}: {e}",
            a.journal_path.display()
        )
    })?;
    if let Some(path) = &a.report {
        write_report(&journal, path)?;
    }
    let code = runner::exit_code(&journal);
    if g.json {
        super::print_json(&json!({
            "title": journal.pointer("/experiment/title"),
            "status": journal["status"],
            "deviated": journal["deviated"],
            "stopped": journal.pointer("/simian/stopped"),
            "duration": journal["duration"],
            "exit_code": code,
            "journal": a.journal_path,
            "report": a.report,
        }))?;
    } else {
        let status = journal["status"].as_str().unwrap_or_default();
        let deviated = journal["deviated"].as_bool().unwrap_or(false);
        outln!(
            "experiment ended with status: {}",
            if deviated { "deviated" } else { status }
        )?;
        if let Some(s) = journal.pointer("/simian/stopped").filter(|s| !s.is_null()) {
            outln!(
                "stopped by {} {} at {}: {}",
                safe(s["by"].as_str().unwrap_or_default()).replace('_', " "),
                safe(s["name"].as_str().unwrap_or_default()),
                safe(s["at"].as_str().unwrap_or_default()),
                safe(s["reason"].as_str().unwrap_or_default())
            )?;
        }
        outln!("journal: {}", a.journal_path.display())?;
        if let Some(path) = &a.report {
            outln!("report: {}", path.display())?;
        }
    }
    Ok(code)
}

pub fn validate(g: &Global, a: ValidateArgs) -> anyhow::Result<u8> {
    let mut vars = Vars::default();
    for f in &a.var_files {
        vars.add_file(f)
            .map_err(|e| UsageError(format!("--var-file {e}")))?;
    }
    loaded(&a.experiment, &vars)?;
    if g.json {
        super::print_json(&json!({"valid": true, "experiment": a.experiment}))?;
    } else {
        outln!(
            "{}: experiment syntax and semantic look valid",
            a.experiment.display()
        )?;
    }
    Ok(super::OK)
}

pub fn report(g: &Global, a: ReportArgs) -> anyhow::Result<u8> {
    let journal = load::document(&a.journal).map_err(|e| UsageError(e.to_string()))?;
    let looks_like_journal =
        journal.get("experiment").is_some_and(Value::is_object) && journal.get("status").is_some();
    if !looks_like_journal {
        return Err(UsageError(format!(
            "{}: not a journal (it has no experiment and status): give the file `simian run --journal-path` (or `chaos run`) wrote",
            a.journal.display()
        ))
        .into());
    }
    write_report(&journal, &a.out)?;
    if g.json {
        super::print_json(&json!({"report": a.out}))?;
    } else {
        outln!("report: {}", a.out.display())?;
    }
    Ok(super::OK)
}

/// The experiment in `path`, loaded and validated: exit 2 with the problem otherwise.
fn loaded(path: &Path, vars: &Vars) -> anyhow::Result<serde_json::Map<String, Value>> {
    let experiment = load::experiment(path).map_err(|e| UsageError(e.to_string()))?;
    check::experiment(&experiment, vars)
        .map_err(|e| UsageError(format!("{}: invalid experiment: {e}", path.display())))?;
    Ok(experiment)
}

fn write_report(journal: &Value, path: &Path) -> anyhow::Result<()> {
    std::fs::write(path, report::html(journal))
        .map_err(|e| anyhow::anyhow!("cannot write the report to {}: {e}", path.display()))
}

/// The first SIGINT or SIGTERM stops the method (rollbacks still run); a second one stops
/// the rollbacks too.
fn watch_signals(interrupt: Arc<Interrupt>, hard_stop: Arc<Interrupt>) -> anyhow::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::spawn(move || {
        for signal in signals.forever() {
            let name = if signal == SIGINT {
                "SIGINT"
            } else {
                "SIGTERM"
            };
            let why = Stopped {
                by: "signal".into(),
                name: name.into(),
                reason: format!("{name} received"),
                at: jiff::Timestamp::now(),
            };
            if interrupt.trip(why.clone()) {
                eprintln!(
                    "{name}: stopping the method; rollbacks run next (again to stop them too)"
                );
            } else if hard_stop.trip(why) {
                eprintln!("{name}: stopping the rollbacks too");
            }
        }
    });
    Ok(())
}

/// Prints each activity as it ends, on stderr.
struct Progress;

impl Observer for Progress {
    fn phase(&self, what: &str) {
        eprintln!("== {what}");
    }

    fn activity(&self, run: &Value) {
        let name = run
            .pointer("/activity/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let kind = run
            .pointer("/activity/type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let status = run["status"].as_str().unwrap_or_default();
        let duration = run["duration"].as_f64().unwrap_or(0.0);
        let tolerance = match run["tolerance_met"].as_bool() {
            Some(false) => ", NOT within tolerance",
            _ => "",
        };
        eprintln!(
            "{kind} {}: {status}{tolerance} ({duration:.3} s)",
            safe(name)
        );
    }
}

/// `simian terminate` (and a pause), as experiment actions: the same engine, checks and records.
struct EngineKills {
    global: Global,
    settings: simian_config::Settings,
    engine: Arc<simian_monkey::Engine>,
    store: Arc<dyn simian_core::Store>,
}

impl EngineKills {
    /// The target named by an activity's arguments, and its app's policy.
    fn target(
        &self,
        target: &serde_json::Map<String, Value>,
    ) -> Result<(simian_monkey::Target, &simian_monkey::AppPolicy), String> {
        let field = |k: &str| target.get(k).and_then(Value::as_str).map(str::to_string);
        let target = simian_monkey::Target {
            app: field("app").unwrap_or_default(),
            account: field("account"),
            region: field("region"),
            stack: field("stack"),
            cluster: field("cluster"),
        };
        let app = self.settings.policy.app(&target.app).ok_or_else(|| {
            format!(
                "app {:?} is not configured in {}: add an [[apps]] entry for it",
                target.app,
                self.settings.path.display()
            )
        })?;
        Ok((target, app))
    }

    /// The app's provider and the instances of `target` eligible now.
    fn eligible(
        &self,
        target: &simian_monkey::Target,
        app: &simian_monkey::AppPolicy,
    ) -> Result<(Arc<dyn simian_core::Provider>, Vec<simian_core::Instance>), String> {
        let providers = crate::wire::providers(&self.settings).map_err(|e| e.to_string())?;
        let provider = providers
            .get(&app.provider)
            .cloned()
            .ok_or_else(|| format!("app {} names unknown provider {}", app.name, app.provider))?;
        let instances = provider.instances().map_err(|e| e.to_string())?;
        let eligible = simian_monkey::eligibility::eligible(app, target, &instances)
            .into_iter()
            .cloned()
            .collect();
        Ok((provider, eligible))
    }
}

/// How many of `eligible` instances `how_many` means: a percentage is rounded up, so that 10%
/// of 3 instances is one, never none.
fn count_of(how_many: HowMany, eligible: usize) -> usize {
    match how_many {
        HowMany::Count(n) => n as usize,
        HowMany::Percent(p) => {
            let share = (p / 100.0 * eligible as f64).ceil();
            if share >= 1.0 {
                (share as usize).min(eligible)
            } else {
                0
            }
        }
    }
}

impl Kills for EngineKills {
    fn terminate(
        &self,
        target: &serde_json::Map<String, Value>,
        how_many: HowMany,
        dry_run: Option<bool>,
    ) -> Result<Value, String> {
        use simian_monkey::{Decision, KillRequest};
        let (target, app) = self.target(target)?;
        let count = match how_many {
            HowMany::Count(n) => n as usize,
            HowMany::Percent(_) => count_of(how_many, self.eligible(&target, app)?.1.len()),
        };
        let mut terminations = Vec::new();
        let mut refusals = Vec::new();
        for _ in 0..count {
            let mut request = KillRequest::manual(target.clone());
            request.dry_run = dry_run;
            match self.engine.terminate(&request).map_err(|e| e.to_string())? {
                Decision::Terminated(t) => terminations.push(t),
                Decision::Refused(r) => refusals.push(r),
                Decision::AlreadyHandled => {}
            }
        }
        let killed = terminations
            .iter()
            .filter(|t| t.state != simian_core::TerminationState::Failed)
            .count();
        if killed == 0 {
            let why: Vec<String> = refusals
                .iter()
                .map(|r| format!("{}: {}", r.check, r.reason))
                .chain(terminations.iter().map(|t| format!("failed: {}", t.detail)))
                .collect();
            return Err(if why.is_empty() {
                format!("no eligible instance of {} to terminate", target.app)
            } else {
                format!("nothing was terminated: {}", why.join("; "))
            });
        }
        Ok(json!({"terminations": terminations, "refusals": refusals}))
    }

    fn pause(
        &self,
        target: &serde_json::Map<String, Value>,
        how_many: HowMany,
        duration: std::time::Duration,
        faults: &Faults,
    ) -> Result<Value, String> {
        use rand::seq::SliceRandom as _;
        let (target, app) = self.target(target)?;
        // The guards that hold every kill hold a pause too.
        if let Some(why) =
            simian_monkey::kill_switch_holds(&self.settings.policy, self.store.as_ref())
                .map_err(|e| e.to_string())?
        {
            return Err(format!("nothing was paused: {why}"));
        }
        if !app.enabled {
            return Err(format!(
                "nothing was paused: app {} is disabled (enabled = false)",
                app.name
            ));
        }
        let (provider, mut eligible) = self.eligible(&target, app)?;
        if !provider.faults().contains(&simian_core::FaultKind::Pause) {
            return Err(format!(
                "provider {} ({}) cannot pause an instance",
                provider.name(),
                provider.kind()
            ));
        }
        eligible.shuffle(&mut rand::rng());
        let n = count_of(how_many, eligible.len()).min(eligible.len());
        if n == 0 {
            return Err(format!("no eligible instance of {} to pause", target.app));
        }
        let mut paused = Vec::new();
        let mut failed = Vec::new();
        for instance in eligible.iter().take(n) {
            match faults.make(
                provider.clone(),
                instance,
                simian_core::FaultKind::Pause,
                None,
                Some(duration),
            ) {
                Ok((lease, detail)) => paused.push(json!({
                    "instance": instance.id.to_string(),
                    "lease": lease.id,
                    "until": lease.deadline,
                    "detail": detail,
                })),
                Err(e) => failed.push(format!("{}: {e}", instance.id)),
            }
        }
        if paused.is_empty() {
            return Err(format!("nothing was paused: {}", failed.join("; ")));
        }
        Ok(json!({"paused": paused, "failed": failed}))
    }

    fn kubernetes(&self) -> Result<Arc<simian_providers::KubernetesProvider>, String> {
        let configured = self
            .settings
            .providers
            .iter()
            .find_map(|(name, p)| match p {
                simian_config::ProviderSettings::Kubernetes(c) => Some((name.clone(), c.clone())),
                _ => None,
            });
        let (name, config) = configured.unwrap_or_else(|| {
            (
                "chaosk8s".to_string(),
                simian_providers::kubernetes::KubernetesConfig::default(),
            )
        });
        simian_providers::KubernetesProvider::new(name, config).map(Arc::new)
    }

    fn drill(
        &self,
        kind: &str,
        args: &serde_json::Map<String, Value>,
        interrupt: &Interrupt,
    ) -> Result<Value, String> {
        use super::drill::Outcome;
        use crate::args::{DrillOptions, ModeArg};
        use std::sync::atomic::{AtomicBool, Ordering};
        let strings = |k: &str| -> Vec<String> {
            args.get(k)
                .and_then(Value::as_array)
                .map(|l| {
                    l.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        let dry_run = args.get("dry_run").and_then(Value::as_bool);
        let options = DrillOptions {
            apps: strings("apps"),
            mode: match args.get("mode").and_then(Value::as_str) {
                Some("pause") => ModeArg::Pause,
                Some("isolate") => ModeArg::Isolate,
                _ => ModeArg::Terminate,
            },
            duration: args
                .get("duration")
                .and_then(Value::as_f64)
                .map(|d| std::time::Duration::from_secs_f64(d.clamp(0.0, 3600.0))),
            probes: strings("probes"),
            abort_below: args.get("abort_below").and_then(Value::as_f64),
            dry_run: dry_run == Some(true),
            no_dry_run: dry_run == Some(false),
        };
        let (kind, target) = if kind == "kong" {
            (simian_core::DrillKind::Kong, args.get("region"))
        } else {
            (simian_core::DrillKind::Gorilla, args.get("zone"))
        };
        let target = target
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        // The run's interrupt (a stop condition, a signal) ends the drill early, undone.
        let stop = AtomicBool::new(false);
        let done = AtomicBool::new(false);
        let outcome = std::thread::scope(|scope| {
            scope.spawn(|| {
                while !done.load(Ordering::SeqCst) {
                    if !interrupt.sleep(std::time::Duration::from_millis(50)) {
                        stop.store(true, Ordering::SeqCst);
                        return;
                    }
                }
            });
            let on_plan = |_: &simian_drills::Plan, _: bool| Ok(());
            let progress = |line: &str| tracing::info!("{line}");
            let outcome = super::drill::drill(
                &self.global,
                kind,
                target,
                options,
                &stop,
                &on_plan,
                &progress,
            );
            done.store(true, Ordering::SeqCst);
            outcome
        })
        .map_err(|e| format!("{e:#}"))?;
        match outcome {
            Outcome::Refused(r, _) => Err(format!("refused by {}: {}", r.check, r.reason)),
            Outcome::DryRun(drill, plan) => Ok(json!({"drill": drill, "plan": plan})),
            Outcome::Finished(f) => {
                let value = serde_json::to_value(&f).map_err(|e| e.to_string())?;
                match f.drill.ending {
                    Some(simian_core::DrillEnding::Completed) => Ok(value),
                    ending => Err(format!(
                        "drill {} {}: {}",
                        f.drill.id,
                        ending.map_or("running", simian_core::DrillEnding::as_str),
                        f.drill.detail.as_deref().unwrap_or_default()
                    )),
                }
            }
        }
    }
}
