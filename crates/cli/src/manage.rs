//! Commands that change the keyring: init and rotate.

use std::io::{BufRead as _, BufReader, IsTerminal as _, Read};

use anyhow::{Context as _, Result, bail};
use secrets_manager::fernet::{Key, unix_time};
use secrets_manager::secrecy::SecretString;
use secrets_manager::zeroize::Zeroizing;
use secrets_manager::{Salt, SecretsConfig, SecretsManager};

use crate::args::{Cli, PasswordArgs};
use crate::keyring::{audit_callback, keyring_name, keyring_store, load};
use crate::{say, warn};

/// 32 random bytes as URL-safe base64: a generated password.
pub(crate) fn random_password() -> SecretString {
    Key::generate().to_base64().as_str().into()
}

/// The first line of `reader`, without its line end; an empty one is
/// refused, naming `source`.
fn first_line(reader: impl Read, source: &str) -> Result<SecretString> {
    let mut line = Zeroizing::new(String::new());
    BufReader::new(reader)
        .read_line(&mut line)
        .with_context(|| format!("cannot read the password from {source}"))?;
    let password = line.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        bail!("the password from {source} is empty");
    }
    Ok(password.into())
}

/// The password the options ask for, or a random one. At a terminal,
/// `--password-stdin` asks twice without echo.
fn password(args: &PasswordArgs) -> Result<SecretString> {
    if args.password_stdin {
        if std::io::stdin().is_terminal() {
            let first = Zeroizing::new(
                rpassword::prompt_password("Password for the new version: ")
                    .context("cannot read the password from the terminal")?,
            );
            if first.is_empty() {
                bail!("the password is empty");
            }
            let again = Zeroizing::new(
                rpassword::prompt_password("The same password again: ")
                    .context("cannot read the password from the terminal")?,
            );
            if *first != *again {
                bail!("the two passwords differ; nothing was changed");
            }
            return Ok(first.as_str().into());
        }
        return first_line(std::io::stdin(), "stdin");
    }
    if let Some(path) = &args.password_file {
        let file = std::fs::File::open(path)
            .with_context(|| format!("cannot open the password file {}", path.display()))?;
        return first_line(file, &path.display().to_string());
    }
    if let Some(fd) = args.password_fd {
        // The descriptor is opened anew through the file system, which
        // needs no unsafe code and leaves the inherited one alone.
        let path = format!("/dev/fd/{fd}");
        let file = std::fs::File::open(&path)
            .with_context(|| format!("cannot read file descriptor {fd}"))?;
        return first_line(file, &format!("file descriptor {fd}"));
    }
    Ok(random_password())
}

pub(crate) fn init(cli: &Cli, version: &str, password_args: &PasswordArgs) -> Result<()> {
    let store = keyring_store(cli)?;
    let mut builder = SecretsConfig::builder()
        .key(version, password(password_args)?, Salt::generate())
        .activated_at(version, unix_time())
        .kdf_iterations(cli.iterations);
    if let Some(callback) = audit_callback(cli, &store.source().to_string())? {
        builder = builder.audit_callback(callback);
    }
    let manager = SecretsManager::new(builder.build()?)?;
    // Refused, under the store's lock, if it already holds keys.
    manager.create_keyring(store.as_ref())?;
    say(
        cli,
        format_args!(
            "created {} with version {} (active)",
            store.source(),
            manager.active_version()
        ),
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

/// What `rotate` adds.
pub(crate) struct NewVersion<'a> {
    pub(crate) name: &'a str,
    pub(crate) activate: bool,
    pub(crate) activate_after: Option<std::time::Duration>,
    pub(crate) password: &'a PasswordArgs,
    pub(crate) fernet_key_stdin: bool,
    /// The salt text, and whether a short one is allowed.
    pub(crate) salt: Option<(&'a str, bool)>,
}

pub(crate) fn rotate(cli: &Cli, new: &NewVersion<'_>) -> Result<()> {
    let salt = new
        .salt
        .map(|(text, allow_short)| parse_salt(text, allow_short))
        .transpose()?;
    let manager = load(cli)?;
    let rotation = if new.fernet_key_stdin {
        let key = first_line(std::io::stdin(), "stdin")?;
        manager.rotate_to_fernet_key(
            new.name,
            secrets_manager::secrecy::ExposeSecret::expose_secret(&key).trim(),
        )?
    } else {
        let mut rotation = manager.rotate_to_new_version(new.name, password(new.password)?);
        if let Some(salt) = salt {
            rotation = rotation.salt(salt);
        }
        rotation
    };
    let rotation = match new.activate_after {
        Some(delay) => rotation.activate_after(delay),
        None => rotation.activate(new.activate),
    };
    let version = rotation.apply()?;
    if let Some(delay) = new.activate_after {
        say(
            cli,
            format_args!(
                "added {version}; it becomes the active version in {}s, in every process that has read {} by then",
                delay.as_secs(),
                keyring_name(&manager)
            ),
        );
    } else if new.activate {
        say(
            cli,
            format_args!("rotated to {version}; {} updated", keyring_name(&manager)),
        );
    } else {
        say(
            cli,
            format_args!(
                "added {version} (not active; `activate {version}` switches to it); {} updated",
                keyring_name(&manager)
            ),
        );
    }
    Ok(())
}
