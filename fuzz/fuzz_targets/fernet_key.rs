//! Key parsing: never a panic, and an accepted key re-encodes to its input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secrets_manager_fernet::Key;

fuzz_target!(|data: &[u8]| {
    if let Ok(key) = Key::from_base64(data) {
        assert_eq!(key.to_base64().as_bytes(), data);
    }
});
