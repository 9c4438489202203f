//! Project automation: `cargo xtask <command>`.
//!
//! - `ci`: exactly what CI runs (format, supply-chain policy, lints, tests,
//!   docs, vector drift, the README walkthroughs, man pages, a short torture
//!   run, fuzz smoke). It sets `CI=true` for everything it starts, whatever
//!   the calling shell has, so a local run is the CI run: Python interop
//!   tests fail instead of skipping when Python is missing.
//! - `vectors [--check]`: regenerate the Python-made test vectors, or fail if
//!   they would change; compare the embedded Fernet spec vectors with the
//!   spec's own files when those sit beside the checkout.
//! - `fuzz [--seconds N] [TARGET...]`: run fuzz targets (all by default).
//! - `bench [--quick]`: run the benchmarks and print ratios against the
//!   peers and the bare primitives, all measured in the same run, then a
//!   rotation's propagation to 50 watching managers (file and etcd).
//! - `torture [--seconds N] [--seed S] [--workers W] [--release] [--keep]`:
//!   random operations on one keyring file from several processes, random
//!   kills, every acknowledged operation checked against a ledger
//!   (`torture.rs`).
//! - `crash [--rounds N]`: the torture test until N kills have landed.
//! - `readme`: run the README's command-line walkthroughs, top to bottom,
//!   in a scratch directory.
//! - `man [--check]`: write the man pages (`doc/man`) from the CLI's own
//!   argument definitions, or fail if the committed ones are stale.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail, ensure};

mod bench;
mod bench_db;
mod man;
mod readme;
#[cfg(unix)]
mod torture;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, rest) = args
        .split_first()
        .map_or(("help", &[][..]), |(c, r)| (c.as_str(), r));
    match cmd {
        "ci" => ci(rest),
        "vectors" => vectors(rest.iter().any(|a| a == "--check")),
        "fuzz" => fuzz(rest),
        "bench" => bench::run(&root(), rest.iter().any(|a| a == "--quick")),
        "torture" => torture_command(rest, None),
        "crash" => {
            let kills = flag_value(rest, "--rounds")?.unwrap_or(500);
            torture_command(rest, Some(kills))
        }
        "readme" => readme::run(&root()),
        "man" => man::run(&root(), rest.iter().any(|a| a == "--check")),
        "help" | "--help" | "-h" => {
            println!("{}", HELP.trim());
            Ok(())
        }
        other => bail!("unknown command `{other}`\n\n{}", HELP.trim()),
    }
}

const HELP: &str = "
usage: cargo xtask <command>

commands:
  ci [--fuzz-seconds N] [--torture-seconds N]
                            exactly what CI runs, with CI=true: format check, cargo deny,
                            clippy, tests, docs, vector drift, README walkthroughs, man
                            pages, a short torture run (12 s), fuzz smoke (20 s each)
  vectors [--check]         regenerate tests/data vectors with Python (or check for drift)
  fuzz [--seconds N] [T..]  run fuzz targets (default: all, 60 s each)
  bench [--quick]           run benchmarks and print ratios against the peers, and
                            the propagation of a rotation (file, etcd) as p50/p99
  torture [--seconds N] [--seed S] [--workers W] [--release] [--keep]
                            several processes run random operations on one keyring file
                            while commands are killed at random moments; everything
                            acknowledged is checked against a ledger (default 60 s,
                            5 workers; the seed is printed, --seed replays the choices)
  crash [--rounds N]        the torture test until N kills have landed (default 500)
  readme                    run the README's command-line walkthroughs in a scratch directory
  man [--check]             write the man pages in doc/man (or fail if they are stale)
";

/// `torture` (for `--seconds`) and `crash` (until `kills` kills): builds
/// the CLI, runs the torture test in `target/torture/seed-S`, prints the
/// figures, and removes the directory unless the run failed or `--keep`.
#[cfg(unix)]
fn torture_command(args: &[String], kills: Option<u64>) -> Result<()> {
    use std::time::Duration;

    let seconds = flag_value(args, "--seconds")?.unwrap_or(60);
    let seed = flag_value(args, "--seed")?.unwrap_or_else(torture::time_seed);
    let workers = flag_value(args, "--workers")?.unwrap_or(5);
    ensure!(workers > 0, "--workers must be at least 1");
    let release = args.iter().any(|a| a == "--release");
    let keep = args.iter().any(|a| a == "--keep");

    let mut build = cargo();
    build.args(["build", "-p", "secrets-manager-cli"]);
    if release {
        build.arg("--release");
    }
    run(build)?;
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from);
    let binary = target
        .join(if release { "release" } else { "debug" })
        .join("secrets-manager");
    let dir = target.join("torture").join(format!("seed-{seed}"));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    let stop = match kills {
        Some(kills) => torture::Stop::Kills {
            kills,
            limit: Duration::from_secs(600),
        },
        None => torture::Stop::After(Duration::from_secs(seconds)),
    };
    let mut config = torture::Config::new(binary, dir.clone(), stop, seed);
    config.workers = usize::try_from(workers).context("--workers: too many")?;
    config.progress = true;
    match kills {
        Some(k) => eprintln!(
            "torture until {k} kills, {workers} workers, seed {seed} (replay the choices with --seed {seed})"
        ),
        None => eprintln!(
            "torture for {seconds} s, {workers} workers, seed {seed} (replay the choices with --seed {seed})"
        ),
    }
    let report = torture::run(&config)?;
    println!("{report}");
    // The coverage a run this long reaches; a very short one only reports.
    let (check, long) = match kills {
        Some(k) => (k >= 20, k >= 100),
        None => (seconds >= 3, seconds >= 10),
    };
    if check {
        report.require_coverage(long)?;
    }
    if keep {
        eprintln!("files kept in {}", dir.display());
    } else {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn torture_command(_args: &[String], _kills: Option<u64>) -> Result<()> {
    bail!("the torture test needs Unix (SIGKILL)")
}

/// Fuzz targets, one per parser or API surface that takes untrusted input.
const FUZZ_TARGETS: &[&str] = &[
    "fernet_decrypt",
    "fernet_roundtrip",
    "fernet_key",
    "salt_text",
    "manager_decrypt",
    "dotenv_parse",
    "keyring_update",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Set once by `ci` before it starts anything: every command made by
/// [`command`] then runs with `CI=true`, as in CI.
static CI_RUN: AtomicBool = AtomicBool::new(false);

/// A command run from the workspace root (with `CI=true` under `ci`).
fn command(program: impl AsRef<OsStr>) -> Command {
    let mut c = Command::new(program);
    c.current_dir(root());
    if CI_RUN.load(Ordering::Relaxed) {
        c.env("CI", "true");
    }
    c
}

fn cargo() -> Command {
    command(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
}

fn run(mut cmd: Command) -> Result<()> {
    eprintln!("$ {}", describe(&cmd));
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {}", describe(&cmd)))?;
    ensure!(status.success(), "`{}` failed ({status})", describe(&cmd));
    Ok(())
}

/// The command as a shell line, with the variables it sets (`CI=true`...).
fn describe(cmd: &Command) -> String {
    cmd.get_envs()
        .filter_map(|(k, v)| Some(format!("{}={}", k.to_string_lossy(), v?.to_string_lossy())))
        .chain(std::iter::once(
            cmd.get_program().to_string_lossy().into_owned(),
        ))
        .chain(cmd.get_args().map(|a| a.to_string_lossy().into_owned()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn ci(args: &[String]) -> Result<()> {
    // The same default as `.ci/run`'s.
    let fuzz_seconds = flag_value(args, "--fuzz-seconds")?.unwrap_or(20);
    let torture_seconds = flag_value(args, "--torture-seconds")?.unwrap_or(12);
    // Whatever the calling shell says: nothing may skip, locally as in CI.
    CI_RUN.store(true, Ordering::Relaxed);
    eprintln!("xtask ci: every command below runs with CI=true");

    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--check"]);
    run(fmt)?;

    deny()?;

    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ]);
    run(clippy)?;

    // The README's test command.
    let mut test = cargo();
    test.args(["test", "--workspace"]);
    run(test)?;

    let mut doc = cargo();
    doc.args(["doc", "--workspace", "--no-deps", "--all-features"])
        .env("RUSTDOCFLAGS", "-D warnings");
    run(doc)?;

    vectors(true)?;

    readme::run(&root())?;
    man::run(&root(), true)?;
    // A short torture run on the debug binary the tests just built.
    torture_command(&["--seconds".to_owned(), torture_seconds.to_string()], None)?;

    let mut smoke = vec!["--seconds".to_owned(), fuzz_seconds.to_string()];
    smoke.extend(FUZZ_TARGETS.iter().map(|t| (*t).to_owned()));
    fuzz(&smoke)?;
    eprintln!("xtask ci: all green");
    Ok(())
}

/// Licences, bans and sources (`deny.toml`) for both workspaces: the main
/// one and `fuzz/`, which has its own lock file. Advisories are not checked:
/// their database needs the network (see `deny.toml`).
fn deny() -> Result<()> {
    for manifest in ["Cargo.toml", "fuzz/Cargo.toml"] {
        let mut cmd = cargo();
        cmd.args([
            "deny",
            "--manifest-path",
            manifest,
            "--config",
            "deny.toml",
            "check",
            "licenses",
            "bans",
            "sources",
        ]);
        run(cmd).with_context(|| "is cargo-deny installed? `.ci/run` shows how it installs it")?;
    }
    Ok(())
}

fn flag_value(args: &[String], name: &str) -> Result<Option<u64>> {
    match args.iter().position(|a| a == name) {
        None => Ok(None),
        Some(i) => {
            let v = args
                .get(i + 1)
                .with_context(|| format!("{name} needs a value"))?;
            Ok(Some(v.parse().with_context(|| {
                format!("{name}: `{v}` is not a whole number")
            })?))
        }
    }
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// The Fernet spec's published vectors, embedded so a fresh clone tests
/// with them; one section per file of the spec's own set.
const SPEC_EMBEDDED: &str = "tests/data/fernet_spec.json";
const SPEC_SECTIONS: [&str; 3] = ["generate", "verify", "invalid"];

/// Compares (or, without `check`, rewrites) the embedded spec vectors with
/// the spec's own files when they sit beside the checkout, in
/// `../shared/vectors/fernet-spec`; without them there is nothing to compare.
fn spec_vectors(check: bool) -> Result<()> {
    let Some(dir) = root()
        .parent()
        .map(|p| p.join("shared/vectors/fernet-spec"))
        .filter(|d| d.is_dir())
    else {
        eprintln!(
            "{SPEC_EMBEDDED}: skipped, the spec's vectors are not beside the checkout \
             (../shared/vectors/fernet-spec)"
        );
        return Ok(());
    };
    let mut spec = serde_json::Map::new();
    for section in SPEC_SECTIONS {
        let path = dir.join(format!("{section}.json"));
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        spec.insert(section.to_owned(), value);
    }
    let spec = serde_json::Value::Object(spec);
    let path = root().join(SPEC_EMBEDDED);
    if check {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {SPEC_EMBEDDED}"))?;
        let embedded: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{SPEC_EMBEDDED} is not JSON"))?;
        ensure!(
            embedded == spec,
            "{SPEC_EMBEDDED} differs from the spec's vectors in {}: run `cargo xtask vectors` and commit the result",
            dir.display()
        );
        eprintln!("{SPEC_EMBEDDED}: matches {}", dir.display());
    } else {
        let mut text = serde_json::to_string_pretty(&spec)?;
        text.push('\n');
        std::fs::write(&path, text).with_context(|| format!("cannot write {SPEC_EMBEDDED}"))?;
        eprintln!("{SPEC_EMBEDDED}: written from {}", dir.display());
    }
    Ok(())
}

/// Regenerates (or checks) the test vectors: the spec's embedded copy, then
/// the files made by Python scripts.
fn vectors(check: bool) -> Result<()> {
    spec_vectors(check)?;
    let root = root();
    let generators = [(
        "tests/python/fernet_vectors.py",
        "tests/data/fernet_python-cryptography.json",
    )];
    for (script, target) in generators {
        let mut cmd = command(python());
        cmd.arg(script);
        eprintln!("$ {}", describe(&cmd));
        let out = cmd.output().with_context(|| {
            format!(
                "cannot run {} (install Python 3 with `cryptography`)",
                python()
            )
        })?;
        ensure!(
            out.status.success(),
            "{script} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = root.join(target);
        if check {
            let current = std::fs::read(&path).with_context(|| format!("cannot read {target}"))?;
            ensure!(
                current == out.stdout,
                "{target} is out of date with {script}: run `cargo xtask vectors` and commit the result"
            );
            eprintln!("{target}: up to date");
        } else {
            std::fs::write(&path, &out.stdout).with_context(|| format!("cannot write {target}"))?;
            eprintln!("{target}: written");
        }
    }
    Ok(())
}

/// Runs each fuzz target for a while (cargo-fuzz, on stable through
/// `RUSTC_BOOTSTRAP`, since libFuzzer needs sanitizer flags).
fn fuzz(args: &[String]) -> Result<()> {
    let seconds = flag_value(args, "--seconds")?.unwrap_or(60);
    let mut targets: Vec<&str> = args
        .iter()
        .enumerate()
        .filter(|(i, a)| !a.starts_with("--") && (*i == 0 || args[i - 1] != "--seconds"))
        .map(|(_, a)| a.as_str())
        .collect();
    if targets.is_empty() {
        targets = FUZZ_TARGETS.to_vec();
    }
    for t in &targets {
        ensure!(
            FUZZ_TARGETS.contains(t),
            "unknown fuzz target `{t}` (known: {})",
            FUZZ_TARGETS.join(", ")
        );
    }
    let fuzz_dir = root().join("fuzz");
    for target in targets {
        let corpus = fuzz_dir.join("corpus").join(target);
        std::fs::create_dir_all(&corpus)
            .with_context(|| format!("cannot create {}", corpus.display()))?;
        let mut cmd = cargo();
        cmd.current_dir(&fuzz_dir)
            .env("RUSTC_BOOTSTRAP", "1")
            .args([
                "fuzz",
                "run",
                target,
                "--",
                &format!("-max_total_time={seconds}"),
                "-print_final_stats=1",
            ]);
        run(cmd).with_context(|| "is cargo-fuzz installed? `cargo install cargo-fuzz --locked`")?;
    }
    Ok(())
}
