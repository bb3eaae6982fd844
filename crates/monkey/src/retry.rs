//! How the daemon's retry loops fail: backing off, and saying so once.
//!
//! A daemon that retries a broken store or provider must neither spin (a stopped PostgreSQL
//! once drew 15,000 attempts a second) nor bury its log (8 identical lines a second). A
//! [`Retry`] keeps one loop's run of failures: the first failure is logged with its error,
//! repeats are counted and summarised at 10, 100, 1000... failures or when the error
//! changes, recovery is logged with the count, and the wait before the next attempt doubles
//! from [`Retry::BASE`] up to [`Retry::CAP`]. The decisions are pure (the caller sleeps and
//! the caller's clock does not matter), so they are tested without waiting.

use std::time::Duration;

/// What a failure means for the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    /// Log it: the first failure of a run, or a new error.
    First,
    /// Log a summary: the run has reached this many failures.
    Repeated(u64),
    /// Say nothing: counted.
    Quiet,
}

/// One retry loop's run of failures.
#[derive(Clone, Debug)]
pub struct Retry {
    what: &'static str,
    failures: u64,
    last_error: String,
}

impl Retry {
    /// The first wait after a failure.
    pub const BASE: Duration = Duration::from_millis(250);
    /// The longest wait between attempts.
    pub const CAP: Duration = Duration::from_secs(10);

    /// A loop named `what` ("making today's schedule", "reading the store").
    pub fn new(what: &'static str) -> Retry {
        Retry {
            what,
            failures: 0,
            last_error: String::new(),
        }
    }

    /// Failures in the current run.
    pub fn failures(&self) -> u64 {
        self.failures
    }

    /// Counts a failure and decides what to log (pure; see [`failed`](Self::failed)).
    pub fn count(&mut self, error: &str) -> Report {
        self.failures += 1;
        let report = if self.failures == 1 || error != self.last_error {
            Report::First
        } else if is_power_of_ten(self.failures) {
            Report::Repeated(self.failures)
        } else {
            Report::Quiet
        };
        if error != self.last_error {
            self.last_error = error.to_string();
        }
        report
    }

    /// How long to wait before the next attempt: [`BASE`](Self::BASE) doubled for each
    /// failure in the run, at most [`CAP`](Self::CAP).
    pub fn delay(&self) -> Duration {
        let doublings = self.failures.saturating_sub(1).min(16) as u32;
        Self::BASE.saturating_mul(1 << doublings).min(Self::CAP)
    }

    /// Counts a failure, logs it if it is news, and returns how long to wait.
    pub fn failed(&mut self, error: &dyn std::fmt::Display) -> Duration {
        let error = error.to_string();
        match self.count(&error) {
            Report::First => {
                tracing::warn!(error = %error, attempts = self.failures, "{} failed; will retry", self.what)
            }
            Report::Repeated(n) => {
                tracing::warn!(error = %error, attempts = n, "{} still failing", self.what)
            }
            Report::Quiet => {}
        }
        self.delay()
    }

    /// Ends a run of failures, logging the recovery when there was one.
    pub fn succeeded(&mut self) {
        if self.failures > 0 {
            tracing::info!(failed_attempts = self.failures, "{} works again", self.what);
        }
        self.failures = 0;
        self.last_error.clear();
    }
}

fn is_power_of_ten(mut n: u64) -> bool {
    while n >= 10 && n.is_multiple_of(10) {
        n /= 10;
    }
    n == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_of_the_same_failure_is_logged_once_then_summarised() {
        let mut r = Retry::new("reading the store");
        let reports: Vec<Report> = (0..1000).map(|_| r.count("connection refused")).collect();
        let loud: Vec<(usize, &Report)> = reports
            .iter()
            .enumerate()
            .filter(|(_, r)| **r != Report::Quiet)
            .collect();
        assert_eq!(
            loud,
            vec![
                (0, &Report::First),
                (9, &Report::Repeated(10)),
                (99, &Report::Repeated(100)),
                (999, &Report::Repeated(1000)),
            ]
        );
        // A different error is news; the same one again is not.
        assert_eq!(r.count("database is locked"), Report::First);
        assert_eq!(r.count("database is locked"), Report::Quiet);
        r.succeeded();
        assert_eq!(r.failures(), 0);
        assert_eq!(r.count("database is locked"), Report::First);
    }

    #[test]
    fn the_wait_doubles_up_to_the_cap() {
        let mut r = Retry::new("x");
        let waits: Vec<Duration> = (0..8)
            .map(|_| {
                r.count("e");
                r.delay()
            })
            .collect();
        assert_eq!(waits[0], Retry::BASE);
        assert_eq!(waits[1], Retry::BASE * 2);
        assert_eq!(waits[2], Retry::BASE * 4);
        assert!(waits.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(waits[7], Retry::CAP);
        for _ in 0..100_000 {
            r.count("e");
        }
        assert_eq!(r.delay(), Retry::CAP);
    }

    #[test]
    fn powers_of_ten() {
        let found: Vec<u64> = (1..=10_000).filter(|n| is_power_of_ten(*n)).collect();
        assert_eq!(found, vec![1, 10, 100, 1000, 10_000]);
    }
}
