//! A database connection, and the few operations a census and a rewrap
//! need from it, behind one trait with a SQLite and a PostgreSQL side.

use std::fmt;

use crate::error::{DbError, Result};
use crate::target::Column;
use crate::{pg, sqlite};

/// A stored value, as far as tokens go.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Cell {
    Null,
    Text(String),
    /// SQLite only: a BLOB (tokens stored as bytes are read, and written
    /// back, as bytes).
    Blob(Vec<u8>),
    /// SQLite only: a number, which is never a token and never written.
    Other,
}

/// A borrowed [`Cell`], for streaming scans.
#[derive(Clone, Copy, Debug)]
pub(crate) enum CellRef<'a> {
    Null,
    Bytes(&'a [u8]),
    Other,
}

impl Cell {
    /// The same kind of cell holding `text`.
    pub(crate) fn like(&self, text: String) -> Self {
        match self {
            Self::Blob(_) => Self::Blob(text.into_bytes()),
            _ => Self::Text(text),
        }
    }
}

/// A row's key. PostgreSQL keys travel as text (cast back to the column's
/// type in SQL); SQLite keys keep their storage class.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Key {
    Int(i64),
    Real(f64),
    Text(String),
    /// SQLite text that is not UTF-8, kept byte for byte: it orders and
    /// matches as stored, and only its display is lossy.
    RawText(Vec<u8>),
    Blob(Vec<u8>),
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Int(i) => write!(f, "{i}"),
            Self::Real(r) => write!(f, "{r}"),
            Self::Text(t) => f.write_str(t),
            Self::RawText(t) => f.write_str(&String::from_utf8_lossy(t)),
            Self::Blob(b) => {
                f.write_str("x'")?;
                for byte in b {
                    write!(f, "{byte:02x}")?;
                }
                f.write_str("'")
            }
        }
    }
}

/// One row: its key (when a key column is set) and its value.
#[derive(Clone, Debug)]
pub(crate) struct Row {
    pub(crate) key: Option<Key>,
    pub(crate) cell: Cell,
}

/// A compare-and-set: write `new` where the row still holds `old`.
#[derive(Clone, Debug)]
pub(crate) struct Update {
    pub(crate) key: Key,
    pub(crate) old: Cell,
    pub(crate) new: Cell,
}

/// Which rows a count counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rows {
    /// Every row of the table.
    All,
    /// The rows whose key is NULL: no update by key reaches them.
    WithoutKey,
}

/// The count query, the same on both databases (quoted names only).
pub(crate) fn count_sql(column: &Column, rows: Rows) -> String {
    let table = column.table.quoted();
    match (rows, &column.key) {
        (Rows::WithoutKey, Some(key)) => {
            format!(
                "SELECT count(*) FROM {table} WHERE {} IS NULL",
                key.quoted()
            )
        }
        // Without a key column nothing is updated by key (a rewrap needs
        // one): nothing to count.
        (Rows::WithoutKey, None) => "SELECT 0".to_owned(),
        (Rows::All, _) => format!("SELECT count(*) FROM {table}"),
    }
}

pub(crate) trait Backend {
    /// The table and columns exist and can hold tokens.
    fn check(&mut self, column: &Column) -> Result<()>;
    /// How many rows there are of a kind.
    fn count(&mut self, column: &Column, rows: Rows) -> Result<u64>;
    /// Every row, streamed (key only when a key column is set).
    fn scan(
        &mut self,
        column: &Column,
        each: &mut dyn FnMut(Option<Key>, CellRef<'_>) -> Result<()>,
    ) -> Result<()>;
    /// Up to `limit` rows with a key above `after`, in key order.
    fn page(&mut self, column: &Column, after: Option<&Key>, limit: usize) -> Result<Vec<Row>>;
    /// The rows with these keys, as they are now.
    fn fetch(&mut self, column: &Column, keys: &[Key]) -> Result<Vec<Row>>;
    /// Applies the updates in one transaction, each as a compare-and-set;
    /// says which applied.
    fn write(&mut self, column: &Column, updates: &[Update]) -> Result<Vec<bool>>;
}

/// A database holding a column of tokens: SQLite (`sqlite:PATH`) or
/// PostgreSQL (`postgres://...` or `postgresql://...`, TLS when the server
/// offers it).
pub struct Database {
    inner: Inner,
}

enum Inner {
    Sqlite(sqlite::Sqlite),
    Postgres(Box<pg::Postgres>),
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Inner::Sqlite(s) => f.debug_tuple("Sqlite").field(&s.path()).finish(),
            Inner::Postgres(p) => f.debug_tuple("Postgres").field(&p.target()).finish(),
        }
    }
}

impl Database {
    /// Opens `sqlite:PATH` (an existing file; never created) or connects to
    /// `postgres://...`.
    ///
    /// # Errors
    ///
    /// Another kind of address, a file that cannot be opened, a server that
    /// cannot be reached. Messages never include a password.
    pub fn open(url: &str) -> Result<Self> {
        let inner = if let Some(path) = url.strip_prefix("sqlite:") {
            Inner::Sqlite(sqlite::Sqlite::open(path)?)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Inner::Postgres(Box::new(pg::Postgres::connect(url)?))
        } else {
            return Err(DbError::Url {
                scheme: url
                    .split_once(':')
                    .map_or("", |(scheme, _)| scheme)
                    .to_owned(),
            });
        };
        Ok(Self { inner })
    }

    /// `sqlite` or `postgres`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self.inner {
            Inner::Sqlite(_) => "sqlite",
            Inner::Postgres(_) => "postgres",
        }
    }

    pub(crate) fn backend(&mut self) -> &mut dyn Backend {
        match &mut self.inner {
            Inner::Sqlite(s) => s,
            Inner::Postgres(p) => p.as_mut(),
        }
    }
}
