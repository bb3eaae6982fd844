//! Stop conditions: checks that watch the system while the method runs, and end the run
//! the moment one of them trips.
//!
//! They live in the experiment file as an extension block that the reference runner ignores,
//! so one file runs under both:
//!
//! ```json
//! "extensions": [{"name": "simian", "stop_conditions": [
//!   {"name": "api-up", "type": "http", "url": "http://127.0.0.1:8080/health",
//!    "expected_status": 200, "frequency": 1, "failures": 2},
//!   {"name": "no-incident", "type": "command", "command": ["/usr/local/bin/no-incident"]},
//!   {"name": "errors", "type": "prometheus", "url": "http://127.0.0.1:9090",
//!    "query": "sum(rate(http_errors_total[1m]))", "max": 5}
//! ]}]
//! ```
//!
//! Each condition is checked every `frequency` seconds (default 1) from the start of the
//! method; `failures` bad checks in a row (default 1) trip it. A check that cannot be made
//! (a refused connection, a timeout, an unreadable answer) is a bad check: when in doubt,
//! stop. A Prometheus query with no samples is a good check (no series, no errors).

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde_json::{Map, Value};

use crate::interrupt::{Interrupt, Stopped};
use crate::validate::Invalid;

/// The extension's `name`.
pub const EXTENSION: &str = "simian";

/// What one condition checks.
#[derive(Clone, Debug, PartialEq)]
pub enum Check {
    /// An HTTP GET answering one of `expected` (any 2xx when empty).
    Http {
        /// The URL.
        url: String,
        /// The statuses that are good.
        expected: Vec<u16>,
    },
    /// A command that exits 0 while all is well.
    Command {
        /// The program and its arguments.
        argv: Vec<String>,
    },
    /// A PromQL instant query whose every sample stays within `[min, max]`.
    Prometheus {
        /// The Prometheus server (`/api/v1/query` is added).
        url: String,
        /// The query.
        query: String,
        /// The lowest good value.
        min: Option<f64>,
        /// The highest good value.
        max: Option<f64>,
    },
}

/// One stop condition.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    /// Its name, for the journal.
    pub name: String,
    /// What it checks.
    pub check: Check,
    /// How often.
    pub frequency: Duration,
    /// How many bad checks in a row trip it.
    pub failures: u32,
    /// How long one check may take.
    pub timeout: Duration,
}

/// The stop conditions of an experiment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Conditions(pub Vec<Condition>);

impl Conditions {
    /// The conditions in `experiment`'s `simian` extension (none without one).
    pub fn of(experiment: &Map<String, Value>) -> Result<Conditions, Invalid> {
        let mut all = Vec::new();
        for (i, ext) in experiment
            .get("extensions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            if ext.get("name").and_then(Value::as_str) == Some(EXTENSION) {
                let parsed =
                    Conditions::parse(ext).map_err(|e| e.at(format!("extensions[{i}]")))?;
                all.extend(parsed.0);
            }
        }
        Ok(Conditions(all))
    }

    /// Parses one `simian` extension block.
    pub fn parse(ext: &Value) -> Result<Conditions, Invalid> {
        let Some(map) = ext.as_object() else {
            return Err(Invalid::new("an extension is a mapping"));
        };
        for key in map.keys() {
            if !matches!(key.as_str(), "name" | "stop_conditions") {
                return Err(Invalid::new(format!(
                    "unknown key {key:?} in the simian extension: it takes name and stop_conditions"
                )));
            }
        }
        let list = match map.get("stop_conditions") {
            None | Some(Value::Null) => return Ok(Conditions::default()),
            Some(Value::Array(list)) => list,
            Some(_) => return Err(Invalid::new("stop_conditions must be a list of conditions")),
        };
        let mut out = Vec::new();
        for (i, c) in list.iter().enumerate() {
            out.push(condition(c).map_err(|e| e.at(format!("stop_conditions[{i}]")))?);
        }
        Ok(Conditions(out))
    }

    /// Starts watching: each condition on a thread of its own, tripping `interrupt`. The
    /// watch ends when the returned guard is dropped.
    pub fn watch(&self, interrupt: Arc<Interrupt>) -> Watch {
        let done = Arc::new(Interrupt::new());
        let threads = self
            .0
            .iter()
            .cloned()
            .map(|c| {
                let done = done.clone();
                let interrupt = interrupt.clone();
                std::thread::spawn(move || watch_one(&c, &done, &interrupt))
            })
            .collect();
        Watch { done, threads }
    }
}

/// Watching stop conditions; dropping it stops the watch.
pub struct Watch {
    done: Arc<Interrupt>,
    threads: Vec<JoinHandle<()>>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.done.trip(Stopped {
            by: "method".into(),
            name: "end".into(),
            reason: "the method ended".into(),
            at: Timestamp::now(),
        });
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn watch_one(c: &Condition, done: &Interrupt, interrupt: &Interrupt) {
    let mut bad = 0;
    loop {
        if done.is_tripped() || interrupt.is_tripped() {
            return;
        }
        let began = Instant::now();
        match c.check.run(c.timeout) {
            Ok(()) => bad = 0,
            Err(reason) => {
                bad += 1;
                tracing::warn!(condition = %c.name, bad, of = c.failures, %reason, "stop condition check failed");
                if bad >= c.failures {
                    interrupt.trip(Stopped {
                        by: "stop_condition".into(),
                        name: c.name.clone(),
                        reason,
                        at: Timestamp::now(),
                    });
                    return;
                }
            }
        }
        let rest = c.frequency.saturating_sub(began.elapsed());
        if !done.sleep(rest) {
            return;
        }
    }
}

impl Check {
    /// One check: `Err` says what was wrong.
    pub fn run(&self, timeout: Duration) -> Result<(), String> {
        match self {
            Check::Http { url, expected } => {
                let status = get(url, timeout)?.0;
                let good = if expected.is_empty() {
                    (200..300).contains(&status)
                } else {
                    expected.contains(&status)
                };
                if good {
                    Ok(())
                } else {
                    Err(format!("{url} answered HTTP {status}"))
                }
            }
            Check::Command { argv } => command(argv, timeout),
            Check::Prometheus {
                url,
                query,
                min,
                max,
            } => prometheus(url, query, *min, *max, timeout),
        }
    }
}

fn get(url: &str, timeout: Duration) -> Result<(u16, String), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .into();
    let mut response = agent.get(url).call().map_err(|e| format!("{url}: {e}"))?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .read_to_string()
        .map_err(|e| format!("{url}: {e}"))?;
    Ok((status, body))
}

fn command(argv: &[String], timeout: Duration) -> Result<(), String> {
    let Some((program, args)) = argv.split_first() else {
        return Err("empty command".into());
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(s)) if s.success() => return Ok(()),
            Ok(Some(s)) => return Err(format!("{program} exited with {s}")),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{program} took longer than {timeout:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("waiting for {program}: {e}")),
        }
    }
}

fn prometheus(
    url: &str,
    query: &str,
    min: Option<f64>,
    max: Option<f64>,
    timeout: Duration,
) -> Result<(), String> {
    let full = format!(
        "{}/api/v1/query?query={}",
        url.trim_end_matches('/'),
        simian_core::escape::query(query)
    );
    let (status, body) = get(&full, timeout)?;
    let doc: Value = serde_json::from_str(&body).map_err(|e| {
        format!("Prometheus answered HTTP {status} with something that is not JSON: {e}")
    })?;
    if doc["status"].as_str() != Some("success") {
        return Err(format!(
            "Prometheus refused the query: {}",
            doc["error"].as_str().unwrap_or("no reason given")
        ));
    }
    let result = &doc["data"]["result"];
    let samples: Vec<&Value> = match doc["data"]["resultType"].as_str() {
        Some("scalar") => vec![&result[1]],
        Some("vector") => result
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| &s["value"][1])
            .collect(),
        other => {
            return Err(format!(
                "the query gives a {}, not an instant vector or a scalar",
                other.unwrap_or("nothing")
            ));
        }
    };
    for s in samples {
        let v: f64 = s
            .as_str()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| format!("Prometheus sample {s} is not a number"))?;
        if max.is_some_and(|m| v > m) || min.is_some_and(|m| v < m) || v.is_nan() {
            return Err(format!(
                "{query} = {v}, outside [{}, {}]",
                min.map_or("-inf".into(), |m| m.to_string()),
                max.map_or("+inf".into(), |m| m.to_string())
            ));
        }
    }
    Ok(())
}

fn condition(c: &Value) -> Result<Condition, Invalid> {
    let Some(map) = c.as_object() else {
        return Err(Invalid::new(
            "a stop condition is a mapping with name and type",
        ));
    };
    let name = match map.get("name").and_then(Value::as_str) {
        Some(n) if !n.trim().is_empty() => n.to_string(),
        _ => return Err(Invalid::new("a stop condition needs a non-empty name")),
    };
    let kind = map.get("type").and_then(Value::as_str).unwrap_or_default();
    let allowed: &[&str] = match kind {
        "http" => &["url", "expected_status"],
        "command" => &["command"],
        "prometheus" => &["url", "query", "min", "max"],
        other => {
            return Err(Invalid::new(format!(
                "stop condition '{name}': unknown type {other:?}: one of http, command, prometheus"
            )));
        }
    };
    for key in map.keys() {
        if !["name", "type", "frequency", "failures", "timeout"].contains(&key.as_str())
            && !allowed.contains(&key.as_str())
        {
            return Err(Invalid::new(format!(
                "stop condition '{name}': unknown key {key:?} for a {kind} condition (it takes {}, frequency, failures, timeout)",
                allowed.join(", ")
            )));
        }
    }
    let positive = |key: &str, default: f64| -> Result<Duration, Invalid> {
        match map.get(key) {
            None => Ok(Duration::from_secs_f64(default)),
            Some(v) => v
                .as_f64()
                .filter(|s| s.is_finite() && *s > 0.0 && *s <= 86_400.0)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| {
                    Invalid::new(format!(
                        "stop condition '{name}': {key} must be a number of seconds above 0 (at most a day)"
                    ))
                }),
        }
    };
    let frequency = positive("frequency", 1.0)?;
    let timeout = positive("timeout", 5.0)?;
    let failures = match map.get("failures") {
        None => 1,
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=1000).contains(n))
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| {
                Invalid::new(format!(
                    "stop condition '{name}': failures must be a whole number from 1 to 1000"
                ))
            })?,
    };
    let text = |key: &str| -> Result<String, Invalid> {
        match map.get(key).and_then(Value::as_str) {
            Some(s) if !s.trim().is_empty() => Ok(s.to_string()),
            _ => Err(Invalid::new(format!(
                "stop condition '{name}': a {kind} condition needs {key} (a non-empty string)"
            ))),
        }
    };
    let url = |key: &str| -> Result<String, Invalid> {
        let u = text(key)?;
        if u.starts_with("http://") || u.starts_with("https://") {
            Ok(u)
        } else {
            Err(Invalid::new(format!(
                "stop condition '{name}': {key} {u:?} is not an http:// or https:// URL"
            )))
        }
    };
    let check = match kind {
        "http" => Check::Http {
            url: url("url")?,
            expected: match map.get("expected_status") {
                None => Vec::new(),
                Some(v) => {
                    let list: Vec<&Value> = match v {
                        Value::Array(l) => l.iter().collect(),
                        one => vec![one],
                    };
                    list.into_iter()
                        .map(|s| s.as_u64().and_then(|n| u16::try_from(n).ok()).filter(|n| (100..600).contains(n)))
                        .collect::<Option<Vec<u16>>>()
                        .ok_or_else(|| {
                            Invalid::new(format!(
                                "stop condition '{name}': expected_status must be an HTTP status (100-599) or a list of them"
                            ))
                        })?
                }
            },
        },
        "command" => Check::Command {
            argv: match map.get("command") {
                Some(Value::String(s)) if !s.trim().is_empty() => vec![s.clone()],
                Some(Value::Array(l)) if !l.is_empty() && l.iter().all(Value::is_string) => l
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect(),
                _ => {
                    return Err(Invalid::new(format!(
                        "stop condition '{name}': command must be a program, or a list of a program and its arguments"
                    )));
                }
            },
        },
        _ => {
            let bound = |key: &str| -> Result<Option<f64>, Invalid> {
                match map.get(key) {
                    None => Ok(None),
                    Some(v) => v
                        .as_f64()
                        .filter(|f| f.is_finite())
                        .map(Some)
                        .ok_or_else(|| {
                            Invalid::new(format!("stop condition '{name}': {key} must be a number"))
                        }),
                }
            };
            let (min, max) = (bound("min")?, bound("max")?);
            if min.is_none() && max.is_none() {
                return Err(Invalid::new(format!(
                    "stop condition '{name}': a prometheus condition needs max, min or both (the threshold)"
                )));
            }
            Check::Prometheus {
                url: url("url")?,
                query: text("query")?,
                min,
                max,
            }
        }
    };
    Ok(Condition {
        name,
        check,
        frequency,
        failures,
        timeout,
    })
}
