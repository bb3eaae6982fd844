//! Running a drill: checks, plan, record, act in parallel, watch the steady state, undo.
//!
//! The order is fixed, and nothing is touched before every step ahead of it has passed:
//!
//! 1. the configuration is read (unreadable: no drill), the kill switch, the outage check;
//! 2. the inventories of the apps are read and the [plan](crate::plan) is made; a mode that a
//!    provider cannot do is refused here, naming what it supports;
//! 3. a dry run records the plan and stops;
//! 4. every probe is checked (a failing one refuses the drill);
//! 5. the drill is recorded, atomically refused when a running drill touches one of its zones;
//! 6. every instance's lease (or termination) is recorded in one step, the guardian is started,
//!    and only then are the instances acted on, in parallel (bounded);
//! 7. the probes run every interval until the deadline, an abort (the share of successful
//!    checks over the trailing window falls below the threshold), a stop request, or the drill
//!    being ended by someone else;
//! 8. every fault is undone in parallel and verified, its undo recorded before it runs;
//! 9. the probes run once more for the after window, and the drill is ended with its report.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use simian_core::{
    Drill, DrillEnding, DrillKind, DrillMode, Event, FaultOutcome, Guardian, Instance, KillOutcome,
    Lease, LogNotifier, NewDrill, NewLease, Notifier, OutageCheck, OutageStatus, Provider, Store,
    StoreError, TerminationState,
};
use simian_monkey::PolicySource;

use crate::plan::{self, AppInventory, Plan};
use crate::probe::{Phase, Probe, ProbeLog, ProbeReport, Sample};

/// How many instances are acted on (or undone) at once.
pub const PARALLEL: usize = 32;

/// A failure that is not a refusal: the store is broken.
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What to drill.
#[derive(Clone, Debug, Serialize)]
pub struct DrillRequest {
    /// Gorilla or Kong.
    pub kind: DrillKind,
    /// The zone or region.
    pub target: String,
    /// What is done to each instance.
    pub mode: DrillMode,
    /// Only these apps (empty: every configured app).
    pub apps: Vec<String>,
    /// How long the faults stay (required for pause and isolate); for terminate, how long
    /// the probes keep watching after the kills.
    #[serde(with = "duration_secs")]
    pub duration: Duration,
    /// Abort when the share of successful probe checks over the trailing window falls below
    /// this percentage.
    pub abort_below: f64,
    /// The probes' URLs (for the record).
    pub probes: Vec<String>,
    /// Overrides the config's `dry_run` when set.
    pub dry_run: Option<bool>,
}

mod duration_secs {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

/// The pace of a drill's probes.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Between two rounds of checks.
    pub interval: Duration,
    /// Rounds of checks before the drill.
    pub before_rounds: u32,
    /// How long the probes keep running after the undo.
    pub after: Duration,
    /// The trailing window of the abort rule.
    pub window: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            interval: Duration::from_secs(1),
            before_rounds: 3,
            after: Duration::from_secs(5),
            window: Duration::from_secs(10),
        }
    }
}

/// Why a drill did not start; nothing was touched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Refused {
    /// Which guard: `config`, `kill_switch`, `outage`, `mode`, `nothing_to_do`, `steady_state`,
    /// `running_drill`.
    pub check: &'static str,
    /// Why, in words.
    pub reason: String,
}

/// A drill ready to run: its plan, and the instances it names.
pub struct Prepared {
    request: DrillRequest,
    /// The plan.
    pub plan: Plan,
    /// The dry run setting in force.
    pub dry_run: bool,
    instances: HashMap<String, Instance>,
}

/// What happened to one instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Acted {
    /// The app.
    pub app: String,
    /// The instance.
    pub instance: String,
    /// `made`, `killed`, `already_gone`, `failed`, `refused`...
    pub outcome: String,
    /// What the provider said.
    pub detail: String,
    /// How its fault was undone (pause and isolate).
    pub undone: Option<String>,
}

/// How a drill went.
#[derive(Clone, Debug, Serialize)]
pub struct Finished {
    /// The drill, as ended.
    pub drill: Drill,
    /// The plan.
    pub plan: Plan,
    /// Per instance.
    pub acted: Vec<Acted>,
    /// Per probe, before, during and after.
    pub report: Vec<ProbeReport>,
    /// How long from the start of acting until every instance was acted on.
    pub acting_ms: u128,
    /// How long the undo took.
    pub undo_ms: u128,
}

/// Runs `f` over `items`, at most `width` at once (at least one), results in the items' order.
pub fn parallel<T: Sync, R: Send>(width: usize, items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let slots: Vec<std::sync::Mutex<Option<R>>> =
        items.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..width.clamp(1, items.len().max(1)) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let r = f(item);
                    *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                }
            });
        }
    });
    slots
        .into_iter()
        .filter_map(|s| s.into_inner().unwrap_or_else(|e| e.into_inner()))
        .collect()
}

/// The drill runner, over Simian's seams.
pub struct Drills {
    store: Arc<dyn Store>,
    providers: BTreeMap<String, Arc<dyn Provider>>,
    policy: Arc<dyn PolicySource>,
    outage: Arc<dyn OutageCheck>,
    guardian: Arc<dyn Guardian>,
    notifier: Arc<dyn Notifier>,
    timing: Timing,
    width: usize,
}

impl Drills {
    /// A runner over these seams.
    pub fn new(
        store: Arc<dyn Store>,
        providers: BTreeMap<String, Arc<dyn Provider>>,
        policy: Arc<dyn PolicySource>,
        outage: Arc<dyn OutageCheck>,
        guardian: Arc<dyn Guardian>,
    ) -> Drills {
        Drills {
            store,
            providers,
            policy,
            outage,
            guardian,
            notifier: Arc::new(LogNotifier),
            timing: Timing::default(),
            width: PARALLEL,
        }
    }

    /// This runner telling `notifier` when a drill starts acting and when it ends.
    pub fn with_notifier(mut self, notifier: Arc<dyn Notifier>) -> Drills {
        self.notifier = notifier;
        self
    }

    /// This runner acting on at most `width` instances at once (1: one by one).
    pub fn with_width(mut self, width: usize) -> Drills {
        self.width = width.max(1);
        self
    }

    /// This runner with another pace.
    pub fn with_timing(mut self, timing: Timing) -> Drills {
        self.timing = timing;
        self
    }

    /// Steps 1 to 2: the checks and the plan.
    pub fn prepare(&self, request: DrillRequest) -> Result<Result<Prepared, Refused>, DrillError> {
        let refused = |check, reason: String| Ok(Err(Refused { check, reason }));
        let policy = match self.policy.load() {
            Ok(p) => p,
            Err(e) => return refused("config", format!("cannot read the configuration: {e}")),
        };
        let dry_run = request.dry_run.unwrap_or(policy.dry_run);
        if let Some(why) = simian_monkey::kill_switch_holds(&policy, self.store.as_ref())? {
            return refused("kill_switch", why);
        }
        if let OutageStatus::Outage(why) = self.outage.check() {
            return refused("outage", format!("no drill during an outage: {why}"));
        }
        for app in &request.apps {
            if policy.app(app).is_none() {
                return refused(
                    "app",
                    format!("app {app} is not configured: add an [[apps]] entry named {app:?}"),
                );
            }
        }
        let chosen: Vec<&simian_monkey::AppPolicy> = policy
            .apps
            .iter()
            .filter(|a| request.apps.is_empty() || request.apps.contains(&a.name))
            .collect();
        // One inventory per provider, read once.
        let mut inventories: BTreeMap<&str, Vec<Instance>> = BTreeMap::new();
        for app in &chosen {
            if inventories.contains_key(app.provider.as_str()) {
                continue;
            }
            let Some(provider) = self.providers.get(&app.provider) else {
                return refused(
                    "config",
                    format!(
                        "app {} names provider {:?}, which is not configured",
                        app.name, app.provider
                    ),
                );
            };
            match provider.instances() {
                Ok(list) => {
                    inventories.insert(app.provider.as_str(), list);
                }
                Err(e) => return refused("inventory", e.to_string()),
            }
        }
        let empty = Vec::new();
        let inputs: Vec<AppInventory<'_>> = chosen
            .iter()
            .map(|a| {
                let provider = &self.providers[&a.provider];
                AppInventory {
                    policy: a,
                    faults: provider.faults(),
                    provider_kind: provider.kind(),
                    instances: inventories.get(a.provider.as_str()).unwrap_or(&empty),
                }
            })
            .collect();
        let plan = match plan::plan(request.kind, &request.target, request.mode, &inputs) {
            Ok(p) => p,
            Err(unsupported) => {
                let apps: Vec<String> = unsupported.iter().map(ToString::to_string).collect();
                return refused(
                    "mode",
                    format!(
                        "mode {} is not possible here: {}",
                        request.mode,
                        apps.join("; ")
                    ),
                );
            }
        };
        if plan.instance_count() == 0 && !dry_run {
            let place = format!("{} {}", request.kind.scope(), request.target);
            let reason = if plan.left_out.is_empty() {
                let whose = if request.apps.is_empty() {
                    "any configured app".to_string()
                } else {
                    request.apps.join(", ")
                };
                format!("nothing to act on: no instance of {whose} is in {place}")
            } else {
                let why: Vec<String> = plan
                    .left_out
                    .iter()
                    .map(|l| format!("{}: {}", l.app, l.reason))
                    .collect();
                format!(
                    "nothing to act on in {place}: every app with instances there is left out ({})",
                    why.join("; ")
                )
            };
            return refused("nothing_to_do", reason);
        }
        let instances = inventories
            .into_values()
            .flatten()
            .filter(|i| plan.apps.iter().any(|a| a.app == i.app.as_str()))
            .map(|i| (i.id.to_string(), i))
            .collect();
        Ok(Ok(Prepared {
            request,
            plan,
            dry_run,
            instances,
        }))
    }

    /// Records a dry run's plan: a drill that ended at once, touching nothing.
    pub fn record_dry_run(&self, p: &Prepared) -> Result<Drill, DrillError> {
        let now = Timestamp::now();
        let drill = self
            .store
            .begin_drill(&self.new_drill(p, now, now, Vec::new()))?
            .map_err(|_| StoreError::Corrupt {
                what: "drill",
                value: "a dry run touches no zone".into(),
            })?;
        self.store.end_drill(
            drill.id,
            now,
            DrillEnding::DryRun,
            "dry run: the plan is recorded, nothing was touched",
            None,
        )?;
        Ok(self.store.drill(drill.id)?.unwrap_or(drill))
    }

    fn new_drill(
        &self,
        p: &Prepared,
        now: Timestamp,
        deadline: Timestamp,
        zones: Vec<String>,
    ) -> NewDrill {
        NewDrill {
            kind: p.request.kind,
            target: p.request.target.clone(),
            mode: p.request.mode,
            dry_run: p.dry_run,
            options: serde_json::to_string(&p.request).unwrap_or_default(),
            plan: serde_json::to_string(&p.plan).unwrap_or_default(),
            zones,
            started_at: now,
            deadline,
            owner: crate::owner::this_process(),
        }
    }

    /// Steps 4 to 9. `stop` ends the drill early (Ctrl-C); `progress` hears what happens.
    pub fn execute(
        &self,
        p: Prepared,
        probes: &[Box<dyn Probe>],
        stop: &AtomicBool,
        progress: &dyn Fn(&str),
    ) -> Result<Result<Finished, Refused>, DrillError> {
        let t0 = Instant::now();
        let mut log = ProbeLog::new(probes.iter().map(|p| p.name().to_string()));
        // A check's sample is dated when its answer came: a slow failure counts in the window
        // it was seen in.
        let check_all = |log: &mut ProbeLog, phase: Phase| {
            let outcomes = parallel(probes.len(), probes, |probe| probe.check());
            let at = t0.elapsed();
            for (i, outcome) in outcomes.into_iter().enumerate() {
                log.record(i, Sample { at, phase, outcome });
            }
        };

        // 4. The steady state before.
        if !probes.is_empty() {
            for round in 0..self.timing.before_rounds {
                if round > 0 {
                    std::thread::sleep(self.timing.interval);
                }
                check_all(&mut log, Phase::Before);
            }
            let failures = log.failures(Phase::Before);
            if let Some((probe, why)) = failures.first() {
                return Ok(Err(Refused {
                    check: "steady_state",
                    reason: format!(
                        "probe {probe} fails before the drill ({why}; {} of {} checks failed): fix the service first",
                        failures.len(),
                        probes.len() * self.timing.before_rounds as usize
                    ),
                }));
            }
        }

        // 5. The record, refused while another drill touches these zones.
        let now = Timestamp::now();
        let deadline = SignedDuration::try_from(p.request.duration)
            .ok()
            .and_then(|d| now.checked_add(d).ok())
            .unwrap_or(Timestamp::MAX);
        let drill = match self.store.begin_drill(&self.new_drill(
            &p,
            now,
            deadline,
            p.plan.zones(),
        ))? {
            Ok(d) => d,
            Err(other) => {
                return Ok(Err(Refused {
                    check: "running_drill",
                    reason: format!(
                        "{other}, started {}, still runs and touches {}: end it first (simian outages end {})",
                        other.started_at,
                        other.zones.join(", "),
                        other.id
                    ),
                }));
            }
        };
        progress(&format!(
            "{drill} recorded; acting on {} instances",
            p.plan.instance_count()
        ));

        // 6. Act.
        let targets: Vec<(String, String, &Instance)> = p
            .plan
            .apps
            .iter()
            .flat_map(|a| {
                a.act_on.iter().filter_map(|t| {
                    p.instances
                        .get(&t.id)
                        .map(|i| (a.app.clone(), a.provider.clone(), i))
                })
            })
            .collect();
        self.notifier.notify(Event::DrillStarted(&drill));
        let acting = Instant::now();
        let mut acted = match p.request.mode.fault() {
            Some(kind) => self.make_faults(&drill, kind, &targets)?,
            None => self.terminate_all(&drill, &targets)?,
        };
        let acting_ms = acting.elapsed().as_millis();
        let failed = acted.iter().filter(|a| a.outcome == "failed").count();
        progress(&format!(
            "acted on {} instances in {acting_ms} ms ({failed} failed)",
            acted.len()
        ));

        // 7. Watch.
        let mut ending = DrillEnding::Completed;
        let mut detail = format!(
            "{} instances {}; the fault held for {:?}",
            acted
                .iter()
                .filter(|a| a.outcome == "made" || a.outcome == "killed")
                .count(),
            match p.request.mode {
                DrillMode::Terminate => "terminated",
                DrillMode::Pause => "paused",
                DrillMode::Isolate => "isolated",
            },
            p.request.duration
        );
        let undone_note = if p.request.mode == DrillMode::Terminate {
            "the kills cannot be undone"
        } else {
            "everything was undone"
        };
        let mut next = Instant::now();
        let mut ended_elsewhere = false;
        while Timestamp::now() < deadline {
            if stop.load(Ordering::SeqCst) {
                ending = DrillEnding::Ended;
                detail = format!("ended early on request (Ctrl-C, SIGTERM); {undone_note}");
                break;
            }
            if self.store.drill(drill.id)?.is_some_and(|d| !d.is_running()) {
                ending = DrillEnding::Ended;
                detail = "ended by simian outages end".into();
                ended_elsewhere = true;
                break;
            }
            next += self.timing.interval;
            let left =
                Duration::try_from(deadline.duration_since(Timestamp::now())).unwrap_or_default();
            std::thread::sleep(next.saturating_duration_since(Instant::now()).min(left));
            if probes.is_empty() {
                continue;
            }
            check_all(&mut log, Phase::During);
            let share = log
                .share_ok(t0.elapsed(), self.timing.window)
                .unwrap_or(1.0);
            if share * 100.0 < p.request.abort_below {
                ending = DrillEnding::Aborted;
                detail = format!(
                    "aborted: {:.1}% of probe checks succeeded over the last {:?}, below {}%; {undone_note}",
                    share * 100.0,
                    self.timing.window,
                    p.request.abort_below
                );
                progress(&detail);
                break;
            }
        }

        // 8. Undo.
        let undoing = Instant::now();
        let undone = undo_drill(self.store.as_ref(), &self.providers, drill.id, self.width)?;
        let undo_ms = undoing.elapsed().as_millis();
        for a in &mut acted {
            if let Some(how) = undone.endings.get(&a.instance) {
                a.undone = Some(how.clone());
            }
        }
        if !undone.failures.is_empty() {
            ending = DrillEnding::Failed;
            detail = format!(
                "{detail}; but {} faults could not be undone yet ({}): the guardian and the next simian command keep trying",
                undone.failures.len(),
                undone.failures.join("; ")
            );
        } else if failed > 0 && ending == DrillEnding::Completed {
            ending = DrillEnding::Failed;
            detail = format!("{detail}; acting failed on {failed} instances");
        }
        if undone.count > 0 {
            progress(&format!("undid {} faults in {undo_ms} ms", undone.count));
        }

        // 9. After.
        if !probes.is_empty() {
            let after_end = Instant::now() + self.timing.after;
            while Instant::now() < after_end {
                std::thread::sleep(
                    self.timing
                        .interval
                        .min(after_end.saturating_duration_since(Instant::now())),
                );
                check_all(&mut log, Phase::After);
            }
        }
        let report = log.report();
        let report_json = serde_json::to_string(&report).unwrap_or_default();
        if !ended_elsewhere {
            self.store.end_drill(
                drill.id,
                Timestamp::now(),
                ending,
                &detail,
                Some(&report_json),
            )?;
        }
        let drill = self.store.drill(drill.id)?.unwrap_or(drill);
        self.notifier.notify(Event::DrillEnded(&drill));
        Ok(Ok(Finished {
            drill,
            plan: p.plan,
            acted,
            report,
            acting_ms,
            undo_ms,
        }))
    }

    /// Records every lease (with what its undo needs), starts the guardian, then makes the
    /// faults in parallel.
    fn make_faults(
        &self,
        drill: &Drill,
        kind: simian_core::FaultKind,
        targets: &[(String, String, &Instance)],
    ) -> Result<Vec<Acted>, DrillError> {
        let memos = parallel(self.width, targets, |(_, provider, instance)| {
            self.providers[provider].fault_memo(instance, kind)
        });
        let now = Timestamp::now();
        let mut acted = Vec::new();
        let mut leases = Vec::new();
        let mut to_act = Vec::new();
        for ((app, provider, instance), memo) in targets.iter().zip(memos) {
            match memo {
                Ok(memo) => {
                    leases.push(NewLease {
                        termination: None,
                        drill: Some(drill.id),
                        provider: provider.clone(),
                        instance_id: instance.id.to_string(),
                        kind,
                        deadline: drill.deadline,
                        created_at: now,
                        memo,
                    });
                    to_act.push((app.clone(), provider.clone(), *instance));
                }
                Err(e) => acted.push(Acted {
                    app: app.clone(),
                    instance: instance.id.to_string(),
                    outcome: "failed".into(),
                    detail: e.to_string(),
                    undone: None,
                }),
            }
        }
        let leases = self.store.record_leases(&leases)?;
        self.guardian.watch_drill(drill);
        let work: Vec<(&(String, String, &Instance), &Lease)> =
            to_act.iter().zip(&leases).collect();
        let outcomes = parallel(self.width, &work, |((_, provider, instance), lease)| {
            self.providers[provider].make_fault(instance, lease)
        });
        let mut gone = Vec::new();
        for (((app, _, instance), lease), outcome) in work.iter().zip(outcomes) {
            let (outcome, detail) = match outcome {
                Ok(FaultOutcome::Made { detail }) => ("made", detail),
                Ok(FaultOutcome::AlreadyGone) => {
                    gone.push((
                        lease.id,
                        "nothing to undo: the instance was gone".to_string(),
                    ));
                    ("already_gone", "already gone".to_string())
                }
                Err(e) => {
                    tracing::error!(instance = %instance.id, error = %e, "a drill's fault failed");
                    ("failed", e.to_string())
                }
            };
            acted.push(Acted {
                app: app.clone(),
                instance: instance.id.to_string(),
                outcome: outcome.into(),
                detail,
                undone: None,
            });
        }
        self.store.end_leases(&gone, Timestamp::now())?;
        Ok(acted)
    }

    /// Records every termination, then kills in parallel, each outcome recorded.
    fn terminate_all(
        &self,
        drill: &Drill,
        targets: &[(String, String, &Instance)],
    ) -> Result<Vec<Acted>, DrillError> {
        let victims: Vec<(&str, &Instance)> =
            targets.iter().map(|(_, p, i)| (p.as_str(), *i)).collect();
        let recorded = self
            .store
            .record_drill_terminations(drill, &victims, Timestamp::now())?;
        let work: Vec<(&(String, String, &Instance), i64)> =
            targets.iter().zip(recorded.iter().map(|t| t.id)).collect();
        let outcomes = parallel(self.width, &work, |((_, provider, instance), id)| {
            self.providers[provider].terminate(instance, *id)
        });
        let mut acted = Vec::new();
        for (((app, _, instance), id), outcome) in work.iter().zip(outcomes) {
            let (state, word, detail) = match outcome {
                Ok(KillOutcome::Killed { detail }) => (TerminationState::Killed, "killed", detail),
                Ok(KillOutcome::Simulated { detail }) => {
                    (TerminationState::Simulated, "killed", detail)
                }
                Ok(KillOutcome::Paused { detail }) => (TerminationState::Paused, "made", detail),
                Ok(KillOutcome::AlreadyGone) => (
                    TerminationState::AlreadyGone,
                    "already_gone",
                    "already gone".to_string(),
                ),
                Ok(KillOutcome::Refused { check, reason }) => (
                    TerminationState::Refused,
                    "refused",
                    format!("refused by {check}: {reason}"),
                ),
                Err(e) => (TerminationState::Failed, "failed", e.to_string()),
            };
            self.store.finish(*id, state, &detail, Timestamp::now())?;
            acted.push(Acted {
                app: app.clone(),
                instance: instance.id.to_string(),
                outcome: word.into(),
                detail,
                undone: None,
            });
        }
        Ok(acted)
    }
}

/// What undoing a drill's faults did.
#[derive(Clone, Debug, Default)]
pub struct Undone {
    /// Faults undone (or found to need no undoing) by this call.
    pub count: usize,
    /// How each was undone, by instance.
    pub endings: HashMap<String, String>,
    /// The ones that could not be undone, said.
    pub failures: Vec<String>,
}

/// Undoes every open fault of drill `drill` in parallel, each undo recorded before it runs
/// and its ending after it is verified; failures are retried twice, a second apart, then left
/// open (for the guardian and the next command).
pub fn undo_drill(
    store: &dyn Store,
    providers: &BTreeMap<String, Arc<dyn Provider>>,
    drill: i64,
    width: usize,
) -> Result<Undone, StoreError> {
    let mut undone = Undone::default();
    for attempt in 0..3 {
        let open: Vec<Lease> = store
            .drill_leases(drill)?
            .into_iter()
            .filter(|l| l.ended_at.is_none())
            .collect();
        if open.is_empty() {
            undone.failures.clear();
            break;
        }
        if attempt > 0 {
            std::thread::sleep(Duration::from_secs(1));
        }
        let ids: Vec<i64> = open.iter().map(|l| l.id).collect();
        store.begin_undo(&ids, Timestamp::now())?;
        let results = parallel(width, &open, |lease| match providers.get(&lease.provider) {
            Some(p) => p.undo(lease).map_err(|e| e.to_string()),
            None => Err(format!("provider {:?} is not configured", lease.provider)),
        });
        let mut endings = Vec::new();
        undone.failures.clear();
        for (lease, result) in open.iter().zip(results) {
            match result {
                Ok(how) => {
                    undone
                        .endings
                        .insert(lease.instance_id.clone(), how.clone());
                    endings.push((lease.id, how));
                }
                Err(e) => undone.failures.push(format!("{}: {e}", lease.instance_id)),
            }
        }
        undone.count += store.end_leases(&endings, Timestamp::now())?;
    }
    Ok(undone)
}

/// How long after its deadline a running drill whose faults are all undone is taken for
/// abandoned when it is not known whether its simian still runs (another machine).
pub const ABANDONED_AFTER: Duration = Duration::from_secs(60);

/// True when drill `d` is abandoned: every fault undone, and its simian is known to be dead
/// (same machine), or its deadline passed [`ABANDONED_AFTER`] ago.
fn abandoned(store: &dyn Store, d: &Drill, now: Timestamp) -> Result<bool, StoreError> {
    if store
        .drill_leases(d.id)?
        .iter()
        .any(|l| l.ended_at.is_none())
    {
        return Ok(false);
    }
    if crate::owner::is_gone(&d.owner) {
        return Ok(true);
    }
    let overdue = Duration::try_from(now.duration_since(d.deadline)).unwrap_or_default();
    Ok(d.deadline <= now && overdue >= ABANDONED_AFTER)
}

/// Ends drill `d` as `interrupted` when it is [abandoned](abandoned); true when it did.
pub fn end_if_abandoned(store: &dyn Store, d: &Drill) -> Result<bool, StoreError> {
    let now = Timestamp::now();
    if !d.is_running() || !abandoned(store, d, now)? {
        return Ok(false);
    }
    let ended = store.end_drill(
        d.id,
        now,
        DrillEnding::Interrupted,
        "the simian that ran it stopped before the end; its faults were undone without it",
        None,
    )?;
    if ended {
        tracing::warn!(
            drill = d.id,
            "ended a drill whose simian stopped before the end"
        );
    }
    Ok(ended)
}

/// Ends every running drill whose simian died and whose faults are undone (by its guardian,
/// or by [`simian_monkey::reconcile_leases`] just before). Returns how many were ended.
pub fn reconcile_drills(store: &dyn Store) -> Result<usize, StoreError> {
    let mut ended = 0;
    for d in store.running_drills()? {
        ended += usize::from(end_if_abandoned(store, &d)?);
    }
    Ok(ended)
}
