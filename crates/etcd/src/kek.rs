//! Key-encryption keys, and key material wrapped under them.
//!
//! A version's material (password, salt and salt hash, or Fernet key)
//! reaches etcd only inside a Fernet token made with a key-encryption key
//! (KEK), next to the KEK's id. The token's plaintext names the version, so
//! material moved to another version's key is refused when unwrapped.

use std::fmt;
use std::path::Path;

use secrecy::{ExposeSecret as _, SecretString};
use secrets_manager_fernet::{Fernet, Key};
use secrets_manager_persist::StoredKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::EtcdError;

/// A key-encryption key: a Fernet key that wraps every version's material
/// before it is written to etcd.
///
/// Its [`id`](Self::id) (16 hex digits of a domain-separated SHA-256 of the
/// key) is stored with each wrapped blob, so a reader knows which key
/// opens it and several keys can be held during a switch.
///
/// ```
/// use secrets_manager_etcd::Kek;
///
/// let kek = Kek::generate();
/// let same = Kek::from_base64(&kek.to_base64())?;
/// assert_eq!(kek.id(), same.id());
/// assert_eq!(kek.id().len(), 16);
/// assert!(!format!("{kek:?}").contains(kek.to_base64().as_str()));
/// # Ok::<(), secrets_manager_etcd::EtcdError>(())
/// ```
#[derive(Clone)]
pub struct Kek {
    key: Key,
    fernet: Fernet,
    id: String,
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kek").field("id", &self.id).finish()
    }
}

/// Domain separation for KEK ids: the id is no other hash of the key.
const ID_DOMAIN: &[u8] = b"secrets-manager-etcd key-encryption key id v1\n";

impl Kek {
    /// A new random key (`secrets-manager keygen` prints one too).
    #[must_use]
    pub fn generate() -> Self {
        Self::new(Key::generate())
    }

    /// A key from its text: 44 characters of URL-safe base64, as
    /// `secrets-manager keygen` prints (surrounding whitespace ignored).
    ///
    /// # Errors
    ///
    /// [`EtcdError::Setting`] naming the problem, never the text.
    pub fn from_base64(text: &str) -> Result<Self, EtcdError> {
        Self::parse(text, "key-encryption key")
    }

    /// A key from a file holding its text.
    ///
    /// # Errors
    ///
    /// The file cannot be read, or does not hold a key.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, EtcdError> {
        let path = path.as_ref();
        let text =
            Zeroizing::new(
                std::fs::read_to_string(path).map_err(|source| EtcdError::File {
                    what: "key-encryption key file",
                    path: path.to_owned(),
                    source,
                })?,
            );
        Self::parse(&text, &path.display().to_string())
    }

    pub(crate) fn parse(text: &str, setting: &str) -> Result<Self, EtcdError> {
        Key::from_base64(text.trim())
            .map(Self::new)
            .map_err(|e| EtcdError::Setting {
                setting: setting.to_owned(),
                reason: format!("not a key-encryption key: {e}"),
            })
    }

    fn new(key: Key) -> Self {
        let mut hash = Sha256::new();
        hash.update(ID_DOMAIN);
        hash.update(key.to_base64().as_bytes());
        let id = hash.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Self {
            fernet: Fernet::new(&key),
            key,
            id,
        }
    }

    /// The key's id: public, and stored with everything it wraps.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key's text.
    #[must_use]
    pub fn to_base64(&self) -> Zeroizing<String> {
        self.key.to_base64()
    }
}

/// The value of a material key in etcd: a wrapped blob and its KEK's id,
/// or (only when plaintext was allowed) the material itself.
#[derive(Serialize, Deserialize)]
pub(crate) struct Blob {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) kek: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    plain: Option<Material>,
}

/// A version's material as text, in a wrapped token or a plaintext blob.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct Material {
    version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    salt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    salt_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fernet_key: Option<String>,
    /// The version's own PBKDF2 count, bound to its material: the version
    /// record beside it cannot be swapped for one with another count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[zeroize(skip)]
    iterations: Option<u32>,
}

impl Material {
    fn new(version: &str, key: &StoredKey, iterations: Option<u32>) -> Result<Self, String> {
        let (password, salt, salt_hash, fernet_key) = match key {
            StoredKey::Password {
                password,
                salt,
                salt_hash,
            } => (
                Some(password.expose_secret().to_owned()),
                Some(salt.clone()),
                salt_hash.clone(),
                None,
            ),
            StoredKey::Fernet(key) => (None, None, None, Some(key.expose_secret().to_owned())),
            _ => {
                return Err(
                    "a kind of key this version of secrets-manager-etcd cannot store".to_owned(),
                );
            }
        };
        Ok(Self {
            version: version.to_owned(),
            password,
            salt,
            salt_hash,
            fernet_key,
            iterations,
        })
    }

    fn key(&self, version: &str, iterations: Option<u32>) -> Result<StoredKey, String> {
        if self.version != version {
            return Err(format!(
                "holds the material of version {:?}, not {version}: moved by hand, or tampered with",
                printable(&self.version)
            ));
        }
        if self.iterations != iterations {
            return Err(
                "was wrapped with another iteration count than the version record says: tampered with"
                    .to_owned(),
            );
        }
        match (&self.password, &self.salt, &self.fernet_key) {
            (Some(password), Some(salt), None) => Ok(StoredKey::Password {
                password: SecretString::from(password.clone()),
                salt: salt.clone(),
                salt_hash: self.salt_hash.clone(),
            }),
            (None, None, Some(key)) => Ok(StoredKey::Fernet(SecretString::from(key.clone()))),
            _ => Err(
                "holds neither a password and salt nor a Fernet key (exactly one is needed)"
                    .to_owned(),
            ),
        }
    }

    fn to_json(&self) -> Result<Zeroizing<Vec<u8>>, String> {
        // Room for the whole text up front: a growing buffer would leave
        // unzeroized copies behind.
        let mut out = Zeroizing::new(Vec::with_capacity(4096));
        serde_json::to_writer(&mut *out, self).map_err(|e| e.to_string())?;
        Ok(out)
    }
}

/// At most 40 characters of a name read from the store, escaped.
pub(crate) fn printable(name: &str) -> String {
    name.chars().take(40).flat_map(char::escape_debug).collect()
}

/// Wraps `version`'s material under `kek`, or writes it as it is when
/// `kek` is `None` (the caller checked that plaintext is allowed). Returns
/// the value to store.
pub(crate) fn wrap(
    version: &str,
    key: &StoredKey,
    iterations: Option<u32>,
    kek: Option<&Kek>,
) -> Result<Zeroizing<Vec<u8>>, String> {
    let material = Material::new(version, key, iterations)?;
    let blob = match kek {
        Some(kek) => Blob {
            kek: Some(kek.id.clone()),
            token: Some(kek.fernet.encrypt(&material.to_json()?)),
            plain: None,
        },
        None => Blob {
            kek: None,
            token: None,
            plain: Some(material),
        },
    };
    let mut out = Zeroizing::new(Vec::with_capacity(4096));
    serde_json::to_writer(&mut *out, &blob).map_err(|e| e.to_string())?;
    Ok(out)
}

/// What a stored blob is wrapped under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Wrapping {
    /// A KEK, by id.
    Kek(String),
    /// Nothing: plaintext.
    Plain,
}

impl Blob {
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, String> {
        // Only the kind of fault and where: serde's text quotes values, and a
        // hand-written plaintext record holds a password.
        let blob: Self = serde_json::from_slice(bytes).map_err(|e| {
            format!(
                "not a secrets-manager material record ({:?} error at line {} column {})",
                e.classify(),
                e.line(),
                e.column()
            )
        })?;
        match (&blob.kek, &blob.token, &blob.plain) {
            (Some(_), Some(_), None) | (None, None, Some(_)) => Ok(blob),
            _ => Err(
                "not a secrets-manager material record (expected kek and token, or plain)"
                    .to_owned(),
            ),
        }
    }

    pub(crate) fn wrapping(&self) -> Wrapping {
        match &self.kek {
            Some(id) => Wrapping::Kek(id.clone()),
            None => Wrapping::Plain,
        }
    }

    /// The material, unwrapped with the held KEK of the blob's id; it must
    /// have been wrapped for `version` with `iterations`.
    pub(crate) fn unwrap(
        &self,
        version: &str,
        iterations: Option<u32>,
        keks: &[Kek],
    ) -> Result<StoredKey, String> {
        match (&self.kek, &self.token, &self.plain) {
            (Some(id), Some(token), _) => {
                let kek = keks.iter().find(|k| &k.id == id).ok_or_else(|| {
                    format!(
                        "wrapped under key-encryption key {}, which this process does not hold ({})",
                        printable(id),
                        held(keks)
                    )
                })?;
                let json = kek.fernet.decrypt(token).map_err(|_| {
                    format!(
                        "cannot be unwrapped with key-encryption key {id}: tampered with, or not written by secrets-manager"
                    )
                })?;
                let material: Material = serde_json::from_slice(&json)
                    .map_err(|_| "unwraps to something that is not key material".to_owned())?;
                material.key(version, iterations)
            }
            (None, None, Some(material)) => material.key(version, iterations),
            _ => Err("not a secrets-manager material record".to_owned()),
        }
    }
}

/// The KEKs a process holds, for messages.
pub(crate) fn held(keks: &[Kek]) -> String {
    if keks.is_empty() {
        return "it holds none: set $SECRETS_MANAGER_KEK or --kek-file".to_owned();
    }
    let ids: Vec<&str> = keks.iter().map(|k| k.id.as_str()).collect();
    format!("it holds {}", ids.join(", "))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn password() -> StoredKey {
        StoredKey::Password {
            password: "sentinel-password".into(),
            salt: "sentinel-salt".into(),
            salt_hash: Some("abc123".into()),
        }
    }

    fn text(bytes: &[u8]) -> String {
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[test]
    fn wrapped_material_round_trips_and_shows_nothing() {
        let kek = Kek::generate();
        let stored = wrap("v1", &password(), Some(100_000), Some(&kek)).unwrap();
        let shown = text(&stored);
        for secret in ["sentinel-password", "sentinel-salt", "abc123"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains(kek.id()));
        let blob = Blob::parse(&stored).unwrap();
        assert_eq!(blob.wrapping(), Wrapping::Kek(kek.id().to_owned()));
        let StoredKey::Password {
            password,
            salt,
            salt_hash,
        } = blob
            .unwrap("v1", Some(100_000), std::slice::from_ref(&kek))
            .unwrap()
        else {
            panic!("kind changed")
        };
        assert_eq!(password.expose_secret(), "sentinel-password");
        assert_eq!(
            (salt.as_str(), salt_hash.as_deref()),
            ("sentinel-salt", Some("abc123"))
        );

        let fernet = StoredKey::Fernet(Key::generate().to_base64().as_str().into());
        let stored = wrap("v2", &fernet, None, Some(&kek)).unwrap();
        let back = Blob::parse(&stored)
            .unwrap()
            .unwrap("v2", None, &[kek])
            .unwrap();
        assert!(matches!(back, StoredKey::Fernet(_)));
    }

    #[test]
    fn unwrapping_needs_the_right_key_and_version() {
        let kek = Kek::generate();
        let other = Kek::generate();
        let stored = wrap("v1", &password(), Some(100_000), Some(&kek)).unwrap();
        let blob = Blob::parse(&stored).unwrap();
        let e = blob
            .unwrap("v1", Some(100_000), std::slice::from_ref(&other))
            .unwrap_err();
        assert!(e.contains(kek.id()) && e.contains(other.id()), "{e}");
        let e = blob.unwrap("v1", Some(100_000), &[]).unwrap_err();
        assert!(e.contains("SECRETS_MANAGER_KEK"), "{e}");
        // Both held: the blob's id picks the key.
        assert!(
            blob.unwrap("v1", Some(100_000), &[other.clone(), kek.clone()])
                .is_ok()
        );
        // Another iteration count in the version record is refused.
        let e = blob
            .unwrap("v1", Some(1), std::slice::from_ref(&kek))
            .unwrap_err();
        assert!(e.contains("iteration count"), "{e}");
        // Material moved to another version's key is refused.
        let e = blob
            .unwrap("v2", Some(100_000), std::slice::from_ref(&kek))
            .unwrap_err();
        assert!(e.contains("another") || e.contains("not v2"), "{e}");
        // A token forged under another key with this id is refused.
        let mut forged: serde_json::Value = serde_json::from_slice(&stored).unwrap();
        let token = other
            .fernet
            .encrypt(b"{\"version\":\"v1\",\"fernet_key\":\"x\"}");
        forged["token"] = token.into();
        let forged = serde_json::to_vec(&forged).unwrap();
        let e = Blob::parse(&forged)
            .unwrap()
            .unwrap("v1", Some(100_000), &[kek])
            .unwrap_err();
        assert!(e.contains("tampered"), "{e}");
    }

    #[test]
    fn plaintext_blobs_say_so() {
        let stored = wrap("v1", &password(), Some(100_000), None).unwrap();
        let blob = Blob::parse(&stored).unwrap();
        assert_eq!(blob.wrapping(), Wrapping::Plain);
        assert!(blob.unwrap("v1", Some(100_000), &[]).is_ok());
        for bad in [&b"{}"[..], b"[]", b"{\"kek\":\"x\"}", b"not json"] {
            assert!(Blob::parse(bad).is_err());
        }
        // A hand-written record with a password where a number goes: the
        // error says where, never what.
        let e = Blob::parse(br#"{"plain":{"version":"v1","iterations":"hunter2"}}"#)
            .map(|_| ())
            .unwrap_err();
        assert!(!e.contains("hunter2") && e.contains("line 1"), "{e}");
        let e = Blob::parse(br#"{"kek":"hunter2"}x"#)
            .map(|_| ())
            .unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn key_ids_are_stable_and_errors_hide_the_text() {
        let text = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
        let a = Kek::from_base64(text).unwrap();
        let b = Kek::from_base64(&format!("  {text}\n")).unwrap();
        assert_eq!(a.id(), b.id());
        assert_ne!(a.id(), Kek::generate().id());
        let e = Kek::from_base64("not-a-key-but-secret")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("not-a-key-but-secret"), "{e}");
    }
}
