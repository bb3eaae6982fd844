//! `simian monkey` under crashes: SIGKILL it at random moments, restart it, and the history
//! must be exact: every planned kill fired once, none lost, none twice.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use jiff::civil::date;
use simian_core::{EntryStatus, HistoryFilter, TerminationState};
use util::{Sandbox, config, crash_repeatedly, day_clock, inventory, signal, start_daemon};

#[test]
fn sigkill_and_restart_lose_nothing_and_repeat_nothing_on_sqlite() {
    sigkill_and_restart_lose_nothing_and_repeat_nothing("sqlite://simian.db".into());
}

#[test]
#[ignore = "needs PostgreSQL: scripts/test.sh starts one (or set SIMIAN_TEST_POSTGRES_URL and pass --include-ignored)"]
fn sigkill_and_restart_lose_nothing_and_repeat_nothing_on_postgres() {
    sigkill_and_restart_lose_nothing_and_repeat_nothing(util::postgres_url("crash"));
}

fn sigkill_and_restart_lose_nothing_and_repeat_nothing(store_url: String) {
    {
        let s = Sandbox::new();
        let groups = 30;
        s.write("inventory.json", &inventory(groups));
        s.write(
            "simian.toml",
            &config("dry_run = false\nseed = 5", "mean_time_between_kills = 1\nmin_time_between_kills = 1\nexceptions = [{ account = \"prod\", region = \"*\", stack = \"prod\", detail = \"canary\" }]", &store_url),
        );
        let clock = day_clock();
        let clock: Vec<&str> = clock.iter().map(String::as_str).collect();
        // The window closes 6 h 2 min of simulated time later: about 6 s of real time.
        let crashes = crash_repeatedly(
            &s,
            &clock,
            99,
            120..600,
            Instant::now(),
            Duration::from_millis(6300),
        );
        // A last run past the window's end, stopped cleanly.
        let mut d = start_daemon(&s, &clock);
        std::thread::sleep(Duration::from_millis(800));
        signal(&d, rustix::process::Signal::TERM);
        let status = d.0.wait().unwrap();
        assert!(
            status.success(),
            "{store_url}: SIGTERM stops the daemon cleanly ({status})"
        );
        assert!(crashes >= 8, "{crashes} crashes");

        let store = simian_store::open(&store_url, s.path()).unwrap();
        let schedule = store
            .schedule(date(2026, 3, 2))
            .unwrap()
            .expect("the day's schedule was persisted");
        assert_eq!(schedule.seed, 5);
        assert_eq!(
            schedule.entries.len(),
            groups,
            "{store_url}: μ = 1 plans a kill in every group"
        );
        assert!(
            schedule
                .entries
                .iter()
                .all(|e| e.status == EntryStatus::Fired),
            "{store_url}: {:?}",
            schedule
                .entries
                .iter()
                .filter(|e| e.status != EntryStatus::Fired)
                .collect::<Vec<_>>()
        );
        let kills = store.terminations(&HistoryFilter::default()).unwrap();
        assert_eq!(
            kills.len(),
            groups,
            "{store_url}: one termination per planned kill, none twice"
        );
        let entries: BTreeSet<i64> = kills.iter().map(|k| k.schedule_entry.unwrap()).collect();
        assert_eq!(entries.len(), groups);
        let clusters: BTreeSet<&str> = kills.iter().map(|k| k.cluster.as_str()).collect();
        assert_eq!(clusters.len(), groups, "one kill per group");
        assert!(
            kills
                .iter()
                .all(|k| k.state == TerminationState::Simulated && !k.dry_run),
            "a real kill on a static inventory is simulated: {kills:?}"
        );
        for (k, e) in kills.iter().zip(schedule.entries.iter()) {
            assert!(
                k.recorded_at >= e.time,
                "a kill never fires before its planned minute"
            );
        }
        assert!(store.unfinished().unwrap().is_empty());
        assert!(
            store
                .refusals(&HistoryFilter::default())
                .unwrap()
                .is_empty()
        );

        // A restart the next morning reuses the stored schedule instead of drawing another.
        let again = store
            .save_schedule(&simian_core::NewSchedule {
                date: date(2026, 3, 2),
                seed: 6,
                made_at: jiff::Timestamp::now(),
                kills: vec![],
            })
            .unwrap();
        assert_eq!(again.seed, 5);
    }
}

/// A termination recorded just before a crash (action not yet confirmed) is finished by the
/// next daemon on the same instance, once: a real process that this test spawned.
#[test]
fn a_kill_recorded_before_a_crash_is_resumed_on_restart() {
    let (s, run) = util::process_sandbox("resume", "");
    let mut victim = util::labelled_sleep("resume", &run);
    let bystander = util::labelled_sleep("resume", &run);
    let instance = util::process_instance(&victim, "resume");

    // The crash: recorded, never acted on.
    let store = simian_store::open("sqlite://simian.db", s.path()).unwrap();
    util::record_unfinished_kill(store.as_ref(), &instance);

    let d = start_daemon(&s, &[]);
    util::expect_resumed_once(
        store.as_ref(),
        Instant::now() + Duration::from_secs(10),
        &mut victim,
        bystander,
    );
    signal(&d, rustix::process::Signal::TERM);
}
