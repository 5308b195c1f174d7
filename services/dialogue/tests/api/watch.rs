//! WatchCommitments: every change kind — added, its status moved, its effect
//! applied by the relay — in order, with the commitment after it; filters.

use std::time::Duration;

use tradewatch_common::proto::dialogue::{self as pb, CommitmentStatus, EffectState};

use crate::helpers::*;

type Watch = tonic::Streaming<pb::WatchCommitmentsResponse>;

async fn watch(app: &TestApp, req: pb::WatchCommitmentsRequest) -> Result<Watch, tonic::Status> {
    app.client.clone().watch_commitments(req).await.map(tonic::Response::into_inner)
}

async fn next_change(w: &mut Watch) -> pb::CommitmentChange {
    loop {
        let r = tokio::time::timeout(Duration::from_secs(15), w.message()).await.unwrap().unwrap().unwrap();
        if let Some(change) = r.change {
            return change;
        }
    }
}

#[tokio::test]
async fn a_commitment_is_streamed_as_added_fulfilled_and_applied() {
    let app = spawn_app().await;
    let measure = app.measure("CN-MEAL-PEAS").await;
    let session = app.create_session(beijing(vec![])).await.unwrap();
    let mut w = watch(&app, pb::WatchCommitmentsRequest::default()).await.unwrap();
    let mut by_owner =
        watch(&app, pb::WatchCommitmentsRequest { owner_economy: "CAN".into(), ..Default::default() }).await.unwrap();

    let c = app.add(&session.id, suspend(&measure.id)).await.unwrap();
    app.set_status(&c.id, CommitmentStatus::Fulfilled, "").await.unwrap();
    let mut canada = suspend(&measure.id);
    (canada.owner_economies, canada.measure_id, canada.effect, canada.effective_on) =
        (vec!["CAN".into()], String::new(), pb::CommitmentEffect::Unspecified.into(), String::new());
    canada.description = "Admit up to 49,000 Chinese-made EVs a year at the MFN rate".into();
    let canada = app.add(&session.id, canada).await.unwrap();

    let added = next_change(&mut w).await;
    assert_eq!(added.kind(), pb::CommitmentChangeKind::Created);
    assert_eq!(added.commitment.unwrap().id, c.id);
    let fulfilled = next_change(&mut w).await;
    assert_eq!(fulfilled.kind(), pb::CommitmentChangeKind::StatusChanged);
    let after = fulfilled.commitment.unwrap();
    assert_eq!((after.status(), after.effect_state()), (CommitmentStatus::Fulfilled, EffectState::Pending));
    // The relay's outcome and the second commitment, in whichever order they
    // committed.
    let mut effect = None;
    for _ in 0..2 {
        let change = next_change(&mut w).await;
        if change.kind() == pb::CommitmentChangeKind::EffectChanged {
            assert_eq!(change.actor, "dialogue-relay");
            effect = change.commitment;
        }
    }
    let effect = effect.expect("the effect's outcome was streamed");
    assert_eq!((effect.id.as_str(), effect.effect_state()), (c.id.as_str(), EffectState::Applied));

    assert_eq!(next_change(&mut by_owner).await.commitment.unwrap().id, canada.id, "only CAN's");
    assert_invalid(
        watch(
            &app,
            pb::WatchCommitmentsRequest { session_id: "x".into(), owner_economy: "cn".into(), ..Default::default() },
        )
        .await,
        &["session_id", "owner_economy"],
    );
}

#[tokio::test]
async fn a_replica_answers_get_session_as_fresh_as_the_last_write_on_another() {
    // GetSession answers from memory; a write through one replica must be
    // seen by the next read on the other, and sessions never reach a Watch.
    let app = spawn_app().await;
    let (replica, mut other) = app.dialogue_replica().await;
    let mut w = watch(&app, pb::WatchCommitmentsRequest::default()).await.unwrap();
    let s = app.create_session(beijing(vec![])).await.unwrap();
    let get = pb::GetSessionRequest { id: s.id.clone() };
    for _ in 0..2 {
        assert_eq!(
            other.get_session(get.clone()).await.unwrap().into_inner().session.unwrap().status(),
            pb::SessionStatus::Held
        );
    }
    let mut patch = s.clone();
    patch.outcome_summary = "A new strategic partnership".into();
    app.client
        .clone()
        .update_session(pb::UpdateSessionRequest {
            session: Some(patch),
            update_mask: Some(prost_types::FieldMask { paths: vec!["outcome_summary".into()] }),
        })
        .await
        .unwrap();
    let after = other.get_session(get).await.unwrap().into_inner().session.unwrap();
    assert_eq!(after.outcome_summary, "A new strategic partnership", "the replica's next read sees the write");

    let c = app.add(&s.id, suspend(&app.measure("CN-MEAL-PEAS").await.id)).await.unwrap();
    let first = next_change(&mut w).await;
    assert_eq!(first.commitment.unwrap().id, c.id, "the session's own changes are not streamed");
    replica.stop().await.unwrap();
}
