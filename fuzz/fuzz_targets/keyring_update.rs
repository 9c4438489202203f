//! The keyring writer on arbitrary files: never a panic; a write either
//! fails naming the file or leaves a file that reads back with every
//! version it had, unchanged, plus the one added.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use secrets_manager::persist::{
    PersistError, Prefixes, StoredKey, StoredVersion, read_keyring, update_keyring,
};
use secrets_manager::secrecy::ExposeSecret as _;

fn path() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("keyring-update-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        dir.join("fuzz.env")
    })
}

fn texts(v: &StoredVersion) -> Option<(String, String)> {
    match &v.key {
        Some(StoredKey::Password { password, salt, .. }) => {
            Some((password.expose_secret().to_owned(), salt.clone()))
        }
        Some(StoredKey::Fernet(key)) => Some((key.expose_secret().to_owned(), String::new())),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let path = path();
    std::fs::write(path, data).expect("write the input");
    let prefixes = Prefixes::default();
    let Ok(before) = read_keyring(path, &prefixes) else {
        return;
    };
    let added = StoredVersion::new(
        "fuzz-added",
        StoredKey::Password {
            password: "a password".into(),
            salt: "c2FsdA==".into(),
            salt_hash: None,
        },
    );
    let retire = before
        .versions()
        .iter()
        .find(|v| Some(v.name.as_str()) != before.active())
        .map(|v| v.name.clone());
    let result = update_keyring(path, &prefixes, |k| {
        k.add(added)?;
        if let Some(name) = &retire {
            k.retire(name)?;
        }
        Ok::<_, PersistError>(())
    });
    match result {
        Ok(_) => {
            let after = read_keyring(path, &prefixes).expect("a written file reads back");
            for v in before.versions() {
                let now = after.get(&v.name).expect("no version is lost");
                if v.key.is_some() {
                    assert_eq!(texts(v), texts(now), "version {} changed", v.name);
                }
            }
            assert!(after.get("fuzz-added").is_some());
        }
        Err(e) => assert!(
            e.to_string().contains("fuzz.env") || matches!(e, PersistError::VersionExists { .. }),
            "{e}"
        ),
    }
});
