//! Disputes, their HS codes and measure links, and the timeline, with the
//! indexes that serve every list filter.

use sea_orm_migration::{prelude::*, schema::*};
use tradewatch_common::schema::create_link_table;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Disputes {
    Table,
    Id,
    Reference,
    Title,
    Summary,
    Complainant,
    Respondent,
    ThirdParties,
    Forum,
    Stage,
    HsCodes,
    MeasureIds,
    LegalBasis,
    OpenedOn,
    ClosedOn,
    SourceUrl,
    Version,
    CreateTime,
    UpdateTime,
}

#[derive(DeriveIden)]
enum DisputeCodes {
    Table,
}

#[derive(DeriveIden)]
enum DisputeMeasures {
    Table,
}

#[derive(DeriveIden)]
enum DisputeEvents {
    Table,
    Id,
    DisputeId,
    Kind,
    OccurredOn,
    FromStage,
    ToStage,
    Description,
    CreateTime,
}

/// An index on one column of `disputes`, with the id for stable paging.
fn index(name: &str, col: Disputes) -> IndexCreateStatement {
    Index::create().name(name).table(Disputes::Table).col(col).col(Disputes::Id).to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Disputes::Table)
                    .col(uuid(Disputes::Id).primary_key())
                    .col(string(Disputes::Reference).unique_key())
                    .col(string(Disputes::Title))
                    .col(text(Disputes::Summary))
                    .col(string_len(Disputes::Complainant, 3))
                    .col(string_len(Disputes::Respondent, 3))
                    .col(string(Disputes::ThirdParties))
                    .col(string_len(Disputes::Forum, 32))
                    .col(string_len(Disputes::Stage, 32))
                    .col(text(Disputes::HsCodes))
                    .col(text(Disputes::MeasureIds))
                    .col(text(Disputes::LegalBasis))
                    .col(date(Disputes::OpenedOn))
                    .col(date_null(Disputes::ClosedOn))
                    .col(text(Disputes::SourceUrl))
                    .col(big_integer(Disputes::Version))
                    .col(timestamp_with_time_zone(Disputes::CreateTime))
                    .col(timestamp_with_time_zone(Disputes::UpdateTime))
                    .to_owned(),
            )
            .await?;
        for (name, col) in [
            ("disputes_by_complainant", Disputes::Complainant),
            ("disputes_by_respondent", Disputes::Respondent),
            ("disputes_by_stage", Disputes::Stage),
            ("disputes_by_forum", Disputes::Forum),
            ("disputes_by_closed_on", Disputes::ClosedOn),
        ] {
            manager.create_index(index(name, col)).await?;
        }

        create_link_table(
            manager,
            "dispute_codes",
            "disputes",
            "dispute_id",
            string_len("hs_code", 10),
            "dispute_codes_by_code",
        )
        .await?;

        create_link_table(
            manager,
            "dispute_measures",
            "disputes",
            "dispute_id",
            uuid("measure_id"),
            "dispute_measures_by_measure",
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(DisputeEvents::Table)
                    .col(uuid(DisputeEvents::Id).primary_key())
                    .col(uuid(DisputeEvents::DisputeId))
                    .col(string_len(DisputeEvents::Kind, 16))
                    .col(date(DisputeEvents::OccurredOn))
                    .col(string_len_null(DisputeEvents::FromStage, 32))
                    .col(string_len_null(DisputeEvents::ToStage, 32))
                    .col(text(DisputeEvents::Description))
                    .col(timestamp_with_time_zone(DisputeEvents::CreateTime))
                    .foreign_key(
                        ForeignKey::create()
                            .from(DisputeEvents::Table, DisputeEvents::DisputeId)
                            .to(Disputes::Table, Disputes::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("dispute_events_by_dispute")
                    .table(DisputeEvents::Table)
                    .col(DisputeEvents::DisputeId)
                    .col(DisputeEvents::OccurredOn)
                    .col(DisputeEvents::Id)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(DisputeEvents::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(DisputeMeasures::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(DisputeCodes::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Disputes::Table).to_owned()).await
    }
}
