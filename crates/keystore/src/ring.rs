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
    /// Which version was active when.
    pub(crate) timeline: Timeline,
    /// Scheduled activations, `(at, entry)` sorted: usable versions whose
    /// activation time is later than the active version's (which must be
    /// known). Each takes over encryption at its time, with no further
    /// write; empty in the common case, so encryption pays one branch.
    pub(crate) schedule: Vec<(u64, usize)>,
}

impl Ring {
    pub(crate) fn new(entries: Vec<Arc<Entry>>, active: usize) -> Self {
        let index = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.name, i))
            .collect();
        let timeline = Timeline::new(entries.iter().map(|e| e.activated_at));
        let schedule = match entries.get(active).and_then(|e| e.activated_at) {
            Some(since) => timeline
                .times
                .iter()
                .copied()
                .filter(|&(t, i)| t > since && entries[i].state == VersionState::Usable)
                .collect(),
            None => Vec::new(),
        };
        Self {
            entries,
            active,
            index,
            timeline,
            schedule,
        }
    }

    /// The entry that encrypts at `now`: the last scheduled version due by
    /// then, or the active one.
    #[inline]
    pub(crate) fn encrypting_at(&self, now: u64) -> usize {
        match self.schedule.first() {
            Some(&(first, _)) if first <= now => {
                let due = self.schedule.partition_point(|&(t, _)| t <= now);
                self.schedule[due - 1].1
            }
            _ => self.active,
        }
    }

    /// The entry that encrypts now.
    pub(crate) fn encrypting_now(&self) -> usize {
        if self.schedule.is_empty() {
            self.active
        } else {
            self.encrypting_at(secrets_manager_fernet::unix_time())
        }
    }

    /// The version that was active at `timestamp` (see [`Timeline`]).
    pub(crate) fn active_at(&self, timestamp: u64) -> Option<usize> {
        self.timeline.active_at(timestamp)
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
            active: i == self.encrypting_now(),
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

/// Which version of a keyring was active when, from the versions'
/// activation times (indices in the order added): the second candidate of
/// the [`trial_order`]. Made by [`Snapshot::timeline`](crate::Snapshot::timeline).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Timeline {
    /// `(activated_at, index)`, sorted.
    times: Vec<(u64, usize)>,
    /// The newest version with no recorded time.
    untimed: Option<usize>,
}

impl Timeline {
    /// From each version's activation time, in the order added.
    pub(crate) fn new(activated_at: impl Iterator<Item = Option<u64>>) -> Self {
        let mut timeline = Self::default();
        for (i, at) in activated_at.enumerate() {
            match at {
                Some(t) => timeline.times.push((t, i)),
                None => timeline.untimed = Some(i),
            }
        }
        timeline.times.sort_unstable();
        timeline
    }

    /// Whether no version records an activation time (a Python-made
    /// keyring): then [`active_at`](Self::active_at) does not depend on
    /// the time.
    #[must_use]
    pub fn is_untimed(&self) -> bool {
        self.times.is_empty()
    }

    /// The version that was active at `timestamp`: the one that became
    /// active last at or before it; for a time before every recorded
    /// activation, the newest version with no recorded time (such versions
    /// are the oldest: a Python-made keyring records none), so old tokens
    /// cost one attempt too.
    #[must_use]
    pub fn active_at(&self, timestamp: u64) -> Option<usize> {
        let after = self.times.partition_point(|&(t, _)| t <= timestamp);
        match after.checked_sub(1) {
            Some(i) => Some(self.times[i].1),
            None => self.untimed,
        }
    }
}

/// Decryption's trial order over `len` versions (indices in the order
/// added): the `first` candidates (hint, version active at the token's
/// time, active version) in that order, then every other version, newest
/// first. Each version comes once; a candidate that is `None` or out of
/// range is skipped.
///
/// The key store's decrypt path tries the first candidate before building
/// this order, so the order must start with it (tested below). Public so
/// that other trials (the facade's `TokenIdentifier`) follow the same one.
pub fn trial_order(len: usize, first: [Option<usize>; 3]) -> impl Iterator<Item = usize> {
    let first = first.map(|c| c.filter(|&c| c < len));
    let firsts = first
        .into_iter()
        .enumerate()
        .filter_map(move |(i, c)| c.filter(|c| !first[..i].contains(&Some(*c))));
    let rest = (0..len).rev().filter(move |i| !first.contains(&Some(*i)));
    firsts.chain(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(len: usize, first: [Option<usize>; 3]) -> Vec<usize> {
        trial_order(len, first).collect()
    }

    #[test]
    fn hint_then_time_then_active_then_the_rest_newest_first() {
        assert_eq!(order(6, [Some(1), Some(3), Some(4)]), [1, 3, 4, 5, 2, 0]);
        // The active version is usually the newest; it is not tried twice.
        assert_eq!(order(4, [Some(0), Some(2), Some(3)]), [0, 2, 3, 1]);
    }

    #[test]
    fn a_candidate_named_twice_is_tried_once_where_it_first_appears() {
        // Hint and time agree.
        assert_eq!(order(5, [Some(2), Some(2), Some(4)]), [2, 4, 3, 1, 0]);
        // Hint and active agree.
        assert_eq!(order(5, [Some(4), Some(1), Some(4)]), [4, 1, 3, 2, 0]);
        // Time and active agree.
        assert_eq!(order(5, [Some(0), Some(3), Some(3)]), [0, 3, 4, 2, 1]);
        // All three agree.
        assert_eq!(order(5, [Some(1), Some(1), Some(1)]), [1, 4, 3, 2, 0]);
    }

    #[test]
    fn missing_and_out_of_range_candidates_are_skipped() {
        // No hint, no activation time known.
        assert_eq!(order(4, [None, None, Some(2)]), [2, 3, 1, 0]);
        assert_eq!(order(3, [None, None, None]), [2, 1, 0]);
        // Indices past the end never come out.
        assert_eq!(order(3, [Some(3), Some(9), Some(1)]), [1, 2, 0]);
        assert_eq!(order(2, [Some(usize::MAX), None, None]), [1, 0]);
    }

    #[test]
    fn empty_and_single_version_rings() {
        assert_eq!(order(0, [None, None, None]), Vec::<usize>::new());
        assert_eq!(order(0, [Some(0), Some(0), Some(0)]), Vec::<usize>::new());
        assert_eq!(order(1, [Some(0), None, Some(0)]), [0]);
        assert_eq!(order(1, [None, None, None]), [0]);
        assert_eq!(order(1, [Some(1), Some(0), Some(0)]), [0]);
    }

    /// Every candidate combination over small rings, checked against the
    /// definition rather than the code: a permutation of all versions,
    /// starting with the valid candidates in order without repeats (the
    /// decrypt path's shortcut tries the first of them), then the others in
    /// descending index order.
    #[test]
    fn every_small_case_is_a_permutation_in_the_promised_order() {
        for len in 0..=5 {
            let choices: Vec<Option<usize>> = std::iter::once(None)
                .chain((0..=len + 1).map(Some))
                .collect();
            for &a in &choices {
                for &b in &choices {
                    for &c in &choices {
                        let got = order(len, [a, b, c]);
                        let mut sorted = got.clone();
                        sorted.sort_unstable();
                        assert_eq!(
                            sorted,
                            (0..len).collect::<Vec<_>>(),
                            "{len} {a:?} {b:?} {c:?}"
                        );

                        let mut wanted_first = Vec::new();
                        for candidate in [a, b, c].into_iter().flatten() {
                            if candidate < len && !wanted_first.contains(&candidate) {
                                wanted_first.push(candidate);
                            }
                        }
                        let (head, tail) = got.split_at(wanted_first.len());
                        assert_eq!(head, wanted_first, "{len} {a:?} {b:?} {c:?}");
                        assert!(
                            tail.windows(2).all(|w| w[0] > w[1]),
                            "{len} {a:?} {b:?} {c:?}: {got:?}"
                        );
                        if let Some(&shortcut) = [a, b, c].iter().flatten().find(|&&i| i < len) {
                            assert_eq!(got.first(), Some(&shortcut));
                        }
                    }
                }
            }
        }
    }

    fn ring(activated_at: &[Option<u64>]) -> Ring {
        let entries = activated_at
            .iter()
            .enumerate()
            .map(|(i, &at)| {
                let name = Version::new(&format!("v{i}")).unwrap();
                Arc::new(Entry::new(
                    VersionSpec::tombstone(name).with_activated_at(at),
                ))
            })
            .collect();
        Ring::new(entries, activated_at.len() - 1)
    }

    #[test]
    fn the_timeline_picks_the_version_active_at_a_time() {
        let ring = ring(&[Some(100), None, Some(300)]);
        // Before every recorded time: the (newest) version with none.
        assert_eq!(ring.active_at(0), Some(1));
        assert_eq!(ring.active_at(99), Some(1));
        assert_eq!(ring.active_at(100), Some(0));
        assert_eq!(ring.active_at(299), Some(0));
        assert_eq!(ring.active_at(300), Some(2));
        assert_eq!(ring.active_at(u64::MAX), Some(2));
    }

    #[test]
    fn the_timeline_follows_activation_times_not_the_order_added() {
        // v0 was re-activated after v1 (activate switched back to it).
        let ring = ring(&[Some(500), Some(200)]);
        assert_eq!(ring.active_at(199), None);
        assert_eq!(ring.active_at(200), Some(1));
        assert_eq!(ring.active_at(499), Some(1));
        assert_eq!(ring.active_at(500), Some(0));
    }
}
