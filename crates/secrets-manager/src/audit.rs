//! Audit events.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use crate::Version;

/// Something worth an audit trail. Carries version names and sizes only:
/// never plaintext, keys, passwords or salts.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditEvent {
    /// A token was made.
    Encryption {
        /// The version that encrypted.
        version: Version,
        /// Plaintext length in bytes.
        size: usize,
    },
    /// A token was decrypted.
    Decryption {
        /// The version that decrypted.
        version: Version,
        /// Whether it was the caller's hint.
        was_hint: bool,
    },
    /// A token could not be decrypted.
    DecryptionFailed {
        /// The caller's hint, if it named a version.
        hint: Option<Version>,
    },
    /// A new version became active.
    Rotation {
        /// The new active version.
        new_version: Version,
        /// The version active before.
        previous_version: Version,
    },
    /// A version was added without becoming active (a staged rotation).
    VersionAdded {
        /// The new version.
        version: Version,
    },
    /// An existing version was made active.
    Activation {
        /// The version now active.
        version: Version,
        /// The version active before.
        previous_version: Version,
    },
    /// A version was retired: it no longer decrypts.
    Retirement {
        /// The version.
        version: Version,
    },
    /// A version's key was erased.
    Destruction {
        /// The version.
        version: Version,
    },
    /// A reload found a version whose material differs in the keyring
    /// from what this process holds, and refused it.
    ReloadRefused {
        /// The version.
        version: Version,
    },
    /// Every key was erased.
    Cleanup,
}

impl AuditEvent {
    /// The event's name, as the Python package spells it: `"encryption"`,
    /// `"decryption"`, `"decryption_failed"`, `"rotation"`, `"cleanup"`;
    /// and for the lifecycle, which the Python package does not have:
    /// `"version_added"`, `"activation"`, `"retirement"`, `"destruction"`,
    /// `"reload_refused"`.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Encryption { .. } => "encryption",
            Self::Decryption { .. } => "decryption",
            Self::DecryptionFailed { .. } => "decryption_failed",
            Self::Rotation { .. } => "rotation",
            Self::VersionAdded { .. } => "version_added",
            Self::Activation { .. } => "activation",
            Self::Retirement { .. } => "retirement",
            Self::Destruction { .. } => "destruction",
            Self::ReloadRefused { .. } => "reload_refused",
            Self::Cleanup => "cleanup",
        }
    }

    /// The version involved, if any.
    #[must_use]
    pub fn version(&self) -> Option<Version> {
        match self {
            Self::Encryption { version, .. } | Self::Decryption { version, .. } => Some(*version),
            Self::DecryptionFailed { hint } => *hint,
            Self::Rotation { new_version, .. } => Some(*new_version),
            Self::VersionAdded { version }
            | Self::Activation { version, .. }
            | Self::Retirement { version }
            | Self::Destruction { version }
            | Self::ReloadRefused { version } => Some(*version),
            Self::Cleanup => None,
        }
    }
}

impl fmt::Display for AuditEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Encryption { version, size } => {
                write!(f, "encryption version={version} size={size}")
            }
            Self::Decryption { version, was_hint } => {
                write!(f, "decryption version={version} was_hint={was_hint}")
            }
            Self::DecryptionFailed { hint: Some(h) } => write!(f, "decryption_failed hint={h}"),
            Self::DecryptionFailed { hint: None } => f.write_str("decryption_failed"),
            Self::Rotation {
                new_version,
                previous_version,
            } => {
                write!(
                    f,
                    "rotation new_version={new_version} previous_version={previous_version}"
                )
            }
            Self::Activation {
                version,
                previous_version,
            } => write!(
                f,
                "activation version={version} previous_version={previous_version}"
            ),
            Self::VersionAdded { version }
            | Self::Retirement { version }
            | Self::Destruction { version }
            | Self::ReloadRefused { version } => write!(f, "{} version={version}", self.name()),
            Self::Cleanup => f.write_str("cleanup"),
        }
    }
}

/// The user's callback.
#[derive(Clone)]
pub(crate) struct AuditHook(Arc<dyn Fn(&AuditEvent) + Send + Sync>);

impl AuditHook {
    pub(crate) fn new(f: impl Fn(&AuditEvent) + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    /// Calls the callback. A panic inside it is caught and logged, and the
    /// operation that raised the event still succeeds (as in the Python
    /// package, where an exception in the callback is only logged).
    pub(crate) fn emit(&self, event: &AuditEvent) {
        if catch_unwind(AssertUnwindSafe(|| (self.0)(event))).is_err() {
            tracing::warn!(
                event = event.name(),
                "audit callback panicked; the operation itself succeeded"
            );
        }
    }
}

impl fmt::Debug for AuditHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuditHook(..)")
    }
}
