//! Key derivation for secrets-manager: PBKDF2-HMAC-SHA256 from a password
//! and salt to a 32-byte Fernet key, and salts with the Python
//! SecretsManager's text normalisation and integrity hashes.
//!
//! ```
//! use std::num::NonZeroU32;
//! use secrets_manager_kdf::{derive_key, Salt, DEFAULT_ITERATIONS};
//!
//! // Strings are normalised as the Python package does: hex, then URL-safe
//! // base64, then the UTF-8 bytes.
//! assert_eq!(Salt::from("73616c74").as_bytes(), b"salt");
//! assert_eq!(Salt::from("c2FsdA==").as_bytes(), b"salt");
//! assert_eq!(Salt::from("random-salt-value").as_bytes(), b"random-salt-value");
//!
//! let salt = Salt::from("random-salt-value");
//! let key = derive_key(b"my-secret-password", &salt, DEFAULT_ITERATIONS);
//! assert_eq!(key.len(), 32);
//!
//! // Integrity: the lower-case hex SHA-256 of the salt bytes.
//! let hash = salt.sha256_hex();
//! assert!(salt.matches_hash(&hash));
//! assert!(!salt.matches_hash(&"0".repeat(64)));
//! ```
//!
//! The derivation is RFC 8018 PBKDF2 with HMAC-SHA256 from the RustCrypto
//! `hmac` crate, driven at the block level: the password's HMAC pad states
//! are computed once, and each iteration copies them and finalises one
//! 32-byte message from a single reused block buffer (two compressions),
//! with nothing allocated per iteration.

mod error;
mod pbkdf2;
mod salt;

pub use crate::error::KdfError;
pub use crate::pbkdf2::{
    DEFAULT_ITERATIONS, KEY_LEN, derive_key, derive_key_into, pbkdf2_hmac_sha256,
};
pub use crate::salt::Salt;
/// Re-exported: derived keys are returned in [`Zeroizing`](zeroize::Zeroizing) buffers.
pub use zeroize;
