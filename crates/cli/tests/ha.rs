//! High availability on PostgreSQL: three `simian serve` replicas share one store through an
//! accelerated day while they are SIGKILLed in turn and restarted. Every planned kill must
//! fire exactly once (none lost, none doubled), whichever replicas die, because the store's
//! atomic claim decides who fires; and every surviving replica's API and dashboard must show
//! the same finished day.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use jiff::civil::date;
use simian_core::{EntryStatus, HistoryFilter};
use util::served::{Served, serve};
use util::{Sandbox, config, day_clock, inventory};

/// Replicas serving at once.
const REPLICAS: usize = 3;

/// Groups of app web: each plans one kill (μ = 1).
const GROUPS: usize = 24;

#[test]
#[ignore = "needs PostgreSQL: scripts/test.sh starts one (or set SIMIAN_TEST_POSTGRES_URL and pass --include-ignored)"]
fn replicas_sigkilled_in_turn_fire_every_planned_kill_exactly_once() {
    let store_url = util::postgres_url("ha");
    let s = Sandbox::new();
    s.write("inventory.json", &inventory(GROUPS));
    s.write(
        "simian.toml",
        &config(
            "dry_run = false",
            "mean_time_between_kills = 1\nmin_time_between_kills = 1\n\
             exceptions = [{ account = \"prod\", region = \"*\", stack = \"prod\", detail = \"canary\" }]",
            &store_url,
        ),
    );
    // 08:58 in Los Angeles, one simulated hour per real second, anchored now: every replica,
    // however late it starts, runs on the same timeline; the window (09:00 to 15:00) passes
    // in about 6 s.
    let clock = day_clock();
    let clock: Vec<&str> = clock.iter().map(String::as_str).collect();
    let began = Instant::now();
    let mut replicas: Vec<Served> = (0..REPLICAS).map(|_| serve(&s, None, &clock)).collect();

    // Every 450 ms one replica, in turn, dies without a word and comes back 150 ms later,
    // until the window has closed.
    let mut sigkills = 0;
    let mut turn = 0;
    while began.elapsed() < Duration::from_millis(6400) {
        std::thread::sleep(Duration::from_millis(450));
        let victim = turn % REPLICAS;
        turn += 1;
        // SIGKILL (what std's Child::kill sends), and reaped.
        replicas[victim].child.kill().unwrap();
        replicas[victim].child.wait().unwrap();
        sigkills += 1;
        std::thread::sleep(Duration::from_millis(150));
        replicas[victim] = serve(&s, None, &clock);
    }
    // Past the window and the kills' grace, with every replica alive.
    std::thread::sleep(Duration::from_millis(1200));
    assert!(sigkills >= 3 * REPLICAS, "{sigkills} SIGKILLs");

    // The store: the day's schedule, every entry fired; one termination per group.
    let store = simian_store::open(&store_url, s.path()).unwrap();
    let schedule = store.schedule(date(2026, 3, 2)).unwrap().unwrap();
    assert_eq!(
        schedule.entries.len(),
        GROUPS,
        "μ = 1 plans a kill in every group"
    );
    let unfired: Vec<_> = schedule
        .entries
        .iter()
        .filter(|e| e.status != EntryStatus::Fired)
        .collect();
    assert!(unfired.is_empty(), "lost kills: {unfired:?}");
    let kills = store.terminations(&HistoryFilter::default()).unwrap();
    let clusters: BTreeSet<&str> = kills.iter().map(|k| k.cluster.as_str()).collect();
    assert_eq!(kills.len(), GROUPS, "no kill doubled: {kills:#?}");
    assert_eq!(clusters.len(), GROUPS, "one kill per group");
    let entries: BTreeSet<Option<i64>> = kills.iter().map(|k| k.schedule_entry).collect();
    assert_eq!(entries.len(), GROUPS, "each planned entry fired once");
    assert!(store.unfinished().unwrap().is_empty());

    // Every replica (each was SIGKILLed at least once) shows the same finished day.
    for replica in &replicas {
        let (code, day) = replica.get("/api/v1/schedule?date=2026-03-02");
        assert_eq!(code, 200);
        assert!(
            day["entries"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["status"] == "fired")
        );
        let (_, page) = replica.get("/api/v1/terminations?limit=1000");
        assert_eq!(page["items"].as_array().unwrap().len(), GROUPS);
        let html = replica
            .agent
            .get(&format!("{}/", replica.base))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        for (status, n) in [
            ("planned", GROUPS),
            ("fired", GROUPS),
            ("pending", 0),
            ("missed", 0),
        ] {
            let shown = format!("<dt>{status}</dt><dd>{n}</dd>");
            assert!(html.contains(&shown), "the dashboard shows {shown}");
        }
        assert_eq!(html.matches("class=\"kill fired\"").count(), GROUPS);
    }
}

/// A replica that recorded a kill and died before finishing it, and never came back: a
/// running replica finishes it once it has been unfinished for `[monkey] resume_after`, not
/// before, on the same instance, once (a real process this test spawned).
#[test]
fn a_running_replica_finishes_a_kill_a_dead_one_left_unfinished() {
    let (s, run) = util::process_sandbox("orphan", "resume_after = \"2s\"");
    let (mut victim, bystander) = (
        util::labelled_sleep("orphan", &run),
        util::labelled_sleep("orphan", &run),
    );
    let instance = util::process_instance(&victim, "orphan");

    // The surviving replica runs; then the other one records a kill and dies.
    let survivor = serve(&s, None, &[]);
    let store = simian_store::open("sqlite://simian.db", s.path()).unwrap();
    util::record_unfinished_kill(store.as_ref(), &instance);
    let recorded = Instant::now();

    // Not before resume_after (2 s)...
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(store.unfinished().unwrap().len(), 1, "resumed too early");
    assert!(victim.try_wait().unwrap().is_none());
    // ... but soon after it.
    util::expect_resumed_once(
        store.as_ref(),
        recorded + Duration::from_secs(12),
        &mut victim,
        bystander,
    );
    let (_, page) = survivor.get("/api/v1/terminations");
    assert_eq!(page["items"][0]["state"], "killed");
}
