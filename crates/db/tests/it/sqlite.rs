//! SQLite files.

use secrets_manager_db::{Column, Database, DbError, RewrapOptions, ValueFormat, rewrap, scan};

use crate::fixture::{Raw, census_and_rewrap, keys_and_manager};

struct Sqlite(rusqlite::Connection);

impl Raw for Sqlite {
    fn exec(&mut self, sql: &str) {
        self.0.execute_batch(sql).unwrap();
    }
    fn insert(&mut self, table: &str, id: i64, value: Option<&str>) {
        self.0
            .execute(
                &format!("INSERT INTO {table} (id, secret) VALUES (?1, ?2)"),
                rusqlite::params![id, value],
            )
            .unwrap();
    }
    fn rows(&mut self, table: &str) -> Vec<(i64, Option<String>)> {
        let mut stmt = self
            .0
            .prepare(&format!("SELECT id, secret FROM {table} ORDER BY id"))
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }
}

#[test]
fn mixed_tables_in_both_formats() {
    let (keys, manager) = keys_and_manager();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let mut raw = Sqlite(rusqlite::Connection::open(&path).unwrap());
    let url = format!("sqlite:{}", path.display());
    census_and_rewrap(
        &url,
        &mut raw,
        "plain_values",
        ValueFormat::Plain,
        &keys,
        &manager,
    );
    census_and_rewrap(
        &url,
        &mut raw,
        "versioned_values",
        ValueFormat::Versioned,
        &keys,
        &manager,
    );
}

#[test]
fn blobs_stay_blobs_and_numbers_are_not_tokens() {
    let (keys, manager) = keys_and_manager();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    // Reserved words as names: quoted, they work.
    conn.execute_batch(r#"CREATE TABLE "order" ("select" BLOB, "group" TEXT PRIMARY KEY)"#)
        .unwrap();
    let token = secrets_manager::fernet::Fernet::new(&keys.v1).encrypt(b"bytes");
    conn.execute(
        r#"INSERT INTO "order" VALUES (?1, 'a'), (42, 'b')"#,
        [token.as_bytes()],
    )
    .unwrap();
    let mut db = Database::open(&format!("sqlite:{}", path.display())).unwrap();
    let column = Column::new("order", "select")
        .unwrap()
        .key_column("group")
        .unwrap();
    let report = rewrap(&manager, &mut db, &column, RewrapOptions::default(), &()).unwrap();
    assert_eq!(
        (report.rewrapped, report.not_token_ids.as_slice()),
        (1, &["b".to_owned()][..])
    );
    let (kind, value): (String, Vec<u8>) = conn
        .query_row(
            r#"SELECT typeof("select"), "select" FROM "order" WHERE "group" = 'a'"#,
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(kind, "blob");
    let (version, plaintext) = manager.decrypt(&value).unwrap();
    assert_eq!((version.as_str(), &plaintext[..]), ("v3", &b"bytes"[..]));
    let census = scan(&manager, &mut db, &column, &()).unwrap();
    assert_eq!((census.versions[3].values, census.not_tokens), (1, 1));
}

/// A table `t (k TEXT PRIMARY KEY, secret TEXT)` whose rows have the given
/// key expressions (SQL literals) and each a v1 token; its column, keyed
/// by `k`, and the database, kept in the returned directory.
fn text_keyed_table(
    keys: &crate::fixture::Keys,
    key_sql: &[&str],
) -> (tempfile::TempDir, Database, Column) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY, secret TEXT)")
        .unwrap();
    let old = secrets_manager::fernet::Fernet::new(&keys.v1);
    for key in key_sql {
        conn.execute(
            &format!("INSERT INTO t VALUES ({key}, ?1)"),
            [old.encrypt(b"value")],
        )
        .unwrap();
    }
    let db = Database::open(&format!("sqlite:{}", path.display())).unwrap();
    let column = Column::new("t", "secret").unwrap().key_column("k").unwrap();
    (dir, db, column)
}

/// SQLite lets a TEXT primary key hold NULL. No update by key reaches
/// such a row, so the rewrap says so and is not complete; the census still
/// counts its value under the old version.
#[test]
fn rows_without_a_key_are_reported_not_skipped_silently() {
    let (keys, manager) = keys_and_manager();
    let (_dir, mut db, column) = text_keyed_table(&keys, &["'a'", "NULL"]);
    let report = rewrap(&manager, &mut db, &column, RewrapOptions::default(), &()).unwrap();
    assert_eq!(
        (report.rows, report.rewrapped, report.rows_without_key),
        (1, 1, 1)
    );
    assert!(!report.is_complete());
    let census = scan(&manager, &mut db, &column, &()).unwrap();
    assert_eq!(
        (census.versions[1].values, census.versions[3].values),
        (1, 1)
    );
}

/// Text keys that are not UTF-8 page and match byte for byte: none is
/// skipped or taken for gone.
#[test]
fn text_keys_that_are_not_utf8_are_kept_byte_for_byte() {
    let (keys, manager) = keys_and_manager();
    let keys_sql = [
        "CAST(x'6180' AS TEXT)",
        "CAST(x'6190' AS TEXT)",
        "CAST(x'61c3a9' AS TEXT)",
    ];
    let (_dir, mut db, column) = text_keyed_table(&keys, &keys_sql);
    let options = RewrapOptions::default().batch(1);
    let report = rewrap(&manager, &mut db, &column, options, &()).unwrap();
    assert_eq!((report.rows, report.rewrapped, report.gone), (3, 3, 0));
    assert!(report.is_complete());
    let census = scan(&manager, &mut db, &column, &()).unwrap();
    assert_eq!(
        (census.versions[1].values, census.versions[3].values),
        (0, 3)
    );
}

#[test]
fn hostile_identifiers_are_refused_before_any_sql() {
    for (table, column, key) in [
        ("t; DROP TABLE t", "secret", "id"),
        ("t", "secret\" FROM t; --", "id"),
        ("t", "secret", "id) OR 1=1 --"),
        ("a.b.c", "secret", "id"),
        ("t", "sch.secret", "id"),
        ("t", "secret", "'id'"),
        ("t\n", "secret", "id"),
    ] {
        let err = Column::new(table, column)
            .and_then(|c| c.key_column(key))
            .unwrap_err();
        assert!(matches!(err, DbError::Identifier { .. }), "{err}");
    }
}

#[test]
fn errors_name_what_was_wrong_and_never_a_password() {
    let err = Database::open("mysql://user:hunter2@localhost/db")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"mysql\"") && !err.contains("hunter2"),
        "{err}"
    );
    // No colon at all: nothing of the address is quoted.
    let err = Database::open("host=db user=app password=hunter2")
        .unwrap_err()
        .to_string();
    assert!(!err.contains("hunter2"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.db");
    let err = Database::open(&format!("sqlite:{}", missing.display()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing.db"), "{err}");
    assert!(!missing.exists(), "a missing database is not created");

    let path = dir.path().join("app.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, secret TEXT)")
        .unwrap();
    let (_, manager) = keys_and_manager();
    let mut db = Database::open(&format!("sqlite:{}", path.display())).unwrap();
    for (table, column, want) in [("nope", "secret", "nope"), ("t", "nope", "nope")] {
        let c = Column::new(table, column).unwrap();
        let err = scan(&manager, &mut db, &c, &()).unwrap_err().to_string();
        assert!(err.contains(want), "{err}");
    }
    let c = Column::new("t", "secret").unwrap();
    let err = rewrap(&manager, &mut db, &c, RewrapOptions::default(), &()).unwrap_err();
    assert!(matches!(err, DbError::NoKeyColumn { .. }), "{err}");
}
