//! Arbitrary bytes as a token, under a fixed key: never a panic, and
//! anything accepted must be a token this key made (re-encryption agrees),
//! and every decryption path agrees.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use secrets_manager_fernet::{Fernet, Key, MultiFernet, UnverifiedToken};

fuzz_target!(|data: &[u8]| {
    let key = Key::from_bytes([0x42; 32]);
    let f = Fernet::new(&key);
    let plain = f.decrypt(data);
    // Small tokens take a stack path of their own; the general path (parse,
    // time, HMAC, decrypt) must agree with it on every input.
    let ttl = Some(Duration::from_secs(60));
    let timed = f.decrypt_at_time(data, ttl, 1_700_000_000);
    let general = UnverifiedToken::parse(data).ok().and_then(|t| {
        t.check_ttl(ttl, 1_700_000_000).ok()?;
        t.verify(&f).ok()?.decrypt().ok()
    });
    assert_eq!(timed.ok(), general);
    let _ = f.extract_timestamp(data);
    if let Ok(t) = UnverifiedToken::parse(data) {
        // Every token's head peeks to the timestamp it parses to.
        assert_eq!(UnverifiedToken::peek_timestamp(data), Some(t.timestamp()));
        let _ = t.check_ttl(Some(Duration::from_secs(u64::MAX)), u64::MAX);
    }
    let multi = MultiFernet::new(vec![Fernet::new(&Key::from_bytes([1; 32])), f.clone()]).unwrap();
    assert_eq!(multi.decrypt(data).ok(), plain.clone().ok());
    if let Ok(msg) = plain {
        let ts = f.extract_timestamp(data).unwrap();
        assert_eq!(&*f.decrypt(f.encrypt_at_time(&msg, ts)).unwrap(), &*msg);
    }
});
