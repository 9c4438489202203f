//! The torture test: several workers run random operations on one keyring
//! file through the real `secrets-manager` binary, commands are killed
//! (SIGKILL) at random moments, and everything the binary acknowledged
//! (exit status 0) is checked against a ledger.
//!
//! What it attacks is the keyring file's invariant: a version, once
//! written, is immutable; a write may only add versions, move the active
//! pointer, retire or destroy versions and refresh the checksum; a name
//! that exists is never written again; a token whose encryption was
//! acknowledged decrypts to its plaintext until its version is retired or
//! destroyed, and then fails naming that version.
//!
//! The file is read and checked after every operation and every kill
//! (`secrets-manager verify` runs after each kill): it parses, has mode
//! 0600, every version ever seen is still there with the same key
//! material (a destroyed one: a tombstone, material erased), states only
//! advance, and the active version is usable. At the end one more write
//! must leave no temporary file behind, and every token in the ledger is
//! decrypted.
//!
//! Which version made a token is found with an oracle: a one-version
//! keyring written from the material the file showed, and
//! `secrets-manager decrypt` on it.
//!
//! This file is compiled into xtask (`cargo xtask torture`, `crash`) and,
//! through `#[path]`, into the CLI's `reliability` test (a short run), so
//! both run the same checks. It uses std and `anyhow` only, and is
//! Unix-only (SIGKILL; on Linux, `/proc` tells where a kill landed).

// Random picks are taken modulo small ranges, and durations in nanoseconds
// fit in 64 bits for centuries: these casts lose nothing.
#![allow(clippy::cast_possible_truncation)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};

/// When a run ends.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Stop {
    /// After this long.
    After(Duration),
    /// Once this many kills have landed, or after `limit`.
    Kills {
        /// Kills to land.
        kills: u64,
        /// The longest the run may take.
        limit: Duration,
    },
}

/// A run's settings.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    /// The `secrets-manager` binary.
    pub(crate) binary: PathBuf,
    /// An empty scratch directory.
    pub(crate) dir: PathBuf,
    /// When to stop.
    pub(crate) stop: Stop,
    /// Concurrent workers, each running one command at a time (a collision
    /// runs several at once).
    pub(crate) workers: usize,
    /// Seeds every random choice (the interleaving is the scheduler's).
    pub(crate) seed: u64,
    /// PBKDF2 iterations (`--iterations`): low, to keep derivation cheap.
    pub(crate) iterations: u32,
    /// Mean time between random kills.
    pub(crate) kill_interval: Duration,
    /// Print a progress line now and then.
    pub(crate) progress: bool,
}

impl Config {
    /// Defaults: 5 workers, 1000 iterations, a random kill every 100 ms on
    /// average.
    pub(crate) fn new(binary: PathBuf, dir: PathBuf, stop: Stop, seed: u64) -> Self {
        Self {
            binary,
            dir,
            stop,
            workers: 5,
            seed,
            iterations: 1000,
            kill_interval: Duration::from_millis(100),
            progress: false,
        }
    }
}

/// A seed from the clock and the process id.
pub(crate) fn time_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}

/// xorshift64*, seeded through splitmix64: enough for choosing operations.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Self((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        items.get(self.below(items.len() as u64) as usize)
    }

    fn text(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        (0..len)
            .map(|_| char::from(ALPHABET[self.below(ALPHABET.len() as u64) as usize]))
            .collect()
    }

    fn hex(&mut self, bytes: usize) -> String {
        (0..bytes)
            .map(|_| format!("{:02x}", self.below(256)))
            .collect()
    }
}

/// What a worker does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    /// Plaintext in, token out; the token joins the ledger.
    Encrypt,
    /// Rotate to a fresh name and activate it.
    Rotate,
    /// Rotate to a fresh name with `--no-activate`.
    RotateStaged,
    /// Two to four rotations to one fresh name at once: one must win.
    Collide,
    /// Rotate to a name the file has: must be refused.
    RotateExisting,
    /// `activate V`.
    Activate,
    /// `retire V`.
    Retire,
    /// `destroy V --yes`.
    Destroy,
    /// `decrypt --hint V` of a ledger token, during the run.
    Decrypt,
}

impl Op {
    /// Weights of the random choice.
    const MIX: [(Self, u64); 9] = [
        (Self::Encrypt, 30),
        (Self::Rotate, 7),
        (Self::RotateStaged, 5),
        (Self::Collide, 4),
        (Self::RotateExisting, 3),
        (Self::Activate, 10),
        (Self::Retire, 5),
        (Self::Destroy, 2),
        (Self::Decrypt, 12),
    ];

    fn choose(rng: &mut Rng) -> Self {
        let total: u64 = Self::MIX.iter().map(|(_, w)| w).sum();
        let mut roll = rng.below(total);
        for (op, weight) in Self::MIX {
            if roll < weight {
                return op;
            }
            roll -= weight;
        }
        Self::Encrypt
    }

    fn name(self) -> &'static str {
        match self {
            Self::Encrypt => "encrypt",
            Self::Rotate => "rotate",
            Self::RotateStaged => "rotate --no-activate",
            Self::Collide => "rotate (same name at once)",
            Self::RotateExisting => "rotate (existing name)",
            Self::Activate => "activate",
            Self::Retire => "retire",
            Self::Destroy => "destroy",
            Self::Decrypt => "decrypt --hint",
        }
    }

    /// Whether the command writes the file.
    fn writes(self) -> bool {
        !matches!(self, Self::Encrypt | Self::Decrypt)
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Counts for one kind of operation.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Tally {
    /// Commands run.
    pub(crate) run: u64,
    /// Exit 0.
    pub(crate) acked: u64,
    /// Exit 1 with an expected reason.
    pub(crate) refused: u64,
    /// Killed by the test.
    pub(crate) killed: u64,
}

/// What a run did and checked.
#[derive(Clone, Debug, Default)]
pub(crate) struct Report {
    /// The seed.
    pub(crate) seed: u64,
    /// Workers.
    pub(crate) workers: usize,
    /// How long the random operations ran.
    pub(crate) elapsed: Duration,
    /// Per kind of operation.
    pub(crate) ops: BTreeMap<&'static str, Tally>,
    /// Refusals by reason.
    pub(crate) refusals: BTreeMap<&'static str, u64>,
    /// Collisions: groups of rotations to one name.
    pub(crate) collision_groups: u64,
    /// Groups in which exactly one rotation was acknowledged.
    pub(crate) collision_one_winner: u64,
    /// Groups without a winner because a racer was killed.
    pub(crate) collision_winner_killed: u64,
    /// Kills that landed (the command died of SIGKILL).
    pub(crate) kills: u64,
    /// Kills sent to a command that had just exited.
    pub(crate) kills_missed: u64,
    /// Kills of rotations after a short random delay.
    pub(crate) kills_delayed: u64,
    /// Delayed kills planned from the moment a rotation took the lock,
    /// opened its temporary file, renamed it over the file.
    pub(crate) kills_planned: [u64; 3],
    /// Kills of commands that write the file.
    pub(crate) kills_of_writes: u64,
    /// Kills that found the command holding the file's lock (Linux).
    pub(crate) kills_under_lock: u64,
    /// Kills that found the command with its temporary file open (Linux).
    pub(crate) kills_holding_temporary: u64,
    /// ... of which the temporary file was still there after the kill.
    pub(crate) kills_left_temporary: u64,
    /// Killed rotations whose version is in the file afterwards.
    pub(crate) killed_rotations_landed: u64,
    /// Killed rotations whose version is not.
    pub(crate) killed_rotations_not_landed: u64,
    /// The ranges of delayed kills as they ended (after the lock, the
    /// temporary file, the rename).
    pub(crate) kill_delay_max: [Duration; 3],
    /// Checks of the file right after a kill.
    pub(crate) checks_after_kill: u64,
    /// Reads of the file checked against the model.
    pub(crate) snapshots: u64,
    /// `verify` runs (all exit 0).
    pub(crate) verifies: u64,
    /// Temporary files seen at once, most.
    pub(crate) temporaries_seen_max: u64,
    /// Temporary files there when the workers stopped (the final write
    /// must remove them).
    pub(crate) temporaries_at_end: u64,
    /// Ledger tokens decrypted during the run.
    pub(crate) tokens_checked_during: u64,
    /// Ledger tokens at the end.
    pub(crate) tokens: u64,
    /// ... that decrypted to their plaintext (usable version).
    pub(crate) tokens_decrypted: u64,
    /// ... refused naming their retired version.
    pub(crate) tokens_retired: u64,
    /// ... refused naming their destroyed version.
    pub(crate) tokens_destroyed: u64,
    /// Tokens also decrypted without a hint.
    pub(crate) tokens_without_hint: u64,
    /// ... of which refused (retired or destroyed version).
    pub(crate) tokens_without_hint_refused: u64,
    /// ... of which the error named the version.
    pub(crate) tokens_without_hint_named: u64,
    /// Versions in the file at the end, every one checked.
    pub(crate) versions: u64,
    /// ... usable, retired, destroyed.
    pub(crate) versions_by_state: [u64; 3],
    /// Versions whose rotation was acknowledged (material promised).
    pub(crate) versions_promised: u64,
    /// A once-known library bug, seen (and a violation): a staged rotation
    /// acknowledged (exit 0) onto a name that was added and destroyed
    /// after the command loaded the file, with nothing written. Pinned by
    /// `a_staged_rotation_onto_a_name_destroyed_meanwhile_is_refused`.
    pub(crate) known_bug_staged_onto_tombstone: u64,
}

impl Report {
    fn tally(&mut self, op: Op) -> &mut Tally {
        self.ops.entry(op.name()).or_default()
    }

    /// Fails unless the run exercised what it is meant to: kills landed,
    /// on writing commands, caught writers holding the lock (Linux), and
    /// stopped rotations before they wrote; the file was checked after
    /// each kill; rotations were acknowledged and refused; collisions had
    /// their one winner; tokens were checked during the run and at the
    /// end, of usable and of retired or destroyed versions. `long` (runs
    /// of 10 s or more): also killed rotations that had written their
    /// version, kills inside the write (temporary file open, Linux), and
    /// tokens of retired and of destroyed versions.
    ///
    /// # Errors
    ///
    /// Names every branch that was not exercised.
    pub(crate) fn require_coverage(&self, long: bool) -> Result<()> {
        let ops = |name: &str| self.ops.get(name).copied().unwrap_or_default();
        let refusals = |reason: &str| self.refusals.get(reason).copied().unwrap_or(0);
        let rotations_acked = ops(Op::Rotate.name()).acked + ops(Op::RotateStaged.name()).acked;
        let linux = cfg!(target_os = "linux");
        let mut checks = vec![
            (self.kills > 0, "no kill landed"),
            (
                self.kills_of_writes > 0,
                "no kill landed on a writing command",
            ),
            (
                self.checks_after_kill == self.kills,
                "the file was not checked after every kill",
            ),
            (
                !linux || self.kills_under_lock > 0,
                "no kill caught a writer holding the lock",
            ),
            (
                self.killed_rotations_not_landed > 0,
                "no killed rotation was stopped before writing",
            ),
            (rotations_acked > 0, "no rotation was acknowledged"),
            (
                self.collision_one_winner > 0,
                "no collision had its one winner",
            ),
            (
                refusals(REFUSED_CONFLICT) + refusals(REFUSED_DUPLICATE) > 0,
                "no rotation was refused for an existing name",
            ),
            (self.tokens_decrypted > 0, "no token decrypted at the end"),
            (
                self.tokens_retired + self.tokens_destroyed > 0,
                "no token of a retired or destroyed version",
            ),
            (
                self.tokens_checked_during > 0,
                "no token checked during the run",
            ),
        ];
        if long {
            checks.extend([
                (
                    self.killed_rotations_landed > 0,
                    "no killed rotation had written its version",
                ),
                (
                    !linux || self.kills_holding_temporary > 0,
                    "no kill caught a writer with its temporary file open",
                ),
                (self.tokens_retired > 0, "no token of a retired version"),
                (self.tokens_destroyed > 0, "no token of a destroyed version"),
            ]);
        }
        let missing: Vec<&str> = checks
            .into_iter()
            .filter(|(ok, _)| !ok)
            .map(|(_, what)| what)
            .collect();
        ensure!(
            missing.is_empty(),
            "the run did not exercise enough (seed {}): {}",
            self.seed,
            missing.join("; ")
        );
        Ok(())
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total: u64 = self.ops.values().map(|t| t.run).sum();
        writeln!(
            f,
            "torture: {:.1} s, {} workers, seed {}: {total} commands",
            self.elapsed.as_secs_f64(),
            self.workers,
            self.seed
        )?;
        writeln!(
            f,
            "  {:<28} {:>6} {:>6} {:>7} {:>6}",
            "operation", "run", "acked", "refused", "killed"
        )?;
        for (name, t) in &self.ops {
            writeln!(
                f,
                "  {name:<28} {:>6} {:>6} {:>7} {:>6}",
                t.run, t.acked, t.refused, t.killed
            )?;
        }
        let refusals: Vec<String> = self
            .refusals
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        writeln!(f, "  refusals: {}", refusals.join(", "))?;
        writeln!(
            f,
            "  collisions: {} groups, {} with exactly one winner, {} without (winner killed)",
            self.collision_groups, self.collision_one_winner, self.collision_winner_killed
        )?;
        writeln!(
            f,
            "  kills: {} ({} missed: already exited); {} hit writing commands; {} delayed kills of rotations \
             (planned: {} at 0-{} us after taking the lock, {} at 0-{} us after opening the temporary file, \
             {} at 0-{} us after renaming it); \
             {} caught holding the lock, {} holding their temporary file ({} left it behind)",
            self.kills,
            self.kills_missed,
            self.kills_of_writes,
            self.kills_delayed,
            self.kills_planned[0],
            self.kill_delay_max[0].as_micros(),
            self.kills_planned[1],
            self.kill_delay_max[1].as_micros(),
            self.kills_planned[2],
            self.kill_delay_max[2].as_micros(),
            self.kills_under_lock,
            self.kills_holding_temporary,
            self.kills_left_temporary
        )?;
        writeln!(
            f,
            "  killed rotations: {} had written their version, {} had not",
            self.killed_rotations_landed, self.killed_rotations_not_landed
        )?;
        writeln!(
            f,
            "  checks: {} file snapshots, {} after kills, {} verify runs; temporary files: {} at once at most, {} when the workers stopped, 0 after the final write",
            self.snapshots,
            self.checks_after_kill,
            self.verifies,
            self.temporaries_seen_max,
            self.temporaries_at_end
        )?;
        writeln!(
            f,
            "  tokens: {} checked during the run; {} at the end: {} decrypted, {} refused naming their retired version, {} their destroyed version; \
             {} also without a hint ({} refused, {} naming the version)",
            self.tokens_checked_during,
            self.tokens,
            self.tokens_decrypted,
            self.tokens_retired,
            self.tokens_destroyed,
            self.tokens_without_hint,
            self.tokens_without_hint_refused,
            self.tokens_without_hint_named
        )?;
        write!(
            f,
            "  versions: {} checked ({} usable, {} retired, {} destroyed), {} with acknowledged material",
            self.versions,
            self.versions_by_state[0],
            self.versions_by_state[1],
            self.versions_by_state[2],
            self.versions_promised
        )?;
        if self.known_bug_staged_onto_tombstone > 0 {
            write!(
                f,
                "\n  staged rotations acknowledged onto a name destroyed meanwhile, nothing written: {}",
                self.known_bug_staged_onto_tombstone
            )?;
        }
        Ok(())
    }
}

const REFUSED_CONFLICT: &str = "conflict in the file";
const REFUSED_DUPLICATE: &str = "name already loaded";
const REFUSED_DESTROYED: &str = "version destroyed";
const REFUSED_RETIRED: &str = "version retired";
const REFUSED_ACTIVE: &str = "version active";

/// Runs the torture test. Fails on the first broken promise (after
/// stopping the workers), listing what broke.
///
/// # Errors
///
/// A broken invariant, a command that failed unexpectedly, or a harness
/// problem (cannot run the binary, cannot write the scratch directory).
pub(crate) fn run(config: &Config) -> Result<Report> {
    let keyring_dir = config.dir.join("keyring");
    let oracle_dir = config.dir.join("oracle");
    for d in [&keyring_dir, &oracle_dir] {
        fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    let name = ".env.secrets";
    let file = keyring_dir.join(name);
    let dir_real = keyring_dir
        .canonicalize()
        .context("cannot resolve the scratch directory")?;
    let t = Torture {
        dir_real,
        config,
        // As the writer names them: one leading dot, then `.tmp`.
        temp_prefix: format!(".{}.tmp", name.trim_start_matches('.')),
        file,
        oracle_dir,
        model: Mutex::new(Model::default()),
        flights: Mutex::new(Vec::new()),
        stop: AtomicBool::new(false),
        names: AtomicU64::new(0),
        kill_delay_us: [5_000, 2_000, 200].map(AtomicU64::new),
        report: Mutex::new(Report {
            seed: config.seed,
            workers: config.workers,
            ..Report::default()
        }),
    };
    let init = t
        .command(&["init"])
        .output()
        .context("cannot run the binary")?;
    ensure!(
        init.status.success(),
        "init failed: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    t.snapshot();

    let started = Instant::now();
    thread::scope(|s| {
        for i in 0..config.workers {
            let t = &t;
            let rng = Rng::new(config.seed ^ (i as u64 + 1).wrapping_mul(0x1000_0000_01b3));
            s.spawn(move || t.worker(i, rng));
        }
        s.spawn(|| t.killer(Rng::new(!config.seed)));
        t.supervise(started);
    });
    lock(&t.report).elapsed = started.elapsed();
    if t.failed() {
        return Err(t.failure());
    }
    t.finish()?;
    if t.failed() {
        return Err(t.failure());
    }
    let mut report = lock(&t.report).clone();
    report.kill_delay_max = t
        .kill_delay_us
        .each_ref()
        .map(|d| Duration::from_micros(d.load(Ordering::Relaxed)));
    Ok(report)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A version's lifecycle state as the file records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum State {
    Usable,
    Retired,
    Destroyed,
}

// The keyring variables (the defaults).
const KEYS: &str = "ENCRYPTION_KEYS__";
const SALT: &str = "ENCRYPTION_SALT__";
const SALT_HASH: &str = "ENCRYPTION_SALT_HASH__";
const FERNET_KEY: &str = "ENCRYPTION_FERNET_KEY__";
const ITERATIONS: &str = "ENCRYPTION_KDF_ITERATIONS__";
const ACTIVATED_AT: &str = "ENCRYPTION_ACTIVATED_AT__";
const STATE: &str = "ENCRYPTION_STATE__";
const ACTIVE: &str = "ACTIVE_ENCRYPTION_VERSION";
const CHECKSUM: &str = "ENCRYPTION_ENV_CHECKSUM";
/// The variables that hold a version's key material (destroy erases them).
const MATERIAL: [&str; 4] = [KEYS, SALT, SALT_HASH, FERNET_KEY];
const PER_VERSION: [&str; 7] = [
    KEYS,
    SALT,
    SALT_HASH,
    FERNET_KEY,
    ITERATIONS,
    ACTIVATED_AT,
    STATE,
];

/// A version's key material: variable prefix -> value text as written.
type Material = BTreeMap<&'static str, String>;

/// One version as a read of the file shows it.
#[derive(Clone, Debug)]
struct Seen {
    material: Material,
    iterations: Option<String>,
    state: State,
}

/// One read of the file.
#[derive(Clone, Debug, Default)]
struct View {
    versions: BTreeMap<String, Seen>,
    active: Option<String>,
    temporaries: Vec<PathBuf>,
}

impl View {
    fn state(&self, version: &str) -> Option<State> {
        self.versions.get(version).map(|s| s.state)
    }

    fn password(&self, version: &str) -> Option<&str> {
        self.versions
            .get(version)
            .and_then(|s| s.material.get(KEYS))
            .map(|p| unquote(p))
    }
}

/// A version the test has seen, with what must stay true of it.
#[derive(Clone, Debug)]
struct Known {
    /// Material as first seen; `None` if first seen destroyed.
    material: Option<Material>,
    iterations: Option<String>,
    /// The furthest state seen.
    state: State,
    /// A rotation to it was acknowledged.
    promised: bool,
    /// Ledger tokens made under it.
    tokens: u64,
}

/// An acknowledged encryption.
#[derive(Clone, Debug)]
struct Token {
    token: String,
    plaintext: Vec<u8>,
    version: String,
}

/// Everything seen and promised so far. Reads of the file are checked
/// against it under its lock, so they are checked in the order they
/// happened.
#[derive(Debug, Default)]
struct Model {
    versions: BTreeMap<String, Known>,
    active: Option<String>,
    tokens: Vec<Token>,
    violations: Vec<String>,
}

/// Where a kill found its command (Linux; elsewhere nothing is known).
#[derive(Clone, Debug, Default)]
struct Landing {
    under_lock: bool,
    temporary: Option<PathBuf>,
    delayed: bool,
}

/// A command in flight, which the killer may kill.
#[derive(Debug)]
struct Flight {
    pid: u32,
    child: Mutex<Child>,
    killed: Mutex<Option<Landing>>,
}

/// When to kill a rotation, on top of the random kills.
#[derive(Clone, Copy, Debug)]
enum KillAfter {
    /// This long after it takes the file's lock.
    Lock(Duration),
    /// This long after it opens its temporary file.
    Temporary(Duration),
    /// This long after it renames the temporary file over the file (the
    /// version is written, not yet acknowledged).
    Rename(Duration),
}

impl KillAfter {
    fn delay(self) -> Duration {
        match self {
            Self::Lock(d) | Self::Temporary(d) | Self::Rename(d) => d,
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Lock(_) => 0,
            Self::Temporary(_) => 1,
            Self::Rename(_) => 2,
        }
    }
}

/// How a command ended.
#[derive(Debug)]
enum Exit {
    Acked,
    /// Exit 1: the caller checks the reason.
    Refused,
    /// Killed by the test; the file was checked afterwards.
    Killed(Landing, View),
    /// Anything else (already reported as a violation).
    Broken,
}

#[derive(Debug)]
struct Outcome {
    exit: Exit,
    stdout: Vec<u8>,
    stderr: String,
}

struct Torture<'c> {
    config: &'c Config,
    file: PathBuf,
    oracle_dir: PathBuf,
    /// `.NAME.tmp`: temporary files are this, `-` and 16 hex digits.
    temp_prefix: String,
    model: Mutex<Model>,
    flights: Mutex<Vec<Arc<Flight>>>,
    stop: AtomicBool,
    names: AtomicU64,
    /// Delayed kills wait up to this long (adapted as the run goes).
    kill_delay_us: [AtomicU64; 3],
    /// The file's directory as `/proc` shows paths (symbolic links
    /// resolved).
    dir_real: PathBuf,
    report: Mutex<Report>,
}

impl Torture<'_> {
    fn command(&self, args: &[&str]) -> Command {
        self.command_for(&self.file, args)
    }

    fn command_for(&self, file: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(&self.config.binary);
        c.env_remove("SECRETS_MANAGER_ENV_FILE")
            .arg("--iterations")
            .arg(self.config.iterations.to_string())
            .arg("--env-file")
            .arg(file)
            .args(args);
        c
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn failed(&self) -> bool {
        !lock(&self.model).violations.is_empty()
    }

    fn failure(&self) -> anyhow::Error {
        let model = lock(&self.model);
        let shown: Vec<&str> = model
            .violations
            .iter()
            .take(20)
            .map(String::as_str)
            .collect();
        anyhow::anyhow!(
            "the torture test failed (seed {}; files kept in {}):\n  - {}{}",
            self.config.seed,
            self.config.dir.display(),
            shown.join("\n  - "),
            if model.violations.len() > shown.len() {
                format!("\n  ... and {} more", model.violations.len() - shown.len())
            } else {
                String::new()
            }
        )
    }

    /// Records a broken promise and stops the run.
    fn violation(&self, what: String) {
        lock(&self.model).violations.push(what);
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Waits for the end of the run, printing progress.
    fn supervise(&self, started: Instant) {
        let mut last = Instant::now();
        loop {
            thread::sleep(Duration::from_millis(50));
            let done = match self.config.stop {
                Stop::After(d) => started.elapsed() >= d,
                Stop::Kills { kills, limit } => {
                    lock(&self.report).kills >= kills || started.elapsed() >= limit
                }
            };
            if done || self.stopped() {
                break;
            }
            if self.config.progress && last.elapsed() >= Duration::from_secs(5) {
                last = Instant::now();
                // One lock at a time: `snapshot` takes the model's, then
                // the report's.
                let (versions, tokens) = {
                    let model = lock(&self.model);
                    (model.versions.len(), model.tokens.len())
                };
                let (total, kills) = {
                    let r = lock(&self.report);
                    (r.ops.values().map(|t| t.run).sum::<u64>(), r.kills)
                };
                eprintln!(
                    "torture: {:>4} s: {total} commands, {kills} kills, {versions} versions, {tokens} tokens",
                    started.elapsed().as_secs(),
                );
            }
        }
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Kills a random command in flight every `kill_interval` on average,
    /// slowing down when more than one command in five dies (a loaded
    /// machine runs fewer commands in the same time) and speeding up
    /// under one in ten.
    fn killer(&self, mut rng: Rng) {
        let base = self.config.kill_interval.as_micros() as u64;
        let mut mean = base;
        while !self.stopped() {
            thread::sleep(Duration::from_micros(1 + rng.below(2 * mean)));
            let flights = lock(&self.flights).clone();
            if let Some(f) = rng.pick(&flights) {
                self.kill(f, false);
            }
            let (kills, run) = {
                let r = lock(&self.report);
                (r.kills, r.ops.values().map(|t| t.run).sum::<u64>())
            };
            if run >= 20 {
                if kills * 5 > run {
                    mean = (mean * 11 / 10).min(base * 20);
                } else if kills * 10 < run {
                    mean = (mean * 9 / 10).max(base / 4);
                }
            }
        }
    }

    /// SIGKILLs a command unless it has exited; notes where it was.
    fn kill(&self, flight: &Flight, delayed: bool) -> bool {
        let mut child = lock(&flight.child);
        if !matches!(child.try_wait(), Ok(None)) {
            return false;
        }
        let landing = Landing {
            delayed,
            ..self.landing(flight.pid)
        };
        if child.kill().is_err() {
            return false;
        }
        *lock(&flight.killed) = Some(landing);
        true
    }

    /// Where a live command is: holding the file's lock, writing its
    /// temporary file (from `/proc/locks` and `/proc/PID/fd`).
    fn landing(&self, pid: u32) -> Landing {
        Landing {
            under_lock: holds_lock(pid),
            temporary: self.temporary_of(pid),
            delayed: false,
        }
    }

    /// The temporary file `pid` has open, if any (Linux: `/proc/PID/fd`).
    fn temporary_of(&self, pid: u32) -> Option<PathBuf> {
        open_files(pid).into_iter().find(|p| self.is_temporary(p))
    }

    /// The keyring file's inode (it changes with every rename over it).
    fn inode(&self) -> Option<u64> {
        use std::os::unix::fs::MetadataExt as _;
        fs::metadata(&self.file).ok().map(|m| m.ino())
    }

    fn is_temporary(&self, path: &Path) -> bool {
        let parent = path.parent();
        (parent == self.file.parent() || parent == Some(&self.dir_real))
            && path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&self.temp_prefix))
    }

    /// Runs one command (killable), with `stdin`; after `kill_after`, kills
    /// it. A killed command is followed by a check of the file.
    fn exec(
        &self,
        op: Op,
        args: &[&str],
        stdin: &[u8],
        kill_after: Option<KillAfter>,
    ) -> Result<Outcome> {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot run the binary")?;
        let started = Instant::now();
        if let Some(mut input) = child.stdin.take() {
            // A command killed early never reads it: ignore a broken pipe.
            let _ = input.write_all(stdin);
        }
        let pipes: [Option<Box<dyn std::io::Read + Send>>; 2] = [
            child.stdout.take().map(|p| Box::new(p) as _),
            child.stderr.take().map(|p| Box::new(p) as _),
        ];
        let readers = pipes.map(|pipe| {
            thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut p) = pipe {
                    let _ = p.read_to_end(&mut buf);
                }
                buf
            })
        });
        let flight = Arc::new(Flight {
            pid: child.id(),
            child: Mutex::new(child),
            killed: Mutex::new(None),
        });
        lock(&self.flights).push(Arc::clone(&flight));
        lock(&self.report).tally(op).run += 1;
        // A delayed kill counts from the moment the command takes the
        // file's lock, or opens its temporary file, where that can be seen
        // (Linux); elsewhere from its start.
        let mut pending = kill_after;
        let mut deadline = None;
        let mut armed = false;
        // For a kill after the rename: whether the command holds the lock
        // (then poll closely).
        let mut watched = false;
        let status: ExitStatus = loop {
            if let Some(status) = lock(&flight.child).try_wait().context("cannot wait")? {
                break status;
            }
            if let Some(plan) = pending {
                let (reached, delay) = match plan {
                    _ if !cfg!(target_os = "linux") => (true, plan.delay()),
                    KillAfter::Lock(d) => (holds_lock(flight.pid), d),
                    KillAfter::Temporary(d) => (self.temporary_of(flight.pid).is_some(), d),
                    // It holds the lock on the file it read; once the path
                    // names another file, it renamed its own over it.
                    KillAfter::Rename(d) => match locked_inode(flight.pid) {
                        Some(locked) => {
                            watched = true;
                            (self.inode() != Some(locked), d)
                        }
                        None => (false, d),
                    },
                };
                let anchor = if !cfg!(target_os = "linux") {
                    Some(started)
                } else {
                    reached.then(Instant::now)
                };
                if let Some(anchor) = anchor {
                    deadline = Some(anchor + delay);
                    armed = true;
                    lock(&self.report).kills_planned[plan.index()] += 1;
                    pending = None;
                } else {
                    // Close to the rename, watch closely.
                    let poll = if watched { 20 } else { 100 };
                    thread::sleep(Duration::from_micros(poll));
                    continue;
                }
            }
            if let Some(at) = deadline {
                let now = Instant::now();
                if now >= at {
                    deadline = None;
                    self.kill(&flight, true);
                } else {
                    thread::sleep((at - now).min(Duration::from_micros(500)));
                }
                continue;
            }
            let elapsed = started.elapsed();
            thread::sleep(
                (elapsed / 8).clamp(Duration::from_micros(100), Duration::from_millis(2)),
            );
        };
        lock(&self.flights).retain(|f| !Arc::ptr_eq(f, &flight));
        if let (true, Some(plan), false) = (armed, kill_after, status.signal() == Some(9)) {
            // The command exited before the delayed kill.
            self.adapt_kill_delay(plan, false);
        }
        let [stdout, stderr] = readers.map(|r| r.join().unwrap_or_default());
        let stderr = String::from_utf8_lossy(&stderr).into_owned();
        let landing = lock(&flight.killed).take();
        let exit = match (status.signal(), landing) {
            (Some(9), Some(landing)) => {
                let view = self.after_kill(op, &landing);
                Exit::Killed(landing, view)
            }
            (_, landing) => {
                if landing.is_some() {
                    lock(&self.report).kills_missed += 1;
                }
                match status.code() {
                    Some(0) => Exit::Acked,
                    Some(1) => Exit::Refused,
                    _ => {
                        self.violation(format!(
                            "`{}` ended with {status}: {}",
                            args.join(" "),
                            stderr.trim()
                        ));
                        Exit::Broken
                    }
                }
            }
        };
        {
            let mut r = lock(&self.report);
            let tally = r.tally(op);
            match exit {
                Exit::Acked => tally.acked += 1,
                Exit::Refused => tally.refused += 1,
                Exit::Killed(..) => tally.killed += 1,
                Exit::Broken => {}
            }
        }
        if matches!(exit, Exit::Refused) {
            // The contract of every failure: one `error:` line, no output.
            let errors = stderr.lines().filter(|l| l.starts_with("error: ")).count();
            if errors != 1 || !stdout.is_empty() {
                self.violation(format!(
                    "`{}` failed without exactly one error line and an empty stdout: {stderr:?}",
                    args.join(" ")
                ));
            }
        }
        Ok(Outcome {
            exit,
            stdout,
            stderr,
        })
    }

    /// After a kill: counts where it landed, reads and checks the file,
    /// runs `verify`.
    fn after_kill(&self, op: Op, landing: &Landing) -> View {
        {
            let mut r = lock(&self.report);
            r.kills += 1;
            r.kills_of_writes += u64::from(op.writes());
            r.kills_delayed += u64::from(landing.delayed);
            r.kills_under_lock += u64::from(landing.under_lock && op.writes());
            if let Some(tmp) = &landing.temporary {
                r.kills_holding_temporary += 1;
                r.kills_left_temporary += u64::from(tmp.exists());
            }
        }
        let view = self.snapshot();
        self.verify();
        lock(&self.report).checks_after_kill += 1;
        view
    }

    /// `secrets-manager verify` must exit 0.
    fn verify(&self) {
        match self.command(&["verify"]).output() {
            Ok(out) if out.status.success() => lock(&self.report).verifies += 1,
            Ok(out) => self.violation(format!(
                "verify failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => self.violation(format!("cannot run verify: {e}")),
        }
    }

    /// Reads the file and checks it against everything seen before, in
    /// the order reads happen. A broken file is a violation (and an
    /// empty view is returned).
    fn snapshot(&self) -> View {
        let mut model = lock(&self.model);
        match self.read_view() {
            Ok(view) => {
                let problems = observe(&mut model, &view);
                let mut r = lock(&self.report);
                r.snapshots += 1;
                r.temporaries_seen_max = r.temporaries_seen_max.max(view.temporaries.len() as u64);
                drop(r);
                if !problems.is_empty() {
                    model.violations.extend(problems);
                    self.stop.store(true, Ordering::Relaxed);
                }
                view
            }
            Err(e) => {
                model.violations.push(format!("the file is damaged: {e}"));
                self.stop.store(true, Ordering::Relaxed);
                View::default()
            }
        }
    }

    /// The file's keyring variables (values as written, quotes and all),
    /// its mode and the temporary files next to it.
    fn read_view(&self) -> Result<View> {
        let mut f = fs::File::open(&self.file).context("cannot open the file")?;
        let mode = f.metadata().context("cannot stat")?.permissions().mode() & 0o7777;
        ensure!(mode == 0o600, "mode {mode:04o}, not 0600");
        let mut text = String::new();
        f.read_to_string(&mut text).context("not UTF-8")?;
        let mut vars: BTreeMap<&str, &str> = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, value) = line
                .split_once('=')
                .with_context(|| format!("line {}: not NAME=value", n + 1))?;
            ensure!(
                vars.insert(name, value).is_none(),
                "line {}: {name} twice",
                n + 1
            );
        }
        let mut view = View::default();
        let mut parts: BTreeMap<String, BTreeMap<&'static str, String>> = BTreeMap::new();
        for (name, value) in vars {
            if name == ACTIVE {
                view.active = Some(unquote(value).to_ascii_lowercase());
                continue;
            }
            if name == CHECKSUM {
                continue;
            }
            let prefix = PER_VERSION
                .into_iter()
                .find(|p| name.starts_with(p))
                .with_context(|| format!("unexpected variable {name}"))?;
            let version = name[prefix.len()..].to_ascii_lowercase();
            parts
                .entry(version)
                .or_default()
                .insert(prefix, value.to_owned());
        }
        for (version, mut vars) in parts {
            let state = match vars.remove(STATE).as_deref().map(unquote) {
                None => State::Usable,
                Some("retired") => State::Retired,
                Some("destroyed") => State::Destroyed,
                Some(other) => bail!("{STATE}{version} is {other:?}"),
            };
            let iterations = vars.remove(ITERATIONS);
            vars.remove(ACTIVATED_AT);
            let material: Material = vars;
            ensure!(
                state == State::Destroyed
                    || material.contains_key(KEYS)
                    || material.contains_key(FERNET_KEY),
                "version {version} has no key"
            );
            view.versions.insert(
                version,
                Seen {
                    material,
                    iterations,
                    state,
                },
            );
        }
        let dir = self.file.parent().unwrap_or(Path::new("."));
        view.temporaries = fs::read_dir(dir)
            .context("cannot list the directory")?
            .flatten()
            .map(|e| e.path())
            .filter(|p| self.is_temporary(p))
            .collect();
        Ok(view)
    }

    fn worker(&self, id: usize, mut rng: Rng) {
        while !self.stopped() {
            let op = Op::choose(&mut rng);
            let result = match op {
                Op::Encrypt => self.encrypt(&mut rng),
                Op::Rotate | Op::RotateStaged => self.rotate(&mut rng, op),
                Op::Collide => self.collide(&mut rng),
                Op::RotateExisting => self.rotate_existing(&mut rng),
                Op::Activate => self.activate(&mut rng),
                Op::Retire => self.retire(&mut rng),
                Op::Destroy => self.destroy(&mut rng),
                Op::Decrypt => self.decrypt(&mut rng),
            };
            if let Err(e) = result {
                self.violation(format!("worker {id}: {op}: {e:#}"));
            }
        }
    }

    fn fresh_name(&self, prefix: &str) -> String {
        format!("{prefix}{}", self.names.fetch_add(1, Ordering::Relaxed))
    }

    /// A delayed kill for `percent` of the rotations, a random time after
    /// the rotation takes the lock (35%), opens its temporary file (30%)
    /// or renames it over the file (35%), as `/proc` shows on Linux;
    /// elsewhere after its start. Each range starts small (5, 2, 0.2 ms)
    /// and adapts: a kill that came too early (the version not written)
    /// widens it, one too late (the command had exited) narrows it, so
    /// the ranges straddle the end of the write wherever it is on this
    /// machine, and kills land on both sides of it.
    fn kill_plan(&self, rng: &mut Rng, percent: u64) -> Option<KillAfter> {
        if !rng.chance(percent) {
            return None;
        }
        let roll = rng.below(100);
        let index = usize::from(roll >= 35) + usize::from(roll >= 65);
        let range = self.kill_delay_us[index].load(Ordering::Relaxed);
        let delay = Duration::from_micros(rng.below(range + 1));
        Some(match index {
            0 => KillAfter::Lock(delay),
            1 => KillAfter::Temporary(delay),
            _ => KillAfter::Rename(delay),
        })
    }

    /// A delayed kill came too early (`true`) or too late.
    fn adapt_kill_delay(&self, plan: KillAfter, early: bool) {
        let range = &self.kill_delay_us[plan.index()];
        let now = range.load(Ordering::Relaxed);
        let next = if early { now * 5 / 4 } else { now * 4 / 5 };
        range.store(next.clamp(200, 500_000), Ordering::Relaxed);
    }

    fn refused(&self, reason: &'static str) {
        *lock(&self.report).refusals.entry(reason).or_default() += 1;
    }

    /// Why a command was refused, if the reason is one of `allowed`.
    fn reason(
        &self,
        out: &Outcome,
        version: &str,
        allowed: &[&'static str],
        what: &str,
    ) -> Option<&'static str> {
        let says = |s: &str| out.stderr.contains(&format!("version {version} {s}"));
        let reason = if says("already exists there with different key material") {
            Some(REFUSED_CONFLICT)
        } else if says("already exists") {
            Some(REFUSED_DUPLICATE)
        } else if says("is destroyed") || says("was destroyed") {
            Some(REFUSED_DESTROYED)
        } else if says("is retired") {
            Some(REFUSED_RETIRED)
        } else if says("is active") {
            Some(REFUSED_ACTIVE)
        } else {
            None
        };
        match reason {
            Some(r) if allowed.contains(&r) => {
                self.refused(r);
                Some(r)
            }
            _ => {
                self.violation(format!(
                    "{what} was refused for an unexpected reason: {}",
                    out.stderr.trim()
                ));
                None
            }
        }
    }

    /// The password the file first showed for `version`, if any.
    fn first_password(&self, version: &str) -> Option<String> {
        let model = lock(&self.model);
        let material = model.versions.get(version)?.material.as_ref()?;
        material.get(KEYS).map(|p| unquote(p).to_owned())
    }

    /// An acknowledged rotation: the version must be in the file (as
    /// first seen) with the password given, if one was.
    fn promise(&self, version: &str, password: Option<&str>, what: &str) {
        self.snapshot();
        let mut model = lock(&self.model);
        let problem = match model.versions.get_mut(version) {
            None => Some("is not in the file".to_owned()),
            Some(known) => {
                known.promised = true;
                match (&known.material, password) {
                    (None, _) => Some(
                        "is in the file as a tombstone: its material was never written".to_owned(),
                    ),
                    (Some(m), Some(p)) if m.get(KEYS).map(|k| unquote(k)) != Some(p) => {
                        Some("is in the file with another password".to_owned())
                    }
                    _ => None,
                }
            }
        };
        if let Some(problem) = problem {
            model.violations.push(format!(
                "{what} was acknowledged, but version {version} {problem}"
            ));
            self.stop.store(true, Ordering::Relaxed);
        }
    }

    /// Arguments of a rotation; the password when the test chose it.
    fn rotation(
        rng: &mut Rng,
        name: &str,
        staged: bool,
        own_password: bool,
    ) -> (Vec<String>, Option<String>) {
        let mut args = vec![
            "rotate".to_owned(),
            "--new-version".to_owned(),
            name.to_owned(),
        ];
        if staged {
            args.push("--no-activate".to_owned());
        }
        let len = 8 + rng.below(24) as usize;
        let password = own_password.then(|| rng.text(len));
        if password.is_some() {
            args.push("--password-stdin".to_owned());
        }
        if rng.chance(50) {
            args.push("--salt".to_owned());
            args.push(rng.hex(16));
        }
        (args, password)
    }

    fn rotate(&self, rng: &mut Rng, op: Op) -> Result<()> {
        let name = self.fresh_name("f");
        let own = rng.chance(70);
        let (args, password) = Self::rotation(rng, &name, op == Op::RotateStaged, own);
        let kill_after = self.kill_plan(rng, 40);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let stdin = password
            .as_ref()
            .map(|p| format!("{p}\n"))
            .unwrap_or_default();
        let out = self.exec(op, &args, stdin.as_bytes(), kill_after)?;
        match out.exit {
            Exit::Acked => {
                self.promise(&name, password.as_deref(), &format!("`{}`", args.join(" ")))
            }
            Exit::Killed(landing, view) => {
                let landed = view.versions.contains_key(&name);
                if landed && password.is_some() && view.password(&name) != password.as_deref() {
                    self.violation(format!(
                        "killed rotation to {name} landed with another password"
                    ));
                }
                let mut r = lock(&self.report);
                if landed {
                    r.killed_rotations_landed += 1;
                } else {
                    r.killed_rotations_not_landed += 1;
                }
                drop(r);
                if let (true, Some(plan), false) = (landing.delayed, kill_after, landed) {
                    self.adapt_kill_delay(plan, true);
                }
            }
            Exit::Refused => {
                self.violation(format!(
                    "rotation to the fresh name {name} was refused: {}",
                    out.stderr.trim()
                ));
            }
            Exit::Broken => {}
        }
        Ok(())
    }

    /// Several rotations to one fresh name at once, each with its own
    /// password: exactly one wins (unless a racer was killed), the others
    /// are refused, and the file holds the winner's password.
    fn collide(&self, rng: &mut Rng) -> Result<()> {
        let name = self.fresh_name("c");
        let racers: Vec<(Vec<String>, String, Option<KillAfter>)> = (0..2 + rng.below(3))
            .map(|_| {
                let staged = rng.chance(50);
                let (args, password) = Self::rotation(rng, &name, staged, true);
                let kill = self.kill_plan(rng, 20);
                (args, password.unwrap_or_default(), kill)
            })
            .collect();
        let outcomes: Vec<Result<Outcome>> = thread::scope(|s| {
            let handles: Vec<_> = racers
                .iter()
                .map(|(args, password, kill)| {
                    s.spawn(move || {
                        let args: Vec<&str> = args.iter().map(String::as_str).collect();
                        self.exec(
                            Op::Collide,
                            &args,
                            format!("{password}\n").as_bytes(),
                            *kill,
                        )
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("a racer panicked")))
                })
                .collect()
        });
        let view = self.snapshot();
        let in_file = view.password(&name).map(str::to_owned);
        // The password the file first showed for the name: the winner's
        // (a destroyed version's is erased from the file since).
        let first = self.first_password(&name);
        let tombstone = view.state(&name) == Some(State::Destroyed);
        let (mut acked, mut killed) = (Vec::new(), 0);
        for ((args, password, _), out) in racers.iter().zip(outcomes) {
            let out = out?;
            match out.exit {
                Exit::Acked if first.as_deref() == Some(password.as_str()) => {
                    acked.push(password.clone());
                }
                Exit::Acked if tombstone && args.iter().any(|a| a == "--no-activate") => {
                    // Once a bug (pinned by
                    // `a_staged_rotation_onto_a_name_destroyed_meanwhile_is_refused`):
                    // loaded before the name existed, written after it was
                    // destroyed, acknowledged, never written.
                    lock(&self.report).known_bug_staged_onto_tombstone += 1;
                    self.violation(format!(
                        "a staged rotation to {name} was acknowledged, but {name} is a tombstone \
                         and its password was never written"
                    ));
                }
                Exit::Acked => self.violation(format!(
                    "a rotation racing to {name} was acknowledged, but the file never showed its password"
                )),
                Exit::Killed(..) => killed += 1,
                Exit::Refused => {
                    let allowed = [REFUSED_CONFLICT, REFUSED_DUPLICATE, REFUSED_DESTROYED];
                    self.reason(
                        &out,
                        &name,
                        &allowed,
                        &format!("a rotation racing to {name}"),
                    );
                    if in_file.as_deref() == Some(password.as_str()) {
                        self.violation(format!(
                            "a refused rotation to {name} left its password in the file"
                        ));
                    }
                }
                Exit::Broken => {}
            }
        }
        let mut r = lock(&self.report);
        r.collision_groups += 1;
        match acked.len() {
            1 => r.collision_one_winner += 1,
            0 if killed > 0 => r.collision_winner_killed += 1,
            n => {
                drop(r);
                self.violation(format!(
                    "{n} of {} rotations racing to {name} were acknowledged ({killed} killed); exactly one must win",
                    racers.len()
                ));
                return Ok(());
            }
        }
        drop(r);
        if let Some(winner) = acked.first() {
            self.promise(
                &name,
                Some(winner),
                &format!("the winning rotation to {name}"),
            );
        }
        Ok(())
    }

    /// A rotation to a name the file has must be refused, whatever the
    /// version's state.
    fn rotate_existing(&self, rng: &mut Rng) -> Result<()> {
        let names: Vec<String> = lock(&self.model).versions.keys().cloned().collect();
        let Some(name) = rng.pick(&names).cloned() else {
            return Ok(());
        };
        let staged = rng.chance(50);
        let (args, password) = Self::rotation(rng, &name, staged, true);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let stdin = format!("{}\n", password.unwrap_or_default());
        let out = self.exec(Op::RotateExisting, &args, stdin.as_bytes(), None)?;
        match out.exit {
            Exit::Acked => self.violation(format!(
                "`{}` was acknowledged, but {name} existed already",
                args.join(" ")
            )),
            Exit::Refused => {
                let allowed = [REFUSED_CONFLICT, REFUSED_DUPLICATE, REFUSED_DESTROYED];
                self.reason(
                    &out,
                    &name,
                    &allowed,
                    &format!("rotation to existing {name}"),
                );
            }
            Exit::Killed(..) | Exit::Broken => {}
        }
        Ok(())
    }

    /// Versions of the model in a state, not active (per the model).
    /// `tokens`: only versions with ledger tokens (`Some(true)`), only
    /// without (`Some(false)`), or any.
    fn candidates(&self, states: &[State], tokens: Option<bool>) -> Vec<String> {
        let model = lock(&self.model);
        model
            .versions
            .iter()
            .filter(|(v, k)| {
                states.contains(&k.state)
                    && model.active.as_deref() != Some(v.as_str())
                    && tokens.is_none_or(|t| t == (k.tokens > 0))
            })
            .map(|(v, _)| v.clone())
            .collect()
    }

    fn activate(&self, rng: &mut Rng) -> Result<()> {
        let before = self.snapshot();
        let states: &[State] = if rng.chance(85) {
            &[State::Usable]
        } else {
            &[State::Retired, State::Destroyed]
        };
        let Some(version) = rng.pick(&self.candidates(states, None)).cloned() else {
            return Ok(());
        };
        let out = self.exec(Op::Activate, &["activate", &version], b"", None)?;
        match out.exit {
            Exit::Acked => {
                // (A version `before` does not show yet is not judged.)
                if before.state(&version) > Some(State::Usable) {
                    self.violation(format!(
                        "activate {version} was acknowledged, but it was {:?} before",
                        before.state(&version)
                    ));
                }
            }
            Exit::Refused => {
                let reason = self.reason(
                    &out,
                    &version,
                    &[REFUSED_RETIRED, REFUSED_DESTROYED],
                    &format!("activate {version}"),
                );
                self.check_refusal_state(&version, reason);
            }
            Exit::Killed(..) | Exit::Broken => {}
        }
        Ok(())
    }

    /// A refusal naming a retired or destroyed version: the file must say
    /// so afterwards (states never go back).
    fn check_refusal_state(&self, version: &str, reason: Option<&'static str>) {
        let needed = match reason {
            Some(REFUSED_RETIRED) => State::Retired,
            Some(REFUSED_DESTROYED) => State::Destroyed,
            _ => return,
        };
        let after = self.snapshot();
        if after.state(version) < Some(needed) {
            self.violation(format!(
                "a command was refused because {version} is {needed:?}, but the file says {:?}",
                after.state(version)
            ));
        }
    }

    fn retire(&self, rng: &mut Rng) -> Result<()> {
        let mut candidates = Vec::new();
        if rng.chance(40) {
            candidates = self.candidates(&[State::Usable], Some(true));
        }
        if candidates.is_empty() {
            candidates = self.candidates(&[State::Usable, State::Retired, State::Destroyed], None);
        }
        let Some(version) = rng.pick(&candidates).cloned() else {
            return Ok(());
        };
        let out = self.exec(Op::Retire, &["retire", &version], b"", None)?;
        match out.exit {
            Exit::Acked => {
                let after = self.snapshot();
                if after.state(&version) < Some(State::Retired) {
                    self.violation(format!(
                        "retire {version} was acknowledged, but the file says {:?}",
                        after.state(&version)
                    ));
                }
            }
            Exit::Refused => {
                self.reason(
                    &out,
                    &version,
                    &[REFUSED_ACTIVE],
                    &format!("retire {version}"),
                );
            }
            Exit::Killed(..) | Exit::Broken => {}
        }
        Ok(())
    }

    fn destroy(&self, rng: &mut Rng) -> Result<()> {
        let mut candidates = Vec::new();
        if rng.chance(80) {
            // Keep some retired versions with tokens: destroy those with
            // tokens less often.
            candidates = self.candidates(&[State::Retired], Some(rng.chance(30)));
        }
        if candidates.is_empty() {
            candidates = self.candidates(&[State::Usable], None);
        }
        let Some(version) = rng.pick(&candidates).cloned() else {
            return Ok(());
        };
        let out = self.exec(Op::Destroy, &["destroy", &version, "--yes"], b"", None)?;
        match out.exit {
            Exit::Acked => {
                let after = self.snapshot();
                if after.state(&version) != Some(State::Destroyed) {
                    self.violation(format!(
                        "destroy {version} was acknowledged, but the file says {:?}",
                        after.state(&version)
                    ));
                }
            }
            Exit::Refused => {
                self.reason(
                    &out,
                    &version,
                    &[REFUSED_ACTIVE],
                    &format!("destroy {version}"),
                );
            }
            Exit::Killed(..) | Exit::Broken => {}
        }
        Ok(())
    }

    fn encrypt(&self, rng: &mut Rng) -> Result<()> {
        let before = self.snapshot();
        let len = rng.below(48) as usize;
        let plaintext: Vec<u8> = if rng.chance(20) {
            (0..len).map(|_| rng.below(256) as u8).collect()
        } else {
            rng.text(len).into_bytes()
        };
        let out = self.exec(Op::Encrypt, &["encrypt"], &plaintext, None)?;
        match out.exit {
            Exit::Acked => {}
            Exit::Refused => {
                self.violation(format!("encrypt failed: {}", out.stderr.trim()));
                return Ok(());
            }
            Exit::Killed(..) | Exit::Broken => return Ok(()),
        }
        let token = match std::str::from_utf8(&out.stdout)
            .ok()
            .and_then(|s| s.strip_suffix('\n'))
            .filter(|t| {
                !t.is_empty()
                    && t.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_=".contains(&b))
            }) {
            Some(t) => t.to_owned(),
            None => {
                self.violation(format!(
                    "encrypt printed {:?}, not one token line",
                    out.stdout
                ));
                return Ok(());
            }
        };
        let after = self.snapshot();
        // Most likely the active version before or after; then the usable
        // ones; then the rest (active for a moment, retired since).
        let mut candidates: Vec<String> = before.active.into_iter().chain(after.active).collect();
        for usable in [true, false] {
            candidates.extend(
                after
                    .versions
                    .iter()
                    .filter(|(_, s)| (s.state == State::Usable) == usable)
                    .map(|(v, _)| v.clone()),
            );
        }
        let mut seen = BTreeSet::new();
        candidates.retain(|v| seen.insert(v.clone()));
        match self.oracle(&token, &plaintext, &candidates)? {
            Some(version) => {
                let mut model = lock(&self.model);
                if let Some(k) = model.versions.get_mut(&version) {
                    k.tokens += 1;
                }
                model.tokens.push(Token {
                    token,
                    plaintext,
                    version,
                });
            }
            None => self.violation(format!(
                "an acknowledged token opens under none of the versions in the file: {token}"
            )),
        }
        Ok(())
    }

    /// The version whose key opens `token` (to `plaintext`), trying each
    /// candidate alone in a one-version keyring written from the material
    /// the file showed.
    fn oracle(
        &self,
        token: &str,
        plaintext: &[u8],
        candidates: &[String],
    ) -> Result<Option<String>> {
        for version in candidates {
            let Some(file) = self.oracle_file(version)? else {
                continue;
            };
            let mut child = self
                .command_for(&file, &["decrypt"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .context("cannot run the binary")?;
            if let Some(mut input) = child.stdin.take() {
                input
                    .write_all(token.as_bytes())
                    .context("cannot write to decrypt")?;
            }
            let out = child.wait_with_output().context("cannot run decrypt")?;
            if out.status.success() {
                if out.stdout != plaintext {
                    self.violation(format!(
                        "a token under {version} decrypts to other bytes than were encrypted"
                    ));
                }
                return Ok(Some(version.clone()));
            }
        }
        Ok(None)
    }

    /// A keyring file holding only `version`, from the material the test
    /// recorded for it (so a destroyed version can still be named).
    fn oracle_file(&self, version: &str) -> Result<Option<PathBuf>> {
        let path = self.oracle_dir.join(format!("{version}.env"));
        if path.exists() {
            return Ok(Some(path));
        }
        let (material, iterations) = {
            let model = lock(&self.model);
            match model.versions.get(version) {
                Some(Known {
                    material: Some(m),
                    iterations,
                    ..
                }) => (m.clone(), iterations.clone()),
                _ => return Ok(None),
            }
        };
        let mut text = String::new();
        for (prefix, value) in material
            .iter()
            .map(|(p, v)| (*p, v))
            .chain(iterations.iter().map(|i| (ITERATIONS, i)))
        {
            text.push_str(&format!("{prefix}{version}={value}\n"));
        }
        text.push_str(&format!("{ACTIVE}={version}\n"));
        // Workers may write the same file at once: each writes its own
        // copy and renames it into place, so no reader sees half a file.
        static COPIES: AtomicU64 = AtomicU64::new(0);
        let copy = self.oracle_dir.join(format!(
            "{version}.env.{}",
            COPIES.fetch_add(1, Ordering::Relaxed)
        ));
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&copy)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .and_then(|()| fs::rename(&copy, &path))
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(Some(path))
    }

    /// A ledger token during the run: `decrypt --hint V` opens it while V
    /// is usable; once V is retired or destroyed it fails naming V.
    fn decrypt(&self, rng: &mut Rng) -> Result<()> {
        let token = {
            let model = lock(&self.model);
            match rng.pick(&model.tokens) {
                Some(t) => t.clone(),
                None => return Ok(()),
            }
        };
        let before = self.snapshot().state(&token.version);
        let out = self.exec(
            Op::Decrypt,
            &["decrypt", "--hint", &token.version],
            token.token.as_bytes(),
            None,
        )?;
        match out.exit {
            Exit::Acked => {
                lock(&self.report).tokens_checked_during += 1;
                if out.stdout != token.plaintext {
                    self.violation(format!(
                        "a token under {} decrypts to other bytes",
                        token.version
                    ));
                } else if before > Some(State::Usable) {
                    self.violation(format!(
                        "a token under {} decrypted, but the version was {before:?} already",
                        token.version
                    ));
                }
            }
            Exit::Refused => {
                lock(&self.report).tokens_checked_during += 1;
                let reason = self.reason(
                    &out,
                    &token.version,
                    &[REFUSED_RETIRED, REFUSED_DESTROYED],
                    &format!("decrypting a token under {}", token.version),
                );
                self.check_refusal_state(&token.version, reason);
            }
            Exit::Killed(..) | Exit::Broken => {}
        }
        Ok(())
    }

    /// After the workers stopped: one more write must clean up every
    /// temporary file; then every ledger token is decrypted, and every
    /// version is counted.
    fn finish(&self) -> Result<()> {
        let view = self.snapshot();
        lock(&self.report).temporaries_at_end = view.temporaries.len() as u64;
        self.verify();
        let password = "the final write";
        let out = self
            .command(&[
                "rotate",
                "--new-version",
                "final",
                "--no-activate",
                "--password-stdin",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                if let Some(mut input) = child.stdin.take() {
                    input.write_all(format!("{password}\n").as_bytes())?;
                }
                child.wait_with_output()
            })
            .context("cannot run the final rotation")?;
        ensure!(
            out.status.success(),
            "the final rotation failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        self.promise("final", Some(password), "the final rotation");
        let view = self.snapshot();
        if !view.temporaries.is_empty() {
            self.violation(format!(
                "temporary files left after the final write: {:?}",
                view.temporaries
            ));
        }
        self.verify();

        let tokens = lock(&self.model).tokens.clone();
        // Without a hint, decryption may try every version: a sample.
        let step = (tokens.len() / 100).max(1);
        let threads = 2;
        thread::scope(|s| {
            for part in 0..threads {
                let (view, tokens) = (&view, &tokens);
                s.spawn(move || {
                    for (n, t) in tokens.iter().enumerate().skip(part).step_by(threads) {
                        self.check_token(t, view.state(&t.version), n % step == 0);
                    }
                });
            }
        });

        let model = lock(&self.model);
        let mut r = lock(&self.report);
        r.tokens = tokens.len() as u64;
        r.versions = view.versions.len() as u64;
        for seen in view.versions.values() {
            r.versions_by_state[seen.state as usize] += 1;
        }
        r.versions_promised = model.versions.values().filter(|k| k.promised).count() as u64;
        Ok(())
    }

    /// A ledger token at the end, with `--hint` (exact: it opens, or the
    /// error names its retired or destroyed version), and without.
    fn check_token(&self, t: &Token, state: Option<State>, without_hint: bool) {
        let decrypt = |args: &[&str]| -> Option<std::process::Output> {
            let run = self
                .command(args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .and_then(|mut child| {
                    if let Some(mut input) = child.stdin.take() {
                        input.write_all(t.token.as_bytes())?;
                    }
                    child.wait_with_output()
                });
            match run {
                Ok(out) => Some(out),
                Err(e) => {
                    self.violation(format!("cannot run decrypt: {e}"));
                    None
                }
            }
        };
        let v = &t.version;
        let Some(out) = decrypt(&["decrypt", "--hint", v]) else {
            return;
        };
        let stderr = String::from_utf8_lossy(&out.stderr);
        let expected = match state {
            Some(State::Usable) => None,
            Some(State::Retired) => Some(format!("version {v} is retired")),
            Some(State::Destroyed) => Some(format!("version {v} was destroyed")),
            None => {
                self.violation(format!("version {v} of a ledger token is not in the file"));
                return;
            }
        };
        match &expected {
            None if out.status.success() && out.stdout == t.plaintext => {
                lock(&self.report).tokens_decrypted += 1;
            }
            Some(says)
                if out.status.code() == Some(1)
                    && out.stdout.is_empty()
                    && stderr.contains(says) =>
            {
                let mut r = lock(&self.report);
                if state == Some(State::Retired) {
                    r.tokens_retired += 1;
                } else {
                    r.tokens_destroyed += 1;
                }
            }
            _ => {
                self.violation(format!(
                    "a token under {v} ({state:?}): `decrypt --hint {v}` exited {} with {} bytes: {}",
                    out.status,
                    out.stdout.len(),
                    stderr.trim()
                ));
                return;
            }
        }
        if !without_hint {
            return;
        }
        let Some(out) = decrypt(&["decrypt"]) else {
            return;
        };
        let stderr = String::from_utf8_lossy(&out.stderr);
        let mut r = lock(&self.report);
        r.tokens_without_hint += 1;
        match &expected {
            None if out.status.success() && out.stdout == t.plaintext => {}
            Some(says) if out.status.code() == Some(1) && out.stdout.is_empty() => {
                r.tokens_without_hint_refused += 1;
                r.tokens_without_hint_named += u64::from(stderr.contains(says));
            }
            _ => {
                drop(r);
                self.violation(format!(
                    "a token under {v} ({state:?}): `decrypt` exited {} with {} bytes: {}",
                    out.status,
                    out.stdout.len(),
                    stderr.trim()
                ));
            }
        }
    }
}

/// Checks one read of the file against the model and records what is
/// new. Returns what broke.
fn observe(model: &mut Model, view: &View) -> Vec<String> {
    let mut problems = Vec::new();
    for (version, known) in &mut model.versions {
        let Some(seen) = view.versions.get(version) else {
            problems.push(format!("version {version} disappeared from the file"));
            continue;
        };
        if seen.state < known.state {
            problems.push(format!(
                "version {version} went back from {:?} to {:?}",
                known.state, seen.state
            ));
        }
        if seen.iterations != known.iterations {
            problems.push(format!(
                "version {version}: iteration record changed from {:?} to {:?}",
                known.iterations, seen.iterations
            ));
        }
        if seen.state == State::Destroyed {
            if !seen.material.is_empty() {
                problems.push(format!(
                    "version {version} is destroyed but its key material is still in the file"
                ));
            }
        } else if known.material.as_ref() != Some(&seen.material) {
            let changed: Vec<&str> = MATERIAL
                .into_iter()
                .filter(|p| known.material.as_ref().and_then(|m| m.get(p)) != seen.material.get(p))
                .collect();
            problems.push(format!(
                "version {version}: key material changed ({})",
                changed.join(", ")
            ));
        }
        known.state = known.state.max(seen.state);
    }
    for (version, seen) in &view.versions {
        model
            .versions
            .entry(version.clone())
            .or_insert_with(|| Known {
                material: (seen.state != State::Destroyed).then(|| seen.material.clone()),
                iterations: seen.iterations.clone(),
                state: seen.state,
                promised: false,
                tokens: 0,
            });
    }
    match view.active.as_deref().map(|a| (a, view.state(a))) {
        Some((_, Some(State::Usable))) => {}
        Some((a, state)) => problems.push(format!("the active version {a} is {state:?}")),
        None => problems.push("no active version".to_owned()),
    }
    model.active.clone_from(&view.active);
    problems
}

/// The files `pid` has open (Linux: `/proc/PID/fd`; empty elsewhere).
fn open_files(pid: u32) -> Vec<PathBuf> {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| fs::read_link(e.path()).ok())
        .collect()
}

/// Whether process `pid` holds a `flock` (Linux: `/proc/locks`; the
/// commands lock nothing but the keyring file). Always false elsewhere.
fn holds_lock(pid: u32) -> bool {
    locked_inode(pid).is_some()
}

/// The inode of the file process `pid` holds a `flock` on (Linux:
/// `/proc/locks`; `None` elsewhere).
fn locked_inode(pid: u32) -> Option<u64> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let pid = pid.to_string();
    let locks = fs::read_to_string("/proc/locks").ok()?;
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // `N: FLOCK ADVISORY WRITE PID MAJ:MIN:INODE 0 EOF`; waiters read
        // `N: -> FLOCK ...`.
        if fields.get(1) != Some(&"FLOCK") || fields.get(4) != Some(&pid.as_str()) {
            return None;
        }
        fields.get(5)?.rsplit(':').next()?.parse().ok()
    })
}

/// A value without its surrounding quotes (values here need no escapes).
fn unquote(value: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = value.strip_prefix(q).and_then(|v| v.strip_suffix(q)) {
            return inner;
        }
    }
    value
}
