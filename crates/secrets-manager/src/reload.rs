//! Following the keyring's store: `reload` and `watch`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::audit::AuditEvent;
use crate::config::Pending;
use crate::error::{Error, Result};
use crate::keystore::VersionState;
use crate::manager::Inner;
use crate::persist::{OnChange, Prefixes, StoredState, Watch};
use crate::storage::{same_material, stored_versions};
use crate::{SecretsManager, Version};

/// What a [`reload`](SecretsManager::reload) changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReloadReport {
    /// Versions the store had that this process did not.
    pub added: Vec<Version>,
    /// The version made active, if the store moved the active pointer.
    pub activated: Option<Version>,
    /// Versions the store retired.
    pub retired: Vec<Version>,
    /// Versions the store destroyed (their keys are erased here too).
    pub destroyed: Vec<Version>,
    /// Versions whose material differs in the store from what this process
    /// holds: never applied (a version, once written, is immutable), logged
    /// and reported as an audit event.
    pub refused: Vec<Version>,
}

impl ReloadReport {
    /// Whether nothing changed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A running [`watch`](SecretsManager::watch). Dropping it stops the watch.
pub struct WatchHandle {
    _watch: Watch,
}

impl fmt::Debug for WatchHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WatchHandle")
    }
}

/// How often a watch looks at its store even without a notification.
const DEFAULT_POLL: Duration = Duration::from_secs(1);

impl SecretsManager {
    /// Re-reads the manager's keyring (see
    /// [`keyring`](Self::keyring)) and publishes what changed through the
    /// same snapshot swap as a rotation: readers never wait.
    ///
    /// Only what the keyring invariant allows is applied: new versions are
    /// added, the active pointer moves, retirements and destructions are
    /// applied. A version whose material differs in the store is refused
    /// (logged, an [`AuditEvent::ReloadRefused`], listed in the report),
    /// never applied. A version missing from the store stays usable here
    /// unless the store destroyed it.
    ///
    /// # Errors
    ///
    /// The manager has no keyring; the store cannot be read or holds a
    /// malformed keyring (nothing is applied then); after cleanup.
    pub fn reload(&self) -> Result<ReloadReport> {
        self.inner.reload()
    }

    /// Follows the keyring in the background: every change to it (a
    /// rename over the file, an in-place write, a swapped symbolic link as
    /// Kubernetes does for Secret volumes, a write to a fleet store) is
    /// [reloaded](Self::reload). The store is also looked at every second,
    /// as a fallback where notifications do not arrive. A reload that
    /// fails (a half-written file, an unreachable store) is logged and
    /// retried; the manager keeps serving from what it has.
    ///
    /// Dropping the returned handle stops the watch; so does dropping the
    /// manager.
    ///
    /// # Errors
    ///
    /// The manager has no keyring, or the watch cannot be started.
    pub fn watch(&self) -> Result<WatchHandle> {
        self.watch_every(DEFAULT_POLL)
    }

    /// As [`watch`](Self::watch), looking at the store at least every
    /// `poll`.
    ///
    /// # Errors
    ///
    /// As [`watch`](Self::watch).
    pub fn watch_every(&self, poll: Duration) -> Result<WatchHandle> {
        let store = self.inner.keyring.clone().ok_or(Error::NoKeyring)?;
        let weak = Arc::downgrade(&self.inner);
        let on_change: OnChange = Arc::new(move || {
            let Some(inner) = weak.upgrade() else {
                return true;
            };
            match inner.reload() {
                Ok(report) => {
                    if !report.is_empty() {
                        tracing::info!(?report, "reloaded the keyring");
                    }
                    true
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot reload the keyring; serving from the last one read");
                    false
                }
            }
        });
        Ok(WatchHandle {
            _watch: store.watch(on_change, poll)?,
        })
    }
}

impl Inner {
    pub(crate) fn reload(&self) -> Result<ReloadReport> {
        let store = self.keyring.as_ref().ok_or(Error::NoKeyring)?;
        let keyring = store.read()?;
        let source = store.source();
        let prefixes = Prefixes::default();
        let _writer = self.writer();
        let (ours, active) = self.store.with_snapshot(stored_versions)?;
        let mut report = ReloadReport::default();
        let mut retire = Vec::new();
        let mut destroy = Vec::new();

        // Oldest first, as a configuration loads them.
        let mut stored = keyring.versions().to_vec();
        stored.sort_by_key(|v| v.activated_at.map_or((0, 0), |t| (1, t)));
        for v in stored {
            let pending = Pending::stored(v.clone(), &source, &prefixes);
            let name = pending.version()?;
            match ours.iter().find(|m| m.name == name) {
                None => {
                    let activated_at = v.activated_at;
                    let spec = pending
                        .into_spec(name, self.iterations)?
                        .with_activated_at(activated_at);
                    match self.store.add_version(spec, false) {
                        Ok(()) => report.added.push(name),
                        Err(error) => {
                            tracing::warn!(version = %name, %error, keyring = %source, "version not loaded");
                            report.refused.push(name);
                            self.emit(|| AuditEvent::ReloadRefused { version: name });
                        }
                    }
                }
                Some(ours) => {
                    let both_keyed = v.key.is_some() && ours.version.key.is_some();
                    if both_keyed && !same_material(&v, ours) {
                        tracing::warn!(
                            version = %name,
                            keyring = %source,
                            "the keyring holds other key material for this version; refused (versions are immutable)"
                        );
                        report.refused.push(name);
                        self.emit(|| AuditEvent::ReloadRefused { version: name });
                        continue;
                    }
                    match (v.state, ours.version.state) {
                        (StoredState::Destroyed, s) if s != StoredState::Destroyed => {
                            destroy.push(name);
                        }
                        (StoredState::Retired, StoredState::Usable) => retire.push(name),
                        _ => {}
                    }
                }
            }
        }

        if let Some(wanted) = keyring.active_or_only(&prefixes)? {
            let wanted = Version::new(wanted)?;
            // The store's active pointer names the version activated last;
            // a scheduled one may be encrypting here already.
            let pointer = self
                .store
                .with_snapshot(|s| s.versions().map(|(i, _)| i).find(|i| i.version == wanted))?;
            let stamped = keyring.get(wanted.as_str()).and_then(|v| v.activated_at);
            if let Some(info) = pointer
                .filter(|i| i.version == active && i.activated_at.is_none() && stamped.is_some())
            {
                // The time the active version became active, recorded
                // with a schedule: the schedule counts from it. (Only for
                // the version active here: moving the pointer is the next
                // step's, under its guards.)
                self.store.activate(&info.version, stamped)?;
            }
            if wanted != active
                && !report.refused.contains(&wanted)
                && !scheduled_past(&keyring, wanted, active)
            {
                let at = keyring.get(wanted.as_str()).and_then(|v| v.activated_at);
                self.store.activate(&wanted, at)?;
                report.activated = Some(wanted);
                self.emit(|| AuditEvent::Activation {
                    version: wanted,
                    previous_version: active,
                });
            }
        }
        for name in retire {
            if self.store.retire(&name).is_ok() {
                report.retired.push(name);
                self.emit(|| AuditEvent::Retirement { version: name });
            }
        }
        for name in destroy {
            if self.store.destroy(&name).is_ok() {
                report.destroyed.push(name);
                self.emit(|| AuditEvent::Destruction { version: name });
            }
        }
        self.store.derive_scheduled()?;
        debug_assert!(
            self.store
                .version_info()
                .map(|i| i
                    .iter()
                    .all(|v| !v.active || v.state == VersionState::Usable))
                .unwrap_or(true)
        );
        Ok(report)
    }
}

/// Whether `current` (encrypting here) is a version scheduled after the
/// store's active pointer `pointer`, and its time has come: the pointer is
/// then older news, not a switch back.
fn scheduled_past(keyring: &crate::persist::Keyring, pointer: Version, current: Version) -> bool {
    let at = |v: Version| keyring.get(v.as_str()).and_then(|v| v.activated_at);
    matches!((at(pointer), at(current)), (Some(p), Some(c)) if c > p)
}
