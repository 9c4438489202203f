//! What can go wrong. Messages name the table, column, row id and version
//! involved, never a token, key or plaintext.

/// An error from a census or a rewrap.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// A table, column or key-column name that is not a plain (or, for a
    /// table, schema-qualified) identifier. Nothing was sent to the
    /// database.
    #[error(
        "{what} name {name:?} refused: names are plain identifiers (ASCII letters, digits and _, not starting with a digit, at most 63 characters){qualified}"
    )]
    Identifier {
        /// `table`, `column` or `key column`.
        what: &'static str,
        /// The name as given (printable form).
        name: String,
        /// A note on schema qualification, for tables.
        qualified: &'static str,
    },
    /// A database address that is neither `sqlite:PATH` nor
    /// `postgres://...`.
    #[error("unsupported database address {scheme:?}: use sqlite:PATH or postgres://...")]
    Url {
        /// What came before the first `:` (the rest may hold a password).
        scheme: String,
    },
    /// The SQLite database could not be opened.
    #[error("cannot open SQLite database {path}: {source}")]
    SqliteOpen {
        /// Its path.
        path: String,
        /// Why.
        source: Box<rusqlite::Error>,
    },
    /// The PostgreSQL address does not parse or the server cannot be
    /// reached.
    #[error("cannot connect to PostgreSQL at {target}: {source}")]
    PostgresConnect {
        /// Hosts and database (never the password).
        target: String,
        /// Why.
        source: postgres::Error,
    },
    /// TLS could not be set up for PostgreSQL.
    #[error("cannot set up TLS for PostgreSQL: {0}")]
    Tls(String),
    /// The table or a column is missing, or of a type that cannot hold
    /// tokens.
    #[error("{table}: {message}")]
    Schema {
        /// The table.
        table: String,
        /// What is wrong.
        message: String,
    },
    /// A statement failed on SQLite.
    #[error("{table}.{column}: SQLite: {source}")]
    Sqlite {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// Why.
        source: Box<rusqlite::Error>,
    },
    /// A statement failed on PostgreSQL.
    #[error("{table}.{column}: PostgreSQL: {source}")]
    Postgres {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// Why: the server's code and message, without the detail that
        /// may quote the row.
        source: PgFailure,
    },
    /// `rewrap` needs a key column to update rows by.
    #[error("{table}.{column}: rewrap needs a key column (--key-column) to update rows by")]
    NoKeyColumn {
        /// The table.
        table: String,
        /// The column.
        column: String,
    },
    /// A batch size of zero.
    #[error("the batch size must be at least 1")]
    BatchSize,
    /// A re-encrypted token did not decrypt back to the original plaintext
    /// under the active version: nothing of its batch was written.
    #[error(
        "{table}.{column}: row {id}: the new token under {version} did not decrypt to the original plaintext; nothing of this batch was written"
    )]
    Check {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// The row's key.
        id: String,
        /// The active version.
        version: String,
    },
    /// The keyring's active version changed while the rewrap ran.
    #[error(
        "{table}.{column}: the active version changed from {from} to {to} during the rewrap; run it again"
    )]
    ActiveChanged {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// The active version when the rewrap started.
        from: String,
        /// The version that encrypted instead.
        to: String,
    },
    /// From the secrets manager (a key that cannot be derived, a cleaned-up
    /// manager).
    #[error("{table}.{column}: {source}")]
    Manager {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// Why.
        source: Box<secrets_manager::Error>,
    },
}

/// `Result` with [`DbError`].
pub type Result<T, E = DbError> = std::result::Result<T, E>;

/// A statement's failure on PostgreSQL as errors show it: the severity,
/// the SQLSTATE and the server's primary message, never its `DETAIL` or
/// `HINT`. Those may quote a row's contents ("Failing row contains (...)",
/// "Key (secret)=(...)"): tokens, and other columns' values.
pub struct PgFailure(postgres::Error);

impl PgFailure {
    pub(crate) fn new(error: postgres::Error) -> Self {
        Self(error)
    }

    /// The SQLSTATE code, when the server reported the failure.
    #[must_use]
    pub fn sqlstate(&self) -> Option<&str> {
        self.0.as_db_error().map(|e| e.code().code())
    }
}

impl std::fmt::Display for PgFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.as_db_error() {
            Some(e) => write!(f, "{} {}: {}", e.severity(), e.code().code(), e.message()),
            // Client-side: the connection or the protocol, no row data.
            None => write!(f, "{}", self.0),
        }
    }
}

impl std::fmt::Debug for PgFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgFailure({self})")
    }
}

/// No `source`: the wrapped error would print the detail this type leaves
/// out.
impl std::error::Error for PgFailure {}
