//! Rows per second for `scan` and `rewrap` on a one-million-row SQLite
//! table (and a PostgreSQL one when the server's programs are installed),
//! against a peer measured in the same run: the same rewrap as a Python
//! application author would write it (`rewrap_baseline.py`: the
//! `cryptography` package and `sqlite3`, one UPDATE per row).
//!
//! The keyring holds raw Fernet keys, so no PBKDF2 derivation is measured:
//! with password versions each run would add one derivation per version
//! (about 14 ms at 100 000 iterations), the same for both sides.
//!
//! `DB_BENCH_ROWS` sets the table size (default 1 000 000; `cargo xtask
//! bench --quick` uses 100 000).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(missing_docs)]

#[path = "../tests/it/pg_cluster.rs"]
mod pg_cluster;

use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use secrets_manager::fernet::{Fernet, Key};
use secrets_manager::{SecretsConfig, SecretsManager};
use secrets_manager_db::{Column, Database, RewrapOptions, rewrap, scan};

/// Targets, from the issue: rewrap at least 20x the Python baseline on
/// SQLite; scan at least 300 000 rows/s there.
const REWRAP_RATIO_TARGET: f64 = 20.0;
const SCAN_TARGET: f64 = 300_000.0;

/// As a keyring rotated by the CLI records them: the tokens were made
/// while v1 was active (so the trial order tries v1 first for them).
const V1_ACTIVATED: u64 = 1_600_000_000;
const V2_ACTIVATED: u64 = 1_700_000_000;

fn sqlite_table(path: &Path, rows: u64, old: &Fernet) {
    let mut conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, secret TEXT)")
        .unwrap();
    let tx = conn.transaction().unwrap();
    {
        let mut stmt = tx
            .prepare("INSERT INTO t (id, secret) VALUES (?1, ?2)")
            .unwrap();
        for id in 1..=rows {
            let plaintext = format!("secret value {id:>19}"); // 32 bytes
            let token = old.encrypt_at_time(plaintext.as_bytes(), V1_ACTIVATED + id);
            stmt.execute(rusqlite::params![id as i64, token]).unwrap();
        }
    }
    tx.commit().unwrap();
}

fn rate(rows: u64, secs: f64) -> f64 {
    rows as f64 / secs
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

fn measure(manager: &SecretsManager, url: &str, rows: u64) -> (f64, f64) {
    let column = Column::new("t", "secret")
        .unwrap()
        .key_column("id")
        .unwrap();
    let mut db = Database::open(url).unwrap();
    let started = Instant::now();
    let census = scan(manager, &mut db, &column, &()).unwrap();
    let scan_secs = started.elapsed().as_secs_f64();
    assert_eq!(census.versions[0].values, rows);
    let started = Instant::now();
    let report = rewrap(manager, &mut db, &column, RewrapOptions::default(), &()).unwrap();
    let rewrap_secs = started.elapsed().as_secs_f64();
    assert_eq!(report.rewrapped, rows);
    (rate(rows, scan_secs), rate(rows, rewrap_secs))
}

/// Rewrap rows/s with `--batch 10000` (fewer, larger transactions).
fn rewrap_large_batches(manager: &SecretsManager, url: &str, rows: u64) -> f64 {
    let column = Column::new("t", "secret")
        .unwrap()
        .key_column("id")
        .unwrap();
    let mut db = Database::open(url).unwrap();
    let started = Instant::now();
    let options = RewrapOptions::default().batch(10_000);
    let report = rewrap(manager, &mut db, &column, options, &()).unwrap();
    assert_eq!(report.rewrapped, rows);
    rate(rows, started.elapsed().as_secs_f64())
}

fn python_baseline(path: &Path, new: &Key, old: &Key) -> Option<f64> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/rewrap_baseline.py");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let out = Command::new(&python)
        .arg(script)
        .arg(path)
        .arg(new.to_base64().as_str())
        .arg(old.to_base64().as_str())
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "python baseline failed (pip install cryptography): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text.split_whitespace();
    let secs: f64 = parts.next()?.parse().ok()?;
    let rows: u64 = parts.next()?.parse().ok()?;
    Some(rate(rows, secs))
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken.
    let rows: u64 = std::env::var("DB_BENCH_ROWS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1_000_000);
    let (k1, k2) = (Key::generate(), Key::generate());
    let manager = SecretsManager::new(
        SecretsConfig::builder()
            .fernet_key("v1", k1.to_base64().as_str())
            .activated_at("v1", V1_ACTIVATED)
            .fernet_key("v2", k2.to_base64().as_str())
            .activated_at("v2", V2_ACTIVATED)
            .active_version("v2")
            .build()
            .unwrap(),
    )
    .unwrap();
    let old = Fernet::new(&k1);
    println!(
        "db: {rows} rows of 32-byte secrets under v1, rewrapped to v2 (raw Fernet keys: no key derivation)"
    );

    // Memory-backed storage, so both sides measure their own work rather
    // than the disk's fsync latency: each 1000-row transaction commits the
    // same way for both, and on a slow disk that commit is most of the
    // time. `DB_BENCH_DIR` chooses another place.
    let place = std::env::var_os("DB_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .or_else(|| Some(Path::new("/dev/shm").to_owned()).filter(|p| p.is_dir()))
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(&place).unwrap();
    println!("  tables in {}", place.display());
    let ours = dir.path().join("ours.db");
    sqlite_table(&ours, rows, &old);
    let theirs = dir.path().join("python.db");
    std::fs::copy(&ours, &theirs).unwrap();
    let large = dir.path().join("large-batches.db");
    std::fs::copy(&ours, &large).unwrap();

    let (scan_rate, rewrap_rate) = measure(&manager, &format!("sqlite:{}", ours.display()), rows);
    let large_rate = rewrap_large_batches(&manager, &format!("sqlite:{}", large.display()), rows);
    let python = python_baseline(&theirs, &k2, &k1);
    println!("  sqlite scan     {scan_rate:>12.0} rows/s");
    println!("  sqlite rewrap   {rewrap_rate:>12.0} rows/s  (--batch 1000, the default)");
    println!("  sqlite rewrap   {large_rate:>12.0} rows/s  (--batch 10000)");
    match python {
        Some(p) => println!(
            "  python rewrap   {p:>12.0} rows/s  (cryptography + sqlite3, one UPDATE per row, a commit every 1000)\n  \
             rewrap / python {:>11.1}x",
            rewrap_rate / p
        ),
        None => println!("  python rewrap   (not measured)"),
    }

    if let Some(cluster) = pg_cluster::Cluster::start() {
        let db = cluster.create_db("bench");
        let mut client = cluster.client(&db);
        client
            .batch_execute("CREATE TABLE t (id BIGINT PRIMARY KEY, secret TEXT)")
            .unwrap();
        let mut copy = client.copy_in("COPY t (id, secret) FROM STDIN").unwrap();
        for id in 1..=rows {
            let plaintext = format!("secret value {id:>19}");
            let token = old.encrypt_at_time(plaintext.as_bytes(), V1_ACTIVATED + id);
            writeln!(copy, "{id}\t{token}").unwrap();
        }
        copy.finish().unwrap();
        client.batch_execute("ANALYZE t").unwrap();
        let (pg_scan, pg_rewrap) = measure(&manager, &cluster.url(&db), rows);
        println!("  postgres scan   {pg_scan:>12.0} rows/s  (throwaway cluster, fsync off)");
        println!("  postgres rewrap {pg_rewrap:>12.0} rows/s");
    }

    println!("targets:");
    println!(
        "  [{}] scan on SQLite at least {SCAN_TARGET:.0} rows/s: {scan_rate:.0}",
        met(scan_rate >= SCAN_TARGET)
    );
    if let Some(p) = python {
        let ratio = rewrap_rate / p;
        println!(
            "  [{}] rewrap on SQLite at least {REWRAP_RATIO_TARGET:.0}x the Python baseline: {ratio:.1}x \
             (with --batch 10000: {:.1}x)",
            met(ratio >= REWRAP_RATIO_TARGET),
            large_rate / p
        );
    }
}
