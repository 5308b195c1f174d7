use tonic::Code;
use tonic_types::StatusExt;
use tradewatch_common::proto::{dispute as dpb, tariff as tpb};
use tradewatch_e2e::Stack;

fn canola_duty() -> tpb::TariffMeasure {
    tpb::TariffMeasure {
        reference: "MOFCOM-2025-AD-CANOLA-PRELIM".into(),
        title: "Anti-dumping deposit on Canadian canola seed (preliminary ruling)".into(),
        imposing_economy: "CHN".into(),
        target_economies: vec!["CAN".into()],
        kind: tpb::MeasureKind::AntiDumping.into(),
        hs_codes: vec!["1205".into()],
        ad_valorem_percent: "75.8".into(),
        effective_from: "2025-08-14".into(),
        effective_to: "2026-02-28".into(),
        ..Default::default()
    }
}

fn canola_dispute(measure_id: &str) -> dpb::Dispute {
    dpb::Dispute {
        reference: "WT/DS589".into(),
        title: "China — Measures concerning the importation of canola seed from Canada".into(),
        complainant: "CAN".into(),
        respondent: "CHN".into(),
        forum: dpb::DisputeForum::Wto.into(),
        measure_ids: vec![measure_id.into()],
        opened_on: "2019-09-09".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_dispute_links_to_a_measure_and_waits_out_a_tariff_outage() {
    let mut stack = Stack::start().await.unwrap();
    let measure = stack
        .tariff()
        .await
        .unwrap()
        .create_measure(tpb::CreateMeasureRequest { measure: Some(canola_duty()), request_id: String::new() })
        .await
        .unwrap()
        .into_inner()
        .measure
        .unwrap();
    let mut disputes = stack.dispute().await.unwrap();

    // The link is checked with the tariff service: a made-up id is named.
    let bogus = tradewatch_common::types::new_id().to_string();
    let refused = disputes
        .create_dispute(dpb::CreateDisputeRequest { dispute: Some(canola_dispute(&bogus)), request_id: String::new() })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    let fields: Vec<_> =
        refused.get_error_details().bad_request().unwrap().field_violations.iter().map(|v| v.field.clone()).collect();
    assert_eq!(fields, ["dispute.measure_ids[0]"]);

    // With the tariff service stopped, the same create is UNAVAILABLE and stores nothing.
    stack.stop_tariff().await.unwrap();
    let request = dpb::CreateDisputeRequest { dispute: Some(canola_dispute(&measure.id)), request_id: String::new() };
    let down = disputes.create_dispute(request.clone()).await.unwrap_err();
    assert_eq!(down.code(), Code::Unavailable, "{down:?}");
    let listed = disputes.list_disputes(dpb::ListDisputesRequest::default()).await.unwrap().into_inner();
    assert!(listed.disputes.is_empty());

    // Once it is back, the same request succeeds.
    stack.start_tariff().await.unwrap();
    let created = disputes.create_dispute(request).await.unwrap().into_inner().dispute.unwrap();
    assert_eq!(created.measure_ids, [measure.id.clone()]);
    let by_measure = disputes
        .list_disputes(dpb::ListDisputesRequest { measure_id: measure.id, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_measure.disputes, [created]);
    stack.stop().await.unwrap();
}
