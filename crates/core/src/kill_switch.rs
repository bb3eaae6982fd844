//! The kill switch, as set at run time (through the API), on record.
//!
//! Kills happen only while both switches are on: `[monkey] enabled` in the config, and the
//! newest [`KillSwitch`] in the store (none: on). The store's switch survives restarts and is
//! shared by every replica on one database; each change says who made it, when and why.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// One change of the kill switch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KillSwitch {
    /// True: kills may happen (as far as this switch goes).
    pub enabled: bool,
    /// Who changed it (as they named themselves).
    pub changed_by: String,
    /// When.
    pub at: Timestamp,
    /// Why, in their words.
    pub reason: String,
}

impl KillSwitch {
    /// Why kills are held, when this change turned them off.
    pub fn holding(&self) -> Option<String> {
        (!self.enabled).then(|| {
            let why = if self.reason.is_empty() {
                String::new()
            } else {
                format!(": {}", self.reason)
            };
            format!(
                "the kill switch was turned off by {} at {}{why}",
                self.changed_by, self.at
            )
        })
    }
}
