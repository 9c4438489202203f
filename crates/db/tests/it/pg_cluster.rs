//! A throwaway PostgreSQL cluster for tests: `initdb` in a temporary
//! directory, the server listening only on a Unix socket in that
//! directory (no TCP port at all), stopped and removed when dropped.
//!
//! Run as root (as CI is), the server runs as the unprivileged `postgres`
//! user, which owns the directory. The binaries are found in `$PG_BIN`,
//! the newest `/usr/lib/postgresql/*/bin`, or `pg_config --bindir`.
//! Without them the tests are skipped with a note, except under `CI=true`,
//! where that is a failure.

#![allow(dead_code)] // Each test binary that includes this uses a part.

use std::os::unix::fs::MetadataExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The socket's port number (only its file name: nothing listens on TCP).
const PORT: u16 = 5432;

pub(crate) struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    /// Uid and gid to run the server as (root's tests run it as postgres).
    user: Option<(u32, u32)>,
    server: Option<Child>,
    // Last: removed after the server has stopped.
    dir: tempfile::TempDir,
}

fn find_bin() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    if let Some((_, bin)) = found.pop() {
        return Some(bin);
    }
    let out = Command::new("pg_config").arg("--bindir").output().ok()?;
    let bin = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    bin.join("initdb").is_file().then_some(bin)
}

/// The `postgres` account's uid and gid, from `/etc/passwd`.
fn postgres_user() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.first() == Some(&"postgres") && fields.len() > 3)
            .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
            .flatten()
    })
}

fn skip_or_fail(why: &str) -> Option<Cluster> {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("PostgreSQL tests cannot run under CI=true: {why}");
    }
    eprintln!("note: PostgreSQL tests skipped: {why}");
    None
}

impl Cluster {
    /// Starts a cluster, or returns `None` (with a note) when PostgreSQL is
    /// not installed outside CI.
    pub(crate) fn start() -> Option<Self> {
        let Some(bin) = find_bin() else {
            return skip_or_fail(
                "no PostgreSQL server binaries (install postgresql, or set PG_BIN)",
            );
        };
        let root = std::fs::metadata("/proc/self").map_or(1, |m| m.uid()) == 0;
        let user = if root {
            match postgres_user() {
                Some(u) => Some(u),
                None => {
                    return skip_or_fail(
                        "running as root, and no postgres user to run the server as",
                    );
                }
            }
        } else {
            None
        };
        let dir = tempfile::Builder::new()
            .prefix("pg-test-")
            .tempdir()
            .expect("temporary directory");
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown");
        }
        let data = dir.path().join("data");
        let mut cluster = Self {
            bin,
            data,
            user,
            server: None,
            dir,
        };
        let mut initdb = cluster.command("initdb");
        initdb.arg("-D").arg(&cluster.data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-N",
            "-E",
            "UTF8",
            "--locale=C",
        ]);
        cluster.run(initdb);
        let log = std::fs::File::create(cluster.dir.path().join("server.log")).expect("log");
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(cluster.dir.path().join("server.log"), Some(uid), Some(gid))
                .expect("chown");
        }
        let mut server = cluster.command("postgres");
        server
            .arg("-D")
            .arg(&cluster.data)
            .arg("-k")
            .arg(cluster.dir.path())
            .args(["-p", &PORT.to_string(), "-c", "listen_addresses="])
            // A throwaway: durability is not what is tested.
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=40"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        cluster.server = Some(server.spawn().expect("start postgres"));
        cluster.wait_ready();
        Some(cluster)
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(program));
        cmd.current_dir(self.dir.path());
        if let Some((uid, gid)) = self.user {
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    fn run(&self, mut cmd: Command) {
        let out = cmd.output().expect("run a PostgreSQL program");
        assert!(
            out.status.success(),
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn wait_ready(&mut self) {
        let started = Instant::now();
        loop {
            if postgres::Client::connect(&self.conninfo("postgres"), postgres::NoTls).is_ok() {
                return;
            }
            if let Some(status) = self
                .server
                .as_mut()
                .and_then(|s| s.try_wait().ok().flatten())
            {
                panic!("postgres exited ({status}): {}", self.log());
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "postgres did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// The socket directory.
    pub(crate) fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Key-value connection settings for `db`, for the test's own client.
    pub(crate) fn conninfo(&self, db: &str) -> String {
        format!(
            "host={} port={PORT} user=postgres dbname={db}",
            self.dir.path().display()
        )
    }

    /// A `postgres://` address of `db`, as users give it.
    pub(crate) fn url(&self, db: &str) -> String {
        let host: String = self
            .dir
            .path()
            .display()
            .to_string()
            .bytes()
            .map(|b| match b {
                b'/' => "%2F".to_owned(),
                _ => (b as char).to_string(),
            })
            .collect();
        format!("postgres://postgres@{host}:{PORT}/{db}")
    }

    /// A fresh database; returns its name.
    pub(crate) fn create_db(&self, name: &str) -> String {
        let mut client = self.client("postgres");
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create database");
        name.to_owned()
    }

    pub(crate) fn client(&self, db: &str) -> postgres::Client {
        postgres::Client::connect(&self.conninfo(db), postgres::NoTls).expect("connect")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let mut stop = self.command("pg_ctl");
        stop.arg("-D")
            .arg(&self.data)
            .args(["stop", "-m", "immediate", "-w"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let stopped = stop.status().is_ok_and(|s| s.success());
        if let Some(mut server) = self.server.take() {
            if !stopped {
                let _ = server.kill();
            }
            let _ = server.wait();
        }
    }
}
