//! `Core`: one facade [`SecretsManager`], kept in step with a Python
//! `SecretsConfig` that applications may change between calls.
//!
//! The Python layer notices that its configuration changed (a revision
//! counter) and calls [`Core::sync`] with the whole of it. What the facade
//! can express is applied in place: new versions are added (staged), the
//! active pointer moves. What it cannot (a version removed from or changed
//! in `config.keys`, other settings, a manager that was cleaned up) builds a
//! new facade manager; counts of the replaced ones are kept, so statistics
//! stay exact across rebuilds.
//!
//! Locks and the GIL: no lock is ever waited on while the GIL is held. Work
//! that may wait (the control mutex) or take long (PBKDF2, large inputs,
//! files) runs in `Python::detach`; the hot path takes only the short
//! `warm` mutex, which is never held across anything that waits.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyString};
use secrets_manager::fernet::{Fernet, Key, UnverifiedToken};
use secrets_manager::kdf::{Salt, derive_key};
use secrets_manager::keystore::{KeyKind, VersionState};
use secrets_manager::secrecy::{ExposeSecret as _, SecretString};
use secrets_manager::zeroize::Zeroizing;
use secrets_manager::{Error, SecretsConfig, SecretsManager, Statistics, Version};
use sha2::{Digest, Sha256};

use crate::errors::{Doing, to_py};
use crate::token::PyFernet;

/// Inputs up to this many bytes are encrypted or decrypted with the GIL
/// held (a few microseconds of work: releasing and taking the GIL back
/// would cost more, and hand the GIL around between threads). Longer ones,
/// and any call that may derive a key, release it.
pub(crate) const SMALL: usize = 16 * 1024;

/// Bytes for Python. A large copy happens with the GIL released (into the
/// new, not yet shared, `bytes` object).
pub(crate) fn bytes_out<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    if data.len() <= SMALL {
        return Ok(PyBytes::new(py, data));
    }
    PyBytes::new_with(py, data.len(), |buf| {
        py.detach(|| buf.copy_from_slice(data));
        Ok(())
    })
}

/// Drops a large plaintext (zeroizing it) with the GIL released.
pub(crate) fn drop_large(py: Python<'_>, plaintext: Zeroizing<Vec<u8>>) {
    if plaintext.len() > SMALL {
        py.detach(move || drop(plaintext));
    }
}

/// A configuration entry as the Python layer passes it:
/// `(version, password, salt bytes, salt_hash)`.
pub(crate) type EntryArg = (String, String, Vec<u8>, Option<String>);

/// One version of the configuration.
pub(crate) struct Entry {
    pub(crate) name: Version,
    pub(crate) password: SecretString,
    pub(crate) salt: Vec<u8>,
    pub(crate) salt_hash: Option<String>,
    fingerprint: [u8; 32],
}

impl Entry {
    pub(crate) fn parse(arg: EntryArg, key: &[u8; 32]) -> Result<Self, Error> {
        let (name, password, salt, salt_hash) = arg;
        let name = Version::new(&name)?;
        let fingerprint = fingerprint(key, name, &password, &salt, salt_hash.as_deref());
        Ok(Self {
            name,
            password: SecretString::from(password),
            salt,
            salt_hash,
            fingerprint,
        })
    }
}

/// A keyed hash of an entry: tells whether it changed without keeping a
/// second copy of the password.
fn fingerprint(
    key: &[u8; 32],
    name: Version,
    password: &str,
    salt: &[u8],
    salt_hash: Option<&str>,
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(key);
    for part in [
        name.as_str().as_bytes(),
        password.as_bytes(),
        salt,
        salt_hash.unwrap_or("").as_bytes(),
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    h.update([u8::from(salt_hash.is_some())]);
    h.finalize().into()
}

/// A version the current manager holds, as last applied.
struct Applied {
    name: Version,
    fingerprint: [u8; 32],
    /// Retired or destroyed through the manager: no longer expected in
    /// `config.keys`.
    gone: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct Settings {
    iterations: NonZeroU32,
    verify: bool,
}

/// The writer side, behind one mutex.
struct Control {
    applied: Vec<Applied>,
    settings: Settings,
    /// Identity and revision of the configuration last applied: an older
    /// revision arriving late (a slower thread) is not applied over it.
    config_id: usize,
    rev: u64,
    /// `cleanup` ran: the next sync builds a new manager.
    cleaned: bool,
    /// Replaced managers that an operation may still be using; their counts
    /// are summed until the last user lets go, then folded.
    replaced: Vec<Arc<SecretsManager>>,
    folded: Statistics,
}

/// Which versions have their key derived, so a call can keep the GIL.
#[derive(Default)]
struct Warm {
    /// Bumped whenever caches are dropped; a late mark from an older epoch
    /// is ignored.
    epoch: u64,
    versions: HashSet<Version>,
    /// Usable versions the manager holds.
    usable: usize,
}

/// Counts of `get_fernet`, which derives outside the facade's cache.
#[derive(Default)]
struct Extra {
    hits: AtomicU64,
    misses: AtomicU64,
    integrity_checks: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn add(total: &mut Statistics, s: &Statistics) {
    total.encryptions += s.encryptions;
    total.decryptions += s.decryptions;
    total.decryption_failures += s.decryption_failures;
    total.rotations += s.rotations;
    total.cache_hits += s.cache_hits;
    total.cache_misses += s.cache_misses;
    total.integrity_checks += s.integrity_checks;
}

pub(crate) fn iterations(n: i64) -> PyResult<NonZeroU32> {
    u32::try_from(n)
        .ok()
        .and_then(NonZeroU32::new)
        .ok_or_else(|| {
            PyValueError::new_err(format!(
                "kdf_iterations deve ser um inteiro de 1 a 4294967295 (recebido {n})"
            ))
        })
}

/// Builds a facade manager from whole entries, in memory (files are
/// written only when asked, by path).
pub(crate) fn build(
    entries: &[Entry],
    active: &str,
    iterations: NonZeroU32,
    verify: bool,
    activated: &HashMap<Version, u64>,
) -> Result<SecretsManager, Error> {
    let mut b = SecretsConfig::builder();
    for e in entries {
        b = match &e.salt_hash {
            Some(h) => {
                b.key_with_salt_hash(e.name.as_str(), e.password.clone(), e.salt.as_slice(), h)
            }
            None => b.key(e.name.as_str(), e.password.clone(), e.salt.as_slice()),
        };
        if let Some(&t) = activated.get(&e.name) {
            b = b.activated_at(e.name.as_str(), t);
        }
    }
    let config = b
        .active_version(active)
        .kdf_iterations(iterations.get())
        .verify_salt_integrity(verify)
        .in_memory()
        .build()?;
    SecretsManager::new(config)
}

/// Bytes from `bytes` or `bytearray` (and, for tokens, `str`), borrowed
/// where Python allows.
fn data_arg<'a>(obj: &'a Bound<'_, PyAny>, what: &str, text: bool) -> PyResult<Cow<'a, [u8]>> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Cow::Borrowed(b.as_bytes()));
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return Ok(Cow::Owned(b.to_vec()));
    }
    if text && let Ok(s) = obj.cast::<PyString>() {
        return Ok(Cow::Owned(s.to_str()?.as_bytes().to_vec()));
    }
    Err(PyTypeError::new_err(format!("{what} must be bytes")))
}

pub(crate) fn token_arg<'a>(obj: &'a Bound<'_, PyAny>) -> PyResult<Cow<'a, [u8]>> {
    data_arg(obj, "token", true)
}

pub(crate) fn plaintext_arg<'a>(obj: &'a Bound<'_, PyAny>) -> PyResult<Cow<'a, [u8]>> {
    data_arg(obj, "data", false)
}

pub(crate) fn ttl_arg(ttl: Option<i64>) -> PyResult<Option<Duration>> {
    ttl.map(|t| {
        u64::try_from(t)
            .map(Duration::from_secs)
            .map_err(|_| PyValueError::new_err("ttl deve ser um número de segundos >= 0"))
    })
    .transpose()
}

/// The native manager behind `secrets_manager.SecretsManager`.
#[pyclass(frozen, module = "secrets_manager._native")]
pub(crate) struct Core {
    current: ArcSwap<SecretsManager>,
    control: Mutex<Control>,
    warm: Mutex<Warm>,
    /// `get_fernet`'s derived keys, by entry fingerprint and iterations.
    fernets: Mutex<HashMap<([u8; 32], u32), Fernet>>,
    extra: Extra,
    /// Per-process key of the entry fingerprints.
    key: [u8; 32],
}

/// `rotate_token`'s result: old version, new version, token, plaintext size.
type Rotated<'py> = (
    Bound<'py, PyString>,
    Bound<'py, PyString>,
    Bound<'py, PyBytes>,
    usize,
);

/// The result of a decryption: version, plaintext, whether it was the hint.
type Opened = (Version, Zeroizing<Vec<u8>>, bool);

impl Core {
    fn entries(&self, args: Vec<EntryArg>) -> PyResult<Vec<Entry>> {
        args.into_iter()
            .map(|a| Entry::parse(a, &self.key).map_err(|e| to_py(&e, Doing::Manage)))
            .collect()
    }

    fn mark_warm(&self, epoch: u64, version: Version) {
        let mut w = lock(&self.warm);
        if w.epoch == epoch {
            w.versions.insert(version);
        }
    }

    fn reset_warm(&self, usable: usize) {
        let mut w = lock(&self.warm);
        w.epoch += 1;
        w.versions.clear();
        w.usable = usable;
    }

    /// Replaces the facade manager with one built from `entries`.
    fn rebuild(
        &self,
        c: &mut Control,
        entries: &[Entry],
        active: &str,
        settings: Settings,
    ) -> Result<(), Error> {
        let old = self.current.load_full();
        // Activation times order decryption attempts; keep those of
        // versions that stay the same.
        let same: HashSet<Version> = c
            .applied
            .iter()
            .filter(|a| {
                entries
                    .iter()
                    .any(|e| e.name == a.name && e.fingerprint == a.fingerprint)
            })
            .map(|a| a.name)
            .collect();
        let activated: HashMap<Version, u64> = old
            .version_info()
            .unwrap_or_default()
            .into_iter()
            .filter(|i| same.contains(&i.version))
            .filter_map(|i| i.activated_at.map(|t| (i.version, t)))
            .collect();
        let manager = build(
            entries,
            active,
            settings.iterations,
            settings.verify,
            &activated,
        )?;
        self.current.store(Arc::new(manager));
        // Operations under way finish on the old manager; its derived keys
        // go now, the rest when the last of them lets go.
        old.clear_cache();
        c.replaced.push(old);
        fold(c);
        c.applied = entries
            .iter()
            .map(|e| Applied {
                name: e.name,
                fingerprint: e.fingerprint,
                gone: false,
            })
            .collect();
        c.settings = settings;
        c.cleaned = false;
        self.reset_warm(entries.len());
        Ok(())
    }

    fn sync_inner(
        &self,
        config_id: usize,
        rev: u64,
        entries: &[Entry],
        active: &str,
        settings: Settings,
    ) -> Result<(), Error> {
        let mut c = lock(&self.control);
        if config_id == c.config_id && rev < c.rev {
            return Ok(());
        }
        let active_version = Version::from_setting(active)?;
        let mut rebuild = c.cleaned || settings != c.settings;
        let mut added: Vec<&Entry> = Vec::new();
        for e in entries {
            match c.applied.iter().find(|a| a.name == e.name) {
                Some(a) if a.gone || a.fingerprint != e.fingerprint => rebuild = true,
                Some(_) => {}
                None => added.push(e),
            }
        }
        if c.applied
            .iter()
            .any(|a| !a.gone && !entries.iter().any(|e| e.name == a.name))
        {
            rebuild = true;
        }
        // A staged addition cannot carry a salt hash to check: build anew.
        if settings.verify && added.iter().any(|e| e.salt_hash.is_some()) {
            rebuild = true;
        }
        if rebuild {
            self.rebuild(&mut c, entries, active, settings)?;
        } else {
            let m = self.current.load_full();
            for e in added {
                m.rotate_to_new_version(e.name.as_str(), e.password.clone())
                    .salt(e.salt.as_slice())
                    .activate(false)
                    .apply()?;
                c.applied.push(Applied {
                    name: e.name,
                    fingerprint: e.fingerprint,
                    gone: false,
                });
                lock(&self.warm).usable += 1;
            }
            if m.active_version() != active_version {
                let epoch = lock(&self.warm).epoch;
                // Derives the key before switching, GIL released.
                m.activate_version(active_version.as_str())?;
                self.mark_warm(epoch, active_version);
            }
        }
        c.config_id = config_id;
        c.rev = rev;
        Ok(())
    }

    fn decrypt_inner(
        m: &SecretsManager,
        token: &[u8],
        hint: Option<&str>,
        ttl: Option<Duration>,
    ) -> Result<Opened, Error> {
        let (version, plaintext) = match (ttl, hint) {
            // The hint only orders the attempts; with a TTL the facade
            // tries every version anyway, so the result is the same.
            (Some(ttl), _) => m.decrypt_with_ttl(token, ttl)?,
            (None, Some(h)) => m.decrypt_with_hint(token, h)?,
            (None, None) => m.decrypt(token)?,
        };
        let was_hint = hint.and_then(|h| Version::from_setting(h).ok()) == Some(version);
        Ok((version, plaintext, was_hint))
    }

    fn all_warm(&self) -> bool {
        let w = lock(&self.warm);
        w.versions.len() >= w.usable
    }
}

/// Folds the counts of replaced managers nobody uses any more (dropping
/// them zeroizes their keys).
fn fold(c: &mut Control) {
    let mut kept = Vec::with_capacity(c.replaced.len());
    for m in c.replaced.drain(..) {
        if Arc::strong_count(&m) == 1 {
            add(&mut c.folded, &m.statistics());
        } else {
            kept.push(m);
        }
    }
    c.replaced = kept;
}

fn state_name(state: VersionState) -> &'static str {
    match state {
        VersionState::Usable => "usable",
        VersionState::Retired => "retired",
        _ => "destroyed",
    }
}

#[pymethods]
impl Core {
    /// A manager for the configuration's entries.
    #[new]
    #[pyo3(signature = (config_id, rev, entries, active, kdf_iterations, verify_salt_integrity))]
    fn new(
        py: Python<'_>,
        config_id: usize,
        rev: u64,
        entries: Vec<EntryArg>,
        active: &str,
        kdf_iterations: i64,
        verify_salt_integrity: bool,
    ) -> PyResult<Self> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| {
            pyo3::exceptions::PyOSError::new_err(format!("no randomness available: {e}"))
        })?;
        let settings = Settings {
            iterations: iterations(kdf_iterations)?,
            verify: verify_salt_integrity,
        };
        let parsed: Vec<Entry> = entries
            .into_iter()
            .map(|a| Entry::parse(a, &key).map_err(|e| to_py(&e, Doing::Manage)))
            .collect::<PyResult<_>>()?;
        let manager = py
            .detach(|| {
                build(
                    &parsed,
                    active,
                    settings.iterations,
                    settings.verify,
                    &HashMap::new(),
                )
            })
            .map_err(|e| to_py(&e, Doing::Manage))?;
        let usable = parsed.len();
        Ok(Self {
            current: ArcSwap::from_pointee(manager),
            control: Mutex::new(Control {
                applied: parsed
                    .iter()
                    .map(|e| Applied {
                        name: e.name,
                        fingerprint: e.fingerprint,
                        gone: false,
                    })
                    .collect(),
                settings,
                config_id,
                rev,
                cleaned: false,
                replaced: Vec::new(),
                folded: Statistics::default(),
            }),
            warm: Mutex::new(Warm {
                usable,
                ..Warm::default()
            }),
            fernets: Mutex::new(HashMap::new()),
            extra: Extra::default(),
            key,
        })
    }

    /// Brings the manager in step with the configuration (see the module
    /// documentation).
    #[pyo3(signature = (config_id, rev, entries, active, kdf_iterations, verify_salt_integrity))]
    #[allow(clippy::too_many_arguments)] // the configuration, as Python holds it
    fn sync(
        &self,
        py: Python<'_>,
        config_id: usize,
        rev: u64,
        entries: Vec<EntryArg>,
        active: &str,
        kdf_iterations: i64,
        verify_salt_integrity: bool,
    ) -> PyResult<()> {
        let settings = Settings {
            iterations: iterations(kdf_iterations)?,
            verify: verify_salt_integrity,
        };
        let entries = self.entries(entries)?;
        py.detach(|| self.sync_inner(config_id, rev, &entries, active, settings))
            .map_err(|e| to_py(&e, Doing::Manage))
    }

    /// `(version, token)` under the active version.
    fn encrypt<'py>(
        &self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
    ) -> PyResult<(Bound<'py, PyString>, Bound<'py, PyBytes>)> {
        let data = plaintext_arg(data)?;
        let guard = self.current.load();
        let warm = data.len() <= SMALL && {
            let active = guard.active_version();
            lock(&self.warm).versions.contains(&active)
        };
        let result = if warm {
            guard.encrypt(&data)
        } else {
            let m = Arc::clone(&guard);
            drop(guard);
            let epoch = lock(&self.warm).epoch;
            let r = py.detach(|| m.encrypt(&data));
            if let Ok((v, _)) = &r {
                self.mark_warm(epoch, *v);
            }
            r
        };
        let (version, token) = result.map_err(|e| to_py(&e, Doing::Manage))?;
        Ok((
            PyString::new(py, version.as_str()),
            bytes_out(py, token.as_bytes())?,
        ))
    }

    /// As `encrypt`, stamped with `current_time` (Unix seconds).
    fn encrypt_at_time<'py>(
        &self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
        current_time: u64,
    ) -> PyResult<(Bound<'py, PyString>, Bound<'py, PyBytes>)> {
        let data = plaintext_arg(data)?;
        let m = self.current.load_full();
        let epoch = lock(&self.warm).epoch;
        let (version, token) = py
            .detach(|| m.encrypt_at_time(&data, current_time))
            .map_err(|e| to_py(&e, Doing::Manage))?;
        self.mark_warm(epoch, version);
        Ok((
            PyString::new(py, version.as_str()),
            bytes_out(py, token.as_bytes())?,
        ))
    }

    /// `(version, plaintext, was_hint)`.
    #[pyo3(signature = (token, hint=None, ttl=None))]
    fn decrypt<'py>(
        &self,
        py: Python<'py>,
        token: &Bound<'py, PyAny>,
        hint: Option<&str>,
        ttl: Option<i64>,
    ) -> PyResult<(Bound<'py, PyString>, Bound<'py, PyBytes>, bool)> {
        let token = token_arg(token)?;
        let ttl = ttl_arg(ttl)?;
        let result = if token.len() <= SMALL && self.all_warm() {
            Self::decrypt_inner(&self.current.load(), &token, hint, ttl)
        } else {
            let m = self.current.load_full();
            let epoch = lock(&self.warm).epoch;
            let r = py.detach(|| Self::decrypt_inner(&m, &token, hint, ttl));
            if let Ok((v, _, _)) = &r {
                self.mark_warm(epoch, *v);
            }
            r
        };
        let (version, plaintext, was_hint) = result.map_err(|e| to_py(&e, Doing::Decrypt))?;
        let out = bytes_out(py, &plaintext)?;
        drop_large(py, plaintext);
        Ok((PyString::new(py, version.as_str()), out, was_hint))
    }

    /// Re-encrypts a token under the active version, keeping its
    /// timestamp: `(old_version, new_version, token, size)`.
    fn rotate_token<'py>(
        &self,
        py: Python<'py>,
        token: &Bound<'py, PyAny>,
    ) -> PyResult<Rotated<'py>> {
        let token = token_arg(token)?;
        let m = self.current.load_full();
        let (from, plaintext, _) = py
            .detach(|| Self::decrypt_inner(&m, &token, None, None))
            .map_err(|e| to_py(&e, Doing::Decrypt))?;
        // The token opened, so its HMAC (which covers the timestamp) was
        // verified.
        let timestamp = UnverifiedToken::parse(&*token)
            .map(|t| t.timestamp())
            .map_err(|_| {
                to_py(
                    &Error::Keystore(secrets_manager::keystore::KeystoreError::InvalidToken),
                    Doing::Decrypt,
                )
            })?;
        let (to, fresh) = py
            .detach(|| m.encrypt_at_time(&plaintext, timestamp))
            .map_err(|e| to_py(&e, Doing::Manage))?;
        let size = plaintext.len();
        drop_large(py, plaintext);
        Ok((
            PyString::new(py, from.as_str()),
            PyString::new(py, to.as_str()),
            bytes_out(py, fresh.as_bytes())?,
            size,
        ))
    }

    /// Adds a version derived from `password` and `salt`; with `activate`,
    /// makes it active. With `persist_to_file`, the file is written first
    /// (merged under its lock) and memory changes only if that succeeded.
    #[pyo3(signature = (version, password, salt, persist_to_file=None, activate=true))]
    fn rotate(
        &self,
        py: Python<'_>,
        version: String,
        password: String,
        salt: Vec<u8>,
        persist_to_file: Option<PathBuf>,
        activate: bool,
    ) -> PyResult<String> {
        let entry = self.entries(vec![(version, password, salt, None)])?;
        let Some(entry) = entry.into_iter().next() else {
            return Err(PyValueError::new_err("no version"));
        };
        py.detach(|| -> Result<Version, Error> {
            let mut c = lock(&self.control);
            let m = self.current.load_full();
            let epoch = lock(&self.warm).epoch;
            let mut rotation = m
                .rotate_to_new_version(entry.name.as_str(), entry.password.clone())
                .salt(entry.salt.as_slice())
                .activate(activate);
            if let Some(path) = &persist_to_file {
                rotation = rotation.persist_to_file(path);
            }
            let name = rotation.apply()?;
            c.applied.retain(|a| a.name != name);
            c.applied.push(Applied {
                name,
                fingerprint: entry.fingerprint,
                gone: false,
            });
            lock(&self.warm).usable += 1;
            if activate {
                // A rotation derives the new key before publishing it.
                self.mark_warm(epoch, name);
            }
            Ok(name)
        })
        .map(|v| v.as_str().to_owned())
        .map_err(|e| to_py(&e, Doing::Manage))
    }

    /// `activate`, `retire` or `destroy` a version, in memory; then, with
    /// `persist_to_file`, merges the manager's keyring (states included)
    /// into that file under its lock.
    #[pyo3(signature = (operation, version, persist_to_file=None))]
    fn lifecycle(
        &self,
        py: Python<'_>,
        operation: &str,
        version: &str,
        persist_to_file: Option<PathBuf>,
    ) -> PyResult<String> {
        let name = Version::new(version).map_err(|e| to_py(&e.into(), Doing::Manage))?;
        let operation = match operation {
            "activate" | "retire" | "destroy" => operation.to_owned(),
            other => return Err(PyValueError::new_err(format!("unknown operation {other}"))),
        };
        py.detach(|| -> Result<(), Error> {
            let mut c = lock(&self.control);
            let m = self.current.load_full();
            let epoch = lock(&self.warm).epoch;
            match operation.as_str() {
                "activate" => {
                    m.activate_version(name.as_str())?;
                    self.mark_warm(epoch, name);
                }
                op => {
                    if op == "retire" {
                        m.retire_version(name.as_str())?;
                    } else {
                        m.destroy_version(name.as_str())?;
                        if let Some(a) = c.applied.iter().find(|a| a.name == name) {
                            let gone = a.fingerprint;
                            lock(&self.fernets).retain(|(fp, _), _| *fp != gone);
                        }
                    }
                    if let Some(a) = c.applied.iter_mut().find(|a| a.name == name && !a.gone) {
                        a.gone = true;
                        let mut w = lock(&self.warm);
                        w.versions.remove(&name);
                        w.usable = w.usable.saturating_sub(1);
                    }
                }
            }
            if let Some(path) = &persist_to_file {
                m.persist_to_file(path)?;
            }
            Ok(())
        })
        .map(|()| name.as_str().to_owned())
        .map_err(|e| to_py(&e, Doing::Manage))
    }

    /// Merges the manager's whole keyring (versions, states, the active
    /// one) into a `.env` file under its lock.
    fn persist_to_file(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let m = self.current.load_full();
        py.detach(|| m.persist_to_file(&path))
            .map_err(|e| to_py(&e, Doing::WriteFile))
    }

    /// The active version.
    fn active_version(&self) -> String {
        self.current.load().active_version().as_str().to_owned()
    }

    /// Every version the manager holds, in the order added (retired and
    /// destroyed ones included).
    fn versions(&self) -> Vec<String> {
        self.current
            .load()
            .versions()
            .iter()
            .map(|v| v.as_str().to_owned())
            .collect()
    }

    /// What the manager knows of each version; never a secret.
    fn version_info<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let infos = self
            .current
            .load()
            .version_info()
            .map_err(|e| to_py(&e, Doing::Manage))?;
        infos
            .into_iter()
            .map(|i| {
                let d = PyDict::new(py);
                d.set_item("version", i.version.as_str())?;
                d.set_item("active", i.active)?;
                d.set_item("state", state_name(i.state))?;
                d.set_item("activated_at", i.activated_at)?;
                d.set_item(
                    "kind",
                    match i.kind {
                        Some(KeyKind::Password) => Some("password"),
                        Some(_) => Some("fernet_key"),
                        None => None,
                    },
                )?;
                d.set_item("kdf_iterations", i.iterations)?;
                d.set_item("decryptions", i.decryptions)?;
                Ok(d)
            })
            .collect()
    }

    /// Counts since the first manager, exact under concurrency.
    fn statistics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let total = py.detach(|| {
            let mut c = lock(&self.control);
            fold(&mut c);
            let mut total = c.folded;
            for m in &c.replaced {
                add(&mut total, &m.statistics());
            }
            add(&mut total, &self.current.load().statistics());
            total.cache_hits += self.extra.hits.load(Ordering::Relaxed);
            total.cache_misses += self.extra.misses.load(Ordering::Relaxed);
            total.integrity_checks += self.extra.integrity_checks.load(Ordering::Relaxed);
            total
        });
        let d = PyDict::new(py);
        d.set_item("encryptions", total.encryptions)?;
        d.set_item("decryptions", total.decryptions)?;
        d.set_item("cache_hits", total.cache_hits)?;
        d.set_item("cache_misses", total.cache_misses)?;
        d.set_item("integrity_checks", total.integrity_checks)?;
        Ok(d)
    }

    /// A `Fernet` for one version, derived (once, then cached) from the
    /// entry's password and salt.
    #[pyo3(signature = (version, password, salt, salt_hash, kdf_iterations, verify_salt_integrity))]
    #[allow(clippy::too_many_arguments)] // one configuration entry and its settings
    fn fernet(
        &self,
        py: Python<'_>,
        version: String,
        password: String,
        salt: Vec<u8>,
        salt_hash: Option<String>,
        kdf_iterations: i64,
        verify_salt_integrity: bool,
    ) -> PyResult<PyFernet> {
        let n = iterations(kdf_iterations)?;
        let entry = Entry::parse((version, password, salt, salt_hash), &self.key)
            .map_err(|e| to_py(&e, Doing::Manage))?;
        let id = (entry.fingerprint, n.get());
        if let Some(f) = lock(&self.fernets).get(&id) {
            self.extra.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(PyFernet::from(f.clone()));
        }
        let salt = Salt::from_bytes(entry.salt.clone());
        if let (true, Some(hash)) = (verify_salt_integrity, &entry.salt_hash) {
            self.extra.integrity_checks.fetch_add(1, Ordering::Relaxed);
            if !salt.matches_hash(hash) {
                let e = secrets_manager::keystore::KeystoreError::SaltIntegrity(entry.name);
                return Err(to_py(&e.into(), Doing::Manage));
            }
        }
        let fernet = py.detach(|| {
            let raw = derive_key(entry.password.expose_secret().as_bytes(), &salt, n);
            Fernet::new(&Key::from_bytes(*raw))
        });
        self.extra.misses.fetch_add(1, Ordering::Relaxed);
        lock(&self.fernets).insert(id, fernet.clone());
        Ok(PyFernet::from(fernet))
    }

    /// Drops every derived key; they are derived again on demand.
    fn clear_cache(&self, py: Python<'_>) {
        py.detach(|| {
            let c = lock(&self.control);
            self.current.load().clear_cache();
            lock(&self.fernets).clear();
            let usable = c.applied.iter().filter(|a| !a.gone).count();
            self.reset_warm(usable);
        });
    }

    /// Zeroizes every key and password the manager holds. The next call
    /// builds a new manager from the configuration (as the Python package
    /// keeps working after `cleanup`).
    fn cleanup(&self, py: Python<'_>) {
        py.detach(|| {
            let mut c = lock(&self.control);
            self.current.load().cleanup();
            lock(&self.fernets).clear();
            c.cleaned = true;
            self.reset_warm(0);
        });
    }
}
