//! Test databases: SQLite in a temporary directory, and a fresh database on the PostgreSQL
//! server named by `SIMIAN_TEST_POSTGRES_URL` (started by `.ci/run`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use simian_core::Store;

/// Where PostgreSQL tests connect; `None` skips them (CI sets it, and fails without it).
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

/// A brand-new database on the test server; returns its URL.
pub fn fresh_postgres_database(url: &str, tag: &str) -> String {
    let name = format!(
        "simian_{tag}_{}_{}",
        std::process::id(),
        jiff::Timestamp::now().as_nanosecond() % 1_000_000_000
    );
    let mut client = postgres::Client::connect(url, postgres::NoTls)
        .expect("connect to the test PostgreSQL server");
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("create a test database");
    let base = url.rsplit_once('/').map_or(url, |(base, _)| base);
    format!("{base}/{name}")
}

/// Every store under test, named: SQLite always, PostgreSQL when configured.
pub fn stores(dir: &Path, tag: &str) -> Vec<(&'static str, Arc<dyn Store>, String)> {
    let sqlite_url = format!("sqlite://{}", dir.join(format!("{tag}.db")).display());
    let mut out = vec![(
        "sqlite",
        simian_store::open(&sqlite_url, dir).unwrap(),
        sqlite_url,
    )];
    if let Some(url) = postgres_url() {
        let db = fresh_postgres_database(&url, tag);
        out.push(("postgres", simian_store::open(&db, dir).unwrap(), db));
    }
    out
}
