//! Measures: their rows, the HS prefixes and origins indexed beside them,
//! the list filters and the candidates of duty resolution.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::Query,
};
use tradewatch_common::{
    Error, Reason, Result, db,
    paging::{self, Page},
    types::{Economy, HsCode, Money, format_decimal, parse_decimal},
};
use uuid::Uuid;

use super::entity::{measure, measure_code, measure_target, status_change};
use crate::domain::{Measure, MeasureKind, MeasureSpec, MeasureStatus, QuotaTerms, SpecificDuty, StatusChange};

use super::status_changes::{status_change_from_row, status_change_to_row, status_on_day_is, write_status_change};

/// The typed filters of `ListMeasures`.
#[derive(Debug, Clone, Default)]
pub struct MeasureFilter {
    pub imposing_economy: Option<Economy>,
    pub target_economy: Option<Economy>,
    pub kind: Option<MeasureKind>,
    /// With `today`: the status that day.
    pub status: Option<(MeasureStatus, NaiveDate)>,
    pub hs_code: Option<HsCode>,
    pub in_force_on: Option<NaiveDate>,
}

/// Inserts a new measure with its first status change. A duplicate
/// reference is ALREADY_EXISTS.
pub async fn insert_measure(conn: &impl ConnectionTrait, m: &Measure) -> Result<()> {
    if let Err(err) = measure::Entity::insert(measure_to_row(m)).exec_without_returning(conn).await {
        return Err(if db::is_unique_violation(&err) {
            Error::already_exists("measure", "reference", &m.spec.reference)
        } else {
            err.into()
        });
    }
    write_codes_and_targets(conn, m).await?;
    for change in &m.changes {
        write_status_change(conn, change).await?;
    }
    Ok(())
}

/// Inserts new measures, none of whose references is stored, with their
/// first status changes: one multi-row statement per table (in chunks under
/// the bind limit), not four per measure. A reference stored meanwhile by a
/// concurrent write is ALREADY_EXISTS.
pub async fn insert_measures(conn: &impl ConnectionTrait, measures: &[Measure]) -> Result<()> {
    if let Err(err) = db::insert_chunked(conn, measures.iter().map(measure_to_row).collect()).await {
        return Err(if db::is_unique_violation(&err) {
            Error::already_exists("measure", "reference", "one of the references of the import")
        } else {
            err.into()
        });
    }
    let codes = measures
        .iter()
        .flat_map(|m| {
            m.spec
                .hs_codes
                .iter()
                .map(|c| measure_code::ActiveModel { measure_id: Set(m.id), hs_code: Set(c.to_string()) })
        })
        .collect();
    db::insert_chunked(conn, codes).await?;
    let targets = measures
        .iter()
        .flat_map(|m| {
            m.spec
                .target_economies
                .iter()
                .map(|e| measure_target::ActiveModel { measure_id: Set(m.id), economy: Set(e.to_string()) })
        })
        .collect();
    db::insert_chunked(conn, targets).await?;
    let changes = measures.iter().flat_map(|m| m.changes.iter().map(status_change_to_row)).collect();
    db::insert_chunked(conn, changes).await?;
    Ok(())
}

/// The stored measures with these references, by reference.
pub async fn measures_by_reference(
    conn: &impl ConnectionTrait,
    references: &[&str],
) -> Result<HashMap<String, Measure>> {
    let mut rows = Vec::new();
    if conn.get_database_backend() == sea_orm::DbBackend::Postgres {
        let any = sea_orm::sea_query::Expr::cust_with_values(
            r#""measures"."reference" = ANY($1::text[])"#,
            [db::text_array(references.iter().copied())],
        );
        rows = measure::Entity::find().filter(any).all(conn).await?;
    } else {
        for chunk in references.chunks(db::ID_CHUNK) {
            rows.extend(
                measure::Entity::find()
                    .filter(measure::Column::Reference.is_in(chunk.iter().map(|r| (*r).to_owned())))
                    .all(conn)
                    .await?,
            );
        }
    }
    Ok(with_changes(conn, rows).await?.into_iter().map(|m| (m.spec.reference.clone(), m)).collect())
}

/// Records a status change and bumps the measure's version.
pub async fn insert_status_change(conn: &impl ConnectionTrait, m: &mut Measure, change: StatusChange) -> Result<()> {
    write_status_change(conn, &change).await?;
    let actor = change.actor.clone();
    m.push_change(change);
    update_measure(conn, m, false, &actor).await
}

async fn write_codes_and_targets(conn: &impl ConnectionTrait, m: &Measure) -> Result<()> {
    measure_code::Entity::delete_many().filter(measure_code::Column::MeasureId.eq(m.id)).exec(conn).await?;
    measure_target::Entity::delete_many().filter(measure_target::Column::MeasureId.eq(m.id)).exec(conn).await?;
    let codes = m
        .spec
        .hs_codes
        .iter()
        .map(|c| measure_code::ActiveModel { measure_id: Set(m.id), hs_code: Set(c.to_string()) })
        .collect();
    db::insert_chunked(conn, codes).await?;
    let targets = m
        .spec
        .target_economies
        .iter()
        .map(|e| measure_target::ActiveModel { measure_id: Set(m.id), economy: Set(e.to_string()) })
        .collect();
    db::insert_chunked(conn, targets).await?;
    Ok(())
}

/// One measure, or None.
pub async fn get_measure(conn: &impl ConnectionTrait, id: Uuid) -> Result<Option<Measure>> {
    let Some(row) = measure::Entity::find_by_id(id).one(conn).await? else {
        return Ok(None);
    };
    Ok(with_changes(conn, vec![row]).await?.pop())
}

/// One measure, locked for the rest of the transaction (`FOR UPDATE` on
/// PostgreSQL; on SQLite the IMMEDIATE transaction already holds the write
/// lock).
pub async fn get_measure_for_update(conn: &impl ConnectionTrait, id: Uuid) -> Result<Option<Measure>> {
    let Some(row) = measure::Entity::find_by_id(id).lock_exclusive().one(conn).await? else {
        return Ok(None);
    };
    Ok(with_changes(conn, vec![row]).await?.pop())
}

/// The measures with these ids that exist, in no particular order.
pub async fn get_measures(conn: &impl ConnectionTrait, ids: &[Uuid]) -> Result<Vec<Measure>> {
    let rows = measure::Entity::find().filter(measure::Column::Id.is_in(ids.iter().copied())).all(conn).await?;
    with_changes(conn, rows).await
}

/// Most measures of one importer that may cover one tariff line. A real
/// schedule has a handful (the MFN lines at each prefix length and a few
/// special measures); past this, resolution is refused rather than made to do
/// work without bound.
pub const MAX_CANDIDATES: u64 = 1_000;

/// The importer's measures whose prefixes cover `code` and whose effective
/// period holds `day`: the candidates of `ResolveDuty`. The measures come by
/// primary key from the covering index of codes (the importer is compared
/// without its index, so no planner walks all of an importer's measures),
/// at most [`MAX_CANDIDATES`] of them, then their timelines.
pub async fn resolution_candidates(
    conn: &impl ConnectionTrait,
    importer: &Economy,
    code: &HsCode,
    day: NaiveDate,
) -> Result<Vec<Measure>> {
    let prefixes: Vec<String> = code.prefixes().iter().map(ToString::to_string).collect();
    let rows = measure::Entity::find()
        .filter(
            measure::Column::Id.in_subquery(
                Query::select()
                    .distinct()
                    .column(measure_code::Column::MeasureId)
                    .from(measure_code::Entity)
                    .and_where(measure_code::Column::HsCode.is_in(prefixes))
                    .to_owned(),
            ),
        )
        .filter(db::custom_expr(conn, "(measures.imposing_economy || '') = ?", vec![importer.as_str().into()]))
        // In effect that day (the status is read from the timeline later);
        // COALESCE keeps the planner off the effective_from index too.
        .filter(db::custom_expr(
            conn,
            "COALESCE(measures.effective_from, measures.effective_from) <= ? \
             AND (measures.effective_to IS NULL OR measures.effective_to >= ?)",
            vec![day.into(), day.into()],
        ))
        .limit(MAX_CANDIDATES + 1)
        .all(conn)
        .await?;
    if u64::try_from(rows.len()).unwrap_or(u64::MAX) > MAX_CANDIDATES {
        return Err(too_many_measures(importer, code.as_str(), day));
    }
    with_changes(conn, rows).await
}

/// FAILED_PRECONDITION `TOO_MANY_MEASURES`: more than [`MAX_CANDIDATES`]
/// measures of `importer` in effect on `day` cover `code`.
pub(super) fn too_many_measures(importer: &Economy, code: &str, day: NaiveDate) -> Error {
    Error::failed_precondition(
        Reason::TooManyMeasures,
        format!(
            "more than {MAX_CANDIDATES} measures of {importer} in effect on {} cover {code}: the schedule is too \
             dense to resolve; end the measures that no longer apply (effective_to)",
            tradewatch_common::types::format_date(day)
        ),
    )
    .with_metadata("max_measures", MAX_CANDIDATES.to_string())
}

/// What the schedule reads of a measure's row: not its source, note,
/// announcement, actors or times.
#[derive(sea_orm::DerivePartialModel)]
#[sea_orm(entity = "measure::Entity")]
struct RateRow {
    id: Uuid,
    reference: String,
    title: String,
    imposing_economy: String,
    target_economies: String,
    kind: String,
    hs_codes: String,
    excluded_hs_codes: String,
    ad_valorem_percent: String,
    specific_amount: Option<String>,
    specific_currency: Option<String>,
    specific_unit: Option<String>,
    effective_from: NaiveDate,
    effective_to: Option<NaiveDate>,
    quota_quantity: Option<String>,
    quota_unit: Option<String>,
    quota_period_start: Option<NaiveDate>,
    quota_period_end: Option<NaiveDate>,
    quota_used: Option<String>,
}

impl RateRow {
    /// The row, what the schedule does not read left empty.
    fn into_row(self) -> measure::Model {
        measure::Model {
            id: self.id,
            reference: self.reference,
            title: self.title,
            imposing_economy: self.imposing_economy,
            target_economies: self.target_economies,
            kind: self.kind,
            hs_codes: self.hs_codes,
            excluded_hs_codes: self.excluded_hs_codes,
            ad_valorem_percent: self.ad_valorem_percent,
            specific_amount: self.specific_amount,
            specific_currency: self.specific_currency,
            specific_unit: self.specific_unit,
            announced_on: None,
            effective_from: self.effective_from,
            effective_to: self.effective_to,
            quota_quantity: self.quota_quantity,
            quota_unit: self.quota_unit,
            quota_period_start: self.quota_period_start,
            quota_period_end: self.quota_period_end,
            quota_used: self.quota_used,
            source_url: String::new(),
            notes: String::new(),
            version: 0,
            create_time: DateTime::UNIX_EPOCH,
            update_time: DateTime::UNIX_EPOCH,
            create_actor: String::new(),
            update_actor: String::new(),
        }
    }
}

/// One page of every measure as the schedule reads it, in id order after
/// `after` (from the first when None), at most `limit`: what it loads page
/// by page, so that a national schedule never sits in memory as rows and
/// measures at once. Only what a [`crate::domain::Levy`] holds is read: no
/// source, note, announcement, actors or times, and the timelines only of
/// the measures with a change the dates alone do not give (a suspension,
/// revocation or expiry; a first IN_FORCE or ANNOUNCED defers to the dates).
/// Not for an answer that shows a measure whole.
pub async fn schedule_page(conn: &impl ConnectionTrait, after: Option<Uuid>, limit: u64) -> Result<Vec<Measure>> {
    let mut query = measure::Entity::find().order_by_asc(measure::Column::Id).limit(limit);
    if let Some(after) = after {
        query = query.filter(measure::Column::Id.gt(after));
    }
    let rows: Vec<RateRow> = query.into_partial_model().all(conn).await?;
    let Some(last) = rows.last().map(|r| r.id) else { return Ok(vec![]) };
    // The page's timelines in one query: of the measures of ids after
    // `after` up to the page's last, those with a change that does not defer.
    let in_page = |mut c: Condition| {
        c = c.add(status_change::Column::MeasureId.lte(last));
        if let Some(after) = after {
            c = c.add(status_change::Column::MeasureId.gt(after));
        }
        c
    };
    let defers = [MeasureStatus::InForce.as_str(), MeasureStatus::Announced.as_str()];
    let changed = Query::select()
        .column(status_change::Column::MeasureId)
        .from(status_change::Entity)
        .cond_where(in_page(Condition::all()).add(status_change::Column::Status.is_not_in(defers)))
        .to_owned();
    let changes = status_change::Entity::find()
        .filter(in_page(Condition::all()).add(status_change::Column::MeasureId.in_subquery(changed)))
        .order_by_asc(status_change::Column::EffectiveOn)
        .order_by_asc(status_change::Column::Id)
        .all(conn)
        .await?;
    attach_changes(rows.into_iter().map(RateRow::into_row).collect(), changes)
}

/// One page of measures in id order (creation order). Every filter,
/// status on a day included, is evaluated in SQL: a page costs one query
/// however many measures the filters pass over.
pub async fn list_measures(
    conn: &impl ConnectionTrait,
    filter: &MeasureFilter,
    page: &Page,
) -> Result<(Vec<Measure>, String)> {
    let mut query = measure::Entity::find().order_by_asc(measure::Column::Id);
    if let Some(e) = &filter.imposing_economy {
        query = query.filter(measure::Column::ImposingEconomy.eq(e.as_str()));
    }
    if let Some(k) = filter.kind {
        query = query.filter(measure::Column::Kind.eq(k.as_str()));
    }
    if let Some(e) = &filter.target_economy {
        query = query.filter(
            Condition::any().add(measure::Column::TargetEconomies.eq("")).add(
                measure::Column::Id.in_subquery(
                    Query::select()
                        .column(measure_target::Column::MeasureId)
                        .from(measure_target::Entity)
                        .and_where(measure_target::Column::Economy.eq(e.as_str()))
                        .to_owned(),
                ),
            ),
        );
    }
    if let Some(code) = &filter.hs_code {
        // One of the measure's prefixes is a prefix of the code, or the code
        // is a prefix of one of them (a range: ':' sorts right after '9').
        let shorter: Vec<String> = code.prefixes().iter().map(ToString::to_string).collect();
        let longer_end = format!("{code}:");
        query = query.filter(
            measure::Column::Id.in_subquery(
                Query::select()
                    .column(measure_code::Column::MeasureId)
                    .from(measure_code::Entity)
                    .cond_where(
                        Condition::any().add(measure_code::Column::HsCode.is_in(shorter)).add(
                            Condition::all()
                                .add(measure_code::Column::HsCode.gte(code.as_str()))
                                .add(measure_code::Column::HsCode.lt(longer_end)),
                        ),
                    )
                    .to_owned(),
            ),
        );
    }
    if let Some((status, day)) = filter.status {
        query = query.filter(status_on_day_is(conn, status, day));
    }
    if let Some(day) = filter.in_force_on {
        query = query.filter(status_on_day_is(conn, MeasureStatus::InForce, day));
    }
    if let Some(after) = page.after.as_deref().map(paging::parse_id_cursor).transpose()? {
        query = query.filter(measure::Column::Id.gt(after));
    }
    let rows = query.limit(page.fetch_limit()).all(conn).await?;
    let measures = with_changes(conn, rows).await?;
    Ok(page.finish(measures, |m| paging::id_cursor(m.id)))
}

/// Writes the measure's new state, by `actor`, if nobody changed it since it
/// was read, and bumps its version; another writer in between is ABORTED.
pub async fn update_measure(
    conn: &impl ConnectionTrait,
    m: &mut Measure,
    codes_changed: bool,
    actor: &str,
) -> Result<()> {
    let expected = m.version;
    m.version += 1;
    m.update_time = tradewatch_common::now();
    actor.clone_into(&mut m.update_actor);
    db::update_versioned::<measure::Entity>(conn, m.id, expected, measure_to_row(m)).await?;
    if codes_changed {
        write_codes_and_targets(conn, m).await?;
    }
    Ok(())
}

/// Whether a measure exists, without loading it.
pub async fn measure_exists(conn: &impl ConnectionTrait, id: Uuid) -> Result<bool> {
    Ok(measure::Entity::find_by_id(id)
        .select_only()
        .column(measure::Column::Id)
        .into_tuple::<Uuid>()
        .one(conn)
        .await?
        .is_some())
}

async fn with_changes(conn: &impl ConnectionTrait, rows: Vec<measure::Model>) -> Result<Vec<Measure>> {
    if rows.is_empty() {
        return Ok(vec![]);
    }
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let mut changes = Vec::new();
    for chunk in ids.chunks(db::ID_CHUNK) {
        changes.extend(
            status_change::Entity::find()
                .filter(status_change::Column::MeasureId.is_in(chunk.iter().copied()))
                .order_by_asc(status_change::Column::EffectiveOn)
                .order_by_asc(status_change::Column::Id)
                .all(conn)
                .await?,
        );
    }
    attach_changes(rows, changes)
}

/// The measures of `rows`, each with its `changes` (in timeline order).
fn attach_changes(rows: Vec<measure::Model>, changes: Vec<status_change::Model>) -> Result<Vec<Measure>> {
    let mut by_measure: HashMap<Uuid, Vec<StatusChange>> = HashMap::new();
    for c in changes {
        by_measure.entry(c.measure_id).or_default().push(status_change_from_row(c)?);
    }
    rows.into_iter()
        .map(|r| {
            let changes = by_measure.remove(&r.id).unwrap_or_default();
            measure_from_row(r, changes)
        })
        .collect()
}

fn measure_from_row(r: measure::Model, changes: Vec<StatusChange>) -> Result<Measure> {
    let id = r.id;
    let dec = |what: &str, s: &str| parse_decimal(s).map_err(|e| db::corrupt("measure", id, what, e));
    let kind = MeasureKind::parse(&r.kind).ok_or_else(|| db::corrupt("measure", id, "kind", &r.kind))?;
    let specific_duty = match (r.specific_amount, r.specific_currency, r.specific_unit) {
        (Some(a), Some(c), Some(u)) => Some(SpecificDuty { amount: Money::new(c, dec("specific duty", &a)?), unit: u }),
        _ => None,
    };
    let quota = match (r.quota_quantity, r.quota_unit, r.quota_period_start, r.quota_period_end) {
        (Some(q), Some(unit), Some(period_start), Some(period_end)) => {
            Some(QuotaTerms { quantity: dec("quota", &q)?, unit, period_start, period_end })
        }
        _ => None,
    };
    let quota_used = match &r.quota_used {
        Some(u) => dec("quota used", u)?,
        None => Decimal::ZERO,
    };
    let spec = MeasureSpec {
        reference: r.reference,
        title: r.title,
        imposing_economy: Economy::parse(&r.imposing_economy).map_err(|e| db::corrupt("measure", id, "economy", e))?,
        target_economies: db::split_list(&r.target_economies, Economy::parse)
            .map_err(|e| db::corrupt("measure", id, "targets", e))?,
        kind,
        hs_codes: db::split_list(&r.hs_codes, HsCode::parse).map_err(|e| db::corrupt("measure", id, "hs codes", e))?,
        excluded_hs_codes: db::split_list(&r.excluded_hs_codes, HsCode::parse)
            .map_err(|e| db::corrupt("measure", id, "excluded codes", e))?,
        ad_valorem_percent: dec("rate", &r.ad_valorem_percent)?,
        specific_duty,
        announced_on: r.announced_on,
        effective_from: r.effective_from,
        effective_to: r.effective_to,
        quota,
        source_url: r.source_url,
        note: r.notes,
    };
    Ok(Measure {
        id,
        spec,
        quota_used,
        changes,
        version: r.version,
        create_time: r.create_time,
        update_time: r.update_time,
        create_actor: r.create_actor,
        update_actor: r.update_actor,
    })
}

fn measure_to_row(m: &Measure) -> measure::ActiveModel {
    let s = &m.spec;
    let time = |t: DateTime<Utc>| Set(t);
    measure::ActiveModel {
        id: Set(m.id),
        reference: Set(s.reference.clone()),
        title: Set(s.title.clone()),
        imposing_economy: Set(s.imposing_economy.to_string()),
        target_economies: Set(db::join_list(&s.target_economies)),
        kind: Set(s.kind.as_str().to_owned()),
        hs_codes: Set(db::join_list(&s.hs_codes)),
        excluded_hs_codes: Set(db::join_list(&s.excluded_hs_codes)),
        ad_valorem_percent: Set(format_decimal(s.ad_valorem_percent)),
        specific_amount: Set(s.specific_duty.as_ref().map(|d| format_decimal(d.amount.amount))),
        specific_currency: Set(s.specific_duty.as_ref().map(|d| d.amount.currency.clone())),
        specific_unit: Set(s.specific_duty.as_ref().map(|d| d.unit.clone())),
        announced_on: Set(s.announced_on),
        effective_from: Set(s.effective_from),
        effective_to: Set(s.effective_to),
        quota_quantity: Set(s.quota.as_ref().map(|q| format_decimal(q.quantity))),
        quota_unit: Set(s.quota.as_ref().map(|q| q.unit.clone())),
        quota_period_start: Set(s.quota.as_ref().map(|q| q.period_start)),
        quota_period_end: Set(s.quota.as_ref().map(|q| q.period_end)),
        quota_used: Set(s.quota.as_ref().map(|_| format_decimal(m.quota_used))),
        source_url: Set(s.source_url.clone()),
        notes: Set(s.note.clone()),
        version: Set(m.version),
        create_time: time(m.create_time),
        update_time: time(m.update_time),
        create_actor: Set(m.create_actor.clone()),
        update_actor: Set(m.update_actor.clone()),
    }
}
