//! Fleet stores on the command line: the options of an `etcd://` keyring
//! (key-encryption keys, plaintext, timeout, etcd authentication and TLS)
//! and the commands that move keyrings between stores.
//!
//! Every option also comes from the environment (the names in
//! `secrets_manager::etcd::env`); a flag wins over its variable.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use secrets_manager::SecretsManager;
use secrets_manager::etcd::{EtcdOptions, EtcdStore, Kek, env, parse_duration};
use secrets_manager::persist::KeyringStore;

/// Options of fleet keyrings (`etcd://`); ignored for files.
#[derive(Debug, clap::Args)]
pub(crate) struct StoreArgs {
    /// File holding the key-encryption key that wraps key material before it
    /// reaches a fleet store (`secrets-manager keygen` makes one). Without
    /// it: $SECRETS_MANAGER_KEK_FILE, or the key itself in
    /// $SECRETS_MANAGER_KEK.
    #[arg(long, global = true, value_name = "PATH")]
    kek_file: Option<PathBuf>,
    /// An earlier key-encryption key, still accepted for reading while a
    /// fleet switches keys (repeatable; also $SECRETS_MANAGER_KEK_PREVIOUS,
    /// keys separated by commas).
    #[arg(long, global = true, value_name = "PATH")]
    previous_kek_file: Vec<PathBuf>,
    /// Write key material to a fleet store unwrapped when no key-encryption
    /// key is set: etcd, its snapshots and backups then hold passwords and
    /// keys in the clear ($SECRETS_MANAGER_ALLOW_PLAINTEXT_STORE=1).
    #[arg(long, global = true)]
    allow_plaintext_store: bool,
    /// How long to wait for a fleet store before failing: 5s, 500ms, 1m
    /// [default: 5s] ($SECRETS_MANAGER_TIMEOUT).
    #[arg(long, global = true, value_name = "DURATION", value_parser = duration)]
    timeout: Option<Duration>,
    /// etcd user name, with its password from --etcd-password-file,
    /// $SECRETS_MANAGER_ETCD_PASSWORD_FILE or $SECRETS_MANAGER_ETCD_PASSWORD
    /// ($SECRETS_MANAGER_ETCD_USER).
    #[arg(long, global = true, value_name = "NAME")]
    etcd_user: Option<String>,
    /// File whose first line is the etcd user's password.
    #[arg(long, global = true, value_name = "PATH")]
    etcd_password_file: Option<PathBuf>,
    /// CA certificate (PEM) of the etcd cluster: connect with TLS
    /// ($SECRETS_MANAGER_ETCD_CACERT).
    #[arg(long, global = true, value_name = "PATH")]
    etcd_cacert: Option<PathBuf>,
    /// Client certificate (PEM) for etcd, with --etcd-key
    /// ($SECRETS_MANAGER_ETCD_CERT).
    #[arg(long, global = true, value_name = "PATH")]
    etcd_cert: Option<PathBuf>,
    /// Private key (PEM) of the client certificate
    /// ($SECRETS_MANAGER_ETCD_KEY).
    #[arg(long, global = true, value_name = "PATH")]
    etcd_key: Option<PathBuf>,
    /// Name to check the cluster's certificates against, when it is not the
    /// endpoints' host ($SECRETS_MANAGER_ETCD_TLS_DOMAIN).
    #[arg(long, global = true, value_name = "NAME")]
    etcd_tls_domain: Option<String>,
}

fn duration(text: &str) -> Result<Duration, String> {
    parse_duration(text)
}

/// Commands on stores.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum FleetCommand {
    /// Copy every version, with its state and the active version, from the
    /// keyring (--keyring) into another one: a file into etcd, etcd into a
    /// file. Idempotent; a version the target holds with other key
    /// material is a conflict, and nothing is written.
    Copy {
        /// The keyring to copy into: a path or file:PATH, or
        /// etcd://HOST:PORT[,HOST:PORT...]/PREFIX.
        #[arg(long, value_name = "URL")]
        to: String,
    },
    /// Wrap every version's key material in an etcd keyring again, under a
    /// new key-encryption key, and record it as the key new material is
    /// wrapped under. Run it with the current key (--kek-file); processes
    /// holding both keys keep reading throughout.
    RotateKek {
        /// File holding the new key-encryption key.
        #[arg(long, value_name = "PATH")]
        new_kek_file: PathBuf,
    },
}

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
