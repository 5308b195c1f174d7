//! Integration tests: the real dispute server, with a real tariff server
//! beside it, on ephemeral ports, called through the generated clients, on
//! SQLite or, with `TRADEWATCH_TEST_DATABASE_URL`, on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cloned_ref_to_slice_refs)]

mod disputes;
mod helpers;
mod hostile;
mod stages;
mod watch;
