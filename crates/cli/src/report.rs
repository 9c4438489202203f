//! Commands that report on the keyring: status and verify.

use std::io::Write as _;

use anyhow::{Result, bail};
use secrets_manager::Salt;
use secrets_manager::keystore::{KeyKind, VersionState};
use secrets_manager::persist::{self, Prefixes, Source, StoredKey};

use crate::args::Cli;
use crate::keyring::{keyring_name, keyring_store, load, require_file};
use crate::warn;

/// An activation time as local date and time (`-` when unknown).
pub(crate) fn describe_time(t: Option<u64>) -> String {
    let Some(t) = t else {
        return "-".to_owned();
    };
    let zoned = i64::try_from(t)
        .ok()
        .and_then(|t| jiff::Timestamp::from_second(t).ok())
        .map(|ts| ts.to_zoned_datetime(jiff::tz::TimeZone::system()));
    match zoned {
        Some(z) => z.strftime("%Y-%m-%d %H:%M:%S %Z").to_string(),
        None => format!("{t} (unix seconds)"),
    }
}

/// `s2` before `s13`: digit runs compare as numbers.
pub(crate) fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn chunks(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for ((da, xa), (db, xb)) in ca.iter().zip(&cb) {
        let ord = if *da && *db {
            let (ta, tb) = (xa.trim_start_matches('0'), xb.trim_start_matches('0'));
            ta.len().cmp(&tb.len()).then_with(|| ta.cmp(tb))
        } else {
            xa.cmp(xb)
        };
        if ord.is_ne() {
            return ord;
        }
    }
    ca.len().cmp(&cb.len()).then_with(|| a.cmp(b))
}

pub(crate) fn status(cli: &Cli, out: &mut Vec<u8>) -> Result<()> {
    let manager = load(cli)?;
    writeln!(out, "keyring: {}", keyring_name(&manager))?;
    writeln!(out, "active: {}", manager.active_version())?;
    writeln!(
        out,
        "{:<24} {:<7} {:<9} {:<9} {:>10}  activated_at",
        "version", "active", "state", "kind", "iterations"
    )?;
    // By activation (unknown first, as the oldest), then natural order.
    let mut infos = manager.version_info()?;
    infos.sort_by(|a, b| {
        a.activated_at
            .cmp(&b.activated_at)
            .then_with(|| natural_cmp(a.version.as_str(), b.version.as_str()))
    });
    for info in infos {
        let state = match info.state {
            VersionState::Usable => "usable",
            VersionState::Retired => "retired",
            VersionState::Destroyed => "destroyed",
            _ => "?",
        };
        writeln!(
            out,
            "{:<24} {:<7} {state:<9} {:<9} {:>10}  {}",
            info.version.as_str(),
            if info.active { "*" } else { "" },
            match info.kind {
                Some(KeyKind::Fernet) => "fernet",
                Some(_) => "password",
                None => "-",
            },
            info.iterations
                .map_or_else(|| "-".to_owned(), |n| n.to_string()),
            describe_time(info.activated_at),
        )?;
    }
    Ok(())
}

pub(crate) fn verify(cli: &Cli, update_checksum: bool, out: &mut Vec<u8>) -> Result<()> {
    let path = match keyring_store(cli)?.source() {
        Source::File(path) => path,
        other => bail!("verify checks a file's checksum and salt hashes; {other} is not a file"),
    };
    let path = &path;
    require_file(path)?;
    let prefixes = Prefixes::default();
    if update_checksum {
        let refresh = persist::refresh_checksum(path, &prefixes)?;
        for w in &refresh.warnings {
            warn(w);
        }
        if !refresh.written {
            eprintln!("{}: the checksum already matches", path.display());
        } else if !refresh.had_checksum {
            eprintln!("{}: checksum added", path.display());
        } else if refresh.added.is_empty() {
            eprintln!(
                "{}: checksum updated; which variables changed cannot be told (a value was edited, or a variable removed)",
                path.display()
            );
        } else {
            eprintln!(
                "{}: checksum updated; added since it was written: {}",
                path.display(),
                refresh.added.join(", ")
            );
        }
    }
    // Reading verifies the file's syntax and its checksum, when present.
    let values = persist::dotenv_values(path)?;
    let keyring = persist::read_keyring(path, &prefixes)?;
    let has_checksum = values.iter().any(|(name, _)| *name == prefixes.checksum);
    let mut hashes = 0;
    for v in keyring.versions() {
        if let Some(StoredKey::Password {
            salt,
            salt_hash: Some(hash),
            ..
        }) = &v.key
        {
            if !Salt::from(salt.as_str()).matches_hash(hash) {
                bail!(
                    "{}: salt integrity check failed for version {}",
                    path.display(),
                    v.name
                );
            }
            hashes += 1;
        }
    }
    writeln!(
        out,
        "ok: {}; {} version(s), {hashes} salt hash(es) verified",
        if has_checksum {
            "checksum verified"
        } else {
            "no checksum in file"
        },
        keyring.versions().len(),
    )?;
    Ok(())
}
