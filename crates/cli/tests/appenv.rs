//! Encrypted values in application `.env` files through the binary: `set`,
//! `get`, `encrypt`/`decrypt`/`rewrap -f` in place, and `run`, with their
//! failure paths; the prompt in a real pseudo-terminal; python-dotenv
//! reading what the commands write.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use secrets_manager::fernet::UnverifiedToken;
use secrets_manager::{SecretsConfig, SecretsManager};
use secrets_manager_tests::{python_script, python_with, run_python};

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    /// A scratch directory with a keyring (`.env.secrets`) in it.
    fn new() -> Self {
        let env = Self::bare();
        env.ok(&["init"], b"");
        env
    }

    /// A scratch directory without a keyring.
    fn bare() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap()
    }

    /// The binary, run in the directory, with fast derivations and no
    /// keyring address from the caller's environment.
    fn cmd(&self, args: &[&str]) -> Command {
        Command::from_std(self.std_cmd(args))
    }

    /// The same as a `std` command, to spawn and signal.
    fn std_cmd(&self, args: &[&str]) -> std::process::Command {
        let mut c = secrets_manager_tests::without_caller_settings(&assert_cmd::cargo::cargo_bin(
            "secrets-manager",
        ));
        c.current_dir(self.dir.path())
            .args(["--iterations", "1000"])
            .args(args);
        c
    }

    fn output(&self, args: &[&str], stdin: &[u8]) -> Output {
        self.cmd(args).write_stdin(stdin).output().unwrap()
    }

    fn ok(&self, args: &[&str], stdin: &[u8]) -> Vec<u8> {
        let out = self.output(args, stdin);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Stdout and stderr of a command that must succeed.
    fn ok_err(&self, args: &[&str], stdin: &[u8]) -> (Vec<u8>, String) {
        let out = self.output(args, stdin);
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(out.status.success(), "{args:?}: {err}");
        (out.stdout, err)
    }

    /// A command that must fail with `code`, printing nothing on stdout and,
    /// for 1, one `error:` line. Returns stderr.
    fn fails(&self, args: &[&str], stdin: &[u8], code: i32) -> String {
        let out = self.output(args, stdin);
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(
            out.stdout.is_empty(),
            "{args:?} printed {:?}",
            String::from_utf8_lossy(&out.stdout)
        );
        if code == 1 {
            assert!(
                err.starts_with("error: ") && err.trim_end().lines().count() == 1,
                "{err:?}"
            );
        }
        err
    }

    fn manager(&self, keyring: &str) -> SecretsManager {
        SecretsManager::new(
            SecretsConfig::builder()
                .env_file(self.path(keyring))
                .unwrap()
                .build()
                .unwrap(),
        )
        .unwrap()
    }

    /// `set KEY` with `value` on stdin.
    fn set(&self, file: &str, key: &str, value: &[u8]) {
        self.ok(&["set", key, "-f", file, "--value-stdin"], value);
    }

    fn get(&self, file: &str, key: &str) -> Vec<u8> {
        self.ok(&["get", key, "-f", file], b"")
    }

    /// The directory's entries, for "nothing left behind".
    fn listing(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

/// The value of `NAME=` on its line, quotes removed (tokens only).
fn token_in(text: &str, name: &str) -> String {
    let value = text
        .lines()
        .find_map(|l| {
            l.trim_start_matches("export ")
                .strip_prefix(&format!("{name}="))
        })
        .unwrap_or_else(|| panic!("no {name} in {text}"));
    match value.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next().unwrap().to_owned(),
        None => value.split(' ').next().unwrap().to_owned(),
    }
}

fn is_token(s: &str) -> bool {
    UnverifiedToken::parse(s).is_ok()
}

fn decrypt(m: &SecretsManager, token: &str) -> Vec<u8> {
    m.decrypt(token).unwrap().1.to_vec()
}

/// A token made under a keyring nobody here has.
fn foreign_token() -> String {
    let other = SecretsManager::new(
        SecretsConfig::builder()
            .key("v1", "someone else", "another-salt-0123")
            .kdf_iterations(1000)
            .build()
            .unwrap(),
    )
    .unwrap();
    other.encrypt(b"not yours").unwrap().1
}

// ---------------------------------------------------------------- set, get

#[test]
fn set_stores_a_token_and_get_prints_the_exact_plaintext() {
    let env = Env::new();
    let (_, err) = env.ok_err(
        &["set", "API_KEY", "-f", ".env", "--value-stdin"],
        b"s3cret\n",
    );
    assert!(
        err.contains(".env: API_KEY set, encrypted under v1"),
        "{err}"
    );
    let text = env.read(".env");
    assert!(text.starts_with("API_KEY=\"gAAAAA"), "{text}");
    assert!(!text.contains("s3cret"));
    assert!(is_token(&token_in(&text, "API_KEY")));
    assert_eq!(
        env.get(".env", "API_KEY"),
        b"s3cret",
        "one line end dropped"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(env.path(".env")).unwrap().permissions();
        assert_eq!(mode.mode() & 0o777, 0o600, "a new file is private");
    }

    // Only one line end is dropped; any bytes go in and come out.
    env.set(".env", "BLOB", b"two\n\n");
    assert_eq!(env.get(".env", "BLOB"), b"two\n");
    env.set(".env", "BYTES", b"\xff\x00\x01");
    assert_eq!(env.get(".env", "BYTES"), b"\xff\x00\x01");
    env.set(".env", "EMPTY", b"");
    assert_eq!(env.get(".env", "EMPTY"), b"");

    env.write("value.txt", "from a file\r\n");
    env.ok(
        &[
            "set",
            "FROM_FILE",
            "-f",
            ".env",
            "--value-file",
            "value.txt",
        ],
        b"",
    );
    assert_eq!(env.get(".env", "FROM_FILE"), b"from a file");
}

#[test]
fn set_replaces_a_value_where_it_stands_and_keeps_every_other_byte() {
    let env = Env::new();
    let before =
        "# the app\r\nexport API_KEY=old   # rotate monthly\r\nOTHER='x y'\nBARE\n\nLAST=${OTHER}";
    env.write(".env", before);
    env.set(".env", "API_KEY", b"new");
    env.set(".env", "BARE", b"now set");
    env.set(".env", "ADDED", b"appended");
    let text = env.read(".env");
    let token = token_in(&text, "API_KEY");
    let bare = token_in(&text, "BARE");
    let added = token_in(&text, "ADDED");
    assert_eq!(
        text,
        format!(
            "# the app\r\nexport API_KEY=\"{token}\"   # rotate monthly\r\nOTHER='x y'\nBARE=\"{bare}\"\n\nLAST=${{OTHER}}\nADDED=\"{added}\"\n"
        )
    );
    assert_eq!(env.get(".env", "API_KEY"), b"new");
    assert_eq!(env.get(".env", "BARE"), b"now set");
    assert_eq!(env.get(".env", "ADDED"), b"appended");
}

#[test]
fn set_refuses_what_it_cannot_store() {
    let env = Env::new();
    let before = "A=1\n";
    env.write(".env", before);
    for key in [
        "ENCRYPTION_KEYS__v9",
        "encryption_salt__v1",
        "ACTIVE_ENCRYPTION_VERSION",
        "ENCRYPTION_ENV_CHECKSUM",
    ] {
        let err = env.fails(&["set", key, "-f", ".env", "--value-stdin"], b"x", 1);
        assert!(err.contains("belongs to the keyring"), "{err}");
    }
    for key in ["A B", "A=B", "#A", "'A'", "A${B}", ""] {
        let err = env.fails(&["set", key, "-f", ".env", "--value-stdin"], b"x", 1);
        assert!(err.contains("variable name"), "{key}: {err}");
    }
    let err = env.fails(
        &["set", "A", "-f", ".env", "--value-file", "missing.txt"],
        b"",
        1,
    );
    assert!(err.contains("missing.txt"), "{err}");
    // Usage errors: both sources, no source and no terminal, no file.
    env.fails(
        &[
            "set",
            "A",
            "-f",
            ".env",
            "--value-stdin",
            "--value-file",
            "x",
        ],
        b"",
        2,
    );
    let err = env.fails(&["set", "A", "-f", ".env"], b"x", 2);
    assert!(err.contains("--value-stdin"), "{err}");
    env.fails(&["set", "A", "--value-stdin"], b"x", 2);
    assert_eq!(env.read(".env"), before, "nothing was written");

    // No keyring: said before any value is read, and nothing written.
    let bare = Env::bare();
    let err = bare.fails(&["set", "A", "-f", ".env", "--value-stdin"], b"x", 1);
    assert!(err.contains("no keyring"), "{err}");
    assert!(!bare.path(".env").exists());
}

#[test]
fn get_fails_naming_the_file_and_the_variable() {
    let env = Env::new();
    env.write(
        ".env",
        &format!(
            "PLAIN=visible\nBARE\nFOREIGN=\"{}\"\nENCRYPTION_KEYS__x=pw\nENCRYPTION_SALT__x=c2FsdHNhbHQ=\n",
            foreign_token()
        ),
    );
    let err = env.fails(&["get", "NOPE", "-f", ".env"], b"", 1);
    assert!(err.contains(".env: no variable NOPE"), "{err}");
    let err = env.fails(&["get", "BARE", "-f", ".env"], b"", 1);
    assert!(err.contains(".env: BARE has no value"), "{err}");
    let err = env.fails(&["get", "ENCRYPTION_KEYS__x", "-f", ".env"], b"", 1);
    assert!(err.contains("belongs to the keyring"), "{err}");
    assert!(!err.contains("pw"));
    let err = env.fails(&["get", "FOREIGN", "-f", ".env"], b"", 1);
    assert!(err.contains(".env: FOREIGN: cannot decrypt"), "{err}");
    let err = env.fails(&["get", "A", "-f", "missing.env"], b"", 1);
    assert!(err.contains("missing.env"), "{err}");
    env.fails(&["get", "A"], b"", 2);
    // A plain value is its own plaintext, with a warning.
    let (out, err) = env.ok_err(&["get", "PLAIN", "-f", ".env"], b"");
    assert_eq!(out, b"visible");
    assert!(
        err.contains("warning: .env: PLAIN is not encrypted"),
        "{err}"
    );
}

// ------------------------------------------------- encrypt, decrypt, rewrap

const APP: &str = "# settings\nexport DB_PASSWORD=hunter2 # from the vault\nAPI_KEY='k e y'\nDEBUG=\nURL=postgres://app:${DB_PASSWORD}@db/app\nBARE\n";

#[test]
fn encrypt_in_place_encrypts_every_plain_value_and_decrypt_restores_them() {
    let env = Env::new();
    env.write(".env", APP);
    env.set(".env", "ALREADY", b"sealed");
    let sealed = token_in(&env.read(".env"), "ALREADY");
    let (out, err) = env.ok_err(&["encrypt", "-f", ".env"], b"");
    assert!(out.is_empty());
    assert!(
        err.contains(".env: encrypted DB_PASSWORD, API_KEY, DEBUG under v1"),
        "{err}"
    );
    // A value with a reference stays plain, said; so is the reference to
    // an encrypted value.
    assert!(err.contains("URL refers to ${DB_PASSWORD}"), "{err}");
    let text = env.read(".env");
    assert!(
        text.starts_with("# settings\nexport DB_PASSWORD=\"gAAAA"),
        "{text}"
    );
    assert!(text.contains("\" # from the vault\n"), "{text}");
    assert!(text.contains("URL=postgres://app:${DB_PASSWORD}@db/app\nBARE\n"));
    assert_eq!(
        token_in(&text, "ALREADY"),
        sealed,
        "a token is left as it is"
    );
    let m = env.manager(".env.secrets");
    assert_eq!(decrypt(&m, &token_in(&text, "API_KEY")), b"k e y");
    assert_eq!(decrypt(&m, &token_in(&text, "DEBUG")), b"");
    // Nothing left to do.
    let (_, err) = env.ok_err(&["encrypt", "-f", ".env"], b"");
    assert!(err.contains(".env: no value to encrypt"), "{err}");
    assert_eq!(env.read(".env"), text);

    let (_, err) = env.ok_err(&["decrypt", "-f", ".env"], b"");
    assert!(
        err.contains(".env: decrypted DB_PASSWORD, API_KEY, DEBUG, ALREADY"),
        "{err}"
    );
    let text = env.read(".env");
    assert_eq!(
        text,
        "# settings\nexport DB_PASSWORD=\"hunter2\" # from the vault\nAPI_KEY=\"k e y\"\nDEBUG=\"\"\nURL=postgres://app:${DB_PASSWORD}@db/app\nBARE\nALREADY=\"sealed\"\n"
    );
    assert_eq!(
        env.listing(),
        [".env", ".env.secrets"],
        "no temporaries left"
    );
}

#[test]
fn encrypt_and_decrypt_with_named_keys() {
    let env = Env::new();
    env.write(".env", APP);
    env.ok(
        &["encrypt", "-f", ".env", "-k", "API_KEY", "-k", "DEBUG"],
        b"",
    );
    let text = env.read(".env");
    assert!(text.contains("DB_PASSWORD=hunter2 #"), "{text}");
    assert!(is_token(&token_in(&text, "API_KEY")));
    assert!(is_token(&token_in(&text, "DEBUG")));
    // Named again: already encrypted, said, nothing changes.
    let (_, err) = env.ok_err(&["encrypt", "-f", ".env", "-k", "API_KEY"], b"");
    assert!(err.contains("API_KEY is encrypted already"), "{err}");
    assert_eq!(env.read(".env"), text);

    // Refusals name the file and the variable, and write nothing.
    for (key, says) in [
        ("NOPE", "no variable NOPE in .env"),
        ("BARE", ".env: BARE has no value"),
        ("URL", ".env: URL refers to ${DB_PASSWORD}"),
        (
            "ENCRYPTION_KEYS__v1",
            ".env: ENCRYPTION_KEYS__v1 belongs to the keyring",
        ),
    ] {
        let err = env.fails(&["encrypt", "-f", ".env", "-k", key], b"", 1);
        assert!(err.contains(says), "{key}: {err}");
        assert!(err.contains("nothing was written"), "{err}");
        assert_eq!(env.read(".env"), text);
    }
    // -k needs -f.
    env.fails(&["encrypt", "-k", "API_KEY"], b"", 2);

    env.ok(&["decrypt", "-f", ".env", "-k", "DEBUG"], b"");
    let text = env.read(".env");
    assert!(text.contains("DEBUG=\"\"\n"), "{text}");
    assert!(is_token(&token_in(&text, "API_KEY")));
    let (_, err) = env.ok_err(&["decrypt", "-f", ".env", "-k", "DB_PASSWORD"], b"");
    assert!(err.contains("DB_PASSWORD is plain already"), "{err}");
    // --hint and --ttl apply to each value.
    env.ok(
        &["decrypt", "-f", ".env", "--hint", "v1", "--ttl", "3600"],
        b"",
    );
    assert!(env.read(".env").contains("API_KEY=\"k e y\"\n"));
}

/// `decrypt -f --ttl S --hint V`: both apply, as for stdin.
#[test]
fn decrypt_in_a_file_honours_a_hint_given_with_a_ttl() {
    let env = Env::new();
    env.ok(&["rotate", "--new-version", "v2"], b"");
    env.ok(&["retire", "v1"], b"");
    env.write(".env", &format!("FOREIGN=\"{}\"\n", foreign_token()));
    // No version here opens it; the error names the retired v1 only if the
    // hint was used.
    let err = env.fails(
        &["decrypt", "-f", ".env", "--ttl", "60", "--hint", "v1"],
        b"",
        1,
    );
    assert!(err.contains("v1 is retired"), "{err}");
    let err = env.fails(&["decrypt", "-f", ".env", "--ttl", "60"], b"", 1);
    assert!(
        err.contains("tried: v2") && !err.contains("retired"),
        "{err}"
    );
}

#[test]
fn a_value_that_fails_to_decrypt_writes_nothing_in_any_file() {
    let env = Env::new();
    env.set("a.env", "GOOD", b"fine");
    env.set("b.env", "ALSO_GOOD", b"fine too");
    let b = env.read("b.env");
    env.write("b.env", &format!("{b}BAD=\"{}\"\n", foreign_token()));
    let (a, b) = (env.read("a.env"), env.read("b.env"));
    for args in [
        &["decrypt", "-f", "a.env", "-f", "b.env"][..],
        &["rewrap", "-f", "a.env", "-f", "b.env"],
    ] {
        let err = env.fails(args, b"", 1);
        assert!(err.contains("b.env: BAD: cannot decrypt"), "{err}");
        assert!(err.contains("nothing was written"), "{err}");
        assert!(!err.contains("not yours"));
        assert_eq!(
            (env.read("a.env"), env.read("b.env")),
            (a.clone(), b.clone())
        );
    }
    // A plaintext a .env file cannot hold: named, nothing written.
    env.set("c.env", "BINARY", b"\xff\xfe");
    env.set("c.env", "REF", b"${HOME}");
    let c = env.read("c.env");
    let err = env.fails(&["decrypt", "-f", "c.env", "-k", "BINARY"], b"", 1);
    assert!(
        err.contains("c.env: BINARY: the plaintext is not UTF-8"),
        "{err}"
    );
    let err = env.fails(&["decrypt", "-f", "c.env", "-k", "REF"], b"", 1);
    assert!(err.contains("REF") && err.contains("${...}"), "{err}");
    assert_eq!(env.read("c.env"), c);
}

#[test]
fn several_files_are_changed_with_one_command() {
    let env = Env::new();
    env.write("a.env", "A=1\nSHARED=a\n");
    env.write("b.env", "B=2\nSHARED=b\n");
    env.ok(&["encrypt", "-f", "a.env", "-f", "b.env", "-k", "B"], b"");
    assert_eq!(env.read("a.env"), "A=1\nSHARED=a\n", "B is only in b.env");
    assert!(is_token(&token_in(&env.read("b.env"), "B")));
    let err = env.fails(
        &["encrypt", "-f", "a.env", "-f", "b.env", "-k", "C"],
        b"",
        1,
    );
    assert!(err.contains("no variable C in a.env, b.env"), "{err}");
    let (_, err) = env.ok_err(&["encrypt", "-f", "a.env", "-f", "b.env"], b"");
    assert!(err.contains("a.env: encrypted A, SHARED"), "{err}");
    assert!(err.contains("b.env: encrypted SHARED"), "{err}");
    env.ok(&["decrypt", "-f", "a.env", "-f", "b.env"], b"");
    assert_eq!(env.read("a.env"), "A=\"1\"\nSHARED=\"a\"\n");
    assert_eq!(env.read("b.env"), "B=\"2\"\nSHARED=\"b\"\n");
    let err = env.fails(&["encrypt", "-f", "a.env", "-f", "missing.env"], b"", 1);
    assert!(err.contains("missing.env"), "{err}");
    assert_eq!(env.read("a.env"), "A=\"1\"\nSHARED=\"a\"\n");
}

#[test]
fn rewrap_in_place_moves_tokens_to_the_active_version_keeping_timestamps() {
    let env = Env::new();
    let m = env.manager(".env.secrets");
    let old = m.encrypt_at_time(b"from 2001", 1_000_000_000).unwrap().1;
    env.write(
        ".env",
        &format!("# app\nOLD=\"{old}\" # kept\nPLAIN=x\nBARE\n"),
    );
    env.set(".env", "NEW", b"recent");
    env.ok(&["rotate", "--new-version", "v2"], b"");
    let (_, err) = env.ok_err(&["rewrap", "-f", ".env"], b"");
    assert!(
        err.contains(".env: re-encrypted OLD, NEW under v2"),
        "{err}"
    );
    let text = env.read(".env");
    assert!(text.starts_with("# app\nOLD=\"gAAAA") && text.contains("\" # kept\nPLAIN=x\nBARE\n"));
    let m = env.manager(".env.secrets");
    let fresh = token_in(&text, "OLD");
    assert_ne!(fresh, old);
    assert_eq!(
        UnverifiedToken::parse(&fresh).unwrap().timestamp(),
        1_000_000_000
    );
    let (version, plaintext) = m.decrypt(&fresh).unwrap();
    assert_eq!(
        (version.as_str(), &plaintext[..]),
        ("v2", &b"from 2001"[..])
    );
    assert_eq!(m.decrypt(token_in(&text, "NEW")).unwrap().0, "v2");
    // Without -f, rewrap still reads stdin.
    let out = env.ok(&["rewrap"], format!("{old}\n").as_bytes());
    assert_eq!(
        m.decrypt(String::from_utf8(out).unwrap().trim()).unwrap().0,
        "v2"
    );
}

// -------------------------------------------- the keyring file as the app's

#[test]
fn the_keyring_file_can_be_the_app_file_and_its_keyring_is_never_touched() {
    let env = Env::bare();
    env.ok(&["--env-file", ".env", "init"], b"");
    let keyring_lines = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with("ENCRYPTION_") && !l.starts_with("ENCRYPTION_ENV_CHECKSUM"))
            .map(str::to_owned)
            .collect()
    };
    let keys = keyring_lines(&env.read(".env"));
    assert!(keys.len() >= 3, "{keys:?}");

    // The keyring was not named: the error says where it is.
    let err = env.fails(&["set", "API", "-f", ".env", "--value-stdin"], b"x", 1);
    assert!(err.contains("pass --env-file .env"), "{err}");

    let k = ["--env-file", ".env"];
    env.ok(
        &[&k[..], &["set", "API", "-f", ".env", "--value-stdin"]].concat(),
        b"k",
    );
    let text = env.read(".env");
    env.write(".env", &format!("{text}PLAIN=\"plain\"\n"));
    env.ok(&["--env-file", ".env", "verify", "--update-checksum"], b"");
    env.ok(&[&k[..], &["encrypt", "-f", ".env"]].concat(), b"");
    // Only the application's values were encrypted; the keyring lines are
    // the same bytes, and the checksum verifies.
    let text = env.read(".env");
    assert_eq!(keyring_lines(&text), keys);
    assert!(is_token(&token_in(&text, "PLAIN")));
    env.ok(&["--env-file", ".env", "verify"], b"");
    for args in [
        &["rewrap", "-f", ".env"][..],
        &["decrypt", "-f", ".env", "-k", "PLAIN"],
    ] {
        env.ok(&[&k[..], args].concat(), b"");
        assert_eq!(keyring_lines(&env.read(".env")), keys);
        env.ok(&["--env-file", ".env", "verify"], b"");
    }
    assert_eq!(
        env.ok(&[&k[..], &["get", "API", "-f", ".env"]].concat(), b""),
        b"k"
    );
    let err = env.fails(
        &[
            &k[..],
            &["decrypt", "-f", ".env", "-k", "ENCRYPTION_KEYS__v1"],
        ]
        .concat(),
        b"",
        1,
    );
    assert!(err.contains("belongs to the keyring"), "{err}");

    // A hand edit the checksum does not cover: refused, untouched.
    let edited = format!("{}HAND=edit\n", env.read(".env"));
    env.write(".env", &edited);
    let err = env.fails(
        &[&k[..], &["encrypt", "-f", ".env", "-k", "HAND"]].concat(),
        b"",
        1,
    );
    assert!(err.contains("checksum mismatch"), "{err}");
    assert_eq!(env.read(".env"), edited);

    // The Python package's reading of the file: the checksum it computes
    // matches, and v1's key opens the value `set` stored.
    let Some(python) = python_with(&["dotenv", "cryptography"]) else {
        return;
    };
    env.write(".env", &edited.replace("HAND=edit\n", ""));
    let token = token_in(&env.read(".env"), "API");
    let request = serde_json::json!({
        "mode": "read",
        "path": env.path(".env"),
        "tokens": { "v1": token },
    });
    let answer: serde_json::Value = serde_json::from_slice(&run_python(
        &python,
        &python_script("seed_package.py"),
        request.to_string().as_bytes(),
    ))
    .unwrap();
    assert_eq!(answer["decrypted"]["v1"], "k", "{answer}");
}

// -------------------------------------------------------------------- run

/// `run ... -- env -0`: the program's environment.
fn child_env(env: &Env, args: &[&str], vars: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut cmd = env.cmd(&[&["run"], args, &["--", "env", "-0"]].concat());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
        .split(|&b| b == 0)
        .filter(|e| !e.is_empty())
        .map(|e| {
            let e = String::from_utf8(e.to_vec()).unwrap();
            let (k, v) = e.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

#[test]
fn run_gives_the_program_decrypted_values_and_withholds_the_keyring() {
    let env = Env::bare();
    env.ok(&["--env-file", ".env", "init"], b"");
    env.ok(
        &[
            "--env-file",
            ".env",
            "set",
            "SECRET",
            "-f",
            ".env",
            "--value-stdin",
        ],
        b"multi\nline \"quoted\"",
    );
    env.write(
        "local.env",
        "LOCAL=one\nOVERRIDDEN=local\nFROM_ENV=file\nENCRYPTION_MODE=fast\n",
    );
    env.ok(
        &[
            "--env-file",
            ".env",
            "set",
            "OVERRIDDEN",
            "-f",
            "local.env",
            "--value-stdin",
        ],
        b"local, decrypted",
    );
    env.write("later.env", "OVERRIDDEN=later\nBARE\n");
    let inherited = [
        ("FROM_ENV", "environment"),
        ("ENCRYPTION_KEYS__zz", "inherited key"),
        ("encryption_salt__zz", "inherited salt"),
        ("ACTIVE_ENCRYPTION_VERSION", "zz"),
        ("SECRETS_MANAGER_KEK", "kek"),
        ("SECRETS_MANAGER_KEK_PREVIOUS", "old kek"),
        ("SECRETS_MANAGER_ETCD_PASSWORD", "etcd password"),
    ];
    let files = ["--env-file", ".env", "-f", ".env", "-f", "local.env"];
    let got = child_env(&env, &files, &inherited);
    assert_eq!(got["SECRET"], "multi\nline \"quoted\"");
    assert_eq!(got["OVERRIDDEN"], "local, decrypted");
    assert_eq!(got["LOCAL"], "one");
    assert_eq!(got["FROM_ENV"], "environment", "the environment wins");
    for k in got.keys() {
        let upper = k.to_ascii_uppercase();
        assert!(
            !upper.starts_with("ENCRYPTION_")
                && upper != "ACTIVE_ENCRYPTION_VERSION"
                && ![
                    "SECRETS_MANAGER_KEK",
                    "SECRETS_MANAGER_KEK_PREVIOUS",
                    "SECRETS_MANAGER_ETCD_PASSWORD"
                ]
                .contains(&k.as_str()),
            "{k} reached the program"
        );
    }
    assert!(
        got.contains_key("PATH"),
        "the rest of the environment is kept"
    );

    // A later file overrides an earlier one; --override lets the files win.
    let got = child_env(
        &env,
        &[&files[..], &["-f", "later.env", "--override"]].concat(),
        &inherited,
    );
    assert_eq!(got["OVERRIDDEN"], "later");
    assert_eq!(got["FROM_ENV"], "file");
    assert!(!got.contains_key("BARE"), "a bare name sets nothing");
}

#[test]
fn run_with_plain_files_needs_no_keyring_and_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    // Runs `printf %s "$NAME"` with the .env's variables and returns what
    // it printed, checking that nothing was left beside the .env.
    let print = |env: &Env, name: &str| {
        let before = env.listing();
        let script = format!("printf %s \"${name}\"");
        let out = env
            .cmd(&["run", "-f", ".env", "--", "sh", "-c", &script])
            .env("TMPDIR", tmp.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(env.listing(), before, "no file beside the .env");
        out.stdout
    };

    let env = Env::bare();
    env.write(".env", "GREETING=hello\n");
    assert_eq!(print(&env, "GREETING"), b"hello");

    let env = Env::new();
    env.set(".env", "SECRET", b"s");
    assert_eq!(print(&env, "SECRET"), b"s");
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "no temporary file"
    );
}

#[test]
fn run_starts_nothing_when_a_value_does_not_decrypt() {
    let env = Env::new();
    env.set(".env", "GOOD", b"fine");
    let good = env.read(".env");
    env.write(".env", &format!("{good}BAD=\"{}\"\n", foreign_token()));
    let err = env.fails(&["run", "-f", ".env", "--", "touch", "started"], b"", 1);
    assert!(
        err.contains(".env: BAD: cannot decrypt; touch was not started"),
        "{err}"
    );
    assert!(!env.path("started").exists());
    // A value no environment can hold.
    env.write(".env", &good);
    env.set(".env", "NUL", b"a\0b");
    let err = env.fails(&["run", "-f", ".env", "--", "touch", "started"], b"", 1);
    assert!(
        err.contains(".env: NUL: the value holds a NUL byte"),
        "{err}"
    );
    assert!(!env.path("started").exists());
    // The keyring is missing.
    std::fs::remove_file(env.path(".env.secrets")).unwrap();
    let err = env.fails(&["run", "-f", ".env", "--", "touch", "started"], b"", 1);
    assert!(err.contains("no keyring"), "{err}");
    let err = env.fails(&["run", "-f", "missing.env", "--", "true"], b"", 1);
    assert!(err.contains("missing.env"), "{err}");
    // Usage: a file and a program are needed.
    env.fails(&["run", "--", "true"], b"", 2);
    env.fails(&["run", "-f", ".env"], b"", 2);
    assert!(!env.path("started").exists());
}

#[test]
fn run_exit_status_is_the_programs() {
    let env = Env::bare();
    env.write(".env", "A=1\n");
    let status = |args: &[&str]| env.output(&[&["run", "-f", ".env", "--"], args].concat(), b"");
    assert_eq!(status(&["true"]).status.code(), Some(0));
    assert_eq!(status(&["sh", "-c", "exit 7"]).status.code(), Some(7));
    let out = status(&["sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(
        (out.status.code(), &out.stdout[..], &out.stderr[..]),
        (Some(3), &b"out\n"[..], &b"err\n"[..])
    );
    // Arguments are passed as given, hyphens included, without `--` too.
    let out = env.output(&["run", "-f", ".env", "printf", "%s|", "-n", "a b"], b"");
    assert_eq!(out.stdout, b"-n|a b|");
    // stdin is the program's.
    let out = env.output(&["run", "-f", ".env", "--", "cat"], b"piped");
    assert_eq!(out.stdout, b"piped");

    let err = env.fails(
        &["run", "-f", ".env", "--", "no-such-program-here"],
        b"",
        127,
    );
    assert!(
        err.starts_with("error: cannot run no-such-program-here"),
        "{err}"
    );
    env.write("not-executable", "#!/bin/sh\n");
    let err = env.fails(&["run", "-f", ".env", "--", "./not-executable"], b"", 126);
    assert!(err.contains("cannot run ./not-executable"), "{err}");
}

#[cfg(unix)]
#[test]
fn run_replaces_itself_with_the_program() {
    use std::io::{BufRead as _, BufReader};
    use std::os::unix::process::ExitStatusExt as _;
    use std::process::Stdio;

    let env = Env::bare();
    env.write(".env", "A=1\n");
    let spawn = |script: &str| {
        env.std_cmd(&["run", "-f", ".env", "--", "sh", "-c", script])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // The same process: the program's pid is run's.
    let child = spawn("echo $$");
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        pid.to_string()
    );

    // A signal sent to run is the program's to handle.
    let mut child =
        spawn("trap 'echo got TERM; exit 42' TERM; echo ready; while :; do sleep 0.05; done");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(lines.next().unwrap().unwrap(), "got TERM");
    assert_eq!(status.code(), Some(42), "{status:?}");

    // A program killed by a signal: run's status says so.
    let status = spawn("kill -KILL $$").wait().unwrap();
    assert_eq!(status.signal(), Some(9), "{status:?}");
}

#[cfg(target_os = "linux")]
#[test]
fn run_leaves_the_program_default_signal_handling() {
    let env = Env::bare();
    env.write(".env", "A=1\n");
    let out = env.ok(
        &["run", "-f", ".env", "--", "cat", "/proc/self/status"],
        b"",
    );
    let status = String::from_utf8(out).unwrap();
    let ignored = status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .map(|m| u64::from_str_radix(m.trim(), 16).unwrap())
        .unwrap();
    // SIGPIPE (13) is ignored by Rust programs; the program must not
    // inherit that.
    assert_eq!(ignored & (1 << 12), 0, "{status}");
}

// ------------------------------------------------- the prompt, in a pty

#[cfg(target_os = "linux")]
mod pty {
    use std::io::{Read as _, Write as _};
    use std::os::fd::{AsFd as _, OwnedFd};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use rustix::fs::{Mode, OFlags};
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    use rustix::termios::{LocalModes, tcgetattr};

    /// A program on a fresh pseudo-terminal that is its controlling
    /// terminal (`setsid -c`), and everything the terminal shows.
    pub(super) struct Terminal {
        master: std::fs::File,
        /// Kept open to read the terminal's modes; closed by `wait`, so
        /// the reader sees the end.
        slave: Option<OwnedFd>,
        child: std::process::Child,
        screen: Arc<Mutex<Vec<u8>>>,
        reader: Option<std::thread::JoinHandle<()>>,
    }

    impl Terminal {
        pub(super) fn spawn(cmd: &std::process::Command) -> Self {
            let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
            grantpt(&master).unwrap();
            unlockpt(&master).unwrap();
            let name = ptsname(&master, Vec::new()).unwrap();
            let open_slave = || {
                rustix::fs::open(
                    name.as_c_str(),
                    OFlags::RDWR | OFlags::NOCTTY,
                    Mode::empty(),
                )
                .unwrap()
            };
            let io = || std::process::Stdio::from(open_slave());
            let mut setsid = std::process::Command::new("setsid");
            setsid
                .args(["-w", "-c"])
                .arg(cmd.get_program())
                .args(cmd.get_args())
                .stdin(io())
                .stdout(io())
                .stderr(io());
            if let Some(dir) = cmd.get_current_dir() {
                setsid.current_dir(dir);
            }
            for (k, v) in cmd.get_envs() {
                match v {
                    Some(v) => setsid.env(k, v),
                    None => setsid.env_remove(k),
                };
            }
            let child = setsid.spawn().unwrap();
            let master = std::fs::File::from(master);
            let screen = Arc::new(Mutex::new(Vec::new()));
            let mut reader = master.try_clone().unwrap();
            let sink = Arc::clone(&screen);
            let reader = std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                // EIO once the program's side is closed.
                while let Ok(n) = reader.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    sink.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
            Self {
                master,
                slave: Some(open_slave()),
                child,
                screen,
                reader: Some(reader),
            }
        }

        pub(super) fn screen(&self) -> String {
            String::from_utf8_lossy(&self.screen.lock().unwrap()).into_owned()
        }

        fn wait_until(&self, what: &str, done: impl Fn() -> bool) {
            let start = Instant::now();
            while !done() {
                assert!(
                    start.elapsed() < Duration::from_secs(20),
                    "timed out waiting for {what}; the screen shows {:?}",
                    self.screen()
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }

        /// Waits until the screen has shown `text` `count` times.
        pub(super) fn wait_for(&self, text: &str, count: usize) {
            self.wait_until(text, || self.screen().matches(text).count() >= count);
        }

        fn echo_on(&self) -> bool {
            tcgetattr(self.slave.as_ref().unwrap().as_fd())
                .unwrap()
                .local_modes
                .contains(LocalModes::ECHO)
        }

        /// Waits for the terminal's echo to be off, then types `line`.
        pub(super) fn type_hidden(&mut self, line: &str) {
            self.wait_until("echo to be turned off", || !self.echo_on());
            self.type_line(line);
        }

        pub(super) fn type_line(&mut self, line: &str) {
            self.master.write_all(line.as_bytes()).unwrap();
            self.master.write_all(b"\r").unwrap();
        }

        pub(super) fn wait(&mut self) -> std::process::ExitStatus {
            let status = self.child.wait().unwrap();
            // With every slave side closed, the reader drains what is left
            // and stops.
            self.slave = None;
            if let Some(reader) = self.reader.take() {
                reader.join().unwrap();
            }
            status
        }
    }
}

#[cfg(target_os = "linux")]
#[test]
fn the_terminal_harness_sees_what_a_terminal_echoes() {
    // What the prompt test relies on: typed text that the terminal echoes
    // shows up on the screen read here.
    let env = Env::bare();
    let mut sh = std::process::Command::new("sh");
    sh.args(["-c", "echo ready; read line; echo \"read $line\""])
        .current_dir(env.dir.path());
    let mut term = pty::Terminal::spawn(&sh);
    term.wait_for("ready", 1);
    term.type_line("visible words");
    assert!(term.wait().success());
    let screen = term.screen();
    assert_eq!(screen.matches("visible words").count(), 2, "{screen:?}");
}

#[cfg(target_os = "linux")]
#[test]
fn set_prompts_twice_at_a_terminal_without_echo() {
    let env = Env::new();
    let mut term = pty::Terminal::spawn(&env.std_cmd(&["set", "API_KEY", "-f", ".env"]));
    term.wait_for("Value for API_KEY: ", 1);
    term.type_hidden("typed secret");
    term.wait_for("Value for API_KEY (again): ", 1);
    term.type_hidden("typed secret");
    let status = term.wait();
    let screen = term.screen();
    assert!(status.success(), "{screen:?}");
    assert!(!screen.contains("typed secret"), "echoed: {screen:?}");
    assert!(screen.contains(".env: API_KEY set"), "{screen:?}");
    assert_eq!(env.get(".env", "API_KEY"), b"typed secret");

    // Two different entries: nothing written.
    let mut term = pty::Terminal::spawn(&env.std_cmd(&["set", "OTHER", "-f", ".env"]));
    term.wait_for("Value for OTHER: ", 1);
    term.type_hidden("first");
    term.wait_for("Value for OTHER (again): ", 1);
    term.type_hidden("second");
    let status = term.wait();
    let screen = term.screen();
    assert_eq!(status.code(), Some(1), "{screen:?}");
    assert!(
        screen.contains("error: the two entries for OTHER differ"),
        "{screen:?}"
    );
    assert!(
        !screen.contains("first") && !screen.contains("second"),
        "{screen:?}"
    );
    assert!(!env.read(".env").contains("OTHER"));
}

// ------------------------------------------------ python-dotenv reads it

/// python-dotenv's reading of `path`: name and value (`None` for a bare
/// name), in order.
fn python_values(python: &str, path: &Path) -> Vec<(String, Option<String>)> {
    let out = run_python(
        python,
        &python_script("dotenv_oracle.py"),
        format!("{}\n", path.display()).as_bytes(),
    );
    let parsed: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let entry = &parsed[0];
    assert!(
        entry.get("invalid").is_none(),
        "python-dotenv skipped a line of {}",
        path.display()
    );
    entry["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| {
            (
                pair[0].as_str().unwrap().to_owned(),
                pair[1].as_str().map(str::to_owned),
            )
        })
        .collect()
}

/// Values that need care: quotes, backslashes, line breaks, `#`, blanks,
/// non-ASCII.
const TRICKY: &[&str] = &[
    "plain",
    "with space",
    "it's",
    "say \"hi\"",
    "back\\slash",
    "ends with backslash\\",
    "two\nlines",
    "carriage\rreturn",
    "#not a comment",
    "a # b",
    "  padded  ",
    "ünïcödé ✓",
    "$dollar {braces}",
    "",
];

#[test]
fn python_dotenv_reads_back_what_the_file_commands_write() {
    let Some(python) = python_with(&["dotenv"]) else {
        return;
    };
    let env = Env::new();
    let m = env.manager(".env.secrets");
    for (i, value) in TRICKY.iter().enumerate() {
        env.set(".env", &format!("V{i}"), value.as_bytes());
    }
    // Tokens that python-dotenv reads exactly, and that open to the values.
    let read = python_values(&python, &env.path(".env"));
    assert_eq!(read.len(), TRICKY.len());
    for ((name, token), value) in read.iter().zip(TRICKY) {
        let token = token.as_deref().unwrap();
        assert_eq!(decrypt(&m, token), value.as_bytes(), "{name}");
        assert_eq!(env.get(".env", name), value.as_bytes(), "{name}");
    }
    // Decrypted in place: python-dotenv reads the plaintexts.
    env.ok(&["decrypt", "-f", ".env"], b"");
    let read = python_values(&python, &env.path(".env"));
    let want: Vec<(String, Option<String>)> = TRICKY
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("V{i}"), Some((*v).to_owned())))
        .collect();
    assert_eq!(read, want);
    // Encrypted in place again: the same values behind the tokens.
    env.ok(&["encrypt", "-f", ".env"], b"");
    let read = python_values(&python, &env.path(".env"));
    for ((name, token), value) in read.iter().zip(TRICKY) {
        assert_eq!(
            decrypt(&m, token.as_deref().unwrap()),
            value.as_bytes(),
            "{name}"
        );
    }
}

#[test]
fn python_dotenv_and_encrypt_in_place_agree_on_a_hand_written_file() {
    let Some(python) = python_with(&["dotenv"]) else {
        return;
    };
    let env = Env::new();
    let hand = "# hand-written\nexport A=unquoted value   # comment\nB='single \\' quoted'\nC=\"double \\\"quoted\\\" \\n escaped\"\nD=\"multi\nline\"\nE=\nF\n  G = spaced  \nH='${A} is literal here? no'\n";
    env.write(".env", hand);
    let before = python_values(&python, &env.path(".env"));
    env.ok(&["encrypt", "-f", ".env"], b"");
    let m = env.manager(".env.secrets");
    let after = python_values(&python, &env.path(".env"));
    assert_eq!(after.len(), before.len());
    for ((name, was), (name_after, now)) in before.iter().zip(&after) {
        assert_eq!(name, name_after);
        match (was, now) {
            (None, None) => {}
            // H refers to ${A}: left as it was, so it now expands to A's
            // token (the trap encrypt warns about).
            (Some(w), Some(n)) if name == "H" => {
                let token = after[0].1.as_deref().unwrap();
                assert_eq!(*n, w.replace("unquoted value", token));
            }
            (Some(w), Some(n)) => assert_eq!(decrypt(&m, n), w.as_bytes(), "{name}"),
            _ => panic!("{name}: {was:?} became {now:?}"),
        }
    }
    env.ok(&["decrypt", "-f", ".env"], b"");
    assert_eq!(python_values(&python, &env.path(".env")), before);
}

#[test]
fn run_merges_files_and_environment_as_python_dotenv_documents() {
    let Some(python) = python_with(&["dotenv"]) else {
        return;
    };
    let env = Env::new();
    env.write(
        "a.env",
        "A=a\nSHARED=from a\nREF=${IN_ENV}-${A}\nIN_ENV=file a\nQUOTED=\"x\\ny\"\n",
    );
    env.write("b.env", "B=b\nSHARED=from b\nSELF=${SHARED}\n");
    let vars = [("IN_ENV", "environment"), ("SHARED_ENV_ONLY", "e")];
    // python-dotenv's documented merge, keyring variables aside.
    let script = "import json, os, sys\nfrom dotenv import dotenv_values\na, b, override = sys.argv[1], sys.argv[2], sys.argv[3] == '1'\nfiles = {**dotenv_values(a), **dotenv_values(b)}\nmerged = {**os.environ, **files} if override else {**files, **os.environ}\nprint(json.dumps({k: v for k, v in merged.items() if v is not None}))\n";
    for override_env in [false, true] {
        let mut cmd = std::process::Command::new(&python);
        cmd.args([
            "-c",
            script,
            "a.env",
            "b.env",
            if override_env { "1" } else { "0" },
        ])
        .current_dir(env.dir.path());
        for (k, v) in &vars {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let want: BTreeMap<String, String> = serde_json::from_slice(&out.stdout).unwrap();
        let mut args = vec!["-f", "a.env", "-f", "b.env"];
        if override_env {
            args.push("--override");
        }
        let mut got = child_env(&env, &args, &vars);
        // What the python process adds of its own.
        for k in [
            "A",
            "B",
            "SHARED",
            "REF",
            "IN_ENV",
            "QUOTED",
            "SELF",
            "SHARED_ENV_ONLY",
        ] {
            assert_eq!(
                got.remove(k),
                want.get(k).cloned(),
                "{k} (override {override_env})"
            );
        }
    }
}
