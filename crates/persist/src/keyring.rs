//! The keyring's variables: names, values, the lifecycle and the checksum.
//!
//! A [`Keyring`] can only grow and move forward: versions are added, never
//! replaced; states only advance (usable, retired, destroyed); the active
//! pointer moves only to a usable version. The file writer turns the
//! difference between the keyring as loaded and as edited into new lines,
//! keeping every existing line as it was.

use std::collections::HashMap;

use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{PersistError, Source};

/// Variable names. The defaults are the Python package's; every one can be
/// changed, as the Python package allows.
///
/// ```
/// use secrets_manager_persist::Prefixes;
///
/// let mut prefixes = Prefixes::default();
/// prefixes.keys = "APP_KEYS__".into();
/// assert!(prefixes.is_keyring_variable("APP_KEYS__v1"));
/// assert!(prefixes.is_keyring_variable("ENCRYPTION_STATE__v1"));
/// assert!(!prefixes.is_keyring_variable("DATABASE_URL"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Prefixes {
    /// Password of a version: `ENCRYPTION_KEYS__<version>`.
    pub keys: String,
    /// Salt (URL-safe base64): `ENCRYPTION_SALT__<version>`.
    pub salt: String,
    /// Salt hash (hex SHA-256): `ENCRYPTION_SALT_HASH__<version>`.
    pub salt_hash: String,
    /// Raw Fernet key (extension): `ENCRYPTION_FERNET_KEY__<version>`.
    pub fernet_key: String,
    /// PBKDF2 iterations belonging to a version (extension):
    /// `ENCRYPTION_KDF_ITERATIONS__<version>`.
    pub kdf_iterations: String,
    /// Activation time, Unix seconds (extension):
    /// `ENCRYPTION_ACTIVATED_AT__<version>`.
    pub activated_at: String,
    /// Lifecycle state, `retired` or `destroyed` (extension):
    /// `ENCRYPTION_STATE__<version>`.
    pub state: String,
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
            state: "ENCRYPTION_STATE__".into(),
            active: "ACTIVE_ENCRYPTION_VERSION".into(),
            checksum: "ENCRYPTION_ENV_CHECKSUM".into(),
        }
    }
}

impl Prefixes {
    fn per_version(&self) -> [&str; 7] {
        [
            &self.keys,
            &self.salt,
            &self.salt_hash,
            &self.fernet_key,
            &self.kdf_iterations,
            &self.activated_at,
            &self.state,
        ]
    }

    /// The variables that hold a version's key material, which destroying
    /// it erases.
    pub(crate) fn material(&self) -> [&str; 4] {
        [&self.keys, &self.salt, &self.salt_hash, &self.fernet_key]
    }

    /// Whether a variable belongs to the keyring.
    #[must_use]
    pub fn is_keyring_variable(&self, name: &str) -> bool {
        name == self.active
            || name == self.checksum
            || self.per_version().iter().any(|p| name.starts_with(p))
    }

    /// Whether a variable belongs to the keyring, its name in any case (as
    /// the keyring reads a file).
    #[must_use]
    pub fn is_keyring_variable_any_case(&self, name: &str) -> bool {
        is_keyring_variable_any_case(self, name)
    }
}

/// A version's key as stored.
#[derive(Clone)]
#[non_exhaustive]
pub enum StoredKey {
    /// Password and salt, as the Python package stores them.
    Password {
        /// The password.
        password: SecretString,
        /// The salt text (URL-safe base64, or hex where the base64 text
        /// would read back as hex, when this project writes it).
        salt: String,
        /// Lower-case hex SHA-256 of the salt bytes.
        salt_hash: Option<String>,
    },
    /// A raw Fernet key (44 characters of URL-safe base64).
    Fernet(SecretString),
}

impl StoredKey {
    /// Whether both hold the same texts.
    fn same_text(&self, other: &Self) -> bool {
        match (self, other) {
            (
                Self::Password {
                    password: p1,
                    salt: s1,
                    salt_hash: h1,
                },
                Self::Password {
                    password: p2,
                    salt: s2,
                    salt_hash: h2,
                },
            ) => p1.expose_secret() == p2.expose_secret() && s1 == s2 && h1 == h2,
            (Self::Fernet(k1), Self::Fernet(k2)) => k1.expose_secret() == k2.expose_secret(),
            _ => false,
        }
    }
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

/// A version's standing in its lifecycle. States only move forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum StoredState {
    /// Encrypts (if active) and decrypts. Not written: a version without a
    /// state variable is usable.
    Usable,
    /// No longer decrypts; its key is kept. The Python package does not
    /// know this state and still decrypts with the version.
    Retired,
    /// Its key material is erased from the file; the name stays as a
    /// tombstone, so the version never comes back and the name is never
    /// reused. The Python package does not see the version at all.
    Destroyed,
}

impl StoredState {
    /// The state variable's value (`None` for usable: no variable).
    #[must_use]
    pub fn as_value(self) -> Option<&'static str> {
        match self {
            Self::Usable => None,
            Self::Retired => Some("retired"),
            Self::Destroyed => Some("destroyed"),
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "" | "usable" => Some(Self::Usable),
            "retired" => Some(Self::Retired),
            "destroyed" => Some(Self::Destroyed),
            _ => None,
        }
    }
}

/// One version as stored.
///
/// ```
/// use secrets_manager_persist::{StoredKey, StoredState, StoredVersion};
///
/// let v = StoredVersion::new("V1", StoredKey::Fernet("...".into()))
///     .with_activated_at(Some(1_700_000_000));
/// assert_eq!(v.name, "v1");
/// assert_eq!(v.state, StoredState::Usable);
/// assert!(StoredVersion::tombstone("v0").key.is_none());
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct StoredVersion {
    /// Lower-cased name.
    pub name: String,
    /// Its key; `None` once destroyed.
    pub key: Option<StoredKey>,
    /// PBKDF2 iterations, when recorded for the version.
    pub iterations: Option<u32>,
    /// Activation time, when recorded.
    pub activated_at: Option<u64>,
    /// Its lifecycle state.
    pub state: StoredState,
}

impl StoredVersion {
    /// A usable version (the name is lower-cased).
    #[must_use]
    pub fn new(name: &str, key: StoredKey) -> Self {
        Self {
            name: name.to_lowercase(),
            key: Some(key),
            iterations: None,
            activated_at: None,
            state: StoredState::Usable,
        }
    }

    /// A destroyed version: a name and no key.
    #[must_use]
    pub fn tombstone(name: &str) -> Self {
        Self {
            name: name.to_lowercase(),
            key: None,
            iterations: None,
            activated_at: None,
            state: StoredState::Destroyed,
        }
    }

    /// Records the version's PBKDF2 iteration count.
    #[must_use]
    pub fn with_iterations(mut self, iterations: Option<u32>) -> Self {
        self.iterations = iterations;
        self
    }

    /// Records when the version became active.
    #[must_use]
    pub fn with_activated_at(mut self, unix_secs: Option<u64>) -> Self {
        self.activated_at = unix_secs;
        self
    }

    /// Sets the state (destroyed drops the key).
    #[must_use]
    pub fn with_state(mut self, state: StoredState) -> Self {
        self.state = state;
        if state == StoredState::Destroyed {
            self.key = None;
        }
        self
    }

    /// Whether both say exactly the same thing.
    fn same_as(&self, other: &Self) -> bool {
        self.name == other.name
            && self.iterations == other.iterations
            && self.activated_at == other.activated_at
            && self.state == other.state
            && match (&self.key, &other.key) {
                (Some(a), Some(b)) => a.same_text(b),
                (None, None) => true,
                _ => false,
            }
    }
}

/// A keyring as stored in a file or the environment.
///
/// It only moves forward: [`add`](Self::add) never replaces a version,
/// states only advance, and the active version must be usable. A file
/// write ([`update_keyring`](crate::update_keyring)) turns what changed
/// into new lines and keeps every existing line byte for byte.
#[derive(Debug, Clone)]
pub struct Keyring {
    origin: Source,
    /// In the order they first appear (sorted by name for the
    /// environment), then the ones added.
    versions: Vec<StoredVersion>,
    index: HashMap<String, usize>,
    active: Option<String>,
    /// As loaded: how many versions, their states and the active
    /// variable's value, to tell what changed.
    pub(crate) loaded: Loaded,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Loaded {
    pub(crate) len: usize,
    pub(crate) states: Vec<StoredState>,
    pub(crate) activated_at: Vec<Option<u64>>,
    pub(crate) active: Option<String>,
}

impl Keyring {
    /// An empty keyring for `origin` (used in messages).
    #[must_use]
    pub fn new(origin: Source) -> Self {
        Self {
            origin,
            versions: Vec::new(),
            index: HashMap::new(),
            active: None,
            loaded: Loaded::default(),
        }
    }

    /// Where the keyring came from.
    #[must_use]
    pub fn origin(&self) -> &Source {
        &self.origin
    }

    /// Every version, tombstones included.
    #[must_use]
    pub fn versions(&self) -> &[StoredVersion] {
        &self.versions
    }

    /// The version named `name` (case-insensitive), if any.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&StoredVersion> {
        self.index
            .get(&name.to_lowercase())
            .map(|&i| &self.versions[i])
    }

    /// The recorded active version, lower-cased.
    #[must_use]
    pub fn active(&self) -> Option<&str> {
        self.active.as_deref()
    }

    /// Whether anything was added or changed since it was loaded.
    #[must_use]
    pub fn is_changed(&self) -> bool {
        self.versions.len() != self.loaded.len
            || self.active != self.loaded.active
            || self
                .versions
                .iter()
                .zip(self.loaded.states.iter().zip(&self.loaded.activated_at))
                .any(|(v, (s, t))| v.state != *s || v.activated_at != *t)
    }

    /// Adds a version.
    ///
    /// # Errors
    ///
    /// [`PersistError::VersionExists`] when a version of that name (in any
    /// case) is already there: versions are never replaced. Callers that
    /// may be adding the same material again compare it first with
    /// [`get`](Self::get).
    pub fn add(&mut self, version: StoredVersion) -> Result<(), PersistError> {
        let name = version.name.to_lowercase();
        if self.index.contains_key(&name) {
            return Err(PersistError::VersionExists {
                origin: self.origin.clone(),
                version: name,
            });
        }
        let version = StoredVersion { name, ..version };
        let version = if version.key.is_none() {
            version.with_state(StoredState::Destroyed)
        } else {
            version
        };
        self.index.insert(version.name.clone(), self.versions.len());
        self.versions.push(version);
        Ok(())
    }

    fn position(&self, name: &str) -> Result<usize, PersistError> {
        self.index
            .get(&name.to_lowercase())
            .copied()
            .ok_or_else(|| PersistError::UnknownVersion {
                origin: self.origin.clone(),
                version: name.to_lowercase(),
                available: self.names(),
            })
    }

    fn names(&self) -> String {
        if self.versions.is_empty() {
            return "none".into();
        }
        self.versions
            .iter()
            .map(|v| v.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Makes a usable version the active one.
    ///
    /// # Errors
    ///
    /// An unknown, retired or destroyed version.
    pub fn set_active(&mut self, name: &str) -> Result<(), PersistError> {
        self.set_active_at(name, None)
    }

    /// Makes a usable version the active one, recording when (if given).
    ///
    /// # Errors
    ///
    /// An unknown, retired or destroyed version.
    pub fn set_active_at(
        &mut self,
        name: &str,
        unix_secs: Option<u64>,
    ) -> Result<(), PersistError> {
        let i = self.position(name)?;
        let v = &self.versions[i];
        if v.state != StoredState::Usable {
            return Err(PersistError::NotUsable {
                origin: self.origin.clone(),
                version: v.name.clone(),
                state: v.state,
            });
        }
        self.active = Some(v.name.clone());
        if unix_secs.is_some() {
            self.versions[i].activated_at = unix_secs;
        }
        Ok(())
    }

    /// Retires a version (a destroyed one stays destroyed). Returns whether
    /// anything changed.
    ///
    /// # Errors
    ///
    /// An unknown version, or the active one.
    pub fn retire(&mut self, name: &str) -> Result<bool, PersistError> {
        self.advance(name, StoredState::Retired)
    }

    /// Destroys a version: its key material is erased, its name kept.
    /// Returns whether anything changed.
    ///
    /// # Errors
    ///
    /// An unknown version, or the active one.
    pub fn destroy(&mut self, name: &str) -> Result<bool, PersistError> {
        self.advance(name, StoredState::Destroyed)
    }

    /// The active version: the recorded one, or the only version the
    /// keyring was loaded with (the Python package's rule).
    fn effective_active(&self) -> Option<&str> {
        match (&self.active, self.loaded.len) {
            (Some(a), _) => Some(a),
            (None, 1) => Some(&self.versions[0].name)
                .filter(|_| self.versions[0].state == StoredState::Usable),
            _ => None,
        }
        .map(String::as_str)
    }

    /// Records an implicit active version once there are several: a file
    /// with more than one version and no active variable cannot be read.
    pub(crate) fn pin_implicit_active(&mut self) {
        if self.active.is_none() && self.versions.len() > 1 {
            self.active = self.effective_active().map(str::to_owned);
        }
    }

    fn advance(&mut self, name: &str, state: StoredState) -> Result<bool, PersistError> {
        let i = self.position(name)?;
        if self.versions[i].state >= state {
            return Ok(false);
        }
        let active = self.effective_active().map(str::to_owned);
        let v = &mut self.versions[i];
        if active.as_deref() == Some(v.name.as_str()) {
            return Err(PersistError::ActiveVersion {
                origin: self.origin.clone(),
                version: v.name.clone(),
            });
        }
        v.state = state;
        if state == StoredState::Destroyed {
            v.key = None;
        }
        Ok(true)
    }

    /// The active version: the recorded one, or the only one.
    ///
    /// # Errors
    ///
    /// [`PersistError::NoActive`] with several versions and none recorded.
    pub fn active_or_only(&self, prefixes: &Prefixes) -> Result<Option<&str>, PersistError> {
        if let Some(a) = &self.active {
            return Ok(Some(a));
        }
        let mut usable = self
            .versions
            .iter()
            .filter(|v| v.state != StoredState::Destroyed);
        match (usable.next(), usable.next()) {
            (None, _) => Ok(None),
            (Some(only), None) if self.versions.len() == 1 => Ok(Some(&only.name)),
            _ => Err(PersistError::NoActive {
                origin: self.origin.clone(),
                variable: prefixes.active.clone(),
                count: self.versions.len(),
                versions: self.names(),
            }),
        }
    }

    /// Whether both hold the same versions, states and active version.
    pub(crate) fn same_as(&self, other: &Self) -> bool {
        self.active == other.active
            && self.versions.len() == other.versions.len()
            && self
                .versions
                .iter()
                .all(|v| other.get(&v.name).is_some_and(|o| v.same_as(o)))
    }
}

type Vars<'a> = &'a [(String, Option<Zeroizing<String>>)];

/// Reads the keyring out of resolved variables.
pub(crate) fn from_vars(
    vars: Vars<'_>,
    source: &Source,
    prefixes: &Prefixes,
) -> Result<Keyring, PersistError> {
    // Keyring variables by lower-cased name; two spellings of one name
    // would leave it unclear which a reader takes.
    let mut by_name: HashMap<String, usize> = HashMap::new();
    for (i, (k, _)) in vars.iter().enumerate() {
        if !is_keyring_variable_any_case(prefixes, k) {
            continue;
        }
        if let Some(&first) = by_name.get(&k.to_lowercase())
            && vars[first].0 != *k
        {
            return Err(PersistError::Invalid {
                origin: source.clone(),
                variable: k.clone(),
                problem: format!(
                    "{} names the same variable in another case; keep one",
                    vars[first].0
                ),
            });
        }
        by_name.insert(k.to_lowercase(), i);
    }
    let get = |name: &str| by_name.get(&name.to_lowercase()).map(|&i| &vars[i].1);
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

    let mut names: Vec<String> = Vec::new();
    let mut seen: HashMap<String, ()> = HashMap::new();
    for (k, _) in vars {
        for prefix in [&prefixes.keys, &prefixes.fernet_key, &prefixes.state] {
            if let Some(suffix) = k.strip_prefix(prefix.as_str()) {
                if suffix.is_empty() {
                    return Err(invalid(k, "names no version".into()));
                }
                let name = suffix.to_lowercase();
                if seen.insert(name.clone(), ()).is_none() {
                    names.push(name);
                }
            }
        }
    }

    let mut keyring = Keyring::new(source.clone());
    for name in &names {
        let var = |prefix: &str| format!("{prefix}{name}");
        let state = match value_of(&var(&prefixes.state))? {
            None => StoredState::Usable,
            Some(text) => StoredState::parse(&text).ok_or_else(|| {
                invalid(
                    &var(&prefixes.state),
                    "must be 'retired' or 'destroyed'".into(),
                )
            })?,
        };
        let password = value_of(&var(&prefixes.keys))?;
        let fernet = value_of(&var(&prefixes.fernet_key))?;
        let key = match (password, fernet) {
            // A destroyed version's material, if any is left, is ignored
            // (and erased by the next write).
            _ if state == StoredState::Destroyed => None,
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
                Some(StoredKey::Password {
                    password: SecretString::from(password.to_string()),
                    salt: salt.to_string(),
                    salt_hash,
                })
            }
            (None, Some(key)) => Some(StoredKey::Fernet(SecretString::from(key.to_string()))),
            (None, None) => {
                return Err(PersistError::Missing {
                    origin: source.clone(),
                    version: name.clone(),
                    variable: var(&prefixes.keys),
                });
            }
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
        keyring.add(StoredVersion {
            name: name.clone(),
            key,
            iterations,
            activated_at,
            state,
        })?;
    }

    if let Some(active) = value_of(&prefixes.active)? {
        let active = active
            .trim()
            .trim_matches(|c| c == '"' || c == '\'')
            .to_lowercase();
        match keyring.get(&active) {
            None => {
                return Err(invalid(
                    &prefixes.active,
                    format!(
                        "names version {active}, which has no key here (available: {})",
                        keyring.names()
                    ),
                ));
            }
            Some(v) if v.state != StoredState::Usable => {
                return Err(invalid(
                    &prefixes.active,
                    format!(
                        "names version {active}, which is {}",
                        v.state.as_value().unwrap_or("usable")
                    ),
                ));
            }
            Some(_) => keyring.active = Some(active),
        }
    }
    keyring.loaded = Loaded {
        len: keyring.versions.len(),
        states: keyring.versions.iter().map(|v| v.state).collect(),
        activated_at: keyring.versions.iter().map(|v| v.activated_at).collect(),
        active: keyring.active.clone(),
    };
    Ok(keyring)
}

pub(crate) fn is_keyring_variable_any_case(prefixes: &Prefixes, name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    let p = |s: &str| s.to_ascii_uppercase();
    upper == p(&prefixes.active)
        || upper == p(&prefixes.checksum)
        || prefixes
            .per_version()
            .iter()
            .any(|prefix| upper.starts_with(&p(prefix)))
}

/// A version's variables, to write: `(name, value)`.
pub(crate) fn version_vars(
    v: &StoredVersion,
    prefixes: &Prefixes,
) -> Vec<(String, Zeroizing<String>)> {
    let var = |prefix: &str| format!("{prefix}{}", v.name);
    let mut out = Vec::new();
    match &v.key {
        Some(StoredKey::Password {
            password,
            salt,
            salt_hash,
        }) => {
            out.push((
                var(&prefixes.keys),
                Zeroizing::new(password.expose_secret().to_owned()),
            ));
            out.push((var(&prefixes.salt), Zeroizing::new(salt.clone())));
            if let Some(h) = salt_hash {
                out.push((var(&prefixes.salt_hash), Zeroizing::new(h.clone())));
            }
        }
        Some(StoredKey::Fernet(key)) => {
            out.push((
                var(&prefixes.fernet_key),
                Zeroizing::new(key.expose_secret().to_owned()),
            ));
        }
        None => {}
    }
    if let Some(n) = v.iterations {
        out.push((var(&prefixes.kdf_iterations), Zeroizing::new(n.to_string())));
    }
    if let Some(t) = v.activated_at {
        out.push((var(&prefixes.activated_at), Zeroizing::new(t.to_string())));
    }
    if let Some(state) = v.state.as_value() {
        out.push((var(&prefixes.state), Zeroizing::new(state.to_owned())));
    }
    out
}

/// The seed's checksum: lower-case hex SHA-256 of `NAME=value` for every
/// variable but the checksum itself, sorted by name, joined with `\n`. A
/// variable without a value is `NAME=None`, as Python formats it.
pub(crate) fn checksum(vars: Vars<'_>, checksum_var: &str) -> String {
    let mut lines: Vec<(&str, Zeroizing<String>)> = vars
        .iter()
        .filter(|(k, _)| k != checksum_var)
        .map(|(k, v)| {
            (
                k.as_str(),
                Zeroizing::new(format!("{k}={}", v.as_ref().map_or("None", |v| v.as_str()))),
            )
        })
        .collect();
    lines.sort_by(|a, b| a.0.cmp(b.0));
    let mut hasher = Sha256::new();
    for (i, (_, line)) in lines.iter().enumerate() {
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
