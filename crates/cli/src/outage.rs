//! The outage checks a config can name: a command or an HTTP endpoint.
//!
//! Both fail safe: anything but a clear `false` within the time limit (an error, a timeout,
//! another status, other output) counts as an outage, and kills are held.

use std::io::Read;
use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use simian_core::{OutageCheck, OutageStatus};

use simian_config::OutageSettings;

/// Builds the configured check.
pub fn build(settings: Option<&OutageSettings>) -> Box<dyn OutageCheck> {
    match settings {
        None => Box::new(simian_core::NoOutageCheck),
        Some(OutageSettings::Command { argv, timeout }) => Box::new(CommandCheck {
            argv: argv.clone(),
            timeout: *timeout,
        }),
        Some(OutageSettings::Http { url, timeout }) => Box::new(HttpCheck {
            url: url.clone(),
            timeout: *timeout,
        }),
    }
}

/// Interprets an answer: `false` is all clear, `true` an outage, anything else an outage.
fn verdict(source: &str, answer: &str) -> OutageStatus {
    match answer.trim() {
        "false" => OutageStatus::Clear,
        "true" => OutageStatus::Outage(format!("{source} reports an outage")),
        other => OutageStatus::Outage(format!(
            "{source} answered {other:?}, not true or false (counted as an outage)"
        )),
    }
}

/// Runs a program that prints `true` or `false`.
pub struct CommandCheck {
    argv: Vec<String>,
    timeout: Duration,
}

impl OutageCheck for CommandCheck {
    fn check(&self) -> OutageStatus {
        let source = format!("outage command {:?}", self.argv[0]);
        // Its own process group, so that whatever it leaves behind can be killed with it.
        let mut child = match Command::new(&self.argv[0])
            .args(&self.argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                return OutageStatus::Outage(format!(
                    "{source} could not start: {e} (counted as an outage)"
                ));
            }
        };
        let mut stdout = child.stdout.take();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut out = String::new();
            if let Some(s) = stdout.as_mut() {
                let _ = s.take(64 * 1024).read_to_string(&mut out);
            }
            let _ = tx.send(out);
        });
        let out = rx.recv_timeout(self.timeout);
        let status = match out {
            Ok(_) => child.wait().ok(),
            Err(_) => {
                // The group is our child's own, and the child is not reaped yet (a zombie at
                // worst), so its id cannot have been reused: safe to kill the whole group,
                // including any background process still holding its output.
                kill_group(&child);
                let _ = child.wait();
                return OutageStatus::Outage(format!(
                    "{source} did not answer within {:?} (counted as an outage)",
                    self.timeout
                ));
            }
        };
        match (status, out) {
            (Some(s), Ok(out)) if s.success() => verdict(&source, &out),
            (s, _) => OutageStatus::Outage(format!(
                "{source} failed ({}) (counted as an outage)",
                s.map_or("no status".into(), |s| s.to_string())
            )),
        }
    }
}

/// Sends SIGKILL to the process group `child` leads (it was spawned with `process_group(0)`).
fn kill_group(child: &std::process::Child) {
    let Some(pid) = i32::try_from(child.id())
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return;
    };
    if let Err(e) = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL) {
        tracing::debug!(error = %e, "the outage command's process group was already gone");
    }
}

/// GETs a URL that answers 200 with `true` or `false`.
pub struct HttpCheck {
    url: String,
    timeout: Duration,
}

impl OutageCheck for HttpCheck {
    fn check(&self) -> OutageStatus {
        let source = format!("outage endpoint {}", self.url);
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(self.timeout))
            .build()
            .new_agent();
        match agent.get(&self.url).call() {
            Ok(mut resp) if resp.status() == 200 => match resp.body_mut().read_to_string() {
                Ok(body) => verdict(&source, &body),
                Err(e) => OutageStatus::Outage(format!(
                    "{source}: cannot read the body: {e} (counted as an outage)"
                )),
            },
            Ok(resp) => OutageStatus::Outage(format!(
                "{source} answered status {} (counted as an outage)",
                resp.status()
            )),
            Err(e) => OutageStatus::Outage(format!("{source}: {e} (counted as an outage)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(script: &str, timeout_ms: u64) -> OutageStatus {
        CommandCheck {
            argv: vec!["sh".into(), "-c".into(), script.into()],
            timeout: Duration::from_millis(timeout_ms),
        }
        .check()
    }

    #[test]
    fn commands_fail_safe() {
        assert_eq!(cmd("echo false", 5000), OutageStatus::Clear);
        assert!(matches!(cmd("echo true", 5000), OutageStatus::Outage(_)));
        assert!(matches!(cmd("echo maybe", 5000), OutageStatus::Outage(m) if m.contains("maybe")));
        assert!(matches!(
            cmd("echo false; exit 3", 5000),
            OutageStatus::Outage(_)
        ));
        assert!(
            matches!(cmd("exec sleep 5", 200), OutageStatus::Outage(m) if m.contains("did not answer"))
        );
        let missing = CommandCheck {
            argv: vec!["/nonexistent/is-outage".into()],
            timeout: Duration::from_secs(1),
        };
        assert!(
            matches!(missing.check(), OutageStatus::Outage(m) if m.contains("could not start"))
        );
    }

    /// A command that answers but leaves a background child holding its output: counted as an
    /// outage (it never finished answering), and the child dies with it.
    #[test]
    fn a_command_s_background_children_die_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("child.pid");
        let script = format!("sleep 30 & echo $! > {}; echo false", pidfile.display());
        assert!(
            matches!(cmd(&script, 500), OutageStatus::Outage(m) if m.contains("did not answer"))
        );
        let pid: u32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // Dead: gone, or a zombie waiting for whoever adopted it.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.chars().next()))
                .flatten();
            if matches!(state, None | Some('Z') | Some('X')) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the background child {pid} survived (state {state:?})"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn http_fails_safe_when_nothing_listens() {
        // Bind then drop a loopback port, so nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let check = HttpCheck {
            url: format!("http://127.0.0.1:{port}/outage"),
            timeout: Duration::from_secs(2),
        };
        assert!(matches!(check.check(), OutageStatus::Outage(_)));
    }
}
