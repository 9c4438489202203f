//! The native half of the Python package `secrets_manager`: the Python
//! SecretsManager's API on this workspace's Rust core.
//!
//! Python imports it as `secrets_manager._native`; the public classes are
//! thin Python classes (`python/secrets_manager/`) over it. Every key,
//! derivation, token, cache and file goes through the facade crate
//! `secrets-manager` here; the Python side keeps the configuration object
//! and the original's exceptions, messages and audit callbacks.
//!
//! - `core`: `Core`, a facade `SecretsManager` kept in step with a
//!   mutable Python configuration;
//! - `files`: reading and writing `.env` keyring files;
//! - `token`: `Fernet`, one version's key (`get_fernet`);
//! - `errors`: the Python exceptions and the original's messages.

// PyO3's macros expand to FFI glue that uses `unsafe`; this crate writes
// none itself.
#![allow(unsafe_code)]

mod core;
mod errors;
mod files;
mod token;

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use secrets_manager::kdf::Salt;

/// A salt string as the Python package normalises it (hex, then URL-safe
/// base64, then UTF-8), as bytes.
#[pyfunction]
fn normalise_salt<'py>(py: Python<'py>, text: &str) -> Bound<'py, PyBytes> {
    PyBytes::new(py, Salt::from_text(text).as_bytes())
}

/// Lower-case hex SHA-256 of a salt: its `salt_hash`.
#[pyfunction]
fn salt_hash(salt: &[u8]) -> String {
    Salt::from_bytes(salt).sha256_hex()
}

/// Whether `expected` is the salt's SHA-256 (hex, either case), compared in
/// constant time.
#[pyfunction]
fn salt_matches(salt: &[u8], expected: &str) -> bool {
    Salt::from_bytes(salt).matches_hash(expected)
}

/// PBKDF2-HMAC-SHA256 of a password to a 32-byte Fernet key, the GIL
/// released (used by the benchmark and by `KeyConfiguration` users).
#[pyfunction]
fn derive_key<'py>(
    py: Python<'py>,
    password: &[u8],
    salt: &[u8],
    kdf_iterations: i64,
) -> PyResult<Bound<'py, PyBytes>> {
    let n = core::iterations(kdf_iterations)?;
    let salt = Salt::from_bytes(salt);
    let key = py.detach(|| secrets_manager::kdf::derive_key(password, &salt, n));
    Ok(PyBytes::new(py, &key[..]))
}

/// Whether a version name is one the Rust core accepts (1 to 31 ASCII
/// letters, digits, `_`, `-`, `.`), lower-cased; `None` if not.
#[pyfunction]
fn version_name(name: &str) -> Option<String> {
    secrets_manager::Version::new(name)
        .ok()
        .map(|v| v.as_str().to_owned())
}

/// The native module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<core::Core>()?;
    m.add_class::<token::PyFernet>()?;
    m.add(
        "SecretsManagerError",
        py.get_type::<errors::SecretsManagerError>(),
    )?;
    m.add("InvalidToken", py.get_type::<errors::InvalidToken>())?;
    m.add("StaleManager", py.get_type::<errors::StaleManager>())?;
    m.add_function(wrap_pyfunction!(normalise_salt, m)?)?;
    m.add_function(wrap_pyfunction!(salt_hash, m)?)?;
    m.add_function(wrap_pyfunction!(salt_matches, m)?)?;
    m.add_function(wrap_pyfunction!(derive_key, m)?)?;
    m.add_function(wrap_pyfunction!(version_name, m)?)?;
    m.add_function(wrap_pyfunction!(files::read_keyring_file, m)?)?;
    m.add_function(wrap_pyfunction!(files::write_keyring_file, m)?)?;
    m.add("SMALL_INPUT", core::SMALL)?;
    Ok(())
}
