//! The Tradewatch dispute service: trade disputes between economies, the
//! WTO stage machine they move through, and their append-only timeline.
//! Links to tariff measures are checked with the tariff service.
//!
//! `app` builds and runs the server, `api` maps proto to domain, `domain`
//! holds the pure rules, `store` the SeaORM entities, queries and migrations.

pub mod api;
pub mod app;
pub mod domain;
pub mod store;

use tradewatch_common::config::ServiceInfo;

pub const SERVICE: ServiceInfo = ServiceInfo { name: "dispute", default_port: 50051 };
