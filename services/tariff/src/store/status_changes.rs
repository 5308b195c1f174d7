//! The status timeline of measures: its rows, and a measure's status on a
//! day computed in SQL for the list filters. Measures read it; it reads
//! nothing of theirs.

use chrono::NaiveDate;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use tradewatch_common::{
    Result, db,
    paging::{self, Page},
};
use uuid::Uuid;

use super::entity::status_change;
use crate::domain::{MeasureStatus, StatusChange};

pub(super) fn status_change_to_row(c: &StatusChange) -> status_change::ActiveModel {
    status_change::ActiveModel {
        id: Set(c.id),
        measure_id: Set(c.measure_id),
        status: Set(c.status.as_str().to_owned()),
        effective_on: Set(c.effective_on),
        reason: Set(c.note.clone()),
        change_time: Set(c.change_time),
        actor: Set(c.actor.clone()),
    }
}

pub(super) async fn write_status_change(conn: &impl ConnectionTrait, c: &StatusChange) -> Result<()> {
    status_change::Entity::insert(status_change_to_row(c)).exec_without_returning(conn).await?;
    Ok(())
}

/// The status of a measure on the day bound to each `?` (six times), in
/// SQL, as [`Measure::status_on`] computes it: the latest change effective
/// on or before the day, where REVOKED and EXPIRED win, a suspension yields to
/// the dates' EXPIRED, and otherwise the dates decide.
const STATUS_ON_DAY: &str = "CASE \
    WHEN (SELECT sc.status FROM measure_status_changes sc WHERE sc.measure_id = measures.id AND sc.effective_on <= ? \
          ORDER BY sc.effective_on DESC, sc.id DESC LIMIT 1) IN ('REVOKED', 'EXPIRED') \
    THEN (SELECT sc.status FROM measure_status_changes sc WHERE sc.measure_id = measures.id AND sc.effective_on <= ? \
          ORDER BY sc.effective_on DESC, sc.id DESC LIMIT 1) \
    WHEN ? >= measures.effective_from AND measures.effective_to IS NOT NULL AND ? > measures.effective_to THEN 'EXPIRED' \
    WHEN (SELECT sc.status FROM measure_status_changes sc WHERE sc.measure_id = measures.id AND sc.effective_on <= ? \
          ORDER BY sc.effective_on DESC, sc.id DESC LIMIT 1) = 'SUSPENDED' THEN 'SUSPENDED' \
    WHEN ? < measures.effective_from THEN 'ANNOUNCED' \
    ELSE 'IN_FORCE' END";

/// A filter: the measure's status on `day` is `status`.
pub(super) fn status_on_day_is(
    conn: &impl ConnectionTrait,
    status: MeasureStatus,
    day: NaiveDate,
) -> sea_orm::sea_query::SimpleExpr {
    let mut values: Vec<sea_orm::Value> = vec![day.into(); 6];
    values.push(status.as_str().into());
    db::custom_expr(conn, &format!("({STATUS_ON_DAY}) = ?"), values)
}

/// One page of a measure's status timeline, in the order the changes take
/// hold.
pub async fn list_status_changes(
    conn: &impl ConnectionTrait,
    measure_id: Uuid,
    page: &Page,
) -> Result<(Vec<StatusChange>, String)> {
    let mut query = status_change::Entity::find()
        .filter(status_change::Column::MeasureId.eq(measure_id))
        .order_by_asc(status_change::Column::EffectiveOn)
        .order_by_asc(status_change::Column::Id);
    if let Some(cursor) = &page.after {
        let (day, id) = paging::parse_dated_cursor(cursor)?;
        query = query.filter(Condition::any().add(status_change::Column::EffectiveOn.gt(day)).add(
            Condition::all().add(status_change::Column::EffectiveOn.eq(day)).add(status_change::Column::Id.gt(id)),
        ));
    }
    let rows = query.limit(page.fetch_limit()).all(conn).await?;
    let changes = rows.into_iter().map(status_change_from_row).collect::<Result<Vec<_>>>()?;
    Ok(page.finish(changes, |c| paging::dated_cursor(c.effective_on, c.id)))
}

pub(super) fn status_change_from_row(c: status_change::Model) -> Result<StatusChange> {
    Ok(StatusChange {
        id: c.id,
        measure_id: c.measure_id,
        status: MeasureStatus::parse(&c.status)
            .ok_or_else(|| db::corrupt("measure", c.measure_id, "status", &c.status))?,
        effective_on: c.effective_on,
        note: c.reason,
        change_time: c.change_time,
        actor: c.actor,
    })
}
