//! Arbitrary tokens and hints through the facade: never a panic, statistics
//! stay exact, and anything accepted re-encrypts and decrypts the same.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use secrets_manager::fernet::Key;
use secrets_manager::{SecretsConfig, SecretsManager};

static MANAGER: LazyLock<SecretsManager> = LazyLock::new(|| {
    let config = SecretsConfig::builder()
        .fernet_key("v1", Key::from_bytes([1; 32]).to_base64().as_str())
        .fernet_key("v2", Key::from_bytes([2; 32]).to_base64().as_str())
        .key("v3", "password", "salt")
        .kdf_iterations(1)
        .activated_at("v1", 1_000)
        .activated_at("v2", 2_000)
        .active_version("v3")
        .build()
        .unwrap();
    SecretsManager::new(config).unwrap()
});

fuzz_target!(|input: (&[u8], &str)| {
    let (token, hint) = input;
    let m = &*MANAGER;
    let before = m.statistics();
    let result = m.decrypt_with_hint(token, hint);
    let after = m.statistics();
    assert_eq!(
        after.decryptions + after.decryption_failures,
        before.decryptions + before.decryption_failures + 1
    );
    if let Ok((_, plaintext)) = result {
        let (_, again) = m.encrypt(&plaintext).unwrap();
        assert_eq!(m.decrypt(&again).unwrap().1, plaintext);
    }
});
