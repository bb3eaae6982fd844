//! Simian's vocabulary and its seams.
//!
//! Everything else in Simian speaks these types: an [`Instance`] is the unit that can be
//! killed, a [`Group`] is the set one kill is drawn from, a [`Schedule`] holds the day's
//! planned kills and a [`Termination`] records one kill, written *before* the action runs.
//!
//! The traits here are the only doors to the outside world: [`Provider`] (where instances
//! live), [`Store`] (the durable tracker), [`Clock`] (what time it is), [`OutageCheck`] (is it
//! a bad moment) and [`Notifier`] (who hears about it). This crate does no I/O itself, so the
//! decision code built on it can be tested exhaustively and replayed from a seed.
//!
//! ```
//! use simian_core::{Group, Grouping, Instance};
//!
//! let web = Instance::builder("i-1", "web").stack("prod").region("us-east-1").build();
//! assert_eq!(web.cluster, "web-prod");
//! let group = Group::of(&web, Grouping::Cluster, true);
//! assert!(group.contains(&web));
//! ```

pub mod clock;
pub mod drill;
pub mod escape;
pub mod group;
pub mod instance;
pub mod kill_switch;
pub mod lease;
pub mod name;
pub mod notifier;
pub mod outage;
pub mod provider;
pub mod schedule;
pub mod store;
pub mod termination;

pub use clock::{Clock, FixedClock, ScaledClock, SystemClock};
pub use drill::{Drill, DrillEnding, DrillKind, DrillMode, NewDrill};
pub use group::{Group, Grouping};
pub use instance::{ClusterName, Instance, InstanceBuilder, is_never_eligible_cluster};
pub use kill_switch::KillSwitch;
pub use lease::{FaultKind, Guardian, Lease, NewLease, NoGuardian};
pub use name::{Labels, Name};
pub use notifier::{Event, LogNotifier, Notifier};
pub use outage::{NoOutageCheck, OutageCheck, OutageStatus};
pub use provider::{FaultOutcome, KillOutcome, Provider, ProviderError};
pub use schedule::{EntryStatus, NewSchedule, PlannedKill, Schedule, ScheduleEntry};
pub use store::{Claim, ClaimResult, Draws, HistoryFilter, Store, StoreError};
pub use termination::{Check, Origin, Refusal, Termination, TerminationState};
