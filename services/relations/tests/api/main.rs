//! Integration tests: the real relations server on an ephemeral port in
//! front of the real tariff, dispute and dialogue servers (each on a fresh
//! database, SQLite or, with `TRADEWATCH_TEST_DATABASE_URL`, PostgreSQL),
//! called through the generated clients.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cloned_ref_to_slice_refs)]

mod brief;
mod dossier;
mod helpers;
mod server;
