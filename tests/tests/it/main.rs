//! Integration tests across the workspace, one binary.

mod fernet_interop;
mod fernet_properties;
mod fernet_vectors;
