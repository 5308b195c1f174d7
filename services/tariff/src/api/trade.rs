//! The trade handlers (DESIGN §14): import and list trade flows, a
//! measure's exposure, an importer's trade coverage, and their change feed.
//! Exposure and coverage read the schedule and the trade index in memory,
//! both brought up to the feed's head first; assumptions are laid over the
//! measures for the one call and never written.

use std::sync::Arc;

use super::*;
use crate::domain::{
    CoverageTally, FlowKey, Hypothesis, Levy, Sums, assumed_not_found, last_day, percent, plan_import,
};

pub(super) async fn import_trade_flows(
    api: &TariffApi,
    request: Request<pb::ImportTradeFlowsRequest>,
) -> Reply<pb::ImportTradeFlowsResponse> {
    let actor = actor(&request);
    let mut req = request.into_inner();
    let (specs, request_id) = convert::import_trade_flows(&req)?;
    req.request_id.clear();
    let key = Key::new("ImportTradeFlows", request_id, &req);
    let by = actor.clone();
    let response = idempotency::write(&api.db, key, move |txn| {
        Box::pin(async move {
            let keys: Vec<&FlowKey> = specs.iter().map(|s| &s.key).collect();
            let stored = store::stored_flows(txn, &keys).await?;
            let now = tradewatch_common::now();
            let plan = plan_import(specs, &stored, now, &by);
            store::insert_flows(txn, &plan.created).await?;
            store::replace_flows(txn, &plan.replaced).await?;
            let created = plan.created.iter().map(|f| (pb::TradeFlowChangeKind::Created, f));
            let replaced = plan.replaced.iter().map(|f| (pb::TradeFlowChangeKind::Replaced, f));
            let changes: Vec<_> =
                created.chain(replaced).map(|(kind, f)| watch::flow_change(kind, flow_to_proto(f), &by)).collect();
            feed::append_all(txn, watch::FLOW_TOPIC, now, &changes).await?;
            let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
            Ok(pb::ImportTradeFlowsResponse {
                created: count(plan.created.len()),
                replaced: count(plan.replaced.len()),
                unchanged: count(plan.unchanged),
            })
        })
    })
    .await?;
    api.feed.wake();
    let summary = format!("{} created, {} replaced", response.created, response.replaced);
    audit(&actor, "ImportTradeFlows", "trade_flow", summary, request_id);
    Ok(Response::new(response))
}

pub(super) async fn list_trade_flows(
    api: &TariffApi,
    request: Request<pb::ListTradeFlowsRequest>,
) -> Reply<pb::ListTradeFlowsResponse> {
    let (filter, page) = convert::list_trade_flows(request.get_ref())?;
    let (flows, mut next_page_token) = store::list_flows(&api.db, &filter, &page).await?;
    let keys: Vec<String> = flows.iter().map(|f| store::cursor(&f.spec.key)).collect();
    let mut flows: Vec<_> = flows.iter().map(flow_to_proto).collect();
    page.fit_at(&mut flows, &mut next_page_token, api.page_budget, |i| keys[i].clone());
    Ok(Response::new(pb::ListTradeFlowsResponse { flows, next_page_token }))
}

/// The stored measures each assumption names, in order; NOT_FOUND names
/// the first that does not exist.
async fn assumed_measures(api: &TariffApi, assume: &[domain::Assumption]) -> Result<Vec<Arc<Measure>>, Error> {
    let mut out = Vec::with_capacity(assume.len());
    for (i, a) in assume.iter().enumerate() {
        out.push(api.measure(a.measure_id).await?.ok_or_else(|| assumed_not_found(i, a.measure_id))?);
    }
    Ok(out)
}

/// The hypothesis of `assume` over the schedule, for an answer about `day`.
async fn hypothesis(
    api: &TariffApi,
    assume: Vec<domain::Assumption>,
    day: chrono::NaiveDate,
) -> Result<Hypothesis, Error> {
    let measures = assumed_measures(api, &assume).await?;
    let refs: Vec<&Measure> = measures.iter().map(AsRef::as_ref).collect();
    Hypothesis::new(assume, &refs, day)
}

/// `ResolveDuty`'s `assume`: the shipment resolved against the candidates as
/// the assumptions would leave them.
pub(super) async fn resolve_duty(
    api: &TariffApi,
    request: Request<pb::ResolveDutyRequest>,
) -> Reply<pb::ResolveDutyResponse> {
    let (shipment, assume) = convert::resolve_duty(request.get_ref())?;
    let candidates =
        api.schedule.candidates(&shipment.importing_economy, &shipment.hs_code, shipment.imported_on).await?;
    if assume.is_empty() {
        let resolution = domain::resolve(&shipment, &candidates)?;
        return Ok(Response::new(resolution_to_proto(&resolution)));
    }
    let hypothesis = hypothesis(api, assume, shipment.imported_on).await?;
    let assumed: Vec<(uuid::Uuid, Levy)> = hypothesis.measures().map(|m| (m.id, Levy::from(m))).collect();
    let read: Vec<&Levy> = candidates
        .iter()
        .map(|l| assumed.iter().find(|(id, _)| *id == l.id).map_or(l.as_ref(), |(_, assumed)| assumed))
        .collect();
    let mut resolution = domain::resolve(&shipment, &read)?;
    let bears = |id: uuid::Uuid| {
        candidates.iter().any(|l| {
            l.id == id && l.covers_origin(&shipment.origin_economy) && l.matched_prefix(&shipment.hs_code).is_some()
        })
    };
    resolution.explanations.extend(hypothesis.explain(shipment.imported_on, bears));
    let mut response = resolution_to_proto(&resolution);
    response.hypothetical = true;
    Ok(Response::new(response))
}

pub(super) async fn get_measure_exposure(
    api: &TariffApi,
    request: Request<pb::GetMeasureExposureRequest>,
) -> Reply<pb::GetMeasureExposureResponse> {
    let ask = convert::get_measure_exposure(request.get_ref())?;
    api.trade.fresh().await?;
    let measure = api.measure(ask.id).await?.ok_or_else(|| Error::not_found("measure", ask.id))?;
    let importer = &measure.spec.imposing_economy;
    let year = match ask.year {
        Some(year) => Some(year),
        None => api.trade.read()?.latest_year(importer, |e| measure.spec.covers_origin(e)),
    };
    let day = ask.on.or(year.map(last_day)).unwrap_or_else(today);
    let hypothesis = hypothesis(api, ask.assume, day).await?;
    let mut exposure = match year {
        Some(year) => store::measure_exposure(&*api.trade.read()?, hypothesis.read(&measure), year)?,
        None => domain::Exposure::default(),
    };
    let read = hypothesis.read(&measure);
    exposure.rank_flows();
    let estimated_duty = exposure.estimated_duty(read, day)?;
    exposure.finish_explanations();
    if year.is_none() {
        exposure.explanations.insert(
            0,
            format!("the record holds no trade flow into {} from the measure's origins", measure.spec.imposing_economy),
        );
    }
    exposure.explanations.extend(hypothesis.explain(day, |id| id == measure.id));
    let listed: Vec<_> = exposure.flows.iter().take(ask.max_flows).collect();
    let ids: Vec<uuid::Uuid> = listed.iter().map(|f| f.id).collect();
    let stored: std::collections::HashMap<uuid::Uuid, domain::TradeFlow> =
        store::get_flows(&api.db, &ids).await?.into_iter().map(|f| (f.id, f)).collect();
    let flows = listed
        .iter()
        .filter_map(|f| {
            stored.get(&f.id).map(|stored| pb::ExposedFlow {
                flow: Some(flow_to_proto(stored)),
                coverage: if f.whole { pb::FlowCoverage::Whole } else { pb::FlowCoverage::Partial }.into(),
                matched_hs_code: f.matched.to_string(),
            })
        })
        .collect();
    let today = today();
    Ok(Response::new(pb::GetMeasureExposureResponse {
        measure: Some(measure_to_proto(&measure, today)),
        year: year.unwrap_or_default(),
        on: tradewatch_common::types::format_date(day),
        covered_value: sums_to_proto(&exposure.covered),
        upper_bound_value: sums_to_proto(&exposure.upper_bound),
        approximate: exposure.approximate,
        flows,
        flow_count: i32::try_from(exposure.flows.len()).unwrap_or(i32::MAX),
        estimated_duty: estimated_duty.iter().map(Into::into).collect(),
        status: status_to_proto(read.status_on(day)),
        hypothetical: hypothesis.is_hypothetical(),
        explanations: exposure.explanations,
    }))
}

pub(super) async fn get_trade_coverage(
    api: &TariffApi,
    request: Request<pb::GetTradeCoverageRequest>,
) -> Reply<pb::GetTradeCoverageResponse> {
    let mut ask = convert::get_trade_coverage(request.get_ref())?;
    tokio::try_join!(api.schedule.fresh(), api.trade.fresh())?;
    let table = api.schedule.coverage_table(&ask.importer)?;
    let year = match ask.year {
        Some(year) => Some(year),
        None => api.trade.read()?.latest_year(&ask.importer, |e| ask.exporter.as_ref().is_none_or(|x| x == e)),
    };
    let day = ask.on.or(year.map(last_day)).unwrap_or_else(today);
    let hypothesis = hypothesis(api, std::mem::take(&mut ask.assume), day).await?;
    let flows = api.trade.read()?;
    let is_hypothetical = hypothesis.is_hypothetical();
    let coverage = |hypothesis: &Hypothesis| -> Result<store::TradeCoverage, Error> {
        let Some(year) = year else {
            let none = store::TradeCoverage {
                tally: CoverageTally::default(),
                measures: vec![],
                measure_count: 0,
                reaching: vec![],
            };
            return Ok(none);
        };
        let query = store::CoverageQuery {
            exporter: ask.exporter.as_ref(),
            year,
            day,
            kinds: &ask.kinds,
            hypothesis,
            max_measures: ask.max_measures,
            list_reaching: is_hypothetical,
        };
        store::trade_coverage(&table, &flows, &api.matches, &ask.importer, &query)
    };
    let answer = coverage(&hypothesis)?;
    let mut explanations = Vec::new();
    if year.is_none() {
        explanations.push(format!("the record holds no trade flow into {}", ask.importer));
    }
    if hypothesis.is_hypothetical() {
        // What the record gives: an assumption bears on the answer when its
        // measure reaches a flow either way.
        let real = coverage(&Hypothesis::default())?;
        let reaching: std::collections::HashSet<uuid::Uuid> =
            answer.reaching.iter().chain(&real.reaching).map(|slot| table.measures[*slot].measure.id).collect();
        explanations.extend(hypothesis.explain(day, |id| reaching.contains(&id)));
        if real.tally.covered != answer.tally.covered {
            explanations.push(format!("covered value on the record as it is: {}", money_text(&real.tally.covered)));
        }
    }
    let measures = answer
        .measures
        .iter()
        .map(|(slot, t)| {
            let m = &table.measures[*slot].measure;
            pb::MeasureCoverage {
                measure_id: m.id.to_string(),
                reference: m.reference().to_owned(),
                title: m.title().to_owned(),
                kind: kind_to_proto(m.kind),
                covered_value: sums_to_proto(&t.covered),
                upper_bound_value: sums_to_proto(&t.upper_bound),
                flow_count: i32::try_from(t.flows).unwrap_or(i32::MAX),
                ad_valorem_percent: tradewatch_common::types::format_decimal(m.ad_valorem_percent),
            }
        })
        .collect();
    let tally = &answer.tally;
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    Ok(Response::new(pb::GetTradeCoverageResponse {
        importing_economy: ask.importer.to_string(),
        exporting_economy: ask.exporter.as_ref().map(ToString::to_string).unwrap_or_default(),
        year: year.unwrap_or_default(),
        on: tradewatch_common::types::format_date(day),
        total_value: sums_to_proto(&tally.total),
        covered_value: sums_to_proto(&tally.covered),
        upper_bound_value: sums_to_proto(&tally.upper_bound),
        shares: shares(&tally.total, &tally.covered, &tally.upper_bound),
        approximate: tally.approximate,
        by_kind: tally
            .kinds()
            .iter()
            .map(|(kind, t)| pb::KindCoverage {
                kind: kind_to_proto(*kind),
                covered_value: sums_to_proto(&t.covered),
                upper_bound_value: sums_to_proto(&t.upper_bound),
                flow_count: count(t.flows),
            })
            .collect(),
        measures,
        measure_count: count(answer.measure_count),
        flow_count: count(tally.flows),
        covered_flow_count: count(tally.covered_flows),
        hypothetical: hypothesis.is_hypothetical(),
        explanations,
    }))
}

/// The coverage share in each currency of the total.
fn shares(total: &Sums, covered: &Sums, upper: &Sums) -> Vec<pb::CoverageShare> {
    use tradewatch_common::types::format_decimal;
    total
        .currencies()
        .map(|c| pb::CoverageShare {
            currency_code: c.as_str().to_owned(),
            covered_percent: format_decimal(percent(covered.get(c), total.get(c))),
            upper_bound_percent: format_decimal(percent(upper.get(c), total.get(c))),
        })
        .collect()
}

fn money_text(sums: &Sums) -> String {
    let parts: Vec<String> = sums
        .to_money()
        .iter()
        .map(|m| format!("{} {}", m.currency, tradewatch_common::types::format_decimal(m.amount)))
        .collect();
    if parts.is_empty() { "none".into() } else { parts.join(", ") }
}

pub(super) async fn watch_trade_flows(
    api: &TariffApi,
    request: Request<pb::WatchTradeFlowsRequest>,
) -> Reply<feed::Stream<pb::WatchTradeFlowsResponse>> {
    let filters = watch::watch_trade_flows(request.get_ref())?;
    Ok(Response::new(api.feed.watch(&request.get_ref().start_after, filters).await?))
}
