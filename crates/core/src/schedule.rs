//! The day's planned kills, as stored.
//!
//! The planning itself is pure and lives in `simian-monkey`; these are the records it produces
//! and the [`Store`](crate::Store) keeps. An entry moves from `pending` to exactly one of
//! `fired`, `refused` or `missed`, in the same transaction that records what happened.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::Group;

/// One planned kill before it is stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedKill {
    /// When to fire.
    pub time: Timestamp,
    /// Which group loses an instance.
    pub group: Group,
}

/// A day's schedule before it is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewSchedule {
    /// The local date it covers.
    pub date: Date,
    /// The seed it was drawn from (replays it exactly).
    pub seed: u64,
    /// When it was made.
    pub made_at: Timestamp,
    /// The planned kills, sorted by time.
    pub kills: Vec<PlannedKill>,
}

/// What became of a planned kill.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryStatus {
    /// Not yet due.
    Pending,
    /// Its termination was recorded.
    Fired,
    /// A check refused it (see the refusals).
    Refused,
    /// Its window closed before it could fire.
    Missed,
}

impl EntryStatus {
    /// Stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryStatus::Pending => "pending",
            EntryStatus::Fired => "fired",
            EntryStatus::Refused => "refused",
            EntryStatus::Missed => "missed",
        }
    }
}

impl fmt::Display for EntryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EntryStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "pending" => EntryStatus::Pending,
            "fired" => EntryStatus::Fired,
            "refused" => EntryStatus::Refused,
            "missed" => EntryStatus::Missed,
            other => return Err(format!("unknown schedule entry status {other:?}")),
        })
    }
}

/// One stored planned kill.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleEntry {
    /// Store-assigned id.
    pub id: i64,
    /// The local date of the schedule it belongs to.
    pub date: Date,
    /// When to fire.
    pub time: Timestamp,
    /// Which group.
    pub group: Group,
    /// What became of it.
    pub status: EntryStatus,
}

/// A stored day's schedule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    /// The local date.
    pub date: Date,
    /// The seed it was drawn from.
    pub seed: u64,
    /// When it was made.
    pub made_at: Timestamp,
    /// Its entries, by time.
    pub entries: Vec<ScheduleEntry>,
}
