//! Commands that report on the keyring: status and verify.

use std::io::Write as _;

use anyhow::{Result, bail};
use secrets_manager::Salt;
use secrets_manager::keystore::{KeyKind, VersionState};
use secrets_manager::persist::{self, Prefixes, Source, StoredKey};

use crate::args::Cli;
use crate::keyring::{keyring_name, keyring_store, load, require_file};
use crate::{Output, say, warn};

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

/// The state's name in text and JSON.
fn state_name(state: VersionState) -> &'static str {
    match state {
        VersionState::Usable => "usable",
        VersionState::Retired => "retired",
        VersionState::Destroyed => "destroyed",
        _ => "unknown",
    }
}

fn kind_name(kind: Option<KeyKind>) -> Option<&'static str> {
    match kind {
        Some(KeyKind::Fernet) => Some("fernet"),
        Some(_) => Some("password"),
        None => None,
    }
}

/// RFC 3339 in UTC.
fn rfc3339(t: u64) -> Option<String> {
    i64::try_from(t)
        .ok()
        .and_then(|t| jiff::Timestamp::from_second(t).ok())
        .map(|ts| ts.to_string())
}

pub(crate) fn status(cli: &Cli, json: bool) -> Result<Output> {
    let manager = load(cli)?;
    // By activation (unknown first, as the oldest), then natural order.
    let mut infos = manager.version_info()?;
    infos.sort_by(|a, b| {
        a.activated_at
            .cmp(&b.activated_at)
            .then_with(|| natural_cmp(a.version.as_str(), b.version.as_str()))
    });
    let mut out = Output::default();
    if json {
        let versions: Vec<serde_json::Value> = infos
            .iter()
            .map(|info| {
                serde_json::json!({
                    "version": info.version.as_str(),
                    "active": info.active,
                    "state": state_name(info.state),
                    "kind": kind_name(info.kind),
                    "iterations": info.iterations,
                    "iterations_recorded": info.iterations_recorded,
                    "activated_at": info.activated_at.and_then(rfc3339),
                    "activated_at_unix": info.activated_at,
                })
            })
            .collect();
        let doc = serde_json::json!({
            "schema": 1,
            "keyring": keyring_name(&manager),
            "active": manager.active_version().as_str(),
            "versions": versions,
        });
        serde_json::to_writer_pretty(&mut *out, &doc)?;
        out.push(b'\n');
        return Ok(out);
    }
    writeln!(out, "keyring: {}", keyring_name(&manager))?;
    writeln!(out, "active: {}", manager.active_version())?;
    writeln!(
        out,
        "{:<24} {:<7} {:<9} {:<9} {:>10}  activated_at",
        "version", "active", "state", "kind", "iterations"
    )?;
    for info in infos {
        writeln!(
            out,
            "{:<24} {:<7} {:<9} {:<9} {:>10}  {}",
            info.version.as_str(),
            if info.active { "*" } else { "" },
            state_name(info.state),
            kind_name(info.kind).unwrap_or("-"),
            info.iterations
                .map_or_else(|| "-".to_owned(), |n| n.to_string()),
            describe_time(info.activated_at),
        )?;
    }
    Ok(out)
}

pub(crate) fn verify(cli: &Cli, update_checksum: bool, json: bool) -> Result<Output> {
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
        let shown = path.display();
        if !refresh.written {
            say(cli, format_args!("{shown}: the checksum already matches"));
        } else if !refresh.had_checksum {
            say(cli, format_args!("{shown}: checksum added"));
        } else if refresh.added.is_empty() {
            say(
                cli,
                format_args!(
                    "{shown}: checksum updated; which variables changed cannot be told (a value was edited, or a variable removed)"
                ),
            );
        } else {
            say(
                cli,
                format_args!(
                    "{shown}: checksum updated; added since it was written: {}",
                    refresh.added.join(", ")
                ),
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
    let mut out = Output::default();
    if json {
        let doc = serde_json::json!({
            "schema": 1,
            "keyring": path.display().to_string(),
            "ok": true,
            "checksum": if has_checksum { "verified" } else { "absent" },
            "versions": keyring.versions().len(),
            "salt_hashes_verified": hashes,
        });
        serde_json::to_writer_pretty(&mut *out, &doc)?;
        out.push(b'\n');
        return Ok(out);
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
    Ok(out)
}
