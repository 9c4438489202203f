//! Arbitrary tokens, hints and time-to-live settings through the facade:
//! never a panic, statistics stay exact, and anything accepted re-encrypts
//! and decrypts the same.
#![no_main]

use std::sync::LazyLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use secrets_manager::fernet::Key;
use secrets_manager::{DecryptOptions, SecretsConfig, SecretsManager};

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

fuzz_target!(|input: (&[u8], &str, Option<(u32, u64)>)| {
    let (token, hint, ttl) = input;
    let m = &*MANAGER;
    let mut options = DecryptOptions::new().hint(hint);
    if let Some((secs, now)) = ttl {
        options = options.ttl(Duration::from_secs(secs.into())).at_time(now);
    }
    let before = m.statistics();
    let result = m.decrypt_with(token, &options);
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
