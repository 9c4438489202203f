//! Project automation: `cargo xtask <command>`.
//!
//! - `ci`: exactly what CI runs (format, supply-chain policy, lints, tests,
//!   docs, vector drift, fuzz smoke). It sets `CI=true` for everything it
//!   starts, whatever the calling shell has, so a local run is the CI run:
//!   Python interop tests fail instead of skipping when Python is missing.
//! - `vectors [--check]`: regenerate the Python-made test vectors, or fail if
//!   they would change; compare the embedded Fernet spec vectors with the
//!   spec's own files when those sit beside the checkout.
//! - `fuzz [--seconds N] [TARGET...]`: run fuzz targets (all by default).
//! - `bench [--quick]`: run the benchmarks and print ratios against the
//!   peers and the bare primitives, all measured in the same run, then a
//!   rotation's propagation to 50 watching managers (file and etcd).
//! - `crash [--rounds N]`: kill rotations at random moments N times and
//!   check the keyring file after each.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail, ensure};

mod bench;

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
        "crash" => crash(rest),
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
  ci [--fuzz-seconds N]     exactly what CI runs, with CI=true: format check, cargo deny,
                            clippy, tests, docs, vector drift, fuzz smoke (20 s each)
  vectors [--check]         regenerate tests/data vectors with Python (or check for drift)
  fuzz [--seconds N] [T..]  run fuzz targets (default: all, 60 s each)
  bench [--quick]           run benchmarks and print ratios against the peers, and
                            the propagation of a rotation (file, etcd) as p50/p99
  crash [--rounds N]        kill rotations at random moments N times (default 500)
";

/// Kills `secrets-manager rotate` at random moments, many times, checking
/// the keyring file after each (the test runs 40 rounds; this runs more).
fn crash(args: &[String]) -> Result<()> {
    let rounds = flag_value(args, "--rounds")?.unwrap_or(500);
    let mut cmd = cargo();
    cmd.env("CRASH_ROUNDS", rounds.to_string()).args([
        "test",
        "--release",
        "-p",
        "secrets-manager-cli",
        "--test",
        "reliability",
        "rotations_killed",
        "--",
        "--nocapture",
    ]);
    run(cmd)
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
