//! Commands that make and open tokens.

use std::io::{BufRead as _, IsTerminal as _, Seek as _, Write as _};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use secrets_manager::DecryptOptions;

use crate::args::Cli;
use crate::keyring::{explain, load};
use crate::{Output, read_stdin, say};

/// stdin's bytes as one token and a newline.
pub(crate) fn encrypt(cli: &Cli) -> Result<Output> {
    let manager = load(cli)?;
    let plaintext = read_stdin()?;
    let (_, token) = manager.encrypt(&plaintext)?;
    drop(plaintext);
    let mut out = Output::new(token.into_bytes());
    out.push(b'\n');
    Ok(out)
}

/// One token from stdin to its exact plaintext bytes.
/// `--ttl` and `--hint` as one options value, so a hint given with a TTL
/// is not dropped.
pub(crate) fn decrypt_options(ttl: Option<u64>, hint: Option<&str>) -> DecryptOptions {
    let mut options = DecryptOptions::new();
    if let Some(secs) = ttl {
        options = options.ttl(Duration::from_secs(secs));
    }
    if let Some(h) = hint {
        options = options.hint(h);
    }
    options
}

pub(crate) fn decrypt(
    cli: &Cli,
    ttl: Option<u64>,
    hint: Option<&str>,
    force: bool,
) -> Result<Output> {
    let manager = load(cli)?;
    let input = read_stdin()?;
    let token = input.trim_ascii();
    let (_, plaintext) = manager
        .decrypt_with(token, &decrypt_options(ttl, hint))
        .map_err(|e| explain(&manager, e))?;
    if !force && std::str::from_utf8(&plaintext).is_err() && std::io::stdout().is_terminal() {
        bail!(
            "the plaintext is binary (not UTF-8 text); refusing to write it to a terminal: redirect stdout, or pass --force"
        );
    }
    Ok(plaintext)
}

/// Streams tokens through a spool file: constant memory, and stdout stays
/// empty if any line fails (with `--keep-going`, failing lines pass
/// through unchanged, each is reported, and the exit status is 1).
pub(crate) fn rewrap(cli: &Cli, keep_going: bool) -> Result<()> {
    let manager = load(cli)?;
    let active = manager.active_version();
    let mut spool = tempfile::tempfile().context("cannot create a temporary file")?;
    let progress = indicatif::ProgressBar::new_spinner();
    progress.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    progress.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {pos} tokens rewrapped ({per_sec})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    let (mut rewrapped, mut current, mut failed) = (0u64, 0u64, Vec::new());
    {
        let mut writer = std::io::BufWriter::new(&mut spool);
        let stdin = std::io::stdin().lock();
        for (n, line) in stdin.split(b'\n').enumerate() {
            let line = line.context("cannot read stdin")?;
            let token = line.trim_ascii();
            let fresh = match manager.decrypt(token) {
                Ok((version, _)) if version == active => {
                    current += 1;
                    None
                }
                Ok(_) => Some(manager.rotate_token(token)),
                Err(e) => Some(Err(e)),
            };
            match fresh {
                None => writer.write_all(token)?,
                Some(Ok((_, fresh))) => {
                    rewrapped += 1;
                    writer.write_all(fresh.as_bytes())?;
                }
                Some(Err(e)) => {
                    let e = explain(&manager, e).context(format!("line {}", n + 1));
                    if !keep_going {
                        return Err(e);
                    }
                    progress.suspend(|| eprintln!("error: {}", crate::one_line(&e)));
                    failed.push(n + 1);
                    writer.write_all(token)?;
                }
            }
            writer.write_all(b"\n")?;
            progress.inc(1);
        }
        writer.flush().context("cannot write the temporary file")?;
    }
    progress.finish_and_clear();
    spool.rewind()?;
    let mut stdout = std::io::stdout().lock();
    std::io::copy(&mut spool, &mut stdout).context("cannot write to stdout")?;
    stdout.flush().context("cannot write to stdout")?;
    say(
        cli,
        format_args!(
            "{rewrapped} rewrapped, {current} already current{}",
            if failed.is_empty() {
                String::new()
            } else {
                format!(", {} failed", failed.len())
            }
        ),
    );
    if !failed.is_empty() {
        bail!(
            "{} line(s) could not be rewrapped and were passed through unchanged (lines {})",
            failed.len(),
            failed
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}
