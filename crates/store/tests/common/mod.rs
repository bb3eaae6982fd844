//! Test databases: SQLite in a temporary directory, and a fresh database on the PostgreSQL
//! server named by `SIMIAN_TEST_POSTGRES_URL` (started by `scripts/test.sh` and `.ci/run`).
//!
//! [`on_every_store!`] turns each test function into two tests, `sqlite::NAME` and
//! `postgres::NAME`. The PostgreSQL ones are `#[ignore]`d, so a plain `cargo test` counts
//! them as ignored instead of passing them unseen; `scripts/test.sh` runs them with
//! `--include-ignored` against the server it starts.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::sync::Arc;

use simian_core::Store;

/// One store under test.
pub struct Db {
    /// `sqlite` or `postgres`.
    pub name: &'static str,
    /// The open store.
    pub store: Arc<dyn Store>,
    /// Its URL, to open more connections.
    pub url: String,
    /// A scratch directory (the SQLite file lives here).
    pub dir: tempfile::TempDir,
}

impl Db {
    /// A SQLite file in a new temporary directory.
    pub fn sqlite(tag: &str) -> Db {
        let dir = tempfile::tempdir().unwrap();
        let url = format!(
            "sqlite://{}",
            dir.path().join(format!("{tag}.db")).display()
        );
        Db {
            name: "sqlite",
            store: simian_store::open(&url, dir.path()).unwrap(),
            url,
            dir,
        }
    }

    /// A new database on the test PostgreSQL server.
    pub fn postgres(tag: &str) -> Db {
        let dir = tempfile::tempdir().unwrap();
        let url = simian_testkit::fresh_postgres(tag);
        Db {
            name: "postgres",
            store: simian_store::open(&url, dir.path()).unwrap(),
            url,
            dir,
        }
    }
}

/// Runs each named `fn NAME(db: &common::Db)` as `sqlite::NAME` and `postgres::NAME`.
#[macro_export]
macro_rules! on_every_store {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $test() {
                    super::$test(&super::common::Db::sqlite(stringify!($test)));
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                #[ignore = "needs PostgreSQL: scripts/test.sh starts one (or set SIMIAN_TEST_POSTGRES_URL and pass --include-ignored)"]
                fn $test() {
                    super::$test(&super::common::Db::postgres(stringify!($test)));
                }
            )*
        }
    };
}
