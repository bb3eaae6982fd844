//! The work calendar: which days are work days, and the kill window on each.
//!
//! Every date and every hour comes from the one configured time zone (Chaos Monkey 2 took the
//! date from the host's zone and the hour from the configured one). Windows are computed as
//! real instants, so on DST days a window is shorter or longer in real minutes and never
//! contains a local time that does not exist.

use std::collections::BTreeSet;

use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

/// An error in the calendar's settings.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CalendarError {
    /// Hours out of order or range.
    #[error("start_hour ({start}) must be less than end_hour ({end}), and end_hour at most 24")]
    Hours {
        /// start_hour.
        start: u8,
        /// end_hour.
        end: u8,
    },
    /// No work day at all.
    #[error(
        "work_days is empty: name at least one day, for example [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\"]"
    )]
    NoWorkDays,
}

/// Work days, holidays and the daily kill window, in one time zone.
#[derive(Clone, Debug)]
pub struct Calendar {
    tz: TimeZone,
    start_hour: u8,
    end_hour: u8,
    work_days: [bool; 7],
    holidays: BTreeSet<Date>,
}

impl Calendar {
    /// A calendar whose kill window is `[start_hour, end_hour)` local time in `tz`.
    pub fn new(
        tz: TimeZone,
        start_hour: u8,
        end_hour: u8,
        work_days: &[Weekday],
        holidays: impl IntoIterator<Item = Date>,
    ) -> Result<Calendar, CalendarError> {
        if start_hour >= end_hour || end_hour > 24 {
            return Err(CalendarError::Hours {
                start: start_hour,
                end: end_hour,
            });
        }
        if work_days.is_empty() {
            return Err(CalendarError::NoWorkDays);
        }
        let mut days = [false; 7];
        for day in work_days {
            days[day.to_monday_zero_offset() as usize] = true;
        }
        Ok(Calendar {
            tz,
            start_hour,
            end_hour,
            work_days: days,
            holidays: holidays.into_iter().collect(),
        })
    }

    /// Monday to Friday, 9 to 15, in `tz`, no holidays: Chaos Monkey's defaults.
    pub fn weekdays(tz: TimeZone) -> Calendar {
        use Weekday::*;
        Calendar::new(
            tz,
            9,
            15,
            &[Monday, Tuesday, Wednesday, Thursday, Friday],
            [],
        )
        .unwrap_or_else(|_| unreachable!("the defaults are valid"))
    }

    /// The time zone.
    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// First hour of the window.
    pub fn start_hour(&self) -> u8 {
        self.start_hour
    }

    /// Hour the window closes (exclusive).
    pub fn end_hour(&self) -> u8 {
        self.end_hour
    }

    /// The local date of an instant.
    pub fn local_date(&self, t: Timestamp) -> Date {
        t.to_zoned(self.tz.clone()).date()
    }

    /// True when kills may be planned on `date`.
    pub fn is_work_day(&self, date: Date) -> bool {
        self.work_days[date.weekday().to_monday_zero_offset() as usize]
            && !self.holidays.contains(&date)
    }

    /// The work days of the week, Monday first.
    pub fn work_days(&self) -> Vec<Weekday> {
        (0..7)
            .filter(|&i| self.work_days[i as usize])
            .map(|i| Weekday::from_monday_zero_offset(i).unwrap_or(Weekday::Monday))
            .collect()
    }

    /// The configured holidays.
    pub fn holidays(&self) -> &BTreeSet<Date> {
        &self.holidays
    }

    /// True when `date` is a configured holiday.
    pub fn is_holiday(&self, date: Date) -> bool {
        self.holidays.contains(&date)
    }

    /// The instant `hour:00` local on `date` (24 means the next midnight). A local time that
    /// does not exist (DST gap) resolves to the first instant after the gap.
    pub fn at_hour(&self, date: Date, hour: u8) -> Timestamp {
        let (date, hour) = if hour >= 24 {
            (date.tomorrow().unwrap_or(date), 0)
        } else {
            (date, hour)
        };
        date.at(hour as i8, 0, 0, 0)
            .to_zoned(self.tz.clone())
            .map(|z| z.timestamp())
            .unwrap_or(Timestamp::MAX)
    }

    /// The kill window on `date`: `[start_hour, end_hour)` local, as instants.
    pub fn window(&self, date: Date) -> (Timestamp, Timestamp) {
        (
            self.at_hour(date, self.start_hour),
            self.at_hour(date, self.end_hour),
        )
    }

    /// The local day `date` as instants: `[midnight, next midnight)`.
    pub fn day_bounds(&self, date: Date) -> (Timestamp, Timestamp) {
        let start = date
            .to_zoned(self.tz.clone())
            .map(|z| z.timestamp())
            .unwrap_or(Timestamp::MIN);
        let end = date
            .tomorrow()
            .ok()
            .and_then(|d| d.to_zoned(self.tz.clone()).ok())
            .map(|z| z.timestamp())
            .unwrap_or(Timestamp::MAX);
        (start, end)
    }

    /// The `n`-th work day strictly before `date` (`n = 0` gives `date` itself).
    pub fn work_days_before(&self, date: Date, n: u32) -> Date {
        let mut day = date;
        let mut left = n;
        // A calendar has at least one work day a week, so this ends within 7 * n + 7 steps;
        // the bound also keeps a calendar of all holidays from looping.
        for _ in 0..(7 * n as usize + 7 + self.holidays.len()) {
            if left == 0 {
                break;
            }
            day = match day.yesterday() {
                Ok(d) => d,
                Err(_) => break,
            };
            if self.is_work_day(day) {
                left -= 1;
            }
        }
        day
    }

    /// The minimum-time floor: a kill in the same group at or after the returned instant
    /// blocks a kill at `now`. It is `end_hour` on the `min_days`-th work day before today,
    /// as in Chaos Monkey 2 (with 0, today at `end_hour`, which blocks nothing inside the
    /// window).
    pub fn min_time_threshold(&self, now: Timestamp, min_days: u32) -> Timestamp {
        let day = self.work_days_before(self.local_date(now), min_days);
        self.at_hour(day, self.end_hour)
    }

    /// The next `n` work days starting at `from` (inclusive).
    pub fn work_days_from(&self, from: Date, n: usize) -> Vec<Date> {
        let mut out = Vec::with_capacity(n);
        let mut day = from;
        // Bounded as above: a year of days per requested day is far more than any calendar needs.
        let mut budget = 366 * n.max(1) + self.holidays.len();
        while out.len() < n && budget > 0 {
            if self.is_work_day(day) {
                out.push(day);
            }
            day = match day.tomorrow() {
                Ok(d) => d,
                Err(_) => break,
            };
            budget -= 1;
        }
        out
    }

    /// Real minutes in the window on `date` (shorter or longer on DST days).
    pub fn window_minutes(&self, date: Date) -> i64 {
        let (start, end) = self.window(date);
        end.duration_since(start).as_secs() / 60
    }
}

/// Whole minutes from `from` to `to`, rounded up; 0 when `to` is not after `from`.
pub(crate) fn minutes_ceil(from: Timestamp, to: Timestamp) -> i64 {
    let d = to.duration_since(from);
    if d <= SignedDuration::ZERO {
        return 0;
    }
    let secs = d.as_secs() + i64::from(d.subsec_nanos() > 0);
    (secs + 59) / 60
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn la() -> Calendar {
        let tz = TimeZone::get("America/Los_Angeles").unwrap();
        Calendar::new(
            tz,
            9,
            15,
            &[
                Weekday::Monday,
                Weekday::Tuesday,
                Weekday::Wednesday,
                Weekday::Thursday,
                Weekday::Friday,
            ],
            [date(2026, 12, 25)],
        )
        .unwrap()
    }

    #[test]
    fn rejects_bad_hours() {
        let tz = TimeZone::UTC;
        assert!(Calendar::new(tz.clone(), 15, 9, &[Weekday::Monday], []).is_err());
        assert!(Calendar::new(tz.clone(), 9, 9, &[Weekday::Monday], []).is_err());
        assert!(Calendar::new(tz.clone(), 9, 25, &[Weekday::Monday], []).is_err());
        assert!(Calendar::new(tz.clone(), 0, 24, &[Weekday::Monday], []).is_ok());
        assert_eq!(
            Calendar::new(tz, 9, 15, &[], []).unwrap_err(),
            CalendarError::NoWorkDays
        );
    }

    #[test]
    fn work_days_and_holidays() {
        let c = la();
        assert!(c.is_work_day(date(2026, 12, 24)));
        assert!(!c.is_work_day(date(2026, 12, 25)), "holiday");
        assert!(!c.is_work_day(date(2026, 12, 26)), "saturday");
        assert_eq!(
            c.work_days_from(date(2026, 12, 24), 2),
            vec![date(2026, 12, 24), date(2026, 12, 28)]
        );
    }

    #[test]
    fn window_on_dst_days() {
        let c = la();
        // 2026-03-08: clocks spring forward; 9:00 is PDT (UTC-7).
        let (s, e) = c.window(date(2026, 3, 8));
        assert_eq!(s.to_string(), "2026-03-08T16:00:00Z");
        assert_eq!(e.to_string(), "2026-03-08T22:00:00Z");
        // 2026-11-01: clocks fall back; 9:00 is PST (UTC-8).
        let (s, _) = c.window(date(2026, 11, 1));
        assert_eq!(s.to_string(), "2026-11-01T17:00:00Z");
        // A window across the gap is an hour shorter, across the overlap an hour longer.
        let night = Calendar::new(
            TimeZone::get("America/Los_Angeles").unwrap(),
            1,
            4,
            &[Weekday::Sunday],
            [],
        )
        .unwrap();
        assert_eq!(night.window_minutes(date(2026, 3, 8)), 120);
        assert_eq!(night.window_minutes(date(2026, 11, 1)), 240);
        assert_eq!(night.window_minutes(date(2026, 11, 8)), 180);
    }

    #[test]
    fn local_date_uses_the_configured_zone() {
        let c = la();
        // 03:00 UTC on the 3rd is still the 2nd in Los Angeles.
        let t: Timestamp = "2026-03-03T03:00:00Z".parse().unwrap();
        assert_eq!(c.local_date(t), date(2026, 3, 2));
    }

    #[test]
    fn min_time_threshold_counts_work_days() {
        let c = la();
        // Monday 2026-03-02 10:00 local.
        let monday: Timestamp = "2026-03-02T18:00:00Z".parse().unwrap();
        // ε = 1: since Friday at 15:00 local.
        assert_eq!(
            c.min_time_threshold(monday, 1),
            c.at_hour(date(2026, 2, 27), 15)
        );
        // ε = 0: today at end_hour.
        assert_eq!(
            c.min_time_threshold(monday, 0),
            c.at_hour(date(2026, 3, 2), 15)
        );
        // ε = 2 from Monday 2026-12-28 skips the weekend and the Christmas holiday.
        let after_xmas: Timestamp = "2026-12-28T18:00:00Z".parse().unwrap();
        assert_eq!(
            c.min_time_threshold(after_xmas, 2),
            c.at_hour(date(2026, 12, 23), 15)
        );
    }

    #[test]
    fn minutes_round_up() {
        let t: Timestamp = "2026-03-02T18:00:00Z".parse().unwrap();
        assert_eq!(minutes_ceil(t, t), 0);
        assert_eq!(minutes_ceil(t, t + SignedDuration::from_secs(1)), 1);
        assert_eq!(minutes_ceil(t, t + SignedDuration::from_secs(60)), 1);
        assert_eq!(minutes_ceil(t, t + SignedDuration::from_secs(61)), 2);
        assert_eq!(minutes_ceil(t + SignedDuration::from_secs(5), t), 0);
    }
}
