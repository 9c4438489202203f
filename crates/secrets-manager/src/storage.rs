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
                    salt: salt.to_base64url(),
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
        persist::update_keyring(path.as_ref(), prefixes, |mut keyring| {
            for version in ours {
                keyring.upsert(version);
            }
            keyring.active = Some(active);
            Ok::<_, Error>(keyring)
        })?;
        tracing::info!(path = %path.as_ref().display(), "persisted keyring");
        Ok(())
    }
}
