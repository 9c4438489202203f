//! `.env` keyring files and process-environment keyrings, as the Python
//! SecretsManager reads and writes them, for secrets-manager.
//!
//! This crate knows the format, not the cryptography: it reads and writes
//! passwords, salts and keys as text.
//!
//! ```
//! use secrets_manager_persist::{Keyring, Prefixes, StoredKey, StoredVersion, read_keyring, update_keyring};
//!
//! let dir = std::env::temp_dir().join(format!("persist-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let path = dir.join(".env.secrets");
//! let prefixes = Prefixes::default();
//! update_keyring(&path, &prefixes, |mut keyring: Keyring| {
//!     keyring.upsert(StoredVersion {
//!         name: "v1".into(),
//!         key: StoredKey::Password {
//!             password: "correct horse".into(),
//!             salt: "c2FsdA==".into(),
//!             salt_hash: None,
//!         },
//!         iterations: None,
//!         activated_at: Some(1_700_000_000),
//!     });
//!     keyring.active = Some("v1".into());
//!     Ok::<_, secrets_manager_persist::PersistError>(keyring)
//! })?;
//! let text = std::fs::read_to_string(&path)?;
//! assert!(text.contains("ENCRYPTION_KEYS__v1=\"correct horse\""));
//! assert!(text.contains("ENCRYPTION_ENV_CHECKSUM="));
//! let keyring = read_keyring(&path, &prefixes)?;
//! assert_eq!(keyring.active.as_deref(), Some("v1"));
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Invariants
//! - Reading follows python-dotenv (`dotenv_values`) exactly, including
//!   escapes and `${NAME}` expansion; lines it would skip are errors here.
//! - Writing keeps every other byte of the file; writes only values that
//!   python-dotenv reads back unchanged (refusing the rest); is atomic,
//!   durable and serialised by an exclusive lock on the file.
//! - No error message contains a value.

mod dotenv;
mod error;
mod file;
mod keyring;
mod quote;

pub use crate::error::{PersistError, Source};
pub use crate::file::{
    HEADER, dotenv_values, parse_keyring_bytes, read_environment, read_keyring, temp_path,
    update_keyring,
};
pub use crate::keyring::{Keyring, Prefixes, StoredKey, StoredVersion};
/// A file's variables in order: name, and value (`None` for a bare `NAME`).
pub type DotenvValues = Vec<(String, Option<zeroize::Zeroizing<String>>)>;

/// Re-exported: passwords and keys are [`secrecy::SecretString`]s.
pub use secrecy;
/// Re-exported: values are returned in [`zeroize::Zeroizing`] buffers.
pub use zeroize;
