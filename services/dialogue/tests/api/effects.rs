use tradewatch_common::proto::{
    dialogue::{self as pb, CommitmentStatus, EffectState},
    dispute as dpb, tariff as tpb,
};

use crate::helpers::*;

fn settle(dispute_id: &str) -> pb::Commitment {
    pb::Commitment {
        description: "Settle the dispute over canola and peas".into(),
        owner_economies: vec!["CAN".into()],
        dispute_id: dispute_id.into(),
        effect: pb::CommitmentEffect::SettleDispute.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn settling_a_dispute_settles_it_and_a_second_settle_is_rejected() {
    let app = spawn_app().await;
    let dispute = app.dispute("WT/DS636").await;
    let s = app.create_session(beijing(vec![])).await.unwrap();
    let first = app.add(&s.id, settle(&dispute.id)).await.unwrap();
    let fulfilled = app.set_status(&first.id, CommitmentStatus::Fulfilled, "2026-01-16").await.unwrap();
    assert_eq!((fulfilled.effect_state(), fulfilled.effective_on.as_str()), (EffectState::Pending, "2026-01-16"));
    let applied = app.settled_effect(&first.id).await;
    assert_eq!(applied.effect_state(), EffectState::Applied, "{applied:?}");
    let d = app
        .disputes
        .clone()
        .get_dispute(dpb::GetDisputeRequest { id: dispute.id.clone() })
        .await
        .unwrap()
        .into_inner()
        .dispute
        .unwrap();
    assert_eq!((d.stage(), d.closed_on.as_str()), (dpb::DisputeStage::Settled, "2026-01-16"));

    let second = app.add(&s.id, settle(&dispute.id)).await.unwrap();
    app.set_status(&second.id, CommitmentStatus::Fulfilled, "").await.unwrap();
    let rejected = app.settled_effect(&second.id).await;
    assert_eq!(rejected.effect_state(), EffectState::Rejected);
    assert!(rejected.effect_detail.contains("SETTLED"), "the reason is kept: {:?}", rejected.effect_detail);
}

#[tokio::test]
async fn a_suspension_queued_while_the_tariff_service_is_down_survives_a_restart_and_applies_once() {
    let mut app = spawn_app().await;
    let measure = app.measure("CN-MEAL-PEAS").await;
    let s = app.create_session(beijing(vec![])).await.unwrap();
    let c = app.add(&s.id, suspend(&measure.id)).await.unwrap();

    app.stop_tariff().await;
    let fulfilled = app.set_status(&c.id, CommitmentStatus::Fulfilled, "").await.unwrap();
    assert_eq!(fulfilled.effect_state(), EffectState::Pending);
    app.wait_for_failed_deliveries(&c.id, 2).await;
    assert_eq!(
        app.commitment(&c.id).await.effect_state(),
        EffectState::Pending,
        "still waiting for the tariff service"
    );

    // The dialogue service restarts; the effect is still in its outbox.
    app.stop_dialogue().await;
    app.start_dialogue(fast_relay()).await;
    assert_eq!(app.commitment(&c.id).await.effect_state(), EffectState::Pending);

    app.start_tariff().await;
    let applied = app.settled_effect(&c.id).await;
    assert_eq!(applied.effect_state(), EffectState::Applied, "{applied:?}");
    assert!(applied.effect_detail.contains("SUSPENDED from 2026-03-01"), "{:?}", applied.effect_detail);
    let history = app.history(&measure.id).await;
    assert_eq!(
        history,
        [
            (tpb::MeasureStatus::InForce, "2025-03-20".to_owned()),
            (tpb::MeasureStatus::Suspended, "2026-03-01".to_owned())
        ],
        "exactly one suspension"
    );
}

#[tokio::test]
async fn a_relay_that_dies_after_delivery_is_absorbed_by_the_idempotency_key() {
    let mut app = spawn_app().await;
    let measure = app.measure("CN-MEAL-PEAS").await;
    let s = app.create_session(beijing(vec![])).await.unwrap();
    let c = app.add(&s.id, suspend(&measure.id)).await.unwrap();

    // This relay applies the suspension, then dies before recording it.
    app.stop_dialogue().await;
    app.start_dialogue_crashing().await;
    app.set_status(&c.id, CommitmentStatus::Fulfilled, "").await.unwrap();
    for _ in 0..50 {
        if app.history(&measure.id).await.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(app.history(&measure.id).await.len(), 2, "the tariff service applied it");
    assert_eq!(app.commitment(&c.id).await.effect_state(), EffectState::Pending, "but the outbox never heard");

    // After a restart the relay delivers again, with the same key.
    app.stop_dialogue().await;
    app.start_dialogue(fast_relay()).await;
    let applied = app.settled_effect(&c.id).await;
    assert_eq!(applied.effect_state(), EffectState::Applied, "{applied:?}");
    let history = app.history(&measure.id).await;
    assert_eq!(
        history.iter().filter(|(s, _)| *s == tpb::MeasureStatus::Suspended).count(),
        1,
        "applied once: {history:?}"
    );
}

#[tokio::test]
async fn a_revocation_of_an_unknown_measure_at_delivery_is_rejected() {
    let app = spawn_app().await;
    let measure = app.measure("M").await;
    let s = app.create_session(beijing(vec![])).await.unwrap();
    let c = app
        .add(&s.id, pb::Commitment { effect: pb::CommitmentEffect::RevokeMeasure.into(), ..suspend(&measure.id) })
        .await
        .unwrap();
    // Revoked by hand first: the commitment's own revocation is then refused.
    app.tariff
        .clone()
        .set_measure_status(tpb::SetMeasureStatusRequest {
            id: measure.id.clone(),
            status: tpb::MeasureStatus::Revoked.into(),
            effective_on: "2026-01-01".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    app.set_status(&c.id, CommitmentStatus::Fulfilled, "").await.unwrap();
    let done = app.settled_effect(&c.id).await;
    assert_eq!(done.effect_state(), EffectState::Rejected);
    assert!(done.effect_detail.contains("REVOKED"), "{:?}", done.effect_detail);
}

#[tokio::test]
async fn the_relay_delivers_what_is_due_when_it_shuts_down() {
    let mut app = spawn_app().await;
    let measure = app.measure("CN-MEAL-PEAS").await;
    let s = app.create_session(beijing(vec![])).await.unwrap();
    let c = app.add(&s.id, suspend(&measure.id)).await.unwrap();

    // A relay that only looks at its outbox when woken, or when stopping.
    app.stop_dialogue().await;
    let idle = dialogue_service::relay::RelayOptions {
        poll: std::time::Duration::from_secs(3600),
        backoff: std::time::Duration::from_millis(1),
        max_backoff: std::time::Duration::from_millis(1),
        lease: std::time::Duration::from_secs(5),
        per_peer: 4,
        crash_after_delivery: None,
    };
    app.start_dialogue(idle).await;
    app.stop_tariff().await;
    app.set_status(&c.id, CommitmentStatus::Fulfilled, "").await.unwrap();
    // The one attempt the fulfilment woke fails against the stopped tariff service.
    app.wait_for_failed_deliveries(&c.id, 1).await;
    app.start_tariff().await;
    assert_eq!(app.history(&measure.id).await.len(), 1, "the idle relay has not retried");
    assert_eq!(app.failed_deliveries(&c.id).await, 1, "it waits for its next pass, an hour away");

    app.stop_dialogue().await;
    let history = app.history(&measure.id).await;
    assert_eq!(
        history.last().map(|(s, _)| *s),
        Some(tpb::MeasureStatus::Suspended),
        "delivered on the way out: {history:?}"
    );
}
