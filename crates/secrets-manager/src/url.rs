//! Keyring addresses: `PATH`, `file:PATH`, `env:`, `etcd://...`.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::persist::{EnvStore, FileStore, KeyringStore, Prefixes};

/// Opens the keyring store an address names, with the default variable
/// names: `PATH` or `file:PATH` (a `.env` file), `env:` (the process
/// environment, read-only), `etcd://HOST:PORT[,HOST:PORT...]/PREFIX` (with
/// the `etcd` feature; its key-encryption key, timeout, authentication and
/// TLS come from the environment, see `secrets_manager::etcd::env`). See
/// [`SecretsConfigBuilder::keyring`](crate::SecretsConfigBuilder::keyring).
///
/// ```
/// let store = secrets_manager::open_keyring("file:.env.secrets")?;
/// assert_eq!(store.source().to_string(), ".env.secrets");
/// # Ok::<(), secrets_manager::Error>(())
/// ```
///
/// # Errors
///
/// An address of an unknown kind, or of a kind this build lacks.
pub fn open_keyring(url: &str) -> Result<Arc<dyn KeyringStore>> {
    open(url, &Prefixes::default())
}

pub(crate) fn open(url: &str, prefixes: &Prefixes) -> Result<Arc<dyn KeyringStore>> {
    let unsupported = |reason: &str| Error::KeyringUrl {
        url: shown(url),
        reason: reason.to_owned(),
    };
    if let Some(rest) = url.strip_prefix("env:") {
        if !rest.is_empty() {
            return Err(unsupported("`env:` takes nothing after the colon"));
        }
        return Ok(Arc::new(EnvStore::new(prefixes)));
    }
    if let Some(path) = url.strip_prefix("file:") {
        let path = path.strip_prefix("//").unwrap_or(path);
        if path.is_empty() {
            return Err(unsupported("`file:` needs a path"));
        }
        return Ok(Arc::new(FileStore::with_prefixes(path, prefixes)));
    }
    if url.starts_with("etcd://") {
        return etcd(url, prefixes);
    }
    if let Some((scheme, _)) = url.split_once("://") {
        return Err(unsupported(&format!(
            "unknown kind of keyring `{scheme}://` (use a path, file:PATH, env: or etcd://HOST:PORT/PREFIX)"
        )));
    }
    if url.is_empty() {
        return Err(unsupported("empty address"));
    }
    Ok(Arc::new(FileStore::with_prefixes(url, prefixes)))
}

/// An address as an error may show it: a `scheme://` address by its
/// scheme alone, since what follows may hold a user name and password.
fn shown(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, _)) => format!("{scheme}://..."),
        None => url.to_owned(),
    }
}

/// An etcd keyring, with its settings (key-encryption key, timeout,
/// authentication, TLS) from the environment; variable names do not apply.
#[cfg(feature = "etcd")]
fn etcd(url: &str, _prefixes: &Prefixes) -> Result<Arc<dyn KeyringStore>> {
    use secrets_manager_etcd::{Address, EtcdError, EtcdStore};
    EtcdStore::open_from_env(url)
        .map(|store| Arc::new(store) as Arc<dyn KeyringStore>)
        .map_err(|e| Error::KeyringUrl {
            url: Address::redacted(url),
            reason: match e {
                EtcdError::Address { reason, .. } => reason,
                other => other.to_string(),
            },
        })
}

#[cfg(not(feature = "etcd"))]
fn etcd(url: &str, _prefixes: &Prefixes) -> Result<Arc<dyn KeyringStore>> {
    Err(Error::KeyringUrl {
        url: shown(url),
        reason: "this build has no etcd support (the secrets-manager crate's `etcd` feature)"
            .to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_name_their_stores() {
        let p = Prefixes::default();
        let shown = |url: &str| open(url, &p).map(|s| s.source().to_string());
        assert_eq!(shown(".env.secrets").unwrap(), ".env.secrets");
        assert_eq!(shown("file:/etc/app/.env").unwrap(), "/etc/app/.env");
        assert_eq!(shown("file:///etc/app/.env").unwrap(), "/etc/app/.env");
        assert_eq!(shown("env:").unwrap(), "the process environment");
        for bad in ["", "env:x", "file:", "vault://x/y", "etcd://h/x"] {
            let e = shown(bad).unwrap_err().to_string();
            assert!(e.contains("keyring address"), "{bad}: {e}");
        }
        // An unknown kind's address may carry credentials: never shown.
        let e = shown("vault://me:hunter2@h/x").unwrap_err().to_string();
        assert!(!e.contains("hunter2") && e.contains("vault://"), "{e}");
    }

    #[cfg(feature = "etcd")]
    #[test]
    fn etcd_addresses_open_without_connecting_and_hide_credentials() {
        let p = Prefixes::default();
        let store = open("etcd://127.0.0.1:2379,127.0.0.2:2379/app/", &p).unwrap();
        assert_eq!(
            store.source().to_string(),
            "etcd://127.0.0.1:2379,127.0.0.2:2379/app"
        );
        let e = open("etcd://me:hunter2@h:1/x", &p).unwrap_err().to_string();
        assert!(!e.contains("hunter2") && e.contains("credentials"), "{e}");
    }
}
