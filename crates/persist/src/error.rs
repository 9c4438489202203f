//! Errors of the persistence layer. Each names the file and line, or the
//! variable, that is wrong; none ever includes a value.

use std::path::PathBuf;

/// Where a keyring came from, for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A `.env` file.
    File(PathBuf),
    /// The process environment.
    Environment,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(p) => write!(f, "{}", p.display()),
            Self::Environment => f.write_str("the process environment"),
        }
    }
}

/// A keyring file or environment that cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PersistError {
    /// An operating-system error.
    #[error("{path}: {action}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not UTF-8.
    #[error("{path}:{line}: not valid UTF-8")]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// The first line with invalid bytes.
        line: usize,
    },
    /// A statement python-dotenv cannot read.
    #[error("{path}:{line}: cannot parse this line as NAME=value")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// Where the statement starts.
        line: usize,
    },
    /// A variable defined twice.
    #[error("{path}:{line}: {name} is already defined on line {first}")]
    Duplicate {
        /// The file.
        path: PathBuf,
        /// The second definition.
        line: usize,
        /// The first definition.
        first: usize,
        /// The variable.
        name: String,
    },
    /// A variable the keyring needs is missing.
    #[error("{origin}: {variable} is missing (version {version})")]
    Missing {
        /// Where the keyring came from.
        origin: Source,
        /// The version that needs it.
        version: String,
        /// The missing variable.
        variable: String,
    },
    /// A variable's value is malformed.
    #[error("{origin}: {variable}: {problem}")]
    Invalid {
        /// Where the keyring came from.
        origin: Source,
        /// The variable.
        variable: String,
        /// What is wrong (never the value itself).
        problem: String,
    },
    /// The file's checksum does not match its contents.
    #[error(
        "{path}: checksum mismatch: {variable} does not match the file's contents (edited by hand, or corrupted)"
    )]
    Checksum {
        /// The file.
        path: PathBuf,
        /// The checksum variable.
        variable: String,
    },
    /// Several versions and no active one.
    #[error(
        "{origin}: {variable} is not set and there are {count} versions ({versions}); set it to one of them"
    )]
    NoActive {
        /// Where the keyring came from.
        origin: Source,
        /// The active-version variable.
        variable: String,
        /// How many versions.
        count: usize,
        /// Their names.
        versions: String,
    },
    /// A value that python-dotenv could not read back unchanged.
    #[error("{variable}: {reason}; python-dotenv would not read it back unchanged")]
    Unwritable {
        /// The variable.
        variable: String,
        /// Why.
        reason: &'static str,
    },
}
