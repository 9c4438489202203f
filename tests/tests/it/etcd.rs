//! The fleet keyring on a real etcd cluster (members on loopback ports in a
//! temporary directory, torn down by the helper): races, member and
//! cluster failures, watching managers, the key-encryption key.
//! Skipped with a note where etcd is not installed, except under CI.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use secrets_manager::etcd::{EtcdOptions, EtcdStore, Kek};
use secrets_manager::persist::{KeyringStore, StoredKey, StoredState, StoredVersion};
use secrets_manager::{Error, SecretsConfig, SecretsManager};
use secrets_manager_tests::etcd_cluster::{Cluster, Tls};

fn store(cluster: &Cluster, prefix: &str, options: EtcdOptions) -> Arc<EtcdStore> {
    Arc::new(EtcdStore::open(&cluster.url(prefix), options).unwrap())
}

fn with_kek(kek: &Kek) -> EtcdOptions {
    EtcdOptions::new().kek(kek.clone())
}

fn manager(store: &Arc<EtcdStore>) -> SecretsManager {
    let store: Arc<dyn KeyringStore> = Arc::clone(store) as _;
    SecretsManager::new(
        SecretsConfig::builder()
            .kdf_iterations(1_000)
            .keyring_store(store, &Default::default())
            .unwrap()
            .build()
            .unwrap(),
    )
    .unwrap()
}

/// A new keyring with version v1 in `store`.
fn init(store: &EtcdStore, password: &str, salt: &[u8]) {
    SecretsManager::new(
        SecretsConfig::builder()
            .key("v1", password, salt)
            .kdf_iterations(1_000)
            .build()
            .unwrap(),
    )
    .unwrap()
    .create_keyring(store)
    .unwrap();
}

/// Waits up to 20 s for `done`.
fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn watching_managers_follow_rotations_and_the_kek_keeps_every_secret_out_of_etcd() {
    let Some(cluster) = Cluster::start(3) else {
        return;
    };
    let kek = Kek::generate();
    let writer_store = store(&cluster, "fleet/app", with_kek(&kek));
    init(&writer_store, "sentinel-pw-one", b"sentinel-salt-one");
    let writer = manager(&writer_store);
    let watchers: Vec<SecretsManager> = (0..4)
        .map(|_| manager(&store(&cluster, "fleet/app", with_kek(&kek))))
        .collect();
    let _watches: Vec<_> = watchers.iter().map(|m| m.watch().unwrap()).collect();

    writer
        .rotate_to_new_version("v2", "sentinel-pw-two")
        .salt(b"sentinel-salt-two")
        .apply()
        .unwrap();
    let fernet_key = secrets_manager::fernet::Key::generate().to_base64();
    writer
        .rotate_to_fernet_key("v3", &fernet_key)
        .unwrap()
        .apply()
        .unwrap();
    let (_, token) = writer.encrypt(b"made under v3").unwrap();
    for w in &watchers {
        eventually("a watcher to use v3", || w.active_version() == "v3");
        assert_eq!(&*w.decrypt(&token).unwrap().1, b"made under v3");
    }
    writer.retire_version("v1").unwrap();
    writer.destroy_version("v2").unwrap();
    for w in &watchers {
        eventually("a watcher to retire v1 and destroy v2", || {
            let info = w.version_info().unwrap();
            info.iter().any(|i| {
                i.version == "v1" && i.state == secrets_manager::keystore::VersionState::Retired
            }) && info.iter().any(|i| i.version == "v2" && i.kind.is_none())
        });
    }

    // Nothing secret is in etcd: not the passwords, the salts (as given,
    // as stored, or their hashes) nor the Fernet key.
    let dump = cluster.dump();
    assert!(dump.contains("/fleet/app/versions/v3"), "{dump}");
    let salt_text = |s: &[u8]| secrets_manager::Salt::from(s).to_text();
    let salt_hash = |s: &[u8]| secrets_manager::Salt::from(s).sha256_hex();
    for secret in [
        "sentinel-pw-one".to_owned(),
        "sentinel-pw-two".to_owned(),
        "sentinel-salt".to_owned(),
        salt_text(b"sentinel-salt-one"),
        salt_text(b"sentinel-salt-two"),
        salt_hash(b"sentinel-salt-one"),
        salt_hash(b"sentinel-salt-two"),
        fernet_key.to_string(),
        kek.to_base64().to_string(),
    ] {
        assert!(!dump.contains(&secret), "etcd holds a secret in the clear");
    }
    // A destroyed version's material is gone, not just unreadable.
    assert!(!dump.contains("/fleet/app/material/v2"), "{dump}");
}

#[test]
fn racing_writers_one_name_one_winner_distinct_names_all_survive() {
    let Some(cluster) = Cluster::start(1) else {
        return;
    };
    let kek = Kek::generate();
    let s = store(&cluster, "race", with_kek(&kek));
    init(&s, "first", b"salt");
    let managers: Vec<SecretsManager> = (0..8).map(|_| manager(&s)).collect();
    let outcomes: Vec<Result<_, Error>> = std::thread::scope(|scope| {
        let handles: Vec<_> = managers
            .iter()
            .enumerate()
            .map(|(i, m)| {
                scope.spawn(move || {
                    m.rotate_to_new_version("same", format!("password {i}"))
                        .apply()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let won: Vec<usize> = (0..outcomes.len())
        .filter(|&i| outcomes[i].is_ok())
        .collect();
    assert_eq!(won.len(), 1, "exactly one writer adds `same`: {outcomes:?}");
    for e in outcomes.iter().filter_map(|o| o.as_ref().err()) {
        assert!(matches!(e, Error::Conflict { .. }), "{e}");
    }
    // The winner's material is the stored one.
    let (_, token) = managers[won[0]].encrypt(b"x").unwrap();
    assert_eq!(&*manager(&s).decrypt(&token).unwrap().1, b"x");

    std::thread::scope(|scope| {
        for (i, m) in managers.iter().enumerate() {
            scope.spawn(move || {
                m.rotate_to_new_version(&format!("d{i}"), "pw")
                    .activate(false)
                    .apply()
                    .unwrap();
            });
        }
    });
    let keyring = s.read().unwrap();
    for i in 0..managers.len() {
        assert!(keyring.get(&format!("d{i}")).is_some(), "d{i} survived");
    }
    assert_eq!(keyring.versions().len(), 2 + managers.len());
}

/// Writers that all read the keyring before any of them commits (a barrier
/// in the edit's first run): the guards alone decide.
#[test]
fn writers_that_read_the_same_revision_one_adds_the_name_none_loses_a_version() {
    let Some(cluster) = Cluster::start(1) else {
        return;
    };
    let s = store(&cluster, "barrier", with_kek(&Kek::generate()));
    init(&s, "first", b"salt");
    let writers = 6;
    let barrier = std::sync::Barrier::new(writers);
    let fernet = |i: usize| {
        let _ = i;
        StoredKey::Fernet(
            secrets_manager::fernet::Key::generate()
                .to_base64()
                .as_str()
                .into(),
        )
    };
    let race = |name: &dyn Fn(usize) -> String| -> Vec<bool> {
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..writers)
                .map(|i| {
                    let (s, barrier, name) = (&s, &barrier, name(i));
                    scope.spawn(move || {
                        let mut first = true;
                        let key = fernet(i);
                        s.update(&mut |k| {
                            if std::mem::take(&mut first) {
                                barrier.wait();
                            }
                            k.add(StoredVersion::new(&name, key.clone()))
                        })
                        .is_ok()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    };
    let same = race(&|_| "same".to_owned());
    assert_eq!(same.iter().filter(|ok| **ok).count(), 1, "{same:?}");
    let distinct = race(&|i| format!("d{i}"));
    assert!(distinct.iter().all(|ok| *ok), "{distinct:?}");
    let keyring = s.read().unwrap();
    assert_eq!(keyring.versions().len(), 2 + writers);
}

#[test]
fn killing_a_member_during_rotations_loses_nothing() {
    let Some(mut cluster) = Cluster::start(3) else {
        return;
    };
    let kek = Kek::generate();
    let s = store(&cluster, "kill", with_kek(&kek));
    init(&s, "first", b"salt");
    // The ledger: every rotation a writer was told succeeded, with a token
    // made under it.
    let ledger: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for w in 0..2 {
            let (s, ledger) = (&s, &ledger);
            scope.spawn(move || {
                let m = manager(s);
                for r in 0..12 {
                    let name = format!("w{w}r{r}");
                    if m.rotate_to_new_version(&name, format!("pw {name}"))
                        .apply()
                        .is_ok()
                    {
                        let (_, token) = m.encrypt(name.as_bytes()).unwrap();
                        ledger.lock().unwrap().push((name, token));
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_millis(300));
        cluster.kill(0);
        std::thread::sleep(Duration::from_millis(500));
        cluster.restart(0);
        cluster.kill(2);
        std::thread::sleep(Duration::from_millis(300));
        cluster.restart(2);
    });
    let ledger = ledger.into_inner().unwrap();
    assert!(
        ledger.len() >= 12,
        "most rotations succeed: {}",
        ledger.len()
    );
    let fresh = manager(&s);
    for (name, token) in &ledger {
        let (version, plaintext) = fresh.decrypt(token).unwrap();
        assert_eq!(
            (version.as_str(), &plaintext[..]),
            (name.as_str(), name.as_bytes())
        );
    }
}

#[test]
fn losing_one_member_of_three_changes_nothing_visible() {
    let Some(mut cluster) = Cluster::start(3) else {
        return;
    };
    let kek = Kek::generate();
    let s = store(&cluster, "lose", with_kek(&kek));
    init(&s, "first", b"salt");
    let watcher = manager(&store(&cluster, "lose", with_kek(&kek)));
    let _watch = watcher.watch().unwrap();
    let writer = manager(&s);
    writer
        .rotate_to_new_version("v2", "second")
        .apply()
        .unwrap();
    eventually("v2", || watcher.active_version() == "v2");
    let before = s.read().unwrap();

    cluster.kill(1);
    let during = s.read().unwrap();
    assert_eq!(
        format!("{:?}", before.versions()),
        format!("{:?}", during.versions()),
        "the same keyring with a member down"
    );
    writer.rotate_to_new_version("v3", "third").apply().unwrap();
    eventually("v3 with a member down", || watcher.active_version() == "v3");
    let (_, token) = watcher.encrypt(b"still here").unwrap();
    assert_eq!(&*manager(&s).decrypt(&token).unwrap().1, b"still here");
    cluster.restart(1);
}

#[test]
fn a_stopped_cluster_leaves_managers_serving_and_they_catch_up_when_it_returns() {
    let Some(mut cluster) = Cluster::start(3) else {
        return;
    };
    let kek = Kek::generate();
    let short = || with_kek(&kek).timeout(Duration::from_secs(1));
    let s = store(&cluster, "outage", short());
    init(&s, "first", b"salt");
    let watchers: Vec<SecretsManager> = (0..3)
        .map(|_| manager(&store(&cluster, "outage", short())))
        .collect();
    let _watches: Vec<_> = watchers.iter().map(|m| m.watch().unwrap()).collect();
    let (_, before) = watchers[0].encrypt(b"before").unwrap();
    let writer = manager(&s);

    cluster.kill_all();
    for w in &watchers {
        assert_eq!(&*w.decrypt(&before).unwrap().1, b"before");
        let (_, token) = w.encrypt(b"during").unwrap();
        assert_eq!(&*w.decrypt(&token).unwrap().1, b"during");
    }
    let started = Instant::now();
    let e = s.read().unwrap_err().to_string();
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "failed within the timeout: {took:?}"
    );
    assert!(e.contains("etcd://") && e.contains("no answer"), "{e}");
    assert!(
        writer.rotate_to_new_version("never", "pw").apply().is_err(),
        "no write without a cluster"
    );
    assert_eq!(writer.active_version(), "v1", "nor in memory");

    cluster.restart_all();
    writer
        .rotate_to_new_version("v2", "second")
        .apply()
        .unwrap();
    for w in &watchers {
        eventually("a watcher to catch up after the outage", || {
            w.active_version() == "v2"
        });
    }
    assert!(s.read().unwrap().get("never").is_none());
}

#[test]
fn the_kek_can_be_rotated_while_readers_hold_both() {
    let Some(cluster) = Cluster::start(1) else {
        return;
    };
    let old = Kek::generate();
    let new = Kek::generate();
    let s_old = store(&cluster, "kek", with_kek(&old));
    init(&s_old, "first", b"salt");
    manager(&s_old)
        .rotate_to_new_version("v2", "second")
        .apply()
        .unwrap();
    let status = s_old.kek_status().unwrap();
    assert_eq!(status.recorded.as_deref(), Some(old.id()));
    assert_eq!(status.wrapped.get(old.id()), Some(&2));

    // A process that already holds both (new first) reads, and writes
    // under the keyring's recorded key while the switch has not happened.
    let both = store(&cluster, "kek", with_kek(&new).previous_kek(old.clone()));
    let watcher = manager(&both);
    let _watch = watcher.watch().unwrap();
    manager(&both)
        .rotate_to_new_version("v3", "third")
        .apply()
        .unwrap();
    assert_eq!(s_old.kek_status().unwrap().wrapped.get(old.id()), Some(&3));
    eventually("v3", || watcher.active_version() == "v3");

    let rotation = s_old.rotate_kek(&new).unwrap();
    assert_eq!((rotation.rewrapped, rotation.kek.as_str()), (3, new.id()));
    let status = s_old.kek_status().unwrap();
    assert_eq!(status.recorded.as_deref(), Some(new.id()));
    assert_eq!(status.wrapped.get(new.id()), Some(&3));
    assert_eq!(status.wrapped.get(old.id()), None);
    assert_eq!(s_old.rotate_kek(&new).unwrap().rewrapped, 0, "idempotent");

    // After the switch: the new key alone reads everything; the old one
    // alone reads nothing, and says which key it lacks.
    let only_new = store(&cluster, "kek", with_kek(&new));
    assert_eq!(only_new.read().unwrap().versions().len(), 3);
    let e = store(&cluster, "kek", with_kek(&old))
        .read()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(new.id()) && !e.contains(new.to_base64().as_str()),
        "{e}"
    );
    // A writer holding only the old key cannot write under it any more.
    let e = s_old.update(&mut |k| {
        k.add(secrets_manager::persist::StoredVersion::new(
            "v9",
            secrets_manager::persist::StoredKey::Fernet(
                secrets_manager::fernet::Key::generate()
                    .to_base64()
                    .as_str()
                    .into(),
            ),
        ))
    });
    assert!(e.unwrap_err().to_string().contains(new.id()));

    // The watcher saw only the same material, wrapped anew: nothing to
    // apply, and it keeps working.
    assert!(watcher.reload().unwrap().is_empty());
    manager(&only_new)
        .rotate_to_new_version("v4", "fourth")
        .apply()
        .unwrap();
    eventually("v4", || watcher.active_version() == "v4");
    assert!(!cluster.dump().contains("fourth"));
}

#[test]
fn material_is_written_in_the_clear_only_when_allowed() {
    let Some(cluster) = Cluster::start(1) else {
        return;
    };
    let none = store(&cluster, "plain", EtcdOptions::new());
    let e = none.read().unwrap_err().to_string();
    assert!(e.contains("no keyring under /plain/"), "{e}");
    let attempt = SecretsManager::new(
        SecretsConfig::builder()
            .key("v1", "plain-sentinel", b"salt")
            .kdf_iterations(1_000)
            .build()
            .unwrap(),
    )
    .unwrap()
    .create_keyring(none.as_ref());
    let e = attempt.unwrap_err().to_string();
    assert!(
        e.contains("in the clear") && e.contains("--allow-plaintext-store"),
        "{e}"
    );
    assert!(!cluster.dump().contains("plain"), "nothing was written");

    let allowed = store(&cluster, "plain", EtcdOptions::new().allow_plaintext(true));
    init(&allowed, "plain-sentinel", b"salt");
    assert!(cluster.dump().contains("plain-sentinel"), "as asked");
    assert_eq!(allowed.kek_status().unwrap().plaintext, 1);
    // Reading plaintext needs no key; a KEK rotation wraps it.
    let kek = Kek::generate();
    assert_eq!(
        store(&cluster, "plain", EtcdOptions::new())
            .read()
            .unwrap()
            .versions()
            .len(),
        1
    );
    assert_eq!(allowed.rotate_kek(&kek).unwrap().rewrapped, 1);
    assert!(!cluster.dump().contains("plain-sentinel"));
    let wrapped = store(&cluster, "plain", with_kek(&kek));
    let v1 = wrapped.read().unwrap();
    assert_eq!(v1.get("v1").unwrap().state, StoredState::Usable);
}

#[test]
fn an_unreachable_cluster_fails_within_the_timeout_naming_the_store() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("etcd://127.0.0.1:{port}/nowhere");
    let s = EtcdStore::open(&url, EtcdOptions::new().timeout(Duration::from_millis(700))).unwrap();
    let started = Instant::now();
    let e = s.read().unwrap_err().to_string();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(e.starts_with(&url) && e.contains("700 ms"), "{e}");
}

#[test]
fn the_store_can_be_used_from_inside_a_tokio_runtime_and_dropped_there() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = EtcdStore::open(
        &format!("etcd://127.0.0.1:{port}/x"),
        EtcdOptions::new().timeout(Duration::from_millis(200)),
    )
    .unwrap();
    // A runtime of the caller's, as an async application has: the
    // synchronous store neither panics nor deadlocks in it.
    let caller = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            assert!(s.read().is_err());
            drop(s);
        });
    });
    caller.join().unwrap();
}

#[test]
fn tls_with_client_certificates_and_etcd_users() {
    let Some(mut cluster) = Cluster::start_tls() else {
        return;
    };
    let tls = cluster.tls().unwrap();
    let (ca, cert, key) = (tls.ca.clone(), tls.client.0.clone(), tls.client.1.clone());
    let kek = Kek::generate();
    let short = |o: EtcdOptions| o.timeout(Duration::from_secs(1));
    let secure = || {
        with_kek(&kek)
            .ca_certificate_file(&ca)
            .unwrap()
            .client_identity_files(&cert, &key)
            .unwrap()
    };
    let s = store(&cluster, "tls", secure());
    init(&s, "first", b"salt");
    assert_eq!(s.read().unwrap().versions().len(), 1);

    // No client certificate, no TLS, or another CA: no keyring.
    let no_identity = short(with_kek(&kek).ca_certificate_file(&ca).unwrap());
    let other_ca = tempfile::tempdir().unwrap();
    let other = Tls::generate(other_ca.path()).unwrap();
    let wrong_ca = short(secure().ca_certificate_file(&other.ca).unwrap());
    for options in [no_identity, short(with_kek(&kek)), wrong_ca] {
        let e = store(&cluster, "tls", options)
            .read()
            .unwrap_err()
            .to_string();
        assert!(e.contains("etcd://"), "{e}");
    }

    // etcd's users: the right password reads, writes and watches; a wrong
    // one is refused without being shown; a prefix the user may not read
    // is refused.
    cluster.enable_auth("app", "app-password-sentinel", "authz");
    let user = |password: &str| secure().user("app", password);
    let s = store(&cluster, "authz", user("app-password-sentinel"));
    init(&s, "first", b"salt");
    let watcher = manager(&store(&cluster, "authz", user("app-password-sentinel")));
    let _watch = watcher.watch().unwrap();
    manager(&s)
        .rotate_to_new_version("v2", "second")
        .apply()
        .unwrap();
    eventually("v2 through TLS and a user", || {
        watcher.active_version() == "v2"
    });
    let e = store(&cluster, "authz", short(user("wrong-password-sentinel")))
        .read()
        .unwrap_err()
        .to_string();
    assert!(e.contains("authentication failed"), "{e}");
    assert!(!e.contains("password-sentinel"), "{e}");
    let e = store(&cluster, "elsewhere", short(user("app-password-sentinel")))
        .read()
        .unwrap_err()
        .to_string();
    assert!(e.contains("permission denied"), "{e}");
}
