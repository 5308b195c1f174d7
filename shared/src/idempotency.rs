//! `request_id` idempotency (AIP-155), done in the database.
//!
//! A create or state-changing call that carries a `request_id` stores its
//! response in the same transaction as its write. A retry with the same id
//! returns that stored response and writes nothing; reusing an id for a
//! different request is INVALID_ARGUMENT. Two concurrent calls with one id
//! race on the key's primary key: the loser rolls back and answers with the
//! winner's response. Keys expire after `idempotency.retention_days` (30):
//! [`sweep`] removes them in small batches in the background.

use futures::future::BoxFuture;
use prost::Message;
use sea_orm::{ActiveModelTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait, Set};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    db,
    error::{Error, Result},
};

pub mod entity {
    //! One stored response per `request_id`.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "idempotency_keys")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub request_id: Uuid,
        pub method: String,
        pub fingerprint: Vec<u8>,
        pub response: Vec<u8>,
        pub create_time: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod migration {
    //! Creates `idempotency_keys`; every service's migrator lists it first.
    use sea_orm_migration::{prelude::*, schema::*};

    #[derive(DeriveMigrationName)]
    pub struct Migration;

    #[derive(DeriveIden)]
    enum IdempotencyKeys {
        Table,
        RequestId,
        Method,
        Fingerprint,
        Response,
        CreateTime,
    }

    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .create_table(
                    Table::create()
                        .table(IdempotencyKeys::Table)
                        .if_not_exists()
                        .col(uuid(IdempotencyKeys::RequestId).primary_key())
                        .col(string(IdempotencyKeys::Method))
                        .col(binary(IdempotencyKeys::Fingerprint))
                        .col(binary(IdempotencyKeys::Response))
                        .col(timestamp_with_time_zone(IdempotencyKeys::CreateTime))
                        .to_owned(),
                )
                .await
        }

        async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager.drop_table(Table::drop().table(IdempotencyKeys::Table).to_owned()).await
        }
    }
}

pub mod expiry_migration {
    //! Indexes `idempotency_keys` by age, for the sweep that expires them;
    //! every service's migrator lists it after the table's.
    use sea_orm_migration::prelude::*;

    pub struct Migration;

    impl MigrationName for Migration {
        fn name(&self) -> &str {
            "m20261129_000001_idempotency_keys_by_age"
        }
    }

    const INDEX: &str = "idempotency_keys_by_create_time";

    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .create_index(
                    Index::create()
                        .name(INDEX)
                        .table(Alias::new("idempotency_keys"))
                        .col(Alias::new("create_time"))
                        .if_not_exists()
                        .to_owned(),
                )
                .await
        }

        async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager.drop_index(Index::drop().name(INDEX).table(Alias::new("idempotency_keys")).to_owned()).await
        }
    }
}

/// Keys removed by one statement of the sweep: small, so the sweep never
/// holds locks long.
pub const EXPIRE_BATCH: u64 = 500;

/// Removes the keys older than `retention`, [`EXPIRE_BATCH`] at a time;
/// returns how many went. A retry after that is a new request.
pub async fn expire(db: &DatabaseConnection, retention: std::time::Duration) -> Result<u64> {
    use sea_orm::{ColumnTrait as _, QueryFilter as _, sea_query::Query};
    let cutoff = crate::now() - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    let mut removed = 0;
    loop {
        let oldest = Query::select()
            .column(entity::Column::RequestId)
            .from(entity::Entity)
            .and_where(entity::Column::CreateTime.lt(cutoff))
            .limit(EXPIRE_BATCH)
            .to_owned();
        let gone = entity::Entity::delete_many()
            .filter(entity::Column::RequestId.in_subquery(oldest))
            .exec(db)
            .await?
            .rows_affected;
        removed += gone;
        if gone < EXPIRE_BATCH {
            return Ok(removed);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Expires old keys every `every`, for as long as it runs (the server
/// aborts it on shutdown).
pub async fn sweep(db: DatabaseConnection, retention: std::time::Duration, every: std::time::Duration) {
    loop {
        match expire(&db, retention).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "expired idempotency keys"),
            Err(err) => tracing::warn!(error = %err, "idempotency keys could not be expired; trying again later"),
        }
        tokio::time::sleep(every).await;
    }
}

/// The identity of one idempotent call.
#[derive(Debug, Clone)]
pub struct Key {
    request_id: Uuid,
    method: &'static str,
    fingerprint: Vec<u8>,
}

impl Key {
    /// The key of `method` called with `request_id`; `request` is the request
    /// with its `request_id` cleared, so a retry must send the same request.
    pub fn new<M: Message>(method: &'static str, request_id: Option<Uuid>, request: &M) -> Option<Self> {
        request_id.map(|request_id| Self {
            request_id,
            method,
            fingerprint: Sha256::digest(request.encode_to_vec()).to_vec(),
        })
    }
}

async fn lookup<R: Message + Default>(conn: &impl ConnectionTrait, key: &Key) -> Result<Option<R>> {
    let Some(row) = entity::Entity::find_by_id(key.request_id).one(conn).await? else {
        return Ok(None);
    };
    if row.method != key.method || row.fingerprint != key.fingerprint {
        return Err(Error::invalid_field(
            "request_id",
            format!("{} was already used for a different request", key.request_id),
        ));
    }
    R::decode(row.response.as_slice()).map(Some).map_err(Error::internal)
}

/// Claims `key` inside the transaction before any other write: on
/// PostgreSQL a concurrent call with the same key then waits on this row
/// until the first commits, and fails on it rather than on whatever else the
/// write touches (a unique reference, say).
async fn claim(conn: &impl ConnectionTrait, key: &Key) -> Result<(), sea_orm::DbErr> {
    entity::ActiveModel {
        request_id: Set(key.request_id),
        method: Set(key.method.to_owned()),
        fingerprint: Set(key.fingerprint.clone()),
        response: Set(Vec::new()),
        create_time: Set(crate::now()),
    }
    .insert(conn)
    .await
    .map(|_| ())
}

async fn save<R: Message>(conn: &impl ConnectionTrait, key: &Key, response: &R) -> Result<(), sea_orm::DbErr> {
    entity::ActiveModel {
        request_id: Set(key.request_id),
        response: Set(response.encode_to_vec()),
        ..Default::default()
    }
    .update(conn)
    .await
    .map(|_| ())
}

/// The stored response of an earlier call with `key`, if there was one: lets
/// a retry answer before any work that must not be repeated (calls to other
/// services, for instance).
pub async fn replay<R: Message + Default>(conn: &DatabaseConnection, key: Option<&Key>) -> Result<Option<R>> {
    match key {
        Some(key) => lookup(conn, key).await,
        None => Ok(None),
    }
}

/// Runs `write` in one write transaction and commits it, at most once per
/// `key`: a repeated key returns the first response and writes nothing. If
/// `write` fails, nothing it did is kept.
pub async fn write<R, F>(conn: &DatabaseConnection, key: Option<Key>, write: F) -> Result<R>
where
    R: Message + Default,
    F: for<'c> FnOnce(&'c DatabaseTransaction) -> BoxFuture<'c, Result<R>> + Send,
{
    use tracing::Instrument as _;
    // The write's transaction, a CLIENT span of the database (semantic
    // conventions: db.system.name, db.operation.name).
    let system = match conn.get_database_backend() {
        sea_orm::DatabaseBackend::Postgres => "postgresql",
        _ => "sqlite",
    };
    let span = tracing::info_span!(
        "db",
        otel.name = "transaction",
        otel.kind = "client",
        db.system.name = system,
        db.operation.name = "transaction",
        otel.status_code = tracing::field::Empty,
    );
    let outcome = write_in_transaction(conn, key, write).instrument(span.clone()).await;
    if outcome.is_err() {
        span.record("otel.status_code", "ERROR");
    }
    outcome
}

async fn write_in_transaction<R, F>(conn: &DatabaseConnection, key: Option<Key>, write: F) -> Result<R>
where
    R: Message + Default,
    F: for<'c> FnOnce(&'c DatabaseTransaction) -> BoxFuture<'c, Result<R>> + Send,
{
    if let Some(key) = &key
        && let Some(done) = lookup(conn, key).await?
    {
        return Ok(done);
    }
    let txn = db::begin_write(conn).await?;
    if let Some(key) = &key {
        if let Some(done) = lookup(&*txn, key).await? {
            return Ok(done);
        }
        if let Err(err) = claim(&*txn, key).await {
            let _ = txn.rollback().await;
            // A concurrent call with the same key committed first: answer as it did.
            return if db::is_unique_violation(&err) {
                lookup(conn, key)
                    .await?
                    .ok_or_else(|| Error::internal(anyhow::anyhow!("idempotency key vanished after a conflict")))
            } else {
                Err(err.into())
            };
        }
    }
    let response = write(&txn).await?;
    if let Some(key) = &key {
        save(&*txn, key, &response).await?;
    }
    txn.commit().await?;
    Ok(response)
}
