//! `db scan` and `db rewrap`: finish a rotation for tokens at rest in a
//! database column (SQLite or PostgreSQL), through `secrets-manager-db`.

use std::fmt::Write as _;
use std::io::{IsTerminal as _, Write as _};
use std::time::Instant;

use anyhow::{Result, bail};
use secrets_manager_db::{Column, Database, Progress, RewrapOptions, ValueFormat};

use crate::args::{Cli, DbColumn, DbCommand, Format};
use crate::keyring::load;

/// A progress bar on stderr when it is a terminal.
struct Bar(Option<indicatif::ProgressBar>);

impl Bar {
    fn new() -> Self {
        if !std::io::stderr().is_terminal() {
            return Self(None);
        }
        let bar = indicatif::ProgressBar::new(0);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{bar:30} {human_pos}/{human_len} rows  {rate}  ETA {eta}",
        ) {
            bar.set_style(style.with_key(
                "rate",
                |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.0} rows/s", state.per_sec());
                },
            ));
        }
        Self(Some(bar))
    }

    fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

impl Progress for Bar {
    fn start(&self, total: u64) {
        if let Some(bar) = &self.0 {
            bar.set_length(total);
        }
    }

    fn advance(&self, rows: u64) {
        if let Some(bar) = &self.0 {
            bar.inc(rows);
        }
    }
}

fn column(target: &DbColumn, key: Option<&str>) -> Result<Column> {
    let mut c = Column::new(&target.table, &target.column)?.format(match target.format {
        Format::Plain => ValueFormat::Plain,
        Format::Versioned => ValueFormat::Versioned,
    });
    if let Some(key) = key {
        c = c.key_column(key)?;
    }
    Ok(c)
}

/// At most this many ids in a text line; `--json` lists them all.
const SHOWN_IDS: usize = 10;

fn ids(list: &[String]) -> String {
    let mut text = list
        .iter()
        .take(SHOWN_IDS)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if list.len() > SHOWN_IDS {
        let _ = write!(text, " and {} more", list.len() - SHOWN_IDS);
    }
    text
}

pub(crate) fn run(cli: &Cli, command: &DbCommand, out: &mut Vec<u8>) -> Result<()> {
    match command {
        DbCommand::Scan {
            target,
            key_column,
            json,
        } => {
            let (url, target) = (&target.url, column(target, key_column.as_deref())?);
            let manager = load(cli)?;
            let mut db = Database::open(url)?;
            let bar = Bar::new();
            let census = secrets_manager_db::scan(&manager, &mut db, &target, &bar);
            bar.finish();
            let census = census?;
            if *json {
                serde_json::to_writer_pretty(&mut *out, &census)?;
                out.push(b'\n');
                return Ok(());
            }
            writeln!(
                out,
                "{target} ({} values): {} rows",
                census.value_format, census.rows
            )?;
            for v in &census.versions {
                let state = if v.active {
                    format!("{}, active", v.state)
                } else {
                    v.state.to_owned()
                };
                writeln!(out, "  {:<22} {:>12}  {state}", v.version, v.values)?;
            }
            let listed = |label: &str, n: u64, list: &Option<Vec<String>>| {
                let mut line = format!("  {label:<22} {n:>12}");
                if let Some(list) = list.as_ref().filter(|l| !l.is_empty()) {
                    let _ = write!(line, "  ids: {}", ids(list));
                }
                line
            };
            writeln!(out, "  {:<22} {:>12}", "NULL", census.null)?;
            writeln!(out, "  {:<22} {:>12}", "empty", census.empty)?;
            writeln!(
                out,
                "{}",
                listed("not tokens", census.not_tokens, &census.not_token_ids)
            )?;
            writeln!(
                out,
                "{}",
                listed(
                    "opened by no version",
                    census.unopened,
                    &census.unopened_ids
                )
            )?;
            if census.value_format == "versioned" {
                writeln!(
                    out,
                    "{}",
                    listed(
                        "prefix mismatches",
                        census.prefix_mismatches,
                        &census.prefix_mismatch_ids
                    )
                )?;
            }
            for v in &census.retirable {
                writeln!(
                    out,
                    "{v} protects nothing in {target}: it can be retired (secrets-manager retire {v})"
                )?;
            }
            for v in &census.destroyable {
                writeln!(
                    out,
                    "{v} (retired) protects nothing in {target}: it can be destroyed (secrets-manager destroy {v} --yes)"
                )?;
            }
            Ok(())
        }
        DbCommand::Rewrap {
            target,
            key_column,
            batch,
            dry_run,
        } => {
            let (url, target) = (&target.url, column(target, Some(key_column))?);
            let manager = load(cli)?;
            let mut db = Database::open(url)?;
            let options = RewrapOptions::default()
                .batch(usize::try_from(*batch).unwrap_or(usize::MAX))
                .dry_run(*dry_run);
            let bar = Bar::new();
            let started = Instant::now();
            let report = secrets_manager_db::rewrap(&manager, &mut db, &target, options, &bar);
            bar.finish();
            let r = report?;
            let secs = started.elapsed().as_secs_f64();
            let from = r
                .rewrapped_from
                .iter()
                .map(|(v, n)| format!("{v}: {n}"))
                .collect::<Vec<_>>()
                .join(", ");
            let mut line = format!(
                "{} {} of {} rows in {target} to {}{} in {secs:.2} s ({:.0} rows/s); {} already under {}",
                if r.dry_run {
                    "would rewrap"
                } else {
                    "rewrapped"
                },
                r.rewrapped,
                r.rows,
                r.active_version,
                if from.is_empty() {
                    String::new()
                } else {
                    format!(" ({from})")
                },
                r.rows as f64 / secs.max(1e-9),
                r.already_active,
                r.active_version,
            );
            for (n, what) in [
                (r.prefixes_fixed, "prefixes fixed"),
                (r.null, "NULL"),
                (r.empty, "empty"),
                (r.not_tokens, "not tokens"),
                (r.conflicts, "changed meanwhile (revisited)"),
                (r.gone, "deleted meanwhile"),
            ] {
                if n > 0 {
                    let _ = write!(line, ", {n} {what}");
                }
            }
            if r.dry_run {
                line.push_str("; dry run: nothing written");
            }
            let mut stderr = std::io::stderr().lock();
            writeln!(stderr, "{line}")?;
            if !r.prefix_mismatch_ids.is_empty() {
                writeln!(
                    stderr,
                    "prefixes that named another version than the one opening the token: ids {}",
                    ids(&r.prefix_mismatch_ids)
                )?;
            }
            if !r.not_token_ids.is_empty() {
                writeln!(
                    stderr,
                    "values that are not tokens, left alone: ids {}",
                    ids(&r.not_token_ids)
                )?;
            }
            if !r.still_changing.is_empty() {
                writeln!(
                    stderr,
                    "rows still changing, left for the next run: ids {}",
                    ids(&r.still_changing)
                )?;
            }
            drop(stderr);
            if !r.unopened.is_empty() {
                let retired: Vec<String> = r
                    .unopened
                    .iter()
                    .filter_map(|u| u.retired_version.clone())
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect();
                let list: Vec<String> = r.unopened.iter().map(|u| u.id.clone()).collect();
                bail!(
                    "{} value(s) in {target} that no usable version opens were left alone{}: ids {}",
                    r.unopened.len(),
                    if retired.is_empty() {
                        String::new()
                    } else {
                        format!(" (some made under retired {})", retired.join(", "))
                    },
                    ids(&list)
                );
            }
            if !r.still_changing.is_empty() {
                bail!(
                    "{} row(s) of {target} kept changing; run the rewrap again",
                    r.still_changing.len()
                );
            }
            if r.rows_without_key > 0 {
                bail!(
                    "{} row(s) of {target} have no key (NULL in the key column) and were not visited: give them keys, or choose a key column without NULLs",
                    r.rows_without_key
                );
            }
            Ok(())
        }
    }
}
