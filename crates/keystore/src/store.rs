//! The key store: an immutable keyring snapshot published through
//! `arc-swap`, with lazily derived, cached keys.

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::{ArcSwapOption, Guard};
use secrecy::{ExposeSecret, SecretString};
use secrets_manager_fernet::zeroize::Zeroizing;
use secrets_manager_fernet::{Fernet, Key, UnverifiedToken};
use secrets_manager_kdf::{Salt, derive_key};

use crate::error::KeystoreError;
use crate::stats::{Counter, Counters, Statistics, StripedCounter};
use crate::version::Version;

/// Where a version's key comes from.
pub enum KeyMaterial {
    /// PBKDF2-HMAC-SHA256 from a password and salt, as the Python package
    /// derives keys.
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

/// Options of a store.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Check salts against their recorded hashes before deriving (the
    /// Python package's `verify_salt_integrity`, on by default).
    pub verify_salt_integrity: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            verify_salt_integrity: true,
        }
    }
}

/// A version's derived key. Replaced wholesale by `clear_cache`, so the hot
/// path reads it with one atomic load (`OnceLock::get`).
struct Cache {
    fernet: OnceLock<Fernet>,
    /// Serialises derivation of this version only.
    derive: Mutex<()>,
}

impl Cache {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            fernet: OnceLock::new(),
            derive: Mutex::new(()),
        })
    }
}

/// One version in one snapshot. The key material and the counters are
/// shared by every snapshot that holds the version; never copied.
struct Entry {
    name: Version,
    /// `None` once destroyed.
    material: Option<Arc<KeyMaterial>>,
    state: VersionState,
    activated_at: Option<u64>,
    cache: Arc<Cache>,
    decryptions: Arc<StripedCounter>,
}

impl Entry {
    fn new(spec: VersionSpec) -> Self {
        let state = match (&spec.material, spec.state) {
            (None, _) | (Some(_), VersionState::Destroyed) => VersionState::Destroyed,
            (Some(_), state) => state,
        };
        Self {
            name: spec.name,
            material: spec
                .material
                .filter(|_| state != VersionState::Destroyed)
                .map(Arc::new),
            state,
            activated_at: spec.activated_at,
            cache: Cache::new(),
            decryptions: Arc::new(StripedCounter::new()),
        }
    }

    /// The same version with changes, sharing material and counters.
    fn with(&self, state: VersionState, activated_at: Option<u64>, cache: Arc<Cache>) -> Self {
        Self {
            name: self.name,
            material: if state == VersionState::Destroyed {
                None
            } else {
                self.material.clone()
            },
            state,
            activated_at,
            cache,
            decryptions: Arc::clone(&self.decryptions),
        }
    }
}

/// One immutable keyring snapshot.
struct Ring {
    /// In the order added.
    entries: Vec<Arc<Entry>>,
    active: usize,
    index: HashMap<Version, usize>,
    /// `(activated_at, entry)`, sorted: which version was active when.
    timeline: Vec<(u64, usize)>,
}

impl Ring {
    fn new(entries: Vec<Arc<Entry>>, active: usize) -> Self {
        let index = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.name, i))
            .collect();
        let mut timeline: Vec<(u64, usize)> = entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.activated_at.map(|t| (t, i)))
            .collect();
        timeline.sort_unstable();
        Self {
            entries,
            active,
            index,
            timeline,
        }
    }

    /// The version that became active last at or before `timestamp`.
    fn active_at(&self, timestamp: u64) -> Option<usize> {
        let after = self.timeline.partition_point(|&(t, _)| t <= timestamp);
        after.checked_sub(1).map(|i| self.timeline[i].1)
    }

    fn names(&self) -> Vec<Version> {
        self.entries.iter().map(|e| e.name).collect()
    }

    /// What is known about entry `i`, without its key.
    fn info(&self, i: usize) -> VersionInfo {
        let e = &self.entries[i];
        let material = e.material.as_deref();
        VersionInfo {
            version: e.name,
            active: i == self.active,
            state: e.state,
            activated_at: e.activated_at,
            kind: material.map(|m| match m {
                KeyMaterial::Password { .. } => KeyKind::Password,
                KeyMaterial::Fernet(_) => KeyKind::Fernet,
            }),
            iterations: match material {
                Some(KeyMaterial::Password { iterations, .. }) => Some(iterations.get()),
                _ => None,
            },
            iterations_recorded: matches!(
                material,
                Some(KeyMaterial::Password {
                    iterations_recorded: true,
                    ..
                })
            ),
            decryptions: e.decryptions.get(),
        }
    }

    fn find(&self, version: &Version) -> Result<usize, KeystoreError> {
        self.index
            .get(version)
            .copied()
            .ok_or_else(|| KeystoreError::UnknownVersion {
                version: *version,
                available: self.names(),
            })
    }
}

/// Decryption's trial order over `len` versions: the `first` candidates
/// (hint, version active at the token's time, active version), each once,
/// then every other version, newest first.
fn trial_order(len: usize, first: [Option<usize>; 3]) -> impl Iterator<Item = usize> {
    let firsts = first
        .into_iter()
        .enumerate()
        .filter_map(move |(i, c)| c.filter(|c| !first[..i].contains(&Some(*c))));
    let rest = (0..len).rev().filter(move |i| !first.contains(&Some(*i)));
    firsts.chain(rest)
}

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
/// let (used, plaintext) = store.decrypt(token.as_bytes(), None, None, 0)?;
/// assert_eq!((version, used, &plaintext[..]), (v1, v1, &b"hello"[..]));
/// # Ok::<(), secrets_manager_keystore::KeystoreError>(())
/// ```
pub struct KeyStore {
    /// `None` after [`cleanup`](Self::cleanup).
    ring: ArcSwapOption<Ring>,
    writer: Mutex<()>,
    counters: Counters,
    options: Options,
}

impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ring = self.ring.load();
        match ring.as_deref() {
            Some(r) => f
                .debug_struct("KeyStore")
                .field("versions", &r.names())
                .field("active", &r.entries[r.active].name)
                .finish_non_exhaustive(),
            None => f.write_str("KeyStore { cleaned_up: true }"),
        }
    }
}

/// One moment of a [`KeyStore`]: see [`KeyStore::with_snapshot`].
pub struct Snapshot<'a> {
    ring: &'a Ring,
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
    /// The active version.
    #[must_use]
    pub fn active(&self) -> Version {
        self.ring.entries[self.ring.active].name
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

/// A token re-encrypted by [`KeyStore::rotate_token`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RotatedToken {
    /// The version that decrypted the original.
    pub from: Version,
    /// The version that encrypted the new token (the active one).
    pub to: Version,
    /// The new token.
    pub token: String,
    /// Length of the message inside, in bytes.
    pub plaintext_len: usize,
}

/// A decrypted token: the version that opened it, its timestamp and the
/// message.
type Opened = (Version, u64, Zeroizing<Vec<u8>>);

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
        let store = Self {
            ring: ArcSwapOption::empty(),
            writer: Mutex::new(()),
            counters: Counters::new(),
            options,
        };
        let mut entries: Vec<Arc<Entry>> = Vec::with_capacity(versions.len());
        for spec in versions {
            if entries.iter().any(|e| e.name == spec.name) {
                return Err(KeystoreError::DuplicateVersion(spec.name));
            }
            store.check_salt(&spec)?;
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
        store
            .ring
            .store(Some(Arc::new(Ring::new(entries, active_index))));
        Ok(store)
    }

    /// With verification off, the salt hash is ignored entirely, even a
    /// malformed one, as in the Python package.
    fn check_salt(&self, spec: &VersionSpec) -> Result<(), KeystoreError> {
        if let (
            true,
            Some(KeyMaterial::Password {
                salt,
                salt_hash: Some(hash),
                ..
            }),
        ) = (self.options.verify_salt_integrity, &spec.material)
        {
            Salt::validate_hash_text(hash).map_err(|source| KeystoreError::SaltHash {
                version: spec.name,
                source,
            })?;
            self.counters.add(Counter::IntegrityChecks, 1);
            if !salt.matches_hash(hash) {
                return Err(KeystoreError::SaltIntegrity(spec.name));
            }
        }
        Ok(())
    }

    /// The current snapshot; `None` inside after cleanup (callers turn that
    /// into [`KeystoreError::CleanedUp`]).
    fn ring(&self) -> Guard<Option<Arc<Ring>>> {
        self.ring.load()
    }

    /// Runs `f` with the version's expanded key, deriving it first if it is
    /// not cached.
    fn with_fernet<R>(
        &self,
        entry: &Entry,
        f: impl FnOnce(&Fernet) -> R,
    ) -> Result<R, KeystoreError> {
        // Lookups are counted by the callers (see `Counter::ExtraLookups`).
        if let Some(fernet) = entry.cache.fernet.get() {
            return Ok(f(fernet));
        }
        Ok(f(self.derive(entry)?))
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
                let raw = derive_key(password.expose_secret().as_bytes(), salt, *iterations);
                let fernet = Fernet::new(&Key::from_bytes(*raw));
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

    /// Encrypts under the active version, stamped with the current time.
    ///
    /// # Errors
    ///
    /// After [`cleanup`](Self::cleanup), or if the active key cannot be
    /// derived.
    pub fn encrypt(&self, msg: &[u8]) -> Result<(Version, String), KeystoreError> {
        self.encrypt_at_time(msg, secrets_manager_fernet::unix_time())
    }

    /// Encrypts under the active version, stamped with `timestamp`.
    ///
    /// # Errors
    ///
    /// As [`encrypt`](Self::encrypt).
    pub fn encrypt_at_time(
        &self,
        msg: &[u8],
        timestamp: u64,
    ) -> Result<(Version, String), KeystoreError> {
        let ring = self.ring();
        let ring = ring.as_deref().ok_or(KeystoreError::CleanedUp)?;
        let entry = &ring.entries[ring.active];
        match self.with_fernet(entry, |f| f.encrypt_at_time(msg, timestamp)) {
            Ok(token) => {
                self.counters.add(Counter::Encryptions, 1);
                Ok((entry.name, token))
            }
            Err(e) => {
                self.counters.add(Counter::ExtraLookups, 1);
                Err(e)
            }
        }
    }

    /// Decrypts a token, trying versions in this order: `hint`; the version
    /// that was active at the token's timestamp; the active version; every
    /// other usable version, newest first. The timestamp only orders the
    /// attempts: every attempt verifies the HMAC. An unknown hint is ignored,
    /// as in the Python package.
    ///
    /// With a `ttl`, the token must be no older than `ttl` and no more than
    /// 60 s in the future relative to `now` (Unix seconds).
    ///
    /// # Errors
    ///
    /// A malformed or expired token, no version that opens it (naming a
    /// retired or destroyed version when that is why), or a cleaned-up
    /// store.
    pub fn decrypt(
        &self,
        token: &[u8],
        hint: Option<&str>,
        ttl: Option<Duration>,
        now: u64,
    ) -> Result<(Version, Zeroizing<Vec<u8>>), KeystoreError> {
        self.open_counted(token, hint, ttl, now)
            .map(|(v, _, msg)| (v, msg))
    }

    /// Re-encrypts a token under the active version, keeping its timestamp.
    ///
    /// # Errors
    ///
    /// As [`decrypt`](Self::decrypt) (no TTL is applied), or
    /// [`encrypt`](Self::encrypt).
    pub fn rotate_token(&self, token: &[u8]) -> Result<RotatedToken, KeystoreError> {
        let (from, timestamp, msg) = self.open_counted(token, None, None, 0)?;
        let (to, token) = self.encrypt_at_time(&msg, timestamp)?;
        Ok(RotatedToken {
            from,
            to,
            token,
            plaintext_len: msg.len(),
        })
    }

    /// `open`, counted: a decryption (with its one implied key lookup) or a
    /// failure, plus any further lookups the trial needed.
    fn open_counted(
        &self,
        token: &[u8],
        hint: Option<&str>,
        ttl: Option<Duration>,
        now: u64,
    ) -> Result<Opened, KeystoreError> {
        let mut lookups = 0;
        let result = self.open(token, hint, ttl, now, &mut lookups);
        let (counter, extra) = match result {
            Ok(_) => (Counter::Decryptions, lookups.saturating_sub(1)),
            Err(_) => (Counter::DecryptionFailures, lookups),
        };
        if extra > 0 {
            self.counters.add(Counter::ExtraLookups, extra);
        }
        self.counters.add(counter, 1);
        result
    }

    fn open(
        &self,
        token: &[u8],
        hint: Option<&str>,
        ttl: Option<Duration>,
        now: u64,
        lookups: &mut u64,
    ) -> Result<Opened, KeystoreError> {
        let ring = self.ring();
        let ring = ring.as_deref().ok_or(KeystoreError::CleanedUp)?;
        let parsed = UnverifiedToken::parse(token).map_err(|_| KeystoreError::InvalidToken)?;
        parsed
            .check_ttl(ttl, now)
            .map_err(|_| KeystoreError::InvalidToken)?;

        let hinted = hint
            .and_then(|h| Version::from_setting(h).ok())
            .and_then(|v| ring.index.get(&v).copied());
        let by_time = ring.active_at(parsed.timestamp());
        let first = [hinted, by_time, Some(ring.active)];
        // The first candidate opens most tokens: try it before building
        // the trial order (which starts with it), keeping the common path
        // short.
        let first_choice = hinted.or(by_time).unwrap_or(ring.active);
        let mut token = match self.try_open(&ring.entries[first_choice], parsed, lookups)? {
            Ok(opened) => return Ok(opened),
            Err(unopened) => unopened,
        };
        for index in trial_order(ring.entries.len(), first).skip(1) {
            token = match self.try_open(&ring.entries[index], token, lookups)? {
                Ok(opened) => return Ok(opened),
                Err(unopened) => unopened,
            };
        }

        // Say why, when the version that made it is gone: a retired
        // version's key still verifies the token (its MAC, nothing is
        // decrypted); a destroyed one is named by the hint or the token's
        // time.
        for entry in ring.entries.iter().rev() {
            if entry.state != VersionState::Retired {
                continue;
            }
            let fernet = match entry.cache.fernet.get() {
                Some(fernet) => fernet,
                None => self.derive(entry)?,
            };
            token = match token.verify(fernet) {
                Ok(_) => return Err(KeystoreError::VersionRetired(entry.name)),
                Err(unopened) => unopened,
            };
        }
        for index in [hinted, by_time].into_iter().flatten() {
            let entry = &ring.entries[index];
            match entry.state {
                VersionState::Retired => return Err(KeystoreError::VersionRetired(entry.name)),
                VersionState::Destroyed => return Err(KeystoreError::VersionDestroyed(entry.name)),
                VersionState::Usable => {}
            }
        }
        let tried = trial_order(ring.entries.len(), first)
            .filter(|&i| ring.entries[i].state == VersionState::Usable)
            .map(|i| ring.entries[i].name)
            .collect();
        let destroyed = ring
            .entries
            .iter()
            .filter(|e| e.state == VersionState::Destroyed)
            .map(|e| e.name)
            .collect();
        Err(KeystoreError::DecryptionFailed { tried, destroyed })
    }

    /// One attempt: the token back if this version does not open it.
    #[inline]
    fn try_open(
        &self,
        entry: &Entry,
        token: UnverifiedToken,
        lookups: &mut u64,
    ) -> Result<Result<Opened, UnverifiedToken>, KeystoreError> {
        if entry.state != VersionState::Usable {
            return Ok(Err(token));
        }
        *lookups += 1;
        let fernet = match entry.cache.fernet.get() {
            Some(fernet) => fernet,
            None => self.derive(entry)?,
        };
        let verified = match token.verify(fernet) {
            Ok(verified) => verified,
            Err(unopened) => return Ok(Err(unopened)),
        };
        let timestamp = verified.timestamp();
        Ok(verified.decrypt().map(|msg| {
            entry.decryptions.incr();
            (entry.name, timestamp, msg)
        }))
    }

    /// Adds a version; with `activate`, makes it the active one (a
    /// rotation). Existing versions, and their cached keys, are kept.
    ///
    /// # Errors
    ///
    /// The name exists already, its salt fails its check, or the store was
    /// cleaned up.
    pub fn add_version(&self, spec: VersionSpec, activate: bool) -> Result<(), KeystoreError> {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.ring.load_full().ok_or(KeystoreError::CleanedUp)?;
        if current.index.contains_key(&spec.name) {
            return Err(KeystoreError::DuplicateVersion(spec.name));
        }
        self.check_salt(&spec)?;
        let name = spec.name;
        let entry = Arc::new(Entry::new(spec));
        if activate && entry.state != VersionState::Usable {
            return Err(match entry.state {
                VersionState::Retired => KeystoreError::VersionRetired(name),
                _ => KeystoreError::VersionDestroyed(name),
            });
        }
        if activate {
            // Derive before publishing, here in the writer, so no reader
            // ever waits for a new active key.
            self.counters.add(Counter::ExtraLookups, 1);
            self.derive(&entry)?;
        }
        let mut entries = current.entries.clone();
        entries.push(entry);
        let active = if activate {
            entries.len() - 1
        } else {
            current.active
        };
        self.ring.store(Some(Arc::new(Ring::new(entries, active))));
        if activate {
            self.counters.add(Counter::Rotations, 1);
            tracing::info!(version = %name, previous = %current.entries[current.active].name, "rotated to a new active version");
        } else {
            tracing::info!(version = %name, "added version");
        }
        Ok(())
    }

    /// Makes an existing usable version the active one.
    ///
    /// # Errors
    ///
    /// Unknown, retired or destroyed version; a cleaned-up store.
    pub fn activate(
        &self,
        version: &Version,
        activated_at: Option<u64>,
    ) -> Result<(), KeystoreError> {
        self.replace(version, |entry, ring, index| {
            match entry.state {
                VersionState::Retired => return Err(KeystoreError::VersionRetired(entry.name)),
                VersionState::Destroyed => return Err(KeystoreError::VersionDestroyed(entry.name)),
                VersionState::Usable => {}
            }
            if ring.active != index {
                // Derive before publishing, as a rotation does, so no reader
                // waits for the new active key.
                self.counters.add(Counter::ExtraLookups, 1);
                self.derive(entry)?;
            }
            let updated = entry.with(
                entry.state,
                activated_at.or(entry.activated_at),
                Arc::clone(&entry.cache),
            );
            Ok((updated, index, ring.active != index))
        })
    }

    /// Retires a version: it stops decrypting (like Vault's
    /// `min_decryption_version` or Tink's `DISABLED`). Its key is kept.
    ///
    /// # Errors
    ///
    /// Unknown or active version; a cleaned-up store.
    pub fn retire(&self, version: &Version) -> Result<(), KeystoreError> {
        self.replace(version, |entry, ring, index| {
            if index == ring.active {
                return Err(KeystoreError::ActiveVersion(entry.name));
            }
            let state = if entry.state == VersionState::Destroyed {
                VersionState::Destroyed
            } else {
                VersionState::Retired
            };
            let retired = entry.with(state, entry.activated_at, Arc::clone(&entry.cache));
            tracing::info!(version = %entry.name, "retired version");
            Ok((retired, ring.active, false))
        })
    }

    /// Destroys a version: its password, salt and keys are erased; its name
    /// stays, so its tokens fail with an error that says so.
    ///
    /// # Errors
    ///
    /// Unknown or active version; a cleaned-up store.
    pub fn destroy(&self, version: &Version) -> Result<(), KeystoreError> {
        self.replace(version, |entry, ring, index| {
            if index == ring.active {
                return Err(KeystoreError::ActiveVersion(entry.name));
            }
            // The old entry, with its material and cached key, is dropped
            // (and zeroized) once no reader holds the old snapshot.
            let destroyed = entry.with(VersionState::Destroyed, entry.activated_at, Cache::new());
            tracing::info!(version = %entry.name, "destroyed version");
            Ok((destroyed, ring.active, false))
        })
    }

    /// Publishes a snapshot with one entry replaced. `change` returns the
    /// new entry, the new active index, and whether that is a rotation.
    fn replace(
        &self,
        version: &Version,
        change: impl FnOnce(&Entry, &Ring, usize) -> Result<(Entry, usize, bool), KeystoreError>,
    ) -> Result<(), KeystoreError> {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.ring.load_full().ok_or(KeystoreError::CleanedUp)?;
        let index = current.find(version)?;
        let (entry, active, rotated) = change(&current.entries[index], &current, index)?;
        let mut entries = current.entries.clone();
        entries[index] = Arc::new(entry);
        self.ring.store(Some(Arc::new(Ring::new(entries, active))));
        if rotated {
            self.counters.add(Counter::Rotations, 1);
        }
        Ok(())
    }

    /// The active version.
    ///
    /// # Errors
    ///
    /// After [`cleanup`](Self::cleanup).
    pub fn active_version(&self) -> Result<Version, KeystoreError> {
        let ring = self.ring();
        let ring = ring.as_deref().ok_or(KeystoreError::CleanedUp)?;
        Ok(ring.entries[ring.active].name)
    }

    /// Every version, in the order added.
    ///
    /// # Errors
    ///
    /// After [`cleanup`](Self::cleanup).
    pub fn versions(&self) -> Result<Vec<Version>, KeystoreError> {
        let ring = self.ring();
        ring.as_deref()
            .map(Ring::names)
            .ok_or(KeystoreError::CleanedUp)
    }

    /// Every version's state, activation time, iterations and decryption
    /// count, in the order added. Never a key, password or salt.
    ///
    /// # Errors
    ///
    /// After [`cleanup`](Self::cleanup).
    pub fn version_info(&self) -> Result<Vec<VersionInfo>, KeystoreError> {
        let ring = self.ring();
        let ring = ring.as_deref().ok_or(KeystoreError::CleanedUp)?;
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
        let ring = self.ring();
        let ring = ring.as_deref().ok_or(KeystoreError::CleanedUp)?;
        Ok(f(&Snapshot { ring }))
    }

    /// Counts since creation.
    #[must_use]
    pub fn statistics(&self) -> Statistics {
        self.counters.snapshot()
    }

    /// Drops every cached key (each is zeroized when the last operation
    /// using it finishes); they are derived again on demand.
    pub fn clear_cache(&self) {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(current) = self.ring.load_full() {
            let entries = current
                .entries
                .iter()
                .map(|e| Arc::new(e.with(e.state, e.activated_at, Cache::new())))
                .collect();
            self.ring
                .store(Some(Arc::new(Ring::new(entries, current.active))));
        }
    }

    /// Erases every password, salt and key. Afterwards every operation
    /// returns [`KeystoreError::CleanedUp`]. Operations already running
    /// finish first; the memory is zeroized when the last one lets go.
    pub fn cleanup(&self) {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(ring) = self.ring.swap(None) {
            tracing::info!(versions = ring.entries.len(), "cleaned up: keys erased");
        }
    }

    /// Whether [`cleanup`](Self::cleanup) was called.
    #[must_use]
    pub fn is_cleaned_up(&self) -> bool {
        self.ring.load().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, at: Option<u64>) -> VersionSpec {
        VersionSpec::new(
            Version::new(name).unwrap(),
            KeyMaterial::Fernet(Key::generate()),
        )
        .with_activated_at(at)
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
        assert_eq!(store.active_version().unwrap(), v1);
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
        assert!(store.decrypt(token.as_bytes(), None, None, 0).is_ok());
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
        let off = Options {
            verify_salt_integrity: false,
        };
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
        let ring = store.ring.load_full().unwrap();
        assert!(ring.entries[1].cache.fernet.get().is_some());
    }

    #[test]
    fn the_timeline_picks_the_version_active_at_a_time() {
        let store = KeyStore::new(
            vec![spec("a", Some(100)), spec("b", None), spec("c", Some(300))],
            Version::new("c").unwrap(),
            Options::default(),
        )
        .unwrap();
        let ring = store.ring.load_full().unwrap();
        assert_eq!(ring.active_at(99), None);
        assert_eq!(ring.active_at(100), Some(0));
        assert_eq!(ring.active_at(299), Some(0));
        assert_eq!(ring.active_at(u64::MAX), Some(2));
    }
}
