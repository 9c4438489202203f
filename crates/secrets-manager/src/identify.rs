//! Which version made a token, found by its HMAC alone: nothing is
//! decrypted. For censuses of stored tokens (`secrets-manager-db`'s `scan`),
//! where millions of values are sorted by version and none needs opening.

use std::collections::HashMap;
use std::fmt;

use secrecy::ExposeSecret as _;

use crate::Version;
use crate::error::Result;
use crate::fernet::zeroize::Zeroizing;
use crate::fernet::{Fernet, Key, UnverifiedToken, VerifiedToken};
use crate::kdf::derive_key_into;
use crate::keystore::{KeyMaterial, Timeline, VersionState, trial_order};
use crate::manager::SecretsManager;

/// What [`TokenIdentifier::identify`] found out about a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Identified {
    /// The token's HMAC verifies under this version's key. A retired
    /// version is named too (its key is kept), though it no longer
    /// decrypts.
    Version {
        /// The version.
        version: Version,
        /// Its state (usable or retired).
        state: VersionState,
    },
    /// Not a Fernet token: bad encoding, version byte or length.
    NotAToken,
    /// A well-formed token that no version with a key verifies (made
    /// under a destroyed version, another keyring, or forged).
    Unopened,
}

/// Finds the version that made a token by verifying its HMAC with each
/// candidate key, in the key store's trial order (hint, the version active
/// at the token's timestamp, the active version, the rest newest first,
/// then retired versions), without decrypting anything.
///
/// Made by [`SecretsManager::token_identifier`] from one snapshot of the
/// keyring; every key is derived then, once. `Send + Sync`.
///
/// ```
/// use secrets_manager::{Identified, SecretsConfig, SecretsManager};
///
/// let config = SecretsConfig::builder()
///     .fernet_key("v1", "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=")
///     .build()?;
/// let manager = SecretsManager::new(config)?;
/// let (_, token) = manager.encrypt(b"data")?;
/// let identifier = manager.token_identifier()?;
/// assert!(matches!(identifier.identify(token.as_bytes(), None),
///     Identified::Version { version, .. } if version == "v1"));
/// assert_eq!(identifier.identify(b"not a token", None), Identified::NotAToken);
/// # Ok::<(), secrets_manager::Error>(())
/// ```
pub struct TokenIdentifier {
    /// In the order added; `None` for a destroyed version.
    keys: Vec<(Version, VersionState, Option<Fernet>)>,
    active: usize,
    index: HashMap<Version, usize>,
    /// Which version was active when.
    timeline: Timeline,
}

impl fmt::Debug for TokenIdentifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenIdentifier")
            .field(
                "versions",
                &self
                    .keys
                    .iter()
                    .map(|(v, s, _)| (*v, *s))
                    .collect::<Vec<_>>(),
            )
            .field("active", &self.keys[self.active].0)
            .finish_non_exhaustive()
    }
}

impl SecretsManager {
    /// A [`TokenIdentifier`] for the keyring as it is now. Derives the key
    /// of every usable and retired version (once; PBKDF2 for
    /// password-derived versions).
    ///
    /// # Errors
    ///
    /// After [`cleanup`](Self::cleanup).
    pub fn token_identifier(&self) -> Result<TokenIdentifier> {
        Ok(self.inner.store.with_snapshot(|snapshot| {
            let active_name = snapshot.active();
            let mut keys = Vec::new();
            let mut active = 0;
            for (i, (info, material)) in snapshot.versions().enumerate() {
                if info.version == active_name {
                    active = i;
                }
                let fernet = match (info.state, material) {
                    (VersionState::Destroyed, _) | (_, None) => None,
                    (_, Some(KeyMaterial::Fernet(key))) => Some(Fernet::new(key)),
                    (
                        _,
                        Some(KeyMaterial::Password {
                            password,
                            salt,
                            iterations,
                            ..
                        }),
                    ) => {
                        // Derived straight into the key's locked memory.
                        let key = Key::fill_with(|out| {
                            derive_key_into(
                                password.expose_secret().as_bytes(),
                                salt,
                                *iterations,
                                out,
                            );
                        });
                        Some(Fernet::new(&key))
                    }
                };
                keys.push((info.version, info.state, fernet));
            }
            let index = keys
                .iter()
                .enumerate()
                .map(|(i, (v, _, _))| (*v, i))
                .collect();
            TokenIdentifier {
                keys,
                active,
                index,
                timeline: snapshot.timeline(),
            }
        })?)
    }
}

impl TokenIdentifier {
    /// The active version when the identifier was made.
    #[must_use]
    pub fn active_version(&self) -> Version {
        self.keys[self.active].0
    }

    /// Every version known when the identifier was made, in the order
    /// added, with its state.
    pub fn versions(&self) -> impl Iterator<Item = (Version, VersionState)> + '_ {
        self.keys.iter().map(|(v, s, _)| (*v, *s))
    }

    /// Which version's key verifies `token`'s HMAC (an unknown `hint` is
    /// ignored). Nothing is decrypted.
    #[must_use]
    pub fn identify(&self, token: &[u8], hint: Option<&str>) -> Identified {
        match self.trial(token, hint) {
            Ok((i, _)) => Identified::Version {
                version: self.keys[i].0,
                state: self.keys[i].1,
            },
            Err(why) => why,
        }
    }

    /// Identifies `token` as [`identify`](Self::identify) does, keeping the
    /// verified token, so that it can then be decrypted with the key that
    /// verified it ([`Verified::open`]) without a second trial. Nothing is
    /// decrypted until then.
    ///
    /// ```
    /// use secrets_manager::{Identified, SecretsConfig, SecretsManager};
    ///
    /// let config = SecretsConfig::builder()
    ///     .fernet_key("v1", "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=")
    ///     .build()?;
    /// let manager = SecretsManager::new(config)?;
    /// let (_, token) = manager.encrypt_at_time(b"data", 1_700_000_000)?;
    /// let identifier = manager.token_identifier()?;
    /// match identifier.verify(token.as_bytes(), None).and_then(|v| v.open()) {
    ///     Ok(opened) => {
    ///         assert_eq!((opened.version.as_str(), opened.timestamp), ("v1", 1_700_000_000));
    ///         assert_eq!(&opened.plaintext[..], b"data");
    ///     }
    ///     Err(why) => panic!("{why:?}"),
    /// }
    /// assert!(matches!(identifier.verify(b"not a token", None), Err(Identified::NotAToken)));
    /// # Ok::<(), secrets_manager::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// What `identify` says when no key verifies the token:
    /// [`Identified::NotAToken`] or [`Identified::Unopened`].
    pub fn verify(
        &self,
        token: &[u8],
        hint: Option<&str>,
    ) -> std::result::Result<Verified<'_>, Identified> {
        let (i, token) = self.trial(token, hint)?;
        Ok(Verified {
            version: self.keys[i].0,
            state: self.keys[i].1,
            token,
        })
    }

    /// The trial: the index of the first key, in trial order, that
    /// verifies `token`, with the verified token.
    fn trial(
        &self,
        token: &[u8],
        hint: Option<&str>,
    ) -> std::result::Result<(usize, VerifiedToken<'_>), Identified> {
        let Ok(mut token) = UnverifiedToken::parse(token) else {
            return Err(Identified::NotAToken);
        };
        let hinted = hint
            .and_then(|h| Version::from_setting(h).ok())
            .and_then(|v| self.index.get(&v).copied());
        let by_time = self.timeline.active_at(token.timestamp());
        let usable = trial_order(self.keys.len(), [hinted, by_time, Some(self.active)])
            .filter(|&i| self.keys[i].1 == VersionState::Usable);
        let retired = (0..self.keys.len())
            .rev()
            .filter(|&i| self.keys[i].1 == VersionState::Retired);
        for i in usable.chain(retired) {
            let Some(fernet) = &self.keys[i].2 else {
                continue;
            };
            token = match token.verify(fernet) {
                Ok(verified) => return Ok((i, verified)),
                Err(unverified) => unverified,
            };
        }
        Err(Identified::Unopened)
    }
}

/// A token whose HMAC a version's key verified ([`TokenIdentifier::verify`]).
pub struct Verified<'a> {
    version: Version,
    state: VersionState,
    token: VerifiedToken<'a>,
}

impl fmt::Debug for Verified<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verified")
            .field("version", &self.version)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Verified<'_> {
    /// The version whose key verified the token.
    #[must_use]
    pub fn version(&self) -> Version {
        self.version
    }

    /// That version's state (usable or retired).
    #[must_use]
    pub fn state(&self) -> VersionState {
        self.state
    }

    /// The token's timestamp (Unix seconds), authenticated by its HMAC.
    #[must_use]
    pub fn timestamp(&self) -> u64 {
        self.token.timestamp()
    }

    /// Decrypts the token with the key that verified it.
    ///
    /// # Errors
    ///
    /// [`Identified::Version`] when the version is retired (retired
    /// versions do not decrypt); [`Identified::Unopened`] when the padding
    /// is malformed under a valid HMAC (only a key holder can make such a
    /// token).
    pub fn open(self) -> std::result::Result<Opened, Identified> {
        if self.state != VersionState::Usable {
            return Err(Identified::Version {
                version: self.version,
                state: self.state,
            });
        }
        let timestamp = self.token.timestamp();
        let plaintext = self.token.decrypt().map_err(|_| Identified::Unopened)?;
        Ok(Opened {
            version: self.version,
            timestamp,
            plaintext,
        })
    }
}

/// A token [`Verified::open`] decrypted.
#[non_exhaustive]
pub struct Opened {
    /// The usable version whose key opened it.
    pub version: Version,
    /// The token's timestamp (Unix seconds), authenticated by its HMAC.
    pub timestamp: u64,
    /// The message, wiped when dropped.
    pub plaintext: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for Opened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opened")
            .field("version", &self.version)
            .field("timestamp", &self.timestamp)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::SecretsConfig;

    const K1: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
    const K2: &str = "agYRpQ3kPqsXUNh1ZQ6Nr0xmXJtY_p8u0XF6ZxBzIRs=";

    fn manager() -> SecretsManager {
        SecretsManager::new(
            SecretsConfig::builder()
                .fernet_key("v1", K1)
                .build()
                .unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn verify_agrees_with_identify_and_opens_only_usable_versions() {
        let m = manager();
        let (_, t1) = m.encrypt_at_time(b"one", 1_600_000_000).unwrap();
        m.rotate_to_fernet_key("v2", K2).unwrap().apply().unwrap();
        let (_, t2) = m.encrypt_at_time(b"two", 1_700_000_000).unwrap();
        let foreign = Fernet::new(&Key::generate()).encrypt(b"x");

        let id = m.token_identifier().unwrap();
        for (token, want) in [(&t1, &b"one"[..]), (&t2, &b"two"[..])] {
            let opened = id.verify(token.as_bytes(), None).unwrap().open().unwrap();
            assert_eq!(
                id.identify(token.as_bytes(), None),
                Identified::Version {
                    version: opened.version,
                    state: VersionState::Usable
                }
            );
            assert_eq!(&opened.plaintext[..], want);
            let again = m.decrypt_with_hint(token, opened.version.as_str()).unwrap();
            assert_eq!(again.0, opened.version);
            assert_eq!(
                opened.timestamp,
                UnverifiedToken::parse(token).unwrap().timestamp()
            );
            // A wrong hint only changes the order.
            assert_eq!(
                id.verify(token.as_bytes(), Some("v2")).unwrap().version(),
                opened.version
            );
        }
        assert_eq!(
            id.verify(b"not a token", None).unwrap_err(),
            Identified::NotAToken
        );
        assert_eq!(
            id.verify(foreign.as_bytes(), None).unwrap_err(),
            Identified::Unopened
        );

        // Retired: named, never decrypted.
        m.retire_version("v1").unwrap();
        let id = m.token_identifier().unwrap();
        let v1 = Version::new("v1").unwrap();
        assert_eq!(
            id.verify(t1.as_bytes(), None).unwrap().open().unwrap_err(),
            Identified::Version {
                version: v1,
                state: VersionState::Retired
            }
        );
        let verified = id.verify(t1.as_bytes(), None).unwrap();
        assert_eq!(verified.state(), VersionState::Retired);
        assert_eq!(verified.timestamp(), 1_600_000_000);
        assert!(id.verify(t2.as_bytes(), None).unwrap().open().is_ok());
        let shown = format!(
            "{:?}",
            id.verify(t2.as_bytes(), None).unwrap().open().unwrap()
        );
        assert!(!shown.contains("two"), "{shown}");
    }
}
