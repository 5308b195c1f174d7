//! The dialogue database: SeaORM entities, migrations and the queries the API
//! and the relay run. Domain types in, domain types out.

mod commitments;
pub mod entity;
pub mod migration;
mod outbox;
mod sessions;

pub use self::{commitments::*, migration::Migrator, outbox::*, sessions::*};
