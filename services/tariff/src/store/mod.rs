//! The tariff database: SeaORM entities, migrations and the queries the API
//! runs. Functions take any connection, so the API decides which run inside
//! one transaction. Domain types in, domain types out. Beside it, the two
//! indexes in memory that reads answer from, kept fresh by the feed: the
//! schedule (measures) and the trade index (flows), and what the two answer
//! together (exposure and coverage).

pub mod entity;
pub mod migration;

mod exposure;
mod flows;
mod measures;
mod schedule;
mod status_changes;
mod trade_index;

/// The change-feed topic of measures (WatchMeasures, the schedule's catch-up).
pub const FEED_TOPIC: &str = "measure";

pub use self::{
    exposure::{CoverageQuery, MatchCache, TradeCoverage, measure_exposure, trade_coverage},
    flows::*,
    measures::*,
    migration::Migrator,
    schedule::{Index as ScheduleIndex, Schedule},
    status_changes::*,
    trade_index::{FLOW_TOPIC, TradeIndex},
};
