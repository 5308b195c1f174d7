use prost_types::FieldMask;
use tonic::Code;
use tradewatch_common::proto::dialogue::{self as pb, SessionStatus};

use crate::helpers::*;

fn item(topic: &str, disputes: &[&str], measures: &[&str]) -> pb::AgendaItem {
    pb::AgendaItem {
        topic: topic.into(),
        dispute_ids: disputes.iter().map(|s| (*s).to_owned()).collect(),
        measure_ids: measures.iter().map(|s| (*s).to_owned()).collect(),
    }
}

#[tokio::test]
async fn a_session_with_a_linked_agenda_is_stored_and_listed() {
    let app = spawn_app().await;
    let measure = app.measure("CN-MEAL-PEAS").await;
    let dispute = app.dispute("WT/DS636").await;
    let s = app.create_session(beijing(vec![item("canola", &[&dispute.id], &[&measure.id])])).await.unwrap();
    assert_eq!(s.status(), SessionStatus::Held);
    assert_eq!(s.agenda[0].measure_ids, [measure.id.clone()]);
    let got =
        app.client.clone().get_session(pb::GetSessionRequest { id: s.id.clone() }).await.unwrap().into_inner().session;
    assert_eq!(got.as_ref(), Some(&s));

    let mut planned = beijing(vec![]);
    (planned.title, planned.status, planned.track, planned.starts_on, planned.ends_on) = (
        "Economic and financial strategic dialogue".into(),
        0,
        pb::DialogueTrack::EconomicFinancial.into(),
        "2026-06-01".into(),
        String::new(),
    );
    let planned = app.create_session(planned).await.unwrap();
    assert_eq!(planned.status(), SessionStatus::Planned, "PLANNED by default");
    assert_eq!(planned.ends_on, "2026-06-01", "a one-day session ends when it starts");

    let list = |req: pb::ListSessionsRequest| {
        let mut client = app.client.clone();
        async move {
            client
                .list_sessions(req)
                .await
                .map(|r| r.into_inner().sessions.into_iter().map(|s| s.title).collect::<Vec<_>>())
        }
    };
    let beijing_title = s.title.clone();
    assert_eq!(
        list(pb::ListSessionsRequest { measure_id: measure.id.clone(), ..Default::default() }).await.unwrap(),
        [beijing_title.clone()]
    );
    assert_eq!(
        list(pb::ListSessionsRequest { dispute_id: dispute.id.clone(), ..Default::default() }).await.unwrap(),
        [beijing_title.clone()]
    );
    assert_eq!(
        list(pb::ListSessionsRequest { status: SessionStatus::Planned.into(), ..Default::default() }).await.unwrap(),
        [planned.title.clone()]
    );
    assert_eq!(
        list(pb::ListSessionsRequest { track: pb::DialogueTrack::Trade.into(), ..Default::default() }).await.unwrap(),
        [beijing_title.clone()]
    );
    assert_eq!(
        list(pb::ListSessionsRequest {
            level: pb::SessionLevel::Leaders.into(),
            economy: "CAN".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .len(),
        2
    );
    assert!(list(pb::ListSessionsRequest { economy: "USA".into(), ..Default::default() }).await.unwrap().is_empty());
    assert_eq!(
        list(pb::ListSessionsRequest {
            ends_on_from: "2026-01-15".into(),
            starts_on_to: "2026-01-31".into(),
            ..Default::default()
        })
        .await
        .unwrap(),
        [beijing_title.clone()],
        "a session under way on the range's first day counts"
    );
    let page = app
        .client
        .clone()
        .list_sessions(pb::ListSessionsRequest { page_size: 1, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.sessions.len(), 1);
    let rest = app
        .client
        .clone()
        .list_sessions(pb::ListSessionsRequest { page_size: 1, page_token: page.next_page_token, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.sessions[0].id, planned.id);
    assert!(rest.next_page_token.is_empty());
    assert_invalid(
        list(pb::ListSessionsRequest { starts_on_to: "June".into(), ..Default::default() }).await,
        &["starts_on_to"],
    );
}

#[tokio::test]
async fn unknown_links_are_named_by_their_exact_path_and_nothing_is_stored() {
    let app = spawn_app().await;
    let measure = app.measure("M").await;
    let dispute = app.dispute("D").await;
    let (ghost_dispute, ghost_measure) = (uuid(), uuid());
    let agenda =
        vec![item("meal", &[], &[&measure.id]), item("cases", &[&dispute.id, &ghost_dispute], &[&ghost_measure])];
    assert_invalid(
        app.create_session(beijing(agenda)).await,
        &["session.agenda[1].dispute_ids[1]", "session.agenda[1].measure_ids[0]"],
    );
    let listed = app.client.clone().list_sessions(pb::ListSessionsRequest::default()).await.unwrap().into_inner();
    assert!(listed.sessions.is_empty());
}

#[tokio::test]
async fn with_a_linked_service_down_the_write_is_unavailable() {
    let mut app = spawn_app().await;
    let dispute = app.dispute("D").await;
    app.stop_dispute().await;
    let status =
        assert_code(app.create_session(beijing(vec![item("cases", &[&dispute.id], &[])])).await, Code::Unavailable);
    assert_eq!(reason(&status), "PEER_UNAVAILABLE");
    let listed = app.client.clone().list_sessions(pb::ListSessionsRequest::default()).await.unwrap().into_inner();
    assert!(listed.sessions.is_empty());
    app.start_dispute().await;
    app.create_session(beijing(vec![item("cases", &[&dispute.id], &[])])).await.unwrap();
}

#[tokio::test]
async fn bad_sessions_name_every_bad_field() {
    let app = spawn_app().await;
    let mut s = beijing(vec![item("", &["nope"], &[])]);
    s.track = 0;
    s.host_economy = "PRC".into();
    s.economies = vec!["CAN".into()];
    s.starts_on = "2026-01-14".into();
    s.ends_on = "2026-01-01".into();
    s.participants[0].economy = "Canada".into();
    assert_invalid(
        app.create_session(s).await,
        &[
            "session.track",
            "session.host_economy",
            "session.participants[0].economy",
            "session.agenda[0].topic",
            "session.agenda[0].dispute_ids[0]",
        ],
    );
    let mut rules = beijing(vec![]);
    rules.economies = vec!["CAN".into()];
    rules.ends_on = "2026-01-01".into();
    assert_invalid(app.create_session(rules).await, &["session.economies", "session.ends_on"]);
    let mut cancelled = beijing(vec![]);
    cancelled.status = SessionStatus::Cancelled.into();
    assert_invalid(app.create_session(cancelled).await, &["session.status"]);
}

#[tokio::test]
async fn status_follows_its_rules_with_etags_and_retries() {
    let app = spawn_app().await;
    let mut s = beijing(vec![]);
    s.status = SessionStatus::Planned.into();
    let s = app.create_session(s).await.unwrap();
    let mut client = app.client.clone();
    let set = |status: SessionStatus, etag: &str| pb::SetSessionStatusRequest {
        id: s.id.clone(),
        status: status.into(),
        request_id: String::new(),
        etag: etag.into(),
    };
    let postponed =
        client.set_session_status(set(SessionStatus::Postponed, &s.etag)).await.unwrap().into_inner().session.unwrap();
    assert_code(client.set_session_status(set(SessionStatus::Planned, &s.etag)).await, Code::Aborted);
    client.set_session_status(set(SessionStatus::Planned, &postponed.etag)).await.unwrap();
    let held = pb::SetSessionStatusRequest { request_id: uuid(), ..set(SessionStatus::Held, "") };
    let first = client.set_session_status(held.clone()).await.unwrap().into_inner();
    assert_eq!(client.set_session_status(held).await.unwrap().into_inner(), first, "a retry returns the first result");
    let status =
        assert_code(client.set_session_status(set(SessionStatus::Cancelled, "")).await, Code::FailedPrecondition);
    assert_eq!(reason(&status), "ILLEGAL_STATUS_TRANSITION");
    assert_invalid(client.set_session_status(set(SessionStatus::Unspecified, "")).await, &["status"]);
    assert_code(
        client.set_session_status(pb::SetSessionStatusRequest { id: uuid(), ..set(SessionStatus::Held, "") }).await,
        Code::NotFound,
    );
}

#[tokio::test]
async fn update_takes_masked_fields_and_checks_a_new_agenda() {
    let app = spawn_app().await;
    let s = app.create_session(beijing(vec![])).await.unwrap();
    let measure = app.measure("M").await;
    let mut client = app.client.clone();
    let mask = |p: &[&str]| Some(FieldMask { paths: p.iter().map(|s| (*s).to_owned()).collect() });
    let mut patch = s.clone();
    patch.location = "Beijing, Great Hall of the People".into();
    patch.agenda = vec![item("meal", &[], &[&measure.id])];
    patch.title = "not in the mask".into();
    let updated = client
        .update_session(pb::UpdateSessionRequest {
            session: Some(patch.clone()),
            update_mask: mask(&["location", "agenda"]),
        })
        .await
        .unwrap()
        .into_inner()
        .session
        .unwrap();
    assert_eq!(updated.location, "Beijing, Great Hall of the People");
    assert_eq!(updated.title, s.title);
    let listed = client
        .list_sessions(pb::ListSessionsRequest { measure_id: measure.id.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.sessions.len(), 1, "the link index follows the agenda");

    let mut fresh = updated.clone();
    assert_invalid(
        client
            .update_session(pb::UpdateSessionRequest { session: Some(fresh.clone()), update_mask: mask(&["status"]) })
            .await,
        &["update_mask.paths[0]"],
    );
    fresh.agenda = vec![item("x", &[], &[&uuid()])];
    assert_invalid(
        client
            .update_session(pb::UpdateSessionRequest { session: Some(fresh.clone()), update_mask: mask(&["agenda"]) })
            .await,
        &["session.agenda[0].measure_ids[0]"],
    );
    assert_code(
        client
            .update_session(pb::UpdateSessionRequest { session: Some(patch), update_mask: mask(&["location"]) })
            .await,
        Code::Aborted,
    );
}
