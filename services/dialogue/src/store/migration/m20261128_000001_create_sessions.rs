//! Sessions, their economies and agenda links, commitments, and the outbox of
//! effects, with the indexes that serve every list filter and the relay.

use sea_orm_migration::{prelude::*, schema::*};
use tradewatch_common::schema::{cascade, create_link_table};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Sessions {
    Table,
    Id,
    Title,
    Track,
    Level,
    HostEconomy,
    Economies,
    Location,
    StartsOn,
    EndsOn,
    Status,
    Participants,
    Agenda,
    OutcomeSummary,
    SourceUrl,
    Version,
    CreateTime,
    UpdateTime,
}

#[derive(DeriveIden)]
enum SessionEconomies {
    Table,
}

#[derive(DeriveIden)]
enum SessionLinks {
    Table,
    SessionId,
    Kind,
    TargetId,
}

#[derive(DeriveIden, Clone, Copy)]
enum Commitments {
    Table,
    Id,
    SessionId,
    Description,
    OwnerEconomy,
    DueOn,
    Status,
    DisputeId,
    MeasureId,
    Effect,
    EffectOn,
    EffectState,
    EffectDetail,
    Version,
    CreateTime,
    UpdateTime,
}

#[derive(DeriveIden)]
enum EffectOutbox {
    Table,
    Id,
    CommitmentId,
    Effect,
    TargetId,
    EffectOn,
    Attempts,
    NextAttemptAt,
    LastError,
    CreateTime,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Sessions::Table)
                    .col(uuid(Sessions::Id).primary_key())
                    .col(string(Sessions::Title))
                    .col(string_len(Sessions::Track, 32))
                    .col(string_len(Sessions::Level, 32))
                    .col(string_len(Sessions::HostEconomy, 3))
                    .col(string(Sessions::Economies))
                    .col(string(Sessions::Location))
                    .col(date(Sessions::StartsOn))
                    .col(date(Sessions::EndsOn))
                    .col(string_len(Sessions::Status, 16))
                    .col(text(Sessions::Participants))
                    .col(text(Sessions::Agenda))
                    .col(text(Sessions::OutcomeSummary))
                    .col(text(Sessions::SourceUrl))
                    .col(big_integer(Sessions::Version))
                    .col(timestamp_with_time_zone(Sessions::CreateTime))
                    .col(timestamp_with_time_zone(Sessions::UpdateTime))
                    .to_owned(),
            )
            .await?;
        for (name, col) in [
            ("sessions_by_track", Sessions::Track),
            ("sessions_by_level", Sessions::Level),
            ("sessions_by_status", Sessions::Status),
            ("sessions_by_starts_on", Sessions::StartsOn),
            ("sessions_by_ends_on", Sessions::EndsOn),
        ] {
            manager
                .create_index(Index::create().name(name).table(Sessions::Table).col(col).col(Sessions::Id).to_owned())
                .await?;
        }

        create_link_table(
            manager,
            "session_economies",
            "sessions",
            "session_id",
            string_len("economy", 3),
            "session_economies_by_economy",
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(SessionLinks::Table)
                    .col(uuid(SessionLinks::SessionId))
                    .col(string_len(SessionLinks::Kind, 8))
                    .col(uuid(SessionLinks::TargetId))
                    .primary_key(
                        Index::create()
                            .col(SessionLinks::SessionId)
                            .col(SessionLinks::Kind)
                            .col(SessionLinks::TargetId),
                    )
                    .foreign_key(&mut cascade(
                        (SessionLinks::Table, SessionLinks::SessionId),
                        (Sessions::Table, Sessions::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("session_links_by_target")
                    .table(SessionLinks::Table)
                    .col(SessionLinks::Kind)
                    .col(SessionLinks::TargetId)
                    .col(SessionLinks::SessionId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Commitments::Table)
                    .col(uuid(Commitments::Id).primary_key())
                    .col(uuid(Commitments::SessionId))
                    .col(text(Commitments::Description))
                    .col(string_len(Commitments::OwnerEconomy, 3))
                    .col(date_null(Commitments::DueOn))
                    .col(string_len(Commitments::Status, 16))
                    .col(uuid_null(Commitments::DisputeId))
                    .col(uuid_null(Commitments::MeasureId))
                    .col(string_len(Commitments::Effect, 16))
                    .col(date_null(Commitments::EffectOn))
                    .col(string_len(Commitments::EffectState, 16))
                    .col(text(Commitments::EffectDetail))
                    .col(big_integer(Commitments::Version))
                    .col(timestamp_with_time_zone(Commitments::CreateTime))
                    .col(timestamp_with_time_zone(Commitments::UpdateTime))
                    .foreign_key(&mut cascade(
                        (Commitments::Table, Commitments::SessionId),
                        (Sessions::Table, Sessions::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        for (name, cols) in [
            ("commitments_by_session", &[Commitments::SessionId][..]),
            ("commitments_by_owner", &[Commitments::OwnerEconomy][..]),
            ("commitments_by_status_due", &[Commitments::Status, Commitments::DueOn][..]),
            ("commitments_by_dispute", &[Commitments::DisputeId][..]),
            ("commitments_by_measure", &[Commitments::MeasureId][..]),
        ] {
            let mut index = Index::create();
            index.name(name).table(Commitments::Table);
            for col in cols {
                index.col(*col);
            }
            manager.create_index(index.col(Commitments::Id).to_owned()).await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(EffectOutbox::Table)
                    .col(uuid(EffectOutbox::Id).primary_key())
                    .col(uuid(EffectOutbox::CommitmentId))
                    .col(string_len(EffectOutbox::Effect, 16))
                    .col(uuid(EffectOutbox::TargetId))
                    .col(date(EffectOutbox::EffectOn))
                    .col(integer(EffectOutbox::Attempts))
                    .col(timestamp_with_time_zone(EffectOutbox::NextAttemptAt))
                    .col(text(EffectOutbox::LastError))
                    .col(timestamp_with_time_zone(EffectOutbox::CreateTime))
                    .foreign_key(&mut cascade(
                        (EffectOutbox::Table, EffectOutbox::CommitmentId),
                        (Commitments::Table, Commitments::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("effect_outbox_due")
                    .table(EffectOutbox::Table)
                    .col(EffectOutbox::NextAttemptAt)
                    .col(EffectOutbox::Id)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(EffectOutbox::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Commitments::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(SessionLinks::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(SessionEconomies::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Sessions::Table).to_owned()).await
    }
}
