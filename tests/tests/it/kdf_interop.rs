//! Password-derived keys against Python's PBKDF2HMAC + Fernet, both ways.

use secrets_manager::{Salt, SecretsConfig, SecretsManager};
use secrets_manager_tests::{hex, python_script, python_with, run_python, to_hex};
use serde_json::{Value, json};

#[test]
fn derived_keys_and_tokens_match_python() {
    let Some(python) = python_with(&["cryptography"]) else {
        return;
    };
    let cases: Vec<(String, Salt, u32)> = vec![
        (
            "my-secret-password".into(),
            Salt::from("random-salt-value"),
            secrets_manager::kdf::DEFAULT_ITERATIONS.get(),
        ),
        ("pässwörd ✓".into(), Salt::from("73616c74"), 1_000),
        ("x".repeat(100), Salt::from("c2FsdA=="), 2_000), // longer than a SHA-256 block
        (String::new(), Salt::from(b"".as_slice()), 1),
        ("p".into(), Salt::from(vec![0u8; 200]), 3),
    ];
    let mut requests = Vec::new();
    let mut managers = Vec::new();
    for (i, (password, salt, iterations)) in cases.iter().enumerate() {
        let config = SecretsConfig::builder()
            .key("v1", password.as_str(), salt.clone())
            .kdf_iterations(*iterations)
            .build()
            .unwrap();
        let m = SecretsManager::new(config).unwrap();
        let msg = format!("message {i}");
        let (_, token) = m.encrypt(msg.as_bytes()).unwrap();
        requests.push(json!({
            "password": password,
            "salt": to_hex(salt.as_bytes()),
            "iterations": iterations,
            "token": token,
            "msg": to_hex(format!("from python {i}").as_bytes()),
        }));
        managers.push((m, msg));
    }
    let input = json!({ "cases": requests }).to_string();
    let out: Value = serde_json::from_slice(&run_python(
        &python,
        &python_script("kdf_oracle.py"),
        input.as_bytes(),
    ))
    .unwrap();
    let results = out["results"].as_array().unwrap();
    assert_eq!(results.len(), cases.len());
    for (i, ((m, msg), r)) in managers.iter().zip(results).enumerate() {
        let (password, salt, iterations) = &cases[i];
        // Same key bytes.
        let ours = secrets_manager::kdf::derive_key(
            password.as_bytes(),
            salt,
            std::num::NonZeroU32::new(*iterations).unwrap(),
        );
        let theirs = secrets_manager::fernet::Key::from_base64(r["key"].as_str().unwrap()).unwrap();
        assert_eq!(&*ours, theirs.as_bytes(), "case {i}");
        // Python decrypted ours; we decrypt Python's.
        assert_eq!(
            hex(r["decrypted"].as_str().unwrap()),
            msg.as_bytes(),
            "case {i}"
        );
        let (v, plaintext) = m.decrypt(r["token"].as_str().unwrap()).unwrap();
        assert_eq!(v, "v1");
        assert_eq!(&*plaintext, format!("from python {i}").as_bytes());
    }
}
