//! `simian gorilla`, `simian kong` and `simian outages` on real processes that each test
//! spawns, labelled with a run id unique to the test (the config's selector keeps Simian on
//! them): pause (SIGSTOP, then SIGCONT), terminate, the guardrails, the abort on a lost steady
//! state, and a SIGKILL of simian in the middle of a drill, undone by its guardian with no
//! simian command run afterwards.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use util::Sandbox;

/// Processes this test spawned, killed and reaped however the test ends.
struct Fleet {
    run: String,
    children: Vec<(String, String, Child)>,
}

impl Fleet {
    fn new(tag: &str) -> Fleet {
        Fleet {
            run: format!(
                "{tag}-{}-{}",
                std::process::id(),
                jiff::Timestamp::now().as_nanosecond()
            ),
            children: Vec::new(),
        }
    }

    /// A `sleep` of app `app` in zone `zone` of region `region`.
    fn spawn(&mut self, app: &str, region: &str, zone: &str) {
        let child = Command::new("sleep")
            .arg("600")
            .env("SIMIAN_APP", app)
            .env("SIMIAN_REGION", region)
            .env("SIMIAN_ZONE", zone)
            .env("SIMIAN_LABEL_RUN", &self.run)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        self.children.push((app.into(), zone.into(), child));
    }

    /// The state letter of each process of `zone` (`T`: stopped), `None` once it is dead.
    fn states(&mut self, zone: &str) -> Vec<Option<char>> {
        self.children
            .iter_mut()
            .filter(|(_, z, _)| z == zone)
            .map(|(_, _, c)| {
                if c.try_wait().unwrap().is_some() {
                    return None;
                }
                let stat = std::fs::read_to_string(format!("/proc/{}/stat", c.id())).ok()?;
                stat[stat.rfind(')')? + 1..].trim_start().chars().next()
            })
            .collect()
    }

    /// Waits until every process of `zone` is in a state `want` accepts.
    fn wait_for(
        &mut self,
        zone: &str,
        within: Duration,
        want: impl Fn(Option<char>) -> bool,
    ) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.states(zone).into_iter().all(&want) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// The config: apps `web` and `solo` on a process provider limited to this fleet.
    fn sandbox(&self, monkey: &str) -> Sandbox {
        let s = Sandbox::new();
        s.write(
            "simian.toml",
            &format!(
                "[monkey]\n{monkey}\n[store]\nurl = \"sqlite://simian.db\"\n\
                 [providers.local]\nkind = \"process\"\ngrace_period = \"2s\"\nselector = {{ run = \"{}\" }}\n\
                 [[apps]]\nname = \"web\"\nprovider = \"local\"\n\
                 [[apps]]\nname = \"solo\"\nprovider = \"local\"\n",
                self.run
            ),
        );
        s
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for (_, _, c) in &mut self.children {
            if let Some(pid) = rustix::process::Pid::from_raw(c.id() as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::CONT);
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Two `web` processes in each of zones a and b of region east, one in zone w of region
/// west, and a `solo` app whose only process is in zone a.
fn fleet(tag: &str) -> Fleet {
    let mut f = Fleet::new(tag);
    for zone in ["a", "a", "b", "b"] {
        f.spawn("web", "east", zone);
    }
    f.spawn("web", "west", "w");
    f.spawn("solo", "east", "a");
    std::thread::sleep(Duration::from_millis(100));
    f
}

/// A loopback HTTP server answering 200, or 503 once `failing` is set; stops with the test.
fn probe_server(failing: Arc<AtomicBool>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/health", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            let status = if failing.load(Ordering::SeqCst) {
                "503 Service Unavailable"
            } else {
                "200 OK"
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
            );
        }
    });
    url
}

const RUNNING: fn(Option<char>) -> bool = |s| matches!(s, Some(c) if c != 'T');

#[test]
fn a_zone_is_paused_for_the_duration_then_resumed_with_the_probe_report() {
    let mut f = fleet("pause");
    let s = f.sandbox("");
    let url = probe_server(Arc::new(AtomicBool::new(false)));
    let drill = s
        .command(&[
            "gorilla",
            "a",
            "--mode",
            "pause",
            "--duration",
            "3s",
            "--no-dry-run",
            "--probe",
            &url,
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        f.wait_for("a", Duration::from_secs(15), |s| s.is_some()),
        "the fleet runs"
    );
    // The solo app is left out: only web's two processes in zone a stop.
    wait_paused(&mut f);
    assert_eq!(f.states("b"), vec![Some('S'), Some('S')], "zone b runs on");
    let out = drill.wait_with_output().unwrap();
    let run = util::Run(out);
    run.expect(0);
    assert!(
        f.wait_for("a", Duration::from_secs(1), RUNNING),
        "resumed: {:?}",
        f.states("a")
    );
    let j = run.json();
    assert_eq!(j["drill"]["ending"], "completed", "{j}");
    assert_eq!(j["acted"].as_array().unwrap().len(), 2, "{j}");
    assert!(
        j["acted"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["outcome"] == "made" && a["undone"].as_str().unwrap().contains("SIGCONT")),
        "{j}"
    );
    assert_eq!(j["plan"]["left_out"][0]["app"], "solo", "{j}");
    assert!(
        j["plan"]["left_out"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("lose every instance")
    );
    assert_eq!(j["plan"]["apps"][0]["stays_up"]["b"], 2, "{j}");
    let report = &j["report"][0];
    assert_eq!(report["before"]["requests"], 3, "{j}");
    assert!(report["during"]["requests"].as_u64().unwrap() >= 2, "{j}");
    assert!(report["after"]["requests"].as_u64().unwrap() >= 4, "{j}");
    assert_eq!(report["during"]["availability"], 100.0, "{j}");

    let listed = s.run(&["outages", "--json"]).json();
    let d = &listed[0];
    assert_eq!(d["drill"]["kind"], "gorilla");
    assert_eq!(d["drill"]["mode"], "pause");
    assert_eq!(d["leases"].as_array().unwrap().len(), 2);
    assert!(
        d["leases"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| !l["ended_at"].is_null() && !l["undo_at"].is_null())
    );
    let text = s.run(&["outages"]);
    text.expect(0);
    assert!(text.stdout().contains("completed"), "{}", text.stdout());
}

#[test]
fn simian_killed_mid_drill_leaves_the_undo_to_its_guardian() {
    let mut f = fleet("sigkill");
    let s = f.sandbox("dry_run = false");
    let mut drill = in_background(&s, &["gorilla", "a", "--mode", "pause", "--duration", "2s"]);
    wait_paused(&mut f);
    drill.kill().unwrap();
    drill.wait().unwrap();
    assert!(
        f.states("a").iter().filter(|s| **s == Some('T')).count() == 2,
        "still paused right after the SIGKILL"
    );
    // No simian command runs from here on: only the guardian can resume them.
    assert!(
        f.wait_for("a", Duration::from_secs(10), |s| s != Some('T')),
        "the guardian resumed them: {:?}",
        f.states("a")
    );
    let listed = s.run(&["outages", "--json"]).json();
    let leases = listed[0]["leases"].as_array().unwrap();
    assert_eq!(leases.len(), 2, "{listed}");
    assert!(
        leases
            .iter()
            .all(|l| l["ending"].as_str().unwrap().contains("SIGCONT")),
        "{listed}"
    );
}

#[test]
fn terminate_kills_the_zone_and_records_each_kill_with_its_origin() {
    let mut f = fleet("terminate");
    let s = f.sandbox("dry_run = false");
    s.run(&["gorilla", "a", "--app", "web"]).expect(0);
    let alive_a = f
        .states("a")
        .iter()
        .filter(|st| st.is_some_and(|c| c != 'Z'))
        .count();
    assert_eq!(alive_a, 1, "web's two died, solo (not in --app) runs");
    assert_eq!(f.states("b").iter().filter(|st| st.is_some()).count(), 2);
    let history = s.run(&["history", "--json"]).json();
    let kills = history["terminations"].as_array().unwrap();
    assert_eq!(kills.len(), 2, "{history}");
    assert!(
        kills
            .iter()
            .all(|k| k["origin"] == "gorilla" && k["state"] == "killed"),
        "{history}"
    );
    assert_eq!(history["drills"][0]["mode"], "terminate", "{history}");
    let text = s.run(&["history"]);
    assert!(text.stdout().contains("gorilla"), "{}", text.stdout());
}

#[test]
fn kong_takes_the_region_only_when_confirmed() {
    let mut f = fleet("kong");
    let s = f.sandbox("dry_run = false");
    let out = s.run(&["kong", "east", "--mode", "pause", "--duration", "1s"]);
    out.expect(2);
    assert!(out.stderr().contains("--confirm east"), "{}", out.stderr());
    s.run(&[
        "kong",
        "east",
        "--confirm",
        "west",
        "--mode",
        "pause",
        "--duration",
        "1s",
    ])
    .expect(2);
    let out = s.run(&[
        "kong",
        "east",
        "--confirm",
        "east",
        "--mode",
        "pause",
        "--duration",
        "1s",
        "--json",
    ]);
    out.expect(0);
    let j = out.json();
    // web has an instance in west, so all four in east pause; solo lives only in east.
    assert_eq!(j["acted"].as_array().unwrap().len(), 4, "{j}");
    assert_eq!(j["plan"]["left_out"][0]["app"], "solo", "{j}");
    assert!(f.wait_for("a", Duration::from_secs(2), RUNNING));
    assert!(f.wait_for("b", Duration::from_secs(2), RUNNING));
}

#[test]
fn the_guardrails_refuse_before_anything_is_touched() {
    let mut f = fleet("guardrails");
    let s = f.sandbox("dry_run = false");
    // Pause needs a duration; isolate is not something processes can do.
    s.run(&["gorilla", "a", "--mode", "pause"]).expect(2);
    let out = s.run(&["gorilla", "a", "--mode", "isolate", "--duration", "1s"]);
    out.expect(3);
    assert!(
        out.stderr().contains("which supports terminate, pause"),
        "{}",
        out.stderr()
    );
    // A zone with no instance of any app.
    let out = s.run(&["gorilla", "nowhere", "--mode", "pause", "--duration", "1s"]);
    out.expect(3);
    assert!(
        out.stderr().contains("nothing to act on"),
        "{}",
        out.stderr()
    );
    // A second drill on the same zone while the first runs.
    let mut first = in_background(&s, &["gorilla", "a", "--mode", "pause", "--duration", "4s"]);
    wait_paused(&mut f);
    let second = s.run(&["gorilla", "a", "--mode", "pause", "--duration", "1s"]);
    second.expect(3);
    assert!(
        second.stderr().contains("still runs"),
        "{}",
        second.stderr()
    );
    assert_eq!(first.wait().unwrap().code(), Some(0));
    assert!(f.wait_for("a", Duration::from_secs(2), RUNNING));
    // The kill switch.
    let off = f.sandbox("enabled = false\ndry_run = false");
    let out = off.run(&["gorilla", "a", "--mode", "pause", "--duration", "1s"]);
    out.expect(3);
    assert!(out.stderr().contains("kill switch"), "{}", out.stderr());
    // An outage (or an outage check that cannot tell) holds every drill.
    let outage = f.sandbox("dry_run = false\n[outage]\ncommand = [\"echo\", \"true\"]");
    let out = outage.run(&["gorilla", "a", "--mode", "pause", "--duration", "1s"]);
    out.expect(3);
    assert!(
        out.stderr().contains("refused by outage"),
        "{}",
        out.stderr()
    );
    // A dry run (the default) plans, records and touches nothing.
    let dry = f.sandbox("");
    let out = dry.run(&["gorilla", "a", "--mode", "pause", "--duration", "1s"]);
    out.expect(0);
    assert!(out.stdout().contains("dry run"), "{}", out.stdout());
    assert!(f.states("a").iter().all(|s| *s != Some('T')));
    let listed = dry.run(&["outages", "--json"]).json();
    assert_eq!(listed[0]["drill"]["ending"], "dry_run", "{listed}");
    assert!(listed[0]["leases"].as_array().unwrap().is_empty());
}

#[test]
fn a_lost_steady_state_aborts_the_drill_and_undoes_it() {
    let mut f = fleet("abort");
    let s = f.sandbox("dry_run = false");
    let failing = Arc::new(AtomicBool::new(false));
    let url = probe_server(Arc::clone(&failing));
    // A failing probe refuses the drill before anything is touched.
    failing.store(true, Ordering::SeqCst);
    let out = s.run(&[
        "gorilla",
        "a",
        "--mode",
        "pause",
        "--duration",
        "30s",
        "--probe",
        &url,
    ]);
    out.expect(3);
    assert!(
        out.stderr().contains("fails before the drill"),
        "{}",
        out.stderr()
    );
    failing.store(false, Ordering::SeqCst);

    let drill = pause_zone_a_for_a_minute(&s, &mut f, &["--probe", &url]);
    let started = Instant::now();
    failing.store(true, Ordering::SeqCst);
    let out = util::Run(drill.wait_with_output().unwrap());
    out.expect(1);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "aborted well before the 60 s"
    );
    assert!(f.wait_for("a", Duration::from_secs(1), RUNNING), "undone");
    let j = out.json();
    assert_eq!(j["drill"]["ending"], "aborted", "{j}");
    assert!(
        j["drill"]["detail"].as_str().unwrap().contains("below 95%"),
        "{j}"
    );
    assert!(
        j["report"][0]["during"]["failures"].as_u64().unwrap() >= 1,
        "{j}"
    );
}

/// `simian ARGS` in the background, its standard output kept (for `--json`), its standard
/// error dropped.
fn in_background(s: &Sandbox, args: &[&str]) -> std::process::Child {
    s.command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Starts `simian gorilla a --mode pause --duration 60s --json`, and `extra` arguments, in
/// the background, and waits until it has paused zone a.
fn pause_zone_a_for_a_minute(s: &Sandbox, f: &mut Fleet, extra: &[&str]) -> std::process::Child {
    let mut args = vec![
        "gorilla",
        "a",
        "--mode",
        "pause",
        "--duration",
        "60s",
        "--json",
    ];
    args.extend_from_slice(extra);
    let drill = in_background(s, &args);
    wait_paused(f);
    drill
}

/// Waits until the two web processes of zone a are stopped.
fn wait_paused(f: &mut Fleet) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while f.states("a").iter().filter(|s| **s == Some('T')).count() < 2 {
        assert!(
            Instant::now() < deadline,
            "zone a was never paused: {:?}",
            f.states("a")
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn outages_end_and_ctrl_c_undo_at_once() {
    let mut f = fleet("end");
    let s = f.sandbox("dry_run = false");
    // `simian outages end ID` from another shell.
    let drill = pause_zone_a_for_a_minute(&s, &mut f, &[]);
    let running = s.run(&["outages", "--json"]).json();
    assert!(running[0]["drill"]["ended_at"].is_null(), "{running}");
    let ended = s.run(&["outages", "end", "1"]);
    ended.expect(0);
    assert!(
        ended.stdout().contains("ended now; 2 faults undone"),
        "{}",
        ended.stdout()
    );
    assert!(
        f.wait_for("a", Duration::from_secs(1), RUNNING),
        "undone at once"
    );
    let out = util::Run(drill.wait_with_output().unwrap());
    out.expect(1);
    assert_eq!(out.json()["drill"]["ending"], "ended");
    s.run(&["outages", "end", "1"]).expect(0);
    s.run(&["outages", "end", "99"]).expect(2);

    // Ctrl-C in the drill's terminal.
    let drill = pause_zone_a_for_a_minute(&s, &mut f, &[]);
    let pid = rustix::process::Pid::from_raw(drill.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let started = Instant::now();
    assert!(
        f.wait_for("a", Duration::from_secs(3), RUNNING),
        "undone at once"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    let out = util::Run(drill.wait_with_output().unwrap());
    out.expect(1);
    let j = out.json();
    assert_eq!(j["drill"]["ending"], "ended", "{j}");
    assert!(
        j["drill"]["detail"].as_str().unwrap().contains("Ctrl-C"),
        "{j}"
    );
}

#[test]
fn probes_and_the_abort_threshold_can_come_from_the_config() {
    let mut f = fleet("config-probes");
    let failing = Arc::new(AtomicBool::new(true));
    let url = probe_server(Arc::clone(&failing));
    let s = f.sandbox(&format!(
        "dry_run = false\n[drills]\nprobes = [\"{url}\"]\nabort_below = 90\nprobe_timeout = \"1s\""
    ));
    let checked = s.run(&["config", "check", "--json"]).json();
    assert_eq!(checked["drills"]["probes"][0], url.as_str(), "{checked}");
    assert_eq!(checked["drills"]["abort_below"], 90.0, "{checked}");
    let out = s.run(&["gorilla", "a", "--mode", "pause", "--duration", "1s"]);
    out.expect(3);
    assert!(
        out.stderr().contains("fails before the drill"),
        "{}",
        out.stderr()
    );
    assert!(
        f.states("a").iter().all(|s| *s != Some('T')),
        "nothing was touched"
    );

    for (drills, wanted) in [
        (
            "probes = [\"ftp://x\"]",
            "is not an http:// or https:// URL",
        ),
        ("abort_below = 150.0", "is not a percentage"),
        ("probe_timeout = \"soon\"", "is not a duration"),
        ("probes = [\"http://x\"]\nretries = 3", "retries"),
    ] {
        let bad = Sandbox::new();
        util::expect_config_error(&bad, &format!("[drills]\n{drills}\n"), wanted);
    }
    s.run(&["gorilla", "a", "--probe", "not a url"]).expect(2);
    s.run(&["gorilla", "a", "--abort-below", "101"]).expect(2);
}

/// On a static inventory a drill plans and records at any scale, and touches nothing real:
/// its kills are `simulated`. Kong over the only region leaves the app out (it would lose
/// everything), so there is nothing to do: exit 3.
#[test]
fn a_static_inventory_drill_is_recorded_and_simulated() {
    let s = Sandbox::new();
    s.write("inventory.json", &util::inventory(5));
    s.write(
        "simian.toml",
        &util::config("dry_run = false", "", "sqlite://simian.db"),
    );
    let out = s.run(&["gorilla", "us-east-1a", "--json"]);
    out.expect(0);
    let j = out.json();
    assert_eq!(j["acted"].as_array().unwrap().len(), 5, "{j}");
    let history = s.run(&["history", "--json"]).json();
    let kills = history["terminations"].as_array().unwrap();
    assert_eq!(kills.len(), 5, "{history}");
    assert!(
        kills
            .iter()
            .all(|k| k["state"] == "simulated" && k["zone"] == "us-east-1a"),
        "{history}"
    );

    let out = s.run(&["kong", "us-east-1", "--confirm", "us-east-1", "--json"]);
    out.expect(3);
    let j = out.json();
    assert_eq!(j["refusal"]["check"], "nothing_to_do", "{j}");
    assert!(j["plan"].is_null(), "{j}");
    assert!(
        j["refusal"]["reason"]
            .as_str()
            .unwrap()
            .contains("lose every instance"),
        "{j}"
    );
}

/// The processes whose command line holds `needle`: the guardian this test's simian started
/// (found by its sandbox's config path, so never anything else).
fn guardians(needle: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let line = String::from_utf8_lossy(&c).replace('\0', " ");
                line.contains(needle) && line.contains(" guard --drill ")
            })
        })
        .collect()
}

/// Simian and its guardian both die mid-drill (a machine reboot, as far as they are
/// concerned): the first simian command after the deadline undoes the faults, and the drill
/// is ended `interrupted`.
#[test]
fn a_later_command_reconciles_a_drill_whose_simian_and_guardian_died() {
    let mut f = fleet("reconcile");
    let s = f.sandbox("dry_run = false");
    let mut drill = in_background(&s, &["gorilla", "a", "--mode", "pause", "--duration", "2s"]);
    wait_paused(&mut f);
    let config = s.path().join("simian.toml").canonicalize().unwrap();
    let needle = config.to_string_lossy().to_string();
    let deadline = Instant::now() + Duration::from_secs(5);
    let guards = loop {
        let g = guardians(&needle);
        if !g.is_empty() || Instant::now() > deadline {
            break g;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(guards.len(), 1, "one guardian for the drill");
    drill.kill().unwrap();
    drill.wait().unwrap();
    for pid in guards {
        let pid = rustix::process::Pid::from_raw(pid).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
    }
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        f.states("a").iter().filter(|s| **s == Some('T')).count(),
        2,
        "nobody is left to undo them"
    );
    let listed = s.run(&["outages", "--json"]).json();
    assert!(
        f.wait_for("a", Duration::from_secs(1), RUNNING),
        "the command undid them"
    );
    let d = &listed[0]["drill"];
    assert_eq!(d["ending"], "interrupted", "{listed}");
    assert!(
        listed[0]["leases"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["ending"]
                .as_str()
                .unwrap()
                .contains("reconciled after the deadline")),
        "{listed}"
    );
}
