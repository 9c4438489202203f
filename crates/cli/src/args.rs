//! The command line's shape: global options and commands (clap).

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Keep application secrets encrypted; rotate keys without downtime.
///
/// Keys live in a `.env` keyring file that the Python SecretsManager also
/// reads and writes. Tokens are Fernet tokens.
#[derive(Debug, Parser)]
#[command(
    name = "secrets-manager",
    version,
    about,
    long_about = None,
    args_override_self = true,
    after_help = "Examples:
  secrets-manager init
  echo -n 's3cr3t' | secrets-manager encrypt > token
  secrets-manager decrypt < token
  secrets-manager rotate --new-version v2
  secrets-manager --keyring file:/etc/app/.env.secrets status

Exit status: 0 on success, 1 when the operation failed, 2 for usage errors."
)]
pub(crate) struct Cli {
    /// Where the keyring lives: a path or `file:PATH`, `env:` (the process
    /// environment), or `etcd://HOST:PORT[,HOST:PORT...]/PREFIX`. Takes
    /// precedence over --env-file and --from-env.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "SECRETS_MANAGER_KEYRING",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub(crate) keyring: Option<String>,
    /// The keyring file (the same as --keyring file:PATH).
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "SECRETS_MANAGER_ENV_FILE",
        hide_env_values = true,
        default_value = ".env.secrets",
        value_name = "PATH"
    )]
    pub(crate) env_file: PathBuf,
    /// Read the keyring from the process environment (the same as
    /// --keyring env:).
    #[arg(long, global = true, help_heading = "Global options")]
    pub(crate) from_env: bool,
    /// PBKDF2 iterations for versions that do not record their own.
    #[arg(long, global = true,
        help_heading = "Global options", default_value_t = secrets_manager::kdf::DEFAULT_ITERATIONS.get(), value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) iterations: u32,
    /// Print no confirmations (errors and warnings still go to stderr).
    #[arg(long, short, global = true, help_heading = "Global options")]
    pub(crate) quiet: bool,
    /// Append one JSON line per audit event (time, event, version, process,
    /// user, keyring; never a secret) to this file, or `-` for stderr.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_name = "PATH|-"
    )]
    pub(crate) audit_log: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create the keyring file with one version: a random password and salt.
    ///
    /// The file gets mode 0600. A file that already holds keys is refused.
    #[command(after_help = "Examples:
  secrets-manager init                          # random password, random salt
  secrets-manager init --name prod-2026
  secrets-manager init --password-stdin          # at a terminal: asked twice, no echo
  secrets-manager init --password-file /run/secrets/keyring-password")]
    Init {
        /// The version's name.
        #[arg(
            long = "name",
            alias = "version",
            default_value = "v1",
            value_name = "V"
        )]
        version_name: String,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Encrypt stdin (any bytes) under the active version: one token and a
    /// newline on stdout. With -f: encrypt a .env file's values in place.
    #[command(after_help = "Examples:
  echo -n 's3cr3t' | secrets-manager encrypt > token
  secrets-manager encrypt < photo.jpg > photo.token
  secrets-manager encrypt -f .env                      # every plain value that is not a keyring variable
  secrets-manager encrypt -f .env -k DATABASE_PASSWORD")]
    Encrypt {
        #[command(flatten)]
        in_place: InPlace,
    },
    /// Decrypt one token from stdin (surrounding whitespace ignored): the
    /// exact plaintext bytes on stdout.
    #[command(after_help = "Examples:
  secrets-manager decrypt < token
  secrets-manager decrypt --ttl 3600 --hint v2 < token
  secrets-manager decrypt --force < photo.token > photo.jpg")]
    Decrypt {
        /// Refuse tokens older than this many seconds.
        #[arg(long, value_name = "SECS")]
        ttl: Option<u64>,
        /// Try this version first.
        #[arg(long, value_name = "V")]
        hint: Option<String>,
        /// Write plaintext that is not UTF-8 text to a terminal anyway.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        in_place: InPlace,
    },
    /// Add a version, make it active and write the keyring (existing
    /// versions are kept; a name the keyring already has is refused).
    #[command(after_help = "Examples:
  secrets-manager rotate --new-version v2                 # random password and salt
  secrets-manager rotate --new-version v3 --no-activate   # stage, then `activate v3`
  secrets-manager rotate --new-version v5 --activate-after 10m   # every process switches in 10 minutes
  secrets-manager rotate --new-version v4 --password-file pw.txt --salt c2FsdHNhbHRzYWx0
  secrets-manager keygen | secrets-manager rotate --new-version raw1 --fernet-key-stdin")]
    Rotate {
        /// The new version's name.
        #[arg(long, value_name = "V")]
        new_version: String,
        /// Add the version without making it active (stage it; `activate`
        /// switches to it later).
        #[arg(long)]
        no_activate: bool,
        /// Add the version now and make it the encryption version after
        /// this long (`90s`, `10m`, `2h`, `1d`), in every process that has
        /// read the keyring by then, with no further write.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration, conflicts_with = "no_activate")]
        activate_after: Option<std::time::Duration>,
        #[command(flatten)]
        password: PasswordArgs,
        /// The new version is a raw Fernet key (as `keygen` prints) read
        /// from stdin, instead of a password and salt.
        #[arg(long, conflicts_with_all = ["password_stdin", "password_file", "password_fd", "salt"])]
        fernet_key_stdin: bool,
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
    #[command(after_help = "Example:
  secrets-manager activate v3")]
    Activate {
        /// The version.
        #[arg(value_name = "V")]
        version: String,
    },
    /// Stop a version from decrypting; its key stays in the keyring.
    #[command(after_help = "Example:
  secrets-manager retire v1")]
    Retire {
        /// The version.
        #[arg(value_name = "V")]
        version: String,
    },
    /// Erase a version's key from the keyring for good, leaving its name as
    /// a tombstone. Tokens made under it can never be decrypted again.
    #[command(after_help = "Example:
  secrets-manager destroy v1 --yes")]
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
    #[command(after_help = "Examples:
  secrets-manager rewrap < tokens.txt > fresh.txt
  secrets-manager rewrap --keep-going < tokens.txt > fresh.txt   # report every bad line
  secrets-manager rewrap -f .env")]
    Rewrap {
        /// Go on past lines that fail: report each by number, pass it
        /// through unchanged, and exit 1 at the end.
        #[arg(long, conflicts_with = "files")]
        keep_going: bool,
        /// Re-encrypt the encrypted values of this .env file in place
        /// (repeatable); keyring variables are left alone.
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Show the versions, the active one, iterations and activation times.
    /// Never a secret.
    #[command(after_help = "Examples:
  secrets-manager status
  secrets-manager status --json | jq '.versions[] | select(.state == \"usable\") | .version'")]
    Status {
        /// Machine-readable output (see the README for the schema).
        #[arg(long)]
        json: bool,
    },
    /// Check the file's checksum and every salt hash.
    #[command(after_help = "Examples:
  secrets-manager verify
  secrets-manager verify --update-checksum   # after a deliberate hand edit")]
    Verify {
        /// After a deliberate hand edit: record the file's new contents in
        /// its checksum (saying which variable was added, where that can be
        /// told). Never touches a keyring value.
        #[arg(long)]
        update_checksum: bool,
        /// Machine-readable output (see the README for the schema).
        #[arg(long)]
        json: bool,
    },
    /// Print a random Fernet key.
    #[command(after_help = "Example:
  secrets-manager keygen > fernet.key")]
    Keygen,
    /// Print shell completions.
    #[command(after_help = "Examples:
  secrets-manager completions bash > /etc/bash_completion.d/secrets-manager
  secrets-manager completions zsh > \"${fpath[1]}/_secrets-manager\"
  secrets-manager completions fish > ~/.config/fish/completions/secrets-manager.fish")]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Store one value in a .env file, encrypted under the active version
    /// (`KEY="gAAAA..."`), in place and atomically; comments and other
    /// lines are kept.
    ///
    /// The value comes from --value-stdin, --value-file, or, at a terminal,
    /// a prompt that does not echo, asked twice. One trailing line break is
    /// dropped from stdin and files.
    #[command(after_help = "Examples:
  secrets-manager set DATABASE_PASSWORD -f .env                    # asked twice, no echo
  printf '%s' \"$PW\" | secrets-manager set DATABASE_PASSWORD -f .env --value-stdin")]
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
    #[command(after_help = "Example:
  secrets-manager get DATABASE_PASSWORD -f .env")]
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
    #[command(after_help = "Examples:
  secrets-manager run -f .env -- ./server --port 8080
  secrets-manager run -f .env -f .env.local --override -- env")]
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
    /// Tokens at rest in a database column (sqlite:PATH, postgres://...):
    /// count what each version protects, re-encrypt under the active one.
    #[command(
        subcommand,
        after_help = "Examples:
  secrets-manager db scan sqlite:app.db --table users --column otp_secret
  secrets-manager db rewrap sqlite:app.db --table users --column otp_secret --key-column id
  secrets-manager db scan postgres://app@localhost/app --table users --column otp_secret --json"
    )]
    Db(DbCommand),
    #[command(flatten)]
    Fleet(FleetCommand),
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

/// Where a new version's password comes from (by default: 32 random bytes).
/// Never from the command line, where other users can see it.
#[derive(Debug, Args)]
#[group(multiple = false)]
pub(crate) struct PasswordArgs {
    /// Read the password from stdin: asked twice without echo at a
    /// terminal, else the first line.
    #[arg(long)]
    pub(crate) password_stdin: bool,
    /// Read the password from the first line of this file.
    #[arg(long, value_name = "PATH")]
    pub(crate) password_file: Option<PathBuf>,
    /// Read the password from the first line of this open file descriptor.
    #[arg(long, value_name = "N")]
    pub(crate) password_fd: Option<u32>,
}

/// Shells `completions` knows.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum Shell {
    /// Bash.
    Bash,
    /// Zsh.
    Zsh,
    /// Fish.
    Fish,
    /// PowerShell.
    Powershell,
}

/// `90s`, `10m`, `2h`, `1d`, or plain seconds.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 90s, 10m, 2h or 1d"))?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: the unit must be s, m, h or d")),
    };
    n.checked_mul(scale)
        .map(std::time::Duration::from_secs)
        .ok_or_else(|| format!("{text:?} is too long"))
}

/// How the column stores tokens.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum Format {
    /// The value is the token.
    Plain,
    /// `<version>:<token>`; the prefix is tried first and rewritten.
    Versioned,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DbCommand {
    /// Count what each version protects in a column, by verifying each
    /// token's HMAC (nothing is decrypted); also NULL and empty values,
    /// values that are not tokens and tokens no version opens. Says which
    /// versions protect nothing.
    Scan {
        #[command(flatten)]
        target: DbColumn,
        /// A unique key column: list the rows no version opens by it.
        #[arg(long, value_name = "ID", value_parser = column_name)]
        key_column: Option<String>,
        /// Machine-readable output (stable form: see the README).
        #[arg(long)]
        json: bool,
    },
    /// Re-encrypt every value not under the active version, keeping each
    /// token's timestamp: transactions of --batch rows, each row updated by
    /// compare-and-set (a row changed meanwhile is revisited, never
    /// overwritten), each new token checked before it is written.
    /// Resumable: run it again after any interruption. Exit status 1 when
    /// values no version opens were left alone.
    Rewrap {
        #[command(flatten)]
        target: DbColumn,
        /// The table's unique key column (a primary key): rows are visited
        /// in its order and updated by it.
        #[arg(long, value_name = "ID", value_parser = column_name)]
        key_column: String,
        /// Rows per transaction.
        #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        batch: u64,
        /// Report what would change; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// The database column both `db` commands work on.
#[derive(Debug, clap::Args)]
pub(crate) struct DbColumn {
    /// `sqlite:PATH` or `postgres://USER@HOST/DB` (TLS when the server
    /// offers it).
    #[arg(value_name = "URL")]
    pub(crate) url: String,
    /// The table (`name` or `schema.name`).
    #[arg(long, value_name = "T", value_parser = table_name)]
    pub(crate) table: String,
    /// The column holding tokens.
    #[arg(long, value_name = "C", value_parser = column_name)]
    pub(crate) column: String,
    /// How values are stored.
    #[arg(long, value_enum, default_value = "plain")]
    pub(crate) format: Format,
}

/// Names are checked while parsing, so a bad one is a usage error.
fn table_name(text: &str) -> Result<String, String> {
    secrets_manager_db::Name::table(text)
        .map(|_| text.to_owned())
        .map_err(|e| e.to_string())
}

fn column_name(text: &str) -> Result<String, String> {
    secrets_manager_db::Name::column(text)
        .map(|_| text.to_owned())
        .map_err(|e| e.to_string())
}

/// Options of fleet keyrings (`etcd://`); ignored for files.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Fleet store options")]
pub(crate) struct StoreArgs {
    /// File holding the key-encryption key that wraps key material before it
    /// reaches a fleet store (`secrets-manager keygen` makes one). Without
    /// it: $SECRETS_MANAGER_KEK_FILE, or the key itself in
    /// $SECRETS_MANAGER_KEK.
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) kek_file: Option<PathBuf>,
    /// An earlier key-encryption key, still accepted for reading while a
    /// fleet switches keys (repeatable; also $SECRETS_MANAGER_KEK_PREVIOUS,
    /// keys separated by commas).
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) previous_kek_file: Vec<PathBuf>,
    /// Write key material to a fleet store unwrapped when no key-encryption
    /// key is set: etcd, its snapshots and backups then hold passwords and
    /// keys in the clear ($SECRETS_MANAGER_ALLOW_PLAINTEXT_STORE=1).
    #[arg(long, global = true)]
    pub(crate) allow_plaintext_store: bool,
    /// How long to wait for a fleet store before failing: 5s, 500ms, 1m
    /// [default: 5s] ($SECRETS_MANAGER_TIMEOUT).
    #[arg(long, global = true, value_name = "DURATION", value_parser = duration)]
    pub(crate) timeout: Option<std::time::Duration>,
    /// etcd user name, with its password from --etcd-password-file,
    /// $SECRETS_MANAGER_ETCD_PASSWORD_FILE or $SECRETS_MANAGER_ETCD_PASSWORD
    /// ($SECRETS_MANAGER_ETCD_USER).
    #[arg(long, global = true, value_name = "NAME")]
    pub(crate) etcd_user: Option<String>,
    /// File whose first line is the etcd user's password.
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) etcd_password_file: Option<PathBuf>,
    /// CA certificate (PEM) of the etcd cluster: connect with TLS
    /// ($SECRETS_MANAGER_ETCD_CACERT).
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) etcd_cacert: Option<PathBuf>,
    /// Client certificate (PEM) for etcd, with --etcd-key
    /// ($SECRETS_MANAGER_ETCD_CERT).
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) etcd_cert: Option<PathBuf>,
    /// Private key (PEM) of the client certificate
    /// ($SECRETS_MANAGER_ETCD_KEY).
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) etcd_key: Option<PathBuf>,
    /// Name to check the cluster's certificates against, when it is not the
    /// endpoints' host ($SECRETS_MANAGER_ETCD_TLS_DOMAIN).
    #[arg(long, global = true, value_name = "NAME")]
    pub(crate) etcd_tls_domain: Option<String>,
}

fn duration(text: &str) -> Result<std::time::Duration, String> {
    secrets_manager::etcd::parse_duration(text)
}

/// Commands on stores.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum FleetCommand {
    /// Copy every version, with its state and the active version, from the
    /// keyring (--keyring) into another one: a file into etcd, etcd into a
    /// file. Idempotent; a version the target holds with other key
    /// material is a conflict, and nothing is written.
    #[command(after_help = "Examples:
  secrets-manager --keyring .env.secrets copy --to etcd://127.0.0.1:2379/app --kek-file kek.key
  secrets-manager --keyring etcd://127.0.0.1:2379/app --kek-file kek.key copy --to backup.env")]
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
    #[command(after_help = "Example:
  secrets-manager --keyring etcd://127.0.0.1:2379/app --kek-file old.key rotate-kek --new-kek-file new.key")]
    RotateKek {
        /// File holding the new key-encryption key.
        #[arg(long, value_name = "PATH")]
        new_kek_file: PathBuf,
    },
}
