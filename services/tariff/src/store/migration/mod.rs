//! The tariff schema, one migration a file.

use sea_orm_migration::prelude::*;

mod m20261128_000001_create_measures;
mod m20261129_000002_actors;
mod m20261202_000001_trade_flows;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(tradewatch_common::idempotency::migration::Migration),
            Box::new(tradewatch_common::idempotency::expiry_migration::Migration),
            Box::new(m20261128_000001_create_measures::Migration),
            Box::new(m20261129_000002_actors::Migration),
            Box::new(tradewatch_common::feed::migration::Migration),
            Box::new(m20261202_000001_trade_flows::Migration),
        ]
    }
}
