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
    let multi = MultiFernet::new(vec![Fernet::new(&Key::from_bytes([0; 32])), f.clone()]).unwrap();
    let rotated = multi.rotate(&token).unwrap();
    assert_eq!(multi.extract_timestamp(&rotated).unwrap(), ts);
    assert_eq!(&*multi.decrypt(&rotated).unwrap(), msg);
});
