//! Terminations and refusals: the two kinds of record every kill decision leaves.
//!
//! A [`Termination`] is written *before* the action runs, in state
//! [`TerminationState::Recorded`], and moved to its final state once the provider answers. A
//! termination still `Recorded` after a crash is an action whose outcome is unknown; the daemon
//! resumes it on restart rather than drawing a new kill, so no kill is lost or repeated.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Where a kill decision came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// The daemon, firing a planned kill.
    Schedule,
    /// A person or script, through `simian terminate`.
    Manual,
    /// A Chaos Gorilla drill: a zone goes dark.
    Gorilla,
    /// A Chaos Kong drill: a region goes dark.
    Kong,
}

/// Where a termination stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TerminationState {
    /// Recorded; the action has not been confirmed yet.
    Recorded,
    /// Dry run: recorded, nothing was done.
    DryRun,
    /// The provider killed the instance.
    Killed,
    /// A simulated fleet (a static inventory): recorded as a kill, nothing real was touched.
    Simulated,
    /// The instance was paused under a lease, to be resumed at its deadline.
    Paused,
    /// The instance was already gone when the action ran.
    AlreadyGone,
    /// The action failed; `detail` says why.
    Failed,
    /// A check only the provider can run at the moment of the kill (a disruption budget)
    /// refused it: nothing was touched, and a [`Refusal`] with the same instance says why.
    /// A refused termination counts neither against `max_kills_per_day` nor against the
    /// minimum time between kills.
    Refused,
}

/// The kill-time checks, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// The configuration could not be read at kill time (fail safe: no kill).
    Config,
    /// `[monkey] enabled = false`.
    KillSwitch,
    /// The outage check reported an outage, or could not tell.
    Outage,
    /// The app is unknown or disabled.
    AppDisabled,
    /// No instance passed eligibility and exceptions.
    Eligibility,
    /// The inventory could not be read.
    Inventory,
    /// `max_kills_per_day` reached.
    MaxKillsPerDay,
    /// A kill in the same group is more recent than `min_time_between_kills` allows.
    MinTimeBetweenKills,
    /// The provider's own guard at the moment of the kill: a PodDisruptionBudget that allows
    /// no disruption now (the reason names it).
    DisruptionBudget,
    /// A planned kill whose window closed while the daemon was not running.
    Missed,
}

#[macro_export]
#[doc(hidden)]
macro_rules! string_enum {
    ($ty:ty { $($variant:ident => $text:literal),* $(,)? }) => {
        impl $ty {
            /// The stable text form, as stored and printed.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),* }
            }
        }
        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl ::std::str::FromStr for $ty {
            type Err = ::std::string::String;
            fn from_str(s: &str) -> ::std::result::Result<Self, ::std::string::String> {
                match s {
                    $($text => ::std::result::Result::Ok(Self::$variant),)*
                    other => ::std::result::Result::Err(::std::format!("unknown {} {other:?}", stringify!($ty))),
                }
            }
        }
    };
}

string_enum!(Origin { Schedule => "schedule", Manual => "manual", Gorilla => "gorilla", Kong => "kong" });
string_enum!(TerminationState {
    Recorded => "recorded",
    DryRun => "dry_run",
    Killed => "killed",
    Simulated => "simulated",
    Paused => "paused",
    AlreadyGone => "already_gone",
    Failed => "failed",
    Refused => "refused",
});
string_enum!(Check {
    Config => "config",
    KillSwitch => "kill_switch",
    Outage => "outage",
    AppDisabled => "app_disabled",
    Eligibility => "eligibility",
    Inventory => "inventory",
    MaxKillsPerDay => "max_kills_per_day",
    MinTimeBetweenKills => "min_time_between_kills",
    DisruptionBudget => "disruption_budget",
    Missed => "missed",
});

/// One executed (or dry-run) kill.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Termination {
    /// Store-assigned id.
    pub id: i64,
    /// The schedule entry that planned it, if any.
    pub schedule_entry: Option<i64>,
    /// When it was recorded (before the action).
    pub recorded_at: Timestamp,
    /// When the action's outcome was recorded.
    pub finished_at: Option<Timestamp>,
    /// Instance id.
    pub instance_id: String,
    /// Application.
    pub app: String,
    /// Account.
    pub account: String,
    /// Region.
    pub region: String,
    /// Zone.
    pub zone: String,
    /// Stack.
    pub stack: String,
    /// Cluster.
    pub cluster: String,
    /// Configured provider name.
    pub provider: String,
    /// True for a dry run.
    pub dry_run: bool,
    /// Where it stands.
    pub state: TerminationState,
    /// What the provider said, or why it failed.
    pub detail: String,
    /// Who asked.
    pub origin: Origin,
    /// The drill it is part of, if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub drill: Option<i64>,
}

/// One kill that a check refused, kept as an audit trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// Store-assigned id (0 before it is stored).
    pub id: i64,
    /// When.
    pub at: Timestamp,
    /// Application.
    pub app: String,
    /// Account (may be empty when unknown).
    pub account: String,
    /// Region filter or instance region.
    pub region: String,
    /// Stack filter or instance stack.
    pub stack: String,
    /// Cluster filter or instance cluster.
    pub cluster: String,
    /// The instance that was drawn, when the refusal came after the draw.
    pub instance_id: Option<String>,
    /// Which check refused.
    pub check: Check,
    /// Why, in words.
    pub reason: String,
    /// True when the attempt was a dry run.
    pub dry_run: bool,
    /// The schedule entry it answers, if any.
    pub schedule_entry: Option<i64>,
    /// Who asked.
    pub origin: Origin,
}
