//! The kill-time checks, in their fixed order, over Simian's seams.
//!
//! `simian terminate` and the daemon both come through [`Engine::terminate`]:
//!
//! 1. the configuration is re-read (unreadable: no kill),
//! 2. the kill switch (`[monkey] enabled`, and the switch set at run time through the API),
//! 3. the outage check (an error counts as an outage),
//! 4. the app is configured and enabled,
//! 5. eligibility and exceptions over the inventory of this moment,
//! 6. in one atomic store step: `max_kills_per_day`, then one instance drawn at random among
//!    the eligible ones whose group the minimum time between kills allows (a manual kill of an
//!    app is refused only when no group of it may lose an instance), then the termination is
//!    recorded,
//! 7. the action (skipped for a dry run), and its outcome recorded.
//!
//! Every refusal is logged, recorded with its reason and returned; nothing is half-applied.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use simian_core::{
    Check, Claim, ClaimResult, Clock, Event, Guardian, Instance, KillOutcome, Labels, Name,
    NewLease, NoGuardian, Notifier, Origin, OutageCheck, OutageStatus, Provider, Refusal, Store,
    StoreError, Termination, TerminationState,
};

use crate::{Policy, PolicySource, Target, eligibility};

/// A failure that is not a refusal: the store or the wiring is broken.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An app names a provider that was not built.
    #[error(
        "app {app} names provider {provider:?}, which is not configured: add [providers.{provider}] or fix the app's provider"
    )]
    UnknownProvider {
        /// The app.
        app: String,
        /// The provider name.
        provider: String,
    },
}

/// Undoes every open lease whose deadline has passed (real time): its guardian should have,
/// but may have died with the machine. Returns how many were ended. A lease whose provider is
/// not configured, or whose undo fails, stays open and is logged; the next call tries again.
pub fn reconcile_leases(
    store: &dyn Store,
    providers: &BTreeMap<String, Arc<dyn Provider>>,
) -> Result<usize, StoreError> {
    let now = Timestamp::now();
    let mut ended = 0;
    for lease in store.open_leases()? {
        if lease.deadline > now {
            break;
        }
        let Some(provider) = providers.get(&lease.provider) else {
            tracing::warn!(lease = lease.id, provider = %lease.provider, "an expired fault names a provider that is not configured; it stays open");
            continue;
        };
        match provider.undo(&lease) {
            Ok(detail) => {
                let ending = format!("{detail} (reconciled after the deadline)");
                if store.end_lease(lease.id, Timestamp::now(), &ending)? {
                    tracing::info!(lease = lease.id, instance = %lease.instance_id, %ending, "undid an expired fault");
                    ended += 1;
                }
            }
            Err(e) => {
                tracing::warn!(lease = lease.id, error = %e, "cannot undo an expired fault yet; it stays open");
            }
        }
    }
    Ok(ended)
}

/// Why kills are held by a kill switch, if one is off: `[monkey] enabled = false` in the
/// config, or the newest change recorded in the store (through the API).
pub fn kill_switch_holds(policy: &Policy, store: &dyn Store) -> Result<Option<String>, StoreError> {
    if !policy.enabled {
        return Ok(Some(
            "the kill switch is off ([monkey] enabled = false)".into(),
        ));
    }
    Ok(store.kill_switch()?.and_then(|k| k.holding()))
}

/// One request to kill an instance now.
#[derive(Clone, Debug)]
pub struct KillRequest {
    /// What to aim at.
    pub target: Target,
    /// Overrides `dry_run` from the policy when set.
    pub dry_run: Option<bool>,
    /// Who asks.
    pub origin: Origin,
    /// The schedule entry being fired, if any.
    pub schedule_entry: Option<i64>,
    /// Seed for the instance draw; the engine's own random source when `None`.
    pub pick_seed: Option<u64>,
}

impl KillRequest {
    /// A manual request for `target`.
    pub fn manual(target: Target) -> KillRequest {
        KillRequest {
            target,
            dry_run: None,
            origin: Origin::Manual,
            schedule_entry: None,
            pick_seed: None,
        }
    }
}

/// What the engine decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// A termination was recorded (and, unless a dry run, acted on: see its state).
    Terminated(Termination),
    /// A check refused; the refusal is recorded.
    Refused(Refusal),
    /// The schedule entry had already been handled; nothing was done.
    AlreadyHandled,
}

/// The kill-time pipeline.
pub struct Engine {
    providers: BTreeMap<String, Arc<dyn Provider>>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    outage: Arc<dyn OutageCheck>,
    notifier: Arc<dyn Notifier>,
    policy: Arc<dyn PolicySource>,
    rng: Mutex<ChaCha8Rng>,
    guardian: Arc<dyn Guardian>,
}

impl Engine {
    /// An engine over these seams; `seed` drives the instance draws of manual kills.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        providers: BTreeMap<String, Arc<dyn Provider>>,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        outage: Arc<dyn OutageCheck>,
        notifier: Arc<dyn Notifier>,
        policy: Arc<dyn PolicySource>,
        seed: u64,
    ) -> Engine {
        Engine {
            providers,
            store,
            clock,
            outage,
            notifier,
            policy,
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
            guardian: Arc::new(NoGuardian),
        }
    }

    /// This engine with `guardian` watching the leases of the faults it makes.
    pub fn with_guardian(mut self, guardian: Arc<dyn Guardian>) -> Engine {
        self.guardian = guardian;
        self
    }

    /// Undoes the faults whose deadline has passed: see [`reconcile_leases`].
    pub fn reconcile_leases(&self) -> Result<usize, EngineError> {
        Ok(reconcile_leases(self.store.as_ref(), &self.providers)?)
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The policy as it reads now.
    pub fn policy(&self) -> Result<Policy, String> {
        self.policy.load()
    }

    /// Who hears about what happens.
    pub fn notifier(&self) -> &Arc<dyn Notifier> {
        &self.notifier
    }

    /// The providers, by configured name.
    pub fn providers(&self) -> &BTreeMap<String, Arc<dyn Provider>> {
        &self.providers
    }

    /// Records and reports a refusal; `AlreadyHandled` when its schedule entry was handled.
    pub fn refuse(&self, refusal: Refusal) -> Result<Decision, EngineError> {
        if !self.store.refuse(&refusal)? {
            return Ok(Decision::AlreadyHandled);
        }
        self.notifier.notify(Event::Refusal(&refusal));
        Ok(Decision::Refused(refusal))
    }

    /// Runs every check in order and, if all pass, records and performs one kill.
    pub fn terminate(&self, request: &KillRequest) -> Result<Decision, EngineError> {
        let now = self.clock.now();
        let target = &request.target;
        let refusal = |check: Check, reason: String, dry_run: bool, instance: Option<&Instance>| {
            // The instance's own coordinates when there is one, else what the request named.
            let coordinate = |of_instance: fn(&Instance) -> &Name, of_target: &Option<String>| {
                instance.map_or_else(
                    || of_target.clone().unwrap_or_default(),
                    |i| of_instance(i).to_string(),
                )
            };
            Refusal {
                id: 0,
                at: now,
                app: target.app.clone(),
                account: coordinate(|i| &i.account, &target.account),
                region: coordinate(|i| &i.region, &target.region),
                stack: coordinate(|i| &i.stack, &target.stack),
                cluster: coordinate(|i| &i.cluster, &target.cluster),
                instance_id: instance.map(|i| i.id.to_string()),
                check,
                reason,
                dry_run,
                schedule_entry: request.schedule_entry,
                origin: request.origin,
            }
        };

        // 1. The configuration, re-read now: the kill switch and dry_run must be current.
        let policy = match self.policy.load() {
            Ok(p) => p,
            Err(e) => {
                let dry_run = request.dry_run.unwrap_or(true);
                return self.refuse(refusal(
                    Check::Config,
                    format!("cannot read the configuration, holding the kill: {e}"),
                    dry_run,
                    None,
                ));
            }
        };
        let dry_run = request.dry_run.unwrap_or(policy.dry_run);

        // 2. The kill switch: the config's, and the one set at run time.
        if let Some(why) = kill_switch_holds(&policy, self.store.as_ref())? {
            return self.refuse(refusal(Check::KillSwitch, why, dry_run, None));
        }

        // 3. Outages: an error counts as an outage.
        if let OutageStatus::Outage(why) = self.outage.check() {
            return self.refuse(refusal(
                Check::Outage,
                format!("holding kills during an outage: {why}"),
                dry_run,
                None,
            ));
        }

        // 4. The app.
        let Some(app) = policy.app(&target.app) else {
            return self.refuse(refusal(
                Check::AppDisabled,
                format!(
                    "app {} is not configured: add an [[apps]] entry named {:?}",
                    target.app, target.app
                ),
                dry_run,
                None,
            ));
        };
        if !app.enabled {
            return self.refuse(refusal(
                Check::AppDisabled,
                format!("app {} is disabled (enabled = false)", app.name),
                dry_run,
                None,
            ));
        }
        let provider =
            self.providers
                .get(&app.provider)
                .ok_or_else(|| EngineError::UnknownProvider {
                    app: app.name.clone(),
                    provider: app.provider.clone(),
                })?;

        // 5. Eligibility over the inventory of this moment.
        let instances = match provider.instances() {
            Ok(i) => i,
            Err(e) => return self.refuse(refusal(Check::Inventory, e.to_string(), dry_run, None)),
        };
        let candidates = eligibility::eligible(app, target, &instances);
        if candidates.is_empty() {
            let matching = instances.iter().filter(|i| target.matches(i)).count();
            let reason = if matching == 0 {
                format!(
                    "no instance of app {} matches the filters in provider {}",
                    target.app,
                    provider.name()
                )
            } else {
                format!(
                    "none of the {matching} matching instances of app {} is eligible (exceptions or a never-eligible cluster suffix)",
                    target.app
                )
            };
            return self.refuse(refusal(Check::Eligibility, reason, dry_run, None));
        }

        // 6. The atomic test-and-set: the daily cap, then a draw among the candidates
        // whose group the minimum time allows, recorded in the same transaction.
        let draw = match request.pick_seed {
            Some(seed) => ChaCha8Rng::seed_from_u64(seed).random(),
            None => self.rng.lock().unwrap_or_else(|e| e.into_inner()).random(),
        };
        let calendar = &policy.calendar;
        let (day_start, day_end) = calendar.day_bounds(calendar.local_date(now));
        let claim = Claim {
            candidates,
            grouping: app.grouping,
            regions_independent: app.regions_independent,
            draw,
            provider: provider.name().to_string(),
            dry_run,
            origin: request.origin,
            schedule_entry: request.schedule_entry,
            at: now,
            day_start,
            day_end,
            max_kills_per_day: policy.max_kills_per_day,
            min_time_threshold: calendar.min_time_threshold(now, app.min_time_between_kills),
        };
        let termination = match self.store.claim(&claim)? {
            ClaimResult::Recorded(t) => t,
            ClaimResult::Refused(r) => {
                self.notifier.notify(Event::Refusal(&r));
                return Ok(Decision::Refused(r));
            }
            ClaimResult::AlreadyHandled => return Ok(Decision::AlreadyHandled),
        };
        self.notifier.notify(Event::Termination(&termination));
        if dry_run {
            return Ok(Decision::Terminated(termination));
        }

        // 7. The action.
        let Some(instance) = claim
            .candidates
            .iter()
            .find(|i| i.id == termination.instance_id)
        else {
            let detail =
                "the store recorded an instance that was not a candidate; nothing was done"
                    .to_string();
            return Ok(Decision::Terminated(self.finish(
                termination,
                TerminationState::Failed,
                detail,
            )?));
        };
        self.act(provider.as_ref(), instance, termination)
    }

    /// Finishes terminations recorded before a crash, so none is lost and none repeated: the
    /// same instance is acted on again, and one already gone counts as killed.
    pub fn resume_unfinished(&self) -> Result<Vec<Decision>, EngineError> {
        self.store
            .unfinished()?
            .into_iter()
            .map(|t| self.resume(t))
            .collect()
    }

    /// Finishes one termination recorded but never finished: acts on its instance (the
    /// provider verifies; an instance already gone is recorded as such) and records the
    /// outcome, unless someone else recorded it first.
    pub fn resume(&self, t: Termination) -> Result<Decision, EngineError> {
        let instance = Instance {
            id: t.instance_id.as_str().into(),
            app: t.app.as_str().into(),
            account: t.account.as_str().into(),
            region: t.region.as_str().into(),
            zone: t.zone.as_str().into(),
            stack: t.stack.as_str().into(),
            detail: Name::default(),
            cluster: t.cluster.as_str().into(),
            labels: Labels::default(),
        };
        tracing::warn!(id = t.id, instance = %t.instance_id, "resuming a termination recorded but never finished");
        match self.providers.get(&t.provider) {
            Some(p) => self.act(p.as_ref(), &instance, t),
            None => {
                let detail = format!(
                    "provider {:?} is no longer configured; outcome unknown",
                    t.provider
                );
                Ok(Decision::Terminated(self.finish(
                    t,
                    TerminationState::Failed,
                    detail,
                )?))
            }
        }
    }

    fn act(
        &self,
        provider: &dyn Provider,
        instance: &Instance,
        termination: Termination,
    ) -> Result<Decision, EngineError> {
        // A fault with a deadline is on record, and watched from outside this process,
        // before it is made: a crash right after it still leaves it undone on time.
        let lease = match provider.lease() {
            None => None,
            Some((kind, duration)) => {
                let now = Timestamp::now();
                let deadline = SignedDuration::try_from(duration)
                    .ok()
                    .and_then(|d| now.checked_add(d).ok())
                    .unwrap_or(Timestamp::MAX);
                let lease = self.store.open_lease(&NewLease {
                    termination: Some(termination.id),
                    drill: None,
                    provider: provider.name().to_string(),
                    instance_id: instance.id.to_string(),
                    kind,
                    deadline,
                    created_at: now,
                    memo: None,
                })?;
                self.guardian.watch(&lease);
                Some(lease)
            }
        };
        let mut refused_by = None;
        let (state, detail) = match provider.terminate(instance, termination.id) {
            Ok(KillOutcome::Killed { detail }) => (TerminationState::Killed, detail),
            Ok(KillOutcome::Paused { detail }) => (TerminationState::Paused, detail),
            Ok(KillOutcome::Simulated { detail }) => (TerminationState::Simulated, detail),
            Ok(KillOutcome::AlreadyGone) => {
                (TerminationState::AlreadyGone, "already gone".to_string())
            }
            Ok(KillOutcome::Refused { check, reason }) => {
                let detail = format!("refused by {check}: {reason}");
                refused_by = Some((check, reason));
                (TerminationState::Refused, detail)
            }
            Err(e) => {
                tracing::error!(instance = %instance.id, error = %e, "termination failed");
                (TerminationState::Failed, e.to_string())
            }
        };
        // Gone or refused before the fault: nothing to undo. (After a failure the lease stays
        // open: the fault may have been made, and undoing one that was not is harmless.)
        let nothing_to_undo = match state {
            TerminationState::AlreadyGone => Some("nothing to undo: the instance was gone"),
            TerminationState::Refused => Some("nothing to undo: the provider refused the fault"),
            _ => None,
        };
        if let (Some(lease), Some(ending)) = (&lease, nothing_to_undo) {
            self.store.end_lease(lease.id, Timestamp::now(), ending)?;
        }
        match refused_by {
            Some((check, reason)) => self.refuse_recorded(termination, check, reason, detail),
            None => Ok(Decision::Terminated(self.finish(
                termination,
                state,
                detail,
            )?)),
        }
    }

    /// Finishes `t` as refused by the provider's own guard, with its refusal, in one step.
    fn refuse_recorded(
        &self,
        mut t: Termination,
        check: Check,
        reason: String,
        detail: String,
    ) -> Result<Decision, EngineError> {
        let at = self.clock.now();
        let mut refusal = Refusal {
            id: 0,
            at,
            app: t.app.clone(),
            account: t.account.clone(),
            region: t.region.clone(),
            stack: t.stack.clone(),
            cluster: t.cluster.clone(),
            instance_id: Some(t.instance_id.clone()),
            check,
            reason,
            dry_run: t.dry_run,
            schedule_entry: t.schedule_entry,
            origin: t.origin,
        };
        let Some(id) = self.store.refuse_recorded(t.id, &detail, &refusal)? else {
            return Ok(Decision::AlreadyHandled);
        };
        tracing::warn!(instance = %t.instance_id, %check, reason = %refusal.reason, "the provider refused the kill");
        refusal.id = id;
        t.state = TerminationState::Refused;
        t.detail = detail;
        t.finished_at = Some(at);
        self.notifier.notify(Event::Termination(&t));
        self.notifier.notify(Event::Refusal(&refusal));
        Ok(Decision::Refused(refusal))
    }

    fn finish(
        &self,
        mut t: Termination,
        state: TerminationState,
        detail: String,
    ) -> Result<Termination, EngineError> {
        let at: Timestamp = self.clock.now();
        self.store.finish(t.id, state, &detail, at)?;
        t.state = state;
        t.detail = detail;
        t.finished_at = Some(at);
        self.notifier.notify(Event::Termination(&t));
        Ok(t)
    }
}
