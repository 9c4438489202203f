//! Version names.

use std::fmt;

/// Longest version name accepted (inline storage keeps `Version` at 32
/// bytes, cheap to copy on every operation).
const MAX_LEN: usize = 31;

/// A key version's name, lower-cased (`"V1"` and `"v1"` are the same
/// version, as in the Python package).
///
/// Names are 1 to 31 characters of ASCII letters, digits, `_`, `-` and `.`,
/// so they can appear in `.env` variable names. They are not secret.
///
/// ```
/// use secrets_manager_keystore::Version;
///
/// let v = Version::new("V1")?;
/// assert_eq!(v, "v1");
/// assert_eq!(v.as_str(), "v1");
/// assert_eq!(v.to_string(), "v1");
/// assert!(Version::new("v 1").is_err());
/// # Ok::<(), secrets_manager_keystore::InvalidVersionName>(())
/// ```
///
/// Stored inline (no heap, no reference count), so handing a version to
/// every caller of a hot path costs a small copy and no shared-memory write.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Version {
    len: u8,
    bytes: [u8; MAX_LEN],
}

impl Version {
    /// Validates and lower-cases a name.
    ///
    /// # Errors
    ///
    /// [`InvalidVersionName`] for an empty or over-long name or one with
    /// other characters.
    pub fn new(name: &str) -> Result<Self, InvalidVersionName> {
        let valid = !name.is_empty()
            && name.len() <= MAX_LEN
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !valid {
            return Err(InvalidVersionName {
                name: printable(name),
            });
        }
        let mut bytes = [0u8; MAX_LEN];
        for (dst, src) in bytes.iter_mut().zip(name.bytes()) {
            *dst = src.to_ascii_lowercase();
        }
        // At most `MAX_LEN`, checked above.
        Ok(Self {
            len: name.len() as u8,
            bytes,
        })
    }

    /// Parses an active-version setting as the Python package does:
    /// surrounding whitespace and `"`/`'` quotes are stripped first.
    ///
    /// # Errors
    ///
    /// As [`Version::new`].
    pub fn from_setting(text: &str) -> Result<Self, InvalidVersionName> {
        Self::new(text.trim().trim_matches(|c| c == '"' || c == '\''))
    }

    /// The lower-cased name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored (checked in `new`).
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

/// A version name that cannot be used: empty, longer than 31 characters,
/// or with characters other than ASCII letters, digits, `_`, `-` and `.`.
///
/// Its own type, rather than a [`KeystoreError`](crate::KeystoreError)
/// variant, so that names can be checked without the key store's errors;
/// `KeystoreError` (and the facade's error) convert from it.
///
/// ```
/// use secrets_manager_keystore::Version;
///
/// let err = Version::new("v 1").unwrap_err();
/// assert_eq!(err.name(), "v 1");
/// assert!(err.to_string().starts_with("invalid version name 'v 1'"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid version name '{name}': use 1 to 31 ASCII letters, digits, '_', '-' or '.'")]
pub struct InvalidVersionName {
    /// The name as given, escaped and truncated.
    name: String,
}

impl InvalidVersionName {
    /// The name as given (control characters escaped, at most 31
    /// characters shown), for messages.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A name shown in an error: at most 31 characters, control characters
/// escaped.
fn printable(name: &str) -> String {
    let mut shown: String = name
        .chars()
        .take(MAX_LEN)
        .flat_map(char::escape_debug)
        .collect();
    if name.chars().count() > MAX_LEN {
        shown.push('…');
    }
    shown
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Version({:?})", self.as_str())
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq<str> for Version {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Version {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl AsRef<str> for Version {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl std::str::FromStr for Version {
    type Err = InvalidVersionName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_case_insensitive() {
        assert_eq!(Version::new("V1").unwrap(), Version::new("v1").unwrap());
        assert_eq!(Version::new("Prod-2024.1_a").unwrap(), "prod-2024.1_a");
    }

    #[test]
    fn settings_lose_quotes_and_whitespace() {
        assert_eq!(Version::from_setting(" \"V2\" ").unwrap(), "v2");
        assert_eq!(Version::from_setting("'v3'").unwrap(), "v3");
    }

    #[test]
    fn bad_names_are_refused_with_the_name() {
        for bad in ["", "a b", "v=1", "v\n1", &"x".repeat(32)] {
            let err = Version::new(bad).unwrap_err();
            assert!(
                err.to_string().starts_with("invalid version name '"),
                "{bad:?}"
            );
            // The store's error wraps it with the same message.
            let wrapped = crate::KeystoreError::from(err.clone());
            assert!(
                matches!(&wrapped, crate::KeystoreError::InvalidVersionName(e) if *e == err),
                "{bad:?}"
            );
            assert_eq!(wrapped.to_string(), err.to_string());
        }
        let err = Version::new("a\nb").unwrap_err();
        assert_eq!(err.name(), "a\\nb");
        assert!(err.to_string().contains("'a\\nb'"), "{err}");
        let long = Version::new(&"x".repeat(40)).unwrap_err();
        assert_eq!(long.name(), format!("{}…", "x".repeat(31)));
    }
}
