//! A throwaway PostgreSQL cluster (see `pg_cluster.rs`): one per test
//! binary run, shared by the checks below, run in sequence.

use secrets_manager_db::{Column, Database, RewrapOptions, ValueFormat, rewrap, scan};

use crate::fixture::{Raw, census_and_rewrap, keys_and_manager};
use crate::pg_cluster::Cluster;

struct Pg(postgres::Client);

impl Raw for Pg {
    fn exec(&mut self, sql: &str) {
        self.0.batch_execute(sql).unwrap();
    }
    fn insert(&mut self, table: &str, id: i64, value: Option<&str>) {
        self.0
            .execute(
                &format!("INSERT INTO {table} (id, secret) VALUES ($1, $2)"),
                &[&id, &value],
            )
            .unwrap();
    }
    fn rows(&mut self, table: &str) -> Vec<(i64, Option<String>)> {
        self.0
            .query(&format!("SELECT id, secret FROM {table} ORDER BY id"), &[])
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    }
}

#[test]
fn postgres() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let (keys, manager) = keys_and_manager();
    let db = cluster.create_db("mixed");
    let url = cluster.url(&db);
    let mut raw = Pg(cluster.client(&db));
    census_and_rewrap(
        &url,
        &mut raw,
        "plain_values",
        ValueFormat::Plain,
        &keys,
        &manager,
    );
    raw.exec("CREATE SCHEMA app");
    census_and_rewrap(
        &url,
        &mut raw,
        "app.versioned_values",
        ValueFormat::Versioned,
        &keys,
        &manager,
    );

    // Text keys, a varchar column, a schema-qualified table, reserved words.
    raw.exec(r#"CREATE TABLE app."user" ("key" TEXT PRIMARY KEY, "select" VARCHAR(500))"#);
    let token = secrets_manager::fernet::Fernet::new(&keys.v1).encrypt(b"text key");
    raw.0
        .execute(
            r#"INSERT INTO app."user" VALUES ('b', $1), ('a', NULL), ('c', 'x')"#,
            &[&token],
        )
        .unwrap();
    let mut db = Database::open(&url).unwrap();
    let column = Column::new("app.user", "select")
        .unwrap()
        .key_column("key")
        .unwrap();
    let report = rewrap(
        &manager,
        &mut db,
        &column,
        RewrapOptions::default().batch(1),
        &(),
    )
    .unwrap();
    assert_eq!(
        (
            report.rewrapped,
            report.null,
            report.not_token_ids.as_slice()
        ),
        (1, 1, &["c".to_owned()][..])
    );
    assert_eq!(
        report.transactions, 1,
        "one statement for the page that changed"
    );

    // What is not there, or cannot hold tokens, is named.
    raw.exec("CREATE TABLE numbers (id INT PRIMARY KEY, n INT, \"Mixed\" TEXT)");
    for (table, col, want) in [
        ("missing", "secret", "no such table"),
        ("numbers", "nope", "no column nope"),
        ("numbers", "n", "of type integer"),
        ("NUMBERS", "n", "try numbers"),
    ] {
        let c = Column::new(table, col).unwrap();
        let err = scan(&manager, &mut db, &c, &()).unwrap_err().to_string();
        assert!(err.contains(want), "{err}");
    }
    let c = Column::new("numbers", "Mixed").unwrap();
    assert_eq!(scan(&manager, &mut db, &c, &()).unwrap().rows, 0);

    // A constraint the update breaks: the server's DETAIL quotes the row
    // ("Failing row contains (1, gAAAA...)"); the error never does.
    raw.exec("CREATE TABLE guarded (id BIGINT PRIMARY KEY, secret TEXT)");
    raw.insert("guarded", 1, Some(&token));
    raw.exec("ALTER TABLE guarded ADD CONSTRAINT no_updates CHECK (id < 0) NOT VALID");
    let column = Column::new("guarded", "secret")
        .unwrap()
        .key_column("id")
        .unwrap();
    let err = rewrap(&manager, &mut db, &column, RewrapOptions::default(), &()).unwrap_err();
    let mut shown = format!("{err} {err:?}");
    let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(&err);
    while let Some(c) = cause {
        shown.push_str(&format!(" {c} {c:?}"));
        cause = c.source();
    }
    assert!(
        shown.contains("23514") && shown.contains("no_updates"),
        "{shown}"
    );
    assert!(
        !shown.contains("gAAAA") && !shown.contains("Failing row"),
        "{shown}"
    );
}
