//! HMAC-SHA256 under Fernet's signing key: the RustCrypto `hmac` crate,
//! driven at the block level.
//!
//! The key's pad states are computed once per `Fernet` ([`MacKey`]); a tag
//! starts from a copy of them, compresses whole 64-byte blocks straight
//! from the caller's buffer and keeps at most one partial block. Driving
//! `HmacCore` directly rather than the `Hmac` wrapper saves a block-buffer
//! copy and two output copies per tag, which is a measurable share of a
//! small token.

use hmac::KeyInit as _;
use hmac::block_api::HmacCore;
use hmac::digest::Output;
use hmac::digest::block_api::{Buffer, FixedOutputCore as _, UpdateCore as _};
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

type Core = HmacCore<Sha256>;

/// Length of a tag.
pub(crate) const TAG_LEN: usize = 32;

/// A signing key ready for HMAC: the states after its pad blocks. Both
/// states wipe themselves on drop.
#[derive(Clone)]
pub(crate) struct MacKey(Core);

impl MacKey {
    /// Keys of any length, as RFC 2104 says (longer than a block: hashed
    /// first). Fernet's is 16 bytes.
    pub(crate) fn new(key: &[u8]) -> Self {
        #[allow(clippy::expect_used)]
        let core = Core::new_from_slice(key).expect("HMAC takes keys of any length"); // ok: `new_from_slice` never fails for HMAC
        Self(core)
    }

    /// Starts a tag.
    pub(crate) fn start(&self) -> Mac {
        Mac {
            core: self.0.clone(),
            pending: Buffer::<Core>::default(),
        }
    }

    /// Whether `tag` is the tag of `msg`, compared in constant time. The
    /// state is worked on where it is cloned: no `Mac` is built and moved.
    #[inline]
    pub(crate) fn verify(&self, msg: &[u8], tag: &[u8]) -> bool {
        let mut core = self.0.clone();
        let mut pending = Buffer::<Core>::default();
        pending.digest_blocks(msg, |blocks| core.update_blocks(blocks));
        let mut expected = Output::<Core>::default();
        core.finalize_fixed_core(&mut pending, &mut expected);
        ct_eq_tags(&expected.into(), tag)
    }
}

/// A tag in progress.
pub(crate) struct Mac {
    core: Core,
    pending: Buffer<Core>,
}

impl Mac {
    pub(crate) fn update(&mut self, data: &[u8]) {
        let core = &mut self.core;
        self.pending
            .digest_blocks(data, |blocks| core.update_blocks(blocks));
    }

    pub(crate) fn finalize(mut self) -> [u8; TAG_LEN] {
        let mut out = Output::<Core>::default();
        self.core.finalize_fixed_core(&mut self.pending, &mut out);
        out.into()
    }
}

/// Constant-time equality of a computed tag and a presented one (`subtle`).
/// The tags are compared as four 64-bit words whose differences are ORed
/// together, and `subtle` compares that one word with zero: it puts an
/// optimisation barrier behind every element it compares, and one costs
/// less than thirty-two. No branch depends on the tags' contents.
fn ct_eq_tags(expected: &[u8; TAG_LEN], tag: &[u8]) -> bool {
    let Ok(tag) = <&[u8; TAG_LEN]>::try_from(tag) else {
        return false;
    };
    let (expected, _) = expected.as_chunks::<8>();
    let (tag, _) = tag.as_chunks::<8>();
    let diff = expected.iter().zip(tag).fold(0u64, |acc, (e, t)| {
        acc | (u64::from_ne_bytes(*e) ^ u64::from_ne_bytes(*t))
    });
    diff.ct_eq(&0).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn tag(key: &[u8], parts: &[&[u8]]) -> [u8; TAG_LEN] {
        let mut m = MacKey::new(key).start();
        for p in parts {
            m.update(p);
        }
        m.finalize()
    }

    #[test]
    fn rfc4231_vectors_including_a_key_longer_than_a_block() {
        let want = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        assert_eq!(hex(&tag(b"Jefe", &[b"what do ya want for nothing?"])), want);
        assert_eq!(
            hex(&tag(b"Jefe", &[b"what do ya ", b"want for nothing?"])),
            want
        );
        // Case 6: a 131-byte key is hashed, not truncated.
        let long = [0xaau8; 131];
        let msg = b"Test Using Larger Than Block-Size Key - Hash Key First";
        assert_eq!(
            hex(&tag(&long, &[msg])),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
        assert_ne!(tag(&long[..64], &[msg]), tag(&long, &[msg]));
    }

    #[test]
    fn every_split_gives_the_same_tag() {
        let key = [7u8; 16];
        let msg: Vec<u8> = (0..300u32).map(|i| (i * 31 % 251) as u8).collect();
        for len in [0, 1, 55, 56, 63, 64, 65, 73, 128, 300] {
            let whole = tag(&key, &[&msg[..len]]);
            for split in 0..=len {
                assert_eq!(
                    tag(&key, &[&msg[..split], &msg[split..len]]),
                    whole,
                    "len {len} split {split}"
                );
            }
        }
    }

    #[test]
    fn verify_rejects_any_other_tag() {
        let k = MacKey::new(&[1; 16]);
        let good = tag(&[1; 16], &[b"x"]);
        assert!(k.verify(b"x", &good));
        assert!(!k.verify(b"y", &good));
        for i in 0..TAG_LEN {
            for bit in 0..8 {
                let mut bad = good;
                bad[i] ^= 1 << bit;
                assert!(!k.verify(b"x", &bad), "byte {i} bit {bit}");
            }
        }
        assert!(!k.verify(b"x", &good[..31]));
        assert!(!k.verify(b"x", &[good.as_slice(), &[0]].concat()));
        assert!(!k.verify(b"x", &[]));
    }
}
