//! The provider seam: where instances live and how they die.
//!
//! Every provider answers the same two questions, with the same semantics: which instances
//! exist now, and kill this one. `terminate` must verify the death, refuse anything it must
//! never touch, and treat an instance that is already gone as success (`AlreadyGone`), so a
//! kill resumed after a crash is never repeated on something else.

use crate::Instance;

/// What a kill did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KillOutcome {
    /// The instance is verified dead; `detail` says how.
    Killed {
        /// For example "SIGTERM, exited after 120ms".
        detail: String,
    },
    /// Nothing real exists to kill (a simulated fleet): the kill counts, and `detail` says
    /// that nothing was touched.
    Simulated {
        /// For example "static inventory: nothing real was touched".
        detail: String,
    },
    /// It was gone before we acted.
    AlreadyGone,
}

/// A provider failure.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The inventory could not be read.
    #[error("provider {provider}: cannot list instances: {message}")]
    Inventory {
        /// Configured provider name.
        provider: String,
        /// What went wrong.
        message: String,
    },
    /// The provider refuses to touch this instance (pid 1, itself, ...).
    #[error("provider {provider}: refusing to terminate {instance_id}: {reason}")]
    Refused {
        /// Configured provider name.
        provider: String,
        /// The instance.
        instance_id: String,
        /// Why.
        reason: String,
    },
    /// The action ran and failed.
    #[error("provider {provider}: terminating {instance_id} failed: {message}")]
    Action {
        /// Configured provider name.
        provider: String,
        /// The instance.
        instance_id: String,
        /// What went wrong.
        message: String,
    },
}

/// Where instances live.
pub trait Provider: Send + Sync {
    /// The configured name (`[providers.NAME]`).
    fn name(&self) -> &str;

    /// The kind (`process`, `static`, ...).
    fn kind(&self) -> &'static str;

    /// The instances that exist now.
    fn instances(&self) -> Result<Vec<Instance>, ProviderError>;

    /// Kills `instance` and verifies it is dead.
    fn terminate(&self, instance: &Instance) -> Result<KillOutcome, ProviderError>;
}
