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

/// An expired token's message: how old, or how far in the future.
struct ExpiredText {
    version: Version,
    timestamp: u64,
    now: u64,
    ttl_secs: u64,
}

impl fmt::Display for ExpiredText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            version,
            timestamp,
            now,
            ttl_secs,
        } = self;
        if timestamp > now {
            write!(
                f,
                "token expired: stamped {} s in the future by version {version} (more than the 60 s allowed)",
                timestamp - now
            )
        } else {
            write!(
                f,
                "token expired: made by version {version} {} s ago, beyond its time-to-live of {ttl_secs} s",
                now - timestamp
            )
        }
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
    /// Not a Fernet token at all (malformed, truncated, not base64), or,
    /// with a time-to-live, a token outside it that no version here made.
    #[error(
        "invalid token: not a Fernet token (malformed or truncated), or one made elsewhere and outside its time-to-live"
    )]
    InvalidToken,
    /// A token one of the versions made (its MAC verified, so its time is
    /// genuine), outside its time-to-live.
    #[error("{}", ExpiredText { version: *.version, timestamp: *.timestamp, now: *.now, ttl_secs: *.ttl_secs })]
    Expired {
        /// The version whose key verified it.
        version: Version,
        /// When it was made (Unix seconds).
        timestamp: u64,
        /// The time it was checked against.
        now: u64,
        /// The time-to-live, in seconds.
        ttl_secs: u64,
    },
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
