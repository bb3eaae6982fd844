//! Steady state: HTTP probes checked before, during and after a drill, and their figures.
//!
//! The decision parts are pure: [`ProbeLog`] keeps every sample with the second it was taken
//! (relative to the drill's start) and computes the share of successes over a trailing window
//! (the abort rule) and the per-phase report. Only [`HttpProbe`] does I/O.

use std::time::Duration;

use serde::Serialize;

/// One steady-state check.
pub trait Probe: Send + Sync {
    /// What it checks, for the report (the URL).
    fn name(&self) -> &str;

    /// Checks once: `Ok(latency)` when the service answered as expected.
    fn check(&self) -> Result<Duration, String>;
}

/// A GET that must answer 2xx within the timeout.
pub struct HttpProbe {
    url: String,
    agent: ureq::Agent,
}

impl HttpProbe {
    /// A probe of `url`, each check limited to `timeout`.
    pub fn new(url: &str, timeout: Duration) -> HttpProbe {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build()
            .new_agent();
        HttpProbe {
            url: url.to_string(),
            agent,
        }
    }
}

impl Probe for HttpProbe {
    fn name(&self) -> &str {
        &self.url
    }

    fn check(&self) -> Result<Duration, String> {
        let started = std::time::Instant::now();
        match self.agent.get(&self.url).call() {
            Ok(mut resp) => {
                // Read the body so the answer is complete (and the connection reusable).
                let _ = resp.body_mut().read_to_vec();
                let status = resp.status().as_u16();
                if (200..300).contains(&status) {
                    Ok(started.elapsed())
                } else {
                    Err(format!("status {status}"))
                }
            }
            Err(e) => Err(e.to_string()),
        }
    }
}

/// When a sample was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Before anything was touched.
    Before,
    /// While the fault was in place.
    During,
    /// After it was undone.
    After,
}

/// One check's outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// When, since the drill started.
    pub at: Duration,
    /// The phase.
    pub phase: Phase,
    /// `Ok(latency)` or the failure.
    pub outcome: Result<Duration, String>,
}

/// Every sample of every probe.
#[derive(Clone, Debug, Default)]
pub struct ProbeLog {
    probes: Vec<(String, Vec<Sample>)>,
}

/// One probe's figures in one phase.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PhaseFigures {
    /// Checks made.
    pub requests: usize,
    /// Checks that failed.
    pub failures: usize,
    /// Successful share, in percent (100 when no check was made).
    pub availability: f64,
    /// The most consecutive failures.
    pub longest_failure_burst: usize,
    /// Median latency of the successful checks, in milliseconds.
    pub p50_ms: Option<f64>,
    /// 99th percentile latency of the successful checks, in milliseconds.
    pub p99_ms: Option<f64>,
    /// The last failure, if any.
    pub last_failure: Option<String>,
}

/// One probe's report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProbeReport {
    /// The probe.
    pub probe: String,
    /// Before the drill.
    pub before: PhaseFigures,
    /// During it.
    pub during: PhaseFigures,
    /// After it.
    pub after: PhaseFigures,
}

impl ProbeLog {
    /// A log for probes named `names`, in order.
    pub fn new(names: impl IntoIterator<Item = String>) -> ProbeLog {
        ProbeLog {
            probes: names.into_iter().map(|n| (n, Vec::new())).collect(),
        }
    }

    /// Records a sample of probe number `probe`.
    pub fn record(&mut self, probe: usize, sample: Sample) {
        if let Some((_, samples)) = self.probes.get_mut(probe) {
            samples.push(sample);
        }
    }

    /// The share of successful checks (0 to 1) over every probe's samples taken in
    /// `(now - window, now]`; `None` when there is none.
    pub fn share_ok(&self, now: Duration, window: Duration) -> Option<f64> {
        let since = now.saturating_sub(window);
        let (mut ok, mut all) = (0usize, 0usize);
        for (_, samples) in &self.probes {
            for s in samples.iter().filter(|s| s.at > since && s.at <= now) {
                all += 1;
                ok += usize::from(s.outcome.is_ok());
            }
        }
        (all > 0).then(|| ok as f64 / all as f64)
    }

    /// The failures of `phase`, as `(probe, failure)`.
    pub fn failures(&self, phase: Phase) -> Vec<(String, String)> {
        self.probes
            .iter()
            .flat_map(|(name, samples)| {
                samples
                    .iter()
                    .filter(move |s| s.phase == phase)
                    .filter_map(move |s| s.outcome.clone().err().map(|e| (name.clone(), e)))
            })
            .collect()
    }

    /// The report of every probe.
    pub fn report(&self) -> Vec<ProbeReport> {
        self.probes
            .iter()
            .map(|(name, samples)| ProbeReport {
                probe: name.clone(),
                before: figures(samples, Phase::Before),
                during: figures(samples, Phase::During),
                after: figures(samples, Phase::After),
            })
            .collect()
    }
}

/// The figures of the samples of `phase`.
fn figures(samples: &[Sample], phase: Phase) -> PhaseFigures {
    let of_phase: Vec<&Sample> = samples.iter().filter(|s| s.phase == phase).collect();
    let failures = of_phase.iter().filter(|s| s.outcome.is_err()).count();
    let (mut burst, mut longest) = (0usize, 0usize);
    for s in &of_phase {
        burst = if s.outcome.is_err() { burst + 1 } else { 0 };
        longest = longest.max(burst);
    }
    let mut latencies: Vec<f64> = of_phase
        .iter()
        .filter_map(|s| s.outcome.as_ref().ok())
        .map(|d| d.as_secs_f64() * 1000.0)
        .collect();
    latencies.sort_by(f64::total_cmp);
    let requests = of_phase.len();
    PhaseFigures {
        requests,
        failures,
        availability: if requests == 0 {
            100.0
        } else {
            100.0 * (requests - failures) as f64 / requests as f64
        },
        longest_failure_burst: longest,
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        last_failure: of_phase.iter().rev().find_map(|s| s.outcome.clone().err()),
    }
}

/// The nearest-rank percentile of sorted `values`.
fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let rank = (p * values.len() as f64).ceil() as usize;
    values.get(rank.clamp(1, values.len()) - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(at_ms: u64, phase: Phase, ok: bool) -> Sample {
        Sample {
            at: Duration::from_millis(at_ms),
            phase,
            outcome: if ok {
                Ok(Duration::from_millis(at_ms % 7 + 1))
            } else {
                Err("status 503".into())
            },
        }
    }

    #[test]
    fn the_trailing_share_counts_only_the_window() {
        let mut log = ProbeLog::new(["a".to_string(), "b".to_string()]);
        for t in 0..20u64 {
            log.record(0, s(t * 1000, Phase::During, t < 15));
            log.record(1, s(t * 1000, Phase::During, true));
        }
        // At 19 s the last 10 s hold t = 10..=19: probe a failed 5 of 10, b none.
        let share = log.share_ok(Duration::from_secs(19), Duration::from_secs(10));
        assert_eq!(share, Some(15.0 / 20.0));
        assert_eq!(
            log.share_ok(Duration::from_secs(5), Duration::from_secs(10)),
            Some(1.0)
        );
        assert_eq!(
            ProbeLog::new(["x".to_string()]).share_ok(Duration::ZERO, Duration::from_secs(10)),
            None
        );
    }

    #[test]
    fn figures_per_phase() {
        let mut log = ProbeLog::new(["a".to_string()]);
        for (t, ok) in [
            (0, true),
            (1, true),
            (2, false),
            (3, false),
            (4, true),
            (5, false),
        ] {
            log.record(0, s(t, Phase::During, ok));
        }
        log.record(0, s(9, Phase::After, true));
        let r = &log.report()[0];
        assert_eq!(r.during.requests, 6);
        assert_eq!(r.during.failures, 3);
        assert_eq!(r.during.longest_failure_burst, 2);
        assert!((r.during.availability - 50.0).abs() < 1e-9);
        assert_eq!(r.before.requests, 0);
        assert!((r.before.availability - 100.0).abs() < 1e-9);
        assert_eq!(r.after.p50_ms, Some(3.0));
        assert_eq!(log.failures(Phase::During).len(), 3);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), Some(50.0));
        assert_eq!(percentile(&v, 0.99), Some(99.0));
        assert_eq!(percentile(&[4.0], 0.99), Some(4.0));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
