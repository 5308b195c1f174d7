//! SeaORM entities of the dialogue database. Participants and the agenda are
//! stored as JSON on the session row; the economies and the agenda's links
//! again as rows of their own, to be indexed for the list filters. The outbox
//! holds the effects still to deliver.

pub mod session {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "sessions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub title: String,
        pub track: String,
        pub level: String,
        pub host_economy: String,
        pub economies: String,
        pub location: String,
        pub starts_on: Date,
        pub ends_on: Date,
        pub status: String,
        pub participants: String,
        pub agenda: String,
        pub outcome_summary: String,
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

pub mod session_economy {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "session_economies")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub session_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub economy: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod commitment_owner {
    use sea_orm::entity::prelude::*;

    /// One owner of a commitment.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "commitment_owners")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub commitment_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub economy: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod session_link {
    use sea_orm::entity::prelude::*;

    /// A dispute or measure named on a session's agenda.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "session_links")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub session_id: Uuid,
        /// `dispute` or `measure`.
        #[sea_orm(primary_key, auto_increment = false)]
        pub kind: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub target_id: Uuid,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod commitment {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "commitments")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub session_id: Uuid,
        pub description: String,
        /// Comma-joined; one row each in `commitment_owners` too.
        pub owner_economies: String,
        pub due_on: Option<Date>,
        pub status: String,
        pub dispute_id: Option<Uuid>,
        pub measure_id: Option<Uuid>,
        pub effect: String,
        pub effect_on: Option<Date>,
        pub effect_state: String,
        pub effect_detail: String,
        pub version: i64,
        pub create_time: DateTimeUtc,
        pub update_time: DateTimeUtc,
        pub create_actor: String,
        pub update_actor: String,
        pub status_actor: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod outbox {
    use sea_orm::entity::prelude::*;

    /// An effect to deliver; deleted once delivered or refused.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "effect_outbox")]
    pub struct Model {
        /// Also the `request_id` sent with every delivery.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub commitment_id: Uuid,
        pub effect: String,
        pub target_id: Uuid,
        pub effect_on: Date,
        pub attempts: i32,
        pub next_attempt_at: DateTimeUtc,
        pub last_error: String,
        pub create_time: DateTimeUtc,
        pub traceparent: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

impl tradewatch_common::db::Versioned for session::Entity {
    const RESOURCE: &'static str = "session";
    const ID: session::Column = session::Column::Id;
    const VERSION: session::Column = session::Column::Version;
    const CREATE_TIME: session::Column = session::Column::CreateTime;
}

impl tradewatch_common::db::Versioned for commitment::Entity {
    const RESOURCE: &'static str = "commitment";
    const ID: commitment::Column = commitment::Column::Id;
    const VERSION: commitment::Column = commitment::Column::Version;
    const CREATE_TIME: commitment::Column = commitment::Column::CreateTime;
}
