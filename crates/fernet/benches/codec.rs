//! Token encrypt/decrypt against the `fernet` crate (its `rustcrypto`
//! backend, the fastest Rust peer) and against the bare primitives with keys
//! already scheduled. `cargo xtask bench` runs this and prints the ratios.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use aes::cipher::{BlockDecryptMut, BlockEncryptMut, InnerIvInit, KeyInit, block_padding::Pkcs7};
use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurposeConfig, Simd};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hmac::{Hmac, Mac};
use secrets_manager_fernet::zeroize::Zeroizing;
use secrets_manager_fernet::{Fernet, Key, MultiFernet};
use sha2::Sha256;

const SIZES: [(usize, &str); 4] = [
    (32, "32B"),
    (1024, "1KiB"),
    (65_536, "64KiB"),
    (1 << 20, "1MiB"),
];
const TS: u64 = 1_700_000_000;

/// AES-128-CBC + HMAC-SHA256 + base64 with everything pre-keyed and a fixed
/// IV: the floor a straightforward Fernet on the same crates would reach
/// (`cbc` with padding, the `hmac` crate from a cloned keyed state, the
/// `base64` crate's SIMD engine).
struct Bare {
    enc: aes::Aes128Enc,
    dec: aes::Aes128Dec,
    mac: Hmac<Sha256>,
    b64: Simd,
}

impl Bare {
    fn new(key: &[u8; 32]) -> Self {
        Self {
            enc: aes::Aes128Enc::new_from_slice(&key[16..]).unwrap(),
            dec: aes::Aes128Dec::new_from_slice(&key[16..]).unwrap(),
            mac: <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(&key[..16]).unwrap(),
            b64: Simd::url_safe(
                GeneralPurposeConfig::new()
                    .with_encode_padding(true)
                    .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
            ),
        }
    }

    fn encrypt(&self, msg: &[u8]) -> String {
        let iv = [7u8; 16];
        let mut raw = vec![0u8; 25 + (msg.len() / 16 + 1) * 16 + 32];
        raw[0] = 0x80;
        raw[1..9].copy_from_slice(&TS.to_be_bytes());
        raw[9..25].copy_from_slice(&iv);
        let ct_len = cbc::Encryptor::<&aes::Aes128Enc>::inner_iv_init(&self.enc, &iv.into())
            .encrypt_padded_b2b_mut::<Pkcs7>(msg, &mut raw[25..])
            .unwrap()
            .len();
        let mut mac = self.mac.clone();
        mac.update(&raw[..25 + ct_len]);
        let tag = mac.finalize().into_bytes();
        raw[25 + ct_len..].copy_from_slice(&tag);
        self.b64.encode(&raw)
    }

    fn decrypt(&self, token: &str) -> Vec<u8> {
        let mut raw = self.b64.decode(token).unwrap();
        let n = raw.len() - 32;
        let mut mac = self.mac.clone();
        mac.update(&raw[..n]);
        mac.verify_slice(&raw[n..]).unwrap();
        let mut iv = [0u8; 16];
        iv.copy_from_slice(&raw[9..25]);
        let len = cbc::Decryptor::<&aes::Aes128Dec>::inner_iv_init(&self.dec, &iv.into())
            .decrypt_padded_mut::<Pkcs7>(&mut raw[25..n])
            .unwrap()
            .len();
        raw.copy_within(25..25 + len, 0);
        raw.truncate(len);
        raw
    }
}

fn codec(c: &mut Criterion) {
    let key = Key::generate();
    let ours = Fernet::new(&key);
    let peer = fernet::Fernet::new(&key.to_base64()).expect("valid key");
    let bare = Bare::new(key.as_bytes());

    for (size, label) in SIZES {
        let msg = vec![0x5a; size];
        let token = ours.encrypt_at_time(&msg, TS);
        assert_eq!(peer.decrypt(&token).unwrap(), msg);
        assert_eq!(bare.decrypt(&bare.encrypt(&msg)), msg);

        let mut g = c.benchmark_group(format!("encrypt/{label}"));
        g.throughput(Throughput::Bytes(size as u64));
        if size >= 65_536 {
            g.sample_size(30);
        }
        g.bench_function("ours", |b| b.iter(|| ours.encrypt(black_box(&msg))));
        g.bench_function("fernet-crate", |b| b.iter(|| peer.encrypt(black_box(&msg))));
        g.bench_function("primitives", |b| b.iter(|| bare.encrypt(black_box(&msg))));
        g.finish();

        let mut g = c.benchmark_group(format!("decrypt/{label}"));
        g.throughput(Throughput::Bytes(size as u64));
        if size >= 65_536 {
            g.sample_size(30);
        }
        // Each output is dropped inside the timing, as in real use. Ours
        // zeroizes the message when it is dropped; the `fernet` crate and the
        // bare primitives do not, so `primitives-zeroizing` returns the bare
        // result in the same zeroizing buffer, for a like-for-like ratio.
        g.bench_function("ours", |b| {
            b.iter(|| ours.decrypt(black_box(&token)).unwrap())
        });
        g.bench_function("fernet-crate", |b| {
            b.iter(|| peer.decrypt(black_box(&token)).unwrap())
        });
        g.bench_function("primitives", |b| b.iter(|| bare.decrypt(black_box(&token))));
        g.bench_function("primitives-zeroizing", |b| {
            b.iter(|| Zeroizing::new(bare.decrypt(black_box(&token))))
        });
        g.finish();
    }
}

/// Trial decryption: a 32-byte token made by the last of `n` keys.
fn trial(c: &mut Criterion) {
    let mut g = c.benchmark_group("multi-decrypt-last-of");
    for n in [1usize, 10, 100] {
        let keys: Vec<Key> = (0..n).map(|_| Key::generate()).collect();
        let ours = MultiFernet::new(keys.iter().map(Fernet::new).collect()).unwrap();
        let peer = fernet::MultiFernet::new(
            keys.iter()
                .map(|k| fernet::Fernet::new(&k.to_base64()).unwrap())
                .collect(),
        );
        let token = Fernet::new(&keys[n - 1]).encrypt(&[1; 32]);
        g.bench_with_input(BenchmarkId::new("ours", n), &token, |b, t| {
            b.iter(|| ours.decrypt(t).unwrap())
        });
        g.bench_with_input(BenchmarkId::new("fernet-crate", n), &token, |b, t| {
            b.iter(|| peer.decrypt(t).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, codec, trial);
criterion_main!(benches);
