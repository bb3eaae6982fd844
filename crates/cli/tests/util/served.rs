//! A running `simian serve` for the tests, with a JSON client.
#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Sandbox, free_port};

/// A running `simian serve`, stopped (SIGTERM) and reaped however the test ends.
pub struct Served {
    pub child: std::process::Child,
    pub base: String,
    pub agent: ureq::Agent,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn serve(s: &Sandbox, token: Option<&str>, extra: &[&str]) -> Served {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut cmd = s.command(&[&["serve", "--listen", &listen], extra].concat());
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    match token {
        Some(t) => cmd.env("SIMIAN_API_TOKEN", t),
        None => cmd.env_remove("SIMIAN_API_TOKEN"),
    };
    let served = Served {
        child: cmd.spawn().unwrap(),
        base: format!("http://{listen}"),
        agent: ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .new_agent(),
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while served.get("/readyz").0 != 200 {
        assert!(Instant::now() < deadline, "simian serve never became ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    served
}

impl Served {
    pub fn get(&self, path: &str) -> (u16, Value) {
        match self.agent.get(&format!("{}{path}", self.base)).call() {
            Ok(mut r) => (
                r.status().as_u16(),
                serde_json::from_str(&r.body_mut().read_to_string().unwrap_or_default())
                    .unwrap_or(Value::Null),
            ),
            Err(_) => (0, Value::Null),
        }
    }

    pub fn send(&self, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let mut req = match method {
            "POST" => self.agent.post(&url),
            _ => self.agent.put(&url),
        }
        .header("content-type", "application/json");
        if let Some(t) = token {
            req = req.header("authorization", &format!("Bearer {t}"));
        }
        let mut r = req.send(body).unwrap();
        (
            r.status().as_u16(),
            serde_json::from_str(&r.body_mut().read_to_string().unwrap_or_default())
                .unwrap_or(Value::Null),
        )
    }
}
