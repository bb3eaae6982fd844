//! `simian run`, `validate` and `report` against the reference runner, by difference.
//!
//! Every file in `tests/experiments/valid` is run by Simian and by Chaos Toolkit (chaostoolkit
//! 1.19 with chaostoolkit-lib 1.44, from PyPI) against the same local HTTP service and the
//! same commands, under every strategy and dry mode: the journals, with times, durations and
//! platform fields taken out, must be equal, and so must the exit codes. Every file in
//! `tests/experiments/invalid` must be refused by both, with the reference's message.
//! Ignored by a plain `cargo test` (the reference runner is a Python package);
//! `scripts/test.sh` installs it and runs these.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const NEEDS_CHAOS: &str = "needs the reference runner: pip install chaostoolkit==1.19.0 chaostoolkit-lib==1.44.0 jsonpath2 (scripts/test.sh installs it; then pass --include-ignored)";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/experiments")
}

/// The reference runner's `chaos` command (or `python3 -m chaostoolkit` when pip put the
/// script outside PATH); panics with the way to install it.
fn chaos() -> Command {
    let in_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("chaos"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .find(|p| p.is_file());
    if let Some(path) = in_path {
        return Command::new(path);
    }
    let module = Command::new("python3")
        .args(["-c", "import chaostoolkit"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        module,
        "no `chaos` command in PATH and no chaostoolkit module: {NEEDS_CHAOS}"
    );
    let mut c = Command::new("python3");
    c.args(["-m", "chaostoolkit"]);
    c
}

/// A small HTTP service both runners talk to. `/toggle` answers 200 until `POST /break`,
/// 503 after it, until `POST /repair`.
struct Service {
    base: String,
    broken: Arc<AtomicBool>,
}

impl Service {
    fn start() -> Service {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let broken = Arc::new(AtomicBool::new(false));
        let state = broken.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = state.clone();
                std::thread::spawn(move || {
                    let _ = answer(stream, &state);
                });
            }
        });
        Service { base, broken }
    }

    fn reset(&self) {
        self.broken.store(false, Ordering::SeqCst);
    }
}

fn answer(stream: TcpStream, broken: &AtomicBool) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let mut length = 0;
    let mut content_type = String::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = v.trim().parse().unwrap_or(0),
                "content-type" => content_type = v.trim().to_string(),
                _ => {}
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let body = String::from_utf8_lossy(&body).into_owned();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let (status, ctype, text) = match path {
        "/health" => (
            200,
            "application/json",
            json!({"status": "ok", "items": [1, 2, 3]}).to_string(),
        ),
        "/text" => (200, "text/plain; charset=utf-8", "all good\n".to_string()),
        "/slow" => {
            std::thread::sleep(Duration::from_secs(2));
            (200, "text/plain", "late\n".to_string())
        }
        "/toggle" if broken.load(Ordering::SeqCst) => (503, "text/plain", "broken\n".to_string()),
        "/toggle" => (200, "text/plain", "fine\n".to_string()),
        "/break" => {
            broken.store(true, Ordering::SeqCst);
            (200, "text/plain", "broke it\n".to_string())
        }
        "/repair" => {
            broken.store(false, Ordering::SeqCst);
            (200, "text/plain", "repaired\n".to_string())
        }
        "/echo" => {
            let json_body = if content_type == "application/json" {
                serde_json::from_str(&body).unwrap_or(Value::Null)
            } else {
                Value::Null
            };
            let form = if content_type == "application/x-www-form-urlencoded" {
                pairs(&body)
            } else {
                Vec::new()
            };
            let echo = json!({
                "method": method,
                "query": pairs(query),
                "form": form,
                "json": json_body,
                "content_type": content_type,
            });
            (200, "application/json", echo.to_string())
        }
        // Prometheus's instant-query API, answered by a stand-in (no Prometheus server can be
        // installed here): the error rate is 0, or 10 once the service is broken.
        "/api/v1/query" => {
            let v = if broken.load(Ordering::SeqCst) {
                "10"
            } else {
                "0"
            };
            let doc = json!({"status": "success", "data": {"resultType": "vector",
                "result": [{"metric": {"job": "toggle"}, "value": [1.0, v]}]}});
            (200, "application/json", doc.to_string())
        }
        p if p.starts_with("/status/") => (
            p[8..].parse().unwrap_or(500),
            "text/plain",
            format!("status {}\n", &p[8..]),
        ),
        _ => (404, "text/plain", "no such page\n".to_string()),
    };
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    )?;
    stream.flush()
}

/// `a=1&b=x+y` as sorted, decoded pairs (the two clients order and encode differently).
fn pairs(s: &str) -> Vec<(String, String)> {
    let decode = simian_core::escape::decode_query;
    let mut v: Vec<(String, String)> = s
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect();
    v.sort();
    v
}

/// One run of one runner: its exit code and its journal.
struct Ran {
    code: i32,
    journal: Value,
    output: String,
}

fn simian(dir: &Path, file: &Path, args: &[&str], base: &str) -> Ran {
    let journal = dir.join("simian-journal.json");
    let out = Command::new(env!("CARGO_BIN_EXE_simian"))
        .current_dir(dir)
        .arg("run")
        .arg(file)
        .arg("--journal-path")
        .arg(&journal)
        .args(["--var", &format!("base={base}")])
        .args(args)
        .env("SIMIAN_DIFF_TOKEN", "tok-123")
        .output()
        .unwrap();
    ran(out, &journal)
}

fn reference(dir: &Path, file: &Path, args: &[&str], base: &str) -> Ran {
    let journal = dir.join("chaos-journal.json");
    let out = chaos()
        .current_dir(dir)
        .args(["--no-version-check", "--settings"])
        .arg(dir.join("no-settings.yaml"))
        .arg("--log-file")
        .arg(dir.join("chaostoolkit.log"))
        .arg("run")
        .arg("--journal-path")
        .arg(&journal)
        .args(["--var", &format!("base={base}")])
        .args(args)
        .arg(file)
        .env("SIMIAN_DIFF_TOKEN", "tok-123")
        .output()
        .unwrap();
    ran(out, &journal)
}

fn ran(out: Output, journal: &Path) -> Ran {
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let journal = std::fs::read_to_string(journal)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    Ran {
        code: out.status.code().unwrap_or(-1),
        journal,
        output,
    }
}

/// The journal without what legitimately differs between two runs: times, durations, the
/// platform, the runner's own fields, tracebacks (their last line stays), and how many times
/// the hypothesis ran during the method (a matter of timing).
fn normalise(v: &Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| {
                    !matches!(
                        k.as_str(),
                        "start"
                            | "end"
                            | "duration"
                            | "chaoslib-version"
                            | "platform"
                            | "node"
                            | "simian"
                    )
                })
                .map(|(k, v)| {
                    let v = match (k.as_str(), v) {
                        ("exception", Value::Array(lines)) => {
                            let last = lines
                                .last()
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .trim();
                            // The connection error's own words are the HTTP library's.
                            let last = match last.find("failed to connect to ") {
                                Some(at) => {
                                    let rest = &last[at + 21..];
                                    let url = rest.split(": ").next().unwrap_or_default();
                                    format!("{}failed to connect to {url}", &last[..at])
                                }
                                None => last.to_string(),
                            };
                            json!(last)
                        }
                        ("during", Value::Array(states)) => {
                            json!(
                                states
                                    .first()
                                    .map(normalise)
                                    .into_iter()
                                    .collect::<Vec<_>>()
                            )
                        }
                        _ => normalise(v),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(normalise).collect()),
        other => other.clone(),
    }
}

/// Runs `file` under both runners with `args` and compares.
fn differ(service: &Service, file: &str, args: &[&str]) -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = fixtures().join("valid").join(file);
    service.reset();
    let ours = simian(dir.path(), &path, args, &service.base);
    service.reset();
    let theirs = reference(dir.path(), &path, args, &service.base);
    service.reset();
    let what = format!("{file} {}", args.join(" "));
    if theirs.journal.is_null() {
        return Some(format!(
            "{what}: the reference wrote no journal:\n{}",
            theirs.output
        ));
    }
    if ours.journal.is_null() {
        return Some(format!("{what}: simian wrote no journal:\n{}", ours.output));
    }
    let (a, b) = (normalise(&ours.journal), normalise(&theirs.journal));
    if a != b {
        return Some(format!(
            "{what}: the journals differ\n--- simian\n{}\n--- reference\n{}",
            serde_json::to_string_pretty(&a).unwrap(),
            serde_json::to_string_pretty(&b).unwrap()
        ));
    }
    if ours.code != theirs.code {
        return Some(format!(
            "{what}: simian exited {}, the reference {}",
            ours.code, theirs.code
        ));
    }
    None
}

fn cases() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut cases = vec![
        ("http.json", vec![]),
        ("process.yaml", vec![]),
        ("deviates.json", vec![]),
        ("before-missed.json", vec![]),
        ("before-fails.json", vec![]),
        ("runtime.json", vec![]),
        (
            "runtime.json",
            vec![
                "--rollback-strategy",
                "never",
                "--hypothesis-strategy",
                "default",
            ],
        ),
    ];
    for strategy in ["default", "always", "never", "deviated"] {
        cases.push(("deviates.json", vec!["--rollback-strategy", strategy]));
        cases.push(("before-fails.json", vec!["--rollback-strategy", strategy]));
    }
    for strategy in [
        "before-method-only",
        "after-method-only",
        "during-method-only",
        "continuously",
    ] {
        cases.push((
            "deviates.json",
            vec![
                "--hypothesis-strategy",
                strategy,
                "--hypothesis-frequency",
                "0.1",
            ],
        ));
    }
    cases.push((
        "deviates.json",
        vec![
            "--hypothesis-strategy",
            "during-method-only",
            "--hypothesis-frequency",
            "0.1",
            "--fail-fast",
        ],
    ));
    for dry in ["probes", "actions", "activities", "pause"] {
        cases.push(("process.yaml", vec!["--dry", dry]));
        cases.push(("http.json", vec!["--dry", dry]));
    }
    cases
}

#[test]
#[ignore = "needs the reference runner (chaostoolkit from PyPI): scripts/test.sh installs it"]
fn journals_and_exit_codes_equal_the_reference_runners() {
    let service = Service::start();
    let mut failures = Vec::new();
    let all = cases();
    for (file, args) in &all {
        if let Some(f) = differ(&service, file, args) {
            failures.push(f);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} runs differ:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n\n")
    );
}

#[test]
#[ignore = "needs the reference runner (chaostoolkit from PyPI): scripts/test.sh installs it"]
fn variables_from_the_command_line_and_files_equal_the_reference_runners() {
    let service = Service::start();
    let varfiles = fixtures().join("varfiles");
    let json_file = varfiles.join("values.json");
    let env_file = varfiles.join("values.env");
    let json_file = json_file.to_str().unwrap();
    let env_file = env_file.to_str().unwrap();
    let runs: Vec<Vec<&str>> = vec![
        vec!["--var-file", env_file],
        vec!["--var-file", env_file, "--var-file", json_file],
        vec![
            "--var-file",
            env_file,
            "--var",
            "greeting=hi",
            "--var",
            "number:int=42",
        ],
        vec![
            "--var-file",
            env_file,
            "--var",
            "number:float=2.5",
            "--var",
            "greeting:json=[1, 2]",
        ],
    ];
    let failures: Vec<String> = runs
        .iter()
        .filter_map(|args| differ(&service, "vars.yml", args))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
#[ignore = "needs the reference runner (chaostoolkit from PyPI): scripts/test.sh installs it"]
fn invalid_files_are_refused_with_the_reference_runners_words() {
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures().join("invalid"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let ours = Command::new(env!("CARGO_BIN_EXE_simian"))
            .arg("validate")
            .arg(file)
            .output()
            .unwrap();
        let our_text = String::from_utf8_lossy(&ours.stderr).to_string();
        if ours.status.code() != Some(2) {
            failures.push(format!(
                "{name}: simian validate exited {:?}, not 2: {our_text}",
                ours.status.code()
            ));
            continue;
        }
        if !our_text.contains(&name) {
            failures.push(format!(
                "{name}: the message does not name the file: {our_text}"
            ));
        }
        let theirs = chaos()
            .args(["--no-version-check", "--settings"])
            .arg(dir.path().join("none.yaml"))
            .arg("--log-file")
            .arg(dir.path().join("chaostoolkit.log"))
            .arg("validate")
            .arg(file)
            .output()
            .unwrap();
        let their_text = String::from_utf8_lossy(&theirs.stdout).to_string()
            + &String::from_utf8_lossy(&theirs.stderr);
        if name == "python-provider.json" {
            // The reference runs Python (os.path.exists is valid there); Simian refuses it
            // and names the module and function.
            assert!(our_text.contains("os.path.exists"), "{our_text}");
            continue;
        }
        if name.starts_with("malformed") {
            // Both refuse; Simian says where.
            if theirs.status.success() {
                failures.push(format!("{name}: the reference accepted it"));
            }
            if !our_text.contains(&format!("{name}:5:")) {
                failures.push(format!("{name}: no line and column in {our_text}"));
            }
            continue;
        }
        if theirs.status.success() {
            failures.push(format!("{name}: the reference accepted it: {their_text}"));
            continue;
        }
        // The reference's message (without the regex engine's own words) is in ours.
        let their_message = their_text
            .lines()
            .filter_map(|l| l.split_once("ERROR] ").map(|(_, m)| m.trim().to_string()))
            .next_back()
            .unwrap_or_default();
        let their_message = their_message
            .split(" seems invalid")
            .next()
            .unwrap_or_default()
            .to_string();
        if their_message.is_empty() || !our_text.contains(their_message.trim()) {
            failures.push(format!(
                "{name}: the reference says {their_message:?}; simian says {our_text:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A long action under a stop condition; `trigger` makes the condition trip a second in.
/// Returns the journal, the exit code, and when the trigger was pulled.
fn run_until_stopped(
    service: &Service,
    condition: Value,
    trigger: &dyn Fn(u32),
) -> (Value, i32, jiff::Timestamp, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stop.json");
    let experiment = json!({
        "title": "stopped",
        "description": "a long action under a stop condition",
        "configuration": {"base": service.base},
        "extensions": [{"name": "simian", "stop_conditions": [condition]}],
        "steady-state-hypothesis": {"title": "up", "probes": [
            {"type": "probe", "name": "toggle", "tolerance": 200, "provider": {"type": "http", "url": "${base}/toggle"}}
        ]},
        "method": [{"type": "action", "name": "long", "provider": {"type": "process", "path": "sleep", "arguments": ["30"]}}],
        "rollbacks": [{"type": "action", "name": "repair", "provider": {"type": "http", "url": "${base}/repair", "method": "POST"}}]
    });
    std::fs::write(&file, experiment.to_string()).unwrap();
    let journal = dir.path().join("journal.json");
    let report = dir.path().join("report.html");
    service.reset();
    let mut child = Command::new(env!("CARGO_BIN_EXE_simian"))
        .current_dir(dir.path())
        .arg("run")
        .arg(&file)
        .arg("--journal-path")
        .arg(&journal)
        .arg("--report")
        .arg(&report)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    let pulled = jiff::Timestamp::now();
    trigger(child.id());
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the run did not stop within 15 s of the trigger");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let journal: Value = serde_json::from_str(&std::fs::read_to_string(&journal).unwrap()).unwrap();
    let page = std::fs::read_to_string(&report).unwrap();
    assert!(page.contains("Stopped"), "the report leads with the stop");
    (journal, status.code().unwrap_or(-1), pulled, page)
}

/// How long after `pulled` the long action was cut short.
fn halted_after(journal: &Value, pulled: jiff::Timestamp) -> f64 {
    let end: jiff::Timestamp = journal["run"][0]["end"].as_str().unwrap().parse().unwrap();
    end.duration_since(pulled).as_secs_f64()
}

fn assert_stopped_and_rolled_back(journal: &Value, code: i32, by: &str, name: &str) {
    assert_eq!(code, 1, "a stopped run exits 1");
    assert_eq!(journal["status"], "interrupted");
    assert_eq!(journal["simian"]["stopped"]["by"], by);
    assert_eq!(journal["simian"]["stopped"]["name"], name);
    assert_eq!(
        journal["run"][0]["status"], "failed",
        "the long action was cut short"
    );
    assert!(
        journal["steady_states"]["after"].is_null(),
        "no hypothesis after a stop"
    );
    assert_eq!(journal["rollbacks"][0]["activity"]["name"], "repair");
    assert_eq!(
        journal["rollbacks"][0]["status"], "succeeded",
        "the rollbacks ran"
    );
}

#[test]
fn an_http_stop_condition_halts_a_long_action_within_its_frequency_plus_a_second() {
    let service = Service::start();
    let condition = json!({"name": "toggle-up", "type": "http", "url": "${base}/toggle",
        "expected_status": 200, "frequency": 0.5, "failures": 2});
    let broken = service.broken.clone();
    let (journal, code, pulled, _) = run_until_stopped(&service, condition, &|_| {
        broken.store(true, Ordering::SeqCst)
    });
    assert_stopped_and_rolled_back(&journal, code, "stop_condition", "toggle-up");
    let halted = halted_after(&journal, pulled);
    // Two failures in a row at 0.5 s: the second check is at most 1 s after the break.
    assert!(
        halted < 1.0 + 1.0,
        "halted {halted:.2} s after the service broke"
    );
    assert!(
        !service.broken.load(Ordering::SeqCst),
        "the rollback repaired the service"
    );
}

#[test]
fn a_prometheus_stop_condition_halts_the_run_when_the_query_crosses_its_threshold() {
    let service = Service::start();
    let condition = json!({"name": "error-rate", "type": "prometheus", "url": "${base}",
        "query": "sum(rate(errors_total[1m]))", "max": 5, "frequency": 0.5});
    let broken = service.broken.clone();
    let (journal, code, pulled, _) = run_until_stopped(&service, condition, &|_| {
        broken.store(true, Ordering::SeqCst)
    });
    assert_stopped_and_rolled_back(&journal, code, "stop_condition", "error-rate");
    assert!(
        journal["simian"]["stopped"]["reason"]
            .as_str()
            .unwrap()
            .contains("= 10"),
        "{}",
        journal["simian"]["stopped"]
    );
    assert!(halted_after(&journal, pulled) < 0.5 + 1.0);
}

#[test]
fn a_command_stop_condition_halts_the_run_when_the_command_fails() {
    let service = Service::start();
    let flag = tempfile::tempdir().unwrap();
    let path = flag.path().join("incident");
    let condition = json!({"name": "no-incident", "type": "command",
        "command": ["test", "!", "-e", path.to_str().unwrap()], "frequency": 0.5});
    let (journal, code, pulled, _) = run_until_stopped(&service, condition, &|_| {
        std::fs::write(&path, "on fire").unwrap()
    });
    assert_stopped_and_rolled_back(&journal, code, "stop_condition", "no-incident");
    assert!(halted_after(&journal, pulled) < 0.5 + 1.0);
}

#[test]
fn sigterm_interrupts_the_method_and_the_rollbacks_still_run() {
    let service = Service::start();
    // A condition that never trips: the signal is what stops this run.
    let condition =
        json!({"name": "always-fine", "type": "command", "command": ["true"], "frequency": 5});
    let (journal, code, pulled, _) = run_until_stopped(&service, condition, &|pid| {
        // Only the simian this test started.
        let pid = rustix::process::Pid::from_raw(i32::try_from(pid).unwrap()).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    });
    assert_stopped_and_rolled_back(&journal, code, "signal", "SIGTERM");
    assert!(halted_after(&journal, pulled) < 1.0);
}

/// Checks a report page in Chromium at a desktop and a phone width; screenshots it.
fn check_report(browser: &simian_testkit::browser::Browser, page: &Path, name: &str) -> Vec<Value> {
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("report");
    std::fs::create_dir_all(&shots).unwrap();
    let mut seen = Vec::new();
    for (device, width, height, mobile) in
        [("desktop", 1280, 900, false), ("phone", 390, 844, true)]
    {
        let mut tab = browser.tab(width, height, mobile).unwrap();
        tab.open(&format!("file://{}", page.display())).unwrap();
        let facts = tab
            .eval(
                "({verdict: document.querySelector('#verdict h2').textContent,
                  cls: document.querySelector('#verdict').className,
                  svg: document.querySelectorAll('#timeline svg').length,
                  met: document.querySelectorAll('#timeline circle.met').length,
                  missed: document.querySelectorAll('#timeline circle.missed').length,
                  actions: document.querySelectorAll('#timeline rect.window.action').length,
                  rollbacks: document.querySelectorAll('#timeline rect.window.rollback').length,
                  stop: document.querySelectorAll('#timeline line.stop').length,
                  method_rows: document.querySelectorAll('#method tbody tr').length,
                  rollback_rows: document.querySelectorAll('#rollbacks tbody tr').length,
                  svg_width: document.querySelector('#timeline svg').getBoundingClientRect().width,
                  scroll: document.documentElement.scrollWidth,
                  scripts: document.scripts.length,
                  external: [...document.querySelectorAll('[src],link[href]')].length})",
            )
            .unwrap();
        assert_eq!(facts["svg"], 1, "{name} {device}: one timeline: {facts}");
        assert_eq!(facts["scripts"], 0, "{name}: no script in the page");
        assert_eq!(
            facts["external"], 0,
            "{name}: nothing loaded from elsewhere"
        );
        assert!(
            facts["scroll"].as_u64().unwrap() <= width as u64,
            "{name} {device}: no sideways scrolling: {facts}"
        );
        assert!(
            facts["svg_width"].as_f64().unwrap() > f64::from(width) * 0.7,
            "{name} {device}: the timeline fills the width: {facts}"
        );
        let (w, _) = tab
            .screenshot(&shots.join(format!("{name}-{device}.png")))
            .unwrap();
        assert_eq!(w, width);
        seen.push(facts);
    }
    seen
}

#[test]
#[ignore = "needs Debian's chromium: scripts/test.sh installs it (or install it and pass --include-ignored)"]
fn reports_render_in_chromium_with_the_verdict_the_timeline_and_the_tables() {
    let browser = simian_testkit::browser::Browser::start().unwrap();
    let service = Service::start();
    let dir = tempfile::tempdir().unwrap();

    // A run that deviates, with the hypothesis checked continuously.
    let report = dir.path().join("deviated.html");
    let out = Command::new(env!("CARGO_BIN_EXE_simian"))
        .current_dir(dir.path())
        .arg("run")
        .arg(fixtures().join("valid/deviates.json"))
        .args(["--var", &format!("base={}", service.base)])
        .args([
            "--hypothesis-strategy",
            "continuously",
            "--hypothesis-frequency",
            "0.1",
            "--report",
        ])
        .arg(&report)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for facts in check_report(&browser, &report, "deviated") {
        assert_eq!(facts["verdict"], "The hypothesis deviated");
        assert_eq!(facts["cls"], "verdict bad");
        assert!(facts["met"].as_u64().unwrap() >= 2, "{facts}");
        assert!(facts["missed"].as_u64().unwrap() >= 1, "{facts}");
        assert_eq!(facts["actions"], 1, "{facts}");
        assert_eq!(facts["rollbacks"], 1, "{facts}");
        assert_eq!(facts["stop"], 0);
        assert_eq!(facts["method_rows"], 2);
        assert_eq!(facts["rollback_rows"], 1);
    }

    // A run stopped by a condition: the line where it fired.
    let condition =
        json!({"name": "toggle-up", "type": "http", "url": "${base}/toggle", "frequency": 0.3});
    let broken = service.broken.clone();
    let (_, _, _, page) = run_until_stopped(&service, condition, &|_| {
        broken.store(true, Ordering::SeqCst)
    });
    let stopped = dir.path().join("stopped.html");
    std::fs::write(&stopped, page).unwrap();
    for facts in check_report(&browser, &stopped, "stopped") {
        assert_eq!(facts["verdict"], "Stopped");
        assert_eq!(facts["stop"], 1, "{facts}");
        assert_eq!(facts["rollback_rows"], 1);
    }

    // `simian report` makes the same page from a journal.
    let journal = dir.path().join("journal.json");
    let again = dir.path().join("again.html");
    let out = Command::new(env!("CARGO_BIN_EXE_simian"))
        .current_dir(dir.path())
        .arg("run")
        .arg(fixtures().join("valid/before-missed.json"))
        .args(["--var", &format!("base={}", service.base)])
        .arg("--journal-path")
        .arg(&journal)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let out = Command::new(env!("CARGO_BIN_EXE_simian"))
        .arg("report")
        .arg(&journal)
        .arg("--out")
        .arg(&again)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for facts in check_report(&browser, &again, "not-started") {
        assert_eq!(facts["cls"], "verdict warn");
        assert_eq!(facts["method_rows"], 0);
    }
}

#[test]
fn bad_input_is_refused_with_what_where_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let simian = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_simian"))
            .current_dir(dir.path())
            .args(args)
            .output()
            .unwrap()
    };
    let stderr = |o: &Output| String::from_utf8_lossy(&o.stderr).to_string();
    let malformed = fixtures().join("invalid/malformed.json");
    let out = simian(&["run", malformed.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("malformed.json:5:23"),
        "{}",
        stderr(&out)
    );
    assert!(
        !dir.path().join("journal.json").exists(),
        "nothing ran, no journal"
    );
    let missing = fixtures().join("invalid/env-secret-missing.json");
    let out = simian(&["run", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("SIMIAN_DIFF_SURELY_UNSET"),
        "{}",
        stderr(&out)
    );
    let out = simian(&["run", "nowhere.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("nowhere.json"), "{}", stderr(&out));
    let out = simian(&["report", malformed.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let valid = fixtures().join("valid/before-fails.json");
    let out = simian(&["run", valid.to_str().unwrap(), "--var", "novalue"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("NAME=VALUE"), "{}", stderr(&out));
    let out = simian(&["run", valid.to_str().unwrap(), "--var", "n:int=seven"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not an integer"), "{}", stderr(&out));
    // A stop condition with a key it does not take.
    let file = dir.path().join("bad-stop.json");
    std::fs::write(&file, json!({"title": "t", "description": "d", "method": [],
        "extensions": [{"name": "simian", "stop_conditions": [{"name": "x", "type": "http", "url": "http://127.0.0.1:9/", "every": 1}]}]}).to_string()).unwrap();
    let out = simian(&["validate", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unknown key \"every\"")
            && stderr(&out).contains("stop_conditions[0]"),
        "{}",
        stderr(&out)
    );
    // `--json` prints the journal's summary.
    let out = simian(&["--json", "run", valid.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["status"], "failed");
    assert_eq!(summary["exit_code"], 1);
}
