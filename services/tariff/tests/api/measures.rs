use prost_types::FieldMask;
use tonic::Code;
use tradewatch_common::proto::tariff::{self as pb, MeasureKind::*, MeasureStatus};

use crate::helpers::*;

#[tokio::test]
async fn a_created_measure_is_in_force_with_an_id_and_etag() {
    let app = spawn_app().await;
    let mut input = measure("SOR/2024-187", Surtax, &["8703.80", "87034010"], "100");
    input.target_economies = vec!["CHN".into()];
    input.announced_on = "2024-08-26".into();
    input.effective_from = "2024-10-01".into();
    let m = app.create(input).await;
    assert!(uuid::Uuid::parse_str(&m.id).is_ok());
    assert_eq!(m.status(), MeasureStatus::InForce);
    assert_eq!(m.hs_codes, ["870380", "87034010"], "dots are dropped");
    assert!(!m.etag.is_empty());
    assert!(m.create_time.is_some() && m.update_time.is_some());

    let got = app.client.clone().get_measure(pb::GetMeasureRequest { id: m.id.clone() }).await.unwrap().into_inner();
    assert_eq!(got.measure, Some(m));
}

#[tokio::test]
async fn a_measure_not_yet_effective_is_announced() {
    let app = spawn_app().await;
    let mut input = measure("FUTURE-1", Safeguard, &["72"], "25");
    input.effective_from = "2999-01-01".into();
    assert_eq!(app.create(input).await.status(), MeasureStatus::Announced);
}

#[tokio::test]
async fn get_names_a_bad_id_and_an_unknown_one_is_not_found() {
    let app = spawn_app().await;
    let mut client = app.client.clone();
    assert_invalid(client.get_measure(pb::GetMeasureRequest { id: "nope".into() }).await, &["id"]);
    let status = assert_code(client.get_measure(pb::GetMeasureRequest { id: uuid() }).await, Code::NotFound);
    assert_eq!(reason(&status), "NOT_FOUND");
}

#[tokio::test]
async fn a_bad_measure_names_every_bad_field_and_writes_nothing() {
    let app = spawn_app().await;
    let mut client = app.client.clone();
    let bad = pb::TariffMeasure {
        reference: "X".into(),
        title: String::new(),
        imposing_economy: "Canada".into(),
        target_economies: vec!["CHN".into(), "XXX".into()],
        kind: 0,
        hs_codes: vec!["8703".into(), "870".into()],
        ad_valorem_percent: "6,1".into(),
        effective_from: "2024-13-01".into(),
        source_url: "not a url".into(),
        ..Default::default()
    };
    assert_invalid(
        client.create_measure(pb::CreateMeasureRequest { measure: Some(bad), request_id: "r1".into() }).await,
        &[
            "request_id",
            "measure.imposing_economy",
            "measure.kind",
            "measure.title",
            "measure.target_economies[1]",
            "measure.hs_codes[1]",
            "measure.ad_valorem_percent",
            "measure.effective_from",
            "measure.source_url",
        ],
    );
    assert_invalid(client.create_measure(pb::CreateMeasureRequest::default()).await, &["measure"]);

    // Rules between fields are checked too.
    let mut trq = measure("TRQ-NO-QUOTA", TariffRateQuota, &["870380"], "6.1");
    trq.effective_to = "2023-01-01".into();
    trq.excluded_hs_codes = vec!["7208".into()];
    assert_invalid(
        client.create_measure(pb::CreateMeasureRequest { measure: Some(trq), request_id: String::new() }).await,
        &["measure.excluded_hs_codes[0]", "measure.effective_to", "measure.quota"],
    );
    assert!(app.list_all(pb::ListMeasuresRequest::default()).await.is_empty(), "nothing was written");
}

#[tokio::test]
async fn a_duplicate_reference_is_already_exists_and_writes_nothing() {
    let app = spawn_app().await;
    app.create(measure("SOR/2024-202", Surtax, &["72"], "25")).await;
    let status = assert_code(
        app.client
            .clone()
            .create_measure(pb::CreateMeasureRequest {
                measure: Some(measure("SOR/2024-202", Mfn, &["73"], "1")),
                request_id: String::new(),
            })
            .await,
        Code::AlreadyExists,
    );
    assert!(status.message().contains("SOR/2024-202"), "{status:?}");
    assert_eq!(app.list_all(pb::ListMeasuresRequest::default()).await.len(), 1);
    let by_code = app.list_all(pb::ListMeasuresRequest { hs_code: "73".into(), ..Default::default() }).await;
    assert!(by_code.is_empty(), "the refused measure left no HS rows behind");
}

#[tokio::test]
async fn a_retried_create_returns_the_first_result_and_writes_once() {
    let app = spawn_app().await;
    let mut client = app.client.clone();
    let req = pb::CreateMeasureRequest { measure: Some(measure("RETRY-1", Mfn, &["1205"], "9")), request_id: uuid() };
    let first = client.create_measure(req.clone()).await.unwrap().into_inner();
    let again = client.create_measure(req.clone()).await.unwrap().into_inner();
    assert_eq!(first, again);
    assert_eq!(app.list_all(pb::ListMeasuresRequest::default()).await.len(), 1);

    // The same request_id on a different request is a client bug.
    let mut other = req.clone();
    other.measure.as_mut().unwrap().reference = "RETRY-2".into();
    assert_invalid(client.create_measure(other).await, &["request_id"]);
}

#[tokio::test]
async fn concurrent_retries_of_one_create_write_once() {
    let app = spawn_app().await;
    let req = pb::CreateMeasureRequest { measure: Some(measure("RACE-1", Mfn, &["1205"], "9")), request_id: uuid() };
    let calls = (0..8).map(|_| {
        let (mut client, req) = (app.client.clone(), req.clone());
        tokio::spawn(async move { client.create_measure(req).await.map(|r| r.into_inner()) })
    });
    let results: Vec<_> = futures::future::join_all(calls).await.into_iter().map(|r| r.unwrap().unwrap()).collect();
    assert!(results.windows(2).all(|w| w[0] == w[1]), "every retry sees the first result");
    assert_eq!(app.list_all(pb::ListMeasuresRequest::default()).await.len(), 1);
}

#[tokio::test]
async fn batch_get_keeps_order_and_names_the_missing_ids() {
    let app = spawn_app().await;
    let a = app.create(measure("A", Mfn, &["01"], "1")).await;
    let b = app.create(measure("B", Mfn, &["02"], "2")).await;
    let mut client = app.client.clone();
    let got = client
        .batch_get_measures(pb::BatchGetMeasuresRequest { ids: vec![b.id.clone(), a.id.clone()] })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.measures.iter().map(|m| m.reference.as_str()).collect::<Vec<_>>(), ["B", "A"]);

    let (x, y) = (uuid(), uuid());
    let status = assert_code(
        client.batch_get_measures(pb::BatchGetMeasuresRequest { ids: vec![a.id.clone(), x.clone(), y.clone()] }).await,
        Code::NotFound,
    );
    let info = tonic_types::StatusExt::get_error_details(&status).error_info().cloned().unwrap();
    assert_eq!(info.metadata.get("missing_ids"), Some(&format!("{x},{y}")));

    assert_invalid(
        client.batch_get_measures(pb::BatchGetMeasuresRequest { ids: vec![a.id.clone(), "bad".into()] }).await,
        &["ids[1]"],
    );
    assert_invalid(client.batch_get_measures(pb::BatchGetMeasuresRequest { ids: vec![] }).await, &["ids"]);
    assert_invalid(
        client.batch_get_measures(pb::BatchGetMeasuresRequest { ids: (0..101).map(|_| uuid()).collect() }).await,
        &["ids"],
    );
}

#[tokio::test]
async fn pages_cover_every_measure_once_in_a_stable_order() {
    let app = spawn_app().await;
    let mut created = Vec::new();
    for i in 0..23 {
        created.push(app.create(measure(&format!("M-{i:02}"), Mfn, &[&format!("{:02}", i + 1)], "1")).await.id);
    }
    let mut req = pb::ListMeasuresRequest { page_size: 5, ..Default::default() };
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = app.list(req.clone()).await.unwrap();
        assert!(page.measures.len() <= 5);
        pages += 1;
        seen.extend(page.measures.into_iter().map(|m| m.id));
        if page.next_page_token.is_empty() {
            break;
        }
        req.page_token = page.next_page_token;
    }
    assert_eq!(pages, 5);
    assert_eq!(seen, created, "creation order, no duplicates, no gaps");

    let default = app.list(pb::ListMeasuresRequest::default()).await.unwrap();
    assert_eq!(default.measures.len(), 23);
    assert!(default.next_page_token.is_empty(), "the last page has no token");
}

#[tokio::test]
async fn page_tokens_that_were_altered_or_reused_elsewhere_are_refused() {
    let app = spawn_app().await;
    for i in 0..3 {
        app.create(measure(&format!("P-{i}"), Mfn, &["87"], "1")).await;
    }
    let first = app.list(pb::ListMeasuresRequest { page_size: 1, ..Default::default() }).await.unwrap();
    let token = first.next_page_token;
    let mut tampered = token.clone().into_bytes();
    let i = tampered.len() / 2;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert_invalid(
        app.list(pb::ListMeasuresRequest { page_size: 1, page_token: tampered, ..Default::default() }).await,
        &["page_token"],
    );
    assert_invalid(
        app.list(pb::ListMeasuresRequest {
            page_size: 1,
            page_token: token.clone(),
            imposing_economy: "CAN".into(),
            ..Default::default()
        })
        .await,
        &["page_token"],
    );
    assert_invalid(app.list(pb::ListMeasuresRequest { page_size: -1, ..Default::default() }).await, &["page_size"]);
    // The page size may change between pages.
    let rest =
        app.list(pb::ListMeasuresRequest { page_size: 10, page_token: token, ..Default::default() }).await.unwrap();
    assert_eq!(rest.measures.len(), 2);
}

#[tokio::test]
async fn list_filters_select_by_every_field() {
    let app = spawn_app().await;
    let mfn = app.create(measure("CA-MFN-8703", Mfn, &["8703"], "6.1")).await;
    let ev = app.create(against(measure("SOR/2024-187", Surtax, &["870380"], "100"), &["CHN"])).await;
    let steel = app.create(against(measure("SOR/2024-202", Surtax, &["72", "73"], "25"), &["CHN"])).await;
    let mut canola = against(measure("CN-AD-1205", AntiDumping, &["1205"], "75.8"), &["CAN"]);
    canola.imposing_economy = "CHN".into();
    canola.effective_from = "2025-08-14".into();
    canola.effective_to = "2026-02-28".into();
    let canola = app.create(canola).await;
    let mut us = against(measure("US-301", Retaliatory, &["8703"], "25"), &["USA"]);
    us.imposing_economy = "CAN".into();
    let us = app.create(us).await;

    let ids = |ms: Vec<pb::TariffMeasure>| ms.into_iter().map(|m| m.id).collect::<Vec<_>>();
    let q = |f: fn(&mut pb::ListMeasuresRequest)| {
        let mut r = pb::ListMeasuresRequest::default();
        f(&mut r);
        r
    };
    assert_eq!(ids(app.list_all(q(|r| r.imposing_economy = "CHN".into())).await), [canola.id.clone()]);
    assert_eq!(ids(app.list_all(q(|r| r.kind = Surtax.into())).await), [ev.id.clone(), steel.id.clone()]);
    assert_eq!(
        ids(app.list_all(q(|r| r.target_economy = "CHN".into())).await),
        [mfn.id.clone(), ev.id.clone(), steel.id.clone()],
        "measures naming CHN and those on every origin"
    );
    // A prefix of the code, the code itself, or a longer code under it.
    assert_eq!(
        ids(app.list_all(q(|r| r.hs_code = "8703.80.00".into())).await),
        [mfn.id.clone(), ev.id.clone(), us.id.clone()]
    );
    assert_eq!(ids(app.list_all(q(|r| r.hs_code = "87".into())).await), [mfn.id.clone(), ev.id.clone(), us.id.clone()]);
    assert_eq!(ids(app.list_all(q(|r| r.hs_code = "7308".into())).await), [steel.id.clone()]);
    assert_eq!(ids(app.list_all(q(|r| r.in_force_on = "2025-09-01".into())).await).len(), 5);
    assert_eq!(
        ids(app.list_all(q(|r| r.in_force_on = "2026-03-01".into())).await).len(),
        4,
        "the canola deposit ended"
    );
    assert_eq!(ids(app.list_all(q(|r| r.status = MeasureStatus::Expired.into())).await), [canola.id.clone()]);
    assert_invalid(app.list(q(|r| r.hs_code = "87x".into())).await, &["hs_code"]);
    assert_invalid(app.list(q(|r| r.kind = 99)).await, &["kind"]);
    assert_invalid(app.list(q(|r| r.in_force_on = "yesterday".into())).await, &["in_force_on"]);
}

#[tokio::test]
async fn a_status_filter_pages_without_gaps() {
    let app = spawn_app().await;
    let mut suspended = Vec::new();
    for i in 0..12 {
        let m = app.create(measure(&format!("S-{i:02}"), Surtax, &["72"], "25")).await;
        if i % 3 == 0 {
            app.client
                .clone()
                .set_measure_status(pb::SetMeasureStatusRequest {
                    id: m.id.clone(),
                    status: MeasureStatus::Suspended.into(),
                    ..Default::default()
                })
                .await
                .unwrap();
            suspended.push(m.id);
        }
    }
    let got = app
        .list_all(pb::ListMeasuresRequest {
            page_size: 2,
            status: MeasureStatus::Suspended.into(),
            ..Default::default()
        })
        .await;
    assert_eq!(got.into_iter().map(|m| m.id).collect::<Vec<_>>(), suspended);
}

fn mask(paths: &[&str]) -> Option<FieldMask> {
    Some(FieldMask { paths: paths.iter().map(|p| (*p).to_owned()).collect() })
}

#[tokio::test]
async fn update_changes_only_the_masked_fields() {
    let app = spawn_app().await;
    let m = app.create(measure("UPD-1", Surtax, &["72"], "25")).await;
    let mut patch = m.clone();
    patch.title = "New title".into();
    patch.ad_valorem_percent = "99".into();
    patch.hs_codes = vec!["73".into()];
    let updated = app
        .client
        .clone()
        .update_measure(pb::UpdateMeasureRequest { measure: Some(patch), update_mask: mask(&["title", "hs_codes"]) })
        .await
        .unwrap()
        .into_inner()
        .measure
        .unwrap();
    assert_eq!(updated.title, "New title");
    assert_eq!(updated.hs_codes, ["73"]);
    assert_eq!(updated.ad_valorem_percent, "25", "not in the mask: unchanged");
    assert_ne!(updated.etag, m.etag);
    let by_new_code = app.list_all(pb::ListMeasuresRequest { hs_code: "7308".into(), ..Default::default() }).await;
    assert_eq!(by_new_code.len(), 1, "the HS index follows the update");
    assert!(app.list_all(pb::ListMeasuresRequest { hs_code: "7208".into(), ..Default::default() }).await.is_empty());
}

#[tokio::test]
async fn an_update_with_a_stale_etag_is_aborted() {
    let app = spawn_app().await;
    let mut client = app.client.clone();
    let m = app.create(measure("ETAG-1", Surtax, &["72"], "25")).await;
    let mut first = m.clone();
    first.title = "first".into();
    client
        .update_measure(pb::UpdateMeasureRequest { measure: Some(first), update_mask: mask(&["title"]) })
        .await
        .unwrap();
    let mut second = m.clone();
    second.title = "second".into();
    let status = assert_code(
        client
            .update_measure(pb::UpdateMeasureRequest { measure: Some(second.clone()), update_mask: mask(&["title"]) })
            .await,
        Code::Aborted,
    );
    assert_eq!(reason(&status), "ETAG_MISMATCH");
    // Without an etag the write goes through.
    second.etag.clear();
    client
        .update_measure(pb::UpdateMeasureRequest { measure: Some(second), update_mask: mask(&["title"]) })
        .await
        .unwrap();
}

#[tokio::test]
async fn update_refuses_fields_it_does_not_own() {
    let app = spawn_app().await;
    let mut client = app.client.clone();
    let m = app.create(measure("MASK-1", Surtax, &["72"], "25")).await;
    assert_invalid(
        client
            .update_measure(pb::UpdateMeasureRequest { measure: Some(m.clone()), update_mask: mask(&["status"]) })
            .await,
        &["update_mask.paths[0]"],
    );
    assert_invalid(
        client
            .update_measure(pb::UpdateMeasureRequest {
                measure: Some(m.clone()),
                update_mask: mask(&["title", "kind", "nonsense"]),
            })
            .await,
        &["update_mask.paths[1]", "update_mask.paths[2]"],
    );
    assert_invalid(
        client.update_measure(pb::UpdateMeasureRequest { measure: Some(m.clone()), update_mask: None }).await,
        &["update_mask"],
    );
    let mut bad = m.clone();
    bad.ad_valorem_percent = "-1".into();
    assert_invalid(
        client
            .update_measure(pb::UpdateMeasureRequest { measure: Some(bad), update_mask: mask(&["ad_valorem_percent"]) })
            .await,
        &["measure.ad_valorem_percent"],
    );
    let mut unknown = m.clone();
    unknown.id = uuid();
    assert_code(
        client.update_measure(pb::UpdateMeasureRequest { measure: Some(unknown), update_mask: mask(&["title"]) }).await,
        Code::NotFound,
    );
    let unchanged =
        client.get_measure(pb::GetMeasureRequest { id: m.id.clone() }).await.unwrap().into_inner().measure.unwrap();
    assert_eq!(unchanged, m, "refused updates wrote nothing");
}

#[tokio::test]
async fn status_changes_are_dated_kept_in_history_and_idempotent() {
    let app = spawn_app().await;
    let mut client = app.client.clone();
    let m = app.create(against(measure("CN-MEAL", Retaliatory, &["230641"], "100"), &["CHN"])).await;
    let suspend = pb::SetMeasureStatusRequest {
        id: m.id.clone(),
        status: MeasureStatus::Suspended.into(),
        effective_on: "2026-03-01".into(),
        note: "commitment fulfilled".into(),
        request_id: uuid(),
        etag: m.etag.clone(),
    };
    let first = client.set_measure_status(suspend.clone()).await.unwrap().into_inner();
    assert_eq!(first.measure.as_ref().unwrap().status(), MeasureStatus::Suspended);
    let change = first.change.clone().unwrap();
    assert_eq!(
        (change.status(), change.effective_on.as_str(), change.note.as_str()),
        (MeasureStatus::Suspended, "2026-03-01", "commitment fulfilled")
    );

    // A retry returns the first answer, even though the etag is now stale.
    let again = client.set_measure_status(suspend.clone()).await.unwrap().into_inner();
    assert_eq!(again, first);
    let history = client
        .list_measure_history(pb::ListMeasureHistoryRequest { measure_id: m.id.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let statuses: Vec<_> = history.changes.iter().map(|c| (c.status(), c.effective_on.clone())).collect();
    assert_eq!(
        statuses,
        [(MeasureStatus::InForce, "2024-01-01".into()), (MeasureStatus::Suspended, "2026-03-01".into())]
    );

    // A second suspension without the key is refused with a reason.
    let status = assert_code(
        client
            .set_measure_status(pb::SetMeasureStatusRequest {
                request_id: String::new(),
                etag: String::new(),
                ..suspend.clone()
            })
            .await,
        Code::FailedPrecondition,
    );
    assert_eq!(reason(&status), "MEASURE_STATUS_UNCHANGED");
    // A stale etag is aborted.
    assert_code(
        client
            .set_measure_status(pb::SetMeasureStatusRequest {
                status: MeasureStatus::Revoked.into(),
                request_id: String::new(),
                ..suspend.clone()
            })
            .await,
        Code::Aborted,
    );
    assert_invalid(
        client
            .set_measure_status(pb::SetMeasureStatusRequest {
                status: MeasureStatus::Announced.into(),
                request_id: String::new(),
                etag: String::new(),
                ..suspend.clone()
            })
            .await,
        &["status"],
    );
    assert_invalid(
        client.set_measure_status(pb::SetMeasureStatusRequest { id: m.id.clone(), ..Default::default() }).await,
        &["status"],
    );
    assert_code(
        client
            .set_measure_status(pb::SetMeasureStatusRequest {
                id: uuid(),
                status: MeasureStatus::Suspended.into(),
                ..Default::default()
            })
            .await,
        Code::NotFound,
    );
}

#[tokio::test]
async fn history_pages_in_timeline_order() {
    let app = spawn_app().await;
    let mut client = app.client.clone();
    let m = app.create(measure("HIST-1", Surtax, &["72"], "25")).await;
    let days = ["2025-01-01", "2025-02-01", "2025-03-01", "2025-04-01", "2025-05-01"];
    for (i, day) in days.iter().enumerate() {
        let status = if i % 2 == 0 { MeasureStatus::Suspended } else { MeasureStatus::InForce };
        client
            .set_measure_status(pb::SetMeasureStatusRequest {
                id: m.id.clone(),
                status: status.into(),
                effective_on: (*day).into(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let mut req = pb::ListMeasureHistoryRequest { measure_id: m.id.clone(), page_size: 2, ..Default::default() };
    let mut seen = Vec::new();
    loop {
        let page = client.list_measure_history(req.clone()).await.unwrap().into_inner();
        seen.extend(page.changes.into_iter().map(|c| c.effective_on));
        if page.next_page_token.is_empty() {
            break;
        }
        req.page_token = page.next_page_token;
    }
    assert_eq!(seen, ["2024-01-01", "2025-01-01", "2025-02-01", "2025-03-01", "2025-04-01", "2025-05-01"]);
    assert_code(
        client.list_measure_history(pb::ListMeasureHistoryRequest { measure_id: uuid(), ..Default::default() }).await,
        Code::NotFound,
    );
}

#[tokio::test]
async fn request_ids_are_forgotten_after_the_retention_and_not_before() {
    use sea_orm::{ColumnTrait as _, EntityTrait as _, QueryFilter as _, sea_query::Expr};
    use tradewatch_common::idempotency::entity as keys;
    let app = spawn_app().await;
    let mut client = app.client.clone();
    let old = uuid::Uuid::now_v7().to_string();
    let fresh = uuid::Uuid::now_v7().to_string();
    for (reference, request_id) in [("OLD", &old), ("FRESH", &fresh)] {
        let m = measure(reference, Surtax, &["72"], "25");
        client
            .create_measure(pb::CreateMeasureRequest { measure: Some(m), request_id: request_id.clone() })
            .await
            .unwrap();
    }
    // The first key was stored 31 days ago.
    let past = chrono::Utc::now() - chrono::Duration::days(31);
    keys::Entity::update_many()
        .col_expr(keys::Column::CreateTime, Expr::value(past))
        .filter(keys::Column::RequestId.eq(uuid::Uuid::parse_str(&old).unwrap()))
        .exec(&app.db)
        .await
        .unwrap();
    let removed =
        tradewatch_common::idempotency::expire(&app.db, std::time::Duration::from_secs(30 * 24 * 3600)).await.unwrap();
    assert_eq!(removed, 1);
    // The forgotten id is a new request now; the remembered one still replays.
    let again = measure("OLD", Surtax, &["72"], "25");
    let err =
        client.create_measure(pb::CreateMeasureRequest { measure: Some(again), request_id: old }).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::AlreadyExists, "a new create of the same reference: {err:?}");
    let replay = measure("FRESH", Surtax, &["72"], "25");
    assert!(client.create_measure(pb::CreateMeasureRequest { measure: Some(replay), request_id: fresh }).await.is_ok());
}
