//! Keep application secrets encrypted, and rotate keys without downtime.
//!
//! A Rust re-creation of the Python *SecretsManager* package, compatible
//! with it both ways: tokens are Fernet tokens that Python's `cryptography`
//! reads, keys are derived with the same PBKDF2-HMAC-SHA256 parameters.
//!
//! ```
//! use secrets_manager::{SecretsConfig, SecretsManager};
//!
//! let config = SecretsConfig::builder()
//!     .key("v1", "my-secret-password", "random-salt-value") // version, password, salt
//!     .active_version("v1")
//!     .build()?;
//! let manager = SecretsManager::new(config)?;
//! let (version, token) = manager.encrypt(b"sensitive data")?;    // (Version, String)
//! assert_eq!(version, "v1");
//! let (version, plaintext) = manager.decrypt(&token)?;           // (Version, Zeroizing<Vec<u8>>)
//! assert_eq!((version.as_str(), &plaintext[..]), ("v1", &b"sensitive data"[..]));
//!
//! manager.rotate_to_new_version("v2", "new-password")
//!     .salt(b"new-salt")                                         // optional: default a fresh random 16-byte salt
//!     .apply()?;
//! assert_eq!(manager.active_version(), "v2");
//! manager.cleanup();
//! # Ok::<(), secrets_manager::Error>(())
//! ```
//!
//! The layers are re-exported as modules, for those who want one piece:
//! [`fernet`] (the token codec), [`kdf`] (PBKDF2 and salts) and
//! [`keystore`] (the versioned keyring), [`persist`] (`.env` keyring
//! files), and with the `etcd` feature `etcd` (the fleet keyring).

// Examples in the docs (and the README's) compile without warnings.
#![doc(test(attr(deny(warnings))))]

mod audit;
mod audit_log;
mod config;
mod error;
mod manager;
mod reload;
mod storage;
mod url;
// Verify-only trial (which version made a token), for column censuses.
mod identify;

pub use crate::audit::AuditEvent;
pub use crate::audit_log::AuditLog;
pub use crate::config::{SecretsConfig, SecretsConfigBuilder};
pub use crate::error::{Error, Result};
pub use crate::identify::{Identified, Opened, TokenIdentifier, Verified};
pub use crate::manager::{Rotation, SecretsManager};
pub use crate::reload::{ReloadReport, WatchHandle};
pub use crate::url::open_keyring;
pub use secrets_manager_kdf::Salt;
pub use secrets_manager_keystore::{DecryptOptions, Statistics, Version};

/// The Fernet token codec (`secrets-manager-fernet`).
pub mod fernet {
    pub use secrets_manager_fernet::*;
}

/// Key derivation and salts (`secrets-manager-kdf`).
pub mod kdf {
    pub use secrets_manager_kdf::*;
}

/// The versioned keyring (`secrets-manager-keystore`).
pub mod keystore {
    pub use secrets_manager_keystore::*;
}

/// `.env` keyring files and the environment (`secrets-manager-persist`).
pub mod persist {
    pub use secrets_manager_persist::*;
}

/// The fleet keyring on etcd (`secrets-manager-etcd`, the `etcd` feature):
/// [`EtcdStore`](etcd::EtcdStore), its options and key-encryption keys.
#[cfg(feature = "etcd")]
pub mod etcd {
    pub use secrets_manager_etcd::*;
}

/// Re-exported: passwords are [`secrecy::SecretString`]s.
pub use secrecy;
/// Re-exported: plaintexts are [`zeroize::Zeroizing`] buffers.
pub use zeroize;

/// The README's Rust examples, run as doctests (with the `etcd` feature,
/// which some of them use; the workspace's tests build it, as the CLI
/// turns it on).
#[doc = include_str!("../../../README.md")]
#[cfg(all(doctest, feature = "etcd"))]
pub struct ReadmeDoctests;
