//! Teams moving off the Python package: its files and tokens work here, and
//! files written here work there.
//!
//! "There" is this project's own Python model of the package,
//! `tests/python/seed_package.py`: it writes and reads the keyring file and
//! derives keys as the package is documented to, on `cryptography` and
//! `python-dotenv`. The original package itself is not run, so these tests
//! show agreement with that model, not with the package's code.

use secrets_manager::{SecretsConfig, SecretsManager};
use secrets_manager_tests::{python_with, seed_package};
use serde_json::json;

fn python() -> Option<String> {
    python_with(&["cryptography", "dotenv"])
}

#[test]
fn a_file_written_by_the_python_package_loads_and_its_tokens_decrypt() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".env.secrets");
    let request = json!({
        "mode": "write",
        "path": path,
        "versions": {
            "v1": ["old password", "random-salt-value"],
            "v2": ["new \"quoted\" \\ password", "73616c74"],
        },
        "active": "v2",
        "messages": {"v1": "made by v1", "v2": "made by v2"},
    });
    let out = seed_package(&python, &request);
    let m = SecretsManager::new(SecretsConfig::from_env_file(&path).unwrap()).unwrap();
    assert_eq!(m.active_version(), "v2");
    for v in ["v1", "v2"] {
        let (used, plaintext) = m.decrypt(out["tokens"][v].as_str().unwrap()).unwrap();
        assert_eq!(used, v);
        assert_eq!(&*plaintext, format!("made by {v}").as_bytes());
    }
    // Rotating here keeps Python's versions and its checksum scheme.
    m.rotate_to_new_version("v3", "third")
        .persist_to_file(&path)
        .apply()
        .unwrap();
    let again = SecretsManager::new(SecretsConfig::from_env_file(&path).unwrap()).unwrap();
    assert_eq!(again.versions().len(), 3);
    assert_eq!(
        again
            .decrypt(out["tokens"]["v1"].as_str().unwrap())
            .unwrap()
            .0,
        "v1"
    );
}

#[test]
fn a_file_written_here_loads_in_python_with_the_same_values_and_keys() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".env.secrets");
    std::fs::write(
        &path,
        "# app settings\nAPP_NAME=\"demo\"\nLOG_LEVEL=info # inline\n",
    )
    .unwrap();
    let m = SecretsManager::new(
        SecretsConfig::builder()
            .key("v1", "pass with 'quotes' and #hash", "random-salt-value")
            .build()
            .unwrap(),
    )
    .unwrap();
    m.persist_to_file(&path).unwrap();
    let (_, t1) = m.encrypt(b"first").unwrap();
    m.rotate_to_new_version("v2", "second\npassword")
        .persist_to_file(&path)
        .apply()
        .unwrap();
    let (_, t2) = m.encrypt(b"second").unwrap();

    let request = json!({"mode": "read", "path": path, "tokens": {"v1": t1, "v2": t2}});
    let out = seed_package(&python, &request);
    assert_eq!(out["active"], "v2");
    assert_eq!(out["decrypted"]["v1"], "first");
    assert_eq!(out["decrypted"]["v2"], "second");
    assert_eq!(out["values"]["APP_NAME"], "demo");
    assert_eq!(out["values"]["LOG_LEVEL"], "info");
    assert_eq!(
        out["values"]["ENCRYPTION_KEYS__v1"],
        "pass with 'quotes' and #hash"
    );
    assert_eq!(out["values"]["ENCRYPTION_KEYS__v2"], "second\npassword");
}
