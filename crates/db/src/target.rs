//! What to work on: a table's column, the key column that names its rows,
//! and how values are stored. Names are validated here, so no user text
//! is ever spliced into SQL: only names made of `[A-Za-z0-9_]` (and one
//! `.` between schema and table), always double-quoted.

use std::fmt;

use crate::error::{DbError, Result};

/// PostgreSQL's limit (`NAMEDATALEN - 1`); SQLite has none, but a longer
/// name is a mistake anywhere.
const MAX_NAME: usize = 63;

/// A validated SQL identifier: a plain name, or `schema.name` for a table.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Name {
    /// One part, or schema and name.
    parts: Vec<String>,
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({self})")
    }
}

/// As given (`schema.table`), for messages.
impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.parts.join("."))
    }
}

fn plain(part: &str) -> bool {
    let mut bytes = part.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && part.len() <= MAX_NAME
}

impl Name {
    fn parse(text: &str, what: &'static str, qualified: bool) -> Result<Self> {
        let parts: Vec<&str> = if qualified {
            text.split('.').collect()
        } else {
            vec![text]
        };
        if parts.len() > 2 || !parts.iter().all(|p| plain(p)) {
            return Err(DbError::Identifier {
                what,
                name: text.escape_debug().to_string(),
                qualified: if qualified {
                    "; a table may be schema-qualified (schema.table)"
                } else {
                    ""
                },
            });
        }
        Ok(Self {
            parts: parts.into_iter().map(str::to_owned).collect(),
        })
    }

    /// A table name: `name` or `schema.name`.
    ///
    /// # Errors
    ///
    /// [`DbError::Identifier`] for anything else.
    pub fn table(text: &str) -> Result<Self> {
        Self::parse(text, "table", true)
    }

    /// A column name: a plain identifier.
    ///
    /// # Errors
    ///
    /// [`DbError::Identifier`] for anything else.
    pub fn column(text: &str) -> Result<Self> {
        Self::parse(text, "column", false)
    }

    /// The quoted form for SQL: `"schema"."name"`. Safe by construction:
    /// the parts hold no quote.
    #[must_use]
    pub fn quoted(&self) -> String {
        self.parts
            .iter()
            .map(|p| format!("\"{p}\""))
            .collect::<Vec<_>>()
            .join(".")
    }

    /// The last part (the table without its schema).
    pub(crate) fn last(&self) -> &str {
        self.parts.last().map_or("", String::as_str)
    }
}

/// How a column stores tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ValueFormat {
    /// The value is the token.
    #[default]
    Plain,
    /// `<version>:<token>`: the prefix names the version that made the
    /// token; it is tried first, and rewritten with the token.
    Versioned,
}

impl ValueFormat {
    /// `plain` or `versioned`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Versioned => "versioned",
        }
    }
}

impl fmt::Display for ValueFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A column of tokens: the table, the column, the key column naming its
/// rows (needed to rewrap, and to list the rows no version opens), and the
/// value format.
///
/// ```
/// use secrets_manager_db::{Column, ValueFormat};
///
/// let column = Column::new("app.users", "api_token")?
///     .key_column("id")?
///     .format(ValueFormat::Versioned);
/// assert_eq!(column.to_string(), "app.users.api_token");
/// assert!(Column::new("users; DROP TABLE users", "x").is_err());
/// # Ok::<(), secrets_manager_db::DbError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub(crate) table: Name,
    pub(crate) column: Name,
    pub(crate) key: Option<Name>,
    pub(crate) format: ValueFormat,
}

impl Column {
    /// `table` (`name` or `schema.name`) and `column`, both validated.
    ///
    /// # Errors
    ///
    /// [`DbError::Identifier`] for a name that is not a plain identifier.
    pub fn new(table: &str, column: &str) -> Result<Self> {
        Ok(Self {
            table: Name::table(table)?,
            column: Name::column(column)?,
            key: None,
            format: ValueFormat::Plain,
        })
    }

    /// The key column: unique and not null (a primary key). Rows are
    /// visited in its order and updated by it.
    ///
    /// # Errors
    ///
    /// [`DbError::Identifier`] for a name that is not a plain identifier.
    pub fn key_column(mut self, key: &str) -> Result<Self> {
        self.key = Some(Name::parse(key, "key column", false)?);
        Ok(self)
    }

    /// How values are stored (default [`ValueFormat::Plain`]).
    #[must_use]
    pub fn format(mut self, format: ValueFormat) -> Self {
        self.format = format;
        self
    }

    /// The table.
    #[must_use]
    pub fn table(&self) -> &Name {
        &self.table
    }

    /// The column.
    #[must_use]
    pub fn column(&self) -> &Name {
        &self.column
    }

    /// The key column, if set.
    #[must_use]
    pub fn key(&self) -> Option<&Name> {
        self.key.as_ref()
    }

    /// The value format.
    #[must_use]
    pub fn value_format(&self) -> ValueFormat {
        self.format
    }

    pub(crate) fn table_text(&self) -> String {
        self.table.to_string()
    }

    pub(crate) fn column_text(&self) -> String {
        self.column.to_string()
    }

    /// The key store failed while working on this column.
    pub(crate) fn manager_error(&self, source: secrets_manager::Error) -> crate::DbError {
        crate::DbError::Manager {
            table: self.table_text(),
            column: self.column_text(),
            source: Box::new(source),
        }
    }
}

/// `table.column`.
impl fmt::Display for Column {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.table, self.column)
    }
}

/// A stored value split by the format: the token, and the prefix of a
/// versioned value.
pub(crate) enum Split<'a> {
    /// The token and, for a versioned value, its prefix.
    Token(&'a [u8], Option<&'a str>),
    /// A versioned value without a usable prefix.
    Malformed,
}

pub(crate) fn split(format: ValueFormat, value: &[u8]) -> Split<'_> {
    match format {
        ValueFormat::Plain => Split::Token(value, None),
        ValueFormat::Versioned => {
            let Some(at) = value.iter().position(|&b| b == b':') else {
                return Split::Malformed;
            };
            let (prefix, rest) = (&value[..at], &value[at + 1..]);
            match std::str::from_utf8(prefix) {
                Ok(p) if !p.is_empty() => Split::Token(rest, Some(p)),
                _ => Split::Malformed,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_refused() {
        for bad in [
            "",
            "1abc",
            "a b",
            "a;b",
            "a\"b",
            "a'b",
            "a.b.c",
            ".a",
            "a.",
            "a--",
            "t\0",
            "tä",
            "x/*",
            &"a".repeat(64),
        ] {
            assert!(Name::table(bad).is_err(), "{bad:?}");
            assert!(Name::column(bad).is_err(), "{bad:?}");
        }
        assert!(Name::column("s.t").is_err());
        assert_eq!(Name::table("s.T_1").unwrap().quoted(), "\"s\".\"T_1\"");
        assert_eq!(Name::column("_c").unwrap().quoted(), "\"_c\"");
        let err = Name::table("a;b").unwrap_err().to_string();
        assert!(err.contains("\"a;b\"") && err.contains("schema"), "{err}");
    }

    #[test]
    fn versioned_values_split_at_the_first_colon() {
        assert!(matches!(
            split(ValueFormat::Versioned, b"v1:abc"),
            Split::Token(b"abc", Some("v1"))
        ));
        assert!(matches!(
            split(ValueFormat::Versioned, b"abc"),
            Split::Malformed
        ));
        assert!(matches!(
            split(ValueFormat::Versioned, b":abc"),
            Split::Malformed
        ));
        assert!(matches!(
            split(ValueFormat::Plain, b"v1:abc"),
            Split::Token(b"v1:abc", None)
        ));
    }
}
