//! The `simian` binary on real containers: `terminate`, the minimum time between kills, and the
//! daemon on an accelerated clock, with crashes, all through `kind = "docker"`. Containers run
//! an image with no base, holding only busybox, made by each test and carry a run label unique to it
//! (`simian_testkit::docker`); the config's selector keeps Simian on them, and everything is
//! removed when the test ends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

use std::time::{Duration, Instant};

use simian_core::TerminationState;
use simian_testkit::docker::{Lab, RUN_LABEL};
use util::{
    Sandbox, crash_repeatedly, day_clock, finish_day, fired_once_per_group, signal, start_daemon,
};

/// A sandbox whose config aims at this lab's containers only.
fn sandbox(lab: &Lab, monkey: &str, app: &str) -> Sandbox {
    let s = Sandbox::new();
    s.write(
        "simian.toml",
        &format!(
            "[monkey]\ntime_zone = \"America/Los_Angeles\"\n{monkey}\n\n\
             [store]\nurl = \"sqlite://simian.db\"\n\n\
             [providers.containers]\nkind = \"docker\"\ngrace_period = \"1s\"\n\
             selector = {{ \"{RUN_LABEL}\" = \"{}\" }}\n\n\
             [[apps]]\nname = \"web\"\nprovider = \"containers\"\n{app}\n",
            lab.run
        ),
    );
    s
}

/// `groups` clusters of `per_group` containers of app `web`.
fn fleet(lab: &mut Lab, groups: usize, per_group: usize) {
    for g in 0..groups {
        let detail = format!("c{g}");
        for _ in 0..per_group {
            lab.start(&[
                ("simian.app", "web"),
                ("simian.stack", "prod"),
                ("simian.detail", &detail),
            ]);
        }
    }
}

#[test]
#[ignore = "needs the Docker engine and busybox-static: scripts/test.sh installs it (then pass --include-ignored)"]
fn terminate_stops_exactly_one_container_then_the_minimum_time_refuses() {
    let mut lab = Lab::new("cli-terminate");
    fleet(&mut lab, 1, 3);
    let s = sandbox(&lab, "", "mean_time_between_kills = 2");
    let eligible = s.run(&["eligible", "web", "--json"]).json();
    assert_eq!(eligible.as_array().unwrap().len(), 3, "{eligible}");

    let out = s.run(&["terminate", "web", "--no-dry-run", "--json"]);
    out.expect(0);
    let t = out.json();
    assert_eq!(t["termination"]["state"], "killed", "{t}");
    let victim = t["termination"]["instance_id"]
        .as_str()
        .unwrap()
        .to_string();
    let running = lab.running_ids();
    assert_eq!(running.len(), 2, "exactly one container stopped");
    assert!(!running.contains(&victim), "the recorded one");

    let again = s.run(&["terminate", "web", "--no-dry-run", "--json"]);
    again.expect(3);
    assert_eq!(again.json()["refusal"]["check"], "min_time_between_kills");
    assert_eq!(lab.running_ids().len(), 2, "nothing else was touched");
}

/// Runs the daemon over the day's window, killing it with SIGKILL `crashes` times at random
/// moments first when asked, then checks the day: every planned kill fired once, each one
/// stopped exactly one container of its group, and nothing else.
fn day_on_containers(tag: &str, crash: bool) {
    let groups = 4;
    let mut lab = Lab::new(tag);
    fleet(&mut lab, groups, 2);
    let s = sandbox(
        &lab,
        "dry_run = false\nseed = 3",
        "mean_time_between_kills = 1\nmin_time_between_kills = 1",
    );
    let clock = day_clock();
    let clock: Vec<&str> = clock.iter().map(String::as_str).collect();
    let began = Instant::now();
    let crashes = if crash {
        crash_repeatedly(&s, &clock, 17, 150..700, began, Duration::from_millis(6300))
    } else {
        0
    };
    // A (last) run past the window's end and the kills' grace periods, stopped cleanly.
    finish_day(
        &s,
        &clock,
        began,
        Duration::from_millis(if crash { 9000 } else { 8500 }),
    );
    if crash {
        assert!(crashes >= 6, "{crashes} crashes");
    }
    let kills = fired_once_per_group(&s, groups);
    for k in &kills {
        assert!(
            matches!(
                k.state,
                TerminationState::Killed | TerminationState::AlreadyGone
            ),
            "{k:?}"
        );
        assert!(!k.dry_run);
    }
    if !crash {
        assert!(
            kills.iter().all(|k| k.state == TerminationState::Killed),
            "{kills:#?}"
        );
    }
    let running = lab.running_ids();
    assert_eq!(
        running.len(),
        groups,
        "each kill stopped exactly one container"
    );
    for k in &kills {
        assert!(!running.contains(&k.instance_id), "{k:?} still runs");
    }
}

#[test]
#[ignore = "needs the Docker engine and busybox-static: scripts/test.sh installs it (then pass --include-ignored)"]
fn the_daemon_kills_containers_on_schedule() {
    day_on_containers("cli-daemon", false);
}

#[test]
#[ignore = "needs the Docker engine and busybox-static: scripts/test.sh installs it (then pass --include-ignored)"]
fn sigkill_and_restart_lose_nothing_and_repeat_nothing_on_containers() {
    day_on_containers("cli-crash", true);
}

/// Waits until `done` holds, or panics with `what` after `limit`.
fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) -> Duration {
    let began = Instant::now();
    while !done() {
        assert!(began.elapsed() < limit, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    began.elapsed()
}

/// A sandbox whose provider pauses for `pause_for` instead of stopping.
fn pause_sandbox(lab: &Lab, pause_for: &str, monkey: &str) -> Sandbox {
    let s = sandbox(lab, monkey, "mean_time_between_kills = 1");
    let path = s.path().join("simian.toml");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "kind = \"docker\"\n",
        &format!("kind = \"docker\"\naction = \"pause\"\npause_for = \"{pause_for}\"\n"),
    );
    std::fs::write(&path, text).unwrap();
    s
}

fn open_store(s: &Sandbox) -> std::sync::Arc<dyn simian_core::Store> {
    simian_store::open("sqlite://simian.db", s.path()).unwrap()
}

/// A pause is recorded with its deadline, and undone at the deadline by the guardian, though
/// the simian that paused has long exited.
#[test]
#[ignore = "needs the Docker engine and busybox-static: scripts/test.sh installs it (then pass --include-ignored)"]
fn a_pause_is_undone_at_its_deadline() {
    let mut lab = Lab::new("cli-pause");
    fleet(&mut lab, 1, 2);
    let s = pause_sandbox(&lab, "3s", "");
    let out = s.run(&["terminate", "web", "--no-dry-run", "--json"]);
    out.expect(0);
    let t = out.json();
    assert_eq!(t["termination"]["state"], "paused", "{t}");
    let id = t["termination"]["instance_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(lab.paused(&id), "paused when terminate returns");
    let store = open_store(&s);
    let open = store.open_leases().unwrap();
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0].instance_id, id);
    let took = wait_until(Duration::from_secs(3 + 5), "unpaused", || !lab.paused(&id));
    assert!(
        took >= Duration::from_millis(2000),
        "not before the deadline: {took:?}"
    );
    assert!(lab.running(&id));
    wait_until(Duration::from_secs(3), "the lease ended", || {
        store.open_leases().unwrap().is_empty()
    });
    let ended = store.lease(open[0].id).unwrap().unwrap();
    assert!(ended.ending.unwrap().contains("unpaused"));
}

/// SIGKILL the daemon right after it paused a container, and run nothing else: the container
/// runs again within pause_for + 5 s.
#[test]
#[ignore = "needs the Docker engine and busybox-static: scripts/test.sh installs it (then pass --include-ignored)"]
fn a_pause_is_undone_even_after_sigkill() {
    let mut lab = Lab::new("cli-pause-kill");
    fleet(&mut lab, 1, 2);
    let s = pause_sandbox(&lab, "4s", "dry_run = false\nseed = 3");
    let clock = day_clock();
    let clock: Vec<&str> = clock.iter().map(String::as_str).collect();
    let d = start_daemon(&s, &clock);
    let mut paused = None;
    wait_until(
        Duration::from_secs(10),
        "a container paused by the daemon",
        || {
            paused = lab.containers.iter().find(|c| lab.paused(c)).cloned();
            paused.is_some()
        },
    );
    signal(&d, rustix::process::Signal::KILL);
    drop(d);
    let id = paused.unwrap();
    wait_until(
        Duration::from_secs(4 + 5),
        "unpaused after the SIGKILL",
        || !lab.paused(&id),
    );
    assert!(lab.running(&id));
}

/// Kill the guardian too: the fault stays past its deadline, and the next command that opens
/// the store undoes it.
#[test]
#[ignore = "needs the Docker engine and busybox-static: scripts/test.sh installs it (then pass --include-ignored)"]
fn a_pause_whose_guardian_died_is_undone_by_the_next_command() {
    let mut lab = Lab::new("cli-pause-orphan");
    fleet(&mut lab, 1, 2);
    let s = pause_sandbox(&lab, "2s", "");
    let out = s.run(&["terminate", "web", "--no-dry-run", "--json"]);
    out.expect(0);
    let id = out.json()["termination"]["instance_id"]
        .as_str()
        .unwrap()
        .to_string();
    // The guardian is the `simian guard` process reading this sandbox's config: ours.
    let config = std::fs::canonicalize(s.path().join("simian.toml")).unwrap();
    let mut guardians = Vec::new();
    wait_until(Duration::from_secs(5), "the guardian found", || {
        guardians = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                    let args: Vec<String> = c
                        .split(|b| *b == 0)
                        .map(|a| String::from_utf8_lossy(a).into_owned())
                        .collect();
                    args.iter().any(|a| a == "guard")
                        && args.iter().any(|a| *a == config.display().to_string())
                })
            })
            .collect();
        !guardians.is_empty()
    });
    for pid in &guardians {
        let pid = rustix::process::Pid::from_raw(*pid).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
    }
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        lab.paused(&id),
        "no guardian: still paused past the deadline"
    );
    s.run(&["history"]).expect(0);
    assert!(
        !lab.paused(&id) && lab.running(&id),
        "history reconciled it"
    );
    let store = open_store(&s);
    assert!(store.open_leases().unwrap().is_empty());
}

/// No engine at the socket: `eligible` exits 1 naming it, `terminate` records the refusal.
#[test]
fn no_engine_is_exit_1_with_the_socket_named() {
    let s = Sandbox::new();
    let socket = s.path().join("docker.sock");
    s.write(
        "simian.toml",
        &format!(
            "[store]\nurl = \"sqlite://simian.db\"\n\n[providers.c]\nkind = \"docker\"\nhost = \"unix://{}\"\n\n[[apps]]\nname = \"web\"\nprovider = \"c\"\n",
            socket.display()
        ),
    );
    let out = s.run(&["eligible", "web"]);
    out.expect(1);
    assert!(
        out.stderr().contains(&socket.display().to_string())
            && out.stderr().contains("start the engine"),
        "{}",
        out.stderr()
    );
    let out = s.run(&["terminate", "web", "--json"]);
    out.expect(1);
    assert_eq!(out.json()["refusal"]["check"], "inventory");
}

/// Two busybox web servers of app `web`: `a` in zone a (alias `web-a`, fixed address .10) and
/// `b` in zone b, plus `peer` (not an instance: no `simian.app`), all on one network of the
/// lab's. Returns (network, prefix, a, b, peer).
fn drill_fleet(lab: &mut Lab) -> (String, String, String, String, String) {
    let (network, prefix) = lab.network("drill");
    let serve = ["httpd", "-f", "-p", "8080", "-h", "/bin"];
    let net = format!("--network={network}");
    let ip = format!("--ip={prefix}.10");
    let run = lab.run.clone();
    let a = lab.start_command(
        &[("simian.app", "web"), ("simian.zone", "a")],
        &run,
        &[&net, &ip, "--network-alias=web-a"],
        &serve,
    );
    let b = lab.start_command(
        &[("simian.app", "web"), ("simian.zone", "b")],
        &run,
        &[&net],
        &serve,
    );
    let peer = lab.start_command(&[], &run, &[&net], &serve);
    (network, prefix, a, b, peer)
}

/// `container` fetches a file from `host` over the drill network.
fn reaches(lab: &Lab, container: &str, host: &str) -> bool {
    let url = format!("http://{host}:8080/busybox");
    lab.exec_ok(
        container,
        &[
            "/bin/busybox",
            "timeout",
            "3",
            "/bin/busybox",
            "wget",
            "-q",
            "--spider",
            &url,
        ],
    )
}

/// The networks `id` is attached to, with its address and aliases on each.
fn attachments(id: &str) -> serde_json::Value {
    let raw = simian_testkit::docker::docker(&[
        "inspect",
        "-f",
        "{{json .NetworkSettings.Networks}}",
        id,
    ]);
    serde_json::from_str(&raw).unwrap()
}

#[test]
#[ignore = "needs the Docker engine and busybox-static: scripts/test.sh installs it (then pass --include-ignored)"]
fn isolate_cuts_the_zone_off_its_network_and_reconnects_it_exactly() {
    let mut lab = Lab::new("cli-isolate");
    let (network, prefix, a, b, peer) = drill_fleet(&mut lab);
    let s = sandbox(&lab, "dry_run = false", "");
    let ip = |id: &str| {
        attachments(id)[&network]["IPAddress"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (peer_ip, b_ip) = (ip(&peer), ip(&b));
    assert_eq!(ip(&a), format!("{prefix}.10"));
    wait_until(Duration::from_secs(10), "the servers answer", || {
        reaches(&lab, &peer, "web-a") && reaches(&lab, &a, &peer_ip)
    });
    let before = attachments(&a);
    let drill = s
        .command(&[
            "gorilla",
            "a",
            "--mode",
            "isolate",
            "--duration",
            "15s",
            "--json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(15), "zone a is isolated", || {
        attachments(&a).as_object().is_none_or(|m| m.is_empty())
    });
    // During: the zone's container reaches nothing, and nothing reaches it; zone b runs on.
    assert!(
        !reaches(&lab, &a, &peer_ip),
        "isolated a still reaches the peer"
    );
    assert!(
        !reaches(&lab, &peer, "web-a"),
        "the peer still reaches isolated a by name"
    );
    assert!(
        !reaches(&lab, &peer, &format!("{prefix}.10")),
        "the peer still reaches isolated a"
    );
    assert!(reaches(&lab, &peer, &b_ip), "zone b is untouched");
    let out = util::Run(drill.wait_with_output().unwrap());
    out.expect(0);
    let j = out.json();
    assert_eq!(j["drill"]["ending"], "completed", "{j}");
    assert!(
        j["acted"][0]["undone"]
            .as_str()
            .unwrap()
            .contains("reconnected"),
        "{j}"
    );
    // After: attached exactly as before (address and alias), and reachable both ways.
    let after = attachments(&a);
    let (was, now) = (&before[&network], &after[&network]);
    assert_eq!(now["IPAddress"], was["IPAddress"], "{after}");
    assert_eq!(now["IPAMConfig"], was["IPAMConfig"], "{after}");
    assert!(
        now["Aliases"].as_array().unwrap().contains(&"web-a".into()),
        "{after}"
    );
    assert!(reaches(&lab, &peer, "web-a"));
    assert!(reaches(&lab, &a, &peer_ip));
}

/// SIGKILL of simian in the middle of a drill, in each mode Docker undoes: the drill's
/// guardian undoes it at the deadline, with no simian command run afterwards.
#[test]
#[ignore = "needs the Docker engine and busybox-static: scripts/test.sh installs it (then pass --include-ignored)"]
fn a_drill_s_faults_are_undone_by_its_guardian_after_simian_is_killed() {
    let mut lab = Lab::new("cli-drill-sigkill");
    let (network, _, a, _, peer) = drill_fleet(&mut lab);
    let s = sandbox(&lab, "dry_run = false", "");
    wait_until(Duration::from_secs(10), "the servers answer", || {
        reaches(&lab, &peer, "web-a")
    });
    let before = attachments(&a);
    for mode in ["pause", "isolate"] {
        let mut drill = s
            .command(&["gorilla", "a", "--mode", mode, "--duration", "2s"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let faulted = || match mode {
            "pause" => lab.paused(&a),
            _ => attachments(&a).as_object().is_none_or(|m| m.is_empty()),
        };
        wait_until(Duration::from_secs(15), "the fault is made", faulted);
        drill.kill().unwrap();
        drill.wait().unwrap();
        assert!(faulted(), "{mode}: still in place right after the SIGKILL");
        wait_until(Duration::from_secs(15), "the guardian undoes it", || {
            !faulted()
        });
    }
    let after = attachments(&a);
    assert_eq!(after[&network]["IPAddress"], before[&network]["IPAddress"]);
    assert!(reaches(&lab, &peer, "web-a"));
    assert!(!lab.paused(&a));
}
