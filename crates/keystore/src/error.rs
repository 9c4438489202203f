//! Errors of the key store. Messages name versions, never keys, passwords
//! or salts.

use std::fmt;

use crate::version::{InvalidVersionName, Version};

/// Version names for a message: `v1, v2, v3`, or `none`.
///
/// ```
/// use secrets_manager_keystore::{Version, VersionList};
///
/// let versions = [Version::new("v1")?, Version::new("v2")?];
/// assert_eq!(VersionList(&versions).to_string(), "v1, v2");
/// assert_eq!(VersionList(&[]).to_string(), "none");
/// # Ok::<(), secrets_manager_keystore::KeystoreError>(())
/// ```
#[derive(Clone, Copy, Debug)]
#[allow(clippy::exhaustive_structs)] // a display adapter: its one field is the whole point
pub struct VersionList<'a>(pub &'a [Version]);

impl fmt::Display for VersionList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some((first, rest)) = self.0.split_first() else {
            return f.write_str("none");
        };
        f.write_str(first.as_str())?;
        for v in rest {
            write!(f, ", {v}")?;
        }
        Ok(())
    }
}

/// `; destroyed, so unable to decrypt: v1` when there are destroyed
/// versions.
struct DestroyedNote<'a>(&'a [Version]);

impl fmt::Display for DestroyedNote<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return Ok(());
        }
        write!(
            f,
            "; destroyed, so unable to decrypt: {}",
            VersionList(self.0)
        )
    }
}

/// Something the key store refused or could not do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeystoreError {
    /// A version name with characters that cannot be used.
    #[error(transparent)]
    InvalidVersionName(#[from] InvalidVersionName),
    /// The configuration has no versions.
    #[error("no key versions configured")]
    NoVersions,
    /// The active version is not among the versions.
    #[error("active version {active} is not configured (available: {})", VersionList(.available))]
    UnknownActiveVersion {
        /// The requested active version.
        active: Version,
        /// The versions that exist.
        available: Vec<Version>,
    },
    /// A version was named that does not exist.
    #[error("unknown version {version} (available: {})", VersionList(.available))]
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
    #[error("decryption failed with every version (tried: {}){}", VersionList(.tried), DestroyedNote(.destroyed))]
    DecryptionFailed {
        /// Versions tried, in order.
        tried: Vec<Version>,
        /// Destroyed versions, one of which may have made the token (their
        /// keys are gone, so there is no telling).
        destroyed: Vec<Version>,
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
