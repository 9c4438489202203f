//! The facade against the Python package's behaviour (SEED) and beyond.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrets_manager::keystore::{KeystoreError, VersionState};
use secrets_manager::{
    AuditEvent, DecryptOptions, Error, Salt, SecretsConfig, SecretsManager, Statistics,
};

/// Fast derivations for tests; the default (100 000) is checked once below.
const ITER: u32 = 1_000;

fn manager_v1() -> SecretsManager {
    let config = SecretsConfig::builder()
        .key("v1", "my-secret-password", "random-salt-value")
        .active_version("v1")
        .kdf_iterations(ITER)
        .build()
        .unwrap();
    SecretsManager::new(config).unwrap()
}

fn events(
    config: secrets_manager::SecretsConfigBuilder,
) -> (SecretsManager, Arc<Mutex<Vec<AuditEvent>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let config = config
        .audit_callback(move |e| sink.lock().unwrap().push(e.clone()))
        .build()
        .unwrap();
    (SecretsManager::new(config).unwrap(), seen)
}

#[test]
fn encrypt_then_decrypt_names_the_version() {
    let m = manager_v1();
    let (v, token) = m.encrypt(b"sensitive data").unwrap();
    assert_eq!(v, "v1");
    let (used, plaintext) = m.decrypt(&token).unwrap();
    assert_eq!(used, "v1");
    assert_eq!(&*plaintext, b"sensitive data");
    assert_eq!(m.versions(), vec![v]);
}

#[test]
fn rotation_keeps_old_tokens_decryptable() {
    let m = manager_v1();
    let (_, old) = m.encrypt(b"important data").unwrap();
    let v2 = m
        .rotate_to_new_version("v2", "new-password")
        .salt(b"new-salt")
        .apply()
        .unwrap();
    assert_eq!(v2, "v2");
    assert_eq!(m.active_version(), "v2");
    let (v, new) = m.encrypt(b"new data").unwrap();
    assert_eq!(v, "v2");
    assert_eq!(m.decrypt(&old).unwrap().0, "v1");
    assert_eq!(m.decrypt(&new).unwrap().0, "v2");
    assert_eq!(
        m.versions().iter().map(|v| v.as_str()).collect::<Vec<_>>(),
        ["v1", "v2"]
    );
    // Versions are never overwritten.
    let err = m.rotate_to_new_version("V2", "other").apply().unwrap_err();
    assert!(err.to_string().contains("v2 already exists"), "{err}");
    // Rotation without a salt uses a fresh random one: a second manager with
    // the same password but its own random salt derives a different key.
    m.rotate_to_new_version("v3", "same-password")
        .apply()
        .unwrap();
    let (_, t3) = m.encrypt(b"x").unwrap();
    let other = manager_v1();
    other
        .rotate_to_new_version("v3", "same-password")
        .apply()
        .unwrap();
    assert!(other.decrypt_with_hint(&t3, "v3").is_err());
}

#[test]
fn rotate_token_re_encrypts_under_the_active_version_keeping_the_timestamp() {
    let m = manager_v1();
    let (_, old) = m.encrypt_at_time(b"payload", 1_600_000_000).unwrap();
    m.rotate_to_new_version("v2", "pw2")
        .salt("s2")
        .apply()
        .unwrap();
    let (v, fresh) = m.rotate_token(&old).unwrap();
    assert_eq!(v, "v2");
    assert_eq!(m.decrypt_with_hint(&fresh, "v2").unwrap().0, "v2");
    m.retire_version("v1").unwrap();
    let (used, plaintext) = m.decrypt(&fresh).unwrap();
    assert_eq!((used.as_str(), &plaintext[..]), ("v2", &b"payload"[..]));
    let ts = secrets_manager::fernet::UnverifiedToken::parse(&fresh)
        .unwrap()
        .timestamp();
    assert_eq!(ts, 1_600_000_000);
}

#[test]
fn hints_are_tried_first_case_insensitively_and_unknown_hints_are_ignored() {
    let (m, seen) = events(
        SecretsConfig::builder()
            .key("v1", "p1", "s1")
            .key("v2", "p2", "s2")
            .active_version("v2")
            .kdf_iterations(ITER),
    );
    let (_, t2) = m.encrypt(b"x").unwrap();
    assert_eq!(m.decrypt_with_hint(&t2, "V2").unwrap().0, "v2");
    assert_eq!(m.decrypt_with_hint(&t2, "v1").unwrap().0, "v2");
    assert_eq!(m.decrypt_with_hint(&t2, "no-such-version").unwrap().0, "v2");
    let seen = seen.lock().unwrap();
    let hints: Vec<bool> = seen
        .iter()
        .filter_map(|e| match e {
            AuditEvent::Decryption { was_hint, .. } => Some(*was_hint),
            _ => None,
        })
        .collect();
    assert_eq!(hints, [true, false, false]);
}

/// One options value: a hint, a TTL and the time together, none dropped.
#[test]
fn decrypt_with_applies_the_hint_the_ttl_and_the_time_together() {
    let (m, seen) = events(
        SecretsConfig::builder()
            .key("v1", "p1", "s1")
            .key("v2", "p2", "s2")
            .active_version("v1")
            .kdf_iterations(ITER),
    );
    let (_, t1) = m.encrypt_at_time(b"x", 1_000).unwrap();
    m.activate_version("v2").unwrap();
    let options = DecryptOptions::new()
        .hint("v1")
        .ttl(Duration::from_secs(60))
        .at_time(1_010);
    let (used, plaintext) = m.decrypt_with(&t1, &options).unwrap();
    assert_eq!((used.as_str(), &plaintext[..]), ("v1", &b"x"[..]));
    let err = m.decrypt_with(&t1, &options.at_time(1_061)).unwrap_err();
    assert!(err.to_string().contains("time-to-live"), "{err}");
    // The plain forms are this with one option set.
    assert_eq!(m.decrypt_with_hint(&t1, "v1").unwrap().0, "v1");
    assert!(m.decrypt_with_ttl(&t1, Duration::from_secs(60)).is_err());
    let seen = seen.lock().unwrap();
    let decryptions: Vec<String> = seen
        .iter()
        .filter_map(|e| match e {
            AuditEvent::Decryption { version, was_hint } => Some(format!("{version} {was_hint}")),
            AuditEvent::DecryptionFailed { hint } => Some(format!("failed {hint:?}")),
            _ => None,
        })
        .collect();
    assert_eq!(
        decryptions,
        [
            "v1 true",
            "failed Some(Version(\"v1\"))",
            "v1 true",
            "failed None"
        ]
    );
}

#[test]
fn statistics_are_exact() {
    let m = manager_v1();
    for i in 0..5u8 {
        let (_, t) = m.encrypt(&[i]).unwrap();
        m.decrypt(&t).unwrap();
    }
    assert!(m.decrypt("not a token").is_err());
    m.rotate_to_new_version("v2", "pw").apply().unwrap();
    // Every counter is compared: one added later must start at zero.
    let mut expected = Statistics::default();
    expected.encryptions = 5;
    expected.decryptions = 5;
    expected.decryption_failures = 1;
    expected.rotations = 1;
    expected.cache_hits = 9;
    // v1 on first use; v2 when the rotation derived it, before publishing
    // it, so no reader waits for a derivation.
    expected.cache_misses = 2;
    expected.integrity_checks = 0;
    assert_eq!(m.statistics(), expected);
}

#[test]
fn audit_events_carry_names_and_versions() {
    let (m, seen) = events(
        SecretsConfig::builder()
            .key("v1", "p", "s")
            .kdf_iterations(ITER),
    );
    let (_, t) = m.encrypt(b"abc").unwrap();
    m.decrypt(&t).unwrap();
    let _ = m.decrypt("garbage");
    m.rotate_to_new_version("v2", "p2").apply().unwrap();
    m.cleanup();
    let seen = seen.lock().unwrap().clone();
    let names: Vec<&str> = seen.iter().map(AuditEvent::name).collect();
    assert_eq!(
        names,
        [
            "encryption",
            "decryption",
            "decryption_failed",
            "rotation",
            "cleanup"
        ]
    );
    assert_eq!(
        seen[0],
        AuditEvent::Encryption {
            version: "v1".parse().unwrap(),
            size: 3
        }
    );
    assert_eq!(seen[3].version().unwrap(), "v2");
    assert_eq!(seen[4].version(), None);
}

#[test]
fn a_panicking_audit_callback_is_logged_and_the_operation_succeeds() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let config = SecretsConfig::builder()
        .key("v1", "p", "s")
        .kdf_iterations(ITER)
        .audit_callback(move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
            panic!("callback bug");
        })
        .build()
        .unwrap();
    let m = SecretsManager::new(config).unwrap();
    let logs = capture_logs(|| {
        let (_, t) = m.encrypt(b"still works").unwrap();
        assert_eq!(&*m.decrypt(&t).unwrap().1, b"still works");
    });
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(
        logs.contains("WARN") && logs.contains("audit callback panicked"),
        "{logs}"
    );
    assert!(
        logs.contains("encryption") && logs.contains("decryption"),
        "{logs}"
    );
}

/// Runs `f` with a tracing subscriber that records everything logged.
pub(crate) fn capture_logs(f: impl FnOnce()) -> String {
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let out = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || out.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
}

#[test]
fn salt_integrity_is_checked_when_on_and_counted() {
    let good = Salt::from("random-salt-value").sha256_hex();
    let bad = Salt::from("other").sha256_hex();
    let ok = SecretsConfig::builder()
        .key_with_salt_hash("v1", "p", "random-salt-value", &good)
        .kdf_iterations(ITER)
        .build()
        .unwrap();
    let m = SecretsManager::new(ok).unwrap();
    let (_, t) = m.encrypt(b"x").unwrap();
    m.decrypt(&t).unwrap();
    assert_eq!(
        m.statistics().integrity_checks,
        2,
        "at load and at derivation"
    );

    let wrong = SecretsConfig::builder()
        .key_with_salt_hash("V1", "p", "random-salt-value", &bad)
        .kdf_iterations(ITER);
    let err = SecretsManager::new(wrong.build().unwrap()).unwrap_err();
    assert!(
        matches!(&err, Error::Keystore(KeystoreError::SaltIntegrity(v)) if *v == "v1"),
        "{err:?}"
    );
    assert!(err.to_string().contains("version v1"), "{err}");

    let off = SecretsConfig::builder()
        .key_with_salt_hash("v1", "p", "random-salt-value", &bad)
        .verify_salt_integrity(false)
        .kdf_iterations(ITER)
        .build()
        .unwrap();
    let m = SecretsManager::new(off).unwrap();
    m.encrypt(b"x").unwrap();
    assert_eq!(m.statistics().integrity_checks, 0);

    let malformed = SecretsConfig::builder()
        .key_with_salt_hash("v1", "p", "s", "xyz")
        .kdf_iterations(ITER);
    let err = SecretsManager::new(malformed.build().unwrap()).unwrap_err();
    assert!(
        err.to_string().contains("v1") && err.to_string().contains("64 hexadecimal"),
        "{err}"
    );
}

#[test]
fn string_salts_are_normalised_like_python() {
    // "73616c74" (hex), "c2FsdA==" (base64) and b"salt" are the same salt.
    let by = |salt: Salt| {
        SecretsManager::new(
            SecretsConfig::builder()
                .key("v1", "pw", salt)
                .kdf_iterations(ITER)
                .build()
                .unwrap(),
        )
        .unwrap()
    };
    let (_, token) = by(Salt::from(b"salt")).encrypt(b"same key").unwrap();
    for text in ["73616c74", "c2FsdA=="] {
        assert_eq!(
            &*by(Salt::from(text)).decrypt(&token).unwrap().1,
            b"same key",
            "{text}"
        );
    }
    assert!(by(Salt::from("salt!")).decrypt(&token).is_err());
}

#[test]
fn invalid_configurations_name_the_versions() {
    let err = SecretsConfig::builder().build().unwrap_err();
    assert!(err.to_string().contains("no key versions"), "{err}");

    let err = SecretsConfig::builder()
        .key("v1", "p", "s")
        .key("v2", "p", "s")
        .active_version("v3")
        .build()
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("v3") && msg.contains("v1, v2"), "{msg}");

    let err = SecretsConfig::builder()
        .key("v1", "p", "s")
        .key("v2", "p", "s")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("available: v1, v2"), "{err}");

    let err = SecretsConfig::builder()
        .key("V1", "p", "s")
        .key("v1", "p", "s")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("v1 already exists"), "{err}");

    let err = SecretsConfig::builder()
        .key("v 1", "p", "s")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("'v 1'"), "{err}");

    let err = SecretsConfig::builder()
        .key("v1", "p", "s")
        .kdf_iterations(0)
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::ZeroIterations), "{err:?}");

    let err = SecretsConfig::builder()
        .fernet_key("k1", "not-a-key")
        .build()
        .unwrap_err();
    assert!(err.to_string().starts_with("version k1:"), "{err}");

    let err = SecretsConfig::builder()
        .key("v1", "p", "s")
        .activated_at("v9", 5)
        .build()
        .unwrap_err();
    assert!(
        err.to_string().contains("v9") && err.to_string().contains("v1"),
        "{err}"
    );
}

#[test]
fn versions_are_case_insensitive_and_the_active_setting_loses_quotes() {
    let config = SecretsConfig::builder()
        .key("V1", "p1", "s1")
        .key("Prod", "p2", "s2")
        .active_version("\"PROD\"")
        .kdf_iterations(ITER)
        .build()
        .unwrap();
    assert_eq!(config.active_version(), "prod");
    let m = SecretsManager::new(config).unwrap();
    assert_eq!(m.encrypt(b"x").unwrap().0, "prod");
    assert_eq!(m.versions()[0], "v1");
}

#[test]
fn clear_cache_derives_again() {
    let m = manager_v1();
    m.encrypt(b"x").unwrap();
    m.encrypt(b"x").unwrap();
    assert_eq!(
        (m.statistics().cache_misses, m.statistics().cache_hits),
        (1, 1)
    );
    m.clear_cache();
    let (_, t) = m.encrypt(b"y").unwrap();
    assert_eq!(m.statistics().cache_misses, 2);
    assert_eq!(&*m.decrypt(&t).unwrap().1, b"y");
}

#[test]
fn cleanup_ends_every_operation() {
    let m = manager_v1();
    let (_, t) = m.encrypt(b"x").unwrap();
    m.rotate_to_new_version("v2", "p2")
        .activate(false)
        .apply()
        .unwrap();
    m.cleanup();
    let errors = [
        m.encrypt(b"x").unwrap_err(),
        m.encrypt_at_time(b"x", 1).unwrap_err(),
        m.decrypt(&t).unwrap_err(),
        m.decrypt_with_hint(&t, "v1").unwrap_err(),
        m.decrypt_with_ttl(&t, Duration::from_secs(9)).unwrap_err(),
        m.decrypt_with(&t, &DecryptOptions::new().hint("v2"))
            .unwrap_err(),
        m.rotate_token(&t).unwrap_err(),
        m.rotate_to_new_version("v3", "p").apply().unwrap_err(),
        // A name it has: still "cleaned up", not "already exists".
        m.rotate_to_new_version("v2", "p").apply().unwrap_err(),
        m.activate_version("v2").unwrap_err(),
        m.retire_version("v2").unwrap_err(),
        m.destroy_version("v2").unwrap_err(),
        m.version_info().unwrap_err(),
    ];
    for e in errors {
        assert!(
            matches!(e, Error::Keystore(KeystoreError::CleanedUp)),
            "{e}"
        );
        assert!(e.to_string().contains("cleaned up"), "{e}");
    }
    m.cleanup(); // twice is harmless
}

/// After cleanup the active version was reported while `versions()` was
/// empty: the names stay, so the two agree.
#[test]
fn after_cleanup_the_active_version_is_among_the_versions() {
    let m = manager_v1();
    m.rotate_to_new_version("v2", "p2").apply().unwrap();
    m.rotate_to_new_version("v3", "p3")
        .activate(false)
        .apply()
        .unwrap();
    let (versions, active) = (m.versions(), m.active_version());
    assert_eq!(active, "v2");
    m.cleanup();
    assert_eq!(m.active_version(), active);
    assert_eq!(m.versions(), versions);
    assert!(m.versions().contains(&m.active_version()));
    assert!(m.version_info().is_err());
    assert!(format!("{m:?}").contains("cleaned_up: true"));
}

#[test]
fn ttl_rules_apply_through_the_manager() {
    let m = manager_v1();
    let (_, fresh) = m.encrypt(b"x").unwrap();
    assert!(m.decrypt_with_ttl(&fresh, Duration::from_secs(60)).is_ok());
    let (_, old) = m.encrypt_at_time(b"x", 1_000).unwrap();
    let err = m
        .decrypt_with_ttl(&old, Duration::from_secs(60))
        .unwrap_err();
    assert!(err.to_string().contains("time-to-live"), "{err}");
    assert!(m.decrypt(&old).is_ok(), "no TTL, no time check");
}

#[test]
fn tokens_are_tried_against_the_version_active_at_their_timestamp() {
    // Ten versions activated a day apart, the newest active.
    let day = 86_400;
    let mut b = SecretsConfig::builder();
    let keys: Vec<String> = (0..10)
        .map(|_| {
            secrets_manager::fernet::Key::generate()
                .to_base64()
                .to_string()
        })
        .collect();
    for (i, k) in keys.iter().enumerate() {
        b = b
            .fernet_key(&format!("v{i}"), k)
            .activated_at(&format!("v{i}"), 1_700_000_000 + i as u64 * day);
    }
    let m = SecretsManager::new(b.active_version("v9").build().unwrap()).unwrap();
    // A token made by v3 while it was active.
    let v3 = secrets_manager::fernet::Fernet::new(
        &secrets_manager::fernet::Key::from_base64(&keys[3]).unwrap(),
    );
    let token = v3.encrypt_at_time(b"old", 1_700_000_000 + 3 * day + 5);
    let before = m.statistics();
    assert_eq!(m.decrypt(&token).unwrap().0, "v3");
    // Only v3's key was needed: one key lookup.
    let after = m.statistics();
    assert_eq!(
        after.cache_hits + after.cache_misses - before.cache_hits - before.cache_misses,
        1
    );
    // A token whose timestamp points at the wrong version still decrypts.
    let misdated = v3.encrypt_at_time(b"misdated", 1_700_000_000 + 7 * day);
    assert_eq!(m.decrypt(&misdated).unwrap().0, "v3");
    let info = m.version_info().unwrap();
    assert_eq!(info[3].decryptions, 2);
    assert!(info[9].active && !info[3].active);
    assert_eq!(info[3].activated_at, Some(1_700_000_000 + 3 * day));
}

#[test]
fn retired_and_destroyed_versions_fail_with_errors_naming_them() {
    let m = manager_v1();
    let (_, t1) = m.encrypt(b"x").unwrap();
    let (_, t1b) = m.encrypt(b"y").unwrap();
    m.rotate_to_new_version("v2", "p2").apply().unwrap();
    let err = m.retire_version("v2").unwrap_err();
    assert!(err.to_string().contains("v2 is active"), "{err}");
    m.retire_version("v1").unwrap();
    let err = m.decrypt_with_hint(&t1, "v1").unwrap_err();
    assert!(
        matches!(&err, Error::Keystore(KeystoreError::VersionRetired(v)) if *v == "v1"),
        "{err:?}"
    );
    m.destroy_version("v1").unwrap();
    let err = m.decrypt_with_hint(&t1b, "v1").unwrap_err();
    assert!(err.to_string().contains("v1 was destroyed"), "{err}");
    let err = m.decrypt(&t1b).unwrap_err();
    assert!(err.to_string().contains("tried: v2"), "{err}");
    let states: Vec<VersionState> = m.version_info().unwrap().iter().map(|i| i.state).collect();
    assert_eq!(states, [VersionState::Destroyed, VersionState::Usable]);
    assert!(
        m.destroy_version("nope")
            .unwrap_err()
            .to_string()
            .contains("unknown version nope")
    );
}

#[test]
fn default_iterations_match_python() {
    // Python's default written out, the one place it is: this pins
    // `DEFAULT_ITERATIONS` itself.
    let config = SecretsConfig::builder()
        .key("v1", "p", "s")
        .build()
        .unwrap();
    assert!(format!("{config:?}").contains("kdf_iterations: 100000"));
    let m = SecretsManager::new(config).unwrap();
    let (_, t) = m.encrypt(b"x").unwrap();
    assert_eq!(m.version_info().unwrap()[0].iterations, Some(100_000));
    // The same key as PBKDF2-HMAC-SHA256 with 100 000 iterations.
    let key = secrets_manager::kdf::derive_key(
        b"p",
        &Salt::from("s"),
        secrets_manager::kdf::DEFAULT_ITERATIONS,
    );
    let f = secrets_manager::fernet::Fernet::new(&secrets_manager::fernet::Key::from_bytes(*key));
    assert_eq!(&*f.decrypt(&t).unwrap(), b"x");
}

#[test]
fn concurrent_use_during_rotation_loses_nothing() {
    let m = Arc::new(manager_v1());
    let threads = 4;
    let per_thread = 300;
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let m = Arc::clone(&m);
            std::thread::spawn(move || {
                let mut tokens = Vec::new();
                for i in 0..per_thread {
                    let msg = format!("{t}-{i}");
                    let (_, token) = m.encrypt(msg.as_bytes()).unwrap();
                    assert_eq!(&*m.decrypt(&token).unwrap().1, msg.as_bytes());
                    tokens.push((msg, token));
                }
                tokens
            })
        })
        .collect();
    let rotator = {
        let m = Arc::clone(&m);
        std::thread::spawn(move || {
            for r in 0..20 {
                m.rotate_to_new_version(&format!("r{r}"), format!("pw{r}"))
                    .apply()
                    .unwrap();
            }
        })
    };
    rotator.join().unwrap();
    let all: Vec<(String, String)> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    for (msg, token) in &all {
        assert_eq!(&*m.decrypt(token).unwrap().1, msg.as_bytes());
    }
    let s = m.statistics();
    let n = (threads * per_thread) as u64;
    assert_eq!(s.encryptions, n);
    assert_eq!(s.decryptions, 2 * n);
    assert_eq!(s.decryption_failures, 0);
    assert_eq!(s.rotations, 20);
    assert_eq!(m.versions().len(), 21);
}

#[test]
fn types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<SecretsManager>();
    check::<SecretsConfig>();
    check::<Error>();
    check::<AuditEvent>();
}

/// A token read from a file (with the newline the CLI writes) decrypts, as
/// in Python; what failed is said: not a token, no version opens it, or
/// expired (only for a token a version here verified).
#[test]
fn token_text_whitespace_is_ignored_and_failures_say_why() {
    let m = SecretsManager::new(
        SecretsConfig::builder()
            .key("v1", "pw", b"salt-value")
            .kdf_iterations(1_000)
            .build()
            .unwrap(),
    )
    .unwrap();
    let (_, token) = m.encrypt_at_time(b"x", 1_000).unwrap();
    let padded = format!("  {token}\r\n\n");
    assert_eq!(&*m.decrypt(&padded).unwrap().1, b"x");
    assert_eq!(m.rotate_token(&padded).unwrap().0, "v1");

    let not_a_token = m.decrypt("hello").unwrap_err().to_string();
    assert!(not_a_token.contains("not a Fernet token"), "{not_a_token}");
    let other = SecretsManager::new(
        SecretsConfig::builder()
            .key("v1", "other", b"salt-value")
            .kdf_iterations(1_000)
            .build()
            .unwrap(),
    )
    .unwrap();
    let (_, foreign) = other.encrypt(b"x").unwrap();
    let unopened = m.decrypt(&foreign).unwrap_err().to_string();
    assert!(
        unopened.contains("decryption failed with every version"),
        "{unopened}"
    );
    let ttl = secrets_manager::DecryptOptions::new()
        .ttl(std::time::Duration::from_secs(60))
        .at_time(1_100);
    let expired = m.decrypt_with(&token, &ttl).unwrap_err().to_string();
    assert!(
        expired.contains("expired") && expired.contains("100 s ago") && expired.contains("v1"),
        "{expired}"
    );
    let (_, foreign_old) = other.encrypt_at_time(b"x", 1_000).unwrap();
    let says_nothing = m.decrypt_with(&foreign_old, &ttl).unwrap_err().to_string();
    assert!(
        !says_nothing.contains("ago"),
        "nothing about a foreign token's time: {says_nothing}"
    );
}
