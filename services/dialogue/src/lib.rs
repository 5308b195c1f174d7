//! The Tradewatch dialogue service: bilateral dialogue sessions, their
//! agendas and the commitments made in them. A fulfilled commitment with an
//! effect settles a dispute or suspends or revokes a tariff measure, delivered
//! through a transactional outbox by the relay, so that nothing is lost and
//! nothing applied twice.
//!
//! `app` builds and runs the server and the relay, `api` maps proto to
//! domain, `domain` holds the pure rules, `store` the SeaORM entities,
//! queries and migrations, `relay` delivers the effects.

pub mod api;
pub mod app;
pub mod domain;
pub mod relay;
pub mod store;

use tradewatch_common::config::ServiceInfo;

pub const SERVICE: ServiceInfo = ServiceInfo { name: "dialogue", default_port: 50053 };
