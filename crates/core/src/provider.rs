//! The provider seam: where instances live and how they die.
//!
//! Every provider answers the same two questions, with the same semantics: which instances
//! exist now, and kill this one. `terminate` must verify the death, refuse anything it must
//! never touch, and treat an instance that is already gone as success (`AlreadyGone`), so a
//! kill resumed after a crash is never repeated on something else.

use std::time::Duration;

use crate::{Check, FaultKind, Instance, Lease};

/// What a kill did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KillOutcome {
    /// The instance is verified dead; `detail` says how.
    Killed {
        /// For example "SIGTERM, exited after 120ms".
        detail: String,
    },
    /// The instance is verified paused (the provider's [`Provider::lease`] fault); it is
    /// resumed when its lease ends.
    Paused {
        /// For example "paused; verified after 40 ms".
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
    /// A guard that only the provider can consult at the moment of the kill refused it (a
    /// PodDisruptionBudget): nothing was touched. The engine records a refusal with `check`
    /// and `reason`, and the kill counts as refused, not failed.
    Refused {
        /// Which guard.
        check: Check,
        /// Why, naming what refused (for example the budget).
        reason: String,
    },
}

/// What making a fault on demand did (a drill's pause or isolation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultOutcome {
    /// The fault is in place, verified; `detail` says how.
    Made {
        /// For example "SIGSTOP; stopped (verified) after 3 ms".
        detail: String,
    },
    /// The instance was gone before we acted: there is nothing to undo.
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

impl ProviderError {
    /// The inventory of provider `provider` could not be read.
    pub fn inventory(provider: &str, message: impl Into<String>) -> ProviderError {
        ProviderError::Inventory {
            provider: provider.to_string(),
            message: message.into(),
        }
    }

    /// Provider `provider` refuses to touch `instance`, for `reason`.
    pub fn refused(
        provider: &str,
        instance: &Instance,
        reason: impl Into<String>,
    ) -> ProviderError {
        ProviderError::Refused {
            provider: provider.to_string(),
            instance_id: instance.id.to_string(),
            reason: reason.into(),
        }
    }

    /// Provider `provider` acted on `instance` and failed.
    pub fn action(
        provider: &str,
        instance: &Instance,
        message: impl Into<String>,
    ) -> ProviderError {
        ProviderError::Action {
            provider: provider.to_string(),
            instance_id: instance.id.to_string(),
            message: message.into(),
        }
    }
}

/// Where instances live.
pub trait Provider: Send + Sync {
    /// The configured name (`[providers.NAME]`).
    fn name(&self) -> &str;

    /// The kind (`process`, `static`, ...).
    fn kind(&self) -> &'static str;

    /// The instances that exist now.
    fn instances(&self) -> Result<Vec<Instance>, ProviderError>;

    /// Kills `instance` and verifies it is dead (or, for a provider whose kills are faults
    /// with a duration, verifies the fault: see [`lease`](Provider::lease)). `termination` is
    /// the id of the record written before the call, for a provider that leaves a trace of
    /// the kill where it acts (a Kubernetes Event).
    fn terminate(
        &self,
        instance: &Instance,
        termination: i64,
    ) -> Result<KillOutcome, ProviderError>;

    /// The fault a kill leaves behind, when it is one that must be undone (a pause), and
    /// how long it lasts. The engine records a lease with that deadline before calling
    /// [`terminate`](Provider::terminate). `None` (the default): kills end instances.
    fn lease(&self) -> Option<(FaultKind, Duration)> {
        None
    }

    /// The faults this provider can make on demand (a drill's `pause` or `isolate`), besides
    /// killing. Empty (the default): it only kills.
    fn faults(&self) -> &'static [FaultKind] {
        &[]
    }

    /// Reads what undoing a `kind` fault on `instance` will need, before the fault is made, so
    /// that it is on record with the lease (the networks a container is attached to). `None`
    /// (the default): the lease itself says enough.
    fn fault_memo(
        &self,
        _instance: &Instance,
        _kind: FaultKind,
    ) -> Result<Option<String>, ProviderError> {
        Ok(None)
    }

    /// Makes the fault that `lease` (already recorded) describes on `instance`, and verifies
    /// it. Only for the kinds [`faults`](Provider::faults) names; the same refusals as
    /// [`terminate`](Provider::terminate) apply (never pid 1, never Simian's own container).
    fn make_fault(
        &self,
        instance: &Instance,
        lease: &Lease,
    ) -> Result<FaultOutcome, ProviderError> {
        Err(ProviderError::refused(
            self.name(),
            instance,
            format!(
                "a {} provider cannot {} an instance",
                self.kind(),
                lease.kind
            ),
        ))
    }

    /// Undoes the fault `lease` records, and verifies it is undone. An instance that no
    /// longer exists, or no longer holds the fault, is `Ok` too: there is nothing left to
    /// undo. `detail` says what was found or done.
    fn undo(&self, lease: &Lease) -> Result<String, ProviderError> {
        Err(ProviderError::Refused {
            provider: self.name().to_string(),
            instance_id: lease.instance_id.clone(),
            reason: format!(
                "this {} provider makes no {} faults",
                self.kind(),
                lease.kind
            ),
        })
    }
}
