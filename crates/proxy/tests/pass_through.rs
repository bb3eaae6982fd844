//! The path of links without toxics, on real loopback sockets: bulk streams switch to
//! splice(2) and back, bytes arrive intact and in order across every switch (including to the
//! toxic path mid-stream), counters stay exact, and busy polling stops by itself.
//!
//! Pipes are observed as `pipe:[…]` entries of `/proc/self/fd`, and CPU time in
//! `/proc/self/stat`, so the tests of this file take turns: each holds `SERIAL`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use simian_proxy::{NewToxic, Registry, RegistryConfig};
use support::{echo_server, proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio::time::timeout;

static SERIAL: Mutex<()> = Mutex::const_new(());

const LIMIT: Duration = Duration::from_secs(30);

fn registry(busy_poll: Duration) -> Arc<Registry> {
    Arc::new(Registry::new(RegistryConfig {
        seed: Some(7),
        busy_poll,
        ..RegistryConfig::default()
    }))
}

fn latency(r: &Registry, stream: &str, ms: i64) -> String {
    r.add_toxic(
        "echo",
        NewToxic {
            name: None,
            type_name: "latency".into(),
            stream: Some(stream.into()),
            toxicity: None,
            attributes: vec![("latency".into(), ms)],
        },
    )
    .unwrap()
    .name
}

/// The open pipes of this process, by inode (`pipe:[…]`): a pipe that another test has not
/// closed yet keeps its name, so only pipes new to a test count for it.
fn pipes() -> BTreeSet<String> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|t| t.to_string_lossy().into_owned())
        .filter(|t| t.starts_with("pipe:"))
        .collect()
}

/// Samples [`pipes`] every millisecond on its own thread until [`PipeWatch::seen`].
struct PipeWatch {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<BTreeSet<String>>,
}

impl PipeWatch {
    fn start() -> PipeWatch {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut seen = BTreeSet::new();
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                seen.extend(pipes());
                std::thread::sleep(Duration::from_millis(1));
            }
            seen
        });
        PipeWatch { stop, thread }
    }
    /// Every pipe seen open while it ran.
    fn seen(self) -> BTreeSet<String> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// CPU time (user + system) this process has used, in clock ticks.
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn ticks_per_second() -> u64 {
    rustix::param::clock_ticks_per_second()
}

/// A byte pattern with no short period, so a lost, doubled or reordered chunk shows.
fn pattern(len: usize) -> Vec<u8> {
    let mut x = 0x2545_f491_u32;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Writes `payload` through `s` while reading the echo back; `during` runs once half the
/// echo has arrived. Returns what came back.
async fn echo_through<F: std::future::Future<Output = ()>>(
    s: &mut TcpStream,
    payload: &[u8],
    during: impl FnOnce() -> F,
) -> Vec<u8> {
    let (mut rd, mut wr) = s.split();
    let send = async {
        for piece in payload.chunks(1 << 20) {
            wr.write_all(piece).await.unwrap();
        }
    };
    let recv = async {
        let mut got = vec![0u8; payload.len()];
        let half = payload.len() / 2;
        timeout(LIMIT, rd.read_exact(&mut got[..half]))
            .await
            .expect("first half timed out")
            .unwrap();
        during().await;
        timeout(LIMIT, rd.read_exact(&mut got[half..]))
            .await
            .expect("second half timed out")
            .unwrap();
        got
    };
    let ((), got) = tokio::join!(send, recv);
    got
}

/// Echoes `payload` through `s` and returns the pipes this process opened meanwhile.
async fn echo_watching_pipes(s: &mut TcpStream, payload: &[u8]) -> BTreeSet<String> {
    let before = pipes();
    let watch = PipeWatch::start();
    let got = echo_through(s, payload, || async {}).await;
    let opened = &watch.seen() - &before;
    assert!(got == payload, "the echo differs from what was sent");
    opened
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_streams_go_zero_copy_and_arrive_intact_with_exact_counters() {
    let _turn = SERIAL.lock().await;
    let r = registry(Duration::from_micros(50));
    let addr = proxy(&r, "echo", echo_server().await);
    let mut s = TcpStream::connect(addr).await.unwrap();
    let payload = pattern(64 << 20);
    assert!(
        !echo_watching_pipes(&mut s, &payload).await.is_empty(),
        "a bulk stream should move through a pipe (none was opened)"
    );
    let c = &r.counters()[0];
    let n = payload.len() as u64;
    assert_eq!(c.upstream_bytes, (n, n), "upstream (received, sent)");
    assert_eq!(c.downstream_bytes, (n, n), "downstream (received, sent)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_turns_interactive_gives_its_pipes_back() {
    let _turn = SERIAL.lock().await;
    let r = registry(Duration::from_micros(50));
    let addr = proxy(&r, "echo", echo_server().await);
    let before = pipes();
    let mut s = TcpStream::connect(addr).await.unwrap();
    let payload = pattern(16 << 20);
    assert!(
        !echo_watching_pipes(&mut s, &payload).await.is_empty(),
        "the bulk stream should have taken a pipe"
    );
    // Small request/response exchanges: after a few small splices, each link copies again.
    for i in 0..40u8 {
        let ping = [i; 64];
        s.write_all(&ping).await.unwrap();
        let mut pong = [0u8; 64];
        timeout(LIMIT, s.read_exact(&mut pong))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(pong, ping);
    }
    let kept = &pipes() - &before;
    assert!(
        kept.is_empty(),
        "interactive links should hold no pipe, still open: {kept:?}"
    );
    drop(s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_toxic_added_mid_stream_takes_over_without_losing_a_byte() {
    let _turn = SERIAL.lock().await;
    let r = registry(Duration::from_micros(50));
    let addr = proxy(&r, "echo", echo_server().await);
    let mut s = TcpStream::connect(addr).await.unwrap();
    let payload = pattern(32 << 20);
    let got = echo_through(&mut s, &payload, || async {
        latency(&r, "upstream", 1);
        latency(&r, "downstream", 1);
    })
    .await;
    assert!(
        got == payload,
        "bytes were lost or reordered when the toxic took over"
    );
    let c = &r.counters()[0];
    let n = payload.len() as u64;
    assert_eq!(c.upstream_bytes, (n, n));
    assert_eq!(c.downstream_bytes, (n, n));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_polling_stops_by_itself_on_idle_connections() {
    let _turn = SERIAL.lock().await;
    // A long window, so a poll that never stops would show as a whole core.
    let r = registry(Duration::from_millis(5));
    let addr = proxy(&r, "echo", echo_server().await);
    let mut open = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"hello").await.unwrap();
        let mut back = [0u8; 5];
        timeout(LIMIT, s.read_exact(&mut back))
            .await
            .unwrap()
            .unwrap();
        open.push(s);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (t0, w0) = (cpu_ticks(), std::time::Instant::now());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let used = (cpu_ticks() - t0) as f64 / ticks_per_second() as f64;
    let share = used / w0.elapsed().as_secs_f64();
    assert!(
        share < 0.2,
        "20 idle connections used {:.0}% of a core: busy polling did not stop",
        share * 100.0
    );
    drop(open);
}

/// A loopback server on threads of its own: each connection is echoed (`echo`) or read and
/// thrown away (a sink) until it ends. Returns its address. Not `support::echo_server`, which
/// runs on the current runtime: here that is the proxy's own loop, the thing under test.
fn threaded_server(echo: bool) -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 256 << 10];
                while let Ok(n @ 1..) = s.read(&mut buf) {
                    if echo && s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// A source that never runs dry (a thread writing as fast as loopback takes it) must not keep
/// the proxy's loop to itself: a round trip on another connection of the same single-threaded
/// loop still goes through at once, and disabling the proxy still closes the stream. The
/// proxy runs on a loop of its own, as `simian proxy` runs it, and everything judged here is
/// judged from other threads, so a loop that never yields fails the test rather than hanging
/// it.
#[test]
fn a_source_that_never_runs_dry_leaves_the_loop_to_others_and_still_closes() {
    use std::io::{Read, Write};
    use std::time::Instant;
    let _turn = SERIAL.blocking_lock();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let r = Arc::new(Registry::with_runtime(
        RegistryConfig {
            seed: Some(7),
            ..RegistryConfig::default()
        },
        runtime.handle().clone(),
    ));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let looping = std::thread::spawn(move || {
        let _ = runtime.block_on(stopped);
    });
    let streaming = proxy(&r, "stream", threaded_server(false));
    let echoing = proxy(&r, "echo", threaded_server(true));

    let source = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(streaming).unwrap();
        let chunk = vec![7u8; 1 << 20];
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if s.write_all(&chunk).is_err() {
                return Some(Instant::now());
            }
        }
        None
    });
    std::thread::sleep(Duration::from_millis(300));

    let mut s = std::net::TcpStream::connect(echoing).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut slowest = Duration::ZERO;
    for _ in 0..50 {
        let t = Instant::now();
        s.write_all(&[1u8; 64]).unwrap();
        let mut back = [0u8; 64];
        s.read_exact(&mut back).unwrap_or_else(|e| {
            panic!("no echo through the other proxy within 2 s ({e}): the stream kept the loop")
        });
        slowest = slowest.max(t.elapsed());
    }
    assert!(
        slowest < Duration::from_millis(500),
        "a round trip beside the stream took {slowest:?}"
    );

    let disabled = Instant::now();
    r.update(
        "stream",
        simian_proxy::ProxyUpdate {
            listen: None,
            upstream: None,
            enabled: Some(false),
        },
    )
    .unwrap();
    let closed = source
        .join()
        .unwrap()
        .expect("the stream was still open 20 s after it started");
    assert!(
        closed.duration_since(disabled) < Duration::from_secs(2),
        "the stream closed {:?} after the proxy was disabled",
        closed.duration_since(disabled)
    );
    let _ = stop.send(());
    looping.join().unwrap();
}
