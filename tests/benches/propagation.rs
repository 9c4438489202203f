//! Propagation latency: from a rotation's commit until every one of 50
//! watching managers uses the new version, for a `.env` keyring file and
//! for a 3-member etcd cluster on loopback. Run by `cargo xtask bench`
//! (`-- --quick` for fewer rotations).
//!
//! Each manager has its own store (for etcd: its own client, connection,
//! runtime and watch), as 50 processes would. A rotation's clock starts
//! before the writer's `apply` (so it includes the commit itself) and stops,
//! for each manager, in its audit callback for the activation, which runs
//! once the new version is the one it encrypts with. Rotations use raw
//! Fernet keys, so no manager spends time in PBKDF2: what is measured is
//! the store and the watch.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Percentile ranks and latencies: casts that lose nothing here.
#![allow(clippy::cast_possible_truncation)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use secrets_manager::etcd::{EtcdOptions, EtcdStore, Kek};
use secrets_manager::fernet::Key;
use secrets_manager::persist::{FileStore, KeyringStore, Prefixes};
use secrets_manager::{AuditEvent, SecretsConfig, SecretsManager};
use secrets_manager_tests::etcd_cluster::Cluster;

const MANAGERS: usize = 50;

/// When each manager began using each version.
type Seen = Arc<Mutex<HashMap<String, Vec<Instant>>>>;

fn manager(store: Arc<dyn KeyringStore>, seen: Option<&Seen>) -> SecretsManager {
    let mut builder = SecretsConfig::builder().kdf_iterations(1_000);
    if let Some(seen) = seen {
        let seen = Arc::clone(seen);
        builder = builder.audit_callback(move |e: &AuditEvent| {
            if e.name() == "activation"
                && let Some(v) = e.version()
            {
                let now = Instant::now();
                seen.lock()
                    .unwrap()
                    .entry(v.to_string())
                    .or_default()
                    .push(now);
            }
        });
    }
    SecretsManager::new(
        builder
            .keyring_store(store, &Prefixes::default())
            .unwrap()
            .build()
            .unwrap(),
    )
    .unwrap()
}

struct Samples {
    /// Per rotation: until the last manager used it.
    all: Vec<Duration>,
    /// Per rotation and manager.
    each: Vec<Duration>,
}

fn measure(open: &dyn Fn() -> Arc<dyn KeyringStore>, rounds: usize) -> Samples {
    let seen: Seen = Arc::default();
    let writer = manager(open(), None);
    let watchers: Vec<SecretsManager> = (0..MANAGERS)
        .map(|_| manager(open(), Some(&seen)))
        .collect();
    let _watches: Vec<_> = watchers.iter().map(|m| m.watch().unwrap()).collect();
    // Let every watch settle (its first catch-up read).
    std::thread::sleep(Duration::from_millis(500));
    let mut samples = Samples {
        all: Vec::new(),
        each: Vec::new(),
    };
    for round in 0..rounds {
        let name = format!("r{round}");
        let key = Key::generate().to_base64();
        let started = Instant::now();
        writer
            .rotate_to_fernet_key(&name, &key)
            .unwrap()
            .apply()
            .unwrap();
        let deadline = started + Duration::from_secs(30);
        let times = loop {
            let times = seen.lock().unwrap().get(&name).cloned().unwrap_or_default();
            if times.len() >= MANAGERS {
                break times;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: only {} of {MANAGERS} managers within 30 s",
                times.len()
            );
            std::thread::sleep(Duration::from_micros(500));
        };
        let latencies: Vec<Duration> = times.iter().map(|t| t.duration_since(started)).collect();
        samples
            .all
            .push(latencies.iter().copied().max().unwrap_or_default());
        samples.each.extend(latencies);
        for w in &watchers {
            assert_eq!(w.active_version(), name.as_str());
        }
        // Rotations a little apart, as in life.
        std::thread::sleep(Duration::from_millis(20));
    }
    samples
}

fn percentile(values: &[Duration], p: f64) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn report(label: &str, samples: &Samples, target: Duration) -> bool {
    let p99 = percentile(&samples.all, 99.0);
    let met = p99 < target;
    println!(
        "{label:<22} {:>10} {:>10} {:>12} {:>10}   p99 < {:<8} [{}]",
        ms(percentile(&samples.all, 50.0)),
        ms(p99),
        ms(percentile(&samples.each, 50.0)),
        ms(percentile(&samples.each, 99.0)),
        ms(target),
        if met { "met" } else { "MISSED" }
    );
    met
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let rounds = if quick { 30 } else { 100 };

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".env.secrets");
    SecretsManager::new(
        SecretsConfig::builder()
            .fernet_key("r-init", &Key::generate().to_base64())
            .build()
            .unwrap(),
    )
    .unwrap()
    .create_keyring_file(&path)
    .unwrap();
    let file_path = path.clone();
    let file = measure(&|| Arc::new(FileStore::new(&file_path)), rounds);

    let Some(cluster) = Cluster::start(3) else {
        println!("etcd is not installed: only the file keyring was measured");
        report("file", &file, Duration::from_secs(1));
        return;
    };
    let kek = Kek::generate();
    let url = cluster.url("bench");
    let open_etcd = || -> Arc<dyn KeyringStore> {
        Arc::new(EtcdStore::open(&url, EtcdOptions::new().kek(kek.clone())).unwrap())
    };
    SecretsManager::new(
        SecretsConfig::builder()
            .fernet_key("r-init", &Key::generate().to_base64())
            .build()
            .unwrap(),
    )
    .unwrap()
    .create_keyring(open_etcd().as_ref())
    .unwrap();
    let etcd = measure(&open_etcd, rounds);

    println!(
        "\npropagation: a rotation's commit until all {MANAGERS} watching managers use it \
         ({rounds} rotations each)"
    );
    println!(
        "{:<22} {:>10} {:>10} {:>12} {:>10}",
        "keyring", "all: p50", "all: p99", "each: p50", "each: p99"
    );
    let file_met = report("file (inotify)", &file, Duration::from_secs(1));
    let etcd_met = report("etcd (3 members)", &etcd, Duration::from_millis(100));
    if !(file_met && etcd_met) {
        println!("a target was missed in this run (noisy machines: rerun before concluding)");
    }
}
