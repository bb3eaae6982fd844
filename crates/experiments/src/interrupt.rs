//! Ending a run early: a signal, or a stop condition that tripped.
//!
//! One [`Interrupt`] is shared by everything that runs during the method (activities,
//! pauses, background work, the continuous hypothesis): the first reason to stop wins and is
//! kept for the journal, and every wait in the runner wakes up at once when it trips.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde::Serialize;

/// Why and when a run was stopped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Stopped {
    /// `signal` or `stop_condition`.
    pub by: String,
    /// The signal (`SIGINT`) or the stop condition's name.
    pub name: String,
    /// What was seen.
    pub reason: String,
    /// When it tripped.
    pub at: Timestamp,
}

/// A one-way latch with a reason, that wakes every waiter.
#[derive(Debug, Default)]
pub struct Interrupt {
    why: Mutex<Option<Stopped>>,
    changed: Condvar,
}

impl Interrupt {
    /// A latch that has not tripped.
    pub fn new() -> Interrupt {
        Interrupt::default()
    }

    /// Trips the latch; false if it had already tripped (the first reason is kept).
    pub fn trip(&self, why: Stopped) -> bool {
        let mut guard = self.why.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_some() {
            return false;
        }
        *guard = Some(why);
        self.changed.notify_all();
        true
    }

    /// Why it tripped, if it has.
    pub fn stopped(&self) -> Option<Stopped> {
        self.why.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether it has tripped.
    pub fn is_tripped(&self) -> bool {
        self.why.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// Sleeps for `d`, or less if the latch trips: true when the whole time passed.
    pub fn sleep(&self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        let mut guard = self.why.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if guard.is_some() {
                return false;
            }
            let now = Instant::now();
            if now >= deadline {
                return true;
            }
            guard = self
                .changed
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}
