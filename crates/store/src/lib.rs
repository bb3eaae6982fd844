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

/// What [`check`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reachable {
    /// The store opened and its schema is current (or was brought up to date).
    Ready,
    /// A SQLite file that does not exist yet, in a directory where it can be created.
    WillBeCreated,
}

/// Checks that the store at `url` can be used, as `open` would, without creating a SQLite
/// file that does not exist yet.
pub fn check(url: &str, base_dir: &Path) -> Result<Reachable, StoreError> {
    if let Some(path) = url.strip_prefix("sqlite://").filter(|p| !p.is_empty()) {
        let path = base_dir.join(path);
        if !path.exists() {
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => base_dir.to_path_buf(),
            };
            let usable = std::fs::metadata(&dir)
                .map(|m| m.is_dir() && !m.permissions().readonly())
                .unwrap_or(false);
            if !usable {
                return Err(StoreError::Open {
                    url: url.into(),
                    message: format!(
                        "directory {} does not exist or is not writable: create it or point [store] url elsewhere",
                        dir.display()
                    ),
                });
            }
            return Ok(Reachable::WillBeCreated);
        }
    }
    open(url, base_dir).map(|_| Reachable::Ready)
}

/// Query parameters and connection-string keys whose value is a credential.
const SECRET_KEYS: [&str; 10] = [
    "password",
    "passwd",
    "pwd",
    "pass",
    "sslpassword",
    "secret",
    "token",
    "access_token",
    "api_key",
    "apikey",
];

fn is_secret_key(key: &str) -> bool {
    SECRET_KEYS.iter().any(|k| key.eq_ignore_ascii_case(k))
}

/// `url` with every credential replaced by `***`, for messages and logs: the password of the
/// user-info (`postgres://u:secret@h/db`), credential query parameters (`?password=secret`,
/// `sslpassword`, `token`, ...), and the same keys in a keyword/value connection string
/// (`host=h password=secret`).
pub fn redact(url: &str) -> String {
    let (main, query) = match url.split_once('?') {
        Some((main, query)) => (main, Some(query)),
        None => (url, None),
    };
    let mut out = match main.split_once("://") {
        Some((scheme, rest)) => {
            // The user-info ends at the last '@' before the path.
            let authority_end = rest.find('/').unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) => {
                    let (userinfo, host) = (&rest[..at], &rest[at..]);
                    match userinfo.split_once(':') {
                        Some((user, _)) => format!("{scheme}://{user}:***{host}"),
                        None => main.to_string(),
                    }
                }
                None => main.to_string(),
            }
        }
        // A keyword/value connection string: `host=h user=u password=secret`.
        None => main
            .split(' ')
            .map(|part| match part.split_once('=') {
                Some((k, _)) if is_secret_key(k) => format!("{k}=***"),
                _ => part.to_string(),
            })
            .collect::<Vec<_>>()
            .join(" "),
    };
    if let Some(query) = query {
        out.push('?');
        let params: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if is_secret_key(k) => format!("{k}=***"),
                _ => pair.to_string(),
            })
            .collect();
        out.push_str(&params.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_every_credential_form() {
        let cases = [
            ("postgres://u:secret@h/db", "postgres://u:***@h/db"),
            ("postgres://u@h/db", "postgres://u@h/db"),
            ("sqlite://x.db", "sqlite://x.db"),
            (
                "postgres://u@h/db?password=secret&sslmode=disable",
                "postgres://u@h/db?password=***&sslmode=disable",
            ),
            (
                "postgresql://h/db?user=u&PASSWORD=secret",
                "postgresql://h/db?user=u&PASSWORD=***",
            ),
            (
                "postgres://u:p%40ss@h:5432/db?sslpassword=secret",
                "postgres://u:***@h:5432/db?sslpassword=***",
            ),
            ("postgres://u:a@b@h/db", "postgres://u:***@h/db"),
            (
                "host=h user=u password=secret dbname=d",
                "host=h user=u password=*** dbname=d",
            ),
            ("sqlite://a@b.db", "sqlite://a@b.db"),
        ];
        for (url, want) in cases {
            assert_eq!(redact(url), want, "{url}");
            assert!(!redact(url).contains("secret"), "{url}");
        }
    }

    #[test]
    fn rejects_unknown_schemes() {
        let err = open("mysql://x", Path::new(".")).err().unwrap().to_string();
        assert!(err.contains("unsupported URL scheme"), "{err}");
        let err = open("sqlite://", Path::new(".")).err().unwrap().to_string();
        assert!(err.contains("no file named"), "{err}");
    }
}
