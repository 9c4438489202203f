//! Helpers shared by the integration tests in `tests/it`: locating test
//! data and driving Python.
//!
//! Python tests run wherever `python3` (or `$PYTHON`) has the packages they
//! need. When it does not, they are skipped with a note, except under
//! `CI=true`, where a missing interpreter or package fails the test.

// Test support: failing loudly on bad test data is the point.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

pub mod etcd_cluster;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A command for `program` that inherits none of the caller's
/// `SECRETS_MANAGER_*` settings (a keyring address, a KEK, an etcd
/// password...), so a test never reaches a developer's own keyring.
pub fn without_caller_settings(program: &Path) -> std::process::Command {
    let mut c = std::process::Command::new(program);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SECRETS_MANAGER_") {
            c.env_remove(name);
        }
    }
    c
}

/// The workspace root.
#[must_use]
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from(".."), Path::to_path_buf)
}

/// A file under `tests/data`.
#[must_use]
pub fn data_file(name: &str) -> PathBuf {
    workspace_root().join("tests/data").join(name)
}

/// A script under `tests/python`.
#[must_use]
pub fn python_script(name: &str) -> PathBuf {
    workspace_root().join("tests/python").join(name)
}

/// Whether the run is in CI, where nothing may be skipped.
#[must_use]
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The Python interpreter, if it can import every module in `modules`.
///
/// # Panics
///
/// Under CI, when no such interpreter is found.
#[must_use]
pub fn python_with(modules: &[&str]) -> Option<String> {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let probe = format!("import {}", modules.join(", "));
    let ok = Command::new(&python)
        .args(["-c", &probe])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some(python);
    }
    let why = format!("`{python}` with {modules:?} is not available");
    assert!(!in_ci(), "{why}: CI must run the Python interop tests");
    eprintln!("skipping: {why} (set PYTHON, or pip install them)");
    None
}

/// Runs `script` with `input` on stdin and returns its stdout.
///
/// # Panics
///
/// When the script cannot be started or exits unsuccessfully.
#[must_use]
pub fn run_python(python: &str, script: &Path, input: &[u8]) -> Vec<u8> {
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {python}: {e}"));
    let mut stdin = child.stdin.take().unwrap_or_else(|| panic!("no stdin"));
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("{python} failed: {e}"));
    writer.join().ok();
    assert!(
        out.status.success(),
        "{} failed: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Decodes lower-case hex (test data only).
///
/// # Panics
///
/// On malformed hex.
#[must_use]
pub fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or_else(|_| panic!("bad hex {s}")))
        .collect()
}

/// Encodes lower-case hex.
#[must_use]
pub fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Parses the RFC 3339 times of the Fernet spec vectors
/// (`1985-10-26T01:20:01-07:00`) to Unix seconds.
///
/// # Panics
///
/// On any other format.
#[must_use]
pub fn rfc3339_to_unix(s: &str) -> u64 {
    let num = |a: usize, b: usize| -> i64 {
        s.get(a..b)
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("bad time {s}"))
    };
    let (y, mo, d) = (num(0, 4), num(5, 7), num(8, 10));
    let (h, mi, sec) = (num(11, 13), num(14, 16), num(17, 19));
    let offset = match s.get(19..) {
        Some("Z") => 0,
        Some(o) if o.len() == 6 => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            sign * (num(20, 22) * 3600 + num(23, 25) * 60)
        }
        _ => panic!("bad offset in {s}"),
    };
    // Days from civil (proleptic Gregorian), after H. Hinnant's algorithm.
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + h * 3600 + mi * 60 + sec - offset)
        .unwrap_or_else(|_| panic!("before 1970: {s}"))
}

/// The workspace README's examples, run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// The keyring file at `path`, loaded with 1 000 PBKDF2 iterations for
/// versions that record none (fast, for tests).
///
/// # Panics
///
/// When the file does not load.
#[must_use]
pub fn load_keyring(path: &Path) -> secrets_manager::SecretsManager {
    load_keyring_with(path, true)
}

/// [`load_keyring`], checking salt hashes or (as Python's
/// `verify_salt_integrity=False`) not.
///
/// # Panics
///
/// When the file does not load.
#[must_use]
pub fn load_keyring_with(
    path: &Path,
    verify_salt_integrity: bool,
) -> secrets_manager::SecretsManager {
    secrets_manager::SecretsManager::new(
        secrets_manager::SecretsConfig::builder()
            .kdf_iterations(1_000)
            .verify_salt_integrity(verify_salt_integrity)
            .env_file(path)
            .unwrap_or_else(|e| panic!("{e}"))
            .build()
            .unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// A manager configured in code with one version `v1` (1 000 iterations).
///
/// # Panics
///
/// Never, for these constants.
#[must_use]
pub fn manager_in_code(password: &str, salt: &[u8]) -> secrets_manager::SecretsManager {
    secrets_manager::SecretsManager::new(
        secrets_manager::SecretsConfig::builder()
            .key("v1", password, salt)
            .kdf_iterations(1_000)
            .build()
            .unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// A new keyring file `.env.secrets` in `dir` with one version, `v1`.
///
/// # Panics
///
/// When the file cannot be written.
#[must_use]
pub fn new_keyring_file(dir: &Path) -> PathBuf {
    let path = dir.join(".env.secrets");
    manager_in_code("first password", b"salt-one")
        .create_keyring_file(&path)
        .unwrap_or_else(|e| panic!("{e}"));
    path
}

/// Runs the project's Python model of the original package
/// (`tests/python/seed_package.py`) on a JSON request.
///
/// # Panics
///
/// When the script fails or prints no JSON.
#[must_use]
pub fn seed_package(python: &str, request: &serde_json::Value) -> serde_json::Value {
    let out = run_python(
        python,
        &python_script("seed_package.py"),
        request.to_string().as_bytes(),
    );
    serde_json::from_slice(&out).unwrap_or_else(|e| panic!("seed_package.py printed no JSON: {e}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(super::rfc3339_to_unix("1970-01-01T00:00:00Z"), 0);
        assert_eq!(
            super::rfc3339_to_unix("1985-10-26T01:20:00-07:00"),
            499_162_800
        );
        assert_eq!(
            super::rfc3339_to_unix("2024-02-29T12:00:00+02:00"),
            1_709_200_800
        );
    }
}
