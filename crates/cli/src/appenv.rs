//! Values in application `.env` files: `set`, `get`, and `encrypt`,
//! `decrypt` and `rewrap` with `-f`, in place.
//!
//! A value is encrypted when it is a Fernet token (see [`is_token`]).
//! Keyring variables are never encrypted, decrypted or changed here, so a
//! file that holds the keyring too (as the Python package writes it) keeps
//! its keys; its checksum is refreshed by the writer.

use std::io::{IsTerminal as _, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};
use secrets_manager::SecretsManager;
use secrets_manager::fernet::UnverifiedToken;
use secrets_manager::persist::{self, Prefixes, Source, Variable};
use secrets_manager::zeroize::Zeroizing;

use crate::args::Cli;
use crate::keyring::{explain, keyring_store, load};
use crate::warn;

/// Whether a value is a Fernet token: canonical URL-safe base64 of a
/// version-0x80 token with whole cipher blocks (surrounding blanks aside).
/// Whether it opens is for the keyring to say; no plaintext a person
/// writes has this shape by chance.
pub(crate) fn is_token(value: &str) -> bool {
    UnverifiedToken::parse(value.trim_ascii()).is_ok()
}

/// Reads everything into a zeroizing buffer. Growing copies into a fresh
/// buffer and zeroizes the old one, so no copy of the secret is freed
/// unwiped.
pub(crate) fn read_secret(mut reader: impl Read) -> std::io::Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(Vec::with_capacity(4096));
    loop {
        if buf.len() == buf.capacity() {
            let mut bigger = Zeroizing::new(Vec::with_capacity(buf.capacity() * 2));
            bigger.extend_from_slice(&buf);
            buf = bigger;
        }
        let len = buf.len();
        let capacity = buf.capacity();
        buf.resize(capacity, 0);
        match reader.read(&mut buf[len..]) {
            Ok(0) => {
                buf.truncate(len);
                return Ok(buf);
            }
            Ok(n) => buf.truncate(len + n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => buf.truncate(len),
            Err(e) => return Err(e),
        }
    }
}

/// Drops one trailing line break, as `echo` and editors add one.
fn strip_line_end(buf: &mut Zeroizing<Vec<u8>>) {
    let len = buf.len();
    if buf.ends_with(b"\r\n") {
        buf.truncate(len - 2);
    } else if buf.ends_with(b"\n") {
        buf.truncate(len - 1);
    }
}

/// Loads the keyring. When the selected keyring file does not exist and
/// one of `files` holds keyring variables (the Python package keeps its
/// keyring in the application's `.env`), says how to use it.
pub(crate) fn load_for(cli: &Cli, files: &[PathBuf]) -> Result<SecretsManager> {
    load(cli).map_err(|e| {
        let missing = keyring_store(cli)
            .ok()
            .and_then(|s| match s.source() {
                Source::File(path) => Some(path),
                _ => None,
            })
            .is_some_and(|path| std::fs::symlink_metadata(path).is_err());
        let holder = files.iter().find(|f| {
            persist::read_variables(f, &Prefixes::default())
                .is_ok_and(|vars| vars.iter().any(|v| v.keyring))
        });
        match holder {
            Some(f) if missing => anyhow!(
                "{e:#}; {} holds keyring variables: pass --env-file {} to use them",
                f.display(),
                f.display()
            ),
            _ => e,
        }
    })
}

/// Whether python-dotenv reads `key` back as written before `=` (the
/// file writer's own rule), and holds no `$`, which a `${}` reference could
/// not name: checked before a value is asked for.
fn check_name(key: &str) -> Result<()> {
    if !persist::writable_name(key) || key.contains('$') {
        bail!("{key:?} is not a variable name a .env file can hold unquoted");
    }
    Ok(())
}

fn keyring_refusal(file: &Path, key: &str) -> anyhow::Error {
    anyhow!(
        "{}: {key} belongs to the keyring; keyring variables are never encrypted, decrypted or set as values",
        file.display()
    )
}

/// Whether a name belongs to the keyring, in any case (as the keyring
/// reads them).
pub(crate) fn is_keyring_name(key: &str) -> bool {
    Prefixes::default().is_keyring_variable_any_case(key)
}

/// Where `set` takes the value from.
pub(crate) enum ValueSource<'a> {
    Stdin,
    File(&'a Path),
    Prompt,
}

/// Asks twice at the terminal, without echo.
fn prompt_twice(key: &str) -> Result<Zeroizing<Vec<u8>>> {
    let ask = |prompt: String| {
        rpassword::prompt_password(prompt)
            .map(|s| Zeroizing::new(s.into_bytes()))
            .context("cannot read the value from the terminal")
    };
    let first = ask(format!("Value for {key}: "))?;
    let second = ask(format!("Value for {key} (again): "))?;
    if first.as_slice() != second.as_slice() {
        bail!("the two entries for {key} differ; nothing was written");
    }
    if first.is_empty() {
        bail!("no value entered for {key}; nothing was written (--value-stdin takes an empty one)");
    }
    Ok(first)
}

/// Whether `set` can prompt: stdin is a terminal.
pub(crate) fn can_prompt() -> bool {
    std::io::stdin().is_terminal()
}

/// `set KEY -f FILE`.
pub(crate) fn set(cli: &Cli, key: &str, file: &Path, source: &ValueSource<'_>) -> Result<()> {
    check_name(key)?;
    if is_keyring_name(key) {
        return Err(keyring_refusal(file, key));
    }
    // The keyring first: a missing one should not cost typing the secret.
    let manager = load_for(cli, &[file.to_owned()])?;
    let value = match source {
        ValueSource::Stdin => {
            let mut v = read_secret(std::io::stdin().lock()).context("cannot read stdin")?;
            strip_line_end(&mut v);
            v
        }
        ValueSource::File(path) => {
            let f = std::fs::File::open(path)
                .with_context(|| format!("--value-file {}", path.display()))?;
            let mut v =
                read_secret(f).with_context(|| format!("cannot read {}", path.display()))?;
            strip_line_end(&mut v);
            v
        }
        ValueSource::Prompt => prompt_twice(key)?,
    };
    let (version, token) = manager.encrypt(&value)?;
    drop(value);
    let mut referrers = Vec::new();
    persist::update_variables(file, &Prefixes::default(), |vars| {
        referrers = referring(vars, key);
        Ok::<_, anyhow::Error>(vec![(key.to_owned(), Zeroizing::new(token))])
    })
    .map_err(|e| anyhow!("{e:#}; nothing was written"))?;
    for r in referrers {
        warn_reference(file, &r, key);
    }
    crate::say(
        cli,
        format_args!("{}: {key} set, encrypted under {version}", file.display()),
    );
    Ok(())
}

/// The variables whose text refers to `key` with `${...}`.
fn referring(vars: &[Variable], key: &str) -> Vec<String> {
    vars.iter()
        .filter(|v| v.name != key && v.references.iter().any(|r| r == key))
        .map(|v| v.name.clone())
        .collect()
}

fn warn_reference(file: &Path, referrer: &str, key: &str) {
    warn(format_args!(
        "{}: {referrer} refers to ${{{key}}}, which python-dotenv expands to {key}'s token, not its plaintext",
        file.display()
    ));
}

/// `get KEY -f FILE`: the plaintext's exact bytes into `out`.
pub(crate) fn get(cli: &Cli, key: &str, file: &Path, out: &mut Vec<u8>) -> Result<()> {
    let vars = persist::read_variables(file, &Prefixes::default())?;
    let var = vars
        .iter()
        .find(|v| v.name == key)
        .ok_or_else(|| anyhow!("{}: no variable {key}", file.display()))?;
    if var.keyring {
        return Err(keyring_refusal(file, key));
    }
    let value = var
        .value
        .as_ref()
        .ok_or_else(|| anyhow!("{}: {key} has no value (no '=')", file.display()))?;
    if is_token(value) {
        let manager = load_for(cli, &[file.to_owned()])?;
        let (_, plaintext) = manager
            .decrypt(value.trim_ascii())
            .map_err(|e| explain(&manager, e))
            .with_context(|| format!("{}: {key}: cannot decrypt", file.display()))?;
        // Room for exactly the plaintext: no reallocation leaves a copy.
        out.reserve_exact(plaintext.len());
        out.extend_from_slice(&plaintext);
    } else {
        warn(format_args!(
            "{}: {key} is not encrypted (`secrets-manager encrypt -f {} -k {key}` encrypts it)",
            file.display(),
            file.display()
        ));
        out.reserve_exact(value.len());
        out.extend_from_slice(value.as_bytes());
    }
    Ok(())
}

/// What an in-place command does to each value.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Op<'a> {
    Encrypt,
    Decrypt {
        ttl: Option<u64>,
        hint: Option<&'a str>,
    },
    Rewrap,
}

impl Op<'_> {
    fn past(self) -> &'static str {
        match self {
            Self::Encrypt => "encrypted",
            Self::Decrypt { .. } => "decrypted",
            Self::Rewrap => "re-encrypted",
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Self::Encrypt => "encrypt",
            Self::Decrypt { .. } => "decrypt",
            Self::Rewrap => "re-encrypt",
        }
    }
}

/// What one file's values become, and what to say about it.
#[derive(Default)]
struct Plan {
    changes: Vec<(String, Zeroizing<String>)>,
    notes: Vec<String>,
}

/// Whether a variable's value is for `op`: encrypted values for decrypt
/// and rewrap, plain ones for encrypt.
fn wanted(op: Op<'_>, value: &str) -> bool {
    matches!(op, Op::Encrypt) != is_token(value)
}

/// The new values of one file's variables. Named `keys` that the file
/// lacks are skipped (the caller checks that each is somewhere).
fn plan(
    op: Op<'_>,
    manager: Option<&SecretsManager>,
    file: &Path,
    vars: &[Variable],
    keys: &[String],
) -> Result<Plan> {
    let mut plan = Plan::default();
    let named = !keys.is_empty();
    let show = file.display();
    for var in vars {
        if named && !keys.contains(&var.name) {
            continue;
        }
        let name = &var.name;
        if var.keyring {
            if named {
                return Err(keyring_refusal(file, name));
            }
            continue;
        }
        let Some(value) = &var.value else {
            if named {
                bail!("{show}: {name} has no value (no '=')");
            }
            continue;
        };
        if !wanted(op, value) {
            if named {
                plan.notes.push(format!(
                    "{show}: {name} is {} already",
                    if is_token(value) {
                        "encrypted"
                    } else {
                        "plain"
                    }
                ));
            }
            continue;
        }
        if let (Op::Encrypt, Some(r)) = (op, var.references.first()) {
            let why = format!(
                "{show}: {name} refers to ${{{r}}}, which python-dotenv expands on every read; encrypting it would freeze today's expansion (write the value out to encrypt it)"
            );
            if named {
                bail!(why);
            }
            plan.notes.push(format!("warning: {why}; left plain"));
            continue;
        }
        let Some(manager) = manager else {
            // Planning without a keyring: only what would change counts.
            plan.changes
                .push((name.clone(), Zeroizing::new(String::new())));
            continue;
        };
        let new = match op {
            Op::Encrypt => Zeroizing::new(manager.encrypt(value.as_bytes())?.1),
            Op::Decrypt { ttl, hint } => {
                let token = value.trim_ascii();
                let (_, plaintext) = manager
                    .decrypt_with(token, &crate::crypt::decrypt_options(ttl, hint))
                    .map_err(|e| explain(manager, e))
                    .with_context(|| format!("{show}: {name}: cannot decrypt"))?;
                let text = std::str::from_utf8(&plaintext).map_err(|_| {
                    anyhow!(
                        "{show}: {name}: the plaintext is not UTF-8 text, which a .env file cannot hold (`get` prints it)"
                    )
                })?;
                Zeroizing::new(text.to_owned())
            }
            Op::Rewrap => Zeroizing::new(
                manager
                    .rotate_token(value.trim_ascii())
                    .map_err(|e| explain(manager, e))
                    .with_context(|| format!("{show}: {name}: cannot decrypt"))?
                    .1,
            ),
        };
        if matches!(op, Op::Encrypt) {
            for r in referring(vars, name) {
                plan.notes.push(format!(
                    "warning: {show}: {r} refers to ${{{name}}}, which python-dotenv expands to {name}'s token, not its plaintext"
                ));
            }
        }
        plan.changes.push((name.clone(), new));
    }
    Ok(plan)
}

/// `encrypt`, `decrypt` and `rewrap` with `-f`: every file is checked
/// first (each named key somewhere, every value opens), so a value that
/// fails writes nothing; then each file is changed under its lock, from
/// what it holds then.
pub(crate) fn in_place(cli: &Cli, op: Op<'_>, files: &[PathBuf], keys: &[String]) -> Result<()> {
    let prefixes = Prefixes::default();
    let nothing = |e: anyhow::Error| anyhow!("{e:#}; nothing was written");
    let mut read = Vec::with_capacity(files.len());
    for file in files {
        read.push(persist::read_variables(file, &prefixes).map_err(|e| nothing(e.into()))?);
    }
    for key in keys {
        if let (true, Some(file)) = (is_keyring_name(key), files.first()) {
            return Err(nothing(keyring_refusal(file, key)));
        }
        if !read.iter().flatten().any(|v| v.name == *key) {
            let shown: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
            return Err(nothing(anyhow!(
                "no variable {key} in {}",
                shown.join(", ")
            )));
        }
    }
    let mut work = false;
    for (file, vars) in files.iter().zip(&read) {
        work |= !plan(op, None, file, vars, keys)
            .map_err(nothing)?
            .changes
            .is_empty();
    }
    if !work {
        for (file, vars) in files.iter().zip(&read) {
            for note in plan(op, None, file, vars, keys)?.notes {
                print_note(cli, note);
            }
            crate::say(
                cli,
                format_args!("{}: no value to {}", file.display(), op.verb()),
            );
        }
        return Ok(());
    }
    let manager = load_for(cli, files)?;
    for (file, vars) in files.iter().zip(&read) {
        plan(op, Some(&manager), file, vars, keys).map_err(nothing)?;
    }
    drop(read);
    let mut written: Vec<String> = Vec::new();
    for file in files {
        let mut done = Plan::default();
        let result = persist::update_variables(file, &prefixes, |vars| {
            let plan = plan(op, Some(&manager), file, vars, keys)?;
            done.notes = plan.notes;
            done.changes = plan
                .changes
                .iter()
                .map(|(n, _)| (n.clone(), Zeroizing::new(String::new())))
                .collect();
            Ok::<_, anyhow::Error>(plan.changes)
        });
        if let Err(e) = result {
            return Err(if written.is_empty() {
                nothing(e)
            } else {
                anyhow!(
                    "{e:#}; {} was left as it was, but {} already written",
                    file.display(),
                    if written.len() == 1 {
                        format!("{} was", written[0])
                    } else {
                        format!("{} were", written.join(", "))
                    }
                )
            });
        }
        for note in done.notes {
            print_note(cli, note);
        }
        let names: Vec<&str> = done.changes.iter().map(|(n, _)| n.as_str()).collect();
        if names.is_empty() {
            crate::say(
                cli,
                format_args!("{}: no value to {}", file.display(), op.verb()),
            );
        } else {
            let under = match op {
                Op::Decrypt { .. } => String::new(),
                _ => format!(" under {}", manager.active_version()),
            };
            crate::say(
                cli,
                format_args!(
                    "{}: {} {}{under}",
                    file.display(),
                    op.past(),
                    names.join(", ")
                ),
            );
            written.push(file.display().to_string());
        }
    }
    Ok(())
}

/// Notes go out at once (unless `--quiet`), warnings with the others
/// after success.
fn print_note(cli: &Cli, note: String) {
    match note.strip_prefix("warning: ") {
        Some(w) => warn(w),
        None => crate::say(cli, note),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_a_secret_grows_without_losing_bytes() {
        let data: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(&*read_secret(&data[..]).unwrap(), &data[..]);
        assert!(read_secret(&b""[..]).unwrap().is_empty());
    }

    #[test]
    fn one_line_end_is_dropped() {
        for (input, want) in [
            (&b"v\n"[..], &b"v"[..]),
            (b"v\r\n", b"v"),
            (b"v\n\n", b"v\n"),
            (b"v", b"v"),
        ] {
            let mut buf = Zeroizing::new(input.to_vec());
            strip_line_end(&mut buf);
            assert_eq!(&buf[..], want);
        }
    }

    #[test]
    fn tokens_are_told_from_plaintext() {
        let m = secrets_manager::fernet::Fernet::new(&secrets_manager::fernet::Key::generate());
        let token = m.encrypt(b"x");
        assert!(is_token(&token));
        assert!(is_token(&format!(" {token}\n")));
        assert!(!is_token(&token[1..]));
        assert!(!is_token("gAAAAA"));
        assert!(!is_token("hunter2"));
        assert!(!is_token(""));
    }

    #[test]
    fn keyring_names_in_any_case() {
        for k in [
            "ENCRYPTION_KEYS__v1",
            "encryption_salt__V2",
            "ACTIVE_ENCRYPTION_VERSION",
            "active_encryption_version",
            "ENCRYPTION_ENV_CHECKSUM",
        ] {
            assert!(is_keyring_name(k), "{k}");
        }
        assert!(!is_keyring_name("DATABASE_URL"));
        assert!(!is_keyring_name("ENCRYPTION_MODE"));
    }
}
