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

/// Certificates for a TLS cluster, made with `openssl`: a CA, the server's
/// (for 127.0.0.1) and a client's, each key beside its certificate.
#[derive(Debug)]
#[allow(clippy::exhaustive_structs)] // test support, read field by field by the tests
pub struct Tls {
    /// The CA certificate (PEM).
    pub ca: PathBuf,
    /// The server certificate and key.
    pub server: (PathBuf, PathBuf),
    /// A client certificate and key the cluster accepts.
    pub client: (PathBuf, PathBuf),
}

impl Tls {
    /// Makes the certificates in `dir`. `None` without `openssl` (outside
    /// CI).
    ///
    /// # Panics
    ///
    /// When `openssl` fails, or is missing under CI.
    #[must_use]
    pub fn generate(dir: &Path) -> Option<Self> {
        let openssl = |args: &[&str]| {
            Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .stdin(Stdio::null())
                .output()
        };
        if openssl(&["version"]).is_err() {
            assert!(
                !in_ci(),
                "openssl is not installed: CI must run the TLS tests"
            );
            eprintln!("skipping: openssl is not installed");
            return None;
        }
        std::fs::write(dir.join("server.ext"), "subjectAltName=IP:127.0.0.1\n").expect("a file");
        std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").expect("a file");
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let steps: Vec<Vec<&str>> = vec![
            [
                &["req", "-x509"][..],
                &ec,
                &[
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.pem",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=secrets-manager test CA",
                ],
            ]
            .concat(),
            [
                &["req"][..],
                &ec,
                &[
                    "-keyout",
                    "server.key",
                    "-out",
                    "server.csr",
                    "-subj",
                    "/CN=127.0.0.1",
                ],
            ]
            .concat(),
            vec![
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
            [
                &["req"][..],
                &ec,
                &[
                    "-keyout",
                    "client.key",
                    "-out",
                    "client.csr",
                    "-subj",
                    "/CN=client",
                ],
            ]
            .concat(),
            vec![
                "x509",
                "-req",
                "-in",
                "client.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "client.pem",
                "-days",
                "2",
                "-extfile",
                "client.ext",
            ],
        ];
        for step in steps {
            let out = openssl(&step).expect("openssl runs");
            assert!(
                out.status.success(),
                "openssl {step:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Some(Self {
            ca: dir.join("ca.pem"),
            server: (dir.join("server.pem"), dir.join("server.key")),
            client: (dir.join("client.pem"), dir.join("client.key")),
        })
    }
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
    /// Client connections over TLS, with client certificates required.
    tls: Option<Tls>,
    /// `etcdctl --user` once authentication is on.
    root: Option<String>,
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
        Self::start_with(size, false)
    }

    /// One member serving clients over TLS only, with client certificates
    /// required (see [`tls`](Self::tls)). `None` without etcd or openssl
    /// (outside CI).
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start).
    #[must_use]
    pub fn start_tls() -> Option<Self> {
        Self::start_with(1, true)
    }

    fn start_with(size: usize, tls: bool) -> Option<Self> {
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
        let tls = if tls {
            let certs = dir.path().join("certs");
            std::fs::create_dir(&certs).expect("a directory");
            Some(Tls::generate(&certs)?)
        } else {
            None
        };
        let mut cluster = Self {
            dir,
            members,
            tls,
            root: None,
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
        let mut command = Command::new(etcd());
        let scheme = match &self.tls {
            Some(tls) => {
                command
                    .arg("--client-cert-auth")
                    .arg("--trusted-ca-file")
                    .arg(&tls.ca)
                    .arg("--cert-file")
                    .arg(&tls.server.0)
                    .arg("--key-file")
                    .arg(&tls.server.1);
                "https"
            }
            None => "http",
        };
        let child = command
            .arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(self.dir.path().join(&m.name))
            .arg(format!(
                "--listen-client-urls={scheme}://127.0.0.1:{}",
                m.client
            ))
            .arg(format!(
                "--advertise-client-urls={scheme}://127.0.0.1:{}",
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

    /// Whether a member's `/health` says so (for TLS members, whether
    /// `etcdctl endpoint health` does).
    fn healthy(&self, port: u16) -> bool {
        if self.tls.is_some() {
            let endpoint = format!("--endpoints=127.0.0.1:{port}");
            return self
                .etcdctl_raw(&[&endpoint, "endpoint", "health"])
                .status
                .success();
        }
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
            if running.iter().all(|m| self.healthy(m.client)) {
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
        let endpoints = format!("--endpoints={}", endpoints.join(","));
        let mut all = vec![endpoints.as_str()];
        all.extend_from_slice(args);
        self.etcdctl_raw(&all)
    }

    /// `etcdctl` with the cluster's certificates and root user, if any.
    fn etcdctl_raw(&self, args: &[&str]) -> Output {
        let mut command = Command::new(etcdctl());
        command.env("ETCDCTL_API", "3");
        if let Some(tls) = &self.tls {
            command
                .arg(format!("--cacert={}", tls.ca.display()))
                .arg(format!("--cert={}", tls.client.0.display()))
                .arg(format!("--key={}", tls.client.1.display()));
        }
        if let Some(root) = &self.root {
            command.arg(format!("--user={root}"));
        }
        command.args(args).output().expect("etcdctl runs")
    }

    /// The certificates of a TLS cluster.
    #[must_use]
    pub fn tls(&self) -> Option<&Tls> {
        self.tls.as_ref()
    }

    /// Turns on etcd's authentication: a root user, and `user` with
    /// `password` allowed to read and write under `/<prefix>/` only.
    ///
    /// # Panics
    ///
    /// When `etcdctl` fails.
    pub fn enable_auth(&mut self, user: &str, password: &str, prefix: &str) {
        let range = format!("/{prefix}/");
        let root = format!("root:{}", crate::to_hex(&[0x5a; 12]));
        let user_pw = format!("{user}:{password}");
        for args in [
            vec!["user", "add", root.as_str()],
            vec!["user", "grant-role", "root", "root"],
            vec!["role", "add", "keyring"],
            vec![
                "role",
                "grant-permission",
                "keyring",
                "--prefix=true",
                "readwrite",
                range.as_str(),
            ],
            vec!["user", "add", user_pw.as_str()],
            vec!["user", "grant-role", user, "keyring"],
            vec!["auth", "enable"],
        ] {
            let out = self.etcdctl(&args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            // etcd 3.4 gives the root user its role itself.
            let harmless = stderr.contains("already granted") || stderr.contains("already exists");
            assert!(
                out.status.success() || harmless,
                "etcdctl {args:?}: {stderr}"
            );
        }
        self.root = Some(root);
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
