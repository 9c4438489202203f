//! Error types of the codec.

use std::fmt;

/// A token was rejected.
///
/// Deliberately opaque, like Python's `cryptography.fernet.InvalidToken`:
/// a malformed encoding, a wrong version byte, a bad length, an expired or
/// future timestamp, a wrong key, a forged or corrupted tag and bad padding
/// all look the same, so a caller cannot be turned into an oracle.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[allow(clippy::exhaustive_structs)] // opaque on purpose: it will never carry a field
pub struct InvalidToken;

impl fmt::Display for InvalidToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid Fernet token")
    }
}

impl std::error::Error for InvalidToken {}

/// A Fernet key could not be parsed.
///
/// The messages say what is wrong with the key, never what it contains.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The text is not canonical URL-safe base64 with `=` padding
    /// (the form Python's `Fernet.generate_key()` emits).
    #[error("Fernet key is not canonical URL-safe base64 with padding (44 characters expected)")]
    Encoding,
    /// The text decodes, but not to 32 bytes.
    #[error("Fernet key must decode to 32 bytes, got {len}")]
    Length {
        /// How many bytes the text decoded to.
        len: usize,
    },
}

/// [`MultiFernet::new`](crate::MultiFernet::new) was given no keys.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, thiserror::Error)]
#[error("MultiFernet requires at least one key")]
#[allow(clippy::exhaustive_structs)] // a unit error: there is nothing more to say
pub struct EmptyKeyList;
