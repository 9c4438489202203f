//! One immutable keyring snapshot (`Ring`), its entries and their key
//! caches, and the order in which decryption tries versions.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use secrets_manager_fernet::Fernet;

use crate::error::KeystoreError;
use crate::spec::{KeyKind, KeyMaterial, VersionInfo, VersionSpec, VersionState};
use crate::stats::StripedCounter;
use crate::version::Version;

/// A version's derived key. Replaced wholesale by `clear_cache`, so the hot
/// path reads it with one atomic load (`OnceLock::get`).
pub(crate) struct Cache {
    pub(crate) fernet: OnceLock<Fernet>,
    /// Serialises derivation of this version only.
    pub(crate) derive: Mutex<()>,
}

impl Cache {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            fernet: OnceLock::new(),
            derive: Mutex::new(()),
        })
    }
}

/// One version in one snapshot. The key material and the counters are
/// shared by every snapshot that holds the version; never copied.
pub(crate) struct Entry {
    pub(crate) name: Version,
    /// `None` once destroyed.
    pub(crate) material: Option<Arc<KeyMaterial>>,
    pub(crate) state: VersionState,
    pub(crate) activated_at: Option<u64>,
    pub(crate) cache: Arc<Cache>,
    pub(crate) decryptions: Arc<StripedCounter>,
}

impl Entry {
    pub(crate) fn new(spec: VersionSpec) -> Self {
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
    pub(crate) fn with(
        &self,
        state: VersionState,
        activated_at: Option<u64>,
        cache: Arc<Cache>,
    ) -> Self {
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
pub(crate) struct Ring {
    /// In the order added.
    pub(crate) entries: Vec<Arc<Entry>>,
    pub(crate) active: usize,
    pub(crate) index: HashMap<Version, usize>,
    /// `(activated_at, entry)`, sorted: which version was active when.
    pub(crate) timeline: Vec<(u64, usize)>,
}

impl Ring {
    pub(crate) fn new(entries: Vec<Arc<Entry>>, active: usize) -> Self {
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
    pub(crate) fn active_at(&self, timestamp: u64) -> Option<usize> {
        let after = self.timeline.partition_point(|&(t, _)| t <= timestamp);
        after.checked_sub(1).map(|i| self.timeline[i].1)
    }

    pub(crate) fn names(&self) -> Vec<Version> {
        self.entries.iter().map(|e| e.name).collect()
    }

    /// What is known about entry `i`, without its key.
    pub(crate) fn info(&self, i: usize) -> VersionInfo {
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

    pub(crate) fn find(&self, version: &Version) -> Result<usize, KeystoreError> {
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
pub(crate) fn trial_order(len: usize, first: [Option<usize>; 3]) -> impl Iterator<Item = usize> {
    let firsts = first
        .into_iter()
        .enumerate()
        .filter_map(move |(i, c)| c.filter(|c| !first[..i].contains(&Some(*c))));
    let rest = (0..len).rev().filter(move |i| !first.contains(&Some(*i)));
    firsts.chain(rest)
}
