//! Who wrote what (the audit trail): who created and last wrote each dispute, and who recorded each event.

use sea_orm_migration::prelude::*;
use tradewatch_common::schema::{add_actor_columns, drop_actor_columns};

#[derive(DeriveMigrationName)]
pub struct Migration;

const COLUMNS: &[(&str, &[&str])] = &[("disputes", &["create_actor", "update_actor"]), ("dispute_events", &["actor"])];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, columns) in COLUMNS {
            add_actor_columns(manager, table, columns).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, columns) in COLUMNS {
            drop_actor_columns(manager, table, columns).await?;
        }
        Ok(())
    }
}
