//! A commitment has one or more owners: `owner_economy` becomes the list
//! `owner_economies`, kept on the row and, one economy a row, in
//! `commitment_owners` for the owner filter. Existing owners move over.

use sea_orm_migration::{prelude::*, schema::*};
use tradewatch_common::schema::create_link_table;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Commitments {
    Table,
    OwnerEconomies,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Commitments::Table)
                    .add_column(text(Commitments::OwnerEconomies).default(""))
                    .to_owned(),
            )
            .await?;
        create_link_table(
            manager,
            "commitment_owners",
            "commitments",
            "commitment_id",
            string_len("economy", 3),
            "commitment_owners_by_economy",
        )
        .await?;
        let db = manager.get_connection();
        db.execute_unprepared("UPDATE commitments SET owner_economies = owner_economy").await?;
        db.execute_unprepared(
            "INSERT INTO commitment_owners (commitment_id, economy) SELECT id, owner_economy FROM commitments",
        )
        .await?;
        db.execute_unprepared("DROP INDEX commitments_by_owner").await?;
        db.execute_unprepared("ALTER TABLE commitments DROP COLUMN owner_economy").await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("ALTER TABLE commitments ADD COLUMN owner_economy VARCHAR(3) NOT NULL DEFAULT ''")
            .await?;
        // A joint commitment keeps its first owner.
        db.execute_unprepared("UPDATE commitments SET owner_economy = substr(owner_economies, 1, 3)").await?;
        db.execute_unprepared("CREATE INDEX commitments_by_owner ON commitments (owner_economy, id)").await?;
        manager.drop_table(Table::drop().table(Alias::new("commitment_owners")).to_owned()).await?;
        db.execute_unprepared("ALTER TABLE commitments DROP COLUMN owner_economies").await?;
        Ok(())
    }
}
