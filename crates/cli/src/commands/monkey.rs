//! `simian monkey`: the scheduler daemon. SIGTERM or Ctrl-C stop it cleanly between steps.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use simian_core::{Clock, ScaledClock, SystemClock};
use simian_monkey::Daemon;

use crate::args::{Global, MonkeyArgs};
use crate::wire;

pub fn run(g: &Global, a: MonkeyArgs) -> anyhow::Result<u8> {
    let settings = super::settings(g)?;
    if !a.clock_speed.is_finite() || a.clock_speed <= 0.0 {
        return Err(super::UsageError(format!(
            "--clock-speed {} must be a positive number",
            a.clock_speed
        ))
        .into());
    }
    let clock: Arc<dyn Clock> = match a.clock_start {
        None => Arc::new(SystemClock),
        Some(start) => {
            let anchor = match a.clock_anchor {
                Some(secs) if secs.is_finite() && secs >= 0.0 => {
                    UNIX_EPOCH + Duration::from_secs_f64(secs)
                }
                Some(secs) => {
                    return Err(super::UsageError(format!(
                        "--clock-anchor {secs} is not a Unix time"
                    ))
                    .into());
                }
                None => SystemTime::now(),
            };
            Arc::new(ScaledClock::new(start, anchor, a.clock_speed))
        }
    };
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
    let daemon = Daemon::new(engine, Duration::from_millis(250));
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
