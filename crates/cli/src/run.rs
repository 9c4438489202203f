//! `run -f FILE... -- PROGRAM ARGS...`: a program with the files' values,
//! decrypted, in its environment.
//!
//! The environment is python-dotenv's documented merge,
//! `{**dotenv_values(a), **dotenv_values(b), **os.environ}` (with
//! `--override`, the environment first and the files over it): each file
//! read and `${NAME}`-expanded on its own, a later file over an earlier
//! one. Then the winning file values that are tokens are decrypted, and
//! the keyring's own variables are removed, whichever side they came from.
//! Decrypted values stay in memory (zeroizing buffers) until the process
//! image is replaced; nothing is written to disk.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context as _, Result, bail};
use secrets_manager::etcd::env;
use secrets_manager::persist::{self, Prefixes};
use secrets_manager::zeroize::Zeroizing;

use crate::appenv::{is_keyring_name, is_token, load_for};
use crate::args::Cli;
use crate::keyring::explain;

/// The keyring stores' secrets given in the environment: the current and
/// previous key-encryption keys and the etcd password, each as secret as
/// the keyring.
const STORE_SECRETS: [&str; 3] = [env::KEK, env::KEK_PREVIOUS, env::PASSWORD];

/// Whether the program must not see a variable: the keyring's own
/// (`ENCRYPTION_*`, the active-version variable) and the stores' secrets.
fn withheld(name: &OsStr) -> bool {
    name.to_str().is_some_and(|n| {
        n.to_ascii_uppercase().starts_with("ENCRYPTION_")
            || is_keyring_name(n)
            || STORE_SECRETS.contains(&n)
    })
}

/// The program could not be started: 127 when it was not found, 126
/// otherwise, as shells and `env` say.
#[derive(Debug)]
pub(crate) struct CannotRun {
    program: String,
    source: std::io::Error,
}

impl std::error::Error for CannotRun {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl std::fmt::Display for CannotRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot run {}: {}", self.program, self.source)
    }
}

impl CannotRun {
    pub(crate) fn exit_code(&self) -> ExitCode {
        if self.source.kind() == std::io::ErrorKind::NotFound {
            ExitCode::from(127)
        } else {
            ExitCode::from(126)
        }
    }
}

/// One variable for the program, from a file.
struct Value<'a> {
    name: String,
    text: Zeroizing<String>,
    file: &'a Path,
}

pub(crate) fn run(
    cli: &Cli,
    files: &[PathBuf],
    override_env: bool,
    command: &[OsString],
) -> Result<()> {
    let Some((program, args)) = command.split_first() else {
        bail!("run needs a program to run");
    };
    let shown = program.to_string_lossy();
    let prefixes = Prefixes::default();
    // A later file's value replaces an earlier one's, in place.
    let mut merged: Vec<Value<'_>> = Vec::new();
    for file in files {
        for var in persist::read_variables(file, &prefixes)? {
            let Some(text) = var.value else { continue };
            if var.keyring || withheld(OsStr::new(&var.name)) {
                continue;
            }
            match merged.iter_mut().find(|v| v.name == var.name) {
                Some(slot) => {
                    slot.text = text;
                    slot.file = file;
                }
                None => merged.push(Value {
                    name: var.name,
                    text,
                    file,
                }),
            }
        }
    }
    if !override_env {
        merged.retain(|v| std::env::var_os(&v.name).is_none());
    }
    let manager = if merged.iter().any(|v| is_token(&v.text)) {
        Some(load_for(cli, files)?)
    } else {
        None
    };
    let mut values: Vec<(String, Zeroizing<Vec<u8>>)> = Vec::with_capacity(merged.len());
    for v in merged {
        let bytes = match &manager {
            Some(m) if is_token(&v.text) => {
                m.decrypt(v.text.trim_ascii())
                    .map_err(|e| explain(m, e))
                    .with_context(|| {
                        format!(
                            "{}: {}: cannot decrypt; {shown} was not started",
                            v.file.display(),
                            v.name
                        )
                    })?
                    .1
            }
            _ => Zeroizing::new(v.text.as_bytes().to_vec()),
        };
        if bytes.contains(&0) {
            bail!(
                "{}: {}: the value holds a NUL byte, which no environment variable can; {shown} was not started",
                v.file.display(),
                v.name
            );
        }
        values.push((v.name, bytes));
    }
    drop(manager);

    let mut cmd = Command::new(program);
    cmd.args(args);
    for (name, _) in std::env::vars_os() {
        if withheld(&name) {
            cmd.env_remove(name);
        }
    }
    for (name, bytes) in &values {
        cmd.env(name, env_value(name, bytes)?);
    }
    crate::flush_warnings();
    exec(cmd, &shown)
}

#[cfg(unix)]
fn env_value<'a>(_name: &str, bytes: &'a [u8]) -> Result<&'a OsStr> {
    Ok(std::os::unix::ffi::OsStrExt::from_bytes(bytes))
}

#[cfg(not(unix))]
fn env_value<'a>(name: &str, bytes: &'a [u8]) -> Result<&'a OsStr> {
    std::str::from_utf8(bytes)
        .map(OsStr::new)
        .map_err(|_| anyhow::anyhow!("{name}: the value is not UTF-8 text"))
}

/// Replaces this process with the program: its exit status and signals
/// are its own.
#[cfg(unix)]
fn exec(mut cmd: Command, program: &str) -> Result<()> {
    let source = std::os::unix::process::CommandExt::exec(&mut cmd);
    Err(CannotRun {
        program: program.to_owned(),
        source,
    }
    .into())
}

/// Runs the program and exits with its status.
#[cfg(not(unix))]
fn exec(mut cmd: Command, program: &str) -> Result<()> {
    let status = cmd.status().map_err(|source| CannotRun {
        program: program.to_owned(),
        source,
    })?;
    std::process::exit(status.code().unwrap_or(1));
}
