//! Chaos Gorilla and Chaos Kong: a whole zone or region goes dark, and comes back.
//!
//! Netflix's Chaos Gorilla took down an Availability Zone and Chaos Kong a region, to prove
//! that traffic moves to what is left. Here both are guarded drills over every provider:
//!
//! * [`plan`] (pure): which instances of which apps are acted on, what stays up, and which apps
//!   are left out because they would lose everything;
//! * [`probe`]: the steady state, checked before, during and after, with the abort rule;
//! * [`run`]: the fixed order of checks, records and actions, and the undo that always follows.
//!
//! Every fault a drill makes is a lease in the store, recorded before it is made and watched by
//! a guardian process of its own ([`guard_drill`] is its loop), so that it is undone at the
//! deadline even if the simian that made it is killed with SIGKILL.

pub mod owner;
pub mod plan;
pub mod probe;
pub mod run;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use simian_core::{Provider, Store};

pub use plan::{AppInventory, AppPlan, LeftOut, Plan, supported_modes};
pub use probe::{HttpProbe, Probe, ProbeReport};
pub use run::{
    ABANDONED_AFTER, Acted, DrillError, DrillRequest, Drills, Finished, PARALLEL, Prepared,
    Refused, Timing, end_if_abandoned, reconcile_drills, undo_drill,
};

/// How long after the deadline a drill's guardian waits for the drill's own simian, while
/// that one lives, to undo its faults itself.
pub const GUARDIAN_SLACK: jiff::SignedDuration = jiff::SignedDuration::from_secs(3);

/// What one look at a drill decided.
#[derive(Debug, PartialEq, Eq)]
pub enum GuardStep {
    /// Nothing left to watch: stop.
    Done,
    /// Not due yet: look again after this long.
    Wait(Duration),
}

/// One step of a drill's guardian: before the deadline, wait (at most a second, to notice a
/// drill ended by someone else); at the deadline, undo every open fault of the drill, end
/// the drill as `interrupted` if its simian died, then stop. (The drill's own simian, while it
/// lives, ends the drill itself, with its report.)
pub fn guard_drill(
    store: &dyn Store,
    providers: &BTreeMap<String, Arc<dyn Provider>>,
    id: i64,
) -> Result<GuardStep, String> {
    let drill = store
        .drill(id)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no drill {id} in the store"))?;
    let open = store
        .drill_leases(id)
        .map_err(|e| e.to_string())?
        .iter()
        .filter(|l| l.ended_at.is_none())
        .count();
    let now = Timestamp::now();
    if open == 0 && (!drill.is_running() || now >= drill.deadline) {
        return Ok(GuardStep::Done);
    }
    // While the drill's own simian lives, it undoes at the deadline: the guardian is its
    // backup, and steps in only after a little slack.
    let due = if owner::is_gone(&drill.owner) {
        drill.deadline
    } else {
        drill
            .deadline
            .checked_add(GUARDIAN_SLACK)
            .unwrap_or(drill.deadline)
    };
    if drill.is_running() && now < due {
        let left = Duration::try_from(due.duration_since(now)).unwrap_or_default();
        return Ok(GuardStep::Wait(left.min(Duration::from_secs(1))));
    }
    let undone = undo_drill(store, providers, id, PARALLEL).map_err(|e| e.to_string())?;
    if !undone.failures.is_empty() {
        return Err(format!(
            "drill {id}: {} faults not undone yet: {}",
            undone.failures.len(),
            undone.failures.join("; ")
        ));
    }
    if undone.count > 0 {
        tracing::info!(
            drill = id,
            undone = undone.count,
            "a drill's faults undone at its deadline"
        );
    }
    Ok(GuardStep::Done)
}
