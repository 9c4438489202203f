//! Errors of the persistence layer. Each names the file and line, or the
//! variable, that is wrong; none ever includes a value.

use std::path::PathBuf;

use crate::keyring::StoredState;

/// Where a keyring came from, for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// A `.env` file.
    File(PathBuf),
    /// The process environment.
    Environment,
    /// Another store, by its address (`etcd://host:2379/prefix`).
    Store(String),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(p) => write!(f, "{}", p.display()),
            Self::Environment => f.write_str("the process environment"),
            Self::Store(address) => f.write_str(address),
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
        "{path}: checksum mismatch: {variable} does not match the file's contents (edited by hand, or corrupted); after a deliberate edit, `secrets-manager verify --update-checksum` records the new contents"
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
    /// The rewritten file would not read back as the keyring intended, so
    /// nothing was written.
    #[error(
        "{path}: the rewritten file would not read back as intended ({reason}); nothing was written"
    )]
    ReadBack {
        /// The file.
        path: PathBuf,
        /// What differed.
        reason: &'static str,
    },
    /// Adding a version whose name is taken: versions are never replaced.
    #[error("{origin}: version {version} already exists; versions are never replaced")]
    VersionExists {
        /// The keyring.
        origin: Source,
        /// The version.
        version: String,
    },
    /// A lifecycle change names a version the keyring does not have.
    #[error("{origin}: unknown version {version} (available: {available})")]
    UnknownVersion {
        /// The keyring.
        origin: Source,
        /// The version.
        version: String,
        /// The versions there are.
        available: String,
    },
    /// Activating a retired or destroyed version.
    #[error("{origin}: version {version} is {}; only a usable version can be active", .state.as_value().unwrap_or("usable"))]
    NotUsable {
        /// The keyring.
        origin: Source,
        /// The version.
        version: String,
        /// Its state.
        state: StoredState,
    },
    /// Retiring or destroying the active version.
    #[error(
        "{origin}: version {version} is active: activate another version before retiring or destroying it"
    )]
    ActiveVersion {
        /// The keyring.
        origin: Source,
        /// The version.
        version: String,
    },
    /// A file larger than a keyring file can sensibly be.
    #[error("{path}: larger than {limit} bytes; refusing to read it")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit.
        limit: u64,
    },
    /// `${NAME}` references that expand beyond the limit (as nested
    /// references can, exponentially).
    #[error("{path}:{line}: {variable}: ${{...}} references expand beyond {limit} bytes")]
    ExpansionTooLarge {
        /// The file.
        path: PathBuf,
        /// The statement's line.
        line: usize,
        /// The variable being expanded.
        variable: String,
        /// The limit on all expanded values together.
        limit: usize,
    },
    /// Not a regular file: a directory, FIFO, socket or device.
    #[error("{path}: is a {kind}, not a regular file")]
    NotRegularFile {
        /// The path.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// The caller's edit gave up; the caller says why.
    #[error("the keyring change was refused")]
    Aborted,
    /// An error shared with another holder.
    #[error(transparent)]
    Shared(std::sync::Arc<PersistError>),
    /// A store that cannot be written (the process environment).
    #[error("{origin} is read-only: keyring changes need a file or a store")]
    ReadOnly {
        /// The store.
        origin: Source,
    },
    /// A change to an application variable that names a keyring
    /// variable: only keyring writes change those.
    #[error(
        "{path}: {variable} belongs to the keyring; application values never change it (the keyring commands do)"
    )]
    KeyringVariable {
        /// The file.
        path: PathBuf,
        /// The variable.
        variable: String,
    },
    /// A symbolic link whose target does not exist.
    #[error("{path}: is a symbolic link to {target}, which does not exist")]
    DanglingSymlink {
        /// The link.
        path: PathBuf,
        /// Where it points.
        target: PathBuf,
    },
}

/// Something a write did not manage that did not stop it: the keyring was
/// written.
#[derive(Debug)]
#[non_exhaustive]
pub enum WriteWarning {
    /// The file's owner or group could not be kept (the writer may not
    /// `chown`); the file now belongs to the writer.
    Owner {
        /// The file.
        path: PathBuf,
        /// The owner and group it had.
        uid: u32,
        /// Its group.
        gid: u32,
        /// Why.
        error: std::io::Error,
    },
    /// The directory could not be synced after the rename: the new file is
    /// in place, but may not survive a power failure.
    DirectorySync {
        /// The directory.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
}

impl std::fmt::Display for WriteWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Owner {
                path,
                uid,
                gid,
                error,
            } => write!(
                f,
                "{}: cannot keep owner {uid} and group {gid} ({error}); the file now belongs to this user",
                path.display()
            ),
            Self::DirectorySync { path, error } => write!(
                f,
                "{}: cannot sync the directory after writing ({error}); the write may not survive a power failure",
                path.display()
            ),
        }
    }
}
