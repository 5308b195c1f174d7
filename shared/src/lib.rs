//! What the three Tradewatch services share, written once: the generated gRPC
//! code, configuration, telemetry, the database connection, the server
//! (health, reflection, graceful shutdown), the error model of the API and the
//! validators, page tokens, idempotency keys and etags every API uses.

pub mod batch;
pub mod cli;
pub mod client;
pub mod config;
pub mod db;
pub mod error;
pub mod etag;
pub mod idempotency;
pub mod paging;
pub mod proto;
pub mod server;
pub mod telemetry;
pub mod types;
pub mod validate;

#[cfg(feature = "testing")]
pub mod testing;

pub use error::{Error, Result};

/// The current instant at the precision both databases keep (microseconds),
/// so a resource answered from a write equals the same resource read back.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound as _;
    chrono::Utc::now().trunc_subsecs(6)
}

/// Today's date, UTC: the day "today" means in every service.
pub fn today() -> chrono::NaiveDate {
    chrono::Utc::now().date_naive()
}
