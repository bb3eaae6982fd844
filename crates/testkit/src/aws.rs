//! The AWS API emulator of the tests: moto's server from PyPI (`moto[server]`), started on
//! 127.0.0.1 by [`Moto::start`] and stopped when dropped, with a fixture builder that
//! creates and changes Auto Scaling groups through boto3 (`aws/moto_fleet.py`). Each test
//! starts its own server, so tests never see each other's groups.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;

use serde_json::{Value, json};

/// The environment a process needs to talk to the emulator: fake credentials, no shared
/// config or credentials file of the machine's, and the instance metadata service switched
/// off, so that nothing is ever asked of 169.254.169.254.
pub const ENV: [(&str, &str); 5] = [
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
    ("AWS_CONFIG_FILE", "/dev/null"),
    ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
];

/// One instance of a group, as the emulator lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// `i-...`.
    pub id: String,
    /// Availability Zone.
    pub zone: String,
    /// `InService`, `Standby`, ...
    pub lifecycle: String,
    /// `Healthy` or `Unhealthy`.
    pub health: String,
}

/// A running emulator.
pub struct Moto {
    child: Child,
    port: u16,
    pipe: Mutex<(ChildStdin, BufReader<ChildStdout>)>,
}

impl Moto {
    /// Starts the emulator.
    ///
    /// # Panics
    /// Without python3 and moto (`scripts/test.sh` installs `moto[server]`), or if it does
    /// not start.
    pub fn start() -> Moto {
        crate::require_python_modules(&["moto", "boto3", "flask"], "pip install 'moto[server]'");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("aws/moto_fleet.py");
        let mut child = Command::new("python3")
            .arg(&script)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .envs(ENV)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs the emulator");
        let stdin = child.stdin.take().expect("piped stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let port = crate::ready_port(&mut stdout, "AWS API emulator");
        Moto {
            child,
            port,
            pipe: Mutex::new((stdin, stdout)),
        }
    }

    /// The endpoint URL of every AWS API the emulator serves.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Runs one fixture command; returns its answer.
    ///
    /// # Panics
    /// When the command fails.
    pub fn command(&self, command: Value) -> Value {
        let mut pipe = self.pipe.lock().unwrap_or_else(|e| e.into_inner());
        writeln!(pipe.0, "{command}").expect("the fixture builder reads");
        pipe.0.flush().expect("the fixture builder reads");
        let mut line = String::new();
        pipe.1
            .read_line(&mut line)
            .expect("the fixture builder answers");
        let answer: Value = serde_json::from_str(&line)
            .unwrap_or_else(|_| panic!("the fixture builder answered {line:?}"));
        match answer.get("error") {
            Some(e) => panic!("fixture command {command} failed: {e}"),
            None => answer["ok"].clone(),
        }
    }

    /// Creates group `name` in `region` with `tags` unless it exists, then launches
    /// `per_zone` instances in each named zone (`us-east-1a`, `-b`, `-c`) and attaches them
    /// (the group's desired capacity grows by as many); returns those instances.
    pub fn group(
        &self,
        region: &str,
        name: &str,
        per_zone: &[(&str, usize)],
        tags: &[(&str, &str)],
    ) -> Vec<Member> {
        let per_zone: serde_json::Map<String, Value> = per_zone
            .iter()
            .map(|(z, n)| (z.to_string(), json!(n)))
            .collect();
        let tags: serde_json::Map<String, Value> = tags
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        members(
            &self.command(json!({"op": "group", "region": region, "name": name,
            "per_zone": per_zone, "tags": tags})),
        )
    }

    /// Creates `count` groups `PREFIX-NNNN` of `size` instances each in `region`.
    pub fn many(
        &self,
        region: &str,
        prefix: &str,
        count: usize,
        size: usize,
        tags: &[(&str, &str)],
    ) {
        let tags: serde_json::Map<String, Value> = tags
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        self.command(json!({"op": "many", "region": region, "prefix": prefix,
            "count": count, "size": size, "tags": tags}));
    }

    /// The instances of `group` now; `None` when the group does not exist.
    pub fn members(&self, region: &str, group: &str) -> Option<Vec<Member>> {
        let answer = self.command(json!({"op": "members", "region": region, "group": group}));
        (!answer.is_null()).then(|| members(&answer))
    }

    /// Sets an instance's health (`Healthy`, `Unhealthy`).
    pub fn health(&self, region: &str, id: &str, status: &str) {
        self.command(json!({"op": "health", "region": region, "id": id, "status": status}));
    }

    /// Puts an instance of `group` in Standby.
    pub fn standby(&self, region: &str, group: &str, id: &str) {
        self.command(json!({"op": "standby", "region": region, "group": group, "id": id}));
    }

    /// Suspends scaling processes (`Terminate`, `Launch`, ...) of `group`.
    pub fn suspend(&self, region: &str, group: &str, processes: &[&str]) {
        self.command(
            json!({"op": "suspend", "region": region, "group": group, "processes": processes}),
        );
    }

    /// Detaches an instance from `group` (it keeps running, outside any group).
    pub fn detach(&self, region: &str, group: &str, id: &str) {
        self.command(json!({"op": "detach", "region": region, "group": group, "id": id}));
    }

    /// Terminates an instance through EC2, behind its group's back (the group replaces it).
    pub fn ec2_terminate(&self, region: &str, id: &str) {
        self.command(json!({"op": "ec2_terminate", "region": region, "id": id}));
    }

    /// Sets a tag of `group`.
    pub fn tag(&self, region: &str, group: &str, key: &str, value: &str) {
        self.command(
            json!({"op": "tag", "region": region, "group": group, "key": key, "value": value}),
        );
    }
}

fn members(answer: &Value) -> Vec<Member> {
    answer
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| Member {
                    id: m["id"].as_str().unwrap_or_default().to_string(),
                    zone: m["zone"].as_str().unwrap_or_default().to_string(),
                    lifecycle: m["lifecycle"].as_str().unwrap_or_default().to_string(),
                    health: m["health"].as_str().unwrap_or_default().to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
