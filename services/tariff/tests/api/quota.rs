use tonic::Code;
use tradewatch_common::proto::tariff::{self as pb, MeasureKind::*};

use crate::helpers::*;

fn usage(measure_id: &str, quantity: &str) -> pb::RecordQuotaUsageRequest {
    pb::RecordQuotaUsageRequest { id: measure_id.into(), quantity: quantity.into(), request_id: String::new() }
}

#[tokio::test]
async fn concurrent_usage_never_oversubscribes_the_quota() {
    let app = spawn_app().await;
    let trq = app.create(quota(against(measure("TRQ-20", TariffRateQuota, &["870380"], "6.1"), &["CHN"]), "20")).await;
    let calls = (0..50).map(|_| {
        let (mut client, id) = (app.client.clone(), trq.id.clone());
        tokio::spawn(async move { client.record_quota_usage(usage(&id, "1")).await })
    });
    let results: Vec<_> = futures::future::join_all(calls).await.into_iter().map(Result::unwrap).collect();
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let exhausted = results.iter().filter(|r| matches!(r, Err(s) if s.code() == Code::FailedPrecondition)).count();
    assert_eq!(
        (ok, exhausted),
        (20, 30),
        "{:?}",
        results.iter().filter_map(|r| r.as_ref().err()).find(|s| s.code() != Code::FailedPrecondition)
    );
    let m = app
        .client
        .clone()
        .get_measure(pb::GetMeasureRequest { id: trq.id.clone() })
        .await
        .unwrap()
        .into_inner()
        .measure
        .unwrap();
    assert_eq!(m.quota.unwrap().used, "20");
}

#[tokio::test]
async fn a_usage_that_does_not_fit_records_nothing() {
    let app = spawn_app().await;
    let mut client = app.client.clone();
    let trq = app.create(quota(measure("TRQ-5", TariffRateQuota, &["870380"], "6.1"), "5")).await;
    client.record_quota_usage(usage(&trq.id, "4.5")).await.unwrap();
    let status = assert_code(client.record_quota_usage(usage(&trq.id, "1")).await, Code::FailedPrecondition);
    assert_eq!(reason(&status), "QUOTA_EXHAUSTED");
    let m = client.record_quota_usage(usage(&trq.id, "0.5")).await.unwrap().into_inner().measure.unwrap();
    assert_eq!(m.quota.unwrap().used, "5");
}

#[tokio::test]
async fn a_retried_usage_counts_once() {
    let app = spawn_app().await;
    let mut client = app.client.clone();
    let trq = app.create(quota(measure("TRQ-R", TariffRateQuota, &["870380"], "6.1"), "100")).await;
    let req = pb::RecordQuotaUsageRequest { request_id: uuid(), ..usage(&trq.id, "7") };
    for _ in 0..3 {
        let m = client.record_quota_usage(req.clone()).await.unwrap().into_inner().measure.unwrap();
        assert_eq!(m.quota.unwrap().used, "7");
    }
}

#[tokio::test]
async fn usage_of_a_measure_without_quota_or_bad_input_is_refused() {
    let app = spawn_app().await;
    let mut client = app.client.clone();
    let mfn = app.create(measure("MFN-1", Mfn, &["8703"], "6.1")).await;
    let status = assert_code(client.record_quota_usage(usage(&mfn.id, "1")).await, Code::FailedPrecondition);
    assert_eq!(reason(&status), "NOT_A_QUOTA");
    assert_invalid(client.record_quota_usage(usage(&mfn.id, "0")).await, &["quantity"]);
    assert_invalid(client.record_quota_usage(usage("x", "-1")).await, &["id", "quantity"]);
    assert_code(client.record_quota_usage(usage(&uuid(), "1")).await, Code::NotFound);
}
