use tonic::Code;
use tradewatch_common::proto::dialogue::{self as pb, CommitmentStatus, EffectState};

use crate::helpers::*;

#[tokio::test]
async fn commitments_are_checked_stored_and_filtered() {
    let app = spawn_app().await;
    let measure = app.measure("M").await;
    let s = app.create_session(beijing(vec![])).await.unwrap();
    let c = app.add(&s.id, suspend(&measure.id)).await.unwrap();
    assert_eq!(
        (c.status(), c.effect_state(), c.session_id.as_str()),
        (CommitmentStatus::Open, EffectState::None, s.id.as_str())
    );
    let plain = app
        .add(
            &s.id,
            pb::Commitment {
                description: "Resume ministerial dialogue on energy".into(),
                owner_economies: vec!["CAN".into()],
                due_on: "2026-12-31".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(plain.effect(), pb::CommitmentEffect::None, "no effect given means NONE");
    let joint = app
        .add(
            &s.id,
            pb::Commitment {
                description: "Launch a Ministerial Energy Dialogue".into(),
                owner_economies: vec!["CAN".into(), "CHN".into()],
                due_on: "2026-12-31".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(joint.owner_economies, ["CAN", "CHN"], "both sides commit");
    assert_invalid(
        app.add(&s.id, pb::Commitment { owner_economies: vec![], ..joint.clone() }).await,
        &["commitment.owner_economies"],
    );
    assert_invalid(
        app.add(&s.id, pb::Commitment { owner_economies: vec!["CAN".into(), "CAN".into()], ..joint.clone() }).await,
        &["commitment.owner_economies[1]"],
    );

    let list = |req: pb::ListCommitmentsRequest| {
        let mut client = app.client.clone();
        async move {
            client
                .list_commitments(req)
                .await
                .map(|r| r.into_inner().commitments.into_iter().map(|c| c.id).collect::<Vec<_>>())
        }
    };
    assert_eq!(
        list(pb::ListCommitmentsRequest { session_id: s.id.clone(), ..Default::default() }).await.unwrap(),
        [c.id.clone(), plain.id.clone(), joint.id.clone()]
    );
    assert_eq!(
        list(pb::ListCommitmentsRequest { owner_economy: "CHN".into(), ..Default::default() }).await.unwrap(),
        [c.id.clone(), joint.id.clone()],
        "the owner filter matches any owner"
    );
    assert_eq!(
        list(pb::ListCommitmentsRequest { owner_economy: "CAN".into(), ..Default::default() }).await.unwrap(),
        [plain.id.clone(), joint.id.clone()]
    );
    assert_eq!(
        list(pb::ListCommitmentsRequest { measure_id: measure.id.clone(), ..Default::default() }).await.unwrap(),
        [c.id.clone()]
    );
    assert_eq!(
        list(pb::ListCommitmentsRequest { overdue_on: "2026-03-02".into(), ..Default::default() }).await.unwrap(),
        [c.id.clone()]
    );
    assert!(
        list(pb::ListCommitmentsRequest { overdue_on: "2026-03-01".into(), ..Default::default() })
            .await
            .unwrap()
            .is_empty(),
        "due that day is not overdue"
    );
    app.set_status(&plain.id, CommitmentStatus::InProgress, "").await.unwrap();
    assert_eq!(
        list(pb::ListCommitmentsRequest { overdue_on: "2027-01-01".into(), ..Default::default() }).await.unwrap(),
        [c.id.clone(), plain.id.clone(), joint.id.clone()]
    );
    assert_eq!(
        list(pb::ListCommitmentsRequest { status: CommitmentStatus::InProgress.into(), ..Default::default() })
            .await
            .unwrap(),
        [plain.id.clone()]
    );
    app.set_status(&plain.id, CommitmentStatus::Withdrawn, "").await.unwrap();
    assert_eq!(
        list(pb::ListCommitmentsRequest { overdue_on: "2027-01-01".into(), ..Default::default() }).await.unwrap(),
        [c.id.clone(), joint.id.clone()],
        "a withdrawn one is not overdue"
    );
    assert_invalid(
        list(pb::ListCommitmentsRequest { overdue_on: "soon".into(), ..Default::default() }).await,
        &["overdue_on"],
    );
}

#[tokio::test]
async fn bad_commitments_are_refused_and_write_nothing() {
    let app = spawn_app().await;
    let s = app.create_session(beijing(vec![])).await.unwrap();
    let mut outsider = suspend(&uuid());
    outsider.owner_economies = vec!["CAN".into(), "USA".into()];
    assert_invalid(app.add(&s.id, outsider).await, &["commitment.owner_economies[1]"]);
    assert_invalid(app.add(&s.id, suspend(&uuid())).await, &["commitment.measure_id"]);
    let settle_nothing =
        pb::Commitment { effect: pb::CommitmentEffect::SettleDispute.into(), measure_id: String::new(), ..suspend("") };
    assert_invalid(app.add(&s.id, settle_nothing).await, &["commitment.dispute_id"]);
    let mut bad = suspend("x");
    (bad.description, bad.due_on, bad.effect) = (String::new(), "March".into(), 42);
    assert_invalid(
        app.add(&s.id, bad).await,
        &["commitment.description", "commitment.due_on", "commitment.measure_id", "commitment.effect"],
    );
    assert_code(app.add(&uuid(), suspend(&uuid())).await, Code::NotFound);
    let listed = app.client.clone().list_commitments(pb::ListCommitmentsRequest::default()).await.unwrap().into_inner();
    assert!(listed.commitments.is_empty());
}

#[tokio::test]
async fn status_moves_follow_the_rules() {
    let app = spawn_app().await;
    let s = app.create_session(beijing(vec![])).await.unwrap();
    let c = app
        .add(
            &s.id,
            pb::Commitment { description: "x".into(), owner_economies: vec!["CAN".into()], ..Default::default() },
        )
        .await
        .unwrap();
    let mut client = app.client.clone();
    let stale = pb::SetCommitmentStatusRequest {
        id: c.id.clone(),
        status: CommitmentStatus::InProgress.into(),
        etag: "0".into(),
        ..Default::default()
    };
    assert_code(client.set_commitment_status(stale).await, Code::Aborted);
    app.set_status(&c.id, CommitmentStatus::Fulfilled, "").await.unwrap();
    let status = assert_code(app.set_status(&c.id, CommitmentStatus::Open, "").await, Code::FailedPrecondition);
    assert_eq!(reason(&status), "ILLEGAL_STATUS_TRANSITION");
    assert_invalid(app.set_status(&c.id, CommitmentStatus::Unspecified, "bad").await, &["status", "effective_on"]);
    assert_code(app.set_status(&uuid(), CommitmentStatus::Fulfilled, "").await, Code::NotFound);
    assert_eq!(app.commitment(&c.id).await.effect_state(), EffectState::None, "no effect, nothing to deliver");
}
