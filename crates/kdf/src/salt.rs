//! Salts: raw bytes, the Python package's string normalisation, integrity
//! hashes and the `.env` text form.

use std::fmt;

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::KdfError;

/// Length of the random salts [`Salt::generate`] makes.
const GENERATED_LEN: usize = 16;

/// A salt for key derivation.
///
/// Bytes (`&[u8]`, `&[u8; N]`, `Vec<u8>`) are taken as they are. Strings
/// (`&str`, `String`) are normalised as the Python SecretsManager does:
/// 1. hexadecimal, if the length is even and every character is a hex digit;
/// 2. URL-safe base64 with padding (`+ / - _` all accepted), if every
///    character belongs to the alphabet and the padding is complete;
/// 3. otherwise the string's UTF-8 bytes.
///
/// Python's base64 decoder also skips characters outside the alphabet; such
/// a string is taken here as UTF-8 instead, so a salt is never silently
/// truncated. Salts are not secret, but they are zeroized on drop, compare
/// in constant time (`subtle`), and their `Debug` shows only their length,
/// so they never reach a log.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Salt(Vec<u8>);

impl PartialEq for Salt {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for Salt {}

impl Salt {
    /// Wraps raw bytes.
    #[must_use]
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    /// Normalises a string as the Python package does (see the type's docs).
    #[must_use]
    pub fn from_text(text: &str) -> Self {
        if let Some(bytes) = decode_hex(text) {
            return Self(bytes);
        }
        if let Some(bytes) = decode_lenient_base64(text) {
            return Self(bytes);
        }
        Self(text.as_bytes().to_vec())
    }

    /// A fresh random 16-byte salt from the operating system.
    ///
    /// # Panics
    ///
    /// If the operating system cannot supply random bytes.
    #[must_use]
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; GENERATED_LEN];
        #[allow(clippy::expect_used)]
        getrandom::fill(&mut bytes).expect("the operating system's random number generator failed"); // ok: unrecoverable, documented
        Self(bytes)
    }

    /// The salt bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Number of bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the salt is empty (allowed, as in Python, but weak).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Lower-case hex SHA-256 of the bytes: the Python package's
    /// `salt_hash`.
    #[must_use]
    pub fn sha256_hex(&self) -> String {
        to_hex(&Sha256::digest(&self.0))
    }

    /// Whether `expected_hex` (case-insensitive) is this salt's SHA-256,
    /// compared in constant time.
    #[must_use]
    pub fn matches_hash(&self, expected_hex: &str) -> bool {
        let Ok(expected) = parse_sha256_hex(expected_hex) else {
            return false;
        };
        let actual = Sha256::digest(&self.0);
        actual.as_slice().ct_eq(&expected[..]).into()
    }

    /// URL-safe base64 with padding: how the Python package stores salts.
    ///
    /// Beware: some base64 texts are also valid hex, and a reader that
    /// normalises strings (this crate's [`Salt::from_text`], the Python
    /// package) decodes those as hex, to other bytes. Files use
    /// [`to_text`](Self::to_text).
    #[must_use]
    pub fn to_base64url(&self) -> String {
        base64::engine::general_purpose::URL_SAFE.encode(&self.0)
    }

    /// The text a `.env` file stores: URL-safe base64 with padding, unless
    /// that text is also valid hex (a reader would then decode it as hex, to
    /// other bytes), in which case the salt's own hex. Either way,
    /// [`Salt::from_text`] and the Python package's normalisation give back
    /// exactly these bytes.
    #[must_use]
    pub fn to_text(&self) -> String {
        let b64 = self.to_base64url();
        if decode_hex(&b64).is_some() {
            to_hex(&self.0)
        } else {
            b64
        }
    }
}

/// Parses a SHA-256 hex digest (64 digits, either case).
///
/// # Errors
///
/// [`KdfError::MalformedSaltHash`] for any other text.
pub(crate) fn parse_sha256_hex(text: &str) -> Result<[u8; 32], KdfError> {
    let malformed = || KdfError::MalformedSaltHash {
        len: text.chars().count(),
    };
    if text.len() != 64 {
        return Err(malformed());
    }
    let bytes = decode_hex(text).ok_or_else(malformed)?;
    let mut out = [0u8; 32];
    out.copy_from_slice(&bytes);
    Ok(out)
}

impl Salt {
    /// Checks a salt hash's form without comparing it.
    ///
    /// # Errors
    ///
    /// [`KdfError::MalformedSaltHash`] unless it is 64 hex digits.
    pub fn validate_hash_text(text: &str) -> Result<(), KdfError> {
        parse_sha256_hex(text).map(|_| ())
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    bytes
        .chunks_exact(2)
        .map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
        .collect()
}

/// Base64 as Python's `urlsafe_b64decode` reads it, minus its habit of
/// skipping foreign characters: either alphabet, complete padding, and
/// unused trailing bits ignored.
fn decode_lenient_base64(text: &str) -> Option<Vec<u8>> {
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::RequireCanonical)
            .with_decode_allow_trailing_bits(true),
    );
    if !text.len().is_multiple_of(4) {
        return None;
    }
    // Map the URL-safe characters onto the standard alphabet; any other
    // character fails the decode below.
    let standard: String = text
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    LENIENT.decode(standard).ok()
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

impl fmt::Debug for Salt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Salt([REDACTED; {} bytes])", self.0.len())
    }
}

impl From<&[u8]> for Salt {
    fn from(bytes: &[u8]) -> Self {
        Self(bytes.to_vec())
    }
}

impl<const N: usize> From<&[u8; N]> for Salt {
    fn from(bytes: &[u8; N]) -> Self {
        Self(bytes.to_vec())
    }
}

impl From<Vec<u8>> for Salt {
    fn from(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
}

impl From<&str> for Salt {
    fn from(text: &str) -> Self {
        Self::from_text(text)
    }
}

impl From<String> for Salt {
    fn from(text: String) -> Self {
        Self::from_text(&text)
    }
}

impl From<&String> for Salt {
    fn from(text: &String) -> Self {
        Self::from_text(text)
    }
}

#[cfg(test)]
// Test data generators wrap numbers into bytes on purpose.
#[allow(clippy::cast_possible_truncation)]
mod tests {
    use super::*;

    #[test]
    fn string_normalisation_follows_the_seed() {
        assert_eq!(Salt::from("73616c74").as_bytes(), b"salt");
        assert_eq!(Salt::from("73616C74").as_bytes(), b"salt");
        assert_eq!(Salt::from("c2FsdA==").as_bytes(), b"salt");
        assert_eq!(Salt::from("s1").as_bytes(), b"s1");
        assert_eq!(
            Salt::from("random-salt-value").as_bytes(),
            b"random-salt-value"
        );
        // Both alphabets, as Python's urlsafe decoder accepts.
        assert_eq!(Salt::from("-_-_").as_bytes(), &[0xfb, 0xff, 0xbf]);
        assert_eq!(Salt::from("+/+/").as_bytes(), &[0xfb, 0xff, 0xbf]);
        // Incomplete padding: not base64, so UTF-8.
        assert_eq!(Salt::from("abc").as_bytes(), b"abc");
        // A foreign character: UTF-8, never a silently shortened salt.
        assert_eq!(Salt::from("ab c").as_bytes(), b"ab c");
        // Empty: even-length hex of nothing, as in Python.
        assert!(Salt::from("").is_empty());
        // Non-canonical trailing bits are accepted, as Python does.
        assert_eq!(Salt::from("AB==").as_bytes(), &[0x00]);
    }

    #[test]
    fn equality_is_by_bytes() {
        assert_eq!(Salt::from(b"salt"), Salt::from("c2FsdA=="));
        assert_ne!(Salt::from(b"salt"), Salt::from(b"salu"));
        assert_ne!(Salt::from(b"salt"), Salt::from(b"sal"));
        assert_eq!(Salt::from(b""), Salt::from(""));
    }

    #[test]
    fn bytes_are_taken_as_they_are() {
        assert_eq!(Salt::from(b"73616c74").as_bytes(), b"73616c74");
        assert_eq!(Salt::from(&b"c2FsdA=="[..]).as_bytes(), b"c2FsdA==");
        assert_eq!(Salt::from(vec![1, 2, 3]).as_bytes(), &[1, 2, 3]);
    }

    #[test]
    fn hashes_are_hex_sha256_compared_case_insensitively() {
        let salt = Salt::from(b"my-salt");
        let hash = salt.sha256_hex();
        assert_eq!(hash.len(), 64);
        assert!(
            hash.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert!(salt.matches_hash(&hash));
        assert!(salt.matches_hash(&hash.to_uppercase()));
        assert!(!Salt::from(b"other").matches_hash(&hash));
        // Any single differing bit, in any byte, is a mismatch.
        let digest = Sha256::digest(b"my-salt");
        for i in 0..32 {
            let mut other = digest;
            other[i] ^= 1;
            assert!(!salt.matches_hash(&to_hex(&other)), "byte {i}");
        }
        assert!(!salt.matches_hash(&hash[..63]));
        assert!(!salt.matches_hash("not hex"));
        assert_eq!(
            Salt::validate_hash_text("xyz"),
            Err(KdfError::MalformedSaltHash { len: 3 })
        );
    }

    #[test]
    fn debug_shows_only_the_length() {
        let shown = format!("{:?}", Salt::from(b"very-secret-salt"));
        assert_eq!(shown, "Salt([REDACTED; 16 bytes])");
    }

    #[test]
    fn base64url_round_trips_through_normalisation() {
        for len in 0..40 {
            let salt = Salt::from((0..len).map(|i| (i * 37 + 11) as u8).collect::<Vec<u8>>());
            let text = salt.to_base64url();
            // Hex-looking encodings decode as hex, as in Python; all others
            // come back as the same bytes.
            if decode_hex(&text).is_none() {
                assert_eq!(Salt::from(text.as_str()), salt, "len {len}");
            }
        }
        assert_eq!(Salt::generate().len(), 16);
        assert_ne!(Salt::generate(), Salt::generate());
    }

    #[test]
    fn file_text_reads_back_even_when_base64_looks_like_hex() {
        // URL-safe base64 of these bytes is "1234abcd", which is hex.
        let tricky = Salt::from(vec![0xd7, 0x6d, 0xf8, 0x69, 0xb7, 0x1d]);
        assert_eq!(tricky.to_base64url(), "1234abcd");
        assert_ne!(Salt::from(tricky.to_base64url().as_str()), tricky);
        assert_eq!(tricky.to_text(), "d76df869b71d");
        assert_eq!(Salt::from(tricky.to_text().as_str()), tricky);
    }

    proptest::proptest! {
        #[test]
        fn file_text_round_trips_for_every_length(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..=64)) {
            let salt = Salt::from(bytes);
            proptest::prop_assert_eq!(Salt::from(salt.to_text().as_str()), salt);
        }
    }
}
