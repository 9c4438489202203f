//! The `secrets-manager` binary against a real etcd cluster (members on
//! loopback ports in a temporary directory, torn down by the helper): many
//! processes racing, `copy` both ways, the key-encryption key, and a
//! stopped cluster. Skipped with a note where etcd is not installed,
//! except under CI.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use secrets_manager_tests::etcd_cluster::Cluster;

struct Fleet {
    dir: tempfile::TempDir,
}

impl Fleet {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The binary with fast derivations and none of the caller's settings.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = secrets_manager_tests::without_caller_settings(&assert_cmd::cargo::cargo_bin(
            "secrets-manager",
        ));
        c.current_dir(self.dir.path())
            .args(["--iterations", "1000"])
            .args(args);
        c
    }

    fn run(&self, args: &[&str], stdin: &[u8]) -> Output {
        use std::io::Write as _;
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        child.wait_with_output().unwrap()
    }

    fn ok(&self, args: &[&str], stdin: &[u8]) -> Vec<u8> {
        let out = self.run(args, stdin);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// A command that fails with exit 1: one `error:` line, empty stdout.
    fn fails(&self, args: &[&str], stdin: &[u8]) -> String {
        let out = self.run(args, stdin);
        one_error_line(args, &out)
    }

    /// A new key-encryption key in a file.
    fn kek(&self, name: &str) -> PathBuf {
        let key = self.ok(&["keygen"], b"");
        let path = self.path(name);
        std::fs::write(&path, key).unwrap();
        path
    }
}

fn one_error_line(args: &[&str], out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(out.stdout.is_empty(), "{args:?} printed to stdout");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("warning:"))
        .collect();
    assert_eq!(lines.len(), 1, "{args:?}: one error line: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    lines[0].to_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The revision etcd is at: it moves with every write, and only then.
fn revision(cluster: &Cluster) -> u64 {
    let out = cluster.etcdctl(&["get", "--prefix", "/", "--keys-only", "-w", "json"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let at = text.find("\"revision\":").expect("a header revision");
    text[at + 11..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

#[test]
fn twenty_processes_one_name_one_winner_and_twenty_names_all_survive() {
    let Some(cluster) = Cluster::start(3) else {
        return;
    };
    let fleet = Fleet::new();
    let kek = fleet.kek("kek");
    let url = cluster.url("race");
    let base = ["--keyring", &url, "--kek-file", s(&kek)];
    fleet.ok(&[&base[..], &["init"]].concat(), b"");

    let spawn_all = |names: &dyn Fn(usize) -> String| -> Vec<Output> {
        let children: Vec<_> = (0..20)
            .map(|i| {
                fleet
                    .cmd(&[&base[..], &["rotate", "--new-version", &names(i)]].concat())
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect()
    };
    let same = spawn_all(&|_| "same".to_owned());
    let winners = same.iter().filter(|o| o.status.success()).count();
    assert_eq!(winners, 1, "exactly one process adds `same`");
    for out in same.iter().filter(|o| !o.status.success()) {
        let line = one_error_line(&["rotate"], out);
        assert!(line.contains("already exists"), "{line}");
    }

    let distinct = spawn_all(&|i| format!("p{i}"));
    for out in &distinct {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let status = String::from_utf8(fleet.ok(&[&base[..], &["status"]].concat(), b"")).unwrap();
    for i in 0..20 {
        assert!(
            status.contains(&format!("\np{i} ")),
            "p{i} survived:\n{status}"
        );
    }
    assert_eq!(status.lines().count(), 3 + 22, "{status}");
}

#[test]
fn copy_moves_keyrings_both_ways_idempotently_and_the_kek_keeps_secrets_out_of_etcd() {
    let Some(cluster) = Cluster::start(1) else {
        return;
    };
    let fleet = Fleet::new();
    let kek = fleet.kek("kek");
    let file = fleet.path("app.env");
    let file_args = ["--keyring", s(&file)];
    fleet.ok(&[&file_args[..], &["init"]].concat(), b"");
    fleet.ok(
        &[
            &file_args[..],
            &[
                "rotate",
                "--new-version",
                "v2",
                "--password-stdin",
                "--salt",
                "copy-salt-sentinel",
            ],
        ]
        .concat(),
        b"copy-password-sentinel\n",
    );
    fleet.ok(&[&file_args[..], &["retire", "v1"]].concat(), b"");
    let token = fleet.ok(&[&file_args[..], &["encrypt"]].concat(), b"across stores");

    // File to etcd, twice: the second writes nothing.
    let url = cluster.url("copied");
    let etcd = ["--keyring", url.as_str(), "--kek-file", s(&kek)];
    fleet.ok(
        &[
            &file_args[..],
            &["--kek-file", s(&kek), "copy", "--to", &url],
        ]
        .concat(),
        b"",
    );
    let after_first = revision(&cluster);
    fleet.ok(
        &[
            &file_args[..],
            &["--kek-file", s(&kek), "copy", "--to", &url],
        ]
        .concat(),
        b"",
    );
    assert_eq!(
        revision(&cluster),
        after_first,
        "a second copy changes nothing"
    );
    assert_eq!(
        fleet.ok(&[&etcd[..], &["decrypt"]].concat(), &token),
        b"across stores"
    );
    let status = String::from_utf8(fleet.ok(&[&etcd[..], &["status"]].concat(), b"")).unwrap();
    assert!(
        status.contains("active: v2") && status.contains("retired"),
        "{status}"
    );

    // Nothing secret reached etcd.
    let dump = cluster.dump();
    assert!(dump.contains("/copied/versions/v2"), "{dump}");
    let file_text = std::fs::read_to_string(&file).unwrap();
    let v1_password = file_text
        .lines()
        .find_map(|l| l.strip_prefix("ENCRYPTION_KEYS__v1="))
        .unwrap()
        .trim_matches('"');
    for secret in ["copy-password-sentinel", "copy-salt-sentinel", v1_password] {
        assert!(!dump.contains(secret), "etcd holds a secret in the clear");
    }

    // Etcd to a new file, twice: the second leaves it byte for byte.
    let back = fleet.path("back.env");
    fleet.ok(&[&etcd[..], &["copy", "--to", s(&back)]].concat(), b"");
    let first = std::fs::read(&back).unwrap();
    fleet.ok(
        &[&etcd[..], &["copy", "--to", &format!("file:{}", s(&back))]].concat(),
        b"",
    );
    assert_eq!(std::fs::read(&back).unwrap(), first);
    assert_eq!(
        fleet.ok(&["--keyring", s(&back), "decrypt"], &token),
        b"across stores"
    );
    let status = String::from_utf8(fleet.ok(&["--keyring", s(&back), "status"], b"")).unwrap();
    assert!(
        status.contains("active: v2") && status.contains("retired"),
        "{status}"
    );

    // Another keyring with its own v1: a conflict, and nothing written.
    let other = fleet.path("other.env");
    fleet.ok(&["--keyring", s(&other), "init"], b"");
    let before = revision(&cluster);
    let line = fleet.fails(
        &[
            "--keyring",
            s(&other),
            "--kek-file",
            s(&kek),
            "copy",
            "--to",
            &url,
        ],
        b"",
    );
    assert!(
        line.contains("v1") && line.contains("different key material"),
        "{line}"
    );
    assert_eq!(revision(&cluster), before);

    // Without a key-encryption key nothing is written, unless asked.
    let plain_url = cluster.url("plain");
    let line = fleet.fails(
        &[&file_args[..], &["copy", "--to", &plain_url]].concat(),
        b"",
    );
    assert!(line.contains("--allow-plaintext-store"), "{line}");
    assert_eq!(revision(&cluster), before);
    fleet.ok(
        &[
            &file_args[..],
            &["--allow-plaintext-store", "copy", "--to", &plain_url],
        ]
        .concat(),
        b"",
    );
    assert!(
        cluster.dump().contains("copy-password-sentinel"),
        "as asked"
    );
}

#[test]
fn rotate_kek_switches_the_key_while_both_are_accepted() {
    let Some(cluster) = Cluster::start(1) else {
        return;
    };
    let fleet = Fleet::new();
    let old = fleet.kek("old");
    let new = fleet.kek("new");
    let url = cluster.url("kek");
    let with = |kek: &Path| {
        vec![
            "--keyring".to_owned(),
            url.clone(),
            "--kek-file".to_owned(),
            s(kek).to_owned(),
        ]
    };
    let args = |v: &[String], more: &[&str]| -> Vec<String> {
        v.iter()
            .cloned()
            .chain(more.iter().map(|m| (*m).to_owned()))
            .collect()
    };
    let run_ok = |v: Vec<String>, stdin: &[u8]| {
        let refs: Vec<&str> = v.iter().map(String::as_str).collect();
        fleet.ok(&refs, stdin)
    };
    run_ok(args(&with(&old), &["init"]), b"");
    let token = run_ok(args(&with(&old), &["encrypt"]), b"kept");

    // Reading with the new key first and the old one as previous works
    // before the switch and after it.
    let both = args(&with(&new), &["--previous-kek-file", s(&old)]);
    assert_eq!(run_ok(args(&both, &["decrypt"]), &token), b"kept");
    run_ok(
        args(&with(&old), &["rotate-kek", "--new-kek-file", s(&new)]),
        b"",
    );
    assert_eq!(run_ok(args(&both, &["decrypt"]), &token), b"kept");
    assert_eq!(run_ok(args(&with(&new), &["decrypt"]), &token), b"kept");
    let refs: Vec<String> = args(&with(&old), &["decrypt"]);
    let refs: Vec<&str> = refs.iter().map(String::as_str).collect();
    let line = fleet.fails(&refs, &token);
    assert!(line.contains("key-encryption key"), "{line}");
    // Running it again is a no-op.
    run_ok(
        args(&with(&new), &["rotate-kek", "--new-kek-file", s(&new)]),
        b"",
    );
    assert_eq!(run_ok(args(&with(&new), &["decrypt"]), &token), b"kept");
}

#[test]
fn a_stopped_cluster_makes_commands_fail_within_the_timeout() {
    let Some(mut cluster) = Cluster::start(3) else {
        return;
    };
    let fleet = Fleet::new();
    let kek = fleet.kek("kek");
    let url = cluster.url("down");
    let base = [
        "--keyring",
        url.as_str(),
        "--kek-file",
        s(&kek),
        "--timeout",
        "1s",
    ];
    fleet.ok(&[&base[..], &["init"]].concat(), b"");
    let token = fleet.ok(&[&base[..], &["encrypt"]].concat(), b"x");
    cluster.kill_all();
    for command in [
        &["status"][..],
        &["decrypt"],
        &["rotate", "--new-version", "v2"],
    ] {
        let started = Instant::now();
        let out = fleet.run(&[&base[..], command].concat(), &token);
        let took = started.elapsed();
        let line = one_error_line(command, &out);
        assert!(line.contains(&url) && line.contains("1 s"), "{line}");
        assert!(
            took < Duration::from_millis(2500),
            "{command:?} took {took:?}"
        );
    }
    let out = fleet.run(
        &[&base[..4], &["--timeout", "soon", "status"]].concat(),
        b"",
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "a bad duration is a usage error"
    );
}

#[test]
fn tls_and_etcd_user_flags_and_their_variables() {
    let Some(mut cluster) = Cluster::start_tls() else {
        return;
    };
    let fleet = Fleet::new();
    let kek = fleet.kek("kek");
    let tls = cluster.tls().unwrap();
    let (ca, cert, key) = (
        s(&tls.ca).to_owned(),
        s(&tls.client.0).to_owned(),
        s(&tls.client.1).to_owned(),
    );
    cluster.enable_auth("app", "app-password-sentinel", "secure");
    let password = fleet.path("password");
    std::fs::write(&password, "app-password-sentinel\n").unwrap();
    let wrong = fleet.path("wrong");
    std::fs::write(&wrong, "wrong-password-sentinel\n").unwrap();
    let url = cluster.url("secure");
    let flags = |password: &Path| -> Vec<String> {
        [
            "--keyring",
            &url,
            "--kek-file",
            s(&kek),
            "--timeout",
            "2s",
            "--etcd-cacert",
            &ca,
            "--etcd-cert",
            &cert,
            "--etcd-key",
            &key,
            "--etcd-user",
            "app",
            "--etcd-password-file",
            s(password),
        ]
        .iter()
        .map(|a| (*a).to_owned())
        .collect()
    };
    let with = |args: &[String], more: &[&str]| -> Vec<String> {
        args.iter()
            .cloned()
            .chain(more.iter().map(|m| (*m).to_owned()))
            .collect()
    };
    let run = |v: Vec<String>| {
        let v: Vec<&str> = v.iter().map(String::as_str).collect();
        fleet.run(&v, b"")
    };
    let out = run(with(&flags(&password), &["init"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(with(&flags(&password), &["status"]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("active: v1"));

    let line = one_error_line(&["status"], &run(with(&flags(&wrong), &["status"])));
    assert!(line.contains("authentication failed"), "{line}");
    assert!(!line.contains("sentinel"), "{line}");

    // The same settings from the environment.
    let mut c = fleet.cmd(&["--keyring", &url, "status"]);
    c.env("SECRETS_MANAGER_KEK_FILE", &kek)
        .env("SECRETS_MANAGER_ETCD_CACERT", &ca)
        .env("SECRETS_MANAGER_ETCD_CERT", &cert)
        .env("SECRETS_MANAGER_ETCD_KEY", &key)
        .env("SECRETS_MANAGER_ETCD_USER", "app")
        .env("SECRETS_MANAGER_ETCD_PASSWORD", "app-password-sentinel");
    let out = c.output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("active: v1"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A user with no password is a mistake, said at once.
    let line = fleet.fails(&["--keyring", &url, "--etcd-user", "app", "status"], b"");
    assert!(line.contains("needs a password"), "{line}");
}
