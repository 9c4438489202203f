//! The key store: an immutable keyring snapshot published through
//! `arc-swap`, with lazily derived, cached keys.
//!
//! This module holds the store itself, its construction, key derivation
//! and the read-only views; encryption, the decrypt path and the lifecycle
//! (add, activate, retire, destroy, clear the cache, clean up) live in the
//! submodules.

mod decrypt;
mod encrypt;
mod lifecycle;

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use arc_swap::{ArcSwap, Guard};
use secrecy::ExposeSecret;
use secrets_manager_fernet::{Fernet, Key};
use secrets_manager_kdf::{Salt, derive_key_into};

use crate::error::KeystoreError;
use crate::ring::{Entry, Ring};
use crate::spec::{KeyMaterial, Options, Snapshot, VersionInfo, VersionSpec, VersionState};
use crate::stats::{Counter, Counters, Statistics};
use crate::version::Version;

pub use self::decrypt::{DecryptOptions, RotatedToken};

/// A versioned keyring: one active version encrypts, every usable version
/// decrypts.
///
/// Readers never lock: each operation loads the current snapshot through
/// `arc-swap`. Writers (rotation, retirement) serialise on a mutex among
/// themselves and publish a new snapshot. Keys are derived lazily, once per
/// version, under that version's own lock, and cached.
///
/// ```
/// use secrets_manager_fernet::Key;
/// use secrets_manager_keystore::{KeyMaterial, KeyStore, Options, Version, VersionSpec};
///
/// let v1 = Version::new("v1")?;
/// let spec = VersionSpec::new(v1, KeyMaterial::Fernet(Key::generate()));
/// let store = KeyStore::new(vec![spec], v1, Options::default())?;
/// let (version, token) = store.encrypt(b"hello")?;
/// let (used, plaintext) = store.decrypt(token.as_bytes())?;
/// assert_eq!((version, used, &plaintext[..]), (v1, v1, &b"hello"[..]));
/// # Ok::<(), secrets_manager_keystore::KeystoreError>(())
/// ```
pub struct KeyStore {
    state: ArcSwap<State>,
    writer: Mutex<()>,
    counters: Counters,
    options: Options,
}

/// What a store holds: a live keyring, or, after cleanup, only names.
enum State {
    Live(Ring),
    /// After [`KeyStore::cleanup`]: the names (never secret) as they were
    /// when it ran, and no key.
    CleanedUp {
        versions: Vec<Version>,
        active: Version,
    },
}

impl State {
    /// The live keyring, or [`KeystoreError::CleanedUp`].
    fn live(&self) -> Result<&Ring, KeystoreError> {
        match self {
            Self::Live(ring) => Ok(ring),
            Self::CleanedUp { .. } => Err(KeystoreError::CleanedUp),
        }
    }

    fn active(&self) -> Version {
        match self {
            Self::Live(ring) => ring.entries[ring.encrypting_now()].name,
            Self::CleanedUp { active, .. } => *active,
        }
    }

    fn versions(&self) -> Vec<Version> {
        match self {
            Self::Live(ring) => ring.names(),
            Self::CleanedUp { versions, .. } => versions.clone(),
        }
    }
}

impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state();
        let mut s = f.debug_struct("KeyStore");
        s.field("versions", &state.versions())
            .field("active", &state.active());
        if let State::CleanedUp { .. } = **state {
            s.field("cleaned_up", &true);
        }
        s.finish_non_exhaustive()
    }
}

impl KeyStore {
    /// A store holding `versions`, with `active` encrypting.
    ///
    /// Salt hashes are checked now (when verification is on), so a bad
    /// version fails here rather than at first use. Keys are derived lazily.
    ///
    /// # Errors
    ///
    /// No versions, a duplicate, an active version not among them, or a
    /// salt that fails its integrity check.
    pub fn new(
        versions: Vec<VersionSpec>,
        active: Version,
        options: Options,
    ) -> Result<Self, KeystoreError> {
        if versions.is_empty() {
            return Err(KeystoreError::NoVersions);
        }
        let counters = Counters::new();
        let mut entries: Vec<Arc<Entry>> = Vec::with_capacity(versions.len());
        for spec in versions {
            if entries.iter().any(|e| e.name == spec.name) {
                return Err(KeystoreError::DuplicateVersion(spec.name));
            }
            check_salt(&options, &counters, &spec)?;
            entries.push(Arc::new(Entry::new(spec)));
        }
        let Some(active_index) = entries.iter().position(|e| e.name == active) else {
            return Err(KeystoreError::UnknownActiveVersion {
                active,
                available: entries.iter().map(|e| e.name).collect(),
            });
        };
        match entries[active_index].state {
            VersionState::Usable => {}
            VersionState::Retired => return Err(KeystoreError::VersionRetired(active)),
            VersionState::Destroyed => return Err(KeystoreError::VersionDestroyed(active)),
        }
        Ok(Self {
            state: ArcSwap::from_pointee(State::Live(Ring::new(entries, active_index))),
            writer: Mutex::new(()),
            counters,
            options,
        })
    }

    /// The current state (callers take the keyring with
    /// [`State::live`], which turns a cleaned-up store into
    /// [`KeystoreError::CleanedUp`]).
    fn state(&self) -> Guard<Arc<State>> {
        self.state.load()
    }

    /// Publishes a new keyring. Callers hold the writer lock.
    fn publish(&self, ring: Ring) {
        self.state.store(Arc::new(State::Live(ring)));
    }

    /// Runs `f` with the version's expanded key, deriving it first if it is
    /// not cached.
    fn with_fernet<R>(
        &self,
        entry: &Entry,
        f: impl FnOnce(&Fernet) -> R,
    ) -> Result<R, KeystoreError> {
        Ok(f(self.fernet(entry)?))
    }

    /// The version's expanded key: the cached one (one atomic load), or
    /// derived now. Lookups are counted by the callers (see
    /// `Counter::ExtraLookups`).
    #[inline]
    fn fernet<'e>(&self, entry: &'e Entry) -> Result<&'e Fernet, KeystoreError> {
        match entry.cache.fernet.get() {
            Some(fernet) => Ok(fernet),
            None => self.derive(entry),
        }
    }

    /// Derives a version's key once: concurrent first users wait on the
    /// version's lock and then find it cached.
    fn derive<'e>(&self, entry: &'e Entry) -> Result<&'e Fernet, KeystoreError> {
        let _only_one = entry
            .cache
            .derive
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(fernet) = entry.cache.fernet.get() {
            return Ok(fernet);
        }
        self.counters.add(Counter::CacheMisses, 1);
        let fernet = match entry.material.as_deref() {
            None => return Err(KeystoreError::VersionDestroyed(entry.name)),
            Some(KeyMaterial::Fernet(key)) => Fernet::new(key),
            Some(KeyMaterial::Password {
                password,
                salt,
                salt_hash,
                iterations,
                ..
            }) => {
                if let (true, Some(hash)) = (self.options.verify_salt_integrity, salt_hash) {
                    self.counters.add(Counter::IntegrityChecks, 1);
                    if !salt.matches_hash(hash) {
                        return Err(KeystoreError::SaltIntegrity(entry.name));
                    }
                }
                let started = Instant::now();
                // Derived straight into locked memory: no copy of the key
                // ever sits in pageable memory.
                let key = Key::fill_with(|out| {
                    derive_key_into(password.expose_secret().as_bytes(), salt, *iterations, out);
                });
                let fernet = Fernet::new(&key);
                warn_once_if_memory_unlocked();
                tracing::debug!(
                    version = %entry.name,
                    iterations = iterations.get(),
                    elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
                    "derived key"
                );
                fernet
            }
        };
        // Under the derive lock, nobody else sets it.
        Ok(entry.cache.fernet.get_or_init(|| fernet))
    }

    /// The active version. After [`cleanup`](Self::cleanup), the one that
    /// was active when it ran (always one of [`versions`](Self::versions)).
    #[must_use]
    pub fn active_version(&self) -> Version {
        self.state().active()
    }

    /// Every version, in the order added. After [`cleanup`](Self::cleanup),
    /// the versions there were when it ran: names are not secret, and
    /// cleanup erases only secrets.
    #[must_use]
    pub fn versions(&self) -> Vec<Version> {
        self.state().versions()
    }

    /// Every version's state, activation time, iterations and decryption
    /// count, in the order added. Never a key, password or salt.
    ///
    /// # Errors
    ///
    /// After [`cleanup`](Self::cleanup): it describes keys, and there are
    /// none left.
    pub fn version_info(&self) -> Result<Vec<VersionInfo>, KeystoreError> {
        let state = self.state();
        let ring = state.live()?;
        Ok((0..ring.entries.len()).map(|i| ring.info(i)).collect())
    }

    /// Runs `f` on one consistent snapshot of the keyring: every version
    /// with its key material (for persisting it) and the active version,
    /// all from the same moment, so a concurrent change cannot mix two
    /// states in one write.
    ///
    /// # Errors
    ///
    /// After [`cleanup`](Self::cleanup).
    pub fn with_snapshot<R>(&self, f: impl FnOnce(&Snapshot<'_>) -> R) -> Result<R, KeystoreError> {
        let state = self.state();
        let ring = state.live()?;
        Ok(f(&Snapshot { ring }))
    }

    /// Counts since creation.
    #[must_use]
    pub fn statistics(&self) -> Statistics {
        self.counters.snapshot()
    }

    /// Whether [`cleanup`](Self::cleanup) was called.
    #[must_use]
    pub fn is_cleaned_up(&self) -> bool {
        matches!(**self.state(), State::CleanedUp { .. })
    }
}

/// Checks a salt against its recorded hash. With verification off, the
/// salt hash is ignored entirely, even a malformed one, as in the Python
/// package.
fn check_salt(
    options: &Options,
    counters: &Counters,
    spec: &VersionSpec,
) -> Result<(), KeystoreError> {
    if let (
        true,
        Some(KeyMaterial::Password {
            salt,
            salt_hash: Some(hash),
            ..
        }),
    ) = (options.verify_salt_integrity, &spec.material)
    {
        Salt::validate_hash_text(hash).map_err(|source| KeystoreError::SaltHash {
            version: spec.name,
            source,
        })?;
        counters.add(Counter::IntegrityChecks, 1);
        if !salt.matches_hash(hash) {
            return Err(KeystoreError::SaltIntegrity(spec.name));
        }
    }
    Ok(())
}

/// Logs once per process if keys could not be locked in memory (a low
/// `RLIMIT_MEMLOCK`): keys still work, only the protection is weaker.
fn warn_once_if_memory_unlocked() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    let status = secrets_manager_fernet::secure_memory_status();
    if status.unlocked_bytes > 0 {
        ONCE.call_once(|| {
            tracing::warn!(
                unlocked_bytes = status.unlocked_bytes,
                os_error = status.lock_error,
                "key material could not be locked in memory (raise RLIMIT_MEMLOCK); keys work, but may be swapped out"
            );
        });
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;
    use crate::spec::KeyKind;

    fn spec(name: &str, at: Option<u64>) -> VersionSpec {
        VersionSpec::new(
            Version::new(name).unwrap(),
            KeyMaterial::Fernet(Key::generate()),
        )
        .with_activated_at(at)
    }

    #[test]
    fn a_scheduled_version_takes_over_encryption_at_its_time() {
        let (v1, v2) = (Version::new("v1").unwrap(), Version::new("v2").unwrap());
        let store = KeyStore::new(vec![spec("v1", Some(100))], v1, Options::default()).unwrap();
        let misses = store.statistics().cache_misses;
        store.add_version(spec("v2", Some(200)), false).unwrap();
        assert_eq!(
            store.statistics().cache_misses,
            misses + 1,
            "a scheduled key is derived before it is published"
        );
        assert_eq!(store.encrypt_at_time(b"x", 150).unwrap().0, v1);
        assert_eq!(store.encrypt_at_time(b"x", 199).unwrap().0, v1);
        assert_eq!(store.encrypt_at_time(b"x", 200).unwrap().0, v2);
        // Now is long past 200: v2 is the active version, and cannot be
        // retired.
        assert_eq!(store.active_version(), v2);
        let info = store.version_info().unwrap();
        assert!(info[1].active && !info[0].active);
        assert!(matches!(
            store.retire(&v2),
            Err(KeystoreError::ActiveVersion(_))
        ));
        // A version scheduled far ahead does not encrypt yet.
        let v3 = Version::new("v3").unwrap();
        store
            .add_version(spec("v3", Some(u64::MAX)), false)
            .unwrap();
        assert_eq!(store.encrypt(b"x").unwrap().0, v2);
        assert!(
            store
                .version_info()
                .unwrap()
                .iter()
                .all(|i| i.version != v3 || !i.active)
        );
    }

    #[test]
    fn an_active_version_without_a_time_schedules_nothing() {
        // As a file rotated by the Python package reads: the active v2 has
        // no activation time, the older v1 has one. v1 must not take over.
        let (v1, v2) = (Version::new("v1").unwrap(), Version::new("v2").unwrap());
        let store = KeyStore::new(
            vec![spec("v1", Some(100)), spec("v2", None)],
            v2,
            Options::default(),
        )
        .unwrap();
        assert_eq!(store.encrypt_at_time(b"x", 1_000).unwrap().0, v2);
        assert_eq!(store.active_version(), v2);
        let _ = v1;
    }

    #[test]
    fn activate_switches_back_to_an_existing_version() {
        let (v1, v2) = (Version::new("v1").unwrap(), Version::new("v2").unwrap());
        let store = KeyStore::new(
            vec![spec("v1", Some(10)), spec("v2", Some(20))],
            v2,
            Options::default(),
        )
        .unwrap();
        store.activate(&v1, Some(30)).unwrap();
        assert_eq!(store.active_version(), v1);
        assert_eq!(store.statistics().rotations, 1);
        let info = store.version_info().unwrap();
        assert_eq!(info[0].activated_at, Some(30));
        assert_eq!(info[0].kind, Some(KeyKind::Fernet));
        store.retire(&v2).unwrap();
        assert!(
            matches!(store.activate(&v2, None), Err(KeystoreError::VersionRetired(v)) if v == v2)
        );
        assert!(matches!(store.retire(&v1), Err(KeystoreError::ActiveVersion(v)) if v == v1));
    }

    fn password(name: &str, salt_hash: &str) -> VersionSpec {
        VersionSpec::new(
            Version::new(name).unwrap(),
            KeyMaterial::Password {
                password: "pw".into(),
                salt: Salt::from(b"salt"),
                salt_hash: Some(salt_hash.to_owned()),
                iterations: NonZeroU32::MIN,
                iterations_recorded: false,
            },
        )
    }

    #[test]
    fn loaded_states_are_kept_and_the_active_version_must_be_usable() {
        let (v1, v2, v3) = (
            Version::new("v1").unwrap(),
            Version::new("v2").unwrap(),
            Version::new("v3").unwrap(),
        );
        let store = KeyStore::new(
            vec![
                spec("v1", None).with_state(VersionState::Retired),
                VersionSpec::tombstone(v2),
                spec("v3", None),
            ],
            v3,
            Options::default(),
        )
        .unwrap();
        let (_, token) = store.encrypt(b"x").unwrap();
        assert!(store.decrypt(token.as_bytes()).is_ok());
        let states: Vec<_> = store
            .version_info()
            .unwrap()
            .iter()
            .map(|i| i.state)
            .collect();
        assert_eq!(
            states,
            [
                VersionState::Retired,
                VersionState::Destroyed,
                VersionState::Usable
            ]
        );
        let kinds: Vec<_> = store
            .with_snapshot(|s| s.versions().map(|(_, m)| m.is_some()).collect::<Vec<_>>())
            .unwrap();
        assert_eq!(kinds, [true, false, true]);
        for (active, want) in [(v1, "retired"), (v2, "destroyed")] {
            let err = KeyStore::new(
                vec![
                    spec("v1", None).with_state(VersionState::Retired),
                    VersionSpec::tombstone(v2),
                ],
                active,
                Options::default(),
            )
            .unwrap_err();
            assert!(err.to_string().contains(want), "{err}");
        }
    }

    #[test]
    fn salt_hashes_are_ignored_entirely_when_verification_is_off() {
        let v1 = Version::new("v1").unwrap();
        let off = Options::default().with_verify_salt_integrity(false);
        let store = KeyStore::new(vec![password("v1", "wrong-hash")], v1, off).unwrap();
        assert!(store.encrypt(b"x").is_ok());
        assert_eq!(store.statistics().integrity_checks, 0);
        let err =
            KeyStore::new(vec![password("v1", "wrong-hash")], v1, Options::default()).unwrap_err();
        assert!(matches!(err, KeystoreError::SaltHash { .. }), "{err}");
    }

    #[test]
    fn activation_derives_the_key_before_publishing() {
        let (v1, v2) = (Version::new("v1").unwrap(), Version::new("v2").unwrap());
        let store = KeyStore::new(
            vec![spec("v1", None), spec("v2", None)],
            v1,
            Options::default(),
        )
        .unwrap();
        let misses = store.statistics().cache_misses;
        store.activate(&v2, Some(5)).unwrap();
        assert_eq!(store.statistics().cache_misses, misses + 1);
        let state = store.state();
        let ring = state.live().unwrap();
        assert!(ring.entries[1].cache.fernet.get().is_some());
    }

    #[test]
    fn after_cleanup_the_names_stay_and_everything_else_reports_it() {
        let (v1, v2, v3) = (
            Version::new("v1").unwrap(),
            Version::new("v2").unwrap(),
            Version::new("v3").unwrap(),
        );
        let store = KeyStore::new(
            vec![spec("v1", None), spec("v2", None)],
            v1,
            Options::default(),
        )
        .unwrap();
        store.add_version(spec("v3", Some(7)), true).unwrap();
        let (_, token) = store.encrypt(b"x").unwrap();
        let (versions, active) = (store.versions(), store.active_version());
        assert_eq!((&versions[..], active), (&[v1, v2, v3][..], v3));

        store.cleanup();
        assert!(store.is_cleaned_up());
        // The names, as they were, and the active one among them.
        assert_eq!(store.versions(), versions);
        assert_eq!(store.active_version(), v3);
        assert!(store.versions().contains(&store.active_version()));
        fn cleaned<T>(result: Result<T, KeystoreError>) -> bool {
            matches!(result, Err(KeystoreError::CleanedUp))
        }
        assert!(cleaned(store.version_info()));
        assert!(cleaned(store.with_snapshot(|s| s.active())));
        assert!(cleaned(store.encrypt(b"x")));
        assert!(cleaned(store.decrypt(token.as_bytes())));
        assert!(cleaned(store.rotate_token(token.as_bytes())));
        assert!(cleaned(store.add_version(spec("v4", None), true)));
        assert!(cleaned(store.activate(&v1, None)));
        assert!(cleaned(store.retire(&v1)));
        assert!(cleaned(store.destroy(&v1)));
        // Neither a second cleanup nor clearing the cache brings anything
        // back or changes the names.
        store.clear_cache();
        store.cleanup();
        assert_eq!((store.versions(), store.active_version()), (versions, v3));
        assert!(cleaned(store.version_info()));
        let shown = format!("{store:?}");
        assert!(
            shown.contains("cleaned_up: true") && shown.contains("v3"),
            "{shown}"
        );
    }
}
