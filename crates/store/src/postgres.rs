//! The PostgreSQL backend: several monkey replicas sharing one history.
//!
//! Exclusive transactions take a transaction-scoped advisory lock, so the test-and-set is
//! serialised across every process using the database, and released on commit, rollback or a
//! dropped connection. A broken connection is re-established on the next call.

use std::sync::Mutex;

use postgres::types::{ToSql, Type};
use postgres::{Client, NoTls};
use simian_core::StoreError;

use crate::backend::{Backend, Cell, Row, Tx, Value, query_error};
use crate::redact;

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/postgres/0001_initial.sql")),
    (2, include_str!("../migrations/postgres/0002_leases.sql")),
    (3, include_str!("../migrations/postgres/0003_drills.sql")),
    (
        4,
        include_str!("../migrations/postgres/0004_kill_switch.sql"),
    ),
    (
        5,
        include_str!("../migrations/postgres/0005_history_paging.sql"),
    ),
];

/// The advisory lock key of Simian's store-wide write lock ("SIMIAN" in ASCII).
const LOCK_KEY: i64 = 0x5349_4d49_414e;

/// A PostgreSQL database.
pub struct PostgresBackend {
    url: String,
    client: Mutex<Option<Client>>,
}

impl PostgresBackend {
    /// Connects to `url` (`postgres://user:password@host:port/db`, no TLS).
    pub fn connect(url: &str) -> Result<PostgresBackend, StoreError> {
        let client = Self::dial(url)?;
        Ok(PostgresBackend {
            url: url.to_string(),
            client: Mutex::new(Some(client)),
        })
    }

    fn dial(url: &str) -> Result<Client, StoreError> {
        Client::connect(url, NoTls).map_err(|e| StoreError::Open {
            url: redact(url),
            message: format!(
                "{e}: check that the server is running and the URL, user and database are right"
            ),
        })
    }
}

impl Backend for PostgresBackend {
    fn transaction<T>(
        &self,
        exclusive: bool,
        f: &mut dyn FnMut(&mut dyn Tx) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut guard = self.client.lock().unwrap_or_else(|e| e.into_inner());
        if guard.as_ref().is_none_or(|c| c.is_closed()) {
            *guard = Some(Self::dial(&self.url)?);
        }
        let Some(client) = guard.as_mut() else {
            unreachable!("a client was just stored")
        };
        let mut tx = client
            .transaction()
            .map_err(|e| query_error("beginning a transaction", e))?;
        if exclusive {
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
                .map_err(|e| query_error("taking the store lock", e))?;
        }
        let value = f(&mut PgTx { tx: &mut tx })?;
        tx.commit().map_err(|e| query_error("committing", e))?;
        Ok(value)
    }

    fn migrations(&self) -> &'static [(i64, &'static str)] {
        MIGRATIONS
    }
}

struct PgTx<'a, 'b> {
    tx: &'a mut postgres::Transaction<'b>,
}

fn params(values: &[Value]) -> Vec<Box<dyn ToSql + Sync>> {
    values
        .iter()
        .map(|v| -> Box<dyn ToSql + Sync> {
            match v {
                Value::Int(v) => Box::new(*v),
                Value::Text(v) => Box::new(v.clone()),
                Value::Bool(v) => Box::new(*v),
            }
        })
        .collect()
}

impl Tx for PgTx<'_, '_> {
    fn execute(&mut self, sql: &str, values: &[Value]) -> Result<u64, StoreError> {
        if values.is_empty() && sql.contains(';') {
            self.tx
                .batch_execute(sql)
                .map_err(|e| query_error("running a batch", e))?;
            return Ok(0);
        }
        let boxed = params(values);
        let refs: Vec<&(dyn ToSql + Sync)> = boxed.iter().map(|b| b.as_ref()).collect();
        self.tx
            .execute(sql, &refs)
            .map_err(|e| query_error("writing", e))
    }

    fn query(&mut self, sql: &str, values: &[Value]) -> Result<Vec<Row>, StoreError> {
        let boxed = params(values);
        let refs: Vec<&(dyn ToSql + Sync)> = boxed.iter().map(|b| b.as_ref()).collect();
        let rows = self
            .tx
            .query(sql, &refs)
            .map_err(|e| query_error("reading", e))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut cells = Vec::with_capacity(row.len());
            for (i, column) in row.columns().iter().enumerate() {
                let read = |e: postgres::Error| query_error("reading", e);
                let cell = match *column.type_() {
                    Type::INT8 => row
                        .try_get::<_, Option<i64>>(i)
                        .map_err(read)?
                        .map(Cell::Int),
                    Type::INT4 => row
                        .try_get::<_, Option<i32>>(i)
                        .map_err(read)?
                        .map(|v| Cell::Int(v.into())),
                    Type::INT2 => row
                        .try_get::<_, Option<i16>>(i)
                        .map_err(read)?
                        .map(|v| Cell::Int(v.into())),
                    Type::BOOL => row
                        .try_get::<_, Option<bool>>(i)
                        .map_err(read)?
                        .map(Cell::Bool),
                    _ => row
                        .try_get::<_, Option<String>>(i)
                        .map_err(read)?
                        .map(Cell::Text),
                };
                cells.push(cell.unwrap_or(Cell::Null));
            }
            out.push(Row(cells));
        }
        Ok(out)
    }
}
