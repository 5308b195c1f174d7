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
