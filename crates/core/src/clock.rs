//! What time it is, injected.
//!
//! The decision code never asks the operating system for the time: it takes a [`Clock`]. The
//! daemon uses [`SystemClock`] in production, [`ScaledClock`] to run a simulated calendar
//! faster than real time (tests, demos), and tests of pure code use [`FixedClock`].

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use jiff::{SignedDuration, Timestamp};

/// A source of "now", and a way to know how long to really wait for a moment to come.
pub trait Clock: Send + Sync {
    /// The current instant on this clock.
    fn now(&self) -> Timestamp;

    /// How long to sleep in real time until `until` is reached on this clock (zero if past).
    fn real_wait(&self, until: Timestamp) -> Duration;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    fn real_wait(&self, until: Timestamp) -> Duration {
        positive(until.duration_since(Timestamp::now()))
    }
}

/// A clock that runs `speed` times faster than real time from `start`, counted from a real
/// `anchor` instant.
///
/// Because it is anchored to a real instant, a restarted process given the same anchor
/// continues the same simulated timeline: that is what the crash-restart tests rely on.
#[derive(Debug, Clone, Copy)]
pub struct ScaledClock {
    start: Timestamp,
    anchor: SystemTime,
    speed: f64,
}

impl ScaledClock {
    /// The fastest a simulated clock may run: a simulated year in about 30 real seconds.
    pub const MAX_SPEED: f64 = 1_000_000.0;
    /// The slowest: one simulated second in about 17 real minutes.
    pub const MIN_SPEED: f64 = 0.001;

    /// Simulated time `start` at real instant `anchor`, advancing `speed` times real time.
    ///
    /// # Errors
    /// A speed that is not a number in [`MIN_SPEED`](Self::MIN_SPEED) to
    /// [`MAX_SPEED`](Self::MAX_SPEED).
    pub fn new(start: Timestamp, anchor: SystemTime, speed: f64) -> Result<ScaledClock, String> {
        if !(Self::MIN_SPEED..=Self::MAX_SPEED).contains(&speed) {
            return Err(format!(
                "speed {} is out of range: use a number from {} to {}",
                short_number(speed),
                Self::MIN_SPEED,
                Self::MAX_SPEED
            ));
        }
        Ok(ScaledClock {
            start,
            anchor,
            speed,
        })
    }

    /// The speed factor.
    pub fn speed(&self) -> f64 {
        self.speed
    }
}

impl Clock for ScaledClock {
    fn now(&self) -> Timestamp {
        let real = SystemTime::now()
            .duration_since(self.anchor)
            .unwrap_or_default();
        // Saturating all the way: the end of representable time is a time, not a panic.
        let simulated = Duration::try_from_secs_f64(real.as_secs_f64() * self.speed)
            .ok()
            .and_then(|d| SignedDuration::try_from(d).ok())
            .unwrap_or(SignedDuration::MAX);
        self.start.checked_add(simulated).unwrap_or(Timestamp::MAX)
    }

    fn real_wait(&self, until: Timestamp) -> Duration {
        let simulated = positive(until.duration_since(self.now()));
        Duration::try_from_secs_f64(simulated.as_secs_f64() / self.speed).unwrap_or(Duration::MAX)
    }
}

/// A clock that stands still until told to move; for tests.
#[derive(Debug)]
pub struct FixedClock(Mutex<Timestamp>);

impl FixedClock {
    /// A clock showing `now`.
    pub fn new(now: Timestamp) -> FixedClock {
        FixedClock(Mutex::new(now))
    }

    /// Moves the clock to `now`.
    pub fn set(&self, now: Timestamp) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = now;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn real_wait(&self, _until: Timestamp) -> Duration {
        Duration::ZERO
    }
}

/// `x` as a person would write it: `1e300` rather than 301 digits.
pub fn short_number(x: f64) -> String {
    if x != 0.0 && x.is_finite() && !(1e-3..1e9).contains(&x.abs()) {
        format!("{x:e}")
    } else {
        format!("{x}")
    }
}

fn positive(d: SignedDuration) -> Duration {
    Duration::try_from(d).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_clock_runs_faster() {
        let start: Timestamp = "2026-03-02T17:00:00Z".parse().unwrap();
        let anchor = SystemTime::now() - Duration::from_secs(10);
        let clock = ScaledClock::new(start, anchor, 60.0).unwrap();
        let elapsed = clock.now().duration_since(start);
        assert!(elapsed >= SignedDuration::from_mins(10), "{elapsed:?}");
        assert!(elapsed < SignedDuration::from_mins(11), "{elapsed:?}");
        let wait = clock.real_wait(start + SignedDuration::from_mins(20));
        assert!(
            wait <= Duration::from_secs(10) && wait > Duration::from_secs(8),
            "{wait:?}"
        );
    }

    #[test]
    fn extreme_clocks_saturate_instead_of_panicking() {
        for speed in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e300, 1e7] {
            assert!(ScaledClock::new(Timestamp::MIN, SystemTime::now(), speed).is_err());
        }
        // The fastest clock, anchored long ago, near the end of time.
        let late: Timestamp = "9999-12-30T00:00:00Z".parse().unwrap();
        let clock = ScaledClock::new(late, SystemTime::UNIX_EPOCH, ScaledClock::MAX_SPEED).unwrap();
        assert_eq!(clock.now(), Timestamp::MAX);
        assert_eq!(clock.real_wait(Timestamp::MAX), Duration::ZERO);
        let slow =
            ScaledClock::new(Timestamp::MIN, SystemTime::now(), ScaledClock::MIN_SPEED).unwrap();
        assert!(slow.real_wait(Timestamp::MAX) > Duration::from_secs(1 << 40));
    }
}
