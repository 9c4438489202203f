//! Writing the manager's keyring to a store (a `.env` file, or another
//! [`KeyringStore`]).
//!
//! Every write merges one snapshot of the key store into the store's
//! keyring under the store's lock, and may only add versions, advance their
//! lifecycle and move the active pointer (see
//! `secrets_manager_persist::Keyring`). A version that exists there with
//! other material is a conflict, and nothing is written.

use std::path::Path;
use std::sync::Arc;

use secrecy::ExposeSecret as _;

use crate::error::Result;
use crate::fernet::Key;
use crate::kdf::{DEFAULT_ITERATIONS, Salt};
use crate::keystore::{KeyMaterial, Snapshot, VersionSpec, VersionState};
use crate::manager::Inner;
use crate::persist::{
    FileStore, Keyring, KeyringStore, PersistError, Prefixes, Source, StoredKey, StoredState,
    StoredVersion,
};
use crate::{Error, SecretsManager, Version};

/// What a write does besides merging the snapshot.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Change<'a> {
    /// Everything the manager holds, its active version included
    /// (`persist_to_file`).
    Everything,
    /// As `Everything`, into a keyring that holds no keys yet.
    Create,
    /// Adds a version, active or not (a scheduled version is not active
    /// yet). `stamp` records when the active version became active, where
    /// that was not known: a schedule counts from it.
    Add {
        spec: &'a VersionSpec,
        activate: bool,
        stamp: Option<(Version, u64)>,
    },
    /// Makes a version active.
    Activate { version: Version, at: u64 },
    /// Retires a version.
    Retire(Version),
    /// Destroys a version.
    Destroy(Version),
}

impl SecretsManager {
    /// Writes every version, its lifecycle and the active pointer to a
    /// `.env` keyring file the Python package reads, merging under the
    /// file's lock: versions only the file has are kept, versions only this
    /// manager has are added, retired and destroyed states only advance,
    /// and the active version is set. Existing lines, comments and other
    /// variables are kept byte for byte. Atomic and durable; a new file
    /// gets mode 0600.
    ///
    /// A version the file already has must hold the same material here;
    /// otherwise nothing is written and [`Error::Conflict`] names it.
    ///
    /// # Errors
    ///
    /// The file exists but cannot be read, parsed or verified; a conflict;
    /// a value python-dotenv could not read back; a file-system error;
    /// after cleanup.
    pub fn persist_to_file(&self, path: impl AsRef<Path>) -> Result<()> {
        self.persist_to_file_with_prefixes(path, &Prefixes::default())
    }

    /// As [`persist_to_file`](Self::persist_to_file), with other variable
    /// names.
    ///
    /// # Errors
    ///
    /// As [`persist_to_file`](Self::persist_to_file).
    pub fn persist_to_file_with_prefixes(
        &self,
        path: impl AsRef<Path>,
        prefixes: &Prefixes,
    ) -> Result<()> {
        self.persist_to(&FileStore::with_prefixes(path, prefixes))
    }

    /// As [`persist_to_file`](Self::persist_to_file), into any keyring
    /// store (for example to copy a keyring from a file into a fleet
    /// store).
    ///
    /// # Errors
    ///
    /// As [`persist_to_file`](Self::persist_to_file), and whatever the
    /// store reports.
    pub fn persist_to(&self, store: &dyn KeyringStore) -> Result<()> {
        let _writer = self.inner.writer();
        self.inner.write_to(store, Change::Everything)
    }

    /// Writes the keyring to a new `.env` file, or one that holds no keys
    /// yet (other variables are kept). The check and the write happen under
    /// the file's lock, so two processes cannot both initialise it.
    ///
    /// # Errors
    ///
    /// [`Error::KeyringExists`] when the file already holds keys; otherwise
    /// as [`persist_to_file`](Self::persist_to_file).
    pub fn create_keyring_file(&self, path: impl AsRef<Path>) -> Result<()> {
        self.create_keyring(&FileStore::new(path))
    }

    /// As [`create_keyring_file`](Self::create_keyring_file), in any
    /// keyring store.
    ///
    /// # Errors
    ///
    /// As [`create_keyring_file`](Self::create_keyring_file), and whatever
    /// the store reports (the process environment is read-only).
    pub fn create_keyring(&self, store: &dyn KeyringStore) -> Result<()> {
        let _writer = self.inner.writer();
        self.inner.write_to(store, Change::Create)
    }
}

impl Inner {
    /// Merges one snapshot of the key store, and `change`, into `target`.
    /// Callers hold the manager's writer lock.
    pub(crate) fn write_to(&self, target: &dyn KeyringStore, change: Change<'_>) -> Result<()> {
        // One snapshot: the versions and the active pointer from the same
        // moment.
        let (ours, active) = self.store.with_snapshot(stored_versions)?;
        let added = match change {
            Change::Add { spec, .. } => Some(stored_spec(spec)),
            _ => None,
        };
        let source = target.source();
        // The store's edit speaks `PersistError`; the facade's own refusals
        // (a conflict, an existing keyring) wait here and abort the edit.
        let mut refused: Option<Error> = None;
        let result = target.update(&mut |file: &mut Keyring| match edit(
            file,
            &ours,
            added.as_ref(),
            active,
            change,
            &source,
        ) {
            Ok(()) => Ok(()),
            Err(Error::Persist(e)) => Err(unshare(e)),
            Err(e) => {
                refused = Some(e);
                Err(PersistError::Aborted)
            }
        });
        let report = match (result, refused) {
            (_, Some(e)) => return Err(e),
            (Err(e), None) => return Err(e.into()),
            (Ok(report), None) => report,
        };
        for warning in &report.warnings {
            self.warn(warning);
        }
        if report.written {
            tracing::info!(keyring = %source, "persisted keyring");
        }
        Ok(())
    }
}

/// A persist error back out of the facade's shared wrapper.
fn unshare(e: Arc<PersistError>) -> PersistError {
    Arc::try_unwrap(e).unwrap_or_else(PersistError::Shared)
}

/// The edit a write makes: the snapshot merged in, then the change.
fn edit(
    file: &mut Keyring,
    ours: &[Merged],
    added: Option<&Merged>,
    active: Version,
    change: Change<'_>,
    source: &Source,
) -> Result<()> {
    if matches!(change, Change::Create) && !file.versions().is_empty() {
        return Err(Error::KeyringExists {
            origin: source.to_string(),
        });
    }
    for version in ours {
        merge(file, version, source)?;
    }
    if let Some(new) = added {
        // The version this write adds must land: a name the store already
        // has is a conflict unless it holds this very material, usable.
        // (A stale snapshot may lag behind a destroyed version; a new
        // version may not: it would be acknowledged and never written.)
        if let Some(existing) = file.get(&new.version.name)
            && (existing.state != StoredState::Usable || !same_material(existing, new))
        {
            return Err(Error::Conflict {
                origin: source.to_string(),
                version: new.name,
            });
        }
        merge(file, new, source)?;
    }
    match change {
        Change::Everything | Change::Create => file.set_active(active.as_str())?,
        Change::Add {
            spec,
            activate: true,
            ..
        } => file.set_active(spec.name.as_str())?,
        // The stamp records a time this manager did not know, for the
        // version it believes active. A store that moved on (another process
        // activated a version since) or that knows the time already keeps
        // its pointer and its times: a stale manager never moves them. (A
        // store with no pointer yet, as the Python package may leave it, has
        // not moved on.)
        Change::Add {
            stamp: Some((active, at)),
            ..
        } => {
            let current = file.active().is_none_or(|a| a == active.as_str());
            if current
                && file
                    .get(active.as_str())
                    .is_some_and(|v| v.activated_at.is_none())
            {
                file.set_active_at(active.as_str(), Some(at))?;
            }
        }
        Change::Add { .. } => {}
        Change::Activate { version, at } => file.set_active_at(version.as_str(), Some(at))?,
        Change::Retire(version) => {
            file.retire(version.as_str())?;
        }
        Change::Destroy(version) => {
            file.destroy(version.as_str())?;
        }
    }
    Ok(())
}

/// One stored version as the file should hold it: the existing one when
/// the material is the same (or the file destroyed it), added when new, a
/// conflict otherwise. States only advance.
fn merge(file: &mut Keyring, ours: &Merged, source: &Source) -> Result<()> {
    let Some(existing) = file.get(&ours.version.name) else {
        file.add(ours.version.clone())?;
        return Ok(());
    };
    if existing.state != StoredState::Destroyed
        && ours.version.state != StoredState::Destroyed
        && !same_material(existing, ours)
    {
        return Err(Error::Conflict {
            origin: source.to_string(),
            version: ours.name,
        });
    }
    match ours.version.state {
        StoredState::Retired => {
            file.retire(&ours.version.name)?;
        }
        StoredState::Destroyed => {
            file.destroy(&ours.version.name)?;
        }
        _ => {}
    }
    Ok(())
}

/// Whether the file's version holds this material: the same kind, password
/// or key, salt bytes, and iteration count (a version without a record in
/// the file is read with the reader's setting, so it matches a count that
/// is not the version's own, or the default).
pub(crate) fn same_material(file: &StoredVersion, ours: &Merged) -> bool {
    match (&file.key, &ours.version.key) {
        (
            Some(StoredKey::Password {
                password: p1,
                salt: s1,
                ..
            }),
            Some(StoredKey::Password {
                password: p2,
                salt: s2,
                ..
            }),
        ) => {
            let iterations = match file.iterations {
                Some(n) => n == ours.iterations,
                None => !ours.iterations_recorded || ours.iterations == DEFAULT_ITERATIONS.get(),
            };
            p1.expose_secret() == p2.expose_secret()
                && Salt::from(s1.as_str()) == Salt::from(s2.as_str())
                && iterations
        }
        (Some(StoredKey::Fernet(k1)), Some(StoredKey::Fernet(k2))) => {
            match (
                Key::from_base64(k1.expose_secret()),
                Key::from_base64(k2.expose_secret()),
            ) {
                (Ok(a), Ok(b)) => a.to_base64() == b.to_base64(),
                _ => k1.expose_secret() == k2.expose_secret(),
            }
        }
        _ => false,
    }
}

/// A version of the store, as stored, with what comparing it needs.
pub(crate) struct Merged {
    pub(crate) name: Version,
    pub(crate) version: StoredVersion,
    /// The count it is derived with.
    iterations: u32,
    /// Whether that count is the version's own.
    iterations_recorded: bool,
}

pub(crate) fn stored_versions(snapshot: &Snapshot<'_>) -> (Vec<Merged>, Version) {
    let versions = snapshot
        .versions()
        .map(|(info, material)| stored(info.version, info.state, info.activated_at, material))
        .collect();
    (versions, snapshot.active())
}

fn stored_spec(spec: &VersionSpec) -> Merged {
    stored(
        spec.name,
        spec.state,
        spec.activated_at,
        spec.material.as_ref(),
    )
}

fn stored(
    name: Version,
    state: VersionState,
    activated_at: Option<u64>,
    material: Option<&KeyMaterial>,
) -> Merged {
    let (version, iterations, iterations_recorded) = match material {
        Some(KeyMaterial::Password {
            password,
            salt,
            salt_hash,
            iterations,
            iterations_recorded,
            ..
        }) => {
            let key = StoredKey::Password {
                password: password.expose_secret().into(),
                salt: salt.to_text(),
                salt_hash: Some(salt_hash.clone().unwrap_or_else(|| salt.sha256_hex())),
            };
            // A count is recorded only when it is the version's own: a
            // reader's setting written down would mislead every later
            // reader.
            let recorded = iterations_recorded.then_some(iterations.get());
            (
                StoredVersion::new(name.as_str(), key).with_iterations(recorded),
                iterations.get(),
                *iterations_recorded,
            )
        }
        Some(KeyMaterial::Fernet(key)) => (
            StoredVersion::new(
                name.as_str(),
                StoredKey::Fernet(key.to_base64().as_str().into()),
            ),
            0,
            false,
        ),
        None => (StoredVersion::tombstone(name.as_str()), 0, false),
    };
    let state = match state {
        VersionState::Usable => StoredState::Usable,
        VersionState::Retired => StoredState::Retired,
        _ => StoredState::Destroyed,
    };
    Merged {
        name,
        version: version.with_activated_at(activated_at).with_state(state),
        iterations,
        iterations_recorded,
    }
}
