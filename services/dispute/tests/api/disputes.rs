use prost_types::FieldMask;
use tonic::Code;
use tradewatch_common::proto::dispute::{self as pb, DisputeStage};

use crate::helpers::*;

#[tokio::test]
async fn a_dispute_citing_a_real_measure_opens_in_consultations() {
    let app = spawn_app().await;
    let measure = app.measure("MOFCOM-AD-CANOLA", &["1205"]).await;
    let mut d = dispute("WT/DS589");
    d.measure_ids = vec![measure.clone()];
    d.third_parties = vec!["USA".into(), "JPN".into()];
    let created = app.create(d).await.unwrap();
    assert_eq!(created.stage(), DisputeStage::Consultations);
    assert_eq!(created.measure_ids, [measure]);
    assert!(created.closed_on.is_empty());
    let got =
        app.client.clone().get_dispute(pb::GetDisputeRequest { id: created.id.clone() }).await.unwrap().into_inner();
    assert_eq!(got.dispute.as_ref(), Some(&created));
    let events = app.events(&created.id).await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].kind(), events[0].to_stage(), events[0].occurred_on.as_str()),
        (pb::DisputeEventKind::Created, DisputeStage::Consultations, "2019-09-09")
    );
}

#[tokio::test]
async fn an_unknown_measure_is_named_and_nothing_is_written() {
    let app = spawn_app().await;
    let known = app.measure("KNOWN", &["1205"]).await;
    let unknown = uuid();
    let mut d = dispute("WT/DS589");
    d.measure_ids = vec![known, unknown.clone()];
    let status = assert_code(app.create(d).await, Code::InvalidArgument);
    assert_eq!(bad_fields(&status), ["dispute.measure_ids[1]"]);
    assert!(status.message().contains(&unknown), "{status:?}");
    assert!(app.list_all(pb::ListDisputesRequest::default()).await.is_empty());
}

#[tokio::test]
async fn with_the_tariff_service_down_a_linked_create_is_unavailable_until_it_returns() {
    let mut app = spawn_app().await;
    let measure = app.measure("MOFCOM-AD-CANOLA", &["1205"]).await;
    let mut d = dispute("WT/DS589");
    d.measure_ids = vec![measure];
    app.stop_tariff().await;
    let status = assert_code(app.create(d.clone()).await, Code::Unavailable);
    assert_eq!(info(&status).0, "PEER_UNAVAILABLE");
    assert!(app.list_all(pb::ListDisputesRequest::default()).await.is_empty(), "nothing was stored");
    // A dispute that cites no measure does not need the tariff service.
    app.create(dispute("WT/DS000")).await.unwrap();
    app.restart_tariff().await;
    let created = app.create(d).await.unwrap();
    assert_eq!(created.reference, "WT/DS589");
}

#[tokio::test]
async fn a_retried_create_answers_from_its_key_even_with_the_tariff_service_down() {
    let mut app = spawn_app().await;
    let measure = app.measure("M", &["1205"]).await;
    let mut d = dispute("WT/DS589");
    d.measure_ids = vec![measure];
    let req = pb::CreateDisputeRequest { dispute: Some(d), request_id: uuid() };
    let first = app.client.clone().create_dispute(req.clone()).await.unwrap().into_inner();
    app.stop_tariff().await;
    let again = app.client.clone().create_dispute(req).await.unwrap().into_inner();
    assert_eq!(first, again);
    assert_eq!(app.list_all(pb::ListDisputesRequest::default()).await.len(), 1);
}

#[tokio::test]
async fn bad_disputes_name_every_bad_field() {
    let app = spawn_app().await;
    let mut d = dispute("");
    d.respondent = "CAN".into();
    d.forum = 0;
    d.hs_codes = vec!["12x".into()];
    d.measure_ids = vec!["not-a-uuid".into()];
    d.opened_on = "2019-9-9".into();
    assert_invalid(
        app.create(d).await,
        &["dispute.reference", "dispute.forum", "dispute.hs_codes[0]", "dispute.measure_ids[0]", "dispute.opened_on"],
    );
    let mut same = dispute("WT/DS1");
    same.respondent = "CAN".into();
    same.third_parties = vec!["CAN".into()];
    assert_invalid(app.create(same).await, &["dispute.respondent", "dispute.third_parties[0]"]);
    assert_invalid(app.client.clone().create_dispute(pb::CreateDisputeRequest::default()).await, &["dispute"]);
    assert!(app.list_all(pb::ListDisputesRequest::default()).await.is_empty());
}

#[tokio::test]
async fn a_duplicate_reference_is_already_exists() {
    let app = spawn_app().await;
    app.create(dispute("WT/DS589")).await.unwrap();
    assert_code(app.create(dispute("WT/DS589")).await, Code::AlreadyExists);
    assert_eq!(app.list_all(pb::ListDisputesRequest::default()).await.len(), 1);
}

#[tokio::test]
async fn batch_get_keeps_order_and_names_the_missing() {
    let app = spawn_app().await;
    let a = app.create(dispute("A")).await.unwrap();
    let b = app.create(dispute("B")).await.unwrap();
    let mut client = app.client.clone();
    let got = client
        .batch_get_disputes(pb::BatchGetDisputesRequest { ids: vec![b.id.clone(), a.id.clone()] })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.disputes.iter().map(|d| d.reference.as_str()).collect::<Vec<_>>(), ["B", "A"]);
    let x = uuid();
    let status = assert_code(
        client.batch_get_disputes(pb::BatchGetDisputesRequest { ids: vec![a.id.clone(), x.clone()] }).await,
        Code::NotFound,
    );
    assert_eq!(info(&status).1.get("missing_ids"), Some(&x));
    assert_invalid(client.batch_get_disputes(pb::BatchGetDisputesRequest { ids: vec!["x".into()] }).await, &["ids[0]"]);
    assert_code(client.get_dispute(pb::GetDisputeRequest { id: uuid() }).await, Code::NotFound);
}

#[tokio::test]
async fn list_filters_select_by_every_field_and_page_without_gaps() {
    let app = spawn_app().await;
    let measure = app.measure("M", &["1205"]).await;
    let mut canola = dispute("WT/DS589");
    canola.measure_ids = vec![measure.clone()];
    let canola = app.create(canola).await.unwrap();
    let mut surtax = dispute("WT/DS627");
    (surtax.complainant, surtax.respondent, surtax.hs_codes) =
        ("CHN".into(), "CAN".into(), vec!["870380".into(), "72".into()]);
    let surtax = app.create(surtax).await.unwrap();
    let mut bilateral = dispute("BILAT-1");
    (bilateral.complainant, bilateral.respondent, bilateral.forum) =
        ("USA".into(), "CHN".into(), pb::DisputeForum::Bilateral.into());
    bilateral.hs_codes = vec![];
    let bilateral = app.create(bilateral).await.unwrap();
    app.advance(&bilateral.id, DisputeStage::Withdrawn, "2020-01-01").await.unwrap();

    let ids = |ds: Vec<pb::Dispute>| ds.into_iter().map(|d| d.reference).collect::<Vec<_>>();
    let q = |f: fn(&mut pb::ListDisputesRequest)| {
        let mut r = pb::ListDisputesRequest::default();
        f(&mut r);
        r
    };
    assert_eq!(ids(app.list_all(q(|r| r.economy = "CAN".into())).await), ["WT/DS589", "WT/DS627"]);
    assert_eq!(ids(app.list_all(q(|r| r.complainant = "CHN".into())).await), ["WT/DS627"]);
    assert_eq!(ids(app.list_all(q(|r| r.respondent = "CHN".into())).await), ["WT/DS589", "BILAT-1"]);
    assert_eq!(ids(app.list_all(q(|r| r.stage = DisputeStage::Withdrawn.into())).await), ["BILAT-1"]);
    assert_eq!(ids(app.list_all(q(|r| r.forum = pb::DisputeForum::Wto.into())).await), ["WT/DS589", "WT/DS627"]);
    assert_eq!(ids(app.list_all(q(|r| r.hs_code = "87038000".into())).await), ["WT/DS627"]);
    assert_eq!(ids(app.list_all(q(|r| r.hs_code = "12".into())).await), ["WT/DS589"]);
    assert_eq!(ids(app.list_all(q(|r| r.open = Some(true))).await), ["WT/DS589", "WT/DS627"]);
    assert_eq!(ids(app.list_all(q(|r| r.open = Some(false))).await), ["BILAT-1"]);
    let by_measure = app.list_all(pb::ListDisputesRequest { measure_id: measure, ..Default::default() }).await;
    assert_eq!(ids(by_measure), ["WT/DS589"]);
    assert_invalid(app.client.clone().list_disputes(q(|r| r.economy = "XX".into())).await, &["economy"]);
    assert_invalid(app.client.clone().list_disputes(q(|r| r.page_token = "zzz".into())).await, &["page_token"]);

    let mut req = pb::ListDisputesRequest { page_size: 1, ..Default::default() };
    let mut seen = vec![];
    loop {
        let page = app.client.clone().list_disputes(req.clone()).await.unwrap().into_inner();
        assert!(page.disputes.len() <= 1);
        seen.extend(page.disputes.into_iter().map(|d| d.id));
        if page.next_page_token.is_empty() {
            break;
        }
        req.page_token = page.next_page_token;
    }
    assert_eq!(seen, [canola.id, surtax.id, bilateral.id]);
}

fn mask(paths: &[&str]) -> Option<FieldMask> {
    Some(FieldMask { paths: paths.iter().map(|p| (*p).to_owned()).collect() })
}

#[tokio::test]
async fn update_takes_masked_fields_checks_new_links_and_refuses_the_stage() {
    let app = spawn_app().await;
    let d = app.create(dispute("WT/DS589")).await.unwrap();
    let measure = app.measure("M", &["1205"]).await;
    let mut client = app.client.clone();
    let mut patch = d.clone();
    patch.title = "New title".into();
    patch.measure_ids = vec![measure.clone()];
    patch.summary = "ignored: not in the mask".into();
    let updated = client
        .update_dispute(pb::UpdateDisputeRequest {
            dispute: Some(patch.clone()),
            update_mask: mask(&["title", "measure_ids"]),
        })
        .await
        .unwrap()
        .into_inner()
        .dispute
        .unwrap();
    assert_eq!((updated.title.as_str(), updated.summary.as_str()), ("New title", ""));
    assert_eq!(updated.measure_ids, [measure]);
    assert_ne!(updated.etag, d.etag);

    // The etag sent is now stale.
    let status = assert_code(
        client
            .update_dispute(pb::UpdateDisputeRequest { dispute: Some(patch.clone()), update_mask: mask(&["title"]) })
            .await,
        Code::Aborted,
    );
    assert_eq!(info(&status).0, "ETAG_MISMATCH");
    let mut fresh = updated.clone();
    fresh.stage = DisputeStage::Settled.into();
    assert_invalid(
        client
            .update_dispute(pb::UpdateDisputeRequest { dispute: Some(fresh.clone()), update_mask: mask(&["stage"]) })
            .await,
        &["update_mask.paths[0]"],
    );
    fresh.measure_ids = vec![uuid()];
    assert_invalid(
        client
            .update_dispute(pb::UpdateDisputeRequest {
                dispute: Some(fresh.clone()),
                update_mask: mask(&["measure_ids"]),
            })
            .await,
        &["dispute.measure_ids[0]"],
    );
    assert_invalid(
        client.update_dispute(pb::UpdateDisputeRequest { dispute: Some(fresh), update_mask: None }).await,
        &["update_mask"],
    );
    let after =
        client.get_dispute(pb::GetDisputeRequest { id: d.id.clone() }).await.unwrap().into_inner().dispute.unwrap();
    assert_eq!(after, updated, "refused updates wrote nothing");
}

#[tokio::test]
async fn events_are_recorded_in_timeline_order() {
    let app = spawn_app().await;
    let d = app.create(dispute("WT/DS589")).await.unwrap();
    let mut client = app.client.clone();
    let record = |kind: pb::DisputeEventKind, on: &str, what: &str| pb::RecordDisputeEventRequest {
        dispute_id: d.id.clone(),
        event: Some(pb::DisputeEvent {
            kind: kind.into(),
            occurred_on: on.into(),
            description: what.into(),
            ..Default::default()
        }),
        request_id: String::new(),
    };
    client
        .record_dispute_event(record(pb::DisputeEventKind::Hearing, "2021-06-01", "first substantive meeting"))
        .await
        .unwrap();
    app.advance(&d.id, DisputeStage::PanelEstablished, "2020-06-26").await.unwrap();
    let filing = pb::RecordDisputeEventRequest {
        request_id: uuid(),
        ..record(pb::DisputeEventKind::Filing, "2019-09-10", "request for consultations")
    };
    let first = client.record_dispute_event(filing.clone()).await.unwrap().into_inner();
    assert_eq!(client.record_dispute_event(filing).await.unwrap().into_inner(), first, "a retry records nothing new");

    let timeline: Vec<_> = app.events(&d.id).await.into_iter().map(|e| (e.occurred_on.clone(), e.kind())).collect();
    assert_eq!(
        timeline,
        [
            ("2019-09-09".to_owned(), pb::DisputeEventKind::Created),
            ("2019-09-10".to_owned(), pb::DisputeEventKind::Filing),
            ("2020-06-26".to_owned(), pb::DisputeEventKind::StageChanged),
            ("2021-06-01".to_owned(), pb::DisputeEventKind::Hearing),
        ]
    );
    assert_invalid(
        client.record_dispute_event(record(pb::DisputeEventKind::StageChanged, "2021-01-01", "x")).await,
        &["event.kind"],
    );
    assert_invalid(
        client.record_dispute_event(record(pb::DisputeEventKind::Note, "", "")).await,
        &["event.occurred_on", "event.description"],
    );
    assert_invalid(
        client.record_dispute_event(record(pb::DisputeEventKind::Note, "2000-01-01", "too early")).await,
        &["event.occurred_on"],
    );
    let mut unknown = record(pb::DisputeEventKind::Note, "2021-01-01", "x");
    unknown.dispute_id = uuid();
    assert_code(client.record_dispute_event(unknown).await, Code::NotFound);
    assert_code(
        client.list_dispute_events(pb::ListDisputeEventsRequest { dispute_id: uuid(), ..Default::default() }).await,
        Code::NotFound,
    );
}

#[tokio::test]
async fn shutdown_stops_serving_and_frees_the_port() {
    let app = spawn_app().await;
    app.create(dispute("WT/DS589")).await.unwrap();
    let addr = app.addr;
    let mut client = app.client.clone();
    tokio::time::timeout(std::time::Duration::from_secs(10), app.stop()).await.unwrap().unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "nothing listens on {addr} any more");
    let after = client.get_dispute(pb::GetDisputeRequest { id: uuid() }).await;
    assert_eq!(after.unwrap_err().code(), tonic::Code::Unavailable);
}
