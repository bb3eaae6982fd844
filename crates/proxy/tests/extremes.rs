//! Issue 18, item 4: every attribute of every toxic at the extremes of its type, on a live
//! connection, in a debug build (overflow checks on): each value is refused with a message or
//! accepted and run, and no task of the proxy panics. A test binary of its own, so that the
//! panic hook it installs sees only this test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use simian_proxy::{NewToxic, Registry, RegistryConfig};
use support::{echo_server, proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

const ATTRIBUTES: [(&str, &[&str]); 8] = [
    ("latency", &["latency", "jitter"]),
    ("bandwidth", &["rate"]),
    ("slow_close", &["delay"]),
    ("timeout", &["timeout"]),
    ("reset_peer", &["timeout"]),
    ("slicer", &["average_size", "size_variation", "delay"]),
    ("limit_data", &["bytes"]),
    ("noop", &[]),
];

const VALUES: [i64; 5] = [i64::MIN, -1, 0, 1, i64::MAX];

/// Every assignment of [`VALUES`] to `n` attributes.
fn combinations(n: usize) -> Vec<Vec<i64>> {
    let mut out = vec![Vec::new()];
    for _ in 0..n {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                VALUES.iter().map(move |v| {
                    let mut next = prefix.clone();
                    next.push(*v);
                    next
                })
            })
            .collect();
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(debug_assertions),
    ignore = "run in a debug build: overflow checks must be on to catch a wrap"
)]
async fn extreme_attributes_are_refused_or_run_without_panicking() {
    let panics = Arc::new(AtomicUsize::new(0));
    {
        let panics = panics.clone();
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            panics.fetch_add(1, Ordering::SeqCst);
            default(info);
        }));
    }
    let registry = Arc::new(Registry::new(RegistryConfig {
        seed: Some(7),
        dial_timeout: Duration::from_secs(2),
        ..RegistryConfig::default()
    }));
    let upstream = echo_server().await;
    let listen = proxy(&registry, "p", upstream);
    let payload = vec![7u8; 64 * 1024];
    let mut cases = 0;
    for (type_name, attributes) in ATTRIBUTES {
        // Every combination of extremes over the toxic's attributes: overflows hide in sums
        // of two of them (latency + jitter, average_size + size_variation).
        for combination in combinations(attributes.len()) {
            let attrs: Vec<(String, i64)> = attributes
                .iter()
                .zip(&combination)
                .map(|(k, v)| (k.to_string(), *v))
                .collect();
            let added = registry.add_toxic(
                "p",
                NewToxic {
                    name: Some("x".into()),
                    type_name: type_name.into(),
                    stream: Some("downstream".into()),
                    toxicity: None,
                    attributes: attrs.clone(),
                },
            );
            if let Err(e) = added {
                assert!(!e.to_string().is_empty());
                continue;
            }
            cases += 1;
            // Drive data through it for a moment: whatever the toxic does (delay, cut,
            // close, reset), it must not panic.
            if let Ok(Ok(mut c)) = timeout(Duration::from_secs(2), TcpStream::connect(listen)).await
            {
                let _ = timeout(Duration::from_millis(50), c.write_all(&payload)).await;
                let mut buf = vec![0u8; 4096];
                let _ = timeout(Duration::from_millis(50), c.read(&mut buf)).await;
            }
            // Updating to the opposite extremes, then removing, must not panic either.
            let flipped: Vec<(String, i64)> = attrs
                .iter()
                .map(|(k, v)| (k.clone(), v.wrapping_neg()))
                .collect();
            let _ = registry.update_toxic("p", "x", flipped, None);
            registry.remove_toxic("p", "x").unwrap();
        }
    }
    assert!(cases > 40, "{cases} cases ran");
    // The proxy still proxies, and no task panicked along the way.
    let mut c = TcpStream::connect(listen).await.unwrap();
    c.write_all(b"still here").await.unwrap();
    let mut back = [0u8; 10];
    timeout(Duration::from_secs(5), c.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&back, b"still here");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(panics.load(Ordering::SeqCst), 0, "a proxy task panicked");
}
