//! Every command and failure path of the `secrets-manager` binary.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use secrets_manager::{SecretsConfig, SecretsManager};

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn file(&self) -> PathBuf {
        self.dir.path().join(".env.secrets")
    }

    /// The binary, run in the temporary directory with fast derivations.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = secrets_manager_tests::without_caller_settings(&assert_cmd::cargo::cargo_bin(
            "secrets-manager",
        ));
        c.current_dir(self.dir.path())
            .args(["--iterations", "1000"])
            .args(args);
        Command::from_std(c)
    }

    fn ok(&self, args: &[&str], stdin: &[u8]) -> Vec<u8> {
        let out = self.cmd(args).write_stdin(stdin).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Runs a command that must fail with `code`: one `error:` line on
    /// stderr and nothing on stdout. Returns the error line.
    fn fails(&self, args: &[&str], stdin: &[u8], code: i32) -> String {
        let out = self.cmd(args).write_stdin(stdin).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(code),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stdout.is_empty(),
            "{args:?} printed {:?}",
            String::from_utf8_lossy(&out.stdout)
        );
        let err = String::from_utf8(out.stderr).unwrap();
        if code == 1 {
            assert!(
                err.starts_with("error: ") && err.trim_end().lines().count() == 1,
                "{err:?}"
            );
        }
        err
    }

    fn manager(&self) -> SecretsManager {
        SecretsManager::new(
            SecretsConfig::builder()
                .env_file(self.file())
                .unwrap()
                .build()
                .unwrap(),
        )
        .unwrap()
    }
}

fn secrets_in(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("ENCRYPTION_KEYS__") || l.starts_with("ENCRYPTION_SALT__"))
        .map(|l| l.split_once('=').unwrap().1.trim_matches('"').to_owned())
        .collect()
}

#[test]
fn keygen_prints_a_fernet_key() {
    let env = Env::new();
    let out = String::from_utf8(env.ok(&["keygen"], b"")).unwrap();
    assert_eq!(out.len(), 45);
    assert!(secrets_manager::fernet::Key::from_base64(out.trim_end()).is_ok());
    assert_ne!(out, String::from_utf8(env.ok(&["keygen"], b"")).unwrap());
}

#[test]
fn init_creates_a_private_file_once() {
    let env = Env::new();
    let out = env.cmd(&["init"]).output().unwrap();
    assert!(out.status.success() && out.stdout.is_empty(), "{out:?}");
    let confirmation = String::from_utf8(out.stderr).unwrap();
    assert!(confirmation.contains("v1"), "{confirmation}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(env.file()).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let text = std::fs::read_to_string(env.file()).unwrap();
    assert!(
        text.contains("ENCRYPTION_KDF_ITERATIONS__v1=\"1000\""),
        "{text}"
    );
    let err = env.fails(&["init"], b"", 1);
    assert!(err.contains("already holds keys"), "{err}");
    assert_eq!(
        std::fs::read_to_string(env.file()).unwrap(),
        text,
        "untouched"
    );

    let other = Env::new();
    other.ok(&["init", "--version", "Prod"], b"");
    assert_eq!(other.manager().active_version(), "prod");
}

#[test]
fn encrypt_and_decrypt_are_binary_safe() {
    let env = Env::new();
    env.ok(&["init"], b"");
    let data: Vec<u8> = (0..=255u8).chain([0, b'\n', b'\r', 0xff]).collect();
    let token = env.ok(&["encrypt"], &data);
    assert!(token.ends_with(b"\n") && token.iter().filter(|&&b| b == b'\n').count() == 1);
    let mut padded = b"  \n".to_vec();
    padded.extend_from_slice(&token);
    padded.extend_from_slice(b"\n\n");
    assert_eq!(env.ok(&["decrypt"], &padded), data);
    assert_eq!(env.ok(&["decrypt", "--hint", "v1"], &token), data);
    assert_eq!(env.ok(&["decrypt", "--ttl", "60"], &token), data);
    // The library agrees.
    assert_eq!(
        &*env.manager().decrypt(token.trim_ascii()).unwrap().1,
        &data[..]
    );
    assert_eq!(
        env.ok(&["decrypt"], env.ok(&["encrypt"], b"").as_slice()),
        b""
    );
}

#[test]
fn decrypt_failures() {
    let env = Env::new();
    env.ok(&["init"], b"");
    let err = env.fails(&["decrypt"], b"not a token", 1);
    assert!(err.contains("invalid token"), "{err}");
    let (_, old) = env.manager().encrypt_at_time(b"old", 1_000).unwrap();
    let err = env.fails(&["decrypt", "--ttl", "60"], old.as_bytes(), 1);
    assert!(err.contains("time-to-live"), "{err}");
    let other = Env::new();
    other.ok(&["init"], b"");
    let foreign = other.ok(&["encrypt"], b"x");
    let err = env.fails(&["decrypt"], &foreign, 1);
    assert!(err.contains("tried: v1"), "{err}");
}

/// `decrypt --ttl S --hint V` once dropped the hint: both must apply.
#[test]
fn decrypt_honours_a_hint_given_with_a_ttl() {
    let env = Env::new();
    env.ok(&["init"], b"");
    env.ok(&["rotate", "--new-version", "v2"], b"");
    env.ok(&["retire", "v1"], b"");
    let other = Env::new();
    other.ok(&["init"], b"");
    let foreign = other.ok(&["encrypt"], b"x");
    // No version here opens it; the hint names the retired v1, and the
    // error says so only if the hint was used.
    let err = env.fails(&["decrypt", "--ttl", "60", "--hint", "v1"], &foreign, 1);
    assert!(err.contains("v1 is retired"), "{err}");
    let err = env.fails(&["decrypt", "--hint", "v1", "--ttl", "60"], &foreign, 1);
    assert!(err.contains("v1 is retired"), "{err}");
    // Without the hint nothing points at v1.
    let err = env.fails(&["decrypt", "--ttl", "60"], &foreign, 1);
    assert!(
        err.contains("tried: v2") && !err.contains("retired"),
        "{err}"
    );
    // The TTL still applies with a hint.
    let (_, old) = env.manager().encrypt_at_time(b"old", 1_000).unwrap();
    let err = env.fails(
        &["decrypt", "--ttl", "60", "--hint", "v2"],
        old.as_bytes(),
        1,
    );
    assert!(err.contains("time-to-live"), "{err}");
    let fresh = env.ok(&["encrypt"], b"two");
    assert_eq!(
        env.ok(&["decrypt", "--hint", "v2", "--ttl", "60"], &fresh),
        b"two"
    );
}

#[test]
fn rotate_adds_versions_and_keeps_old_tokens_working() {
    let env = Env::new();
    env.ok(&["init"], b"");
    let t1 = env.ok(&["encrypt"], b"one");
    env.ok(&["rotate", "--new-version", "v2"], b"");
    let t2 = env.ok(&["encrypt"], b"two");
    let m = env.manager();
    assert_eq!(m.active_version(), "v2");
    assert_eq!(m.decrypt(t2.trim_ascii()).unwrap().0, "v2");
    assert_eq!(env.ok(&["decrypt"], &t1), b"one");

    // A chosen password and salt derive the same key as the library.
    env.ok(
        &[
            "rotate",
            "--new-version",
            "v3",
            "--password-stdin",
            "--salt",
            "c2FsdA==",
            "--allow-short-salt",
        ],
        b"my password\nignored\n",
    );
    let t3 = env.ok(&["encrypt"], b"three");
    let expected = SecretsManager::new(
        SecretsConfig::builder()
            .key("v3", "my password", b"salt")
            .kdf_iterations(1000)
            .build()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(&*expected.decrypt(t3.trim_ascii()).unwrap().1, b"three");

    let err = env.fails(&["rotate", "--new-version", "V2"], b"", 1);
    assert!(err.contains("v2 already exists"), "{err}");
    let err = env.fails(
        &["rotate", "--new-version", "v4", "--password-stdin"],
        b"\n",
        1,
    );
    assert!(err.contains("empty"), "{err}");
    assert_eq!(env.manager().versions().len(), 3);
}

#[test]
fn rewrap_reencrypts_every_line_or_nothing() {
    let env = Env::new();
    env.ok(&["init"], b"");
    let m = env.manager();
    let tokens: Vec<String> = (0..3)
        .map(|i| {
            m.encrypt_at_time(format!("msg{i}").as_bytes(), 1_600_000_000 + i)
                .unwrap()
                .1
        })
        .collect();
    env.ok(&["rotate", "--new-version", "v2"], b"");
    let input = format!("{}\n{}\n{}\n", tokens[0], tokens[1], tokens[2]);
    let out = String::from_utf8(env.ok(&["rewrap"], input.as_bytes())).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3);
    let m = env.manager();
    for (i, line) in lines.iter().enumerate() {
        let (v, plaintext) = m.decrypt(line).unwrap();
        assert_eq!(
            (v.as_str(), &plaintext[..]),
            ("v2", format!("msg{i}").as_bytes())
        );
        let ts = secrets_manager::fernet::UnverifiedToken::parse(line)
            .unwrap()
            .timestamp();
        assert_eq!(ts, 1_600_000_000 + i as u64, "timestamp kept");
    }
    let bad = format!("{}\nnot-a-token\n{}\n", tokens[0], tokens[1]);
    let err = env.fails(&["rewrap"], bad.as_bytes(), 1);
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn status_and_verify_show_no_secrets() {
    let env = Env::new();
    env.ok(&["init"], b"");
    env.ok(&["rotate", "--new-version", "v2"], b"");
    let status = String::from_utf8(env.ok(&["status"], b"")).unwrap();
    assert!(
        status.contains("active: v2") && status.contains("v1") && status.contains("password"),
        "{status}"
    );
    let verify = String::from_utf8(env.ok(&["verify"], b"")).unwrap();
    assert!(
        verify.starts_with("ok: checksum verified; 2 version(s), 2 salt hash(es)"),
        "{verify}"
    );
    let secrets = secrets_in(&env.file());
    assert_eq!(secrets.len(), 4);
    for s in secrets {
        assert!(!status.contains(&s) && !verify.contains(&s));
    }
}

#[test]
fn verify_catches_edits_and_bad_salt_hashes() {
    let env = Env::new();
    env.ok(&["init"], b"");
    let text = std::fs::read_to_string(env.file()).unwrap();
    std::fs::write(
        env.file(),
        text.replace(
            "ENCRYPTION_ACTIVATED_AT__v1=\"",
            "ENCRYPTION_ACTIVATED_AT__v1=\"1",
        ),
    )
    .unwrap();
    let err = env.fails(&["verify"], b"", 1);
    assert!(err.contains("checksum mismatch"), "{err}");
    // No checksum, a wrong salt hash.
    std::fs::write(
        env.file(),
        format!("ENCRYPTION_KEYS__v1=\"pw\"\nENCRYPTION_SALT__v1=\"c2FsdA==\"\nENCRYPTION_SALT_HASH__v1=\"{}\"\n", "0".repeat(64)),
    )
    .unwrap();
    let err = env.fails(&["verify"], b"", 1);
    assert!(
        err.contains("salt integrity check failed for version v1"),
        "{err}"
    );
    let err = env.fails(&["encrypt"], b"x", 1);
    assert!(
        err.contains("salt integrity") && err.contains("v1"),
        "{err}"
    );
}

#[test]
fn malformed_files_name_the_file_and_line() {
    let env = Env::new();
    std::fs::write(env.file(), "A=1\nB=\"unterminated\n").unwrap();
    let err = env.fails(&["status"], b"", 1);
    assert!(err.contains(".env.secrets:2"), "{err}");
    // A missing keyring names the path tried and how to make one; every
    // command words it the same way.
    for args in [
        &["--env-file", "missing.env", "encrypt"][..],
        &["--env-file", "missing.env", "verify"],
    ] {
        let err = env.fails(args, b"x", 1);
        assert!(
            err.contains("no keyring at missing.env")
                && err.contains(&env.dir.path().join("missing.env").display().to_string())
                && err.contains("secrets-manager init"),
            "{err}"
        );
    }
    // A keyring with no keys names the source and the variables expected.
    std::fs::write(env.file(), "APP=1\n").unwrap();
    let err = env.fails(&["status"], b"", 1);
    assert!(
        err.contains(".env.secrets holds no keys")
            && err.contains("ENCRYPTION_KEYS__<v> with ENCRYPTION_SALT__<v>"),
        "{err}"
    );
    let out = env.cmd(&["--from-env", "status"]).output().unwrap();
    let err = stderr_of(&out);
    assert!(
        err.contains("the process environment holds no keys"),
        "{err}"
    );
}

#[test]
fn the_environment_can_hold_the_keyring() {
    let env = Env::new();
    let run = |args: &[&str], stdin: &[u8]| {
        env.cmd(args)
            .env("ENCRYPTION_KEYS__v1", "env password")
            .env("ENCRYPTION_SALT__v1", "c2FsdA==")
            .env("ACTIVE_ENCRYPTION_VERSION", "v1")
            .write_stdin(stdin)
            .output()
            .unwrap()
    };
    let token = run(&["--from-env", "encrypt"], b"from env");
    assert!(token.status.success());
    let out = run(&["--from-env", "decrypt"], &token.stdout);
    assert_eq!(out.stdout, b"from env");
    let status = run(&["--from-env", "status"], b"");
    assert!(String::from_utf8_lossy(&status.stdout).contains("the process environment"));
    let rotate = run(&["--from-env", "rotate", "--new-version", "v2"], b"");
    assert_eq!(rotate.status.code(), Some(1));
    assert!(rotate.stdout.is_empty());
}

#[test]
fn the_env_file_can_come_from_the_environment() {
    let env = Env::new();
    let mut c = env.cmd(&["init"]);
    c.env("SECRETS_MANAGER_ENV_FILE", "custom.env");
    assert!(c.output().unwrap().status.success());
    assert!(env.dir.path().join("custom.env").exists());
    assert!(!env.file().exists());
}

#[test]
fn usage_errors_exit_2() {
    let env = Env::new();
    env.fails(&["bogus"], b"", 2);
    env.fails(&["rotate"], b"", 2);
    env.fails(&["decrypt", "--ttl", "soon"], b"", 2);
    let out = Command::cargo_bin("secrets-manager")
        .unwrap()
        .args(["--iterations", "0", "keygen"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::cargo_bin("secrets-manager")
        .unwrap()
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("secrets-manager "));
    let help = Command::cargo_bin("secrets-manager")
        .unwrap()
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for cmd in [
        "init", "encrypt", "decrypt", "rotate", "rewrap", "status", "verify", "keygen",
    ] {
        assert!(help.contains(cmd), "{help}");
    }
}

// The keyring never loses a key: each test below is named after a way a
// command once lost one (or could have).

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn same_name_rotations_started_together_exactly_one_wins() {
    let env = Env::new();
    env.ok(&["init"], b"");
    let t1 = env.ok(&["encrypt"], b"before");
    for round in 0..3 {
        let name = format!("r{round}");
        let children: Vec<_> = (0..6)
            .map(|_| {
                std::process::Command::new(assert_cmd::cargo::cargo_bin("secrets-manager"))
                    .current_dir(env.dir.path())
                    .env_remove("SECRETS_MANAGER_ENV_FILE")
                    .args(["--iterations", "1000", "rotate", "--new-version", &name])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let outs: Vec<_> = children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect();
        let winners = outs.iter().filter(|o| o.status.success()).count();
        assert_eq!(
            winners, 1,
            "round {round}: {winners} rotations to {name} succeeded"
        );
        for out in outs.iter().filter(|o| !o.status.success()) {
            assert_eq!(out.status.code(), Some(1));
            let err = stderr_of(out);
            assert!(
                err.contains(&format!("version {name} already exists")),
                "{err}"
            );
        }
        // Whatever the winner wrote is what every later reader gets.
        let token = env.ok(&["encrypt"], name.as_bytes());
        assert_eq!(env.ok(&["decrypt"], &token), name.as_bytes());
    }
    assert_eq!(env.ok(&["decrypt"], &t1), b"before");
}

#[test]
fn a_rotation_with_other_iterations_never_rewrites_an_old_versions_count() {
    let env = Env::new();
    // As the Python package writes it: no iteration record.
    std::fs::write(
        env.file(),
        "ENCRYPTION_KEYS__v1=\"pw\"\nENCRYPTION_SALT__v1=\"c2FsdA==\"\n",
    )
    .unwrap();
    let token = env.ok(&["encrypt"], b"v1 data"); // v1 read with 1000
    env.ok(
        &["--iterations", "2000", "rotate", "--new-version", "v2"],
        b"",
    );
    let text = std::fs::read_to_string(env.file()).unwrap();
    assert!(!text.contains("ENCRYPTION_KDF_ITERATIONS__v1"), "{text}");
    assert!(
        text.contains("ENCRYPTION_KDF_ITERATIONS__v2=\"2000\""),
        "{text}"
    );
    assert_eq!(env.ok(&["decrypt"], &token), b"v1 data");
    // A version created here records its count and reads right whatever
    // the reader's setting.
    let t2 = env.ok(&["encrypt"], b"v2 data");
    assert_eq!(
        env.ok(&["--iterations", "5", "decrypt", "--hint", "v2"], &t2),
        b"v2 data"
    );
}

#[test]
fn a_reference_to_an_environment_variable_is_never_written_out_expanded() {
    let env = Env::new();
    std::fs::write(
        env.file(),
        "ENCRYPTION_KEYS__v1=${KEYRING_PW}\nENCRYPTION_SALT__v1=\"c2FsdA==\"\n",
    )
    .unwrap();
    let with_pw = |args: &[&str], stdin: &[u8]| {
        let out = env
            .cmd(args)
            .env("KEYRING_PW", "SENTINEL-FROM-ENV")
            .write_stdin(stdin)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr_of(&out));
        out.stdout
    };
    let token = with_pw(&["encrypt"], b"secret");
    with_pw(&["rotate", "--new-version", "v2"], b"");
    let text = std::fs::read_to_string(env.file()).unwrap();
    assert!(
        !text.contains("SENTINEL"),
        "the secret leaked into the file: {text}"
    );
    assert!(
        text.contains("ENCRYPTION_KEYS__v1=${KEYRING_PW}\n"),
        "{text}"
    );
    assert_eq!(with_pw(&["decrypt"], &token), b"secret");
}

#[test]
fn a_reference_to_an_unset_variable_does_not_empty_the_old_password() {
    let env = Env::new();
    std::fs::write(
        env.file(),
        "ENCRYPTION_KEYS__v1=${KEYRING_PW}\nENCRYPTION_SALT__v1=\"c2FsdA==\"\n",
    )
    .unwrap();
    // Unset: v1's password reads as empty, and the rotation must not write
    // that down.
    env.ok(&["rotate", "--new-version", "v2"], b"");
    let text = std::fs::read_to_string(env.file()).unwrap();
    assert!(
        text.contains("ENCRYPTION_KEYS__v1=${KEYRING_PW}\n"),
        "{text}"
    );
    assert!(!text.contains("ENCRYPTION_KEYS__v1=\"\""), "{text}");
}

#[test]
fn the_lifecycle_is_persisted_and_shown() {
    let env = Env::new();
    env.ok(&["init"], b"");
    let t1 = env.ok(&["encrypt"], b"one");
    env.ok(&["rotate", "--new-version", "v2", "--no-activate"], b"");
    let status = String::from_utf8(env.ok(&["status"], b"")).unwrap();
    assert!(status.contains("active: v1"), "{status}");
    let t = env.ok(&["encrypt"], b"still v1");
    assert_eq!(env.manager().decrypt(t.trim_ascii()).unwrap().0, "v1");

    env.ok(&["activate", "v2"], b"");
    let t2 = env.ok(&["encrypt"], b"two");
    assert_eq!(env.manager().decrypt(t2.trim_ascii()).unwrap().0, "v2");

    env.ok(&["retire", "v1"], b"");
    let status = String::from_utf8(env.ok(&["status"], b"")).unwrap();
    let v1_line = status.lines().find(|l| l.starts_with("v1 ")).unwrap();
    assert!(v1_line.contains("retired"), "{status}");
    let err = env.fails(&["decrypt"], &t1, 1);
    assert!(err.contains("v1") && err.contains("retired"), "{err}");
    let err = env.fails(&["activate", "v1"], b"", 1);
    assert!(err.contains("retired"), "{err}");
    let err = env.fails(&["retire", "v2"], b"", 1);
    assert!(err.contains("active"), "{err}");

    // destroy needs --yes: a usage error otherwise, and nothing changes.
    let before = std::fs::read(env.file()).unwrap();
    let err = env.fails(&["destroy", "v1"], b"", 2);
    assert!(err.contains("--yes"), "{err}");
    assert_eq!(std::fs::read(env.file()).unwrap(), before);
    env.ok(&["destroy", "v1", "--yes"], b"");
    let text = std::fs::read_to_string(env.file()).unwrap();
    assert!(!text.contains("ENCRYPTION_KEYS__v1"), "{text}");
    assert!(
        text.contains("ENCRYPTION_STATE__v1=\"destroyed\""),
        "{text}"
    );
    let status = String::from_utf8(env.ok(&["status"], b"")).unwrap();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("v1 ") && l.contains("destroyed")),
        "{status}"
    );
    let err = env.fails(&["decrypt"], &t1, 1);
    assert!(err.contains("destroyed") && err.contains("v1"), "{err}");
    let err = env.fails(&["rotate", "--new-version", "v1"], b"", 1);
    assert!(err.contains("v1"), "{err}");
    let err = env.fails(&["activate", "v9"], b"", 1);
    assert!(err.contains("unknown version v9"), "{err}");
    assert_eq!(env.ok(&["decrypt"], &t2), b"two");
    env.ok(&["verify"], b"");
}

#[cfg(unix)]
#[test]
fn writes_go_through_a_symlink_to_its_target_and_keep_the_link() {
    let env = Env::new();
    let real = env.dir.path().join("real.env");
    std::fs::write(&real, "").unwrap();
    std::os::unix::fs::symlink("real.env", env.file()).unwrap();
    env.ok(&["init"], b"");
    env.ok(&["rotate", "--new-version", "v2"], b"");
    assert!(
        std::fs::symlink_metadata(env.file())
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let text = std::fs::read_to_string(&real).unwrap();
    assert!(text.contains("ENCRYPTION_KEYS__v2"), "{text}");
    let names: Vec<_> = std::fs::read_dir(env.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "no temporary file left: {names:?}");
}

/// Each special path fails at once with an error saying what it is, never
/// a hang or a spin (the command is killed if it takes longer than 20 s).
#[cfg(unix)]
#[test]
fn dangling_links_fifos_and_directories_are_clear_errors() {
    let env = Env::new();
    let path = env.file();
    let check = |args: &[&str], want: &str| {
        let out = env
            .cmd(args)
            .timeout(std::time::Duration::from_secs(20))
            .output()
            .unwrap();
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.starts_with("error: ") && err.contains(want),
            "{args:?}: {err}"
        );
    };
    std::os::unix::fs::symlink("nowhere.env", &path).unwrap();
    check(&["init"], "does not exist");
    check(&["rotate", "--new-version", "v2"], "");
    std::fs::remove_file(&path).unwrap();

    let made = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .unwrap();
    assert!(made.success());
    check(&["init"], "FIFO");
    check(&["status"], "FIFO");
    check(&["verify"], "FIFO");
    std::fs::remove_file(&path).unwrap();

    std::fs::create_dir(&path).unwrap();
    check(&["init"], "directory");
    check(&["status"], "directory");
}

/// A symbolic link planted where a writer once put its temporary file
/// (a fixed name) must not redirect the write: the victim stays untouched.
#[cfg(unix)]
#[test]
fn a_symlink_planted_at_the_temporary_name_redirects_nothing() {
    let env = Env::new();
    env.ok(&["init"], b"");
    let victim = env.dir.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    for planted in ["..env.secrets.tmp", ".env.secrets.tmp-0000000000000000"] {
        std::os::unix::fs::symlink(&victim, env.dir.path().join(planted)).unwrap();
    }
    env.ok(&["rotate", "--new-version", "v2"], b"");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert_eq!(env.manager().versions().len(), 2);
    // The planted links themselves were cleaned up under the lock.
    for planted in ["..env.secrets.tmp", ".env.secrets.tmp-0000000000000000"] {
        assert!(std::fs::symlink_metadata(env.dir.path().join(planted)).is_err());
    }
}

#[cfg(unix)]
#[test]
fn a_keyring_readable_by_others_gets_a_warning() {
    use std::os::unix::fs::PermissionsExt as _;
    let env = Env::new();
    env.ok(&["init"], b"");
    let quiet = env.cmd(&["status"]).output().unwrap();
    assert!(
        !stderr_of(&quiet).contains("warning"),
        "{}",
        stderr_of(&quiet)
    );
    std::fs::set_permissions(env.file(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = env.cmd(&["status"]).output().unwrap();
    assert!(out.status.success());
    let err = stderr_of(&out);
    assert!(
        err.starts_with("warning: ") && err.contains("0644") && err.contains("chmod 600"),
        "{err}"
    );
    // The mode is kept across a rewrite, as the owner chose it.
    env.ok(&["rotate", "--new-version", "v2"], b"");
    assert_eq!(
        std::fs::metadata(env.file()).unwrap().permissions().mode() & 0o777,
        0o644
    );
}

/// Run as root (as in CI), a rewrite keeps a file owned by another user
/// theirs; a writer that may not `chown` says so on stderr.
#[cfg(unix)]
#[test]
fn owner_and_group_are_kept_across_rewrites() {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    use std::os::unix::process::CommandExt as _;
    // Root owns /proc/self when the test runs as root.
    let root = std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false);
    if !root {
        eprintln!("skipped: needs root to hand files to another user");
        assert!(!secrets_manager_tests_in_ci(), "CI runs as root");
        return;
    }
    let env = Env::new();
    env.ok(&["init"], b"");
    std::os::unix::fs::chown(env.file(), Some(65534), Some(65534)).unwrap();
    env.ok(&["rotate", "--new-version", "v2"], b"");
    let meta = std::fs::metadata(env.file()).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (65534, 65534));

    // Now a writer that is not root: the directory and file are writable
    // by it, but it cannot give the new file back to root.
    let other = Env::new();
    other.ok(&["init"], b"");
    std::fs::set_permissions(other.dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::set_permissions(other.file(), std::fs::Permissions::from_mode(0o666)).unwrap();
    let bin_dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(bin_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = bin_dir.path().join("secrets-manager");
    std::fs::copy(assert_cmd::cargo::cargo_bin("secrets-manager"), &bin).unwrap();
    // A copy just written can be briefly "busy" while another test thread's
    // fork still holds its descriptor: retry that one error.
    let out = (0..50)
        .find_map(|_| {
            match std::process::Command::new(&bin)
                .current_dir(other.dir.path())
                .env_remove("SECRETS_MANAGER_ENV_FILE")
                .args(["--iterations", "1000", "rotate", "--new-version", "v2"])
                .uid(65534)
                .gid(65534)
                .output()
            {
                Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    None
                }
                other => Some(other.unwrap()),
            }
        })
        .unwrap();
    let err = stderr_of(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("warning: ") && err.contains("cannot keep owner 0 and group 0"),
        "{err}"
    );
    assert_eq!(other.manager().versions().len(), 2);
}

fn secrets_manager_tests_in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

#[test]
fn the_keyring_is_chosen_by_address() {
    let env = Env::new();
    let other = env.dir.path().join("elsewhere.env");
    let url = format!("file:{}", other.display());
    env.ok(&["--keyring", &url, "init"], b"");
    assert!(other.exists() && !env.file().exists());
    let token = env.ok(&["--keyring", &url, "encrypt"], b"by address");
    // The variable works too, and beats --env-file.
    let out = env
        .cmd(&["--env-file", "nowhere.env", "decrypt"])
        .env("SECRETS_MANAGER_KEYRING", &url)
        .write_stdin(token.clone())
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"by address", "{}", stderr_of(&out));
    let status = String::from_utf8(env.ok(&["--keyring", &url, "status"], b"")).unwrap();
    assert!(
        status.starts_with(&format!("keyring: {}", other.display())),
        "{status}"
    );
    // The environment is read-only; unknown kinds are refused.
    let out = env
        .cmd(&["--keyring", "env:", "rotate", "--new-version", "v2"])
        .env("ENCRYPTION_KEYS__v1", "pw")
        .env("ENCRYPTION_SALT__v1", "c2FsdA==")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_of(&out).contains("read-only"), "{}", stderr_of(&out));
    let err = env.fails(&["--keyring", "s3://bucket/key", "status"], b"", 1);
    assert!(err.contains("unknown kind of keyring"), "{err}");
}

#[test]
fn salts_given_at_the_shell_are_checked_and_their_reading_is_said() {
    let env = Env::new();
    env.ok(&["init"], b"");
    // Under 8 bytes: refused unless asked for.
    for short in ["", "c2FsdA==", "abc", "616263"] {
        let err = env.fails(&["rotate", "--new-version", "s", "--salt", short], b"", 1);
        assert!(
            err.contains("at least 8") && err.contains("--allow-short-salt"),
            "{short:?}: {err}"
        );
    }
    // Base64: silent. Hex and text: a warning saying how it was read.
    let quiet = env
        .cmd(&[
            "rotate",
            "--new-version",
            "b64",
            "--salt",
            "c2FsdHNhbHRzYWx0",
        ])
        .output()
        .unwrap();
    assert!(
        quiet.status.success() && !stderr_of(&quiet).contains("warning"),
        "{}",
        stderr_of(&quiet)
    );
    for (name, salt, form) in [
        ("hex", "73616c7473616c74", "hexadecimal"),
        ("text", "c2FsdHNhbHRzYWx0Y", "UTF-8 text"),
    ] {
        let out = env
            .cmd(&["rotate", "--new-version", name, "--salt", salt])
            .output()
            .unwrap();
        let err = stderr_of(&out);
        assert!(out.status.success(), "{err}");
        assert!(
            err.contains(&format!("warning: --salt was read as {form}")),
            "{err}"
        );
    }
}

#[test]
fn init_takes_the_name_with_name_and_still_accepts_version() {
    let env = Env::new();
    env.ok(&["init", "--name", "Prod-2026"], b"");
    assert_eq!(env.manager().active_version(), "prod-2026");
    let other = Env::new();
    other.ok(&["init", "--version", "old-style"], b"");
    assert_eq!(other.manager().active_version(), "old-style");
    let help = String::from_utf8(env.ok(&["init", "--help"], b"")).unwrap();
    assert!(
        help.contains("--name") && !help.contains("--version"),
        "{help}"
    );
}

#[test]
fn a_hand_edited_keyring_can_record_its_new_contents() {
    let env = Env::new();
    env.ok(&["init"], b"");
    let token = env.ok(&["encrypt"], b"kept");
    let mut text = std::fs::read_to_string(env.file()).unwrap();
    text.push_str("APP_NAME=\"demo\"\n");
    std::fs::write(env.file(), &text).unwrap();
    let err = env.fails(&["status"], b"", 1);
    assert!(
        err.contains("checksum mismatch") && err.contains("verify --update-checksum"),
        "{err}"
    );
    let out = env.cmd(&["verify", "--update-checksum"]).output().unwrap();
    let said = stderr_of(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("added since it was written: APP_NAME"),
        "{said}"
    );
    let after = std::fs::read_to_string(env.file()).unwrap();
    let keyring_lines = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| l.starts_with("ENCRYPTION_") && !l.starts_with("ENCRYPTION_ENV_CHECKSUM"))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        keyring_lines(&after),
        keyring_lines(&text),
        "no keyring value touched"
    );
    assert_eq!(env.ok(&["decrypt"], &token), b"kept");
    env.ok(&["verify"], b"");
    // An edited value cannot be pinned on one variable, and says so.
    std::fs::write(env.file(), after.replace("demo", "prod")).unwrap();
    let out = env.cmd(&["verify", "--update-checksum"]).output().unwrap();
    assert!(
        stderr_of(&out).contains("cannot be told"),
        "{}",
        stderr_of(&out)
    );
    let out = env.cmd(&["verify", "--update-checksum"]).output().unwrap();
    assert!(
        stderr_of(&out).contains("already matches"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn status_orders_by_activation_then_naturally_and_shows_local_times() {
    let env = Env::new();
    let version = |name: &str, at: Option<u64>| {
        let mut lines = format!(
            "ENCRYPTION_KEYS__{name}=\"pw\"\nENCRYPTION_SALT__{name}=\"c2FsdHNhbHRzYWx0\"\n"
        );
        if let Some(t) = at {
            lines.push_str(&format!("ENCRYPTION_ACTIVATED_AT__{name}={t}\n"));
        }
        lines
    };
    let text = [
        version("s13", Some(1_700_000_000)),
        version("s2", Some(1_700_000_000)),
        version("late", Some(1_800_000_000)),
        version("first", None),
    ]
    .concat()
        + "ACTIVE_ENCRYPTION_VERSION=late\n";
    std::fs::write(env.file(), text).unwrap();
    let out = env.cmd(&["status"]).env("TZ", "UTC").output().unwrap();
    let status = String::from_utf8(out.stdout).unwrap();
    let order: Vec<&str> = status
        .lines()
        .skip(3)
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(order, ["first", "s2", "s13", "late"], "{status}");
    assert!(status.contains("2023-11-14 22:13:20 UTC"), "{status}");
    let out = env
        .cmd(&["status"])
        .env("TZ", "Asia/Tokyo")
        .output()
        .unwrap();
    let status = String::from_utf8(out.stdout).unwrap();
    assert!(status.contains("2023-11-15 07:13:20 JST"), "{status}");
}

#[test]
fn a_failure_with_unrecorded_iterations_points_at_the_iteration_count() {
    let env = Env::new();
    std::fs::write(
        env.file(),
        "ENCRYPTION_KEYS__v1=\"pw\"\nENCRYPTION_SALT__v1=\"c2FsdHNhbHRzYWx0\"\n",
    )
    .unwrap();
    let token = env.ok(&["encrypt"], b"x");
    let err = env.fails(&["--iterations", "2000", "decrypt"], &token, 1);
    assert!(
        err.contains("--iterations") && err.contains("tried: v1"),
        "{err}"
    );
    // Versions that record their count get no such hint.
    let other = Env::new();
    other.ok(&["init"], b"");
    let err = other.fails(&["decrypt"], &token, 1);
    assert!(!err.contains("--iterations"), "{err}");
}

// Everyday use: output people and scripts can use, passwords, audit.

#[test]
fn quiet_silences_confirmations_but_not_errors() {
    let env = Env::new();
    let out = env.cmd(&["--quiet", "init"]).output().unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        stderr_of(&out)
    );
    let out = env
        .cmd(&["-q", "rotate", "--new-version", "v2"])
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        stderr_of(&out)
    );
    let err = env.fails(&["-q", "rotate", "--new-version", "v2"], b"", 1);
    assert!(err.contains("already exists"), "{err}");
}

#[test]
fn status_and_verify_speak_json() {
    let env = Env::new();
    env.ok(&["init"], b"");
    env.ok(&["rotate", "--new-version", "v2", "--no-activate"], b"");
    env.ok(&["retire", "v2"], b"");
    let status: serde_json::Value =
        serde_json::from_slice(&env.ok(&["status", "--json"], b"")).unwrap();
    assert_eq!(status["schema"], 1);
    assert_eq!(status["active"], "v1");
    let versions = status["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    // Unknown activation first: the staged v2, then v1.
    assert_eq!(versions[0]["version"], "v2");
    let v1 = &versions[1];
    assert_eq!(v1["version"], "v1");
    assert_eq!(v1["state"], "usable");
    assert_eq!(v1["kind"], "password");
    assert_eq!(v1["iterations"], 1000);
    assert_eq!(v1["iterations_recorded"], true);
    let at = v1["activated_at"].as_str().unwrap();
    assert!(at.ends_with('Z') && at.len() == 20, "{at}");
    assert!(v1["activated_at_unix"].as_u64().is_some());
    assert_eq!(versions[0]["state"], "retired");
    assert!(versions[0]["activated_at"].is_null());
    // Never a secret.
    let text = std::fs::read_to_string(env.file()).unwrap();
    for secret in secrets_in(&env.file()) {
        assert!(!status.to_string().contains(&secret));
    }
    let verify: serde_json::Value =
        serde_json::from_slice(&env.ok(&["verify", "--json"], b"")).unwrap();
    assert_eq!(verify["ok"], true);
    assert_eq!(verify["checksum"], "verified");
    assert_eq!(verify["versions"], 2);
    assert_eq!(verify["salt_hashes_verified"], 2);
    assert!(!text.is_empty());
}

#[test]
fn passwords_come_from_files_and_descriptors_never_argv() {
    let env = Env::new();
    let pw = env.dir.path().join("pw.txt");
    std::fs::write(&pw, "SENTINEL-FILE-PW\nignored\n").unwrap();
    env.ok(&["init", "--password-file", pw.to_str().unwrap()], b"");
    assert_eq!(secrets_in(&env.file())[0], "SENTINEL-FILE-PW");
    // A descriptor the caller opened (here by the shell, as fd 3).
    let out = std::process::Command::new("bash")
        .current_dir(env.dir.path())
        .env_remove("SECRETS_MANAGER_ENV_FILE")
        .arg("-c")
        .arg(format!(
            "{} --iterations 1000 rotate --new-version v2 --password-fd 3 3<<<'SENTINEL-FD-PW'",
            assert_cmd::cargo::cargo_bin("secrets-manager").display()
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(secrets_in(&env.file()).contains(&"SENTINEL-FD-PW".to_owned()));
    let err = env.fails(
        &["rotate", "--new-version", "v3", "--password-fd", "97"],
        b"",
        1,
    );
    assert!(err.contains("file descriptor 97"), "{err}");
    std::fs::write(&pw, "\n").unwrap();
    let err = env.fails(
        &[
            "rotate",
            "--new-version",
            "v3",
            "--password-file",
            pw.to_str().unwrap(),
        ],
        b"",
        1,
    );
    assert!(err.contains("empty") && !err.contains("SENTINEL"), "{err}");
    // Two sources at once is a usage error.
    env.fails(
        &[
            "rotate",
            "--new-version",
            "v3",
            "--password-stdin",
            "--password-fd",
            "0",
        ],
        b"",
        2,
    );
    // There is no flag that takes the password itself.
    env.fails(
        &["rotate", "--new-version", "v3", "--password", "x"],
        b"",
        2,
    );
}

#[test]
fn a_raw_fernet_key_can_be_added_from_stdin() {
    let env = Env::new();
    env.ok(&["init"], b"");
    let key = env.ok(&["keygen"], b"");
    env.ok(
        &["rotate", "--new-version", "raw", "--fernet-key-stdin"],
        &key,
    );
    let token = env.ok(&["encrypt"], b"under a raw key");
    let expected = secrets_manager::fernet::Fernet::new(
        &secrets_manager::fernet::Key::from_base64(std::str::from_utf8(&key).unwrap().trim())
            .unwrap(),
    );
    assert_eq!(
        &*expected.decrypt(token.trim_ascii()).unwrap(),
        b"under a raw key"
    );
    let err = env.fails(
        &["rotate", "--new-version", "bad", "--fernet-key-stdin"],
        b"not a key\n",
        1,
    );
    assert!(err.contains("bad") && !err.contains("not a key"), "{err}");
    env.fails(
        &[
            "rotate",
            "--new-version",
            "x",
            "--fernet-key-stdin",
            "--salt",
            "c2FsdHNhbHRzYWx0",
        ],
        &key,
        2,
    );
}

#[test]
fn rewrap_keeps_going_when_asked_and_sums_up() {
    let env = Env::new();
    env.ok(&["init"], b"");
    let old = env.ok(&["encrypt"], b"old");
    env.ok(&["rotate", "--new-version", "v2"], b"");
    let new = env.ok(&["encrypt"], b"new");
    let input = [&old[..], b"garbage\n", &new[..], b"also bad\n"].concat();
    let out = env
        .cmd(&["rewrap", "--keep-going"])
        .write_stdin(input.clone())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert!(err.contains("line 2") && err.contains("line 4"), "{err}");
    assert!(
        err.contains("1 rewrapped, 1 already current, 2 failed"),
        "{err}"
    );
    let lines: Vec<&[u8]> = out.stdout.split(|&b| b == b'\n').collect();
    assert_eq!(lines.len(), 5, "four lines and the final newline");
    assert_eq!(lines[1], b"garbage");
    assert_eq!(lines[2], new.trim_ascii(), "a current token passes through");
    assert_eq!(env.manager().decrypt(lines[0]).unwrap().0, "v2");
    // Without --keep-going, the first failure stops it and prints nothing.
    let out = env.cmd(&["rewrap"]).write_stdin(input).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(stderr_of(&out).contains("line 2"));
}

#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    let env = Env::new();
    env.ok(&["init"], b"");
    let token = env.ok(&["encrypt"], b"x");
    std::fs::write(env.dir.path().join("tokens.txt"), token.repeat(20_000)).unwrap();
    let out = std::process::Command::new("bash")
        .current_dir(env.dir.path())
        .env_remove("SECRETS_MANAGER_ENV_FILE")
        .arg("-c")
        .arg(format!(
            "{bin} --iterations 1000 rewrap < tokens.txt | head -1 > /dev/null; echo \"status=${{PIPESTATUS[0]}}\"",
            bin = assert_cmd::cargo::cargo_bin("secrets-manager").display()
        ))
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert!(!err.contains("error"), "{err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "status=0");
}

#[test]
fn completions_for_every_shell() {
    let env = Env::new();
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let out = String::from_utf8(env.ok(&["completions", shell], b"")).unwrap();
        assert!(
            out.contains("rotate") && out.contains("new-version"),
            "{shell}"
        );
    }
    env.fails(&["completions", "tcsh"], b"", 2);
}

#[test]
fn the_audit_log_records_every_operation_and_no_secret() {
    let env = Env::new();
    let log = env.dir.path().join("audit.jsonl");
    let log_arg = log.to_str().unwrap();
    let pw = env.dir.path().join("pw.txt");
    std::fs::write(&pw, "SENTINEL-AUDIT-PW\n").unwrap();
    let pw_arg = pw.to_str().unwrap();
    env.ok(
        &["--audit-log", log_arg, "init", "--password-file", pw_arg],
        b"",
    );
    let token = env.ok(&["--audit-log", log_arg, "encrypt"], b"SENTINEL-PLAINTEXT");
    env.ok(&["--audit-log", log_arg, "decrypt"], &token);
    env.ok(
        &[
            "--audit-log",
            log_arg,
            "rotate",
            "--new-version",
            "v2",
            "--no-activate",
            "--password-file",
            pw_arg,
        ],
        b"",
    );
    env.ok(&["--audit-log", log_arg, "activate", "v2"], b"");
    env.ok(&["--audit-log", log_arg, "retire", "v1"], b"");
    env.ok(&["--audit-log", log_arg, "destroy", "v1", "--yes"], b"");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("SENTINEL"), "{text}");
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "encryption",
            "decryption",
            "version_added",
            "activation",
            "retirement",
            "destruction"
        ]
    );
    for e in &events {
        assert!(e["time"].as_str().unwrap().ends_with('Z'));
        assert!(e["pid"].as_u64().is_some() && e["user"].is_string());
        assert_eq!(e["keyring"], ".env.secrets");
    }
    assert_eq!(events[5]["version"], "v1");
    // `-` is stderr.
    let out = env
        .cmd(&["--audit-log", "-", "encrypt"])
        .write_stdin("x")
        .output()
        .unwrap();
    assert!(
        stderr_of(&out).contains("\"event\":\"encryption\""),
        "{}",
        stderr_of(&out)
    );
}

/// Drives the binary in a real pseudo-terminal with tmux.
#[cfg(unix)]
struct Tmux {
    socket: String,
}

#[cfg(unix)]
impl Tmux {
    fn start(dir: &Path, command: &str) -> Option<Self> {
        if std::process::Command::new("tmux")
            .arg("-V")
            .output()
            .is_err()
        {
            assert!(!secrets_manager_tests_in_ci(), "CI installs tmux");
            eprintln!("skipped: tmux is not installed");
            return None;
        }
        static SESSIONS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let socket = format!(
            "sm-test-{}-{}",
            std::process::id(),
            SESSIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let ok = std::process::Command::new("tmux")
            .args([
                "-L",
                &socket,
                "new-session",
                "-d",
                "-x",
                "200",
                "-y",
                "50",
                "-c",
            ])
            .arg(dir)
            .arg(format!("{command}; echo EXIT=$?; sleep 30"))
            .env_remove("SECRETS_MANAGER_ENV_FILE")
            .status()
            .unwrap()
            .success();
        assert!(ok, "tmux started");
        Some(Self { socket })
    }

    fn screen(&self) -> String {
        let out = std::process::Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn wait_for(&self, text: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "waited for {text:?}; screen:\n{screen}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Waits until the program has turned the terminal's echo off, so
    /// what is typed next cannot echo whatever the program does.
    fn wait_for_no_echo(&self) {
        let tty = std::process::Command::new("tmux")
            .args(["-L", &self.socket, "display-message", "-p", "#{pane_tty}"])
            .output()
            .unwrap();
        let tty = String::from_utf8_lossy(&tty.stdout).trim().to_owned();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let modes = std::process::Command::new("stty")
                .args(["-a", "-F", &tty])
                .output()
                .unwrap();
            let modes = String::from_utf8_lossy(&modes.stdout).into_owned();
            if modes.split_whitespace().any(|m| m == "-echo") {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "echo never went off: {modes}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    fn type_line(&self, text: &str) {
        let ok = std::process::Command::new("tmux")
            .args(["-L", &self.socket, "send-keys", "-l", text])
            .status()
            .unwrap()
            .success()
            && std::process::Command::new("tmux")
                .args(["-L", &self.socket, "send-keys", "Enter"])
                .status()
                .unwrap()
                .success();
        assert!(ok);
    }
}

#[cfg(unix)]
impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = std::process::Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

#[cfg(unix)]
#[test]
fn the_password_prompt_asks_twice_and_echoes_nothing() {
    let env = Env::new();
    let bin = assert_cmd::cargo::cargo_bin("secrets-manager");
    let Some(term) = Tmux::start(
        env.dir.path(),
        &format!("{} --iterations 1000 init --password-stdin", bin.display()),
    ) else {
        return;
    };
    term.wait_for("Password for the new version:");
    term.wait_for_no_echo();
    term.type_line("SENTINEL-TYPED");
    term.wait_for("The same password again:");
    term.wait_for_no_echo();
    term.type_line("SENTINEL-TYPED");
    let screen = term.wait_for("EXIT=");
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(
        !screen.contains("SENTINEL"),
        "the password was echoed:\n{screen}"
    );
    assert_eq!(secrets_in(&env.file())[0], "SENTINEL-TYPED");

    // Two different answers change nothing.
    let other = Env::new();
    let term = Tmux::start(
        other.dir.path(),
        &format!("{} --iterations 1000 init --password-stdin", bin.display()),
    )
    .unwrap();
    term.wait_for("Password for the new version:");
    term.type_line("one");
    term.wait_for("The same password again:");
    term.type_line("two");
    let screen = term.wait_for("EXIT=");
    assert!(
        screen.contains("differ") && screen.contains("EXIT=1"),
        "{screen}"
    );
    assert!(!other.file().exists());
}

#[cfg(unix)]
#[test]
fn binary_plaintext_is_not_written_to_a_terminal_unless_forced() {
    let env = Env::new();
    env.ok(&["init"], b"");
    std::fs::write(
        env.dir.path().join("token"),
        env.ok(&["encrypt"], b"\xff\xfe\x00binary"),
    )
    .unwrap();
    std::fs::write(
        env.dir.path().join("text"),
        env.ok(&["encrypt"], b"plain text"),
    )
    .unwrap();
    let bin = assert_cmd::cargo::cargo_bin("secrets-manager");
    let run = |args: &str| {
        let term = Tmux::start(
            env.dir.path(),
            &format!("{} --iterations 1000 {args}", bin.display()),
        )
        .unwrap();
        term.wait_for("EXIT=")
    };
    let screen = run("decrypt < token");
    assert!(
        screen.contains("binary") && screen.contains("--force") && screen.contains("EXIT=1"),
        "{screen}"
    );
    let screen = run("decrypt --force < token");
    assert!(screen.contains("EXIT=0"), "{screen}");
    let screen = run("decrypt < text");
    assert!(
        screen.contains("plain text") && screen.contains("EXIT=0"),
        "{screen}"
    );
    // Redirected, it is written as it is.
    assert_eq!(
        env.ok(
            &["decrypt"],
            &std::fs::read(env.dir.path().join("token")).unwrap()
        ),
        b"\xff\xfe\x00binary"
    );
}

/// The help of every command, as snapshots: a change to what users read
/// shows up in review (`INSTA_UPDATE=always cargo test` rewrites them).
#[test]
fn help_texts_are_stable_and_every_command_has_examples() {
    let env = Env::new();
    let commands = [
        "init",
        "encrypt",
        "decrypt",
        "rotate",
        "activate",
        "retire",
        "destroy",
        "rewrap",
        "status",
        "verify",
        "keygen",
        "completions",
        "set",
        "get",
        "run",
        "db",
        "copy",
        "rotate-kek",
    ];
    let help = |args: &[&str]| {
        let out = env.cmd(args).env("COLUMNS", "100").output().unwrap();
        assert!(out.status.success(), "{args:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let top = help(&["--help"]);
    assert!(top.contains("Examples:"), "{top}");
    insta::assert_snapshot!("help", top);
    for command in commands {
        let text = help(&[command, "--help"]);
        assert!(
            text.contains("Example"),
            "`{command} --help` has no examples:\n{text}"
        );
        insta::assert_snapshot!(format!("help-{command}"), text);
    }
}

#[test]
fn rotate_can_schedule_the_switch() {
    let env = Env::new();
    env.ok(&["init"], b"");
    let out = env
        .cmd(&["rotate", "--new-version", "v2", "--activate-after", "1h"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("becomes the active version in 3600s"),
        "{}",
        stderr_of(&out)
    );
    let status: serde_json::Value =
        serde_json::from_slice(&env.ok(&["status", "--json"], b"")).unwrap();
    assert_eq!(status["active"], "v1");
    let token = env.ok(&["encrypt"], b"x");
    assert_eq!(env.manager().decrypt(token.trim_ascii()).unwrap().0, "v1");
    for bad in ["soon", "10y", "-5m"] {
        env.fails(
            &["rotate", "--new-version", "v3", "--activate-after", bad],
            b"",
            2,
        );
    }
    env.fails(
        &[
            "rotate",
            "--new-version",
            "v3",
            "--activate-after",
            "1m",
            "--no-activate",
        ],
        b"",
        2,
    );
}

#[test]
fn long_and_slash_version_names_work_at_the_shell() {
    let env = Env::new();
    env.ok(
        &["init", "--name", "release-2024-01-15-production-key"],
        b"",
    );
    let t1 = env.ok(&["encrypt"], b"one");
    env.ok(&["rotate", "--new-version", "Team/Alpha"], b"");
    let t2 = env.ok(&["encrypt"], b"two");
    assert_eq!(
        env.ok(
            &["decrypt", "--hint", "release-2024-01-15-production-key"],
            &t1
        ),
        b"one"
    );
    assert_eq!(env.ok(&["decrypt"], &t2), b"two");
    let status = String::from_utf8(env.ok(&["status"], b"")).unwrap();
    assert!(
        status.contains("active: team/alpha")
            && status.contains("release-2024-01-15-production-key"),
        "{status}"
    );
    env.ok(&["retire", "release-2024-01-15-production-key"], b"");
    env.ok(&["verify"], b"");
    let err = env.fails(&["rotate", "--new-version", "has space"], b"", 1);
    assert!(err.contains("invalid version name 'has space'"), "{err}");
}

/// A keyring in the Python package's own format (no extension variables,
/// its quoting), with long and slash-containing version names: the CLI
/// loads it, decrypts a token its library made, and rotates it.
#[test]
fn a_python_keyring_with_long_and_slash_names_works_at_the_shell() {
    let env = Env::new();
    let long = "release-2024-01-15-production-key";
    std::fs::write(
        env.file(),
        format!(
            "# Arquivo gerado pelo SecretsManager\nACTIVE_ENCRYPTION_VERSION=\"team/alpha\"\nENCRYPTION_KEYS__{long}=\"old password\"\nENCRYPTION_KEYS__team/alpha=\"team password\"\nENCRYPTION_SALT__{long}=\"c2FsdHNhbHRzYWx0\"\nENCRYPTION_SALT__team/alpha=\"dGVhbXNhbHR0ZWFtc2FsdA==\"\n"
        ),
    )
    .unwrap();
    let (_, old_token) = SecretsManager::new(
        SecretsConfig::builder()
            .key(long, "old password", "c2FsdHNhbHRzYWx0")
            .kdf_iterations(1_000)
            .build()
            .unwrap(),
    )
    .unwrap()
    .encrypt(b"made in Python")
    .unwrap();
    assert_eq!(
        env.ok(&["decrypt"], old_token.as_bytes()),
        b"made in Python"
    );
    let status = String::from_utf8(env.ok(&["status"], b"")).unwrap();
    assert!(
        status.contains("active: team/alpha") && status.contains(long),
        "{status}"
    );
    env.ok(&["rotate", "--new-version", "team/beta"], b"");
    let token = env.ok(&["encrypt"], b"after");
    assert_eq!(env.ok(&["decrypt"], &token), b"after");
    assert_eq!(
        env.ok(&["decrypt"], old_token.as_bytes()),
        b"made in Python"
    );
    env.ok(&["verify"], b"");
}
