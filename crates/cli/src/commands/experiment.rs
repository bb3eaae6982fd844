//! `simian run`, `simian validate` and `simian report`: Chaos Toolkit experiments.
//!
//! Exit codes, for CI/CD gates: 0 the hypothesis held, 1 it deviated, or the run failed, was
//! aborted or was stopped (a stop condition or a signal), 2 the file is invalid (the
//! reference runner says 1 there; Simian keeps 2 for every bad input).

use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};
use simian_experiments::{
    Dry, Faults, HypothesisStrategy, Interrupt, Observer, Options, RollbackStrategy, Stopped, Vars,
    load, report, run as runner, validate as check,
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
    // Simian's own faults are leased in the store, with a guardian, before they are made.
    let faults = if simian_experiments::uses_faults(&experiment) {
        let settings = super::settings(g).map_err(|e| {
            UsageError(format!(
                "{}: this experiment makes Simian faults (toxics), which are recorded in Simian's store before they are made: {e}",
                a.experiment.display()
            ))
        })?;
        let store = crate::wire::store(&settings)?;
        let guardian = Arc::new(crate::guardian::ProcessGuardian::new(&settings.path));
        Some(Arc::new(Faults::new(store, guardian)))
    } else {
        None
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
