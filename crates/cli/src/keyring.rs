//! Finding and loading the keyring, and explaining what went wrong.

use std::sync::Arc;

use anyhow::{Result, bail};
use secrets_manager::keystore::KeyKind;
use secrets_manager::persist::{KeyringStore, Prefixes, Source};
use secrets_manager::{SecretsConfig, SecretsManager};

use crate::args::Cli;
use crate::warn;

/// The keyring's address: --keyring, else --from-env, else --env-file.
pub(crate) fn keyring_url(cli: &Cli) -> String {
    match (&cli.keyring, cli.from_env) {
        (Some(url), _) => url.clone(),
        (None, true) => "env:".to_owned(),
        (None, false) => format!("file:{}", cli.env_file.display()),
    }
}

pub(crate) fn keyring_store(cli: &Cli) -> Result<Arc<dyn KeyringStore>> {
    cli.store.open(&keyring_url(cli))
}

/// A missing keyring file is the usual first stumble: say where it was
/// looked for and how to make one.
pub(crate) fn require_file(path: &std::path::Path) -> Result<()> {
    if std::fs::symlink_metadata(path).is_err() {
        let shown = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        bail!(
            "no keyring at {} (looked for {}): create one with `secrets-manager init`, or name yours with --keyring or --env-file",
            path.display(),
            shown.display()
        );
    }
    Ok(())
}

/// The `--audit-log` sink as a callback, if asked for.
pub(crate) fn audit_callback(
    cli: &Cli,
    keyring: &str,
) -> Result<Option<impl Fn(&secrets_manager::AuditEvent) + Send + Sync + 'static>> {
    let Some(path) = &cli.audit_log else {
        return Ok(None);
    };
    let log = if path.as_os_str() == "-" {
        secrets_manager::AuditLog::stderr(keyring)
    } else {
        secrets_manager::AuditLog::open(path, keyring)?
    };
    Ok(Some(log.callback()))
}

pub(crate) fn load(cli: &Cli) -> Result<SecretsManager> {
    let store = keyring_store(cli)?;
    if let Source::File(path) = store.source() {
        require_file(&path)?;
    }
    let mut builder = SecretsConfig::builder()
        .kdf_iterations(cli.iterations)
        .warning_callback(|w| warn(w));
    if let Some(callback) = audit_callback(cli, &store.source().to_string())? {
        builder = builder.audit_callback(callback);
    }
    let builder = builder.keyring_store(Arc::clone(&store), &Prefixes::default())?;
    if let Source::File(path) = store.source() {
        warn_if_readable(&path);
    }
    Ok(SecretsManager::new(builder.build()?)?)
}

/// A decryption failure, with a hint where a common cause fits: when no
/// version opened a token and no version records its iteration count, a
/// wrong `--iterations` derives wrong keys for all of them.
pub(crate) fn explain(manager: &SecretsManager, e: secrets_manager::Error) -> anyhow::Error {
    use secrets_manager::keystore::KeystoreError;
    let all_failed = matches!(
        e,
        secrets_manager::Error::Keystore(KeystoreError::DecryptionFailed { .. })
    );
    let unrecorded = manager.version_info().is_ok_and(|infos| {
        infos
            .iter()
            .any(|i| i.kind == Some(KeyKind::Password) && !i.iterations_recorded)
    });
    if all_failed && unrecorded {
        anyhow::Error::new(e).context(
            "no version opened the token; versions without a recorded iteration count are read with --iterations, and a wrong count is a common cause",
        )
    } else {
        e.into()
    }
}

/// The manager's keyring, for confirmations.
pub(crate) fn keyring_name(manager: &SecretsManager) -> String {
    manager
        .keyring()
        .map_or_else(|| "the keyring".to_owned(), |s| s.to_string())
}

/// Warns, as ssh does for keys, when others may read the keyring.
pub(crate) fn warn_if_readable(path: &std::path::Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                warn(format_args!(
                    "{} is readable by {} (mode {mode:04o}); its keys should be private: chmod 600 {}",
                    path.display(),
                    if mode & 0o007 != 0 {
                        "others"
                    } else {
                        "its group"
                    },
                    path.display()
                ));
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}
