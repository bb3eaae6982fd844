//! The SQLite backend: the embedded default, one file, no setup.
//!
//! WAL journal with `synchronous = FULL`, so a committed termination survives a crash of the
//! process or the machine; `BEGIN IMMEDIATE` for the exclusive transactions, with a generous
//! busy timeout, so concurrent `simian` processes on one file wait for each other instead of
//! failing.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ToSql};
use simian_core::StoreError;

use crate::backend::{Backend, Cell, Row, Tx, Value, query_error};

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/sqlite/0001_initial.sql")),
    (2, include_str!("../migrations/sqlite/0002_leases.sql")),
    (3, include_str!("../migrations/sqlite/0003_drills.sql")),
    (4, include_str!("../migrations/sqlite/0004_kill_switch.sql")),
    (
        5,
        include_str!("../migrations/sqlite/0005_history_paging.sql"),
    ),
];

/// A SQLite database.
pub struct SqliteBackend {
    conn: Mutex<Connection>,
}

impl SqliteBackend {
    /// Opens (creating if needed) the database file at `path`.
    pub fn open(path: &Path) -> Result<SqliteBackend, StoreError> {
        let open_error = |e: &dyn std::fmt::Display| StoreError::Open {
            url: format!("sqlite://{}", path.display()),
            message: e.to_string(),
        };
        if let Some(dir) = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty() && !d.is_dir())
        {
            return Err(open_error(&format!(
                "directory {} does not exist: create it or point [store] url elsewhere",
                dir.display()
            )));
        }
        let conn = Connection::open(path).map_err(|e| open_error(&e))?;
        Self::configure(conn, true).map_err(|e| open_error(&e))
    }

    /// A private in-memory database.
    pub fn memory() -> Result<SqliteBackend, StoreError> {
        let conn = Connection::open_in_memory().map_err(|e| StoreError::Open {
            url: "sqlite::memory:".into(),
            message: e.to_string(),
        })?;
        Self::configure(conn, false).map_err(|e| StoreError::Open {
            url: "sqlite::memory:".into(),
            message: e.to_string(),
        })
    }

    fn configure(conn: Connection, file: bool) -> rusqlite::Result<SqliteBackend> {
        conn.busy_timeout(Duration::from_secs(30))?;
        if file {
            conn.pragma_update(None, "journal_mode", "WAL")?;
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        Ok(SqliteBackend {
            conn: Mutex::new(conn),
        })
    }
}

impl Backend for SqliteBackend {
    fn transaction<T>(
        &self,
        exclusive: bool,
        f: &mut dyn FnMut(&mut dyn Tx) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let begin = if exclusive {
            "BEGIN IMMEDIATE"
        } else {
            "BEGIN DEFERRED"
        };
        conn.execute_batch(begin)
            .map_err(|e| query_error("beginning a transaction", e))?;
        let mut tx = SqliteTx { conn: &conn };
        match f(&mut tx) {
            Ok(value) => match conn.execute_batch("COMMIT") {
                Ok(()) => Ok(value),
                Err(e) => {
                    let _ = conn.execute_batch("ROLLBACK");
                    Err(query_error("committing", e))
                }
            },
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    fn migrations(&self) -> &'static [(i64, &'static str)] {
        MIGRATIONS
    }
}

struct SqliteTx<'a> {
    conn: &'a Connection,
}

impl ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Int(Some(v)) => ToSqlOutput::from(*v),
            Value::Text(Some(v)) => ToSqlOutput::from(v.as_str()),
            Value::Bool(v) => ToSqlOutput::from(*v),
            Value::Int(None) | Value::Text(None) => ToSqlOutput::from(rusqlite::types::Null),
        })
    }
}

/// `$1` placeholders to SQLite's `?1`.
fn placeholders(sql: &str) -> String {
    sql.replace('$', "?")
}

impl Tx for SqliteTx<'_> {
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, StoreError> {
        if params.is_empty() && sql.contains(';') {
            self.conn
                .execute_batch(sql)
                .map_err(|e| query_error("running a batch", e))?;
            return Ok(0);
        }
        let mut stmt = self
            .conn
            .prepare_cached(&placeholders(sql))
            .map_err(|e| query_error("preparing a statement", e))?;
        let n = stmt
            .execute(rusqlite::params_from_iter(params.iter()))
            .map_err(|e| query_error("writing", e))?;
        Ok(n as u64)
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(&placeholders(sql))
            .map_err(|e| query_error("preparing a query", e))?;
        let columns = stmt.column_count();
        let mut rows = stmt
            .query(rusqlite::params_from_iter(params.iter()))
            .map_err(|e| query_error("reading", e))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(|e| query_error("reading", e))? {
            let mut cells = Vec::with_capacity(columns);
            for i in 0..columns {
                cells.push(
                    match row.get_ref(i).map_err(|e| query_error("reading", e))? {
                        ValueRef::Null => Cell::Null,
                        ValueRef::Integer(v) => Cell::Int(v),
                        ValueRef::Real(v) => Cell::Int(v as i64),
                        ValueRef::Text(t) | ValueRef::Blob(t) => {
                            Cell::Text(String::from_utf8_lossy(t).into_owned())
                        }
                    },
                );
            }
            out.push(Row(cells));
        }
        Ok(out)
    }
}
