//! What a hostile or careless caller sends: limits named by
//! field before any peer is asked, control characters refused, an absurd
//! `grpc-timeout` ignored, and generated requests answered only with
//! documented codes.

use proptest::prelude::*;
use tonic::Request;
use tradewatch_common::{
    arb::{self, check_codes, enum_value, list, outcome, text},
    proto::dialogue as pb,
};

use crate::helpers::*;

fn absurd<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("grpc-timeout", "18446744073709551615S".parse().unwrap());
    request
}

fn create(s: pb::DialogueSession) -> pb::CreateSessionRequest {
    pb::CreateSessionRequest { session: Some(s), request_id: String::new() }
}

#[tokio::test]
async fn lists_over_their_limits_are_named_and_nothing_is_written() {
    let app = spawn_app().await;
    let participant = pb::Participant { name: "Delegate".into(), ..Default::default() };
    let item = |n: usize| pb::AgendaItem { topic: format!("topic {n}"), ..Default::default() };
    let big = pb::DialogueSession {
        economies: vec!["CAN".into(); 301],
        participants: vec![participant.clone(); 201],
        agenda: (0..101).map(item).collect(),
        ..beijing(vec![])
    };
    assert_invalid(
        app.client.clone().create_session(create(big)).await,
        &["session.economies", "session.participants", "session.agenda"],
    );
    let links = pb::AgendaItem {
        topic: "links".into(),
        dispute_ids: (0..101).map(|_| uuid()).collect(),
        measure_ids: (0..101).map(|_| uuid()).collect(),
    };
    assert_invalid(
        app.client.clone().create_session(create(beijing(vec![links]))).await,
        &["session.agenda[0].dispute_ids", "session.agenda[0].measure_ids"],
    );
    let at_limit = pb::DialogueSession {
        participants: vec![participant; 200],
        agenda: (0..100).map(item).collect(),
        ..beijing(vec![])
    };
    let created = app.create_session(at_limit).await.unwrap();
    assert_eq!((created.participants.len(), created.agenda.len()), (200, 100));
    let listed = app.client.clone().list_sessions(pb::ListSessionsRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.sessions.len(), 1, "only the session within the limits was written");
}

#[tokio::test]
async fn control_characters_and_bidi_overrides_are_refused() {
    let app = spawn_app().await;
    let s = pb::DialogueSession { title: "Beijing\u{0}".into(), location: "\u{202d}Beijing".into(), ..beijing(vec![]) };
    assert_invalid(app.client.clone().create_session(create(s)).await, &["session.title", "session.location"]);
    let session = app.create_session(beijing(vec![])).await.unwrap();
    let c = pb::Commitment { description: "Lower duties\u{7}".into(), ..suspend("") };
    let c = pb::Commitment {
        measure_id: String::new(),
        effect: pb::CommitmentEffect::None.into(),
        effective_on: String::new(),
        ..c
    };
    assert_invalid(app.add(&session.id, c).await, &["commitment.description"]);
}

#[tokio::test]
async fn an_absurd_grpc_timeout_on_every_write_is_ignored_not_a_panic() {
    let app = spawn_app().await;
    let session =
        app.client.clone().create_session(absurd(create(beijing(vec![])))).await.unwrap().into_inner().session.unwrap();
    let updated = app
        .client
        .clone()
        .update_session(absurd(pb::UpdateSessionRequest {
            session: Some(pb::DialogueSession {
                id: session.id.clone(),
                title: "Beijing".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["title".into()] }),
        }))
        .await;
    assert!(updated.is_ok(), "{updated:?}");
    let commitment = pb::Commitment {
        description: "Hold a ministerial energy dialogue".into(),
        owner_economies: vec!["CAN".into()],
        due_on: "2026-06-30".into(),
        ..Default::default()
    };
    let added = app
        .client
        .clone()
        .add_commitment(absurd(pb::AddCommitmentRequest {
            session_id: session.id.clone(),
            commitment: Some(commitment),
            request_id: String::new(),
        }))
        .await;
    assert!(added.is_ok(), "{added:?}");
}

fn arb_session(ids: Vec<String>, links: Vec<String>) -> impl Strategy<Value = pb::DialogueSession> {
    let link_list = prop_oneof![2 => proptest::collection::vec(prop::sample::select(links), 0..3), 1 => list()];
    let participant = (text(), text(), text(), text())
        .prop_map(|(name, role, organization, economy)| pb::Participant { name, role, organization, economy });
    let agenda = (text(), link_list.clone(), link_list).prop_map(|(topic, dispute_ids, measure_ids)| pb::AgendaItem {
        topic,
        dispute_ids,
        measure_ids,
    });
    (
        (arb::id(ids), text(), enum_value(), enum_value(), text(), list(), text(), text()),
        (
            text(),
            enum_value(),
            proptest::collection::vec(participant, 0..3),
            proptest::collection::vec(agenda, 0..3),
            text(),
            text(),
            text(),
        ),
    )
        .prop_map(
            |(
                (id, title, track, level, host_economy, economies, location, starts_on),
                (ends_on, status, participants, agenda, outcome_summary, source_url, etag),
            )| pb::DialogueSession {
                id,
                title,
                track,
                level,
                host_economy,
                economies,
                location,
                starts_on,
                ends_on,
                status,
                participants,
                agenda,
                outcome_summary,
                source_url,
                etag,
                create_time: None,
                update_time: None,
                create_actor: String::new(),
                update_actor: String::new(),
            },
        )
}

fn arb_commitment(links: Vec<String>) -> impl Strategy<Value = pb::Commitment> {
    (
        (text(), text(), list(), text(), enum_value(), arb::id(links.clone())),
        (arb::id(links), enum_value(), text(), enum_value(), text(), text()),
    )
        .prop_map(
            |(
                (id, description, owner_economies, due_on, status, dispute_id),
                (measure_id, effect, effective_on, effect_state, effect_detail, etag),
            )| pb::Commitment {
                id,
                session_id: String::new(),
                description,
                owner_economies,
                due_on,
                status,
                dispute_id,
                measure_id,
                effect,
                effective_on,
                effect_state,
                effect_detail,
                etag,
                create_time: None,
                update_time: None,
                create_actor: String::new(),
                update_actor: String::new(),
                status_actor: String::new(),
            },
        )
}

#[test]
fn writes_answer_only_documented_codes_whatever_they_carry() {
    const CASES: u32 = 32;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (mut app, sessions, links, commitments) = rt.block_on(async {
        let app = spawn_app().await;
        let measure = app.measure("P-SOR").await.id;
        let dispute = app.dispute("WT/DS-P").await.id;
        let session = app.create_session(beijing(vec![])).await.unwrap().id;
        let commitment = app.add(&session, suspend(&measure)).await.unwrap().id;
        (app, vec![session], vec![measure, dispute], vec![commitment])
    });
    let client = app.client.clone();

    check_codes(&rt, CASES, (arb_session(sessions.clone(), links.clone()), text()), |(s, request_id)| {
        let mut c = client.clone();
        async move { outcome(c.create_session(pb::CreateSessionRequest { session: Some(s), request_id }).await) }
    });
    let paths = proptest::collection::vec(
        prop_oneof![
            3 => prop::sample::select(vec!["title", "agenda", "economies", "participants", "status", "ends_on"]).prop_map(str::to_owned),
            1 => text(),
        ],
        0..4,
    );
    check_codes(&rt, CASES, (arb_session(sessions.clone(), links.clone()), paths), |(s, paths)| {
        let mut c = client.clone();
        async move {
            let mask = Some(prost_types::FieldMask { paths });
            outcome(c.update_session(pb::UpdateSessionRequest { session: Some(s), update_mask: mask }).await)
        }
    });
    let status = (arb::id(sessions.clone()), enum_value(), text(), text());
    check_codes(&rt, CASES, status, |(id, status, request_id, etag)| {
        let mut c = client.clone();
        async move { outcome(c.set_session_status(pb::SetSessionStatusRequest { id, status, request_id, etag }).await) }
    });
    let add = (arb::id(sessions), arb_commitment(links), text());
    check_codes(&rt, CASES, add, |(session_id, commitment, request_id)| {
        let mut c = client.clone();
        async move {
            let req = pb::AddCommitmentRequest { session_id, commitment: Some(commitment), request_id };
            outcome(c.add_commitment(req).await)
        }
    });
    let set = (arb::id(commitments), enum_value(), text(), text(), text());
    check_codes(&rt, CASES, set, |(id, status, effective_on, request_id, etag)| {
        let mut c = client.clone();
        async move {
            let req = pb::SetCommitmentStatusRequest { id, status, effective_on, request_id, etag };
            outcome(c.set_commitment_status(req).await)
        }
    });
    rt.block_on(async {
        app.stop_dialogue().await;
        app.stop_dispute().await;
        app.stop_tariff().await;
    });
}
