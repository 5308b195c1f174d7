//! SeaORM entities of the tariff database. As in every service, no entity
//! declares relations: the foreign keys live in the migrations, and queries
//! join by id through subqueries. Decimals are stored as their
//! canonical strings, so values are exact on SQLite and PostgreSQL alike;
//! list-valued fields are stored comma-joined on the measure row, and the
//! covered HS prefixes and targets again as rows of their own, to be indexed.

pub mod measure {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "measures")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        #[sea_orm(unique)]
        pub reference: String,
        pub title: String,
        pub imposing_economy: String,
        pub target_economies: String,
        pub kind: String,
        pub hs_codes: String,
        pub excluded_hs_codes: String,
        pub ad_valorem_percent: String,
        pub specific_amount: Option<String>,
        pub specific_currency: Option<String>,
        pub specific_unit: Option<String>,
        pub announced_on: Option<Date>,
        pub effective_from: Date,
        pub effective_to: Option<Date>,
        pub quota_quantity: Option<String>,
        pub quota_unit: Option<String>,
        pub quota_period_start: Option<Date>,
        pub quota_period_end: Option<Date>,
        pub quota_used: Option<String>,
        pub source_url: String,
        pub notes: String,
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

pub mod measure_code {
    use sea_orm::entity::prelude::*;

    /// One HS prefix a measure covers.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "measure_codes")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub measure_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub hs_code: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod measure_target {
    use sea_orm::entity::prelude::*;

    /// One origin a measure names.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "measure_targets")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub measure_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub economy: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod status_change {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "measure_status_changes")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub measure_id: Uuid,
        pub status: String,
        pub effective_on: Date,
        pub reason: String,
        pub change_time: DateTimeUtc,
        pub actor: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

impl tradewatch_common::db::Versioned for measure::Entity {
    const RESOURCE: &'static str = "measure";
    const ID: measure::Column = measure::Column::Id;
    const VERSION: measure::Column = measure::Column::Version;
    const CREATE_TIME: measure::Column = measure::Column::CreateTime;
}

pub mod trade_flow {
    use sea_orm::entity::prelude::*;

    /// One published trade statistic; (importing, exporting, year, hs_code)
    /// is unique.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "trade_flows")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub importing_economy: String,
        pub exporting_economy: String,
        pub year: i32,
        pub hs_code: String,
        pub value_currency: String,
        pub value_amount: String,
        pub quantity: Option<String>,
        pub unit: Option<String>,
        pub source_url: String,
        pub notes: String,
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
