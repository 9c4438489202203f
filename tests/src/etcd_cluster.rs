//! A throwaway etcd cluster for tests and benchmarks: `etcd` members on free
//! loopback ports, their data in a temporary directory, killed and removed
//! when the [`Cluster`] is dropped (a failing test's unwinding included).
//!
//! One cluster runs at a time in a process (two cores are shared with
//! everything else); a second [`Cluster::start`] waits for the first to
//! be dropped. Without `etcd` on the `PATH`, `start` returns `None` and the
//! test skips with a note, except under `CI=true`, where it fails.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::in_ci;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The `etcd` and `etcdctl` programs (`$ETCD`, `$ETCDCTL`, else from the
/// `PATH`).
fn program(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

fn etcd() -> String {
    program("ETCD", "etcd")
}

fn etcdctl() -> String {
    program("ETCDCTL", "etcdctl")
}

/// Whether etcd can run here; without it, a note (or, under CI, a panic).
///
/// # Panics
///
/// Under CI, when `etcd` or `etcdctl` cannot be run.
#[must_use]
pub fn etcd_available() -> bool {
    let runs = |p: String, arg: &str| {
        Command::new(p)
            .arg(arg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if runs(etcd(), "--version") && runs(etcdctl(), "version") {
        return true;
    }
    let why = "etcd and etcdctl are not installed (apt-get install etcd-server etcd-client)";
    assert!(!in_ci(), "{why}: CI must run the etcd tests");
    eprintln!("skipping: {why}");
    false
}

struct Member {
    name: String,
    client: u16,
    peer: u16,
    child: Option<Child>,
}

/// A running etcd cluster on 127.0.0.1.
pub struct Cluster {
    dir: tempfile::TempDir,
    members: Vec<Member>,
    _turn: MutexGuard<'static, ()>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("endpoints", &self.endpoints())
            .finish_non_exhaustive()
    }
}

/// `n` ports free right now.
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free loopback port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("a bound address").port())
        .collect()
}

impl Cluster {
    /// Starts `size` members and waits until every one is healthy. `None`
    /// when etcd is not installed (outside CI).
    ///
    /// # Panics
    ///
    /// When the cluster does not come up within 60 s (its logs are
    /// printed).
    #[must_use]
    pub fn start(size: usize) -> Option<Self> {
        if !etcd_available() {
            return None;
        }
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
        let dir = tempfile::Builder::new()
            .prefix("etcd-cluster-")
            .tempdir()
            .expect("a temporary directory");
        let ports = free_ports(size * 2);
        let members = (0..size)
            .map(|i| Member {
                name: format!("m{i}"),
                client: ports[2 * i],
                peer: ports[2 * i + 1],
                child: None,
            })
            .collect();
        let mut cluster = Self {
            dir,
            members,
            _turn: turn,
        };
        for i in 0..size {
            cluster.spawn(i, "new");
        }
        cluster.wait_healthy();
        Some(cluster)
    }

    fn initial_cluster(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn log(&self, i: usize) -> PathBuf {
        self.dir
            .path()
            .join(format!("{}.log", self.members[i].name))
    }

    fn spawn(&mut self, i: usize, state: &str) {
        let initial = self.initial_cluster();
        let token = self
            .dir
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log(i))
            .expect("a log file");
        let err = log.try_clone().expect("a log file");
        let m = &self.members[i];
        let child = Command::new(etcd())
            .arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(self.dir.path().join(&m.name))
            .arg(format!(
                "--listen-client-urls=http://127.0.0.1:{}",
                m.client
            ))
            .arg(format!(
                "--advertise-client-urls=http://127.0.0.1:{}",
                m.client
            ))
            .arg(format!("--listen-peer-urls=http://127.0.0.1:{}", m.peer))
            .arg(format!(
                "--initial-advertise-peer-urls=http://127.0.0.1:{}",
                m.peer
            ))
            .arg(format!("--initial-cluster={initial}"))
            .arg(format!("--initial-cluster-state={state}"))
            .arg(format!("--initial-cluster-token={token}"))
            .arg("--log-level=warn")
            .arg("--logger=zap")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .expect("etcd starts");
        self.members[i].child = Some(child);
    }

    /// `HOST:PORT,...` of every member.
    #[must_use]
    pub fn endpoints(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("127.0.0.1:{}", m.client))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `etcd://<every member>/<prefix>`.
    #[must_use]
    pub fn url(&self, prefix: &str) -> String {
        format!("etcd://{}/{prefix}", self.endpoints())
    }

    /// How many members.
    #[must_use]
    pub fn size(&self) -> usize {
        self.members.len()
    }

    /// Kills member `i` (SIGKILL: no goodbye to its peers).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills every member.
    pub fn kill_all(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }

    /// Starts member `i` again on its data, and waits until the running
    /// members are healthy.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i, "existing");
        self.wait_healthy();
    }

    /// Starts every stopped member again and waits for them.
    pub fn restart_all(&mut self) {
        for i in 0..self.members.len() {
            if self.members[i].child.is_none() {
                self.spawn(i, "existing");
            }
        }
        self.wait_healthy();
    }

    /// Whether a member's `/health` says so.
    fn healthy(port: u16) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        if stream
            .write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response.contains("\"health\":\"true\"")
    }

    /// Waits until every running member is healthy (it has a leader).
    ///
    /// # Panics
    ///
    /// After 60 s, with the members' logs.
    pub fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let running: Vec<&Member> = self.members.iter().filter(|m| m.child.is_some()).collect();
            if running.iter().all(|m| Self::healthy(m.client)) {
                return;
            }
            if Instant::now() > deadline {
                let logs: String = (0..self.members.len())
                    .map(|i| std::fs::read_to_string(self.log(i)).unwrap_or_default())
                    .collect();
                panic!("the etcd cluster did not become healthy within 60 s:\n{logs}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs `etcdctl` against the cluster (its running members).
    ///
    /// # Panics
    ///
    /// When `etcdctl` cannot be started.
    #[must_use]
    pub fn etcdctl(&self, args: &[&str]) -> Output {
        let endpoints: Vec<String> = self
            .members
            .iter()
            .filter(|m| m.child.is_some())
            .map(|m| format!("127.0.0.1:{}", m.client))
            .collect();
        Command::new(etcdctl())
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", endpoints.join(",")))
            .args(args)
            .output()
            .expect("etcdctl runs")
    }

    /// Everything the cluster holds, as `etcdctl get --prefix ""` prints it.
    ///
    /// # Panics
    ///
    /// When `etcdctl` fails.
    #[must_use]
    pub fn dump(&self) -> String {
        let out = self.etcdctl(&["get", "--prefix", ""]);
        assert!(
            out.status.success(),
            "etcdctl get failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The directory the members keep their data and logs in.
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill_all();
    }
}
