#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod b64;
mod error;
mod key;
mod mac;
mod multi;
mod os;
mod secret;
mod token;

pub use crate::error::{EmptyKeyList, InvalidToken, KeyError};
pub use crate::key::{KEY_LEN, Key};
pub use crate::multi::MultiFernet;
pub use crate::secret::{SecretBytes, SecureMemoryStatus, secure_memory_status};
pub use crate::token::{Fernet, MAX_CLOCK_SKEW, UnverifiedToken, VerifiedToken};

/// The current time in whole Unix seconds, as the codec reads it for
/// `encrypt` and `decrypt_with_ttl` (0 before the epoch). Layers above use
/// it so that every timestamp comes from the same clock.
#[must_use]
pub fn unix_time() -> u64 {
    token::now()
}
/// Re-exported: decrypted messages are returned in [`Zeroizing`](zeroize::Zeroizing).
pub use zeroize;
