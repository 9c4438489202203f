//! Secrets in locked memory, and how well the operating system protects
//! them.

use std::fmt;

use subtle::ConstantTimeEq as _;

use crate::os::secure::LockedBytes;

/// How the operating system protects this process's key material: the
/// memory of every [`Key`](crate::Key), [`Fernet`](crate::Fernet) and
/// [`SecretBytes`] is locked in RAM (never swapped out) and left out of core
/// dumps where the OS allows it.
///
/// Locking fails when `RLIMIT_MEMLOCK` is too low (`ulimit -l`; many
/// containers allow 64 KiB or nothing) and the process lacks
/// `CAP_IPC_LOCK`. Keys then keep working, in memory that may be swapped
/// out; this status says so, for the application to log or refuse. Counts
/// are of pages set aside for key material (in use or free), not of the
/// secrets in them.
///
/// ```
/// let f = secrets_manager_fernet::Fernet::new(&secrets_manager_fernet::Key::generate());
/// let status = secrets_manager_fernet::secure_memory_status();
/// if !status.is_fully_protected() {
///     eprintln!("warning: key material may be swapped or dumped: {status}");
/// }
/// # drop(f);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SecureMemoryStatus {
    /// Bytes locked in RAM.
    pub locked_bytes: usize,
    /// Bytes the OS refused to lock; in use all the same.
    pub unlocked_bytes: usize,
    /// Bytes that could not be left out of core dumps (on systems without
    /// `MADV_DONTDUMP`, all of them).
    pub dumpable_bytes: usize,
    /// The OS error number of the first refused lock: `EPERM` or `ENOMEM`
    /// for a low `RLIMIT_MEMLOCK`.
    pub lock_error: Option<i32>,
}

impl SecureMemoryStatus {
    /// Whether everything is locked and left out of core dumps so far.
    #[must_use]
    pub fn is_fully_protected(&self) -> bool {
        self.unlocked_bytes == 0 && self.dumpable_bytes == 0
    }
}

impl fmt::Display for SecureMemoryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} bytes of key memory locked, {} unlocked, {} not excluded from core dumps",
            self.locked_bytes, self.unlocked_bytes, self.dumpable_bytes
        )?;
        if let Some(errno) = self.lock_error {
            write!(
                f,
                " (mlock: {}; raise RLIMIT_MEMLOCK)",
                std::io::Error::from_raw_os_error(errno)
            )?;
        }
        Ok(())
    }
}

/// The protection of key material so far (see [`SecureMemoryStatus`]).
///
/// Query it after creating the first keys, and log it once if
/// [`is_fully_protected`](SecureMemoryStatus::is_fully_protected) is false.
#[must_use]
pub fn secure_memory_status() -> SecureMemoryStatus {
    let (locked_bytes, unlocked_bytes, dumpable_bytes, lock_error) = crate::os::secure::status();
    SecureMemoryStatus {
        locked_bytes,
        unlocked_bytes,
        dumpable_bytes,
        lock_error,
    }
}

/// Bytes that must not leak, such as a password: held in locked memory
/// (never swapped out, left out of core dumps where the OS allows; see
/// [`secure_memory_status`]) and wiped on drop. `Debug` shows only the
/// length; equality is constant time.
///
/// ```
/// use secrets_manager_fernet::SecretBytes;
///
/// let password = SecretBytes::from_slice(b"correct horse");
/// assert_eq!(password.expose_secret(), b"correct horse");
/// assert_eq!(format!("{password:?}"), "SecretBytes([REDACTED; 13 bytes])");
///
/// // Filled in place, so the secret never sits anywhere else.
/// let mut buf = SecretBytes::zeroed(4);
/// buf.expose_secret_mut().copy_from_slice(b"pin!");
/// ```
pub struct SecretBytes(LockedBytes);

impl SecretBytes {
    /// `len` zero bytes, to be filled in place.
    #[must_use]
    pub fn zeroed(len: usize) -> Self {
        Self(LockedBytes::zeroed(len))
    }

    /// A copy of `bytes` (wiping the original is the caller's business).
    #[must_use]
    pub fn from_slice(bytes: &[u8]) -> Self {
        let mut secret = Self::zeroed(bytes.len());
        secret.expose_secret_mut().copy_from_slice(bytes);
        secret
    }

    /// The bytes.
    #[must_use]
    pub fn expose_secret(&self) -> &[u8] {
        self.0.as_slice()
    }

    /// The bytes, to fill in place.
    #[must_use]
    pub fn expose_secret_mut(&mut self) -> &mut [u8] {
        self.0.as_mut_slice()
    }

    /// Number of bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.expose_secret().len()
    }

    /// Whether there are no bytes.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Clone for SecretBytes {
    fn clone(&self) -> Self {
        Self::from_slice(self.expose_secret())
    }
}

impl PartialEq for SecretBytes {
    fn eq(&self, other: &Self) -> bool {
        self.expose_secret().ct_eq(other.expose_secret()).into()
    }
}

impl Eq for SecretBytes {}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes([REDACTED; {} bytes])", self.len())
    }
}

impl From<&[u8]> for SecretBytes {
    fn from(bytes: &[u8]) -> Self {
        Self::from_slice(bytes)
    }
}

/// Zeroes the bytes (the length stays).
impl zeroize::Zeroize for SecretBytes {
    fn zeroize(&mut self) {
        self.expose_secret_mut().zeroize();
    }
}

/// Wiped on drop: the memory is zeroed before it is reused.
impl zeroize::ZeroizeOnDrop for SecretBytes {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_compares_and_redacts() {
        let a = SecretBytes::from_slice(b"hunter2");
        let b = a.clone();
        assert_eq!(a, b);
        assert_ne!(a, SecretBytes::from_slice(b"hunter3"));
        assert_ne!(a, SecretBytes::from_slice(b"hunter"));
        assert_eq!(b.expose_secret(), b"hunter2");
        assert_eq!(format!("{a:?}"), "SecretBytes([REDACTED; 7 bytes])");
        assert!(SecretBytes::zeroed(0).is_empty());
        let big = SecretBytes::from_slice(&[9; 10_000]);
        assert_eq!(big.len(), 10_000);
        assert!(big.expose_secret().iter().all(|&b| b == 9));
    }

    #[test]
    fn secrets_are_shareable_across_threads_and_zeroize() {
        use zeroize::Zeroize as _;
        fn send_sync<T: Send + Sync>() {}
        send_sync::<SecretBytes>();
        send_sync::<crate::Key>();
        send_sync::<crate::Fernet>();
        send_sync::<crate::MultiFernet>();
        let mut s = SecretBytes::from_slice(b"abc");
        s.zeroize();
        assert_eq!(s.expose_secret(), &[0, 0, 0]);
    }

    #[test]
    fn status_counts_what_is_mapped() {
        let _key = SecretBytes::zeroed(32);
        let status = secure_memory_status();
        assert!(
            status.locked_bytes + status.unlocked_bytes > 0,
            "{status:?}"
        );
        assert!(status.to_string().contains("locked"));
    }
}
