//! Properties of the codec over arbitrary inputs.

use std::time::Duration;

use proptest::prelude::*;
use secrets_manager_fernet::{Fernet, InvalidToken, Key, MultiFernet, UnverifiedToken};

fn key_from(bytes: [u8; 32]) -> Fernet {
    Fernet::new(&Key::from_bytes(bytes))
}

/// Raw token bytes back from the text form, re-encoded after a change.
fn reencode(raw: &[u8]) -> String {
    // A tiny independent base64url encoder, so the test does not trust the
    // codec's own encoder.
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in raw.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn decode(token: &str) -> Vec<u8> {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let vals: Vec<u32> = token
        .bytes()
        .filter(|&c| c != b'=')
        .map(|c| A.iter().position(|&a| a == c).unwrap() as u32)
        .collect();
    let mut out = Vec::new();
    for chunk in vals.chunks(4) {
        let mut n = 0u32;
        for (i, v) in chunk.iter().enumerate() {
            n |= v << (18 - 6 * i);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..chunk.len() - 1]);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn round_trips_any_message_and_time(
        key in any::<[u8; 32]>(),
        msg in proptest::collection::vec(any::<u8>(), 0..5000),
        ts in any::<u64>(),
    ) {
        let f = key_from(key);
        let token = f.encrypt_at_time(&msg, ts);
        prop_assert_eq!(&*f.decrypt(&token).unwrap(), &msg[..]);
        prop_assert_eq!(f.extract_timestamp(&token), Ok(ts));
        prop_assert_eq!(&*f.decrypt_at_time(&token, Some(Duration::ZERO), ts).unwrap(), &msg[..]);
        prop_assert_eq!(UnverifiedToken::parse(&token).unwrap().timestamp(), ts);
        // Our encoder agrees with an independent one.
        prop_assert_eq!(reencode(&decode(&token)), token.clone());
        // Length is exactly what the format says.
        let raw_len = 1 + 8 + 16 + (msg.len() / 16 + 1) * 16 + 32;
        prop_assert_eq!(token.len(), raw_len.div_ceil(3) * 4);
    }

    #[test]
    fn every_single_bit_flip_is_rejected(
        key in any::<[u8; 32]>(),
        msg in proptest::collection::vec(any::<u8>(), 0..64),
        ts in any::<u64>(),
    ) {
        let f = key_from(key);
        let raw = decode(&f.encrypt_at_time(&msg, ts));
        for bit in 0..raw.len() * 8 {
            let mut bad = raw.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            prop_assert_eq!(f.decrypt(reencode(&bad)), Err(InvalidToken), "bit {}", bit);
        }
    }

    #[test]
    fn truncations_and_extensions_are_rejected(
        key in any::<[u8; 32]>(),
        msg in proptest::collection::vec(any::<u8>(), 0..100),
        extra in proptest::collection::vec(any::<u8>(), 1..40),
        cut in 1usize..200,
    ) {
        let f = key_from(key);
        let token = f.encrypt(&msg);
        let raw = decode(&token);
        let cut = cut.min(raw.len());
        prop_assert_eq!(f.decrypt(reencode(&raw[..raw.len() - cut])), Err(InvalidToken));
        let mut longer = raw.clone();
        longer.extend_from_slice(&extra);
        prop_assert_eq!(f.decrypt(reencode(&longer)), Err(InvalidToken));
        // Textual truncation and extension too.
        prop_assert_eq!(f.decrypt(&token[..token.len() - cut.min(token.len())]), Err(InvalidToken));
        prop_assert_eq!(f.decrypt(format!("{token}A")), Err(InvalidToken));
        prop_assert_eq!(f.decrypt(format!("{token}AAAA")), Err(InvalidToken));
    }

    #[test]
    fn a_wrong_key_is_rejected(
        key in any::<[u8; 32]>(),
        other in any::<[u8; 32]>(),
        msg in proptest::collection::vec(any::<u8>(), 0..100),
    ) {
        prop_assume!(key != other);
        let token = key_from(key).encrypt(&msg);
        let wrong = key_from(other);
        prop_assert_eq!(wrong.decrypt(&token), Err(InvalidToken));
        prop_assert_eq!(wrong.extract_timestamp(&token), Err(InvalidToken));
        // A MultiFernet of wrong keys rejects it too; adding the right one accepts it.
        let multi = MultiFernet::new(vec![wrong.clone(), wrong.clone()]).unwrap();
        prop_assert_eq!(multi.decrypt(&token), Err(InvalidToken));
        let multi = MultiFernet::new(vec![wrong, key_from(key)]).unwrap();
        prop_assert_eq!(&*multi.decrypt(&token).unwrap(), &msg[..]);
    }

    #[test]
    fn ttl_rule_matches_python_for_any_times(
        key in any::<[u8; 32]>(),
        ts in any::<u64>(),
        ttl in any::<u64>(),
        now in any::<u64>(),
    ) {
        let f = key_from(key);
        let token = f.encrypt_at_time(b"x", ts);
        // Python's rule, in unbounded integers.
        let expired = u128::from(ts) + u128::from(ttl) < u128::from(now);
        let future = u128::from(now) + 60 < u128::from(ts);
        let got = f.decrypt_at_time(&token, Some(Duration::from_secs(ttl)), now);
        prop_assert_eq!(got.is_ok(), !expired && !future);
        prop_assert!(f.decrypt_at_time(&token, None, now).is_ok());
    }

    #[test]
    fn arbitrary_input_never_panics(input in proptest::collection::vec(any::<u8>(), 0..300)) {
        let f = key_from([7; 32]);
        prop_assert_eq!(f.decrypt(&input), Err(InvalidToken));
        let _ = Key::from_base64(&input);
    }
}

#[test]
fn concurrent_use_from_many_threads() {
    let f = std::sync::Arc::new(key_from([9; 32]));
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let f = std::sync::Arc::clone(&f);
            std::thread::spawn(move || {
                for i in 0..500u32 {
                    let msg = format!("{t}-{i}");
                    let token = f.encrypt(msg.as_bytes());
                    assert_eq!(&*f.decrypt(&token).unwrap(), msg.as_bytes());
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn types_are_send_sync_clone() {
    fn check<T: Send + Sync + Clone>() {}
    check::<Fernet>();
    check::<MultiFernet>();
    check::<Key>();
}

/// Found by fuzzing: two keys sharing the signing half. The first verifies
/// the HMAC but its padding fails; Python's `MultiFernet` then tries the next
/// key, and so must we (decrypt, rotate).
#[test]
fn multifernet_tries_the_next_key_when_padding_fails_under_a_shared_signing_key() {
    let mut real = [0u8; 32];
    real[16..].copy_from_slice(&[0xf6; 16]);
    let decoy = [0u8; 32];
    let f = key_from(real);
    let token = f.encrypt_at_time(b"", 0);
    assert_eq!(key_from(decoy).decrypt(&token), Err(InvalidToken));
    let multi = MultiFernet::new(vec![key_from(decoy), f.clone()]).unwrap();
    assert_eq!(&*multi.decrypt(&token).unwrap(), b"");
    let rotated = multi.rotate(&token).unwrap();
    // Rotated under the decoy (the first key): only it decrypts the result.
    assert_eq!(&*key_from(decoy).decrypt(&rotated).unwrap(), b"");
    assert_eq!(multi.extract_timestamp(&rotated), Ok(0));
}
