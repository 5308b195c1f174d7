//! Each queued effect keeps the trace context of the call that queued it,
//! so that its delivery is part of the same trace.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum EffectOutbox {
    Table,
    Traceparent,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(EffectOutbox::Table)
                    .add_column(ColumnDef::new(EffectOutbox::Traceparent).string_len(128).not_null().default(""))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table(EffectOutbox::Table).drop_column(EffectOutbox::Traceparent).to_owned())
            .await
    }
}
