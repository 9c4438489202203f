//! The secrets manager.

use std::fmt;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use secrecy::SecretString;
use zeroize::Zeroizing;

use crate::audit::{AuditEvent, AuditHook};
use crate::config::{SecretsConfig, WarningHook};
use crate::error::{Error, Result};
use crate::kdf::Salt;
use crate::keystore::{
    DecryptOptions, KeyMaterial, KeyStore, KeystoreError, Options, VersionInfo, VersionSpec,
    VersionState,
};
use crate::persist::{FileStore, KeyringStore, Source, WriteWarning};
use crate::storage::Change;
use crate::{Statistics, Version, fernet};

/// Encrypts and decrypts application secrets under versioned keys, and
/// rotates keys at runtime.
///
/// `Send + Sync`; every method takes `&self`, so one manager serves a whole
/// process (share it in an `Arc`). Encryption and decryption take no lock.
///
/// ```
/// use secrets_manager::{SecretsConfig, SecretsManager};
///
/// let config = SecretsConfig::builder()
///     .key("v1", "old-password", "old-salt")
///     .kdf_iterations(1_000)
///     .build()?;
/// let manager = SecretsManager::new(config)?;
/// let (_, old_token) = manager.encrypt(b"important data")?;
///
/// let v2 = manager.rotate_to_new_version("v2", "new-password").salt(b"new-salt").apply()?;
/// assert_eq!(manager.active_version(), v2);
/// let (version, _) = manager.encrypt(b"new data")?;
/// assert_eq!(version, "v2");
///
/// // Old tokens still decrypt, and say which version opened them.
/// let (version, plaintext) = manager.decrypt(&old_token)?;
/// assert_eq!((version.as_str(), &plaintext[..]), ("v1", &b"important data"[..]));
///
/// manager.cleanup();
/// assert!(manager.encrypt(b"x").is_err());
/// # Ok::<(), secrets_manager::Error>(())
/// ```
pub struct SecretsManager {
    pub(crate) inner: Arc<Inner>,
}

/// The manager's state, shared with its watch thread (which holds it
/// weakly, so dropping the manager ends the watch).
pub(crate) struct Inner {
    pub(crate) store: KeyStore,
    pub(crate) iterations: NonZeroU32,
    audit: Option<AuditHook>,
    /// Serialises changes (rotation, lifecycle, reloads, writes), so a
    /// store write and the matching change in memory happen as one.
    writer: Mutex<()>,
    /// Where the keyring lives: changes are written there, reloads read
    /// it.
    pub(crate) keyring: Option<Arc<dyn KeyringStore>>,
    warning: Option<WarningHook>,
}

impl fmt::Debug for SecretsManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretsManager")
            .field("store", &self.inner.store)
            .field("kdf_iterations", &self.inner.iterations)
            .field("audit_callback", &self.inner.audit.is_some())
            .field("keyring", &self.keyring())
            .finish()
    }
}

impl SecretsManager {
    /// A manager for `config`. Salt hashes are checked now; keys are derived
    /// on first use and cached.
    ///
    /// # Errors
    ///
    /// A salt that fails its integrity check (naming the version).
    pub fn new(config: SecretsConfig) -> Result<Self> {
        let options = Options::default().with_verify_salt_integrity(config.verify_salt_integrity);
        let origins = config.origins;
        let store = KeyStore::new(config.versions, config.active, options).map_err(|e| {
            let version = match &e {
                KeystoreError::SaltIntegrity(v) | KeystoreError::SaltHash { version: v, .. } => {
                    Some(*v)
                }
                _ => None,
            };
            match origins.into_iter().find(|(v, _, _)| Some(*v) == version) {
                Some((_, origin, variable)) => Error::Loaded {
                    origin,
                    variable,
                    source: Box::new(e),
                },
                None => e.into(),
            }
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                iterations: config.kdf_iterations,
                audit: config.audit,
                writer: Mutex::new(()),
                keyring: config.keyring,
                warning: config.warning,
            }),
        })
    }

    /// Where the keyring lives, if the manager has one: the source it was
    /// loaded from ([`SecretsConfigBuilder::keyring`](crate::SecretsConfigBuilder::keyring),
    /// or a single [`env_file`](crate::SecretsConfigBuilder::env_file)), or
    /// the one set with
    /// [`SecretsConfigBuilder::persist_to_file`](crate::SecretsConfigBuilder::persist_to_file).
    /// Changes are written there; [`reload`](Self::reload) reads it.
    #[must_use]
    pub fn keyring(&self) -> Option<Source> {
        self.inner.keyring.as_ref().map(|k| k.source())
    }

    /// Encrypts under the active version, stamped with the current time.
    ///
    /// # Errors
    ///
    /// After [`cleanup`](Self::cleanup), or if the active key cannot be
    /// derived.
    pub fn encrypt(&self, plaintext: &[u8]) -> Result<(Version, String)> {
        let (version, token) = self.inner.store.encrypt(plaintext)?;
        self.inner.emit(|| AuditEvent::Encryption {
            version,
            size: plaintext.len(),
        });
        Ok((version, token))
    }

    /// Encrypts under the active version, stamped with `unix_secs`.
    ///
    /// # Errors
    ///
    /// As [`encrypt`](Self::encrypt).
    pub fn encrypt_at_time(&self, plaintext: &[u8], unix_secs: u64) -> Result<(Version, String)> {
        let (version, token) = self.inner.store.encrypt_at_time(plaintext, unix_secs)?;
        self.inner.emit(|| AuditEvent::Encryption {
            version,
            size: plaintext.len(),
        });
        Ok((version, token))
    }

    /// Decrypts a token made under any usable version; returns the version
    /// that opened it. Tries the version active when the token was made,
    /// then the active version, then the rest, newest first. Surrounding
    /// ASCII whitespace (a file's trailing newline) is ignored, as Python's
    /// `Fernet.decrypt` does; the codec itself
    /// ([`fernet::Fernet::decrypt`]) is strict.
    ///
    /// # Errors
    ///
    /// A malformed token, or no version opens it.
    pub fn decrypt(&self, token: impl AsRef<[u8]>) -> Result<(Version, Zeroizing<Vec<u8>>)> {
        self.decrypt_with(token, &DecryptOptions::new())
    }

    /// As [`decrypt`](Self::decrypt), trying `hint` first (an unknown hint
    /// is ignored, as in the Python package).
    ///
    /// # Errors
    ///
    /// As [`decrypt`](Self::decrypt).
    pub fn decrypt_with_hint(
        &self,
        token: impl AsRef<[u8]>,
        hint: &str,
    ) -> Result<(Version, Zeroizing<Vec<u8>>)> {
        self.decrypt_with(token, &DecryptOptions::new().hint(hint))
    }

    /// As [`decrypt`](Self::decrypt), accepting only a token no older than
    /// `ttl` (whole seconds) and no more than 60 s in the future.
    ///
    /// # Errors
    ///
    /// As [`decrypt`](Self::decrypt), and a token outside its time-to-live.
    pub fn decrypt_with_ttl(
        &self,
        token: impl AsRef<[u8]>,
        ttl: Duration,
    ) -> Result<(Version, Zeroizing<Vec<u8>>)> {
        self.decrypt_with(token, &DecryptOptions::new().ttl(ttl))
    }

    /// Decrypts with every option at once: a hint, a time-to-live and the
    /// time to check it against, in any combination (the other `decrypt`
    /// methods are this with one option set).
    ///
    /// ```
    /// use std::time::Duration;
    /// use secrets_manager::{DecryptOptions, SecretsConfig, SecretsManager};
    ///
    /// let config = SecretsConfig::builder()
    ///     .key("v1", "password", "salt")
    ///     .kdf_iterations(1_000)
    ///     .build()?;
    /// let manager = SecretsManager::new(config)?;
    /// let (_, token) = manager.encrypt_at_time(b"data", 1_000)?;
    /// let options = DecryptOptions::new()
    ///     .hint("v1")
    ///     .ttl(Duration::from_secs(60))
    ///     .at_time(1_030);
    /// let (version, plaintext) = manager.decrypt_with(&token, &options)?;
    /// assert_eq!((version.as_str(), &plaintext[..]), ("v1", &b"data"[..]));
    /// assert!(manager.decrypt_with(&token, &options.at_time(1_061)).is_err());
    /// # Ok::<(), secrets_manager::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`decrypt`](Self::decrypt), and a token outside its time-to-live.
    pub fn decrypt_with(
        &self,
        token: impl AsRef<[u8]>,
        options: &DecryptOptions,
    ) -> Result<(Version, Zeroizing<Vec<u8>>)> {
        match self
            .inner
            .store
            .decrypt_with(token.as_ref().trim_ascii(), options)
        {
            Ok((version, plaintext)) => {
                self.inner.emit(|| AuditEvent::Decryption {
                    version,
                    was_hint: options.hint == Some(version),
                });
                Ok((version, plaintext))
            }
            Err(e) => {
                self.inner
                    .emit(|| AuditEvent::DecryptionFailed { hint: options.hint });
                Err(e.into())
            }
        }
    }

    /// Re-encrypts a token under the active version, keeping its original
    /// timestamp (so TTLs still count from the first encryption).
    ///
    /// # Errors
    ///
    /// As [`decrypt`](Self::decrypt) and [`encrypt`](Self::encrypt).
    pub fn rotate_token(&self, token: impl AsRef<[u8]>) -> Result<(Version, String)> {
        match self.inner.store.rotate_token(token.as_ref().trim_ascii()) {
            Ok(rotated) => {
                self.inner.emit(|| AuditEvent::Decryption {
                    version: rotated.from,
                    was_hint: false,
                });
                self.inner.emit(|| AuditEvent::Encryption {
                    version: rotated.to,
                    size: rotated.plaintext_len,
                });
                Ok((rotated.to, rotated.token))
            }
            Err(e) => {
                self.inner
                    .emit(|| AuditEvent::DecryptionFailed { hint: None });
                Err(e.into())
            }
        }
    }

    /// Starts a rotation to a new version derived from `password`. Finish it
    /// with [`Rotation::apply`]; set a salt with [`Rotation::salt`] (by
    /// default a fresh random 16-byte salt).
    pub fn rotate_to_new_version(
        &self,
        version: &str,
        password: impl Into<SecretString>,
    ) -> Rotation<'_> {
        Rotation {
            manager: self,
            version: version.to_owned(),
            key: NewKey::Password(password.into()),
            salt: None,
            persist: None,
            activate: true,
            schedule: None,
        }
    }

    /// Starts a rotation to a new version with a raw Fernet key (44
    /// characters of URL-safe base64, as `Fernet.generate_key()` or
    /// `secrets-manager keygen` make).
    ///
    /// # Errors
    ///
    /// The key does not parse (the error names the version, never the key).
    pub fn rotate_to_fernet_key(&self, version: &str, key: &str) -> Result<Rotation<'_>> {
        let name = Version::new(version)?;
        let parsed = fernet::Key::from_base64(key).map_err(|source| Error::FernetKey {
            version: name,
            source,
        })?;
        Ok(Rotation {
            manager: self,
            version: version.to_owned(),
            key: NewKey::Fernet(parsed),
            salt: None,
            persist: None,
            activate: true,
            schedule: None,
        })
    }

    /// The active version. After [`cleanup`](Self::cleanup), the one that
    /// was active when it ran, which is always one of
    /// [`versions`](Self::versions).
    #[must_use]
    pub fn active_version(&self) -> Version {
        self.inner.store.active_version()
    }

    /// The versions, in the order added. After [`cleanup`](Self::cleanup),
    /// the versions there were when it ran: cleanup erases secrets, and
    /// names are not secret.
    #[must_use]
    pub fn versions(&self) -> Vec<Version> {
        self.inner.store.versions()
    }

    /// Each version's state, activation time, iterations and decryption
    /// count. Never a secret.
    ///
    /// # Errors
    ///
    /// After [`cleanup`](Self::cleanup) (it describes keys, and none are
    /// left), as every other fallible method.
    pub fn version_info(&self) -> Result<Vec<VersionInfo>> {
        Ok(self.inner.store.version_info()?)
    }

    /// Makes an existing version the active one (for example one added
    /// with [`Rotation::activate`]`(false)`), recording the time. Its key is
    /// derived before it is published. Written to the
    /// [`keyring_file`](Self::keyring), if any, first.
    ///
    /// # Errors
    ///
    /// Unknown, retired or destroyed version; writing the file; after
    /// cleanup.
    pub fn activate_version(&self, version: &str) -> Result<()> {
        let version = Version::new(version)?;
        let _writer = self.inner.writer();
        let previous = self.inner.store.active_version();
        let at = fernet::unix_time();
        self.check_state(version, |state| match state {
            VersionState::Retired => Err(KeystoreError::VersionRetired(version)),
            VersionState::Destroyed => Err(KeystoreError::VersionDestroyed(version)),
            _ => Ok(()),
        })?;
        self.inner.write_through(Change::Activate { version, at })?;
        self.inner.store.activate(&version, Some(at))?;
        self.inner.emit(|| AuditEvent::Activation {
            version,
            previous_version: previous,
        });
        Ok(())
    }

    /// Stops a version from decrypting (it cannot be the active one). The
    /// key is kept. Written to the [`keyring_file`](Self::keyring), if
    /// any, first.
    ///
    /// # Errors
    ///
    /// Unknown or active version; writing the file; after cleanup.
    pub fn retire_version(&self, version: &str) -> Result<()> {
        let version = Version::new(version)?;
        let _writer = self.inner.writer();
        self.check_not_active(version)?;
        self.inner.write_through(Change::Retire(version))?;
        self.inner.store.retire(&version)?;
        self.inner.emit(|| AuditEvent::Retirement { version });
        Ok(())
    }

    /// Erases a version's key, in memory and in the
    /// [`keyring_file`](Self::keyring) (if any, first), where a
    /// tombstone keeps the name; its tokens then fail with an error naming
    /// it.
    ///
    /// # Errors
    ///
    /// Unknown or active version; writing the file; after cleanup.
    pub fn destroy_version(&self, version: &str) -> Result<()> {
        let version = Version::new(version)?;
        let _writer = self.inner.writer();
        self.check_not_active(version)?;
        self.inner.write_through(Change::Destroy(version))?;
        self.inner.store.destroy(&version)?;
        self.inner.emit(|| AuditEvent::Destruction { version });
        Ok(())
    }

    /// Checks, before any file is touched, that the store knows `version`
    /// and `allowed` accepts its state.
    fn check_state(
        &self,
        version: Version,
        allowed: impl FnOnce(VersionState) -> Result<(), KeystoreError>,
    ) -> Result<()> {
        let infos = self.inner.store.version_info()?;
        match infos.iter().find(|i| i.version == version) {
            Some(info) => Ok(allowed(info.state)?),
            None => Err(KeystoreError::UnknownVersion {
                version,
                available: infos.iter().map(|i| i.version).collect(),
            }
            .into()),
        }
    }

    fn check_not_active(&self, version: Version) -> Result<()> {
        let active = self.inner.store.active_version();
        self.check_state(version, |_| {
            if version == active {
                Err(KeystoreError::ActiveVersion(version))
            } else {
                Ok(())
            }
        })
    }

    /// Counts since creation, exact under any concurrency.
    #[must_use]
    pub fn statistics(&self) -> Statistics {
        self.inner.store.statistics()
    }

    /// Drops (and zeroizes) every derived key; they are derived again on
    /// demand.
    pub fn clear_cache(&self) {
        self.inner.store.clear_cache();
    }

    /// Zeroizes every password, salt and key. Afterwards every operation
    /// that returns a `Result` fails with an error saying the manager was
    /// cleaned up; [`active_version`](Self::active_version) and
    /// [`versions`](Self::versions), which cannot fail, keep answering as
    /// they did just before (names are not secret), so they still agree.
    /// Dropping the manager zeroizes everything too.
    pub fn cleanup(&self) {
        self.inner.store.cleanup();
        self.inner.emit(|| AuditEvent::Cleanup);
    }

    /// Adds a version: first to the file (conflict-checked under its
    /// lock), then in memory, so a refused write changes nothing.
    fn rotate(&self, rotation: Rotation<'_>) -> Result<Version> {
        let name = Version::new(&rotation.version)?;
        let _writer = self.inner.writer();
        // `version_info` fails once cleaned up, before anything is written;
        // the names alone would still be there.
        if self
            .inner
            .store
            .version_info()?
            .iter()
            .any(|i| i.version == name)
        {
            return Err(KeystoreError::DuplicateVersion(name).into());
        }
        let material = match rotation.key {
            // A new version's count is its own, and is recorded.
            NewKey::Password(password) => KeyMaterial::password(
                password,
                rotation.salt.unwrap_or_else(Salt::generate),
                self.inner.iterations,
            )
            .with_iterations_recorded(true),
            NewKey::Fernet(key) => KeyMaterial::Fernet(key),
        };
        let previous = self.inner.store.active_version();
        let now = fernet::unix_time();
        let activated_at = match rotation.schedule {
            Some(at) => Some(at),
            None => rotation.activate.then_some(now),
        };
        let spec = VersionSpec::new(name, material).with_activated_at(activated_at);
        // A schedule counts from the active version's activation time:
        // record it now where it is not known.
        let stamp = match rotation.schedule {
            Some(_) => {
                let info = self.inner.store.version_info()?;
                // Before the schedule's time, even for a time already
                // past, so the schedule always counts.
                let at = rotation
                    .schedule
                    .map_or(now, |t| now.min(t.saturating_sub(1)));
                info.iter()
                    .find(|i| i.active && i.activated_at.is_none())
                    .map(|i| (i.version, at))
            }
            None => None,
        };
        let change = Change::Add {
            spec: &spec,
            activate: rotation.activate,
            stamp,
        };
        match rotation.persist {
            Some(path) => self.inner.write_to(&FileStore::new(path), change)?,
            None => self.inner.write_through(change)?,
        }
        if let Some((active, at)) = stamp {
            self.inner.store.activate(&active, Some(at))?;
        }
        self.inner.store.add_version(spec, rotation.activate)?;
        if rotation.activate {
            self.inner.emit(|| AuditEvent::Rotation {
                new_version: name,
                previous_version: previous,
            });
        } else {
            self.inner
                .emit(|| AuditEvent::VersionAdded { version: name });
        }
        Ok(name)
    }
}

impl Inner {
    pub(crate) fn emit(&self, event: impl FnOnce() -> AuditEvent) {
        if let Some(hook) = &self.audit {
            hook.emit(&event());
        }
    }

    pub(crate) fn writer(&self) -> MutexGuard<'_, ()> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn warn(&self, warning: &WriteWarning) {
        match &self.warning {
            Some(hook) => hook(warning),
            None => tracing::warn!("{warning}"),
        }
    }

    /// Writes a change to the manager's keyring, when it has one.
    pub(crate) fn write_through(&self, change: Change<'_>) -> Result<()> {
        match &self.keyring {
            Some(keyring) => self.write_to(keyring.as_ref(), change),
            None => Ok(()),
        }
    }
}

/// The key of a version being added.
enum NewKey {
    Password(SecretString),
    Fernet(fernet::Key),
}

/// A rotation being set up: see
/// [`SecretsManager::rotate_to_new_version`].
#[must_use = "a rotation does nothing until `apply` is called"]
pub struct Rotation<'m> {
    manager: &'m SecretsManager,
    version: String,
    key: NewKey,
    salt: Option<Salt>,
    persist: Option<std::path::PathBuf>,
    activate: bool,
    /// When the new version takes over encryption, if scheduled.
    schedule: Option<u64>,
}

impl fmt::Debug for Rotation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rotation")
            .field("version", &self.version)
            .field("salt_set", &self.salt.is_some())
            .field("activate", &self.activate)
            .field("schedule", &self.schedule)
            .finish()
    }
}

impl Rotation<'_> {
    /// The salt (bytes as they are, strings normalised as in Python).
    /// Without it, a fresh random 16-byte salt is used.
    pub fn salt(mut self, salt: impl Into<Salt>) -> Self {
        self.salt = Some(salt.into());
        self
    }

    /// Writes the rotation to this `.env` file (instead of the manager's
    /// [`keyring_file`](SecretsManager::keyring)), merging with what
    /// the file holds (see [`SecretsManager::persist_to_file`]).
    pub fn persist_to_file(mut self, path: impl AsRef<std::path::Path>) -> Self {
        self.persist = Some(path.as_ref().to_owned());
        self
    }

    /// Whether the new version becomes active (default `true`). With
    /// `false` it is added and decrypts, and
    /// [`SecretsManager::activate_version`] makes it active later: stage it
    /// everywhere first, then switch.
    pub fn activate(mut self, activate: bool) -> Self {
        self.activate = activate;
        self
    }

    /// Schedules the new version to take over encryption at `unix_secs`:
    /// it is added (and decrypts) at once, and becomes the encryption
    /// version at that time in every process that has read the keyring,
    /// with no further write. Until then the active version encrypts.
    pub fn activate_at(mut self, unix_secs: u64) -> Self {
        self.activate = false;
        self.schedule = Some(unix_secs);
        self
    }

    /// As [`activate_at`](Self::activate_at), `delay` from now: long
    /// enough for every process to reload (see
    /// [`SecretsManager::watch`]), so all of them can decrypt the new
    /// version before any encrypts under it.
    pub fn activate_after(self, delay: std::time::Duration) -> Self {
        let at = fernet::unix_time().saturating_add(delay.as_secs());
        self.activate_at(at)
    }

    /// Adds the version and (by default) makes it active. Existing versions
    /// stay and keep decrypting; their cached keys are kept.
    ///
    /// The file ([`persist_to_file`](Self::persist_to_file), or the
    /// manager's [`keyring_file`](SecretsManager::keyring)) is written
    /// first, under its lock; the change is made in memory only once the
    /// write succeeded. A file that already has the name with other
    /// material refuses it ([`Error::Conflict`]), and nothing changes.
    ///
    /// # Errors
    ///
    /// An invalid or existing version name; a conflict in the file; writing
    /// the file; after cleanup.
    pub fn apply(self) -> Result<Version> {
        self.manager.rotate(self)
    }
}
