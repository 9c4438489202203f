//! No secret reaches a `Debug` string, an error message, an audit event or
//! a log line.

use std::sync::{Arc, Mutex};

use secrets_manager::fernet::{Fernet, Key, MultiFernet};
use secrets_manager::keystore::KeyMaterial;
use secrets_manager::{AuditEvent, Salt, SecretsConfig, SecretsManager};

const PASSWORD: &str = "PASSWORD-SENTINEL-7f3a";
const SALT: &str = "SALT-SENTINEL-91bc";
const PLAINTEXT: &str = "PLAINTEXT-SENTINEL-55e1";

fn forbidden(key: &Key) -> Vec<String> {
    let salt = Salt::from(SALT);
    vec![
        PASSWORD.to_owned(),
        SALT.to_owned(),
        PLAINTEXT.to_owned(),
        salt.sha256_hex(),
        salt.to_base64url(),
        key.to_base64().to_string(),
        format!("{:?}", key.as_bytes()),
    ]
}

fn assert_clean(what: &str, text: &str, secrets: &[String]) {
    for s in secrets {
        assert!(!text.contains(s.as_str()), "{what} leaks a secret: {text}");
    }
}

#[test]
fn debug_errors_events_and_logs_carry_no_secret() {
    let raw_key = Key::generate();
    let secrets = forbidden(&raw_key);
    let events = Arc::new(Mutex::new(Vec::<AuditEvent>::new()));
    let sink = Arc::clone(&events);
    let mut shown: Vec<(String, String)> = Vec::new();
    let mut show = |what: &str, text: String| shown.push((what.to_owned(), text));

    let logs = crate::manager_logs(|| {
        let builder = SecretsConfig::builder()
            .key_with_salt_hash("v1", PASSWORD, SALT, &Salt::from(SALT).sha256_hex())
            .fernet_key("raw", raw_key.to_base64().as_str())
            .active_version("v1")
            .kdf_iterations(1_000)
            .audit_callback(move |e| sink.lock().unwrap().push(e.clone()));
        show("builder", format!("{builder:?}"));
        let config = builder.build().unwrap();
        show("config", format!("{config:?}"));
        let m = SecretsManager::new(config).unwrap();
        let (_, token) = m.encrypt(PLAINTEXT.as_bytes()).unwrap();
        let (_, plaintext) = m.decrypt(&token).unwrap();
        assert_eq!(&*plaintext, PLAINTEXT.as_bytes());
        show("manager", format!("{m:?}"));
        show("version info", format!("{:?}", m.version_info().unwrap()));
        show("statistics", format!("{:?}", m.statistics()));
        let rotation = m.rotate_to_new_version("v2", PASSWORD).salt(SALT);
        show("rotation", format!("{rotation:?}"));
        rotation.apply().unwrap();
        show(
            "decrypt failure",
            m.decrypt("garbage").unwrap_err().to_string(),
        );
        show(
            "decrypt failure debug",
            format!("{:?}", m.decrypt(&token[..token.len() - 4]).unwrap_err()),
        );
        show(
            "duplicate",
            m.rotate_to_new_version("v2", PASSWORD)
                .salt(SALT)
                .apply()
                .unwrap_err()
                .to_string(),
        );
        m.clear_cache();
        m.cleanup();
        show(
            "cleaned up",
            m.encrypt(PLAINTEXT.as_bytes()).unwrap_err().to_string(),
        );
    });
    show("logs", logs);

    let wrong_salt = SecretsConfig::builder()
        .key_with_salt_hash("v1", PASSWORD, SALT, &Salt::from("x").sha256_hex())
        .build()
        .unwrap();
    show(
        "integrity error",
        format!("{}", SecretsManager::new(wrong_salt).unwrap_err()),
    );
    let bad_key = SecretsConfig::builder()
        .fernet_key("k", &format!("{PASSWORD}===="))
        .build()
        .unwrap_err();
    show("bad key error", format!("{bad_key} {bad_key:?}"));

    let f = Fernet::new(&raw_key);
    show("key", format!("{raw_key:?}"));
    show("fernet", format!("{f:?}"));
    show("multi", format!("{:?}", MultiFernet::new(vec![f]).unwrap()));
    show("salt", format!("{:?}", Salt::from(SALT)));
    let material = KeyMaterial::password(
        PASSWORD,
        Salt::from(SALT),
        secrets_manager::kdf::DEFAULT_ITERATIONS,
    )
    .with_salt_hash(Some(Salt::from(SALT).sha256_hex()));
    show("material", format!("{material:?}"));
    show(
        "raw material",
        format!("{:?}", KeyMaterial::Fernet(raw_key.clone())),
    );

    let events = events.lock().unwrap();
    assert!(events.len() >= 5, "{events:?}");
    for e in events.iter() {
        show("event", format!("{e:?} {e}"));
    }
    for (what, text) in &shown {
        assert_clean(what, text, &secrets);
    }
}
