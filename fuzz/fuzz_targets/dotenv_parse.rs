//! The `.env` reader and the keyring on arbitrary bytes: never a panic, and
//! every error names the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secrets_manager::persist::{Prefixes, parse_keyring_bytes};

fuzz_target!(|data: &[u8]| {
    match parse_keyring_bytes("fuzz.env", data, &Prefixes::default()) {
        Ok((values, keyring)) => {
            for v in keyring.versions() {
                assert_eq!(v.name, v.name.to_ascii_lowercase());
            }
            assert!(values.len() >= keyring.versions().len());
        }
        Err(e) => assert!(e.to_string().starts_with("fuzz.env"), "{e}"),
    }
});
