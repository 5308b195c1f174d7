use tonic::Code;
use tradewatch_common::proto::dispute::{self as pb, DisputeStage::*};

use crate::helpers::*;

#[tokio::test]
async fn the_canola_dispute_walks_through_the_panel_to_its_lapse() {
    let app = spawn_app().await;
    let d = app.create(dispute("WT/DS589")).await.unwrap();
    let walk = [
        (PanelEstablished, "2020-06-26"),
        (PanelComposed, "2021-01-01"),
        (PanelSuspended, "2022-05-01"),
        (Lapsed, "2023-05-02"),
    ];
    let mut last = None;
    for (stage, on) in walk {
        let r = app.advance(&d.id, stage, on).await.unwrap();
        let event = r.event.unwrap();
        assert_eq!(
            (event.kind(), event.to_stage(), event.occurred_on.as_str()),
            (pb::DisputeEventKind::StageChanged, stage, on)
        );
        if let Some(prev) = last {
            assert_eq!(event.from_stage(), prev);
        }
        last = Some(stage);
        let dispute = r.dispute.unwrap();
        assert_eq!(dispute.stage(), stage);
        assert_eq!(dispute.closed_on.is_empty(), stage != Lapsed, "closed only on entering a terminal stage");
    }
    let got = app
        .client
        .clone()
        .get_dispute(pb::GetDisputeRequest { id: d.id.clone() })
        .await
        .unwrap()
        .into_inner()
        .dispute
        .unwrap();
    assert_eq!((got.stage(), got.closed_on.as_str()), (Lapsed, "2023-05-02"));
    assert_eq!(app.events(&d.id).await.len(), 5);
}

#[tokio::test]
async fn an_illegal_move_is_refused_with_the_legal_next_stages() {
    let app = spawn_app().await;
    let d = app.create(dispute("WT/DS589")).await.unwrap();
    let status = assert_code(app.advance(&d.id, Concluded, "2020-01-01").await, Code::FailedPrecondition);
    let (reason, metadata) = info(&status);
    assert_eq!(reason, "ILLEGAL_STAGE_TRANSITION");
    assert_eq!(
        metadata.get("allowed_stages").map(String::as_str),
        Some("DISPUTE_STAGE_PANEL_ESTABLISHED,DISPUTE_STAGE_SETTLED,DISPUTE_STAGE_WITHDRAWN")
    );
    assert_eq!(app.events(&d.id).await.len(), 1, "nothing was written");

    app.advance(&d.id, Settled, "2026-01-16").await.unwrap();
    let status = assert_code(app.advance(&d.id, Settled, "2026-01-17").await, Code::FailedPrecondition);
    assert_eq!(info(&status).1.get("allowed_stages").map(String::as_str), Some(""));
    assert!(status.message().contains("final"), "{status:?}");
}

#[tokio::test]
async fn advance_is_idempotent_and_guarded_by_its_etag() {
    let app = spawn_app().await;
    let d = app.create(dispute("WT/DS589")).await.unwrap();
    let mut client = app.client.clone();
    let req = pb::AdvanceDisputeRequest {
        id: d.id.clone(),
        to_stage: Settled.into(),
        occurred_on: "2026-01-16".into(),
        note: "settled in the Beijing talks".into(),
        request_id: uuid(),
        etag: d.etag.clone(),
    };
    let first = client.advance_dispute(req.clone()).await.unwrap().into_inner();
    let again = client.advance_dispute(req.clone()).await.unwrap().into_inner();
    assert_eq!(first, again, "a retry returns the first result");
    assert_eq!(app.events(&d.id).await.len(), 2, "and writes no second event");

    let d2 = app.create(dispute("WT/DS2")).await.unwrap();
    app.advance(&d2.id, PanelEstablished, "2020-01-01").await.unwrap();
    let stale = pb::AdvanceDisputeRequest {
        id: d2.id.clone(),
        to_stage: Settled.into(),
        etag: d2.etag.clone(),
        ..Default::default()
    };
    assert_code(client.advance_dispute(stale).await, Code::Aborted);
    assert_invalid(
        client.advance_dispute(pb::AdvanceDisputeRequest { id: d2.id.clone(), ..Default::default() }).await,
        &["to_stage"],
    );
    assert_invalid(
        client
            .advance_dispute(pb::AdvanceDisputeRequest {
                id: "x".into(),
                to_stage: 99,
                occurred_on: "soon".into(),
                ..Default::default()
            })
            .await,
        &["id", "to_stage", "occurred_on"],
    );
    assert_code(
        client
            .advance_dispute(pb::AdvanceDisputeRequest { id: uuid(), to_stage: Settled.into(), ..Default::default() })
            .await,
        Code::NotFound,
    );
    let before_opening = pb::AdvanceDisputeRequest {
        id: d2.id.clone(),
        to_stage: Settled.into(),
        occurred_on: "2000-01-01".into(),
        ..Default::default()
    };
    assert_invalid(client.advance_dispute(before_opening).await, &["occurred_on"]);
}
