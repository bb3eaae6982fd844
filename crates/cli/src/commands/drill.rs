//! `simian gorilla`, `simian kong` and `simian outages`: zone and region drills.
//!
//! Exit codes: 0 the drill ran its course (or a dry run planned it), 1 it was aborted (the
//! steady state was lost), ended early, or something could not be acted on or undone, 2 bad
//! usage (Kong without `--confirm REGION`, pause or isolate without `--duration`), 3 a guard
//! refused it before anything was touched.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use simian_core::{Drill, DrillEnding, DrillKind, DrillMode, HistoryFilter, Store};
use simian_drills::{DrillRequest, Finished, HttpProbe, Plan, Probe, Refused};

use crate::args::{
    DrillOptions, Global, GorillaArgs, KongArgs, ModeArg, OutagesArgs, OutagesCommand,
};
use crate::output::{dash, local, safe, table};
use crate::wire;

use super::UsageError;

pub fn gorilla(g: &Global, a: GorillaArgs) -> anyhow::Result<u8> {
    run(g, DrillKind::Gorilla, a.zone, a.options)
}

pub fn kong(g: &Global, a: KongArgs) -> anyhow::Result<u8> {
    match a.confirm.as_deref() {
        Some(c) if c == a.region => {}
        Some(c) => {
            return Err(UsageError(format!(
                "--confirm {c:?} does not repeat the region {:?}: a whole region goes dark only when its name is given twice",
                a.region
            ))
            .into());
        }
        None => {
            return Err(UsageError(format!(
                "Chaos Kong takes a whole region down: repeat its name to confirm (simian kong {0} --confirm {0})",
                a.region
            ))
            .into());
        }
    }
    run(g, DrillKind::Kong, a.region, a.options)
}

/// How a drill ended, whoever asked for it (`simian gorilla`, or an experiment's action).
pub(crate) enum Outcome {
    /// A guard refused it (before anything was touched, unless a plan is given).
    Refused(Refused, Option<Plan>),
    /// A dry run: planned and recorded, nothing touched.
    DryRun(Drill, Plan),
    /// It ran its course, or was aborted or stopped.
    Finished(Box<Finished>),
}

/// Checks a drill's options (the same for the command line and an experiment), reads the
/// config, plans the drill and runs it; `on_plan` hears the plan (and whether it is a dry run)
/// before anything is touched, `progress` each step; `stop` ends it early.
pub(crate) fn drill(
    g: &Global,
    kind: DrillKind,
    target: String,
    o: DrillOptions,
    stop: &AtomicBool,
    on_plan: &dyn Fn(&Plan, bool) -> anyhow::Result<()>,
    progress: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<Outcome> {
    let mode = match o.mode {
        ModeArg::Terminate => DrillMode::Terminate,
        ModeArg::Pause => DrillMode::Pause,
        ModeArg::Isolate => DrillMode::Isolate,
    };
    if target.is_empty() || target.contains(',') || target.chars().any(char::is_control) {
        return Err(UsageError(format!("{:?} is not a {} name", target, kind.scope())).into());
    }
    let duration = match (mode, o.duration) {
        (DrillMode::Terminate, d) => d.unwrap_or_default(),
        (_, Some(d)) if !d.is_zero() => d,
        (_, _) => {
            return Err(UsageError(format!(
                "--mode {mode} needs --duration (how long the {} stays dark, e.g. --duration 5m)",
                kind.scope()
            ))
            .into());
        }
    };
    if let Some(pct) = o.abort_below
        && !(0.0..=100.0).contains(&pct)
    {
        return Err(UsageError(format!(
            "--abort-below {pct} is not a percentage between 0 and 100"
        ))
        .into());
    }
    for url in &o.probes {
        if let Some(problem) = simian_config::probe_url_problem(url) {
            return Err(UsageError(format!("--probe {problem}")).into());
        }
    }
    let settings = super::settings(g)?;
    let probe_urls = if o.probes.is_empty() {
        settings.drills.probes.clone()
    } else {
        o.probes
    };
    let abort_below = o.abort_below.unwrap_or(settings.drills.abort_below);
    let store = wire::store(&settings)?;
    let drills = wire::drills(&settings, store)?;
    let request = DrillRequest {
        kind,
        target,
        mode,
        apps: o.apps,
        duration,
        abort_below,
        probes: probe_urls.clone(),
        dry_run: match (o.dry_run, o.no_dry_run) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        },
    };
    let prepared = match drills.prepare(request)? {
        Ok(p) => p,
        Err(r) => return Ok(Outcome::Refused(r, None)),
    };
    on_plan(&prepared.plan, prepared.dry_run)?;
    if prepared.dry_run {
        let drill = drills.record_dry_run(&prepared)?;
        return Ok(Outcome::DryRun(drill, prepared.plan));
    }
    let plan = prepared.plan.clone();
    let probes: Vec<Box<dyn Probe>> = probe_urls
        .iter()
        .map(|u| Box::new(HttpProbe::new(u, settings.drills.probe_timeout)) as Box<dyn Probe>)
        .collect();
    Ok(match drills.execute(prepared, &probes, stop, progress)? {
        Ok(f) => Outcome::Finished(Box::new(f)),
        Err(r) => Outcome::Refused(r, Some(plan)),
    })
}

fn run(g: &Global, kind: DrillKind, target: String, o: DrillOptions) -> anyhow::Result<u8> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    let quiet = g.json;
    let progress = |line: &str| {
        if !quiet {
            eprintln!("{}", safe(line));
        }
    };
    let on_plan = |plan: &Plan, dry_run: bool| {
        if quiet {
            Ok(())
        } else {
            print_plan(plan, dry_run)
        }
    };
    let finished = match drill(g, kind, target, o, &stop, &on_plan, &progress)? {
        Outcome::Refused(r, plan) => return refused(g, &r, plan.as_ref()),
        Outcome::DryRun(drill, plan) => {
            if g.json {
                super::print_json(&serde_json::json!({"drill": drill, "plan": plan}))?;
            } else {
                outln!(
                    "dry run: drill {} recorded with its plan; nothing was touched (--no-dry-run, or dry_run = false in [monkey], to act)",
                    drill.id
                )?;
            }
            return Ok(super::OK);
        }
        Outcome::Finished(f) => f,
    };
    let code = match finished.drill.ending {
        Some(DrillEnding::Completed) => super::OK,
        _ => super::FAILURE,
    };
    if g.json {
        super::print_json(&finished)?;
    } else {
        print_finished(&finished)?;
    }
    Ok(code)
}

fn refused(g: &Global, r: &Refused, plan: Option<&Plan>) -> anyhow::Result<u8> {
    if g.json {
        super::print_json(&serde_json::json!({"decision": "refused", "refusal": r, "plan": plan}))?;
    } else {
        eprintln!("refused by {}: {}", r.check, safe(&r.reason));
    }
    Ok(if r.check == "inventory" || r.check == "config" {
        super::FAILURE
    } else {
        super::REFUSED
    })
}

fn print_plan(plan: &Plan, dry_run: bool) -> anyhow::Result<()> {
    outln!(
        "{}plan: {} {} {} goes dark ({}): {} instances of {} apps",
        if dry_run { "dry run " } else { "" },
        plan.kind,
        plan.kind.scope(),
        safe(&plan.target),
        plan.mode,
        plan.instance_count(),
        plan.apps.len()
    )?;
    for a in &plan.apps {
        let up: Vec<String> = a
            .stays_up
            .iter()
            .map(|(z, n)| format!("{n} in {}", if z.is_empty() { "no zone" } else { z }))
            .collect();
        outln!(
            "  {:<20} {} acted on; stays up: {}{}",
            safe(&a.app),
            a.act_on.len(),
            safe(&up.join(", ")),
            if a.spared > 0 {
                format!("; {} spared by exceptions", a.spared)
            } else {
                String::new()
            }
        )?;
        for t in &a.act_on {
            outln!("      {} ({})", safe(&t.id), safe(&t.cluster))?;
        }
    }
    for l in &plan.left_out {
        outln!("  {:<20} left out: {}", safe(&l.app), safe(&l.reason))?;
    }
    Ok(())
}

fn print_finished(f: &Finished) -> anyhow::Result<()> {
    let d = &f.drill;
    outln!(
        "drill {} {}: {}",
        d.id,
        d.ending.map_or("running", DrillEnding::as_str),
        safe(d.detail.as_deref().unwrap_or_default())
    )?;
    outln!(
        "acted on {} instances in {} ms; undone in {} ms",
        f.acted.len(),
        f.acting_ms,
        f.undo_ms
    )?;
    for a in f
        .acted
        .iter()
        .filter(|a| a.outcome != "made" && a.outcome != "killed")
    {
        outln!("  {} {}: {}", safe(&a.instance), a.outcome, safe(&a.detail))?;
    }
    for p in &f.report {
        outln!("probe {}", safe(&p.probe))?;
        outln!(
            "  {:<7} {:>8} {:>8} {:>12} {:>13} {:>9} {:>9}",
            "phase",
            "requests",
            "failures",
            "availability",
            "longest burst",
            "p50 ms",
            "p99 ms"
        )?;
        for (phase, fig) in [
            ("before", &p.before),
            ("during", &p.during),
            ("after", &p.after),
        ] {
            let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
            outln!(
                "  {:<7} {:>8} {:>8} {:>11.2}% {:>13} {:>9} {:>9}",
                phase,
                fig.requests,
                fig.failures,
                fig.availability,
                fig.longest_failure_burst,
                ms(fig.p50_ms),
                ms(fig.p99_ms)
            )?;
        }
    }
    Ok(())
}

pub fn outages(g: &Global, a: OutagesArgs) -> anyhow::Result<u8> {
    let settings = super::settings(g)?;
    let store = wire::store(&settings)?;
    match a.command {
        Some(OutagesCommand::End { id }) => end(g, &settings, store.as_ref(), id),
        None => list(g, &settings, store.as_ref()),
    }
}

fn end(
    g: &Global,
    settings: &simian_config::Settings,
    store: &dyn Store,
    id: i64,
) -> anyhow::Result<u8> {
    let Some(drill) = store.drill(id)? else {
        return Err(UsageError(format!("no drill {id}: `simian outages` lists them")).into());
    };
    let providers = wire::providers(settings)?;
    let undone = simian_drills::undo_drill(store, &providers, id, simian_drills::PARALLEL)?;
    let ended = drill.is_running()
        && store.end_drill(
            id,
            jiff::Timestamp::now(),
            DrillEnding::Ended,
            &format!(
                "ended early by simian outages end; {} faults undone",
                undone.count
            ),
            None,
        )?;
    let drill = store.drill(id)?.unwrap_or(drill);
    if g.json {
        super::print_json(&serde_json::json!({
            "drill": drill,
            "ended_now": ended,
            "undone": undone.count,
            "not_undone": undone.failures,
        }))?;
    } else {
        let state = if ended {
            "ended now"
        } else {
            "had already ended"
        };
        outln!("drill {id} {state}; {} faults undone", undone.count)?;
        for f in &undone.failures {
            outln!("  not undone yet: {}", safe(f))?;
        }
    }
    Ok(if undone.failures.is_empty() {
        super::OK
    } else {
        super::FAILURE
    })
}

fn list(g: &Global, settings: &simian_config::Settings, store: &dyn Store) -> anyhow::Result<u8> {
    let drills = store.drills(&HistoryFilter::default())?;
    if g.json {
        let mut out = Vec::new();
        for d in &drills {
            out.push(serde_json::json!({
                "drill": d,
                "leases": store.drill_leases(d.id)?,
                "terminations": store.drill_terminations(d.id)?,
            }));
        }
        super::print_json(&out)?;
        return Ok(super::OK);
    }
    if drills.is_empty() {
        outln!("no drills on record")?;
        return Ok(super::OK);
    }
    out!(
        "{}",
        drill_table(store, &drills, settings.policy.calendar.time_zone())?
    )?;
    Ok(super::OK)
}

/// The drills as a table: one row each, with how many instances each touched.
pub fn drill_table(
    store: &dyn Store,
    drills: &[Drill],
    tz: &jiff::tz::TimeZone,
) -> anyhow::Result<String> {
    let mut rows = Vec::new();
    for d in drills {
        let touched = store.drill_leases(d.id)?.len() + store.drill_terminations(d.id)?.len();
        rows.push(vec![
            d.id.to_string(),
            d.kind.to_string(),
            d.target.clone(),
            d.mode.to_string(),
            local(d.started_at, tz),
            state(d).to_string(),
            touched.to_string(),
            dash(d.detail.as_deref().unwrap_or_default()),
        ]);
    }
    Ok(table(
        &[
            "ID", "KIND", "TARGET", "MODE", "STARTED", "STATE", "TOUCHED", "DETAIL",
        ],
        &rows,
    ))
}

/// `running`, or how it ended.
fn state(d: &Drill) -> &'static str {
    d.ending.map_or("running", DrillEnding::as_str)
}
