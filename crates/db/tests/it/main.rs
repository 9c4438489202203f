//! Census and rewrap against real databases: SQLite files and a throwaway
//! PostgreSQL cluster, with mixed tables in both value formats.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod fixture;
mod pg_cluster;
mod postgres;
mod sqlite;
