//! Local processes as instances.
//!
//! A process is a candidate when its environment carries `SIMIAN_APP`; `SIMIAN_STACK`,
//! `SIMIAN_DETAIL`, `SIMIAN_CLUSTER`, `SIMIAN_ACCOUNT` (default `local`), `SIMIAN_REGION`
//! (default `local`), `SIMIAN_ZONE` and `SIMIAN_LABEL_<NAME>` describe it. An instance id is
//! `PID@START` (the start time in clock ticks since boot), so a recycled pid is never mistaken
//! for the process that was drawn.
//!
//! Termination sends SIGTERM, waits the grace period, then sends SIGKILL, and verifies the
//! death. It never touches pid 1, this process or any of its ancestors, and it re-reads the
//! target's environment first: only a process that still carries the same `SIMIAN_APP` (and
//! matches the selector) can be killed.
//!
//! A drill's `pause` stops the process with SIGSTOP and resumes it with SIGCONT, each verified
//! in `/proc/PID/stat`; the resume goes only to the process that was stopped (same pid, same
//! start time), never to a recycled pid.

use std::collections::BTreeMap;
use std::fs;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, getpid, kill_process};
use simian_core::{FaultKind, FaultOutcome, Instance, KillOutcome, Lease, Provider, ProviderError};

/// Environment variable names.
pub mod env {
    /// Required: the app.
    pub const APP: &str = "SIMIAN_APP";
    /// The stack.
    pub const STACK: &str = "SIMIAN_STACK";
    /// The detail.
    pub const DETAIL: &str = "SIMIAN_DETAIL";
    /// An explicit cluster name.
    pub const CLUSTER: &str = "SIMIAN_CLUSTER";
    /// The account (default `local`).
    pub const ACCOUNT: &str = "SIMIAN_ACCOUNT";
    /// The region (default `local`).
    pub const REGION: &str = "SIMIAN_REGION";
    /// The zone.
    pub const ZONE: &str = "SIMIAN_ZONE";
    /// Prefix of label variables: `SIMIAN_LABEL_TEAM=core` is label `team = "core"`.
    pub const LABEL_PREFIX: &str = "SIMIAN_LABEL_";
}

/// Settings of a process provider.
#[derive(Clone, Debug)]
pub struct ProcessConfig {
    /// Time between SIGTERM and SIGKILL.
    pub grace_period: Duration,
    /// How long to wait for death after SIGKILL before reporting failure.
    pub kill_timeout: Duration,
    /// Only processes carrying all these labels are instances.
    pub selector: BTreeMap<String, String>,
}

impl Default for ProcessConfig {
    fn default() -> Self {
        ProcessConfig {
            grace_period: Duration::from_secs(10),
            kill_timeout: Duration::from_secs(5),
            selector: BTreeMap::new(),
        }
    }
}

/// Local processes, found through their environment.
#[derive(Clone, Debug)]
pub struct ProcessProvider {
    name: String,
    config: ProcessConfig,
}

impl ProcessProvider {
    /// A provider named `name`.
    pub fn new(name: impl Into<String>, config: ProcessConfig) -> ProcessProvider {
        ProcessProvider {
            name: name.into(),
            config,
        }
    }

    fn refuse(&self, instance: &Instance, reason: impl Into<String>) -> ProviderError {
        ProviderError::Refused {
            provider: self.name.clone(),
            instance_id: instance.id.to_string(),
            reason: reason.into(),
        }
    }

    /// The instance for `pid`, if it is a candidate now.
    fn read(&self, pid: i32, protected: &[i32]) -> Option<Instance> {
        if protected.contains(&pid) {
            return None;
        }
        let stat = Stat::read(pid)?;
        let vars = environ(pid)?;
        let app = vars.get(env::APP).filter(|a| !a.is_empty())?;
        let get = |k: &str| vars.get(k).cloned().unwrap_or_default();
        let or_local = |k: &str| {
            vars.get(k)
                .filter(|v| !v.is_empty())
                .cloned()
                .unwrap_or_else(|| "local".into())
        };
        let labels: BTreeMap<String, String> = vars
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix(env::LABEL_PREFIX)
                    .map(|l| (l.to_ascii_lowercase(), v.clone()))
            })
            .collect();
        if !self
            .config
            .selector
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
        {
            return None;
        }
        let mut instance = Instance {
            id: format!("{pid}@{}", stat.start_ticks).into(),
            app: app.into(),
            account: or_local(env::ACCOUNT).into(),
            region: or_local(env::REGION).into(),
            zone: get(env::ZONE).into(),
            stack: get(env::STACK).into(),
            detail: get(env::DETAIL).into(),
            cluster: get(env::CLUSTER).into(),
            labels: labels.into_iter().collect(),
        };
        instance.normalize();
        if let Some(field) = instance.field_with_control_character() {
            tracing::warn!(
                pid,
                field = %field,
                "skipping a process whose SIMIAN_* environment holds a control character; fix the value it was started with"
            );
            return None;
        }
        Some(instance)
    }
}

impl Provider for ProcessProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "process"
    }

    fn instances(&self) -> Result<Vec<Instance>, ProviderError> {
        let entries = fs::read_dir("/proc").map_err(|e| ProviderError::Inventory {
            provider: self.name.clone(),
            message: format!("cannot read /proc: {e}"),
        })?;
        let protected = protected_pids();
        let mut out: Vec<Instance> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter_map(|pid| self.read(pid, &protected))
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    fn faults(&self) -> &'static [FaultKind] {
        &[FaultKind::Pause]
    }

    fn make_fault(
        &self,
        instance: &Instance,
        lease: &Lease,
    ) -> Result<FaultOutcome, ProviderError> {
        if lease.kind != FaultKind::Pause {
            return Err(self.refuse(
                instance,
                format!("a process provider cannot {} a process", lease.kind),
            ));
        }
        let Some((target, pid, start)) = self.target(instance)? else {
            return Ok(FaultOutcome::AlreadyGone);
        };
        let started = Instant::now();
        match kill_process(target, Signal::STOP) {
            Ok(()) => {}
            Err(rustix::io::Errno::SRCH) => return Ok(FaultOutcome::AlreadyGone),
            Err(e) => {
                return Err(ProviderError::action(
                    &self.name,
                    instance,
                    format!("sending SIGSTOP failed: {e}"),
                ));
            }
        }
        match wait_for_stop(pid, start, true, self.config.kill_timeout) {
            Some(true) => Ok(FaultOutcome::Made {
                detail: format!(
                    "SIGSTOP; stopped (verified) after {} ms",
                    started.elapsed().as_millis()
                ),
            }),
            None => Ok(FaultOutcome::AlreadyGone),
            Some(false) => Err(ProviderError::action(
                &self.name,
                instance,
                format!(
                    "SIGSTOP sent, but the process is not stopped {} ms later",
                    self.config.kill_timeout.as_millis()
                ),
            )),
        }
    }

    fn undo(&self, lease: &Lease) -> Result<String, ProviderError> {
        let failed = |message: String| ProviderError::Action {
            provider: self.name.clone(),
            instance_id: lease.instance_id.clone(),
            message,
        };
        let Some((pid, start)) = parse_id(&lease.instance_id) else {
            return Err(failed(
                "not a process instance id (expected PID@START)".into(),
            ));
        };
        match Stat::read(pid) {
            Some(s) if s.start_ticks == start && !s.is_dead() => {
                if !s.is_stopped() {
                    return Ok("nothing to undo: the process is not stopped".into());
                }
            }
            _ => return Ok("nothing to undo: the process is gone".into()),
        }
        let target = Pid::from_raw(pid).ok_or_else(|| failed("invalid pid".into()))?;
        match kill_process(target, Signal::CONT) {
            Ok(()) => {}
            Err(rustix::io::Errno::SRCH) => {
                return Ok("nothing to undo: the process is gone".into());
            }
            Err(e) => return Err(failed(format!("sending SIGCONT failed: {e}"))),
        }
        match wait_for_stop(pid, start, false, self.config.kill_timeout) {
            Some(true) => {
                let held = jiff::Timestamp::now().duration_since(lease.created_at);
                Ok(format!(
                    "SIGCONT; running (verified) after {:.1} s stopped",
                    held.as_secs_f64()
                ))
            }
            None => Ok("SIGCONT; the process is gone since".into()),
            Some(false) => Err(failed(
                "SIGCONT sent, but the process is still stopped".into(),
            )),
        }
    }

    fn terminate(
        &self,
        instance: &Instance,
        _termination: i64,
    ) -> Result<KillOutcome, ProviderError> {
        let Some((target, pid, start)) = self.target(instance)? else {
            return Ok(KillOutcome::AlreadyGone);
        };
        let started = Instant::now();
        let signal_error = |sig: &str, e: rustix::io::Errno| ProviderError::Action {
            provider: self.name.clone(),
            instance_id: instance.id.to_string(),
            message: format!("sending {sig} failed: {e}"),
        };
        match kill_process(target, Signal::TERM) {
            Ok(()) => {}
            Err(rustix::io::Errno::SRCH) => return Ok(KillOutcome::AlreadyGone),
            Err(e) => return Err(signal_error("SIGTERM", e)),
        }
        if wait_for_death(pid, start, self.config.grace_period) {
            return Ok(KillOutcome::Killed {
                detail: format!("SIGTERM; exited after {} ms", started.elapsed().as_millis()),
            });
        }
        match kill_process(target, Signal::KILL) {
            Ok(()) | Err(rustix::io::Errno::SRCH) => {}
            Err(e) => return Err(signal_error("SIGKILL", e)),
        }
        if wait_for_death(pid, start, self.config.kill_timeout) {
            return Ok(KillOutcome::Killed {
                detail: format!(
                    "SIGTERM ignored for the {} ms grace period; SIGKILL; dead after {} ms",
                    self.config.grace_period.as_millis(),
                    started.elapsed().as_millis()
                ),
            });
        }
        Err(ProviderError::Action {
            provider: self.name.clone(),
            instance_id: instance.id.to_string(),
            message: format!(
                "still alive {} ms after SIGKILL",
                self.config.kill_timeout.as_millis()
            ),
        })
    }
}

impl ProcessProvider {
    /// The process `instance` names, if it still runs and may be touched: `Ok(None)` when it
    /// is gone (or its pid now belongs to another process); refused for pid 1, this process and
    /// its ancestors, and a process that no longer carries the app (or the selector).
    fn target(&self, instance: &Instance) -> Result<Option<(Pid, i32, u64)>, ProviderError> {
        let (pid, start) = parse_id(&instance.id).ok_or_else(|| {
            self.refuse(instance, "not a process instance id (expected PID@START)")
        })?;
        if pid <= 1 {
            return Err(self.refuse(instance, "pid 1 and below are never touched"));
        }
        if protected_pids().contains(&pid) {
            return Err(self.refuse(
                instance,
                "it is this simian process or one of its ancestors",
            ));
        }
        match Stat::read(pid) {
            Some(stat) if stat.start_ticks == start && !stat.is_dead() => {}
            _ => return Ok(None),
        }
        match self.read(pid, &[]) {
            Some(now) if now.app == instance.app => {}
            _ => {
                return Err(self.refuse(
                    instance,
                    format!(
                        "the process no longer carries {}={} (or no longer matches the selector)",
                        env::APP,
                        instance.app
                    ),
                ));
            }
        }
        let target = Pid::from_raw(pid).ok_or_else(|| self.refuse(instance, "invalid pid"))?;
        Ok(Some((target, pid, start)))
    }
}

/// Waits until the process `pid` (started at `start`) is stopped (`want_stopped`) or running
/// again; `Some(true)` when it is, `Some(false)` on timeout, `None` when it is gone.
fn wait_for_stop(pid: i32, start: u64, want_stopped: bool, limit: Duration) -> Option<bool> {
    let deadline = Instant::now() + limit;
    loop {
        match Stat::read(pid) {
            Some(s) if s.start_ticks == start && !s.is_dead() => {
                if s.is_stopped() == want_stopped {
                    return Some(true);
                }
            }
            _ => return None,
        }
        if Instant::now() >= deadline {
            return Some(false);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn parse_id(id: &str) -> Option<(i32, u64)> {
    let (pid, start) = id.split_once('@')?;
    Some((pid.parse().ok()?, start.parse().ok()?))
}

/// True once `pid` (started at `start`) is dead: gone, a zombie, or replaced by another.
fn wait_for_death(pid: i32, start: u64, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        match Stat::read(pid) {
            Some(s) if s.start_ticks == start && !s.is_dead() => {}
            _ => return true,
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// This process and every ancestor up to pid 1.
fn protected_pids() -> Vec<i32> {
    let mut out = vec![1, getpid().as_raw_nonzero().get()];
    let mut pid = out[1];
    for _ in 0..4096 {
        match Stat::read(pid) {
            Some(s) if s.ppid > 1 && !out.contains(&s.ppid) => {
                out.push(s.ppid);
                pid = s.ppid;
            }
            _ => break,
        }
    }
    out
}

fn environ(pid: i32) -> Option<BTreeMap<String, String>> {
    let raw = fs::read(format!("/proc/{pid}/environ")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter_map(|kv| {
                let kv = std::str::from_utf8(kv).ok()?;
                let (k, v) = kv.split_once('=')?;
                k.starts_with("SIMIAN_")
                    .then(|| (k.to_string(), v.to_string()))
            })
            .collect(),
    )
}

/// The fields of `/proc/PID/stat` we need.
#[derive(Debug, Clone, Copy)]
struct Stat {
    state: u8,
    ppid: i32,
    start_ticks: u64,
}

impl Stat {
    fn read(pid: i32) -> Option<Stat> {
        let raw = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        Stat::parse(&raw)
    }

    /// The command name sits in parentheses and may itself hold spaces and parentheses, so
    /// the fields are counted from the last `)`.
    fn parse(raw: &str) -> Option<Stat> {
        let rest = &raw[raw.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        Some(Stat {
            state: *fields.first()?.as_bytes().first()?,
            ppid: fields.get(1)?.parse().ok()?,
            start_ticks: fields.get(19)?.parse().ok()?,
        })
    }

    fn is_dead(&self) -> bool {
        matches!(self.state, b'Z' | b'X' | b'x')
    }

    /// Stopped by a signal (`T`) or under a tracer (`t`).
    fn is_stopped(&self) -> bool {
        matches!(self.state, b'T' | b't')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parsing_survives_odd_command_names() {
        let raw = "4242 (a (weird) name) S 17 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615";
        let s = Stat::parse(raw).unwrap();
        assert_eq!((s.state, s.ppid, s.start_ticks), (b'S', 17, 987654));
        assert!(Stat::parse("garbage").is_none());
    }

    #[test]
    fn ids_parse() {
        assert_eq!(parse_id("12@34"), Some((12, 34)));
        assert_eq!(parse_id("12"), None);
        assert_eq!(parse_id("x@1"), None);
    }

    #[test]
    fn protects_itself_and_init() {
        let p = protected_pids();
        assert!(p.contains(&1));
        assert!(p.contains(&(std::process::id() as i32)));
    }
}
