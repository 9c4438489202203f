//! Lifecycle operations: add, activate, retire and destroy versions,
//! clear the key cache, clean up. Each publishes a new snapshot under the
//! writer lock.

use std::sync::{Arc, PoisonError};

use super::{KeyStore, State, check_salt};
use crate::error::KeystoreError;
use crate::ring::{Cache, Entry, Ring};
use crate::spec::{VersionSpec, VersionState};
use crate::stats::Counter;
use crate::version::Version;

impl KeyStore {
    /// Adds a version; with `activate`, makes it the active one (a
    /// rotation). Existing versions, and their cached keys, are kept.
    ///
    /// # Errors
    ///
    /// The name exists already, its salt fails its check, or the store was
    /// cleaned up.
    pub fn add_version(&self, spec: VersionSpec, activate: bool) -> Result<(), KeystoreError> {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let state = self.state.load_full();
        let current = state.live()?;
        if current.index.contains_key(&spec.name) {
            return Err(KeystoreError::DuplicateVersion(spec.name));
        }
        check_salt(&self.options, &self.counters, &spec)?;
        let name = spec.name;
        let entry = Arc::new(Entry::new(spec));
        if activate && entry.state != VersionState::Usable {
            return Err(match entry.state {
                VersionState::Retired => KeystoreError::VersionRetired(name),
                _ => KeystoreError::VersionDestroyed(name),
            });
        }
        let scheduled = !activate
            && entry.state == VersionState::Usable
            && matches!(
                (entry.activated_at, current.entries[current.active].activated_at),
                (Some(at), Some(since)) if at > since
            );
        if activate || scheduled {
            // Derive before publishing, here in the writer, so no reader
            // ever waits for a new active key (a scheduled one included).
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
        self.publish(Ring::new(entries, active));
        if activate {
            self.counters.add(Counter::Rotations, 1);
            tracing::info!(version = %name, previous = %current.entries[current.active].name, "rotated to a new active version");
        } else {
            tracing::info!(version = %name, "added version");
        }
        Ok(())
    }

    /// Derives the keys of versions scheduled to become active, so the
    /// first encryption after their time does not wait for PBKDF2.
    ///
    /// # Errors
    ///
    /// A key that cannot be derived; a cleaned-up store.
    pub fn derive_scheduled(&self) -> Result<(), KeystoreError> {
        let state = self.state.load_full();
        let ring = state.live()?;
        for &(_, i) in &ring.schedule {
            let entry = &ring.entries[i];
            if entry.cache.fernet.get().is_none() {
                self.counters.add(Counter::ExtraLookups, 1);
                self.derive(entry)?;
            }
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
            if index == ring.active || index == ring.encrypting_now() {
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
            if index == ring.active || index == ring.encrypting_now() {
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
        let state = self.state.load_full();
        let current = state.live()?;
        let index = current.find(version)?;
        let (entry, active, rotated) = change(&current.entries[index], current, index)?;
        let mut entries = current.entries.clone();
        entries[index] = Arc::new(entry);
        self.publish(Ring::new(entries, active));
        if rotated {
            self.counters.add(Counter::Rotations, 1);
        }
        Ok(())
    }

    /// Drops every cached key (each is zeroized when the last operation
    /// using it finishes); they are derived again on demand. Does nothing
    /// after [`cleanup`](Self::cleanup).
    pub fn clear_cache(&self) {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let state = self.state.load_full();
        if let Ok(current) = state.live() {
            let entries = current
                .entries
                .iter()
                .map(|e| Arc::new(e.with(e.state, e.activated_at, Cache::new())))
                .collect();
            self.publish(Ring::new(entries, current.active));
        }
    }

    /// Erases every password, salt and key. Afterwards everything that
    /// needs a key or describes one (encryption, decryption, lifecycle
    /// changes, [`version_info`](Self::version_info),
    /// [`with_snapshot`](Self::with_snapshot)) returns
    /// [`KeystoreError::CleanedUp`].
    ///
    /// Names are not secret and stay: [`active_version`](Self::active_version)
    /// and [`versions`](Self::versions) keep answering as they did just
    /// before, from the same snapshot, so the active version is always one
    /// of the versions. Operations already running finish first; the
    /// memory is zeroized when the last one lets go. A second call does
    /// nothing.
    pub fn cleanup(&self) {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let state = self.state.load_full();
        if let Ok(ring) = state.live() {
            let erased = State::CleanedUp {
                versions: ring.names(),
                active: ring.entries[ring.active].name,
            };
            self.state.store(Arc::new(erased));
            tracing::info!(versions = ring.entries.len(), "cleaned up: keys erased");
        }
    }
}
