//! Test support shared by Simian's crates (a dev-dependency only).
//!
//! PostgreSQL tests run against the server `.ci/run` starts and names in
//! `SIMIAN_TEST_POSTGRES_URL`; each test takes a brand-new database there, so tests never see
//! each other's rows. Without the variable they are skipped locally, and fail under `CI`.

/// Where PostgreSQL tests connect; `None` skips them (CI sets it, and fails without it).
///
/// # Panics
/// Under `CI` when the variable is missing: CI must never skip these tests silently.
pub fn postgres_url() -> Option<String> {
    match std::env::var("SIMIAN_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CI").is_err(),
                "CI must run the PostgreSQL tests: set SIMIAN_TEST_POSTGRES_URL (.ci/run does)"
            );
            eprintln!(
                "skipping PostgreSQL: SIMIAN_TEST_POSTGRES_URL is not set (bash .ci/run sets it)"
            );
            None
        }
    }
}

/// A brand-new database on the test server at `url`, named after `tag`; returns its URL.
///
/// # Panics
/// When the server cannot be reached or the database cannot be created.
pub fn fresh_postgres_database(url: &str, tag: &str) -> String {
    let name = format!(
        "simian_{tag}_{}_{}",
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

/// [`postgres_url`] then [`fresh_postgres_database`]: a new database, or `None` to skip.
pub fn fresh_postgres(tag: &str) -> Option<String> {
    postgres_url().map(|url| fresh_postgres_database(&url, tag))
}
