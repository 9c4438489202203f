//! A short tour of the codec: `cargo run --example demo -p secrets-manager-fernet`.
//!
//! With arguments `encrypt KEY` or `decrypt KEY`, it reads stdin and writes
//! stdout instead, so it can sit in a pipeline next to Python's `cryptography`.

use std::io::{Read as _, Write as _};
use std::process::ExitCode;
use std::time::Duration;

use secrets_manager_fernet::{Fernet, Key, MultiFernet};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => tour(),
        [cmd, key] if cmd == "encrypt" || cmd == "decrypt" => pipe(cmd, key),
        _ => {
            eprintln!("usage: demo [encrypt KEY | decrypt KEY]  (stdin -> stdout)");
            ExitCode::from(2)
        }
    }
}

fn tour() -> ExitCode {
    let old_key = Key::generate();
    let f = Fernet::new(&old_key);
    println!("key (keep it secret):  {}", old_key.to_base64().as_str());

    let token = f.encrypt(b"the launch code is 0000");
    println!("token:                 {token}");
    match f.decrypt_with_ttl(&token, Duration::from_secs(60)) {
        Ok(msg) => println!("decrypted (ttl 60 s):  {}", String::from_utf8_lossy(&msg)),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }

    let mut tampered = token.clone().into_bytes();
    tampered[60] = if tampered[60] == b'A' { b'B' } else { b'A' };
    println!(
        "one character changed: {:?}",
        f.decrypt(&tampered).map(|_| ())
    );

    let new_key = Key::generate();
    let Ok(multi) = MultiFernet::new(vec![Fernet::new(&new_key), f]) else {
        return ExitCode::FAILURE;
    };
    match multi.rotate(&token) {
        Ok(rotated) => {
            let same = Fernet::new(&new_key).decrypt(&rotated).is_ok();
            println!(
                "rotated to a new key:  {rotated}\n  decrypts under the new key alone: {same}"
            );
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

fn pipe(cmd: &str, key: &str) -> ExitCode {
    let key = match Key::from_base64(key) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let f = Fernet::new(&key);
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut input) {
        eprintln!("error: reading stdin: {e}");
        return ExitCode::FAILURE;
    }
    let out = if cmd == "encrypt" {
        let mut t = f.encrypt(&input).into_bytes();
        t.push(b'\n');
        t
    } else {
        match f.decrypt(input.trim_ascii()) {
            Ok(msg) => msg.to_vec(),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    };
    if let Err(e) = std::io::stdout().write_all(&out) {
        eprintln!("error: writing stdout: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
