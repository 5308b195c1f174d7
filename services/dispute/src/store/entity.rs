//! SeaORM entities of the dispute database. List-valued fields are stored
//! comma-joined on the dispute row, and HS codes and measure ids again as
//! rows of their own, to be indexed for the list filters.

pub mod dispute {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "disputes")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        #[sea_orm(unique)]
        pub reference: String,
        pub title: String,
        pub summary: String,
        pub complainant: String,
        pub respondent: String,
        pub third_parties: String,
        pub forum: String,
        pub stage: String,
        pub hs_codes: String,
        pub measure_ids: String,
        pub legal_basis: String,
        pub opened_on: Date,
        pub closed_on: Option<Date>,
        pub source_url: String,
        pub version: i64,
        pub create_time: DateTimeUtc,
        pub update_time: DateTimeUtc,
        pub create_actor: String,
        pub update_actor: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod dispute_code {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "dispute_codes")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub dispute_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub hs_code: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod dispute_measure {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "dispute_measures")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub dispute_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub measure_id: Uuid,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod event {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "dispute_events")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub dispute_id: Uuid,
        pub kind: String,
        pub occurred_on: Date,
        pub from_stage: Option<String>,
        pub to_stage: Option<String>,
        pub description: String,
        pub create_time: DateTimeUtc,
        pub actor: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

impl tradewatch_common::db::Versioned for dispute::Entity {
    const RESOURCE: &'static str = "dispute";
    const ID: dispute::Column = dispute::Column::Id;
    const VERSION: dispute::Column = dispute::Column::Version;
    const CREATE_TIME: dispute::Column = dispute::Column::CreateTime;
}
