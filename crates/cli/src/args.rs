//! The command line's shape: global options and commands (clap).

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
    /// newline on stdout. With -f: encrypt a .env file's values in place.
    Encrypt {
        #[command(flatten)]
        in_place: InPlace,
    },
    /// Decrypt one token from stdin (surrounding whitespace ignored): the
    /// exact plaintext bytes on stdout.
    Decrypt {
        /// Refuse tokens older than this many seconds.
        #[arg(long, value_name = "SECS")]
        ttl: Option<u64>,
        /// Try this version first.
        #[arg(long, value_name = "V")]
        hint: Option<String>,
        #[command(flatten)]
        in_place: InPlace,
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
    /// keeping their timestamps: the same number of lines on stdout. With
    /// -f: every encrypted value of a .env file, in place.
    Rewrap {
        /// Re-encrypt the encrypted values of this .env file in place
        /// (repeatable); keyring variables are left alone.
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        files: Vec<PathBuf>,
    },
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
    /// Store one value in a .env file, encrypted under the active version
    /// (`KEY="gAAAA..."`), in place and atomically; comments and other
    /// lines are kept.
    ///
    /// The value comes from --value-stdin, --value-file, or, at a terminal,
    /// a prompt that does not echo, asked twice. One trailing line break is
    /// dropped from stdin and files.
    Set {
        /// The variable.
        #[arg(value_name = "KEY")]
        key: String,
        /// The .env file (created, mode 0600, if missing).
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: PathBuf,
        /// Read the value from stdin.
        #[arg(long, conflicts_with = "value_file")]
        value_stdin: bool,
        /// Read the value from this file.
        #[arg(long, value_name = "PATH")]
        value_file: Option<PathBuf>,
    },
    /// Print the plaintext of one value of a .env file (the exact bytes).
    Get {
        /// The variable.
        #[arg(value_name = "KEY")]
        key: String,
        /// The .env file.
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: PathBuf,
    },
    /// Run a program with the values of .env files in its environment,
    /// encrypted ones decrypted; nothing decrypted touches the disk.
    ///
    /// Files are read as python-dotenv reads them; a later file overrides
    /// an earlier one, and variables already in the environment win unless
    /// --override. The keyring's variables (ENCRYPTION_*,
    /// ACTIVE_ENCRYPTION_VERSION) are removed from the program's
    /// environment. If a value does not decrypt, the program is not
    /// started. On Unix the program replaces this process, so its exit
    /// status and signals are its own; 127 if it cannot be found, 126 if it
    /// cannot be run.
    Run {
        /// A .env file (repeatable; later files override earlier ones).
        #[arg(short = 'f', long = "file", value_name = "FILE", required = true)]
        files: Vec<PathBuf>,
        /// Let the files' values replace variables already in the
        /// environment.
        #[arg(long = "override")]
        override_env: bool,
        /// The program and its arguments (after `--`).
        #[arg(
            value_name = "PROGRAM",
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true
        )]
        command: Vec<OsString>,
    },
}

/// `-f FILE [-k KEY]...`: values of .env files, changed in place.
#[derive(Debug, Args)]
pub(crate) struct InPlace {
    /// Work on the values of this .env file in place instead of stdin
    /// (repeatable). Keyring variables are left alone.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub(crate) files: Vec<PathBuf>,
    /// Only this variable (repeatable; default: every value that needs it).
    #[arg(short = 'k', long = "key", value_name = "KEY", requires = "files")]
    pub(crate) keys: Vec<String>,
}
