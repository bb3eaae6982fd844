//! `simian monkey`: makes each work day's schedule once and fires it through the engine.
//!
//! Restart-safe by construction: the schedule is persisted (a restart reuses it), each entry
//! moves out of `pending` in the same store transaction that records what happened to it, and
//! terminations recorded before a crash are resumed at start. A planned kill whose window
//! closed while the daemon was down is recorded as missed, never fired late.
//!
//! Every retry loop (the configuration, the schedule, the store, a kill) backs off and logs a
//! run of failures once, with a count ([`Retry`]), so a broken dependency never makes the
//! daemon spin or flood its log.
//!
//! With several daemons on one store (replicas of `simian serve` on PostgreSQL), a daemon that
//! dies between recording a kill and finishing it leaves the kill unfinished; a running
//! daemon that sees it unfinished for longer than [`RESUME_AFTER`] (longer than any kill can
//! take) resumes it, so a replica that never comes back loses nothing either.
//!
//! Due entries fire concurrently, each on its own thread: a kill waits for a verified death
//! (up to its grace period), and one slow kill must not delay the others. The store's atomic
//! claim makes a second attempt at the same entry a no-op, and an in-flight set keeps the
//! daemon from even trying.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use jiff::civil::Date;
use simian_core::{Check, Origin, Refusal, Schedule, ScheduleEntry};

use crate::retry::Retry;
use crate::schedule::{Fleet, collect_fleet, plan, stream_seed};
use crate::{Decision, Engine, EngineError, KillRequest, Policy, Target};

/// Counters of one daemon run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DaemonStats {
    /// Schedules made by this run (not reused).
    pub schedules_made: u64,
    /// Entries fired into a termination.
    pub fired: u64,
    /// Entries refused by a check.
    pub refused: u64,
    /// Entries whose window closed unfired.
    pub missed: u64,
    /// Terminations resumed after a restart.
    pub resumed: u64,
}

#[derive(Default)]
struct Counters {
    schedules_made: AtomicU64,
    fired: AtomicU64,
    refused: AtomicU64,
    missed: AtomicU64,
    resumed: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> DaemonStats {
        DaemonStats {
            schedules_made: self.schedules_made.load(Ordering::SeqCst),
            fired: self.fired.load(Ordering::SeqCst),
            refused: self.refused.load(Ordering::SeqCst),
            missed: self.missed.load(Ordering::SeqCst),
            resumed: self.resumed.load(Ordering::SeqCst),
        }
    }
}

/// How long (real time) a termination may stay recorded but unfinished, by another process,
/// before a running daemon resumes it: longer than any kill takes (a grace period and the
/// provider's retries).
pub const RESUME_AFTER: Duration = Duration::from_secs(600);

/// The longest time (real time) between two looks for unfinished terminations.
const ORPHAN_LOOK_EVERY: Duration = Duration::from_secs(10);

/// Unfinished terminations, by id, with when this daemon first saw each unfinished.
#[derive(Default)]
struct Orphans {
    seen: HashMap<i64, Instant>,
    resuming: HashSet<i64>,
    looked: Option<Instant>,
}

/// Of the terminations `unfinished` now, those first seen unfinished at least `after` ago;
/// `seen` forgets the ones no longer unfinished and learns the new ones.
fn orphans_due(
    seen: &mut HashMap<i64, Instant>,
    unfinished: &[i64],
    now: Instant,
    after: Duration,
) -> Vec<i64> {
    seen.retain(|id, _| unfinished.contains(id));
    unfinished
        .iter()
        .filter(|id| now.duration_since(*seen.entry(**id).or_insert(now)) >= after)
        .copied()
        .collect()
}

/// The shortest time between two passes of the loop (real time).
const MIN_PASS: Duration = Duration::from_millis(10);

/// The daemon's retry loops, each backing off and logging on its own.
struct Retries {
    clock: Retry,
    leases: Retry,
    orphans: Retry,
    config: Retry,
    schedule: Retry,
    store: Retry,
}

/// The scheduler loop.
pub struct Daemon {
    engine: Arc<Engine>,
    max_sleep: Duration,
    counters: Arc<Counters>,
    inflight: Arc<Mutex<HashSet<i64>>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    retries: Mutex<Retries>,
    kills: Arc<Mutex<Retry>>,
    resume_after: Duration,
    orphans: Arc<Mutex<Orphans>>,
}

/// What one pass decided: when to wake, and how long to back off after a failure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Step {
    /// The next moment something is due (on the engine's clock).
    pub next: Option<Timestamp>,
    /// Set when part of the pass failed: wait at least this long (real time) before retrying.
    pub backoff: Option<Duration>,
}

impl Daemon {
    /// A daemon over `engine`, waking at least every `max_sleep` of real time to notice
    /// shutdown and configuration changes.
    pub fn new(engine: Arc<Engine>, max_sleep: Duration) -> Daemon {
        Daemon {
            engine,
            max_sleep,
            counters: Arc::default(),
            inflight: Arc::default(),
            workers: Mutex::default(),
            retries: Mutex::new(Retries {
                clock: Retry::new("advancing the clock"),
                leases: Retry::new("undoing expired faults"),
                orphans: Retry::new("resuming unfinished kills"),
                config: Retry::new("reading the configuration"),
                schedule: Retry::new("making today's schedule"),
                store: Retry::new("reading the store"),
            }),
            kills: Arc::new(Mutex::new(Retry::new("firing a planned kill"))),
            resume_after: RESUME_AFTER,
            orphans: Arc::default(),
        }
    }

    /// Resumes a termination left unfinished by another process once it has been so for
    /// `after` (default [`RESUME_AFTER`]).
    pub fn resume_after(mut self, after: Duration) -> Daemon {
        self.resume_after = after;
        self
    }

    /// Resumes, each on its own thread, the terminations unfinished for longer than
    /// `resume_after` that no thread of this daemon is finishing.
    fn resume_orphans(&self) -> Result<(), EngineError> {
        let now = Instant::now();
        let mut orphans = self.orphans.lock().unwrap_or_else(|e| e.into_inner());
        let every = (self.resume_after / 4).min(ORPHAN_LOOK_EVERY);
        if orphans
            .looked
            .is_some_and(|at| now.duration_since(at) < every)
        {
            return Ok(());
        }
        orphans.looked = Some(now);
        let unfinished = self.engine.store().unfinished()?;
        let firing = self
            .inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let candidates: Vec<i64> = unfinished
            .iter()
            .filter(|t| !t.schedule_entry.is_some_and(|e| firing.contains(&e)))
            .map(|t| t.id)
            .collect();
        let due = orphans_due(&mut orphans.seen, &candidates, now, self.resume_after);
        for t in unfinished {
            if !due.contains(&t.id) || !orphans.resuming.insert(t.id) {
                continue;
            }
            let (engine, counters, all) = (
                self.engine.clone(),
                self.counters.clone(),
                self.orphans.clone(),
            );
            let id = t.id;
            let started = self.spawn_worker(format!("resume-{id}"), move || {
                match engine.resume(t) {
                    Ok(_) => {
                        counters.resumed.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(e) => tracing::warn!(id, error = %e, "resuming an unfinished kill failed; retried later"),
                }
                all.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .resuming
                    .remove(&id);
            });
            if started.is_err() {
                orphans.resuming.remove(&id);
            }
        }
        Ok(())
    }

    /// Runs `work` on a thread of its own, joined by [`Daemon::wait_for_kills`].
    fn spawn_worker(
        &self,
        name: String,
        work: impl FnOnce() + Send + 'static,
    ) -> std::io::Result<()> {
        let handle = std::thread::Builder::new().name(name).spawn(work)?;
        self.workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(handle);
        Ok(())
    }

    fn retries(&self) -> std::sync::MutexGuard<'_, Retries> {
        self.retries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The counters so far.
    pub fn stats(&self) -> DaemonStats {
        self.counters.snapshot()
    }

    /// Runs until `shutdown` is set. Store failures are logged and retried, never fatal.
    pub fn run(&self, shutdown: &AtomicBool) -> Result<DaemonStats, EngineError> {
        let resumed = self.engine.resume_unfinished()?.len() as u64;
        self.counters.resumed.fetch_add(resumed, Ordering::SeqCst);
        self.engine.reconcile_leases()?;
        while !shutdown.load(Ordering::SeqCst) {
            let step = match self.step() {
                Ok(step) => {
                    self.retries().store.succeeded();
                    step
                }
                Err(e) => Step {
                    next: None,
                    backoff: Some(self.retries().store.failed(&e)),
                },
            };
            let wait = step.next.map_or(self.max_sleep, |t| {
                self.engine.clock().real_wait(t).min(self.max_sleep)
            });
            // A failing pass never spins: it waits out its backoff, however soon work is due;
            // and no pass follows another sooner than MIN_PASS, whatever the clock says.
            let wait = wait.max(step.backoff.unwrap_or_default()).max(MIN_PASS);
            sleep_unless(shutdown, wait);
            self.wait_for_kills(false);
        }
        // Kills under way finish (and are recorded) before the daemon exits.
        self.wait_for_kills(true);
        let stats = self.stats();
        tracing::info!(?stats, "monkey stopped");
        Ok(stats)
    }

    /// Joins finished kill threads; with `all`, waits for every kill under way.
    pub fn wait_for_kills(&self, all: bool) {
        let mut workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        let (done, running): (Vec<_>, Vec<_>) =
            workers.drain(..).partition(|h| all || h.is_finished());
        *workers = running;
        drop(workers);
        for h in done {
            let _ = h.join();
        }
    }

    /// One pass: make today's schedule if needed, fire what is due. Returns when to wake,
    /// and how long to back off when part of the pass failed.
    pub fn step(&self) -> Result<Step, EngineError> {
        let now = self.engine.clock().now();
        let mut backoff: Option<Duration> = None;
        if now == Timestamp::MAX {
            // A simulated clock saturates here: no later day exists to schedule or wait for.
            let e = "the clock has reached the end of representable time (9999-12-31); nothing more can be scheduled: restart with another --clock-start";
            backoff = Some(self.retries().clock.failed(&e));
        }
        let policy = match self.engine.policy() {
            Ok(p) => {
                self.retries().config.succeeded();
                Some(p)
            }
            Err(e) => {
                let e = format!("{e} (no new schedule until it is fixed)");
                backoff = Some(self.retries().config.failed(&e));
                None
            }
        };
        // Faults whose guardian died are undone here once their deadline passes.
        match self.engine.reconcile_leases() {
            Ok(_) => self.retries().leases.succeeded(),
            Err(e) => {
                let wait = self.retries().leases.failed(&e);
                backoff = Some(backoff.unwrap_or_default().max(wait));
            }
        }
        // Kills another replica recorded and never finished.
        match self.resume_orphans() {
            Ok(()) => self.retries().orphans.succeeded(),
            Err(e) => {
                let wait = self.retries().orphans.failed(&e);
                backoff = Some(backoff.unwrap_or_default().max(wait));
            }
        }
        if let Some(policy) = &policy {
            let today = policy.calendar.local_date(now);
            match self.ensure_schedule(policy, today, now) {
                Ok(_) => self.retries().schedule.succeeded(),
                Err(e) => {
                    let e = format!("{today}: {e}");
                    let wait = self.retries().schedule.failed(&e);
                    backoff = Some(backoff.unwrap_or_default().max(wait));
                }
            }
        }
        for entry in self.engine.store().due_entries(now)? {
            let id = entry.id;
            if !self
                .inflight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id)
            {
                continue;
            }
            let (engine, counters, inflight, policy, kills) = (
                self.engine.clone(),
                self.counters.clone(),
                self.inflight.clone(),
                policy.clone(),
                self.kills.clone(),
            );
            let worker = self.spawn_worker(format!("kill-{}", entry.id), move || {
                let result = fire(&engine, policy.as_ref(), &entry, now, &counters);
                let mut retry = kills.lock().unwrap_or_else(|e| e.into_inner());
                match result {
                    Ok(()) => retry.succeeded(),
                    Err(e) => {
                        let e = format!("entry {} stays pending and is retried: {e}", entry.id);
                        retry.failed(&e);
                    }
                }
                drop(retry);
                inflight
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&entry.id);
            });
            if let Err(e) = worker {
                let e = format!("cannot start a kill thread: {e}");
                let wait = self
                    .kills
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .failed(&e);
                backoff = Some(backoff.unwrap_or_default().max(wait));
                self.inflight
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&id);
            }
        }
        let next_pending = self.engine.store().next_pending()?;
        let next_day = policy.as_ref().map(|p| {
            let (_, midnight) = p.calendar.day_bounds(p.calendar.local_date(now));
            midnight
        });
        let kill_failures = {
            let kills = self.kills.lock().unwrap_or_else(|e| e.into_inner());
            (kills.failures() > 0).then(|| kills.delay())
        };
        if let Some(wait) = kill_failures {
            backoff = Some(backoff.unwrap_or_default().max(wait));
        }
        Ok(Step {
            next: [next_pending, next_day].into_iter().flatten().min(),
            backoff,
        })
    }

    /// The stored schedule for `date`, made (and stored) if there is none yet.
    pub fn ensure_schedule(
        &self,
        policy: &Policy,
        date: Date,
        now: Timestamp,
    ) -> Result<Schedule, String> {
        let store = self.engine.store();
        if let Some(existing) = store.schedule(date).map_err(|e| e.to_string())? {
            return Ok(existing);
        }
        let fleet = if policy.calendar.is_work_day(date) {
            collect_fleet(policy, self.engine.providers()).map_err(|e| e.to_string())?
        } else {
            Fleet::new()
        };
        let seed = policy.seed.unwrap_or_else(rand::random);
        let planned = plan(policy, &fleet, date, seed, Some(now), now);
        let stored = store.save_schedule(&planned).map_err(|e| e.to_string())?;
        // The store keeps milliseconds; another replica's schedule has another made_at.
        if stored.made_at.as_millisecond() == planned.made_at.as_millisecond()
            && stored.seed == planned.seed
        {
            self.counters.schedules_made.fetch_add(1, Ordering::SeqCst);
            self.engine
                .notifier()
                .notify(simian_core::Event::Schedule(&stored));
        }
        Ok(stored)
    }
}

/// Fires one due entry: missed if its window closed, else through the engine.
fn fire(
    engine: &Engine,
    policy: Option<&Policy>,
    entry: &ScheduleEntry,
    now: Timestamp,
    counters: &Counters,
) -> Result<(), EngineError> {
    if let Some(policy) = policy {
        let (_, window_end) = policy.calendar.window(entry.date);
        if now >= window_end {
            let refusal = Refusal {
                id: 0,
                at: now,
                app: entry.group.app.clone(),
                account: entry.group.account.clone(),
                region: entry.group.region.clone().unwrap_or_default(),
                stack: entry.group.stack.clone().unwrap_or_default(),
                cluster: entry.group.cluster.clone().unwrap_or_default(),
                instance_id: None,
                check: Check::Missed,
                reason: format!(
                    "planned for {} but the monkey was not running before its window closed at {}",
                    entry.time, window_end
                ),
                dry_run: policy.dry_run,
                schedule_entry: Some(entry.id),
                origin: Origin::Schedule,
            };
            if let Decision::Refused(_) = engine.refuse(refusal)? {
                counters.missed.fetch_add(1, Ordering::SeqCst);
            }
            return Ok(());
        }
    }
    let request = KillRequest {
        target: Target::group(&entry.group),
        dry_run: None,
        origin: Origin::Schedule,
        schedule_entry: Some(entry.id),
        pick_seed: Some(stream_seed(
            entry.time.as_second() as u64,
            entry.date,
            &entry.group.key(),
        )),
    };
    engine.notifier().notify(simian_core::Event::Fired {
        planned: entry.time,
        issued: now,
    });
    match engine.terminate(&request)? {
        Decision::Terminated(_) => {
            counters.fired.fetch_add(1, Ordering::SeqCst);
        }
        Decision::Refused(_) => {
            counters.refused.fetch_add(1, Ordering::SeqCst);
        }
        Decision::AlreadyHandled => {}
    }
    Ok(())
}

/// Sleeps `total`, in short slices, returning early once `flag` is set.
pub fn sleep_unless(flag: &AtomicBool, total: Duration) {
    let slice = Duration::from_millis(50);
    let mut left = total;
    while !left.is_zero() && !flag.load(Ordering::SeqCst) {
        let d = left.min(slice);
        std::thread::sleep(d);
        left = left.saturating_sub(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unfinished_kill_is_due_only_after_being_seen_unfinished_long_enough() {
        let after = Duration::from_secs(600);
        let t0 = Instant::now();
        let mut seen = HashMap::new();
        assert!(orphans_due(&mut seen, &[1, 2], t0, after).is_empty());
        let t1 = t0 + Duration::from_secs(300);
        assert!(orphans_due(&mut seen, &[1, 2, 3], t1, after).is_empty());
        // 2 was finished meanwhile and is forgotten; 1 is due, 3 not yet.
        let t2 = t0 + Duration::from_secs(600);
        assert_eq!(orphans_due(&mut seen, &[1, 3], t2, after), vec![1]);
        assert!(!seen.contains_key(&2));
        let t3 = t1 + after;
        assert_eq!(orphans_due(&mut seen, &[1, 3], t3, after), vec![1, 3]);
        // Unfinished again later: the wait starts over.
        assert!(orphans_due(&mut seen, &[], t3, after).is_empty());
        assert!(orphans_due(&mut seen, &[1], t3, after).is_empty());
    }
}
