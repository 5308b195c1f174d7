//! Who wrote what (the audit trail): who created and last wrote each measure, and who recorded each status change.

use sea_orm_migration::prelude::*;
use tradewatch_common::schema::{add_actor_columns, drop_actor_columns};

#[derive(DeriveMigrationName)]
pub struct Migration;

const COLUMNS: &[(&str, &[&str])] =
    &[("measures", &["create_actor", "update_actor"]), ("measure_status_changes", &["actor"])];

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
