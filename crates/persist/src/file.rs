//! Reading and atomically rewriting `.env` keyring files; the process
//! environment.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::ops::Range;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::dotenv::{self, Binding};
use crate::error::{PersistError, Source, WriteWarning};
use crate::keyring::{self, Keyring, Prefixes};
use crate::{DotenvValues, quote};

/// The comment line that heads the lines this crate appends to a file.
pub const HEADER: &str =
    "# secrets-manager keyring: written by secrets-manager; the checksum covers every variable";

/// The largest file read, in bytes. Keyring files are a few kilobytes;
/// the bound keeps a hostile or mistaken path (a log, a disk image) from
/// exhausting memory.
pub const MAX_FILE_LEN: u64 = 16 << 20;

/// The most bytes all of a file's values may hold once `${NAME}`
/// references are expanded.
pub const MAX_EXPANDED_LEN: usize = 64 << 20;

/// A parsed file: its text, bindings and resolved values.
pub(crate) struct Parsed {
    /// The original text, byte for byte.
    pub(crate) original: Zeroizing<String>,
    pub(crate) bindings: Vec<Binding>,
    /// Byte offsets in `original` of each byte boundary of the
    /// universal-newline text the bindings index.
    offsets: Vec<usize>,
    pub(crate) values: DotenvValues,
}

impl Parsed {
    /// A binding's byte range in the original text.
    pub(crate) fn span(&self, b: &Binding) -> Range<usize> {
        self.offsets[b.span.start]..self.offsets[b.span.end]
    }

    /// Where a binding's name ends in the original text.
    pub(crate) fn key_end(&self, b: &Binding) -> usize {
        self.offsets[b.key_end]
    }

    /// A value's byte range in the original text.
    pub(crate) fn value_span(&self, b: &Binding) -> Option<Range<usize>> {
        b.value_span
            .as_ref()
            .map(|r| self.offsets[r.start]..self.offsets[r.end])
    }
}

pub(crate) fn io<'a>(
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
pub(crate) fn parse_text(path: &Path, bytes: &[u8]) -> Result<Parsed, PersistError> {
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
    let mut first_seen: HashMap<&str, usize> = HashMap::with_capacity(bindings.len());
    for b in &bindings {
        if let Some(first) = first_seen.insert(&b.key, b.line) {
            return Err(PersistError::Duplicate {
                path: path.to_owned(),
                line: b.line,
                first,
                name: b.key.clone(),
            });
        }
    }
    let values = dotenv::interpolate(&bindings, &env_lookup, MAX_EXPANDED_LEN).map_err(|e| {
        let b = &bindings[e.binding];
        PersistError::ExpansionTooLarge {
            path: path.to_owned(),
            line: b.line,
            variable: b.key.clone(),
            limit: MAX_EXPANDED_LEN,
        }
    })?;
    Ok(Parsed {
        original,
        bindings,
        offsets,
        values,
    })
}

pub(crate) fn verify_checksum(
    path: &Path,
    parsed: &Parsed,
    prefixes: &Prefixes,
) -> Result<(), PersistError> {
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
/// The file cannot be read, is not a regular file, is too large, is not
/// UTF-8, has a line python-dotenv cannot parse or a variable twice, fails
/// its checksum, or its keyring variables are incomplete or malformed. Each
/// error names the file and the line or variable.
pub fn read_keyring(path: impl AsRef<Path>, prefixes: &Prefixes) -> Result<Keyring, PersistError> {
    let path = path.as_ref();
    parse_keyring_bytes(path, &read_bytes(path)?, prefixes).map(|(_, keyring)| keyring)
}

/// Opens `path` for reading without blocking on a FIFO or device, and
/// checks that it is a regular file.
fn open_regular(path: &Path, options: &mut OpenOptions) -> Result<File, PersistError> {
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(options, libc_flags::NONBLOCK);
    let file = options.open(path).map_err(|e| match e.raw_os_error() {
        Some(libc_flags::EISDIR) => PersistError::NotRegularFile {
            path: path.to_owned(),
            kind: "directory",
        },
        _ => io(path, "cannot open")(e),
    })?;
    check_regular(path, &file.metadata().map_err(io(path, "cannot stat"))?)?;
    Ok(file)
}

fn check_regular(path: &Path, meta: &std::fs::Metadata) -> Result<(), PersistError> {
    if meta.is_file() {
        return Ok(());
    }
    Err(PersistError::NotRegularFile {
        path: path.to_owned(),
        kind: file_kind(meta),
    })
}

fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        return "directory";
    }
    if t.is_symlink() {
        return "symbolic link";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        if t.is_fifo() {
            return "FIFO";
        }
        if t.is_socket() {
            return "socket";
        }
        if t.is_block_device() || t.is_char_device() {
            return "device";
        }
    }
    "special file"
}

/// Reads a whole open file, refusing one over [`MAX_FILE_LEN`].
pub(crate) fn read_limited(
    path: &Path,
    file: &mut File,
) -> Result<Zeroizing<Vec<u8>>, PersistError> {
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(MAX_FILE_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(io(path, "cannot read"))?;
    if bytes.len() as u64 > MAX_FILE_LEN {
        return Err(PersistError::TooLarge {
            path: path.to_owned(),
            limit: MAX_FILE_LEN,
        });
    }
    Ok(bytes)
}

pub(crate) fn read_bytes(path: &Path) -> Result<Zeroizing<Vec<u8>>, PersistError> {
    let mut file = open_regular(path, OpenOptions::new().read(true))?;
    read_limited(path, &mut file)
}

/// A `.env` file's variables exactly as python-dotenv's `dotenv_values`
/// returns them (in file order, `${NAME}` expanded from earlier variables
/// and the process environment, `None` for a bare `NAME`).
///
/// # Errors
///
/// The file cannot be read, is not a regular file, is too large, is not
/// UTF-8, has a line python-dotenv would skip, defines a variable twice, or
/// expands beyond [`MAX_EXPANDED_LEN`].
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
    if bytes.len() as u64 > MAX_FILE_LEN {
        return Err(PersistError::TooLarge {
            path: path.to_owned(),
            limit: MAX_FILE_LEN,
        });
    }
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

/// What a write did.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct WriteReport {
    /// Whether the file was rewritten (`false`: the keyring was unchanged,
    /// and the file was left alone).
    pub written: bool,
    /// What went wrong without stopping the write.
    pub warnings: Vec<WriteWarning>,
}

/// Changes the keyring in `path` under an exclusive lock: `update` gets
/// the keyring now in the file (empty if there is no file) and may add
/// versions, move the active pointer and retire or destroy versions; its
/// result is returned with a [`WriteReport`].
///
/// What changed becomes new lines: added versions are appended, changed
/// lifecycle variables are rewritten in place, a destroyed version's key
/// material is erased, and the checksum is refreshed. Every other byte of
/// the file (comments, other variables, existing keyring lines with their
/// quoting and `${...}` references) is kept as it was. Before anything is
/// replaced, the new text is read back and must give exactly the intended
/// keyring; otherwise nothing is written.
///
/// The write is atomic and durable: a temporary file with an unpredictable
/// name in the same directory (created exclusively, never through a
/// symbolic link, mode set before any secret is written), `fsync`,
/// `rename`, and an `fsync` of the directory. A new file gets mode 0600;
/// an existing one keeps its mode, owner and group (a writer that may not
/// `chown` says so in the report). A path that is a symbolic link is
/// written through to its target, keeping the link. Temporary files left by
/// killed writers are removed under the lock. Concurrent writers, in any
/// number of processes, take turns and lose nothing. If nothing changed,
/// the file is not touched.
///
/// # Errors
///
/// As [`read_keyring`]; a dangling symbolic link or a path that is not a
/// regular file; a value python-dotenv could not read back unchanged; any
/// file-system error; or whatever `update` returns.
pub fn update_keyring<T, E: From<PersistError>>(
    path: impl AsRef<Path>,
    prefixes: &Prefixes,
    update: impl FnOnce(&mut Keyring) -> Result<T, E>,
) -> Result<(T, WriteReport), E> {
    let path = path.as_ref();
    locked_rewrite(path, prefixes, |parsed| {
        let mut keyring =
            keyring::from_vars(&parsed.values, &Source::File(path.to_owned()), prefixes)?;
        let out = update(&mut keyring)?;
        keyring.pin_implicit_active();
        let text = if keyring.is_changed() || stale_material(parsed, &keyring, prefixes) {
            Some(render(path, parsed, &keyring, prefixes)?)
        } else {
            None
        };
        Ok((out, text))
    })
}

/// The one locked rewrite of a `.env` file, shared by the keyring and the
/// application-variable writers: take the file's lock (following a link
/// to its target), remove stale temporaries, read and parse what the file
/// holds now and verify its checksum, then let `edit` produce the new
/// text (`None`: nothing to write), written atomically with the file's
/// owner and mode. A file created only for the lock is removed again when
/// nothing was written.
pub(crate) fn locked_rewrite<T, E: From<PersistError>>(
    path: &Path,
    prefixes: &Prefixes,
    edit: impl FnOnce(&Parsed) -> Result<(T, Option<Zeroizing<String>>), E>,
) -> Result<(T, WriteReport), E> {
    let (mut lock, created, target) = lock_file(path)?;
    let result = (|| {
        remove_stale_temporaries(&target);
        let bytes = read_limited(path, &mut lock)?;
        let parsed = parse_text(path, &bytes)?;
        verify_checksum(path, &parsed, prefixes)?;
        let (out, text) = edit(&parsed)?;
        let mut report = WriteReport::default();
        if let Some(text) = text {
            let meta = (!created).then(|| lock.metadata()).transpose();
            let meta = meta.map_err(io(path, "cannot stat"))?;
            write_atomically(path, &target, text.as_bytes(), meta.as_ref(), &mut report)?;
            report.written = true;
        }
        Ok((out, report))
    })();
    if created && !result.as_ref().is_ok_and(|(_, r)| r.written) {
        // Leave no empty file behind for a write that did not happen; a
        // writer waiting on it will see it gone and start afresh.
        let _ = std::fs::remove_file(&target.path);
    }
    drop(lock);
    result
}

/// What [`refresh_checksum`] found and did.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct ChecksumRefresh {
    /// Whether the checksum was rewritten (`false`: it already matched).
    pub written: bool,
    /// Whether the file had a checksum before.
    pub had_checksum: bool,
    /// Variables whose addition explains the old checksum, where that can
    /// be told (one variable added by hand); empty when it cannot (a value
    /// was edited, a variable removed, or several added).
    pub added: Vec<String>,
    /// What went wrong without stopping the write.
    pub warnings: Vec<WriteWarning>,
}

/// Files with more variables than this are not searched for the one that
/// was added (each try hashes the whole file).
const ADDED_SEARCH_LIMIT: usize = 2_000;

/// Records a file's current contents in its checksum, after a deliberate
/// hand edit, under the same lock and atomic write as every keyring write.
/// No keyring value is touched; the keyring must still read correctly. The
/// result says which variable was added since the checksum was written,
/// where that can be told.
///
/// # Errors
///
/// As [`update_keyring`], except that the old checksum may mismatch.
pub fn refresh_checksum(
    path: impl AsRef<Path>,
    prefixes: &Prefixes,
) -> Result<ChecksumRefresh, PersistError> {
    let path = path.as_ref();
    let (mut lock, created, target) = lock_file(path)?;
    if created {
        let _ = std::fs::remove_file(&target.path);
        return Err(io(path, "cannot open")(std::io::Error::from(
            std::io::ErrorKind::NotFound,
        )));
    }
    remove_stale_temporaries(&target);
    let bytes = read_limited(path, &mut lock)?;
    let parsed = parse_text(path, &bytes)?;
    let keyring = keyring::from_vars(&parsed.values, &Source::File(path.to_owned()), prefixes)?;
    let stored = parsed
        .values
        .iter()
        .find(|(k, _)| *k == prefixes.checksum)
        .and_then(|(_, v)| v.as_ref())
        .map(|v| v.trim().to_ascii_lowercase());
    let mut out = ChecksumRefresh {
        had_checksum: stored.is_some(),
        ..ChecksumRefresh::default()
    };
    if stored.as_deref() == Some(keyring::checksum(&parsed.values, &prefixes.checksum).as_str()) {
        return Ok(out);
    }
    if let Some(stored) = &stored
        && parsed.values.len() <= ADDED_SEARCH_LIMIT
    {
        for (i, (name, _)) in parsed.values.iter().enumerate() {
            if *name == prefixes.checksum {
                continue;
            }
            let without: DotenvValues = parsed
                .values
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .map(|(_, v)| v.clone())
                .collect();
            if keyring::checksum(&without, &prefixes.checksum) == *stored {
                out.added.push(name.clone());
            }
        }
    }
    let text = render(path, &parsed, &keyring, prefixes)?;
    let meta = lock.metadata().map_err(io(path, "cannot stat"))?;
    let mut report = WriteReport::default();
    write_atomically(path, &target, text.as_bytes(), Some(&meta), &mut report)?;
    out.written = true;
    out.warnings = report.warnings;
    Ok(out)
}

/// Whether a destroyed version still has key material in the file (written
/// by hand, or by a reader that does not know the state): the next write
/// erases it.
fn stale_material(parsed: &Parsed, keyring: &Keyring, prefixes: &Prefixes) -> bool {
    let names = binding_index(parsed, prefixes);
    keyring
        .versions()
        .iter()
        .filter(|v| v.key.is_none())
        .any(|v| {
            prefixes
                .material()
                .iter()
                .any(|p| names.contains_key(&format!("{p}{}", v.name).to_lowercase()))
        })
}

/// The keyring's bindings by lower-cased name (keyring lookups ignore
/// case). Only the keyring's own variables, recognised as the reader
/// recognises them: another variable whose name lower-cases to one of
/// theirs (`ENCRYPTION_\u{212A}EYS__v1`, with a Kelvin sign) must never
/// stand in for it.
fn binding_index(parsed: &Parsed, prefixes: &Prefixes) -> HashMap<String, usize> {
    parsed
        .bindings
        .iter()
        .enumerate()
        .filter(|(_, b)| keyring::is_keyring_variable_any_case(prefixes, &b.key))
        .map(|(i, b)| (b.key.to_lowercase(), i))
        .collect()
}

/// The new file text: the old text with what changed applied (see
/// [`update_keyring`]), checked by reading it back.
fn render(
    path: &Path,
    parsed: &Parsed,
    keyring: &Keyring,
    prefixes: &Prefixes,
) -> Result<Zeroizing<String>, PersistError> {
    let names = binding_index(parsed, prefixes);
    let binding = |var: &str| names.get(&var.to_lowercase()).map(|&i| &parsed.bindings[i]);
    // Replacements of whole statements (an empty one deletes), by byte
    // range of the original, and lines to append.
    let mut edits: Vec<(Range<usize>, Zeroizing<String>)> = Vec::new();
    let mut appended: Vec<(String, Zeroizing<String>)> = Vec::new();
    let mut set = |var: String, value: Zeroizing<String>| -> Result<(), PersistError> {
        match binding(&var) {
            Some(b) => {
                let line = Zeroizing::new(format!("{var}={}\n", quote::encode(&var, &value)?));
                edits.push((parsed.span(b), line));
            }
            None => appended.push((var, value)),
        }
        Ok(())
    };

    let loaded = &keyring.loaded;
    for (i, v) in keyring.versions().iter().enumerate() {
        if i >= loaded.len {
            for (var, value) in keyring::version_vars(v, prefixes) {
                set(var, value)?;
            }
            continue;
        }
        if v.activated_at != loaded.activated_at[i]
            && let Some(t) = v.activated_at
        {
            set(
                format!("{}{}", prefixes.activated_at, v.name),
                Zeroizing::new(t.to_string()),
            )?;
        }
        if v.state != loaded.states[i]
            && let Some(state) = v.state.as_value()
        {
            set(
                format!("{}{}", prefixes.state, v.name),
                Zeroizing::new(state.to_owned()),
            )?;
        }
    }
    if keyring.active() != loaded.active.as_deref()
        && let Some(active) = keyring.active()
    {
        set(prefixes.active.clone(), Zeroizing::new(active.to_owned()))?;
    }
    // A destroyed version's key material is erased, line and all.
    for v in keyring.versions().iter().filter(|v| v.key.is_none()) {
        for prefix in prefixes.material() {
            if let Some(b) = binding(&format!("{prefix}{}", v.name)) {
                edits.push((parsed.span(b), Zeroizing::new(String::new())));
            }
        }
    }

    let checksum_binding = binding(&prefixes.checksum);
    let compose = |checksum: Option<&str>| -> Result<Zeroizing<String>, PersistError> {
        let mut edits: Vec<(Range<usize>, Zeroizing<String>)> = edits.clone();
        if let (Some(b), Some(sum)) = (checksum_binding, checksum) {
            let line = Zeroizing::new(format!("{}=\"{sum}\"\n", prefixes.checksum));
            edits.push((parsed.span(b), line));
        }
        let mut text = apply_edits(parsed.original.as_str(), &mut edits, 1024);
        let checksum_line = checksum
            .filter(|_| checksum_binding.is_none())
            .map(|sum| (prefixes.checksum.clone(), Zeroizing::new(sum.to_owned())));
        if !appended.is_empty() || checksum_line.is_some() {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            if !text.lines().any(|l| l.trim_end() == HEADER) {
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(HEADER);
                text.push('\n');
            }
            for (var, value) in appended.iter().chain(checksum_line.iter()) {
                text.push_str(var);
                text.push('=');
                text.push_str(&quote::encode(var, value)?);
                text.push('\n');
            }
        }
        Ok(text)
    };

    // The checksum is over what a reader sees, the checksum itself aside:
    // compute it on the text without its new value, then put it in.
    let draft = compose(None)?;
    let reread = parse_text(path, draft.as_bytes())?;
    let sum = keyring::checksum(&reread.values, &prefixes.checksum);
    let text = compose(Some(&sum))?;

    // Read the result back as any later reader will: it must verify and
    // hold exactly the intended keyring, every existing version intact.
    let back = parse_text(path, text.as_bytes())?;
    let read_back = |reason| PersistError::ReadBack {
        path: path.to_owned(),
        reason,
    };
    verify_checksum(path, &back, prefixes).map_err(|_| read_back("checksum"))?;
    let got = keyring::from_vars(&back.values, &Source::File(path.to_owned()), prefixes)?;
    if !got.same_as(keyring) {
        return Err(read_back("a keyring value reads back differently"));
    }
    Ok(text)
}

/// `original` with each byte range replaced (an empty replacement deletes),
/// with room for `extra` bytes more.
pub(crate) fn apply_edits(
    original: &str,
    edits: &mut [(Range<usize>, Zeroizing<String>)],
    extra: usize,
) -> Zeroizing<String> {
    edits.sort_by_key(|(range, _)| range.start);
    let mut text = Zeroizing::new(String::with_capacity(original.len() + extra));
    let mut cursor = 0;
    for (range, replacement) in edits.iter() {
        text.push_str(&original[cursor..range.start]);
        text.push_str(replacement);
        cursor = range.end;
    }
    text.push_str(&original[cursor..]);
    text
}

/// Where a write goes: the path itself, or the target of the symbolic link
/// it names (so the link stays a link).
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) path: PathBuf,
}

/// Follows symbolic links to the file to write. A dangling link or a path
/// that is not a regular file is an error at once.
fn resolve(path: &Path) -> Result<Target, PersistError> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Target {
            path: path.to_owned(),
        }),
        Err(e) => Err(io(path, "cannot stat")(e)),
        Ok(meta) if meta.file_type().is_symlink() => match std::fs::canonicalize(path) {
            Ok(real) => {
                let meta = std::fs::metadata(&real).map_err(io(path, "cannot stat"))?;
                check_regular(path, &meta)?;
                Ok(Target { path: real })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(PersistError::DanglingSymlink {
                    path: path.to_owned(),
                    target: std::fs::read_link(path).unwrap_or_default(),
                })
            }
            Err(e) => Err(io(path, "cannot follow the symbolic link")(e)),
        },
        Ok(meta) => {
            check_regular(path, &meta)?;
            Ok(Target {
                path: path.to_owned(),
            })
        }
    }
}

/// Opens and exclusively locks the target, creating it (mode 0600) if
/// needed. After waiting, checks that the path still names the file locked:
/// a writer that finished meanwhile replaced it, and the new file must be
/// locked instead.
pub(crate) fn lock_file(path: &Path) -> Result<(File, bool, Target), PersistError> {
    // Each round either locks the file or saw it replaced or created by
    // another writer; a path that keeps changing under us is given up on
    // rather than spun on.
    for _ in 0..1000 {
        let target = resolve(path)?;
        let real = &target.path;
        let (file, created) = match open_regular(
            real,
            OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags_nofollow(),
        ) {
            Ok(f) => (f, false),
            Err(PersistError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                let mut create = OpenOptions::new();
                create.read(true).write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut create, 0o600);
                match create.open(real) {
                    Ok(f) => (f, true),
                    // Created meanwhile, or something else appeared (a
                    // symbolic link): look again.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(io(path, "cannot create")(e)),
                }
            }
            Err(PersistError::Io { source, .. }) if is_symlink_loop(&source) => {
                return Err(PersistError::NotRegularFile {
                    path: path.to_owned(),
                    kind: "symbolic link (it was replaced while writing)",
                });
            }
            Err(e) => return Err(e),
        };
        file.lock().map_err(io(path, "cannot lock"))?;
        if same_file(&file, real)? {
            return Ok((file, created, target));
        }
    }
    Err(io(path, "cannot lock")(std::io::Error::other(
        "the file kept being replaced",
    )))
}

fn is_symlink_loop(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc_flags::ELOOP)
}

/// `O_NOFOLLOW` where there is one.
trait NoFollow {
    fn custom_flags_nofollow(&mut self) -> &mut Self;
}

impl NoFollow for OpenOptions {
    fn custom_flags_nofollow(&mut self) -> &mut Self {
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::custom_flags(
            self,
            libc_flags::NOFOLLOW | libc_flags::NONBLOCK,
        );
        self
    }
}

/// The `open(2)` flags and error numbers used here.
#[cfg(unix)]
mod libc_flags {
    pub(super) const NONBLOCK: i32 = libc::O_NONBLOCK;
    pub(super) const NOFOLLOW: i32 = libc::O_NOFOLLOW;
    pub(super) const EISDIR: i32 = libc::EISDIR;
    pub(super) const ELOOP: i32 = libc::ELOOP;
}

#[cfg(not(unix))]
mod libc_flags {
    pub(super) const EISDIR: i32 = -1;
    pub(super) const ELOOP: i32 = -1;
}

#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> Result<bool, PersistError> {
    use std::os::unix::fs::MetadataExt;
    let held = file.metadata().map_err(io(path, "cannot stat"))?;
    match std::fs::symlink_metadata(path) {
        Ok(now) => Ok(held.dev() == now.dev() && held.ino() == now.ino()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io(path, "cannot stat")(e)),
    }
}

#[cfg(not(unix))]
fn same_file(_file: &File, _path: &Path) -> Result<bool, PersistError> {
    Ok(true)
}

/// The prefix of the temporary files next to `path`: `.NAME.tmp` (one
/// leading dot), followed by `-` and 16 random hex digits.
fn temp_prefix(path: &Path) -> String {
    let name = file_name(path);
    if name.starts_with('.') {
        format!("{name}.tmp")
    } else {
        format!(".{name}.tmp")
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(|| ".env".into(), |n| n.to_string_lossy().into_owned())
}

fn temp_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Removes temporary files that writers killed mid-write left next to the
/// target. Only called under the lock, when no live writer has one.
pub(crate) fn remove_stale_temporaries(target: &Target) {
    let prefix = temp_prefix(&target.path);
    let Ok(entries) = std::fs::read_dir(temp_dir(&target.path)) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        // Earlier versions used one fixed name, `.NAME.tmp`.
        let ours = name == format!(".{}.tmp", file_name(&target.path))
            || name
                .strip_prefix(&prefix)
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|r| r.len() == 16 && r.bytes().all(|b| b.is_ascii_hexdigit()));
        if ours {
            // `remove_file` unlinks a symbolic link itself, never its
            // target.
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Creates the temporary file: an unpredictable name, `O_EXCL` (never an
/// existing file) and `O_NOFOLLOW` (never through a planted link), mode
/// 0600 from the start.
fn create_temporary(target: &Path) -> Result<(File, PathBuf), PersistError> {
    let dir = temp_dir(target);
    let prefix = temp_prefix(target);
    let mut last = None;
    for _ in 0..16 {
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).map_err(|e| {
            io(dir, "cannot name a temporary file")(std::io::Error::other(e.to_string()))
        })?;
        let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let tmp = dir.join(format!("{prefix}-{suffix}"));
        let mut options = OpenOptions::new();
        options.write(true).create_new(true).custom_flags_nofollow();
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(&tmp) {
            Ok(file) => return Ok((file, tmp)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(io(&tmp, "cannot create temporary file")(e)),
        }
    }
    Err(io(dir, "cannot create temporary file")(
        last.unwrap_or_else(|| std::io::Error::other("no free name")),
    ))
}

pub(crate) fn write_atomically(
    path: &Path,
    target: &Target,
    bytes: &[u8],
    old: Option<&std::fs::Metadata>,
    report: &mut WriteReport,
) -> Result<(), PersistError> {
    let (mut file, tmp) = create_temporary(&target.path)?;
    let result = (|| {
        // Owner, group and mode before any secret is written.
        #[cfg(unix)]
        if let Some(old) = old {
            use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
            let now = file.metadata().map_err(io(&tmp, "cannot stat"))?;
            if (now.uid(), now.gid()) != (old.uid(), old.gid())
                && let Err(error) =
                    std::os::unix::fs::fchown(&file, Some(old.uid()), Some(old.gid()))
            {
                report.warnings.push(WriteWarning::Owner {
                    path: path.to_owned(),
                    uid: old.uid(),
                    gid: old.gid(),
                    error,
                });
            }
            file.set_permissions(std::fs::Permissions::from_mode(old.mode() & 0o7777))
                .map_err(io(&tmp, "cannot set permissions"))?;
        }
        #[cfg(not(unix))]
        let _ = old;
        file.write_all(bytes).map_err(io(&tmp, "cannot write"))?;
        file.sync_all().map_err(io(&tmp, "cannot sync"))?;
        std::fs::rename(&tmp, &target.path).map_err(io(path, "cannot replace"))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return result;
    }
    // The rename happened: the write is done. A directory that cannot be
    // synced is worth a warning, not a failure.
    if let Err(error) = sync_dir(&target.path) {
        report.warnings.push(WriteWarning::DirectorySync {
            path: temp_dir(&target.path).to_owned(),
            error,
        });
    }
    Ok(())
}

#[cfg(test)]
thread_local! {
    /// Makes the next directory syncs on this thread fail (tests only).
    static FAIL_DIRECTORY_SYNC: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

#[cfg(unix)]
fn sync_dir(path: &Path) -> std::io::Result<()> {
    #[cfg(test)]
    if FAIL_DIRECTORY_SYNC.get() {
        return Err(std::io::Error::other("injected failure"));
    }
    File::open(temp_dir(path)).and_then(|d| d.sync_all())
}

#[cfg(not(unix))]
fn sync_dir(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{StoredKey, StoredVersion};

    #[cfg(unix)]
    #[test]
    fn a_failed_directory_sync_after_the_rename_is_a_warning() {
        let dir = std::env::temp_dir().join(format!("persist-dirsync-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(".env.secrets");
        FAIL_DIRECTORY_SYNC.set(true);
        let result = update_keyring(&path, &Prefixes::default(), |k| {
            k.add(StoredVersion::new("v1", StoredKey::Fernet("k".into())))?;
            k.set_active("v1")
        });
        FAIL_DIRECTORY_SYNC.set(false);
        let ((), report) = result.unwrap();
        assert!(report.written);
        assert!(
            matches!(
                report.warnings.as_slice(),
                [WriteWarning::DirectorySync { .. }]
            ),
            "{:?}",
            report.warnings
        );
        assert!(
            report.warnings[0]
                .to_string()
                .contains("cannot sync the directory")
        );
        assert!(
            read_keyring(&path, &Prefixes::default())
                .unwrap()
                .get("v1")
                .is_some()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
