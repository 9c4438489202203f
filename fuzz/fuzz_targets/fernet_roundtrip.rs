//! Encrypt then decrypt any message at any time, under any key.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use secrets_manager_fernet::{Fernet, Key, MultiFernet};

fuzz_target!(|input: (&[u8], [u8; 32], u64, u64)| {
    let (msg, key, ts, ttl) = input;
    let f = Fernet::new(&Key::from_bytes(key));
    let token = f.encrypt_at_time(msg, ts);
    assert_eq!(&*f.decrypt(&token).unwrap(), msg);
    assert_eq!(f.extract_timestamp(&token).unwrap(), ts);
    let in_window = f.decrypt_at_time(&token, Some(Duration::from_secs(ttl)), ts).is_ok();
    assert!(in_window, "a token is always valid at its own timestamp");
    // A decoy whose signing half differs from the key's: two keys sharing a
    // signing half are indistinguishable to the HMAC, so a garbage decryption
    // with valid-looking padding would be a legitimate (Python-compatible)
    // outcome, not a bug.
    let decoy = Fernet::new(&Key::from_bytes(key.map(|b| !b)));
    let multi = MultiFernet::new(vec![decoy, f.clone()]).unwrap();
    let rotated = multi.rotate(&token).unwrap();
    assert_eq!(multi.extract_timestamp(&rotated).unwrap(), ts);
    assert_eq!(&*multi.decrypt(&rotated).unwrap(), msg);
});
