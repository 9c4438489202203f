#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod b64;
mod error;
mod key;
mod mac;
mod multi;
mod os;
mod token;

pub use crate::error::{EmptyKeyList, InvalidToken, KeyError};
pub use crate::key::{KEY_LEN, Key};
pub use crate::multi::MultiFernet;
pub use crate::token::{Fernet, MAX_CLOCK_SKEW, UnverifiedToken, VerifiedToken};
/// Re-exported: decrypted messages are returned in [`Zeroizing`](zeroize::Zeroizing).
pub use zeroize;
