//! Integration tests: the real dialogue server with real dispute and tariff
//! servers beside it, each on an ephemeral port with its own database, called
//! through the generated clients, on SQLite or, with
//! `TRADEWATCH_TEST_DATABASE_URL`, on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cloned_ref_to_slice_refs)]

mod commitments;
mod effects;
mod helpers;
mod hostile;
mod sessions;
mod watch;
