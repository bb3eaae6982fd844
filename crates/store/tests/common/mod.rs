//! Test databases: SQLite in a temporary directory, and a fresh database on the PostgreSQL
//! server named by `SIMIAN_TEST_POSTGRES_URL` (started by `.ci/run`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use simian_core::Store;

/// Every store under test, named: SQLite always, PostgreSQL when configured.
pub fn stores(dir: &Path, tag: &str) -> Vec<(&'static str, Arc<dyn Store>, String)> {
    let sqlite_url = format!("sqlite://{}", dir.join(format!("{tag}.db")).display());
    let mut out = vec![(
        "sqlite",
        simian_store::open(&sqlite_url, dir).unwrap(),
        sqlite_url,
    )];
    if let Some(db) = simian_testkit::fresh_postgres(tag) {
        out.push(("postgres", simian_store::open(&db, dir).unwrap(), db));
    }
    out
}
