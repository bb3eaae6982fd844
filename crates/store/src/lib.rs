//! Simian's durable tracker: schedules, terminations and the audit trail of refusals.
//!
//! One implementation of the [`Store`](simian_core::Store) logic ([`SqlStore`]) runs over two
//! small [`Backend`]s, SQLite (the embedded default) and PostgreSQL (for several replicas
//! sharing one history), so the two behave the same by construction. Migrations are embedded
//! and applied on open.
//!
//! The atomic test-and-set takes a write lock for its whole transaction: `BEGIN IMMEDIATE` on
//! SQLite, a transaction-scoped advisory lock on PostgreSQL. Two monkeys racing on the same
//! group therefore serialise, and the second sees the first one's termination row.
//!
//! ```
//! let store = simian_store::open("sqlite::memory:", std::path::Path::new(".")).unwrap();
//! assert!(store.unfinished().unwrap().is_empty());
//! ```

mod backend;
mod postgres;
mod sql;
mod sqlite;

use std::path::Path;
use std::sync::Arc;

pub use backend::Backend;
pub use postgres::PostgresBackend;
pub use simian_core::StoreError;
pub use sql::SqlStore;
pub use sqlite::SqliteBackend;

/// Opens the store at `url`, applying migrations.
///
/// * `sqlite://PATH`: a SQLite file; a relative path is taken from `base_dir` (the directory
///   of the configuration file).
/// * `sqlite::memory:`: a private in-memory database (tests).
/// * `postgres://...` or `postgresql://...`: a PostgreSQL server.
pub fn open(url: &str, base_dir: &Path) -> Result<Arc<dyn simian_core::Store>, StoreError> {
    if url == "sqlite::memory:" {
        return Ok(Arc::new(SqlStore::new(SqliteBackend::memory()?)?));
    }
    if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err(StoreError::Open {
                url: url.into(),
                message:
                    "no file named: write sqlite://simian.db or sqlite:///var/lib/simian/simian.db"
                        .into(),
            });
        }
        let path = base_dir.join(path);
        return Ok(Arc::new(SqlStore::new(SqliteBackend::open(&path)?)?));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Arc::new(SqlStore::new(PostgresBackend::connect(url)?)?));
    }
    Err(StoreError::Open {
        url: redact(url),
        message: "unsupported URL scheme: use sqlite://PATH or postgres://USER@HOST/DB".into(),
    })
}

/// `url` with any password replaced by `***`, for messages.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("sqlite://x.db"), "sqlite://x.db");
    }

    #[test]
    fn rejects_unknown_schemes() {
        let err = open("mysql://x", Path::new(".")).err().unwrap().to_string();
        assert!(err.contains("unsupported URL scheme"), "{err}");
        let err = open("sqlite://", Path::new(".")).err().unwrap().to_string();
        assert!(err.contains("no file named"), "{err}");
    }
}
