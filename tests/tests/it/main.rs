//! Integration tests across the workspace, one binary.

// Helpers outside `#[test]` functions fail loudly on bad test data.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
// Test data generators wrap numbers into bytes on purpose.
#![allow(clippy::cast_possible_truncation)]

mod dotenv_interop;
mod etcd;
mod fernet_interop;
mod fernet_properties;
mod fernet_vectors;
mod hygiene;
mod kdf_interop;
mod keyring_safety;
mod manager;
mod migration;
mod persist;
mod reload;

pub(crate) use manager::capture_logs as manager_logs;
