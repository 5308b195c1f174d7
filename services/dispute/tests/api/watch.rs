//! WatchDisputes: every change kind, in order, with the dispute after it;
//! the filters; a resume token; a replayed write adds nothing.

use std::time::Duration;

use prost_types::FieldMask;
use tradewatch_common::proto::dispute::{self as pb, DisputeStage};

use crate::helpers::*;

type Watch = tonic::Streaming<pb::WatchDisputesResponse>;

async fn watch(app: &TestApp, req: pb::WatchDisputesRequest) -> Result<Watch, tonic::Status> {
    app.client.clone().watch_disputes(req).await.map(tonic::Response::into_inner)
}

async fn next_change(w: &mut Watch) -> (String, pb::DisputeChange) {
    loop {
        let r = tokio::time::timeout(Duration::from_secs(10), w.message()).await.unwrap().unwrap().unwrap();
        if let Some(change) = r.change {
            return (r.resume_token, change);
        }
    }
}

#[tokio::test]
async fn every_kind_of_change_arrives_in_order_and_resumes_after_its_token() {
    let app = spawn_app().await;
    let mut w = watch(&app, pb::WatchDisputesRequest::default()).await.unwrap();

    let d = app.create(dispute("WT/DS589")).await.unwrap();
    let mut patch = d.clone();
    patch.title = "China — Canola seed (DS589)".into();
    app.client
        .clone()
        .update_dispute(pb::UpdateDisputeRequest {
            dispute: Some(patch),
            update_mask: Some(FieldMask { paths: vec!["title".into()] }),
        })
        .await
        .unwrap();
    app.advance(&d.id, DisputeStage::PanelEstablished, "2020-06-26").await.unwrap();
    let record = pb::RecordDisputeEventRequest {
        dispute_id: d.id.clone(),
        event: Some(pb::DisputeEvent {
            kind: pb::DisputeEventKind::Hearing.into(),
            occurred_on: "2021-06-01".into(),
            description: "first substantive meeting".into(),
            ..Default::default()
        }),
        request_id: uuid(),
    };
    app.client.clone().record_dispute_event(record.clone()).await.unwrap();
    // A retry of the same request answers from its first outcome: no change.
    app.client.clone().record_dispute_event(record).await.unwrap();

    let mut tokens = Vec::new();
    for (kind, title, stage) in [
        (pb::DisputeChangeKind::Created, d.title.as_str(), DisputeStage::Consultations),
        (pb::DisputeChangeKind::Updated, "China — Canola seed (DS589)", DisputeStage::Consultations),
        (pb::DisputeChangeKind::StageChanged, "China — Canola seed (DS589)", DisputeStage::PanelEstablished),
        (pb::DisputeChangeKind::EventRecorded, "China — Canola seed (DS589)", DisputeStage::PanelEstablished),
    ] {
        let (token, change) = next_change(&mut w).await;
        assert_eq!(change.kind(), kind, "{change:?}");
        let after = change.dispute.unwrap();
        assert_eq!((after.id.as_str(), after.title.as_str(), after.stage()), (d.id.as_str(), title, stage));
        tokens.push(token);
    }
    let marker = app.create(dispute("WT/DS-MARKER")).await.unwrap();
    assert_eq!(next_change(&mut w).await.1.dispute.unwrap().id, marker.id, "the replayed write added nothing");

    // From the second token: the third change, then the rest.
    let mut again =
        watch(&app, pb::WatchDisputesRequest { start_after: tokens[1].clone(), ..Default::default() }).await.unwrap();
    assert_eq!(next_change(&mut again).await.1.kind(), pb::DisputeChangeKind::StageChanged);
    assert_eq!(next_change(&mut again).await.1.kind(), pb::DisputeChangeKind::EventRecorded);
}

#[tokio::test]
async fn filters_keep_only_the_disputes_they_name() {
    let app = spawn_app().await;
    let measure = app.measure("CAN-SURTAX-EV", &["870380"]).await;
    let mut by_party =
        watch(&app, pb::WatchDisputesRequest { economy: "AUS".into(), ..Default::default() }).await.unwrap();
    let mut by_measure = watch(
        &app,
        pb::WatchDisputesRequest { respondent: "CAN".into(), measure_id: measure.clone(), ..Default::default() },
    )
    .await
    .unwrap();

    app.create(dispute("WT/DS589")).await.unwrap();
    let mut ev = dispute("WT/DS627");
    (ev.complainant, ev.respondent, ev.measure_ids) = ("CHN".into(), "CAN".into(), vec![measure.clone()]);
    let ev = app.create(ev).await.unwrap();
    let mut barley = dispute("WT/DS598");
    (barley.complainant, barley.respondent) = ("AUS".into(), "CHN".into());
    let barley = app.create(barley).await.unwrap();

    assert_eq!(next_change(&mut by_measure).await.1.dispute.unwrap().id, ev.id);
    assert_eq!(next_change(&mut by_party).await.1.dispute.unwrap().id, barley.id);
    assert_invalid(
        watch(
            &app,
            pb::WatchDisputesRequest { economy: "canada".into(), measure_id: "x".into(), ..Default::default() },
        )
        .await,
        &["economy", "measure_id"],
    );
}

#[tokio::test]
async fn a_replica_answers_get_dispute_as_fresh_as_the_last_write_on_another() {
    // GetDispute answers from memory; a write through one replica must be
    // seen by the next read on the other.
    let app = spawn_app().await;
    let replica = tradewatch_common::testing::spawn(app.settings.clone(), dispute_service::app::Application::build)
        .await
        .unwrap();
    let mut other = pb::dispute_service_client::DisputeServiceClient::new(
        tradewatch_common::testing::channel(replica.addr).await.unwrap(),
    );
    let d = app.create(dispute("WT/DS589")).await.unwrap();
    let get = pb::GetDisputeRequest { id: d.id.clone() };
    assert_eq!(
        other.get_dispute(get.clone()).await.unwrap().into_inner().dispute.unwrap().stage(),
        DisputeStage::Consultations
    );
    assert_eq!(
        other.get_dispute(get.clone()).await.unwrap().into_inner().dispute.unwrap().stage(),
        DisputeStage::Consultations
    );
    app.advance(&d.id, DisputeStage::PanelEstablished, "2020-06-26").await.unwrap();
    let after = other.get_dispute(get.clone()).await.unwrap().into_inner().dispute.unwrap();
    assert_eq!(after.stage(), DisputeStage::PanelEstablished, "the replica's next read sees the write");
    let missing = other.get_dispute(pb::GetDisputeRequest { id: uuid() }).await;
    assert_eq!(missing.unwrap_err().code(), tonic::Code::NotFound);
    replica.stop().await.unwrap();
}
