//! The census: what each version protects in a column, found by HMAC
//! verification alone (nothing is decrypted).

use std::collections::HashMap;

use secrets_manager::keystore::VersionState;
use secrets_manager::{Identified, SecretsManager, Version};
use serde::Serialize;

use crate::Progress;
use crate::database::{CellRef, Database, Key, Rows};
use crate::error::Result;
use crate::target::{Column, Split, split};

/// Rows between two progress updates.
const PROGRESS_EVERY: u64 = 4096;

/// What one version protects in the column.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct VersionCount {
    /// The version.
    pub version: String,
    /// `usable`, `retired` or `destroyed`.
    pub state: &'static str,
    /// Whether it is the active version.
    pub active: bool,
    /// Values whose token this version's key verifies.
    pub values: u64,
}

/// A column's census, from [`scan`]. Its JSON form (`serde`) is stable:
/// fields may be added, never renamed or removed; `report` names the form.
///
/// Every row is counted once: `rows` = the sum of `versions[].values`,
/// `null`, `empty`, `not_tokens` and `unopened`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Census {
    /// `"secrets-manager/db-scan/1"`.
    pub report: &'static str,
    /// The table.
    pub table: String,
    /// The column.
    pub column: String,
    /// `plain` or `versioned`.
    pub value_format: &'static str,
    /// The keyring's active version.
    pub active_version: String,
    /// Rows in the table.
    pub rows: u64,
    /// Every version of the keyring, in the order added, with what it
    /// protects.
    pub versions: Vec<VersionCount>,
    /// NULL values.
    pub null: u64,
    /// Empty values.
    pub empty: u64,
    /// Values that are not tokens (nor, in the versioned format,
    /// `<version>:<token>`).
    pub not_tokens: u64,
    /// Tokens no version with a key verifies (destroyed versions, other
    /// keyrings, corruption).
    pub unopened: u64,
    /// Versioned values whose prefix names another version than the one
    /// whose key verifies the token (counted under the latter).
    pub prefix_mismatches: u64,
    /// With a key column: the keys of the `unopened` rows, in table order.
    pub unopened_ids: Option<Vec<String>>,
    /// With a key column: the keys of the `not_tokens` rows.
    pub not_token_ids: Option<Vec<String>>,
    /// With a key column: the keys of the rows with a mismatched prefix.
    pub prefix_mismatch_ids: Option<Vec<String>>,
    /// Usable versions, other than the active one, that protect nothing
    /// here: they can be retired as far as this column goes.
    pub retirable: Vec<String>,
    /// Retired versions that protect nothing here: they can be destroyed
    /// as far as this column goes.
    pub destroyable: Vec<String>,
}

pub(crate) fn state_name(state: VersionState) -> &'static str {
    match state {
        VersionState::Usable => "usable",
        VersionState::Retired => "retired",
        _ => "destroyed",
    }
}

/// Counts, per version, the values of `column` whose token that version's
/// key verifies, in the key store's trial order (a versioned value's
/// prefix first); also NULL and empty values, values that are not tokens,
/// and tokens no version opens (listed by key when the column has a key
/// column). Nothing is decrypted, nothing written.
///
/// # Errors
///
/// The table or a column is missing or cannot hold tokens; the database
/// fails; the manager was cleaned up.
pub fn scan(
    manager: &SecretsManager,
    db: &mut Database,
    column: &Column,
    progress: &dyn Progress,
) -> Result<Census> {
    let identifier = manager
        .token_identifier()
        .map_err(|e| column.manager_error(e))?;
    let backend = db.backend();
    backend.check(column)?;
    progress.start(backend.count(column, Rows::All)?);

    let versions: Vec<(Version, VersionState)> = identifier.versions().collect();
    let position: HashMap<Version, usize> = versions
        .iter()
        .enumerate()
        .map(|(i, (v, _))| (*v, i))
        .collect();
    let mut counts = vec![0u64; versions.len()];
    let keyed = column.key.is_some();
    let mut census = Census {
        report: "secrets-manager/db-scan/1",
        table: column.table_text(),
        column: column.column_text(),
        value_format: column.format.as_str(),
        active_version: identifier.active_version().to_string(),
        rows: 0,
        versions: Vec::new(),
        null: 0,
        empty: 0,
        not_tokens: 0,
        unopened: 0,
        prefix_mismatches: 0,
        unopened_ids: keyed.then(Vec::new),
        not_token_ids: keyed.then(Vec::new),
        prefix_mismatch_ids: keyed.then(Vec::new),
        retirable: Vec::new(),
        destroyable: Vec::new(),
    };
    let push = |list: &mut Option<Vec<String>>, key: Option<Key>| {
        if let (Some(list), Some(key)) = (list.as_mut(), key) {
            list.push(key.to_string());
        }
    };

    backend.scan(column, &mut |key, cell| {
        census.rows += 1;
        if census.rows.is_multiple_of(PROGRESS_EVERY) {
            progress.advance(PROGRESS_EVERY);
        }
        let bytes = match cell {
            CellRef::Null => {
                census.null += 1;
                return Ok(());
            }
            CellRef::Other => {
                census.not_tokens += 1;
                push(&mut census.not_token_ids, key);
                return Ok(());
            }
            CellRef::Bytes([]) => {
                census.empty += 1;
                return Ok(());
            }
            CellRef::Bytes(b) => b,
        };
        let Split::Token(token, prefix) = split(column.format, bytes) else {
            census.not_tokens += 1;
            push(&mut census.not_token_ids, key);
            return Ok(());
        };
        match identifier.identify(token, prefix) {
            Identified::Version { version, .. } => {
                if let Some(&i) = position.get(&version) {
                    counts[i] += 1;
                }
                if prefix.is_some_and(|p| Version::new(p).ok() != Some(version)) {
                    census.prefix_mismatches += 1;
                    push(&mut census.prefix_mismatch_ids, key);
                }
            }
            Identified::NotAToken => {
                census.not_tokens += 1;
                push(&mut census.not_token_ids, key);
            }
            _ => {
                census.unopened += 1;
                push(&mut census.unopened_ids, key);
            }
        }
        Ok(())
    })?;
    progress.advance(census.rows % PROGRESS_EVERY);

    let active = identifier.active_version();
    for ((version, state), values) in versions.into_iter().zip(counts) {
        if values == 0 && version != active {
            match state {
                VersionState::Usable => census.retirable.push(version.to_string()),
                VersionState::Retired => census.destroyable.push(version.to_string()),
                _ => {}
            }
        }
        census.versions.push(VersionCount {
            version: version.to_string(),
            state: state_name(state),
            active: version == active,
            values,
        });
    }
    Ok(census)
}
