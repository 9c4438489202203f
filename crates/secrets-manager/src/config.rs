//! Configuration and its builder.

use std::fmt;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;

use secrecy::{ExposeSecret as _, SecretString};

use crate::Version;
use crate::audit::{AuditEvent, AuditHook};
use crate::error::{Error, Result};
use crate::fernet::Key;
use crate::kdf::{DEFAULT_ITERATIONS, Salt};
use crate::keystore::{KeyMaterial, KeystoreError, VersionSpec, VersionState};
use crate::persist::{
    self, EnvStore, FileStore, Keyring, KeyringStore, Prefixes, StoredKey, StoredState,
    StoredVersion, WriteWarning,
};

/// A validated configuration for [`SecretsManager::new`](crate::SecretsManager::new).
///
/// Made with [`SecretsConfig::builder`].
pub struct SecretsConfig {
    pub(crate) versions: Vec<VersionSpec>,
    pub(crate) active: Version,
    pub(crate) kdf_iterations: NonZeroU32,
    pub(crate) verify_salt_integrity: bool,
    pub(crate) audit: Option<AuditHook>,
    /// Where each loaded version came from (file or environment) and its
    /// salt-hash variable, for errors found when the manager starts.
    pub(crate) origins: Vec<(Version, String, String)>,
    /// The file changes are written to, with its variable names.
    pub(crate) keyring: Option<Arc<dyn KeyringStore>>,
    pub(crate) warning: Option<WarningHook>,
}

/// Receives what a write did not manage without failing (see
/// [`SecretsConfigBuilder::warning_callback`]).
pub(crate) type WarningHook = std::sync::Arc<dyn Fn(&WriteWarning) + Send + Sync>;

impl fmt::Debug for SecretsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretsConfig")
            .field(
                "versions",
                &self.versions.iter().map(|v| v.name).collect::<Vec<_>>(),
            )
            .field("active", &self.active)
            .field("kdf_iterations", &self.kdf_iterations)
            .field("verify_salt_integrity", &self.verify_salt_integrity)
            .field("audit_callback", &self.audit.is_some())
            .field("keyring", &self.keyring.as_ref().map(|k| k.source()))
            .finish()
    }
}

impl SecretsConfig {
    /// Starts a configuration.
    #[must_use]
    pub fn builder() -> SecretsConfigBuilder {
        SecretsConfigBuilder::default()
    }

    /// The keyring in a `.env` file, with the default settings.
    ///
    /// # Errors
    ///
    /// As [`SecretsConfigBuilder::env_file`] and
    /// [`SecretsConfigBuilder::build`].
    pub fn from_env_file(path: impl AsRef<std::path::Path>) -> Result<Self> {
        Self::builder().env_file(path)?.build()
    }

    /// The keyring in the process environment, with the default settings.
    ///
    /// # Errors
    ///
    /// As [`SecretsConfigBuilder::environment`] and
    /// [`SecretsConfigBuilder::build`].
    pub fn from_environment() -> Result<Self> {
        Self::builder().environment()?.build()
    }

    /// The active version.
    #[must_use]
    pub fn active_version(&self) -> Version {
        self.active
    }

    /// The versions, in the order added.
    #[must_use]
    pub fn versions(&self) -> Vec<Version> {
        self.versions.iter().map(|v| v.name).collect()
    }
}

enum PendingSource {
    Password {
        password: SecretString,
        salt: Salt,
        salt_hash: Option<String>,
    },
    /// The key text, held as a secret until it is parsed.
    Fernet(SecretString),
    /// A destroyed version: its name only.
    Destroyed,
}

pub(crate) struct Pending {
    name: String,
    source: PendingSource,
    /// Iterations recorded for this version (files may carry them).
    iterations: Option<u32>,
    /// Retired versions load retired.
    retired: bool,
    /// For loaded versions: where from, and the salt-hash variable.
    origin: Option<(String, String)>,
    /// For loaded versions: the variable that names it, for errors.
    name_variable: Option<String>,
}

impl Pending {
    /// The version's name, checked; for a loaded version, an error names
    /// where it came from and the variable.
    pub(crate) fn version(&self) -> Result<Version> {
        Version::new(&self.name).map_err(|e| match (&self.origin, &self.name_variable) {
            (Some((origin, _)), Some(variable)) => Error::Loaded {
                origin: origin.clone(),
                variable: variable.clone(),
                source: Box::new(e.into()),
            },
            _ => e.into(),
        })
    }

    /// A version as a keyring stores it.
    pub(crate) fn stored(v: StoredVersion, source: &persist::Source, prefixes: &Prefixes) -> Self {
        let pending = match v.key {
            Some(StoredKey::Password {
                password,
                salt,
                salt_hash,
            }) => PendingSource::Password {
                password,
                salt: Salt::from(salt),
                salt_hash,
            },
            Some(StoredKey::Fernet(key)) => PendingSource::Fernet(key),
            // A destroyed version, or a kind this version of the library
            // does not know: a tombstone.
            _ => PendingSource::Destroyed,
        };
        let origin = Some((
            source.to_string(),
            format!("{}{}", prefixes.salt_hash, v.name),
        ));
        let name_variable = Some(match &pending {
            PendingSource::Fernet(_) => format!("{}{}", prefixes.fernet_key, v.name),
            PendingSource::Destroyed => format!("{}{}", prefixes.state, v.name),
            PendingSource::Password { .. } => format!("{}{}", prefixes.keys, v.name),
        });
        Self {
            name: v.name,
            source: pending,
            iterations: v.iterations,
            retired: v.state == StoredState::Retired,
            origin,
            name_variable,
        }
    }

    /// The key store's form. `iterations` is the reader's setting, for a
    /// password version with no count of its own.
    pub(crate) fn into_spec(self, name: Version, iterations: NonZeroU32) -> Result<VersionSpec> {
        let material = match self.source {
            PendingSource::Password {
                password,
                salt,
                salt_hash,
            } => {
                let recorded = match self.iterations {
                    Some(n) => Some(NonZeroU32::new(n).ok_or(Error::ZeroIterations)?),
                    None => None,
                };
                // A version given in code is derived with this
                // configuration's count, which is then its own; one loaded
                // without a record is read with the reader's setting, which
                // is not.
                let own = recorded.is_some() || self.origin.is_none();
                Some(
                    KeyMaterial::password(password, salt, recorded.unwrap_or(iterations))
                        .with_salt_hash(salt_hash)
                        .with_iterations_recorded(own),
                )
            }
            PendingSource::Fernet(text) => {
                let key =
                    Key::from_base64(text.expose_secret()).map_err(|source| Error::FernetKey {
                        version: name,
                        source,
                    })?;
                Some(KeyMaterial::Fernet(key))
            }
            PendingSource::Destroyed => None,
        };
        Ok(match material {
            Some(material) if self.retired => {
                VersionSpec::new(name, material).with_state(VersionState::Retired)
            }
            Some(material) => VersionSpec::new(name, material),
            None => VersionSpec::tombstone(name),
        })
    }
}

/// Builds a [`SecretsConfig`]. Setters never fail; [`build`](Self::build)
/// checks everything and reports the first problem, naming the version.
///
/// ```
/// use secrets_manager::{SecretsConfig, SecretsManager};
///
/// let config = SecretsConfig::builder()
///     .key("v1", "my-secret-password", "random-salt-value") // version, password, salt
///     .active_version("v1")
///     .kdf_iterations(1_000) // the default is 100_000, as in Python
///     .build()?;
/// let manager = SecretsManager::new(config)?;
/// let (version, token) = manager.encrypt(b"sensitive data")?;
/// assert_eq!(version, "v1");
/// let (_, plaintext) = manager.decrypt(&token)?;
/// assert_eq!(&*plaintext, b"sensitive data");
/// # Ok::<(), secrets_manager::Error>(())
/// ```
pub struct SecretsConfigBuilder {
    versions: Vec<Pending>,
    activated: Vec<(String, u64)>,
    active: Option<String>,
    kdf_iterations: u32,
    verify_salt_integrity: bool,
    audit: Option<AuditHook>,
    /// Files loaded, with their variable names.
    loaded: Vec<Arc<dyn KeyringStore>>,
    /// `Some(None)`: changes stay in memory; `Some(Some(..))`: this file.
    persist: Option<Option<Arc<dyn KeyringStore>>>,
    warning: Option<WarningHook>,
}

impl Default for SecretsConfigBuilder {
    fn default() -> Self {
        Self {
            versions: Vec::new(),
            activated: Vec::new(),
            active: None,
            kdf_iterations: DEFAULT_ITERATIONS.get(),
            verify_salt_integrity: true,
            audit: None,
            loaded: Vec::new(),
            persist: None,
            warning: None,
        }
    }
}

impl fmt::Debug for SecretsConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretsConfigBuilder")
            .field(
                "versions",
                &self
                    .versions
                    .iter()
                    .map(|v| v.name.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("active", &self.active)
            .field("kdf_iterations", &self.kdf_iterations)
            .field("verify_salt_integrity", &self.verify_salt_integrity)
            .field("audit_callback", &self.audit.is_some())
            .finish()
    }
}

impl SecretsConfigBuilder {
    /// Adds a version whose key is derived from `password` and `salt` with
    /// PBKDF2-HMAC-SHA256. Version names are case-insensitive.
    ///
    /// A salt given as bytes is used as is; a string is normalised as the
    /// Python package does (hex, then URL-safe base64, then UTF-8): see
    /// [`Salt`].
    #[must_use]
    pub fn key(
        self,
        version: &str,
        password: impl Into<SecretString>,
        salt: impl Into<Salt>,
    ) -> Self {
        self.add(
            version,
            PendingSource::Password {
                password: password.into(),
                salt: salt.into(),
                salt_hash: None,
            },
        )
    }

    /// As [`key`](Self::key), with the salt's expected SHA-256 (lower-case
    /// hex), checked when salt integrity verification is on.
    #[must_use]
    pub fn key_with_salt_hash(
        self,
        version: &str,
        password: impl Into<SecretString>,
        salt: impl Into<Salt>,
        salt_hash_hex: &str,
    ) -> Self {
        let salt_hash = Some(salt_hash_hex.to_owned());
        self.add(
            version,
            PendingSource::Password {
                password: password.into(),
                salt: salt.into(),
                salt_hash,
            },
        )
    }

    /// Adds a version with a raw Fernet key (44 characters of URL-safe
    /// base64, as `Fernet.generate_key()` makes): nothing to derive.
    #[must_use]
    pub fn fernet_key(self, version: &str, base64url_fernet_key: &str) -> Self {
        self.add(version, PendingSource::Fernet(base64url_fernet_key.into()))
    }

    /// A version given in code (no recorded iterations, no file origin).
    fn add(mut self, version: &str, source: PendingSource) -> Self {
        self.versions.push(Pending {
            name: version.to_owned(),
            source,
            iterations: None,
            retired: false,
            origin: None,
            name_variable: None,
        });
        self
    }

    /// Records when `version` became active (Unix seconds). Decryption tries
    /// the version that was active when a token was made first, so with many
    /// versions the cost stays flat.
    #[must_use]
    pub fn activated_at(mut self, version: &str, unix_secs: u64) -> Self {
        self.activated.push((version.to_owned(), unix_secs));
        self
    }

    /// The version that encrypts. Optional when there is exactly one.
    /// Surrounding quotes are ignored, as in the Python package.
    #[must_use]
    pub fn active_version(mut self, version: &str) -> Self {
        self.active = Some(version.to_owned());
        self
    }

    /// PBKDF2 iterations for password versions (default 100 000).
    #[must_use]
    pub fn kdf_iterations(mut self, iterations: u32) -> Self {
        self.kdf_iterations = iterations;
        self
    }

    /// Whether to check salts against their recorded hashes (default true).
    #[must_use]
    pub fn verify_salt_integrity(mut self, verify: bool) -> Self {
        self.verify_salt_integrity = verify;
        self
    }

    /// Where rotations, activations, retirements and destructions are
    /// written, under the file's lock (see
    /// [`SecretsManager::persist_to_file`](crate::SecretsManager::persist_to_file)).
    /// A configuration loaded from exactly one file writes to it unless
    /// told otherwise.
    #[must_use]
    pub fn persist_to_file(self, path: impl AsRef<Path>) -> Self {
        self.persist_to_file_with_prefixes(path, &Prefixes::default())
    }

    /// As [`persist_to_file`](Self::persist_to_file), with other variable
    /// names.
    #[must_use]
    pub fn persist_to_file_with_prefixes(
        mut self,
        path: impl AsRef<Path>,
        prefixes: &Prefixes,
    ) -> Self {
        self.persist = Some(Some(Arc::new(FileStore::with_prefixes(path, prefixes))));
        self
    }

    /// Keeps every change in memory, even for a configuration loaded from
    /// a file (a rotation can still name a file with
    /// [`Rotation::persist_to_file`](crate::Rotation::persist_to_file)).
    #[must_use]
    pub fn in_memory(mut self) -> Self {
        self.persist = Some(None);
        self
    }

    /// Called with what a file write could not do without failing: keep
    /// the file's owner, sync its directory. By default these are logged
    /// with `tracing` at warn level.
    #[must_use]
    pub fn warning_callback(
        mut self,
        callback: impl Fn(&WriteWarning) + Send + Sync + 'static,
    ) -> Self {
        self.warning = Some(std::sync::Arc::new(callback));
        self
    }

    /// Called for every [`AuditEvent`]. A panic in the callback is caught
    /// and logged; the operation still succeeds.
    #[must_use]
    pub fn audit_callback(
        mut self,
        callback: impl Fn(&AuditEvent) + Send + Sync + 'static,
    ) -> Self {
        self.audit = Some(AuditHook::new(callback));
        self
    }

    /// Adds the versions of a `.env` keyring file written by this project or
    /// by the Python package (its checksum is verified when present), with
    /// their salt hashes, iteration counts and activation times; takes its
    /// active version unless one was set.
    ///
    /// # Errors
    ///
    /// The file cannot be read or parsed, fails its checksum, or its keyring
    /// is incomplete: each error names the file and line or variable.
    pub fn env_file(self, path: impl AsRef<std::path::Path>) -> Result<Self> {
        self.env_file_with_prefixes(path, &Prefixes::default())
    }

    /// As [`env_file`](Self::env_file), with other variable names.
    ///
    /// # Errors
    ///
    /// As [`env_file`](Self::env_file).
    pub fn env_file_with_prefixes(
        self,
        path: impl AsRef<std::path::Path>,
        prefixes: &Prefixes,
    ) -> Result<Self> {
        self.keyring_store(Arc::new(FileStore::with_prefixes(path, prefixes)), prefixes)
    }

    /// Adds the versions found in the process environment (the same
    /// variables as a `.env` file; there is no checksum there).
    ///
    /// # Errors
    ///
    /// Incomplete or malformed keyring variables, naming them.
    pub fn environment(self) -> Result<Self> {
        self.environment_with_prefixes(&Prefixes::default())
    }

    /// As [`environment`](Self::environment), with other variable names.
    ///
    /// # Errors
    ///
    /// As [`environment`](Self::environment).
    pub fn environment_with_prefixes(self, prefixes: &Prefixes) -> Result<Self> {
        self.keyring_store(Arc::new(EnvStore::new(prefixes)), prefixes)
    }

    /// Adds the versions of the keyring at `url`, which becomes the
    /// manager's keyring: changes are written there and
    /// [`reload`](crate::SecretsManager::reload) and
    /// [`watch`](crate::SecretsManager::watch) follow it.
    ///
    /// | `url` | keyring |
    /// |---|---|
    /// | `PATH`, `file:PATH` | a `.env` file |
    /// | `env:` | the process environment (read-only) |
    /// | `etcd://HOST:PORT[,HOST:PORT...]/PREFIX` | an etcd cluster (the `etcd` feature) |
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("keyring-doc-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// # let path = dir.join(".env.secrets");
    /// # std::fs::write(&path, "ENCRYPTION_KEYS__v1=\"pw\"\nENCRYPTION_SALT__v1=\"c2FsdA==\"\n")?;
    /// use secrets_manager::{SecretsConfig, SecretsManager};
    ///
    /// let url = format!("file:{}", path.display());
    /// let manager = SecretsManager::new(
    ///     SecretsConfig::builder().kdf_iterations(1_000).keyring(&url)?.build()?,
    /// )?;
    /// assert_eq!(manager.active_version(), "v1");
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// An address of an unknown kind (or of a kind this build does not
    /// support); reading the keyring there, as for
    /// [`env_file`](Self::env_file).
    pub fn keyring(self, url: &str) -> Result<Self> {
        let prefixes = Prefixes::default();
        let store = crate::url::open(url, &prefixes)?;
        self.keyring_store(store, &prefixes)
    }

    /// Adds the versions of a keyring kept in `store` (a store of your
    /// own, or one from another crate), which becomes the manager's
    /// keyring as with [`keyring`](Self::keyring).
    ///
    /// # Errors
    ///
    /// Reading the keyring there.
    pub fn keyring_store(
        mut self,
        store: Arc<dyn KeyringStore>,
        prefixes: &Prefixes,
    ) -> Result<Self> {
        let keyring = store.read()?;
        let source = store.source();
        if keyring.versions().is_empty() {
            return Err(Error::EmptyKeyring {
                origin: source.to_string(),
                expected: format!("{}<v> with {}<v>", prefixes.keys, prefixes.salt),
            });
        }
        self.loaded.push(store);
        self.add_keyring(keyring, &source, prefixes)
    }

    fn add_keyring(
        mut self,
        keyring: Keyring,
        source: &persist::Source,
        prefixes: &Prefixes,
    ) -> Result<Self> {
        if self.active.is_none() {
            self.active = keyring.active_or_only(prefixes)?.map(str::to_owned);
        }
        // Files keep variables sorted by name, not in the order versions
        // were added: order them by activation time (unknown first, as the
        // oldest), which is what decryption's newest-first fallback wants.
        let mut versions = keyring.versions().to_vec();
        versions.sort_by_key(|v| v.activated_at.map_or((0, 0), |t| (1, t)));
        for v in versions {
            if let Some(t) = v.activated_at {
                self.activated.push((v.name.clone(), t));
            }
            self.versions.push(Pending::stored(v, source, prefixes));
        }
        Ok(self)
    }

    /// Checks the configuration.
    ///
    /// # Errors
    ///
    /// No versions; an invalid or duplicated version name; a malformed
    /// Fernet key or salt hash; zero iterations; no active version among
    /// several, or one that is not configured; `activated_at` for an unknown
    /// version. Salt hashes are compared when the manager is created.
    pub fn build(self) -> Result<SecretsConfig> {
        let iterations = NonZeroU32::new(self.kdf_iterations).ok_or(Error::ZeroIterations)?;
        if self.versions.is_empty() {
            return Err(KeystoreError::NoVersions.into());
        }
        let mut versions: Vec<VersionSpec> = Vec::with_capacity(self.versions.len());
        let mut origins = Vec::new();
        for pending in self.versions {
            let name = pending.version()?;
            if let Some((origin, variable)) = &pending.origin {
                origins.push((name, origin.clone(), variable.clone()));
            }
            if versions.iter().any(|v| v.name == name) {
                return Err(KeystoreError::DuplicateVersion(name).into());
            }
            versions.push(pending.into_spec(name, iterations)?);
        }
        let names: Vec<Version> = versions.iter().map(|v| v.name).collect();
        let available = || names.clone();
        for (name, when) in self.activated {
            let name = Version::new(&name)?;
            let Some(spec) = versions.iter_mut().find(|v| v.name == name) else {
                return Err(Error::UnknownVersion {
                    setting: "activated_at",
                    version: name,
                    available: available(),
                });
            };
            spec.activated_at = Some(when);
        }
        let active = match self.active {
            Some(text) => {
                let active = Version::from_setting(&text)?;
                if !versions.iter().any(|v| v.name == active) {
                    return Err(KeystoreError::UnknownActiveVersion {
                        active,
                        available: available(),
                    }
                    .into());
                }
                active
            }
            None if versions.len() == 1 => versions[0].name,
            None => {
                return Err(Error::NoActiveVersion {
                    available: available(),
                });
            }
        };
        let keyring = match self.persist {
            Some(target) => target,
            None if self.loaded.len() == 1 => self.loaded.into_iter().next(),
            None => None,
        };
        Ok(SecretsConfig {
            versions,
            active,
            kdf_iterations: iterations,
            verify_salt_integrity: self.verify_salt_integrity,
            audit: self.audit,
            origins,
            keyring,
            warning: self.warning,
        })
    }
}
