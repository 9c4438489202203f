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
        let mut c = Command::cargo_bin("secrets-manager").unwrap();
        c.current_dir(self.dir.path())
            .env_remove("SECRETS_MANAGER_ENV_FILE")
            .args(["--iterations", "1000"])
            .args(args);
        c
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
    let err = env.fails(&["--env-file", "missing.env", "encrypt"], b"x", 1);
    assert!(
        err.contains("missing.env") && err.contains("cannot open"),
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
    let out = std::process::Command::new(&bin)
        .current_dir(other.dir.path())
        .env_remove("SECRETS_MANAGER_ENV_FILE")
        .args(["--iterations", "1000", "rotate", "--new-version", "v2"])
        .uid(65534)
        .gid(65534)
        .output()
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
