//! The keyring never loses a key: each test is named after a way a write
//! once lost one (or could have), and attacks that write path.

use std::path::Path;
use std::sync::Arc;

use secrets_manager::persist::{
    self, PersistError, Prefixes, StoredKey, StoredState, StoredVersion, read_keyring,
    update_keyring,
};
use secrets_manager::{Error, SecretsConfig, SecretsManager};
use serde_json::{Value, json};

use secrets_manager_tests::{
    load_keyring as load, load_keyring_with, manager_in_code, new_keyring_file, python_with,
    seed_package,
};

/// A keyring file with v1, and the manager (configured in code) that wrote it.
fn new_file(dir: &Path) -> (std::path::PathBuf, SecretsManager) {
    (
        new_keyring_file(dir),
        manager_in_code("first password", b"salt-one"),
    )
}

fn password_of(path: &Path, version: &str) -> Option<String> {
    use secrets_manager::secrecy::ExposeSecret as _;
    let keyring = read_keyring(path, &Prefixes::default()).unwrap();
    match &keyring.get(version)?.key {
        Some(StoredKey::Password { password, .. }) => Some(password.expose_secret().to_owned()),
        _ => None,
    }
}

#[test]
fn a_stale_manager_scheduling_a_version_never_moves_the_active_pointer_back() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = new_file(dir.path());
    let fresh = load(&path);
    let stale = load(&path);
    fresh
        .rotate_to_new_version("v2", "fresh password")
        .apply()
        .unwrap();
    let v2_at = |path: &Path| {
        let k = read_keyring(path, &Prefixes::default()).unwrap();
        (
            k.active().map(str::to_owned),
            k.get("v1").unwrap().activated_at,
            k.get("v2").unwrap().activated_at,
        )
    };
    let before = v2_at(&path);
    assert_eq!(before.0.as_deref(), Some("v2"));

    // The stale manager still believes v1 active, with no recorded time.
    let at = secrets_manager::fernet::unix_time() + 3600;
    stale
        .rotate_to_new_version("v3", "scheduled")
        .activate_at(at)
        .apply()
        .unwrap();
    let after = v2_at(&path);
    assert_eq!(after, before, "pointer and times kept");
    let k = read_keyring(&path, &Prefixes::default()).unwrap();
    assert_eq!(k.get("v3").unwrap().activated_at, Some(at), "v3 scheduled");
    // Every process that loads the file now encrypts under v2 until then.
    assert_eq!(load(&path).active_version(), "v2");
}

#[test]
fn a_stale_manager_cannot_replace_a_version_another_process_added() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = new_file(dir.path());
    let fresh = load(&path);
    let stale = load(&path);
    let (_, old_token) = stale.encrypt(b"under v1").unwrap();

    fresh
        .rotate_to_new_version("v2", "fresh password")
        .apply()
        .unwrap();
    let (_, v2_token) = fresh.encrypt(b"under v2").unwrap();
    let before = std::fs::read(&path).unwrap();

    // The stale manager picks the same name with other material: refused,
    // nothing written, nothing changed in memory.
    let e = stale
        .rotate_to_new_version("V2", "stale password")
        .apply()
        .unwrap_err();
    assert!(matches!(e, Error::Conflict { .. }), "{e}");
    assert!(e.to_string().contains("version v2 already exists"), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), before, "nothing was written");
    assert_eq!(stale.versions().len(), 1, "nothing changed in memory");
    // Its whole-keyring write keeps v2 too.
    stale.persist_to_file(&path).unwrap();
    assert_eq!(password_of(&path, "v2").as_deref(), Some("fresh password"));

    // Another name merges: both survive.
    stale.rotate_to_new_version("v3", "third").apply().unwrap();
    let reloaded = load(&path);
    assert_eq!(reloaded.active_version(), "v3");
    assert_eq!(&*reloaded.decrypt(&v2_token).unwrap().1, b"under v2");
    assert_eq!(&*reloaded.decrypt(&old_token).unwrap().1, b"under v1");
}

#[test]
fn the_same_material_again_is_a_no_op_that_leaves_the_file_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (path, m) = new_file(dir.path());
    let before = std::fs::read(&path).unwrap();
    m.persist_to_file(&path).unwrap();
    load(&path).persist_to_file(&path).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn racing_writers_on_one_name_exactly_one_wins() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = new_file(dir.path());
    let managers: Vec<Arc<SecretsManager>> = (0..8).map(|_| Arc::new(load(&path))).collect();
    let barrier = Arc::new(std::sync::Barrier::new(managers.len()));
    let results: Vec<bool> = managers
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let (m, barrier) = (Arc::clone(m), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                match m
                    .rotate_to_new_version("v2", format!("password {i}"))
                    .apply()
                {
                    Ok(_) => true,
                    Err(Error::Conflict { .. }) => false,
                    Err(e) => panic!("{e}"),
                }
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    assert_eq!(results.iter().filter(|&&won| won).count(), 1, "{results:?}");
    let winner = results.iter().position(|&won| won).unwrap();
    assert_eq!(password_of(&path, "v2"), Some(format!("password {winner}")));
}

#[test]
fn iteration_counts_are_never_invented_for_versions_without_a_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".env.secrets");
    // As the Python package writes it: no iteration record.
    std::fs::write(
        &path,
        "ENCRYPTION_KEYS__v1=\"pw\"\nENCRYPTION_SALT__v1=\"c2FsdA==\"\n",
    )
    .unwrap();
    let reader = load(&path); // reads v1 with 1000 iterations
    let (_, token) = reader.encrypt(b"v1 data").unwrap();
    let other = SecretsManager::new(
        SecretsConfig::builder()
            .kdf_iterations(2_000)
            .env_file(&path)
            .unwrap()
            .build()
            .unwrap(),
    )
    .unwrap();
    other.rotate_to_new_version("v2", "pw2").apply().unwrap();
    other.persist_to_file(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("ENCRYPTION_KDF_ITERATIONS__v1"), "{text}");
    assert!(
        text.contains("ENCRYPTION_KDF_ITERATIONS__v2=\"2000\""),
        "{text}"
    );
    // v1 still reads with the reader's setting, v2 with its own.
    let (_, v2_token) = other.encrypt(b"v2 data").unwrap();
    let again = load(&path);
    assert_eq!(&*again.decrypt(&token).unwrap().1, b"v1 data");
    assert_eq!(&*again.decrypt(&v2_token).unwrap().1, b"v2 data");
}

#[test]
fn references_in_existing_lines_are_kept_verbatim_and_never_expanded_into_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".env.secrets");
    let original = "PW=\"from-an-earlier-line\"\nENCRYPTION_KEYS__v1=${PW}\nENCRYPTION_SALT__v1='c2FsdA=='  # the salt\n";
    std::fs::write(&path, original).unwrap();
    let m = load(&path);
    let (_, token) = m.encrypt(b"x").unwrap();
    m.rotate_to_new_version("v2", "pw2").apply().unwrap();
    m.persist_to_file(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with(original), "{text}");
    assert_eq!(text.matches("from-an-earlier-line").count(), 1, "{text}");
    assert_eq!(&*load(&path).decrypt(&token).unwrap().1, b"x");
}

#[test]
fn retire_and_destroy_are_persisted_and_a_destroyed_version_never_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = new_file(dir.path());
    let m = load(&path);
    let (_, t1) = m.encrypt(b"one").unwrap();
    m.rotate_to_new_version("v2", "two").apply().unwrap();
    let (_, t2) = m.encrypt(b"two").unwrap();
    m.rotate_to_new_version("v3", "three").apply().unwrap();
    let stale = load(&path); // knows v1, v2, v3, all usable

    m.retire_version("v2").unwrap();
    m.destroy_version("v1").unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("ENCRYPTION_STATE__v2=\"retired\""), "{text}");
    assert!(
        text.contains("ENCRYPTION_STATE__v1=\"destroyed\""),
        "{text}"
    );
    for gone in [
        "ENCRYPTION_KEYS__v1",
        "ENCRYPTION_SALT__v1",
        "ENCRYPTION_SALT_HASH__v1",
    ] {
        assert!(!text.contains(gone), "{gone} erased: {text}");
    }
    assert!(
        text.contains("ENCRYPTION_KEYS__v2"),
        "a retired key is kept"
    );

    // A new process sees the states.
    let fresh = load(&path);
    let e = fresh.decrypt(&t2).unwrap_err().to_string();
    assert!(e.contains("v2") && e.contains("retired"), "{e}");
    let e = fresh.decrypt(&t1).unwrap_err().to_string();
    assert!(e.contains("v1") && e.contains("destroyed"), "{e}");

    // A stale manager's write does not bring v1 back or revive v2, and a
    // stale retire of a destroyed version leaves it destroyed.
    stale.persist_to_file(&path).unwrap();
    stale.retire_version("v1").unwrap();
    let keyring = read_keyring(&path, &Prefixes::default()).unwrap();
    assert_eq!(keyring.get("v1").unwrap().state, StoredState::Destroyed);
    assert!(keyring.get("v1").unwrap().key.is_none());
    assert_eq!(keyring.get("v2").unwrap().state, StoredState::Retired);
    assert!(
        !std::fs::read_to_string(&path)
            .unwrap()
            .contains("ENCRYPTION_KEYS__v1")
    );

    // The name of a destroyed version is never reused.
    let e = fresh
        .rotate_to_new_version("v1", "again")
        .apply()
        .unwrap_err();
    assert!(e.to_string().contains("v1"), "{e}");
    // The active version can be neither retired nor destroyed.
    assert!(fresh.retire_version("v3").is_err());
    assert!(fresh.destroy_version("v3").is_err());
}

#[test]
fn staged_rotation_adds_first_and_activates_later() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = new_file(dir.path());
    let m = load(&path);
    m.rotate_to_new_version("v2", "two")
        .activate(false)
        .apply()
        .unwrap();
    assert_eq!(m.active_version(), "v1");
    // Another process sees v2, can decrypt with it, and still encrypts
    // under v1.
    let other = load(&path);
    assert_eq!(other.active_version(), "v1");
    assert_eq!(other.versions().len(), 2);
    m.activate_version("v2").unwrap();
    let (_, token) = m.encrypt(b"new").unwrap();
    assert_eq!(&*other.decrypt(&token).unwrap().1, b"new");
    let info = load(&path).version_info().unwrap();
    let v2 = info.iter().find(|i| i.version == "v2").unwrap();
    assert!(v2.active && v2.activated_at.is_some());
    // A retired version cannot be activated.
    m.retire_version("v1").unwrap();
    assert!(m.activate_version("v1").is_err());
    assert!(load(&path).activate_version("v1").is_err());
}

/// The file written mid-way through a concurrent rotation always names an
/// active version it holds the key of: the versions and the active pointer
/// come from one snapshot.
#[test]
fn every_write_comes_from_one_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".env.secrets");
    let m = Arc::new(
        SecretsManager::new(
            SecretsConfig::builder()
                .key("v0", "pw", b"salt-zero")
                .kdf_iterations(1)
                .in_memory()
                .build()
                .unwrap(),
        )
        .unwrap(),
    );
    let rotator = {
        let m = Arc::clone(&m);
        std::thread::spawn(move || {
            for i in 1..200 {
                m.rotate_to_new_version(&format!("v{i}"), "pw")
                    .apply()
                    .unwrap();
            }
        })
    };
    let mut writes = 0;
    while !rotator.is_finished() || writes == 0 {
        m.persist_to_file(&path).unwrap();
        let keyring = read_keyring(&path, &Prefixes::default()).unwrap();
        let active = keyring.active().unwrap();
        assert!(keyring.get(active).unwrap().key.is_some());
        writes += 1;
    }
    rotator.join().unwrap();
    assert!(
        writes > 1,
        "the writer raced the rotations ({writes} writes)"
    );
}

#[test]
fn salts_whose_base64_looks_like_hex_round_trip_through_files() {
    // URL-safe base64 of these bytes is "1234abcd", which also reads as hex.
    let tricky: &[u8] = &[0xd7, 0x6d, 0xf8, 0x69, 0xb7, 0x1d];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".env.secrets");
    let m = SecretsManager::new(
        SecretsConfig::builder()
            .key("v1", "pw", tricky)
            .kdf_iterations(1_000)
            .build()
            .unwrap(),
    )
    .unwrap();
    m.persist_to_file(&path).unwrap();
    let (_, token) = m.encrypt(b"x").unwrap();
    // With verification on (the salt hash must match the bytes read back)
    // and off (the key itself must be right).
    assert_eq!(&*load(&path).decrypt(&token).unwrap().1, b"x");
    let unverified = load_keyring_with(&path, false);
    assert_eq!(&*unverified.decrypt(&token).unwrap().1, b"x");
}

/// Every salt length from 0 to 64 bytes, including salts whose base64 is
/// all hex digits (possible for every multiple of 3), reads back as the
/// same bytes here and in the Python package's reader.
#[test]
fn every_salt_length_reads_back_the_same_here_and_in_python() {
    let Some(python) = python_with(&["cryptography", "dotenv"]) else {
        return;
    };
    const HEXY: &[u8] = b"0123456789abcdef";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".env.secrets");
    let mut builder = SecretsConfig::builder().kdf_iterations(1_000);
    let mut hex_looking = 0;
    for len in 0..=64usize {
        let salt: Vec<u8> = if len % 3 == 0 {
            // Decode base64 made only of hex digits.
            let text: String = (0..len / 3 * 4)
                .map(|i| char::from(HEXY[(i * 7 + len) % 16]))
                .collect();
            hex_looking += 1;
            base64_decode(&text)
        } else {
            (0..len).map(|i| (i * 31 + len) as u8).collect()
        };
        assert_eq!(salt.len(), len);
        builder = builder.key(&format!("s{len}"), format!("pw{len}"), salt);
    }
    assert_eq!(hex_looking, 22);
    let m = SecretsManager::new(builder.active_version("s0").build().unwrap()).unwrap();
    m.persist_to_file(&path).unwrap();
    let loaded = load(&path);
    let mut tokens = serde_json::Map::new();
    for len in 0..=64 {
        let v = format!("s{len}");
        m.activate_version(&v).unwrap();
        let (_, token) = m.encrypt(v.as_bytes()).unwrap();
        assert_eq!(
            &*loaded.decrypt_with_hint(&token, &v).unwrap().1,
            v.as_bytes()
        );
        tokens.insert(v, Value::String(token));
    }
    let request = json!({"mode": "read", "path": path, "tokens": tokens});
    let out = seed_package(&python, &request);
    for len in 0..=64 {
        let v = format!("s{len}");
        assert_eq!(out["decrypted"][&v], Value::String(v.clone()), "{v}");
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = Vec::new();
    for chunk in text.as_bytes().chunks(4) {
        let n = chunk.iter().fold(0u32, |acc, c| {
            acc << 6 | ALPHABET.iter().position(|a| a == c).unwrap() as u32
        });
        out.extend_from_slice(&n.to_be_bytes()[1..]);
    }
    out
}

#[test]
fn with_verification_off_a_malformed_salt_hash_is_ignored_as_in_python() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".env.secrets");
    std::fs::write(
        &path,
        "ENCRYPTION_KEYS__v1=\"pw\"\nENCRYPTION_SALT__v1=\"c2FsdA==\"\nENCRYPTION_SALT_HASH__v1=\"wrong-hash\"\n",
    )
    .unwrap();
    let off = load_keyring_with(&path, false);
    let (_, token) = off.encrypt(b"ok").unwrap();
    assert_eq!(&*off.decrypt(&token).unwrap().1, b"ok");
    assert_eq!(off.statistics().integrity_checks, 0);
    // With verification on, it is refused, naming the variable.
    let e = SecretsManager::new(
        SecretsConfig::builder()
            .env_file(&path)
            .unwrap()
            .build()
            .unwrap(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("ENCRYPTION_SALT_HASH__v1"), "{e}");
}

#[test]
fn nested_references_stop_at_a_bound_instead_of_exhausting_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostile.env");
    let mut text = String::from("A0=0123456789abcdef0123456789abcdef\n");
    for i in 1..80 {
        text.push_str(&format!("A{i}=${{A{}}}${{A{}}}\n", i - 1, i - 1));
    }
    std::fs::write(&path, &text).unwrap();
    let e = persist::dotenv_values(&path).unwrap_err();
    assert!(matches!(e, PersistError::ExpansionTooLarge { .. }), "{e}");
    let shown = e.to_string();
    assert!(
        shown.starts_with(&format!("{}:", path.display())),
        "{shown}"
    );
    assert!(shown.contains("references expand beyond"), "{shown}");
}

#[test]
fn files_over_the_size_bound_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.env");
    let line = format!("PAD=\"{}\"\n", "x".repeat(1 << 20));
    std::fs::write(&path, line.repeat(17)).unwrap();
    let e = read_keyring(&path, &Prefixes::default()).unwrap_err();
    assert!(matches!(e, PersistError::TooLarge { .. }), "{e}");
}

/// 60 000 variables: a quadratic duplicate check would take minutes here.
#[test]
fn duplicate_detection_scales_to_large_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("many.env");
    let mut text: String = (0..60_000).map(|i| format!("VAR_{i}=v{i}\n")).collect();
    text.push_str("VAR_17=again\n");
    std::fs::write(&path, &text).unwrap();
    let e = persist::dotenv_values(&path).unwrap_err().to_string();
    assert!(
        e.ends_with(":60001: VAR_17 is already defined on line 18"),
        "{e}"
    );
    // And many references resolve without rescanning the file each time.
    let refs: String = (0..60_000)
        .map(|i| format!("R_{i}=${{VAR_{i}}}\n"))
        .collect();
    std::fs::write(
        &path,
        format!("{}{refs}", &text[..text.len() - "VAR_17=again\n".len()]),
    )
    .unwrap();
    assert_eq!(persist::dotenv_values(&path).unwrap().len(), 120_000);
}

#[test]
fn two_spellings_of_one_keyring_variable_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".env.secrets");
    std::fs::write(
        &path,
        "ENCRYPTION_KEYS__V1=\"a\"\nENCRYPTION_KEYS__v1=\"b\"\nENCRYPTION_SALT__v1=\"c2FsdA==\"\n",
    )
    .unwrap();
    let e = read_keyring(&path, &Prefixes::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("ENCRYPTION_KEYS__") && e.contains("another case"),
        "{e}"
    );
    assert!(!e.contains("\"a\"") && !e.contains("\"b\""), "{e}");
}

/// A variable that is not the keyring's but whose name lower-cases to one
/// of its names (a Kelvin sign for the K) must not stand in for it: destroying
/// the version erases the real password and leaves the other line alone.
#[test]
fn destroying_erases_the_real_binding_not_a_look_alike() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".env.secrets");
    std::fs::write(
        &path,
        "ENCRYPTION_KEYS__v1=\"pw-one\"\nENCRYPTION_SALT__v1=\"c2FsdHNhbHQ=\"\n\
         ENCRYPTION_KEYS__v2=\"pw-two\"\nENCRYPTION_SALT__v2=\"c2FsdHNhbHQy\"\n\
         ACTIVE_ENCRYPTION_VERSION=\"v2\"\n\
         ENCRYPTION_\u{212A}EYS__v1=\"look-alike\"\n",
    )
    .unwrap();
    update_keyring(&path, &Prefixes::default(), |k| k.destroy("v1").map(|_| ())).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("pw-one"), "the password is erased: {text}");
    assert!(
        text.contains("ENCRYPTION_\u{212A}EYS__v1=\"look-alike\""),
        "the other variable is kept: {text}"
    );
    assert_eq!(password_of(&path, "v2").as_deref(), Some("pw-two"));
    // Nothing is left for the next write to erase.
    let (_, report) =
        update_keyring(&path, &Prefixes::default(), |_| Ok::<_, PersistError>(())).unwrap();
    assert!(!report.written, "{text}");
}

#[test]
fn the_keyring_api_never_replaces_or_moves_backwards() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".env.secrets");
    let key = |p: &str| StoredKey::Password {
        password: p.into(),
        salt: "c2FsdA==".into(),
        salt_hash: None,
    };
    update_keyring(&path, &Prefixes::default(), |k| {
        k.add(StoredVersion::new("v1", key("one")))?;
        k.add(StoredVersion::new("v2", key("two")))?;
        k.set_active("v2")
    })
    .unwrap();
    let (_, report) = update_keyring(&path, &Prefixes::default(), |k| {
        assert!(matches!(
            k.add(StoredVersion::new("V1", key("other"))),
            Err(PersistError::VersionExists { .. })
        ));
        assert!(matches!(
            k.retire("v2"),
            Err(PersistError::ActiveVersion { .. })
        ));
        assert!(k.destroy("v1")?);
        assert!(!k.retire("v1")?, "destroyed stays destroyed");
        assert!(matches!(
            k.set_active("v1"),
            Err(PersistError::NotUsable { .. })
        ));
        assert!(matches!(
            k.set_active("v9"),
            Err(PersistError::UnknownVersion { .. })
        ));
        Ok::<_, PersistError>(())
    })
    .unwrap();
    assert!(report.written);
    let keyring = read_keyring(&path, &Prefixes::default()).unwrap();
    assert_eq!(keyring.get("v1").unwrap().state, StoredState::Destroyed);
    assert_eq!(password_of(&path, "v2").as_deref(), Some("two"));
}

#[test]
fn a_destroyed_version_left_with_material_by_hand_is_erased_by_the_next_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".env.secrets");
    std::fs::write(
        &path,
        "ENCRYPTION_KEYS__v1=\"old\"\nENCRYPTION_SALT__v1=\"c2FsdA==\"\nENCRYPTION_STATE__v1=destroyed\nENCRYPTION_KEYS__v2=\"new\"\nENCRYPTION_SALT__v2=\"c2FsdA==\"\nACTIVE_ENCRYPTION_VERSION=v2\n",
    )
    .unwrap();
    let m = load(&path);
    assert_eq!(m.versions().len(), 2);
    m.rotate_to_new_version("v3", "three").apply().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        !text.contains("\"old\"") && !text.contains("ENCRYPTION_KEYS__v1"),
        "{text}"
    );
}

#[test]
fn what_the_python_reader_sees_of_the_lifecycle() {
    let Some(python) = python_with(&["cryptography", "dotenv"]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = new_file(dir.path());
    let m = load(&path);
    let (_, t1) = m.encrypt(b"one").unwrap();
    m.rotate_to_new_version("v2", "two").apply().unwrap();
    let (_, t2) = m.encrypt(b"two").unwrap();
    m.rotate_to_new_version("v3", "three").apply().unwrap();
    m.retire_version("v2").unwrap();
    m.destroy_version("v1").unwrap();
    let request = json!({"mode": "read", "path": path, "tokens": {"v1": t1, "v2": t2}});
    let out = seed_package(&python, &request);
    // The checksum verifies there; the retired version still decrypts
    // (Python does not know the state); the destroyed one is gone.
    assert_eq!(out["active"], "v3");
    assert_eq!(out["decrypted"]["v2"], "two");
    assert!(out["decrypted"].get("v1").is_none());
    assert!(out["values"].get("ENCRYPTION_KEYS__v1").is_none());
    assert_eq!(out["values"]["ENCRYPTION_STATE__v1"], "destroyed");
}

#[test]
fn a_single_version_file_without_an_active_variable_stays_readable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".env.secrets");
    std::fs::write(
        &path,
        "ENCRYPTION_KEYS__v1=\"pw\"\nENCRYPTION_SALT__v1=\"c2FsdA==\"\n",
    )
    .unwrap();
    let m = load(&path);
    // The only version is the active one: it cannot be retired.
    let e = update_keyring(&path, &Prefixes::default(), |k| k.retire("v1").map(|_| ()));
    assert!(
        matches!(e, Err(PersistError::ActiveVersion { .. })),
        "{e:?}"
    );
    // Staging a second version records the active one, or the file would
    // name no active version among two.
    m.rotate_to_new_version("v2", "pw2")
        .activate(false)
        .apply()
        .unwrap();
    let again = load(&path);
    assert_eq!(again.active_version(), "v1");
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .contains("ACTIVE_ENCRYPTION_VERSION=\"v1\"")
    );
}
