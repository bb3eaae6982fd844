//! The `python` provider: Simian runs no Python, so `validate` refuses it and says which
//! module and function would have been called.

use serde_json::Value;

use crate::pyish::to_str;
use crate::validate::Invalid;

/// Refuses a `python` provider, naming what it calls.
pub fn validate(provider: &Value, activity: &str) -> Result<(), Invalid> {
    let module = provider.get("module").map(to_str).unwrap_or_default();
    let func = provider.get("func").map(to_str).unwrap_or_default();
    Err(Invalid::new(format!(
        "activity '{activity}' calls Python ({module}.{func}), which Simian does not run: use an http or process provider (or run this experiment with chaostoolkit)"
    )))
}
