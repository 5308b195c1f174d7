//! Sessions: their rows, the economies and agenda links indexed beside
//! them, and the session filters.

use chrono::NaiveDate;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, sea_query::Query,
};
use tradewatch_common::{
    Error, Result, db,
    paging::{self, Page},
    types::Economy,
};
use uuid::Uuid;

use super::entity::{session, session_economy, session_link};
use crate::domain::{AgendaItem, Level, Participant, Session, SessionSpec, SessionStatus, Track};

/// The typed filters of `ListSessions`.
#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    pub track: Option<Track>,
    pub level: Option<Level>,
    pub status: Option<SessionStatus>,
    pub economy: Option<Economy>,
    pub dispute_id: Option<Uuid>,
    pub measure_id: Option<Uuid>,
    /// Sessions that end on or after this day.
    pub ends_on_from: Option<NaiveDate>,
    /// Sessions that start on or before this day.
    pub starts_on_to: Option<NaiveDate>,
}

pub async fn insert_session(conn: &impl ConnectionTrait, s: &Session) -> Result<()> {
    session::Entity::insert(session_to_row(s)?).exec_without_returning(conn).await?;
    write_session_index(conn, s).await
}

async fn write_session_index(conn: &impl ConnectionTrait, s: &Session) -> Result<()> {
    session_economy::Entity::delete_many().filter(session_economy::Column::SessionId.eq(s.id)).exec(conn).await?;
    session_link::Entity::delete_many().filter(session_link::Column::SessionId.eq(s.id)).exec(conn).await?;
    let economies = s
        .spec
        .economies
        .iter()
        .map(|e| session_economy::ActiveModel { session_id: Set(s.id), economy: Set(e.to_string()) })
        .collect();
    db::insert_chunked(conn, economies).await?;
    let mut links: Vec<(&str, Uuid)> = s.spec.agenda_disputes().into_iter().map(|(_, id)| ("dispute", id)).collect();
    links.extend(s.spec.agenda_measures().into_iter().map(|(_, id)| ("measure", id)));
    links.sort();
    links.dedup();
    let rows = links
        .into_iter()
        .map(|(kind, id)| session_link::ActiveModel {
            session_id: Set(s.id),
            kind: Set(kind.to_owned()),
            target_id: Set(id),
        })
        .collect();
    db::insert_chunked(conn, rows).await?;
    Ok(())
}

pub async fn get_session(conn: &impl ConnectionTrait, id: Uuid) -> Result<Option<Session>> {
    session::Entity::find_by_id(id).one(conn).await?.map(session_from_row).transpose()
}

pub async fn get_session_for_update(conn: &impl ConnectionTrait, id: Uuid) -> Result<Option<Session>> {
    session::Entity::find_by_id(id).lock_exclusive().one(conn).await?.map(session_from_row).transpose()
}

pub async fn list_sessions(
    conn: &impl ConnectionTrait,
    f: &SessionFilter,
    page: &Page,
) -> Result<(Vec<Session>, String)> {
    let mut q = session::Entity::find().order_by_asc(session::Column::Id);
    if let Some(t) = f.track {
        q = q.filter(session::Column::Track.eq(t.as_str()));
    }
    if let Some(l) = f.level {
        q = q.filter(session::Column::Level.eq(l.as_str()));
    }
    if let Some(s) = f.status {
        q = q.filter(session::Column::Status.eq(s.as_str()));
    }
    if let Some(from) = f.ends_on_from {
        q = q.filter(session::Column::EndsOn.gte(from));
    }
    if let Some(to) = f.starts_on_to {
        q = q.filter(session::Column::StartsOn.lte(to));
    }
    if let Some(e) = &f.economy {
        q = q.filter(
            session::Column::Id.in_subquery(
                Query::select()
                    .column(session_economy::Column::SessionId)
                    .from(session_economy::Entity)
                    .and_where(session_economy::Column::Economy.eq(e.as_str()))
                    .to_owned(),
            ),
        );
    }
    for (kind, id) in [("dispute", f.dispute_id), ("measure", f.measure_id)] {
        if let Some(id) = id {
            q = q.filter(
                session::Column::Id.in_subquery(
                    Query::select()
                        .column(session_link::Column::SessionId)
                        .from(session_link::Entity)
                        .and_where(session_link::Column::Kind.eq(kind))
                        .and_where(session_link::Column::TargetId.eq(id))
                        .to_owned(),
                ),
            );
        }
    }
    if let Some(cursor) = &page.after {
        q = q.filter(session::Column::Id.gt(paging::parse_id_cursor(cursor)?));
    }
    let rows = q.limit(page.fetch_limit()).all(conn).await?;
    let sessions = rows.into_iter().map(session_from_row).collect::<Result<Vec<_>>>()?;
    Ok(page.finish(sessions, |s| paging::id_cursor(s.id)))
}

/// Writes the session's new state if its version is still `expected`.
pub async fn update_session(
    conn: &impl ConnectionTrait,
    s: &mut Session,
    index_changed: bool,
    actor: &str,
) -> Result<()> {
    let expected = s.version;
    s.version += 1;
    s.update_time = tradewatch_common::now();
    actor.clone_into(&mut s.update_actor);
    db::update_versioned::<session::Entity>(conn, s.id, expected, session_to_row(s)?).await?;
    if index_changed {
        write_session_index(conn, s).await?;
    }
    Ok(())
}

/// A participant as the `participants` JSON column keeps it.
#[derive(serde::Serialize, serde::Deserialize)]
struct ParticipantJson {
    name: String,
    role: String,
    organization: String,
    economy: Option<String>,
}

/// An agenda item as the `agenda` JSON column keeps it.
#[derive(serde::Serialize, serde::Deserialize)]
struct AgendaItemJson {
    topic: String,
    dispute_ids: Vec<Uuid>,
    measure_ids: Vec<Uuid>,
}

fn session_to_row(s: &Session) -> Result<session::ActiveModel> {
    let json = |v: serde_json::Result<String>| v.map_err(Error::internal);
    let participants: Vec<ParticipantJson> = s
        .spec
        .participants
        .iter()
        .map(|p| ParticipantJson {
            name: p.name.clone(),
            role: p.role.clone(),
            organization: p.organization.clone(),
            economy: p.economy.clone(),
        })
        .collect();
    let agenda: Vec<AgendaItemJson> = s
        .spec
        .agenda
        .iter()
        .map(|a| AgendaItemJson {
            topic: a.topic.clone(),
            dispute_ids: a.dispute_ids.clone(),
            measure_ids: a.measure_ids.clone(),
        })
        .collect();
    Ok(session::ActiveModel {
        id: Set(s.id),
        title: Set(s.spec.title.clone()),
        track: Set(s.spec.track.as_str().to_owned()),
        level: Set(s.spec.level.as_str().to_owned()),
        host_economy: Set(s.spec.host_economy.to_string()),
        economies: Set(db::join_list(&s.spec.economies)),
        location: Set(s.spec.location.clone()),
        starts_on: Set(s.spec.starts_on),
        ends_on: Set(s.spec.ends_on),
        status: Set(s.status.as_str().to_owned()),
        participants: Set(json(serde_json::to_string(&participants))?),
        agenda: Set(json(serde_json::to_string(&agenda))?),
        outcome_summary: Set(s.spec.outcome_summary.clone()),
        source_url: Set(s.spec.source_url.clone()),
        version: Set(s.version),
        create_time: Set(s.create_time),
        update_time: Set(s.update_time),
        create_actor: Set(s.create_actor.clone()),
        update_actor: Set(s.update_actor.clone()),
    })
}

fn session_from_row(r: session::Model) -> Result<Session> {
    let id = r.id;
    let corrupt = |what: &str, why: String| db::corrupt("session", id, what, why);
    let participants: Vec<ParticipantJson> =
        serde_json::from_str(&r.participants).map_err(|e| corrupt("participants", e.to_string()))?;
    let participants = participants
        .into_iter()
        .map(|p| Participant { name: p.name, role: p.role, organization: p.organization, economy: p.economy })
        .collect();
    let agenda: Vec<AgendaItemJson> = serde_json::from_str(&r.agenda).map_err(|e| corrupt("agenda", e.to_string()))?;
    let agenda = agenda
        .into_iter()
        .map(|a| AgendaItem { topic: a.topic, dispute_ids: a.dispute_ids, measure_ids: a.measure_ids })
        .collect();
    Ok(Session {
        id,
        spec: SessionSpec {
            title: r.title,
            track: Track::parse(&r.track).ok_or_else(|| corrupt("track", r.track.clone()))?,
            level: Level::parse(&r.level).ok_or_else(|| corrupt("level", r.level.clone()))?,
            host_economy: Economy::parse(&r.host_economy).map_err(|e| corrupt("host economy", e))?,
            economies: db::split_list(&r.economies, Economy::parse).map_err(|e| corrupt("economies", e))?,
            location: r.location,
            starts_on: r.starts_on,
            ends_on: r.ends_on,
            participants,
            agenda,
            outcome_summary: r.outcome_summary,
            source_url: r.source_url,
        },
        status: SessionStatus::parse(&r.status).ok_or_else(|| corrupt("status", r.status.clone()))?,
        version: r.version,
        create_time: r.create_time,
        update_time: r.update_time,
        create_actor: r.create_actor,
        update_actor: r.update_actor,
    })
}
