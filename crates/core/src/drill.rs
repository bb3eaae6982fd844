//! Drills: a whole zone (Chaos Gorilla) or region (Chaos Kong) goes dark, and comes back.
//!
//! A drill is one record in the store, written before anything is touched, with its plan (what
//! will be acted on, what stays up and what was left out), and one record per instance acted
//! on: a [`Termination`](crate::Termination) in `terminate` mode, a [`Lease`](crate::Lease)
//! in `pause` and `isolate` mode, so that every fault a drill makes is undone at its deadline
//! by whoever is still alive to do it.

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::{FaultKind, Origin};

/// What goes dark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DrillKind {
    /// Chaos Gorilla: one zone.
    Gorilla,
    /// Chaos Kong: one region.
    Kong,
}

impl DrillKind {
    /// What the target names: `zone` or `region`.
    pub fn scope(self) -> &'static str {
        match self {
            DrillKind::Gorilla => "zone",
            DrillKind::Kong => "region",
        }
    }

    /// The origin of the terminations it records.
    pub fn origin(self) -> Origin {
        match self {
            DrillKind::Gorilla => Origin::Gorilla,
            DrillKind::Kong => Origin::Kong,
        }
    }
}

/// What a drill does to each instance of the zone or region.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DrillMode {
    /// Kill each instance through its provider (nothing to undo).
    Terminate,
    /// Freeze each instance for the drill's duration.
    Pause,
    /// Cut each instance off the network for the drill's duration.
    Isolate,
}

impl DrillMode {
    /// The fault this mode leaves behind, to be undone; `None` for `terminate`.
    pub fn fault(self) -> Option<FaultKind> {
        match self {
            DrillMode::Terminate => None,
            DrillMode::Pause => Some(FaultKind::Pause),
            DrillMode::Isolate => Some(FaultKind::Isolate),
        }
    }
}

crate::string_enum!(DrillKind { Gorilla => "gorilla", Kong => "kong" });
crate::string_enum!(DrillMode { Terminate => "terminate", Pause => "pause", Isolate => "isolate" });

/// How a drill ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrillEnding {
    /// A dry run: the plan is recorded, nothing was touched.
    DryRun,
    /// It ran its course and everything it did is undone.
    Completed,
    /// The steady state was lost (probes below the threshold): stopped and undone early.
    Aborted,
    /// Ended early by a person (`simian outages end`, Ctrl-C): everything is undone.
    Ended,
    /// Acting or undoing failed somewhere; the detail says where.
    Failed,
    /// The simian that ran it stopped before the end; its faults were undone without it.
    Interrupted,
}

crate::string_enum!(DrillEnding {
    DryRun => "dry_run",
    Completed => "completed",
    Aborted => "aborted",
    Ended => "ended",
    Failed => "failed",
    Interrupted => "interrupted",
});

/// A drill before it is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewDrill {
    /// Gorilla or Kong.
    pub kind: DrillKind,
    /// The zone or region.
    pub target: String,
    /// What is done to each instance.
    pub mode: DrillMode,
    /// True: the plan is recorded, nothing is touched.
    pub dry_run: bool,
    /// The options as given (JSON).
    pub options: String,
    /// The plan (JSON).
    pub plan: String,
    /// Every zone the drill touches: two drills whose zones meet never run together.
    pub zones: Vec<String>,
    /// When it started.
    pub started_at: Timestamp,
    /// When its faults must be undone (real time).
    pub deadline: Timestamp,
    /// The simian process that runs it (`BOOT_ID/PID@START`), so that another can tell
    /// when it died.
    pub owner: String,
}

/// A drill on record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drill {
    /// Store-assigned id.
    pub id: i64,
    /// Gorilla or Kong.
    pub kind: DrillKind,
    /// The zone or region.
    pub target: String,
    /// What is done to each instance.
    pub mode: DrillMode,
    /// True: the plan is recorded, nothing is touched.
    pub dry_run: bool,
    /// The options as given (JSON).
    pub options: String,
    /// The plan (JSON).
    pub plan: String,
    /// Every zone the drill touches.
    pub zones: Vec<String>,
    /// When it started.
    pub started_at: Timestamp,
    /// When its faults must be undone (real time).
    pub deadline: Timestamp,
    /// When it ended; `None` while it runs.
    pub ended_at: Option<Timestamp>,
    /// How it ended.
    pub ending: Option<DrillEnding>,
    /// Why, in words.
    pub detail: Option<String>,
    /// The steady-state report (JSON), when probes ran.
    pub report: Option<String>,
    /// The simian process that runs it (`BOOT_ID/PID@START`).
    pub owner: String,
}

impl Drill {
    /// True while it has not ended.
    pub fn is_running(&self) -> bool {
        self.ended_at.is_none()
    }

    /// True when it touches one of `zones`.
    pub fn overlaps(&self, zones: &[String]) -> bool {
        self.zones.iter().any(|z| zones.contains(z))
    }
}

impl fmt::Display for Drill {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "drill {} ({} {} {}, {})",
            self.id,
            self.kind,
            self.kind.scope(),
            self.target,
            self.mode
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        for m in [DrillMode::Terminate, DrillMode::Pause, DrillMode::Isolate] {
            assert_eq!(m.as_str().parse::<DrillMode>().unwrap(), m);
        }
        assert_eq!("kong".parse::<DrillKind>().unwrap(), DrillKind::Kong);
        assert!("zone".parse::<DrillKind>().is_err());
        assert_eq!(DrillMode::Isolate.fault(), Some(FaultKind::Isolate));
        assert_eq!(DrillMode::Terminate.fault(), None);
    }
}
