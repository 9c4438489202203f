//! Writing the manager's keyring to a `.env` file.

use std::path::Path;

use secrecy::ExposeSecret as _;

use crate::error::Result;
use crate::keystore::KeyMaterial;
use crate::persist::{self, Prefixes, StoredKey, StoredVersion};
use crate::{Error, SecretsManager};

impl SecretsManager {
    /// Writes every version and the active pointer to a `.env` keyring file
    /// the Python package reads, merging under the file's lock: versions
    /// already in the file are kept, this manager's are added or updated,
    /// and the active version is set. Comments and other variables are kept
    /// byte for byte. Atomic and durable; a new file gets mode 0600.
    ///
    /// # Errors
    ///
    /// The file exists but cannot be read, parsed or verified; a value
    /// python-dotenv could not read back; a file-system error; after
    /// cleanup.
    pub fn persist_to_file(&self, path: impl AsRef<Path>) -> Result<()> {
        self.persist_to_file_with_prefixes(path, &Prefixes::default())
    }

    /// As [`persist_to_file`](Self::persist_to_file), with other variable
    /// names.
    ///
    /// # Errors
    ///
    /// As [`persist_to_file`](Self::persist_to_file).
    pub fn persist_to_file_with_prefixes(
        &self,
        path: impl AsRef<Path>,
        prefixes: &Prefixes,
    ) -> Result<()> {
        self.write_keyring(path.as_ref(), prefixes, false)
    }

    /// Writes the keyring to a new `.env` file, or one that holds no keys
    /// yet (other variables are kept). The check and the write happen under
    /// the file's lock, so two processes cannot both initialise it.
    ///
    /// # Errors
    ///
    /// [`Error::KeyringExists`] when the file already holds keys; otherwise
    /// as [`persist_to_file`](Self::persist_to_file).
    pub fn create_keyring_file(&self, path: impl AsRef<Path>) -> Result<()> {
        self.write_keyring(path.as_ref(), &Prefixes::default(), true)
    }

    fn write_keyring(&self, path: &Path, prefixes: &Prefixes, must_be_empty: bool) -> Result<()> {
        let mut ours = Vec::new();
        self.store().for_each_material(|info, material| {
            let key = match material {
                KeyMaterial::Password {
                    password,
                    salt,
                    salt_hash,
                    ..
                } => StoredKey::Password {
                    password: password.expose_secret().into(),
                    salt: salt.to_text(),
                    salt_hash: Some(salt_hash.clone().unwrap_or_else(|| salt.sha256_hex())),
                },
                KeyMaterial::Fernet(key) => StoredKey::Fernet(key.to_base64().as_str().into()),
            };
            ours.push(StoredVersion {
                name: info.version.to_string(),
                key,
                iterations: info.iterations,
                activated_at: info.activated_at,
            });
        })?;
        let active = self.store().active_version()?.to_string();
        persist::update_keyring(path, prefixes, |mut keyring| {
            if must_be_empty && !keyring.versions.is_empty() {
                return Err(Error::KeyringExists {
                    path: path.to_owned(),
                });
            }
            for version in ours {
                keyring.upsert(version);
            }
            keyring.active = Some(active);
            Ok::<_, Error>(keyring)
        })?;
        tracing::info!(path = %path.display(), "persisted keyring");
        Ok(())
    }
}
