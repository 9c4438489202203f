//! An application's own variables in a `.env` file (its values, not the
//! keyring's): read with what their text refers to, and changed in place
//! through the keyring writer's lock, atomic write and read-back check.
//!
//! A file may hold both (the Python package writes its keyring into the
//! application's `.env`): keyring variables are never changed here, and a
//! checksum the file carries is verified before and refreshed after.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use zeroize::Zeroizing;

use crate::error::PersistError;
use crate::file::{self, Parsed, WriteReport};
use crate::keyring::{self, Prefixes};
use crate::quote;

/// One variable of a `.env` file, as python-dotenv reads it.
#[non_exhaustive]
pub struct Variable {
    /// Its name, as written.
    pub name: String,
    /// Its value as python-dotenv returns it (`${NAME}` references
    /// expanded); `None` for a bare `NAME`.
    pub value: Option<Zeroizing<String>>,
    /// The names its text refers to with `${NAME}`: its value depends on
    /// them, or on the environment.
    pub references: Vec<String>,
    /// The line its statement starts on.
    pub line: usize,
    /// Whether it belongs to the keyring (its name in any case).
    pub keyring: bool,
}

impl std::fmt::Debug for Variable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Variable")
            .field("name", &self.name)
            .field("value", &self.value.as_ref().map(|_| "[REDACTED]"))
            .field("references", &self.references)
            .field("line", &self.line)
            .field("keyring", &self.keyring)
            .finish()
    }
}

fn variables(parsed: &Parsed, prefixes: &Prefixes) -> Vec<Variable> {
    parsed
        .bindings
        .iter()
        .zip(&parsed.values)
        .map(|(b, (name, value))| Variable {
            name: name.clone(),
            value: value.clone(),
            references: b
                .value
                .as_deref()
                .map(|raw| quote::references(raw).map(str::to_owned).collect())
                .unwrap_or_default(),
            line: b.line,
            keyring: keyring::is_keyring_variable_any_case(prefixes, name),
        })
        .collect()
}

/// A `.env` file's variables in file order, as python-dotenv reads them.
///
/// # Errors
///
/// As [`dotenv_values`](crate::dotenv_values).
pub fn read_variables(
    path: impl AsRef<Path>,
    prefixes: &Prefixes,
) -> Result<Vec<Variable>, PersistError> {
    let path = path.as_ref();
    let parsed = file::parse_text(path, &file::read_bytes(path)?)?;
    Ok(variables(&parsed, prefixes))
}

/// Changes application variables of the `.env` file at `path` under the
/// same exclusive lock keyring writes take: `update` gets the variables now
/// in the file (none if there is no file) and returns new values by name.
/// A name the file has gets its value replaced where it stands (an
/// `export` before it and a comment after it are kept); a new name is
/// appended. Every other byte of the file is kept.
///
/// Each value is quoted so that python-dotenv reads back exactly that
/// text. A checksum in the file ([`Prefixes::checksum`]) is verified
/// before the change and refreshed after it. The new text is read back
/// before anything is replaced: the changed values must read back as
/// given, every other variable's text must be unchanged and every keyring
/// variable must read back to the same value; otherwise nothing is
/// written. The write is atomic and durable as
/// [`update_keyring`](crate::update_keyring)'s is; a new file gets mode
/// 0600. With no change, the file is not touched (and a file this call
/// created is removed).
///
/// # Errors
///
/// As [`dotenv_values`](crate::dotenv_values); a checksum that does not
/// match; [`PersistError::KeyringVariable`] for a change to a keyring
/// variable; [`PersistError::Unwritable`] for a name or value
/// python-dotenv would not read back unchanged; [`PersistError::ReadBack`];
/// any file-system error; or whatever `update` returns.
pub fn update_variables<E: From<PersistError>>(
    path: impl AsRef<Path>,
    prefixes: &Prefixes,
    update: impl FnOnce(&[Variable]) -> Result<Vec<(String, Zeroizing<String>)>, E>,
) -> Result<WriteReport, E> {
    let path = path.as_ref();
    file::locked_rewrite(path, prefixes, |parsed| {
        let changes = update(&variables(parsed, prefixes))?;
        Ok(((), render(path, parsed, prefixes, changes)?))
    })
    .map(|((), report)| report)
}

/// Whether python-dotenv reads `name` back as written, unquoted, before
/// `=`: what [`update_variables`] accepts as a name, so a caller can check
/// before asking for a value.
#[must_use]
pub fn writable_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(['\'', '"'])
        && !name.contains(|c: char| c == '=' || c == '#' || c.is_whitespace())
        && !name.contains(|c: char| ('\x1c'..='\x1f').contains(&c))
}

/// The new text, or `None` when nothing changes.
fn render(
    path: &Path,
    parsed: &Parsed,
    prefixes: &Prefixes,
    changes: Vec<(String, Zeroizing<String>)>,
) -> Result<Option<Zeroizing<String>>, PersistError> {
    // The last change of a name wins; first-seen order is kept for
    // appending.
    let mut wanted: Vec<(String, Zeroizing<String>)> = Vec::with_capacity(changes.len());
    let mut slots: HashMap<String, usize> = HashMap::with_capacity(changes.len());
    for (name, value) in changes {
        match slots.get(&name) {
            Some(&i) => wanted[i].1 = value,
            None => {
                slots.insert(name.clone(), wanted.len());
                wanted.push((name, value));
            }
        }
    }
    let index: HashMap<&str, usize> = parsed
        .bindings
        .iter()
        .enumerate()
        .map(|(i, b)| (b.key.as_str(), i))
        .collect();
    for (name, _) in &wanted {
        if keyring::is_keyring_variable_any_case(prefixes, name) {
            return Err(PersistError::KeyringVariable {
                path: path.to_owned(),
                variable: name.clone(),
            });
        }
        if !writable_name(name) {
            return Err(PersistError::Unwritable {
                variable: name.clone(),
                reason: "the name has blanks, '=', '#' or a leading quote",
            });
        }
    }
    // A value the file already holds, as text without references, is no
    // change.
    wanted.retain(|(name, value)| {
        index.get(name.as_str()).is_none_or(|&i| {
            let same = parsed.values[i].1.as_ref().map(|v| v.as_str()) == Some(value.as_str());
            let literal = parsed.bindings[i]
                .value
                .as_deref()
                .is_some_and(|raw| quote::references(raw).next().is_none());
            !(same && literal)
        })
    });
    if wanted.is_empty() {
        return Ok(None);
    }

    let mut edits: Vec<(Range<usize>, Zeroizing<String>)> = Vec::new();
    let mut appended = Zeroizing::new(String::new());
    for (name, value) in &wanted {
        let encoded = Zeroizing::new(quote::encode(name, value)?);
        match index.get(name.as_str()).map(|&i| &parsed.bindings[i]) {
            Some(b) => match parsed.value_span(b) {
                Some(range) => edits.push((range, encoded)),
                // A bare `NAME` becomes `NAME=value`, where it stands: an
                // `export` before it, a comment after it and its line end
                // are kept.
                None => {
                    let at = parsed.key_end(b);
                    edits.push((at..at, Zeroizing::new(format!("={}", encoded.as_str()))));
                }
            },
            None => {
                appended.push_str(name);
                appended.push('=');
                appended.push_str(&encoded);
                appended.push('\n');
            }
        }
    }

    let checksum = index
        .get(prefixes.checksum.as_str())
        .and_then(|&i| parsed.value_span(&parsed.bindings[i]));
    let compose = |sum: Option<&str>| -> Zeroizing<String> {
        let mut edits = edits.clone();
        if let (Some(range), Some(sum)) = (&checksum, sum) {
            edits.push((range.clone(), Zeroizing::new(format!("\"{sum}\""))));
        }
        let mut text =
            crate::file::apply_edits(parsed.original.as_str(), &mut edits, appended.len() + 128);
        if !appended.is_empty() {
            if !text.is_empty() && !text.ends_with(['\n', '\r']) {
                text.push('\n');
            }
            text.push_str(&appended);
        }
        text
    };
    let text = if checksum.is_some() {
        // The checksum covers what a reader sees, itself aside.
        let draft = compose(None);
        let reread = file::parse_text(path, draft.as_bytes())?;
        compose(Some(&keyring::checksum(&reread.values, &prefixes.checksum)))
    } else {
        compose(None)
    };
    read_back(path, parsed, prefixes, &wanted, &text)?;
    Ok(Some(text))
}

/// Reads `text` as any later reader will: the changed values as given,
/// every other variable's text as it was, the keyring's values the same.
fn read_back(
    path: &Path,
    before: &Parsed,
    prefixes: &Prefixes,
    wanted: &[(String, Zeroizing<String>)],
    text: &str,
) -> Result<(), PersistError> {
    let fail = |reason| PersistError::ReadBack {
        path: path.to_owned(),
        reason,
    };
    let back = file::parse_text(path, text.as_bytes())?;
    file::verify_checksum(path, &back, prefixes).map_err(|_| fail("checksum"))?;
    // Hashed, so a bulk change of a large file stays linear.
    let old_names: std::collections::HashSet<&str> =
        before.bindings.iter().map(|b| b.key.as_str()).collect();
    let new_values: HashMap<&str, &str> = wanted
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let names = before.bindings.iter().map(|b| b.key.as_str()).chain(
        wanted
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| !old_names.contains(n)),
    );
    if !names.eq(back.bindings.iter().map(|b| b.key.as_str())) {
        return Err(fail("the variables would differ"));
    }
    for (i, b) in back.bindings.iter().enumerate() {
        let value = back.values[i].1.as_ref().map(|v| v.as_str());
        if let Some(&v) = new_values.get(b.key.as_str()) {
            if value != Some(v) {
                return Err(fail("a new value reads back differently"));
            }
        } else if b.key == prefixes.checksum {
            // Verified above.
        } else if keyring::is_keyring_variable_any_case(prefixes, &b.key) {
            if value != before.values[i].1.as_ref().map(|v| v.as_str()) {
                return Err(fail(
                    "a keyring variable refers to a changed value with ${...}",
                ));
            }
        } else if b.value.as_deref() != before.bindings[i].value.as_deref() {
            return Err(fail("another variable's text would change"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(name: &str, value: &str) -> (String, Zeroizing<String>) {
        (name.to_owned(), Zeroizing::new(value.to_owned()))
    }

    fn set(
        path: &Path,
        changes: Vec<(String, Zeroizing<String>)>,
    ) -> Result<WriteReport, PersistError> {
        update_variables(path, &Prefixes::default(), |_| {
            Ok::<_, PersistError>(changes)
        })
    }

    #[test]
    fn values_change_where_they_stand_and_every_other_byte_stays() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        let text = "# app\r\nexport A=1 # one\r\nB='two'   # two\nC\n\nD=\"x\ny\"\n";
        std::fs::write(&path, text).unwrap();
        let report = set(
            &path,
            vec![
                change("A", "new a"),
                change("B", "it's"),
                change("C", "c"),
                change("E", "e\\"),
            ],
        )
        .unwrap();
        assert!(report.written);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "# app\r\nexport A=\"new a\" # one\r\nB=\"it's\"   # two\nC=\"c\"\n\nD=\"x\ny\"\nE=e\\\n"
        );
        // The same values again: nothing to write.
        assert!(!set(&path, vec![change("A", "new a")]).unwrap().written);
    }

    /// A bare `NAME` gets its value where it stands: the `export` before
    /// it, a comment after it and CRLF line ends are kept, at the end of
    /// the file too.
    #[test]
    fn a_bare_name_gets_its_value_and_keeps_export_comment_and_line_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        std::fs::write(&path, "export C # note\r\nD=1\r\nE").unwrap();
        set(&path, vec![change("C", "x"), change("E", "y")]).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "export C=\"x\" # note\r\nD=1\r\nE=\"y\""
        );
        let back = read_variables(&path, &Prefixes::default()).unwrap();
        let value = |n: &str| {
            back.iter()
                .find(|v| v.name == n)
                .and_then(|v| v.value.as_ref().map(|s| s.as_str().to_owned()))
        };
        assert_eq!(
            (value("C").as_deref(), value("E").as_deref()),
            (Some("x"), Some("y"))
        );
    }

    #[test]
    fn keyring_variables_and_references_from_the_keyring_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        let text = "APP=1\nENCRYPTION_KEYS__v1=${APP}\nENCRYPTION_SALT__v1=c2FsdA==\n";
        std::fs::write(&path, text).unwrap();
        let err = set(&path, vec![change("encryption_keys__V1", "x")]).unwrap_err();
        assert!(matches!(err, PersistError::KeyringVariable { .. }), "{err}");
        let err = set(&path, vec![change("APP", "2")]).unwrap_err();
        assert!(matches!(err, PersistError::ReadBack { .. }), "{err}");
        let err = set(&path, vec![change("A B", "2")]).unwrap_err();
        assert!(matches!(err, PersistError::Unwritable { .. }), "{err}");
        let err = set(&path, vec![change("X", "${APP}")]).unwrap_err();
        assert!(matches!(err, PersistError::Unwritable { .. }), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }

    #[test]
    fn a_checksum_is_verified_and_refreshed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        let values: crate::DotenvValues = vec![("A".into(), Some(Zeroizing::new("1".into())))];
        let sum = keyring::checksum(&values, "ENCRYPTION_ENV_CHECKSUM");
        std::fs::write(&path, format!("A=1\nENCRYPTION_ENV_CHECKSUM=\"{sum}\"\n")).unwrap();
        set(&path, vec![change("A", "2"), change("B", "3")]).unwrap();
        let parsed = file::parse_text(&path, &std::fs::read(&path).unwrap()).unwrap();
        file::verify_checksum(&path, &parsed, &Prefixes::default()).unwrap();
        assert_eq!(parsed.values.len(), 3);
        // A hand edit since: refused, untouched.
        let edited = std::fs::read_to_string(&path)
            .unwrap()
            .replace("A=\"2\"", "A=9");
        std::fs::write(&path, &edited).unwrap();
        let err = set(&path, vec![change("A", "3")]).unwrap_err();
        assert!(matches!(err, PersistError::Checksum { .. }), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), edited);
    }

    #[cfg(unix)]
    #[test]
    fn a_new_file_is_private_and_no_change_leaves_none() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        assert!(!set(&path, vec![]).unwrap().written);
        assert!(!path.exists());
        set(&path, vec![change("A", "1")]).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "A=\"1\"\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
