//! `cargo xtask man [--check]`: the man pages, generated from the CLI's own
//! argument definitions (the same source file the binary compiles), so
//! they cannot drift; `--check` fails when the committed pages are stale.

use std::path::Path;

use anyhow::{Context as _, Result, bail};
use clap::CommandFactory as _;

#[allow(dead_code, unreachable_pub)] // ok: only the command's shape is used here
#[path = "../../crates/cli/src/args.rs"]
mod args;

/// Where the pages live in the repository.
const DIR: &str = "doc/man";

fn render(cmd: &clap::Command, name: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    // clap keeps names as `&'static str`; this short-lived tool may leak
    // the dozen it makes.
    let name: &'static str = name.to_owned().leak();
    clap_mangen::Man::new(cmd.clone().name(name))
        .render(&mut out)
        .context("render a man page")?;
    Ok(out)
}

/// Every page: the program's, then one per command.
fn pages() -> Result<Vec<(String, Vec<u8>)>> {
    let cmd = args::Cli::command();
    let mut pages = vec![(
        "secrets-manager.1".to_owned(),
        render(&cmd, "secrets-manager")?,
    )];
    for sub in cmd.get_subcommands() {
        let name = format!("secrets-manager-{}", sub.get_name());
        pages.push((format!("{name}.1"), render(sub, &name)?));
    }
    Ok(pages)
}

pub(crate) fn run(root: &Path, check: bool) -> Result<()> {
    let dir = root.join(DIR);
    let pages = pages()?;
    let mut stale = Vec::new();
    for (name, text) in &pages {
        let path = dir.join(name);
        let current = std::fs::read(&path).ok();
        if current.as_deref() != Some(text.as_slice()) {
            stale.push(name.clone());
            if !check {
                std::fs::create_dir_all(&dir)?;
                std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
            }
        }
    }
    // Pages of commands that no longer exist.
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".1") && !pages.iter().any(|(p, _)| *p == name) {
            stale.push(name.clone());
            if !check {
                std::fs::remove_file(entry.path())?;
            }
        }
    }
    if check && !stale.is_empty() {
        bail!(
            "the man pages in {DIR} are stale ({}); run `cargo xtask man`",
            stale.join(", ")
        );
    }
    eprintln!(
        "xtask man: {} pages {}",
        pages.len(),
        if stale.is_empty() {
            "current"
        } else if check {
            "stale"
        } else {
            "written"
        }
    );
    Ok(())
}
