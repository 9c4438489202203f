//! Commands that make and open tokens.

use std::io::{BufRead as _, Seek as _, Write as _};

use anyhow::{Context as _, Result};

use crate::args::Cli;
use crate::keyring::{explain, load};

/// Streams tokens through a spool file: constant memory, and stdout stays
/// empty if any line fails.
pub(crate) fn rewrap(cli: &Cli) -> Result<()> {
    let manager = load(cli)?;
    let mut spool = tempfile::tempfile().context("cannot create a temporary file")?;
    {
        let mut writer = std::io::BufWriter::new(&mut spool);
        let stdin = std::io::stdin().lock();
        for (n, line) in stdin.split(b'\n').enumerate() {
            let line = line.context("cannot read stdin")?;
            let token = line.trim_ascii();
            let (_, fresh) = manager
                .rotate_token(token)
                .map_err(|e| explain(&manager, e))
                .with_context(|| format!("line {}", n + 1))?;
            writer.write_all(fresh.as_bytes())?;
            writer.write_all(b"\n")?;
        }
        writer.flush().context("cannot write the temporary file")?;
    }
    spool.rewind()?;
    let mut stdout = std::io::stdout().lock();
    std::io::copy(&mut spool, &mut stdout).context("cannot write to stdout")?;
    stdout.flush()?;
    Ok(())
}
