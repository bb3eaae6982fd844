//! Benchmark of `simian proxy` on loopback, against direct connections in the same run.
//!
//! Runs the real binary in its own process and drives it from plain threads:
//! 1. bulk throughput with no toxics, client to server and server to client;
//! 2. 64-byte request/response round trips (time added per round trip);
//! 3. accuracy of a 50 ms latency toxic;
//! 4. control-API latency while 50 connections stream bulk data (toxics added and removed),
//!    with the proxy's memory before and after;
//! 5. memory per idle connection with 5,000 open connections.
//!
//! The throughput and round-trip comparisons alternate direct and proxied rounds, so that
//! the drift of a shared machine falls on both sides, and report medians and ranges.
//!
//! `cargo bench -p simian --bench proxy [-- PHASE...]`, where a phase is `throughput`,
//! `congestion`, `rtt`, `latency`, `control` or `idle` (all by default); figures go in
//! BENCHMARKS.md.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[path = "../tests/util/mod.rs"]
mod util;

use util::free_port;

struct Proxy {
    child: Child,
    api: u16,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_proxy(extra: &[&str]) -> Proxy {
    let api = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_simian"))
        .args(["proxy", "--host", "127.0.0.1", "--port", &api.to_string()])
        .args(extra)
        .env("SIMIAN_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", api)).is_err() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    Proxy { child, api }
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

/// CPU time (user + system) a process has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(close) = stat.rfind(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / rustix::param::clock_ticks_per_second() as f64
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

fn raise_fd_limit() {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let wanted = rustix::process::Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    let _ = rustix::process::setrlimit(rustix::process::Resource::Nofile, wanted);
}

/// Rounds of the throughput and round-trip comparisons.
const ROUNDS: usize = 5;

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

    // 1. Throughput, in alternating rounds so that drift on a shared machine hits both sides.
    let sink = server(Mode::Sink);
    let source = server(Mode::Source);
    let via_sink = create(&proxy, "sink", sink);
    let via_source = create(&proxy, "source", source);
    if wanted("throughput") {
        for (label, upload, direct, proxied) in [
            ("client->server", true, sink, via_sink),
            ("server->client", false, source, via_source),
        ] {
            let (mut d, mut p, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
            let (mut cpu, mut wall) = (0.0, 0.0);
            for _ in 0..ROUNDS {
                let a = throughput(direct, upload, 1.0);
                let (c0, t0) = (cpu_seconds(proxy.child.id()), Instant::now());
                let b = throughput(proxied, upload, 1.0);
                cpu += cpu_seconds(proxy.child.id()) - c0;
                wall += t0.elapsed().as_secs_f64();
                d.push(a);
                p.push(b);
                ratio.push(100.0 * b / a);
            }
            for v in [&mut d, &mut p, &mut ratio] {
                v.sort_by(f64::total_cmp);
            }
            println!(
                "throughput {label}: direct {:.1} Gbit/s, proxy {:.1} Gbit/s (medians of {ROUNDS} rounds); proxy/direct median {:.0}%, range {:.0}-{:.0}%; proxy CPU {:.0}% of a core",
                median(&d),
                median(&p),
                median(&ratio),
                ratio[0],
                ratio[ROUNDS - 1],
                100.0 * cpu / wall,
            );
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

    // 2. Round trips, also in alternating rounds.
    let echo = server(Mode::Echo);
    let via_echo = create(&proxy, "echo", echo);
    if wanted("rtt") {
        // The same comparison against a second proxy with busy polling off.
        let quiet = start_proxy(&["--busy-poll-us", "0"]);
        let via_quiet = create(&quiet, "echo", echo);
        for (label, pid, via) in [
            ("busy polling 50 us (default)", proxy.child.id(), via_echo),
            ("busy polling off", quiet.child.id(), via_quiet),
        ] {
            let (mut direct, mut proxied, mut added) = (Vec::new(), Vec::new(), Vec::new());
            let (mut cpu, mut wall) = (0.0, 0.0);
            for _ in 0..ROUNDS {
                let d = round_trips(echo, 4_000);
                let (c0, t0) = (cpu_seconds(pid), Instant::now());
                let p = round_trips(via, 4_000);
                cpu += cpu_seconds(pid) - c0;
                wall += t0.elapsed().as_secs_f64();
                added.push(percentile(&p, 0.5) - percentile(&d, 0.5));
                direct.extend(d);
                proxied.extend(p);
            }
            for v in [&mut direct, &mut proxied, &mut added] {
                v.sort_by(f64::total_cmp);
            }
            let (d50, p50) = (percentile(&direct, 0.5), percentile(&proxied, 0.5));
            let (d99, p99) = (percentile(&direct, 0.99), percentile(&proxied, 0.99));
            println!(
                "64-byte round trip, {label}: direct p50 {d50:.1} us p99 {d99:.1} us; proxy p50 {p50:.1} us p99 {p99:.1} us; added p50 {:.1} us (per round: median {:.1}, range {:.1} to {:.1}); proxy CPU {:.0}% of a core",
                p50 - d50,
                median(&added),
                added[0],
                added[ROUNDS - 1],
                100.0 * cpu / wall,
            );
        }
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
        let rss_before = rss_kb(proxy.child.id());
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
        let rss_during = rss_kb(proxy.child.id());
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
    let proxy = start_proxy(&[]);
    let hold = server(Mode::Hold);
    let via_hold = create(&proxy, "hold", hold);
    std::thread::sleep(Duration::from_millis(200));
    let base = rss_kb(proxy.child.id());
    let mut conns = Vec::with_capacity(5000);
    for _ in 0..5000 {
        conns.push(TcpStream::connect(via_hold).unwrap());
    }
    std::thread::sleep(Duration::from_secs(1));
    let with = rss_kb(proxy.child.id());
    println!(
        "5,000 idle connections: proxy RSS {} MB -> {} MB, {:.1} KB per connection",
        base / 1024,
        with / 1024,
        (with.saturating_sub(base)) as f64 / 5000.0
    );
    drop(conns);
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
