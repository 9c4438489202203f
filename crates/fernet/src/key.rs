//! Fernet keys.

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::b64;
use crate::error::KeyError;
use crate::os::secure::Locked;

/// Length of a Fernet key in bytes: a 16-byte signing key then a 16-byte
/// encryption key.
pub const KEY_LEN: usize = 32;

/// A 32-byte Fernet key: signing key ‖ encryption key.
///
/// Held in locked memory (never swapped out, left out of core dumps where
/// the OS allows; see [`secure_memory_status`](crate::secure_memory_status))
/// and zeroized on drop. Its `Debug` output shows no key bytes. Equality is
/// constant time.
///
/// ```
/// use secrets_manager_fernet::Key;
///
/// let key = Key::generate();
/// let text = key.to_base64();
/// assert_eq!(text.len(), 44);
/// assert_eq!(Key::from_base64(text.as_str())?, key);
/// assert_eq!(format!("{key:?}"), "Key([REDACTED])");
/// # Ok::<(), secrets_manager_fernet::KeyError>(())
/// ```
pub struct Key(Locked<[u8; KEY_LEN]>);

impl Key {
    /// A fresh random key from the operating system's CSPRNG.
    ///
    /// # Panics
    ///
    /// If the operating system cannot supply random bytes, which on every
    /// supported platform means the system is unusable; continuing would risk
    /// a predictable key.
    #[must_use]
    pub fn generate() -> Self {
        Self::fill_with(|bytes| crate::os::fill_fresh(bytes))
    }

    /// A key written in place by `fill`, straight into locked memory, so
    /// the bytes never sit anywhere else: for example a PBKDF2 output.
    ///
    /// ```
    /// use secrets_manager_fernet::Key;
    ///
    /// let key = Key::fill_with(|bytes| bytes.copy_from_slice(&[7; 32]));
    /// assert_eq!(key.as_bytes(), &[7; 32]);
    /// ```
    #[must_use]
    pub fn fill_with(fill: impl FnOnce(&mut [u8; KEY_LEN])) -> Self {
        let mut key = Self(Locked::new([0u8; KEY_LEN]));
        fill(&mut key.0);
        key
    }

    /// Parses the text form: 44 characters of URL-safe base64 with padding,
    /// as Python's `Fernet.generate_key()` produces.
    ///
    /// # Errors
    ///
    /// [`KeyError::Encoding`] when the text is not canonical padded URL-safe
    /// base64, [`KeyError::Length`] when it does not decode to 32 bytes.
    pub fn from_base64(text: impl AsRef<[u8]>) -> Result<Self, KeyError> {
        let text = text.as_ref();
        // Anything longer than a key's encoding is rejected before decoding,
        // so no input makes this allocate.
        let mut buf = Zeroizing::new([0u8; KEY_LEN + 3]);
        if text.len() > b64::encoded_len(KEY_LEN + 3) {
            return Err(KeyError::Length {
                len: text.len() / 4 * 3,
            });
        }
        let len = b64::decode_slice(text, &mut buf[..]).map_err(|_| KeyError::Encoding)?;
        if len != KEY_LEN {
            return Err(KeyError::Length { len });
        }
        Ok(Self::fill_with(|bytes| {
            bytes.copy_from_slice(&buf[..KEY_LEN]);
        }))
    }

    /// Wraps raw key bytes. This function's copy of them is wiped; the
    /// caller's are the caller's to wipe ([`fill_with`](Self::fill_with)
    /// avoids the copies).
    #[must_use]
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        let mut bytes = Zeroizing::new(bytes);
        Self::fill_with(|key| {
            key.copy_from_slice(&bytes[..]);
            bytes.zeroize();
        })
    }

    /// The text form, in a buffer that is zeroized when dropped.
    #[must_use]
    pub fn to_base64(&self) -> Zeroizing<String> {
        b64::encode_key(&self.0)
    }

    /// The raw key bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    #[cfg(test)]
    pub(crate) fn locked_addr(&self) -> usize {
        self.0.addr()
    }

    /// The signing key and the encryption key, 16 bytes each.
    pub(crate) fn halves(&self) -> (&[u8], &[u8]) {
        self.0.split_at(KEY_LEN / 2)
    }
}

impl Clone for Key {
    /// Copies locked memory to locked memory, with no copy on the stack.
    fn clone(&self) -> Self {
        Self::fill_with(|bytes| bytes.copy_from_slice(self.as_bytes()))
    }
}

impl Zeroize for Key {
    fn zeroize(&mut self) {
        self.0.zeroize();
    }
}

/// Wiped on drop: its locked memory is zeroed before it is reused.
impl ZeroizeOnDrop for Key {}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.0[..].ct_eq(&other.0[..]).into()
    }
}

impl Eq for Key {}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key([REDACTED])")
    }
}

impl std::str::FromStr for Key {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_base64(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_non_canonical_forms() {
        let key = Key::generate();
        let text = key.to_base64();
        assert_eq!(Key::from_base64(text.as_str()).unwrap(), key);
        // Missing padding, whitespace: rejected.
        assert_eq!(Key::from_base64(&text[..43]), Err(KeyError::Encoding));
        assert_eq!(
            Key::from_base64(format!(" {}", &*text)),
            Err(KeyError::Encoding)
        );
    }

    #[test]
    fn clones_are_equal_in_a_slot_of_their_own() {
        let key = Key::generate();
        let clone = key.clone();
        assert_eq!(clone, key);
        assert_ne!(clone.0.addr(), key.0.addr());
        assert_ne!(Key::generate(), key);
    }

    #[test]
    fn rejects_the_standard_alphabet() {
        // 0xfb 0xff 0xbf encodes as "-_-_": a key whose text uses both
        // URL-safe characters, so both substitutions below change it.
        let bytes: [u8; KEY_LEN] = std::array::from_fn(|i| [0xfb, 0xff, 0xbf][i % 3]);
        let key = Key::from_bytes(bytes);
        let text = key.to_base64();
        assert!(text.contains('-') && text.contains('_'), "{}", &*text);
        assert_eq!(Key::from_base64(text.as_str()).unwrap(), key);
        for std_form in [
            text.replace('-', "+"),
            text.replace('_', "/"),
            text.replace('-', "+").replace('_', "/"),
        ] {
            assert_ne!(std_form, *text);
            assert_eq!(Key::from_base64(&std_form), Err(KeyError::Encoding));
        }
    }

    #[test]
    fn rejects_wrong_lengths_with_the_length() {
        assert_eq!(
            Key::from_base64("c2FsdA=="),
            Err(KeyError::Length { len: 4 })
        );
        assert_eq!(Key::from_base64(""), Err(KeyError::Length { len: 0 }));
        let long = "A".repeat(1000);
        assert!(matches!(
            Key::from_base64(&long),
            Err(KeyError::Length { .. })
        ));
        let msg = KeyError::Length { len: 4 }.to_string();
        assert!(msg.contains("32") && msg.contains('4'), "{msg}");
    }

    #[test]
    fn trailing_bits_must_be_zero() {
        // 32 bytes end with a two-byte quantum, "xxx=", whose third
        // character carries two unused bits. "AAB=" sets one of them.
        let canonical = format!("{}AAA=", "A".repeat(40));
        assert!(Key::from_base64(&canonical).is_ok());
        let sloppy = format!("{}AAB=", "A".repeat(40));
        assert_eq!(Key::from_base64(&sloppy), Err(KeyError::Encoding));
    }
}
