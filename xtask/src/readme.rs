//! `cargo xtask readme`: runs the README's command-line walkthroughs, top
//! to bottom, in a fresh directory with the freshly built binary first on
//! `PATH`, so the documented commands cannot drift from the tool.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};

/// Sections whose first `sh` block is a walkthrough that must run as is.
const WALKTHROUGHS: &[&str] = &[
    "## The command line",
    "## Daily use",
    "## Finishing a rotation",
];

/// The first ```sh block after `heading`.
fn block<'a>(readme: &'a str, heading: &str) -> Result<&'a str> {
    let start = readme
        .find(&format!("\n{heading}\n"))
        .with_context(|| format!("README has no `{heading}` section"))?;
    let rest = &readme[start..];
    let open = rest
        .find("\n```sh\n")
        .with_context(|| format!("`{heading}` has no sh block"))?;
    let body = &rest[open + "\n```sh\n".len()..];
    let close = body.find("\n```").context("an sh block is not closed")?;
    Ok(&body[..=close])
}

pub(crate) fn run(root: &Path) -> Result<()> {
    let mut build = super::cargo();
    build.args(["build", "-p", "secrets-manager-cli"]);
    super::run(build)?;
    let bin_dir = root.join("target/debug");
    let readme = std::fs::read_to_string(root.join("README.md")).context("read README.md")?;
    for heading in WALKTHROUGHS {
        let script = block(&readme, heading)?;
        let dir = tempfile::tempdir().context("a scratch directory")?;
        let path = std::env::join_paths(std::iter::once(bin_dir.clone()).chain(
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
        ))?;
        eprintln!(
            "xtask readme: running `{heading}` ({} lines)",
            script.lines().count()
        );
        let out = Command::new("bash")
            .args(["-euo", "pipefail", "-x", "-c", script])
            .current_dir(dir.path())
            .env("PATH", path)
            .env_remove("SECRETS_MANAGER_ENV_FILE")
            .env_remove("SECRETS_MANAGER_KEYRING")
            .output()
            .context("run bash")?;
        if !out.status.success() {
            bail!(
                "README `{heading}` failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        ensure!(
            !String::from_utf8_lossy(&out.stderr).contains("error:"),
            "README `{heading}` printed an error:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    eprintln!("xtask readme: every walkthrough ran");
    Ok(())
}
