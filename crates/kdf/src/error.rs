//! Errors of the key-derivation layer.

/// A derivation parameter was unusable. Messages never include a password
/// or salt.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KdfError {
    /// PBKDF2 needs at least one iteration.
    #[error("PBKDF2 iterations must be at least 1, got {0}")]
    ZeroIterations(u32),
    /// A salt hash is not 64 lower- or upper-case hex digits.
    #[error("salt hash must be 64 hexadecimal digits (SHA-256), got {len} characters")]
    MalformedSaltHash {
        /// Length of the text given.
        len: usize,
    },
}
