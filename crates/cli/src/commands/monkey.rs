//! `simian monkey`: the scheduler daemon. SIGTERM or Ctrl-C stop it cleanly between steps.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use simian_core::clock::short_number;
use simian_core::{Clock, ScaledClock, SystemClock};
use simian_monkey::Daemon;

use crate::args::{Global, MonkeyArgs};
use crate::wire;

/// The clock the flags ask for: the wall clock, or a simulated one. Out-of-range values are
/// usage errors (exit 2), never a panic.
pub fn clock(a: &MonkeyArgs) -> Result<Arc<dyn Clock>, super::UsageError> {
    let Some(start) = a.clock_start else {
        return Ok(Arc::new(SystemClock));
    };
    let anchor = match a.clock_anchor {
        None => SystemTime::now(),
        Some(secs) => Duration::try_from_secs_f64(secs)
            .ok()
            .and_then(|d| UNIX_EPOCH.checked_add(d))
            .filter(|_| secs <= MAX_ANCHOR)
            .ok_or_else(|| {
                super::UsageError(format!(
                    "--clock-anchor {} is not a Unix time: give seconds since 1970 from 0 to {MAX_ANCHOR} (year 9999)",
                    short_number(secs)
                ))
            })?,
    };
    let clock = ScaledClock::new(start, anchor, a.clock_speed)
        .map_err(|e| super::UsageError(format!("--clock-speed: {e}")))?;
    Ok(Arc::new(clock))
}

/// The last Unix second of year 9999, the end of the time Simian represents.
const MAX_ANCHOR: f64 = 253_402_300_799.0;

pub fn run(g: &Global, a: MonkeyArgs) -> anyhow::Result<u8> {
    let clock = clock(&a)?;
    let settings = super::settings(g)?;
    let engine = wire::engine(&settings, clock.clone())?;
    let shutdown = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, shutdown.clone())
            .context("installing the signal handlers")?;
    }
    let policy = &settings.policy;
    tracing::info!(
        config = %settings.path.display(),
        store = %simian_store::redact(&settings.store_url),
        dry_run = policy.dry_run,
        enabled = policy.enabled,
        apps = policy.apps.len(),
        now = %clock.now(),
        "monkey started"
    );
    let daemon =
        Daemon::new(engine, Duration::from_millis(250)).resume_after(settings.resume_after);
    let stats = daemon.run(&shutdown)?;
    if g.json {
        super::print_json(&serde_json::json!({
            "schedules_made": stats.schedules_made,
            "fired": stats.fired,
            "refused": stats.refused,
            "missed": stats.missed,
            "resumed": stats.resumed,
        }))?;
    }
    Ok(super::OK)
}
