//! The fleet keyring on etcd, for secrets-manager: every process of a fleet
//! reads, rotates and follows one keyring kept in an etcd cluster.
//!
//! [`EtcdStore`] is a [`KeyringStore`](secrets_manager_persist::KeyringStore),
//! like the `.env` file store, with the same invariant: a version, once
//! written, is immutable; a write may only add versions, advance their
//! lifecycle and move the active pointer. Applications reach it through the
//! facade (`secrets_manager::open_keyring("etcd://...")` or
//! `SecretsConfigBuilder::keyring`, with the `etcd` feature), the command
//! line through `--keyring etcd://HOST:PORT[,HOST:PORT...]/PREFIX`.
//!
//! ```no_run
//! use secrets_manager_etcd::{EtcdOptions, EtcdStore, Kek};
//! use secrets_manager_persist::{KeyringStore, StoredKey, StoredVersion};
//!
//! let kek = Kek::from_base64(&std::env::var("SECRETS_MANAGER_KEK")?)?;
//! let store = EtcdStore::open("etcd://127.0.0.1:2379/myapp", EtcdOptions::new().kek(kek))?;
//! store.update(&mut |keyring| {
//!     let key = StoredKey::Fernet("cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=".into());
//!     keyring.add(StoredVersion::new("v1", key))?;
//!     keyring.set_active("v1")
//! })?;
//! assert_eq!(store.read()?.active(), Some("v1"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Invariants
//! - **Versions are created once.** `PREFIX/versions/<name>` is written by
//!   a transaction that requires the key not to exist
//!   (`create_revision == 0`) and is never changed or deleted: of N writers
//!   racing to add one name, exactly one wins.
//! - **Writes are compare-and-swap on what was read.** Every transaction
//!   requires that nothing under the prefix changed since the revision the
//!   edit was made on, and that each lifecycle, active and KEK key it
//!   changes still has the revision read. A lost compare re-reads and
//!   re-runs the edit (`FnMut`), so concurrent writers lose nothing and a
//!   conflicting one sees the other's version (the facade reports
//!   `Error::Conflict`).
//! - **No secret in the clear.** Passwords, salts, salt hashes and Fernet
//!   keys are wrapped in a Fernet token under a key-encryption key
//!   ([`Kek`]) before they reach etcd, with the KEK's id beside them and
//!   the version's name and iteration count inside them; writing them
//!   unwrapped needs
//!   [`EtcdOptions::allow_plaintext`]. A KEK can be replaced
//!   ([`EtcdStore::rotate_kek`]) while readers hold both.
//! - **Synchronous and runtime-agnostic.** The store owns a tokio runtime
//!   with a thread of its own; callers wait on a channel, so calling it
//!   from inside another runtime cannot panic. Every call gives up after
//!   the timeout (default 5 s) with an error naming the store.
//! - **Watching resumes.** [`KeyringStore::watch`](secrets_manager_persist::KeyringStore::watch)
//!   follows the prefix with etcd's watch API from the revision after the
//!   last event seen, across member failures and cluster restarts.
//! - No error message contains a key, password, salt or the etcd password.

mod address;
mod conn;
mod error;
mod kek;
mod layout;
mod options;
mod store;
mod watch;

pub use crate::address::Address;
pub use crate::error::EtcdError;
pub use crate::kek::Kek;
pub use crate::options::{DEFAULT_TIMEOUT, EtcdOptions, env, parse_duration, read_password};
pub use crate::store::{EtcdStore, KekRotation, KekStatus};
