//! A keyring with a destroyed, a usable, a retired and an active version,
//! and a mixed table: NULL, empty, non-tokens, tokens of every version,
//! tokens of a foreign key, mislabelled versioned values.

use secrets_manager::fernet::{Fernet, Key, UnverifiedToken};
use secrets_manager::{SecretsConfig, SecretsManager};
use secrets_manager_db::{Column, Database, RewrapOptions, ValueFormat, rewrap, scan};

/// Raw access to a test database, beside the code under test.
pub(crate) trait Raw {
    fn exec(&mut self, sql: &str);
    fn insert(&mut self, table: &str, id: i64, value: Option<&str>);
    /// `(id, value)` ordered by id.
    fn rows(&mut self, table: &str) -> Vec<(i64, Option<String>)>;
}

pub(crate) struct Keys {
    pub v0: Key,
    pub v1: Key,
    pub v2: Key,
    pub v3: Key,
    pub foreign: Key,
}

/// Activation times: v0 at 1000, v1 at 2000, v2 at 3000, v3 at 4000.
pub(crate) fn keys_and_manager() -> (Keys, SecretsManager) {
    let keys = Keys {
        v0: Key::generate(),
        v1: Key::generate(),
        v2: Key::generate(),
        v3: Key::generate(),
        foreign: Key::generate(),
    };
    let manager = SecretsManager::new(
        SecretsConfig::builder()
            .fernet_key("v0", keys.v0.to_base64().as_str())
            .activated_at("v0", 1000)
            .fernet_key("v1", keys.v1.to_base64().as_str())
            .activated_at("v1", 2000)
            .fernet_key("v2", keys.v2.to_base64().as_str())
            .activated_at("v2", 3000)
            .fernet_key("v3", keys.v3.to_base64().as_str())
            .activated_at("v3", 4000)
            .active_version("v3")
            .build()
            .unwrap(),
    )
    .unwrap();
    manager.retire_version("v2").unwrap();
    manager.destroy_version("v0").unwrap();
    (keys, manager)
}

/// What a row of the mixed table is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Null,
    Empty,
    NotToken,
    /// Made by this version (`v1`: rewrapped; `v3`: active).
    Under(&'static str),
    /// No usable version opens it (destroyed, retired, foreign).
    Unopened,
    /// Versioned: active token, wrong prefix.
    FixPrefix,
    /// Versioned: old token, wrong prefix (rewrapped).
    Mislabelled,
}

/// `(id, value, kind, plaintext, timestamp)`.
pub(crate) type MixedRow = (i64, Option<String>, Kind, Vec<u8>, u64);

pub(crate) struct Mixed {
    pub rows: Vec<MixedRow>,
}

pub(crate) fn mixed(keys: &Keys, format: ValueFormat) -> Mixed {
    let versioned = format == ValueFormat::Versioned;
    let label = |v: &str, t: String| if versioned { format!("{v}:{t}") } else { t };
    let mut rows = Vec::new();
    let mut id = 0;
    let mut push = |value: Option<String>, kind: Kind, plaintext: &[u8], ts: u64| {
        id += 1;
        rows.push((id, value, kind, plaintext.to_vec(), ts));
    };
    push(None, Kind::Null, b"", 0);
    push(Some(String::new()), Kind::Empty, b"", 0);
    push(Some("hello".into()), Kind::NotToken, b"", 0);
    for i in 0..10u64 {
        let pt = format!("v1 secret {i}");
        let ts = 2100 + i;
        let t = Fernet::new(&keys.v1).encrypt_at_time(pt.as_bytes(), ts);
        push(Some(label("v1", t)), Kind::Under("v1"), pt.as_bytes(), ts);
    }
    for i in 0..5u64 {
        let pt = format!("v3 secret {i}");
        let t = Fernet::new(&keys.v3).encrypt_at_time(pt.as_bytes(), 4100 + i);
        push(
            Some(label("V3", t)),
            Kind::Under("v3"),
            pt.as_bytes(),
            4100 + i,
        );
    }
    for i in 0..2u64 {
        let t = Fernet::new(&keys.v2).encrypt_at_time(b"retired", 3100 + i);
        push(Some(label("v2", t)), Kind::Unopened, b"retired", 3100 + i);
    }
    let t = Fernet::new(&keys.v0).encrypt_at_time(b"destroyed", 1100);
    push(Some(label("v0", t)), Kind::Unopened, b"destroyed", 1100);
    let t = Fernet::new(&keys.foreign).encrypt_at_time(b"foreign", 4200);
    push(Some(label("v3", t)), Kind::Unopened, b"foreign", 4200);
    push(
        Some(label("v1", "gAAAAAB-short".into())),
        Kind::NotToken,
        b"",
        0,
    );
    // Rows 24 to 26.
    let t = Fernet::new(&keys.v3).encrypt_at_time(b"labelled v1", 4300);
    if versioned {
        push(
            Some(format!("v1:{t}")),
            Kind::FixPrefix,
            b"labelled v1",
            4300,
        );
    } else {
        push(Some(t), Kind::Under("v3"), b"labelled v1", 4300);
    }
    let t = Fernet::new(&keys.v1).encrypt_at_time(b"labelled v3", 2300);
    if versioned {
        push(
            Some(format!("v3:{t}")),
            Kind::Mislabelled,
            b"labelled v3",
            2300,
        );
    } else {
        push(Some(t), Kind::Under("v1"), b"labelled v3", 2300);
    }
    let t = Fernet::new(&keys.v1).encrypt_at_time(b"no prefix", 2400);
    if versioned {
        push(Some(t), Kind::NotToken, b"", 0);
    } else {
        push(Some(t), Kind::Under("v1"), b"no prefix", 2400);
    }
    Mixed { rows }
}

/// Creates `table` (id, secret) in `raw` and fills it with the mixed rows.
pub(crate) fn load(raw: &mut dyn Raw, table: &str, id_type: &str, mixed: &Mixed) {
    raw.exec(&format!(
        "CREATE TABLE {table} (id {id_type} PRIMARY KEY, secret TEXT)"
    ));
    for (id, value, ..) in &mixed.rows {
        raw.insert(table, *id, value.as_deref());
    }
}

fn ids(mixed: &Mixed, pick: impl Fn(Kind) -> bool) -> Vec<String> {
    mixed
        .rows
        .iter()
        .filter(|r| pick(r.2))
        .map(|r| r.0.to_string())
        .collect()
}

/// The whole story on one table: census, dry run, rewrap, checks of every
/// row, a second run that writes nothing, a census showing v1 retirable.
pub(crate) fn census_and_rewrap(
    url: &str,
    raw: &mut dyn Raw,
    table: &str,
    format: ValueFormat,
    keys: &Keys,
    manager: &SecretsManager,
) {
    let mixed = mixed(keys, format);
    load(raw, table, "BIGINT", &mixed);
    let versioned = format == ValueFormat::Versioned;
    let mut db = Database::open(url).unwrap();
    let column = Column::new(table, "secret")
        .unwrap()
        .key_column("id")
        .unwrap()
        .format(format);

    // Census.
    let census = scan(manager, &mut db, &column, &()).unwrap();
    let count = |k: Kind| mixed.rows.iter().filter(|r| r.2 == k).count() as u64;
    let values: Vec<(&str, &str, bool, u64)> = census
        .versions
        .iter()
        .map(|v| (v.version.as_str(), v.state, v.active, v.values))
        .collect();
    assert_eq!(
        values,
        [
            ("v0", "destroyed", false, 0),
            (
                "v1",
                "usable",
                false,
                count(Kind::Under("v1")) + count(Kind::Mislabelled)
            ),
            ("v2", "retired", false, 2),
            (
                "v3",
                "usable",
                true,
                count(Kind::Under("v3")) + count(Kind::FixPrefix)
            ),
        ],
        "{census:?}"
    );
    assert_eq!(census.rows, mixed.rows.len() as u64);
    assert_eq!((census.null, census.empty), (1, 1));
    assert_eq!(census.not_tokens, count(Kind::NotToken));
    assert_eq!(census.unopened, 2, "destroyed and foreign");
    assert_eq!(
        census.unopened_ids.as_deref(),
        Some(&["21".to_owned(), "22".to_owned()][..])
    );
    assert_eq!(
        census.not_token_ids.clone().unwrap(),
        ids(&mixed, |k| k == Kind::NotToken)
    );
    let mismatched = ids(&mixed, |k| matches!(k, Kind::FixPrefix | Kind::Mislabelled));
    assert_eq!(census.prefix_mismatch_ids.clone().unwrap(), mismatched);
    assert_eq!(census.prefix_mismatches, mismatched.len() as u64);
    assert!(census.retirable.is_empty() && census.destroyable.is_empty());
    let json = serde_json::to_value(&census).unwrap();
    assert_eq!(json["report"], "secrets-manager/db-scan/1");
    assert_eq!(json["versions"][1]["values"], census.versions[1].values);

    // A dry run plans everything and writes nothing.
    let before = raw.rows(table);
    let dry = rewrap(
        manager,
        &mut db,
        &column,
        RewrapOptions::default().batch(4).dry_run(true),
        &(),
    )
    .unwrap();
    assert_eq!(raw.rows(table), before);
    assert_eq!(dry.transactions, 0);

    // The rewrap, in batches of 4 rows.
    let report = rewrap(
        manager,
        &mut db,
        &column,
        RewrapOptions::default().batch(4),
        &(),
    )
    .unwrap();
    let rewrappable = count(Kind::Under("v1")) + count(Kind::Mislabelled);
    assert_eq!(report.rewrapped, rewrappable, "{report:?}");
    assert_eq!(dry.rewrapped, rewrappable);
    assert_eq!(report.rewrapped_from.get("v1"), Some(&rewrappable));
    assert_eq!(report.prefixes_fixed, count(Kind::FixPrefix));
    assert_eq!(report.already_active, count(Kind::Under("v3")));
    assert_eq!(report.not_token_ids, ids(&mixed, |k| k == Kind::NotToken));
    assert_eq!(report.prefix_mismatch_ids, mismatched);
    let unopened: Vec<(String, Option<String>)> = report
        .unopened
        .iter()
        .map(|u| (u.id.clone(), u.retired_version.clone()))
        .collect();
    assert_eq!(
        unopened,
        [
            ("19".to_owned(), Some("v2".to_owned())),
            ("20".to_owned(), Some("v2".to_owned())),
            ("21".to_owned(), None),
            ("22".to_owned(), None),
        ]
    );
    assert!(!report.is_complete());
    assert_eq!(report.conflicts, 0);

    // Every row: rewrapped to v3 with its plaintext and timestamp, or
    // untouched.
    let after = raw.rows(table);
    for ((id, value, kind, plaintext, ts), (id2, now)) in mixed.rows.iter().zip(&after) {
        assert_eq!(id, id2);
        match kind {
            Kind::Under("v1") | Kind::Mislabelled | Kind::FixPrefix => {
                let now = now.as_deref().unwrap();
                let token = if versioned {
                    now.strip_prefix("v3:")
                        .unwrap_or_else(|| panic!("row {id}: {now}"))
                } else {
                    now
                };
                let (version, opened) = manager.decrypt(token).unwrap();
                assert_eq!(
                    (version.as_str(), &opened[..]),
                    ("v3", &plaintext[..]),
                    "row {id}"
                );
                assert_eq!(
                    UnverifiedToken::parse(token).unwrap().timestamp(),
                    *ts,
                    "row {id}"
                );
            }
            _ => assert_eq!(now, value, "row {id} must be untouched"),
        }
    }

    // Finished: a second run writes nothing.
    let again = rewrap(manager, &mut db, &column, RewrapOptions::default(), &()).unwrap();
    assert_eq!(
        (again.rewrapped, again.prefixes_fixed, again.transactions),
        (0, 0, 0)
    );
    assert_eq!(raw.rows(table), after);

    // v1 protects nothing now.
    let census = scan(manager, &mut db, &column, &()).unwrap();
    assert_eq!(census.versions[1].values, 0);
    assert_eq!(census.retirable, ["v1"]);
    assert_eq!(census.prefix_mismatches, 0);
}
