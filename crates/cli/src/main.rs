//! `secrets-manager`: keep a keyring in a `.env` file, encrypt and decrypt
//! with it, rotate its keys.
//!
//! Exit status: 0 on success, 1 when the operation failed (bad token, bad
//! file), 2 for usage errors. A failure prints one `error: ...` line on
//! stderr and nothing on stdout.

use std::io::{BufRead as _, BufReader, Read as _, Seek as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};
use secrets_manager::fernet::{Key, unix_time};
use secrets_manager::keystore::{KeyKind, VersionState};
use secrets_manager::persist::{self, KeyringStore, Prefixes, Source, StoredKey};
use secrets_manager::{Salt, SecretsConfig, SecretsManager};

mod fleet;

/// Keep application secrets encrypted; rotate keys without downtime.
///
/// Keys live in a `.env` keyring file that the Python SecretsManager also
/// reads and writes. Tokens are Fernet tokens.
#[derive(Debug, Parser)]
#[command(name = "secrets-manager", version, about, long_about = None, args_override_self = true)]
struct Cli {
    /// Where the keyring lives: a path or `file:PATH`, `env:` (the process
    /// environment), or `etcd://HOST:PORT[,HOST:PORT...]/PREFIX`. Takes
    /// precedence over --env-file and --from-env.
    #[arg(
        long,
        global = true,
        env = "SECRETS_MANAGER_KEYRING",
        value_name = "URL"
    )]
    keyring: Option<String>,
    /// The keyring file (the same as --keyring file:PATH).
    #[arg(
        long,
        global = true,
        env = "SECRETS_MANAGER_ENV_FILE",
        default_value = ".env.secrets",
        value_name = "PATH"
    )]
    env_file: PathBuf,
    /// Read the keyring from the process environment (the same as
    /// --keyring env:).
    #[arg(long, global = true)]
    from_env: bool,
    /// PBKDF2 iterations for versions that do not record their own.
    #[arg(long, global = true, default_value_t = 100_000, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    iterations: u32,
    #[command(flatten)]
    store: fleet::StoreArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the keyring file with one version: a random password and salt.
    ///
    /// The file gets mode 0600. A file that already holds keys is refused.
    Init {
        /// The version's name.
        #[arg(long = "version", default_value = "v1", value_name = "V")]
        version_name: String,
    },
    /// Encrypt stdin (any bytes) under the active version: one token and a
    /// newline on stdout.
    Encrypt,
    /// Decrypt one token from stdin (surrounding whitespace ignored): the
    /// exact plaintext bytes on stdout.
    Decrypt {
        /// Refuse tokens older than this many seconds.
        #[arg(long, value_name = "SECS")]
        ttl: Option<u64>,
        /// Try this version first.
        #[arg(long, value_name = "V")]
        hint: Option<String>,
    },
    /// Add a version, make it active and write the file (existing versions
    /// are kept; a name the file already has is refused).
    Rotate {
        /// The new version's name.
        #[arg(long, value_name = "V")]
        new_version: String,
        /// Add the version without making it active (stage it; `activate`
        /// switches to it later).
        #[arg(long)]
        no_activate: bool,
        /// Read the password from the first line of stdin (default: random).
        #[arg(long)]
        password_stdin: bool,
        /// The salt, as the Python package reads strings: hex, URL-safe
        /// base64, or text (default: 16 random bytes).
        #[arg(long, value_name = "S")]
        salt: Option<String>,
    },
    /// Make an existing version the active one.
    Activate {
        /// The version.
        #[arg(value_name = "V")]
        version: String,
    },
    /// Stop a version from decrypting; its key stays in the file.
    Retire {
        /// The version.
        #[arg(value_name = "V")]
        version: String,
    },
    /// Erase a version's key from the file for good, leaving its name as a
    /// tombstone. Tokens made under it can never be decrypted again.
    Destroy {
        /// The version.
        #[arg(value_name = "V")]
        version: String,
        /// Confirm that the key is to be erased for good.
        #[arg(long)]
        yes: bool,
    },
    /// Re-encrypt tokens (one per line on stdin) under the active version,
    /// keeping their timestamps: the same number of lines on stdout.
    Rewrap,
    /// Show the versions, the active one, iterations and activation times.
    /// Never a secret.
    Status,
    /// Check the file's checksum and every salt hash.
    Verify,
    /// Print a random Fernet key.
    Keygen,
    #[command(flatten)]
    Fleet(fleet::FleetCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = Vec::new();
    match run(&cli, &mut out) {
        Ok(()) => {
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
        Command::Init { version_name } => init(cli, version_name),
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
                (Some(secs), _) => manager.decrypt_with_ttl(token, Duration::from_secs(*secs))?,
                (None, Some(h)) => manager.decrypt_with_hint(token, h)?,
                (None, None) => manager.decrypt(token)?,
            };
            out.extend_from_slice(&plaintext);
            Ok(())
        }
        Command::Rotate {
            new_version,
            no_activate,
            password_stdin,
            salt,
        } => rotate(
            cli,
            new_version,
            !*no_activate,
            *password_stdin,
            salt.as_deref(),
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
        Command::Rewrap => rewrap(cli),
        Command::Status => status(cli, out),
        Command::Verify => verify(cli, out),
        Command::Keygen => {
            out.extend_from_slice(Key::generate().to_base64().as_bytes());
            out.push(b'\n');
            Ok(())
        }
        Command::Fleet(command) => fleet::run(&cli.store, &keyring_url(cli), command, || load(cli)),
    }
}

fn read_stdin() -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    std::io::stdin()
        .read_to_end(&mut buf)
        .context("cannot read stdin")?;
    Ok(buf)
}

/// The keyring's address: --keyring, else --from-env, else --env-file.
fn keyring_url(cli: &Cli) -> String {
    match (&cli.keyring, cli.from_env) {
        (Some(url), _) => url.clone(),
        (None, true) => "env:".to_owned(),
        (None, false) => format!("file:{}", cli.env_file.display()),
    }
}

fn keyring_store(cli: &Cli) -> Result<Arc<dyn KeyringStore>> {
    cli.store.open(&keyring_url(cli))
}

fn load(cli: &Cli) -> Result<SecretsManager> {
    let store = keyring_store(cli)?;
    let builder = SecretsConfig::builder()
        .kdf_iterations(cli.iterations)
        .warning_callback(|w| eprintln!("warning: {w}"))
        .keyring_store(Arc::clone(&store), &Prefixes::default())?;
    if let Source::File(path) = store.source() {
        warn_if_readable(&path);
    }
    Ok(SecretsManager::new(builder.build()?)?)
}

/// The manager's keyring, for confirmations.
fn keyring_name(manager: &SecretsManager) -> String {
    manager
        .keyring()
        .map_or_else(|| "the keyring".to_owned(), |s| s.to_string())
}

/// Warns, as ssh does for keys, when others may read the keyring.
fn warn_if_readable(path: &std::path::Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                eprintln!(
                    "warning: {} is readable by {} (mode {mode:04o}); its keys should be private: chmod 600 {}",
                    path.display(),
                    if mode & 0o007 != 0 {
                        "others"
                    } else {
                        "its group"
                    },
                    path.display()
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// 32 random bytes as URL-safe base64: a generated password.
fn random_password() -> String {
    Key::generate().to_base64().to_string()
}

fn init(cli: &Cli, version: &str) -> Result<()> {
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

fn rotate(
    cli: &Cli,
    version: &str,
    activate: bool,
    password_stdin: bool,
    salt: Option<&str>,
) -> Result<()> {
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
    if let Some(s) = salt {
        rotation = rotation.salt(s);
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

/// Streams tokens through a spool file: constant memory, and stdout stays
/// empty if any line fails.
fn rewrap(cli: &Cli) -> Result<()> {
    let manager = load(cli)?;
    let mut spool = tempfile::tempfile().context("cannot create a temporary file")?;
    {
        let mut writer = std::io::BufWriter::new(&mut spool);
        let stdin = std::io::stdin().lock();
        for (n, line) in stdin.split(b'\n').enumerate() {
            let line = line.context("cannot read stdin")?;
            let token = line.trim_ascii();
            let (_, fresh) = manager
                .rotate_token(token)
                .with_context(|| format!("line {}", n + 1))?;
            writer.write_all(fresh.as_bytes())?;
            writer.write_all(b"\n")?;
        }
        writer.flush().context("cannot write the temporary file")?;
    }
    spool.rewind()?;
    let mut stdout = std::io::stdout().lock();
    std::io::copy(&mut spool, &mut stdout).context("cannot write to stdout")?;
    stdout.flush()?;
    Ok(())
}

fn describe_time(t: Option<u64>) -> String {
    t.map_or_else(|| "-".to_owned(), |t| t.to_string())
}

fn status(cli: &Cli, out: &mut Vec<u8>) -> Result<()> {
    let manager = load(cli)?;
    writeln!(out, "keyring: {}", keyring_name(&manager))?;
    writeln!(out, "active: {}", manager.active_version())?;
    writeln!(
        out,
        "{:<24} {:<7} {:<9} {:<9} {:>10}  activated_at",
        "version", "active", "state", "kind", "iterations"
    )?;
    for info in manager.version_info()? {
        let state = match info.state {
            VersionState::Usable => "usable",
            VersionState::Retired => "retired",
            VersionState::Destroyed => "destroyed",
            _ => "?",
        };
        writeln!(
            out,
            "{:<24} {:<7} {state:<9} {:<9} {:>10}  {}",
            info.version.as_str(),
            if info.active { "*" } else { "" },
            match info.kind {
                Some(KeyKind::Fernet) => "fernet",
                Some(_) => "password",
                None => "-",
            },
            info.iterations
                .map_or_else(|| "-".to_owned(), |n| n.to_string()),
            describe_time(info.activated_at),
        )?;
    }
    Ok(())
}

fn verify(cli: &Cli, out: &mut Vec<u8>) -> Result<()> {
    let path = match keyring_store(cli)?.source() {
        Source::File(path) => path,
        other => bail!("verify checks a file's checksum and salt hashes; {other} is not a file"),
    };
    let path = &path;
    let prefixes = Prefixes::default();
    // Reading verifies the file's syntax and its checksum, when present.
    let values = persist::dotenv_values(path)?;
    let keyring = persist::read_keyring(path, &prefixes)?;
    let has_checksum = values.iter().any(|(name, _)| *name == prefixes.checksum);
    let mut hashes = 0;
    for v in keyring.versions() {
        if let Some(StoredKey::Password {
            salt,
            salt_hash: Some(hash),
            ..
        }) = &v.key
        {
            if !Salt::from(salt.as_str()).matches_hash(hash) {
                bail!(
                    "{}: salt integrity check failed for version {}",
                    path.display(),
                    v.name
                );
            }
            hashes += 1;
        }
    }
    writeln!(
        out,
        "ok: {}; {} version(s), {hashes} salt hash(es) verified",
        if has_checksum {
            "checksum verified"
        } else {
            "no checksum in file"
        },
        keyring.versions().len(),
    )?;
    Ok(())
}
