//! Reading and atomically rewriting `.env` keyring files; the process
//! environment.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::dotenv::{self, Binding};
use crate::error::{PersistError, Source};
use crate::keyring::{self, Keyring, Prefixes};
use crate::{DotenvValues, quote};

/// The comment line that heads the keyring block this crate writes.
pub const HEADER: &str =
    "# secrets-manager keyring: written by secrets-manager; the checksum covers every variable";

/// A parsed file: its text, bindings and resolved values.
struct Parsed {
    /// The original text, byte for byte.
    original: Zeroizing<String>,
    bindings: Vec<Binding>,
    /// Byte offsets in `original` of each byte boundary of the
    /// universal-newline text the bindings index.
    offsets: Vec<usize>,
    values: DotenvValues,
}

fn io<'a>(
    path: &'a Path,
    action: &'static str,
) -> impl FnOnce(std::io::Error) -> PersistError + 'a {
    move |source| PersistError::Io {
        path: path.to_owned(),
        action,
        source,
    }
}

fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Parses `bytes` read from `path` as python-dotenv would.
fn parse_text(path: &Path, bytes: &[u8]) -> Result<Parsed, PersistError> {
    let original = match std::str::from_utf8(bytes) {
        Ok(t) => Zeroizing::new(t.to_owned()),
        Err(e) => {
            let line = bytes[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            return Err(PersistError::NotUtf8 {
                path: path.to_owned(),
                line,
            });
        }
    };
    let text = dotenv::universal_newlines(&original);
    let mut offsets = Vec::with_capacity(text.len() + 1);
    let ob = original.as_bytes();
    let mut o = 0;
    for _ in 0..text.len() {
        offsets.push(o);
        o += if ob[o] == b'\r' && ob.get(o + 1) == Some(&b'\n') {
            2
        } else {
            1
        };
    }
    offsets.push(o);
    let bindings = dotenv::parse(&text).map_err(|e| PersistError::Syntax {
        path: path.to_owned(),
        line: e.line,
    })?;
    for (i, b) in bindings.iter().enumerate() {
        if let Some(first) = bindings[..i].iter().find(|f| f.key == b.key) {
            return Err(PersistError::Duplicate {
                path: path.to_owned(),
                line: b.line,
                first: first.line,
                name: b.key.clone(),
            });
        }
    }
    let values = dotenv::interpolate(&bindings, &env_lookup);
    Ok(Parsed {
        original,
        bindings,
        offsets,
        values,
    })
}

fn verify_checksum(path: &Path, parsed: &Parsed, prefixes: &Prefixes) -> Result<(), PersistError> {
    let Some((_, stored)) = parsed.values.iter().find(|(k, _)| *k == prefixes.checksum) else {
        return Ok(());
    };
    let computed = keyring::checksum(&parsed.values, &prefixes.checksum);
    let matches = stored
        .as_ref()
        .is_some_and(|s| s.trim().eq_ignore_ascii_case(&computed));
    if matches {
        Ok(())
    } else {
        Err(PersistError::Checksum {
            path: path.to_owned(),
            variable: prefixes.checksum.clone(),
        })
    }
}

/// Reads the keyring in a `.env` file, verifying its checksum when it has
/// one.
///
/// # Errors
///
/// The file cannot be read, is not UTF-8, has a line python-dotenv cannot
/// parse or a variable twice, fails its checksum, or its keyring variables
/// are incomplete or malformed. Each error names the file and the line or
/// variable.
pub fn read_keyring(path: impl AsRef<Path>, prefixes: &Prefixes) -> Result<Keyring, PersistError> {
    let path = path.as_ref();
    parse_keyring_bytes(path, &read_bytes(path)?, prefixes).map(|(_, keyring)| keyring)
}

fn read_bytes(path: &Path) -> Result<Zeroizing<Vec<u8>>, PersistError> {
    let mut bytes = Zeroizing::new(Vec::new());
    File::open(path)
        .map_err(io(path, "cannot open"))?
        .read_to_end(&mut bytes)
        .map_err(io(path, "cannot read"))?;
    Ok(bytes)
}

/// A `.env` file's variables exactly as python-dotenv's `dotenv_values`
/// returns them (in file order, `${NAME}` expanded from earlier variables
/// and the process environment, `None` for a bare `NAME`).
///
/// # Errors
///
/// The file cannot be read, is not UTF-8, has a line python-dotenv would
/// skip, or defines a variable twice.
pub fn dotenv_values(path: impl AsRef<Path>) -> Result<DotenvValues, PersistError> {
    let path = path.as_ref();
    Ok(parse_text(path, &read_bytes(path)?)?.values)
}

/// As [`dotenv_values`] and [`read_keyring`], on bytes already in memory;
/// `name` is used in error messages. Returns the values and the keyring.
///
/// # Errors
///
/// As [`read_keyring`], except for reading the file.
pub fn parse_keyring_bytes(
    name: impl AsRef<Path>,
    bytes: &[u8],
    prefixes: &Prefixes,
) -> Result<(DotenvValues, Keyring), PersistError> {
    let path = name.as_ref();
    let parsed = parse_text(path, bytes)?;
    verify_checksum(path, &parsed, prefixes)?;
    let keyring = keyring::from_vars(&parsed.values, &Source::File(path.to_owned()), prefixes)?;
    Ok((parsed.values, keyring))
}

/// Reads the keyring from the process environment (no checksum there).
///
/// # Errors
///
/// Incomplete or malformed keyring variables, naming them.
pub fn read_environment(prefixes: &Prefixes) -> Result<Keyring, PersistError> {
    let mut vars: Vec<(String, Option<Zeroizing<String>>)> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let k = k.into_string().ok()?;
            prefixes
                .is_keyring_variable(&k)
                .then(|| (k, v.into_string().ok().map(Zeroizing::new)))
        })
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some((k, _)) = vars.iter().find(|(_, v)| v.is_none()) {
        return Err(PersistError::Invalid {
            origin: Source::Environment,
            variable: k.clone(),
            problem: "is not valid UTF-8".into(),
        });
    }
    keyring::from_vars(&vars, &Source::Environment, prefixes)
}

/// Rewrites the keyring in `path` under an exclusive lock: `update` gets the
/// keyring now in the file (empty if there is no file) and returns the one
/// to write.
///
/// Everything else in the file (comments, blank lines, other variables) is
/// kept byte for byte; the keyring variables are written after it, sorted,
/// under one comment line, with the checksum. The write is atomic and
/// durable: a temporary file in the same directory, `fsync`, `rename`, and
/// an `fsync` of the directory; a new file gets mode 0600. Concurrent
/// writers, in any number of processes, take turns and lose nothing.
///
/// # Errors
///
/// As [`read_keyring`]; a value python-dotenv could not read back
/// unchanged; any file-system error; or whatever `update` returns.
pub fn update_keyring<E: From<PersistError>>(
    path: impl AsRef<Path>,
    prefixes: &Prefixes,
    update: impl FnOnce(Keyring) -> Result<Keyring, E>,
) -> Result<Keyring, E> {
    let path = path.as_ref();
    let (mut lock, created) = lock_file(path)?;
    let result = (|| {
        let mut bytes = Zeroizing::new(Vec::new());
        lock.read_to_end(&mut bytes)
            .map_err(io(path, "cannot read"))?;
        let parsed = parse_text(path, &bytes)?;
        verify_checksum(path, &parsed, prefixes)?;
        let current = keyring::from_vars(&parsed.values, &Source::File(path.to_owned()), prefixes)?;
        let updated = update(current)?;
        let text = render(path, &parsed, &updated, prefixes)?;
        let mode = if created { None } else { existing_mode(&lock) };
        write_atomically(path, text.as_bytes(), mode)?;
        Ok(updated)
    })();
    if result.is_err() && created {
        // Leave no empty file behind for a write that did not happen; a
        // writer waiting on it will see it gone and start afresh.
        let _ = std::fs::remove_file(path);
    }
    drop(lock);
    result
}

/// The new file text: the old text without keyring variables (or our
/// header), then the keyring block.
fn render(
    path: &Path,
    parsed: &Parsed,
    keyring: &Keyring,
    prefixes: &Prefixes,
) -> Result<Zeroizing<String>, PersistError> {
    let mut keep = Zeroizing::new(String::with_capacity(parsed.original.len() + 1024));
    let mut cursor = 0;
    for b in &parsed.bindings {
        if prefixes.is_keyring_variable(&b.key) {
            let (start, end) = (parsed.offsets[b.span.start], parsed.offsets[b.span.end]);
            keep.push_str(&parsed.original[cursor..start]);
            cursor = end;
        }
    }
    keep.push_str(&parsed.original[cursor..]);
    // Drop our previous header line, wherever it is.
    let mut rest = Zeroizing::new(String::with_capacity(keep.len()));
    for line in keep.split_inclusive('\n') {
        if line.trim_end_matches(['\r', '\n']) != HEADER {
            rest.push_str(line);
        }
    }
    // One blank line separates the block from what precedes it; only line
    // ends are trimmed, so the kept text is otherwise unchanged.
    let kept = rest.trim_end_matches(['\n', '\r']);
    let mut text = Zeroizing::new(String::with_capacity(kept.len() + 1024));
    text.push_str(kept);
    if !text.is_empty() {
        text.push_str("\n\n");
    }

    let mut vars = keyring::to_vars(keyring, prefixes);
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    // Each value is quoted as it needs (`quote::encode`); `Zeroizing`
    // because values are secrets.
    let encoded = vars
        .iter()
        .map(|(name, value)| Ok((name.as_str(), Zeroizing::new(quote::encode(name, value)?))))
        .collect::<Result<Vec<_>, PersistError>>()?;
    let block = |checksum: Option<&str>| {
        let mut block = Zeroizing::new(format!("{HEADER}\n"));
        let mut pending = checksum;
        for (name, value) in &encoded {
            // The checksum goes in its sorted place.
            if let Some(sum) = pending.filter(|_| *name > prefixes.checksum.as_str()) {
                block.push_str(&format!("{}=\"{sum}\"\n", prefixes.checksum));
                pending = None;
            }
            block.push_str(name);
            block.push('=');
            block.push_str(value);
            block.push('\n');
        }
        if let Some(sum) = pending {
            block.push_str(&format!("{}=\"{sum}\"\n", prefixes.checksum));
        }
        block
    };

    // Read the text back as a reader will: every keyring value must come
    // back exact, and the checksum is over what a reader sees. (The checksum
    // line itself, hex in double quotes, reads back as written.)
    let draft = Zeroizing::new(format!("{}{}", text.as_str(), block(None).as_str()));
    let reread = parse_text(path, draft.as_bytes())?;
    for (name, value) in &vars {
        let got = reread
            .values
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_ref());
        if got.map(|g| g.as_str()) != Some(value.as_str()) {
            return Err(PersistError::Unwritable {
                variable: name.clone(),
                reason: "another variable in the file changes how this value reads back",
            });
        }
    }
    let sum = keyring::checksum(&reread.values, &prefixes.checksum);
    Ok(Zeroizing::new(format!(
        "{}{}",
        text.as_str(),
        block(Some(&sum)).as_str()
    )))
}

/// Opens and exclusively locks `path`, creating it (mode 0600) if needed.
/// After waiting, checks that `path` still names the file locked: a writer
/// that finished meanwhile replaced it, and the new file must be locked
/// instead.
fn lock_file(path: &Path) -> Result<(File, bool), PersistError> {
    loop {
        let mut options = OpenOptions::new();
        options.read(true).write(true);
        let (file, created) = match options.open(path) {
            Ok(f) => (f, false),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut create = OpenOptions::new();
                create.read(true).write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut create, 0o600);
                match create.open(path) {
                    Ok(f) => (f, true),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(io(path, "cannot create")(e)),
                }
            }
            Err(e) => return Err(io(path, "cannot open")(e)),
        };
        file.lock().map_err(io(path, "cannot lock"))?;
        if same_file(&file, path)? {
            return Ok((file, created));
        }
    }
}

#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> Result<bool, PersistError> {
    use std::os::unix::fs::MetadataExt;
    let held = file.metadata().map_err(io(path, "cannot stat"))?;
    match std::fs::metadata(path) {
        Ok(now) => Ok(held.dev() == now.dev() && held.ino() == now.ino()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io(path, "cannot stat")(e)),
    }
}

#[cfg(not(unix))]
fn same_file(_file: &File, _path: &Path) -> Result<bool, PersistError> {
    Ok(true)
}

#[cfg(unix)]
fn existing_mode(file: &File) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    file.metadata()
        .ok()
        .map(|m| m.permissions().mode() & 0o7777)
}

#[cfg(not(unix))]
fn existing_mode(_file: &File) -> Option<u32> {
    None
}

/// The temporary file next to `path`. Its name is fixed, so a temporary
/// left by a killed writer is reused (truncated) by the next one, which
/// holds the lock, rather than piling up.
#[must_use]
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| ".env".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.tmp"))
}

fn write_atomically(path: &Path, bytes: &[u8], mode: Option<u32>) -> Result<(), PersistError> {
    let tmp = temp_path(path);
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&tmp)
        .map_err(io(&tmp, "cannot create temporary file"))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = mode.unwrap_or(0o600);
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(io(&tmp, "cannot set permissions"))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    file.write_all(bytes).map_err(io(&tmp, "cannot write"))?;
    file.sync_all().map_err(io(&tmp, "cannot sync"))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io(path, "cannot replace"))?;
    sync_dir(path)
}

#[cfg(unix)]
fn sync_dir(path: &Path) -> Result<(), PersistError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir, "cannot sync directory"))
}

#[cfg(not(unix))]
fn sync_dir(_path: &Path) -> Result<(), PersistError> {
    Ok(())
}
