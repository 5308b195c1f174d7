//! Integration tests: the real tariff server on an ephemeral port, called

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cloned_ref_to_slice_refs)]
//! through the generated client, on SQLite or, with
//! `TRADEWATCH_TEST_DATABASE_URL`, on PostgreSQL (a fresh database per test).

mod helpers;
mod hostile;
mod measures;
mod patched;
mod properties;
mod quota;
mod resolve;
mod schedule;
mod server;
mod trade;
mod watch;
