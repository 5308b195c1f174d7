//! The dispute database: SeaORM entities, migrations and the queries the API
//! runs. Functions take any connection, so the API decides which run inside
//! one transaction. Domain types in, domain types out.

pub mod entity;
pub mod migration;

use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::Query,
};
use tradewatch_common::{
    Error, Result, db,
    paging::{self, Page},
    types::{Economy, HsCode, parse_id},
};
use uuid::Uuid;

use self::entity::{dispute, dispute_code, dispute_measure, event};
pub use self::migration::Migrator;
use crate::domain::{Dispute, DisputeSpec, Event, EventKind, Forum, Stage};

/// The typed filters of `ListDisputes`.
#[derive(Debug, Clone, Default)]
pub struct DisputeFilter {
    /// Complainant or respondent.
    pub economy: Option<Economy>,
    pub complainant: Option<Economy>,
    pub respondent: Option<Economy>,
    pub stage: Option<Stage>,
    pub forum: Option<Forum>,
    pub hs_code: Option<HsCode>,
    pub measure_id: Option<Uuid>,
    pub open: Option<bool>,
}

/// Inserts a new dispute and its CREATED event. A duplicate reference is
/// ALREADY_EXISTS.
pub async fn insert_dispute(conn: &impl ConnectionTrait, d: &Dispute, created: &Event) -> Result<()> {
    if let Err(err) = dispute::Entity::insert(dispute_to_row(d)).exec_without_returning(conn).await {
        return Err(if db::is_unique_violation(&err) {
            Error::already_exists("dispute", "reference", &d.spec.reference)
        } else {
            err.into()
        });
    }
    write_links(conn, d).await?;
    insert_event(conn, created).await
}

async fn write_links(conn: &impl ConnectionTrait, d: &Dispute) -> Result<()> {
    dispute_code::Entity::delete_many().filter(dispute_code::Column::DisputeId.eq(d.id)).exec(conn).await?;
    dispute_measure::Entity::delete_many().filter(dispute_measure::Column::DisputeId.eq(d.id)).exec(conn).await?;
    let codes = d
        .spec
        .hs_codes
        .iter()
        .map(|c| dispute_code::ActiveModel { dispute_id: Set(d.id), hs_code: Set(c.to_string()) })
        .collect();
    db::insert_chunked(conn, codes).await?;
    let measures = d
        .spec
        .measure_ids
        .iter()
        .map(|m| dispute_measure::ActiveModel { dispute_id: Set(d.id), measure_id: Set(*m) })
        .collect();
    db::insert_chunked(conn, measures).await?;
    Ok(())
}

/// Appends one event to a timeline.
pub async fn insert_event(conn: &impl ConnectionTrait, e: &Event) -> Result<()> {
    event::Entity::insert(event::ActiveModel {
        id: Set(e.id),
        dispute_id: Set(e.dispute_id),
        kind: Set(e.kind.as_str().to_owned()),
        occurred_on: Set(e.occurred_on),
        from_stage: Set(e.from_stage.map(|s| s.as_str().to_owned())),
        to_stage: Set(e.to_stage.map(|s| s.as_str().to_owned())),
        description: Set(e.description.clone()),
        create_time: Set(e.create_time),
        actor: Set(e.actor.clone()),
    })
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

pub async fn get_dispute(conn: &impl ConnectionTrait, id: Uuid) -> Result<Option<Dispute>> {
    dispute::Entity::find_by_id(id).one(conn).await?.map(dispute_from_row).transpose()
}

/// One dispute, locked for the rest of the transaction (`FOR UPDATE` on
/// PostgreSQL; on SQLite the IMMEDIATE transaction holds the write lock).
pub async fn get_dispute_for_update(conn: &impl ConnectionTrait, id: Uuid) -> Result<Option<Dispute>> {
    dispute::Entity::find_by_id(id).lock_exclusive().one(conn).await?.map(dispute_from_row).transpose()
}

pub async fn get_disputes(conn: &impl ConnectionTrait, ids: &[Uuid]) -> Result<Vec<Dispute>> {
    let rows = dispute::Entity::find().filter(dispute::Column::Id.is_in(ids.iter().copied())).all(conn).await?;
    rows.into_iter().map(dispute_from_row).collect()
}

pub async fn dispute_exists(conn: &impl ConnectionTrait, id: Uuid) -> Result<bool> {
    Ok(dispute::Entity::find_by_id(id)
        .select_only()
        .column(dispute::Column::Id)
        .into_tuple::<Uuid>()
        .one(conn)
        .await?
        .is_some())
}

/// One page of disputes in id order (creation order).
pub async fn list_disputes(
    conn: &impl ConnectionTrait,
    f: &DisputeFilter,
    page: &Page,
) -> Result<(Vec<Dispute>, String)> {
    let mut q = dispute::Entity::find().order_by_asc(dispute::Column::Id);
    if let Some(e) = &f.economy {
        q = q.filter(
            Condition::any()
                .add(dispute::Column::Complainant.eq(e.as_str()))
                .add(dispute::Column::Respondent.eq(e.as_str())),
        );
    }
    if let Some(e) = &f.complainant {
        q = q.filter(dispute::Column::Complainant.eq(e.as_str()));
    }
    if let Some(e) = &f.respondent {
        q = q.filter(dispute::Column::Respondent.eq(e.as_str()));
    }
    if let Some(s) = f.stage {
        q = q.filter(dispute::Column::Stage.eq(s.as_str()));
    }
    if let Some(fo) = f.forum {
        q = q.filter(dispute::Column::Forum.eq(fo.as_str()));
    }
    if let Some(open) = f.open {
        q = q.filter(if open { dispute::Column::ClosedOn.is_null() } else { dispute::Column::ClosedOn.is_not_null() });
    }
    if let Some(code) = &f.hs_code {
        let shorter: Vec<String> = code.prefixes().iter().map(ToString::to_string).collect();
        q = q.filter(
            dispute::Column::Id.in_subquery(
                Query::select()
                    .column(dispute_code::Column::DisputeId)
                    .from(dispute_code::Entity)
                    .cond_where(
                        Condition::any().add(dispute_code::Column::HsCode.is_in(shorter)).add(
                            Condition::all()
                                .add(dispute_code::Column::HsCode.gte(code.as_str()))
                                .add(dispute_code::Column::HsCode.lt(format!("{code}:"))),
                        ),
                    )
                    .to_owned(),
            ),
        );
    }
    if let Some(m) = f.measure_id {
        q = q.filter(
            dispute::Column::Id.in_subquery(
                Query::select()
                    .column(dispute_measure::Column::DisputeId)
                    .from(dispute_measure::Entity)
                    .and_where(dispute_measure::Column::MeasureId.eq(m))
                    .to_owned(),
            ),
        );
    }
    if let Some(cursor) = &page.after {
        q = q.filter(dispute::Column::Id.gt(paging::parse_id_cursor(cursor)?));
    }
    let rows = q.limit(page.fetch_limit()).all(conn).await?;
    let disputes = rows.into_iter().map(dispute_from_row).collect::<Result<Vec<_>>>()?;
    Ok(page.finish(disputes, |d| paging::id_cursor(d.id)))
}

/// Writes the dispute's new state, by `actor`, if its version is still
/// `expected`, and bumps the version; another writer in between is ABORTED.
pub async fn update_dispute(
    conn: &impl ConnectionTrait,
    d: &mut Dispute,
    links_changed: bool,
    actor: &str,
) -> Result<()> {
    let expected = d.version;
    d.version += 1;
    d.update_time = tradewatch_common::now();
    actor.clone_into(&mut d.update_actor);
    db::update_versioned::<dispute::Entity>(conn, d.id, expected, dispute_to_row(d)).await?;
    if links_changed {
        write_links(conn, d).await?;
    }
    Ok(())
}

/// One page of a dispute's timeline, oldest first: by the day each event
/// occurred, then in the order they were recorded.
pub async fn list_events(conn: &impl ConnectionTrait, dispute_id: Uuid, page: &Page) -> Result<(Vec<Event>, String)> {
    let mut q = event::Entity::find()
        .filter(event::Column::DisputeId.eq(dispute_id))
        .order_by_asc(event::Column::OccurredOn)
        .order_by_asc(event::Column::Id);
    if let Some(cursor) = &page.after {
        let (day, id) = paging::parse_dated_cursor(cursor)?;
        q = q.filter(
            Condition::any()
                .add(event::Column::OccurredOn.gt(day))
                .add(Condition::all().add(event::Column::OccurredOn.eq(day)).add(event::Column::Id.gt(id))),
        );
    }
    let rows = q.limit(page.fetch_limit()).all(conn).await?;
    let events = rows.into_iter().map(event_from_row).collect::<Result<Vec<_>>>()?;
    Ok(page.finish(events, |e| paging::dated_cursor(e.occurred_on, e.id)))
}

fn dispute_from_row(r: dispute::Model) -> Result<Dispute> {
    let id = r.id;
    let corrupt = |what: &str, why: String| db::corrupt("dispute", id, what, why);
    let spec = DisputeSpec {
        reference: r.reference,
        title: r.title,
        summary: r.summary,
        complainant: Economy::parse(&r.complainant).map_err(|e| corrupt("complainant", e))?,
        respondent: Economy::parse(&r.respondent).map_err(|e| corrupt("respondent", e))?,
        third_parties: db::split_list(&r.third_parties, Economy::parse).map_err(|e| corrupt("third parties", e))?,
        forum: Forum::parse(&r.forum).ok_or_else(|| corrupt("forum", r.forum.clone()))?,
        hs_codes: db::split_list(&r.hs_codes, HsCode::parse).map_err(|e| corrupt("hs codes", e))?,
        measure_ids: db::split_list(&r.measure_ids, parse_id).map_err(|e| corrupt("measure ids", e))?,
        legal_basis: r.legal_basis,
        opened_on: r.opened_on,
        source_url: r.source_url,
    };
    Ok(Dispute {
        id,
        spec,
        stage: Stage::parse(&r.stage).ok_or_else(|| corrupt("stage", r.stage.clone()))?,
        closed_on: r.closed_on,
        version: r.version,
        create_time: r.create_time,
        update_time: r.update_time,
        create_actor: r.create_actor,
        update_actor: r.update_actor,
    })
}

fn event_from_row(r: event::Model) -> Result<Event> {
    let corrupt = |what: &str, why: String| db::corrupt("dispute event", r.id, what, why);
    let stage = |s: &Option<String>| -> Result<Option<Stage>> {
        s.as_deref().map(|s| Stage::parse(s).ok_or_else(|| corrupt("stage", s.to_owned()))).transpose()
    };
    Ok(Event {
        id: r.id,
        dispute_id: r.dispute_id,
        kind: EventKind::parse(&r.kind).ok_or_else(|| corrupt("kind", r.kind.clone()))?,
        occurred_on: r.occurred_on,
        from_stage: stage(&r.from_stage)?,
        to_stage: stage(&r.to_stage)?,
        description: r.description,
        create_time: r.create_time,
        actor: r.actor,
    })
}

fn dispute_to_row(d: &Dispute) -> dispute::ActiveModel {
    let s = &d.spec;
    dispute::ActiveModel {
        id: Set(d.id),
        reference: Set(s.reference.clone()),
        title: Set(s.title.clone()),
        summary: Set(s.summary.clone()),
        complainant: Set(s.complainant.to_string()),
        respondent: Set(s.respondent.to_string()),
        third_parties: Set(db::join_list(&s.third_parties)),
        forum: Set(s.forum.as_str().to_owned()),
        stage: Set(d.stage.as_str().to_owned()),
        hs_codes: Set(db::join_list(&s.hs_codes)),
        measure_ids: Set(db::join_list(&s.measure_ids)),
        legal_basis: Set(s.legal_basis.clone()),
        opened_on: Set(s.opened_on),
        closed_on: Set(d.closed_on),
        source_url: Set(s.source_url.clone()),
        version: Set(d.version),
        create_time: Set(d.create_time),
        update_time: Set(d.update_time),
        create_actor: Set(d.create_actor.clone()),
        update_actor: Set(d.update_actor.clone()),
    }
}
