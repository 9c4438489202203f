//! `secrets-manager`: keep a keyring in a `.env` file, encrypt and decrypt
//! with it, rotate its keys.
//!
//! Exit status: 0 on success, 1 when the operation failed (bad token, bad
//! file), 2 for usage errors. A failure prints one `error: ...` line on
//! stderr and nothing on stdout.

mod appenv;
mod args;
mod crypt;
mod db;
mod fleet;
mod keyring;
mod manage;
mod report;
mod run;

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::Parser as _;
use secrets_manager::fernet::Key;
use secrets_manager::zeroize::Zeroizing;

use crate::args::{Cli, Command};
use crate::keyring::{keyring_name, load};

/// Warnings, printed once the command has succeeded: a failure prints one
/// `error:` line and nothing else.
static WARNINGS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

pub(crate) fn warn(message: impl std::fmt::Display) {
    WARNINGS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(format!("warning: {message}"));
}

/// What a successful command prints on stdout (secrets included, so it is
/// zeroized once written).
pub(crate) type Output = Zeroizing<Vec<u8>>;

/// A confirmation on stderr, unless `--quiet`.
pub(crate) fn say(cli: &Cli, message: impl std::fmt::Display) {
    if !cli.quiet {
        eprintln!("{message}");
    }
}

/// Prints the warnings gathered so far.
pub(crate) fn flush_warnings() {
    for w in WARNINGS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .drain(..)
    {
        eprintln!("{w}");
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(out) => {
            flush_warnings();
            let mut stdout = std::io::stdout().lock();
            match stdout.write_all(&out).and_then(|()| stdout.flush()) {
                Ok(()) => ExitCode::SUCCESS,
                // A reader that went away (`| head -1`): end quietly, as
                // Unix filters do.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: cannot write to stdout: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) if broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            e.downcast_ref::<run::CannotRun>()
                .map_or(ExitCode::FAILURE, run::CannotRun::exit_code)
        }
    }
}

/// Whether the error is stdout's reader having gone away.
fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The error and its causes on one line, skipping a cause the message
/// before it already quotes.
pub(crate) fn one_line(e: &anyhow::Error) -> String {
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

/// Runs a command; what it returns is printed on stdout once it has
/// succeeded (`rewrap` streams instead).
fn run(cli: &Cli) -> Result<Output> {
    let none = || Ok(Output::default());
    match &cli.command {
        Command::Init {
            version_name,
            password,
        } => manage::init(cli, version_name, password).and_then(|()| none()),
        Command::Encrypt { in_place } if !in_place.files.is_empty() => {
            appenv::in_place(cli, appenv::Op::Encrypt, &in_place.files, &in_place.keys)
                .and_then(|()| none())
        }
        Command::Encrypt { .. } => crypt::encrypt(cli),
        Command::Decrypt {
            ttl,
            hint,
            in_place,
            ..
        } if !in_place.files.is_empty() => appenv::in_place(
            cli,
            appenv::Op::Decrypt {
                ttl: *ttl,
                hint: hint.as_deref(),
            },
            &in_place.files,
            &in_place.keys,
        )
        .and_then(|()| none()),
        Command::Decrypt {
            ttl, hint, force, ..
        } => crypt::decrypt(cli, *ttl, hint.as_deref(), *force),
        Command::Rotate {
            new_version,
            no_activate,
            activate_after,
            password,
            fernet_key_stdin,
            salt,
            allow_short_salt,
        } => manage::rotate(
            cli,
            &manage::NewVersion {
                name: new_version,
                activate: !*no_activate,
                activate_after: *activate_after,
                password,
                fernet_key_stdin: *fernet_key_stdin,
                salt: salt.as_deref().map(|s| (s, *allow_short_salt)),
            },
        )
        .and_then(|()| none()),
        Command::Activate { version } => {
            let manager = load(cli)?;
            manager.activate_version(version)?;
            say(
                cli,
                format_args!(
                    "{} is now the active version in {}",
                    version.to_lowercase(),
                    keyring_name(&manager)
                ),
            );
            none()
        }
        Command::Retire { version } => {
            let manager = load(cli)?;
            manager.retire_version(version)?;
            say(
                cli,
                format_args!(
                    "retired {} in {}",
                    version.to_lowercase(),
                    keyring_name(&manager)
                ),
            );
            none()
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
            say(
                cli,
                format_args!(
                    "destroyed {}: its key is erased from {}",
                    version.to_lowercase(),
                    keyring_name(&manager)
                ),
            );
            none()
        }
        Command::Rewrap { files, .. } if !files.is_empty() => {
            appenv::in_place(cli, appenv::Op::Rewrap, files, &[]).and_then(|()| none())
        }
        Command::Rewrap { keep_going, .. } => crypt::rewrap(cli, *keep_going).and_then(|()| none()),
        Command::Status { json } => report::status(cli, *json),
        Command::Verify {
            update_checksum,
            json,
        } => report::verify(cli, *update_checksum, *json),
        Command::Fleet(command) => {
            fleet::run(&cli.store, &keyring::keyring_url(cli), command, || {
                load(cli)
            })
            .and_then(|()| none())
        }
        Command::Db(command) => {
            let mut out = Output::default();
            db::run(cli, command, &mut out)?;
            Ok(out)
        }
        Command::Keygen => {
            let mut out = Output::new(Key::generate().to_base64().as_bytes().to_vec());
            out.push(b'\n');
            Ok(out)
        }
        Command::Completions { shell } => {
            use clap::CommandFactory as _;
            let mut out = Vec::new();
            let shell = match shell {
                args::Shell::Bash => clap_complete::Shell::Bash,
                args::Shell::Zsh => clap_complete::Shell::Zsh,
                args::Shell::Fish => clap_complete::Shell::Fish,
                args::Shell::Powershell => clap_complete::Shell::PowerShell,
            };
            clap_complete::generate(shell, &mut Cli::command(), "secrets-manager", &mut out);
            Ok(Output::new(out))
        }
        Command::Set {
            key,
            file,
            value_stdin,
            value_file,
        } => {
            let source = match (value_stdin, value_file) {
                (true, _) => appenv::ValueSource::Stdin,
                (false, Some(path)) => appenv::ValueSource::File(path),
                (false, None) if appenv::can_prompt() => appenv::ValueSource::Prompt,
                (false, None) => {
                    use clap::CommandFactory as _;
                    Cli::command()
                        .error(
                            clap::error::ErrorKind::MissingRequiredArgument,
                            "set needs the value: --value-stdin, --value-file PATH, or a terminal to type it at",
                        )
                        .exit();
                }
            };
            appenv::set(cli, key, file, &source).and_then(|()| none())
        }
        Command::Get { key, file } => {
            let mut out = Output::default();
            appenv::get(cli, key, file, &mut out)?;
            Ok(out)
        }
        Command::Run {
            files,
            override_env,
            command,
        } => run::run(cli, files, *override_env, command).and_then(|()| none()),
    }
}

/// All of stdin, in a zeroizing buffer: it may be plaintext.
pub(crate) fn read_stdin() -> Result<Zeroizing<Vec<u8>>> {
    appenv::read_secret(std::io::stdin().lock()).context("cannot read stdin")
}
