//! Runs the real `simian` binary in a fresh temporary directory.
#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod served;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_simian"));
        c.args(args)
            .current_dir(self.path())
            .env_remove("SIMIAN_CONFIG")
            .env_remove("SIMIAN_LOG")
            .env_remove("AWS_PROFILE")
            // An aws provider in a test talks to the emulator only, with fake credentials:
            // never to the instance metadata service, never with the machine's own keys.
            .envs(simian_testkit::aws::ENV)
            .stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run(self.command(args).output().unwrap())
    }
}

pub struct Run(pub Output);

impl Run {
    pub fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.0.stdout).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {}\nstderr: {}",
                self.stdout(),
                self.stderr()
            )
        })
    }
    #[track_caller]
    pub fn expect(&self, code: i32) -> &Run {
        assert_eq!(
            self.code(),
            code,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }
}

/// A static inventory: `clusters` clusters of app `web` with two instances each, plus a
/// canary cluster.
pub fn inventory(clusters: usize) -> String {
    let mut instances: Vec<serde_json::Value> = (0..clusters)
        .flat_map(|c| {
            (0..2).map(move |n| {
                serde_json::json!({"id": format!("i-{c}-{n}"), "app": "web", "account": "prod", "region": "us-east-1",
                    "zone": format!("us-east-1{}", ["a", "b"][n]), "stack": "prod", "detail": format!("c{c}")})
            })
        })
        .collect();
    instances.push(serde_json::json!({"id": "i-canary", "app": "web", "account": "prod", "region": "us-east-1", "stack": "prod", "detail": "canary"}));
    serde_json::json!({ "instances": instances }).to_string()
}

/// A config over a static inventory, with `extra` appended to [monkey] and the app.
pub fn config(monkey: &str, app: &str, store: &str) -> String {
    format!(
        "[monkey]\ntime_zone = \"America/Los_Angeles\"\n{monkey}\n\n[store]\nurl = \"{store}\"\n\n\
         [providers.inv]\nkind = \"static\"\npath = \"inventory.json\"\n\n\
         [[apps]]\nname = \"web\"\nprovider = \"inv\"\n{app}\n"
    )
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A fresh database on the PostgreSQL test server (the test fails without one).
pub fn postgres_url(tag: &str) -> String {
    simian_testkit::fresh_postgres(&format!("cli_{tag}"))
}

/// A `simian monkey` process, killed and reaped however the test ends.
pub struct Daemon(pub std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `simian monkey ARGS` in the sandbox, its output discarded.
pub fn start_daemon(s: &Sandbox, args: &[&str]) -> Daemon {
    let mut cmd = s.command(&[&["monkey"], args].concat());
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    Daemon(cmd.spawn().unwrap())
}

/// Sends `sig` to the daemon (our own child).
pub fn signal(d: &Daemon, sig: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(d.0.id() as i32).unwrap();
    rustix::process::kill_process(pid, sig).unwrap();
}

/// `simian monkey` clock flags: Monday 2 March 2026, 08:58 in Los Angeles, one simulated hour
/// per real second, anchored now, so that restarts continue the same timeline and the day's
/// window (09:00 to 15:00) passes in about 6 s.
pub fn day_clock() -> Vec<String> {
    let anchor = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    [
        "--clock-start",
        "2026-03-02T16:58:00Z",
        "--clock-speed",
        "3600",
        "--clock-anchor",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("{anchor}")])
    .collect()
}

/// Starts the daemon with `args` and kills it with SIGKILL after a random pause (milliseconds
/// from `pause_ms`, seeded by `seed`), over and over until `until` has passed since `began`;
/// returns how many times it was killed.
pub fn crash_repeatedly(
    s: &Sandbox,
    args: &[&str],
    seed: u64,
    pause_ms: std::ops::Range<u64>,
    began: std::time::Instant,
    until: std::time::Duration,
) -> u32 {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut crashes = 0;
    while began.elapsed() < until {
        let d = start_daemon(s, args);
        std::thread::sleep(std::time::Duration::from_millis(
            rng.random_range(pause_ms.clone()),
        ));
        signal(&d, rustix::process::Signal::KILL);
        crashes += 1;
    }
    crashes
}

/// Runs `simian monkey` with `clock` (the flags of [`day_clock`], the same ones as any earlier
/// run of the day, so the timeline continues) until `until` after `began` (past the day's
/// window and the kills' grace periods), then stops it with SIGTERM, which must stop it
/// cleanly.
pub fn finish_day(
    s: &Sandbox,
    clock: &[&str],
    began: std::time::Instant,
    until: std::time::Duration,
) {
    let mut d = start_daemon(s, clock);
    std::thread::sleep(until.saturating_sub(began.elapsed()));
    signal(&d, rustix::process::Signal::TERM);
    assert!(
        d.0.wait().unwrap().success(),
        "SIGTERM stops the daemon cleanly"
    );
}

/// The accelerated day (2 March 2026) in the sandbox's store, with μ = 1 over `groups`
/// groups: a kill planned in every group, each fired, recorded exactly once and finished, one
/// per group. Returns the terminations, for the caller to check their states.
pub fn fired_once_per_group(s: &Sandbox, groups: usize) -> Vec<simian_core::Termination> {
    let store = simian_store::open("sqlite://simian.db", s.path()).unwrap();
    let schedule = store
        .schedule(jiff::civil::date(2026, 3, 2))
        .unwrap()
        .unwrap();
    assert_eq!(
        schedule.entries.len(),
        groups,
        "μ = 1 plans a kill in every group"
    );
    assert!(
        schedule
            .entries
            .iter()
            .all(|e| e.status == simian_core::EntryStatus::Fired),
        "{:?}",
        schedule.entries
    );
    let kills = store
        .terminations(&simian_core::HistoryFilter::default())
        .unwrap();
    assert_eq!(
        kills.len(),
        groups,
        "one termination per planned kill: {kills:#?}"
    );
    assert!(store.unfinished().unwrap().is_empty());
    let clusters: std::collections::BTreeSet<&str> =
        kills.iter().map(|k| k.cluster.as_str()).collect();
    assert_eq!(clusters.len(), groups, "one kill per group: {clusters:?}");
    kills
}

/// Writes `config` as the sandbox's simian.toml and checks that `config check --offline`
/// refuses it with exit 2, saying `wanted` and the file and line.
pub fn expect_config_error(s: &Sandbox, config: &str, wanted: &str) {
    s.write("simian.toml", config);
    let out = s.run(&["config", "check", "--offline"]);
    out.expect(2);
    let err = out.stderr();
    assert!(err.contains(wanted), "{config}\nwanted {wanted:?}: {err}");
    assert!(err.contains("simian.toml:"), "{err}");
}

/// A sandbox whose config has a process provider `local` selecting `{ run = RUN }` (a label
/// unique to the test) and a disabled app `app` over it, with `monkey` added to `[monkey]`;
/// returns it and the run label.
pub fn process_sandbox(app: &str, monkey: &str) -> (Sandbox, String) {
    process_fleet(app, monkey, "enabled = false")
}

/// A sandbox whose `simian.toml` has a `local` process provider that sees only this run's
/// labelled processes, and app `app` with `app_settings` (`[monkey]` with `monkey`).
pub fn process_fleet(app: &str, monkey: &str, app_settings: &str) -> (Sandbox, String) {
    let s = Sandbox::new();
    let run = format!(
        "{app}-{}-{}",
        std::process::id(),
        jiff::Timestamp::now().as_nanosecond()
    );
    s.write(
        "simian.toml",
        &format!(
            "[monkey]\ndry_run = false\n{monkey}\n[store]\nurl = \"sqlite://simian.db\"\n\
             [providers.local]\nkind = \"process\"\ngrace_period = \"2s\"\nselector = {{ run = \"{run}\" }}\n\
             [[apps]]\nname = \"{app}\"\nprovider = \"local\"\n{app_settings}\n"
        ),
    );
    (s, run)
}

/// A `sleep 600` of the test's own, labelled for a process provider whose selector is
/// `{ run = RUN }`, as an instance of `app`.
pub fn labelled_sleep(app: &str, run: &str) -> std::process::Child {
    Command::new("sleep")
        .arg("600")
        .env("SIMIAN_APP", app)
        .env("SIMIAN_LABEL_RUN", run)
        .spawn()
        .unwrap()
}

/// The process provider's instance for `child` (`PID@START`, START its start time in
/// `/proc/PID/stat`).
pub fn process_instance(child: &std::process::Child, app: &str) -> simian_core::Instance {
    std::thread::sleep(std::time::Duration::from_millis(100));
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap();
    let started: u64 = stat[stat.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap();
    simian_core::Instance::builder(format!("{}@{started}", child.id()), app).build()
}

/// Records a manual kill of `instance` through the `local` provider and leaves it unfinished,
/// as a simian that died right after recording it would.
pub fn record_unfinished_kill(store: &dyn simian_core::Store, instance: &simian_core::Instance) {
    let now = jiff::Timestamp::now();
    let claim = simian_core::Claim {
        candidates: vec![instance],
        grouping: simian_core::Grouping::Cluster,
        regions_independent: false,
        draw: 0,
        provider: "local".into(),
        dry_run: false,
        origin: simian_core::Origin::Manual,
        schedule_entry: None,
        at: now,
        day_start: now - jiff::SignedDuration::from_hours(1),
        day_end: now + jiff::SignedDuration::from_hours(1),
        max_kills_per_day: 10,
        min_time_threshold: now,
    };
    assert!(matches!(
        store.claim(&claim).unwrap(),
        simian_core::ClaimResult::Recorded(_)
    ));
    assert_eq!(store.unfinished().unwrap().len(), 1);
}

/// Waits (until `deadline`) for the one unfinished kill in `store` to be finished, then checks
/// that it killed `victim` once, by a signal, and left `bystander` running (then stopped).
pub fn expect_resumed_once(
    store: &dyn simian_core::Store,
    deadline: std::time::Instant,
    victim: &mut std::process::Child,
    mut bystander: std::process::Child,
) {
    while !store.unfinished().unwrap().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the unfinished kill was never resumed"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let kills = store
        .terminations(&simian_core::HistoryFilter::default())
        .unwrap();
    assert_eq!(kills.len(), 1);
    assert_eq!(
        kills[0].state,
        simian_core::TerminationState::Killed,
        "{:?}",
        kills[0]
    );
    assert!(
        victim.wait().unwrap().code().is_none(),
        "the victim died of a signal"
    );
    assert!(
        bystander.try_wait().unwrap().is_none(),
        "nothing else was touched"
    );
    let _ = bystander.kill();
    let _ = bystander.wait();
}
