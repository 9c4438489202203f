//! Several processes rotating one file, and rotations killed at random
//! moments. `cargo xtask crash` runs the kill test for longer.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Stdio};
use std::time::Duration;

use secrets_manager::persist::{Prefixes, read_keyring};
use secrets_manager::{SecretsConfig, SecretsManager};

fn bin() -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("secrets-manager"));
    c.env_remove("SECRETS_MANAGER_ENV_FILE");
    c
}

#[test]
fn concurrent_rotations_in_several_processes_all_survive() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(".env.secrets");
    let status = bin()
        .args(["--iterations", "1000", "--env-file"])
        .arg(&file)
        .arg("init")
        .status()
        .unwrap();
    assert!(status.success());
    let writers = 8;
    let children: Vec<_> = (0..writers)
        .map(|i| {
            bin()
                .args(["--iterations", "1000", "--env-file"])
                .arg(&file)
                .args(["rotate", "--new-version", &format!("p{i}")])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let keyring = read_keyring(&file, &Prefixes::default()).unwrap();
    assert_eq!(
        keyring.versions().len(),
        writers + 1,
        "every rotation survives"
    );
    let m = SecretsManager::new(SecretsConfig::from_env_file(&file).unwrap()).unwrap();
    assert!(m.active_version().as_str().starts_with('p'));
}

/// Kills rotations at random moments; after each, the file must parse,
/// pass its checksum, and hold either the state before or the state after.
fn crash_rounds(rounds: u32) -> (u32, u32) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(".env.secrets");
    assert!(
        bin()
            .args(["--iterations", "1000", "--env-file"])
            .arg(&file)
            .arg("init")
            .status()
            .unwrap()
            .success()
    );
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let (mut completed, mut killed) = (0, 0);
    for round in 0..rounds {
        let before = read_keyring(&file, &Prefixes::default())
            .unwrap()
            .versions()
            .len();
        let mut child = bin()
            .args(["--iterations", "1000", "--env-file"])
            .arg(&file)
            .args(["rotate", "--new-version", &format!("r{round}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_micros(seed % 4_000));
        let _ = child.kill();
        let status = child.wait().unwrap();
        if status.success() {
            completed += 1;
        } else {
            killed += 1;
        }
        let keyring = read_keyring(&file, &Prefixes::default())
            .unwrap_or_else(|e| panic!("round {round}: the file is damaged: {e}"));
        let after = keyring.versions().len();
        assert!(
            after == before || after == before + 1,
            "round {round}: {before} -> {after} versions"
        );
        assert!(keyring.active().is_some());
    }
    (completed, killed)
}

/// 40 rounds here; `cargo xtask crash --rounds N` sets `CRASH_ROUNDS`.
#[test]
fn rotations_killed_at_random_moments_never_damage_the_file() {
    let rounds = std::env::var("CRASH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(40);
    let (completed, killed) = crash_rounds(rounds);
    assert_eq!(completed + killed, rounds);
    eprintln!(
        "crash test: {rounds} rotations, {killed} killed mid-way, {completed} completed; the file was sound after every one"
    );
}
