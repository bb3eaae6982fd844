//! The little a SQL backend must do: run statements with typed parameters inside a
//! transaction, optionally holding the store-wide write lock.
//!
//! Statements use `$1`-style placeholders, which PostgreSQL reads natively and the SQLite
//! backend rewrites to `?1`.

use simian_core::StoreError;

/// A statement parameter. `None` is a typed NULL (PostgreSQL checks parameter types).
#[derive(Clone, Debug)]
pub enum Value {
    /// BIGINT.
    Int(Option<i64>),
    /// TEXT.
    Text(Option<String>),
    /// BOOLEAN.
    Bool(bool),
}

/// A result cell.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    /// An integer.
    Int(i64),
    /// Text.
    Text(String),
    /// A boolean.
    Bool(bool),
    /// NULL.
    Null,
}

/// One result row.
#[derive(Clone, Debug)]
pub struct Row(pub Vec<Cell>);

impl Row {
    fn cell(&self, i: usize) -> &Cell {
        self.0.get(i).unwrap_or(&Cell::Null)
    }

    /// An integer column.
    pub fn int(&self, i: usize, what: &'static str) -> Result<i64, StoreError> {
        self.opt_int(i, what)?.ok_or(StoreError::Corrupt {
            what,
            value: "NULL".into(),
        })
    }

    /// A nullable integer column.
    pub fn opt_int(&self, i: usize, what: &'static str) -> Result<Option<i64>, StoreError> {
        match self.cell(i) {
            Cell::Int(v) => Ok(Some(*v)),
            Cell::Null => Ok(None),
            other => Err(StoreError::Corrupt {
                what,
                value: format!("{other:?}"),
            }),
        }
    }

    /// A text column.
    pub fn text(&self, i: usize, what: &'static str) -> Result<String, StoreError> {
        self.opt_text(i, what)?.ok_or(StoreError::Corrupt {
            what,
            value: "NULL".into(),
        })
    }

    /// A nullable text column.
    pub fn opt_text(&self, i: usize, what: &'static str) -> Result<Option<String>, StoreError> {
        match self.cell(i) {
            Cell::Text(v) => Ok(Some(v.clone())),
            Cell::Null => Ok(None),
            other => Err(StoreError::Corrupt {
                what,
                value: format!("{other:?}"),
            }),
        }
    }

    /// A boolean column (SQLite stores 0 and 1).
    pub fn bool(&self, i: usize, what: &'static str) -> Result<bool, StoreError> {
        match self.cell(i) {
            Cell::Bool(v) => Ok(*v),
            Cell::Int(v) => Ok(*v != 0),
            other => Err(StoreError::Corrupt {
                what,
                value: format!("{other:?}"),
            }),
        }
    }
}

/// Statements inside one transaction.
pub trait Tx {
    /// Runs a statement; returns the number of rows changed.
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, StoreError>;
    /// Runs a query.
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StoreError>;
}

/// A database the [`SqlStore`](crate::SqlStore) can run on.
pub trait Backend: Send + Sync + 'static {
    /// Runs `f` in one transaction, committed when it returns `Ok`. With `exclusive`, the
    /// transaction holds the store-wide write lock from its first statement.
    fn transaction<T>(
        &self,
        exclusive: bool,
        f: &mut dyn FnMut(&mut dyn Tx) -> Result<T, StoreError>,
    ) -> Result<T, StoreError>;

    /// The migrations for this dialect, in order: (version, SQL).
    fn migrations(&self) -> &'static [(i64, &'static str)];
}

pub(crate) fn query_error(action: &'static str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Query {
        action,
        message: e.to_string(),
    }
}
