//! Several keys: the first encrypts, all decrypt.

use std::time::Duration;

use zeroize::Zeroizing;

use crate::error::{EmptyKeyList, InvalidToken};
use crate::token::{Fernet, UnverifiedToken, now};

/// Key rotation in the style of Python's `MultiFernet`: the first key
/// encrypts; every key is tried, in order, to decrypt.
///
/// The token is decoded once and only its HMAC is checked per key, so each
/// key that does not match costs one HMAC of the token, not a full decrypt.
///
/// ```
/// use secrets_manager_fernet::{Fernet, Key, MultiFernet};
///
/// let (old, new) = (Fernet::new(&Key::generate()), Fernet::new(&Key::generate()));
/// let token = old.encrypt_at_time(b"secret", 1_700_000_000);
///
/// let multi = MultiFernet::new(vec![new.clone(), old])?;
/// assert_eq!(&*multi.decrypt(&token)?, b"secret");
///
/// // Re-encrypt under the new key, keeping the timestamp.
/// let fresh = multi.rotate(&token)?;
/// assert_eq!(&*new.decrypt(&fresh)?, b"secret");
/// assert_eq!(new.extract_timestamp(&fresh)?, 1_700_000_000);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct MultiFernet {
    fernets: Vec<Fernet>,
}

impl MultiFernet {
    /// Keys in priority order; the first encrypts.
    ///
    /// # Errors
    ///
    /// [`EmptyKeyList`] when `fernets` is empty.
    pub fn new(fernets: Vec<Fernet>) -> Result<Self, EmptyKeyList> {
        if fernets.is_empty() {
            return Err(EmptyKeyList);
        }
        Ok(Self { fernets })
    }

    /// The keys, in priority order.
    #[must_use]
    pub fn fernets(&self) -> &[Fernet] {
        &self.fernets
    }

    fn primary(&self) -> &Fernet {
        // `new` refuses an empty list.
        &self.fernets[0]
    }

    /// Encrypts under the first key.
    ///
    /// # Panics
    ///
    /// Only if the operating system cannot supply random bytes.
    #[must_use]
    pub fn encrypt(&self, msg: &[u8]) -> String {
        self.primary().encrypt(msg)
    }

    /// Encrypts under the first key, stamped with `timestamp`.
    ///
    /// # Panics
    ///
    /// Only if the operating system cannot supply random bytes.
    #[must_use]
    pub fn encrypt_at_time(&self, msg: &[u8], timestamp: u64) -> String {
        self.primary().encrypt_at_time(msg, timestamp)
    }

    /// Decrypts with the first key that verifies.
    ///
    /// # Errors
    ///
    /// [`InvalidToken`] when no key verifies or the token is malformed.
    pub fn decrypt(&self, token: impl AsRef<[u8]>) -> Result<Zeroizing<Vec<u8>>, InvalidToken> {
        self.decrypt_at_time(token, None, 0)
    }

    /// As [`Fernet::decrypt_with_ttl`], with each key tried in turn.
    ///
    /// # Errors
    ///
    /// [`InvalidToken`] when no key verifies, the token is malformed or its
    /// timestamp is out of range.
    pub fn decrypt_with_ttl(
        &self,
        token: impl AsRef<[u8]>,
        ttl: Duration,
    ) -> Result<Zeroizing<Vec<u8>>, InvalidToken> {
        self.decrypt_at_time(token, Some(ttl), now())
    }

    /// As [`Fernet::decrypt_at_time`], with each key tried in turn.
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
        let token = UnverifiedToken::parse(token)?;
        token.check_ttl(ttl, now)?;
        self.open(token).map(|(_, msg)| msg)
    }

    /// The token's timestamp, after verifying it under one of the keys.
    ///
    /// # Errors
    ///
    /// [`InvalidToken`] when no key verifies or the token is malformed.
    pub fn extract_timestamp(&self, token: impl AsRef<[u8]>) -> Result<u64, InvalidToken> {
        let mut token = UnverifiedToken::parse(token)?;
        for f in &self.fernets {
            match token.verify(f) {
                Ok(verified) => return Ok(verified.timestamp()),
                Err(unverified) => token = unverified,
            }
        }
        Err(InvalidToken)
    }

    /// Re-encrypts a token under the first key with a fresh IV, keeping its
    /// original timestamp (so a TTL still counts from the first encryption).
    ///
    /// # Errors
    ///
    /// [`InvalidToken`] when no key verifies or the token is malformed.
    ///
    /// # Panics
    ///
    /// Only if the operating system cannot supply random bytes.
    pub fn rotate(&self, token: impl AsRef<[u8]>) -> Result<String, InvalidToken> {
        let (timestamp, msg) = self.open(UnverifiedToken::parse(token)?)?;
        Ok(self.primary().encrypt_at_time(&msg, timestamp))
    }

    /// Verifies under each key in turn and decrypts with the first match.
    fn open(&self, mut token: UnverifiedToken) -> Result<(u64, Zeroizing<Vec<u8>>), InvalidToken> {
        for f in &self.fernets {
            // A key whose HMAC verifies but whose padding does not hands
            // the token back, and the next key is tried (Python's behaviour).
            token = match token.verify(f) {
                Ok(verified) => {
                    let timestamp = verified.timestamp();
                    match verified.decrypt() {
                        Ok(msg) => return Ok((timestamp, msg)),
                        Err(unverified) => unverified,
                    }
                }
                Err(unverified) => unverified,
            };
        }
        Err(InvalidToken)
    }
}
