//! The durable tracker seam.
//!
//! A store keeps schedules, terminations and refusals. Its one subtle duty is
//! [`Store::claim`]: the minimum-time and daily-cap checks and the insertion of the
//! termination row happen in one atomic step, so two monkeys sharing a database can never
//! both kill in the same group, and a kill is always on record before it happens.

use jiff::Timestamp;
use jiff::civil::Date;

use crate::{
    Group, Instance, NewSchedule, Origin, Refusal, Schedule, ScheduleEntry, Termination,
    TerminationState,
};

/// A failure of the store itself (not a refusal).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or reached.
    #[error("cannot open store {url}: {message}")]
    Open {
        /// The configured URL, without password.
        url: String,
        /// What the driver said.
        message: String,
    },
    /// A query failed.
    #[error("store query failed while {action}: {message}")]
    Query {
        /// What we were doing.
        action: &'static str,
        /// What the driver said.
        message: String,
    },
    /// Stored data could not be read back.
    #[error("store holds a value it cannot read ({what}): {value:?}")]
    Corrupt {
        /// Which column.
        what: &'static str,
        /// The value.
        value: String,
    },
}

/// Everything the atomic test-and-set needs to decide and record one kill.
#[derive(Clone, Debug)]
pub struct Claim {
    /// The drawn instance.
    pub instance: Instance,
    /// The group it was drawn from (the min-time scope).
    pub group: Group,
    /// Configured provider name.
    pub provider: String,
    /// Dry run or real.
    pub dry_run: bool,
    /// Who asks.
    pub origin: Origin,
    /// The schedule entry this claim answers; it must still be pending.
    pub schedule_entry: Option<i64>,
    /// Now.
    pub at: Timestamp,
    /// Start of today's local day (for `max_kills_per_day`).
    pub day_start: Timestamp,
    /// Start of tomorrow's local day.
    pub day_end: Timestamp,
    /// The daily cap over all groups.
    pub max_kills_per_day: u32,
    /// A kill in the group at or after this instant blocks this one.
    pub min_time_threshold: Timestamp,
}

/// What the atomic claim decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClaimResult {
    /// The termination is recorded; go ahead with the action.
    Recorded(Termination),
    /// A check refused; the refusal is recorded.
    Refused(Refusal),
    /// The schedule entry was already handled (by another replica, or before a restart).
    AlreadyHandled,
}

/// Filters for reading history.
#[derive(Clone, Debug, Default)]
pub struct HistoryFilter {
    /// Only records at or after this instant.
    pub since: Option<Timestamp>,
    /// Only this app.
    pub app: Option<String>,
    /// At most this many, newest last.
    pub limit: Option<usize>,
}

/// The durable tracker.
pub trait Store: Send + Sync {
    /// Stores `schedule` unless one exists for its date; returns the stored one either way.
    fn save_schedule(&self, schedule: &NewSchedule) -> Result<Schedule, StoreError>;

    /// The stored schedule for `date`, if any.
    fn schedule(&self, date: Date) -> Result<Option<Schedule>, StoreError>;

    /// Pending entries due at or before `until`, oldest first.
    fn due_entries(&self, until: Timestamp) -> Result<Vec<ScheduleEntry>, StoreError>;

    /// The earliest time of a pending entry.
    fn next_pending(&self) -> Result<Option<Timestamp>, StoreError>;

    /// The atomic test-and-set: checks the daily cap, then the minimum time between kills,
    /// then records the termination (state `recorded`) and marks the schedule entry fired.
    fn claim(&self, claim: &Claim) -> Result<ClaimResult, StoreError>;

    /// Records the outcome of a recorded termination.
    fn finish(
        &self,
        termination: i64,
        state: TerminationState,
        detail: &str,
        at: Timestamp,
    ) -> Result<(), StoreError>;

    /// Terminations recorded whose outcome was never recorded (a crash in between).
    fn unfinished(&self) -> Result<Vec<Termination>, StoreError>;

    /// Records a refusal; marks its schedule entry `refused` (or `missed`) in the same step.
    /// Returns false, recording nothing, when that entry was already handled.
    fn refuse(&self, refusal: &Refusal) -> Result<bool, StoreError>;

    /// Terminations, oldest first.
    fn terminations(&self, filter: &HistoryFilter) -> Result<Vec<Termination>, StoreError>;

    /// Refusals, oldest first.
    fn refusals(&self, filter: &HistoryFilter) -> Result<Vec<Refusal>, StoreError>;
}
