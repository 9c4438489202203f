//! Rewrap: re-encrypt every value of a column that is not under the active
//! version, keeping each token's timestamp.
//!
//! - Rows are visited in key order, a page of `batch` rows at a time; each
//!   page's updates are one transaction.
//! - Every update is a compare-and-set on the value read: a row changed
//!   meanwhile is not overwritten; it is counted, read again and planned
//!   again.
//! - Every new token is decrypted and compared with the old plaintext
//!   before anything of its page is written.
//! - Resumable by construction: values under the active version are left
//!   alone, so a run stopped at any point (even by SIGKILL: the open
//!   transaction rolls back) is continued by running it again, and a
//!   finished table is not written to at all.

use std::collections::BTreeMap;

use secrets_manager::keystore::VersionState;
use secrets_manager::{Identified, SecretsManager, TokenIdentifier, Version};
use serde::Serialize;

use crate::Progress;
use crate::database::{Backend, Cell, Database, Key, Row, Rows, Update};
use crate::error::{DbError, Result};
use crate::target::{Column, Split, ValueFormat, split};

/// The default number of rows per transaction.
pub const DEFAULT_BATCH: usize = 1000;

/// How many times a page's rows changed by others are read again before
/// they are left for the next run.
const MAX_REVISITS: usize = 16;

/// Settings of a [`rewrap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RewrapOptions {
    /// Rows per transaction (default [`DEFAULT_BATCH`]).
    pub batch: usize,
    /// Plan and check everything, write nothing.
    pub dry_run: bool,
}

impl Default for RewrapOptions {
    fn default() -> Self {
        Self {
            batch: DEFAULT_BATCH,
            dry_run: false,
        }
    }
}

impl RewrapOptions {
    /// Rows per transaction.
    #[must_use]
    pub fn batch(mut self, rows: usize) -> Self {
        self.batch = rows;
        self
    }

    /// Plan and check, write nothing.
    #[must_use]
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }
}

/// A row left alone because no usable version opens its token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Unopened {
    /// The row's key.
    pub id: String,
    /// The retired version whose key verifies it, if any (retired versions
    /// do not decrypt; activate nothing, but consider re-adding the key
    /// under a new name if the value matters).
    pub retired_version: Option<String>,
}

/// What a [`rewrap`] did (or, in a dry run, would do). Its JSON form is
/// stable like [`Census`](crate::Census)'s.
///
/// Every row visited lands in one count: `rows` = `rewrapped` +
/// `prefixes_fixed` + `already_active` + `null` + `empty` + `not_tokens` +
/// `unopened.len()` + `still_changing.len()` + `gone`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RewrapReport {
    /// `"secrets-manager/db-rewrap/1"`.
    pub report: &'static str,
    /// The table.
    pub table: String,
    /// The column.
    pub column: String,
    /// `plain` or `versioned`.
    pub value_format: &'static str,
    /// The version everything was re-encrypted under.
    pub active_version: String,
    /// Nothing was written.
    pub dry_run: bool,
    /// Rows visited.
    pub rows: u64,
    /// Values re-encrypted under the active version (or that would be).
    pub rewrapped: u64,
    /// `rewrapped`, by the version that had made them.
    pub rewrapped_from: BTreeMap<String, u64>,
    /// Versioned values under the active version whose prefix was wrong
    /// and was rewritten (the token kept).
    pub prefixes_fixed: u64,
    /// Values already under the active version, left alone.
    pub already_active: u64,
    /// NULL values.
    pub null: u64,
    /// Empty values.
    pub empty: u64,
    /// Values that are not tokens, left alone.
    pub not_tokens: u64,
    /// Their keys.
    pub not_token_ids: Vec<String>,
    /// Versioned values whose prefix disagreed with the version that opens
    /// the token (rewritten with the right one).
    pub prefix_mismatch_ids: Vec<String>,
    /// Tokens no usable version opens, left alone.
    pub unopened: Vec<Unopened>,
    /// Compare-and-set updates that found the row changed meanwhile; each
    /// such row was read again and planned again.
    pub conflicts: u64,
    /// Rows still changing after every revisit, left for the next run.
    pub still_changing: Vec<String>,
    /// Rows deleted while the rewrap ran.
    pub gone: u64,
    /// Rows whose key is NULL: no update by key reaches them, so they were
    /// not visited (and are not in `rows`). Give them keys, or choose a key
    /// column without NULLs.
    pub rows_without_key: u64,
    /// Transactions committed.
    pub transactions: u64,
}

impl RewrapReport {
    /// Whether every value that is a token is now under the active version
    /// (nothing unopened, nothing left changing, no row left unvisited for
    /// want of a key).
    #[must_use]
    pub fn is_complete(&self) -> bool {
        self.unopened.is_empty() && self.still_changing.is_empty() && self.rows_without_key == 0
    }
}

/// What to do with one row.
enum Plan {
    Null,
    Empty,
    NotToken,
    Active,
    Unopened(Option<Version>),
    /// Rewrite the value: a new token (`Some(from)`) or a fixed prefix.
    Write {
        from: Option<Version>,
        mismatch: bool,
        new: Cell,
    },
}

/// Everything a row's plan needs.
struct Planner<'a> {
    manager: &'a SecretsManager,
    identifier: &'a TokenIdentifier,
    active: Version,
    column: &'a Column,
    /// Threads that plan a page: the cores, counted once per run.
    threads: usize,
}

impl Planner<'_> {
    fn plan(&self, row: &Row) -> Result<Plan> {
        let bytes: &[u8] = match &row.cell {
            Cell::Null => return Ok(Plan::Null),
            Cell::Other => return Ok(Plan::NotToken),
            Cell::Text(t) => t.as_bytes(),
            Cell::Blob(b) => b,
        };
        if bytes.is_empty() {
            return Ok(Plan::Empty);
        }
        let Split::Token(token, prefix) = split(self.column.format, bytes) else {
            return Ok(Plan::NotToken);
        };
        // One trial finds the version; only a value not under the active
        // version is then decrypted, with the key that verified it.
        let verified = match self.identifier.verify(token, prefix) {
            Ok(verified) if verified.state() == VersionState::Usable => verified,
            Ok(retired) => return Ok(Plan::Unopened(Some(retired.version()))),
            Err(Identified::NotAToken) => return Ok(Plan::NotToken),
            Err(_) => return Ok(Plan::Unopened(None)),
        };
        let from = verified.version();
        let mismatch = prefix.is_some_and(|p| Version::new(p).ok() != Some(from));
        let versioned = |token: String| match self.column.format {
            ValueFormat::Versioned => format!("{}:{token}", self.active),
            _ => token,
        };
        if from == self.active {
            if !mismatch {
                return Ok(Plan::Active);
            }
            // The token is right, its label is not. (A verified token is
            // base64, so text; anything else is left alone.)
            let Ok(token) = std::str::from_utf8(token) else {
                return Ok(Plan::NotToken);
            };
            return Ok(Plan::Write {
                from: None,
                mismatch,
                new: row.cell.like(versioned(token.to_owned())),
            });
        }
        let Ok(opened) = verified.open() else {
            // A bad padding under a valid HMAC.
            return Ok(Plan::Unopened(None));
        };
        // The HMAC verified, so the timestamp is authentic.
        let (to, fresh) = self
            .manager
            .encrypt_at_time(&opened.plaintext, opened.timestamp)
            .map_err(|e| self.column.manager_error(e))?;
        if to != self.active {
            return Err(DbError::ActiveChanged {
                table: self.column.table_text(),
                column: self.column.column_text(),
                from: self.active.to_string(),
                to: to.to_string(),
            });
        }
        // Check before writing: the new token opens, under the active
        // version, to exactly the old plaintext.
        let checked = self
            .identifier
            .verify(fresh.as_bytes(), Some(to.as_str()))
            .and_then(secrets_manager::Verified::open)
            .is_ok_and(|again| again.version == to && again.plaintext[..] == opened.plaintext[..]);
        if !checked {
            return Err(DbError::Check {
                table: self.column.table_text(),
                column: self.column.column_text(),
                id: key_text(row),
                version: to.to_string(),
            });
        }
        Ok(Plan::Write {
            from: Some(from),
            mismatch,
            new: row.cell.like(versioned(fresh)),
        })
    }

    /// Plans rows on every core: the page's cryptography in parallel, its
    /// database work on the caller's thread.
    fn plan_all(&self, rows: &[Row]) -> Result<Vec<Plan>> {
        let threads = self.threads;
        if threads < 2 || rows.len() < 64 {
            return rows.iter().map(|r| self.plan(r)).collect();
        }
        let chunk = rows.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let handles: Vec<_> = rows
                .chunks(chunk)
                .map(|part| scope.spawn(move || part.iter().map(|r| self.plan(r)).collect()))
                .collect();
            let mut out = Vec::with_capacity(rows.len());
            for handle in handles {
                let part: Result<Vec<Plan>> = handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                out.extend(part?);
            }
            Ok(out)
        })
    }
}

fn key_text(row: &Row) -> String {
    row.key
        .as_ref()
        .map_or_else(String::new, ToString::to_string)
}

/// Re-encrypts every value of `column` not under the active version,
/// keeping each token's timestamp, in transactions of `options.batch` rows,
/// each row by compare-and-set (see the module documentation). Values no
/// usable version opens are left alone and listed in the report.
///
/// ```
/// use secrets_manager::{SecretsConfig, SecretsManager};
/// use secrets_manager_db::{Column, Database, RewrapOptions, rewrap, scan};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("app.db");
/// let manager = SecretsManager::new(
///     SecretsConfig::builder()
///         .fernet_key("v1", "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=")
///         .build()?,
/// )?;
/// let (_, token) = manager.encrypt(b"s3cr3t")?;
/// let sqlite = rusqlite::Connection::open(&path)?;
/// sqlite.execute_batch("CREATE TABLE users (id INTEGER PRIMARY KEY, token TEXT)")?;
/// sqlite.execute("INSERT INTO users (token) VALUES (?1)", [&token])?;
///
/// manager
///     .rotate_to_fernet_key("v2", "agYRpQ3kPqsXUNh1ZQ6Nr0xmXJtY_p8u0XF6ZxBzIRs=")?
///     .apply()?;
/// let mut db = Database::open(&format!("sqlite:{}", path.display()))?;
/// let column = Column::new("users", "token")?.key_column("id")?;
/// let report = rewrap(&manager, &mut db, &column, RewrapOptions::default(), &())?;
/// assert_eq!((report.rewrapped, report.is_complete()), (1, true));
/// let census = scan(&manager, &mut db, &column, &())?;
/// assert_eq!(census.retirable, ["v1"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// No key column; a batch of zero; the table or a column is missing or
/// cannot hold tokens; the database fails (the open transaction rolls
/// back); a new token that fails its check (nothing of its page is
/// written); the active version changed while running.
pub fn rewrap(
    manager: &SecretsManager,
    db: &mut Database,
    column: &Column,
    options: RewrapOptions,
    progress: &dyn Progress,
) -> Result<RewrapReport> {
    if column.key.is_none() {
        return Err(DbError::NoKeyColumn {
            table: column.table_text(),
            column: column.column_text(),
        });
    }
    if options.batch == 0 {
        return Err(DbError::BatchSize);
    }
    let identifier = manager
        .token_identifier()
        .map_err(|e| column.manager_error(e))?;
    let planner = Planner {
        manager,
        identifier: &identifier,
        active: identifier.active_version(),
        column,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    run(&planner, db.backend(), options, progress)
}

fn run(
    planner: &Planner<'_>,
    backend: &mut dyn Backend,
    options: RewrapOptions,
    progress: &dyn Progress,
) -> Result<RewrapReport> {
    let column = planner.column;
    backend.check(column)?;
    progress.start(backend.count(column, Rows::All)?);

    let mut report = RewrapReport {
        report: "secrets-manager/db-rewrap/1",
        table: column.table_text(),
        column: column.column_text(),
        value_format: column.format.as_str(),
        active_version: planner.active.to_string(),
        dry_run: options.dry_run,
        rows_without_key: backend.count(column, Rows::WithoutKey)?,
        ..RewrapReport::default()
    };
    // A pipeline of two stages: this thread reads and writes pages; a
    // planner thread does the next page's cryptography meanwhile. Pages are
    // still written in key order, each in its own transaction.
    std::thread::scope(|scope| {
        let (pages, planner_in) = std::sync::mpsc::sync_channel::<Vec<Row>>(1);
        let (planner_out, planned) =
            std::sync::mpsc::sync_channel::<(Vec<Row>, Result<Vec<Plan>>)>(1);
        scope.spawn(move || {
            for rows in planner_in {
                let plans = planner.plan_all(&rows);
                if planner_out.send((rows, plans)).is_err() {
                    break;
                }
            }
        });
        let mut after: Option<Key> = None;
        let read = |backend: &mut dyn Backend, after: &mut Option<Key>| {
            let rows = backend.page(column, after.as_ref(), options.batch)?;
            Ok::<_, DbError>(rows.last().map(|last| last.key.clone()).map(|key| {
                *after = key;
                rows
            }))
        };
        let mut in_flight = 0;
        if let Some(rows) = read(backend, &mut after)? {
            in_flight += usize::from(pages.send(rows).is_ok());
        }
        while in_flight > 0 {
            // Read ahead while the planner works on the page in flight.
            let ahead = read(backend, &mut after)?;
            let Ok((rows, plans)) = planned.recv() else {
                break; // The planner panicked: the scope passes it on.
            };
            in_flight -= 1;
            if let Some(next) = ahead {
                in_flight += usize::from(pages.send(next).is_ok());
            }
            let page_len = rows.len() as u64;
            report.rows += page_len;
            settle(planner, backend, options, &mut report, rows, plans?)?;
            progress.advance(page_len);
        }
        Ok(report)
    })
}

/// Writes one planned page, revisiting the rows changed meanwhile.
fn settle(
    planner: &Planner<'_>,
    backend: &mut dyn Backend,
    options: RewrapOptions,
    report: &mut RewrapReport,
    mut visit: Vec<Row>,
    mut plans: Vec<Plan>,
) -> Result<()> {
    let column = planner.column;
    for round in 0..=MAX_REVISITS {
        let mut updates = Vec::new();
        let mut written = Vec::new();
        for (row, plan) in visit.into_iter().zip(plans) {
            match plan {
                Plan::Null => report.null += 1,
                Plan::Empty => report.empty += 1,
                Plan::Active => report.already_active += 1,
                Plan::NotToken => {
                    report.not_tokens += 1;
                    report.not_token_ids.push(key_text(&row));
                }
                Plan::Unopened(retired) => report.unopened.push(Unopened {
                    id: key_text(&row),
                    retired_version: retired.map(|v| v.to_string()),
                }),
                Plan::Write {
                    from,
                    mismatch,
                    new,
                } => {
                    let Some(key) = row.key else { continue };
                    written.push((from, mismatch));
                    updates.push(Update {
                        key,
                        old: row.cell,
                        new,
                    });
                }
            }
        }
        let applied = if options.dry_run || updates.is_empty() {
            vec![true; updates.len()]
        } else {
            let applied = backend.write(column, &updates)?;
            report.transactions += 1;
            applied
        };
        let mut missed = Vec::new();
        for ((from, mismatch), (update, ok)) in
            written.into_iter().zip(updates.into_iter().zip(applied))
        {
            if !ok {
                missed.push(update.key);
                continue;
            }
            if mismatch {
                report.prefix_mismatch_ids.push(update.key.to_string());
            }
            match from {
                Some(v) => {
                    report.rewrapped += 1;
                    *report.rewrapped_from.entry(v.to_string()).or_default() += 1;
                }
                None => report.prefixes_fixed += 1,
            }
        }
        if missed.is_empty() {
            break;
        }
        report.conflicts += missed.len() as u64;
        if round == MAX_REVISITS {
            report
                .still_changing
                .extend(missed.iter().map(ToString::to_string));
            break;
        }
        visit = backend.fetch(column, &missed)?;
        report.gone += (missed.len() - visit.len().min(missed.len())) as u64;
        plans = planner.plan_all(&visit)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::database::CellRef;
    use crate::sqlite::Sqlite;
    use secrets_manager::SecretsConfig;
    use secrets_manager::fernet::{Fernet, Key as FernetKey};

    /// A backend where an "application" changes row 2 between the
    /// rewrap's read and its write, once.
    struct Meddler {
        inner: Sqlite,
        app: rusqlite::Connection,
        value: String,
        done: bool,
    }

    impl Backend for Meddler {
        fn check(&mut self, c: &Column) -> Result<()> {
            self.inner.check(c)
        }
        fn count(&mut self, c: &Column, rows: Rows) -> Result<u64> {
            self.inner.count(c, rows)
        }
        fn scan(
            &mut self,
            c: &Column,
            each: &mut dyn FnMut(Option<Key>, CellRef<'_>) -> Result<()>,
        ) -> Result<()> {
            self.inner.scan(c, each)
        }
        fn page(&mut self, c: &Column, after: Option<&Key>, limit: usize) -> Result<Vec<Row>> {
            self.inner.page(c, after, limit)
        }
        fn fetch(&mut self, c: &Column, keys: &[Key]) -> Result<Vec<Row>> {
            self.inner.fetch(c, keys)
        }
        fn write(&mut self, c: &Column, updates: &[Update]) -> Result<Vec<bool>> {
            if !self.done {
                self.done = true;
                self.app
                    .execute("UPDATE t SET v = ?1 WHERE id = 2", [&self.value])
                    .unwrap();
            }
            self.inner.write(c, updates)
        }
    }

    #[test]
    fn a_row_changed_between_read_and_write_is_not_overwritten_but_revisited() {
        let (k1, k2) = (FernetKey::generate(), FernetKey::generate());
        let manager = SecretsManager::new(
            SecretsConfig::builder()
                .fernet_key("v1", k1.to_base64().as_str())
                .fernet_key("v2", k2.to_base64().as_str())
                .active_version("v2")
                .build()
                .unwrap(),
        )
        .unwrap();
        let old = Fernet::new(&k1);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let app = rusqlite::Connection::open(&path).unwrap();
        app.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
            .unwrap();
        for (id, text) in [(1, "one"), (2, "two"), (3, "three")] {
            app.execute(
                "INSERT INTO t VALUES (?1, ?2)",
                rusqlite::params![id, old.encrypt(text.as_bytes())],
            )
            .unwrap();
        }
        // The application writes a value of its own, under the old key.
        let mut backend = Meddler {
            inner: Sqlite::open(path.to_str().unwrap()).unwrap(),
            app,
            value: old.encrypt(b"the application's"),
            done: false,
        };
        let identifier = manager.token_identifier().unwrap();
        let column = Column::new("t", "v").unwrap().key_column("id").unwrap();
        let planner = Planner {
            manager: &manager,
            identifier: &identifier,
            active: identifier.active_version(),
            column: &column,
            threads: 2,
        };
        let report = run(&planner, &mut backend, RewrapOptions::default(), &()).unwrap();
        assert_eq!(
            (report.rewrapped, report.conflicts, report.transactions),
            (3, 1, 2)
        );
        let check = rusqlite::Connection::open(&path).unwrap();
        let mut stmt = check.prepare("SELECT v FROM t ORDER BY id").unwrap();
        let values: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let opened: Vec<(String, Vec<u8>)> = values
            .iter()
            .map(|v| {
                let (version, plaintext) = manager.decrypt(v).unwrap();
                (version.to_string(), plaintext.to_vec())
            })
            .collect();
        assert_eq!(
            opened,
            [
                ("v2".to_owned(), b"one".to_vec()),
                ("v2".to_owned(), b"the application's".to_vec()),
                ("v2".to_owned(), b"three".to_vec()),
            ]
        );
    }
}
