//! The tariff database: SeaORM entities, migrations and the queries the API
//! runs. Functions take any connection, so the API decides which run inside
//! one transaction. Domain types in, domain types out.

pub mod entity;
pub mod migration;

mod measures;
mod schedule;
mod status_changes;

/// The change-feed topic of measures (WatchMeasures, the schedule's catch-up).
pub const FEED_TOPIC: &str = "measure";

pub use self::{measures::*, migration::Migrator, schedule::Schedule, status_changes::*};
