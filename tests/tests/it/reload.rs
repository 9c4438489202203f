//! Rotation without downtime across processes: `reload` applies what the
//! keyring invariant allows, and `watch` follows a file through renames,
//! in-place writes and Kubernetes-style symbolic link swaps.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use secrets_manager::{AuditEvent, SecretsConfig, SecretsManager};

use secrets_manager_tests::{load_keyring as load, new_keyring_file as new_file};

/// Waits up to 10 s for `done`; the watch's own poll is one second.
fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn reload_applies_rotations_and_lifecycle_from_other_processes() {
    let dir = tempfile::tempdir().unwrap();
    let path = new_file(dir.path());
    let reader = load(&path);
    let writer = load(&path);
    assert!(reader.reload().unwrap().is_empty(), "nothing changed yet");

    writer
        .rotate_to_new_version("v2", "second")
        .apply()
        .unwrap();
    let (_, token) = writer.encrypt(b"made under v2").unwrap();
    assert!(
        reader.decrypt(&token).is_err(),
        "the reader has not reloaded"
    );
    let report = reader.reload().unwrap();
    assert_eq!(report.added, ["v2"]);
    assert_eq!(report.activated.map(|v| v.to_string()), Some("v2".into()));
    assert_eq!(&*reader.decrypt(&token).unwrap().1, b"made under v2");
    assert_eq!(reader.encrypt(b"x").unwrap().0, "v2");

    writer.retire_version("v1").unwrap();
    let report = reader.reload().unwrap();
    assert_eq!(report.retired, ["v1"]);
    writer.destroy_version("v1").unwrap();
    let report = reader.reload().unwrap();
    assert_eq!(report.destroyed, ["v1"]);
    let info = reader.version_info().unwrap();
    assert!(
        info.iter().any(|i| i.version == "v1" && i.kind.is_none()),
        "key erased"
    );
    assert!(reader.reload().unwrap().is_empty());
}

#[test]
fn reload_refuses_changed_material_and_keeps_missing_versions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".env.secrets");
    std::fs::write(
        &path,
        "ENCRYPTION_KEYS__v1=\"one\"\nENCRYPTION_SALT__v1=\"c2FsdA==\"\nENCRYPTION_KEYS__v2=\"two\"\nENCRYPTION_SALT__v2=\"c2FsdA==\"\nACTIVE_ENCRYPTION_VERSION=v2\n",
    )
    .unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    let m = SecretsManager::new(
        SecretsConfig::builder()
            .kdf_iterations(1_000)
            .audit_callback(move |e: &AuditEvent| sink.lock().unwrap().push(e.clone()))
            .env_file(&path)
            .unwrap()
            .build()
            .unwrap(),
    )
    .unwrap();
    let (_, v1_token) = m.encrypt_at_time(b"one", 1).unwrap();
    let (_, v2_token) = m.encrypt(b"two").unwrap();
    // By hand: v2's password changed, v1 removed.
    std::fs::write(
        &path,
        "ENCRYPTION_KEYS__v2=\"tampered\"\nENCRYPTION_SALT__v2=\"c2FsdA==\"\n",
    )
    .unwrap();
    let report = m.reload().unwrap();
    assert_eq!(report.refused, ["v2"]);
    assert!(report.added.is_empty() && report.destroyed.is_empty());
    assert!(
        events
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.name() == "reload_refused" && e.version().is_some_and(|v| v == "v2"))
    );
    assert_eq!(
        &*m.decrypt(&v2_token).unwrap().1,
        b"two",
        "old material kept"
    );
    assert_eq!(
        m.versions().len(),
        2,
        "a version missing from the file stays"
    );
    let _ = v1_token;
}

#[test]
fn reload_without_a_keyring_says_so() {
    let m = SecretsManager::new(
        SecretsConfig::builder()
            .key("v1", "pw", b"salt")
            .kdf_iterations(1)
            .build()
            .unwrap(),
    )
    .unwrap();
    let e = m.reload().unwrap_err().to_string();
    assert!(e.contains("no keyring"), "{e}");
    assert!(m.watch().is_err());
}

#[test]
fn a_watching_manager_follows_atomic_renames_and_in_place_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = new_file(dir.path());
    let watcher = load(&path);
    let _watch = watcher.watch().unwrap();

    // A rotation by another manager: a rename over the file.
    load(&path)
        .rotate_to_new_version("v2", "second")
        .apply()
        .unwrap();
    eventually("the rename to be seen", || watcher.active_version() == "v2");

    // An in-place write of a new keyring text (as an editor, or `cp`, does).
    let staging = dir.path().join("staging.env");
    std::fs::copy(&path, &staging).unwrap();
    load(&staging)
        .rotate_to_new_version("v3", "third")
        .persist_to_file(&staging)
        .apply()
        .unwrap();
    let text = std::fs::read(&staging).unwrap();
    std::fs::write(&path, text).unwrap();
    eventually("the in-place write to be seen", || {
        watcher.active_version() == "v3"
    });
}

/// Kubernetes mounts a Secret as `FILE -> ..data/FILE`, `..data ->
/// ..TIMESTAMP`, and updates it by pointing a new `..data` link at a new
/// directory with one rename.
#[cfg(unix)]
#[test]
fn a_watching_manager_follows_a_kubernetes_style_symlink_swap() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("..2026_11_29_01");
    std::fs::create_dir(&first).unwrap();
    let original = new_file(&first);
    symlink("..2026_11_29_01", dir.path().join("..data")).unwrap();
    symlink("..data/.env.secrets", dir.path().join(".env.secrets")).unwrap();
    let mounted = dir.path().join(".env.secrets");
    let watcher = load(&mounted);
    let _watch = watcher.watch().unwrap();

    let second = dir.path().join("..2026_11_29_02");
    std::fs::create_dir(&second).unwrap();
    std::fs::copy(&original, second.join(".env.secrets")).unwrap();
    let next = load(&second.join(".env.secrets"));
    next.rotate_to_new_version("v2", "second").apply().unwrap();
    let (_, token) = next.encrypt(b"after the swap").unwrap();
    symlink("..2026_11_29_02", dir.path().join("..data_tmp")).unwrap();
    std::fs::rename(dir.path().join("..data_tmp"), dir.path().join("..data")).unwrap();

    eventually("the swap to be seen", || watcher.active_version() == "v2");
    assert_eq!(&*watcher.decrypt(&token).unwrap().1, b"after the swap");
}

#[test]
fn dropping_the_handle_stops_the_watch() {
    let dir = tempfile::tempdir().unwrap();
    let path = new_file(dir.path());
    let watcher = load(&path);
    let watch = watcher.watch().unwrap();
    drop(watch);
    load(&path)
        .rotate_to_new_version("v2", "second")
        .apply()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1_500));
    assert_eq!(
        watcher.active_version(),
        "v1",
        "no reload after the handle is gone"
    );
    // And a fresh watch catches up.
    let _again = watcher.watch().unwrap();
    eventually("the new watch to catch up", || {
        watcher.active_version() == "v2"
    });
}

#[test]
fn a_half_written_file_is_retried_and_the_manager_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let path = new_file(dir.path());
    let watcher = load(&path);
    let (_, token) = watcher.encrypt(b"still fine").unwrap();
    let _watch = watcher.watch().unwrap();
    let good = std::fs::read(&path).unwrap();
    std::fs::write(&path, &good[..good.len() / 2]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(&*watcher.decrypt(&token).unwrap().1, b"still fine");
    let staging = dir.path().join("staging.env");
    std::fs::write(&staging, &good).unwrap();
    load(&staging)
        .rotate_to_new_version("v2", "second")
        .persist_to_file(&staging)
        .apply()
        .unwrap();
    std::fs::write(&path, std::fs::read(&staging).unwrap()).unwrap();
    eventually("the complete file to be read", || {
        watcher.active_version() == "v2"
    });
}

#[test]
fn keyring_addresses_load_files_and_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = new_file(dir.path());
    let m = SecretsManager::new(
        SecretsConfig::builder()
            .kdf_iterations(1_000)
            .keyring(&format!("file:{}", path.display()))
            .unwrap()
            .build()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(m.keyring().unwrap().to_string(), path.display().to_string());
    let e = SecretsConfig::builder()
        .keyring("ftp://x/y")
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown kind of keyring"), "{e}");
}

/// A file whose pointer moved to a version with changed material (and a
/// time) is refused whole: the pointer does not move here either.
#[test]
fn a_refused_version_is_not_activated_by_its_recorded_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".env.secrets");
    let keys = "ENCRYPTION_KEYS__v1=\"pw\"\nENCRYPTION_SALT__v1=\"c2FsdHNhbHRzYWx0\"\n";
    std::fs::write(
        &path,
        format!("{keys}ENCRYPTION_KEYS__v2=\"two\"\nENCRYPTION_SALT__v2=\"c2FsdHNhbHQy\"\nACTIVE_ENCRYPTION_VERSION=\"v1\"\n"),
    )
    .unwrap();
    let m = load(&path);
    assert_eq!(m.active_version(), "v1");
    std::fs::write(
        &path,
        format!("{keys}ENCRYPTION_KEYS__v2=\"changed\"\nENCRYPTION_SALT__v2=\"c2FsdHNhbHQy\"\nACTIVE_ENCRYPTION_VERSION=\"v2\"\nENCRYPTION_ACTIVATED_AT__v2=\"1700000000\"\n"),
    )
    .unwrap();
    let report = m.reload().unwrap();
    assert_eq!(report.refused, ["v2"]);
    assert!(report.activated.is_none());
    assert_eq!(m.active_version(), "v1", "the pointer stays");
}

/// `activate_after`: every process that reloads during the window can
/// decrypt the new version before anyone encrypts under it, and none
/// encrypts under it before its time.
#[test]
fn a_scheduled_version_switches_everywhere_at_its_time_and_not_before() {
    let dir = tempfile::tempdir().unwrap();
    // As the Python package writes it: no activation times at all.
    let path = dir.path().join(".env.secrets");
    std::fs::write(
        &path,
        "ENCRYPTION_KEYS__v1=\"pw\"\nENCRYPTION_SALT__v1=\"c2FsdHNhbHRzYWx0\"\n",
    )
    .unwrap();
    let fleet: Vec<SecretsManager> = (0..5).map(|_| load(&path)).collect();
    let writer = load(&path);
    let now = secrets_manager::fernet::unix_time();
    let at = now + 3_600;
    writer
        .rotate_to_new_version("v2", "second")
        .activate_at(at)
        .apply()
        .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("ACTIVE_ENCRYPTION_VERSION=\"v1\""),
        "Python readers keep v1: {text}"
    );
    assert!(
        text.contains(&format!("ENCRYPTION_ACTIVATED_AT__v2=\"{at}\"")),
        "{text}"
    );
    assert!(
        text.contains("ENCRYPTION_ACTIVATED_AT__v1="),
        "the schedule counts from v1's time: {text}"
    );

    for m in &fleet {
        let report = m.reload().unwrap();
        assert_eq!(report.added, ["v2"]);
        assert!(report.activated.is_none(), "not active before its time");
    }
    for m in &fleet {
        assert_eq!(m.active_version(), "v1");
        assert_eq!(m.encrypt(b"now").unwrap().0, "v1");
        assert_eq!(m.encrypt_at_time(b"just before", at - 1).unwrap().0, "v1");
        // At its time, with no further write or reload.
        let (v, token) = m.encrypt_at_time(b"at its time", at).unwrap();
        assert_eq!(v, "v2");
        for other in &fleet {
            assert_eq!(&*other.decrypt(&token).unwrap().1, b"at its time");
        }
    }
    // The writer itself follows the same schedule.
    assert_eq!(writer.active_version(), "v1");
    assert_eq!(writer.encrypt_at_time(b"x", at).unwrap().0, "v2");
    // A new process, and one whose time has come.
    assert_eq!(load(&path).encrypt_at_time(b"x", at + 1).unwrap().0, "v2");
}

#[test]
fn a_schedule_that_has_come_is_kept_by_later_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let path = new_file(dir.path());
    let m = load(&path);
    let past = secrets_manager::fernet::unix_time() - 10;
    // Recorded as if scheduled a while ago (its time has come).
    load(&path)
        .rotate_to_new_version("v2", "second")
        .activate_at(past)
        .apply()
        .unwrap();
    let report = m.reload().unwrap();
    assert_eq!(report.added, ["v2"]);
    assert_eq!(m.active_version(), "v2", "the schedule came due");
    let again = m.reload().unwrap();
    assert!(
        again.is_empty(),
        "no switch back to the older pointer: {again:?}"
    );
    assert_eq!(m.active_version(), "v2");
}

/// A token made before any recorded activation (a Python-made keyring
/// records none) is tried first against the undated version, so its cost
/// stays one attempt however many versions followed.
#[test]
fn old_tokens_of_an_undated_keyring_cost_one_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".env.secrets");
    std::fs::write(
        &path,
        "ENCRYPTION_KEYS__v1=\"pw\"\nENCRYPTION_SALT__v1=\"c2FsdHNhbHRzYWx0\"\n",
    )
    .unwrap();
    let m = load(&path);
    let (_, old) = m
        .encrypt_at_time(b"old", secrets_manager::fernet::unix_time() - 3_600)
        .unwrap();
    for i in 0..40 {
        let key = secrets_manager::fernet::Key::generate().to_base64();
        m.rotate_to_fernet_key(&format!("k{i}"), key.as_str())
            .unwrap()
            .apply()
            .unwrap();
    }
    let before = m.statistics();
    assert_eq!(&*m.decrypt(&old).unwrap().1, b"old");
    let after = m.statistics();
    let lookups = |s: &secrets_manager::Statistics| s.cache_hits + s.cache_misses;
    assert_eq!(lookups(&after) - lookups(&before), 1, "one attempt, not 41");
}
