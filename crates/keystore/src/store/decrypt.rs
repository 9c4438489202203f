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

/// How to decrypt a token: the version to try first, a time-to-live, and
/// the time to check it against. One value, so every combination is
/// expressible and none is dropped on the way down.
///
/// ```
/// use std::time::Duration;
/// use secrets_manager_fernet::Key;
/// use secrets_manager_keystore::{
///     DecryptOptions, KeyMaterial, KeyStore, Options, Version, VersionSpec,
/// };
///
/// let v1 = Version::new("v1")?;
/// let spec = VersionSpec::new(v1, KeyMaterial::Fernet(Key::generate()));
/// let store = KeyStore::new(vec![spec], v1, Options::default())?;
/// let (_, token) = store.encrypt_at_time(b"hello", 1_000)?;
///
/// let options = DecryptOptions::new()
///     .hint("v1")
///     .ttl(Duration::from_secs(60))
///     .at_time(1_030);
/// assert_eq!(options.hint, Some(v1));
/// let (used, plaintext) = store.decrypt_with(token.as_bytes(), &options)?;
/// assert_eq!((used, &plaintext[..]), (v1, &b"hello"[..]));
/// // A minute and a half later the token is too old.
/// assert!(store.decrypt_with(token.as_bytes(), &options.at_time(1_090)).is_err());
/// # Ok::<(), secrets_manager_keystore::KeystoreError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct DecryptOptions {
    /// The version to try first. Only orders the attempts: a wrong hint
    /// costs one attempt, never a failure.
    pub hint: Option<Version>,
    /// Accept only a token no older than this and no more than 60 s in
    /// the future (whole seconds, as in Python). `None`: no time check.
    pub ttl: Option<Duration>,
    /// The time (Unix seconds) the TTL is checked against; `None` reads
    /// the clock, and only when there is a TTL.
    pub now: Option<u64>,
}

impl DecryptOptions {
    /// No hint, no TTL: every usable version is tried, whatever the token's
    /// age.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Tries this version first. The name is read as a setting (surrounding
    /// whitespace and quotes stripped, case ignored); a name that is not a
    /// valid version name is ignored, as the Python package ignores an
    /// unknown hint, and so is one the store does not have.
    #[must_use]
    pub fn hint(mut self, version: impl AsRef<str>) -> Self {
        self.hint = Version::from_setting(version.as_ref()).ok();
        self
    }

    /// Accepts only a token no older than `ttl` and no more than 60 s in
    /// the future.
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Checks the TTL against `unix_secs` instead of the clock.
    #[must_use]
    pub fn at_time(mut self, unix_secs: u64) -> Self {
        self.now = Some(unix_secs);
        self
    }
}

/// A decrypted token: the version that opened it and the message. (The
/// shape the public methods return, so the hot path builds it once.)
type Opened = (Version, Zeroizing<Vec<u8>>);

/// What a trial records besides its result: the keys it tried (for the
/// statistics), and the first candidate if the quick attempt tried it.
#[derive(Default)]
struct Trial {
    lookups: u64,
    tried_first: Option<usize>,
}

impl KeyStore {
    /// Decrypts a token with no hint and no TTL: see
    /// [`decrypt_with`](Self::decrypt_with).
    ///
    /// # Errors
    ///
    /// As [`decrypt_with`](Self::decrypt_with).
    pub fn decrypt(&self, token: &[u8]) -> Result<(Version, Zeroizing<Vec<u8>>), KeystoreError> {
        self.decrypt_with(token, &DecryptOptions::new())
    }

    /// Decrypts a token, trying versions in this order: the hint; the
    /// version that was active at the token's timestamp; the active
    /// version; every other usable version, newest first. The timestamp
    /// only orders the attempts: every attempt verifies the HMAC. A hint the
    /// store does not have is ignored, as in the Python package.
    ///
    /// With a TTL, the token must be no older than it and no more than 60 s
    /// in the future, relative to [`DecryptOptions::at_time`] or the clock.
    ///
    /// # Errors
    ///
    /// A malformed or expired token, no version that opens it (naming a
    /// retired or destroyed version when that is why), or a cleaned-up
    /// store.
    #[inline]
    pub fn decrypt_with(
        &self,
        token: &[u8],
        options: &DecryptOptions,
    ) -> Result<(Version, Zeroizing<Vec<u8>>), KeystoreError> {
        self.open_counted(token, options, &mut Trial::default())
    }

    /// Re-encrypts a token under the active version, keeping its timestamp.
    ///
    /// # Errors
    ///
    /// As [`decrypt`](Self::decrypt) (no TTL is applied), or
    /// [`encrypt`](Self::encrypt).
    pub fn rotate_token(&self, token: &[u8]) -> Result<RotatedToken, KeystoreError> {
        let (from, msg) =
            self.open_counted(token, &DecryptOptions::new(), &mut Trial::default())?;
        // Its HMAC verified, so the timestamp its head claims is authentic
        // (and there: a token that opened parsed).
        let timestamp =
            UnverifiedToken::peek_timestamp(token).ok_or(KeystoreError::InvalidToken)?;
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
    #[inline]
    fn open_counted(
        &self,
        token: &[u8],
        options: &DecryptOptions,
        trial: &mut Trial,
    ) -> Result<Opened, KeystoreError> {
        let result = self.open(token, options, trial);
        let (counter, extra) = match result {
            Ok(_) => (Counter::Decryptions, trial.lookups.saturating_sub(1)),
            Err(_) => (Counter::DecryptionFailures, trial.lookups),
        };
        if extra > 0 {
            self.counters.add(Counter::ExtraLookups, extra);
        }
        self.counters.add(counter, 1);
        result
    }

    #[inline]
    fn open(
        &self,
        token: &[u8],
        options: &DecryptOptions,
        trial: &mut Trial,
    ) -> Result<Opened, KeystoreError> {
        let state = self.state();
        let ring = state.live()?;
        // The clock is read only when a TTL needs it.
        let now = match (options.ttl, options.now) {
            (Some(_), None) => secrets_manager_fernet::unix_time(),
            (_, now) => now.unwrap_or(0),
        };
        let hinted = options.hint.and_then(|v| ring.index.get(&v).copied());
        // The first candidate opens most tokens. Its choice needs only the
        // claimed timestamp, so it is tried with the codec's one-key path
        // (structure, time, HMAC, decryption; a small token never touches
        // the heap but for its message), whose success authenticates that
        // timestamp. Anything else takes the full trial below, which skips
        // this candidate if it was tried.
        //
        // Without a hint the candidate is the version active at that time,
        // read off the token's head only when the keyring records
        // activation times: without any, the answer does not depend on it.
        let first_choice = match hinted {
            Some(hinted) => Some(hinted),
            None if ring.timeline.is_untimed() => Some(ring.active_at(0).unwrap_or(ring.active)),
            None => UnverifiedToken::peek_timestamp(token)
                .map(|claimed| ring.active_at(claimed).unwrap_or(ring.active)),
        };
        if let Some(first_choice) = first_choice {
            let entry = &ring.entries[first_choice];
            if entry.state == VersionState::Usable {
                let fernet = self.fernet(entry)?;
                if let Ok(msg) = fernet.decrypt_at_time(token, options.ttl, now) {
                    trial.lookups += 1;
                    entry.decryptions.incr();
                    return Ok((entry.name, msg));
                }
                trial.tried_first = Some(first_choice);
            }
        }
        self.open_by_trial(ring, token, options, now, hinted, trial)
    }

    /// The full trial, for a token the first candidate did not open
    /// (`trial.tried_first`, when one was tried): decode once, then every usable
    /// version in the trial order, then say why none opened it. Kept out of
    /// line: the common path above stays small.
    #[inline(never)]
    fn open_by_trial(
        &self,
        ring: &crate::ring::Ring,
        token: &[u8],
        options: &DecryptOptions,
        now: u64,
        hinted: Option<usize>,
        trial: &mut Trial,
    ) -> Result<Opened, KeystoreError> {
        let parsed = UnverifiedToken::parse(token).map_err(|_| KeystoreError::InvalidToken)?;
        if parsed.check_ttl(options.ttl, now).is_err() {
            return Err(self.why_out_of_time(ring, parsed, options, now));
        }
        // A well-formed token in time: the attempt above (if any) was a
        // lookup, as the trial counts them.
        trial.lookups += u64::from(trial.tried_first.is_some());
        let by_time = ring.active_at(parsed.timestamp());
        let first = [hinted, by_time, Some(ring.active)];
        let first_choice = hinted.or(by_time).unwrap_or(ring.active);
        let mut token = parsed;
        if trial.tried_first != Some(first_choice) {
            token = match self.try_open(&ring.entries[first_choice], token, trial)? {
                Ok(opened) => return Ok(opened),
                Err(unopened) => unopened,
            };
        }
        for index in trial_order(ring.entries.len(), first).skip(1) {
            token = match self.try_open(&ring.entries[index], token, trial)? {
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
            let fernet = self.fernet(entry)?;
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

    /// A token outside its time-to-live: "expired", with its age, only if
    /// one of this store's versions verifies its MAC (which covers the
    /// timestamp); otherwise the token is not ours, and nothing about its
    /// time is said.
    fn why_out_of_time(
        &self,
        ring: &crate::ring::Ring,
        mut token: UnverifiedToken,
        options: &DecryptOptions,
        now: u64,
    ) -> KeystoreError {
        let timestamp = token.timestamp();
        let ttl = options.ttl.map_or(0, |t| t.as_secs());
        for entry in ring.entries.iter().rev() {
            if entry.state == VersionState::Destroyed {
                continue;
            }
            let fernet = match self.fernet(entry) {
                Ok(fernet) => fernet,
                Err(e) => return e,
            };
            token = match token.verify(fernet) {
                Ok(_) => {
                    return KeystoreError::Expired {
                        version: entry.name,
                        timestamp,
                        now,
                        ttl_secs: ttl,
                    };
                }
                Err(unopened) => unopened,
            };
        }
        KeystoreError::InvalidToken
    }

    /// One attempt: the token back if this version does not open it.
    #[inline]
    fn try_open(
        &self,
        entry: &Entry,
        token: UnverifiedToken,
        trial: &mut Trial,
    ) -> Result<Result<Opened, UnverifiedToken>, KeystoreError> {
        if entry.state != VersionState::Usable {
            return Ok(Err(token));
        }
        trial.lookups += 1;
        let fernet = self.fernet(entry)?;
        let verified = match token.verify(fernet) {
            Ok(verified) => verified,
            Err(unopened) => return Ok(Err(unopened)),
        };
        Ok(verified.decrypt().map(|msg| {
            entry.decryptions.incr();
            (entry.name, msg)
        }))
    }
}

#[cfg(test)]
mod tests {
    use secrets_manager_fernet::{Fernet, Key};

    use super::*;
    use crate::spec::{KeyMaterial, Options, VersionSpec};

    fn store(active: &str) -> KeyStore {
        let specs = ["v1", "v2", "v3"]
            .map(|v| {
                VersionSpec::new(
                    Version::new(v).unwrap(),
                    KeyMaterial::Fernet(Key::generate()),
                )
            })
            .into();
        KeyStore::new(specs, Version::new(active).unwrap(), Options::default()).unwrap()
    }

    #[test]
    fn the_hint_is_tried_first_when_a_ttl_is_set_too() {
        let s = store("v3");
        s.activate(&Version::new("v1").unwrap(), None).unwrap();
        let (_, token) = s.encrypt_at_time(b"x", 1_000).unwrap();
        s.activate(&Version::new("v3").unwrap(), None).unwrap();
        let misses = s.statistics().cache_misses;
        let options = DecryptOptions::new()
            .ttl(Duration::from_secs(60))
            .hint("V1")
            .at_time(1_030);
        let (used, msg) = s.decrypt_with(token.as_bytes(), &options).unwrap();
        assert_eq!((used.as_str(), &msg[..]), ("v1", &b"x"[..]));
        // v1 was cached and opened it: nothing else was derived, nothing
        // else was looked up.
        let stats = s.statistics();
        assert_eq!(stats.cache_misses, misses);
        assert_eq!(stats.cache_hits + stats.cache_misses, 3 + 1);
    }

    /// Lookups as the statistics count them, whichever path a token takes:
    /// the first candidate's quick attempt or the full trial after it.
    #[test]
    fn each_key_tried_is_one_lookup_and_failures_before_any_key_are_none() {
        let s = store("v3");
        let lookups = |s: &KeyStore| {
            let st = s.statistics();
            st.cache_hits + st.cache_misses
        };
        let (_, token) = s.encrypt_at_time(b"x", 1_000).unwrap();
        // The first candidate (the active v3) opens it: one lookup.
        let before = lookups(&s);
        assert_eq!(s.decrypt(token.as_bytes()).unwrap().0.as_str(), "v3");
        assert_eq!(lookups(&s), before + 1);
        // A wrong hint: the hinted v1, then v3.
        let before = lookups(&s);
        let options = DecryptOptions::new().hint("v1");
        assert_eq!(
            s.decrypt_with(token.as_bytes(), &options)
                .unwrap()
                .0
                .as_str(),
            "v3"
        );
        assert_eq!(lookups(&s), before + 2);
        // A token no version opens: all three tried.
        let foreign = Fernet::new(&Key::generate()).encrypt_at_time(b"x", 1_000);
        let before = lookups(&s);
        assert!(s.decrypt(foreign.as_bytes()).is_err());
        assert_eq!(lookups(&s), before + 3);
        // Malformed after a valid head, or out of time: no key was tried.
        let before = lookups(&s);
        let cut = &token.as_bytes()[..token.len() - 4];
        assert_eq!(s.decrypt(cut), Err(KeystoreError::InvalidToken));
        let expired = DecryptOptions::new()
            .ttl(Duration::from_secs(10))
            .at_time(2_000);
        assert!(matches!(
            s.decrypt_with(token.as_bytes(), &expired),
            Err(KeystoreError::Expired { .. })
        ));
        assert_eq!(lookups(&s), before);
        let st = s.statistics();
        assert_eq!((st.decryptions, st.decryption_failures), (2, 3));
    }

    #[test]
    fn a_retired_hint_is_named_when_nothing_opens_a_token_within_its_ttl() {
        let s = store("v3");
        let v1 = Version::new("v1").unwrap();
        s.retire(&v1).unwrap();
        let foreign = Fernet::new(&Key::generate()).encrypt_at_time(b"x", 1_000);
        let options = DecryptOptions::new()
            .hint("v1")
            .ttl(Duration::from_secs(60))
            .at_time(1_001);
        assert_eq!(
            s.decrypt_with(foreign.as_bytes(), &options),
            Err(KeystoreError::VersionRetired(v1))
        );
        // Without the hint nothing points at v1.
        let no_hint = DecryptOptions::new()
            .ttl(Duration::from_secs(60))
            .at_time(1_001);
        assert!(matches!(
            s.decrypt_with(foreign.as_bytes(), &no_hint),
            Err(KeystoreError::DecryptionFailed { .. })
        ));
    }

    #[test]
    fn the_ttl_is_checked_against_the_given_time_whatever_the_hint() {
        let s = store("v2");
        let (_, token) = s.encrypt_at_time(b"x", 1_000).unwrap();
        let ttl = DecryptOptions::new()
            .hint("v2")
            .ttl(Duration::from_secs(60));
        for (now, ok) in [(1_060, true), (1_061, false), (940, true), (939, false)] {
            assert_eq!(
                s.decrypt_with(token.as_bytes(), &ttl.at_time(now)).is_ok(),
                ok,
                "at {now}"
            );
        }
        let expired = s.decrypt_with(token.as_bytes(), &ttl.at_time(5_000));
        assert!(
            matches!(
                expired,
                Err(KeystoreError::Expired {
                    timestamp: 1_000,
                    now: 5_000,
                    ttl_secs: 60,
                    ..
                })
            ),
            "{expired:?}"
        );
        let shown = expired.unwrap_err().to_string();
        assert!(
            shown.contains("4000 s ago") && shown.contains("60 s"),
            "{shown}"
        );
        // A token from elsewhere, out of time, says nothing of its time.
        let foreign = store("v2").encrypt_at_time(b"x", 1_000).unwrap().1;
        assert_eq!(
            s.decrypt_with(foreign.as_bytes(), &ttl.at_time(5_000)),
            Err(KeystoreError::InvalidToken)
        );
        // Without a TTL the time does not matter; with one and no time, the
        // clock says the token is long expired.
        assert!(
            s.decrypt_with(token.as_bytes(), &DecryptOptions::new().at_time(5_000))
                .is_ok()
        );
        assert!(matches!(
            s.decrypt_with(token.as_bytes(), &ttl),
            Err(KeystoreError::Expired { .. })
        ));
    }

    #[test]
    fn unusable_hints_are_ignored() {
        let s = store("v2");
        let (_, token) = s.encrypt(b"x").unwrap();
        assert_eq!(DecryptOptions::new().hint("not a name").hint, None);
        assert_eq!(
            DecryptOptions::new().hint(" 'V3' ").hint,
            Some(Version::new("v3").unwrap())
        );
        for hint in ["not a name", "v9", ""] {
            let options = DecryptOptions::new().hint(hint);
            assert_eq!(s.decrypt_with(token.as_bytes(), &options).unwrap().0, "v2");
        }
    }
}
