//! Proto messages to domain types and back. Every bad field is named by its
//! path in the request.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use tradewatch_common::{
    Error,
    paging::Page,
    proto::{common as cpb, tariff as pb},
    proto_enum_map,
    types::{
        DecimalBounds, Economy, HsCode, Money, format_date, format_decimal, parse_bounded, parse_bounded_positive,
        parse_currency, parse_date, parse_id, parse_request_id,
    },
    validate::{Violations, limits, optional_enum, required_enum, update_mask},
};
use uuid::Uuid;

use crate::{
    domain::{
        Assumption, DutyLine, FIRST_YEAR, FlowKey, FlowSpec, LAST_YEAR, MAX_ASSUMPTIONS, MAX_FLOWS_PER_IMPORT,
        MAX_MEASURES_PER_IMPORT, Measure, MeasureKind, MeasurePatch, MeasureSpec, MeasureStatus, Quantity, QuotaTerms,
        Resolution, Shipment, SpecificDuty, StatusChange, TradeFlow,
    },
    store::{FlowFilter, MeasureFilter},
};

pub use tradewatch_common::types::timestamp;

proto_enum_map!(kind, kind_to_proto, pb::MeasureKind, MeasureKind, "MEASURE_KIND_");
proto_enum_map!(status, status_to_proto, pb::MeasureStatus, MeasureStatus, "MEASURE_STATUS_");

/// Money whose amount is zero or more.
pub fn money(v: &mut Violations, field: &str, m: Option<&cpb::Money>) -> Option<Money> {
    let Some(m) = m else {
        v.add(field, "is required");
        return None;
    };
    let currency = v.check(format!("{field}.currency_code"), parse_currency(&m.currency_code));
    let amount = v.check(format!("{field}.amount"), parse_bounded(&m.amount, DecimalBounds::MONEY));
    Some(Money::new(currency?, amount?))
}

/// The fields of `m` that `paths` name, each parsed as the field demands;
/// violations are named `{prefix}.{field}`. Create and update parse fields
/// alike: a create names them all.
pub fn measure_patch(v: &mut Violations, prefix: &str, m: &pb::TariffMeasure, paths: &[&str]) -> MeasurePatch {
    let f = |name: &str| format!("{prefix}.{name}");
    let wants = |name: &str| paths.contains(&name);
    let mut p = MeasurePatch::default();
    if wants("title") {
        p.title = v.text(&f("title"), &m.title, 500);
    }
    if wants("target_economies") {
        p.target_economies =
            Some(v.list(&f("target_economies"), &m.target_economies, limits::ECONOMIES, Economy::parse));
    }
    if wants("hs_codes") {
        p.hs_codes = Some(v.list(&f("hs_codes"), &m.hs_codes, limits::HS_CODES, HsCode::parse));
    }
    if wants("excluded_hs_codes") {
        p.excluded_hs_codes =
            Some(v.list(&f("excluded_hs_codes"), &m.excluded_hs_codes, limits::HS_CODES, HsCode::parse));
    }
    if wants("ad_valorem_percent") {
        p.ad_valorem_percent =
            v.check(f("ad_valorem_percent"), parse_bounded(&m.ad_valorem_percent, DecimalBounds::PERCENT));
    }
    if wants("specific_duty") {
        p.specific_duty = match &m.specific_duty {
            None => Some(None),
            Some(d) => {
                let amount = money(v, &f("specific_duty.amount"), d.amount.as_ref());
                let unit = v.text(&f("specific_duty.unit"), &d.unit, 50);
                amount.zip(unit).map(|(amount, unit)| Some(SpecificDuty { amount, unit }))
            }
        };
    }
    if wants("announced_on") {
        p.announced_on = v.optional(f("announced_on"), &m.announced_on, parse_date);
    }
    if wants("effective_from") {
        p.effective_from = v.check(f("effective_from"), parse_date(&m.effective_from));
    }
    if wants("effective_to") {
        p.effective_to = v.optional(f("effective_to"), &m.effective_to, parse_date);
    }
    if wants("quota") {
        p.quota = match &m.quota {
            None => Some(None),
            Some(q) => {
                let quantity =
                    v.check(f("quota.quantity"), parse_bounded_positive(&q.quantity, DecimalBounds::QUANTITY));
                let unit = v.text(&f("quota.unit"), &q.unit, 50);
                let start = v.check(f("quota.period_start"), parse_date(&q.period_start));
                let end = v.check(f("quota.period_end"), parse_date(&q.period_end));
                match (quantity, unit, start, end) {
                    (Some(quantity), Some(unit), Some(period_start), Some(period_end)) => {
                        Some(Some(QuotaTerms { quantity, unit, period_start, period_end }))
                    }
                    _ => None,
                }
            }
        };
    }
    if wants("source_url") {
        p.source_url = v.url(&f("source_url"), &m.source_url);
    }
    if wants("note") {
        p.note = v.optional_text(&f("note"), &m.note, 10_000);
    }
    p
}

/// Every client-set field of a new measure, validated, with the rules
/// between fields applied; violations are named `{prefix}.{field}`.
pub fn measure_spec(v: &mut Violations, prefix: &str, m: &pb::TariffMeasure) -> Option<MeasureSpec> {
    let f = |name: &str| format!("{prefix}.{name}");
    let reference = v.text(&f("reference"), &m.reference, 200);
    let imposing_economy = v.check(f("imposing_economy"), Economy::parse(&m.imposing_economy));
    let kind = required_enum(v, &f("kind"), m.kind, kind);
    let p = measure_patch(v, prefix, m, MeasurePatch::FIELDS);
    let spec = MeasureSpec {
        reference: reference?,
        title: p.title?,
        imposing_economy: imposing_economy?,
        target_economies: p.target_economies?,
        kind: kind?,
        hs_codes: p.hs_codes?,
        excluded_hs_codes: p.excluded_hs_codes?,
        ad_valorem_percent: p.ad_valorem_percent?,
        specific_duty: p.specific_duty?,
        announced_on: p.announced_on?,
        effective_from: p.effective_from?,
        effective_to: p.effective_to?,
        quota: p.quota?,
        source_url: p.source_url?,
        note: p.note?,
    };
    v.rules(prefix, spec, |s| s.violations())
}

/// `CreateMeasure`: the measure and the request id.
pub fn create_measure(req: &pb::CreateMeasureRequest) -> Result<(MeasureSpec, Option<Uuid>), Error> {
    let mut v = Violations::new();
    let request_id = v.check("request_id", parse_request_id(&req.request_id));
    let spec = match &req.measure {
        Some(m) => measure_spec(&mut v, "measure", m),
        None => {
            v.add("measure", "is required");
            None
        }
    };
    let spec = v.finish_with(spec)?;
    Ok((spec, request_id.flatten()))
}

/// `ImportMeasures`: 1 to 1000 measures, no reference twice, and the request
/// id.
pub fn import_measures(req: &pb::ImportMeasuresRequest) -> Result<(Vec<MeasureSpec>, Option<Uuid>), Error> {
    let mut v = Violations::new();
    let request_id = v.check("request_id", parse_request_id(&req.request_id));
    if req.measures.is_empty() {
        v.add("measures", format!("is required: 1 to {MAX_MEASURES_PER_IMPORT} measures"));
    }
    let mut specs = Vec::with_capacity(req.measures.len().min(MAX_MEASURES_PER_IMPORT));
    if v.count("measures", &req.measures, MAX_MEASURES_PER_IMPORT) {
        let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for (i, m) in req.measures.iter().enumerate() {
            let field = format!("measures[{i}]");
            if let Some(first) = seen.insert(m.reference.as_str(), i) {
                v.add(
                    format!("{field}.reference"),
                    format!("is the reference of measures[{first}]: send each measure once"),
                );
            }
            if let Some(spec) = measure_spec(&mut v, &field, m) {
                specs.push(spec);
            }
        }
    }
    v.finish()?;
    Ok((specs, request_id.flatten()))
}

/// `ListMeasures`: the filters (status as of `today`) and the page.
pub fn list_measures(req: &pb::ListMeasuresRequest, today: NaiveDate) -> Result<(MeasureFilter, Page), Error> {
    let mut v = Violations::new();
    let filter = MeasureFilter {
        imposing_economy: v.filter("imposing_economy", &req.imposing_economy, Economy::parse),
        target_economy: v.filter("target_economy", &req.target_economy, Economy::parse),
        kind: optional_enum(&mut v, "kind", req.kind, kind),
        status: optional_enum(&mut v, "status", req.status, status).map(|s| (s, today)),
        hs_code: v.filter("hs_code", &req.hs_code, HsCode::parse),
        in_force_on: v.filter("in_force_on", &req.in_force_on, parse_date),
    };
    let filters = pb::ListMeasuresRequest { page_size: 0, page_token: String::new(), ..req.clone() };
    let page = Page::parse(&mut v, req.page_size, &req.page_token, &filters);
    v.finish()?;
    Ok((filter, page))
}

/// `SetMeasureStatus`, parsed: the day defaults to `today`.
pub struct SetStatus {
    pub id: Uuid,
    pub status: MeasureStatus,
    pub effective_on: NaiveDate,
    pub note: String,
    pub request_id: Option<Uuid>,
}

pub fn set_measure_status(req: &pb::SetMeasureStatusRequest, today: NaiveDate) -> Result<SetStatus, Error> {
    let mut v = Violations::new();
    let id = v.check("id", parse_id(&req.id));
    let status = required_enum(&mut v, "status", req.status, status);
    let effective_on = v.or_default("effective_on", &req.effective_on, today, parse_date);
    let note = v.optional_text("note", &req.note, 2_000);
    let request_id = v.check("request_id", parse_request_id(&req.request_id));
    let parsed = (|| {
        Some(SetStatus { id: id?, status: status?, effective_on: effective_on?, note: note?, request_id: request_id? })
    })();
    v.finish_with(parsed)
}

/// `ListMeasureHistory`: the measure and the page.
pub fn list_measure_history(req: &pb::ListMeasureHistoryRequest) -> Result<(Uuid, Page), Error> {
    let mut v = Violations::new();
    let id = v.check("measure_id", parse_id(&req.measure_id));
    let filters = pb::ListMeasureHistoryRequest { page_size: 0, page_token: String::new(), ..req.clone() };
    let page = Page::parse(&mut v, req.page_size, &req.page_token, &filters);
    let id = v.finish_with(id)?;
    Ok((id, page))
}

/// `RecordQuotaUsage`: the measure, the quantity and the request id.
pub fn record_quota_usage(req: &pb::RecordQuotaUsageRequest) -> Result<(Uuid, Decimal, Option<Uuid>), Error> {
    let mut v = Violations::new();
    let id = v.check("id", parse_id(&req.id));
    let quantity = v.check("quantity", parse_bounded_positive(&req.quantity, DecimalBounds::QUANTITY));
    let request_id = v.check("request_id", parse_request_id(&req.request_id));
    let (id, quantity) = v.finish_with(id.zip(quantity))?;
    Ok((id, quantity, request_id.flatten()))
}

/// `ResolveDuty`: the shipment asked about, and what is assumed.
pub fn resolve_duty(req: &pb::ResolveDutyRequest) -> Result<(Shipment, Vec<Assumption>), Error> {
    let mut v = Violations::new();
    let importing = v.check("importing_economy", Economy::parse(&req.importing_economy));
    let origin = v.check("origin_economy", Economy::parse(&req.origin_economy));
    let code = v.check("hs_code", HsCode::parse_line(&req.hs_code));
    let imported_on = v.check("imported_on", parse_date(&req.imported_on));
    let value = money(&mut v, "customs_value", req.customs_value.as_ref());
    let quantity = v.optional("quantity", &req.quantity, |q| parse_bounded_positive(q, DecimalBounds::QUANTITY));
    let shipment = (|| {
        Some(Shipment {
            importing_economy: importing?,
            origin_economy: origin?,
            hs_code: code?,
            imported_on: imported_on?,
            customs_value: value?,
            quantity: quantity?,
        })
    })();
    let assume = assumptions(&mut v, &req.assume);
    Ok((v.finish_with(shipment)?, assume))
}

/// `assume`: at most [`MAX_ASSUMPTIONS`] status changes, one per measure,
/// each a status SetMeasureStatus could record.
pub fn assumptions(v: &mut Violations, raw: &[pb::AssumedStatusChange]) -> Vec<Assumption> {
    if !v.count("assume", raw, MAX_ASSUMPTIONS) {
        return Vec::new();
    }
    let mut seen: std::collections::HashMap<Uuid, usize> = std::collections::HashMap::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, a) in raw.iter().enumerate() {
        let f = |name: &str| format!("assume[{i}].{name}");
        let id = v.check(f("measure_id"), parse_id(&a.measure_id));
        if let Some(id) = id
            && let Some(first) = seen.insert(id, i)
        {
            v.add(f("measure_id"), format!("names the measure assume[{first}] already names"));
        }
        let status = required_enum(v, &f("status"), a.status, status);
        if status == Some(MeasureStatus::Announced) {
            v.add(f("status"), "ANNOUNCED follows from effective_from and cannot be assumed");
        }
        let effective_on = v.optional(f("effective_on"), &a.effective_on, parse_date);
        if let (Some(measure_id), Some(status), Some(effective_on)) = (id, status, effective_on) {
            out.push(Assumption { measure_id, status, effective_on });
        }
    }
    out
}

/// A year field: 0 means none given (`Some(None)`), else 1948 to 2100.
pub fn year(v: &mut Violations, field: &str, raw: i32) -> Option<Option<i32>> {
    match raw {
        0 => Some(None),
        y if (FIRST_YEAR..=LAST_YEAR).contains(&y) => Some(Some(y)),
        y => {
            v.add(field, format!("{y} is not a year from {FIRST_YEAR} to {LAST_YEAR}"));
            None
        }
    }
}

/// A count of items to list: 0 means `default`, larger than `max` is capped,
/// negative is refused.
fn list_limit(v: &mut Violations, field: &str, raw: i32, default: usize, max: usize) -> usize {
    match usize::try_from(raw) {
        Ok(0) => default,
        Ok(n) => n.min(max),
        Err(_) => {
            v.add(field, format!("{raw} is negative"));
            default
        }
    }
}

/// Every client-set field of a flow, validated; violations are named
/// `{prefix}.{field}`.
pub fn flow_spec(v: &mut Violations, prefix: &str, f: &pb::TradeFlow) -> Option<FlowSpec> {
    let n = |name: &str| format!("{prefix}.{name}");
    let exporting = v.check(n("exporting_economy"), Economy::parse(&f.exporting_economy));
    let importing = v.check(n("importing_economy"), Economy::parse(&f.importing_economy));
    let hs_code = v.check(n("hs_code"), HsCode::parse(&f.hs_code));
    let year = match year(v, &n("year"), f.year) {
        Some(None) => {
            v.add(n("year"), "is required");
            None
        }
        y => y.flatten(),
    };
    let value = money(v, &n("value"), f.value.as_ref());
    let quantity = v.optional(n("quantity"), &f.quantity, |q| parse_bounded_positive(q, DecimalBounds::QUANTITY));
    let unit = v.optional_text(&n("unit"), &f.unit, 50);
    let quantity = match (quantity, unit) {
        (Some(Some(amount)), Some(unit)) if !unit.is_empty() => Some(Some(Quantity { amount, unit })),
        (Some(Some(_)), Some(_)) => {
            v.add(n("unit"), "is required with a quantity");
            None
        }
        (Some(None), Some(unit)) if !unit.is_empty() => {
            v.add(n("unit"), "is only allowed with a quantity");
            None
        }
        (Some(None), Some(_)) => Some(None),
        _ => None,
    };
    let source_url = if f.source_url.is_empty() {
        v.add(n("source_url"), "is required: where the figure is published");
        None
    } else {
        v.url(&n("source_url"), &f.source_url)
    };
    let note = v.optional_text(&n("note"), &f.note, 10_000);
    if let (Some(e), Some(i)) = (&exporting, &importing)
        && e == i
    {
        v.add(n("importing_economy"), "is the exporting economy itself");
    }
    Some(FlowSpec {
        key: FlowKey { importing: importing?, exporting: exporting?, year: year?, hs_code: hs_code? },
        value: value?,
        quantity: quantity?,
        source_url: source_url?,
        note: note?,
    })
}

/// `ImportTradeFlows`: 1 to 1000 flows, no key twice, and the request id.
pub fn import_trade_flows(req: &pb::ImportTradeFlowsRequest) -> Result<(Vec<FlowSpec>, Option<Uuid>), Error> {
    let mut v = Violations::new();
    let request_id = v.check("request_id", parse_request_id(&req.request_id));
    if req.flows.is_empty() {
        v.add("flows", format!("is required: 1 to {MAX_FLOWS_PER_IMPORT} flows"));
    }
    let mut specs = Vec::with_capacity(req.flows.len().min(MAX_FLOWS_PER_IMPORT));
    if v.count("flows", &req.flows, MAX_FLOWS_PER_IMPORT) {
        let mut seen: std::collections::HashMap<FlowKey, usize> = std::collections::HashMap::new();
        for (i, f) in req.flows.iter().enumerate() {
            let Some(spec) = flow_spec(&mut v, &format!("flows[{i}]"), f) else { continue };
            if let Some(first) = seen.insert(spec.key.clone(), i) {
                v.add(
                    format!("flows[{i}]"),
                    format!("has the key of flows[{first}] ({}): send each flow once", spec.key),
                );
            }
            specs.push(spec);
        }
    }
    v.finish()?;
    Ok((specs, request_id.flatten()))
}

/// `ListTradeFlows`: the filters and the page.
pub fn list_trade_flows(req: &pb::ListTradeFlowsRequest) -> Result<(FlowFilter, Page), Error> {
    let mut v = Violations::new();
    let filter = FlowFilter {
        exporting_economy: v.filter("exporting_economy", &req.exporting_economy, Economy::parse),
        importing_economy: v.filter("importing_economy", &req.importing_economy, Economy::parse),
        hs_code: v.filter("hs_code", &req.hs_code, HsCode::parse),
        year: year(&mut v, "year", req.year).flatten(),
    };
    let filters = pb::ListTradeFlowsRequest { page_size: 0, page_token: String::new(), ..req.clone() };
    let page = Page::parse(&mut v, req.page_size, &req.page_token, &filters);
    v.finish()?;
    Ok((filter, page))
}

/// `GetMeasureExposure`, parsed.
pub struct ExposureAsk {
    pub id: Uuid,
    /// None: the latest year in the record.
    pub year: Option<i32>,
    /// None: the year's last day.
    pub on: Option<NaiveDate>,
    pub assume: Vec<Assumption>,
    pub max_flows: usize,
}

pub fn get_measure_exposure(req: &pb::GetMeasureExposureRequest) -> Result<ExposureAsk, Error> {
    let mut v = Violations::new();
    let id = v.check("id", parse_id(&req.id));
    let year = year(&mut v, "year", req.year);
    let on = v.optional("on", &req.on, parse_date);
    let assume = assumptions(&mut v, &req.assume);
    let max_flows = list_limit(&mut v, "max_flows", req.max_flows, 100, 1_000);
    let ask = (|| Some(ExposureAsk { id: id?, year: year?, on: on?, assume, max_flows }))();
    v.finish_with(ask)
}

/// `GetTradeCoverage`, parsed.
pub struct CoverageAsk {
    pub importer: Economy,
    /// None: every origin.
    pub exporter: Option<Economy>,
    pub year: Option<i32>,
    pub on: Option<NaiveDate>,
    pub assume: Vec<Assumption>,
    /// Empty: every kind.
    pub kinds: Vec<MeasureKind>,
    pub max_measures: usize,
}

pub fn get_trade_coverage(req: &pb::GetTradeCoverageRequest) -> Result<CoverageAsk, Error> {
    let mut v = Violations::new();
    let importer = v.check("importing_economy", Economy::parse(&req.importing_economy));
    let exporter = v.optional("exporting_economy", &req.exporting_economy, Economy::parse);
    if let (Some(i), Some(Some(e))) = (&importer, &exporter)
        && i == e
    {
        v.add("exporting_economy", "is the importing economy itself");
    }
    let year = year(&mut v, "year", req.year);
    let on = v.optional("on", &req.on, parse_date);
    let assume = assumptions(&mut v, &req.assume);
    let mut kinds = Vec::new();
    if v.count("kinds", &req.kinds, MeasureKind::ALL.len()) {
        for (i, raw) in req.kinds.iter().enumerate() {
            let field = format!("kinds[{i}]");
            match required_enum(&mut v, &field, *raw, kind) {
                Some(k) if kinds.contains(&k) => v.add(field, format!("{} is listed twice", k.as_str())),
                Some(k) => kinds.push(k),
                None => {}
            }
        }
    }
    let max_measures = list_limit(&mut v, "max_measures", req.max_measures, 20, 500);
    let ask = (|| {
        Some(CoverageAsk {
            importer: importer?,
            exporter: exporter?,
            year: year?,
            on: on?,
            assume,
            kinds,
            max_measures,
        })
    })();
    v.finish_with(ask)
}

pub fn flow_to_proto(f: &TradeFlow) -> pb::TradeFlow {
    let s = &f.spec;
    pb::TradeFlow {
        id: f.id.to_string(),
        exporting_economy: s.key.exporting.to_string(),
        importing_economy: s.key.importing.to_string(),
        hs_code: s.key.hs_code.to_string(),
        year: s.key.year,
        value: Some(cpb::Money { currency_code: s.value.currency.clone(), amount: format_decimal(s.value.amount) }),
        quantity: s.quantity.as_ref().map(|q| format_decimal(q.amount)).unwrap_or_default(),
        unit: s.quantity.as_ref().map(|q| q.unit.clone()).unwrap_or_default(),
        source_url: s.source_url.clone(),
        note: s.note.clone(),
        etag: tradewatch_common::etag::of(f.version),
        create_time: Some(timestamp(f.create_time)),
        update_time: Some(timestamp(f.update_time)),
        create_actor: f.create_actor.clone(),
        update_actor: f.update_actor.clone(),
    }
}

/// Sums as the wire's Money: exact (the flows' values have at most 4
/// decimal places, and so do their sums), with at least two.
pub fn sums_to_proto(sums: &crate::domain::Sums) -> Vec<cpb::Money> {
    sums.to_money().iter().map(Into::into).collect()
}

/// `UpdateMeasure`: the measure's id, its etag and the patch of the fields
/// the mask names, parsed before any database work.
pub fn update_measure(req: &pb::UpdateMeasureRequest) -> Result<(Uuid, String, MeasurePatch), Error> {
    let mut v = Violations::new();
    let Some(m) = &req.measure else {
        return Err(Error::invalid_field("measure", "is required"));
    };
    let id = v.check("measure.id", parse_id(&m.id));
    let paths = update_mask(
        &mut v,
        req.update_mask.as_ref(),
        "measure",
        |p| MeasurePatch::FIELDS.contains(&p),
        &[("status", "SetMeasureStatus"), ("quota.used", "RecordQuotaUsage")],
    );
    let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
    let patch = measure_patch(&mut v, "measure", m, &paths);
    let id = v.finish_with(id)?;
    Ok((id, m.etag.clone(), patch))
}

pub fn measure_to_proto(m: &Measure, today: NaiveDate) -> pb::TariffMeasure {
    let s = &m.spec;
    pb::TariffMeasure {
        id: m.id.to_string(),
        reference: s.reference.clone(),
        title: s.title.clone(),
        imposing_economy: s.imposing_economy.to_string(),
        target_economies: s.target_economies.iter().map(ToString::to_string).collect(),
        kind: kind_to_proto(s.kind),
        hs_codes: s.hs_codes.iter().map(ToString::to_string).collect(),
        excluded_hs_codes: s.excluded_hs_codes.iter().map(ToString::to_string).collect(),
        ad_valorem_percent: format_decimal(s.ad_valorem_percent),
        specific_duty: s.specific_duty.as_ref().map(|d| pb::SpecificDuty {
            amount: Some(cpb::Money {
                currency_code: d.amount.currency.clone(),
                amount: format_decimal(d.amount.amount),
            }),
            unit: d.unit.clone(),
        }),
        announced_on: s.announced_on.map(format_date).unwrap_or_default(),
        effective_from: format_date(s.effective_from),
        effective_to: s.effective_to.map(format_date).unwrap_or_default(),
        status: status_to_proto(m.status_on(today)),
        quota: s.quota.as_ref().map(|q| pb::Quota {
            quantity: format_decimal(q.quantity),
            unit: q.unit.clone(),
            period_start: format_date(q.period_start),
            period_end: format_date(q.period_end),
            used: format_decimal(m.quota_used),
        }),
        source_url: s.source_url.clone(),
        note: s.note.clone(),
        etag: tradewatch_common::etag::of(m.version),
        create_time: Some(timestamp(m.create_time)),
        update_time: Some(timestamp(m.update_time)),
        create_actor: m.create_actor.clone(),
        update_actor: m.update_actor.clone(),
    }
}

pub fn change_to_proto(c: &StatusChange) -> pb::MeasureStatusChange {
    pb::MeasureStatusChange {
        measure_id: c.measure_id.to_string(),
        status: status_to_proto(c.status),
        effective_on: format_date(c.effective_on),
        note: c.note.clone(),
        change_time: Some(timestamp(c.change_time)),
        actor: c.actor.clone(),
    }
}

fn line_to_proto(l: &DutyLine) -> pb::AppliedDuty {
    pb::AppliedDuty {
        measure_id: l.measure_id.to_string(),
        kind: kind_to_proto(l.kind),
        matched_hs_code: l.matched_hs_code.to_string(),
        ad_valorem_percent: format_decimal(l.ad_valorem_percent),
        amount: Some((&l.amount).into()),
        reference: l.reference.clone(),
        title: l.title.clone(),
    }
}

pub fn resolution_to_proto(r: &Resolution) -> pb::ResolveDutyResponse {
    pb::ResolveDutyResponse {
        lines: r.lines.iter().map(line_to_proto).collect(),
        total_duty: Some((&r.total_duty).into()),
        effective_rate_percent: format_decimal(r.effective_rate_percent),
        quota_full: r.quota_full,
        explanations: r.explanations.clone(),
        hypothetical: false,
    }
}
