//! Providers: what an activity runs. `http` and `process` as the reference runs them;
//! `simian` for Simian's own faults; `python` only for the extension functions Simian runs
//! natively (anything else is refused, with the module and function named).

pub mod http;
pub mod process;
pub mod python;
pub mod simian;

use serde_json::Value;

use crate::interrupt::Interrupt;
use crate::load::Vars;
use crate::substitute::Scope;

/// Why an activity did not produce an output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The activity failed (the reference's `ActivityFailed`): its run is `failed`.
    Failed(String),
    /// The run was stopped while the activity ran: it was cut short.
    Interrupted,
}

/// What an activity needs from its surroundings.
pub struct Context<'a> {
    /// Configuration and secrets.
    pub scope: &'a Scope,
    /// Variables from `.env` files, for processes.
    pub vars: &'a Vars,
    /// Stops the activity when the run is stopped.
    pub interrupt: &'a Interrupt,
    /// Simian's faults, when the run can record them (a store is configured).
    pub faults: Option<&'a crate::faults::Faults>,
    /// Simian's kills, when the run has its configuration.
    pub kills: Option<&'a dyn simian::Kills>,
}

/// Runs `activity`'s provider; its output.
pub fn run(activity: &Value, cx: &Context<'_>) -> Result<Value, Failure> {
    let provider = activity.get("provider").unwrap_or(&Value::Null);
    match provider.get("type").and_then(Value::as_str) {
        Some("process") => process::run(activity, provider, cx),
        Some("http") => http::run(activity, provider, cx),
        Some(simian::TYPE) => simian::run(activity, provider, cx),
        Some("python") => python::run(provider, cx),
        other => Err(Failure::Failed(format!(
            "provider type {other:?} cannot run here"
        ))),
    }
}

/// A provider's `timeout` as a duration, if it is a positive number.
fn seconds(v: Option<&Value>) -> Option<std::time::Duration> {
    v.and_then(crate::pyish::number)
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(|s| std::time::Duration::from_secs_f64(s.min(1e9)))
}
