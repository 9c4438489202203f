//! Where a keyring lives: the [`KeyringStore`] abstraction, with a `.env`
//! file and the process environment as its first implementations (a
//! distributed store lives in its own crate).
//!
//! Every store keeps the same invariant as the file: a version, once
//! written, is immutable; an update may only add versions, advance their
//! lifecycle and move the active pointer (see [`Keyring`]).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use crate::error::{PersistError, Source};
use crate::file::{WriteReport, read_environment, read_keyring, update_keyring};
use crate::keyring::{Keyring, Prefixes};

/// Called when a store's keyring may have changed. Returns whether the
/// change was taken in; a `false` makes the watcher try again at its next
/// look (a half-written file, say).
pub type OnChange = Arc<dyn Fn() -> bool + Send + Sync>;

/// A place a keyring is kept.
pub trait KeyringStore: Send + Sync + fmt::Debug {
    /// Where it is, for messages.
    fn source(&self) -> Source;

    /// Reads the keyring.
    ///
    /// # Errors
    ///
    /// The store cannot be reached or read, or holds a malformed keyring.
    fn read(&self) -> Result<Keyring, PersistError>;

    /// Changes the keyring atomically: `edit` gets the keyring as stored
    /// now (empty if there is none) and may add versions and advance the
    /// lifecycle; the store then writes what changed, or nothing if `edit`
    /// fails or changed nothing. Concurrent updates from any number of
    /// processes serialise; none is lost.
    ///
    /// # Errors
    ///
    /// What `edit` returns; the store cannot be written (the environment
    /// never can).
    fn update(
        &self,
        edit: &mut dyn FnMut(&mut Keyring) -> Result<(), PersistError>,
    ) -> Result<WriteReport, PersistError>;

    /// Starts watching: `on_change` is called, from a background thread,
    /// whenever the keyring may have changed, and at least every
    /// `poll` until it returns `true` for the current contents. Dropping
    /// the returned handle stops the watch.
    ///
    /// # Errors
    ///
    /// The watch cannot be started.
    fn watch(&self, on_change: OnChange, poll: Duration) -> Result<Watch, PersistError>;
}

/// A running watch: dropping it stops the watch and waits for its thread.
pub struct Watch {
    stop: Option<Box<dyn FnOnce() + Send>>,
}

impl Watch {
    /// A watch stopped by `stop` (called once, on drop).
    #[must_use]
    pub fn new(stop: impl FnOnce() + Send + 'static) -> Self {
        Self {
            stop: Some(Box::new(stop)),
        }
    }
}

impl fmt::Debug for Watch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watch")
            .field("running", &self.stop.is_some())
            .finish()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop();
        }
    }
}

/// A `.env` keyring file.
#[derive(Clone, Debug)]
pub struct FileStore {
    path: PathBuf,
    prefixes: Prefixes,
}

impl FileStore {
    /// The keyring file at `path`, with the default variable names.
    #[must_use]
    pub fn new(path: impl AsRef<Path>) -> Self {
        Self::with_prefixes(path, &Prefixes::default())
    }

    /// The keyring file at `path`, with other variable names.
    #[must_use]
    pub fn with_prefixes(path: impl AsRef<Path>, prefixes: &Prefixes) -> Self {
        Self {
            path: path.as_ref().to_owned(),
            prefixes: prefixes.clone(),
        }
    }

    /// The file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl KeyringStore for FileStore {
    fn source(&self) -> Source {
        Source::File(self.path.clone())
    }

    fn read(&self) -> Result<Keyring, PersistError> {
        read_keyring(&self.path, &self.prefixes)
    }

    fn update(
        &self,
        edit: &mut dyn FnMut(&mut Keyring) -> Result<(), PersistError>,
    ) -> Result<WriteReport, PersistError> {
        update_keyring(&self.path, &self.prefixes, |k| edit(k)).map(|((), report)| report)
    }

    fn watch(&self, on_change: OnChange, poll: Duration) -> Result<Watch, PersistError> {
        watch_file(self.path.clone(), on_change, poll)
    }
}

/// The process environment: read-only.
#[derive(Clone, Debug, Default)]
pub struct EnvStore {
    prefixes: Prefixes,
}

impl EnvStore {
    /// The environment, with the given variable names.
    #[must_use]
    pub fn new(prefixes: &Prefixes) -> Self {
        Self {
            prefixes: prefixes.clone(),
        }
    }
}

impl KeyringStore for EnvStore {
    fn source(&self) -> Source {
        Source::Environment
    }

    fn read(&self) -> Result<Keyring, PersistError> {
        read_environment(&self.prefixes)
    }

    fn update(
        &self,
        _edit: &mut dyn FnMut(&mut Keyring) -> Result<(), PersistError>,
    ) -> Result<WriteReport, PersistError> {
        Err(PersistError::ReadOnly {
            origin: Source::Environment,
        })
    }

    /// A process's environment does not change from outside: nothing to
    /// watch, and the handle does nothing.
    fn watch(&self, _on_change: OnChange, _poll: Duration) -> Result<Watch, PersistError> {
        Ok(Watch::new(|| {}))
    }
}

/// What identifies a file's contents cheaply: where the path leads (through
/// any symbolic links, as Kubernetes swaps a `..data` link) and the
/// target's identity, size and times.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    target: Option<PathBuf>,
    stat: Option<(u64, u64, u64, i64, i64, i64, i64)>,
}

fn fingerprint(path: &Path) -> Fingerprint {
    let target = std::fs::canonicalize(path).ok();
    let stat = std::fs::metadata(path).ok().map(|m| {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt as _;
            (
                m.dev(),
                m.ino(),
                m.len(),
                m.mtime(),
                m.mtime_nsec(),
                m.ctime(),
                m.ctime_nsec(),
            )
        }
        #[cfg(not(unix))]
        {
            let t = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .unwrap_or_default();
            (
                0,
                0,
                m.len(),
                t.as_secs() as i64,
                i64::from(t.subsec_nanos()),
                0,
                0,
            )
        }
    });
    Fingerprint { target, stat }
}

enum Wake {
    Changed,
    Stop,
}

/// Watches a file through its directory (renames over it, in-place
/// writes, a swapped symbolic link) with inotify or the platform's
/// equivalent, and polls every `poll` as a fallback (network file systems,
/// a directory that cannot be watched, a link into another directory).
fn watch_file(path: PathBuf, on_change: OnChange, poll: Duration) -> Result<Watch, PersistError> {
    use notify::Watcher as _;
    let (tx, rx) = mpsc::channel::<Wake>();
    let events = tx.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            let _ = events.send(Wake::Changed);
        }
    })
    .ok();
    let mut dirs: Vec<PathBuf> = vec![parent(&path)];
    if let Ok(real) = std::fs::canonicalize(&path) {
        let real_dir = parent(&real);
        if !dirs.contains(&real_dir) {
            dirs.push(real_dir);
        }
    }
    if let Some(w) = watcher.as_mut() {
        for dir in &dirs {
            if let Err(e) = w.watch(dir, notify::RecursiveMode::NonRecursive) {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the directory; polling");
            }
        }
    } else {
        tracing::warn!(path = %path.display(), "no file-system notifications here; polling");
    }
    let thread = std::thread::Builder::new()
        .name("keyring-watch".into())
        .spawn(move || {
            // The contents last taken in; `None` until the first success,
            // so a watch started late first catches up.
            let mut seen: Option<Fingerprint> = None;
            let _watcher = watcher;
            loop {
                let now = fingerprint(&path);
                if seen.as_ref() != Some(&now) {
                    seen = on_change().then_some(now);
                }
                match rx.recv_timeout(poll) {
                    Ok(Wake::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                    Ok(Wake::Changed) => {
                        // Let a burst of events from one write settle.
                        while let Ok(wake) = rx.recv_timeout(Duration::from_millis(5)) {
                            if matches!(wake, Wake::Stop) {
                                return;
                            }
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                }
            }
        })
        .map_err(|source| PersistError::Io {
            path: PathBuf::from("keyring-watch"),
            action: "cannot start the watch thread",
            source,
        })?;
    Ok(Watch::new(move || {
        let _ = tx.send(Wake::Stop);
        let _ = thread.join();
    }))
}

fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    }
}
