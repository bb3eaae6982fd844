//! The notifier seam: who hears about kills, refusals, schedules and drills.
//!
//! Notifications never block or fail a kill: by the time one is sent, the record is already
//! durable. The default [`LogNotifier`] writes structured log lines.

use crate::{Drill, KillSwitch, Refusal, Schedule, Termination};

/// Something worth telling.
#[derive(Clone, Copy, Debug)]
pub enum Event<'a> {
    /// A termination was recorded or finished.
    Termination(&'a Termination),
    /// A check refused a kill.
    Refusal(&'a Refusal),
    /// The day's schedule was made (by this process).
    Schedule(&'a Schedule),
    /// A drill started acting (recorded, about to touch its zone or region).
    DrillStarted(&'a Drill),
    /// A drill ended, with how.
    DrillEnded(&'a Drill),
    /// The kill switch was changed at run time (through the API).
    KillSwitch(&'a KillSwitch),
    /// The daemon issued a planned kill: `planned` is its minute, `issued` the clock's time
    /// when the kill-time checks began (metrics measure the delay between the two).
    Fired {
        /// The planned time.
        planned: jiff::Timestamp,
        /// When it was issued.
        issued: jiff::Timestamp,
    },
}

impl Event<'_> {
    /// The event's name, as notifications and configs spell it: `termination`, `refusal`,
    /// `schedule`, `drill_started`, `drill_ended`, `kill_switch`.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Termination(_) => "termination",
            Event::Refusal(_) => "refusal",
            Event::Schedule(_) => "schedule",
            Event::DrillStarted(_) => "drill_started",
            Event::DrillEnded(_) => "drill_ended",
            Event::KillSwitch(_) => "kill_switch",
            Event::Fired { .. } => "fired",
        }
    }
}

/// Receives events.
pub trait Notifier: Send + Sync {
    /// Delivers one event; must not fail the caller.
    fn notify(&self, event: Event<'_>);
}

/// Logs every event with `tracing`.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogNotifier;

impl Notifier for LogNotifier {
    fn notify(&self, event: Event<'_>) {
        match event {
            Event::Termination(t) => tracing::info!(
                id = t.id,
                instance = %t.instance_id,
                app = %t.app,
                account = %t.account,
                region = %t.region,
                cluster = %t.cluster,
                dry_run = t.dry_run,
                state = %t.state,
                detail = %t.detail,
                "termination"
            ),
            Event::Refusal(r) => tracing::info!(
                app = %r.app,
                account = %r.account,
                check = %r.check,
                dry_run = r.dry_run,
                "kill refused: {}",
                r.reason
            ),
            Event::Schedule(s) => tracing::info!(
                date = %s.date,
                seed = s.seed,
                kills = s.entries.len(),
                "schedule made"
            ),
            Event::DrillStarted(d) => {
                tracing::info!(drill = d.id, kind = %d.kind, target = %d.target, mode = %d.mode, "drill started")
            }
            Event::Fired { planned, issued } => {
                tracing::debug!(%planned, %issued, "planned kill issued")
            }
            Event::KillSwitch(k) => tracing::warn!(
                enabled = k.enabled,
                by = %k.changed_by,
                reason = %k.reason,
                "kill switch changed"
            ),
            Event::DrillEnded(d) => tracing::info!(
                drill = d.id,
                ending = d.ending.map_or("", |e| e.as_str()),
                detail = d.detail.as_deref().unwrap_or_default(),
                "drill ended"
            ),
        }
    }
}
