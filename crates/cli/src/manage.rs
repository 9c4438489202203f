//! Commands that change the keyring: init and rotate.

use std::io::{BufRead as _, BufReader};

use anyhow::{Context as _, Result, bail};
use secrets_manager::fernet::{Key, unix_time};
use secrets_manager::{Salt, SecretsConfig, SecretsManager};

use crate::args::Cli;
use crate::keyring::{keyring_name, keyring_store, load};
use crate::warn;

/// 32 random bytes as URL-safe base64: a generated password.
pub(crate) fn random_password() -> String {
    Key::generate().to_base64().to_string()
}

pub(crate) fn init(cli: &Cli, version: &str) -> Result<()> {
    let store = keyring_store(cli)?;
    let config = SecretsConfig::builder()
        .key(version, random_password(), Salt::generate())
        .activated_at(version, unix_time())
        .kdf_iterations(cli.iterations)
        .build()?;
    let manager = SecretsManager::new(config)?;
    // Refused, under the store's lock, if it already holds keys.
    manager.create_keyring(store.as_ref())?;
    eprintln!(
        "created {} with version {} (active)",
        store.source(),
        manager.active_version()
    );
    Ok(())
}

/// The shortest salt accepted without `--allow-short-salt`.
pub(crate) const MIN_SALT_LEN: usize = 8;

/// Reads `--salt` as the Python package does, refusing short salts and
/// saying on stderr when the text was not read as base64.
pub(crate) fn parse_salt(text: &str, allow_short: bool) -> Result<Salt> {
    let salt = Salt::from(text);
    let form = if salt.as_bytes() == text.as_bytes() {
        Some("UTF-8 text")
    } else if text.len().is_multiple_of(2) && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        Some("hexadecimal")
    } else {
        None
    };
    if salt.len() < MIN_SALT_LEN && !allow_short {
        bail!(
            "--salt: {} bytes once read{}; a salt needs at least {MIN_SALT_LEN} (or pass --allow-short-salt)",
            salt.len(),
            form.map(|f| format!(" as {f}")).unwrap_or_default()
        );
    }
    if let Some(form) = form {
        warn(format_args!(
            "--salt was read as {form} ({} bytes), not as base64; the Python package reads it the same way",
            salt.len()
        ));
    }
    Ok(salt)
}

pub(crate) fn rotate(
    cli: &Cli,
    version: &str,
    activate: bool,
    password_stdin: bool,
    salt: Option<(&str, bool)>,
) -> Result<()> {
    let salt = salt
        .map(|(text, allow_short)| parse_salt(text, allow_short))
        .transpose()?;
    let password = if password_stdin {
        let mut line = String::new();
        BufReader::new(std::io::stdin())
            .read_line(&mut line)
            .context("cannot read the password from stdin")?;
        let line = line.trim_end_matches(['\n', '\r']).to_owned();
        if line.is_empty() {
            bail!("--password-stdin: the first line of stdin is empty");
        }
        line
    } else {
        random_password()
    };
    let manager = load(cli)?;
    let mut rotation = manager
        .rotate_to_new_version(version, password)
        .activate(activate);
    if let Some(salt) = salt {
        rotation = rotation.salt(salt);
    }
    let version = rotation.apply()?;
    if activate {
        eprintln!("rotated to {version}; {} updated", keyring_name(&manager));
    } else {
        eprintln!(
            "added {version} (not active; `activate {version}` switches to it); {} updated",
            keyring_name(&manager)
        );
    }
    Ok(())
}
