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

/// Python keyrings may use long or slash-containing version names; they
/// load, decrypt and rotate here, and files written here keep working there.
#[test]
fn python_version_names_long_and_with_slashes_work_both_ways() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".env.secrets");
    let long = "release-2024-01-15-production-key";
    let request = json!({
        "mode": "write",
        "path": path,
        "versions": {
            long: ["old password", "random-salt-value"],
            "team/alpha": ["team password", "c2FsdHNhbHRzYWx0"],
        },
        "active": "team/alpha",
        "messages": {long: "made by the long one", "team/alpha": "made by the team"},
    });
    let out = seed_package(&python, &request);
    let m = SecretsManager::new(SecretsConfig::from_env_file(&path).unwrap()).unwrap();
    assert_eq!(m.active_version(), "team/alpha");
    for v in [long, "team/alpha"] {
        let (used, _) = m.decrypt(out["tokens"][v].as_str().unwrap()).unwrap();
        assert_eq!(used, v);
    }
    m.rotate_to_new_version("team/beta", "next")
        .apply()
        .unwrap();
    let (_, t) = m.encrypt(b"beta").unwrap();
    let read = seed_package(
        &python,
        &json!({"mode": "read", "path": path, "tokens": {"team/beta": t, long: out["tokens"][long]}}),
    );
    assert_eq!(read["decrypted"]["team/beta"], "beta");
    assert_eq!(read["decrypted"][long], "made by the long one");
    assert_eq!(read["active"], "team/beta");
}

#[test]
fn a_version_name_that_cannot_be_used_names_the_file_and_variable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".env.secrets");
    let name = "x".repeat(70);
    std::fs::write(
        &path,
        format!("ENCRYPTION_KEYS__{name}=\"pw\"\nENCRYPTION_SALT__{name}=\"c2FsdHNhbHRzYWx0\"\n"),
    )
    .unwrap();
    let e = SecretsConfig::from_env_file(&path).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!(
            "{}: ENCRYPTION_KEYS__{name}: invalid version name",
            path.display()
        )),
        "{e}"
    );
}
