//! `cargo xtask bench`'s database part: rows per second for `db scan` and
//! `db rewrap` on SQLite (and PostgreSQL when its programs are installed),
//! with the ratio against a Python rewrap measured in the same run; the
//! bench (`crates/db/benches/db.rs`) prints the figures and the targets.

use anyhow::Result;

pub(crate) fn run(quick: bool) -> Result<()> {
    let mut cmd = super::cargo();
    cmd.args(["bench", "-p", "secrets-manager-db", "--bench", "db"]);
    if quick {
        cmd.env("DB_BENCH_ROWS", "100000");
    }
    super::run(cmd)
}
