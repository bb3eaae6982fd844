//! Benchmark of `simian proxy` on loopback, against direct connections in the same run.
//!
//! Runs the real binary in its own process and drives it from plain threads:
//! 1. bulk throughput with no toxics, client to server and server to client;
//! 2. 64-byte request/response round trips (time added per round trip, over the direct path
//!    alone and over the direct path beside a thread that only spins);
//! 3. accuracy of a 50 ms latency toxic;
//! 4. control-API latency while 50 connections stream bulk data (toxics added and removed),
//!    with the proxy's memory before and after;
//! 5. memory per idle connection with 5,000 open connections.
//!
//! Peers, built from `benches/peers`, are measured in the same rounds: noxious (a Rust port
//! of Toxiproxy, from crates.io) in phases 1, 2 and 5, and in phases 1 and 2 three minimal
//! relays: splice(2) with a blocking thread per direction (the ceiling of a user-space proxy
//! on the machine), a bare epoll loop, and the same on tokio's current-thread runtime. None
//! has an HTTP API, so phases 3 and 4 are ours alone.
//!
//! The throughput and round-trip comparisons alternate direct and proxied rounds, so that
//! the drift of a shared machine falls on both sides, and report medians and ranges; the
//! round trips also rotate the order of the contenders from round to round.
//!
//! `cargo bench -p simian --bench proxy [-- PHASE...]`, where a phase is `throughput`,
//! `congestion`, `rtt`, `latency`, `control` or `idle` (all by default); figures go in
//! BENCHMARKS.md.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[path = "../tests/util/mod.rs"]
mod util;

use util::free_port;

/// A process the benchmark started; killed when dropped.
struct Running(Child);

impl Running {
    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Proxy {
    process: Running,
    api: u16,
}

fn start_proxy(extra: &[&str]) -> Proxy {
    let api = free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_simian"));
    command
        .args(["proxy", "--host", "127.0.0.1", "--port", &api.to_string()])
        .args(extra)
        .env("SIMIAN_LOG", "error");
    serving(command, api)
}

/// Toxiproxy's own server, when `SIMIAN_BENCH_TOXIPROXY` names a `toxiproxy-server` binary
/// (BENCHMARKS.md says how one was built here); it speaks the same API as `simian proxy`.
fn start_toxiproxy() -> Option<Proxy> {
    let Some(binary) = std::env::var_os("SIMIAN_BENCH_TOXIPROXY") else {
        println!(
            "toxiproxy: not measured; set SIMIAN_BENCH_TOXIPROXY to a toxiproxy-server binary"
        );
        return None;
    };
    let api = free_port();
    let mut command = Command::new(binary);
    command
        .args(["-host", "127.0.0.1", "-port", &api.to_string()])
        .env("LOG_LEVEL", "error");
    Some(serving(command, api))
}

/// Starts `command`, a server of the proxy API, and waits until `api` answers.
fn serving(mut command: Command, api: u16) -> Proxy {
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let process = Running(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", api)).is_err() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    Proxy { process, api }
}

/// A peer of the benchmark, a program of `benches/peers` taking `LISTEN=UPSTREAM...`.
struct Peer {
    name: &'static str,
    binary: PathBuf,
    flags: &'static [&'static str],
}

/// Builds the peers: noxious 1.0.4 (a Rust port of Toxiproxy, from crates.io), its data
/// plane with no toxics, the splice relay, and the epoll and tokio relays (one loop, or one
/// per direction). Built here, outside the workspace, so that
/// the test suite never compiles them; none, with the reason printed, if they cannot be.
fn build_peers() -> Vec<Peer> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = root.join("target/peers");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--release",
            "--locked",
            "--quiet",
            "--manifest-path",
        ])
        .arg(root.join("benches/peers/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .status();
    match status {
        Ok(s) if s.success() => [
            ("noxious", "noxious-peer", &[][..]),
            ("splice relay", "splice-relay", &[]),
            ("epoll relay", "epoll-relay", &[]),
            (
                "epoll relay, a thread per direction",
                "epoll-relay",
                &["--per-direction"],
            ),
            ("tokio relay", "tokio-relay", &[]),
            (
                "tokio relay, a runtime per direction",
                "tokio-relay",
                &["--per-direction"],
            ),
        ]
        .into_iter()
        .map(|(name, program, flags)| Peer {
            name,
            binary: target.join("release").join(program),
            flags,
        })
        .collect(),
        other => {
            println!("peers: not measured, their build failed ({other:?})");
            Vec::new()
        }
    }
}

/// A peer relaying to each upstream, in one process; returns it and the listening addresses.
fn start_peer(peer: &Peer, upstreams: &[SocketAddr]) -> (Running, Vec<SocketAddr>) {
    let listens: Vec<SocketAddr> = upstreams
        .iter()
        .map(|_| SocketAddr::from(([127, 0, 0, 1], free_port())))
        .collect();
    let mut child = Command::new(&peer.binary)
        .args(peer.flags)
        .args(
            listens
                .iter()
                .zip(upstreams)
                .map(|(listen, upstream)| format!("{listen}={upstream}")),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(ready.trim(), "ready", "{} did not start", peer.name);
    (Running(child), listens)
}

fn request(api: u16, method: &str, path: &str, body: &str) -> (u16, Duration) {
    let started = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", api)).unwrap();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, started.elapsed())
}

fn create(p: &Proxy, name: &str, upstream: SocketAddr) -> SocketAddr {
    let listen = free_port();
    let body =
        format!(r#"{{"name":"{name}","listen":"127.0.0.1:{listen}","upstream":"{upstream}"}}"#);
    assert_eq!(request(p.api, "POST", "/proxies", &body).0, 201);
    SocketAddr::from(([127, 0, 0, 1], listen))
}

/// CPU time of a process so far: (user, system) seconds. User time is the proxy's own work
/// per message; system time is the kernel's, wake-ups included, which on a VM varies with
/// where the scheduler puts the threads more than with what the proxy does.
fn cpu_seconds(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(close) = stat.rfind(')') else {
        return (0.0, 0.0);
    };
    let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
    let seconds = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0) as f64
            / rustix::param::clock_ticks_per_second() as f64
    };
    (seconds(11), seconds(12))
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A server that, per connection, either discards what it reads (sink) or writes forever
/// (source) or echoes.
#[derive(Clone, Copy)]
enum Mode {
    Sink,
    Source,
    Echo,
    Hold,
}

fn server(mode: Mode) -> SocketAddr {
    server_with(mode, None)
}

/// [`server`] whose accepted sockets use the congestion control `cc` (else the system's).
fn server_with(mode: Mode, cc: Option<&'static str>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in l.incoming().flatten() {
            let _ = c.set_nodelay(true);
            if let Some(cc) = cc {
                rustix::net::sockopt::set_tcp_congestion(&c, cc).unwrap();
            }
            if let Mode::Hold = mode {
                held.push(c);
                continue;
            }
            std::thread::spawn(move || {
                let mut c = c;
                let mut buf = vec![0u8; 256 * 1024];
                match mode {
                    Mode::Sink => while matches!(c.read(&mut buf), Ok(n) if n > 0) {},
                    Mode::Source => while c.write_all(&buf).is_ok() {},
                    Mode::Echo => {
                        while let Ok(n) = c.read(&mut buf) {
                            if n == 0 || c.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    }
                    Mode::Hold => {}
                }
            });
        }
    });
    addr
}

/// Gbit/s moved through `addr` for `secs`: upload into a sink or download from a source.
fn throughput(addr: SocketAddr, upload: bool, secs: f64) -> f64 {
    throughput_with(addr, upload, secs, None)
}

/// [`throughput`] over a socket that uses the congestion control `cc` (else the system's).
fn throughput_with(addr: SocketAddr, upload: bool, secs: f64, cc: Option<&str>) -> f64 {
    let mut s = TcpStream::connect(addr).unwrap();
    if let Some(cc) = cc {
        rustix::net::sockopt::set_tcp_congestion(&s, cc).unwrap();
    }
    let mut buf = vec![7u8; 256 * 1024];
    let started = Instant::now();
    let mut total = 0u64;
    while started.elapsed().as_secs_f64() < secs {
        let n = if upload {
            s.write(&buf).unwrap()
        } else {
            s.read(&mut buf).unwrap()
        };
        total += n as u64;
    }
    total as f64 * 8.0 / started.elapsed().as_secs_f64() / 1e9
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// Round-trip times (µs) of 64-byte ping-pongs.
fn round_trips(addr: SocketAddr, n: usize) -> Vec<f64> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    let ping = [1u8; 64];
    let mut pong = [0u8; 64];
    for _ in 0..1000 {
        s.write_all(&ping).unwrap();
        s.read_exact(&mut pong).unwrap();
    }
    let mut out: Vec<f64> = (0..n)
        .map(|_| {
            let t = Instant::now();
            s.write_all(&ping).unwrap();
            s.read_exact(&mut pong).unwrap();
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    out.sort_by(f64::total_cmp);
    out
}

/// A proxy measured against the direct path: what it measured, round by round, and the
/// CPU time its process used while being measured.
struct Contender {
    name: &'static str,
    pid: u32,
    addr: SocketAddr,
    /// Every value measured through it (rates, or round-trip times).
    values: Vec<f64>,
    /// One comparison with the direct path per round (a ratio, or time added).
    per_round: Vec<f64>,
    cpu: f64,
    /// The user part of `cpu`.
    cpu_user: f64,
    wall: f64,
}

impl Contender {
    fn new(name: &'static str, pid: u32, addr: SocketAddr) -> Contender {
        Contender {
            name,
            pid,
            addr,
            values: Vec::new(),
            per_round: Vec::new(),
            cpu: 0.0,
            cpu_user: 0.0,
            wall: 0.0,
        }
    }

    /// One round through its address, which yields values and one comparison with the
    /// direct path.
    fn measure(&mut self, round: impl FnOnce(SocketAddr) -> (Vec<f64>, f64)) {
        let ((u0, s0), t0) = (cpu_seconds(self.pid), Instant::now());
        let (values, compared) = round(self.addr);
        let (u1, s1) = cpu_seconds(self.pid);
        self.cpu += (u1 - u0) + (s1 - s0);
        self.cpu_user += u1 - u0;
        self.wall += t0.elapsed().as_secs_f64();
        self.values.extend(values);
        self.per_round.push(compared);
    }

    /// Median value, median comparison, range of the comparisons, CPU in % of a core.
    fn summary(&mut self) -> (f64, f64, (f64, f64), f64) {
        self.values.sort_by(f64::total_cmp);
        self.per_round.sort_by(f64::total_cmp);
        let last = self.per_round.len() - 1;
        (
            median(&self.values),
            median(&self.per_round),
            (self.per_round[0], self.per_round[last]),
            100.0 * self.cpu / self.wall,
        )
    }
}

/// A thread that does nothing but spin, keeping one virtual CPU busy; stops when dropped.
struct Spinner {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Spinner {
    fn start() -> Spinner {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        });
        Spinner {
            stop,
            thread: Some(thread),
        }
    }

    /// Runs `work` while the thread spins, then stops it.
    fn while_spinning<T>(self, work: impl FnOnce() -> T) -> T {
        work()
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn raise_fd_limit() {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let wanted = rustix::process::Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    let _ = rustix::process::setrlimit(rustix::process::Resource::Nofile, wanted);
}

/// Rounds of the throughput and round-trip comparisons. Direct loopback throughput alone
/// varies by a third from one second to the next on a shared VM, and the median of 5
/// per-round ratios still moved by 10 points and more between runs; the spread of a median
/// shrinks as the square root of the rounds, so 9 rounds make it about a quarter steadier.
const ROUNDS: usize = 9;

fn median(sorted: &[f64]) -> f64 {
    percentile(sorted, 0.5)
}

/// Whether a phase runs: all of them, or those named on the command line
/// (`throughput`, `congestion`, `rtt`, `latency`, `control`, `idle`).
fn wanted(phase: &str) -> bool {
    let named: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    named.is_empty() || named.iter().any(|a| a == phase)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    raise_fd_limit();
    println!(
        "machine: {} cores, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu()
    );
    let proxy = start_proxy(&[]);
    let (sink, source, echo) = (server(Mode::Sink), server(Mode::Source), server(Mode::Echo));
    let via_sink = create(&proxy, "sink", sink);
    let via_source = create(&proxy, "source", source);
    let via_echo = create(&proxy, "echo", echo);
    let toxiproxy = if wanted("rtt") || wanted("toxic") {
        start_toxiproxy()
    } else {
        None
    };
    // The peers, for the throughput and round-trip phases (they have no control API).
    let peers = if wanted("throughput") || wanted("rtt") || wanted("idle") {
        build_peers()
    } else {
        Vec::new()
    };
    let running_peers: Vec<(&Peer, Running, Vec<SocketAddr>)> =
        if wanted("throughput") || wanted("rtt") {
            peers
                .iter()
                .map(|peer| {
                    let (process, listens) = start_peer(peer, &[sink, source, echo]);
                    (peer, process, listens)
                })
                .collect()
        } else {
            Vec::new()
        };

    // 1. Throughput, in alternating rounds so that drift on a shared machine hits every side.
    if wanted("throughput") {
        // The same proxy with the system's congestion control on its own sockets too: what
        // the loopback default (docs/proxy.md) is worth, measured in the same rounds.
        let system_cc = start_proxy(&["--loopback-congestion", "system"]);
        for (label, upload, direct, simian, peer_index) in [
            ("client->server", true, sink, via_sink, 0),
            ("server->client", false, source, via_source, 1),
        ] {
            let mut contenders = vec![
                Contender::new("simian proxy", proxy.process.pid(), simian),
                Contender::new(
                    "simian proxy --loopback-congestion system",
                    system_cc.process.pid(),
                    create(&system_cc, if upload { "sink" } else { "source" }, direct),
                ),
            ];
            for (peer, process, listens) in &running_peers {
                contenders.push(Contender::new(
                    peer.name,
                    process.pid(),
                    listens[peer_index],
                ));
            }
            // The first transfer of a series runs slow (cold caches, TCP autotuning): a
            // warm-up that is not counted, so that it does not make a round of its own.
            throughput(direct, upload, 0.5);
            let mut rates = Vec::new();
            for _ in 0..ROUNDS {
                let baseline = throughput(direct, upload, 1.0);
                rates.push(baseline);
                for c in &mut contenders {
                    c.measure(|addr| {
                        let rate = throughput(addr, upload, 1.0);
                        (vec![rate], 100.0 * rate / baseline)
                    });
                }
            }
            rates.sort_by(f64::total_cmp);
            println!(
                "throughput {label}: direct {:.1} Gbit/s (median of {ROUNDS} rounds, range {:.1}-{:.1})",
                median(&rates),
                rates[0],
                rates[ROUNDS - 1],
            );
            for c in &mut contenders {
                let (rate, ratio, range, cpu) = c.summary();
                println!(
                    "  {}: {rate:.1} Gbit/s; of direct: median {ratio:.0}%, range {:.0}-{:.0}%; proxy CPU {cpu:.0}% of a core",
                    c.name, range.0, range.1,
                );
            }
        }
    }

    // 1b. Direct loopback throughput under the system's congestion control and under CUBIC:
    // what TCP pacing (BBR) costs on this machine, for the reader of the figures above.
    let probe = TcpStream::connect(sink).unwrap();
    let cubic = rustix::net::sockopt::set_tcp_congestion(&probe, "cubic");
    drop(probe);
    if wanted("congestion") && cubic.is_err() {
        println!(
            "direct throughput under cubic: not measured, cubic cannot be set here ({cubic:?})"
        );
    } else if wanted("congestion") {
        let system = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control")
            .unwrap_or_default();
        let cubic_sink = server_with(Mode::Sink, Some("cubic"));
        let (mut default_rates, mut cubic_rates) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            default_rates.push(throughput(sink, true, 1.0));
            cubic_rates.push(throughput_with(cubic_sink, true, 1.0, Some("cubic")));
        }
        for v in [&mut default_rates, &mut cubic_rates] {
            v.sort_by(f64::total_cmp);
        }
        println!(
            "direct throughput client->server: system congestion control ({}) {:.1} Gbit/s, cubic {:.1} Gbit/s (medians of {ROUNDS} rounds)",
            system.trim(),
            median(&default_rates),
            median(&cubic_rates),
        );
    }

    // 2. Round trips, also in alternating rounds: direct, then each proxy.
    if wanted("rtt") {
        // The same comparison against a second simian proxy that busy-polls (opt-in).
        let polling = start_proxy(&["--busy-poll-us", "50"]);
        let via_polling = create(&polling, "echo", echo);
        // And one on the system's congestion control, as the peers are: what the loopback
        // default costs or saves a round trip.
        let system_cc = start_proxy(&["--loopback-congestion", "system"]);
        let mut contenders = vec![
            Contender::new("simian proxy (default)", proxy.process.pid(), via_echo),
            Contender::new(
                "simian proxy --busy-poll-us 50",
                polling.process.pid(),
                via_polling,
            ),
            Contender::new(
                "simian proxy --loopback-congestion system",
                system_cc.process.pid(),
                create(&system_cc, "echo", echo),
            ),
        ];
        if let Some(t) = &toxiproxy {
            contenders.push(Contender::new(
                "toxiproxy",
                t.process.pid(),
                create(t, "echo", echo),
            ));
        }
        for (peer, process, listens) in &running_peers {
            contenders.push(Contender::new(peer.name, process.pid(), listens[2]));
        }
        // A busy-polling proxy keeps one virtual CPU out of its idle state, which on some
        // VMs shortens everyone's wake-ups by more than the proxy adds. The second baseline
        // is the direct path beside a thread that only spins, so that what the proxy adds
        // can be told apart from that side effect.
        // Each contender is measured right after a direct baseline of its own, and each
        // round starts with the next contender: round trips drift within a round on these
        // VMs (in a fixed order, the time added fell from the first contender to the last
        // in every run, whatever they were), and the drift must not be charged to a place.
        let mut direct = Vec::new();
        let mut spun = Vec::new();
        for round in 0..ROUNDS {
            let n = contenders.len();
            for k in 0..n {
                let d = round_trips(echo, 4_000);
                let d50 = percentile(&d, 0.5);
                contenders[(round + k) % n].measure(|addr| {
                    let p = round_trips(addr, 4_000);
                    let added = percentile(&p, 0.5) - d50;
                    (p, added)
                });
                direct.extend(d);
            }
            spun.extend(Spinner::start().while_spinning(|| round_trips(echo, 4_000)));
        }
        direct.sort_by(f64::total_cmp);
        spun.sort_by(f64::total_cmp);
        let (d50, d99) = (percentile(&direct, 0.5), percentile(&direct, 0.99));
        let (s50, s99) = (percentile(&spun, 0.5), percentile(&spun, 0.99));
        println!("64-byte round trip, direct: p50 {d50:.1} us, p99 {d99:.1} us");
        println!(
            "64-byte round trip, direct beside a spinning thread: p50 {s50:.1} us, p99 {s99:.1} us"
        );
        for c in &mut contenders {
            let per_10k_ms = 1e3 * c.cpu * 10_000.0 / c.values.len() as f64;
            let user_10k_ms = 1e3 * c.cpu_user * 10_000.0 / c.values.len() as f64;
            let (p50, _, range, cpu) = c.summary();
            let p99 = percentile(&c.values, 0.99);
            println!(
                "  {}: p50 {p50:.1} us, p99 {p99:.1} us; added p50 {:.1} us (per round: median {:.1}, range {:.1} to {:.1}), {:.1} us over direct beside a spinning thread; proxy CPU {cpu:.0}% of a core, {per_10k_ms:.0} ms per 10,000 round trips ({user_10k_ms:.0} ms of it in user space)",
                c.name,
                p50 - d50,
                median(&c.per_round),
                range.0,
                range.1,
                p50 - s50,
            );
        }
    }

    // 2b. Bulk throughput with a 1 ms latency toxic on both streams, against Toxiproxy.
    if wanted("toxic") {
        toxic_throughput(&proxy, toxiproxy.as_ref(), sink, source, echo);
    }

    // 3. Latency toxic accuracy.
    if wanted("latency") {
        let body = r#"{"type":"latency","attributes":{"latency":50}}"#;
        assert_eq!(
            request(proxy.api, "POST", "/proxies/echo/toxics", body).0,
            200
        );
        let slow = round_trips_n(via_echo, 200);
        let errors: Vec<f64> = slow.iter().map(|us| us / 1000.0 - 50.0).collect();
        println!(
            "latency toxic 50 ms: measured p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (error p50 +{:.2} ms)",
            percentile(&slow, 0.5) / 1000.0,
            percentile(&slow, 0.99) / 1000.0,
            slow.last().unwrap() / 1000.0,
            percentile(&errors, 0.5)
        );
        request(
            proxy.api,
            "DELETE",
            "/proxies/echo/toxics/latency_downstream",
            "",
        );
    }

    // 4. Control API under load.
    if wanted("control") {
        let rss_before = rss_kb(proxy.process.pid());
        let stop = Arc::new(AtomicBool::new(false));
        let moved = Arc::new(AtomicU64::new(0));
        let streams: Vec<_> = (0..50)
            .map(|i| {
                let (stop, moved) = (stop.clone(), moved.clone());
                let target = if i % 2 == 0 { via_sink } else { via_source };
                std::thread::spawn(move || {
                    let mut s = TcpStream::connect(target).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                    s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
                    let mut buf = vec![3u8; 64 * 1024];
                    while !stop.load(Ordering::Relaxed) {
                        let r = if i % 2 == 0 {
                            s.write(&buf)
                        } else {
                            s.read(&mut buf)
                        };
                        match r {
                            Ok(n) if n > 0 => {
                                moved.fetch_add(n as u64, Ordering::Relaxed);
                            }
                            _ => break,
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(500));
        let mut api_ms = Vec::new();
        for i in 0..250 {
            for proxy_name in ["sink", "source"] {
                let body = format!(
                    r#"{{"name":"t{i}","type":"latency","stream":"downstream","attributes":{{"latency":1}}}}"#
                );
                let (status, d) = request(
                    proxy.api,
                    "POST",
                    &format!("/proxies/{proxy_name}/toxics"),
                    &body,
                );
                assert_eq!(status, 200);
                api_ms.push(d.as_secs_f64() * 1000.0);
                let (status, d) = request(
                    proxy.api,
                    "DELETE",
                    &format!("/proxies/{proxy_name}/toxics/t{i}"),
                    "",
                );
                assert_eq!(status, 204);
                api_ms.push(d.as_secs_f64() * 1000.0);
            }
        }
        let before_stop = moved.load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(300));
        let still_flowing = moved.load(Ordering::Relaxed) > before_stop;
        let rss_during = rss_kb(proxy.process.pid());
        stop.store(true, Ordering::Relaxed);
        for s in streams {
            let _ = s.join();
        }
        api_ms.sort_by(f64::total_cmp);
        println!(
            "control API with 50 bulk streams: {} calls, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; streams still flowing after: {still_flowing}; proxy RSS {} MB before, {} MB during",
            api_ms.len(),
            percentile(&api_ms, 0.5),
            percentile(&api_ms, 0.99),
            api_ms.last().unwrap(),
            rss_before / 1024,
            rss_during / 1024
        );
    }

    // 5. Idle connections, in a fresh proxy process so earlier phases do not count.
    if !wanted("idle") {
        return;
    }
    drop(proxy);
    drop(running_peers);
    let proxy = start_proxy(&[]);
    let hold = server(Mode::Hold);
    let via_hold = create(&proxy, "hold", hold);
    idle_connections("simian proxy", &proxy.process, via_hold);
    drop(proxy);
    // The splice relay holds two threads per connection: not a design to count idle
    // connections with.
    if let Some(noxious) = peers.iter().find(|p| p.name == "noxious") {
        let (process, listens) = start_peer(noxious, &[hold]);
        idle_connections(noxious.name, &process, listens[0]);
    }
}

/// Phase 2b: a 1 ms latency toxic on both streams of a proxy to the sink, the source and the
/// echo server, in Simian and (when given) Toxiproxy; then bulk throughput each way in
/// alternating rounds, the proxies' peak RSS while streaming, and the round trip through the
/// toxics (2 ms plus the direct round trip, when the latency is exact).
fn toxic_throughput(
    simian: &Proxy,
    toxiproxy: Option<&Proxy>,
    sink: SocketAddr,
    source: SocketAddr,
    echo: SocketAddr,
) {
    let mut proxies = vec![("simian proxy", simian)];
    proxies.extend(toxiproxy.map(|t| ("toxiproxy", t)));
    let mut routes = Vec::new();
    for (name, p) in &proxies {
        let mut addrs = Vec::new();
        for (proxy_name, upstream) in [
            ("slow_sink", sink),
            ("slow_source", source),
            ("slow_echo", echo),
        ] {
            addrs.push(create(p, proxy_name, upstream));
            for stream in ["upstream", "downstream"] {
                let body = format!(
                    r#"{{"name":"lat_{stream}","type":"latency","stream":"{stream}","attributes":{{"latency":1}}}}"#
                );
                let (status, _) = request(
                    p.api,
                    "POST",
                    &format!("/proxies/{proxy_name}/toxics"),
                    &body,
                );
                assert_eq!(status, 200, "{name}: adding a latency toxic");
            }
        }
        routes.push(addrs);
    }
    for (label, upload, direct, index) in [
        ("client->server", true, sink, 0),
        ("server->client", false, source, 1),
    ] {
        let mut contenders: Vec<(Contender, u64)> = proxies
            .iter()
            .zip(&routes)
            .map(|((name, p), addrs)| (Contender::new(name, p.process.pid(), addrs[index]), 0))
            .collect();
        throughput(direct, upload, 0.5);
        let mut rates = Vec::new();
        for _ in 0..ROUNDS {
            let baseline = throughput(direct, upload, 1.0);
            rates.push(baseline);
            for (c, peak) in &mut contenders {
                let pid = c.pid;
                let sampler = RssSampler::start(pid);
                c.measure(|addr| {
                    let rate = throughput(addr, upload, 1.0);
                    (vec![rate], rate)
                });
                *peak = (*peak).max(sampler.stop());
            }
        }
        rates.sort_by(f64::total_cmp);
        println!(
            "throughput {label} with a 1 ms latency toxic on both streams: direct {:.1} Gbit/s (median of {ROUNDS} rounds)",
            median(&rates)
        );
        let simian_rate = {
            let (c, _) = &mut contenders[0];
            c.summary().0
        };
        for (c, peak) in &mut contenders {
            let (rate, _, range, cpu) = c.summary();
            println!(
                "  {}: median {rate:.2} Gbit/s (range {:.2}-{:.2}); simian/this {:.2}x; proxy CPU {cpu:.0}% of a core; peak RSS {} MB",
                c.name,
                range.0,
                range.1,
                simian_rate / rate,
                *peak / 1024,
            );
        }
    }
    for ((name, _), addrs) in proxies.iter().zip(&routes) {
        let rtts = round_trips_n(addrs[2], 300);
        println!(
            "  64-byte round trip through 1 ms + 1 ms, {name}: p50 {:.3} ms, p99 {:.3} ms, min {:.3} ms",
            percentile(&rtts, 0.5) / 1000.0,
            percentile(&rtts, 0.99) / 1000.0,
            rtts[0] / 1000.0,
        );
    }
}

/// Samples a process's RSS every 10 ms until stopped; `stop` returns the largest, in KB.
struct RssSampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = 0;
            while !flag.load(Ordering::Relaxed) {
                peak = peak.max(rss_kb(pid));
                std::thread::sleep(Duration::from_millis(10));
            }
            peak
        });
        RssSampler { stop, thread }
    }

    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or(0)
    }
}

/// The RSS a proxy process gains by holding 5,000 idle connections through `addr`.
fn idle_connections(name: &str, process: &Running, addr: SocketAddr) {
    std::thread::sleep(Duration::from_millis(200));
    let base = rss_kb(process.pid());
    let mut conns = Vec::with_capacity(5000);
    for _ in 0..5000 {
        conns.push(TcpStream::connect(addr).unwrap());
    }
    std::thread::sleep(Duration::from_secs(1));
    let with = rss_kb(process.pid());
    println!(
        "5,000 idle connections, {name}: RSS {} MB -> {} MB, {:.1} KB per connection",
        base / 1024,
        with / 1024,
        (with.saturating_sub(base)) as f64 / 5000.0
    );
}

fn round_trips_n(addr: SocketAddr, n: usize) -> Vec<f64> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    let mut out: Vec<f64> = (0..n)
        .map(|_| {
            let t = Instant::now();
            s.write_all(&[1u8; 64]).unwrap();
            let mut pong = [0u8; 64];
            s.read_exact(&mut pong).unwrap();
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    out.sort_by(f64::total_cmp);
    out
}

fn cpu() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or_else(String::new, |m| m.trim().to_string())
}
