//! The outage checks a config can name: a command or an HTTP endpoint.
//!
//! Both fail safe: anything but a clear `false` within the time limit (an error, a timeout,
//! another status, other output) counts as an outage, and kills are held.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use simian_core::{OutageCheck, OutageStatus};

use crate::config::OutageSettings;

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
        let mut child = match Command::new(&self.argv[0])
            .args(&self.argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
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
                // Our own child: safe to kill.
                let _ = child.kill();
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
