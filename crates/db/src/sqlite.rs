//! SQLite (the bundled library): values may be TEXT or BLOB; keys of any
//! storage class. A batch is one `BEGIN IMMEDIATE` transaction of
//! prepared compare-and-set updates, so a writer waits for the others
//! (up to the busy timeout) instead of failing.

use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::{Connection, OpenFlags, TransactionBehavior, params_from_iter};

use crate::database::{Backend, Cell, CellRef, Key, Row, Rows, Update, count_sql};
use crate::error::{DbError, Result};
use crate::target::Column;

/// How long a statement waits for another connection's lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) struct Sqlite {
    conn: Connection,
    path: String,
}

fn cell(value: ValueRef<'_>) -> Cell {
    match value {
        ValueRef::Null => Cell::Null,
        ValueRef::Text(t) => match std::str::from_utf8(t) {
            Ok(s) => Cell::Text(s.to_owned()),
            // Not UTF-8: never a token, and kept as it is.
            Err(_) => Cell::Other,
        },
        ValueRef::Blob(b) => Cell::Blob(b.to_vec()),
        ValueRef::Integer(_) | ValueRef::Real(_) => Cell::Other,
    }
}

fn cell_ref(value: ValueRef<'_>) -> CellRef<'_> {
    match value {
        ValueRef::Null => CellRef::Null,
        ValueRef::Text(t) | ValueRef::Blob(t) => CellRef::Bytes(t),
        ValueRef::Integer(_) | ValueRef::Real(_) => CellRef::Other,
    }
}

fn key(value: ValueRef<'_>) -> Option<Key> {
    match value {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(Key::Int(i)),
        ValueRef::Real(r) => Some(Key::Real(r)),
        ValueRef::Text(t) => Some(match std::str::from_utf8(t) {
            Ok(text) => Key::Text(text.to_owned()),
            Err(_) => Key::RawText(t.to_vec()),
        }),
        ValueRef::Blob(b) => Some(Key::Blob(b.to_vec())),
    }
}

fn cell_value(cell: &Cell) -> ToSqlOutput<'_> {
    ToSqlOutput::Borrowed(match cell {
        Cell::Text(t) => ValueRef::Text(t.as_bytes()),
        Cell::Blob(b) => ValueRef::Blob(b),
        Cell::Null | Cell::Other => ValueRef::Null,
    })
}

fn key_ref(key: &Key) -> ToSqlOutput<'_> {
    ToSqlOutput::Borrowed(match key {
        Key::Int(i) => ValueRef::Integer(*i),
        Key::Real(r) => ValueRef::Real(*r),
        Key::Text(t) => ValueRef::Text(t.as_bytes()),
        Key::RawText(t) => ValueRef::Text(t),
        Key::Blob(b) => ValueRef::Blob(b),
    })
}

impl Sqlite {
    pub(crate) fn open(path: &str) -> Result<Self> {
        let open = || {
            let conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            conn.busy_timeout(BUSY_TIMEOUT)?;
            // A double-quoted name that matches no column must be an
            // error, not a string literal (SQLite's legacy default).
            conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DQS_DML, false)?;
            conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DQS_DDL, false)?;
            // This connection's page cache (32 MiB; not stored in the
            // file): a batch's updates stay in memory until its commit
            // instead of spilling to the database file midway.
            conn.pragma_update(None, "cache_size", -32_768)?;
            // Fail here, not at the first statement, when it is no database.
            conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))?;
            Ok(conn)
        };
        let conn = open().map_err(|source| DbError::SqliteOpen {
            path: path.to_owned(),
            source: Box::new(source),
        })?;
        Ok(Self {
            conn,
            path: path.to_owned(),
        })
    }

    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    fn err(column: &Column) -> impl Fn(rusqlite::Error) -> DbError + '_ {
        move |source| DbError::Sqlite {
            table: column.table_text(),
            column: column.column_text(),
            source: Box::new(source),
        }
    }

    /// `key, value` (or just `value`) for SELECTs.
    fn select_list(column: &Column) -> String {
        match &column.key {
            Some(k) => format!("{}, {}", k.quoted(), column.column.quoted()),
            None => column.column.quoted(),
        }
    }

    fn key_name(column: &Column) -> Result<String> {
        column
            .key
            .as_ref()
            .map(|k| k.quoted())
            .ok_or_else(|| DbError::NoKeyColumn {
                table: column.table_text(),
                column: column.column_text(),
            })
    }
}

impl Backend for Sqlite {
    fn check(&mut self, column: &Column) -> Result<()> {
        let sql = format!(
            "SELECT {} FROM {} LIMIT 0",
            Self::select_list(column),
            column.table.quoted()
        );
        self.conn
            .prepare(&sql)
            .map(drop)
            .map_err(|e| DbError::Schema {
                table: column.table_text(),
                message: match e {
                    rusqlite::Error::SqliteFailure(_, Some(m)) => m,
                    other => other.to_string(),
                },
            })
    }

    fn count(&mut self, column: &Column, rows: Rows) -> Result<u64> {
        let n: i64 = self
            .conn
            .query_row(&count_sql(column, rows), [], |r| r.get(0))
            .map_err(Self::err(column))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn scan(
        &mut self,
        column: &Column,
        each: &mut dyn FnMut(Option<Key>, CellRef<'_>) -> Result<()>,
    ) -> Result<()> {
        let sql = format!(
            "SELECT {} FROM {}",
            Self::select_list(column),
            column.table.quoted()
        );
        let mut stmt = self.conn.prepare(&sql).map_err(Self::err(column))?;
        let mut rows = stmt.query([]).map_err(Self::err(column))?;
        let keyed = column.key.is_some();
        while let Some(row) = rows.next().map_err(Self::err(column))? {
            if keyed {
                let k = key(row.get_ref(0).map_err(Self::err(column))?);
                each(k, cell_ref(row.get_ref(1).map_err(Self::err(column))?))?;
            } else {
                each(None, cell_ref(row.get_ref(0).map_err(Self::err(column))?))?;
            }
        }
        Ok(())
    }

    fn page(&mut self, column: &Column, after: Option<&Key>, limit: usize) -> Result<Vec<Row>> {
        let k = Self::key_name(column)?;
        let sql = format!(
            "SELECT {k}, {c} FROM {t} WHERE {cond} ORDER BY {k} LIMIT ?1",
            c = column.column.quoted(),
            t = column.table.quoted(),
            cond = if after.is_some() {
                format!("{k} > ?2")
            } else {
                format!("{k} IS NOT NULL")
            },
        );
        let mut stmt = self.conn.prepare_cached(&sql).map_err(Self::err(column))?;
        let limit = ToSqlOutput::Owned(Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
        let args: Vec<ToSqlOutput<'_>> = match after {
            Some(a) => vec![limit, key_ref(a)],
            None => vec![limit],
        };
        let rows = stmt
            .query_map(params_from_iter(args), |r| {
                Ok(Row {
                    key: key(r.get_ref(0)?),
                    cell: cell(r.get_ref(1)?),
                })
            })
            .map_err(Self::err(column))?;
        rows.collect::<Result<_, _>>().map_err(Self::err(column))
    }

    fn fetch(&mut self, column: &Column, keys: &[Key]) -> Result<Vec<Row>> {
        let k = Self::key_name(column)?;
        let sql = format!(
            "SELECT {k}, {c} FROM {t} WHERE {k} = ?1",
            c = column.column.quoted(),
            t = column.table.quoted(),
        );
        let mut stmt = self.conn.prepare_cached(&sql).map_err(Self::err(column))?;
        let mut out = Vec::with_capacity(keys.len());
        for wanted in keys {
            let mut rows = stmt.query([key_ref(wanted)]).map_err(Self::err(column))?;
            while let Some(r) = rows.next().map_err(Self::err(column))? {
                out.push(Row {
                    key: key(r.get_ref(0).map_err(Self::err(column))?),
                    cell: cell(r.get_ref(1).map_err(Self::err(column))?),
                });
            }
        }
        Ok(out)
    }

    fn write(&mut self, column: &Column, updates: &[Update]) -> Result<Vec<bool>> {
        let k = Self::key_name(column)?;
        let sql = format!(
            "UPDATE {t} SET {c} = ?1 WHERE {k} = ?2 AND {c} = ?3",
            c = column.column.quoted(),
            t = column.table.quoted(),
        );
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(Self::err(column))?;
        let mut applied = Vec::with_capacity(updates.len());
        {
            let mut stmt = tx.prepare_cached(&sql).map_err(Self::err(column))?;
            for u in updates {
                let changed = stmt
                    .execute([cell_value(&u.new), key_ref(&u.key), cell_value(&u.old)])
                    .map_err(Self::err(column))?;
                applied.push(changed > 0);
            }
        }
        tx.commit().map_err(Self::err(column))?;
        Ok(applied)
    }
}
