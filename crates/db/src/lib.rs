//! Finish a key rotation for tokens at rest in a database column: count
//! what each version still protects ([`scan`]), and re-encrypt what is not
//! under the active version ([`rewrap`]), on SQLite (`sqlite:PATH`, the
//! library bundled) and PostgreSQL (`postgres://...`).
//!
//! The `secrets-manager db scan` and `db rewrap` commands call this crate;
//! an application can run a rewrap itself, with its own manager:
//!
//! ```
//! use secrets_manager::{SecretsConfig, SecretsManager};
//! use secrets_manager_db::{Column, Database, ValueFormat, scan};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("app.db");
//! rusqlite::Connection::open(&path)?
//!     .execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, secret TEXT); INSERT INTO t (secret) VALUES (NULL)")?;
//!
//! let manager = SecretsManager::new(
//!     SecretsConfig::builder()
//!         .fernet_key("v1", "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=")
//!         .build()?,
//! )?;
//! let mut db = Database::open(&format!("sqlite:{}", path.display()))?;
//! let column = Column::new("t", "secret")?.key_column("id")?.format(ValueFormat::Plain);
//! let census = scan(&manager, &mut db, &column, &())?;
//! assert_eq!((census.rows, census.null, census.versions[0].values), (1, 1, 0));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Invariants
//! - No user text is spliced into SQL: table, column and key-column names
//!   are plain (or schema-qualified) identifiers, validated and quoted;
//!   everything else is a bound parameter.
//! - A census decrypts nothing: each token's version is found by verifying
//!   its HMAC, in the key store's trial order.
//! - A rewrap never overwrites a concurrent write (compare-and-set per row),
//!   writes only tokens it has decrypted back to the original plaintext,
//!   commits a batch whole or not at all, and writes nothing to a finished
//!   table.
//! - Errors name the table, column, row key and version; never a token,
//!   key or plaintext.

mod database;
mod error;
mod pg;
mod rewrap;
mod scan;
mod sqlite;
mod target;

pub use crate::database::Database;
pub use crate::error::{DbError, PgFailure, Result};
pub use crate::rewrap::{DEFAULT_BATCH, RewrapOptions, RewrapReport, Unopened, rewrap};
pub use crate::scan::{Census, VersionCount, scan};
pub use crate::target::{Column, Name, ValueFormat};

/// Told how far a [`scan`] or [`rewrap`] has come (a progress bar, a log).
/// `()` ignores it.
pub trait Progress {
    /// The number of rows in the table, before the first.
    fn start(&self, total: u64) {
        let _ = total;
    }

    /// `rows` more rows visited.
    fn advance(&self, rows: u64) {
        let _ = rows;
    }
}

impl Progress for () {}
