//! Fleet stores on the command line: the options of an `etcd://` keyring
//! (key-encryption keys, plaintext, timeout, etcd authentication and TLS)
//! and the commands that move keyrings between stores.
//!
//! Every option also comes from the environment (the names in
//! `secrets_manager::etcd::env`); a flag wins over its variable.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use secrets_manager::SecretsManager;
use secrets_manager::etcd::{EtcdOptions, EtcdStore, Kek, env};
use secrets_manager::persist::KeyringStore;

use crate::args::{FleetCommand, StoreArgs};

impl StoreArgs {
    /// The etcd options: these flags first, then the environment.
    fn etcd_options(&self) -> Result<EtcdOptions> {
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        let flags: Vec<(&str, Option<String>)> = vec![
            (env::KEK_FILE, path(&self.kek_file)),
            (
                env::ALLOW_PLAINTEXT,
                self.allow_plaintext_store.then(|| "1".to_owned()),
            ),
            (env::USER, self.etcd_user.clone()),
            (env::PASSWORD_FILE, path(&self.etcd_password_file)),
            (env::CACERT, path(&self.etcd_cacert)),
            (env::CERT, path(&self.etcd_cert)),
            (env::KEY, path(&self.etcd_key)),
            (env::TLS_DOMAIN, self.etcd_tls_domain.clone()),
        ];
        let mut options =
            EtcdOptions::from_lookup(|name| match flags.iter().find(|(flag, _)| *flag == name) {
                Some((_, Some(value))) => Some(value.clone()),
                _ => std::env::var(name).ok(),
            })?;
        for path in &self.previous_kek_file {
            options = options.previous_kek(Kek::from_file(path)?);
        }
        if let Some(timeout) = self.timeout {
            options = options.timeout(timeout);
        }
        Ok(options)
    }

    fn etcd(&self, url: &str) -> Result<EtcdStore> {
        Ok(EtcdStore::open(url, self.etcd_options()?)?)
    }

    /// The store at `url`, with these options for a fleet store.
    pub(crate) fn open(&self, url: &str) -> Result<Arc<dyn KeyringStore>> {
        if url.starts_with("etcd://") {
            return Ok(Arc::new(self.etcd(url)?));
        }
        Ok(secrets_manager::open_keyring(url)?)
    }
}

/// Runs a store command on the keyring at `url`; `load` opens it as a
/// manager.
pub(crate) fn run(
    args: &StoreArgs,
    url: &str,
    command: &FleetCommand,
    load: impl FnOnce() -> Result<SecretsManager>,
) -> Result<()> {
    match command {
        FleetCommand::Copy { to } => {
            let target = args.open(to)?;
            let manager = load()?;
            let source = manager
                .keyring()
                .map_or_else(|| url.to_owned(), |s| s.to_string());
            if manager.keyring() == Some(target.source()) {
                bail!("copy --to names the keyring it copies from ({source})");
            }
            manager
                .persist_to(target.as_ref())
                .with_context(|| format!("copying {source} into {}", target.source()))?;
            eprintln!(
                "{} holds every version of {source} ({} versions, {} active)",
                target.source(),
                manager.versions().len(),
                manager.active_version()
            );
            Ok(())
        }
        FleetCommand::RotateKek { new_kek_file } => {
            if !url.starts_with("etcd://") {
                bail!(
                    "rotate-kek re-wraps an etcd keyring's material; {url} is not one (--keyring etcd://...)"
                );
            }
            let store = args.etcd(url)?;
            let new = Kek::from_file(new_kek_file)?;
            let rotation = store.rotate_kek(&new)?;
            eprintln!(
                "{}: {} version(s) re-wrapped; new material is wrapped under key-encryption key {} \
                 (drop the old key once every process holds this one)",
                store.address(),
                rotation.rewrapped,
                rotation.kek
            );
            Ok(())
        }
    }
}
