use tonic::Code;
use tradewatch_common::proto::tariff::{self as pb, MeasureKind::*, MeasureStatus};

use crate::helpers::*;

fn shipment(code: &str, date: &str, value: &str) -> pb::ResolveDutyRequest {
    pb::ResolveDutyRequest {
        importing_economy: "CAN".into(),
        origin_economy: "CHN".into(),
        hs_code: code.into(),
        imported_on: date.into(),
        customs_value: money("CAD", value),
        quantity: String::new(),
        assume: vec![],
    }
}

async fn ev_schedule(app: &TestApp) -> (pb::TariffMeasure, pb::TariffMeasure, pb::TariffMeasure) {
    let mfn = app.create(measure("CA-CT-8703-MFN", Mfn, &["8703"], "6.1")).await;
    let mut surtax = against(measure("SOR/2024-187", Surtax, &["87038000", "87034010"], "100"), &["CHN"]);
    surtax.effective_from = "2024-10-01".into();
    let surtax = app.create(surtax).await;
    let mut trq = quota(against(measure("CA-CN-EV-TRQ-2026", TariffRateQuota, &["87038000"], "6.1"), &["CHN"]), "3");
    trq.effective_from = "2026-01-16".into();
    let trq = app.create(trq).await;
    (mfn, surtax, trq)
}

fn kinds(r: &pb::ResolveDutyResponse) -> Vec<(pb::MeasureKind, String)> {
    r.lines.iter().map(|l| (l.kind(), l.amount.clone().unwrap().amount)).collect()
}

#[tokio::test]
async fn a_chinese_ev_in_january_2025_pays_mfn_plus_the_surtax() {
    let app = spawn_app().await;
    let (mfn, surtax, _) = ev_schedule(&app).await;
    let r =
        app.client.clone().resolve_duty(shipment("8703.80.00", "2025-01-15", "40000.00")).await.unwrap().into_inner();
    assert_eq!(kinds(&r), [(Mfn, "2440.00".into()), (Surtax, "40000.00".into())]);
    assert_eq!(r.lines[0].measure_id, mfn.id);
    assert_eq!(r.lines[1].measure_id, surtax.id);
    assert_eq!(r.lines[1].matched_hs_code, "87038000");
    assert_eq!(r.total_duty, money("CAD", "42440.00"));
    assert_eq!(r.effective_rate_percent, "106.1");
    assert!(!r.quota_full);
    assert!(!r.explanations.is_empty());
}

#[tokio::test]
async fn inside_the_2026_quota_only_the_in_quota_rate_applies_until_it_is_full() {
    let app = spawn_app().await;
    let (_, _, trq) = ev_schedule(&app).await;
    let mut client = app.client.clone();
    let r = client.resolve_duty(shipment("87038000", "2026-02-01", "40000")).await.unwrap().into_inner();
    assert_eq!(kinds(&r), [(TariffRateQuota, "2440.00".into())]);
    assert_eq!(r.lines[0].measure_id, trq.id);

    client
        .record_quota_usage(pb::RecordQuotaUsageRequest {
            id: trq.id.clone(),
            quantity: "3".into(),
            request_id: String::new(),
        })
        .await
        .unwrap();
    let full = client.resolve_duty(shipment("87038000", "2026-02-01", "40000")).await.unwrap().into_inner();
    assert_eq!(kinds(&full), [(Mfn, "2440.00".into()), (Surtax, "40000.00".into())]);
    assert!(full.quota_full);
}

#[tokio::test]
async fn a_suspension_takes_hold_on_its_date() {
    let app = spawn_app().await;
    let mut mfn = measure("CN-MFN-230641", Mfn, &["230641"], "5");
    mfn.imposing_economy = "CHN".into();
    app.create(mfn).await;
    let mut meal = against(measure("CN-MEAL-100", Retaliatory, &["230641", "071310"], "100"), &["CAN"]);
    meal.imposing_economy = "CHN".into();
    meal.effective_from = "2025-03-20".into();
    let meal = app.create(meal).await;
    let mut client = app.client.clone();
    client
        .set_measure_status(pb::SetMeasureStatusRequest {
            id: meal.id.clone(),
            status: MeasureStatus::Suspended.into(),
            effective_on: "2026-03-01".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let ship = |date: &str| pb::ResolveDutyRequest {
        importing_economy: "CHN".into(),
        origin_economy: "CAN".into(),
        customs_value: money("CNY", "1000"),
        ..shipment("23064100", date, "0")
    };
    let before = client.resolve_duty(ship("2026-02-15")).await.unwrap().into_inner();
    assert_eq!(before.total_duty, money("CNY", "1050.00"));
    let after = client.resolve_duty(ship("2026-03-02")).await.unwrap().into_inner();
    assert_eq!(after.total_duty, money("CNY", "50.00"));
}

#[tokio::test]
async fn a_code_no_base_rate_covers_is_not_found() {
    let app = spawn_app().await;
    ev_schedule(&app).await;
    let status =
        assert_code(app.client.clone().resolve_duty(shipment("720851", "2025-01-15", "100")).await, Code::NotFound);
    assert!(status.message().contains("no MFN or preferential rate"), "{status:?}");
}

#[tokio::test]
async fn resolve_names_every_bad_field() {
    let app = spawn_app().await;
    let mut client = app.client.clone();
    let bad = pb::ResolveDutyRequest {
        importing_economy: "can".into(),
        origin_economy: String::new(),
        hs_code: "8703".into(),
        imported_on: "2025/01/15".into(),
        customs_value: money("cad", "-1"),
        quantity: "0".into(),
        assume: vec![],
    };
    assert_invalid(
        client.resolve_duty(bad).await,
        &[
            "importing_economy",
            "origin_economy",
            "hs_code",
            "imported_on",
            "customs_value.currency_code",
            "customs_value.amount",
            "quantity",
        ],
    );
    assert_invalid(
        client
            .resolve_duty(pb::ResolveDutyRequest { customs_value: None, ..shipment("870380", "2025-01-15", "1") })
            .await,
        &["customs_value"],
    );
}

#[tokio::test]
async fn a_suspension_through_one_replica_is_seen_by_the_next_resolve_on_the_other() {
    // Each replica answers from its schedule in memory; neither may answer
    // from one older than the last write committed before the call.
    let app = spawn_app().await;
    let (_, surtax, _) = ev_schedule(&app).await;
    let (replica, mut other) = app.replica().await;
    let before = other.resolve_duty(shipment("87038000", "2025-01-15", "40000")).await.unwrap().into_inner();
    assert_eq!(
        kinds(&before),
        [(Mfn, "2440.00".into()), (Surtax, "40000.00".into())],
        "the replica's schedule is loaded"
    );
    let get = pb::GetMeasureRequest { id: surtax.id.clone() };
    assert_eq!(
        other.get_measure(get.clone()).await.unwrap().into_inner().measure.unwrap().status(),
        MeasureStatus::InForce
    );

    app.client
        .clone()
        .set_measure_status(pb::SetMeasureStatusRequest {
            id: surtax.id.clone(),
            status: MeasureStatus::Suspended.into(),
            effective_on: "2024-12-01".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let after = other.resolve_duty(shipment("87038000", "2025-01-15", "40000")).await.unwrap().into_inner();
    assert_eq!(kinds(&after), [(Mfn, "2440.00".into())], "the suspension is seen at once: {after:?}");
    let m = other.get_measure(get).await.unwrap().into_inner().measure.unwrap();
    assert_eq!(m.status(), MeasureStatus::Suspended);

    // A measure created through one is resolved by the other's next call.
    let mut aluminum = against(measure("SOR/2024-188", Surtax, &["7601"], "25"), &["CHN"]);
    aluminum.effective_from = "2024-10-15".into();
    app.create(aluminum).await;
    let mfn = app.create(measure("CA-CT-7601-MFN", Mfn, &["7601"], "0")).await;
    let r = other.resolve_duty(shipment("76011000", "2025-01-15", "1000")).await.unwrap().into_inner();
    assert_eq!(kinds(&r), [(Mfn, "0.00".into()), (Surtax, "250.00".into())]);
    assert_eq!(r.lines[0].measure_id, mfn.id);
    replica.stop().await.unwrap();
}
