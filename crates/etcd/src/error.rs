//! Errors in setting up a store. What goes wrong once it runs (an
//! unreachable cluster, a malformed record, a key-encryption key this
//! process lacks) is a [`PersistError`](secrets_manager_persist::PersistError),
//! like every store's. No message contains a key, password or salt.

use std::path::PathBuf;

/// An address, a setting or a file the store needs that is wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EtcdError {
    /// A keyring address that is not `etcd://HOST:PORT[,HOST:PORT...]/PREFIX`.
    #[error("keyring address {address:?}: {reason}")]
    Address {
        /// The address.
        address: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A setting (a flag or an environment variable) with a bad value.
    #[error("{setting}: {reason}")]
    Setting {
        /// The setting, as the user wrote it (`$SECRETS_MANAGER_KEK`,
        /// `--timeout`).
        setting: String,
        /// What is wrong (never the value, which may be a secret).
        reason: String,
    },
    /// A file the store needs (a key-encryption key, a certificate, a
    /// password) cannot be read.
    #[error("{what} {path}: cannot read it: {source}")]
    File {
        /// What the file was to hold.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The runtime that drives the etcd client cannot be started.
    #[error("cannot start the etcd client's runtime: {0}")]
    Runtime(std::io::Error),
}
