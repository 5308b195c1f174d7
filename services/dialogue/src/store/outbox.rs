//! The outbox: effects of fulfilled commitments written in the transaction
//! that fulfils them, claimed and settled by the relay.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use tradewatch_common::{Result, db};
use uuid::Uuid;

use super::entity::outbox;
use crate::domain::{Effect, EffectOrder};

/// A queued effect with its delivery record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub order: EffectOrder,
    pub attempts: i32,
    /// The W3C `traceparent` of the call that queued it, so that the
    /// delivery continues that trace.
    pub traceparent: String,
}

pub async fn enqueue(conn: &impl ConnectionTrait, order: &EffectOrder) -> Result<()> {
    let now = tradewatch_common::now();
    outbox::Entity::insert(outbox::ActiveModel {
        id: Set(order.id),
        commitment_id: Set(order.commitment_id),
        effect: Set(order.effect.as_str().to_owned()),
        target_id: Set(order.target_id),
        effect_on: Set(order.effective_on),
        attempts: Set(0),
        next_attempt_at: Set(now),
        last_error: Set(String::new()),
        create_time: Set(now),
        traceparent: Set(tradewatch_common::telemetry::current_traceparent()),
    })
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

/// Claims up to `limit` effects due by `due_by`, oldest first, for `lease`:
/// their next attempt moves to the end of the lease, so no other relay takes
/// them meanwhile, and one whose relay died is due again when the lease
/// ends. On PostgreSQL the rows are locked `FOR UPDATE SKIP LOCKED`, so
/// replicas claiming at once each get others; SQLite has one writer at a time.
pub async fn claim(
    db: &sea_orm::DatabaseConnection,
    effects: &[Effect],
    due_by: DateTime<Utc>,
    lease: std::time::Duration,
    limit: u64,
) -> Result<Vec<Queued>> {
    use sea_orm::sea_query::{Expr, LockBehavior, LockType};
    let txn = db::begin_write(db).await?;
    let mut query = outbox::Entity::find()
        .filter(outbox::Column::NextAttemptAt.lte(due_by))
        .filter(outbox::Column::Effect.is_in(effects.iter().map(|e| e.as_str())))
        // Effects on one target go in the order they were queued: none is
        // claimed while an older one for its target waits (ids are UUIDv7).
        .filter(sea_orm::sea_query::Expr::cust(
            "NOT EXISTS (SELECT 1 FROM effect_outbox AS older \
             WHERE older.target_id = effect_outbox.target_id AND older.id < effect_outbox.id)",
        ))
        .order_by_asc(outbox::Column::NextAttemptAt)
        .order_by_asc(outbox::Column::Id)
        .limit(limit);
    if txn.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        query = query.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    let rows = query.all(&*txn).await?;
    if !rows.is_empty() {
        let until = tradewatch_common::now() + chrono::Duration::from_std(lease).unwrap_or_default();
        outbox::Entity::update_many()
            .col_expr(outbox::Column::NextAttemptAt, Expr::value(until))
            .filter(outbox::Column::Id.is_in(rows.iter().map(|r| r.id)))
            .exec(&*txn)
            .await?;
    }
    txn.commit().await?;
    rows.into_iter().map(queued_from_row).collect()
}

fn queued_from_row(r: outbox::Model) -> Result<Queued> {
    let effect = Effect::parse(&r.effect).ok_or_else(|| db::corrupt("outbox entry", r.id, "effect", &r.effect))?;
    Ok(Queued {
        order: EffectOrder {
            id: r.id,
            commitment_id: r.commitment_id,
            effect,
            target_id: r.target_id,
            effective_on: r.effect_on,
        },
        attempts: r.attempts,
        traceparent: r.traceparent,
    })
}

/// How many effects wait for delivery.
pub async fn pending_count(conn: &impl ConnectionTrait) -> Result<u64> {
    use sea_orm::PaginatorTrait;
    Ok(outbox::Entity::find().count(conn).await?)
}

/// How many effects wait, and since when the oldest of them has.
pub async fn backlog(conn: &impl ConnectionTrait) -> Result<(u64, Option<DateTime<Utc>>)> {
    use sea_orm::{PaginatorTrait, QueryOrder, QuerySelect};
    let count = outbox::Entity::find().count(conn).await?;
    let oldest = outbox::Entity::find()
        .order_by_asc(outbox::Column::CreateTime)
        .limit(1)
        .one(conn)
        .await?
        .map(|r| r.create_time);
    Ok((count, oldest))
}

/// Records a failed attempt and when to try again.
pub async fn retry_later(
    conn: &impl ConnectionTrait,
    id: Uuid,
    attempts: i32,
    at: DateTime<Utc>,
    error: &str,
) -> Result<()> {
    outbox::ActiveModel {
        id: Set(id),
        attempts: Set(attempts),
        next_attempt_at: Set(at),
        last_error: Set(error.to_owned()),
        ..Default::default()
    }
    .update(conn)
    .await?;
    Ok(())
}

/// Removes a delivered or refused effect; false if another relay already did.
pub async fn dequeue(conn: &impl ConnectionTrait, id: Uuid) -> Result<bool> {
    Ok(outbox::Entity::delete_by_id(id).exec(conn).await?.rows_affected > 0)
}
