//! Writing values so python-dotenv reads back exactly what was written.

use crate::error::PersistError;

/// How `value` must be written after `NAME=`: double-quoted with escapes
/// when that reads back exactly, otherwise unquoted when that does,
/// otherwise an error.
///
/// python-dotenv expands `${NAME}` in every value, quoted or not, and cannot
/// read a quoted value whose last character is a backslash; those values
/// are written unquoted when possible and refused otherwise.
pub(crate) fn encode(name: &str, value: &str) -> Result<String, PersistError> {
    if has_interpolation(value) {
        return Err(PersistError::Unwritable {
            variable: name.to_owned(),
            reason: "the value contains a ${...} reference, which python-dotenv expands",
        });
    }
    if !value.ends_with('\\') {
        let mut out = String::with_capacity(value.len() + 2);
        out.push('"');
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                c => out.push(c),
            }
        }
        out.push('"');
        return Ok(out);
    }
    if unquoted_reads_back(value) {
        return Ok(value.to_owned());
    }
    Err(PersistError::Unwritable {
        variable: name.to_owned(),
        reason: "the value ends with a backslash and has spaces, quotes, '#' or line breaks that need quoting",
    })
}

/// Whether python-dotenv's `${NAME}` / `${NAME:-default}` pattern occurs.
pub(crate) fn has_interpolation(value: &str) -> bool {
    references(value).next().is_some()
}

/// The names python-dotenv's `${NAME}` / `${NAME:-default}` pattern finds
/// in a value's text, in order.
pub(crate) fn references(value: &str) -> impl Iterator<Item = &str> {
    let mut rest = value;
    std::iter::from_fn(move || {
        while let Some(i) = rest.find("${") {
            let after = &rest[i + 2..];
            let name_end = after.find(['}', ':']).unwrap_or(after.len());
            let tail = &after[name_end..];
            if let Some(close) = if tail.starts_with('}') {
                Some(0)
            } else {
                tail.strip_prefix(":-")
                    .and_then(|d| d.find('}'))
                    .map(|e| e + 2)
            } {
                rest = &tail[close + 1..];
                return Some(&after[..name_end]);
            }
            rest = after;
        }
        None
    })
}

fn unquoted_reads_back(value: &str) -> bool {
    let first = value.chars().next();
    let py_ws = |c: char| c.is_whitespace() || ('\x1c'..='\x1f').contains(&c);
    !value.is_empty()
        && !matches!(first, Some('\'' | '"'))
        && !value.starts_with(py_ws)
        && !value.ends_with(py_ws)
        && !value.contains(['\n', '\r'])
        && !value
            .chars()
            .zip(value.chars().skip(1))
            .any(|(a, b)| py_ws(a) && b == '#')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_quoting() {
        assert_eq!(encode("A", "plain").unwrap(), "\"plain\"");
        assert_eq!(
            encode("A", "a\"b\\c\nd\re").unwrap(),
            "\"a\\\"b\\\\c\\nd\\re\""
        );
        assert_eq!(encode("A", "ends\\").unwrap(), "ends\\");
        assert_eq!(encode("A", "two words\\").unwrap(), "two words\\");
        assert!(encode("A", "two #words\\").is_err());
        assert!(encode("A", " lead\\").is_err());
        let err = encode("SECRET", "x${HOME}y").unwrap_err().to_string();
        assert!(err.starts_with("SECRET:") && !err.contains("HOME"), "{err}");
        assert_eq!(encode("A", "${unclosed").unwrap(), "\"${unclosed\"");
    }

    #[test]
    fn finds_references_as_python_dotenv_expands_them() {
        let found: Vec<&str> = references("${A}-${B:-x}-${C:y}-${D").collect();
        assert_eq!(found, ["A", "B"]);
        let found: Vec<&str> = references("$${A}}${B:-${C}}").collect();
        assert_eq!(found, ["A", "B"]);
        assert_eq!(references("plain $A {B}").count(), 0);
    }
}
