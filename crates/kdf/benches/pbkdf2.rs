//! PBKDF2-HMAC-SHA256, 100 000 iterations, 32 bytes: ours against the
//! RustCrypto `pbkdf2` crate, measured in the same run (`cargo xtask bench`
//! prints the ratio).

#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use secrets_manager_kdf::{DEFAULT_ITERATIONS, Salt, derive_key};

fn pbkdf2(c: &mut Criterion) {
    let salt = Salt::from("random-salt-value");
    let mut g = c.benchmark_group("pbkdf2-100k");
    g.sample_size(20);
    g.bench_function("ours", |b| {
        b.iter(|| derive_key(black_box(b"my-secret-password"), &salt, DEFAULT_ITERATIONS))
    });
    g.bench_function("pbkdf2-crate", |b| {
        b.iter(|| {
            let mut out = [0u8; 32];
            pbkdf2::pbkdf2_hmac::<sha2::Sha256>(
                black_box(b"my-secret-password"),
                salt.as_bytes(),
                DEFAULT_ITERATIONS.get(),
                &mut out,
            );
            out
        });
    });
    g.finish();
}

criterion_group!(benches, pbkdf2);
criterion_main!(benches);
