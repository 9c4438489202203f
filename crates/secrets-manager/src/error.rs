//! The facade's error type.

use crate::keystore::VersionList;
use std::sync::Arc;

use crate::{Version, fernet, kdf, keystore, persist};

/// Anything the secrets manager can fail at. Messages name versions and
/// settings, never passwords, keys, salts or plaintext.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// From the key store: unknown or duplicate versions, salt integrity,
    /// failed decryption, a cleaned-up manager, ...
    #[error(transparent)]
    Keystore(#[from] keystore::KeystoreError),
    /// From key derivation settings.
    #[error(transparent)]
    Kdf(#[from] kdf::KdfError),
    /// A raw Fernet key that does not parse.
    #[error("version {version}: {source}")]
    FernetKey {
        /// The version it was given for.
        version: Version,
        /// What is wrong with it.
        source: fernet::KeyError,
    },
    /// Reading or writing a keyring file or the environment (names the file
    /// and line, or the variable).
    #[error(transparent)]
    Persist(Arc<persist::PersistError>),
    /// A problem with a version loaded from a file or the environment,
    /// found when the manager started (a salt that fails its hash).
    #[error("{origin}: {variable}: {source}")]
    Loaded {
        /// The file, or the process environment.
        origin: String,
        /// The variable involved.
        variable: String,
        /// What is wrong (boxed: it is rare, and `Error` stays small).
        source: Box<keystore::KeystoreError>,
    },
    /// [`create_keyring_file`](crate::SecretsManager::create_keyring_file)
    /// found keys in the file.
    #[error("{origin} already holds keys; refusing to overwrite them (rotate to add a version)")]
    KeyringExists {
        /// The file or store.
        origin: String,
    },
    /// A version the file already has, with other key material: versions
    /// are never replaced, so nothing was written.
    #[error(
        "{origin}: version {version} already exists there with different key material; nothing was written (choose another version name)"
    )]
    Conflict {
        /// The file.
        origin: String,
        /// The version.
        version: Version,
    },
    /// A keyring source with no versions in it.
    #[error(
        "{origin} holds no keys (no key versions configured): expected {expected} variables, or create a keyring with `secrets-manager init`"
    )]
    EmptyKeyring {
        /// The file or store.
        origin: String,
        /// The variables looked for.
        expected: String,
    },
    /// `reload` or `watch` on a manager configured in code.
    #[error(
        "this manager has no keyring to follow: load it with SecretsConfigBuilder::keyring or env_file"
    )]
    NoKeyring,
    /// A keyring address that cannot be used.
    #[error("keyring address {url:?}: {reason}")]
    KeyringUrl {
        /// The address.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// `kdf_iterations(0)`.
    #[error("kdf_iterations must be at least 1")]
    ZeroIterations,
    /// Several versions and none chosen to be active.
    #[error("no active version set, and {} versions are configured: choose one with active_version (available: {})", .available.len(), VersionList(.available))]
    NoActiveVersion {
        /// The configured versions.
        available: Vec<Version>,
    },
    /// A setting named a version that is not configured.
    #[error("{setting} names version {version}, which is not configured (available: {})", VersionList(.available))]
    UnknownVersion {
        /// Which setting.
        setting: &'static str,
        /// The version it named.
        version: Version,
        /// The configured versions.
        available: Vec<Version>,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<persist::PersistError> for Error {
    fn from(e: persist::PersistError) -> Self {
        Self::Persist(Arc::new(e))
    }
}

/// A bad version name is a key store error, as it was before names got an
/// error of their own, so callers match it in one place.
impl From<keystore::InvalidVersionName> for Error {
    fn from(e: keystore::InvalidVersionName) -> Self {
        Self::Keystore(e.into())
    }
}
