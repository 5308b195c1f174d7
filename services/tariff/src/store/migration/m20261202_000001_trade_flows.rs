//! Trade flows: published statistics of what one economy imported from
//! another, keyed by importer, exporter, year and HS code.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum TradeFlows {
    Table,
    Id,
    ImportingEconomy,
    ExportingEconomy,
    Year,
    HsCode,
    ValueCurrency,
    ValueAmount,
    Quantity,
    Unit,
    SourceUrl,
    Notes,
    Version,
    CreateTime,
    UpdateTime,
    CreateActor,
    UpdateActor,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(TradeFlows::Table)
                    .col(uuid(TradeFlows::Id).primary_key())
                    .col(string_len(TradeFlows::ImportingEconomy, 3))
                    .col(string_len(TradeFlows::ExportingEconomy, 3))
                    .col(integer(TradeFlows::Year))
                    .col(string_len(TradeFlows::HsCode, 10))
                    .col(string_len(TradeFlows::ValueCurrency, 3))
                    .col(string_len(TradeFlows::ValueAmount, 40))
                    .col(string_len_null(TradeFlows::Quantity, 40))
                    .col(string_null(TradeFlows::Unit))
                    .col(text(TradeFlows::SourceUrl))
                    .col(text(TradeFlows::Notes))
                    .col(big_integer(TradeFlows::Version))
                    .col(timestamp_with_time_zone(TradeFlows::CreateTime))
                    .col(timestamp_with_time_zone(TradeFlows::UpdateTime))
                    .col(string(TradeFlows::CreateActor))
                    .col(string(TradeFlows::UpdateActor))
                    .to_owned(),
            )
            .await?;
        // The natural key, in the order ListTradeFlows pages by: it also
        // serves the import's lookup of stored keys and every list filter
        // that starts with the importer.
        manager
            .create_index(
                Index::create()
                    .name("trade_flows_by_key")
                    .table(TradeFlows::Table)
                    .col(TradeFlows::ImportingEconomy)
                    .col(TradeFlows::ExportingEconomy)
                    .col(TradeFlows::Year)
                    .col(TradeFlows::HsCode)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("trade_flows_by_exporter")
                    .table(TradeFlows::Table)
                    .col(TradeFlows::ExportingEconomy)
                    .col(TradeFlows::Year)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(TradeFlows::Table).to_owned()).await
    }
}
