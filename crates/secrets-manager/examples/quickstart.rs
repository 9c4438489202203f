//! The main job in a minute: `cargo run --release --example quickstart -p secrets-manager`.
//!
//! Derives a key from a password, encrypts, rotates to a new version,
//! and shows that old tokens still decrypt while new ones use the new key.

use std::process::ExitCode;

use secrets_manager::{Error, SecretsConfig, SecretsManager};

fn run() -> Result<(), Error> {
    let config = SecretsConfig::builder()
        .key("v1", "my-secret-password", "random-salt-value") // version, password, salt
        .active_version("v1")
        .audit_callback(|event| println!("  audit: {event}"))
        .build()?;
    println!("config: {config:?}");
    let manager = SecretsManager::new(config)?;

    let (version, token) = manager.encrypt(b"database-password=hunter2")?;
    println!("encrypted under {version}: {token}");

    let new_version = manager
        .rotate_to_new_version("v2", "a-new-password")
        .apply()?;
    println!("rotated: {new_version} is now active");

    let (version, plaintext) = manager.decrypt(&token)?;
    println!(
        "old token still decrypts under {version}: {}",
        String::from_utf8_lossy(&plaintext)
    );

    let (version, fresh) = manager.rotate_token(&token)?;
    println!("re-encrypted under {version}, original timestamp kept: {fresh}");

    let stats = manager.statistics();
    println!(
        "statistics: {} encryptions, {} decryptions, {} rotations, {} key derivations",
        stats.encryptions, stats.decryptions, stats.rotations, stats.cache_misses
    );
    manager.cleanup();
    if let Err(e) = manager.encrypt(b"x") {
        println!("after cleanup: {e}");
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
