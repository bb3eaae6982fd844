//! The demo's clock: each simulated work day's kill window, compressed into a few real seconds.
//!
//! Real time `[k·D, (k+1)·D)` shows day `k`'s window (plus a short tail so the last minute's
//! kill can fire), then the clock jumps to the next work day's window: nights, weekends and
//! holidays take no real time at all.

use std::time::{Duration, Instant};

use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use simian_core::Clock;
use simian_monkey::Calendar;

/// Simulated minutes shown after each window closes, so the last kills can fire.
const TAIL_MINUTES: i64 = 10;

/// A clock over a list of work days.
pub struct WorkdayClock {
    started: Instant,
    day_real: Duration,
    days: Vec<(Timestamp, Timestamp)>,
}

impl WorkdayClock {
    /// Shows `days` (work days of `calendar`) one after the other, `day_real` each.
    pub fn new(calendar: &Calendar, days: &[Date], day_real: Duration) -> WorkdayClock {
        WorkdayClock {
            started: Instant::now(),
            day_real,
            days: days
                .iter()
                .map(|d| {
                    let (start, end) = calendar.window(*d);
                    (start, end + SignedDuration::from_mins(TAIL_MINUTES))
                })
                .collect(),
        }
    }

    /// Which day is showing and how far into it (0..1); `None` once every day has passed.
    pub fn position(&self) -> Option<(usize, f64)> {
        let elapsed = self.started.elapsed().as_secs_f64() / self.day_real.as_secs_f64();
        let day = elapsed.floor() as usize;
        (day < self.days.len()).then_some((day, elapsed - day as f64))
    }

    /// How long `simulated` lasts in real time, inside a day's window.
    pub fn real_for(&self, simulated: Duration) -> Duration {
        let Some(&(start, end)) = self.days.first() else {
            return simulated;
        };
        let span = end.duration_since(start).as_secs_f64();
        if span <= 0.0 {
            return simulated;
        }
        self.day_real.mul_f64(simulated.as_secs_f64() / span)
    }

    /// Total real duration.
    pub fn total(&self) -> Duration {
        self.day_real * self.days.len() as u32
    }
}

impl Clock for WorkdayClock {
    fn now(&self) -> Timestamp {
        let Some(&(_, last_end)) = self.days.last() else {
            return Timestamp::now();
        };
        match self.position() {
            None => last_end,
            Some((day, fraction)) => {
                let (start, end) = self.days[day];
                let span = end.duration_since(start).as_secs_f64();
                start + SignedDuration::from_secs_f64(span * fraction)
            }
        }
    }

    fn real_wait(&self, until: Timestamp) -> Duration {
        let now = self.now();
        if until <= now {
            return Duration::ZERO;
        }
        let Some((day, _)) = self.position() else {
            return Duration::ZERO;
        };
        let (start, end) = self.days[day];
        let day_real = self.day_real.as_secs_f64();
        let target_real = if until < end {
            let fraction =
                until.duration_since(start).as_secs_f64() / end.duration_since(start).as_secs_f64();
            (day as f64 + fraction) * day_real
        } else {
            // Later than today's window: the next day starts at the next boundary.
            (day as f64 + 1.0) * day_real
        };
        Duration::from_secs_f64((target_real - self.started.elapsed().as_secs_f64()).max(0.0))
    }
}
