//! Live interop with Python `cryptography`: random tokens both ways.

use secrets_manager_fernet::{Fernet, Key};
use secrets_manager_tests::{hex, python_script, python_with, run_python, to_hex};
use serde_json::{Value, json};

/// Deterministic message bytes of assorted lengths (no RNG crate needed).
fn message(i: usize) -> Vec<u8> {
    let len = [0, 1, 15, 16, 17, 31, 32, 33, 100, 1000, 5000][i % 11] + i % 7;
    (0..len).map(|j| (j * 31 + i * 7) as u8).collect()
}

#[test]
fn tokens_cross_check_both_ways_with_python() {
    let Some(python) = python_with(&["cryptography"]) else {
        return;
    };
    const N: usize = 300;
    let keys: Vec<Key> = (0..10).map(|_| Key::generate()).collect();

    // Ours -> Python decrypts (and reports the timestamp).
    let ours: Vec<Value> = (0..N)
        .map(|i| {
            let key = &keys[i % keys.len()];
            let ts = 1_000_000_000 + (i as u64) * 7919;
            let token = Fernet::new(key).encrypt_at_time(&message(i), ts);
            json!({"key": key.to_base64().as_str(), "token": token})
        })
        .collect();
    // Python -> we decrypt.
    let requests: Vec<Value> = (0..N)
        .map(|i| {
            json!({"key": keys[(i + 3) % keys.len()].to_base64().as_str(), "msg": to_hex(&message(i)), "timestamp": 2_000_000_000u64 + i as u64})
        })
        .collect();
    let input = json!({"decrypt": ours, "encrypt": requests}).to_string();
    let out: Value = serde_json::from_slice(&run_python(
        &python,
        &python_script("fernet_oracle.py"),
        input.as_bytes(),
    ))
    .unwrap();

    let decrypted = out["decrypted"].as_array().unwrap();
    assert_eq!(decrypted.len(), N);
    for (i, d) in decrypted.iter().enumerate() {
        assert_eq!(
            hex(d["msg"].as_str().unwrap()),
            message(i),
            "python decrypting our token {i}"
        );
        assert_eq!(
            d["timestamp"].as_u64(),
            Some(1_000_000_000 + (i as u64) * 7919)
        );
    }
    let tokens = out["encrypted"].as_array().unwrap();
    assert_eq!(tokens.len(), N);
    for (i, t) in tokens.iter().enumerate() {
        let f = Fernet::new(&keys[(i + 3) % keys.len()]);
        let token = t.as_str().unwrap();
        assert_eq!(
            &*f.decrypt(token).unwrap(),
            &message(i)[..],
            "our decrypting python token {i}"
        );
        assert_eq!(f.extract_timestamp(token), Ok(2_000_000_000 + i as u64));
        // And Python's key text parses here to the same key.
    }
}
