//! The versioned keyring under secrets-manager: many named key versions, one
//! active for encryption and all usable ones for decryption; rotation at
//! runtime without a lock on the hot path; decryption whose cost stays flat
//! as versions pile up; exact statistics.
//!
//! Most applications use the `secrets-manager` facade, which builds a
//! [`KeyStore`] from its configuration. See [`KeyStore`] for an example.
//!
//! # Invariants
//! - Readers (encrypt, decrypt) load an immutable snapshot through
//!   `arc-swap` and take no lock; writers serialise among themselves.
//! - A version's key is derived at most once until the cache is cleared,
//!   under that version's own lock, never a global one.
//! - Decryption tries the hint, then the version active at the token's
//!   (unauthenticated) timestamp, then the active version, then the rest
//!   newest first; every attempt verifies the HMAC.
//! - Versions are never overwritten; retired versions stop decrypting;
//!   destroyed versions lose their key but keep their name.
//! - Cleanup erases every key but no name: afterwards every fallible method
//!   returns [`KeystoreError::CleanedUp`], while [`KeyStore::active_version`]
//!   and [`KeyStore::versions`] answer as just before, so they agree.

mod error;
mod ring;
mod spec;
mod stats;
mod store;
mod version;

pub use crate::error::{KeystoreError, VersionList};
pub use crate::ring::{Timeline, trial_order};
pub use crate::spec::{
    KeyKind, KeyMaterial, Options, Snapshot, VersionInfo, VersionSpec, VersionState,
};
pub use crate::stats::Statistics;
pub use crate::store::{DecryptOptions, KeyStore, RotatedToken};
pub use crate::version::{InvalidVersionName, MAX_VERSION_LEN, Version};
/// Re-exported: passwords are [`secrecy::SecretString`]s.
pub use secrecy;
