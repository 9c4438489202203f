//! Which version made a token, found by its HMAC alone: nothing is
//! decrypted. For censuses of stored tokens (`secrets-manager-db`'s `scan`),
//! where millions of values are sorted by version and none needs opening.

use std::collections::HashMap;
use std::fmt;

use secrecy::ExposeSecret as _;

use crate::Version;
use crate::error::Result;
use crate::fernet::{Fernet, Key, UnverifiedToken};
use crate::kdf::derive_key;
use crate::keystore::{KeyMaterial, VersionState};
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
    /// `(activated_at, index)`, sorted.
    timeline: Vec<(u64, usize)>,
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
            let mut timeline = Vec::new();
            for (i, (info, material)) in snapshot.versions().enumerate() {
                if info.version == active_name {
                    active = i;
                }
                if let Some(at) = info.activated_at {
                    timeline.push((at, i));
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
                        let raw =
                            derive_key(password.expose_secret().as_bytes(), salt, *iterations);
                        Some(Fernet::new(&Key::from_bytes(*raw)))
                    }
                };
                keys.push((info.version, info.state, fernet));
            }
            timeline.sort_unstable();
            let index = keys
                .iter()
                .enumerate()
                .map(|(i, (v, _, _))| (*v, i))
                .collect();
            TokenIdentifier {
                keys,
                active,
                index,
                timeline,
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
        let Ok(mut token) = UnverifiedToken::parse(token) else {
            return Identified::NotAToken;
        };
        let hinted = hint
            .and_then(|h| Version::from_setting(h).ok())
            .and_then(|v| self.index.get(&v).copied());
        let after = self
            .timeline
            .partition_point(|&(t, _)| t <= token.timestamp());
        let by_time = after.checked_sub(1).map(|i| self.timeline[i].1);
        let first = [hinted, by_time, Some(self.active)];
        let firsts = first
            .into_iter()
            .enumerate()
            .filter_map(|(i, c)| c.filter(|c| !first[..i].contains(&Some(*c))));
        let rest = (0..self.keys.len())
            .rev()
            .filter(|i| !first.contains(&Some(*i)));
        let usable = firsts
            .chain(rest)
            .filter(|&i| self.keys[i].1 == VersionState::Usable);
        let retired = (0..self.keys.len())
            .rev()
            .filter(|&i| self.keys[i].1 == VersionState::Retired);
        for i in usable.chain(retired) {
            let (version, state, Some(fernet)) = &self.keys[i] else {
                continue;
            };
            token = match token.verify(fernet) {
                Ok(_) => {
                    return Identified::Version {
                        version: *version,
                        state: *state,
                    };
                }
                Err(unverified) => unverified,
            };
        }
        Identified::Unopened
    }
}
