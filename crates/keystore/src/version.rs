//! Version names.

use std::fmt;

/// The longest version name, in bytes of UTF-8 once lower-cased. Names
/// are stored inline in one 64-byte value, so every encryption and
/// decryption hands its version back without a heap allocation or a shared
/// reference count; this is that room.
pub const MAX_VERSION_LEN: usize = 63;
const MAX_LEN: usize = MAX_VERSION_LEN;

/// A key version's name, lower-cased as Python's `str.lower` does (`"V1"`
/// and `"v1"` are the same version, as in the Python package).
///
/// Any name the Python package can use is accepted: whatever python-dotenv
/// reads as part of a variable name (`ENCRYPTION_KEYS__<name>`), that is,
/// no whitespace, `=` or `#`, up to [`MAX_VERSION_LEN`] bytes. Names are
/// not secret.
///
/// ```
/// use secrets_manager_keystore::Version;
///
/// let v = Version::new("V1")?;
/// assert_eq!(v, "v1");
/// assert_eq!(v.as_str(), "v1");
/// assert_eq!(v.to_string(), "v1");
/// assert_eq!(Version::new("Team/Alpha")?, "team/alpha");
/// assert_eq!(Version::new("release-2024-01-15-production-key")?.as_str().len(), 33);
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

/// Python's `\s` (Unicode whitespace, with the information separators
/// U+001C to U+001F that Rust does not count), which ends a variable name
/// for python-dotenv, as do `=` and `#`.
fn ends_a_name(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c) || c == '=' || c == '#'
}

impl Version {
    /// Validates and lower-cases a name.
    ///
    /// # Errors
    ///
    /// [`InvalidVersionName`] for an empty name, one longer than
    /// [`MAX_VERSION_LEN`] bytes once lower-cased, or one with whitespace,
    /// `=`, `#` or control characters.
    pub fn new(name: &str) -> Result<Self, InvalidVersionName> {
        let invalid = || InvalidVersionName {
            name: printable(name),
        };
        if name.is_empty() || name.chars().any(|c| ends_a_name(c) || c.is_control()) {
            return Err(invalid());
        }
        let lower = if name.is_ascii() {
            name.to_ascii_lowercase()
        } else {
            name.to_lowercase()
        };
        let len = u8::try_from(lower.len())
            .ok()
            .filter(|&n| usize::from(n) <= MAX_LEN)
            .ok_or_else(invalid)?;
        let mut bytes = [0u8; MAX_LEN];
        bytes[..lower.len()].copy_from_slice(lower.as_bytes());
        Ok(Self { len, bytes })
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
    ///
    /// # Panics
    ///
    /// Never: [`new`](Self::new) stores the UTF-8 of a whole string.
    #[must_use]
    pub fn as_str(&self) -> &str {
        #[allow(clippy::expect_used)]
        std::str::from_utf8(&self.bytes[..usize::from(self.len)])
            .expect("a version holds the UTF-8 of a whole string") // ok: `new` copies a whole `str`
    }
}

/// A version name that cannot be used: empty, longer than
/// [`MAX_VERSION_LEN`] bytes, or with whitespace, `=`, `#` or control
/// characters (which cannot be part of a `.env` variable name).
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
#[error(
    "invalid version name '{name}': a version name is 1 to 63 bytes with no whitespace, '=', '#' or control characters (it becomes part of a variable name)"
)]
pub struct InvalidVersionName {
    /// The name as given, escaped and truncated.
    name: String,
}

impl InvalidVersionName {
    /// The name as given (control characters escaped, at most 63
    /// characters shown), for messages.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A name shown in an error: at most 63 characters, control characters
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
        for bad in [
            "",
            "a b",
            "v=1",
            "v#1",
            "v\n1",
            "a\u{1c}b",
            "v\u{7f}",
            &"x".repeat(64),
            &"é".repeat(32),
        ] {
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
        let long = Version::new(&"x".repeat(80)).unwrap_err();
        assert_eq!(long.name(), format!("{}…", "x".repeat(63)));
    }

    #[test]
    fn every_name_python_can_use_is_accepted_and_lower_cased_as_python_does() {
        for (given, want) in [
            (
                "release-2024-01-15-production-key",
                "release-2024-01-15-production-key",
            ),
            ("team/alpha", "team/alpha"),
            ("Prod:EU@2026!", "prod:eu@2026!"),
            ("ÉTÉ-Ω", "été-ω"),
            ("it's", "it's"),
        ] {
            assert_eq!(Version::new(given).unwrap(), want, "{given}");
        }
        let longest = "x".repeat(MAX_VERSION_LEN);
        assert_eq!(Version::new(&longest).unwrap().as_str(), longest);
        assert_eq!(std::mem::size_of::<Version>(), 64);
    }
}
