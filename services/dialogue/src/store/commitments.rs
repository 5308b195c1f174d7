//! Commitments: their rows, their owners indexed beside them, and the
//! commitment filters.

use chrono::NaiveDate;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, sea_query::Query,
};
use tradewatch_common::{
    Result, db,
    paging::{self, Page},
    types::Economy,
};
use uuid::Uuid;

use super::entity::{commitment, commitment_owner};
use crate::domain::{Commitment, CommitmentSpec, CommitmentStatus, Effect, EffectState};

/// The typed filters of `ListCommitments`.
#[derive(Debug, Clone, Default)]
pub struct CommitmentFilter {
    pub session_id: Option<Uuid>,
    pub owner_economy: Option<Economy>,
    pub status: Option<CommitmentStatus>,
    pub dispute_id: Option<Uuid>,
    pub measure_id: Option<Uuid>,
    pub overdue_on: Option<NaiveDate>,
}

pub async fn insert_commitment(conn: &impl ConnectionTrait, c: &Commitment) -> Result<()> {
    commitment::Entity::insert(commitment_to_row(c)).exec_without_returning(conn).await?;
    let owners = c
        .spec
        .owner_economies
        .iter()
        .map(|e| commitment_owner::ActiveModel { commitment_id: Set(c.id), economy: Set(e.to_string()) })
        .collect();
    db::insert_chunked(conn, owners).await?;
    Ok(())
}

pub async fn get_commitment(conn: &impl ConnectionTrait, id: Uuid) -> Result<Option<Commitment>> {
    commitment::Entity::find_by_id(id).one(conn).await?.map(commitment_from_row).transpose()
}

pub async fn get_commitment_for_update(conn: &impl ConnectionTrait, id: Uuid) -> Result<Option<Commitment>> {
    commitment::Entity::find_by_id(id).lock_exclusive().one(conn).await?.map(commitment_from_row).transpose()
}

pub async fn list_commitments(
    conn: &impl ConnectionTrait,
    f: &CommitmentFilter,
    page: &Page,
) -> Result<(Vec<Commitment>, String)> {
    let mut q = commitment::Entity::find().order_by_asc(commitment::Column::Id);
    if let Some(s) = f.session_id {
        q = q.filter(commitment::Column::SessionId.eq(s));
    }
    if let Some(e) = &f.owner_economy {
        q = q.filter(
            commitment::Column::Id.in_subquery(
                Query::select()
                    .column(commitment_owner::Column::CommitmentId)
                    .from(commitment_owner::Entity)
                    .and_where(commitment_owner::Column::Economy.eq(e.as_str()))
                    .to_owned(),
            ),
        );
    }
    if let Some(s) = f.status {
        q = q.filter(commitment::Column::Status.eq(s.as_str()));
    }
    if let Some(d) = f.dispute_id {
        q = q.filter(commitment::Column::DisputeId.eq(d));
    }
    if let Some(m) = f.measure_id {
        q = q.filter(commitment::Column::MeasureId.eq(m));
    }
    if let Some(day) = f.overdue_on {
        // Overdue: still pending, as the domain says, and due before the day.
        let pending: Vec<&str> = CommitmentStatus::ALL.iter().filter(|s| s.is_pending()).map(|s| s.as_str()).collect();
        q = q.filter(commitment::Column::Status.is_in(pending)).filter(commitment::Column::DueOn.lt(day));
    }
    if let Some(cursor) = &page.after {
        q = q.filter(commitment::Column::Id.gt(paging::parse_id_cursor(cursor)?));
    }
    let rows = q.limit(page.fetch_limit()).all(conn).await?;
    let commitments = rows.into_iter().map(commitment_from_row).collect::<Result<Vec<_>>>()?;
    Ok(page.finish(commitments, |c| paging::id_cursor(c.id)))
}

/// Writes the commitment's new state if its version is still `expected`.
pub async fn update_commitment(conn: &impl ConnectionTrait, c: &mut Commitment, actor: &str) -> Result<()> {
    let expected = c.version;
    c.version += 1;
    c.update_time = tradewatch_common::now();
    actor.clone_into(&mut c.update_actor);
    db::update_versioned::<commitment::Entity>(conn, c.id, expected, commitment_to_row(c)).await
}

fn commitment_to_row(c: &Commitment) -> commitment::ActiveModel {
    commitment::ActiveModel {
        id: Set(c.id),
        session_id: Set(c.session_id),
        description: Set(c.spec.description.clone()),
        owner_economies: Set(db::join_list(&c.spec.owner_economies)),
        due_on: Set(c.spec.due_on),
        status: Set(c.status.as_str().to_owned()),
        dispute_id: Set(c.spec.dispute_id),
        measure_id: Set(c.spec.measure_id),
        effect: Set(c.spec.effect.as_str().to_owned()),
        effect_on: Set(c.spec.effective_on),
        effect_state: Set(c.effect_state.as_str().to_owned()),
        effect_detail: Set(c.effect_detail.clone()),
        version: Set(c.version),
        create_time: Set(c.create_time),
        update_time: Set(c.update_time),
        create_actor: Set(c.create_actor.clone()),
        update_actor: Set(c.update_actor.clone()),
        status_actor: Set(c.status_actor.clone()),
    }
}

fn commitment_from_row(r: commitment::Model) -> Result<Commitment> {
    let id = r.id;
    let corrupt = |what: &str, why: String| db::corrupt("commitment", id, what, why);
    Ok(Commitment {
        id,
        session_id: r.session_id,
        spec: CommitmentSpec {
            description: r.description,
            owner_economies: db::split_list(&r.owner_economies, Economy::parse).map_err(|e| corrupt("owners", e))?,
            due_on: r.due_on,
            dispute_id: r.dispute_id,
            measure_id: r.measure_id,
            effect: Effect::parse(&r.effect).ok_or_else(|| corrupt("effect", r.effect.clone()))?,
            effective_on: r.effect_on,
        },
        status: CommitmentStatus::parse(&r.status).ok_or_else(|| corrupt("status", r.status.clone()))?,
        effect_state: EffectState::parse(&r.effect_state)
            .ok_or_else(|| corrupt("effect state", r.effect_state.clone()))?,
        effect_detail: r.effect_detail,
        version: r.version,
        create_time: r.create_time,
        update_time: r.update_time,
        create_actor: r.create_actor,
        update_actor: r.update_actor,
        status_actor: r.status_actor,
    })
}
