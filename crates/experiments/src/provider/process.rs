//! The `process` provider: runs a program, its output is `{status, stdout, stderr}`.
//!
//! As the reference: `path` is looked up in `PATH`; `arguments` as a list are passed as they
//! are (each value written as Python would, empty ones dropped), as a string they go through
//! the shell after the path; a non-zero exit is an output, not a failure; only the `timeout`
//! fails the activity. Simian additions: `cwd`, the working directory; the program runs in a
//! process group of its own, which is killed whole on a timeout or when the run is stopped.

use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Context, Failure, seconds};
use crate::pyish;

/// `path` resolved as Python's `shutil.which` does: a path with a `/` as it is (after `~`
/// expansion), a bare name through `PATH`.
pub fn which(path: &str) -> Option<PathBuf> {
    let expanded = match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    };
    if path.contains('/') {
        return expanded.is_file().then_some(expanded);
    }
    let dirs = std::env::var_os("PATH")?;
    std::env::split_paths(&dirs)
        .map(|d| d.join(path))
        .find(|p| {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Runs the process.
pub fn run(_activity: &Value, provider: &Value, cx: &Context<'_>) -> Result<Value, Failure> {
    let raw = provider.get("path").map(pyish::to_str).unwrap_or_default();
    let Some(path) = which(&raw) else {
        return Err(Failure::Failed(format!("path '{raw}' cannot be found")));
    };
    let mut arguments = provider.get("arguments").cloned().unwrap_or(Value::Null);
    if pyish::truthy(&arguments) && !cx.scope.is_empty() {
        arguments = cx.scope.substitute(&arguments);
    }
    let mut command = match &arguments {
        Value::String(s) if !s.is_empty() => {
            let mut c = Command::new("/bin/sh");
            c.arg("-c").arg(format!("{} {s}", path.display()));
            c
        }
        Value::Array(items) => {
            let mut c = Command::new(&path);
            c.args(
                items
                    .iter()
                    .filter(|v| !matches!(v, Value::Null) && v.as_str() != Some(""))
                    .map(pyish::to_str),
            );
            c
        }
        Value::Object(map) => {
            let mut c = Command::new(&path);
            for (k, v) in map {
                c.arg(k);
                if !v.is_null() && v.as_str() != Some("") {
                    c.arg(pyish::to_str(v));
                }
            }
            c
        }
        _ => Command::new(&path),
    };
    if let Some(dir) = provider.get("cwd").and_then(Value::as_str) {
        command.current_dir(dir);
    }
    command
        .envs(cx.vars.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = command
        .spawn()
        .map_err(|e| Failure::Failed(format!("cannot start {}: {e}", path.display())))?;
    let pid = child.id();
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    // The pipes close when the program exits (or hands them on): that, not a poll, is what
    // wakes this thread, so a short command costs its own run time and no more.
    let (closed, pipes) = mpsc::channel();
    let (tx_out, tx_err) = (closed.clone(), closed);
    let stdout = std::thread::spawn(move || {
        let text = drain(out.as_mut());
        let _ = tx_out.send(());
        text
    });
    let stderr = std::thread::spawn(move || {
        let text = drain(err.as_mut());
        let _ = tx_err.send(());
        text
    });
    let deadline = seconds(provider.get("timeout")).map(|t| Instant::now() + t);
    let mut open_pipes = 2;
    let mut nap = Duration::from_micros(100);
    let status = loop {
        if open_pipes > 0 {
            match pipes.recv_timeout(Duration::from_millis(20)) {
                Ok(()) => open_pipes -= 1,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => open_pipes = 0,
            }
        }
        if open_pipes == 0 {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) => {
                    // The pipes are closed but the program runs on (it handed them on).
                    cx.interrupt.sleep(nap);
                    nap = (nap * 2).min(Duration::from_millis(10));
                }
                Err(e) => {
                    return Err(Failure::Failed(format!(
                        "waiting for {}: {e}",
                        path.display()
                    )));
                }
            }
        }
        let timed_out = deadline.is_some_and(|d| Instant::now() >= d);
        if timed_out || cx.interrupt.is_tripped() {
            kill_group(pid);
            let _ = child.wait();
            let _ = stdout.join();
            let _ = stderr.join();
            return Err(if timed_out {
                Failure::Failed("process activity took too long to complete".to_string())
            } else {
                Failure::Interrupted
            });
        }
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    let code = status
        .code()
        .unwrap_or_else(|| -status.signal().unwrap_or(0));
    Ok(json!({"status": code, "stdout": stdout, "stderr": stderr}))
}

fn drain(pipe: Option<&mut impl std::io::Read>) -> String {
    let mut bytes = Vec::new();
    if let Some(p) = pipe {
        let _ = p.read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// SIGKILL to the process group this provider made for the program (never anything else).
fn kill_group(pid: u32) {
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}
