//! The public description of versions: what a caller hands the store
//! (`VersionSpec`, `KeyMaterial`, `Options`) and what it reads back
//! (`VersionInfo`, `VersionState`, `KeyKind`, `Snapshot`).

use std::fmt;
use std::num::NonZeroU32;

use secrecy::SecretString;
use secrets_manager_fernet::Key;
use secrets_manager_kdf::Salt;

use crate::ring::Ring;
use crate::version::Version;

/// Where a version's key comes from.
///
/// Make password material with [`KeyMaterial::password`]: the variant is
/// `#[non_exhaustive]`, so a field can be added without breaking callers
/// (match it with `..`). The enum itself is exhaustive on purpose: code that
/// stores or compares material (the facade's file writer) must handle each
/// kind explicitly, and a new kind should fail to compile there rather
/// than fall into a catch-all arm.
///
/// ```
/// use std::num::NonZeroU32;
/// use secrets_manager_kdf::Salt;
/// use secrets_manager_keystore::KeyMaterial;
///
/// let salt = Salt::from(b"salt");
/// let hash = salt.sha256_hex();
/// let material = KeyMaterial::password("pw", salt, NonZeroU32::MIN.saturating_add(999))
///     .with_salt_hash(Some(hash));
/// assert!(matches!(
///     material,
///     KeyMaterial::Password { iterations_recorded: true, salt_hash: Some(_), .. }
/// ));
/// ```
// Exhaustive on purpose: a new kind of key must not compile into the
// writers' catch-all arm; each layer has to say how to store it.
#[allow(clippy::exhaustive_enums)]
pub enum KeyMaterial {
    /// PBKDF2-HMAC-SHA256 from a password and salt, as the Python package
    /// derives keys.
    #[non_exhaustive]
    Password {
        /// The password (its UTF-8 bytes are the PBKDF2 password).
        password: SecretString,
        /// The salt.
        salt: Salt,
        /// Lower-case hex SHA-256 of the salt, checked when salt
        /// integrity verification is on.
        salt_hash: Option<String>,
        /// PBKDF2 iterations.
        iterations: NonZeroU32,
        /// Whether `iterations` belongs to the version (recorded where it
        /// is stored, or chosen when it was created), rather than being
        /// the reader's setting. Writers record only counts that belong to
        /// the version: a record invented from a reader's setting would
        /// make every later reader derive the wrong key.
        iterations_recorded: bool,
    },
    /// A raw Fernet key: nothing to derive.
    Fernet(Key),
}

impl KeyMaterial {
    /// Password material derived with `iterations`, a count that belongs to
    /// the version (see [`with_iterations_recorded`](Self::with_iterations_recorded)),
    /// and no recorded salt hash.
    #[must_use]
    pub fn password(password: impl Into<SecretString>, salt: Salt, iterations: NonZeroU32) -> Self {
        Self::Password {
            password: password.into(),
            salt,
            salt_hash: None,
            iterations,
            iterations_recorded: true,
        }
    }

    /// The salt's recorded hash (lower-case hex SHA-256), checked when salt
    /// integrity verification is on. No effect on a raw Fernet key.
    #[must_use]
    pub fn with_salt_hash(mut self, hash: Option<String>) -> Self {
        if let Self::Password { salt_hash, .. } = &mut self {
            *salt_hash = hash;
        }
        self
    }

    /// Whether the iteration count belongs to the version (`true`, the
    /// default: chosen when it was made, or recorded where it is stored) or
    /// is only the reader's setting for a version stored without a record
    /// (`false`: writers then record none). No effect on a raw Fernet key.
    #[must_use]
    pub fn with_iterations_recorded(mut self, recorded: bool) -> Self {
        if let Self::Password {
            iterations_recorded,
            ..
        } = &mut self
        {
            *iterations_recorded = recorded;
        }
        self
    }
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Password {
                iterations,
                iterations_recorded,
                salt_hash,
                ..
            } => f
                .debug_struct("Password")
                .field("password", &"[REDACTED]")
                .field("salt", &"[REDACTED]")
                .field("salt_hash", &salt_hash.as_ref().map(|_| "[present]"))
                .field("iterations", iterations)
                .field("iterations_recorded", iterations_recorded)
                .finish(),
            Self::Fernet(_) => f.write_str("Fernet([REDACTED])"),
        }
    }
}

/// A version to add to the store.
///
/// ```
/// use secrets_manager_fernet::Key;
/// use secrets_manager_keystore::{KeyMaterial, Version, VersionSpec, VersionState};
///
/// let spec = VersionSpec::new(Version::new("v1")?, KeyMaterial::Fernet(Key::generate()))
///     .with_activated_at(Some(1_700_000_000))
///     .with_state(VersionState::Retired);
/// assert_eq!(spec.state, VersionState::Retired);
/// let gone = VersionSpec::tombstone(Version::new("v0")?);
/// assert!(gone.material.is_none());
/// # Ok::<(), secrets_manager_keystore::KeystoreError>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct VersionSpec {
    /// Its name.
    pub name: Version,
    /// Its key; `None` for a destroyed version (a tombstone).
    pub material: Option<KeyMaterial>,
    /// When it became active (Unix seconds), if known. Decryption uses it to
    /// try first the version that was active when a token was made.
    pub activated_at: Option<u64>,
    /// Its standing; a version without material is always destroyed.
    pub state: VersionState,
}

impl VersionSpec {
    /// A usable version with no recorded activation time.
    #[must_use]
    pub fn new(name: Version, material: KeyMaterial) -> Self {
        Self {
            name,
            material: Some(material),
            activated_at: None,
            state: VersionState::Usable,
        }
    }

    /// A destroyed version: its name is kept so its tokens fail clearly and
    /// the name is never reused.
    #[must_use]
    pub fn tombstone(name: Version) -> Self {
        Self {
            name,
            material: None,
            activated_at: None,
            state: VersionState::Destroyed,
        }
    }

    /// When the version became active.
    #[must_use]
    pub fn with_activated_at(mut self, unix_secs: Option<u64>) -> Self {
        self.activated_at = unix_secs;
        self
    }

    /// Its standing (a retired version is loaded retired).
    #[must_use]
    pub fn with_state(mut self, state: VersionState) -> Self {
        self.state = state;
        self
    }
}

/// A version's standing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VersionState {
    /// Encrypts (if active) and decrypts.
    Usable,
    /// No longer decrypts; its key is kept, so it could be restored by
    /// re-adding it under a new name.
    Retired,
    /// Its key was erased; its name is kept so its tokens fail clearly.
    Destroyed,
}

/// What the store knows about a version, without its key.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct VersionInfo {
    /// The name.
    pub version: Version,
    /// Whether it is the active version.
    pub active: bool,
    /// Usable, retired or destroyed.
    pub state: VersionState,
    /// When it became active, if known.
    pub activated_at: Option<u64>,
    /// Where its key comes from (`None` once destroyed).
    pub kind: Option<KeyKind>,
    /// PBKDF2 iterations, for password-derived versions.
    pub iterations: Option<u32>,
    /// Whether the iteration count belongs to the version rather than
    /// being the reader's setting (see [`KeyMaterial::Password`]).
    pub iterations_recorded: bool,
    /// Tokens it decrypted.
    pub decryptions: u64,
}

/// Where a version's key comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyKind {
    /// Derived from a password and salt.
    Password,
    /// A raw Fernet key.
    Fernet,
}

/// Options of a store: start from [`Options::default`] and change what
/// differs (the type may gain options).
///
/// ```
/// use secrets_manager_keystore::Options;
///
/// let options = Options::default().with_verify_salt_integrity(false);
/// assert!(!options.verify_salt_integrity);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Options {
    /// Check salts against their recorded hashes before deriving (the
    /// Python package's `verify_salt_integrity`, on by default).
    pub verify_salt_integrity: bool,
}

impl Options {
    /// Whether salts are checked against their recorded hashes.
    #[must_use]
    pub fn with_verify_salt_integrity(mut self, verify: bool) -> Self {
        self.verify_salt_integrity = verify;
        self
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            verify_salt_integrity: true,
        }
    }
}

/// One moment of a [`KeyStore`](crate::KeyStore): see
/// [`KeyStore::with_snapshot`](crate::KeyStore::with_snapshot).
pub struct Snapshot<'a> {
    pub(crate) ring: &'a Ring,
}

impl fmt::Debug for Snapshot<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("versions", &self.ring.names())
            .field("active", &self.active())
            .finish_non_exhaustive()
    }
}

impl<'a> Snapshot<'a> {
    /// The active version now (a scheduled version once its time came).
    #[must_use]
    pub fn active(&self) -> Version {
        self.ring.entries[self.ring.encrypting_now()].name
    }

    /// Which version was active when, by index in the order added (that
    /// of [`versions`](Self::versions)).
    #[must_use]
    pub fn timeline(&self) -> crate::Timeline {
        self.ring.timeline.clone()
    }

    /// Every version in the order added, with its key material (`None`
    /// once destroyed).
    pub fn versions(&self) -> impl Iterator<Item = (VersionInfo, Option<&'a KeyMaterial>)> + 'a {
        let ring = self.ring;
        ring.entries
            .iter()
            .enumerate()
            .map(move |(i, e)| (ring.info(i), e.material.as_deref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_material_is_built_with_its_own_count_and_changed_by_the_setters() {
        let n = NonZeroU32::new(7).unwrap();
        let material = KeyMaterial::password("pw", Salt::from(b"s"), n);
        assert!(matches!(
            &material,
            KeyMaterial::Password {
                salt_hash: None,
                iterations,
                iterations_recorded: true,
                ..
            } if *iterations == n
        ));
        let material = material
            .with_salt_hash(Some("ab".repeat(32)))
            .with_iterations_recorded(false);
        assert!(matches!(
            &material,
            KeyMaterial::Password {
                salt_hash: Some(h),
                iterations_recorded: false,
                ..
            } if *h == "ab".repeat(32)
        ));
        // The setters leave a raw key alone.
        let raw = KeyMaterial::Fernet(Key::generate())
            .with_salt_hash(Some(String::new()))
            .with_iterations_recorded(true);
        assert!(matches!(raw, KeyMaterial::Fernet(_)));
    }

    #[test]
    fn options_default_to_checking_salts() {
        assert!(Options::default().verify_salt_integrity);
        assert!(
            !Options::default()
                .with_verify_salt_integrity(false)
                .verify_salt_integrity
        );
    }
}
