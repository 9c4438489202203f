//! Encryption under the active version.

use super::KeyStore;
use crate::error::KeystoreError;
use crate::stats::Counter;
use crate::version::Version;

impl KeyStore {
    /// Encrypts under the active version, stamped with the current time.
    ///
    /// # Errors
    ///
    /// After [`cleanup`](Self::cleanup), or if the active key cannot be
    /// derived.
    #[inline]
    pub fn encrypt(&self, msg: &[u8]) -> Result<(Version, String), KeystoreError> {
        self.encrypt_at_time(msg, secrets_manager_fernet::unix_time())
    }

    /// Encrypts under the active version, stamped with `timestamp`.
    ///
    /// # Errors
    ///
    /// As [`encrypt`](Self::encrypt).
    #[inline]
    pub fn encrypt_at_time(
        &self,
        msg: &[u8],
        timestamp: u64,
    ) -> Result<(Version, String), KeystoreError> {
        let state = self.state();
        let ring = state.live()?;
        let entry = &ring.entries[ring.encrypting_at(timestamp)];
        match self.with_fernet(entry, |f| f.encrypt_at_time(msg, timestamp)) {
            Ok(token) => {
                self.counters.add(Counter::Encryptions, 1);
                Ok((entry.name, token))
            }
            Err(e) => {
                self.counters.add(Counter::ExtraLookups, 1);
                Err(e)
            }
        }
    }
}
