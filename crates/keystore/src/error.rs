//! Errors of the key store. Messages name versions, never keys, passwords
//! or salts.

use crate::version::Version;

/// Joins version names for a message: `v1, v2, v3`.
pub(crate) fn list(versions: &[Version]) -> String {
    if versions.is_empty() {
        return "none".to_owned();
    }
    versions
        .iter()
        .map(Version::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Something the key store refused or could not do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeystoreError {
    /// A version name with characters that cannot be used.
    #[error("invalid version name '{name}': use 1 to 31 ASCII letters, digits, '_', '-' or '.'")]
    InvalidVersionName {
        /// The name as given (escaped, truncated).
        name: String,
    },
    /// The configuration has no versions.
    #[error("no key versions configured")]
    NoVersions,
    /// The active version is not among the versions.
    #[error("active version {active} is not configured (available: {})", list(.available))]
    UnknownActiveVersion {
        /// The requested active version.
        active: Version,
        /// The versions that exist.
        available: Vec<Version>,
    },
    /// A version was named that does not exist.
    #[error("unknown version {version} (available: {})", list(.available))]
    UnknownVersion {
        /// The requested version.
        version: Version,
        /// The versions that exist.
        available: Vec<Version>,
    },
    /// A version was added twice.
    #[error("version {0} already exists; versions are never overwritten, rotate to a new name")]
    DuplicateVersion(Version),
    /// A salt's SHA-256 does not match the recorded hash.
    #[error(
        "salt integrity check failed for version {0}: the salt does not match its recorded hash"
    )]
    SaltIntegrity(Version),
    /// A recorded salt hash is not a SHA-256 hex digest.
    #[error("version {version}: {source}")]
    SaltHash {
        /// The version whose hash is malformed.
        version: Version,
        /// What is wrong with it.
        source: secrets_manager_kdf::KdfError,
    },
    /// No usable version could decrypt the token.
    #[error("decryption failed with every version (tried: {})", list(.tried))]
    DecryptionFailed {
        /// Versions tried, in order.
        tried: Vec<Version>,
    },
    /// The token is not a well-formed Fernet token, or is outside its TTL.
    #[error("invalid token: malformed, or outside its time-to-live")]
    InvalidToken,
    /// The version that should decrypt was retired.
    #[error("version {0} is retired and no longer decrypts")]
    VersionRetired(Version),
    /// The version that should decrypt was destroyed.
    #[error(
        "version {0} was destroyed: its key no longer exists, so its tokens cannot be decrypted"
    )]
    VersionDestroyed(Version),
    /// The active version cannot be retired or destroyed.
    #[error("version {0} is active: rotate to another version before retiring or destroying it")]
    ActiveVersion(Version),
    /// `cleanup` was called: the keys are gone.
    #[error("the secrets manager was cleaned up: its keys were erased")]
    CleanedUp,
}
