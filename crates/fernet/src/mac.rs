//! HMAC-SHA256 for Fernet's signing key, on the SHA-256 compression
//! function.
//!
//! The key's inner and outer states (after the `ipad` and `opad` blocks) are
//! computed once per key, so a tag costs only the compressions of the
//! message, its padding and the outer block: three for a small token. Full
//! 64-byte blocks are compressed straight from the caller's buffer, without
//! being copied.
//!
//! This is RFC 2104 exactly; the tests check it against the `hmac` crate and
//! RFC 4231's vectors.

use sha2::block_api::compress256;
use zeroize::{Zeroize, ZeroizeOnDrop};

const BLOCK: usize = 64;
/// SHA-256's initial state (FIPS 180-4 §5.3.3).
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

/// A key ready for HMAC: the states after absorbing `key ⊕ ipad` and
/// `key ⊕ opad`. Zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct MacKey {
    inner: [u32; 8],
    outer: [u32; 8],
}

impl MacKey {
    /// Keys of at most 64 bytes (Fernet's is 16) are used as is, zero-padded.
    pub(crate) fn new(key: &[u8]) -> Self {
        debug_assert!(key.len() <= BLOCK);
        let mut ipad = [0x36u8; BLOCK];
        let mut opad = [0x5cu8; BLOCK];
        for ((i, o), k) in ipad.iter_mut().zip(opad.iter_mut()).zip(key) {
            *i ^= k;
            *o ^= k;
        }
        let (mut inner, mut outer) = (H0, H0);
        compress256(&mut inner, &[ipad]);
        compress256(&mut outer, &[opad]);
        ipad.zeroize();
        opad.zeroize();
        Self { inner, outer }
    }

    /// Starts a tag computation.
    pub(crate) fn start(&self) -> Mac<'_> {
        Mac {
            key: self,
            state: self.inner,
            pending: [0; BLOCK],
            pending_len: 0,
            total: 0,
        }
    }
}

/// An HMAC computation in progress.
pub(crate) struct Mac<'k> {
    key: &'k MacKey,
    state: [u32; 8],
    pending: [u8; BLOCK],
    pending_len: usize,
    /// Message bytes absorbed so far (the ipad block not counted).
    total: u64,
}

impl Mac<'_> {
    pub(crate) fn update(&mut self, mut data: &[u8]) {
        self.total = self.total.wrapping_add(data.len() as u64);
        if self.pending_len > 0 {
            let take = (BLOCK - self.pending_len).min(data.len());
            self.pending[self.pending_len..self.pending_len + take].copy_from_slice(&data[..take]);
            self.pending_len += take;
            data = &data[take..];
            if self.pending_len < BLOCK {
                return;
            }
            compress256(&mut self.state, &[self.pending]);
            self.pending_len = 0;
        }
        let (blocks, rest) = data.as_chunks::<BLOCK>();
        if !blocks.is_empty() {
            compress256(&mut self.state, blocks);
        }
        self.pending[..rest.len()].copy_from_slice(rest);
        self.pending_len = rest.len();
    }

    pub(crate) fn finalize(mut self) -> [u8; 32] {
        // Inner hash: pad with 0x80, zeros, and the bit length of
        // ipad-block ‖ message.
        let bits = (self.total.wrapping_add(BLOCK as u64)).wrapping_mul(8);
        let mut tail = [[0u8; BLOCK]; 2];
        let n = self.pending_len;
        tail[0][..n].copy_from_slice(&self.pending[..n]);
        tail[0][n] = 0x80;
        let blocks = if n < BLOCK - 8 { 1 } else { 2 };
        tail[blocks - 1][BLOCK - 8..].copy_from_slice(&bits.to_be_bytes());
        compress256(&mut self.state, &tail[..blocks]);

        // Outer hash over opad-block ‖ inner digest: one block.
        let mut block = [0u8; BLOCK];
        for (chunk, word) in block.chunks_exact_mut(4).zip(self.state) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        block[32] = 0x80;
        block[BLOCK - 8..].copy_from_slice(&(((BLOCK + 32) * 8) as u64).to_be_bytes());
        let mut outer = self.key.outer;
        compress256(&mut outer, &[block]);
        let mut tag = [0u8; 32];
        for (chunk, word) in tag.chunks_exact_mut(4).zip(outer) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        tag
    }

    /// Compares with `tag` in constant time: every byte is compared, the
    /// differences are OR-ed together, and only the total is inspected,
    /// behind an optimisation barrier.
    pub(crate) fn verify(self, tag: &[u8]) -> bool {
        let expected = self.finalize();
        if tag.len() != expected.len() {
            return false;
        }
        let diff = expected
            .iter()
            .zip(tag)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, KeyInit, Mac as _};
    use sha2::Sha256;

    fn reference(key: &[u8], msg: &[u8]) -> [u8; 32] {
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
        m.update(msg);
        m.finalize().into_bytes().into()
    }

    #[test]
    fn rfc4231_case_2() {
        let key = MacKey::new(b"Jefe");
        let mut m = key.start();
        m.update(b"what do ya want for nothing?");
        let want = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        let got: String = m.finalize().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn matches_the_hmac_crate_for_every_length_and_split() {
        let key: Vec<u8> = (0..16).map(|i| i * 17).collect();
        let msg: Vec<u8> = (0..300u32).map(|i| (i * 31 % 251) as u8).collect();
        let k = MacKey::new(&key);
        for len in 0..msg.len() {
            let want = reference(&key, &msg[..len]);
            let mut whole = k.start();
            whole.update(&msg[..len]);
            assert_eq!(whole.finalize(), want, "len {len}");
            for split in [1, 25, 63, 64, 65] {
                let split = split.min(len);
                let mut parts = k.start();
                parts.update(&msg[..split]);
                parts.update(&msg[split..len]);
                assert_eq!(parts.finalize(), want, "len {len} split {split}");
            }
        }
    }

    #[test]
    fn verify_rejects_any_other_tag() {
        let k = MacKey::new(&[1; 16]);
        let mut m = k.start();
        m.update(b"x");
        let tag = m.finalize();
        let mut good = k.start();
        good.update(b"x");
        assert!(good.verify(&tag));
        for i in 0..32 {
            let mut bad = tag;
            bad[i] ^= 0x80;
            let mut m = k.start();
            m.update(b"x");
            assert!(!m.verify(&bad));
        }
        let mut m = k.start();
        m.update(b"x");
        assert!(!m.verify(&tag[..31]));
    }
}
