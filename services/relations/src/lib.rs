//! The Tradewatch relations service: where two economies stand on a day,
//! and a dispute with everything around it, composed from the tariff,
//! dispute and dialogue services through their public APIs. It keeps no
//! record of its own.
//!
//! `app` builds and runs the server, `api` maps proto to the composition and
//! back, `domain` holds the pure rules of composition (a dispute's stage on a
//! day, the window of sessions, what counts as open and overdue, a measure's
//! most-traded line), `peers` the calls to the three services, and `fresh`
//! what is kept between calls and the change feeds that keep it fresh.

pub mod api;
pub mod app;
pub mod domain;
pub mod fresh;
pub mod peers;

use tradewatch_common::config::ServiceInfo;

pub const SERVICE: ServiceInfo = ServiceInfo { name: "relations", default_port: 50054 };
