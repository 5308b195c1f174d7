//! The Tradewatch tariff service: tariff measures of every economy, their
//! dated status timeline and quota fill, and `ResolveDuty`, the duty a
//! shipment pays on a day.
//!
//! `app` builds and runs the server, `api` maps proto to domain, `domain`
//! holds the pure rules, `store` the SeaORM entities, queries and migrations.
//! `load` is a client of the service: a national schedule read from CSV and
//! written through `ImportMeasures` (`tradewatch-schedule`).

pub mod api;
pub mod app;
pub mod domain;
pub mod load;
pub mod store;

use tradewatch_common::config::ServiceInfo;

pub const SERVICE: ServiceInfo = ServiceInfo { name: "tariff", default_port: 50052 };
