//! What a hostile or careless caller sends: limits named by
//! field, control characters refused, an absurd `grpc-timeout` ignored, and
//! generated requests answered only with documented codes.

use proptest::prelude::*;
use tonic::Request;
use tradewatch_common::{
    arb::{self, check_codes, enum_value, list, outcome, text},
    proto::dispute as pb,
};

use crate::helpers::*;

fn create(d: pb::Dispute) -> pb::CreateDisputeRequest {
    pb::CreateDisputeRequest { dispute: Some(d), request_id: String::new() }
}

fn absurd<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("grpc-timeout", "18446744073709551615S".parse().unwrap());
    request
}

#[tokio::test]
async fn lists_over_their_limits_are_named_and_nothing_is_written() {
    let app = spawn_app().await;
    let d = pb::Dispute {
        third_parties: vec!["USA".into(); 301],
        hs_codes: (0..5_001).map(|i| format!("12{i:08}")).collect(),
        measure_ids: (0..101).map(|_| uuid()).collect(),
        ..dispute("WT/DS-BIG")
    };
    assert_invalid(
        app.client.clone().create_dispute(create(d)).await,
        &["dispute.third_parties", "dispute.hs_codes", "dispute.measure_ids"],
    );
    let at_limit = pb::Dispute { hs_codes: (0..5_000).map(|i| format!("12{i:08}")).collect(), ..dispute("WT/DS-OK") };
    assert_eq!(app.create(at_limit).await.unwrap().hs_codes.len(), 5_000);
    assert_eq!(app.list_all(pb::ListDisputesRequest::default()).await.len(), 1);
}

#[tokio::test]
async fn control_characters_and_bidi_overrides_are_refused() {
    let app = spawn_app().await;
    let d = pb::Dispute {
        title: "Canola\u{0}".into(),
        summary: "\u{202e}dellorsne".into(),
        legal_basis: "GATT\u{1b}[31m".into(),
        ..dispute("WT/DS-CTRL")
    };
    assert_invalid(
        app.client.clone().create_dispute(create(d)).await,
        &["dispute.title", "dispute.summary", "dispute.legal_basis"],
    );
    let created = app.create(dispute("WT/DS589")).await.unwrap();
    let event = pb::RecordDisputeEventRequest {
        dispute_id: created.id.clone(),
        event: Some(pb::DisputeEvent {
            kind: pb::DisputeEventKind::Note.into(),
            occurred_on: "2025-01-01".into(),
            description: "hearing \u{2066}notes".into(),
            ..Default::default()
        }),
        request_id: String::new(),
    };
    assert_invalid(app.client.clone().record_dispute_event(event).await, &["event.description"]);
    assert_eq!(app.events(&created.id).await.len(), 1, "only the creation is on the timeline");
}

#[tokio::test]
async fn an_absurd_grpc_timeout_on_every_write_is_ignored_not_a_panic() {
    let app = spawn_app().await;
    let measure = app.measure("SOR/2024-187", &["8703"]).await;
    let created = app
        .client
        .clone()
        .create_dispute(absurd(create(pb::Dispute { measure_ids: vec![measure], ..dispute("WT/DS589") })))
        .await
        .unwrap()
        .into_inner()
        .dispute
        .unwrap();
    let updated = app
        .client
        .clone()
        .update_dispute(absurd(pb::UpdateDisputeRequest {
            dispute: Some(pb::Dispute { id: created.id.clone(), title: "Canola".into(), ..Default::default() }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["title".into()] }),
        }))
        .await;
    assert!(updated.is_ok(), "{updated:?}");
    let advanced = app
        .client
        .clone()
        .advance_dispute(absurd(pb::AdvanceDisputeRequest {
            id: created.id.clone(),
            to_stage: pb::DisputeStage::PanelEstablished.into(),
            occurred_on: "2020-06-26".into(),
            ..Default::default()
        }))
        .await;
    assert!(advanced.is_ok(), "{advanced:?}");
}

#[tokio::test]
async fn a_timeline_page_too_large_for_one_message_is_cut_short_and_continued() {
    let app = spawn_app_with(|s| s.server.max_message_bytes = 64 * 1024).await;
    let d = app.create(dispute("WT/DS589")).await.unwrap();
    for n in 0..12 {
        let event = pb::RecordDisputeEventRequest {
            dispute_id: d.id.clone(),
            event: Some(pb::DisputeEvent {
                kind: pb::DisputeEventKind::Note.into(),
                occurred_on: "2020-01-01".into(),
                description: format!("note {n} ").repeat(1_000),
                ..Default::default()
            }),
            request_id: String::new(),
        };
        app.client.clone().record_dispute_event(event).await.unwrap();
    }
    let req = pb::ListDisputeEventsRequest { dispute_id: d.id.clone(), page_size: 500, ..Default::default() };
    let first = app.client.clone().list_dispute_events(req.clone()).await.unwrap().into_inner();
    assert!((1..13).contains(&first.events.len()), "{} events", first.events.len());
    assert!(!first.next_page_token.is_empty(), "continued by a token");
    let mut all = first.events;
    let mut token = first.next_page_token;
    while !token.is_empty() {
        let page = app
            .client
            .clone()
            .list_dispute_events(pb::ListDisputeEventsRequest { page_token: token, ..req.clone() })
            .await
            .unwrap()
            .into_inner();
        all.extend(page.events);
        token = page.next_page_token;
    }
    assert_eq!(all.len(), 13, "the creation and twelve notes, each once");
}

fn arb_dispute(ids: Vec<String>, measures: Vec<String>) -> impl Strategy<Value = pb::Dispute> {
    let measure_ids = prop_oneof![
        2 => proptest::collection::vec(prop::sample::select(measures), 0..3),
        1 => list(),
    ];
    (
        (arb::id(ids), text(), text(), text(), text(), text(), list(), enum_value()),
        (enum_value(), list(), measure_ids, text(), text(), text(), text(), text()),
    )
        .prop_map(
            |(
                (id, reference, title, summary, complainant, respondent, third_parties, forum),
                (stage, hs_codes, measure_ids, legal_basis, opened_on, closed_on, source_url, etag),
            )| pb::Dispute {
                id,
                reference,
                title,
                summary,
                complainant,
                respondent,
                third_parties,
                forum,
                stage,
                hs_codes,
                measure_ids,
                legal_basis,
                opened_on,
                closed_on,
                source_url,
                etag,
                create_time: None,
                update_time: None,
                create_actor: String::new(),
                update_actor: String::new(),
            },
        )
}

#[test]
fn writes_answer_only_documented_codes_whatever_they_carry() {
    const CASES: u32 = 40;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (app, ids, measures) = rt.block_on(async {
        let app = spawn_app().await;
        let measures = vec![app.measure("P-1", &["1205"]).await, app.measure("P-2", &["8703"]).await];
        let ids = vec![app.create(dispute("WT/DS-P")).await.unwrap().id];
        (app, ids, measures)
    });
    let client = app.client.clone();

    check_codes(&rt, CASES, (arb_dispute(ids.clone(), measures.clone()), text()), |(d, request_id)| {
        let mut c = client.clone();
        async move { outcome(c.create_dispute(pb::CreateDisputeRequest { dispute: Some(d), request_id }).await) }
    });
    let paths = proptest::collection::vec(
        prop_oneof![
            3 => prop::sample::select(vec!["title", "hs_codes", "measure_ids", "opened_on", "stage", "third_parties"]).prop_map(str::to_owned),
            1 => text(),
        ],
        0..4,
    );
    check_codes(&rt, CASES, (arb_dispute(ids.clone(), measures), paths), |(d, paths)| {
        let mut c = client.clone();
        async move {
            let mask = Some(prost_types::FieldMask { paths });
            outcome(c.update_dispute(pb::UpdateDisputeRequest { dispute: Some(d), update_mask: mask }).await)
        }
    });
    let advance = (arb::id(ids.clone()), enum_value(), text(), text(), text(), text());
    check_codes(&rt, CASES, advance, |(id, to_stage, occurred_on, note, request_id, etag)| {
        let mut c = client.clone();
        async move {
            let req = pb::AdvanceDisputeRequest { id, to_stage, occurred_on, note, request_id, etag };
            outcome(c.advance_dispute(req).await)
        }
    });
    let event = (arb::id(ids), enum_value(), text(), text(), text());
    check_codes(&rt, CASES, event, |(dispute_id, kind, occurred_on, description, request_id)| {
        let mut c = client.clone();
        async move {
            let event = pb::DisputeEvent { kind, occurred_on, description, ..Default::default() };
            let req = pb::RecordDisputeEventRequest { dispute_id, event: Some(event), request_id };
            outcome(c.record_dispute_event(req).await)
        }
    });
    rt.block_on(app.stop()).unwrap();
}
