//! The daily schedule: which groups lose an instance today, and when.
//!
//! Each work day, each group draws `u ~ U[0,1)` and plans a kill when `u < 1/μ`, at a
//! uniformly random whole minute of the day's window `[start_hour, end_hour)` local time,
//! counted in real minutes (so DST days are right). When the schedule is made inside the
//! window, the draw is restricted to minutes not yet past. The output depends only on
//! (date, calendar, groups, seed, not_before): each group draws from its own stream, seeded
//! from (seed, date, group key), so adding a group never moves the others' kills.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use simian_core::{Instance, NewSchedule, PlannedKill, Provider, ProviderError};

use crate::calendar::minutes_ceil;
use crate::{AppPolicy, Calendar, Policy, eligibility};

/// The current inventory, by configured provider name.
pub type Fleet = BTreeMap<String, Vec<Instance>>;

/// Lists, once per provider, the inventory of every provider an enabled app names; unknown
/// provider names are skipped (configuration validation reports them).
pub fn collect_fleet(
    policy: &Policy,
    providers: &BTreeMap<String, Arc<dyn Provider>>,
) -> Result<Fleet, ProviderError> {
    let mut fleet = Fleet::new();
    for app in policy.apps.iter().filter(|a| a.enabled) {
        if let (false, Some(p)) = (
            fleet.contains_key(&app.provider),
            providers.get(&app.provider),
        ) {
            fleet.insert(app.provider.clone(), p.instances()?);
        }
    }
    Ok(fleet)
}

/// The fleet size from which [`plan`] uses a second thread.
const PARALLEL_FROM: usize = 100_000;

/// Plans `date` for every enabled app of `policy` over `fleet`.
///
/// `not_before` is "now" when the schedule is made for today: no planned kill is earlier than
/// the next whole minute after it. A date that is not a work day gets an empty schedule.
pub fn plan(
    policy: &Policy,
    fleet: &Fleet,
    date: Date,
    seed: u64,
    not_before: Option<Timestamp>,
    made_at: Timestamp,
) -> NewSchedule {
    let calendar = &policy.calendar;
    let mut kills = Vec::new();
    if calendar.is_work_day(date) {
        // One pass over each inventory, bucketing by app, rather than one pass per app.
        let mut by_app: HashMap<(&str, &str), Vec<&Instance>, foldhash::fast::RandomState> =
            HashMap::default();
        for (provider, instances) in fleet {
            for i in instances {
                by_app
                    .entry((provider.as_str(), i.app.as_str()))
                    .or_default()
                    .push(i);
            }
        }
        let apps: Vec<&AppPolicy> = policy.apps.iter().filter(|a| a.enabled).collect();
        let plan_apps = |apps: &[&AppPolicy]| {
            let mut kills = Vec::new();
            for app in apps {
                let Some(instances) = by_app.get(&(app.provider.as_str(), app.name.as_str()))
                else {
                    continue;
                };
                let p = app.daily_probability();
                for group in eligibility::groups(app, instances.iter().copied()) {
                    let mut rng = ChaCha8Rng::seed_from_u64(stream_seed(seed, date, &group.key()));
                    if let Some(time) = draw(calendar, date, p, not_before, &mut rng) {
                        kills.push(PlannedKill { time, group });
                    }
                }
            }
            kills
        };
        // Each group draws from its own stream, so the apps can be planned on two threads
        // and the result is the same, once sorted; small fleets stay on one.
        let fleet_size: usize = by_app.values().map(Vec::len).sum();
        if fleet_size >= PARALLEL_FROM && apps.len() > 1 {
            let (first, second) = apps.split_at(apps.len() / 2);
            let other = std::thread::scope(|scope| {
                let helper = scope.spawn(|| plan_apps(second));
                kills = plan_apps(first);
                helper.join()
            });
            match other {
                Ok(more) => kills.extend(more),
                Err(_) => kills.extend(plan_apps(second)),
            }
        } else {
            kills = plan_apps(&apps);
        }
    }
    kills.sort_by(|a, b| (a.time, &a.group).cmp(&(b.time, &b.group)));
    NewSchedule {
        date,
        seed,
        made_at,
        kills,
    }
}

/// One group's draw on `date`: `Some(time)` when it plans a kill.
///
/// Both random numbers are always drawn, so the stream's use does not depend on the outcome.
pub fn draw(
    calendar: &Calendar,
    date: Date,
    p: f64,
    not_before: Option<Timestamp>,
    rng: &mut impl Rng,
) -> Option<Timestamp> {
    let u: f64 = rng.random();
    let fraction: f64 = rng.random();
    if u >= p {
        return None;
    }
    let (start, end) = calendar.window(date);
    let minutes = end.duration_since(start).as_secs() / 60;
    let first = not_before.map_or(0, |t| minutes_ceil(start, t));
    if first >= minutes {
        return None;
    }
    let span = minutes - first;
    // floor(fraction * span) is uniform on [0, span) for span far below 2^53.
    let offset = first + ((fraction * span as f64) as i64).min(span - 1);
    Some(start + SignedDuration::from_mins(offset))
}

/// The seed of one group's stream on one date: FNV-1a over (seed, date, key), then a
/// SplitMix64 finaliser. Stable across platforms and Rust versions, unlike `std`'s hasher.
pub fn stream_seed(seed: u64, date: Date, key: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    };
    eat(&seed.to_le_bytes());
    eat(date.to_string().as_bytes());
    eat(key.as_bytes());
    splitmix64(h)
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests;
