//! The command line's shape: global options and commands (clap).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Keep application secrets encrypted; rotate keys without downtime.
///
/// Keys live in a `.env` keyring file that the Python SecretsManager also
/// reads and writes. Tokens are Fernet tokens.
#[derive(Debug, Parser)]
#[command(name = "secrets-manager", version, about, long_about = None, args_override_self = true)]
pub(crate) struct Cli {
    /// Where the keyring lives: a path or `file:PATH`, `env:` (the process
    /// environment), or `etcd://HOST:PORT[,HOST:PORT...]/PREFIX`. Takes
    /// precedence over --env-file and --from-env.
    #[arg(
        long,
        global = true,
        env = "SECRETS_MANAGER_KEYRING",
        value_name = "URL"
    )]
    pub(crate) keyring: Option<String>,
    /// The keyring file (the same as --keyring file:PATH).
    #[arg(
        long,
        global = true,
        env = "SECRETS_MANAGER_ENV_FILE",
        default_value = ".env.secrets",
        value_name = "PATH"
    )]
    pub(crate) env_file: PathBuf,
    /// Read the keyring from the process environment (the same as
    /// --keyring env:).
    #[arg(long, global = true)]
    pub(crate) from_env: bool,
    /// PBKDF2 iterations for versions that do not record their own.
    #[arg(long, global = true, default_value_t = 100_000, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) iterations: u32,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create the keyring file with one version: a random password and salt.
    ///
    /// The file gets mode 0600. A file that already holds keys is refused.
    Init {
        /// The version's name.
        #[arg(
            long = "name",
            alias = "version",
            default_value = "v1",
            value_name = "V"
        )]
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
        /// base64, or text (default: 16 random bytes). At least 8 bytes.
        #[arg(long, value_name = "S")]
        salt: Option<String>,
        /// Accept a salt shorter than 8 bytes (weak; for keyrings made
        /// elsewhere).
        #[arg(long, requires = "salt")]
        allow_short_salt: bool,
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
    Verify {
        /// After a deliberate hand edit: record the file's new contents in
        /// its checksum (saying which variable was added, where that can be
        /// told). Never touches a keyring value.
        #[arg(long)]
        update_checksum: bool,
    },
    /// Print a random Fernet key.
    Keygen,
    /// Tokens at rest in a database column (sqlite:PATH, postgres://...):
    /// count what each version protects, re-encrypt under the active one.
    #[command(subcommand)]
    Db(crate::db::DbCommand),
}
