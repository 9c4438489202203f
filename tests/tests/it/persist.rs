//! Keyring files: errors naming file and line, verbatim preservation,
//! permissions, temporary files, round trips.

use std::path::Path;

use proptest::prelude::*;
use secrets_manager::persist::{
    self, Keyring, PersistError, Prefixes, StoredKey, StoredVersion, dotenv_values, read_keyring,
    update_keyring,
};
use secrets_manager::{SecretsConfig, SecretsManager};

fn password_version(name: &str, password: &str, salt: &str) -> StoredVersion {
    StoredVersion::new(
        name,
        StoredKey::Password {
            password: password.into(),
            salt: salt.into(),
            salt_hash: None,
        },
    )
    .with_iterations(Some(1_000))
    .with_activated_at(Some(1_700_000_000))
}

fn write(path: &Path, versions: Vec<StoredVersion>, active: &str) -> Keyring {
    update_keyring(path, &Prefixes::default(), |k: &mut Keyring| {
        for v in versions {
            k.add(v)?;
        }
        k.set_active(active)?;
        Ok::<_, PersistError>(k.clone())
    })
    .unwrap()
    .0
}

fn err_text(path: &Path) -> String {
    read_keyring(path, &Prefixes::default())
        .unwrap_err()
        .to_string()
}

#[test]
fn malformed_files_get_errors_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.env");
    let shown = p.display().to_string();

    std::fs::write(&p, b"A=1\nB=\xff\xfe\n").unwrap();
    assert_eq!(err_text(&p), format!("{shown}:2: not valid UTF-8"));

    std::fs::write(&p, "A=1\n\nB=\"x\" junk\n").unwrap();
    assert_eq!(
        err_text(&p),
        format!("{shown}:3: cannot parse this line as NAME=value")
    );

    std::fs::write(&p, "A=1\n# c\nA=2\n").unwrap();
    assert_eq!(
        err_text(&p),
        format!("{shown}:3: A is already defined on line 1")
    );

    std::fs::write(&p, "ENCRYPTION_KEYS__v1=\"pw\"\n").unwrap();
    assert_eq!(
        err_text(&p),
        format!("{shown}: ENCRYPTION_SALT__v1 is missing (version v1)")
    );

    std::fs::write(&p, "ENCRYPTION_KEYS__v1=pw\nENCRYPTION_SALT__v1=s\nENCRYPTION_KEYS__v2=pw\nENCRYPTION_SALT__v2=s\n").unwrap();
    let e = SecretsConfig::from_env_file(&p).unwrap_err().to_string();
    assert!(
        e.contains("ACTIVE_ENCRYPTION_VERSION is not set") && e.contains("v1, v2"),
        "{e}"
    );

    std::fs::write(
        &p,
        "ENCRYPTION_KEYS__v1=pw\nENCRYPTION_SALT__v1=s\nENCRYPTION_KDF_ITERATIONS__v1=0\n",
    )
    .unwrap();
    assert!(err_text(&p).contains("ENCRYPTION_KDF_ITERATIONS__v1: must be a whole number"));

    std::fs::write(
        &p,
        "ENCRYPTION_KEYS__v1=pw\nENCRYPTION_SALT__v1=s\nACTIVE_ENCRYPTION_VERSION=v9\n",
    )
    .unwrap();
    assert!(err_text(&p).contains("names version v9"));

    assert!(err_text(&dir.path().join("missing.env")).contains("cannot open"));
}

#[test]
fn a_wrong_checksum_is_an_error_and_secrets_never_appear_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(".env.secrets");
    write(
        &p,
        vec![password_version("v1", "SENTINEL-PASSWORD", "c2FsdA==")],
        "v1",
    );
    assert!(read_keyring(&p, &Prefixes::default()).is_ok());
    let text = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, text.replace("SENTINEL-PASSWORD", "SENTINEL-PASSWORd")).unwrap();
    let e = err_text(&p);
    assert!(
        e.contains("checksum mismatch") && !e.contains("SENTINEL"),
        "{e}"
    );
    // The facade refuses it too.
    let e = SecretsConfig::from_env_file(&p).unwrap_err().to_string();
    assert!(e.contains("checksum mismatch"), "{e}");
}

#[test]
fn comments_and_other_variables_are_kept_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(".env.secrets");
    let prelude = "# deployment settings\r\nDATABASE_URL=\"postgres://${DB_HOST}/app\"\r\n\r\nexport   TOKEN='x' # keep me\n";
    std::fs::write(&p, prelude).unwrap();
    write(&p, vec![password_version("v1", "pw1", "c2FsdA==")], "v1");
    write(&p, vec![password_version("v2", "pw2", "c2FsdA==")], "v2");
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(text.starts_with(prelude.trim_end()), "{text:?}");
    assert_eq!(text.matches(persist::HEADER).count(), 1, "{text}");
    let values = dotenv_values(&p).unwrap();
    let names: Vec<&str> = values.iter().map(|(k, _)| k.as_str()).collect();
    assert!(names.contains(&"DATABASE_URL") && names.contains(&"TOKEN"));
    let keyring = read_keyring(&p, &Prefixes::default()).unwrap();
    assert_eq!(
        keyring.versions().len(),
        2,
        "the first version survives the second write"
    );
    assert_eq!(keyring.active(), Some("v2"));
}

#[cfg(unix)]
#[test]
fn new_files_are_private_and_existing_modes_are_kept() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(".env.secrets");
    write(&p, vec![password_version("v1", "pw", "c2FsdA==")], "v1");
    assert_eq!(
        std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
        0o600
    );
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
    write(&p, vec![password_version("v2", "pw", "c2FsdA==")], "v2");
    assert_eq!(
        std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
        0o640
    );
}

#[test]
fn temporary_files_left_by_killed_writers_are_removed_under_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(".env.secrets");
    // The fixed name earlier versions used, today's random one, and a file
    // that only looks alike and is not ours.
    for leftover in [
        "..env.secrets.tmp",
        ".env.secrets.tmp-0123456789abcdef",
        ".env.secrets.tmp-notours",
    ] {
        std::fs::write(dir.path().join(leftover), "half-written garbage").unwrap();
    }
    write(&p, vec![password_version("v1", "pw", "c2FsdA==")], "v1");
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [".env.secrets", ".env.secrets.tmp-notours"],
        "no temporary file of ours left behind"
    );
}

#[test]
fn values_python_dotenv_cannot_read_back_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(".env.secrets");
    let result = update_keyring(&p, &Prefixes::default(), |k: &mut Keyring| {
        k.add(password_version("v1", "pa${HOME}ss", "c2FsdA=="))?;
        k.set_active("v1")
    });
    let e = result.unwrap_err().to_string();
    assert!(
        e.starts_with("ENCRYPTION_KEYS__v1:") && !e.contains("pa${HOME}ss"),
        "{e}"
    );
}

#[test]
fn managers_round_trip_through_files() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(".env.secrets");
    let m = SecretsManager::new(
        SecretsConfig::builder()
            .key("v1", "first password", "random-salt-value")
            .fernet_key(
                "raw",
                secrets_manager::fernet::Key::generate()
                    .to_base64()
                    .as_str(),
            )
            .activated_at("v1", 1_600_000_000)
            .active_version("v1")
            .kdf_iterations(2_000)
            .build()
            .unwrap(),
    )
    .unwrap();
    let (_, t1) = m.encrypt(b"one").unwrap();
    m.rotate_to_new_version("v2", "second")
        .persist_to_file(&p)
        .apply()
        .unwrap();
    let (_, t2) = m.encrypt(b"two").unwrap();

    let loaded = SecretsManager::new(SecretsConfig::from_env_file(&p).unwrap()).unwrap();
    assert_eq!(loaded.active_version(), "v2");
    // Ordered by activation time, unknown first.
    assert_eq!(
        loaded
            .versions()
            .iter()
            .map(|v| v.as_str())
            .collect::<Vec<_>>(),
        ["raw", "v1", "v2"]
    );
    assert_eq!(&*loaded.decrypt(&t1).unwrap().1, b"one");
    assert_eq!(&*loaded.decrypt(&t2).unwrap().1, b"two");
    let info = loaded.version_info().unwrap();
    assert_eq!(
        info[1].iterations,
        Some(2_000),
        "non-default iterations are recorded"
    );
    assert_eq!(info[1].activated_at, Some(1_600_000_000));
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(text.contains("ENCRYPTION_KDF_ITERATIONS__v1=\"2000\""));
    assert!(text.contains("ENCRYPTION_FERNET_KEY__raw="));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any value that can be written reads back exactly (quotes,
    /// backslashes, newlines, `#`, `=`, Unicode); the rest are refused.
    #[test]
    fn written_values_read_back_unchanged(password in "[ -~\u{e9}\u{2713}\n\r\t\\\\\"'#=$]{0,40}", salt in "[ -~\n\\\\]{0,20}") {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(".env.secrets");
        let result = update_keyring(&p, &Prefixes::default(), |k: &mut Keyring| {
            k.add(password_version("v1", &password, &salt))?;
            k.set_active("v1")
        });
        match result {
            Ok(_) => {
                let values = dotenv_values(&p).unwrap();
                let get = |name: &str| values.iter().find(|(k, _)| k == name).and_then(|(_, v)| v.as_ref()).map(|v| v.to_string());
                prop_assert_eq!(get("ENCRYPTION_KEYS__v1"), Some(password.clone()));
                prop_assert_eq!(get("ENCRYPTION_SALT__v1"), Some(salt.clone()));
                prop_assert!(read_keyring(&p, &Prefixes::default()).is_ok());
            }
            Err(PersistError::Unwritable { .. }) => {
                let refusable = [&password, &salt].iter().any(|v| v.contains("${") || v.ends_with('\\'));
                prop_assert!(refusable, "refused a writable value");
            }
            Err(e) => prop_assert!(false, "{}", e),
        }
    }
}

#[test]
fn a_bad_salt_hash_in_a_file_names_the_file_and_variable() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(".env.secrets");
    std::fs::write(
        &p,
        format!("ENCRYPTION_KEYS__v1=\"pw\"\nENCRYPTION_SALT__v1=\"c2FsdA==\"\nENCRYPTION_SALT_HASH__v1=\"{}\"\n", "ab".repeat(32)),
    )
    .unwrap();
    let e = SecretsManager::new(SecretsConfig::from_env_file(&p).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!(
            "{}: ENCRYPTION_SALT_HASH__v1: salt integrity check failed for version v1",
            p.display()
        )),
        "{e}"
    );
    // With verification off, the same file loads.
    let config = SecretsConfig::builder()
        .verify_salt_integrity(false)
        .env_file(&p)
        .unwrap()
        .build()
        .unwrap();
    assert!(SecretsManager::new(config).is_ok());
}

#[test]
fn a_failed_first_write_leaves_no_empty_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(".env.secrets");
    let m = SecretsManager::new(
        SecretsConfig::builder()
            .key("v1", "pa${HOME}ss", "s")
            .kdf_iterations(1_000)
            .build()
            .unwrap(),
    )
    .unwrap();
    assert!(m.persist_to_file(&p).is_err());
    assert!(!p.exists());
    // create_keyring_file refuses a file with keys, under the lock.
    let ok = SecretsManager::new(
        SecretsConfig::builder()
            .key("v1", "pw", "s")
            .kdf_iterations(1_000)
            .build()
            .unwrap(),
    )
    .unwrap();
    ok.create_keyring_file(&p).unwrap();
    let e = ok.create_keyring_file(&p).unwrap_err().to_string();
    assert!(e.contains("already holds keys"), "{e}");
}

#[test]
fn prefixes_can_be_changed() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("app.env");
    std::fs::write(
        &p,
        "MYAPP_KEY__Main=\"pw\"\nMYAPP_SALT__Main=\"c2FsdA==\"\nMYAPP_ACTIVE=main\n",
    )
    .unwrap();
    let mut prefixes = Prefixes::default();
    prefixes.keys = "MYAPP_KEY__".into();
    prefixes.salt = "MYAPP_SALT__".into();
    prefixes.active = "MYAPP_ACTIVE".into();
    let config = SecretsConfig::builder()
        .kdf_iterations(1_000)
        .env_file_with_prefixes(&p, &prefixes)
        .unwrap()
        .build()
        .unwrap();
    let m = SecretsManager::new(config).unwrap();
    assert_eq!(m.active_version(), "main");
    // The default names find nothing there.
    let e = SecretsConfig::from_env_file(&p).unwrap_err().to_string();
    assert!(e.contains("no key versions"), "{e}");
    m.rotate_to_new_version("next", "pw2").apply().unwrap();
    m.persist_to_file_with_prefixes(&p, &prefixes).unwrap();
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(
        text.contains("MYAPP_KEY__next=") && text.contains("MYAPP_ACTIVE=\"next\""),
        "{text}"
    );
    assert_eq!(read_keyring(&p, &prefixes).unwrap().versions().len(), 2);
}
