//! `secrets-manager`: keep a keyring in a `.env` file, encrypt and decrypt
//! with it, rotate its keys.
//!
//! Exit status: 0 on success, 1 when the operation failed (bad token, bad
//! file), 2 for usage errors. A failure prints one `error: ...` line on
//! stderr and nothing on stdout.

mod args;
mod crypt;
mod db;
mod keyring;
mod manage;
mod report;

use std::io::{Read as _, Write as _};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Parser as _;
use secrets_manager::fernet::Key;

use crate::args::{Cli, Command};
use crate::keyring::{explain, keyring_name, load};

/// Warnings, printed once the command has succeeded: a failure prints one
/// `error:` line and nothing else.
static WARNINGS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

pub(crate) fn warn(message: impl std::fmt::Display) {
    WARNINGS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(format!("warning: {message}"));
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = Vec::new();
    match run(&cli, &mut out) {
        Ok(()) => {
            for w in WARNINGS
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .drain(..)
            {
                eprintln!("{w}");
            }
            let mut stdout = std::io::stdout().lock();
            if let Err(e) = stdout.write_all(&out).and_then(|()| stdout.flush()) {
                eprintln!("error: cannot write to stdout: {e}");
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, skipping a cause the message
/// before it already quotes.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace(['\n', '\r'], " ")
}

/// Runs a command. Output goes to `out` (printed only on success), except
/// `rewrap`, which streams through a spool file.
fn run(cli: &Cli, out: &mut Vec<u8>) -> Result<()> {
    match &cli.command {
        Command::Init { version_name } => manage::init(cli, version_name),
        Command::Encrypt => {
            let manager = load(cli)?;
            let plaintext = read_stdin()?;
            let (_, token) = manager.encrypt(&plaintext)?;
            out.extend_from_slice(token.as_bytes());
            out.push(b'\n');
            Ok(())
        }
        Command::Decrypt { ttl, hint } => {
            let manager = load(cli)?;
            let input = read_stdin()?;
            let token = input.trim_ascii();
            let (_, plaintext) = match (ttl, hint) {
                (Some(secs), _) => manager.decrypt_with_ttl(token, Duration::from_secs(*secs)),
                (None, Some(h)) => manager.decrypt_with_hint(token, h),
                (None, None) => manager.decrypt(token),
            }
            .map_err(|e| explain(&manager, e))?;
            out.extend_from_slice(&plaintext);
            Ok(())
        }
        Command::Rotate {
            new_version,
            no_activate,
            password_stdin,
            salt,
            allow_short_salt,
        } => manage::rotate(
            cli,
            new_version,
            !*no_activate,
            *password_stdin,
            salt.as_deref().map(|s| (s, *allow_short_salt)),
        ),
        Command::Activate { version } => {
            let manager = load(cli)?;
            manager.activate_version(version)?;
            eprintln!(
                "{} is now the active version in {}",
                version.to_ascii_lowercase(),
                keyring_name(&manager)
            );
            Ok(())
        }
        Command::Retire { version } => {
            let manager = load(cli)?;
            manager.retire_version(version)?;
            eprintln!(
                "retired {} in {}",
                version.to_ascii_lowercase(),
                keyring_name(&manager)
            );
            Ok(())
        }
        Command::Destroy { version, yes } => {
            if !*yes {
                use clap::CommandFactory as _;
                Cli::command()
                    .error(
                        clap::error::ErrorKind::MissingRequiredArgument,
                        format!("destroy erases the key of {version} for good; confirm with --yes"),
                    )
                    .exit();
            }
            let manager = load(cli)?;
            manager.destroy_version(version)?;
            eprintln!(
                "destroyed {}: its key is erased from {}",
                version.to_ascii_lowercase(),
                keyring_name(&manager)
            );
            Ok(())
        }
        Command::Rewrap => crypt::rewrap(cli),
        Command::Status => report::status(cli, out),
        Command::Verify { update_checksum } => report::verify(cli, *update_checksum, out),
        Command::Db(command) => db::run(cli, command, out),
        Command::Keygen => {
            out.extend_from_slice(Key::generate().to_base64().as_bytes());
            out.push(b'\n');
            Ok(())
        }
    }
}

pub(crate) fn read_stdin() -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    std::io::stdin()
        .read_to_end(&mut buf)
        .context("cannot read stdin")?;
    Ok(buf)
}
