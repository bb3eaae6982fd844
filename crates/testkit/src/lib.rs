//! Test support shared by Simian's crates (a dev-dependency only).
//!
//! Tests that need a service Simian does not start itself (PostgreSQL, a Python package) are
//! marked `#[ignore = "needs ..."]`, so that a plain `cargo test` shows them as ignored, never
//! as passed. `scripts/test.sh` (the README's test command, and what `.ci/run` runs) installs
//! and starts what they need and runs them with `--include-ignored`; a test run that way
//! without its service fails, saying what is missing, because it was asked for explicitly.
//!
//! PostgreSQL tests connect to the server named by `SIMIAN_TEST_POSTGRES_URL`; each takes a
//! brand-new database there, so tests never see each other's rows.

pub mod aws;
pub mod browser;
pub mod docker;
pub mod kube;
pub mod measure;

/// The test PostgreSQL server's URL.
///
/// # Panics
/// When `SIMIAN_TEST_POSTGRES_URL` is not set: the test was run on purpose
/// (`--include-ignored`), and must not pass without touching PostgreSQL.
pub fn postgres_url() -> String {
    match std::env::var("SIMIAN_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "this test needs PostgreSQL: set SIMIAN_TEST_POSTGRES_URL to a server's URL, or run scripts/test.sh, which starts one"
        ),
    }
}

/// A brand-new database on the test server at `url`, named after `tag`; returns its URL.
///
/// # Panics
/// When the server cannot be reached or the database cannot be created.
pub fn fresh_postgres_database(url: &str, tag: &str) -> String {
    let name = format!(
        "simian_{}_{}_{}",
        tag.to_ascii_lowercase()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(40)
            .collect::<String>(),
        std::process::id(),
        jiff::Timestamp::now().as_nanosecond() % 1_000_000_000
    );
    let mut client = postgres::Client::connect(url, postgres::NoTls)
        .unwrap_or_else(|e| panic!("connect to the test PostgreSQL server at {url}: {e}"));
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap_or_else(|e| panic!("create the test database {name}: {e}"));
    let base = url.rsplit_once('/').map_or(url, |(base, _)| base);
    format!("{base}/{name}")
}

/// [`postgres_url`] then [`fresh_postgres_database`]: a new database.
pub fn fresh_postgres(tag: &str) -> String {
    fresh_postgres_database(&postgres_url(), tag)
}

/// Fails with `install` as the fix unless `python3` can import every module in `modules`.
///
/// # Panics
/// When a module is missing.
pub fn require_python_modules(modules: &[&str], install: &str) {
    let probe = std::process::Command::new("python3")
        .args(["-c", &format!("import {}", modules.join(", "))])
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "this test needs the Python modules {modules:?}: {install} (or run scripts/test.sh)\n{}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!("this test needs python3: {e}"),
    }
}

/// Reads the `ready PORT` line a test service started by the tests (an emulator) prints
/// first on `output`, and returns the port.
///
/// # Panics
/// When the service says anything else, or nothing: it did not start.
pub fn ready_port(output: &mut impl std::io::BufRead, service: &str) -> u16 {
    let mut line = String::new();
    output
        .read_line(&mut line)
        .unwrap_or_else(|e| panic!("the {service} did not say it is ready: {e}"));
    line.trim()
        .strip_prefix("ready ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("the {service} did not start: {line:?}"))
}
