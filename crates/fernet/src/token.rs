//! The token format and the single-key codec.
//!
//! ```text
//! token = base64url( 0x80 ‖ timestamp (u64 BE) ‖ IV (16) ‖ AES-128-CBC(PKCS#7(msg)) ‖ HMAC-SHA256 (32) )
//! ```
//! The HMAC covers everything before it, under the signing key.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aes::cipher::consts::U16;
use aes::cipher::generic_array::GenericArray;
use aes::cipher::inout::{InOut, InOutBuf};
use aes::cipher::{
    BlockBackend, BlockClosure, BlockDecryptMut, BlockEncrypt, BlockEncryptMut, BlockSizeUser,
    InnerIvInit, KeyInit,
};
use aes::{Aes128Dec, Aes128Enc};
use zeroize::{Zeroize as _, Zeroizing};

use crate::b64;
use crate::error::InvalidToken;
use crate::key::Key;
use crate::mac::{MacKey, TAG_LEN};
use crate::os::secure::Locked;

type Block = GenericArray<u8, U16>;

/// The version byte of the Fernet spec.
pub(crate) const VERSION: u8 = 0x80;
const BLOCK: usize = 16;
/// Version, timestamp and IV.
const HEADER_LEN: usize = 1 + 8 + BLOCK;
/// Smallest token: header, one ciphertext block, tag.
const MIN_RAW_LEN: usize = HEADER_LEN + BLOCK + TAG_LEN;
/// Python's `_MAX_CLOCK_SKEW`: with a TTL, tokens up to this far in the
/// future are accepted.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(60);

/// Stack buffer for streaming encryption: ciphertext is produced, MACed and
/// base64-encoded a few KiB at a time, so a large message is read once and
/// the only heap allocation is the output.
const CHUNK: usize = 4 * 1024;
/// Messages up to these sizes are encrypted through smaller buffers.
const TINY_MSG: usize = 64;
const SMALL_MSG: usize = 256;
/// Tokens of messages up to [`TINY_MSG`] and [`SMALL_MSG`] bytes (less
/// one: the padding takes at least one) are decrypted in stack buffers that
/// hold any decoding of that many characters.
const TINY_TEXT: usize = b64::encoded_len(HEADER_LEN + TINY_MSG + TAG_LEN);
const SMALL_TEXT: usize = b64::encoded_len(HEADER_LEN + SMALL_MSG + TAG_LEN);

/// Seconds since the Unix epoch (0 if the clock is before it).
///
/// Fernet timestamps are whole seconds, so on Linux the coarse real-time
/// clock serves: it is the same clock, updated once per scheduler tick (at
/// most a few milliseconds behind), and reading it costs a quarter of a
/// precise read.
pub(crate) fn now() -> u64 {
    crate::os::coarse_unix_seconds().unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    })
}

/// Encrypts and decrypts tokens under one key.
///
/// Holds the key already expanded (AES round keys, HMAC inner and outer
/// states), so a token costs no key setup. That state lives in locked memory
/// (see [`secure_memory_status`](crate::secure_memory_status)) and is wiped
/// on drop. Cloning copies it into a new locked slot.
///
/// ```
/// use std::time::Duration;
/// use secrets_manager_fernet::{Fernet, Key};
///
/// let f = Fernet::new(&Key::generate());
/// let token = f.encrypt(b"message");
/// assert_eq!(&*f.decrypt(&token)?, b"message");
/// assert_eq!(&*f.decrypt_with_ttl(&token, Duration::from_secs(60))?, b"message");
///
/// // Fixed clocks make time rules testable.
/// let token = f.encrypt_at_time(b"message", 499_162_800);
/// assert_eq!(f.extract_timestamp(&token)?, 499_162_800);
/// let ttl = Some(Duration::from_secs(60));
/// assert!(f.decrypt_at_time(&token, ttl, 499_162_860).is_ok());
/// assert!(f.decrypt_at_time(&token, ttl, 499_162_861).is_err());
/// # Ok::<(), secrets_manager_fernet::InvalidToken>(())
/// ```
pub struct Fernet {
    state: Locked<State>,
}

/// A key's expanded form.
#[derive(Clone)]
struct State {
    mac: MacKey,
    enc: Aes128Enc,
    dec: Aes128Dec,
}

impl Clone for Fernet {
    fn clone(&self) -> Self {
        let clone = self.clone_state();
        crate::os::wipe_stack();
        clone
    }
}

impl fmt::Debug for Fernet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Fernet { key: [REDACTED] }")
    }
}

impl Fernet {
    /// Expands `key` for use. The `Fernet` keeps no copy of the raw key.
    #[must_use]
    pub fn new(key: &Key) -> Self {
        let fernet = Self::expand(key);
        // The key schedules were computed on the stack, then moved.
        crate::os::wipe_stack();
        fernet
    }

    #[inline(never)]
    fn expand(key: &Key) -> Self {
        let (signing, encryption) = key.halves();
        Self {
            state: Locked::new(State {
                mac: MacKey::new(signing),
                enc: Aes128Enc::new(GenericArray::from_slice(encryption)),
                dec: Aes128Dec::new(GenericArray::from_slice(encryption)),
            }),
        }
    }

    #[inline(never)]
    fn clone_state(&self) -> Self {
        Self {
            state: self.state.clone(),
        }
    }

    /// Encrypts `msg` with the current time and a random IV.
    ///
    /// # Panics
    ///
    /// Only if the operating system cannot supply random bytes.
    #[must_use]
    pub fn encrypt(&self, msg: &[u8]) -> String {
        self.encrypt_at_time(msg, now())
    }

    /// Encrypts `msg` stamped with `timestamp` (Unix seconds) and a random IV.
    ///
    /// # Panics
    ///
    /// Only if the operating system cannot supply random bytes.
    #[must_use]
    pub fn encrypt_at_time(&self, msg: &[u8], timestamp: u64) -> String {
        self.encrypt_from_parts(msg, timestamp, &crate::os::iv())
    }

    /// Encrypts with a caller-chosen IV, for known-answer tests only.
    ///
    /// Reusing or predicting IVs breaks CBC's security: never use this
    /// outside tests. Requires the `hazmat` feature.
    #[cfg(feature = "hazmat")]
    #[must_use]
    pub fn encrypt_with_iv(&self, msg: &[u8], timestamp: u64, iv: [u8; 16]) -> String {
        self.encrypt_from_parts(msg, timestamp, &iv)
    }

    pub(crate) fn encrypt_from_parts(&self, msg: &[u8], timestamp: u64, iv: &[u8; 16]) -> String {
        let mut token = String::new();
        // One backend call for the whole token: the AES backend's per-call
        // setup (broadcasting round keys on VAES) is paid once.
        self.state.enc.encrypt_with_backend(EncryptJob {
            mac: &self.state.mac,
            msg,
            timestamp,
            iv,
            token: &mut token,
        });
        token
    }

    /// Decrypts a token of any age.
    ///
    /// # Errors
    ///
    /// [`InvalidToken`] for any malformed, forged or corrupted token, or one
    /// made under another key.
    pub fn decrypt(&self, token: impl AsRef<[u8]>) -> Result<Zeroizing<Vec<u8>>, InvalidToken> {
        self.decrypt_at_time(token, None, 0)
    }

    /// Decrypts a token no older than `ttl` (whole seconds) and no more than
    /// 60 s in the future.
    ///
    /// # Errors
    ///
    /// As [`decrypt`](Self::decrypt), and when the timestamp is out of range.
    pub fn decrypt_with_ttl(
        &self,
        token: impl AsRef<[u8]>,
        ttl: Duration,
    ) -> Result<Zeroizing<Vec<u8>>, InvalidToken> {
        self.decrypt_at_time(token, Some(ttl), now())
    }

    /// Decrypts as if the time were `now` (Unix seconds). With a `ttl`, the
    /// token must satisfy `timestamp + ttl >= now` and
    /// `timestamp <= now + 60`, exactly Python's rule; without one, `now`
    /// is not used.
    ///
    /// # Errors
    ///
    /// As [`decrypt_with_ttl`](Self::decrypt_with_ttl).
    pub fn decrypt_at_time(
        &self,
        token: impl AsRef<[u8]>,
        ttl: Option<Duration>,
        now: u64,
    ) -> Result<Zeroizing<Vec<u8>>, InvalidToken> {
        let token = token.as_ref();
        if token.len() <= TINY_TEXT {
            return self.decrypt_on_stack::<{ TINY_TEXT / 4 * 3 }>(token, ttl, now);
        }
        if token.len() <= SMALL_TEXT {
            return self.decrypt_on_stack::<{ SMALL_TEXT / 4 * 3 }>(token, ttl, now);
        }
        let token = UnverifiedToken::parse(token)?;
        token.check_ttl(ttl, now)?;
        token
            .verify(self)
            .map_err(|_| InvalidToken)?
            .decrypt()
            .map_err(|_| InvalidToken)
    }

    /// [`decrypt_at_time`](Self::decrypt_at_time) for a token of at most
    /// `N / 3 * 4` characters: decoded and decrypted in an `N`-byte stack
    /// buffer, so the only allocation is the message itself, at its exact
    /// length. The same checks in the same order as the general path:
    /// structure, time, HMAC, then decryption.
    #[inline]
    fn decrypt_on_stack<const N: usize>(
        &self,
        token: &[u8],
        ttl: Option<Duration>,
        now: u64,
    ) -> Result<Zeroizing<Vec<u8>>, InvalidToken> {
        if !plausible_length(token) {
            return Err(InvalidToken);
        }
        let mut buf = [0u8; N];
        let len = b64::decode_slice(token, &mut buf).map_err(|_| InvalidToken)?;
        let raw = &mut buf[..len];
        if !well_formed(raw) || !within_ttl(timestamp_of(raw), ttl, now) || !self.tag_matches(raw) {
            return Err(InvalidToken);
        }
        let end = raw.len() - TAG_LEN;
        let (header, body) = raw[..end].split_at_mut(HEADER_LEN);
        let msg = cbc_decrypt(&self.state.dec, &header[9..], body)
            .map(|len| Zeroizing::new(body[..len].to_vec()));
        body.zeroize();
        msg.ok_or(InvalidToken)
    }

    /// The token's timestamp (Unix seconds), after verifying its HMAC.
    ///
    /// # Errors
    ///
    /// [`InvalidToken`] as for [`decrypt`](Self::decrypt); no time check.
    pub fn extract_timestamp(&self, token: impl AsRef<[u8]>) -> Result<u64, InvalidToken> {
        let token = UnverifiedToken::parse(token)?;
        Ok(token.verify(self).map_err(|_| InvalidToken)?.timestamp())
    }

    fn tag_matches(&self, raw: &[u8]) -> bool {
        let (signed, tag) = raw.split_at(raw.len() - TAG_LEN);
        self.state.mac.verify(signed, tag)
    }
}

/// A decoded token whose structure is checked but whose HMAC is not.
///
/// For key stores that choose which keys to try, and in what order (for
/// example by the timestamp): decode once, then [`verify`](Self::verify)
/// against candidate keys. Nothing is decrypted until a key verifies.
///
/// ```
/// use secrets_manager_fernet::{Fernet, InvalidToken, Key, UnverifiedToken};
///
/// let (old, new) = (Fernet::new(&Key::generate()), Fernet::new(&Key::generate()));
/// let token = old.encrypt_at_time(b"hi", 1_700_000_000);
///
/// let mut parsed = UnverifiedToken::parse(&token)?;
/// assert_eq!(parsed.timestamp(), 1_700_000_000); // unauthenticated!
/// for f in [&new, &old] {
///     match parsed.verify(f) {
///         Ok(verified) => {
///             assert_eq!(&*verified.decrypt().map_err(|_| InvalidToken)?, b"hi");
///             break;
///         }
///         Err(unverified) => parsed = unverified,
///     }
/// }
/// # Ok::<(), secrets_manager_fernet::InvalidToken>(())
/// ```
pub struct UnverifiedToken {
    raw: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for UnverifiedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnverifiedToken")
            .field("timestamp", &self.timestamp())
            .field("len", &self.raw.len())
            .finish_non_exhaustive()
    }
}

impl UnverifiedToken {
    /// Decodes a token and checks its encoding, version byte and length.
    ///
    /// Allocates at most three quarters of the input's length, once.
    ///
    /// # Errors
    ///
    /// [`InvalidToken`] unless the token is canonical padded URL-safe base64
    /// of a version-0x80 token with a whole number of cipher blocks.
    #[inline]
    pub fn parse(token: impl AsRef<[u8]>) -> Result<Self, InvalidToken> {
        let token = token.as_ref();
        if !plausible_length(token) {
            return Err(InvalidToken);
        }
        // Only public bytes so far; the buffer is zeroized once it may hold
        // plaintext (decryption happens in place).
        let raw = Zeroizing::new(b64::decode(token).ok_or(InvalidToken)?);
        if !well_formed(&raw) {
            return Err(InvalidToken);
        }
        Ok(Self { raw })
    }

    /// The timestamp an encoded token claims, read from its first twelve
    /// characters without decoding the rest or checking anything else:
    /// `None` unless they are base64 of the version byte and a timestamp.
    /// Not authenticated: use it only to choose which key to try first, for
    /// example with [`Fernet::decrypt_at_time`], whose success authenticates
    /// it.
    ///
    /// ```
    /// use secrets_manager_fernet::{Fernet, Key, UnverifiedToken};
    ///
    /// let token = Fernet::new(&Key::generate()).encrypt_at_time(b"hi", 1_700_000_000);
    /// assert_eq!(UnverifiedToken::peek_timestamp(&token), Some(1_700_000_000));
    /// assert_eq!(UnverifiedToken::peek_timestamp("not a token"), None);
    /// ```
    #[must_use]
    #[inline]
    pub fn peek_timestamp(token: impl AsRef<[u8]>) -> Option<u64> {
        // 12 characters: the version byte and the 8-byte timestamp.
        let (version, timestamp) = b64::decode_head(token.as_ref().first_chunk::<12>()?)?;
        (version == VERSION).then_some(timestamp)
    }

    /// The timestamp the token claims (Unix seconds). Not authenticated
    /// until [`verify`](Self::verify) succeeds: use it only to order work.
    #[must_use]
    #[inline]
    pub fn timestamp(&self) -> u64 {
        timestamp_of(&self.raw)
    }

    /// Python's time rule. With a `ttl`: rejects a token older than `ttl`
    /// whole seconds or more than 60 s in the future, relative to `now`.
    /// Without one: accepts any time. Arithmetic saturates, so no timestamp
    /// or TTL overflows.
    ///
    /// # Errors
    ///
    /// [`InvalidToken`] when the timestamp is out of range.
    #[inline]
    pub fn check_ttl(&self, ttl: Option<Duration>, now: u64) -> Result<(), InvalidToken> {
        if within_ttl(self.timestamp(), ttl, now) {
            Ok(())
        } else {
            Err(InvalidToken)
        }
    }

    /// Checks the HMAC under `fernet`'s key, in constant time. On failure the
    /// token comes back, to try the next key.
    ///
    /// # Errors
    ///
    /// The token itself, unchanged, when the tag does not verify.
    #[inline]
    pub fn verify(self, fernet: &Fernet) -> Result<VerifiedToken<'_>, Self> {
        if fernet.tag_matches(&self.raw) {
            Ok(VerifiedToken {
                raw: self.raw,
                fernet,
            })
        } else {
            Err(self)
        }
    }
}

/// A token whose HMAC verified under a key; ready to decrypt.
pub struct VerifiedToken<'f> {
    raw: Zeroizing<Vec<u8>>,
    fernet: &'f Fernet,
}

impl fmt::Debug for VerifiedToken<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedToken")
            .field("timestamp", &self.timestamp())
            .finish_non_exhaustive()
    }
}

impl VerifiedToken<'_> {
    /// The authenticated timestamp (Unix seconds).
    #[must_use]
    #[inline]
    pub fn timestamp(&self) -> u64 {
        timestamp_of(&self.raw)
    }

    /// Decrypts in place and returns the message, reusing the decoded
    /// token's buffer (no second allocation).
    ///
    /// # Errors
    ///
    /// If the padding is malformed, the token comes back unchanged, so the
    /// next key can be tried, as Python's `MultiFernet` does. (A bad padding
    /// under a valid HMAC takes a key holder: a malicious one, or two keys
    /// that share a signing half.)
    #[inline]
    pub fn decrypt(self) -> Result<Zeroizing<Vec<u8>>, UnverifiedToken> {
        let mut raw = self.raw;
        let end = raw.len() - TAG_LEN;
        let iv = Block::clone_from_slice(&raw[9..HEADER_LEN]);
        let Some(len) = cbc_decrypt(&self.fernet.state.dec, &iv, &mut raw[HEADER_LEN..end]) else {
            // Restore the ciphertext: CBC encryption is the exact inverse
            // (rare path: only reachable with a valid HMAC).
            let (blocks, _) = InOutBuf::from(&mut raw[HEADER_LEN..end]).into_chunks::<U16>();
            cbc::Encryptor::<&Aes128Enc>::inner_iv_init(&self.fernet.state.enc, &iv)
                .encrypt_blocks_inout_mut(blocks);
            return Err(UnverifiedToken { raw });
        };
        raw.copy_within(HEADER_LEN..HEADER_LEN + len, 0);
        raw.truncate(len);
        Ok(raw)
    }
}

/// The whole of encryption, run inside one AES backend call.
struct EncryptJob<'a> {
    mac: &'a MacKey,
    msg: &'a [u8],
    timestamp: u64,
    iv: &'a [u8; 16],
    token: &'a mut String,
}

impl BlockSizeUser for EncryptJob<'_> {
    type BlockSize = U16;
}

impl BlockClosure for EncryptJob<'_> {
    fn call<B: BlockBackend<BlockSize = U16>>(self, aes: &mut B) {
        // Small messages get a small scratch buffer: zeroing a large one
        // would cost more than the rest of a small token.
        if self.msg.len() <= TINY_MSG {
            self.run::<{ TINY_MSG + 2 * BLOCK + HEADER_LEN + TAG_LEN }, B>(aes);
        } else if self.msg.len() <= SMALL_MSG {
            self.run::<{ SMALL_MSG + 2 * BLOCK + HEADER_LEN + TAG_LEN }, B>(aes);
        } else {
            self.run::<{ CHUNK + 2 * BLOCK + TAG_LEN }, B>(aes);
        }
    }
}

impl EncryptJob<'_> {
    /// Streams the token through an `N`-byte stack buffer: ciphertext is
    /// written there, MACed, and base64-encoded straight into the output, so
    /// the message is read once and the output is the only allocation.
    /// Only public bytes stay in the buffer: header, ciphertext, tag. A
    /// token that fits the buffer is encoded in one go at the end.
    fn run<const N: usize, B: BlockBackend<BlockSize = U16>>(self, aes: &mut B) {
        // Created at the first flush, for tokens larger than the buffer.
        let mut out: Option<b64::Output> = None;
        let mut mac = self.mac.start();
        let mut buf = [0u8; N];
        buf[0] = VERSION;
        buf[1..9].copy_from_slice(&self.timestamp.to_be_bytes());
        buf[9..HEADER_LEN].copy_from_slice(self.iv);
        mac.update(&buf[..HEADER_LEN]);
        // `buf[..fill]` holds raw token bytes not yet encoded; after each
        // flush at most two remain (the encoding works in 3-byte groups).
        let mut fill = HEADER_LEN;
        let mut prev = Block::from(*self.iv);

        // CBC: each block is XORed with the previous ciphertext block, then
        // encrypted. Room is kept for the final block and the tag.
        let (mut blocks, tail) = self.msg.as_chunks::<BLOCK>();
        let limit = N - BLOCK - TAG_LEN;
        while !blocks.is_empty() {
            let take = ((limit - fill) / BLOCK).min(blocks.len());
            let (now, rest) = blocks.split_at(take);
            let (out_blocks, _) = buf[fill..fill + take * BLOCK].as_chunks_mut::<BLOCK>();
            for (p, c) in now.iter().zip(out_blocks) {
                prev = cbc_encrypt_block(aes, p, &prev);
                c.copy_from_slice(&prev);
            }
            let end = fill + take * BLOCK;
            mac.update(&buf[fill..end]);
            blocks = rest;
            fill = if blocks.is_empty() {
                end
            } else {
                let ct_len = (self.msg.len() / BLOCK + 1) * BLOCK;
                out.get_or_insert_with(|| b64::Output::with_len(HEADER_LEN + ct_len + TAG_LEN))
                    .push_groups(&mut buf, end)
            };
        }

        // Last block: the remaining bytes and PKCS#7 padding (1 to 16 bytes).
        // 1 to 16: `tail` is shorter than a block.
        #[allow(clippy::cast_possible_truncation)]
        let mut last = [(BLOCK - tail.len()) as u8; BLOCK];
        last[..tail.len()].copy_from_slice(tail);
        let c = cbc_encrypt_block(aes, &last, &prev);
        // It held message bytes. (A slice is wiped in one go; a
        // `Zeroizing` array byte by byte.)
        last[..].zeroize();
        buf[fill..fill + BLOCK].copy_from_slice(&c);
        mac.update(&c);
        fill += BLOCK;
        buf[fill..fill + TAG_LEN].copy_from_slice(&mac.finalize());
        fill += TAG_LEN;
        *self.token = match out {
            Some(mut out) => {
                out.push_last(&buf[..fill]);
                out.into_string()
            }
            // Nothing written past `fill`: the rest of the buffer is zeros.
            None => b64::encode_zero_extended(&buf, fill),
        };
    }
}

/// The cheap structural check first: every valid token is a multiple of
/// four characters and at least one block long.
#[inline]
fn plausible_length(text: &[u8]) -> bool {
    text.len().is_multiple_of(4) && text.len() >= b64::encoded_len(MIN_RAW_LEN)
}

/// Whether decoded bytes have a token's structure: the version byte, and
/// a header, whole cipher blocks (at least one) and a tag.
#[inline]
fn well_formed(raw: &[u8]) -> bool {
    raw.len() >= MIN_RAW_LEN
        && raw[0] == VERSION
        && (raw.len() - HEADER_LEN - TAG_LEN).is_multiple_of(BLOCK)
}

/// Python's time rule (see [`UnverifiedToken::check_ttl`]).
#[inline]
fn within_ttl(ts: u64, ttl: Option<Duration>, now: u64) -> bool {
    ttl.is_none_or(|ttl| {
        ts.saturating_add(ttl.as_secs()) >= now
            && now.saturating_add(MAX_CLOCK_SKEW.as_secs()) >= ts
    })
}

/// CBC-decrypts whole blocks in place, all in parallel, and returns the
/// message's length, or `None` if the PKCS#7 padding is malformed (the
/// body then holds the bad plaintext: the caller wipes or restores it).
#[inline]
fn cbc_decrypt(dec: &Aes128Dec, iv: &[u8], body: &mut [u8]) -> Option<usize> {
    let (blocks, _) = InOutBuf::from(&mut *body).into_chunks::<U16>();
    cbc::Decryptor::<&Aes128Dec>::inner_iv_init(dec, Block::from_slice(iv))
        .decrypt_blocks_inout_mut(blocks);
    let pad = padding_len(&body[body.len() - BLOCK..])?;
    Some(body.len() - pad)
}

/// The timestamp field of a decoded token (checked to be long enough).
fn timestamp_of(raw: &[u8]) -> u64 {
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&raw[1..9]);
    u64::from_be_bytes(ts)
}

/// `E(p ⊕ prev)`.
#[inline(always)]
fn cbc_encrypt_block<B: BlockBackend<BlockSize = U16>>(
    aes: &mut B,
    p: &[u8; BLOCK],
    prev: &Block,
) -> Block {
    let mut block = Block::from(*p);
    for (b, x) in block.iter_mut().zip(prev) {
        *b ^= x;
    }
    aes.proc_block(InOut::from(&mut block));
    block
}

/// The PKCS#7 padding length of the last plaintext block, or `None` if the
/// padding is malformed. Word-wide, without a loop. (Its timing is no
/// oracle: it runs only on tokens whose HMAC verified, which only a key
/// holder can make.)
fn padding_len(last: &[u8]) -> Option<usize> {
    let mut block = [0u8; BLOCK];
    block.copy_from_slice(last);
    let pad = block[BLOCK - 1];
    // Bytes equal to `pad` become zero; the last `pad` bytes (the low
    // ones, read big-endian) must all be.
    let diff = u128::from_be_bytes(block) ^ u128::from_be_bytes([pad; BLOCK]);
    let n = u32::from(pad).clamp(1, 16);
    let in_pad = u128::MAX >> (128 - 8 * n);
    (pad != 0 && usize::from(pad) <= BLOCK && diff & in_pad == 0).then_some(usize::from(pad))
}

#[cfg(test)]
// Test data generators wrap numbers into bytes on purpose.
#[allow(clippy::cast_possible_truncation)]
mod tests {
    use super::*;

    #[test]
    fn key_state_is_zeroized_on_drop() {
        fn zeroized_on_drop<T: zeroize::ZeroizeOnDrop>() {}
        zeroized_on_drop::<Aes128Enc>();
        zeroized_on_drop::<Aes128Dec>();
        // `HmacCore` carries no marker, but its two SHA-256 states (and the
        // block buffer of a tag in progress) wipe themselves.
        zeroized_on_drop::<sha2::block_api::Sha256VarCore>();
        zeroized_on_drop::<hmac::digest::block_api::Buffer<hmac::block_api::HmacCore<sha2::Sha256>>>(
        );
        zeroized_on_drop::<Key>();
    }

    /// The Fernet spec's `generate.json` case.
    #[test]
    fn spec_generate_vector() {
        let key = Key::from_base64("cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=").unwrap();
        let iv: [u8; 16] = std::array::from_fn(|i| i as u8);
        let token = Fernet::new(&key).encrypt_from_parts(b"hello", 499_162_800, &iv);
        assert_eq!(
            token,
            "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA=="
        );
    }

    /// The token as the spec defines it, from the primitives directly: each
    /// step separately, with a whole-buffer allocation at each.
    fn reference_token(key: &[u8; 32], msg: &[u8], ts: u64, iv: &[u8; 16]) -> String {
        use aes::cipher::KeyIvInit as _;
        use aes::cipher::block_padding::Pkcs7;
        use base64::Engine as _;
        use hmac::Mac as _;
        let ct = cbc::Encryptor::<aes::Aes128>::new(key[16..].into(), iv.into())
            .encrypt_padded_vec_mut::<Pkcs7>(msg);
        let mut raw = vec![VERSION];
        raw.extend_from_slice(&ts.to_be_bytes());
        raw.extend_from_slice(iv);
        raw.extend_from_slice(&ct);
        let mut mac =
            <hmac::Hmac<sha2::Sha256> as hmac::KeyInit>::new_from_slice(&key[..16]).unwrap();
        mac.update(&raw);
        raw.extend_from_slice(&mac.finalize().into_bytes());
        base64::engine::general_purpose::URL_SAFE.encode(raw)
    }

    #[test]
    fn encryption_matches_the_reference_for_every_length() {
        let key_bytes: [u8; 32] = std::array::from_fn(|i| (i * 7 + 3) as u8);
        let f = Fernet::new(&Key::from_bytes(key_bytes));
        let iv: [u8; 16] = std::array::from_fn(|i| (i * 13 + 1) as u8);
        let lengths = (0..=300).chain([
            SMALL_MSG - 1,
            SMALL_MSG,
            SMALL_MSG + 1,
            CHUNK - 1,
            CHUNK,
            CHUNK + 1,
            3 * CHUNK + 17,
            100_000,
        ]);
        for len in lengths {
            let msg: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let ts = 1_700_000_000 + len as u64;
            let token = f.encrypt_from_parts(&msg, ts, &iv);
            assert_eq!(
                token,
                reference_token(&key_bytes, &msg, ts, &iv),
                "len {len}"
            );
            assert_eq!(&*f.decrypt(&token).unwrap(), &msg[..], "len {len}");
        }
    }

    /// The general path: parse, time, HMAC, decrypt (what `MultiFernet`
    /// and key stores run).
    fn general(f: &Fernet, token: &[u8], ttl: Option<Duration>, now: u64) -> Option<Vec<u8>> {
        let t = UnverifiedToken::parse(token).ok()?;
        t.check_ttl(ttl, now).ok()?;
        Some(t.verify(f).ok()?.decrypt().ok()?.to_vec())
    }

    /// Decryption as the spec writes it, from the primitives directly:
    /// strict base64, structure, time, HMAC, then CBC with PKCS#7.
    fn reference_decrypt(
        key: &[u8; 32],
        token: &[u8],
        ttl: Option<Duration>,
        now: u64,
    ) -> Option<Vec<u8>> {
        use aes::cipher::KeyIvInit as _;
        use aes::cipher::block_padding::Pkcs7;
        use base64::Engine as _;
        use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
        use hmac::Mac as _;
        let engine = GeneralPurpose::new(
            &base64::alphabet::URL_SAFE,
            GeneralPurposeConfig::new()
                .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
        );
        let raw = engine.decode(token).ok()?;
        if raw.len() < 25 + 16 + 32 || raw[0] != 0x80 || (raw.len() - 57) % 16 != 0 {
            return None;
        }
        let ts = u64::from_be_bytes(raw[1..9].try_into().unwrap());
        if let Some(ttl) = ttl
            && (ts.saturating_add(ttl.as_secs()) < now || now.saturating_add(60) < ts)
        {
            return None;
        }
        let (signed, tag) = raw.split_at(raw.len() - 32);
        let mut mac =
            <hmac::Hmac<sha2::Sha256> as hmac::KeyInit>::new_from_slice(&key[..16]).unwrap();
        mac.update(signed);
        mac.verify_slice(tag).ok()?;
        cbc::Decryptor::<aes::Aes128>::new(key[16..].into(), raw[9..25].into())
            .decrypt_padded_vec_mut::<Pkcs7>(&signed[25..])
            .ok()
    }

    /// Small tokens take the stack path in `decrypt_at_time`; it must
    /// accept and refuse exactly what the general path does, and what the
    /// reference does, on both sides of each buffer's size and for every
    /// kind of damage.
    #[test]
    fn the_stack_path_agrees_with_the_general_path_and_the_reference() {
        let key: [u8; 32] = std::array::from_fn(|i| i as u8);
        let f = Fernet::new(&Key::from_bytes(key));
        let other = Fernet::new(&Key::from_bytes([9; 32]));
        let ttl = Some(Duration::from_secs(100));
        let now = 1_700_000_000;
        let (mut stack, mut heap) = (0, 0);
        for len in (0..=TINY_MSG + 20).chain(SMALL_MSG - 20..=SMALL_MSG + 20) {
            let msg: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            for ts in [now - 101, now - 100, now + 60, now + 61] {
                let good = f.encrypt_at_time(&msg, ts).into_bytes();
                let mut cases = vec![good.clone(), other.encrypt_at_time(&msg, ts).into_bytes()];
                for at in [
                    0,
                    1,
                    12,
                    40,
                    good.len() / 2,
                    good.len() - 45,
                    good.len() - 3,
                ] {
                    for bit in [1u8, 0x20] {
                        let mut bad = good.clone();
                        bad[at] ^= bit;
                        cases.push(bad);
                    }
                }
                cases.push(good[..good.len() - 4].to_vec());
                cases.push([&good[..], b"AAAA"].concat());
                cases.push(good[..good.len() - 1].to_vec());
                for case in &cases {
                    for ttl in [None, ttl] {
                        let fast = f.decrypt_at_time(case, ttl, now).ok().map(|m| m.to_vec());
                        assert_eq!(fast, general(&f, case, ttl, now), "len {len} ts {ts}");
                        assert_eq!(
                            fast,
                            reference_decrypt(&key, case, ttl, now),
                            "len {len} ts {ts}"
                        );
                        if let Some(m) = fast {
                            assert_eq!(m, msg);
                        }
                    }
                }
                if good.len() <= SMALL_TEXT {
                    stack += 1;
                } else {
                    heap += 1;
                }
            }
        }
        // Both paths really ran, and every message length decrypted.
        assert!(stack > 0 && heap > 0, "stack {stack} heap {heap}");
    }

    /// A valid HMAC over bad padding (only a key holder can make one) is
    /// refused on the stack path as on the general one.
    #[test]
    fn bad_padding_under_a_valid_hmac_is_refused() {
        let key: [u8; 32] = std::array::from_fn(|i| (i * 3) as u8);
        let f = Fernet::new(&Key::from_bytes(key));
        let iv = [5u8; 16];
        for last in [0u8, 17, 0xff] {
            // One block whose "padding" byte is `last`, encrypted raw.
            let mut block = Block::from([last; BLOCK]);
            for (b, x) in block.iter_mut().zip(iv) {
                *b ^= x;
            }
            f.state.enc.encrypt_block(&mut block);
            let mut raw = vec![VERSION];
            raw.extend_from_slice(&7u64.to_be_bytes());
            raw.extend_from_slice(&iv);
            raw.extend_from_slice(&block);
            let mut mac = f.state.mac.start();
            mac.update(&raw);
            raw.extend_from_slice(&mac.finalize());
            let mut token = vec![0u8; b64::encoded_len(raw.len())];
            let n = base64::Engine::encode_slice(
                &base64::engine::general_purpose::URL_SAFE,
                &raw,
                &mut token,
            )
            .unwrap();
            assert_eq!(n, token.len());
            assert!(f.extract_timestamp(&token).is_ok(), "the HMAC verifies");
            assert!(f.decrypt(&token).is_err(), "padding {last}");
            assert!(general(&f, &token, None, 0).is_none());
            assert!(reference_decrypt(&key, &token, None, 0).is_none());
        }
    }

    #[test]
    fn peek_timestamp_agrees_with_parse() {
        let f = Fernet::new(&Key::from_bytes([3; 32]));
        for ts in [0, 1, 499_162_800, 1_700_000_000, u64::MAX] {
            let token = f.encrypt_at_time(b"x", ts);
            assert_eq!(UnverifiedToken::peek_timestamp(&token), Some(ts));
            assert_eq!(UnverifiedToken::parse(&token).unwrap().timestamp(), ts);
            // Only the head is read: a damaged tail still peeks.
            let head = &token[..12];
            assert_eq!(UnverifiedToken::peek_timestamp(head), Some(ts));
            assert_eq!(UnverifiedToken::peek_timestamp(&token[..11]), None);
        }
        // Another version byte, and characters outside the alphabet.
        assert_eq!(UnverifiedToken::peek_timestamp("AAAAAAAAAAAA"), None);
        assert_eq!(UnverifiedToken::peek_timestamp("gAAAAAAA+AAA"), None);
        assert_eq!(UnverifiedToken::peek_timestamp("gAAAAAAAAAA="), None);
    }

    #[test]
    fn padding_is_checked_exactly() {
        let naive = |last: &[u8]| {
            let pad = usize::from(last[BLOCK - 1]);
            ((1..=BLOCK).contains(&pad)
                && last[BLOCK - pad..].iter().all(|&b| usize::from(b) == pad))
            .then_some(pad)
        };
        for pad in 0..=255u8 {
            for fill in [0u8, 1, 2, 15, 16, 17, 0xff] {
                for len in 0..=BLOCK {
                    // `len` trailing bytes of `pad` after bytes of `fill`.
                    let mut last = [fill; BLOCK];
                    last[BLOCK - len..].fill(pad);
                    assert_eq!(padding_len(&last), naive(&last), "{last:?}");
                    // And one stray byte inside the padding.
                    if len > 1 {
                        last[BLOCK - len] ^= 0x40;
                        assert_eq!(padding_len(&last), naive(&last), "{last:?}");
                    }
                }
            }
        }
        assert_eq!(padding_len(&[16; 16]), Some(16));
        assert_eq!(padding_len(&[1; 16]), Some(1));
        assert_eq!(padding_len(&[0; 16]), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn keys_and_expanded_state_live_in_locked_memory() {
        use crate::os::proc_maps::smaps_of;
        let key = Key::generate();
        let f = Fernet::new(&key);
        let clone = f.clone();
        for addr in [key.locked_addr(), f.state.addr(), clone.state.addr()] {
            let (flags, locked_kb) = smaps_of(addr);
            assert!(
                flags.iter().any(|f| f == "lo") && locked_kb > 0,
                "{flags:?}"
            );
            assert!(flags.iter().any(|f| f == "dd"), "{flags:?}");
        }
    }

    #[test]
    fn debug_shows_no_key_material() {
        let f = Fernet::new(&Key::from_bytes([0xab; 32]));
        let shown = format!("{f:?}");
        assert_eq!(shown, "Fernet { key: [REDACTED] }");
        let token = UnverifiedToken::parse(f.encrypt_at_time(b"secret", 7)).unwrap();
        let shown = format!("{token:?}");
        assert!(
            shown.contains("timestamp: 7") && !shown.contains("secret"),
            "{shown}"
        );
    }
}
