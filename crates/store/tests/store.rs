//! The tracker's behaviour, identical on SQLite and PostgreSQL: every test runs on both.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

on_every_store!(
    a_schedule_is_stored_once_and_reused,
    min_time_blocks_the_group_and_dry_runs_never_block_real_kills,
    the_daily_cap_counts_every_group,
    a_schedule_entry_is_handled_exactly_once,
    unfinished_terminations_survive_until_finished,
    history_filters_by_time_and_app,
    racing_claims_in_one_group_record_exactly_one_kill,
    a_claim_draws_only_among_groups_that_may_lose_an_instance,
    a_lease_is_open_until_ended_once,
    a_kill_the_provider_refused_is_a_refusal_that_blocks_nothing,
    a_drill_is_refused_while_another_touches_its_zones,
    a_drill_records_its_faults_and_kills_before_acting,
    the_kill_switch_is_the_newest_change,
);

use std::sync::{Arc, Barrier};

use jiff::civil::date;
use jiff::{SignedDuration, Timestamp};
use simian_core::{
    Check, Claim, ClaimResult, DrillEnding, DrillKind, DrillMode, EntryStatus, FaultKind, Group,
    Grouping, HistoryFilter, Instance, NewDrill, NewLease, NewSchedule, Origin, PlannedKill,
    Refusal, Store, TerminationState,
};

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn instance(id: &str, cluster: &str) -> Instance {
    Instance::builder(id, "web")
        .account("prod")
        .region("us-east-1")
        .cluster(cluster)
        .build()
}

fn claim(i: &Instance, at: Timestamp, dry_run: bool) -> Claim<'_> {
    Claim {
        candidates: vec![i],
        grouping: Grouping::Cluster,
        regions_independent: false,
        draw: 7,
        provider: "inv".into(),
        dry_run,
        origin: Origin::Manual,
        schedule_entry: None,
        at,
        day_start: t("2026-03-02T08:00:00Z"),
        day_end: t("2026-03-03T08:00:00Z"),
        max_kills_per_day: 100,
        min_time_threshold: t("2026-02-27T23:00:00Z"),
    }
}

fn recorded(r: ClaimResult) -> simian_core::Termination {
    match r {
        ClaimResult::Recorded(t) => t,
        other => panic!("expected a recorded termination, got {other:?}"),
    }
}

fn refused(r: ClaimResult) -> Refusal {
    match r {
        ClaimResult::Refused(r) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn schedule(seed: u64, groups: &[&str]) -> NewSchedule {
    NewSchedule {
        date: date(2026, 3, 2),
        seed,
        made_at: t("2026-03-02T08:00:00Z"),
        kills: groups
            .iter()
            .enumerate()
            .map(|(n, c)| PlannedKill {
                time: t("2026-03-02T17:00:00Z") + SignedDuration::from_mins(n as i64),
                group: Group::of(&instance("x", c), Grouping::Cluster, false),
            })
            .collect(),
    }
}

fn a_schedule_is_stored_once_and_reused(db: &common::Db) {
    let name = db.name;
    let store = db.store.clone();
    assert!(
        store.schedule(date(2026, 3, 2)).unwrap().is_none(),
        "{name}"
    );
    let first = store
        .save_schedule(&schedule(u64::MAX, &["web-a", "web-b"]))
        .unwrap();
    assert_eq!(first.seed, u64::MAX, "{name}: seeds keep all 64 bits");
    assert_eq!(first.entries.len(), 2);
    let second = store.save_schedule(&schedule(7, &["web-c"])).unwrap();
    assert_eq!(second, first, "{name}: the first schedule of a day wins");
    assert_eq!(
        store.due_entries(t("2026-03-02T17:00:30Z")).unwrap().len(),
        1,
        "{name}"
    );
    assert_eq!(
        store.next_pending().unwrap(),
        Some(t("2026-03-02T17:00:00Z")),
        "{name}"
    );
    assert_eq!(first.entries[0].group.cluster.as_deref(), Some("web-a"));
    assert_eq!(first.entries[0].group.region, None);
}

fn min_time_blocks_the_group_and_dry_runs_never_block_real_kills(db: &common::Db) {
    let name = db.name;
    let store = db.store.clone();
    let a1 = instance("a1", "web-a");
    let a2 = instance("a2", "web-a");
    let b1 = instance("b1", "web-b");
    let at = t("2026-03-02T18:00:00Z");

    let dry = recorded(store.claim(&claim(&a1, at, true)).unwrap());
    assert_eq!(dry.state, TerminationState::DryRun, "{name}");
    assert!(dry.dry_run && dry.finished_at.is_some());

    // A real kill is not blocked by the dry run ...
    let real = recorded(store.claim(&claim(&a2, at, false)).unwrap());
    assert_eq!(real.state, TerminationState::Recorded, "{name}");
    // ... but blocks the next one in the group, real or dry.
    let r = refused(
        store
            .claim(&claim(&a1, at + SignedDuration::from_mins(5), false))
            .unwrap(),
    );
    assert_eq!(r.check, Check::MinTimeBetweenKills, "{name}");
    assert!(r.reason.contains("a2"), "{name}: {}", r.reason);
    let r = refused(store.claim(&claim(&a1, at, true)).unwrap());
    assert_eq!(r.check, Check::MinTimeBetweenKills, "{name}");
    // Another group is free.
    recorded(store.claim(&claim(&b1, at, false)).unwrap());
    // A kill before the threshold does not block.
    let mut later = claim(&a1, at + SignedDuration::from_hours(48), false);
    later.min_time_threshold = at + SignedDuration::from_secs(1);
    recorded(store.claim(&later).unwrap());

    let refusals = store.refusals(&HistoryFilter::default()).unwrap();
    assert_eq!(refusals.len(), 2, "{name}: both refusals are on record");
    assert_eq!(
        store.terminations(&HistoryFilter::default()).unwrap().len(),
        4,
        "{name}"
    );
}

fn the_daily_cap_counts_every_group(db: &common::Db) {
    let name = db.name;
    let store = db.store.clone();
    let at = t("2026-03-02T18:00:00Z");
    for n in 0..3 {
        let i = instance(&format!("i{n}"), &format!("web-{n}"));
        let mut c = claim(&i, at, false);
        c.max_kills_per_day = 3;
        recorded(store.claim(&c).unwrap());
    }
    let i9 = instance("i9", "web-9");
    let mut c = claim(&i9, at, false);
    c.max_kills_per_day = 3;
    let r = refused(store.claim(&c).unwrap());
    assert_eq!(r.check, Check::MaxKillsPerDay, "{name}");
    // Tomorrow is a new day.
    c.day_start = c.day_end;
    c.day_end += SignedDuration::from_hours(24);
    c.at = c.day_start + SignedDuration::from_hours(10);
    recorded(store.claim(&c).unwrap());
}

fn a_schedule_entry_is_handled_exactly_once(db: &common::Db) {
    let name = db.name;
    let store = db.store.clone();
    let s = store
        .save_schedule(&schedule(1, &["web-a", "web-b", "web-c"]))
        .unwrap();
    let at = t("2026-03-02T18:00:00Z");
    let a1 = instance("a1", "web-a");
    let mut c = claim(&a1, at, false);
    c.schedule_entry = Some(s.entries[0].id);
    let term = recorded(store.claim(&c).unwrap());
    assert_eq!(term.schedule_entry, Some(s.entries[0].id));
    assert_eq!(
        store.claim(&c).unwrap(),
        ClaimResult::AlreadyHandled,
        "{name}"
    );

    let refusal = Refusal {
        id: 0,
        at,
        app: "web".into(),
        account: "prod".into(),
        region: String::new(),
        stack: String::new(),
        cluster: "web-b".into(),
        instance_id: None,
        check: Check::Missed,
        reason: "window closed".into(),
        dry_run: false,
        schedule_entry: Some(s.entries[1].id),
        origin: Origin::Schedule,
    };
    assert!(store.refuse(&refusal).unwrap(), "{name}");
    assert!(
        !store.refuse(&refusal).unwrap(),
        "{name}: a handled entry is not refused twice"
    );
    let b1 = instance("b1", "web-b");
    let mut c = claim(&b1, at, false);
    c.schedule_entry = Some(s.entries[1].id);
    assert_eq!(
        store.claim(&c).unwrap(),
        ClaimResult::AlreadyHandled,
        "{name}"
    );

    let stored = store.schedule(date(2026, 3, 2)).unwrap().unwrap();
    let statuses: Vec<EntryStatus> = stored.entries.iter().map(|e| e.status).collect();
    assert_eq!(
        statuses,
        vec![
            EntryStatus::Fired,
            EntryStatus::Missed,
            EntryStatus::Pending
        ],
        "{name}"
    );
}

fn unfinished_terminations_survive_until_finished(db: &common::Db) {
    let dir = &db.dir;
    let name = db.name;
    let store = db.store.clone();
    let url = db.url.clone();
    let term = recorded(
        store
            .claim(&claim(
                &instance("a1", "web-a"),
                t("2026-03-02T18:00:00Z"),
                false,
            ))
            .unwrap(),
    );
    drop(store);
    // A new connection (a restarted daemon) sees it.
    let store = simian_store::open(&url, dir.path()).unwrap();
    let unfinished = store.unfinished().unwrap();
    assert_eq!(
        unfinished.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![term.id],
        "{name}"
    );
    store
        .finish(
            term.id,
            TerminationState::Killed,
            "SIGTERM",
            t("2026-03-02T18:00:01Z"),
        )
        .unwrap();
    assert!(store.unfinished().unwrap().is_empty());
    // Finishing is once only.
    store
        .finish(
            term.id,
            TerminationState::Failed,
            "again",
            t("2026-03-02T18:00:02Z"),
        )
        .unwrap();
    let history = store.terminations(&HistoryFilter::default()).unwrap();
    assert_eq!(history[0].state, TerminationState::Killed, "{name}");
    assert_eq!(history[0].detail, "SIGTERM");
}

fn history_filters_by_time_and_app(db: &common::Db) {
    let name = db.name;
    let store = db.store.clone();
    let mut other = instance("o1", "api-a");
    other.app = "api".into();
    for (n, i) in [instance("a1", "web-a"), other, instance("b1", "web-b")]
        .iter()
        .enumerate()
    {
        let at = t("2026-03-02T18:00:00Z") + SignedDuration::from_mins(n as i64);
        recorded(store.claim(&claim(i, at, true)).unwrap());
    }
    let all = store.terminations(&HistoryFilter::default()).unwrap();
    assert_eq!(
        all.iter()
            .map(|t| t.instance_id.as_str())
            .collect::<Vec<_>>(),
        ["a1", "o1", "b1"],
        "{name}: oldest first"
    );
    let web = HistoryFilter {
        app: Some("web".into()),
        ..HistoryFilter::default()
    };
    assert_eq!(store.terminations(&web).unwrap().len(), 2);
    let since = HistoryFilter {
        since: Some(t("2026-03-02T18:01:00Z")),
        ..HistoryFilter::default()
    };
    assert_eq!(store.terminations(&since).unwrap().len(), 2);
    let last = HistoryFilter {
        limit: Some(1),
        ..HistoryFilter::default()
    };
    assert_eq!(
        store.terminations(&last).unwrap()[0].instance_id,
        "b1",
        "{name}: the limit keeps the newest"
    );
    // Paging, newest first: each page starts below the smallest id of the one before.
    let page = |before: Option<i64>| HistoryFilter {
        limit: Some(2),
        before_id: before,
        ..HistoryFilter::default()
    };
    let first = store.terminations(&page(None)).unwrap();
    assert_eq!(
        first
            .iter()
            .map(|t| t.instance_id.as_str())
            .collect::<Vec<_>>(),
        ["o1", "b1"]
    );
    let second = store.terminations(&page(Some(first[0].id))).unwrap();
    assert_eq!(
        second
            .iter()
            .map(|t| t.instance_id.as_str())
            .collect::<Vec<_>>(),
        ["a1"]
    );
    assert!(
        store
            .terminations(&page(Some(second[0].id)))
            .unwrap()
            .is_empty()
    );
}

/// The kill switch set at run time: none at first, then the newest change, on every
/// connection (a restarted process, another replica).
fn the_kill_switch_is_the_newest_change(db: &common::Db) {
    let (name, store) = (db.name, db.store.clone());
    assert_eq!(store.kill_switch().unwrap(), None, "{name}");
    let off = simian_core::KillSwitch {
        enabled: false,
        changed_by: "alice".into(),
        at: t("2026-03-02T18:00:00Z"),
        reason: "incident 42".into(),
    };
    store.set_kill_switch(&off).unwrap();
    let reopened = simian_store::open(&db.url, db.dir.path()).unwrap();
    assert_eq!(reopened.kill_switch().unwrap(), Some(off.clone()), "{name}");
    assert_eq!(
        off.holding().unwrap(),
        "the kill switch was turned off by alice at 2026-03-02T18:00:00Z: incident 42"
    );
    let on = simian_core::KillSwitch {
        enabled: true,
        changed_by: "bob".into(),
        at: t("2026-03-02T19:00:00Z"),
        reason: String::new(),
    };
    reopened.set_kill_switch(&on).unwrap();
    assert_eq!(store.kill_switch().unwrap(), Some(on), "{name}");
}

/// Eight connections race to kill in the same group at the same instant: exactly one wins,
/// the others are refused by the minimum time, on both databases, round after round.
fn racing_claims_in_one_group_record_exactly_one_kill(db: &common::Db) {
    let dir = &db.dir;
    let name = db.name;
    let url = db.url.clone();
    for round in 0..5 {
        let racers = 8;
        let barrier = Arc::new(Barrier::new(racers));
        let handles: Vec<_> = (0..racers)
            .map(|n| {
                let url = url.clone();
                let barrier = barrier.clone();
                let dir = dir.path().to_path_buf();
                std::thread::spawn(move || {
                    let store: Arc<dyn Store> = simian_store::open(&url, &dir).unwrap();
                    let i = instance(&format!("r{round}-{n}"), &format!("web-round{round}"));
                    barrier.wait();
                    store
                        .claim(&claim(&i, t("2026-03-02T18:00:00Z"), false))
                        .unwrap()
                })
            })
            .collect();
        let results: Vec<ClaimResult> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let wins = results
            .iter()
            .filter(|r| matches!(r, ClaimResult::Recorded(_)))
            .count();
        let refusals = results
            .iter()
            .filter(
                |r| matches!(r, ClaimResult::Refused(r) if r.check == Check::MinTimeBetweenKills),
            )
            .count();
        assert_eq!(
            (wins, refusals),
            (1, racers - 1),
            "{name} round {round}: {results:?}"
        );
    }
}

/// A manual kill names every eligible instance of the app: the store draws among the groups
/// the minimum time still allows, and refuses only when none is left, whatever the draw.
fn a_claim_draws_only_among_groups_that_may_lose_an_instance(db: &common::Db) {
    let (name, store) = (db.name, db.store.clone());
    let at = t("2026-03-02T18:00:00Z");
    let fleet: Vec<Instance> = ["a", "b", "c"]
        .iter()
        .flat_map(|g| (0..4).map(move |n| instance(&format!("{g}{n}"), &format!("web-{g}"))))
        .collect();
    // Group a had a kill an hour ago.
    recorded(
        store
            .claim(&claim(&fleet[0], at - SignedDuration::from_hours(1), false))
            .unwrap(),
    );
    let every: Vec<&Instance> = fleet.iter().collect();
    let mut killed_groups = Vec::new();
    for draw in [0, u64::MAX] {
        let mut c = claim(&fleet[0], at, false);
        c.candidates = every.clone();
        c.draw = draw;
        let kill = recorded(store.claim(&c).unwrap());
        assert!(!kill.cluster.ends_with("-a"), "{name}: {kill:?}");
        killed_groups.push(kill.cluster);
    }
    killed_groups.sort();
    assert_eq!(killed_groups, ["web-b", "web-c"], "{name}");
    // Now every group is blocked: refused, whatever the draw, and the reason says so.
    for draw in [1, 2, 3] {
        let mut c = claim(&fleet[0], at, false);
        c.candidates = every.clone();
        c.draw = draw;
        let r = refused(store.claim(&c).unwrap());
        assert_eq!(r.check, Check::MinTimeBetweenKills, "{name}");
        assert!(
            r.reason.contains("each of the 3 groups"),
            "{name}: {}",
            r.reason
        );
    }
}

/// A lease stays open until one caller ends it; a new connection (a restarted process) sees it.
fn a_lease_is_open_until_ended_once(db: &common::Db) {
    let (name, store) = (db.name, db.store.clone());
    let at = t("2026-03-02T18:00:00Z");
    let make = |instance: &str, deadline_s: i64| NewLease {
        termination: None,
        drill: None,
        provider: "containers".into(),
        instance_id: instance.into(),
        kind: FaultKind::Pause,
        deadline: at + SignedDuration::from_secs(deadline_s),
        created_at: at,
        memo: None,
    };
    let late = store.open_lease(&make("b", 60)).unwrap();
    let soon = store.open_lease(&make("a", 5)).unwrap();
    assert_eq!(soon.kind, FaultKind::Pause);
    assert_eq!(soon.ended_at, None);
    let reopened = simian_store::open(&db.url, db.dir.path()).unwrap();
    let open: Vec<i64> = reopened
        .open_leases()
        .unwrap()
        .iter()
        .map(|l| l.id)
        .collect();
    assert_eq!(
        open,
        vec![soon.id, late.id],
        "{name}: soonest deadline first"
    );
    assert!(
        store
            .end_lease(soon.id, at + SignedDuration::from_secs(5), "unpaused")
            .unwrap()
    );
    assert!(
        !reopened
            .end_lease(soon.id, at + SignedDuration::from_secs(6), "again")
            .unwrap(),
        "{name}: ended once"
    );
    let ended = store.lease(soon.id).unwrap().unwrap();
    assert_eq!(ended.ending.as_deref(), Some("unpaused"), "{name}");
    assert_eq!(ended.ended_at, Some(at + SignedDuration::from_secs(5)));
    assert_eq!(store.open_leases().unwrap().len(), 1, "{name}");
    assert!(store.lease(9999).unwrap().is_none());
}

fn a_kill_the_provider_refused_is_a_refusal_that_blocks_nothing(db: &common::Db) {
    let name = db.name;
    let store = db.store.clone();
    let s = store.save_schedule(&schedule(1, &["web-a"])).unwrap();
    let at = t("2026-03-02T18:00:00Z");
    let a1 = instance("a1", "web-a");
    let mut c = claim(&a1, at, false);
    c.schedule_entry = Some(s.entries[0].id);
    c.max_kills_per_day = 1;
    let term = recorded(store.claim(&c).unwrap());
    let refusal = Refusal {
        id: 0,
        at: t("2026-03-02T18:00:01Z"),
        app: "web".into(),
        account: "prod".into(),
        region: "us-east-1".into(),
        stack: String::new(),
        cluster: "web-a".into(),
        instance_id: Some("a1".into()),
        check: Check::DisruptionBudget,
        reason: "The disruption budget web-budget needs 2 healthy pods".into(),
        dry_run: false,
        schedule_entry: Some(s.entries[0].id),
        origin: Origin::Schedule,
    };
    let detail = "refused by disruption_budget: web-budget";
    let id = store.refuse_recorded(term.id, detail, &refusal).unwrap();
    assert!(id.is_some(), "{name}");
    assert_eq!(
        store.refuse_recorded(term.id, detail, &refusal).unwrap(),
        None,
        "{name}: a termination is refused once, and only while recorded"
    );
    assert!(store.unfinished().unwrap().is_empty(), "{name}");

    let history = store.terminations(&HistoryFilter::default()).unwrap();
    assert_eq!(history.len(), 1, "{name}");
    assert_eq!(history[0].state, TerminationState::Refused, "{name}");
    assert_eq!(history[0].detail, detail, "{name}");
    assert_eq!(history[0].finished_at, Some(refusal.at), "{name}");
    let refusals = store.refusals(&HistoryFilter::default()).unwrap();
    assert_eq!(refusals.len(), 1, "{name}");
    assert_eq!(refusals[0].id, id.unwrap(), "{name}");
    assert_eq!(refusals[0].check, Check::DisruptionBudget, "{name}");
    let stored = store.schedule(date(2026, 3, 2)).unwrap().unwrap();
    assert_eq!(stored.entries[0].status, EntryStatus::Refused, "{name}");

    // Nothing died: the group may lose an instance now, and the daily cap of one is free.
    let again = recorded(store.claim(&claim(&a1, at, false)).unwrap());
    assert_eq!(again.instance_id, "a1", "{name}");
    let mut capped = claim(&a1, at, false);
    capped.max_kills_per_day = 1;
    capped.min_time_threshold = t("2026-03-03T00:00:00Z");
    assert_eq!(
        refused(store.claim(&capped).unwrap()).check,
        Check::MaxKillsPerDay,
        "{name}: the kill that did happen counts"
    );
}

fn new_drill(kind: DrillKind, target: &str, zones: &[&str], at: Timestamp) -> NewDrill {
    NewDrill {
        kind,
        target: target.into(),
        mode: DrillMode::Pause,
        dry_run: false,
        options: "{}".into(),
        plan: "{\"apps\":[]}".into(),
        zones: zones.iter().map(|z| z.to_string()).collect(),
        started_at: at,
        deadline: at + SignedDuration::from_secs(60),
        owner: "boot/1@2".into(),
    }
}

/// Two drills whose zones meet never run together, also when started at the same moment from
/// two connections; one that ended frees its zones.
fn a_drill_is_refused_while_another_touches_its_zones(db: &common::Db) {
    let (name, store) = (db.name, db.store.clone());
    let at = t("2026-03-02T18:00:00Z");
    let gorilla = store
        .begin_drill(&new_drill(DrillKind::Gorilla, "z1", &["z1"], at))
        .unwrap()
        .unwrap();
    assert!(gorilla.is_running(), "{name}");
    let other_zone = store
        .begin_drill(&new_drill(DrillKind::Gorilla, "z2", &["z2"], at))
        .unwrap();
    assert!(other_zone.is_ok(), "{name}: another zone may go dark too");
    let reopened = simian_store::open(&db.url, db.dir.path()).unwrap();
    let kong = reopened
        .begin_drill(&new_drill(DrillKind::Kong, "r1", &["z0", "z1"], at))
        .unwrap();
    assert_eq!(
        kong.unwrap_err().id,
        gorilla.id,
        "{name}: the region holds z1"
    );

    // Racing on one zone from many connections: exactly one wins.
    let z9 = |_| {
        let s = simian_store::open(&db.url, db.dir.path()).unwrap();
        s.begin_drill(&new_drill(DrillKind::Gorilla, "z9", &["z9"], at))
            .unwrap()
            .is_ok()
    };
    let won: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4).map(|n| scope.spawn(move || z9(n))).collect();
        handles
            .into_iter()
            .map(|h| usize::from(h.join().unwrap()))
            .sum()
    });
    assert_eq!(won, 1, "{name}");

    assert!(
        store
            .end_drill(gorilla.id, at, DrillEnding::Completed, "done", Some("{}"))
            .unwrap()
    );
    assert!(
        !store
            .end_drill(gorilla.id, at, DrillEnding::Ended, "again", None)
            .unwrap(),
        "{name}: ended once"
    );
    let ended = reopened.drill(gorilla.id).unwrap().unwrap();
    assert_eq!(ended.ending, Some(DrillEnding::Completed), "{name}");
    assert_eq!(ended.report.as_deref(), Some("{}"), "{name}");
    assert_eq!(ended.owner, "boot/1@2", "{name}");
    assert!(
        store
            .begin_drill(&new_drill(DrillKind::Kong, "r1", &["z0", "z1"], at))
            .unwrap()
            .is_ok(),
        "{name}: z1 is free again"
    );
    let running: Vec<i64> = store
        .running_drills()
        .unwrap()
        .iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(
        running.len(),
        3,
        "{name}: z2, z9 and the new kong: {running:?}"
    );
    let all = store.drills(&HistoryFilter::default()).unwrap();
    assert_eq!(all.len(), 4, "{name}");
    assert_eq!(all[0].id, gorilla.id, "{name}: oldest first");
}

/// A drill's leases and terminations are recorded in one step before anything is touched, and
/// point at the drill; ending them is counted once.
fn a_drill_records_its_faults_and_kills_before_acting(db: &common::Db) {
    let (name, store) = (db.name, db.store.clone());
    let at = t("2026-03-02T18:00:00Z");
    let drill = store
        .begin_drill(&new_drill(DrillKind::Gorilla, "z1", &["z1"], at))
        .unwrap()
        .unwrap();
    let leases: Vec<NewLease> = ["a", "b", "c"]
        .iter()
        .map(|i| NewLease {
            termination: None,
            drill: Some(drill.id),
            provider: "docker".into(),
            instance_id: (*i).into(),
            kind: FaultKind::Isolate,
            deadline: drill.deadline,
            created_at: at,
            memo: Some(format!("{{\"networks\":[\"{i}-net\"]}}")),
        })
        .collect();
    let opened = store.record_leases(&leases).unwrap();
    assert_eq!(opened.len(), 3, "{name}");
    assert_eq!(
        opened[2].memo.as_deref(),
        Some("{\"networks\":[\"c-net\"]}")
    );
    let ids: Vec<i64> = opened.iter().map(|l| l.id).collect();
    store.begin_undo(&ids[..2], at).unwrap();
    let endings = vec![
        (ids[0], "reconnected".to_string()),
        (ids[1], "gone".to_string()),
    ];
    assert_eq!(store.end_leases(&endings, at).unwrap(), 2, "{name}");
    assert_eq!(store.end_leases(&endings, at).unwrap(), 0, "{name}: once");
    let stored = store.drill_leases(drill.id).unwrap();
    assert_eq!(
        stored.iter().map(|l| l.id).collect::<Vec<_>>(),
        ids,
        "{name}"
    );
    assert_eq!(stored[0].undo_at, Some(at), "{name}");
    assert_eq!(stored[2].undo_at, None, "{name}");
    assert_eq!(stored[2].ended_at, None, "{name}");
    assert_eq!(stored[0].drill, Some(drill.id), "{name}");

    let (a, b) = (instance("i-a", "web-a"), instance("i-b", "api-a"));
    let kills = store
        .record_drill_terminations(&drill, &[("docker", &a), ("aws", &b)], at)
        .unwrap();
    assert_eq!(kills.len(), 2, "{name}");
    assert!(kills.iter().all(|k| k.state == TerminationState::Recorded
        && k.origin == Origin::Gorilla
        && k.drill == Some(drill.id)));
    assert_eq!(kills[1].provider, "aws", "{name}");
    assert_eq!(
        store.unfinished().unwrap().len(),
        2,
        "{name}: resumed like any kill"
    );
    let listed = store.drill_terminations(drill.id).unwrap();
    assert_eq!(listed, kills, "{name}");
}
