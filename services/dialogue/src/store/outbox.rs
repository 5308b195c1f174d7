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

/// Effects whose next attempt is due, oldest first.
pub async fn due(conn: &impl ConnectionTrait, now: DateTime<Utc>, limit: u64) -> Result<Vec<Queued>> {
    let rows = outbox::Entity::find()
        .filter(outbox::Column::NextAttemptAt.lte(now))
        .order_by_asc(outbox::Column::NextAttemptAt)
        .order_by_asc(outbox::Column::Id)
        .limit(limit)
        .all(conn)
        .await?;
    rows.into_iter()
        .map(|r| {
            let effect =
                Effect::parse(&r.effect).ok_or_else(|| db::corrupt("outbox entry", r.id, "effect", &r.effect))?;
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
        })
        .collect()
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
