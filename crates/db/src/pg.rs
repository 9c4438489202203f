//! PostgreSQL, through the synchronous `postgres` client. TLS (rustls,
//! the system's root certificates) whenever the server offers it, unless
//! the address says `sslmode=disable`.
//!
//! Keys travel as text and are cast back to the key column's own type in
//! SQL, so its index serves every lookup. A batch of updates is one
//! statement (`UPDATE ... FROM unnest(...) ... RETURNING`): one round trip
//! per batch, atomic, each row a compare-and-set.

use std::sync::Arc;

use postgres::config::{Host, SslMode};
use postgres::{Client, Config, NoTls};

use crate::database::{Backend, Cell, CellRef, Key, Row, Rows, Update, count_sql};
use crate::error::{DbError, PgFailure, Result};
use crate::target::Column;

/// Rows fetched per round trip while scanning.
const SCAN_CHUNK: i32 = 10_000;

pub(crate) struct Postgres {
    client: Client,
    target: String,
    /// The key column's type, as `format_type` writes it, for casts;
    /// set by `check`.
    key_type: Option<String>,
}

fn tls() -> Result<tokio_postgres_rustls::MakeRustlsConnect> {
    let mut roots = rustls::RootCertStore::empty();
    // Certificates that fail to load are skipped: the server's must verify
    // against the ones that did.
    let found = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(found.certs);
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| DbError::Tls(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// Hosts and database, for messages: never the password.
fn describe(config: &Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(name) => name.clone(),
            Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    format!(
        "{}/{}",
        hosts.join(","),
        config.get_dbname().unwrap_or_default()
    )
}

/// A type name from `format_type`, checked before it is used in a cast.
fn safe_type_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b" _(),.".contains(&b))
}

impl Postgres {
    pub(crate) fn connect(url: &str) -> Result<Self> {
        let config: Config = url.parse().map_err(|source| DbError::PostgresConnect {
            target: "(the address does not parse)".to_owned(),
            source,
        })?;
        let target = describe(&config);
        let client = if config.get_ssl_mode() == SslMode::Disable {
            config.connect(NoTls)
        } else {
            config.connect(tls()?)
        }
        .map_err(|source| DbError::PostgresConnect {
            target: target.clone(),
            source,
        })?;
        Ok(Self {
            client,
            target,
            key_type: None,
        })
    }

    pub(crate) fn target(&self) -> &str {
        &self.target
    }

    fn err(column: &Column) -> impl Fn(postgres::Error) -> DbError + '_ {
        move |source| DbError::Postgres {
            table: column.table_text(),
            column: column.column_text(),
            source: PgFailure::new(source),
        }
    }

    /// Rows of `SELECT key::text, column::text`.
    fn rows(column: &Column, rows: &[postgres::Row]) -> Result<Vec<Row>> {
        rows.iter()
            .map(|r| {
                Ok(Row {
                    key: r
                        .try_get::<_, Option<String>>(0)
                        .map_err(Self::err(column))?
                        .map(Key::Text),
                    cell: r
                        .try_get::<_, Option<String>>(1)
                        .map_err(Self::err(column))?
                        .map_or(Cell::Null, Cell::Text),
                })
            })
            .collect()
    }

    fn keyed(&self, column: &Column) -> Result<(String, String)> {
        match (&column.key, &self.key_type) {
            (Some(k), Some(t)) => Ok((k.quoted(), t.clone())),
            _ => Err(DbError::NoKeyColumn {
                table: column.table_text(),
                column: column.column_text(),
            }),
        }
    }
}

impl Backend for Postgres {
    fn check(&mut self, column: &Column) -> Result<()> {
        let schema_error = |message: String| DbError::Schema {
            table: column.table_text(),
            message,
        };
        let table = column.table.quoted();
        let found: bool = self
            .client
            .query_one("SELECT to_regclass($1::text) IS NOT NULL", &[&table])
            .map_err(Self::err(column))?
            .get(0);
        if !found {
            let mut message = "no such table".to_owned();
            let lower = column.table.to_string().to_ascii_lowercase();
            if lower != column.table.to_string() {
                let lowered = crate::target::Name::table(&lower)
                    .map(|n| n.quoted())
                    .unwrap_or_default();
                let exists: bool = self
                    .client
                    .query_one("SELECT to_regclass($1::text) IS NOT NULL", &[&lowered])
                    .map_err(Self::err(column))?
                    .get(0);
                if exists {
                    message.push_str(&format!(
                        " (names are taken exactly; PostgreSQL folds unquoted names to lower case: try {lower})"
                    ));
                }
            }
            return Err(schema_error(message));
        }
        let rows = self
            .client
            .query(
                "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), \
                        a.atttypid IN ('text'::regtype, 'varchar'::regtype) \
                 FROM pg_attribute a \
                 WHERE a.attrelid = to_regclass($1::text) AND a.attnum > 0 AND NOT a.attisdropped",
                &[&table],
            )
            .map_err(Self::err(column))?;
        let find = |name: &str| {
            rows.iter()
                .find(|r| r.get::<_, String>(0) == name)
                .map(|r| (r.get::<_, String>(1), r.get::<_, bool>(2)))
        };
        match find(column.column.last()) {
            None => return Err(schema_error(format!("no column {}", column.column))),
            Some((ty, false)) => {
                return Err(schema_error(format!(
                    "column {} is of type {ty}; tokens are read from text or varchar columns",
                    column.column
                )));
            }
            Some(_) => {}
        }
        if let Some(key) = &column.key {
            match find(key.last()) {
                None => return Err(schema_error(format!("no key column {key}"))),
                Some((ty, _)) if !safe_type_name(&ty) => {
                    return Err(schema_error(format!(
                        "key column {key} is of type {ty:?}, which cannot be used as a key here"
                    )));
                }
                Some((ty, _)) => self.key_type = Some(ty),
            }
        }
        Ok(())
    }

    fn count(&mut self, column: &Column, rows: Rows) -> Result<u64> {
        let n: i64 = self
            .client
            .query_one(&count_sql(column, rows), &[])
            .map_err(Self::err(column))?
            .get(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn scan(
        &mut self,
        column: &Column,
        each: &mut dyn FnMut(Option<Key>, CellRef<'_>) -> Result<()>,
    ) -> Result<()> {
        let sql = match &column.key {
            Some(k) => format!(
                "SELECT {}::text, {}::text FROM {}",
                k.quoted(),
                column.column.quoted(),
                column.table.quoted()
            ),
            None => format!(
                "SELECT {}::text FROM {}",
                column.column.quoted(),
                column.table.quoted()
            ),
        };
        let keyed = column.key.is_some();
        let mut tx = self.client.transaction().map_err(Self::err(column))?;
        let portal = tx.bind(&sql, &[]).map_err(Self::err(column))?;
        loop {
            let rows = tx
                .query_portal(&portal, SCAN_CHUNK)
                .map_err(Self::err(column))?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let (k, value): (Option<Key>, Option<&str>) = if keyed {
                    (
                        row.try_get::<_, Option<String>>(0)
                            .map_err(Self::err(column))?
                            .map(Key::Text),
                        row.try_get(1).map_err(Self::err(column))?,
                    )
                } else {
                    (None, row.try_get(0).map_err(Self::err(column))?)
                };
                each(
                    k,
                    value.map_or(CellRef::Null, |v| CellRef::Bytes(v.as_bytes())),
                )?;
            }
        }
        tx.commit().map_err(Self::err(column))
    }

    fn page(&mut self, column: &Column, after: Option<&Key>, limit: usize) -> Result<Vec<Row>> {
        let (k, ty) = self.keyed(column)?;
        // Qualified: a bare `ORDER BY "id"` would sort by the text output
        // column of that name.
        let cond = if after.is_some() {
            format!("src.{k} > $2::text::{ty}")
        } else {
            format!("src.{k} IS NOT NULL AND $2::text IS NULL")
        };
        let sql = format!(
            "SELECT src.{k}::text, src.{c}::text FROM {t} AS src WHERE {cond} ORDER BY src.{k} LIMIT $1",
            c = column.column.quoted(),
            t = column.table.quoted(),
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let after_text: Option<String> = after.map(ToString::to_string);
        let rows = self
            .client
            .query(&sql, &[&limit, &after_text])
            .map_err(Self::err(column))?;
        Self::rows(column, &rows)
    }

    fn fetch(&mut self, column: &Column, keys: &[Key]) -> Result<Vec<Row>> {
        let (k, ty) = self.keyed(column)?;
        let sql = format!(
            "SELECT src.{k}::text, src.{c}::text FROM {t} AS src WHERE src.{k} = ANY($1::text[]::{ty}[])",
            c = column.column.quoted(),
            t = column.table.quoted(),
        );
        let wanted: Vec<String> = keys.iter().map(ToString::to_string).collect();
        let rows = self
            .client
            .query(&sql, &[&wanted])
            .map_err(Self::err(column))?;
        Self::rows(column, &rows)
    }

    fn write(&mut self, column: &Column, updates: &[Update]) -> Result<Vec<bool>> {
        let (k, ty) = self.keyed(column)?;
        let c = column.column.quoted();
        let sql = format!(
            "UPDATE {t} AS t SET {c} = v.new \
             FROM unnest($1::text[], $2::text[], $3::text[]) AS v(k, old, new) \
             WHERE t.{k} = v.k::{ty} AND t.{c} = v.old \
             RETURNING v.k",
            t = column.table.quoted(),
        );
        let text = |cell: &Cell| match cell {
            Cell::Text(t) => Some(t.clone()),
            _ => None,
        };
        let keys: Vec<String> = updates.iter().map(|u| u.key.to_string()).collect();
        let old: Vec<Option<String>> = updates.iter().map(|u| text(&u.old)).collect();
        let new: Vec<Option<String>> = updates.iter().map(|u| text(&u.new)).collect();
        let rows = self
            .client
            .query(&sql, &[&keys, &old, &new])
            .map_err(Self::err(column))?;
        let done: std::collections::HashSet<String> = rows.iter().map(|r| r.get(0)).collect();
        Ok(keys.iter().map(|k| done.contains(k)).collect())
    }
}
