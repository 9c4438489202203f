//! PBKDF2-HMAC-SHA256 (RFC 8018 §5.2) on the SHA-256 compression function.

use std::num::NonZeroU32;

use sha2::block_api::compress256;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::salt::Salt;

/// The Python SecretsManager's default iteration count.
pub const DEFAULT_ITERATIONS: NonZeroU32 = NonZeroU32::MIN.saturating_add(99_999);
/// Length of a derived key: one Fernet key.
pub const KEY_LEN: usize = 32;

const BLOCK: usize = 64;
const H0: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];
/// Bit length of (one pad block ‖ a 32-byte digest): every iteration's input.
const ITER_BITS: u64 = ((BLOCK + 32) * 8) as u64;

/// Derives a 32-byte key: PBKDF2-HMAC-SHA256(password, salt, iterations).
///
/// This is the Python package's derivation; the result is the raw Fernet key
/// (signing key ‖ encryption key).
#[must_use]
pub fn derive_key(
    password: &[u8],
    salt: &Salt,
    iterations: NonZeroU32,
) -> Zeroizing<[u8; KEY_LEN]> {
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    pbkdf2_hmac_sha256(password, salt.as_bytes(), iterations, &mut out[..]);
    out
}

/// PBKDF2-HMAC-SHA256 into `out`, of any length (blocks of 32 bytes are
/// numbered from 1 as the RFC says).
pub fn pbkdf2_hmac_sha256(password: &[u8], salt: &[u8], iterations: NonZeroU32, out: &mut [u8]) {
    let keyed = PadStates::new(password);
    for (i, chunk) in out.chunks_mut(32).enumerate() {
        // Block indices are u32 in the RFC; `out` would have to exceed
        // 128 GiB to overflow one.
        let index = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let block = keyed.block(salt, index, iterations);
        chunk.copy_from_slice(&block[..chunk.len()]);
    }
}

/// HMAC-SHA256 inner and outer states for one password.
struct PadStates {
    inner: [u32; 8],
    outer: [u32; 8],
}

impl Drop for PadStates {
    fn drop(&mut self) {
        self.inner.zeroize();
        self.outer.zeroize();
    }
}

impl PadStates {
    fn new(password: &[u8]) -> Self {
        // Keys longer than a block are hashed first (RFC 2104).
        let mut key = Zeroizing::new([0u8; BLOCK]);
        if password.len() > BLOCK {
            let mut digest = Sha256::digest(password);
            key[..32].copy_from_slice(&digest);
            digest.zeroize();
        } else {
            key[..password.len()].copy_from_slice(password);
        }
        let mut ipad = Zeroizing::new([0x36u8; BLOCK]);
        let mut opad = Zeroizing::new([0x5cu8; BLOCK]);
        for ((i, o), k) in ipad.iter_mut().zip(opad.iter_mut()).zip(key.iter()) {
            *i ^= k;
            *o ^= k;
        }
        let (mut inner, mut outer) = (H0, H0);
        compress256(&mut inner, &[*ipad]);
        compress256(&mut outer, &[*opad]);
        Self { inner, outer }
    }

    /// `T_i = U_1 ⊕ … ⊕ U_c`, with `U_1 = HMAC(P, S ‖ INT(i))` and
    /// `U_j = HMAC(P, U_{j-1})`.
    fn block(&self, salt: &[u8], index: u32, iterations: NonZeroU32) -> Zeroizing<[u8; 32]> {
        // U_1 over a message of any length, the only irregular one.
        let mut state = self.inner;
        let msg_len = salt.len() + 4;
        let mut tail = Zeroizing::new(Vec::with_capacity(msg_len + 72));
        tail.extend_from_slice(salt);
        tail.extend_from_slice(&index.to_be_bytes());
        let bits = ((BLOCK + msg_len) as u64).wrapping_mul(8);
        tail.push(0x80);
        while (tail.len() + 8) % BLOCK != 0 {
            tail.push(0);
        }
        tail.extend_from_slice(&bits.to_be_bytes());
        let (blocks, _) = tail.as_chunks::<BLOCK>();
        compress256(&mut state, blocks);
        let mut u = Zeroizing::new([0u32; 8]);
        *u = self.outer_of(&state);

        let mut t = Zeroizing::new(*u);
        // Every further U is the HMAC of a 32-byte message: one fixed-layout
        // block for the inner hash and one for the outer. Only the first
        // eight words of each block change.
        let mut block = Zeroizing::new(fixed_layout_block());
        for _ in 1..iterations.get() {
            write_words(&mut block, &u);
            let mut inner = self.inner;
            compress256(&mut inner, &[*block]);
            write_words(&mut block, &inner);
            let mut outer = self.outer;
            compress256(&mut outer, &[*block]);
            *u = outer;
            for (t, u) in t.iter_mut().zip(u.iter()) {
                *t ^= u;
            }
        }
        let mut out = Zeroizing::new([0u8; 32]);
        for (chunk, word) in out.chunks_exact_mut(4).zip(t.iter()) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        out
    }

    /// The outer hash of an inner state: HMAC's final step.
    fn outer_of(&self, inner: &[u32; 8]) -> [u32; 8] {
        let mut block = Zeroizing::new(fixed_layout_block());
        write_words(&mut block, inner);
        let mut outer = self.outer;
        compress256(&mut outer, &[*block]);
        outer
    }
}

/// A block holding a 32-byte message after a pad block: the message slot,
/// `0x80`, zeros, and the bit length of pad block ‖ message.
fn fixed_layout_block() -> [u8; BLOCK] {
    let mut block = [0u8; BLOCK];
    block[32] = 0x80;
    block[BLOCK - 8..].copy_from_slice(&ITER_BITS.to_be_bytes());
    block
}

fn write_words(block: &mut [u8; BLOCK], words: &[u32; 8]) {
    for (chunk, word) in block[..32].chunks_exact_mut(4).zip(words) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn n(i: u32) -> NonZeroU32 {
        NonZeroU32::new(i).unwrap()
    }

    /// RFC 7914 §11, the PBKDF2-HMAC-SHA256 test vectors.
    #[test]
    fn rfc7914_vectors() {
        let mut out = [0u8; 64];
        pbkdf2_hmac_sha256(b"passwd", b"salt", n(1), &mut out);
        assert_eq!(
            hex(&out),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc\
             49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783"
        );
        pbkdf2_hmac_sha256(b"Password", b"NaCl", n(80_000), &mut out);
        assert_eq!(
            hex(&out),
            "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56\
             a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d"
        );
    }

    #[test]
    fn matches_the_pbkdf2_crate_for_awkward_lengths() {
        for (plen, slen, iters) in [
            (0, 0, 1),
            (1, 55, 2),
            (64, 56, 3),
            (65, 119, 5),
            (200, 64, 7),
            (16, 120, 1),
        ] {
            let password: Vec<u8> = (0..plen).map(|i| (i * 7) as u8).collect();
            let salt: Vec<u8> = (0..slen).map(|i| (i * 13) as u8).collect();
            let mut ours = [0u8; 80];
            pbkdf2_hmac_sha256(&password, &salt, n(iters), &mut ours);
            let mut theirs = [0u8; 80];
            ::pbkdf2::pbkdf2_hmac::<Sha256>(&password, &salt, iters, &mut theirs);
            assert_eq!(
                ours, theirs,
                "password {plen}, salt {slen}, {iters} iterations"
            );
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, ..Default::default() })]

        #[test]
        fn matches_the_pbkdf2_crate_for_any_input(
            password in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..150),
            salt in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..150),
            iterations in 1u32..40,
            len in 1usize..100,
        ) {
            let mut ours = vec![0u8; len];
            pbkdf2_hmac_sha256(&password, &salt, n(iterations), &mut ours);
            let mut theirs = vec![0u8; len];
            ::pbkdf2::pbkdf2_hmac::<Sha256>(&password, &salt, iterations, &mut theirs);
            proptest::prop_assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn derive_key_is_the_first_32_bytes() {
        let salt = Salt::from_bytes(b"salt".to_vec());
        let key = derive_key(b"passwd", &salt, n(1));
        assert_eq!(
            hex(&key[..]),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
        );
    }
}
