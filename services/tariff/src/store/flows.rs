//! Trade flows: their rows, the lookup of stored keys an import needs, the
//! list filters, and the light rows the in-memory trade index loads.

use std::collections::{BTreeMap, HashMap};

use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use tradewatch_common::{
    Error, Reason, Result, db,
    paging::Page,
    types::{Economy, HsCode, Money, format_decimal, parse_decimal},
};
use uuid::Uuid;

use super::entity::trade_flow;
use crate::domain::{FlowKey, FlowSpec, Quantity, TradeFlow};

/// The typed filters of `ListTradeFlows`.
#[derive(Debug, Clone, Default)]
pub struct FlowFilter {
    pub exporting_economy: Option<Economy>,
    pub importing_economy: Option<Economy>,
    pub hs_code: Option<HsCode>,
    pub year: Option<i32>,
}

/// The stored flows of these keys, by key: what an import compares with.
/// One query per importer, exporter and year among the keys, by chunks of
/// codes, on the natural key's index.
pub async fn stored_flows(conn: &impl ConnectionTrait, keys: &[&FlowKey]) -> Result<HashMap<FlowKey, TradeFlow>> {
    if conn.get_database_backend() == sea_orm::DbBackend::Postgres {
        // A prepared statement's generic plan, made while the table was
        // small, walks the whole (importer, exporter, year) range and
        // filters the codes: planned with the codes, it looks each one up.
        // For the rest of this transaction only.
        conn.execute_unprepared("SET LOCAL plan_cache_mode = force_custom_plan").await?;
    }
    let mut groups: BTreeMap<(&str, &str, i32), Vec<&str>> = BTreeMap::new();
    for k in keys {
        groups.entry((k.importing.as_str(), k.exporting.as_str(), k.year)).or_default().push(k.hs_code.as_str());
    }
    let mut out = HashMap::with_capacity(keys.len());
    for ((importing, exporting, year), codes) in groups {
        for chunk in codes.chunks(db::ID_CHUNK) {
            let rows = trade_flow::Entity::find()
                .filter(trade_flow::Column::ImportingEconomy.eq(importing))
                .filter(trade_flow::Column::ExportingEconomy.eq(exporting))
                .filter(trade_flow::Column::Year.eq(year))
                .filter(trade_flow::Column::HsCode.is_in(chunk.iter().copied()))
                .all(conn)
                .await?;
            for row in rows {
                let flow = flow_from_row(row)?;
                out.insert(flow.spec.key.clone(), flow);
            }
        }
    }
    Ok(out)
}

/// The columns of a flow's row, in the order [`row_values`] gives them.
const COLUMNS: &str = "id, importing_economy, exporting_economy, year, hs_code, value_currency, value_amount, \
                       quantity, unit, source_url, notes, version, create_time, update_time, create_actor, update_actor";
const COLUMN_COUNT: usize = 16;

/// Rows one INSERT of flows carries: 16,000 values, below SQLite's 32,766
/// and PostgreSQL's 65,535 bind parameters; an import of 1,000 flows is one
/// statement.
const ROWS_PER_INSERT: usize = 1_000;

/// Inserts new flows, a statement for up to [`ROWS_PER_INSERT`] of them,
/// its text written out directly rather than built value by value: an
/// import's rows are the bulk of its work. A key another write stored
/// meanwhile is ABORTED: the import is retried, and finds it.
pub async fn insert_flows(conn: &impl ConnectionTrait, flows: &[TradeFlow]) -> Result<()> {
    let backend = conn.get_database_backend();
    for chunk in flows.chunks(ROWS_PER_INSERT) {
        let mut sql = String::with_capacity(64 + chunk.len() * COLUMN_COUNT * 4);
        sql.push_str("INSERT INTO trade_flows (");
        sql.push_str(COLUMNS);
        sql.push_str(") VALUES ");
        let mut n = 0;
        for i in 0..chunk.len() {
            sql.push_str(if i == 0 { "(" } else { ", (" });
            for c in 0..COLUMN_COUNT {
                if c > 0 {
                    sql.push_str(", ");
                }
                n += 1;
                match backend {
                    sea_orm::DbBackend::Postgres => {
                        use std::fmt::Write as _;
                        let _ = write!(sql, "${n}");
                    }
                    _ => sql.push('?'),
                }
            }
            sql.push(')');
        }
        let values: Vec<sea_orm::Value> = chunk.iter().flat_map(row_values).collect();
        let statement = sea_orm::Statement::from_sql_and_values(backend, sql, values);
        if let Err(err) = conn.execute_raw(statement).await {
            return Err(if db::is_unique_violation(&err) { concurrent_import() } else { err.into() });
        }
    }
    Ok(())
}

/// A flow's row, in the order of [`COLUMNS`].
fn row_values(f: &TradeFlow) -> [sea_orm::Value; COLUMN_COUNT] {
    use sea_orm::Value;
    let s = &f.spec;
    [
        Value::Uuid(Some(f.id)),
        Value::String(Some(s.key.importing.to_string())),
        Value::String(Some(s.key.exporting.to_string())),
        Value::Int(Some(s.key.year)),
        Value::String(Some(s.key.hs_code.to_string())),
        Value::String(Some(s.value.currency.clone())),
        Value::String(Some(format_decimal(s.value.amount))),
        Value::String(s.quantity.as_ref().map(|q| format_decimal(q.amount))),
        Value::String(s.quantity.as_ref().map(|q| q.unit.clone())),
        Value::String(Some(s.source_url.clone())),
        Value::String(Some(s.note.clone())),
        Value::BigInt(Some(f.version)),
        Value::ChronoDateTimeUtc(Some(f.create_time)),
        Value::ChronoDateTimeUtc(Some(f.update_time)),
        Value::String(Some(f.create_actor.clone())),
        Value::String(Some(f.update_actor.clone())),
    ]
}

/// Writes revised flows over the versions read (their version, one less): a
/// flow another write revised meanwhile is ABORTED.
pub async fn replace_flows(conn: &impl ConnectionTrait, flows: &[TradeFlow]) -> Result<()> {
    for chunk in flows.chunks(db::ID_CHUNK) {
        let mut read = Condition::any();
        for f in chunk {
            read = read.add(
                Condition::all()
                    .add(trade_flow::Column::Id.eq(f.id))
                    .add(trade_flow::Column::Version.eq(f.version - 1)),
            );
        }
        let gone = trade_flow::Entity::delete_many().filter(read).exec(conn).await?.rows_affected;
        if gone != chunk.len() as u64 {
            return Err(concurrent_import());
        }
    }
    insert_flows(conn, flows).await
}

fn concurrent_import() -> Error {
    Error::aborted(
        Reason::TransactionConflict,
        "another import wrote some of these trade flows at the same time; nothing was written: retry",
    )
}

/// One page of flows in natural-key order.
pub async fn list_flows(
    conn: &impl ConnectionTrait,
    filter: &FlowFilter,
    page: &Page,
) -> Result<(Vec<TradeFlow>, String)> {
    use trade_flow::Column as C;
    let mut query = trade_flow::Entity::find()
        .order_by_asc(C::ImportingEconomy)
        .order_by_asc(C::ExportingEconomy)
        .order_by_asc(C::Year)
        .order_by_asc(C::HsCode);
    if let Some(e) = &filter.importing_economy {
        query = query.filter(C::ImportingEconomy.eq(e.as_str()));
    }
    if let Some(e) = &filter.exporting_economy {
        query = query.filter(C::ExportingEconomy.eq(e.as_str()));
    }
    if let Some(year) = filter.year {
        query = query.filter(C::Year.eq(year));
    }
    if let Some(code) = &filter.hs_code {
        // The flow's code is a prefix of the filter's, or the filter's a
        // prefix of the flow's (':' sorts right after '9').
        let shorter: Vec<String> = code.prefixes().iter().map(ToString::to_string).collect();
        query = query.filter(
            Condition::any()
                .add(C::HsCode.is_in(shorter))
                .add(Condition::all().add(C::HsCode.gte(code.as_str())).add(C::HsCode.lt(format!("{code}:")))),
        );
    }
    if let Some(cursor) = &page.after {
        let (importing, exporting, year, code) = parse_cursor(cursor)?;
        query = query.filter(db::custom_expr(
            conn,
            "(trade_flows.importing_economy, trade_flows.exporting_economy, trade_flows.year, trade_flows.hs_code) \
             > (?, ?, ?, ?)",
            vec![importing.into(), exporting.into(), year.into(), code.into()],
        ));
    }
    let rows = query.limit(page.fetch_limit()).all(conn).await?;
    let flows = rows.into_iter().map(flow_from_row).collect::<Result<Vec<_>>>()?;
    Ok(page.finish(flows, |f| cursor(&f.spec.key)))
}

/// The page cursor of a flow: its natural key.
pub fn cursor(k: &FlowKey) -> String {
    format!("{}|{}|{}|{}", k.importing, k.exporting, k.year, k.hs_code)
}

fn parse_cursor(cursor: &str) -> Result<(String, String, i32, String)> {
    let bad = || Error::invalid_field("page_token", "is not a page token this service issued");
    let mut parts = cursor.split('|');
    let (Some(i), Some(e), Some(y), Some(c), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    Ok((i.to_owned(), e.to_owned(), y.parse().map_err(|_| bad())?, c.to_owned()))
}

/// The flows with these ids that exist, in no particular order.
pub async fn get_flows(conn: &impl ConnectionTrait, ids: &[Uuid]) -> Result<Vec<TradeFlow>> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(db::ID_CHUNK) {
        let rows =
            trade_flow::Entity::find().filter(trade_flow::Column::Id.is_in(chunk.iter().copied())).all(conn).await?;
        for row in rows {
            out.push(flow_from_row(row)?);
        }
    }
    Ok(out)
}

/// What the trade index keeps of a flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowRow {
    pub id: Uuid,
    pub importing: String,
    pub exporting: String,
    pub year: i32,
    pub hs_code: String,
    pub currency: String,
    pub amount: String,
}

type FlowTuple = (Uuid, String, String, i32, String, String, String);

fn light(q: sea_orm::Select<trade_flow::Entity>) -> sea_orm::Selector<sea_orm::SelectGetableTuple<FlowTuple>> {
    use trade_flow::Column as C;
    q.select_only()
        .columns([
            C::Id,
            C::ImportingEconomy,
            C::ExportingEconomy,
            C::Year,
            C::HsCode,
            C::ValueCurrency,
            C::ValueAmount,
        ])
        .into_tuple()
}

fn row_of((id, importing, exporting, year, hs_code, currency, amount): FlowTuple) -> FlowRow {
    FlowRow { id, importing, exporting, year, hs_code, currency, amount }
}

/// Up to `limit` flows after the id `after` (from the first when None), in
/// id order, lightly: a page of the trade index's load, so that loading a
/// million flows never holds them all as rows at once.
pub async fn flow_rows_after(conn: &impl ConnectionTrait, after: Option<Uuid>, limit: u64) -> Result<Vec<FlowRow>> {
    let mut q = trade_flow::Entity::find().order_by_asc(trade_flow::Column::Id).limit(limit);
    if let Some(after) = after {
        q = q.filter(trade_flow::Column::Id.gt(after));
    }
    Ok(light(q).all(conn).await?.into_iter().map(row_of).collect())
}

/// The flows with these ids, lightly: the trade index's catch-up.
pub async fn flow_rows(conn: &impl ConnectionTrait, ids: &[Uuid]) -> Result<Vec<FlowRow>> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(db::ID_CHUNK) {
        let q = trade_flow::Entity::find().filter(trade_flow::Column::Id.is_in(chunk.iter().copied()));
        out.extend(light(q).all(conn).await?.into_iter().map(row_of));
    }
    Ok(out)
}

fn flow_from_row(r: trade_flow::Model) -> Result<TradeFlow> {
    let id = r.id;
    let bad = |what: &str, why: String| db::corrupt("trade flow", id, what, why);
    let quantity = match (r.quantity, r.unit) {
        (Some(q), Some(unit)) => Some(Quantity { amount: parse_decimal(&q).map_err(|e| bad("quantity", e))?, unit }),
        _ => None,
    };
    Ok(TradeFlow {
        id,
        spec: FlowSpec {
            key: FlowKey {
                importing: Economy::parse(&r.importing_economy).map_err(|e| bad("importer", e))?,
                exporting: Economy::parse(&r.exporting_economy).map_err(|e| bad("exporter", e))?,
                year: r.year,
                hs_code: HsCode::parse(&r.hs_code).map_err(|e| bad("hs code", e))?,
            },
            value: Money::new(r.value_currency, parse_decimal(&r.value_amount).map_err(|e| bad("value", e))?),
            quantity,
            source_url: r.source_url,
            note: r.notes,
        },
        version: r.version,
        create_time: r.create_time,
        update_time: r.update_time,
        create_actor: r.create_actor,
        update_actor: r.update_actor,
    })
}
