//! Keyring files for `SecretsConfig.from_file` and `SecretsConfig.to_file`.
//!
//! Reading is the persist layer's python-dotenv reader (checksum verified).
//! Writing goes through the facade's writer, which never loses a version:
//! - `to_file(path, append=True)` merges the configuration into the file
//!   under its lock (`SecretsManager::persist_to_file`): every other line is
//!   kept byte for byte.
//! - `to_file(path)` *replaces* the file with the keyring alone, as the
//!   Python package does, but without losing a version: under the file's
//!   lock, the keyring the file holds (every version, with its state) and
//!   the configuration are merged by the same writer into a new temporary
//!   file beside it, which then replaces the file atomically (rename). What
//!   goes is what is not keyring: comments and other variables. A version
//!   the file has with other material is a conflict, and nothing changes.
//!
//! The persist layer has no "replace" of its own; the lock, temporary file
//! and rename here follow its conventions (an exclusive `flock` on the file,
//! re-checked after waiting; an unpredictable `.NAME.tmp-<16 hex>` temporary
//! created with `O_EXCL | O_NOFOLLOW` and mode 0600, which its writers
//! remove if a replacement was killed half-way; owner and mode kept; fsync,
//! rename, directory fsync).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _};
use std::path::{Path, PathBuf};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use secrets_manager::kdf::Salt;
use secrets_manager::persist::{
    self, Keyring, MAX_FILE_LEN, PersistError, Prefixes, StoredKey, StoredState,
};
use secrets_manager::secrecy::ExposeSecret as _;
use secrets_manager::{Error, SecretsManager};

use crate::core::{Entry, EntryArg, build, iterations};
use crate::errors::{Doing, not_utf8, to_py};

fn io<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| {
        Error::from(PersistError::Io {
            path: path.to_owned(),
            action,
            source,
        })
    }
}

/// Why a replacement was not written.
pub(crate) enum WriteError {
    /// From the facade or the persist layer.
    Facade(Error),
    /// A keyring variable of the file holds a `${...}` reference: replacing
    /// the file would write its expanded value (perhaps another variable's
    /// secret) in its place.
    Reference { path: PathBuf, variable: String },
}

impl From<Error> for WriteError {
    fn from(e: Error) -> Self {
        Self::Facade(e)
    }
}

impl From<PersistError> for WriteError {
    fn from(e: PersistError) -> Self {
        Self::Facade(e.into())
    }
}

/// The keyring variables whose statements hold a `${...}` reference, from
/// the file's text (a statement's first line: a reference on a continuation
/// line of a multi-line value is not seen, and is expanded like any value).
fn referencing_variables(text: &str, prefixes: &Prefixes) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim_start();
            let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
            let (name, value) = line.split_once('=')?;
            let name = name.trim();
            (prefixes.is_keyring_variable(name) && value.contains("${")).then(|| name.to_owned())
        })
        .collect()
}

/// One version of a keyring file, for Python: `(version, password, salt,
/// salt_hash, kdf_iterations, state, kind)`; `password` and `salt` are
/// `None` for a raw Fernet key or a destroyed version.
type FileVersion<'py> = Bound<'py, PyTuple>;

/// Reads the keyring in a `.env` file: its versions and active version.
#[pyfunction]
pub(crate) fn read_keyring_file<'py>(
    py: Python<'py>,
    path: PathBuf,
) -> PyResult<(Vec<FileVersion<'py>>, Option<String>)> {
    let prefixes = Prefixes::default();
    let read = py.detach(|| {
        let keyring = persist::read_keyring(&path, &prefixes)?;
        let active = keyring.active_or_only(&prefixes)?.map(str::to_owned);
        Ok::<_, PersistError>((keyring, active))
    });
    let (keyring, active) = match read {
        Ok(r) => r,
        Err(e @ PersistError::NotUtf8 { .. }) => {
            let fallback = to_py(&Error::from(e), Doing::ReadFile);
            return Err(match std::fs::read(&path) {
                Ok(bytes) => not_utf8(py, &bytes, fallback),
                Err(_) => fallback,
            });
        }
        Err(e) => return Err(to_py(&Error::from(e), Doing::ReadFile)),
    };
    let mut out = Vec::with_capacity(keyring.versions().len());
    for v in keyring.versions() {
        let state = match v.state {
            StoredState::Usable => "usable",
            StoredState::Retired => "retired",
            _ => "destroyed",
        };
        let (password, salt, salt_hash, kind) = match &v.key {
            Some(StoredKey::Password {
                password,
                salt,
                salt_hash,
            }) => (
                Some(password.expose_secret().to_owned()),
                Some(PyBytes::new(py, Salt::from_text(salt).as_bytes())),
                salt_hash.clone(),
                "password",
            ),
            Some(_) => (None, None, None, "fernet_key"),
            None => (None, None, None, "destroyed"),
        };
        out.push(PyTuple::new(
            py,
            [
                v.name.clone().into_pyobject(py)?.into_any(),
                password.into_pyobject(py)?.into_any(),
                salt.into_pyobject(py)?.into_any(),
                salt_hash.into_pyobject(py)?.into_any(),
                v.iterations.into_pyobject(py)?.into_any(),
                state.into_pyobject(py)?.into_any(),
                kind.into_pyobject(py)?.into_any(),
            ],
        )?);
    }
    Ok((out, active))
}

/// Writes a configuration's keyring to a `.env` file: merged into it
/// (`append`), or replacing it (see the module documentation).
#[pyfunction]
#[pyo3(signature = (path, entries, active, kdf_iterations, verify_salt_integrity, append))]
pub(crate) fn write_keyring_file(
    py: Python<'_>,
    path: PathBuf,
    entries: Vec<EntryArg>,
    active: &str,
    kdf_iterations: i64,
    verify_salt_integrity: bool,
    append: bool,
) -> PyResult<()> {
    let n = iterations(kdf_iterations)?;
    let key = [0u8; 32];
    let entries: Vec<Entry> = entries
        .into_iter()
        .map(|(name, password, salt, hash)| {
            // A salt hash is written only as the salt's own (lower-case)
            // SHA-256: checked first when verification is on, recomputed
            // otherwise, so a file never carries a hash that fails.
            let hash = hash
                .filter(|_| verify_salt_integrity)
                .map(|h| h.to_ascii_lowercase());
            Entry::parse((name, password, salt, hash), &key)
        })
        .collect::<Result<_, _>>()
        .map_err(|e| to_py(&e, Doing::Manage))?;
    py.detach(|| -> Result<(), WriteError> {
        let manager = build(&entries, active, n, verify_salt_integrity, &HashMap::new())?;
        if append {
            Ok(manager.persist_to_file(&path)?)
        } else {
            replace(&path, &manager)
        }
    })
    .map_err(|e| match e {
        WriteError::Reference { path, variable } => PyValueError::new_err(format!(
            "{variable} em {} usa uma referência ${{...}}: substituir o arquivo gravaria o valor \
             expandido no lugar dela; nada foi gravado (use to_file(path, append=True), que mantém \
             a linha como está)",
            path.display()
        )),
        WriteError::Facade(e @ (Error::Persist(_) | Error::Conflict { .. })) => {
            to_py(&e, Doing::WriteFile)
        }
        WriteError::Facade(e) => to_py(&e, Doing::Manage),
    })
}

/// The file a write goes to: the path, or the target of the symbolic link
/// it names (the link stays a link).
fn resolve(path: &Path) -> Result<PathBuf, Error> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(path.to_owned()),
        Err(e) => Err(io(path, "cannot stat")(e)),
        Ok(meta) if meta.file_type().is_symlink() => match std::fs::canonicalize(path) {
            Ok(real) => Ok(real),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(Error::from(PersistError::DanglingSymlink {
                    path: path.to_owned(),
                    target: std::fs::read_link(path).unwrap_or_default(),
                }))
            }
            Err(e) => Err(io(path, "cannot follow the symbolic link")(e)),
        },
        Ok(_) => Ok(path.to_owned()),
    }
}

fn not_regular(path: &Path) -> Error {
    Error::from(PersistError::NotRegularFile {
        path: path.to_owned(),
        kind: "special file",
    })
}

/// Opens and exclusively locks the target (creating it, mode 0600, if
/// needed), as the persist layer's writers do, so they wait for us. After
/// waiting, checks the path still names the file locked (a writer that
/// finished meanwhile replaced it).
fn lock_target(path: &Path) -> Result<(File, bool, PathBuf), Error> {
    use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
    for _ in 0..1000 {
        let target = resolve(path)?;
        let mut open = OpenOptions::new();
        open.read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
        let (file, created) = match open.open(&target) {
            Ok(f) => (f, false),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut create = OpenOptions::new();
                create
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW);
                match create.open(&target) {
                    Ok(f) => (f, true),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(io(path, "cannot create")(e)),
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::EISDIR) => return Err(not_regular(path)),
            Err(e) => return Err(io(path, "cannot open")(e)),
        };
        let held = file.metadata().map_err(io(path, "cannot stat"))?;
        if !held.is_file() {
            return Err(not_regular(path));
        }
        file.lock().map_err(io(path, "cannot lock"))?;
        match std::fs::symlink_metadata(&target) {
            Ok(now) if now.dev() == held.dev() && now.ino() == held.ino() => {
                return Ok((file, created, target));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(path, "cannot stat")(e)),
        }
    }
    Err(io(path, "cannot lock")(std::io::Error::other(
        "the file kept being replaced",
    )))
}

fn temp_name(target: &Path) -> Result<PathBuf, Error> {
    let name = target
        .file_name()
        .map_or_else(|| ".env".into(), |n| n.to_string_lossy().into_owned());
    let prefix = if name.starts_with('.') {
        format!("{name}.tmp")
    } else {
        format!(".{name}.tmp")
    };
    let mut random = [0u8; 8];
    getrandom::fill(&mut random)
        .map_err(|e| io(target, "cannot name a temporary file")(std::io::Error::other(e)))?;
    let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
    Ok(parent(target).join(format!("{prefix}-{suffix}")))
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Replaces `path` with the keyring alone: the file's versions and the
/// manager's, merged by the facade's writer; see the module documentation.
pub(crate) fn replace(path: &Path, manager: &SecretsManager) -> Result<(), WriteError> {
    let (mut file, created, target) = lock_target(path)?;
    let result = replace_locked(path, &target, &mut file, created, manager);
    if result.is_err() && created {
        // Leave no empty file behind for a write that did not happen.
        let _ = std::fs::remove_file(&target);
    }
    drop(file);
    result
}

fn replace_locked(
    path: &Path,
    target: &Path,
    file: &mut File,
    created: bool,
    manager: &SecretsManager,
) -> Result<(), WriteError> {
    use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
    let prefixes = Prefixes::default();
    let old = file.metadata().map_err(io(path, "cannot stat"))?;
    let mut bytes = Vec::new();
    file.rewind().map_err(io(path, "cannot read"))?;
    file.take(MAX_FILE_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(io(path, "cannot read"))?;
    let bytes = secrets_manager::zeroize::Zeroizing::new(bytes);
    if bytes.len() as u64 > MAX_FILE_LEN {
        return Err(PersistError::TooLarge {
            path: path.to_owned(),
            limit: MAX_FILE_LEN,
        }
        .into());
    }
    let existing = persist::parse_keyring_bytes(path, &bytes, &prefixes)?.1;
    // Parsed: the text is UTF-8.
    let text = std::str::from_utf8(&bytes).unwrap_or_default();
    if let Some(variable) = referencing_variables(text, &prefixes).into_iter().next() {
        return Err(WriteError::Reference {
            path: path.to_owned(),
            variable,
        });
    }

    let tmp = temp_name(target)?;
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .map_err(io(&tmp, "cannot create temporary file"))?;
    let written = (|| -> Result<(), WriteError> {
        if !existing.versions().is_empty() {
            persist::update_keyring(&tmp, &prefixes, |new: &mut Keyring| {
                for v in existing.versions() {
                    new.add(v.clone())?;
                }
                if let Some(active) = existing.active() {
                    new.set_active(active)?;
                }
                Ok::<_, Error>(())
            })?;
        }
        manager.persist_to_file(&tmp)?;
        if !created {
            // Owner and group first (may fail without privilege: then the
            // file belongs to this user, as the persist writer reports),
            // then the mode the file had.
            let _ = std::os::unix::fs::chown(&tmp, Some(old.uid()), Some(old.gid()));
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(old.mode() & 0o7777))
                .map_err(io(&tmp, "cannot set permissions"))?;
        }
        File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(io(&tmp, "cannot sync"))?;
        std::fs::rename(&tmp, target).map_err(io(path, "cannot replace"))?;
        Ok(())
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return written;
    }
    // The rename happened; a directory that cannot be synced loses only
    // durability across a power failure.
    let _ = File::open(parent(target)).and_then(|d| d.sync_all());
    Ok(())
}
