//! Benchmark of `simian serve`: the real binary in its own process, driven over loopback.
//!
//! 1. `history`: `GET /api/v1/terminations` over a store of 1,000,000 terminations (SQLite,
//!    and PostgreSQL when `SIMIAN_TEST_POSTGRES_URL` names a server): p50 and p99 of a page of
//!    100 at the top, in the middle and at the bottom of the history (paging by `before`), for
//!    one app, and throughput with 4 clients. The peer is the floor: the same page read
//!    in-process through the store, in the same round. (No other server of this API exists;
//!    Chaos Monkey 2 needs a Spinnaker installation this machine cannot build.)
//! 2. `dashboard`: each page's weight (bytes of HTML, nothing else is fetched) and its time to
//!    load in headless Chromium (the navigation's response end and load end).
//! 3. `delay`: an accelerated day (200 groups, each with a planned kill, 1,200× real time),
//!    and the delay from each kill's planned instant to its termination being recorded.
//!
//! Three rounds each; medians, with the range of the rounds' figures.
//!
//! `cargo bench -p simian --bench serve [-- history|dashboard|delay ...]`; figures go in
//! BENCHMARKS.md.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use simian_core::HistoryFilter;

const ROWS: i64 = 1_000_000;
const APPS: i64 = 5;
const REQUESTS: usize = 300;
const ROUNDS: usize = 3;
/// The base instant of the generated history: 1 January 2025, one kill a second after it.
const BASE_MS: i64 = 1_735_689_600_000;

struct Served(Child, String);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent()
}

fn serve(dir: &Path, extra: &[&str]) -> Served {
    let listen = format!("127.0.0.1:{}", free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_simian"))
        .args(["serve", "--listen", &listen])
        .args(extra)
        .current_dir(dir)
        .env_remove("SIMIAN_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://{listen}");
    let agent = agent();
    let deadline = Instant::now() + Duration::from_secs(60);
    while agent.get(&format!("{base}/readyz")).call().is_err() {
        assert!(Instant::now() < deadline, "simian serve never became ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    Served(child, base)
}

fn write_config(dir: &Path, store: &str, monkey: &str, clusters: usize) {
    let instances: Vec<Value> = (0..clusters)
        .flat_map(|c| {
            (0..2).map(move |n| {
                serde_json::json!({"id": format!("i-{c}-{n}"), "app": "app-0", "account": "prod",
                    "region": "us-east-1", "zone": format!("us-east-1{}", ["a", "b"][n]),
                    "stack": "prod", "detail": format!("c{c}")})
            })
        })
        .collect();
    std::fs::write(
        dir.join("inventory.json"),
        serde_json::json!({ "instances": instances }).to_string(),
    )
    .unwrap();
    std::fs::write(
        dir.join("simian.toml"),
        format!(
            "[monkey]\ntime_zone = \"America/Los_Angeles\"\n{monkey}\n\n[store]\nurl = \"{store}\"\n\n\
             [providers.inv]\nkind = \"static\"\npath = \"inventory.json\"\n\n\
             [[apps]]\nname = \"app-0\"\nprovider = \"inv\"\nmean_time_between_kills = 1\nmin_time_between_kills = 1\n"
        ),
    )
    .unwrap();
}

/// The generated history, as one INSERT ... SELECT over the numbers 1 to ROWS (`x`).
fn history_select(numbers: &str) -> String {
    format!(
        "INSERT INTO terminations (recorded_at_ms, finished_at_ms, instance_id, app, account, region, zone, stack, cluster, provider, dry_run, state, detail, origin) \
         SELECT {BASE_MS} + x * 1000, {BASE_MS} + x * 1000 + 40, 'i-' || x, 'app-' || (x % {APPS}), 'prod', 'us-east-1', \
         'us-east-1a', 'prod', 'app-' || (x % {APPS}) || '-prod-c' || (x % 97), 'inv', false, 'killed', 'terminated', 'schedule' FROM {numbers}"
    )
}

fn fill_sqlite(path: &Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(&format!(
        "BEGIN; WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < {ROWS}) {}; COMMIT; ANALYZE;",
        history_select("n")
    ))
    .unwrap();
}

fn fill_postgres(url: &str) {
    let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
    client
        .batch_execute(&format!(
            "{}; ANALYZE terminations;",
            history_select(&format!("generate_series(1, {ROWS}) AS n(x)"))
        ))
        .unwrap();
}

/// Percentile `p` (0 to 1) of sorted durations.
fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Median and range of per-round figures.
fn summary(values: &mut [f64], unit: &str, digits: usize) -> String {
    values.sort_by(|a, b| a.total_cmp(b));
    let median = values[values.len() / 2];
    format!(
        "{median:.digits$} {unit} ({:.digits$} to {:.digits$})",
        values[0],
        values[values.len() - 1]
    )
}

fn history(name: &str, store_url: &str, dir: &Path) {
    let store = simian_store::open(store_url, dir).unwrap();
    let cases: &[(&str, &str, HistoryFilter)] = &[
        (
            "top page",
            "limit=100",
            HistoryFilter {
                limit: Some(101),
                ..HistoryFilter::default()
            },
        ),
        (
            "middle page",
            "limit=100&before=500000",
            HistoryFilter {
                limit: Some(101),
                before_id: Some(500_000),
                ..HistoryFilter::default()
            },
        ),
        (
            "bottom page",
            "limit=100&before=1000",
            HistoryFilter {
                limit: Some(101),
                before_id: Some(1000),
                ..HistoryFilter::default()
            },
        ),
        (
            "one app, top",
            "app=app-3&limit=100",
            HistoryFilter {
                limit: Some(101),
                app: Some("app-3".into()),
                ..HistoryFilter::default()
            },
        ),
        (
            "one app, bottom",
            "app=app-3&limit=100&before=5000",
            HistoryFilter {
                limit: Some(101),
                app: Some("app-3".into()),
                before_id: Some(5000),
                ..HistoryFilter::default()
            },
        ),
    ];
    let served = serve(dir, &[]);
    let agent = agent();
    println!("history on {name}, {ROWS} terminations, pages of 100:");
    for (case, query, filter) in cases {
        let (mut p50s, mut p99s, mut floors) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            let url = format!("{}/api/v1/terminations?{query}", served.1);
            let mut times = Vec::with_capacity(REQUESTS);
            for _ in 0..REQUESTS {
                let began = Instant::now();
                let body = agent
                    .get(&url)
                    .call()
                    .unwrap()
                    .body_mut()
                    .read_to_string()
                    .unwrap();
                times.push(began.elapsed());
                assert!(body.len() > 1000, "{body}");
            }
            times.sort();
            p50s.push(ms(pct(&times, 0.5)));
            p99s.push(ms(pct(&times, 0.99)));
            let mut floor = Vec::with_capacity(REQUESTS);
            for _ in 0..REQUESTS {
                let began = Instant::now();
                let rows = store.terminations(filter).unwrap();
                floor.push(began.elapsed());
                assert_eq!(rows.len(), 101);
            }
            floor.sort();
            floors.push(ms(pct(&floor, 0.5)));
        }
        println!(
            "  {case:<16} API p50 {}, p99 {}; store alone p50 {}",
            summary(&mut p50s, "ms", 2),
            summary(&mut p99s, "ms", 2),
            summary(&mut floors, "ms", 2)
        );
    }
    // Throughput of the top page with 4 clients.
    let mut rates = Vec::new();
    for _ in 0..ROUNDS {
        let window = Duration::from_secs(3);
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let url = format!("{}/api/v1/terminations?limit=100", served.1);
                std::thread::spawn(move || {
                    let agent = crate::agent();
                    let began = Instant::now();
                    let mut n = 0u64;
                    while began.elapsed() < window {
                        agent
                            .get(&url)
                            .call()
                            .unwrap()
                            .body_mut()
                            .read_to_string()
                            .unwrap();
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        rates.push(total as f64 / window.as_secs_f64());
    }
    println!(
        "  throughput, top page, 4 clients: {}",
        summary(&mut rates, "pages/s", 0)
    );
}

fn dashboard() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), "sqlite://simian.db", "", 20);
    let served = serve(
        dir.path(),
        &[
            "--clock-start",
            "2026-03-02T20:00:00Z",
            "--clock-speed",
            "1",
        ],
    );
    let agent = agent();
    // Some history to show.
    for _ in 0..5 {
        let _ = agent
            .post(&format!("{}/api/v1/terminate", served.1))
            .send("{\"app\":\"app-0\"}");
    }
    let browser = simian_testkit::browser::Browser::start().unwrap();
    let mut tab = browser.tab(1280, 900, false).unwrap();
    println!("dashboard (20 clusters of 2, 5 kills in the history):");
    for page in ["/", "/history", "/apps", "/kill-switch"] {
        let url = format!("{}{page}", served.1);
        let bytes = agent
            .get(&url)
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap()
            .len();
        let (mut responses, mut loads) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            let mut r = Vec::new();
            let mut l = Vec::new();
            for _ in 0..10 {
                tab.open(&url).unwrap();
                let timing = tab
                    .eval("(() => { const t = performance.getEntriesByType('navigation')[0]; return [t.responseEnd - t.startTime, t.loadEventEnd - t.startTime]; })()")
                    .unwrap();
                r.push(timing[0].as_f64().unwrap());
                l.push(timing[1].as_f64().unwrap());
            }
            r.sort_by(|a, b| a.total_cmp(b));
            l.sort_by(|a, b| a.total_cmp(b));
            responses.push(r[r.len() / 2]);
            loads.push(l[l.len() / 2]);
        }
        println!(
            "  {page:<13} {bytes} bytes; response end {}, load end {}",
            summary(&mut responses, "ms", 1),
            summary(&mut loads, "ms", 1)
        );
    }
}

fn delay() {
    const GROUPS: usize = 200;
    const SPEED: f64 = 1200.0;
    let (mut p50s, mut p99s, mut maxes) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let dir = tempfile::tempdir().unwrap();
        write_config(
            dir.path(),
            "sqlite://simian.db",
            "dry_run = false\nmax_kills_per_day = 1000",
            GROUPS,
        );
        let anchor = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        // 08:59 in Los Angeles; the window (09:00 to 15:00) passes in 18 s.
        let served = serve(
            dir.path(),
            &[
                "--clock-start",
                "2026-03-02T16:59:00Z",
                "--clock-speed",
                &SPEED.to_string(),
                "--clock-anchor",
                &anchor.to_string(),
            ],
        );
        std::thread::sleep(Duration::from_secs_f64(6.1 * 3600.0 / SPEED + 1.0));
        drop(served);
        let store = simian_store::open("sqlite://simian.db", dir.path()).unwrap();
        let schedule = store
            .schedule(jiff::civil::date(2026, 3, 2))
            .unwrap()
            .unwrap();
        let planned: std::collections::HashMap<i64, jiff::Timestamp> =
            schedule.entries.iter().map(|e| (e.id, e.time)).collect();
        let mut delays: Vec<Duration> = store
            .terminations(&HistoryFilter::default())
            .unwrap()
            .iter()
            .filter_map(|t| {
                let at = planned.get(&t.schedule_entry?)?;
                let simulated = t.recorded_at.duration_since(*at).as_secs_f64().max(0.0);
                Some(Duration::from_secs_f64(simulated / SPEED))
            })
            .collect();
        assert_eq!(delays.len(), GROUPS, "every planned kill fired");
        delays.sort();
        p50s.push(ms(pct(&delays, 0.5)));
        p99s.push(ms(pct(&delays, 0.99)));
        maxes.push(ms(delays[delays.len() - 1]));
    }
    println!(
        "planned instant to recorded kill, {GROUPS} kills over a day at {SPEED}x (real time): p50 {}, p99 {}, max {}",
        summary(&mut p50s, "ms", 0),
        summary(&mut p99s, "ms", 0),
        summary(&mut maxes, "ms", 0)
    );
}

fn main() {
    let asked: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wants = |phase: &str| asked.is_empty() || asked.iter().any(|a| a == phase);
    if wants("history") {
        let dir = tempfile::tempdir().unwrap();
        write_config(dir.path(), "sqlite://simian.db", "enabled = false", 2);
        drop(simian_store::open("sqlite://simian.db", dir.path()).unwrap());
        let began = Instant::now();
        fill_sqlite(&dir.path().join("simian.db"));
        println!("(SQLite filled in {:.1} s)", began.elapsed().as_secs_f64());
        history("SQLite", "sqlite://simian.db", dir.path());
        match std::env::var("SIMIAN_TEST_POSTGRES_URL") {
            Ok(_) => {
                let url = simian_testkit::fresh_postgres("bench_history");
                let dir = tempfile::tempdir().unwrap();
                write_config(dir.path(), &url, "enabled = false", 2);
                drop(simian_store::open(&url, dir.path()).unwrap());
                let began = Instant::now();
                fill_postgres(&url);
                println!(
                    "(PostgreSQL filled in {:.1} s)",
                    began.elapsed().as_secs_f64()
                );
                history("PostgreSQL", &url, dir.path());
            }
            Err(_) => println!(
                "history on PostgreSQL: skipped (set SIMIAN_TEST_POSTGRES_URL, e.g. from scripts/start-postgres.sh)"
            ),
        }
    }
    if wants("dashboard") {
        dashboard();
    }
    if wants("delay") {
        delay();
    }
}
