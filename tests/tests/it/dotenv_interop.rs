//! The `.env` reader against python-dotenv itself, on a generated corpus of
//! tricky files: quotes, escapes, comments, `export`, interpolation,
//! multi-line values, CRLF and CR line ends, Unicode, and invalid lines.

use secrets_manager::persist::{PersistError, dotenv_values};
use secrets_manager_tests::{python_script, python_with, run_python};
use serde_json::Value;

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

const KEYS: &[&str] = &[
    "A",
    "b_2",
    "export C",
    "'quoted key'",
    "K.dot",
    "ÜNI",
    "x-y",
];
const VALUES: &[&str] = &[
    "plain",
    "with spaces inside",
    "trailing   ",
    "hash#inside",
    "value # comment",
    "value\t# tab comment",
    "x\\y",
    "ends\\",
    "ünïcödé ✓",
    "${A_0}",
    "${SM_TEST_UNDEFINED:-dflt}",
    "a${b_2_1}b${SM_TEST_UNDEFINED}c",
    "${unclosed",
    "${A_0:x}",
    "=eq=",
    "it's",
    "",
    "'single'",
    "'with \\' escaped'",
    "'back\\\\slash'",
    "'multi\nline'",
    "'${A_0} inside single'",
    "'tab\there'",
    "\"double\"",
    "\"esc \\\" \\n \\t \\\\ end\"",
    "\"multi\nline\nvalue\"",
    "\"${A_0} and ${SM_TEST_UNDEFINED:-d2}\"",
    "\"hash # in quotes\"",
    "\"\\a\\b\\f\\v\\r\\' \\x41 \\u0041\"",
    "\"crlf\r\ninside\"",
    "\"quote \\\"at end\\\"\"",
    "  'spaced before'",
    "\"x\" # comment after",
    "'y'   ",
    "\u{1c}sep\u{1c}",
];
const NOISE: &[&str] = &[
    "# a comment",
    "",
    "   ",
    "\t# indented comment",
    "BARE_KEY",
    "#=not a binding",
];
const INVALID: &[&str] = &["\"unterminated", "=novalue", "KEY=\"x\" junk", "'' = x"];
const ENDS: &[&str] = &["\n", "\r\n", "\r"];

fn corpus() -> Vec<String> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    (0..300)
        .map(|f| {
            let mut text = String::new();
            let lines = 3 + rng.next() % 8;
            for i in 0..lines {
                let end = rng.pick(ENDS);
                match rng.next() % 10 {
                    0 | 1 => match rng.pick(NOISE) {
                        "BARE_KEY" => text.push_str(&format!("BARE_KEY_{i}")),
                        noise => text.push_str(noise),
                    },
                    2 if f % 7 == 0 => text.push_str(rng.pick(INVALID)),
                    _ => {
                        let key = rng.pick(KEYS);
                        // Unique keys: python-dotenv keeps the last duplicate,
                        // this reader refuses duplicates.
                        let key = match key.strip_suffix('\'') {
                            Some(k) => format!("{k}_{i}'"),
                            None => format!("{key}_{i}"),
                        };
                        let sep = rng.pick(&["=", " = ", "=  "]);
                        text.push_str(&format!("{key}{sep}{}", rng.pick(VALUES)));
                    }
                }
                text.push_str(end);
            }
            text
        })
        .collect()
}

#[test]
fn reads_every_file_as_python_dotenv_does() {
    let Some(python) = python_with(&["dotenv"]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let files = corpus();
    let paths: Vec<_> = files
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let p = dir.path().join(format!("case{i:03}.env"));
            std::fs::write(&p, text).unwrap();
            p
        })
        .collect();
    let list: String = paths.iter().map(|p| format!("{}\n", p.display())).collect();
    let out: Value = serde_json::from_slice(&run_python(
        &python,
        &python_script("dotenv_oracle.py"),
        list.as_bytes(),
    ))
    .unwrap();
    let expected = out.as_array().unwrap();
    assert_eq!(expected.len(), files.len());
    let (mut valid, mut invalid) = (0, 0);
    for (i, (path, want)) in paths.iter().zip(expected).enumerate() {
        let ours = dotenv_values(path);
        if want["invalid"].as_bool() == Some(true) {
            invalid += 1;
            assert!(
                matches!(ours, Err(PersistError::Syntax { .. })),
                "case {i}: python-dotenv skipped a line; we read {ours:?}\n{:?}",
                files[i]
            );
            continue;
        }
        valid += 1;
        let ours: Vec<(String, Option<String>)> = ours
            .unwrap_or_else(|e| panic!("case {i}: {e}\n{:?}", files[i]))
            .into_iter()
            .map(|(k, v)| (k, v.map(|v| v.to_string())))
            .collect();
        let theirs: Vec<(String, Option<String>)> = want["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|kv| {
                (
                    kv[0].as_str().unwrap().to_owned(),
                    kv[1].as_str().map(str::to_owned),
                )
            })
            .collect();
        assert_eq!(ours, theirs, "case {i}:\n{:?}", files[i]);
    }
    assert!(
        valid > 200 && invalid > 5,
        "corpus too narrow: {valid} valid, {invalid} invalid"
    );
}
