//! Chaos Monkey: scheduled random termination.
//!
//! The decisions are pure functions of data, a clock reading and a seeded random source:
//! [`calendar`] (work days, windows, the min-time floor), [`eligibility`] (exceptions,
//! never-eligible clusters, groups), [`schedule`] (the daily draw). They do no I/O, so they
//! are tested exhaustively and a seed replays a schedule exactly.
//!
//! The [`engine`] runs the kill-time checks in their fixed order over Simian's seams
//! (Provider, Store, Clock, OutageCheck, Notifier), and the [`daemon`] fires each day's
//! schedule through the engine. Data flows one way: inventory, groups, schedule, checks,
//! action, record.
//!
//! ```
//! use jiff::civil::date;
//! use jiff::tz::TimeZone;
//! use simian_monkey::Calendar;
//!
//! let calendar = Calendar::weekdays(TimeZone::get("America/Los_Angeles").unwrap());
//! assert!(calendar.is_work_day(date(2026, 3, 6)));
//! assert!(!calendar.is_work_day(date(2026, 3, 7)));
//! ```

pub mod calendar;
pub mod daemon;
pub mod eligibility;
pub mod engine;
pub mod policy;
pub mod retry;
pub mod schedule;

pub use calendar::{Calendar, CalendarError};
pub use daemon::{Daemon, DaemonStats, RESUME_AFTER, Step};
pub use engine::{Decision, Engine, EngineError, KillRequest, kill_switch_holds, reconcile_leases};
pub use policy::{AppPolicy, Exception, Policy, PolicySource, Target};
pub use schedule::{Fleet, plan};
