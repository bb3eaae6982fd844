//! Every toxic's behaviour on real loopback sockets: a proxy in front of an echo server or a
//! scripted upstream. Timings are checked as bounded ranges; every await has a timeout, so a
//! hang fails fast instead of wedging the suite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use simian_proxy::{NewToxic, ProxyUpdate, Registry, RegistryConfig};
use support::{echo_server, proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(10);

/// An upstream that sends `greeting` to each client and then closes.
async fn greeting_server(greeting: &'static [u8]) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let _ = s.write_all(greeting).await;
            });
        }
    });
    addr
}

fn registry(seed: u64) -> Arc<Registry> {
    Arc::new(Registry::new(RegistryConfig {
        seed: Some(seed),
        dial_timeout: Duration::from_secs(2),
        ..RegistryConfig::default()
    }))
}

fn toxic(
    r: &Registry,
    proxy: &str,
    type_name: &str,
    stream: &str,
    attributes: &[(&str, i64)],
    toxicity: Option<f32>,
) -> String {
    r.add_toxic(
        proxy,
        NewToxic {
            name: None,
            type_name: type_name.into(),
            stream: Some(stream.into()),
            toxicity,
            attributes: attributes
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
        },
    )
    .unwrap()
    .name
}

async fn round_trip(s: &mut TcpStream, payload: &[u8]) -> Duration {
    let started = Instant::now();
    s.write_all(payload).await.unwrap();
    let mut got = vec![0u8; payload.len()];
    timeout(LIMIT, s.read_exact(&mut got))
        .await
        .expect("round trip timed out")
        .unwrap();
    assert_eq!(got, payload);
    started.elapsed()
}

fn within(d: Duration, lo_ms: u64, hi_ms: u64) {
    assert!(
        d >= Duration::from_millis(lo_ms) && d <= Duration::from_millis(hi_ms),
        "{d:?} not in [{lo_ms}, {hi_ms}] ms"
    );
}

/// Reads until EOF or error; returns what was read and whether it ended with a reset.
async fn drain(s: &mut TcpStream) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match timeout(LIMIT, s.read(&mut buf))
            .await
            .expect("read timed out")
        {
            Ok(0) => return (out, false),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return (out, e.kind() == std::io::ErrorKind::ConnectionReset),
        }
    }
}

#[tokio::test]
async fn bytes_pass_through_intact_both_ways() {
    let r = registry(1);
    let addr = proxy(&r, "echo", echo_server().await);
    let mut s = TcpStream::connect(addr).await.unwrap();
    let payload: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (mut rd, mut wr) = s.split();
    let send = async {
        wr.write_all(&payload).await.unwrap();
    };
    let mut got = vec![0u8; payload.len()];
    let recv = async {
        timeout(LIMIT, rd.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap()
    };
    tokio::join!(send, recv);
    assert_eq!(got, payload);
}

#[tokio::test]
async fn latency_delays_each_direction_and_changes_live_connections() {
    let r = registry(2);
    let addr = proxy(&r, "p", echo_server().await);
    let mut s = TcpStream::connect(addr).await.unwrap();
    within(round_trip(&mut s, b"ping").await, 0, 50);
    // Added to an open connection: the next round trip is slower.
    let down = toxic(&r, "p", "latency", "downstream", &[("latency", 100)], None);
    within(round_trip(&mut s, b"ping").await, 95, 300);
    let up = toxic(&r, "p", "latency", "upstream", &[("latency", 100)], None);
    within(round_trip(&mut s, b"ping").await, 195, 400);
    r.remove_toxic("p", &up).unwrap();
    r.remove_toxic("p", &down).unwrap();
    within(round_trip(&mut s, b"ping").await, 0, 50);
}

#[tokio::test]
async fn latency_is_accurate_to_a_fraction_of_a_millisecond() {
    let r = registry(21);
    let addr = proxy(&r, "p", echo_server().await);
    toxic(&r, "p", "latency", "downstream", &[("latency", 20)], None);
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut times = Vec::new();
    for _ in 0..11 {
        times.push(round_trip(&mut s, b"ping").await);
    }
    times.sort();
    // A timer of whole milliseconds makes this 21 ms or more (Toxiproxy's: 20.1).
    let median = times[5];
    assert!(
        median >= Duration::from_millis(20) && median < Duration::from_micros(20_900),
        "median round trip {median:?} through a 20 ms latency: {times:?}"
    );
}

#[tokio::test]
async fn jitter_stays_within_its_bounds() {
    let r = registry(3);
    let addr = proxy(&r, "p", echo_server().await);
    toxic(
        &r,
        "p",
        "latency",
        "downstream",
        &[("latency", 100), ("jitter", 50)],
        None,
    );
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut spread = Vec::new();
    for _ in 0..10 {
        let d = round_trip(&mut s, b"x").await;
        within(d, 45, 250);
        spread.push(d);
    }
    let (min, max) = (spread.iter().min().unwrap(), spread.iter().max().unwrap());
    assert!(
        *max - *min > Duration::from_millis(10),
        "jitter varies the delay: {spread:?}"
    );
}

#[tokio::test]
async fn bandwidth_limits_the_rate() {
    let r = registry(4);
    let addr = proxy(&r, "p", echo_server().await);
    toxic(&r, "p", "bandwidth", "downstream", &[("rate", 100)], None);
    let mut s = TcpStream::connect(addr).await.unwrap();
    // 50 KB at 100 KB/s: half a second.
    let payload = vec![7u8; 50_000];
    within(round_trip(&mut s, &payload).await, 420, 900);
    assert!(
        r.add_toxic(
            "p",
            NewToxic {
                name: Some("zero".into()),
                type_name: "bandwidth".into(),
                stream: None,
                toxicity: None,
                attributes: vec![("rate".into(), 0)]
            }
        )
        .is_err()
    );
}

#[tokio::test]
async fn slow_close_postpones_the_close() {
    let r = registry(5);
    let addr = proxy(&r, "p", greeting_server(b"hello").await);
    toxic(&r, "p", "slow_close", "downstream", &[("delay", 300)], None);
    let mut s = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    let (data, _) = drain(&mut s).await;
    assert_eq!(data, b"hello");
    within(started.elapsed(), 280, 900);
}

#[tokio::test]
async fn timeout_discards_and_closes_after_silence() {
    let r = registry(6);
    let addr = proxy(&r, "p", echo_server().await);
    toxic(&r, "p", "timeout", "upstream", &[("timeout", 200)], None);
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"lost").await.unwrap();
    let started = Instant::now();
    let (data, _) = drain(&mut s).await;
    assert!(data.is_empty(), "data is discarded");
    within(started.elapsed(), 150, 800);
}

#[tokio::test]
async fn timeout_zero_holds_until_removed_then_closes() {
    let r = registry(7);
    let addr = proxy(&r, "p", echo_server().await);
    let name = toxic(&r, "p", "timeout", "downstream", &[("timeout", 0)], None);
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"held").await.unwrap();
    let mut buf = [0u8; 16];
    assert!(
        timeout(Duration::from_millis(400), s.read(&mut buf))
            .await
            .is_err(),
        "held, not closed"
    );
    r.remove_toxic("p", &name).unwrap();
    let (data, _) = drain(&mut s).await;
    assert!(
        data.is_empty(),
        "removing a timeout toxic closes its connections"
    );
}

#[tokio::test]
async fn reset_peer_sends_a_tcp_reset() {
    let r = registry(8);
    let addr = proxy(&r, "p", echo_server().await);
    toxic(&r, "p", "reset_peer", "upstream", &[("timeout", 100)], None);
    let mut s = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    s.write_all(b"boom").await.unwrap();
    let (data, reset) = drain(&mut s).await;
    assert!(data.is_empty());
    assert!(reset, "the client sees ECONNRESET, not a clean EOF");
    within(started.elapsed(), 90, 800);
    // A silent connection is never reset.
    let mut quiet = TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 4];
    assert!(
        timeout(Duration::from_millis(300), quiet.read(&mut buf))
            .await
            .is_err()
    );
}

/// A proxy "p" to an echo server whose downstream a slicer cuts into 10-byte pieces `delay`
/// µs apart, and how long 1,000 bytes take to come back through it.
async fn sliced_round_trip(seed: u64, delay: i64) -> (Arc<Registry>, Duration) {
    let r = registry(seed);
    let addr = proxy(&r, "p", echo_server().await);
    toxic(
        &r,
        "p",
        "slicer",
        "downstream",
        &[
            ("average_size", 10),
            ("size_variation", 0),
            ("delay", delay),
        ],
        None,
    );
    let mut s = TcpStream::connect(addr).await.unwrap();
    let payload: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
    let took = round_trip(&mut s, &payload).await;
    (r, took)
}

#[tokio::test]
async fn slicer_cuts_chunks_into_delayed_pieces() {
    let (r, took) = sliced_round_trip(9, 2000).await;
    // At least 100 pieces, 2 ms apart.
    within(took, 190, 3000);
    for bad in [
        vec![("average_size", 0), ("size_variation", 0)],
        vec![("average_size", -1), ("size_variation", 5)],
    ] {
        let t = NewToxic {
            name: Some("bad".into()),
            type_name: "slicer".into(),
            stream: None,
            toxicity: None,
            attributes: bad.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        };
        assert!(r.add_toxic("p", t).is_err());
    }
}

#[tokio::test]
async fn slicer_delays_are_microseconds() {
    // 100 pieces, 100 µs apart: about 10 ms, where a timer of whole milliseconds takes
    // 100 ms or more.
    within(sliced_round_trip(22, 100).await.1, 9, 70);
}

#[tokio::test]
async fn limit_data_truncates_then_closes() {
    let r = registry(10);
    let addr = proxy(&r, "p", echo_server().await);
    toxic(&r, "p", "limit_data", "downstream", &[("bytes", 10)], None);
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"0123456789abcdef").await.unwrap();
    let (data, _) = drain(&mut s).await;
    assert_eq!(data, b"0123456789");
}

#[tokio::test]
async fn toxicity_zero_never_applies_and_one_always_does() {
    let r = registry(11);
    let addr = proxy(&r, "p", echo_server().await);
    let name = toxic(
        &r,
        "p",
        "latency",
        "downstream",
        &[("latency", 300)],
        Some(0.0),
    );
    let mut s = TcpStream::connect(addr).await.unwrap();
    within(round_trip(&mut s, b"x").await, 0, 100);
    r.update_toxic("p", &name, vec![], Some(1.0)).unwrap();
    within(round_trip(&mut s, b"x").await, 290, 600);
}

/// With the same seed, the same connections are chosen by a toxicity-0.5 toxic.
#[tokio::test]
async fn a_seed_makes_toxicity_reproducible() {
    let upstream = echo_server().await;
    let mut patterns = Vec::new();
    for _ in 0..2 {
        let r = registry(42);
        let addr = proxy(&r, "p", upstream);
        toxic(
            &r,
            "p",
            "latency",
            "downstream",
            &[("latency", 150)],
            Some(0.5),
        );
        let mut pattern = Vec::new();
        for _ in 0..16 {
            let mut s = TcpStream::connect(addr).await.unwrap();
            pattern.push(round_trip(&mut s, b"x").await > Duration::from_millis(100));
        }
        patterns.push(pattern);
    }
    assert_eq!(patterns[0], patterns[1]);
    let slow = patterns[0].iter().filter(|x| **x).count();
    assert!((2..=14).contains(&slow), "about half are slowed: {slow}/16");
}

#[tokio::test]
async fn disable_closes_connections_and_enable_rebinds_the_same_port_with_toxics() {
    let r = registry(12);
    let addr = proxy(&r, "p", echo_server().await);
    toxic(&r, "p", "latency", "downstream", &[("latency", 100)], None);
    let mut s = TcpStream::connect(addr).await.unwrap();
    round_trip(&mut s, b"x").await;
    r.update(
        "p",
        ProxyUpdate {
            enabled: Some(false),
            ..ProxyUpdate::default()
        },
    )
    .unwrap();
    let (data, _) = drain(&mut s).await;
    assert!(data.is_empty());
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "refused while disabled"
    );
    let p = r
        .update(
            "p",
            ProxyUpdate {
                enabled: Some(true),
                ..ProxyUpdate::default()
            },
        )
        .unwrap();
    assert_eq!(p.listen, addr.to_string());
    assert_eq!(p.toxics.len(), 1);
    let mut s = TcpStream::connect(addr).await.unwrap();
    within(round_trip(&mut s, b"x").await, 95, 400);
}

#[tokio::test]
async fn an_unreachable_upstream_closes_the_client_and_spares_the_others() {
    let r = registry(13);
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let bad = proxy(&r, "bad", dead);
    let good = proxy(&r, "good", echo_server().await);
    let mut clients = Vec::new();
    for _ in 0..20 {
        clients.push(TcpStream::connect(bad).await.unwrap());
    }
    let mut s = TcpStream::connect(good).await.unwrap();
    within(round_trip(&mut s, b"x").await, 0, 100);
    for mut c in clients {
        let (data, reset) = drain(&mut c).await;
        assert!(data.is_empty() && !reset, "closed with EOF, not reset");
    }
}

/// The control plane never waits for links: toxics churn while 20 connections stream, and
/// every registry call returns promptly (a hang, as in Toxiproxy's #558, fails the test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toxic_churn_under_traffic_never_blocks_the_control_plane() {
    let r = registry(14);
    let addr = proxy(&r, "p", echo_server().await);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut streams = Vec::new();
    for _ in 0..20 {
        let stop = stop.clone();
        streams.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let chunk = vec![1u8; 16 * 1024];
            let mut buf = vec![0u8; 16 * 1024];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if timeout(Duration::from_secs(5), async {
                    s.write_all(&chunk).await?;
                    s.read_exact(&mut buf).await
                })
                .await
                .is_err()
                {
                    break;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut slowest = Duration::ZERO;
    for i in 0..200 {
        let started = Instant::now();
        let kind = ["latency", "bandwidth", "timeout", "slicer", "limit_data"][i % 5];
        let attrs: &[(&str, i64)] = match kind {
            "bandwidth" => &[("rate", 1000)],
            "slicer" => &[("average_size", 64)],
            "limit_data" => &[("bytes", 1 << 30)],
            _ => &[("latency", 5)],
        };
        let name = toxic(
            &r,
            "p",
            kind,
            if i % 2 == 0 { "upstream" } else { "downstream" },
            attrs,
            None,
        );
        r.remove_toxic("p", &name).unwrap();
        slowest = slowest.max(started.elapsed());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(
        slowest < Duration::from_secs(1),
        "a control call took {slowest:?}"
    );
    for s in streams {
        let _ = timeout(LIMIT, s).await;
    }
}

/// A loopback listener whose accept queue is full: further connection attempts get no answer
/// (the kernel drops their SYNs), so dialing it is slow rather than refused.
fn slow_upstream() -> (SocketAddr, Vec<std::net::TcpStream>, rustix::fd::OwnedFd) {
    use rustix::net::{AddressFamily, SocketType, bind, getsockname, listen, socket};
    let fd = socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
    bind(&fd, &SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    listen(&fd, 0).unwrap();
    let addr: SocketAddr = match getsockname(&fd).unwrap().try_into() {
        Ok(a) => a,
        Err(_) => panic!("not an inet address"),
    };
    // Fill the queue (never accepted) until a connect stops completing at once.
    let mut fillers = Vec::new();
    for _ in 0..4 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(s) => fillers.push(s),
            Err(_) => break,
        }
    }
    (addr, fillers, fd)
}

/// A slow upstream never delays other clients: the dial runs in the connection's own task,
/// with a timeout, so the same proxy keeps accepting and other proxies keep serving.
#[tokio::test]
async fn a_slow_upstream_times_out_without_delaying_anyone() {
    let (upstream, _fillers, _fd) = slow_upstream();
    let probe =
        tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(upstream)).await;
    assert!(
        probe.is_err(),
        "the upstream must be slow to dial for this test to mean anything"
    );
    let r = Arc::new(Registry::new(RegistryConfig {
        seed: Some(15),
        dial_timeout: Duration::from_millis(500),
        ..RegistryConfig::default()
    }));
    let slow = proxy(&r, "slow", upstream);
    let good = proxy(&r, "good", echo_server().await);
    let started = Instant::now();
    let mut waiting = Vec::new();
    for _ in 0..10 {
        // Accepted at once, although the dial behind each one is stuck.
        waiting.push(
            timeout(Duration::from_millis(200), TcpStream::connect(slow))
                .await
                .expect("accept delayed")
                .unwrap(),
        );
    }
    let mut s = TcpStream::connect(good).await.unwrap();
    within(round_trip(&mut s, b"x").await, 0, 100);
    for mut c in waiting {
        let (data, _) = drain(&mut c).await;
        assert!(data.is_empty());
    }
    within(started.elapsed(), 450, 3000);
}

/// Behind a slow toxic the proxy stops reading once it holds 4 MiB of a connection, so TCP
/// pushes back on the client instead of memory growing (Toxiproxy #232), whether the link
/// holds the bytes in pipes or in memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_bounded_behind_a_latency_toxic() {
    let r = registry(16);
    let sink = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
                });
            }
        });
        addr
    };
    let addr = proxy(&r, "p", sink);
    toxic(&r, "p", "latency", "upstream", &[("latency", 60_000)], None);
    let read_by_proxy = || {
        r.counters()
            .iter()
            .find(|c| c.name == "p")
            .map_or(0, |c| c.upstream_bytes.0)
    };
    let mut open = Vec::new();
    for _ in 0..8 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let chunk = vec![5u8; 64 * 1024];
        let before = read_by_proxy();
        let mut total = 0usize;
        // Write until the proxy stops taking data (nothing is forwarded for a minute); what
        // the client wrote beyond what the proxy read sits in the kernel's socket buffers.
        while let Ok(Ok(n)) = timeout(Duration::from_millis(300), s.write(&chunk)).await {
            total += n;
            assert!(total < 96 << 20, "the proxy kept reading: {total} bytes");
        }
        let held = read_by_proxy() - before;
        assert!(
            held <= simian_proxy::link::QUEUE_BYTES as u64,
            "the proxy holds {held} bytes of one connection"
        );
        assert!(
            held > 1 << 20,
            "{held}: the proxy holds data ahead of the toxic"
        );
        open.push(s);
    }
}

/// Issue 18, item 1: toxics of one kind on one stream compose, in chain order, as in
/// Toxiproxy (the Ruby client's `test_multiple_of_same_toxic_type`): two latencies add up, and
/// a latency before a bandwidth limit adds to it; limit_data and slicer after them still cut.
#[tokio::test]
async fn toxics_on_one_stream_compose_in_chain_order() {
    let r = registry(23);
    let addr = proxy(&r, "p", echo_server().await);
    let mut s = TcpStream::connect(addr).await.unwrap();
    let a = toxic(&r, "p", "latency", "downstream", &[("latency", 100)], None);
    let b = r
        .add_toxic(
            "p",
            NewToxic {
                name: Some("second_latency".into()),
                type_name: "latency".into(),
                stream: Some("downstream".into()),
                toxicity: None,
                attributes: vec![("latency".into(), 100)],
            },
        )
        .unwrap()
        .name;
    within(round_trip(&mut s, b"ping").await, 195, 400);
    r.update_toxic("p", &b, vec![("latency".into(), 50)], None)
        .unwrap();
    within(round_trip(&mut s, b"ping").await, 145, 350);
    r.remove_toxic("p", &b).unwrap();
    // 50 ms of latency, then 10,000 bytes at 100 KB/s (100 ms): 150 ms.
    r.update_toxic("p", &a, vec![("latency".into(), 50)], None)
        .unwrap();
    let bw = toxic(&r, "p", "bandwidth", "downstream", &[("rate", 100)], None);
    let payload = vec![3u8; 10_000];
    within(round_trip(&mut s, &payload).await, 145, 400);
    r.remove_toxic("p", &bw).unwrap();
    // Then a slicer and a data limit: 50 ms late, in small pieces, cut at 5,000 bytes.
    toxic(
        &r,
        "p",
        "slicer",
        "downstream",
        &[("average_size", 100), ("size_variation", 10), ("delay", 0)],
        None,
    );
    toxic(
        &r,
        "p",
        "limit_data",
        "downstream",
        &[("bytes", 5_000)],
        None,
    );
    let started = Instant::now();
    s.write_all(&payload).await.unwrap();
    let (got, _) = timeout(LIMIT, drain(&mut s)).await.unwrap();
    assert_eq!(got.len(), 5_000, "limit_data after the others still cuts");
    assert!(
        started.elapsed() >= Duration::from_millis(45),
        "{:?}",
        started.elapsed()
    );
}

/// Issue 18, item 11: a link whose toxics only delay releases queued chunks in batches, yet
/// every message still leaves its own delay after it arrived: messages sent 5 ms apart
/// through 50 ms arrive 50 ms after each was sent, in order, not in clumps.
#[tokio::test]
async fn a_latency_stream_releases_every_chunk_at_its_own_time() {
    let r = registry(24);
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = l.local_addr().unwrap();
    let arrivals = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut out = Vec::new();
        let mut message = [0u8; 8];
        while out.len() < 40 {
            timeout(LIMIT, s.read_exact(&mut message))
                .await
                .unwrap()
                .unwrap();
            out.push((u64::from_le_bytes(message), Instant::now()));
        }
        out
    });
    let addr = proxy(&r, "p", upstream);
    toxic(&r, "p", "latency", "upstream", &[("latency", 50)], None);
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut sent = Vec::new();
    for i in 0..40u64 {
        sent.push(Instant::now());
        s.write_all(&i.to_le_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let arrivals = timeout(LIMIT, arrivals).await.unwrap().unwrap();
    for (k, (i, at)) in arrivals.iter().enumerate() {
        assert_eq!(*i, k as u64, "messages arrive in order");
        let delay = at.duration_since(sent[k]);
        // At least the latency; late by no more than scheduling on a busy machine.
        within(delay, 50, 80);
    }
}

/// A bulk stream through latency toxics on both streams (the batched path, with its partial
/// writes) arrives intact and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_data_through_latency_toxics_arrives_intact() {
    let r = registry(25);
    let addr = proxy(&r, "p", echo_server().await);
    toxic(&r, "p", "latency", "upstream", &[("latency", 1)], None);
    toxic(
        &r,
        "p",
        "latency",
        "downstream",
        &[("latency", 2), ("jitter", 1)],
        None,
    );
    let mut s = TcpStream::connect(addr).await.unwrap();
    let payload: Vec<u8> = (0..16_000_000u32).map(|i| (i * 13 % 251) as u8).collect();
    let (mut rd, mut wr) = s.split();
    let send = async {
        wr.write_all(&payload).await.unwrap();
    };
    let mut got = vec![0u8; payload.len()];
    let recv = async {
        timeout(LIMIT, rd.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap()
    };
    tokio::join!(send, recv);
    assert!(got == payload, "the stream came back changed");
}

/// A latency change reaches chunks already queued behind the toxic: the held one leaves at
/// once (as in Toxiproxy) and the queued one goes through the new chain, not its old delay.
#[tokio::test]
async fn a_latency_change_reaches_queued_chunks() {
    let r = registry(26);
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = l.local_addr().unwrap();
    let arrivals = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut out = Vec::new();
        let mut message = [0u8; 1];
        while out.len() < 2 {
            timeout(LIMIT, s.read_exact(&mut message))
                .await
                .unwrap()
                .unwrap();
            out.push(Instant::now());
        }
        out
    });
    let addr = proxy(&r, "p", upstream);
    let lat = toxic(&r, "p", "latency", "upstream", &[("latency", 400)], None);
    let mut s = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    s.write_all(b"a").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.write_all(b"b").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    r.update_toxic("p", &lat, vec![("latency".into(), 0)], None)
        .unwrap();
    let arrivals = timeout(LIMIT, arrivals).await.unwrap().unwrap();
    // Both at the change (200 ms), neither at its old release (400 and 500 ms).
    within(arrivals[0].duration_since(started), 195, 300);
    within(arrivals[1].duration_since(started), 195, 300);
}

/// An upstream that checks every byte it receives against `pattern(i)` and reports how many
/// arrived in order, once the client closes.
async fn checking_sink(pattern: fn(u64) -> u8) -> (SocketAddr, tokio::task::JoinHandle<u64>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = vec![0u8; 256 * 1024];
        let mut seen = 0u64;
        loop {
            let n = timeout(LIMIT, s.read(&mut buf)).await.unwrap().unwrap();
            if n == 0 {
                return seen;
            }
            for &b in &buf[..n] {
                assert_eq!(b, pattern(seen), "byte {seen} changed or out of order");
                seen += 1;
            }
        }
    });
    (addr, task)
}

/// Issue 18, item 11: a stream switches between the paths (pass-through, the delay line in
/// its pipe and in memory, the queued path) as toxics come and go under it, and not one byte
/// is lost, repeated or reordered at any switch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_survives_every_switch_of_path() {
    fn pattern(i: u64) -> u8 {
        (i.wrapping_mul(31) % 253) as u8
    }
    let r = registry(27);
    let (upstream, sink) = checking_sink(pattern).await;
    let addr = proxy(&r, "p", upstream);
    let mut s = TcpStream::connect(addr).await.unwrap();
    let total: u64 = 48 << 20;
    let writer = tokio::spawn(async move {
        let mut sent = 0u64;
        let mut block = vec![0u8; 64 * 1024];
        while sent < total {
            // Bulk blocks, with small writes between them so that both kinds of reads occur.
            let len = if (sent / block.len() as u64) % 4 == 3 {
                100
            } else {
                block.len()
            };
            for (k, b) in block[..len].iter_mut().enumerate() {
                *b = pattern(sent + k as u64);
            }
            s.write_all(&block[..len]).await.unwrap();
            sent += len as u64;
        }
        s.shutdown().await.unwrap();
        sent
    });
    let pause = Duration::from_millis(60);
    for _ in 0..3 {
        let lat = toxic(&r, "p", "latency", "upstream", &[("latency", 20)], None);
        tokio::time::sleep(pause).await;
        let bw = toxic(&r, "p", "bandwidth", "upstream", &[("rate", 200_000)], None);
        tokio::time::sleep(pause).await;
        r.remove_toxic("p", &bw).unwrap();
        tokio::time::sleep(pause).await;
        r.update_toxic("p", &lat, vec![("latency".into(), 5)], None)
            .unwrap();
        tokio::time::sleep(pause).await;
        r.remove_toxic("p", &lat).unwrap();
        tokio::time::sleep(pause).await;
    }
    let sent = timeout(LIMIT, writer).await.unwrap().unwrap();
    assert_eq!(timeout(LIMIT, sink).await.unwrap().unwrap(), sent);
}

/// Small messages after a bulk burst, held by a long latency in the delay line's pipe (one
/// slot each) and beyond it in memory, arrive intact and in order, each after its delay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_messages_behind_a_bulk_burst_keep_their_order() {
    fn pattern(i: u64) -> u8 {
        (i % 241) as u8
    }
    let r = registry(28);
    let (upstream, sink) = checking_sink(pattern).await;
    let addr = proxy(&r, "p", upstream);
    toxic(&r, "p", "latency", "upstream", &[("latency", 300)], None);
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let started = Instant::now();
    let mut sent = 0u64;
    let send = |len: usize, sent: &mut u64| {
        let data: Vec<u8> = (0..len as u64).map(|k| pattern(*sent + k)).collect();
        *sent += len as u64;
        data
    };
    let burst = send(1 << 20, &mut sent);
    s.write_all(&burst).await.unwrap();
    for i in 0..1500 {
        let message = send(7, &mut sent);
        s.write_all(&message).await.unwrap();
        if i % 50 == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    s.shutdown().await.unwrap();
    assert_eq!(timeout(LIMIT, sink).await.unwrap().unwrap(), sent);
    assert!(started.elapsed() >= Duration::from_millis(300));
}
