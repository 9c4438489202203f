//! The decrypt path: parse once, try versions in the trial order, and say
//! why when none opens the token.

use std::time::Duration;

use secrets_manager_fernet::UnverifiedToken;
use secrets_manager_fernet::zeroize::Zeroizing;

use super::KeyStore;
use crate::error::KeystoreError;
use crate::ring::{Entry, trial_order};
use crate::spec::VersionState;
use crate::stats::Counter;
use crate::version::Version;

/// A token re-encrypted by [`KeyStore::rotate_token`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RotatedToken {
    /// The version that decrypted the original.
    pub from: Version,
    /// The version that encrypted the new token (the active one).
    pub to: Version,
    /// The new token.
    pub token: String,
    /// Length of the message inside, in bytes.
    pub plaintext_len: usize,
}

/// A decrypted token: the version that opened it, its timestamp and the
/// message.
type Opened = (Version, u64, Zeroizing<Vec<u8>>);

impl KeyStore {
    /// Decrypts a token, trying versions in this order: `hint`; the version
    /// that was active at the token's timestamp; the active version; every
    /// other usable version, newest first. The timestamp only orders the
    /// attempts: every attempt verifies the HMAC. An unknown hint is ignored,
    /// as in the Python package.
    ///
    /// With a `ttl`, the token must be no older than `ttl` and no more than
    /// 60 s in the future relative to `now` (Unix seconds).
    ///
    /// # Errors
    ///
    /// A malformed or expired token, no version that opens it (naming a
    /// retired or destroyed version when that is why), or a cleaned-up
    /// store.
    pub fn decrypt(
        &self,
        token: &[u8],
        hint: Option<&str>,
        ttl: Option<Duration>,
        now: u64,
    ) -> Result<(Version, Zeroizing<Vec<u8>>), KeystoreError> {
        self.open_counted(token, hint, ttl, now)
            .map(|(v, _, msg)| (v, msg))
    }

    /// Re-encrypts a token under the active version, keeping its timestamp.
    ///
    /// # Errors
    ///
    /// As [`decrypt`](Self::decrypt) (no TTL is applied), or
    /// [`encrypt`](Self::encrypt).
    pub fn rotate_token(&self, token: &[u8]) -> Result<RotatedToken, KeystoreError> {
        let (from, timestamp, msg) = self.open_counted(token, None, None, 0)?;
        let (to, token) = self.encrypt_at_time(&msg, timestamp)?;
        Ok(RotatedToken {
            from,
            to,
            token,
            plaintext_len: msg.len(),
        })
    }

    /// `open`, counted: a decryption (with its one implied key lookup) or a
    /// failure, plus any further lookups the trial needed.
    fn open_counted(
        &self,
        token: &[u8],
        hint: Option<&str>,
        ttl: Option<Duration>,
        now: u64,
    ) -> Result<Opened, KeystoreError> {
        let mut lookups = 0;
        let result = self.open(token, hint, ttl, now, &mut lookups);
        let (counter, extra) = match result {
            Ok(_) => (Counter::Decryptions, lookups.saturating_sub(1)),
            Err(_) => (Counter::DecryptionFailures, lookups),
        };
        if extra > 0 {
            self.counters.add(Counter::ExtraLookups, extra);
        }
        self.counters.add(counter, 1);
        result
    }

    fn open(
        &self,
        token: &[u8],
        hint: Option<&str>,
        ttl: Option<Duration>,
        now: u64,
        lookups: &mut u64,
    ) -> Result<Opened, KeystoreError> {
        let ring = self.ring();
        let ring = ring.as_deref().ok_or(KeystoreError::CleanedUp)?;
        let parsed = UnverifiedToken::parse(token).map_err(|_| KeystoreError::InvalidToken)?;
        parsed
            .check_ttl(ttl, now)
            .map_err(|_| KeystoreError::InvalidToken)?;

        let hinted = hint
            .and_then(|h| Version::from_setting(h).ok())
            .and_then(|v| ring.index.get(&v).copied());
        let by_time = ring.active_at(parsed.timestamp());
        let first = [hinted, by_time, Some(ring.active)];
        // The first candidate opens most tokens: try it before building
        // the trial order (which starts with it), keeping the common path
        // short.
        let first_choice = hinted.or(by_time).unwrap_or(ring.active);
        let mut token = match self.try_open(&ring.entries[first_choice], parsed, lookups)? {
            Ok(opened) => return Ok(opened),
            Err(unopened) => unopened,
        };
        for index in trial_order(ring.entries.len(), first).skip(1) {
            token = match self.try_open(&ring.entries[index], token, lookups)? {
                Ok(opened) => return Ok(opened),
                Err(unopened) => unopened,
            };
        }

        // Say why, when the version that made it is gone: a retired
        // version's key still verifies the token (its MAC, nothing is
        // decrypted); a destroyed one is named by the hint or the token's
        // time.
        for entry in ring.entries.iter().rev() {
            if entry.state != VersionState::Retired {
                continue;
            }
            let fernet = match entry.cache.fernet.get() {
                Some(fernet) => fernet,
                None => self.derive(entry)?,
            };
            token = match token.verify(fernet) {
                Ok(_) => return Err(KeystoreError::VersionRetired(entry.name)),
                Err(unopened) => unopened,
            };
        }
        for index in [hinted, by_time].into_iter().flatten() {
            let entry = &ring.entries[index];
            match entry.state {
                VersionState::Retired => return Err(KeystoreError::VersionRetired(entry.name)),
                VersionState::Destroyed => return Err(KeystoreError::VersionDestroyed(entry.name)),
                VersionState::Usable => {}
            }
        }
        let tried = trial_order(ring.entries.len(), first)
            .filter(|&i| ring.entries[i].state == VersionState::Usable)
            .map(|i| ring.entries[i].name)
            .collect();
        let destroyed = ring
            .entries
            .iter()
            .filter(|e| e.state == VersionState::Destroyed)
            .map(|e| e.name)
            .collect();
        Err(KeystoreError::DecryptionFailed { tried, destroyed })
    }

    /// One attempt: the token back if this version does not open it.
    #[inline]
    fn try_open(
        &self,
        entry: &Entry,
        token: UnverifiedToken,
        lookups: &mut u64,
    ) -> Result<Result<Opened, UnverifiedToken>, KeystoreError> {
        if entry.state != VersionState::Usable {
            return Ok(Err(token));
        }
        *lookups += 1;
        let fernet = match entry.cache.fernet.get() {
            Some(fernet) => fernet,
            None => self.derive(entry)?,
        };
        let verified = match token.verify(fernet) {
            Ok(verified) => verified,
            Err(unopened) => return Ok(Err(unopened)),
        };
        let timestamp = verified.timestamp();
        Ok(verified.decrypt().map(|msg| {
            entry.decryptions.incr();
            (entry.name, timestamp, msg)
        }))
    }
}
