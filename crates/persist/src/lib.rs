//! `.env` keyring files and process-environment keyrings, as the Python
//! SecretsManager reads and writes them, for secrets-manager.
//!
//! This crate knows the format, not the cryptography: it reads and writes
//! passwords, salts and keys as text.
//!
//! ```
//! use secrets_manager_persist::{
//!     PersistError, Prefixes, StoredKey, StoredVersion, read_keyring, update_keyring,
//! };
//!
//! let dir = std::env::temp_dir().join(format!("persist-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let path = dir.join(".env.secrets");
//! let prefixes = Prefixes::default();
//! let key = StoredKey::Password {
//!     password: "correct horse".into(),
//!     salt: "c2FsdA==".into(),
//!     salt_hash: None,
//! };
//! update_keyring(&path, &prefixes, |keyring| {
//!     keyring.add(StoredVersion::new("v1", key).with_activated_at(Some(1_700_000_000)))?;
//!     keyring.set_active("v1")
//! })?;
//! let text = std::fs::read_to_string(&path)?;
//! assert!(text.contains("ENCRYPTION_KEYS__v1=\"correct horse\""));
//! assert!(text.contains("ENCRYPTION_ENV_CHECKSUM="));
//!
//! // Versions are never replaced; lifecycle changes are persisted.
//! let (_, report) = update_keyring(&path, &prefixes, |keyring| {
//!     assert!(keyring.add(StoredVersion::tombstone("v1")).is_err());
//!     Ok::<_, PersistError>(())
//! })?;
//! assert!(!report.written);
//! let keyring = read_keyring(&path, &prefixes)?;
//! assert_eq!(keyring.active(), Some("v1"));
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Invariants
//! - Reading follows python-dotenv (`dotenv_values`) exactly, including
//!   escapes and `${NAME}` expansion; lines it would skip are errors here.
//! - A version, once written, is immutable: a write may add versions,
//!   advance their lifecycle (retired, destroyed: key material erased, a
//!   tombstone kept), move the active pointer and refresh the checksum,
//!   nothing else. Existing lines are kept byte for byte.
//! - A write reads its result back before replacing the file: the new text
//!   must give exactly the intended keyring, or nothing is written.
//! - Writes are atomic, durable and serialised by an exclusive lock on the
//!   file; they follow symbolic links to their target, keep the owner,
//!   group and mode, and use unpredictable temporary names.
//! - Reading is bounded: files over [`MAX_FILE_LEN`], expansions over
//!   [`MAX_EXPANDED_LEN`]; FIFOs and devices are refused, never waited on.
//! - No error message contains a value.
//! - Application values in a `.env` file ([`update_variables`]) go through
//!   the same lock, atomic write and read-back check; keyring variables
//!   are never changed there, and a checksum is refreshed.

mod dotenv;
mod error;
mod file;
mod keyring;
mod quote;
mod store;
mod values;

pub use crate::error::{PersistError, Source, WriteWarning};
pub use crate::file::{
    ChecksumRefresh, HEADER, MAX_EXPANDED_LEN, MAX_FILE_LEN, WriteReport, dotenv_values,
    parse_keyring_bytes, read_environment, read_keyring, refresh_checksum, update_keyring,
};
pub use crate::keyring::{Keyring, Prefixes, StoredKey, StoredState, StoredVersion};
pub use crate::store::{EnvStore, FileStore, KeyringStore, OnChange, Watch};
pub use crate::values::{Variable, read_variables, update_variables, writable_name};
/// A file's variables in order: name, and value (`None` for a bare `NAME`).
pub type DotenvValues = Vec<(String, Option<zeroize::Zeroizing<String>>)>;

/// Re-exported: passwords and keys are [`secrecy::SecretString`]s.
pub use secrecy;
/// Re-exported: values are returned in [`zeroize::Zeroizing`] buffers.
pub use zeroize;
