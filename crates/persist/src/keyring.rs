//! The keyring's variables: names, values and the checksum.

use secrecy::SecretString;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{PersistError, Source};

/// Variable names. The defaults are the Python package's; every one can be
/// changed, as the Python package allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prefixes {
    /// Password of a version: `ENCRYPTION_KEYS__<version>`.
    pub keys: String,
    /// Salt (URL-safe base64): `ENCRYPTION_SALT__<version>`.
    pub salt: String,
    /// Salt hash (hex SHA-256): `ENCRYPTION_SALT_HASH__<version>`.
    pub salt_hash: String,
    /// Raw Fernet key (extension): `ENCRYPTION_FERNET_KEY__<version>`.
    pub fernet_key: String,
    /// PBKDF2 iterations when not 100 000 (extension):
    /// `ENCRYPTION_KDF_ITERATIONS__<version>`.
    pub kdf_iterations: String,
    /// Activation time, Unix seconds (extension):
    /// `ENCRYPTION_ACTIVATED_AT__<version>`.
    pub activated_at: String,
    /// The active version: `ACTIVE_ENCRYPTION_VERSION`.
    pub active: String,
    /// The file checksum: `ENCRYPTION_ENV_CHECKSUM`.
    pub checksum: String,
}

impl Default for Prefixes {
    fn default() -> Self {
        Self {
            keys: "ENCRYPTION_KEYS__".into(),
            salt: "ENCRYPTION_SALT__".into(),
            salt_hash: "ENCRYPTION_SALT_HASH__".into(),
            fernet_key: "ENCRYPTION_FERNET_KEY__".into(),
            kdf_iterations: "ENCRYPTION_KDF_ITERATIONS__".into(),
            activated_at: "ENCRYPTION_ACTIVATED_AT__".into(),
            active: "ACTIVE_ENCRYPTION_VERSION".into(),
            checksum: "ENCRYPTION_ENV_CHECKSUM".into(),
        }
    }
}

impl Prefixes {
    fn per_version(&self) -> [&str; 6] {
        [
            &self.keys,
            &self.salt,
            &self.salt_hash,
            &self.fernet_key,
            &self.kdf_iterations,
            &self.activated_at,
        ]
    }

    /// Whether a variable belongs to the keyring (and is rewritten by it).
    #[must_use]
    pub fn is_keyring_variable(&self, name: &str) -> bool {
        name == self.active
            || name == self.checksum
            || self.per_version().iter().any(|p| name.starts_with(p))
    }
}

/// A version's key as stored.
pub enum StoredKey {
    /// Password and salt, as the Python package stores them.
    Password {
        /// The password.
        password: SecretString,
        /// The salt text (URL-safe base64 when this project writes it).
        salt: String,
        /// Lower-case hex SHA-256 of the salt bytes.
        salt_hash: Option<String>,
    },
    /// A raw Fernet key (44 characters of URL-safe base64).
    Fernet(SecretString),
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Password { salt_hash, .. } => f
                .debug_struct("Password")
                .field("password", &"[REDACTED]")
                .field("salt", &"[REDACTED]")
                .field("salt_hash", &salt_hash.as_ref().map(|_| "[present]"))
                .finish(),
            Self::Fernet(_) => f.write_str("Fernet([REDACTED])"),
        }
    }
}

/// One version as stored.
#[derive(Debug)]
pub struct StoredVersion {
    /// Lower-cased name.
    pub name: String,
    /// Its key.
    pub key: StoredKey,
    /// PBKDF2 iterations, when recorded.
    pub iterations: Option<u32>,
    /// Activation time, when recorded.
    pub activated_at: Option<u64>,
}

/// A keyring as stored in a file or the environment.
#[derive(Debug, Default)]
pub struct Keyring {
    /// Versions, in the order they first appear (sorted by name for the
    /// environment).
    pub versions: Vec<StoredVersion>,
    /// The active version, lower-cased.
    pub active: Option<String>,
}

impl Keyring {
    /// The version named `name`, if any.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&StoredVersion> {
        self.versions.iter().find(|v| v.name == name)
    }

    /// Adds `version`, or replaces the version of the same name.
    pub fn upsert(&mut self, version: StoredVersion) {
        match self.versions.iter_mut().find(|v| v.name == version.name) {
            Some(slot) => *slot = version,
            None => self.versions.push(version),
        }
    }

    /// The active version: the recorded one, or the only one.
    ///
    /// # Errors
    ///
    /// [`PersistError::NoActive`] with several versions and none recorded.
    pub fn active_or_only(
        &self,
        source: &Source,
        prefixes: &Prefixes,
    ) -> Result<Option<&str>, PersistError> {
        if let Some(a) = &self.active {
            return Ok(Some(a));
        }
        match self.versions.as_slice() {
            [] => Ok(None),
            [only] => Ok(Some(&only.name)),
            many => Err(PersistError::NoActive {
                origin: source.clone(),
                variable: prefixes.active.clone(),
                count: many.len(),
                versions: many
                    .iter()
                    .map(|v| v.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }
}

type Vars<'a> = &'a [(String, Option<Zeroizing<String>>)];

/// Reads the keyring out of resolved variables.
pub(crate) fn from_vars(
    vars: Vars<'_>,
    source: &Source,
    prefixes: &Prefixes,
) -> Result<Keyring, PersistError> {
    let get = |name: &str| {
        vars.iter()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    };
    let invalid = |variable: &str, problem: String| PersistError::Invalid {
        origin: source.clone(),
        variable: variable.to_owned(),
        problem,
    };
    let value_of = |variable: &str| -> Result<Option<Zeroizing<String>>, PersistError> {
        match get(variable) {
            None => Ok(None),
            Some(None) => Err(invalid(variable, "has no value (no '=')".into())),
            Some(Some(v)) => Ok(Some(v.clone())),
        }
    };

    let mut names: Vec<(String, &str)> = Vec::new();
    for (k, _) in vars {
        for prefix in [&prefixes.keys, &prefixes.fernet_key] {
            if let Some(suffix) = k.strip_prefix(prefix.as_str()) {
                let name = suffix.to_ascii_lowercase();
                if suffix.is_empty() {
                    return Err(invalid(k, "names no version".into()));
                }
                if !names.iter().any(|(n, _)| *n == name) {
                    names.push((name, prefix));
                }
            }
        }
    }

    let mut keyring = Keyring::default();
    for (name, _) in &names {
        let var = |prefix: &str| format!("{prefix}{name}");
        let password = value_of(&var(&prefixes.keys))?;
        let fernet = value_of(&var(&prefixes.fernet_key))?;
        let key = match (password, fernet) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    &var(&prefixes.fernet_key),
                    format!(
                        "version {name} has both a password ({}) and a Fernet key",
                        var(&prefixes.keys)
                    ),
                ));
            }
            (Some(password), None) => {
                let salt =
                    value_of(&var(&prefixes.salt))?.ok_or_else(|| PersistError::Missing {
                        origin: source.clone(),
                        version: name.clone(),
                        variable: var(&prefixes.salt),
                    })?;
                let salt_hash = value_of(&var(&prefixes.salt_hash))?.map(|h| h.to_string());
                StoredKey::Password {
                    password: SecretString::from(password.to_string()),
                    salt: salt.to_string(),
                    salt_hash,
                }
            }
            (None, Some(key)) => StoredKey::Fernet(SecretString::from(key.to_string())),
            (None, None) => continue,
        };
        let iterations =
            match value_of(&var(&prefixes.kdf_iterations))? {
                None => None,
                Some(v) => Some(v.trim().parse::<u32>().ok().filter(|&n| n > 0).ok_or_else(
                    || {
                        invalid(
                            &var(&prefixes.kdf_iterations),
                            "must be a whole number from 1 to 4294967295".into(),
                        )
                    },
                )?),
            };
        let activated_at = match value_of(&var(&prefixes.activated_at))? {
            None => None,
            Some(v) => Some(v.trim().parse::<u64>().map_err(|_| {
                invalid(
                    &var(&prefixes.activated_at),
                    "must be Unix seconds (a whole number)".into(),
                )
            })?),
        };
        keyring.versions.push(StoredVersion {
            name: name.clone(),
            key,
            iterations,
            activated_at,
        });
    }

    if let Some(active) = value_of(&prefixes.active)? {
        let active = active
            .trim()
            .trim_matches(|c| c == '"' || c == '\'')
            .to_ascii_lowercase();
        if keyring.get(&active).is_none() {
            let available = keyring
                .versions
                .iter()
                .map(|v| v.name.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            return Err(invalid(
                &prefixes.active,
                format!(
                    "names version {active}, which has no key here (available: {})",
                    if available.is_empty() {
                        "none"
                    } else {
                        &available
                    }
                ),
            ));
        }
        keyring.active = Some(active);
    }
    Ok(keyring)
}

/// The keyring's variables, to write: `(name, value)`, unsorted.
pub(crate) fn to_vars(keyring: &Keyring, prefixes: &Prefixes) -> Vec<(String, Zeroizing<String>)> {
    use secrecy::ExposeSecret;
    let mut out = Vec::new();
    for v in &keyring.versions {
        let var = |prefix: &str| format!("{prefix}{}", v.name);
        match &v.key {
            StoredKey::Password {
                password,
                salt,
                salt_hash,
            } => {
                out.push((
                    var(&prefixes.keys),
                    Zeroizing::new(password.expose_secret().to_owned()),
                ));
                out.push((var(&prefixes.salt), Zeroizing::new(salt.clone())));
                if let Some(h) = salt_hash {
                    out.push((var(&prefixes.salt_hash), Zeroizing::new(h.clone())));
                }
                if let Some(n) = v.iterations.filter(|&n| n != 100_000) {
                    out.push((var(&prefixes.kdf_iterations), Zeroizing::new(n.to_string())));
                }
            }
            StoredKey::Fernet(key) => {
                out.push((
                    var(&prefixes.fernet_key),
                    Zeroizing::new(key.expose_secret().to_owned()),
                ));
            }
        }
        if let Some(t) = v.activated_at {
            out.push((var(&prefixes.activated_at), Zeroizing::new(t.to_string())));
        }
    }
    if let Some(active) = &keyring.active {
        out.push((prefixes.active.clone(), Zeroizing::new(active.clone())));
    }
    out
}

/// The seed's checksum: lower-case hex SHA-256 of `NAME=value` for every
/// variable but the checksum itself, sorted by name, joined with `\n`. A
/// variable without a value is `NAME=None`, as Python formats it.
pub(crate) fn checksum(vars: Vars<'_>, checksum_var: &str) -> String {
    let mut lines: Vec<Zeroizing<String>> = vars
        .iter()
        .filter(|(k, _)| k != checksum_var)
        .map(|(k, v)| Zeroizing::new(format!("{k}={}", v.as_ref().map_or("None", |v| v.as_str()))))
        .collect();
    lines.sort_by(|a, b| {
        let key = |l: &str| {
            l.split_once('=')
                .map_or(String::new(), |(k, _)| k.to_owned())
        };
        key(a).cmp(&key(b))
    });
    let mut hasher = Sha256::new();
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            hasher.update(b"\n");
        }
        hasher.update(line.as_bytes());
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
