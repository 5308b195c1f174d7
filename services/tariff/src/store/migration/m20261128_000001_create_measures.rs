//! Measures, their covered HS prefixes and targets, and their status
//! timeline, with the indexes that serve `ResolveDuty` and every list filter.

use sea_orm_migration::{prelude::*, schema::*};
use tradewatch_common::schema::create_link_table;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Measures {
    Table,
    Id,
    Reference,
    Title,
    ImposingEconomy,
    TargetEconomies,
    Kind,
    HsCodes,
    ExcludedHsCodes,
    AdValoremPercent,
    SpecificAmount,
    SpecificCurrency,
    SpecificUnit,
    AnnouncedOn,
    EffectiveFrom,
    EffectiveTo,
    QuotaQuantity,
    QuotaUnit,
    QuotaPeriodStart,
    QuotaPeriodEnd,
    QuotaUsed,
    SourceUrl,
    Notes,
    Version,
    CreateTime,
    UpdateTime,
}

#[derive(DeriveIden)]
enum MeasureCodes {
    Table,
}

#[derive(DeriveIden)]
enum MeasureTargets {
    Table,
}

#[derive(DeriveIden)]
enum MeasureStatusChanges {
    Table,
    Id,
    MeasureId,
    Status,
    EffectiveOn,
    Reason,
    ChangeTime,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Measures::Table)
                    .col(uuid(Measures::Id).primary_key())
                    .col(string(Measures::Reference).unique_key())
                    .col(string(Measures::Title))
                    .col(string_len(Measures::ImposingEconomy, 3))
                    .col(string(Measures::TargetEconomies))
                    .col(string_len(Measures::Kind, 32))
                    .col(text(Measures::HsCodes))
                    .col(text(Measures::ExcludedHsCodes))
                    .col(string_len(Measures::AdValoremPercent, 40))
                    .col(string_len_null(Measures::SpecificAmount, 40))
                    .col(string_len_null(Measures::SpecificCurrency, 3))
                    .col(string_null(Measures::SpecificUnit))
                    .col(date_null(Measures::AnnouncedOn))
                    .col(date(Measures::EffectiveFrom))
                    .col(date_null(Measures::EffectiveTo))
                    .col(string_len_null(Measures::QuotaQuantity, 40))
                    .col(string_null(Measures::QuotaUnit))
                    .col(date_null(Measures::QuotaPeriodStart))
                    .col(date_null(Measures::QuotaPeriodEnd))
                    .col(string_len_null(Measures::QuotaUsed, 40))
                    .col(text(Measures::SourceUrl))
                    .col(text(Measures::Notes))
                    .col(big_integer(Measures::Version))
                    .col(timestamp_with_time_zone(Measures::CreateTime))
                    .col(timestamp_with_time_zone(Measures::UpdateTime))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("measures_by_importer_kind")
                    .table(Measures::Table)
                    .col(Measures::ImposingEconomy)
                    .col(Measures::Kind)
                    .col(Measures::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("measures_by_kind")
                    .table(Measures::Table)
                    .col(Measures::Kind)
                    .col(Measures::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("measures_by_effective_from")
                    .table(Measures::Table)
                    .col(Measures::EffectiveFrom)
                    .to_owned(),
            )
            .await?;

        // ResolveDuty looks up each prefix of the code; the HS filter of
        // ListMeasures also scans a range of longer codes.
        create_link_table(
            manager,
            "measure_codes",
            "measures",
            "measure_id",
            string_len("hs_code", 10),
            "measure_codes_by_code",
        )
        .await?;

        create_link_table(
            manager,
            "measure_targets",
            "measures",
            "measure_id",
            string_len("economy", 3),
            "measure_targets_by_economy",
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(MeasureStatusChanges::Table)
                    .col(uuid(MeasureStatusChanges::Id).primary_key())
                    .col(uuid(MeasureStatusChanges::MeasureId))
                    .col(string_len(MeasureStatusChanges::Status, 16))
                    .col(date(MeasureStatusChanges::EffectiveOn))
                    .col(text(MeasureStatusChanges::Reason))
                    .col(timestamp_with_time_zone(MeasureStatusChanges::ChangeTime))
                    .foreign_key(
                        ForeignKey::create()
                            .from(MeasureStatusChanges::Table, MeasureStatusChanges::MeasureId)
                            .to(Measures::Table, Measures::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("measure_status_changes_by_measure")
                    .table(MeasureStatusChanges::Table)
                    .col(MeasureStatusChanges::MeasureId)
                    .col(MeasureStatusChanges::EffectiveOn)
                    .col(MeasureStatusChanges::Id)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(MeasureStatusChanges::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(MeasureTargets::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(MeasureCodes::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Measures::Table).to_owned()).await
    }
}
