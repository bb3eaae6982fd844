//! The daemon over half a simulated year, stepped on a fixed clock against a real SQLite
//! store and a static inventory: the minimum time between kills is never broken, every
//! planned kill ends fired or refused, and nothing is left pending.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;
use jiff::civil::{Weekday, date};
use jiff::tz::TimeZone;
use simian_core::{
    Check, Clock, EntryStatus, FixedClock, Grouping, HistoryFilter, LogNotifier, NoOutageCheck,
    Provider, Store,
};
use simian_monkey::{AppPolicy, Calendar, Daemon, Engine, Policy};
use simian_providers::StaticProvider;

fn fleet_file(dir: &std::path::Path, clusters: usize) -> std::path::PathBuf {
    let instances: Vec<serde_json::Value> = (0..clusters)
        .flat_map(|c| {
            (0..2).map(move |n| {
                serde_json::json!({"id": format!("i-{c}-{n}"), "app": "web", "account": "prod", "region": "us-east-1", "stack": "prod", "detail": format!("c{c}")})
            })
        })
        .collect();
    let path = dir.join("inventory.json");
    std::fs::write(
        &path,
        serde_json::json!({ "instances": instances }).to_string(),
    )
    .unwrap();
    path
}

#[test]
fn the_min_time_floor_holds_over_half_a_year() {
    let dir = tempfile::tempdir().unwrap();
    let tz = TimeZone::get("America/Los_Angeles").unwrap();
    let weekdays = [
        Weekday::Monday,
        Weekday::Tuesday,
        Weekday::Wednesday,
        Weekday::Thursday,
        Weekday::Friday,
    ];
    let calendar = Calendar::new(
        tz.clone(),
        9,
        15,
        &weekdays,
        [date(2027, 1, 1), date(2027, 5, 31)],
    )
    .unwrap();
    let min_days = 3;
    let policy = Policy {
        enabled: true,
        dry_run: false,
        calendar: calendar.clone(),
        max_kills_per_day: 100,
        seed: Some(11),
        apps: vec![AppPolicy {
            name: "web".into(),
            provider: "inv".into(),
            enabled: true,
            mean_time_between_kills: 1.5,
            min_time_between_kills: min_days,
            grouping: Grouping::Cluster,
            regions_independent: false,
            exceptions: vec![],
        }],
    };
    let provider: Arc<dyn Provider> =
        Arc::new(StaticProvider::open("inv", fleet_file(dir.path(), 8)).unwrap());
    let store: Arc<dyn Store> = simian_store::open("sqlite://floor.db", dir.path()).unwrap();
    let start: Timestamp = date(2027, 1, 1).to_zoned(tz.clone()).unwrap().timestamp();
    let end: Timestamp = date(2027, 7, 1).to_zoned(tz.clone()).unwrap().timestamp();
    let clock = Arc::new(FixedClock::new(start));
    let engine = Arc::new(Engine::new(
        BTreeMap::from([("inv".to_string(), provider)]),
        store.clone(),
        clock.clone(),
        Arc::new(NoOutageCheck),
        Arc::new(LogNotifier),
        Arc::new(policy),
        1,
    ));
    let daemon = Daemon::new(engine, std::time::Duration::ZERO);
    loop {
        let next = daemon.step().unwrap().next;
        daemon.wait_for_kills(true);
        match next {
            Some(t) if t < end => clock.set(t.max(clock.now())),
            _ => break,
        }
    }

    let kills = store.terminations(&HistoryFilter::default()).unwrap();
    assert!(kills.len() > 100, "{} kills", kills.len());
    let mut by_cluster: BTreeMap<&str, Vec<Timestamp>> = BTreeMap::new();
    for k in &kills {
        assert!(!k.dry_run);
        by_cluster
            .entry(k.cluster.as_str())
            .or_default()
            .push(k.recorded_at);
    }
    for (cluster, times) in &by_cluster {
        for pair in times.windows(2) {
            let threshold = calendar.min_time_threshold(pair[1], min_days);
            assert!(
                pair[0] < threshold,
                "{cluster}: kill at {} then at {}, floor {threshold}",
                pair[0],
                pair[1]
            );
            let work_days_between = calendar
                .work_days_from(calendar.local_date(pair[0]), 30)
                .iter()
                .position(|d| *d == calendar.local_date(pair[1]))
                .unwrap();
            assert!(
                work_days_between >= min_days as usize,
                "{cluster}: {work_days_between} work days apart"
            );
        }
        for t in times {
            let local = t.to_zoned(tz.clone());
            assert!(
                calendar.is_work_day(local.date()) && (9..15).contains(&local.hour()),
                "{local}"
            );
        }
    }
    let refusals = store.refusals(&HistoryFilter::default()).unwrap();
    assert!(
        refusals
            .iter()
            .any(|r| r.check == Check::MinTimeBetweenKills),
        "the floor bit at least once"
    );
    assert!(
        refusals
            .iter()
            .all(|r| r.check == Check::MinTimeBetweenKills),
        "{:?}",
        refusals
            .iter()
            .find(|r| r.check != Check::MinTimeBetweenKills)
    );
    // Every planned kill ended fired or refused: nothing pending, nothing missed.
    let mut day = date(2027, 1, 1);
    let mut entries = 0;
    while day < date(2027, 7, 1) {
        if let Some(s) = store.schedule(day).unwrap() {
            for e in s.entries {
                entries += 1;
                assert!(
                    matches!(e.status, EntryStatus::Fired | EntryStatus::Refused),
                    "{e:?}"
                );
            }
        }
        day = day.tomorrow().unwrap();
    }
    assert_eq!(entries, kills.len() + refusals.len());
}
