//! A reader for `.env` files with python-dotenv's exact semantics
//! (`dotenv_values`, python-dotenv 1.x): the parser, escapes and `${NAME}`
//! interpolation, so a file means the same thing here as in Python.
//!
//! Differences, all refusals rather than different readings: a line
//! python-dotenv would skip with a warning is an error here, naming the
//! line; so is a variable defined twice (python-dotenv keeps the last).

use std::ops::Range;

use zeroize::Zeroizing;

use crate::DotenvValues;

/// One `NAME=value` statement.
#[derive(Debug)]
pub(crate) struct Binding {
    pub(crate) key: String,
    /// `None` for a bare `NAME` with no `=`.
    pub(crate) value: Option<Zeroizing<String>>,
    /// 1-based line where the statement starts.
    pub(crate) line: usize,
    /// Byte range of the statement in the text, from its first
    /// non-blank character through its line end.
    pub(crate) span: Range<usize>,
    /// Byte range of the value's own text (quotes included; an inline
    /// comment and trailing blanks not), `None` for a bare `NAME`.
    pub(crate) value_span: Option<Range<usize>>,
    /// Byte offset just after the name (its closing quote included): where
    /// `=value` goes for a bare `NAME`.
    pub(crate) key_end: usize,
}

/// Where parsing stopped: a statement python-dotenv cannot read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Unparsable {
    pub(crate) line: usize,
}

/// Parses a whole file. `text` must already have had its line endings
/// translated as Python's text mode does (see [`universal_newlines`]).
pub(crate) fn parse(text: &str) -> Result<Vec<Binding>, Unparsable> {
    let mut reader = Reader {
        s: text,
        pos: 0,
        line: 1,
        key_line: 1,
        key_pos: 0,
        key_end: 0,
    };
    let mut out = Vec::new();
    while reader.pos < text.len() {
        let line = reader.line;
        match reader.binding() {
            Ok(Some((key, value))) => {
                let (value, value_span) = value.unzip();
                // The statement's own line is where its key starts.
                out.push(Binding {
                    key,
                    value,
                    line: reader.key_line,
                    span: reader.key_pos..reader.pos,
                    value_span,
                    key_end: reader.key_end,
                });
            }
            Ok(None) => {}
            Err(()) => {
                return Err(Unparsable {
                    line: reader.key_line.max(line),
                });
            }
        }
    }
    Ok(out)
}

/// Python's universal newlines: `\r\n` and lone `\r` become `\n`.
pub(crate) fn universal_newlines(text: &str) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(text.len()));
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\r' {
            if chars.peek() == Some(&'\n') {
                chars.next();
            }
            out.push('\n');
        } else {
            out.push(c);
        }
    }
    out
}

struct Reader<'a> {
    s: &'a str,
    pos: usize,
    line: usize,
    /// Line of the current statement's first non-blank character.
    key_line: usize,
    /// Where that character is.
    key_pos: usize,
    /// Just after the current statement's name.
    key_end: usize,
}

/// Python's `\s` on `str`: Unicode whitespace, including the
/// information separators U+001C to U+001F that Rust does not count.
fn is_ws(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

/// Python's `[^\S\r\n]`: whitespace other than line ends.
fn is_inline_ws(c: char) -> bool {
    is_ws(c) && c != '\r' && c != '\n'
}

impl Reader<'_> {
    fn rest(&self) -> &str {
        &self.s[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn advance(&mut self, n: usize) {
        let taken = &self.s[self.pos..self.pos + n];
        self.line += taken.matches('\n').count() + taken.matches('\r').count()
            - taken.matches("\r\n").count();
        self.pos += n;
    }

    fn take_while(&mut self, f: impl Fn(char) -> bool) -> &str {
        let start = self.pos;
        let n = self
            .rest()
            .char_indices()
            .find(|&(_, c)| !f(c))
            .map_or(self.rest().len(), |(i, _)| i);
        self.advance(n);
        &self.s[start..start + n]
    }

    /// `[^\r\n]*(?:\r|\n|\r\n)?`, as python-dotenv skips a bad line. (The
    /// alternation order means a `\r\n` end consumes only the `\r`.)
    fn end_of_line(&mut self) -> Result<(), ()> {
        self.take_while(is_inline_ws);
        match self.peek() {
            None => Ok(()),
            Some('\r') => {
                let n = if self.rest().starts_with("\r\n") {
                    2
                } else {
                    1
                };
                self.advance(n);
                Ok(())
            }
            Some('\n') => {
                self.advance(1);
                Ok(())
            }
            Some(_) => Err(()),
        }
    }

    /// One statement: `Ok(None)` for blank lines and comments.
    #[allow(clippy::type_complexity)]
    fn binding(
        &mut self,
    ) -> Result<Option<(String, Option<(Zeroizing<String>, Range<usize>)>)>, ()> {
        self.take_while(is_ws);
        self.key_line = self.line;
        self.key_pos = self.pos;
        if self.pos >= self.s.len() {
            return Ok(None);
        }
        // `export` followed by inline whitespace.
        if let Some(after) = self.rest().strip_prefix("export")
            && after.starts_with(is_inline_ws)
        {
            self.advance("export".len());
            self.take_while(is_inline_ws);
        }
        let key = match self.peek() {
            Some('#') => None,
            Some('\'') => {
                let body = &self.rest()[1..];
                let end = body.find('\'').filter(|&e| e > 0).ok_or(())?;
                let key = body[..end].to_owned();
                self.advance(end + 2);
                Some(key)
            }
            _ => {
                let key = self
                    .take_while(|c| c != '=' && c != '#' && !is_ws(c))
                    .to_owned();
                if key.is_empty() {
                    return Err(());
                }
                Some(key)
            }
        };
        self.key_end = self.pos;
        self.take_while(is_inline_ws);
        let value = if self.peek() == Some('=') {
            self.advance(1);
            self.take_while(is_inline_ws);
            let start = self.pos;
            let (value, end) = self.value()?;
            Some((value, start..end))
        } else {
            None
        };
        // An optional comment, then the end of the line.
        let save = (self.pos, self.line);
        self.take_while(is_inline_ws);
        if self.peek() == Some('#') {
            self.take_while(|c| c != '\r' && c != '\n');
        } else {
            (self.pos, self.line) = save;
        }
        self.end_of_line()?;
        Ok(key.map(|k| (k, value)))
    }

    /// The value, and where its text ends.
    fn value(&mut self) -> Result<(Zeroizing<String>, usize), ()> {
        match self.peek() {
            Some(q @ ('\'' | '"')) => {
                // `'((?:\\'|[^'])*)'`: a backslash-quote pair never closes.
                let body = &self.rest()[1..];
                let mut end = None;
                let mut chars = body.char_indices().peekable();
                while let Some((i, c)) = chars.next() {
                    if c == '\\' && chars.peek().map(|&(_, n)| n) == Some(q) {
                        chars.next();
                    } else if c == q {
                        end = Some(i);
                        break;
                    }
                }
                // Python's regex backtracks when the greedy reading finds no
                // closing quote: the last `\<quote>` then closes.
                let end = match end {
                    Some(e) => e,
                    None => backtracked_close(body, q).ok_or(())?,
                };
                let raw = Zeroizing::new(body[..end].to_owned());
                self.advance(end + 2);
                let value = if q == '"' {
                    decode_double(&raw)
                } else {
                    decode_single(&raw)
                };
                Ok((value, self.pos))
            }
            None | Some('\n' | '\r') => Ok((Zeroizing::new(String::new()), self.pos)),
            Some(_) => {
                let start = self.pos;
                let part = self.take_while(|c| c != '\r' && c != '\n');
                // The value is a prefix of the line's text.
                let value = strip_inline_comment(part);
                let end = start + value.len();
                Ok((value, end))
            }
        }
    }
}

/// With no closing quote found by the greedy reading, Python's regex
/// backtracks to the last `\<quote>` and treats its quote as the close.
fn backtracked_close(body: &str, q: char) -> Option<usize> {
    let bytes = body.as_bytes();
    (1..bytes.len())
        .rev()
        .find(|&i| bytes[i] == q as u8 && bytes[i - 1] == b'\\')
}

/// `re.sub(r"\s+#.*", "", part).rstrip()`.
fn strip_inline_comment(part: &str) -> Zeroizing<String> {
    let mut cut = part.len();
    let chars: Vec<(usize, char)> = part.char_indices().collect();
    for k in 1..chars.len() {
        if chars[k].1 == '#' && is_ws(chars[k - 1].1) {
            // Back up over the whole whitespace run.
            let mut j = k;
            while j > 0 && is_ws(chars[j - 1].1) {
                j -= 1;
            }
            cut = chars[j].0;
            break;
        }
    }
    Zeroizing::new(part[..cut].trim_end_matches(is_ws).to_owned())
}

/// `\\[\\'"abfnrtv]` escapes, decoded as Python's `unicode-escape` does.
fn decode_double(raw: &str) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(raw.len()));
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let decoded = match chars.peek() {
                Some('\\') => Some('\\'),
                Some('\'') => Some('\''),
                Some('"') => Some('"'),
                Some('a') => Some('\x07'),
                Some('b') => Some('\x08'),
                Some('f') => Some('\x0c'),
                Some('n') => Some('\n'),
                Some('r') => Some('\r'),
                Some('t') => Some('\t'),
                Some('v') => Some('\x0b'),
                _ => None,
            };
            if let Some(d) = decoded {
                chars.next();
                out.push(d);
                continue;
            }
        }
        out.push(c);
    }
    out
}

/// `\\[\\']` escapes.
fn decode_single(raw: &str) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(raw.len()));
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' && matches!(chars.peek(), Some('\\' | '\'')) {
            if let Some(n) = chars.next() {
                out.push(n);
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// Expansion went past its budget: the binding at this index.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TooLarge {
    pub(crate) binding: usize,
}

/// Expands `${NAME}` and `${NAME:-default}` as python-dotenv's
/// `resolve_variables(values, override=True)` does: earlier values in the
/// file win over the environment, which `lookup` reads.
///
/// All expanded values together may hold at most `budget` bytes: nested
/// references double in size at every level, so a few dozen hostile lines
/// would otherwise exhaust memory.
pub(crate) fn interpolate(
    bindings: &[Binding],
    lookup: &dyn Fn(&str) -> Option<String>,
    mut budget: usize,
) -> Result<DotenvValues, TooLarge> {
    let mut resolved: DotenvValues = Vec::with_capacity(bindings.len());
    // The latest definition of each name, so a reference costs no scan.
    let mut latest: std::collections::HashMap<&str, usize> =
        std::collections::HashMap::with_capacity(bindings.len());
    for (i, b) in bindings.iter().enumerate() {
        let value = match b.value.as_ref() {
            None => None,
            Some(v) => {
                let env = |name: &str| match latest.get(name) {
                    Some(&j) => Some(resolved[j].1.as_ref().map(|v| v.to_string())),
                    None => lookup(name).map(Some),
                };
                let value = expand(v, &env, budget).ok_or(TooLarge { binding: i })?;
                budget -= value.len();
                Some(value)
            }
        };
        resolved.push((b.key.clone(), value));
        latest.insert(&b.key, i);
    }
    Ok(resolved)
}

/// One value's expansion, at most `budget` bytes (`None` past it). `env`
/// answers `Some(None)` for a variable that exists without a value.
fn expand(
    value: &str,
    env: &dyn Fn(&str) -> Option<Option<String>>,
    budget: usize,
) -> Option<Zeroizing<String>> {
    if value.len() > budget {
        return None;
    }
    let mut out = Zeroizing::new(String::with_capacity(value.len()));
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        // `\$\{(?P<name>[^\}:]*)(?::-(?P<default>[^\}]*))?\}`
        let name_len = after.find(['}', ':']).unwrap_or(after.len());
        let name = &after[..name_len];
        let tail = &after[name_len..];
        let (default, consumed) = if tail.starts_with('}') {
            (None, name_len + 1)
        } else if let Some(d) = tail.strip_prefix(":-") {
            match d.find('}') {
                Some(e) => (Some(&d[..e]), name_len + 2 + e + 1),
                None => {
                    out.push_str(&rest[..start + 2]);
                    rest = after;
                    continue;
                }
            }
        } else {
            // No closing brace, or `:` not followed by `-`: literal text.
            out.push_str(&rest[..start + 2]);
            rest = after;
            continue;
        };
        out.push_str(&rest[..start]);
        let value = Zeroizing::new(match env(name) {
            Some(v) => v.unwrap_or_default(),
            None => default.unwrap_or("").to_owned(),
        });
        if out.len() + value.len() + rest.len() > budget {
            return None;
        }
        out.push_str(&value);
        rest = &after[consumed..];
    }
    out.push_str(rest);
    (out.len() <= budget).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(text: &str) -> Vec<(String, Option<String>)> {
        let text = universal_newlines(text);
        let b = parse(&text).unwrap();
        interpolate(&b, &|_| None, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, v.map(|v| v.to_string())))
            .collect()
    }

    fn one(text: &str) -> String {
        values(text)[0].1.clone().unwrap()
    }

    #[test]
    fn quoting_and_escapes() {
        assert_eq!(one("A=plain"), "plain");
        assert_eq!(one("A='single \\' \\\\ \\n'"), "single ' \\ \\n");
        assert_eq!(one("A=\"double \\\" \\\\ \\n \\t\""), "double \" \\ \n \t");
        assert_eq!(one("A=unquoted # comment"), "unquoted");
        assert_eq!(one("A=no#comment"), "no#comment");
        assert_eq!(one("A=\"multi\nline\""), "multi\nline");
        assert_eq!(one("export A=x"), "x");
        assert_eq!(one("'A'=x"), "x");
        assert_eq!(one("A="), "");
        assert_eq!(one("A=  spaced  "), "spaced");
        assert_eq!(values("A")[0].1, None);
    }

    #[test]
    fn lines_are_counted_for_errors() {
        let text = universal_newlines("A=1\n\n# c\nB=\"x\" junk\n");
        assert_eq!(parse(&text).unwrap_err(), Unparsable { line: 4 });
        let b = parse(&universal_newlines("\n\nA=\"x\ny\"\nB=2\r\n")).unwrap();
        assert_eq!((b[0].line, b[1].line), (3, 5));
    }

    #[test]
    fn nested_references_stop_at_the_budget() {
        let mut text = String::from("A0=xxxxxxxx\n");
        for i in 1..64 {
            text.push_str(&format!("A{i}=${{A{}}}${{A{}}}\n", i - 1, i - 1));
        }
        let b = parse(&universal_newlines(&text)).unwrap();
        assert_eq!(
            interpolate(&b, &|_| None, 1 << 20).unwrap_err(),
            TooLarge { binding: 17 }
        );
        assert!(interpolate(&b[..10], &|_| None, 1 << 20).is_ok());
    }

    #[test]
    fn spans_start_at_the_statement() {
        let text = universal_newlines("\n  A=1\n\n# c\nexport B='2' # x\nC=3");
        let b = parse(&text).unwrap();
        let spans: Vec<&str> = b.iter().map(|b| &text[b.span.clone()]).collect();
        assert_eq!(spans, ["A=1\n", "export B='2' # x\n", "C=3"]);
    }

    #[test]
    fn value_spans_cover_the_value_text_alone() {
        let text = universal_newlines("A=1 # c\nexport B='2' # x\nC=\"x\ny\"\nD=\nE\nF=  v  \n");
        let b = parse(&text).unwrap();
        let spans: Vec<Option<&str>> = b
            .iter()
            .map(|b| b.value_span.clone().map(|r| &text[r]))
            .collect();
        assert_eq!(
            spans,
            [
                Some("1"),
                Some("'2'"),
                Some("\"x\ny\""),
                Some(""),
                None,
                Some("v")
            ]
        );
    }

    #[test]
    fn interpolation_follows_python() {
        let v = values("A=x\nB=${A}-${NOPE:-d}-${NOPE}\nC='${A}'\nD=${A\n");
        assert_eq!(v[1].1.as_deref(), Some("x-d-"));
        assert_eq!(v[2].1.as_deref(), Some("x"));
        assert_eq!(v[3].1.as_deref(), Some("${A"));
    }
}
