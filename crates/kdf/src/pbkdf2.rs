//! PBKDF2-HMAC-SHA256 (RFC 8018 §5.2) on the RustCrypto `hmac` crate.

use std::num::NonZeroU32;

use hmac::KeyInit as _;
use hmac::block_api::HmacCore;
use hmac::digest::Output;
use hmac::digest::block_api::{Buffer, FixedOutputCore as _, UpdateCore as _};
use sha2::Sha256;
use zeroize::{Zeroize as _, Zeroizing};

use crate::salt::Salt;

/// The Python SecretsManager's default iteration count.
pub const DEFAULT_ITERATIONS: NonZeroU32 = NonZeroU32::MIN.saturating_add(99_999);
/// Length of a derived key: one Fernet key.
pub const KEY_LEN: usize = 32;

/// HMAC-SHA256 at the block level: the keyed state is cloned per HMAC and
/// fed from one reused block buffer.
type Prf = HmacCore<Sha256>;

/// Derives a 32-byte key: PBKDF2-HMAC-SHA256(password, salt, iterations).
///
/// This is the Python package's derivation; the result is the raw Fernet key
/// (signing key ‖ encryption key). To keep the key in locked memory, derive
/// it in place with [`derive_key_into`] instead, for example into
/// `secrets_manager_fernet::Key::fill_with`.
#[must_use]
pub fn derive_key(
    password: &[u8],
    salt: &Salt,
    iterations: NonZeroU32,
) -> Zeroizing<[u8; KEY_LEN]> {
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    derive_key_into(password, salt, iterations, &mut out);
    out
}

/// [`derive_key`] written into `out`, such as a key's locked memory; no
/// other copy of the key is made.
///
/// ```
/// use secrets_manager_kdf::{DEFAULT_ITERATIONS, KEY_LEN, Salt, derive_key, derive_key_into};
///
/// let salt = Salt::from("random-salt-value");
/// let mut key = [0u8; KEY_LEN]; // e.g. inside `Key::fill_with(|key| ...)`
/// derive_key_into(b"password", &salt, DEFAULT_ITERATIONS, &mut key);
/// assert_eq!(key, *derive_key(b"password", &salt, DEFAULT_ITERATIONS));
/// ```
pub fn derive_key_into(
    password: &[u8],
    salt: &Salt,
    iterations: NonZeroU32,
    out: &mut [u8; KEY_LEN],
) {
    f(&keyed(password), salt.as_bytes(), 1, iterations, out);
}

/// PBKDF2-HMAC-SHA256 into `out` (blocks of 32 bytes are numbered from 1
/// as the RFC says).
///
/// # Panics
///
/// If `out` is longer than RFC 8018 allows, (2^32 - 1) × 32 bytes (nearly
/// 128 GiB): block numbers are 32-bit.
pub fn pbkdf2_hmac_sha256(password: &[u8], salt: &[u8], iterations: NonZeroU32, out: &mut [u8]) {
    assert!(
        out.len().div_ceil(32) <= u32::MAX as usize,
        "PBKDF2 output longer than (2^32 - 1) blocks"
    );
    // The password's pad states are computed once; every HMAC below starts
    // from a copy of them.
    let keyed = keyed(password);
    for (chunk, index) in out.chunks_mut(32).zip(1..=u32::MAX) {
        if let Ok(block) = <&mut [u8; 32]>::try_from(&mut *chunk) {
            f(&keyed, salt, index, iterations, block);
        } else {
            // A last, partial block.
            let mut last = Zeroizing::new([0u8; 32]);
            f(&keyed, salt, index, iterations, &mut last);
            let n = chunk.len();
            chunk.copy_from_slice(&last[..n]);
        }
    }
}

/// HMAC keyed with `password`, of any length (RFC 2104: hashed first when
/// longer than a block).
fn keyed(password: &[u8]) -> Prf {
    #[allow(clippy::expect_used)]
    Prf::new_from_slice(password).expect("HMAC takes keys of any length") // ok: `new_from_slice` never fails for HMAC
}

/// `T_i = U_1 ⊕ … ⊕ U_c`, with `U_1 = HMAC(P, S ‖ INT(i))` and
/// `U_j = HMAC(P, U_{j-1})`, accumulated in `t`.
fn f(keyed: &Prf, salt: &[u8], index: u32, iterations: NonZeroU32, t: &mut [u8; 32]) {
    // One block buffer for every HMAC: each finalisation leaves it empty,
    // and it is wiped when dropped.
    let mut buf = Buffer::<Prf>::default();
    let mut u = Output::<Prf>::default();
    let mut prf = keyed.clone();
    buf.digest_blocks(salt, |blocks| prf.update_blocks(blocks));
    buf.digest_blocks(&index.to_be_bytes(), |blocks| prf.update_blocks(blocks));
    prf.finalize_fixed_core(&mut buf, &mut u);

    t.copy_from_slice(&u);
    for _ in 1..iterations.get() {
        // U is 32 bytes: it fits the empty buffer, so nothing is compressed
        // until the finalisation (one block inner, one block outer).
        let mut prf = keyed.clone();
        buf.digest_blocks(&u, |blocks| prf.update_blocks(blocks));
        prf.finalize_fixed_core(&mut buf, &mut u);
        for (t, u) in t.iter_mut().zip(u.iter()) {
            *t ^= u;
        }
    }
    u.zeroize();
}

#[cfg(test)]
// Test data generators wrap numbers into bytes on purpose.
#[allow(clippy::cast_possible_truncation)]
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
