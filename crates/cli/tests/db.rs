//! `secrets-manager db scan` and `db rewrap` as a user runs them, on
//! SQLite and on a throwaway PostgreSQL cluster: the reports, the exit
//! statuses, a rewrap beside an application writing to the same table, and
//! rewraps killed with SIGKILL at random moments, then run again.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Seeds from the clock and row counts: casts that lose nothing here.
#![allow(clippy::cast_possible_truncation)]

#[path = "../../db/tests/it/pg_cluster.rs"]
mod pg_cluster;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use secrets_manager::fernet::{Fernet, Key, UnverifiedToken};
use secrets_manager::{SecretsConfig, SecretsManager};

use pg_cluster::Cluster;

/// A keyring file with raw Fernet keys (no derivation): v1, then v2
/// active.
struct Keyring {
    dir: tempfile::TempDir,
    v1: Fernet,
    v2: Fernet,
    manager: SecretsManager,
}

impl Keyring {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (k1, k2) = (Key::generate(), Key::generate());
        let config = || {
            SecretsConfig::builder()
                .fernet_key("v1", k1.to_base64().as_str())
                .activated_at("v1", 1_000)
                .fernet_key("v2", k2.to_base64().as_str())
                .activated_at("v2", 2_000)
                .active_version("v2")
                .build()
                .unwrap()
        };
        SecretsManager::new(config())
            .unwrap()
            .create_keyring_file(dir.path().join(".env.secrets"))
            .unwrap();
        Self {
            v1: Fernet::new(&k1),
            v2: Fernet::new(&k2),
            manager: SecretsManager::new(config()).unwrap(),
            dir,
        }
    }

    fn cmd(&self, args: &[&str]) -> std::process::Command {
        let mut c = secrets_manager_tests::without_caller_settings(&assert_cmd::cargo::cargo_bin(
            "secrets-manager",
        ));
        c.current_dir(self.dir.path()).args(args);
        c
    }

    /// Runs to the end: (exit code, stdout, stderr).
    fn run(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let out = self.cmd(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    }

    fn sqlite(&self) -> (PathBuf, String) {
        let path = self.dir.path().join("app.db");
        let url = format!("sqlite:{}", path.display());
        (path, url)
    }

    /// `(version, plaintext)` of a stored value.
    fn open(&self, value: &str) -> (String, String) {
        let (version, plaintext) = self.manager.decrypt(value).unwrap();
        (
            version.to_string(),
            String::from_utf8(plaintext.to_vec()).unwrap(),
        )
    }
}

/// The test's own view of a table: the application's connection.
trait App {
    fn exec(&mut self, sql: &str);
    fn put(&mut self, id: i64, value: Option<&str>);
    fn update(&mut self, id: i64, value: &str);
    fn rows(&mut self) -> Vec<(i64, Option<String>)>;
}

struct SqliteApp(rusqlite::Connection);

impl SqliteApp {
    fn open(path: &Path) -> Self {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.busy_timeout(Duration::from_secs(30)).unwrap();
        Self(conn)
    }
}

impl App for SqliteApp {
    fn exec(&mut self, sql: &str) {
        self.0.execute_batch(sql).unwrap();
    }
    fn put(&mut self, id: i64, value: Option<&str>) {
        self.0
            .execute(
                "INSERT INTO t (id, v) VALUES (?1, ?2)",
                rusqlite::params![id, value],
            )
            .unwrap();
    }
    fn update(&mut self, id: i64, value: &str) {
        self.0
            .execute(
                "UPDATE t SET v = ?2 WHERE id = ?1",
                rusqlite::params![id, value],
            )
            .unwrap();
    }
    fn rows(&mut self) -> Vec<(i64, Option<String>)> {
        let mut stmt = self.0.prepare("SELECT id, v FROM t ORDER BY id").unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }
}

struct PgApp(postgres::Client);

impl App for PgApp {
    fn exec(&mut self, sql: &str) {
        self.0.batch_execute(sql).unwrap();
    }
    fn put(&mut self, id: i64, value: Option<&str>) {
        self.0
            .execute("INSERT INTO t (id, v) VALUES ($1, $2)", &[&id, &value])
            .unwrap();
    }
    fn update(&mut self, id: i64, value: &str) {
        self.0
            .execute("UPDATE t SET v = $2 WHERE id = $1", &[&id, &value])
            .unwrap();
    }
    fn rows(&mut self) -> Vec<(i64, Option<String>)> {
        self.0
            .query("SELECT id, v FROM t ORDER BY id", &[])
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    }
}

/// A small deterministic generator (xorshift), seeded per test.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn seed() -> u64 {
    let s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("seed {s}");
    s
}

/// `rows` values under v1: `row N`, stamped 1500 + N.
fn fill(app: &mut dyn App, k: &Keyring, rows: i64) -> HashMap<i64, (String, u64)> {
    app.exec("CREATE TABLE t (id BIGINT PRIMARY KEY, v TEXT)");
    app.exec("BEGIN");
    let mut original = HashMap::new();
    for id in 1..=rows {
        let plaintext = format!("row {id}");
        let ts = 1500 + id as u64;
        app.put(id, Some(&k.v1.encrypt_at_time(plaintext.as_bytes(), ts)));
        original.insert(id, (plaintext, ts));
    }
    app.exec("COMMIT");
    original
}

/// Every row opens to its original plaintext (under any version), with
/// its original timestamp: nothing half-written.
fn all_original(app: &mut dyn App, k: &Keyring, original: &HashMap<i64, (String, u64)>) -> usize {
    let rows = app.rows();
    assert_eq!(rows.len(), original.len());
    let mut under_v2 = 0;
    for (id, value) in rows {
        let value = value.unwrap();
        let (version, plaintext) = k.open(&value);
        assert_eq!(&plaintext, &original[&id].0, "row {id}");
        assert_eq!(
            UnverifiedToken::parse(&value).unwrap().timestamp(),
            original[&id].1
        );
        under_v2 += usize::from(version == "v2");
    }
    under_v2
}

fn rewrap_args<'a>(url: &'a str, batch: &'a str) -> Vec<&'a str> {
    vec![
        "db",
        "rewrap",
        url,
        "--table",
        "t",
        "--column",
        "v",
        "--key-column",
        "id",
        "--batch",
        batch,
    ]
}

#[test]
fn scan_and_rewrap_report_and_exit_as_documented() {
    let k = Keyring::new();
    let (path, url) = k.sqlite();
    let mut app = SqliteApp::open(&path);
    app.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)");
    app.put(1, Some(&k.v1.encrypt(b"one")));
    app.put(2, Some(&k.v1.encrypt(b"two")));
    app.put(3, Some(&k.v2.encrypt(b"three")));
    app.put(4, None);
    app.put(5, Some(&Fernet::new(&Key::generate()).encrypt(b"foreign")));
    app.put(6, Some("plain text"));
    let scan = [
        "db",
        "scan",
        &url,
        "--table",
        "t",
        "--column",
        "v",
        "--key-column",
        "id",
    ];

    let (code, out, _) = k.run(&scan);
    assert_eq!(code, Some(0));
    for want in [
        "6 rows",
        "v1",
        "usable, active",
        "opened by no version",
        "ids: 5",
        "ids: 6",
    ] {
        assert!(out.contains(want), "{want}: {out}");
    }
    let mut json_args = scan.to_vec();
    json_args.push("--json");
    let (code, out, _) = k.run(&json_args);
    assert_eq!(code, Some(0));
    let census: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(census["report"], "secrets-manager/db-scan/1");
    assert_eq!(census["versions"][0]["values"], 2);
    assert_eq!(census["versions"][1]["values"], 1);
    assert_eq!(census["unopened_ids"], serde_json::json!(["5"]));
    assert_eq!(census["retirable"], serde_json::json!([]));

    // A dry run says what would change, writes nothing, and fails like the
    // real run would: a value no version opens.
    let before = app.rows();
    let mut dry = rewrap_args(&url, "1000");
    dry.push("--dry-run");
    let (code, out, err) = k.run(&dry);
    assert_eq!((code, out.as_str()), (Some(1), ""));
    assert!(err.contains("would rewrap 2 of 6 rows"), "{err}");
    assert_eq!(app.rows(), before);

    let (code, out, err) = k.run(&rewrap_args(&url, "1000"));
    assert_eq!((code, out.as_str()), (Some(1), ""), "{err}");
    assert!(
        err.contains("rewrapped 2 of 6 rows in t.v to v2 (v1: 2)"),
        "{err}"
    );
    assert!(err.contains("not tokens, left alone: ids 6"), "{err}");
    let last = err.lines().last().unwrap();
    assert!(
        last.starts_with("error: 1 value(s) in t.v that no usable version opens")
            && last.ends_with("ids 5"),
        "{err}"
    );
    assert_eq!(
        k.open(app.rows()[0].1.as_deref().unwrap()),
        ("v2".into(), "one".into())
    );

    app.exec("DELETE FROM t WHERE id = 5");
    let (code, _, err) = k.run(&rewrap_args(&url, "1000"));
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("rewrapped 0 of 5 rows"), "{err}");
    let (_, out, _) = k.run(&scan);
    assert!(
        out.contains("v1 protects nothing in t.v: it can be retired (secrets-manager retire v1)"),
        "{out}"
    );

    // Usage errors: exit 2, before anything runs.
    for bad in [
        vec!["db", "rewrap", &url, "--table", "t", "--column", "v"],
        vec![
            "db",
            "scan",
            &url,
            "--table",
            "t; DROP TABLE t",
            "--column",
            "v",
        ],
        vec!["db", "scan", &url, "--table", "t", "--column", "v\"--"],
        rewrap_args(&url, "0"),
    ] {
        let (code, out, err) = k.run(&bad);
        assert_eq!((code, out.as_str()), (Some(2), ""), "{bad:?}: {err}");
    }
    let (code, _, err) = k.run(&[
        "db",
        "scan",
        "mysql://u:hunter2@h/db",
        "--table",
        "t",
        "--column",
        "v",
    ]);
    assert_eq!(code, Some(1));
    assert!(
        err.starts_with("error: unsupported database address") && !err.contains("hunter2"),
        "{err}"
    );
}

/// Rewrap runs while the application updates and inserts rows. At the
/// end every row holds the application's latest value or the original
/// plaintext, rewrapped; no application write is lost.
fn beside_an_application(k: &Keyring, url: &str, app: &mut dyn App) {
    let rows = 2000;
    let original = fill(app, k, rows);
    let mut rng = Rng(seed());
    let mut latest: HashMap<i64, String> = HashMap::new();
    let mut child = k
        .cmd(&rewrap_args(url, "20"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut next_id = rows + 1;
    let mut writes = 0;
    while child.try_wait().unwrap().is_none() || writes < 50 {
        writes += 1;
        let plaintext = format!("app write {writes}");
        // Some instances of the application still encrypt under v1.
        let f = if writes % 3 == 0 { &k.v1 } else { &k.v2 };
        let token = f.encrypt(plaintext.as_bytes());
        if writes % 5 == 0 {
            app.put(next_id, Some(&token));
            latest.insert(next_id, plaintext);
            next_id += 1;
        } else {
            let id = 1 + rng.below(rows as u64) as i64;
            app.update(id, &token);
            latest.insert(id, plaintext);
        }
        // A pause between writes, as an application has: a tight loop of
        // commits would starve the rewrap of SQLite's one write lock.
        std::thread::sleep(Duration::from_millis(1));
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    eprintln!("{writes} application writes beside: {err}");

    let check = |app: &mut dyn App| {
        let mut stale = 0;
        for (id, value) in app.rows() {
            let (version, plaintext) = k.open(value.as_deref().unwrap());
            match latest.get(&id) {
                Some(want) => {
                    assert_eq!(&plaintext, want, "row {id}: an application write was lost")
                }
                None => {
                    assert_eq!(plaintext, original[&id].0, "row {id}");
                    assert_eq!(version, "v2", "row {id} was not rewrapped");
                }
            }
            stale += usize::from(version != "v2");
        }
        assert_eq!(
            app.rows().len(),
            original.len() + (next_id - rows - 1) as usize
        );
        stale
    };
    check(app);
    // Application values written under v1 after the rewrap passed them
    // are taken by the next run.
    let (code, _, err) = k.run(&rewrap_args(url, "20"));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(check(app), 0);
}

/// Rewraps killed with SIGKILL at random moments: after each kill every
/// row still opens to its original plaintext; runs again until one
/// finishes; then everything is under v2.
fn killed_and_rerun(k: &Keyring, url: &str, app: &mut dyn App) {
    let original = fill(app, k, 20_000);
    let mut rng = Rng(seed());
    let mut kills = 0;
    let started = Instant::now();
    loop {
        let mut child: Child = k
            .cmd(&rewrap_args(url, "50"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Early and spread: a quiet machine rewraps these rows in tens of
        // milliseconds.
        let deadline = Instant::now() + Duration::from_millis(2 + rng.below(60));
        let finished = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if Instant::now() >= deadline && kills < 6 {
                break None;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        match finished {
            Some(status) => {
                assert!(status.success());
                break;
            }
            None => {
                child.kill().unwrap();
                child.wait().unwrap();
                kills += 1;
                let done = all_original(app, k, &original);
                eprintln!("kill {kills}: {done} of {} rows under v2", original.len());
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "rewrap never finished"
        );
    }
    assert!(kills > 0, "no run was killed");
    assert_eq!(all_original(app, k, &original), original.len());
}

#[test]
fn sqlite_rewrap_beside_an_application() {
    let k = Keyring::new();
    let (path, url) = k.sqlite();
    beside_an_application(&k, &url, &mut SqliteApp::open(&path));
}

#[test]
fn sqlite_rewrap_killed_at_random_moments() {
    let k = Keyring::new();
    let (path, url) = k.sqlite();
    killed_and_rerun(&k, &url, &mut SqliteApp::open(&path));
}

#[test]
fn postgres_rewrap_beside_an_application_and_killed() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let k = Keyring::new();
    let db = cluster.create_db("beside");
    beside_an_application(&k, &cluster.url(&db), &mut PgApp(cluster.client(&db)));
    let db = cluster.create_db("killed");
    killed_and_rerun(&k, &cluster.url(&db), &mut PgApp(cluster.client(&db)));
}
