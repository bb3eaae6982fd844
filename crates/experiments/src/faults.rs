//! Simian's own faults in an experiment: recorded before they are made, undone when the run
//! ends, whatever ends it.
//!
//! Every fault an experiment makes (a toxic through the `simian` provider or the natively run
//! `chaostoxi` functions, a paused instance) is a lease in Simian's store, written before the
//! fault exists and watched by a guardian process of its own: at its deadline the guardian
//! undoes it, even if this simian was killed with SIGKILL, and the next simian command that
//! opens the store does if the guardian died too. When the run ends (completed, deviated,
//! stopped, interrupted), every fault it made that is still in place is undone at once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use simian_core::{FaultKind, FaultOutcome, Guardian, Instance, Lease, NewLease, Provider, Store};
use simian_providers::ToxiproxyApi;

/// How long a fault without a duration may last: the run removes it when it ends, and the
/// guardian an hour later at the latest.
pub const UNTIL_THE_END: Duration = Duration::from_secs(3600);

/// The faults of one run.
pub struct Faults {
    store: Arc<dyn Store>,
    guardian: Arc<dyn Guardian>,
    made: Mutex<Vec<(Lease, Arc<dyn Provider>)>>,
}

impl Faults {
    /// Faults recorded in `store` and watched by `guardian`.
    pub fn new(store: Arc<dyn Store>, guardian: Arc<dyn Guardian>) -> Faults {
        Faults {
            store,
            guardian,
            made: Mutex::new(Vec::new()),
        }
    }

    fn made(&self) -> std::sync::MutexGuard<'_, Vec<(Lease, Arc<dyn Provider>)>> {
        self.made.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes a `kind` fault on `instance` through `provider` for `duration` (or until the run
    /// ends): the lease first (with what the undo will need), then the guardian, then the
    /// fault. `memo` is the fault's own description (a toxic); otherwise the provider's.
    pub fn make(
        &self,
        provider: Arc<dyn Provider>,
        instance: &Instance,
        kind: FaultKind,
        memo: Option<String>,
        duration: Option<Duration>,
    ) -> Result<(Lease, String), String> {
        let memo = match memo {
            Some(m) => Some(m),
            None => provider
                .fault_memo(instance, kind)
                .map_err(|e| e.to_string())?,
        };
        let now = Timestamp::now();
        let lasts = duration.unwrap_or(UNTIL_THE_END);
        let deadline = now
            .checked_add(SignedDuration::try_from(lasts).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        let lease = self
            .store
            .open_lease(&NewLease {
                termination: None,
                drill: None,
                provider: provider.name().to_string(),
                instance_id: instance.id.to_string(),
                kind,
                deadline,
                created_at: now,
                memo,
            })
            .map_err(|e| format!("cannot record the {kind} before making it: {e}"))?;
        self.guardian.watch(&lease);
        match provider.make_fault(instance, &lease) {
            Ok(FaultOutcome::Made { detail }) => {
                self.made().push((lease.clone(), provider));
                Ok((lease, detail))
            }
            Ok(FaultOutcome::AlreadyGone) => {
                let _ = self.store.end_lease(
                    lease.id,
                    Timestamp::now(),
                    "the target is gone: nothing was done",
                );
                Err(format!("{} is gone: nothing to {kind}", instance.id))
            }
            Err(e) => {
                let _ = self
                    .store
                    .end_lease(lease.id, Timestamp::now(), &format!("not made: {e}"));
                Err(e.to_string())
            }
        }
    }

    /// Adds `toxic` to `proxy` on the API at `api`, for `duration` (or until the run ends).
    pub fn add_toxic(
        &self,
        api: &str,
        proxy: &str,
        toxic: &Value,
        duration: Option<Duration>,
    ) -> Result<Value, String> {
        let server = Arc::new(ToxiproxyApi::new(api));
        let base = server.base().to_string();
        let instance = Instance::builder(proxy, proxy).build();
        let (lease, detail) = self.make(
            server,
            &instance,
            FaultKind::Toxic,
            Some(toxic.to_string()),
            duration,
        )?;
        Ok(json!({
            "lease": lease.id,
            "api": base,
            "proxy": proxy,
            "toxic": toxic,
            "until": lease.deadline,
            "detail": detail,
        }))
    }

    /// Removes toxic `name` from `proxy`, ending its lease when this run made it.
    pub fn remove_toxic(&self, api: &str, proxy: &str, name: &str) -> Result<Value, String> {
        let server = ToxiproxyApi::new(api);
        let ours = {
            let mut made = self.made();
            let at = made.iter().position(|(l, _)| {
                l.provider == server.name()
                    && l.instance_id == proxy
                    && l.memo
                        .as_deref()
                        .and_then(|m| serde_json::from_str::<Value>(m).ok())
                        .is_some_and(|t| t["name"] == name)
            });
            at.map(|i| made.remove(i))
        };
        match ours {
            Some((lease, provider)) => {
                let ending = self.undo(provider.as_ref(), &lease)?;
                Ok(json!({"lease": lease.id, "removed": true, "detail": ending}))
            }
            None => {
                let existed = server.delete_toxic(proxy, name)?;
                Ok(json!({"removed": existed}))
            }
        }
    }

    fn undo(&self, provider: &dyn Provider, lease: &Lease) -> Result<String, String> {
        let _ = self.store.begin_undo(&[lease.id], Timestamp::now());
        let ending = provider.undo(lease).map_err(|e| e.to_string())?;
        let _ = self.store.end_lease(lease.id, Timestamp::now(), &ending);
        Ok(ending)
    }

    /// Undoes every fault of this run still in place (the run is ending); what was done.
    pub fn undo_all(&self) -> Vec<Value> {
        let made = std::mem::take(&mut *self.made());
        let mut done = Vec::new();
        for (lease, provider) in made {
            let still_open = self
                .store
                .lease(lease.id)
                .ok()
                .flatten()
                .is_some_and(|l| l.ended_at.is_none());
            if !still_open {
                continue;
            }
            let ending = match self.undo(provider.as_ref(), &lease) {
                Ok(e) => e,
                Err(e) => format!("not undone yet ({e}); the guardian undoes it at its deadline"),
            };
            done.push(json!({
                "lease": lease.id,
                "kind": lease.kind,
                "target": lease.instance_id,
                "ending": ending,
            }));
        }
        done
    }
}
