//! The keys under the prefix, what they hold, and how a keyring edit turns
//! into guarded transactions.
//!
//! ```text
//! PREFIX/versions/<name>   {"kind":"password","iterations":100000}   written once, never changed
//! PREFIX/material/<name>   {"kek":"<id>","token":"<Fernet token>"}   re-wrapped by a KEK rotation,
//!                                                                    deleted when destroyed
//! PREFIX/lifecycle/<name>  {"state":"retired","activated_at":1700000000}   absent: usable
//! PREFIX/active            <name>
//! PREFIX/kek               <id of the KEK new material is wrapped under>
//! ```
//!
//! Every write is guarded by "nothing under the prefix changed since the
//! revision read" (a range compare on `mod_revision`), which serialises
//! writers like the file store's lock, optimistically; on top of it, a
//! version is created only if its key does not exist (`create_revision ==
//! 0`) and lifecycle, active and KEK keys change only from the revision
//! read. A lost guard means: read again, edit again.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use secrets_manager_persist::{
    Keyring, PersistError, Source, StoredKey, StoredState, StoredVersion,
};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::kek::{self, Blob, Kek, Wrapping};

/// The most operations (and compares) one transaction carries: etcd
/// refuses more than `--max-txn-ops` (128 by default).
pub(crate) const MAX_TXN_OPS: usize = 120;

/// Key names under a prefix.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    /// `/PREFIX`, no trailing slash.
    root: String,
}

pub(crate) const VERSIONS: &str = "versions/";
pub(crate) const MATERIAL: &str = "material/";
pub(crate) const LIFECYCLE: &str = "lifecycle/";
pub(crate) const ACTIVE: &str = "active";
pub(crate) const KEK: &str = "kek";

impl Layout {
    pub(crate) fn new(root: &str) -> Self {
        Self {
            root: root.to_owned(),
        }
    }

    /// Every key of the keyring starts with this.
    pub(crate) fn range(&self) -> String {
        format!("{}/", self.root)
    }

    pub(crate) fn key(&self, kind: &str, name: &str) -> String {
        format!("{}/{kind}{name}", self.root)
    }

    pub(crate) fn active(&self) -> String {
        self.key(ACTIVE, "")
    }

    pub(crate) fn kek(&self) -> String {
        self.key(KEK, "")
    }
}

/// `PREFIX/versions/<name>`: what never changes about a version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct VersionRecord {
    pub(crate) kind: Kind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) iterations: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Kind {
    Password,
    Fernet,
    /// Added already destroyed (copied from a keyring that had destroyed
    /// it): a name and nothing else.
    Tombstone,
}

/// `PREFIX/lifecycle/<name>`: the parts of a version that may move forward.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Lifecycle {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) state: Option<State>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) activated_at: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum State {
    Retired,
    Destroyed,
}

impl State {
    fn of(state: StoredState) -> Option<Self> {
        match state {
            StoredState::Usable => None,
            StoredState::Retired => Some(Self::Retired),
            _ => Some(Self::Destroyed),
        }
    }
}

impl Lifecycle {
    fn of(v: &StoredVersion) -> Self {
        Self {
            state: State::of(v.state),
            activated_at: v.activated_at,
        }
    }

    fn state(&self) -> StoredState {
        match self.state {
            None => StoredState::Usable,
            Some(State::Retired) => StoredState::Retired,
            Some(State::Destroyed) => StoredState::Destroyed,
        }
    }
}

/// A value with the revision it was last modified at.
#[derive(Clone, Debug)]
pub(crate) struct Rev<T> {
    pub(crate) value: T,
    pub(crate) mod_revision: i64,
}

/// One version as read.
#[derive(Debug)]
pub(crate) struct RawVersion {
    pub(crate) name: String,
    pub(crate) record: VersionRecord,
    pub(crate) material: Option<Rev<Zeroizing<Vec<u8>>>>,
    pub(crate) lifecycle: Option<Rev<Lifecycle>>,
}

impl RawVersion {
    pub(crate) fn state(&self) -> StoredState {
        match (&self.lifecycle, self.record.kind) {
            (_, Kind::Tombstone) => StoredState::Destroyed,
            (Some(l), _) => l.value.state(),
            (None, _) => StoredState::Usable,
        }
    }

    fn activated_at(&self) -> Option<u64> {
        self.lifecycle.as_ref().and_then(|l| l.value.activated_at)
    }

    fn lifecycle_revision(&self) -> i64 {
        self.lifecycle.as_ref().map_or(0, |l| l.mod_revision)
    }
}

/// Everything under the prefix at one revision.
#[derive(Debug)]
pub(crate) struct Raw {
    pub(crate) revision: i64,
    /// In the order they were created (by name within one transaction).
    pub(crate) versions: Vec<RawVersion>,
    pub(crate) active: Option<Rev<String>>,
    pub(crate) kek: Option<Rev<String>>,
}

/// Material unwrapped by the last read, by version, with the stored bytes
/// it came from: a watcher reads the whole keyring at every change, and
/// unchanged bytes need no second unwrapping.
pub(crate) type Unwrapped = Mutex<HashMap<String, (Zeroizing<Vec<u8>>, Option<u32>, StoredKey)>>;

/// A key-value pair as read: key, value, `create_revision`, `mod_revision`.
pub(crate) type Kv = (String, Zeroizing<Vec<u8>>, i64, i64);

fn invalid(origin: &Source, key: &str, problem: impl Into<String>) -> PersistError {
    PersistError::Invalid {
        origin: origin.clone(),
        variable: key.to_owned(),
        problem: problem.into(),
    }
}

/// A version name read from a key: what this crate writes (lower case,
/// the keystore's characters).
fn version_name<'a>(origin: &Source, key: &str, name: &'a str) -> Result<&'a str, PersistError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.')
        });
    if ok {
        Ok(name)
    } else {
        Err(invalid(
            origin,
            key,
            "does not name a version (lower-case letters, digits, '_', '-' and '.')",
        ))
    }
}

fn text(origin: &Source, key: &str, value: &[u8]) -> Result<String, PersistError> {
    let t = std::str::from_utf8(value).map_err(|_| invalid(origin, key, "is not UTF-8"))?;
    Ok(t.trim().to_owned())
}

impl Raw {
    /// Sorts what a range read returned under `layout` into versions.
    /// Keys this crate does not write are ignored.
    pub(crate) fn parse(
        layout: &Layout,
        origin: &Source,
        revision: i64,
        kvs: Vec<Kv>,
    ) -> Result<Self, PersistError> {
        let root = layout.range();
        let mut records: Vec<(i64, String, VersionRecord)> = Vec::new();
        let mut materials: HashMap<String, Rev<Zeroizing<Vec<u8>>>> = HashMap::new();
        let mut lifecycles: HashMap<String, Rev<Lifecycle>> = HashMap::new();
        let mut active = None;
        let mut kek = None;
        for (key, value, create_revision, mod_revision) in kvs {
            let Some(rest) = key.strip_prefix(&root) else {
                continue;
            };
            if let Some(name) = rest.strip_prefix(VERSIONS) {
                let name = version_name(origin, &key, name)?;
                if mod_revision != create_revision {
                    return Err(invalid(
                        origin,
                        &key,
                        "was changed after it was written (a version is immutable): written by hand?",
                    ));
                }
                let record: VersionRecord = serde_json::from_slice(&value)
                    .map_err(|e| invalid(origin, &key, format!("not a version record ({e})")))?;
                records.push((create_revision, name.to_owned(), record));
            } else if let Some(name) = rest.strip_prefix(MATERIAL) {
                let name = version_name(origin, &key, name)?.to_owned();
                materials.insert(
                    name,
                    Rev {
                        value,
                        mod_revision,
                    },
                );
            } else if let Some(name) = rest.strip_prefix(LIFECYCLE) {
                let name = version_name(origin, &key, name)?.to_owned();
                let value: Lifecycle = serde_json::from_slice(&value)
                    .map_err(|e| invalid(origin, &key, format!("not a lifecycle record ({e})")))?;
                lifecycles.insert(
                    name,
                    Rev {
                        value,
                        mod_revision,
                    },
                );
            } else if rest == ACTIVE {
                let name = text(origin, &key, &value)?;
                version_name(origin, &key, &name)?;
                active = Some(Rev {
                    value: name,
                    mod_revision,
                });
            } else if rest == KEK {
                kek = Some(Rev {
                    value: text(origin, &key, &value)?,
                    mod_revision,
                });
            }
        }
        // The order they were added in; versions added by one transaction
        // share a revision and go by name.
        records.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        let versions = records
            .into_iter()
            .map(|(_, name, record)| RawVersion {
                material: materials.remove(&name),
                lifecycle: lifecycles.remove(&name),
                name,
                record,
            })
            .collect();
        Ok(Self {
            revision,
            versions,
            active,
            kek,
        })
    }

    /// The keyring, every material unwrapped with `keks`.
    pub(crate) fn keyring(
        &self,
        layout: &Layout,
        origin: &Source,
        keks: &[Kek],
        cache: &Unwrapped,
    ) -> Result<Keyring, PersistError> {
        let mut seen = HashMap::with_capacity(self.versions.len());
        let mut keyring = Keyring::new(origin.clone());
        for v in &self.versions {
            let state = v.state();
            let stored = if state == StoredState::Destroyed {
                StoredVersion::tombstone(&v.name)
            } else {
                let key = layout.key(MATERIAL, &v.name);
                let material = v.material.as_ref().ok_or_else(|| {
                    invalid(origin, &key, "is missing: the version has no key material")
                })?;
                let cached = cache
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get(&v.name)
                    // The same bytes under the same record: the unwrap
                    // checked that pairing once (the count is bound to the
                    // material), so a record rewritten with another count
                    // is checked again, as a cold read would.
                    .filter(|(bytes, iterations, _)| {
                        *bytes == material.value && *iterations == v.record.iterations
                    })
                    .map(|(_, _, stored)| stored.clone());
                let stored = match cached {
                    Some(stored) => stored,
                    None => Blob::parse(&material.value)
                        .and_then(|blob| blob.unwrap(&v.name, v.record.iterations, keks))
                        .map_err(|problem| invalid(origin, &key, problem))?,
                };
                seen.insert(
                    v.name.clone(),
                    (material.value.clone(), v.record.iterations, stored.clone()),
                );
                let kind = match stored {
                    StoredKey::Password { .. } => Kind::Password,
                    _ => Kind::Fernet,
                };
                if kind != v.record.kind {
                    return Err(invalid(
                        origin,
                        &key,
                        "holds another kind of key than the version record says",
                    ));
                }
                StoredVersion::new(&v.name, stored)
                    .with_iterations(v.record.iterations)
                    .with_state(state)
            };
            keyring.add(stored.with_activated_at(v.activated_at()))?;
        }
        let active = match &self.active {
            Some(active) => Some(active.value.as_str()),
            // One usable version and no pointer: it is the active one, as
            // in a file (and the next write records it).
            None => match self.versions.as_slice() {
                [only] if only.state() == StoredState::Usable => Some(only.name.as_str()),
                _ => None,
            },
        };
        if let Some(active) = active {
            keyring
                .set_active(active)
                .map_err(|e| invalid(origin, &layout.active(), e.to_string()))?;
        }
        // Only what this read holds stays: a destroyed version's material
        // leaves memory here too.
        *cache.lock().unwrap_or_else(PoisonError::into_inner) = seen;
        Ok(keyring)
    }
}

/// A precondition of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Guard {
    /// The key does not exist.
    Absent(String),
    /// The key was last modified at this revision (0: it does not exist).
    ModRevision(String, i64),
}

/// A change in a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Put(String, Zeroizing<Vec<u8>>),
    Delete(String),
}

/// One transaction's worth of a write.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub(crate) guards: Vec<Guard>,
    pub(crate) ops: Vec<Op>,
}

/// What wrapping a write may use.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Wrap<'a> {
    pub(crate) keks: &'a [Kek],
    pub(crate) allow_plaintext: bool,
}

impl Wrap<'_> {
    /// The KEK new material is wrapped under: the keyring's recorded one
    /// (which this process must hold), else this process's first; `None`
    /// for plaintext, when allowed.
    fn choose(
        &self,
        raw: &Raw,
        origin: &Source,
        layout: &Layout,
    ) -> Result<Option<&Kek>, PersistError> {
        match &raw.kek {
            Some(recorded) => match self.keks.iter().find(|k| k.id() == recorded.value) {
                Some(kek) => Ok(Some(kek)),
                None => Err(invalid(
                    origin,
                    &layout.kek(),
                    format!(
                        "the keyring wraps new material under key-encryption key {}, and this process does not hold it ({}); nothing was written",
                        kek::printable(&recorded.value),
                        kek::held(self.keks)
                    ),
                )),
            },
            None => match (self.keks.first(), self.allow_plaintext) {
                (Some(kek), _) => Ok(Some(kek)),
                (None, true) => Ok(None),
                (None, false) => Err(PersistError::Invalid {
                    origin: origin.clone(),
                    variable: layout.range(),
                    problem: format!(
                        "refusing to write key material to etcd in the clear: set a key-encryption key (${} or --kek-file; `secrets-manager keygen` makes one), or allow plaintext with --allow-plaintext-store; nothing was written",
                        crate::env::KEK
                    ),
                }),
            },
        }
    }
}

/// Turns the difference between `raw` and `edited` (which began as
/// `raw.keyring()`) into transactions. Added versions come first, a few
/// per transaction, each created only if its key is absent; then the
/// active pointer and lifecycle changes, guarded by their revisions. An
/// empty list: nothing changed.
pub(crate) fn plan(
    raw: &Raw,
    edited: &Keyring,
    layout: &Layout,
    origin: &Source,
    wrap: Wrap<'_>,
) -> Result<Vec<Batch>, PersistError> {
    let versions = edited.versions();
    let known = raw.versions.len();
    let unchanged_order = versions.len() >= known
        && raw
            .versions
            .iter()
            .zip(versions)
            .all(|(r, v)| r.name == v.name);
    if !unchanged_order {
        // `Keyring` only appends; this would be a bug here, not bad data.
        return Err(invalid(
            origin,
            &layout.range(),
            "the edited keyring lost or reordered versions; nothing was written",
        ));
    }

    let mut batches: Vec<Batch> = Vec::new();
    let mut current = Batch::default();
    let mut kek_recorded = raw.kek.is_some();
    let push = |batches: &mut Vec<Batch>, current: &mut Batch, unit: Batch| {
        let fits = current.ops.len() + unit.ops.len() <= MAX_TXN_OPS
            && current.guards.len() + unit.guards.len() < MAX_TXN_OPS;
        if !fits && !current.ops.is_empty() {
            batches.push(std::mem::take(current));
        }
        current.guards.extend(unit.guards);
        current.ops.extend(unit.ops);
    };

    for v in &versions[known..] {
        let mut unit = Batch::default();
        let version_key = layout.key(VERSIONS, &v.name);
        let kind = match &v.key {
            None => Kind::Tombstone,
            Some(StoredKey::Password { .. }) => Kind::Password,
            Some(_) => Kind::Fernet,
        };
        let record = VersionRecord {
            kind,
            iterations: v.iterations.filter(|_| kind == Kind::Password),
        };
        unit.guards.push(Guard::Absent(version_key.clone()));
        unit.ops.push(Op::Put(version_key, json(&record)));
        if let Some(key) = &v.key {
            let kek = wrap.choose(raw, origin, layout)?;
            if let (Some(kek), false) = (kek, kek_recorded) {
                unit.guards.push(Guard::ModRevision(layout.kek(), 0));
                unit.ops.push(Op::Put(
                    layout.kek(),
                    Zeroizing::new(kek.id().as_bytes().to_vec()),
                ));
                kek_recorded = true;
            }
            let value = kek::wrap(&v.name, key, record.iterations, kek)
                .map_err(|problem| invalid(origin, &layout.key(MATERIAL, &v.name), problem))?;
            unit.ops.push(Op::Put(layout.key(MATERIAL, &v.name), value));
        }
        let lifecycle = Lifecycle::of(v);
        if lifecycle != Lifecycle::default() {
            unit.ops
                .push(Op::Put(layout.key(LIFECYCLE, &v.name), json(&lifecycle)));
        }
        push(&mut batches, &mut current, unit);
    }

    // The active pointer first, so no batch retires the active version
    // before the pointer has moved off it.
    let mut changes = Vec::new();
    let was_active = raw.active.as_ref().map(|a| a.value.as_str());
    if let Some(active) = edited.active()
        && Some(active) != was_active
    {
        let mut unit = Batch::default();
        let revision = raw.active.as_ref().map_or(0, |a| a.mod_revision);
        unit.guards
            .push(Guard::ModRevision(layout.active(), revision));
        unit.ops.push(Op::Put(
            layout.active(),
            Zeroizing::new(active.as_bytes().to_vec()),
        ));
        changes.push(unit);
    }
    for (r, v) in raw.versions.iter().zip(versions) {
        let mut unit = Batch::default();
        let before = Lifecycle {
            state: State::of(r.state()),
            activated_at: r.activated_at(),
        };
        let after = Lifecycle::of(v);
        if after != before {
            let key = layout.key(LIFECYCLE, &r.name);
            unit.guards
                .push(Guard::ModRevision(key.clone(), r.lifecycle_revision()));
            unit.ops.push(Op::Put(key, json(&after)));
        }
        // Destroyed: the material goes (also when an earlier writer left
        // it behind).
        if v.state == StoredState::Destroyed
            && let Some(material) = &r.material
        {
            unit.guards.push(Guard::ModRevision(
                layout.key(MATERIAL, &r.name),
                material.mod_revision,
            ));
            unit.ops.push(Op::Delete(layout.key(MATERIAL, &r.name)));
        }
        if !unit.ops.is_empty() {
            changes.push(unit);
        }
    }
    for unit in changes {
        push(&mut batches, &mut current, unit);
    }
    if !current.ops.is_empty() {
        batches.push(current);
    }
    Ok(batches)
}

pub(crate) fn json<T: Serialize>(value: &T) -> Zeroizing<Vec<u8>> {
    // ok: the records are plain structs of strings and numbers, which
    // always serialise.
    Zeroizing::new(serde_json::to_vec(value).unwrap_or_default())
}

/// The KEK rotation's plan: every material not yet under `new`, re-wrapped
/// under it, each guarded by its revision; the keyring's KEK record first.
pub(crate) fn rewrap_plan(
    raw: &Raw,
    layout: &Layout,
    origin: &Source,
    keks: &[Kek],
    new: &Kek,
) -> Result<(Vec<Batch>, usize), PersistError> {
    let mut units = Vec::new();
    if raw.kek.as_ref().map(|k| k.value.as_str()) != Some(new.id()) {
        let revision = raw.kek.as_ref().map_or(0, |k| k.mod_revision);
        units.push(Batch {
            guards: vec![Guard::ModRevision(layout.kek(), revision)],
            ops: vec![Op::Put(
                layout.kek(),
                Zeroizing::new(new.id().as_bytes().to_vec()),
            )],
        });
    }
    let mut rewrapped = 0;
    for v in &raw.versions {
        let Some(material) = &v.material else {
            continue;
        };
        let key = layout.key(MATERIAL, &v.name);
        let blob = Blob::parse(&material.value).map_err(|p| invalid(origin, &key, p))?;
        if blob.wrapping() == Wrapping::Kek(new.id().to_owned()) {
            continue;
        }
        if v.state() == StoredState::Destroyed {
            // Left behind by a destroy that was cut short: not worth
            // wrapping again; the next write deletes it.
            continue;
        }
        let mut readable: Vec<Kek> = keks.to_vec();
        readable.push(new.clone());
        let stored = blob
            .unwrap(&v.name, v.record.iterations, &readable)
            .map_err(|p| invalid(origin, &key, p))?;
        let value = kek::wrap(&v.name, &stored, v.record.iterations, Some(new))
            .map_err(|p| invalid(origin, &key, p))?;
        units.push(Batch {
            guards: vec![Guard::ModRevision(key.clone(), material.mod_revision)],
            ops: vec![Op::Put(key, value)],
        });
        rewrapped += 1;
    }
    let mut batches: Vec<Batch> = Vec::new();
    for unit in units {
        match batches.last_mut() {
            Some(b) if b.ops.len() < MAX_TXN_OPS => {
                b.guards.extend(unit.guards);
                b.ops.extend(unit.ops);
            }
            _ => batches.push(unit),
        }
    }
    Ok((batches, rewrapped))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn origin() -> Source {
        Source::Store("etcd://h:1/app".into())
    }

    fn layout() -> Layout {
        Layout::new("/app")
    }

    /// `v1`, a password version derived with 1 000 iterations.
    fn password_v1() -> StoredVersion {
        StoredVersion::new(
            "v1",
            StoredKey::Password {
                password: "pw".into(),
                salt: "c2FsdA==".into(),
                salt_hash: None,
            },
        )
        .with_iterations(Some(1_000))
    }

    fn fernet() -> StoredKey {
        StoredKey::Fernet(
            secrets_manager_fernet::Key::generate()
                .to_base64()
                .as_str()
                .into(),
        )
    }

    /// Applies batches to an in-memory store, as etcd would (guards
    /// included), at increasing revisions.
    #[derive(Default)]
    struct Memory {
        revision: i64,
        kvs: HashMap<String, (Zeroizing<Vec<u8>>, i64, i64)>,
    }

    impl Memory {
        fn raw(&self) -> Raw {
            let kvs = self
                .kvs
                .iter()
                .map(|(k, (v, c, m))| (k.clone(), v.clone(), *c, *m))
                .collect();
            Raw::parse(&layout(), &origin(), self.revision, kvs).unwrap()
        }

        fn apply(&mut self, read: i64, batch: &Batch) -> bool {
            let changed_since = self.kvs.values().any(|(_, _, m)| *m > read);
            let guards = batch.guards.iter().all(|g| match g {
                Guard::Absent(k) => !self.kvs.contains_key(k),
                Guard::ModRevision(k, r) => self.kvs.get(k).map_or(0, |(_, _, m)| *m) == *r,
            });
            if changed_since || !guards {
                return false;
            }
            self.revision += 1;
            for op in &batch.ops {
                match op {
                    Op::Put(k, v) => {
                        let created = self.kvs.get(k).map_or(self.revision, |(_, c, _)| *c);
                        self.kvs
                            .insert(k.clone(), (v.clone(), created, self.revision));
                    }
                    Op::Delete(k) => {
                        self.kvs.remove(k);
                    }
                }
            }
            true
        }

        fn write(
            &mut self,
            keks: &[Kek],
            edit: impl FnOnce(&mut Keyring) -> Result<(), PersistError>,
        ) -> Result<usize, PersistError> {
            let raw = self.raw();
            let mut keyring = raw.keyring(&layout(), &origin(), keks, &Unwrapped::default())?;
            edit(&mut keyring)?;
            let wrap = Wrap {
                keks,
                allow_plaintext: false,
            };
            let batches = plan(&raw, &keyring, &layout(), &origin(), wrap)?;
            let mut read = raw.revision;
            for b in &batches {
                assert!(self.apply(read, b), "no one else writes here");
                read = self.revision;
            }
            Ok(batches.len())
        }

        fn keyring(&self, keks: &[Kek]) -> Keyring {
            self.raw()
                .keyring(&layout(), &origin(), keks, &Unwrapped::default())
                .unwrap()
        }
    }

    #[test]
    fn writes_round_trip_through_the_layout() {
        let kek = Kek::generate();
        let keks = std::slice::from_ref(&kek);
        let mut m = Memory::default();
        m.write(keks, |k| {
            k.add(password_v1().with_activated_at(Some(10)))?;
            k.add(StoredVersion::new("v2", fernet()))?;
            k.add(StoredVersion::tombstone("v0"))?;
            k.set_active("v1")
        })
        .unwrap();
        assert_eq!(
            std::str::from_utf8(&m.kvs["/app/kek"].0).unwrap(),
            kek.id(),
            "the first wrapped write records its KEK"
        );
        let k = m.keyring(keks);
        let names: Vec<&str> = k.versions().iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["v0", "v1", "v2"], "one transaction: by name");
        assert_eq!(k.active(), Some("v1"));
        assert_eq!(k.get("v1").unwrap().iterations, Some(1_000));
        assert_eq!(k.get("v1").unwrap().activated_at, Some(10));
        assert_eq!(k.get("v0").unwrap().state, StoredState::Destroyed);

        // Lifecycle: v2 active, v1 retired then destroyed (material gone).
        m.write(keks, |k| {
            k.set_active_at("v2", Some(20))?;
            k.retire("v1").map(drop)
        })
        .unwrap();
        m.write(keks, |k| k.destroy("v1").map(drop)).unwrap();
        assert!(!m.kvs.contains_key("/app/material/v1"));
        let k = m.keyring(keks);
        assert_eq!(k.active(), Some("v2"));
        assert_eq!(k.get("v2").unwrap().activated_at, Some(20));
        assert_eq!(k.get("v1").unwrap().state, StoredState::Destroyed);
        // Nothing changed: nothing to write.
        assert_eq!(m.write(keks, |_| Ok(())).unwrap(), 0);
    }

    /// A version record rewritten with another count (deleted and made
    /// again, so it still reads as written once) is refused by a warm
    /// cache as by a cold read.
    #[test]
    fn a_warm_cache_still_checks_the_count_bound_to_the_material() {
        let keks = [Kek::generate()];
        let mut m = Memory::default();
        m.write(&keks, |k| {
            k.add(password_v1())?;
            k.set_active("v1")
        })
        .unwrap();
        let cache = Unwrapped::default();
        m.raw()
            .keyring(&layout(), &origin(), &keks, &cache)
            .unwrap();
        let record = "/app/versions/v1".to_owned();
        let text = String::from_utf8(m.kvs[&record].0.to_vec()).unwrap();
        assert!(text.contains("1000"), "{text}");
        m.revision += 1;
        let forged = Zeroizing::new(text.replace("1000", "2000").into_bytes());
        m.kvs.insert(record, (forged, m.revision, m.revision));
        let cold = m
            .raw()
            .keyring(&layout(), &origin(), &keks, &Unwrapped::default());
        assert!(cold.is_err(), "a cold read refuses it");
        let warm = m.raw().keyring(&layout(), &origin(), &keks, &cache);
        assert!(warm.is_err(), "so does a warm one");
    }

    #[test]
    fn a_stale_plan_loses_every_guard() {
        let keks = [Kek::generate()];
        let mut m = Memory::default();
        m.write(&keks, |k| {
            k.add(StoredVersion::new("v1", fernet()))?;
            k.set_active("v1")
        })
        .unwrap();
        let stale = m.raw();
        let mut edited = m.keyring(&keks);
        edited.add(StoredVersion::new("mine", fernet())).unwrap();
        let wrap = Wrap {
            keks: &keks,
            allow_plaintext: false,
        };
        let batches = plan(&stale, &edited, &layout(), &origin(), wrap).unwrap();
        // Someone else adds the same name first.
        m.write(&keks, |k| k.add(StoredVersion::new("mine", fernet())))
            .unwrap();
        assert!(!m.apply(stale.revision, &batches[0]), "the revision moved");
        // Even ignoring the revision, the name's key exists.
        assert!(!m.apply(m.revision, &batches[0]), "create_revision != 0");
    }

    #[test]
    fn large_writes_are_split_with_versions_before_the_pointer() {
        let keks = [Kek::generate()];
        let mut m = Memory::default();
        let batches = m
            .write(&keks, |k| {
                for i in 0..100 {
                    k.add(StoredVersion::new(&format!("v{i}"), fernet()))?;
                }
                k.set_active("v99")
            })
            .unwrap();
        assert!(batches >= 2, "{batches} batches");
        let k = m.keyring(&keks);
        assert_eq!(k.versions().len(), 100);
        assert_eq!(k.active(), Some("v99"));
    }

    #[test]
    fn material_is_written_only_under_a_held_kek_or_with_permission() {
        let a = Kek::generate();
        let b = Kek::generate();
        let mut m = Memory::default();
        let add =
            |name: &'static str| move |k: &mut Keyring| k.add(StoredVersion::new(name, fernet()));
        let e = m.write(&[], add("v1")).unwrap_err().to_string();
        assert!(e.contains("--allow-plaintext-store"), "{e}");
        m.write(std::slice::from_ref(&a), add("v1")).unwrap();
        // B first and A held: still wrapped under the recorded A.
        m.write(&[b.clone(), a.clone()], add("v2")).unwrap();
        let blob = Blob::parse(&m.kvs["/app/material/v2"].0).unwrap();
        assert_eq!(blob.wrapping(), Wrapping::Kek(a.id().to_owned()));
        // B alone cannot write (nor read).
        let e = m
            .write(std::slice::from_ref(&b), add("v3"))
            .unwrap_err()
            .to_string();
        assert!(e.contains(a.id()), "{e}");

        // The rotation re-wraps everything and moves the record first.
        let (batches, rewrapped) =
            rewrap_plan(&m.raw(), &layout(), &origin(), std::slice::from_ref(&a), &b).unwrap();
        assert_eq!(rewrapped, 2);
        assert_eq!(
            batches[0].ops[0],
            Op::Put(
                "/app/kek".into(),
                Zeroizing::new(b.id().as_bytes().to_vec())
            )
        );
        let read = m.revision;
        assert!(m.apply(
            read,
            &Batch {
                guards: batches[0].guards.clone(),
                ops: batches[0].ops.clone()
            }
        ));
        m.keyring(std::slice::from_ref(&b));
    }

    #[test]
    fn records_written_by_hand_are_refused_by_name() {
        let raw = |kvs: Vec<(&str, &str, i64, i64)>| {
            let kvs = kvs
                .into_iter()
                .map(|(k, v, c, m)| (k.to_owned(), Zeroizing::new(v.as_bytes().to_vec()), c, m))
                .collect();
            Raw::parse(&layout(), &origin(), 9, kvs)
        };
        for (kvs, says) in [
            (
                vec![("/app/versions/v1", r#"{"kind":"fernet"}"#, 1, 2)],
                "immutable",
            ),
            (
                vec![("/app/versions/V1", r#"{"kind":"fernet"}"#, 1, 1)],
                "does not name",
            ),
            (
                vec![("/app/versions/v1", "{", 1, 1)],
                "not a version record",
            ),
            (
                vec![("/app/lifecycle/v1", r#"{"state":"gone"}"#, 1, 1)],
                "not a lifecycle",
            ),
        ] {
            let e = raw(kvs).unwrap_err().to_string();
            assert!(e.contains(says), "{e}");
        }
        let missing = raw(vec![("/app/versions/v1", r#"{"kind":"fernet"}"#, 1, 1)]).unwrap();
        let e = missing
            .keyring(&layout(), &origin(), &[], &Unwrapped::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/app/material/v1") && e.contains("missing"),
            "{e}"
        );
        // Keys of other prefixes and unknown keys are no business of ours.
        let other = raw(vec![
            ("/apple/versions/v1", "x", 1, 2),
            ("/app/notes", "x", 1, 1),
        ])
        .unwrap();
        assert!(other.versions.is_empty());
    }
}
