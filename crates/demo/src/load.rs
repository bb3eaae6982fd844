//! The load generator: a steady request rate through the balancer, every result kept in
//! order so availability, latency percentiles and the longest error burst can be computed.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::http::get;

/// One request's outcome.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Order of sending.
    pub seq: u64,
    /// When it was sent, from the start of the load.
    pub sent: Duration,
    /// Success (2xx).
    pub ok: bool,
    /// Round trip.
    pub latency: Duration,
}

/// Live counters and the samples.
#[derive(Default)]
pub struct Load {
    /// Requests answered (either way).
    pub requests: AtomicU64,
    /// Requests that failed.
    pub errors: AtomicU64,
    samples: Mutex<Vec<Sample>>,
    examples: Mutex<Vec<String>>,
}

/// How many error reasons to keep as examples.
const EXAMPLES: usize = 5;

impl Load {
    /// The first few errors, in words.
    pub fn error_examples(&self) -> Vec<String> {
        self.examples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Every sample, in sending order.
    pub fn samples(&self) -> Vec<Sample> {
        let mut s = self
            .samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        s.sort_by_key(|s| s.seq);
        s
    }
}

/// Sends `rate` requests a second to `target` until `stop` is set, then waits for the last.
pub async fn run(target: SocketAddr, rate: u32, load: Arc<Load>, mut stop: watch::Receiver<bool>) {
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut inflight = tokio::task::JoinSet::new();
    let mut seq = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        let load = load.clone();
        let n = seq;
        seq += 1;
        inflight.spawn(async move {
            let sent = start.elapsed();
            let began = Instant::now();
            let outcome = get(target, "/", Duration::from_secs(3)).await;
            let latency = began.elapsed();
            let ok = matches!(outcome, Ok((200..=299, _)));
            load.requests.fetch_add(1, Ordering::Relaxed);
            if !ok {
                load.errors.fetch_add(1, Ordering::Relaxed);
                let mut examples = load.examples.lock().unwrap_or_else(|e| e.into_inner());
                if examples.len() < EXAMPLES {
                    examples.push(match outcome {
                        Ok((status, body)) => {
                            format!("{status}: {}", String::from_utf8_lossy(&body).trim())
                        }
                        Err(e) => e,
                    });
                }
            }
            load.samples
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Sample {
                    seq: n,
                    sent,
                    ok,
                    latency,
                });
        });
        while inflight.try_join_next().is_some() {}
    }
    while inflight.join_next().await.is_some() {}
}

/// The longest run of consecutive failed requests: (count, from first to last failure).
pub fn longest_error_burst(samples: &[Sample]) -> (u64, Duration) {
    let mut best = (0u64, Duration::ZERO);
    let mut run: Option<(u64, Duration, Duration)> = None;
    for s in samples {
        if s.ok {
            run = None;
            continue;
        }
        let r = run.get_or_insert((0, s.sent, s.sent));
        r.0 += 1;
        r.2 = s.sent + s.latency;
        if r.0 > best.0 {
            best = (r.0, r.2.saturating_sub(r.1));
        }
    }
    best
}

/// The `q` quantile (0..=1) of the latencies, nearest rank, in milliseconds.
pub fn quantile_ms(samples: &[Sample], q: f64) -> f64 {
    let mut l: Vec<Duration> = samples.iter().filter(|s| s.ok).map(|s| s.latency).collect();
    if l.is_empty() {
        return 0.0;
    }
    l.sort();
    let rank = ((q * l.len() as f64).ceil() as usize).clamp(1, l.len());
    l[rank - 1].as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(seq: u64, ok: bool) -> Sample {
        Sample {
            seq,
            sent: Duration::from_millis(seq * 10),
            ok,
            latency: Duration::from_millis(1 + seq % 3),
        }
    }

    #[test]
    fn bursts_and_quantiles() {
        let samples: Vec<Sample> = [true, false, false, true, false, false, false, true]
            .iter()
            .enumerate()
            .map(|(i, ok)| s(i as u64, *ok))
            .collect();
        let (n, d) = longest_error_burst(&samples);
        assert_eq!(n, 3);
        assert_eq!(
            d,
            Duration::from_millis(21),
            "from the first failure sent to the last one answered"
        );
        let all: Vec<Sample> = (0..100)
            .map(|i| Sample {
                seq: i,
                sent: Duration::ZERO,
                ok: true,
                latency: Duration::from_millis(i + 1),
            })
            .collect();
        assert_eq!(quantile_ms(&all, 0.5), 50.0);
        assert_eq!(quantile_ms(&all, 0.99), 99.0);
        assert_eq!(quantile_ms(&[], 0.5), 0.0);
    }
}
