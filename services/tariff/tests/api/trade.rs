//! Trade flows, exposure, coverage and what-if (DESIGN §14), through the
//! generated client: imports that create, replace and leave alone, every
//! refusal writing nothing, approximate flows, exclusions, each flow counted
//! once, currencies apart, assumptions that write nothing, the change feed,
//! and answers as fresh as the last write on another replica.

use std::time::Duration;

use pb::MeasureKind::*;
use tonic::Code;
use tradewatch_common::proto::tariff::{self as pb, MeasureStatus};

use crate::helpers::*;

fn flow(exporter: &str, importer: &str, code: &str, year: i32, currency: &str, value: &str) -> pb::TradeFlow {
    pb::TradeFlow {
        exporting_economy: exporter.into(),
        importing_economy: importer.into(),
        hs_code: code.into(),
        year,
        value: money(currency, value),
        source_url: "https://www150.statcan.gc.ca/".into(),
        ..Default::default()
    }
}

/// A flow from Canada into China in 2024, in CAD.
fn to_china(code: &str, value: &str) -> pb::TradeFlow {
    flow("CAN", "CHN", code, 2024, "CAD", value)
}

async fn import(app: &TestApp, flows: Vec<pb::TradeFlow>) -> Result<pb::ImportTradeFlowsResponse, tonic::Status> {
    app.client
        .clone()
        .import_trade_flows(pb::ImportTradeFlowsRequest { flows, request_id: String::new() })
        .await
        .map(tonic::Response::into_inner)
}

async fn all_flows(app: &TestApp, mut req: pb::ListTradeFlowsRequest) -> Vec<pb::TradeFlow> {
    let mut out = Vec::new();
    loop {
        let page = app.client.clone().list_trade_flows(req.clone()).await.expect("list page").into_inner();
        out.extend(page.flows);
        if page.next_page_token.is_empty() {
            return out;
        }
        req.page_token = page.next_page_token;
    }
}

fn chinese(mut m: pb::TariffMeasure) -> pb::TariffMeasure {
    m.imposing_economy = "CHN".into();
    m
}

fn amounts(money: &[tradewatch_common::proto::common::Money]) -> Vec<(String, String)> {
    money.iter().map(|m| (m.currency_code.clone(), m.amount.clone())).collect()
}

fn cad(amount: &str) -> Vec<(String, String)> {
    vec![("CAD".into(), amount.into())]
}

async fn exposure(
    app: &TestApp,
    req: pb::GetMeasureExposureRequest,
) -> Result<pb::GetMeasureExposureResponse, tonic::Status> {
    app.client.clone().get_measure_exposure(req).await.map(tonic::Response::into_inner)
}

async fn coverage(
    app: &TestApp,
    req: pb::GetTradeCoverageRequest,
) -> Result<pb::GetTradeCoverageResponse, tonic::Status> {
    app.client.clone().get_trade_coverage(req).await.map(tonic::Response::into_inner)
}

fn exposure_of(id: &str, year: i32) -> pb::GetMeasureExposureRequest {
    pb::GetMeasureExposureRequest { id: id.into(), year, ..Default::default() }
}

fn coverage_of(importer: &str, exporter: &str, year: i32, on: &str) -> pb::GetTradeCoverageRequest {
    pb::GetTradeCoverageRequest {
        importing_economy: importer.into(),
        exporting_economy: exporter.into(),
        year,
        on: on.into(),
        ..Default::default()
    }
}

fn assume(id: &str, status: MeasureStatus, on: &str) -> pb::AssumedStatusChange {
    pb::AssumedStatusChange { measure_id: id.into(), status: status.into(), effective_on: on.into() }
}

#[tokio::test]
async fn an_import_creates_replaces_and_leaves_alone_by_natural_key() {
    let app = spawn_app().await;
    let mut seed = to_china("1205", "4000000000");
    seed.note = "rounded: CAD 4.0 billion".into();
    seed.quantity = "5900000".into();
    seed.unit = "tonne".into();
    let r = import(&app, vec![seed.clone(), to_china("230641", "921000000")]).await.unwrap();
    assert_eq!((r.created, r.replaced, r.unchanged), (2, 0, 0));
    let before = all_flows(&app, pb::ListTradeFlowsRequest::default()).await;
    let canola = before.iter().find(|f| f.hs_code == "1205").unwrap().clone();
    assert_eq!((canola.quantity.as_str(), canola.unit.as_str(), canola.etag.as_str()), ("5900000", "tonne", "1"));
    assert_eq!(canola.value, money("CAD", "4000000000"));

    // Statistics are revised: same key, new value.
    let r = import(&app, vec![seed.clone(), to_china("230641", "920900000"), to_china("071310", "303600000")])
        .await
        .unwrap();
    assert_eq!((r.created, r.replaced, r.unchanged), (1, 1, 1));
    let after = all_flows(&app, pb::ListTradeFlowsRequest::default()).await;
    assert_eq!(after.len(), 3);
    let meal = after.iter().find(|f| f.hs_code == "230641").unwrap();
    let old_meal = before.iter().find(|f| f.hs_code == "230641").unwrap();
    assert_eq!((meal.id.as_str(), meal.etag.as_str()), (old_meal.id.as_str(), "2"), "the id stays, the etag moves");
    assert_eq!(meal.value, money("CAD", "920900000"));
    assert_eq!(meal.create_time, old_meal.create_time);
    assert_eq!(after.iter().find(|f| f.hs_code == "1205").unwrap(), &canola, "unchanged is not written");
}

#[tokio::test]
async fn a_retried_import_answers_as_the_first_and_writes_nothing() {
    let app = spawn_app().await;
    let req = pb::ImportTradeFlowsRequest { flows: vec![to_china("1205", "100")], request_id: uuid() };
    let first = app.client.clone().import_trade_flows(req.clone()).await.unwrap().into_inner();
    // Another import in between: a replay must not see it.
    import(&app, vec![to_china("1205", "200")]).await.unwrap();
    let again = app.client.clone().import_trade_flows(req.clone()).await.unwrap().into_inner();
    assert_eq!(first, again);
    assert_eq!((again.created, again.replaced), (1, 0));
    let flows = all_flows(&app, pb::ListTradeFlowsRequest::default()).await;
    assert_eq!(flows[0].value, money("CAD", "200"), "the retry wrote nothing");
    let mut other = req.clone();
    other.flows[0].value = money("CAD", "300");
    assert_invalid(app.client.clone().import_trade_flows(other).await, &["request_id"]);
}

#[tokio::test]
async fn every_bad_flow_is_named_and_nothing_is_written() {
    let app = spawn_app().await;
    let good = to_china("1205", "100");
    let mut flows = vec![good.clone()];
    let mut bad = |f: pb::TradeFlow| flows.push(f);
    bad(flow("XXX", "CHN", "1205", 2024, "CAD", "1"));
    bad(flow("CAN", "CHN", "120", 2024, "CAD", "1"));
    bad(flow("CAN", "CHN", "12051090001", 2024, "CAD", "1"));
    bad(flow("CAN", "CHN", "1206", 1947, "CAD", "1"));
    bad(flow("CAN", "CHN", "1207", 2101, "CAD", "1"));
    bad(flow("CAN", "CHN", "1208", 2024, "CAD", "-5"));
    bad(flow("CAN", "CHN", "1209", 2024, "CAD", "1.00001"));
    bad(flow("CAN", "CAN", "1210", 2024, "cad", "1"));
    let mut no_unit = flow("CAN", "CHN", "1211", 2024, "CAD", "1");
    no_unit.quantity = "5".into();
    bad(no_unit);
    let mut no_source = flow("CAN", "CHN", "1212", 2024, "CAD", "1");
    no_source.source_url.clear();
    no_source.year = 0;
    bad(no_source);
    bad(good.clone());
    let result = import(&app, flows).await;
    assert_invalid(
        result,
        &[
            "flows[1].exporting_economy",
            "flows[2].hs_code",
            "flows[3].hs_code",
            "flows[4].year",
            "flows[5].year",
            "flows[6].value.amount",
            "flows[7].value.amount",
            "flows[8].value.currency_code",
            "flows[8].importing_economy",
            "flows[9].unit",
            "flows[10].year",
            "flows[10].source_url",
            "flows[11]",
        ],
    );
    assert!(all_flows(&app, pb::ListTradeFlowsRequest::default()).await.is_empty(), "nothing was written");

    let too_many: Vec<_> = (0..1001).map(|i| flow("CAN", "CHN", &format!("{:06}", i * 2), 2024, "CAD", "1")).collect();
    assert_invalid(import(&app, too_many).await, &["flows"]);
    assert_invalid(import(&app, vec![]).await, &["flows"]);
    let a_thousand: Vec<_> =
        (0..1000).map(|i| flow("CAN", "CHN", &format!("{:06}", i * 2), 2024, "CAD", "1")).collect();
    assert_eq!(import(&app, a_thousand).await.unwrap().created, 1000, "1000 is within the limit");
}

#[tokio::test]
async fn flows_are_listed_by_key_filtered_and_paged() {
    let app = spawn_app().await;
    import(
        &app,
        vec![
            to_china("1205", "1"),
            to_china("120510", "2"),
            to_china("2306", "3"),
            flow("CAN", "CHN", "1205", 2023, "CAD", "4"),
            flow("CHN", "CAN", "870380", 2023, "CAD", "5"),
            flow("USA", "CHN", "1205", 2024, "USD", "6"),
        ],
    )
    .await
    .unwrap();
    let key = |f: &pb::TradeFlow| format!("{}<{} {} {}", f.importing_economy, f.exporting_economy, f.year, f.hs_code);
    let all = all_flows(&app, pb::ListTradeFlowsRequest { page_size: 2, ..Default::default() }).await;
    assert_eq!(
        all.iter().map(key).collect::<Vec<_>>(),
        [
            "CAN<CHN 2023 870380",
            "CHN<CAN 2023 1205",
            "CHN<CAN 2024 1205",
            "CHN<CAN 2024 120510",
            "CHN<CAN 2024 2306",
            "CHN<USA 2024 1205"
        ]
    );
    let canola = all_flows(
        &app,
        pb::ListTradeFlowsRequest {
            importing_economy: "CHN".into(),
            exporting_economy: "CAN".into(),
            hs_code: "1205.10".into(),
            year: 2024,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(canola.iter().map(key).collect::<Vec<_>>(), ["CHN<CAN 2024 1205", "CHN<CAN 2024 120510"]);
    assert_invalid(
        app.client
            .clone()
            .list_trade_flows(pb::ListTradeFlowsRequest { year: 3000, hs_code: "1".into(), ..Default::default() })
            .await,
        &["hs_code", "year"],
    );
}

#[tokio::test]
async fn exposure_counts_whole_flows_and_bounds_coarser_and_cut_ones() {
    let app = spawn_app().await;
    let mut ad = chinese(against(measure("AD-CANOLA", AntiDumping, &["120510", "72"], "75.8"), &["CAN"]));
    ad.excluded_hs_codes = vec!["720810".into()];
    let ad = app.create(ad).await;
    import(
        &app,
        vec![
            to_china("12051090", "1000"),                   // finer than the measure: whole
            to_china("120510", "500"),                      // the same code: whole
            to_china("1205", "4000"),                       // coarser: upper bound only
            to_china("7208", "70"),                         // an exclusion cuts into it: upper bound only
            to_china("720810", "9"),                        // excluded: not counted
            to_china("2306", "9"),                          // elsewhere: not counted
            flow("USA", "CHN", "120510", 2024, "USD", "7"), // another origin: not counted
            flow("CAN", "CHN", "120510", 2023, "CAD", "7"), // another year
        ],
    )
    .await
    .unwrap();
    let e = exposure(&app, exposure_of(&ad.id, 2024)).await.unwrap();
    assert_eq!(amounts(&e.covered_value), cad("1500.00"));
    assert_eq!(amounts(&e.upper_bound_value), cad("5570.00"));
    assert!(e.approximate);
    assert_eq!(e.flow_count, 4);
    let listed: Vec<_> = e.flows.iter().map(|f| (f.flow.as_ref().unwrap().hs_code.as_str(), f.coverage())).collect();
    assert_eq!(
        listed,
        [
            ("1205", pb::FlowCoverage::Partial),
            ("12051090", pb::FlowCoverage::Whole),
            ("120510", pb::FlowCoverage::Whole),
            ("7208", pb::FlowCoverage::Partial)
        ],
        "largest first"
    );
    assert_eq!(e.flows[0].matched_hs_code, "120510");
    assert_eq!((e.year, e.on.as_str(), e.status()), (2024, "2024-12-31", MeasureStatus::InForce));
    assert_eq!(amounts(&e.estimated_duty), cad("1137.00"), "75.8% of the covered 1500");
    assert!(!e.hypothetical);
    assert!(e.explanations.iter().any(|x| x.contains("coarser level")), "{:?}", e.explanations);
    assert!(e.explanations.iter().any(|x| x.contains("excluded 720810")), "{:?}", e.explanations);

    // The latest year by default, and a shorter list that still counts all.
    let latest =
        exposure(&app, pb::GetMeasureExposureRequest { id: ad.id.clone(), max_flows: 1, ..Default::default() })
            .await
            .unwrap();
    assert_eq!((latest.year, latest.flows.len(), latest.flow_count), (2024, 1, 4));
    assert_eq!(latest.upper_bound_value, e.upper_bound_value);
    let older = exposure(&app, exposure_of(&ad.id, 2023)).await.unwrap();
    assert_eq!((amounts(&older.covered_value), older.approximate), (cad("7.00"), false));
}

#[tokio::test]
async fn sums_are_kept_per_currency_and_never_converted() {
    let app = spawn_app().await;
    let surtax = app.create(against(measure("SUR-STEEL", Surtax, &["72"], "25"), &[])).await;
    import(
        &app,
        vec![
            flow("CHN", "CAN", "7208", 2024, "CAD", "100"),
            flow("CHN", "CAN", "7209", 2024, "CNY", "300.5"),
            flow("KOR", "CAN", "7210", 2024, "USD", "50"),
            flow("KOR", "CAN", "7211", 2024, "CAD", "1.25"),
        ],
    )
    .await
    .unwrap();
    let e = exposure(&app, exposure_of(&surtax.id, 2024)).await.unwrap();
    assert_eq!(
        amounts(&e.covered_value),
        [("CAD".into(), "101.25".into()), ("CNY".into(), "300.50".into()), ("USD".into(), "50.00".into())]
    );
    assert_eq!(
        amounts(&e.estimated_duty),
        [("CAD".into(), "25.31".into()), ("CNY".into(), "75.13".into()), ("USD".into(), "12.50".into())]
    );
    let c = coverage(&app, coverage_of("CAN", "", 2024, "2024-06-01")).await.unwrap();
    assert_eq!(amounts(&c.total_value), amounts(&e.covered_value));
    let shares: Vec<_> = c.shares.iter().map(|s| (s.currency_code.as_str(), s.covered_percent.as_str())).collect();
    assert_eq!(shares, [("CAD", "100"), ("CNY", "100"), ("USD", "100")]);
}

#[tokio::test]
async fn coverage_counts_each_flow_once_splits_by_kind_and_ranks_measures() {
    let app = spawn_app().await;
    let mfn = app.create(chinese(measure("CN-MFN-12", Mfn, &["12", "23"], "9"))).await;
    app.create(chinese(against(measure("CN-AD-1205", AntiDumping, &["1205"], "75.8"), &["CAN"]))).await;
    app.create(chinese(against(measure("CN-RET-MEAL", Retaliatory, &["230641"], "100"), &["CAN"]))).await;
    let mut later = chinese(against(measure("CN-RET-LATER", Retaliatory, &["0713"], "100"), &["CAN"]));
    later.effective_from = "2025-03-20".into();
    app.create(later).await;
    let usa_only = app.create(chinese(against(measure("CN-USA", Surtax, &["1205"], "10"), &["USA"]))).await;
    import(
        &app,
        vec![
            to_china("120510", "1000"), // MFN and AD: once
            to_china("230641", "500"),  // MFN and the meal duty
            to_china("2306", "40"),     // coarser than the meal duty, inside the MFN
            to_china("071310", "300"),  // the later duty does not apply in 2024
            to_china("0203", "7"),      // no measure
        ],
    )
    .await
    .unwrap();
    let c = coverage(&app, coverage_of("CHN", "CAN", 2024, "2024-12-31")).await.unwrap();
    assert_eq!((c.flow_count, c.covered_flow_count), (5, 3));
    assert_eq!(amounts(&c.total_value), cad("1847.00"));
    assert_eq!(amounts(&c.covered_value), cad("1540.00"), "each flow once, though MFN and a duty hit it");
    assert_eq!(amounts(&c.upper_bound_value), cad("1540.00"));
    assert!(!c.approximate, "the coarse flow is covered whole by the MFN");
    assert_eq!(c.shares[0].covered_percent, "83.3785");
    let kinds: Vec<_> =
        c.by_kind.iter().map(|k| (k.kind(), amounts(&k.covered_value), amounts(&k.upper_bound_value))).collect();
    assert_eq!(
        kinds,
        [
            (Mfn, cad("1540.00"), cad("1540.00")),
            (Retaliatory, cad("500.00"), cad("540.00")),
            (AntiDumping, cad("1000.00"), cad("1000.00"))
        ]
    );
    let ranked: Vec<_> = c.measures.iter().map(|m| (m.reference.as_str(), amounts(&m.covered_value))).collect();
    assert_eq!(ranked, [("CN-MFN-12", cad("1540.00")), ("CN-AD-1205", cad("1000.00")), ("CN-RET-MEAL", cad("500.00"))]);
    assert_eq!(c.measure_count, 3);
    assert!(c.measures.iter().all(|m| m.measure_id != usa_only.id), "a measure on another origin does not count");
    assert_eq!(c.measures[0].measure_id, mfn.id);

    // Only the additional duties, as GTA counts interventions.
    let mut duties = coverage_of("CHN", "CAN", 2024, "2024-12-31");
    duties.kinds = vec![AntiDumping.into(), Retaliatory.into()];
    let d = coverage(&app, duties).await.unwrap();
    assert_eq!((amounts(&d.covered_value), amounts(&d.upper_bound_value)), (cad("1500.00"), cad("1540.00")));
    assert!(d.approximate, "the coarse meal flow is in the upper bound only");
    assert_eq!(d.shares[0].upper_bound_percent, "83.3785");
    let mut top = coverage_of("CHN", "CAN", 2024, "2024-12-31");
    top.max_measures = 1;
    let top = coverage(&app, top).await.unwrap();
    assert_eq!((top.measures.len(), top.measure_count), (1, 3));
    // On a later day the later duty applies too.
    let c = coverage(&app, coverage_of("CHN", "CAN", 2024, "2025-06-01")).await.unwrap();
    assert_eq!(amounts(&c.covered_value), cad("1840.00"));
    assert!(c.measures.iter().any(|m| m.reference == "CN-RET-LATER"));
}

#[tokio::test]
async fn an_assumed_suspension_lifts_the_duty_and_writes_nothing() {
    let app = spawn_app().await;
    app.create(chinese(measure("CN-MFN-230641", Mfn, &["230641"], "5"))).await;
    let mut meal = chinese(against(measure("CN-RET-MEAL", Retaliatory, &["230641"], "100"), &["CAN"]));
    meal.effective_from = "2025-03-20".into();
    let meal = app.create(meal).await;
    import(&app, vec![flow("CAN", "CHN", "230641", 2025, "CAD", "920900000")]).await.unwrap();
    let mut client = app.client.clone();
    let ship = || pb::ResolveDutyRequest {
        importing_economy: "CHN".into(),
        origin_economy: "CAN".into(),
        hs_code: "230641".into(),
        imported_on: "2026-03-15".into(),
        customs_value: money("CNY", "10000"),
        ..Default::default()
    };
    let real = client.resolve_duty(ship()).await.unwrap().into_inner();
    assert_eq!((real.total_duty.clone(), real.hypothetical), (money("CNY", "10500.00"), false));
    let mut what_if = ship();
    what_if.assume = vec![assume(&meal.id, MeasureStatus::Suspended, "2026-03-01")];
    let r = client.resolve_duty(what_if).await.unwrap().into_inner();
    assert_eq!(r.total_duty, money("CNY", "500.00"));
    assert!(r.hypothetical);
    assert!(
        r.explanations
            .iter()
            .any(|x| x.contains("CN-RET-MEAL SUSPENDED from 2026-03-01") && x.contains("changes this answer")),
        "{:?}",
        r.explanations
    );

    let mut e = exposure_of(&meal.id, 2025);
    e.on = "2026-03-15".into();
    let before = exposure(&app, e.clone()).await.unwrap();
    assert_eq!(amounts(&before.estimated_duty), cad("920900000.00"));
    e.assume = vec![assume(&meal.id, MeasureStatus::Suspended, "")];
    let after = exposure(&app, e).await.unwrap();
    assert_eq!((amounts(&after.estimated_duty), after.status()), (cad("0.00"), MeasureStatus::Suspended));
    assert_eq!(after.covered_value, before.covered_value, "the trade is the same; its duty is gone");
    assert!(after.hypothetical);

    let mut c = coverage_of("CHN", "CAN", 2025, "2026-03-15");
    c.kinds = vec![Retaliatory.into()];
    assert_eq!(amounts(&coverage(&app, c.clone()).await.unwrap().covered_value), cad("920900000.00"));
    c.assume = vec![assume(&meal.id, MeasureStatus::Suspended, "2026-03-01")];
    let hypothetical = coverage(&app, c).await.unwrap();
    assert!(hypothetical.covered_value.is_empty() && hypothetical.hypothetical);
    assert!(
        hypothetical.explanations.iter().any(|x| x.contains("changes this answer")),
        "{:?}",
        hypothetical.explanations
    );

    // Nothing was written: the measure, its history and the feed are as they were.
    let now = client.get_measure(pb::GetMeasureRequest { id: meal.id.clone() }).await.unwrap().into_inner();
    assert_eq!(now.measure.unwrap().etag, meal.etag);
    let history = client
        .list_measure_history(pb::ListMeasureHistoryRequest { measure_id: meal.id.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(history.changes.len(), 1);
    assert_eq!(client.resolve_duty(ship()).await.unwrap().into_inner().total_duty, real.total_duty);
}

#[tokio::test]
async fn bad_assumptions_are_refused_by_field() {
    let app = spawn_app().await;
    let mfn = app.create(measure("MFN-8703", Mfn, &["8703"], "6.1")).await;
    let mut revoked = against(measure("SUR-8703", Surtax, &["8703"], "100"), &["CHN"]);
    revoked.effective_from = "2024-10-01".into();
    let revoked = app.create(revoked).await;
    app.client
        .clone()
        .set_measure_status(pb::SetMeasureStatusRequest {
            id: revoked.id.clone(),
            status: MeasureStatus::Revoked.into(),
            effective_on: "2025-01-01".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let ship = |assume: Vec<pb::AssumedStatusChange>| pb::ResolveDutyRequest {
        importing_economy: "CAN".into(),
        origin_economy: "CHN".into(),
        hs_code: "870380".into(),
        imported_on: "2025-06-01".into(),
        customs_value: money("CAD", "100"),
        assume,
        ..Default::default()
    };
    let mut client = app.client.clone();
    let missing = uuid();
    let status = assert_code(
        client
            .resolve_duty(ship(vec![
                assume(&mfn.id, MeasureStatus::Suspended, ""),
                assume(&missing, MeasureStatus::Suspended, ""),
            ]))
            .await,
        Code::NotFound,
    );
    let (_, metadata) = tradewatch_common::testing::error_info(&status);
    assert_eq!(metadata.get("field").map(String::as_str), Some("assume[1].measure_id"), "{status:?}");
    assert!(status.message().contains("assume[1].measure_id"), "{status:?}");
    assert_invalid(
        client
            .resolve_duty(ship(vec![
                assume(&mfn.id, MeasureStatus::Suspended, ""),
                assume(&mfn.id, MeasureStatus::Revoked, "2025-13-01"),
                pb::AssumedStatusChange { measure_id: "nope".into(), ..Default::default() },
                assume(&revoked.id, MeasureStatus::Announced, ""),
            ]))
            .await,
        &[
            "assume[1].measure_id",
            "assume[1].effective_on",
            "assume[2].measure_id",
            "assume[2].status",
            "assume[3].status",
        ],
    );
    let status = assert_code(
        client.resolve_duty(ship(vec![assume(&revoked.id, MeasureStatus::Suspended, "2025-06-01")])).await,
        Code::FailedPrecondition,
    );
    assert_eq!(reason(&status), "MEASURE_STATUS_FINAL");
    let too_many: Vec<_> = (0..101).map(|_| assume(&uuid(), MeasureStatus::Suspended, "")).collect();
    assert_invalid(client.resolve_duty(ship(too_many)).await, &["assume"]);
    let status = assert_code(
        exposure(&app, pb::GetMeasureExposureRequest { id: uuid(), ..Default::default() }).await,
        Code::NotFound,
    );
    assert_eq!(reason(&status), "NOT_FOUND");
    assert_invalid(
        exposure(
            &app,
            pb::GetMeasureExposureRequest {
                id: "x".into(),
                year: 1900,
                on: "soon".into(),
                max_flows: -1,
                ..Default::default()
            },
        )
        .await,
        &["id", "year", "on", "max_flows"],
    );
    assert_invalid(
        coverage(
            &app,
            pb::GetTradeCoverageRequest {
                importing_economy: "CAN".into(),
                exporting_economy: "CAN".into(),
                kinds: vec![Surtax.into(), Surtax.into(), 0],
                ..Default::default()
            },
        )
        .await,
        &["exporting_economy", "kinds[1]", "kinds[2]"],
    );
    // An assumption the record refuses is refused the same way by coverage.
    let mut c = coverage_of("CAN", "CHN", 2024, "2025-06-01");
    c.assume = vec![assume(&missing, MeasureStatus::Suspended, "")];
    assert_code(coverage(&app, c).await, Code::NotFound);
}

#[tokio::test]
async fn imports_stream_on_watch_trade_flows_created_then_replaced() {
    let app = spawn_app().await;
    let mut w = app
        .client
        .clone()
        .watch_trade_flows(pb::WatchTradeFlowsRequest { hs_code: "12".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    import(&app, vec![to_china("1205", "1"), to_china("2306", "2")]).await.unwrap();
    import(&app, vec![to_china("1205", "1")]).await.unwrap();
    import(&app, vec![to_china("1205", "3")]).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let r = tokio::time::timeout(Duration::from_secs(10), w.message()).await.unwrap().unwrap().unwrap();
        assert!(!r.resume_token.is_empty());
        if let Some(c) = r.change {
            let f = c.flow.clone().unwrap();
            seen.push((c.kind(), f.hs_code, f.value.unwrap().amount, c.actor));
        }
    }
    assert_eq!(
        seen,
        [
            (pb::TradeFlowChangeKind::Created, "1205".into(), "1".into(), "anonymous".into()),
            (pb::TradeFlowChangeKind::Replaced, "1205".into(), "3".into(), "anonymous".into())
        ],
        "the filter drops 2306, an unchanged flow is no change"
    );
    assert_invalid(
        app.client.clone().watch_trade_flows(pb::WatchTradeFlowsRequest { year: 12, ..Default::default() }).await,
        &["year"],
    );
}

#[tokio::test]
async fn coverage_on_one_replica_sees_an_import_on_another_at_once() {
    let app = spawn_app().await;
    let (replica, replica_client) = app.replica().await;
    app.create(chinese(measure("CN-MFN-12", Mfn, &["12"], "9"))).await;
    let ask = || coverage_of("CHN", "CAN", 2024, "2024-12-31");
    let before = replica_client.clone().get_trade_coverage(ask()).await.unwrap().into_inner();
    assert!(before.total_value.is_empty());
    for value in ["100", "250"] {
        import(&app, vec![to_china("1205", value)]).await.unwrap();
        let after = replica_client.clone().get_trade_coverage(ask()).await.unwrap().into_inner();
        assert_eq!(amounts(&after.covered_value), cad(&format!("{value}.00")), "no answer older than the write");
    }
    let m = app.create(chinese(against(measure("CN-AD", AntiDumping, &["120510"], "5"), &["CAN"]))).await;
    let e = replica_client.clone().get_measure_exposure(exposure_of(&m.id, 2024)).await.unwrap().into_inner();
    assert_eq!(amounts(&e.upper_bound_value), cad("250.00"));
    replica.stop().await.unwrap();
}
