//! What a hostile or careless caller sends: every case gets a
//! documented status naming its field, writes nothing, and leaves health
//! answering within a second.

use std::time::{Duration, Instant};

use sea_orm::{ActiveValue::Set, ConnectionTrait, Database, DatabaseConnection, TransactionTrait};
use tariff_service::store::entity::{measure as measure_row, measure_code, status_change};
use tonic::{Code, Request};
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};
use tradewatch_common::{
    proto::tariff::{self as pb, MeasureKind::*},
    testing::{bad_fields, error_info},
};

use crate::helpers::*;

const SERVICE: &str = "tradewatch.tariff.v1.TariffService";

fn create(m: pb::TariffMeasure) -> pb::CreateMeasureRequest {
    pb::CreateMeasureRequest { measure: Some(m), request_id: String::new() }
}

/// Asks health every 100 ms until `stop`, each answer due within a second;
/// returns how many it asked.
async fn health_keeps_answering(addr: std::net::SocketAddr, stop: tokio::sync::watch::Receiver<bool>) -> usize {
    let mut health = HealthClient::new(channel(addr).await);
    let mut asked = 0;
    while !*stop.borrow() {
        for service in ["", SERVICE] {
            let check = health.check(HealthCheckRequest { service: service.into() });
            let answer = tokio::time::timeout(Duration::from_secs(1), check).await;
            let status = answer.expect("health answered within a second").expect("health answered").into_inner();
            assert_eq!(status.status(), ServingStatus::Serving, "{service:?}");
            asked += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    asked
}

async fn count_measures(app: &TestApp) -> usize {
    app.list_all(pb::ListMeasuresRequest::default()).await.len()
}

#[tokio::test]
async fn huge_lists_are_refused_unread_while_health_answers() {
    let app = spawn_app().await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let watcher = tokio::spawn(health_keeps_answering(app.addr, stopped));
    let sixty_thousand: Vec<String> = (0..60_000).map(|i| format!("87{i:08}")).collect();
    let mut calls = Vec::new();
    for codes in [sixty_thousand.clone(), sixty_thousand.clone(), sixty_thousand] {
        let mut client = app.client.clone();
        calls.push(tokio::spawn(async move {
            client.create_measure(create(pb::TariffMeasure { hs_codes: codes, ..measure("HUGE", Mfn, &[], "1") })).await
        }));
    }
    // A million codes (3 MB) is over the request limit: refused before it is
    // decoded into a million strings.
    let one_million = vec!["1".to_owned(); 1_000_000];
    let mut client = app.client.clone();
    let million =
        client.create_measure(create(pb::TariffMeasure { hs_codes: one_million, ..measure("M", Mfn, &[], "1") }));
    let status = million.await.unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    for call in calls {
        assert_invalid(call.await.unwrap(), &["measure.hs_codes"]);
    }
    stop.send(true).unwrap();
    assert!(watcher.await.unwrap() >= 2);
    assert_eq!(count_measures(&app).await, 0, "nothing was written");
}

#[tokio::test]
async fn lists_at_their_limit_are_stored_whole_and_one_more_is_refused() {
    let app = spawn_app().await;
    let codes: Vec<String> = (0..5_000).map(|i| format!("87{i:08}")).collect();
    let over: Vec<String> = (0..5_001).map(|i| format!("72{i:08}")).collect();
    let origins: Vec<String> = vec!["CHN".into(); 301];
    let created = app.create(pb::TariffMeasure { hs_codes: codes.clone(), ..measure("FULL", Surtax, &[], "1") }).await;
    assert_eq!(created.hs_codes.len(), 5_000);
    let got = app.client.clone().get_measure(pb::GetMeasureRequest { id: created.id.clone() }).await.unwrap();
    assert_eq!(got.into_inner().measure.unwrap().hs_codes, codes);

    let refused = app
        .client
        .clone()
        .create_measure(create(pb::TariffMeasure {
            hs_codes: over.clone(),
            excluded_hs_codes: over.clone(),
            target_economies: origins,
            ..measure("OVER", Surtax, &[], "1")
        }))
        .await;
    assert_invalid(refused, &["measure.target_economies", "measure.hs_codes", "measure.excluded_hs_codes"]);

    // An update replaces all 5,000 codes in chunks; one more is refused
    // before the transaction.
    let replaced: Vec<String> = (0..5_000).map(|i| format!("72{i:08}")).collect();
    let update = |codes: Vec<String>| pb::UpdateMeasureRequest {
        measure: Some(pb::TariffMeasure { id: created.id.clone(), hs_codes: codes, ..Default::default() }),
        update_mask: Some(prost_types::FieldMask { paths: vec!["hs_codes".into()] }),
    };
    let updated = app.client.clone().update_measure(update(replaced.clone())).await.unwrap().into_inner();
    assert_eq!(updated.measure.unwrap().hs_codes, replaced);
    assert_invalid(app.client.clone().update_measure(update(over)).await, &["measure.hs_codes"]);
    assert_eq!(count_measures(&app).await, 1);
}

#[tokio::test]
async fn huge_and_over_precise_decimals_are_invalid_never_rounded() {
    let app = spawn_app().await;
    let max = "79228162514264337593543950335";
    for (rate, ok) in [
        (max, false),
        ("100000.000001", false),
        ("0.0000001", false),
        (&format!("0.{}1", "0".repeat(40)), false),
        ("100000", true),
        ("0.000001", true),
    ] {
        let m = measure(&format!("RATE-{}", rate.len()), Surtax, &["8703"], rate);
        let result = app.client.clone().create_measure(create(m)).await;
        if ok {
            assert_eq!(result.unwrap().into_inner().measure.unwrap().ad_valorem_percent, rate);
        } else {
            assert_invalid(result, &["measure.ad_valorem_percent"]);
        }
    }
    let duty = pb::TariffMeasure {
        specific_duty: Some(pb::SpecificDuty { amount: money("CAD", "1000000000000000.00001"), unit: "kg".into() }),
        quota: Some(pb::Quota {
            quantity: "1000000000001".into(),
            unit: "t".into(),
            period_start: "2026-01-01".into(),
            period_end: "2026-12-31".into(),
            used: String::new(),
        }),
        ..measure("TRQ", TariffRateQuota, &["8703"], "1")
    };
    assert_invalid(
        app.client.clone().create_measure(create(duty)).await,
        &["measure.specific_duty.amount.amount", "measure.quota.quantity"],
    );

    app.create(measure("MFN", Mfn, &["8704"], "6.1")).await;
    let resolve = |value: &str, quantity: &str| pb::ResolveDutyRequest {
        importing_economy: "CAN".into(),
        origin_economy: "CHN".into(),
        hs_code: "870410".into(),
        imported_on: "2026-06-01".into(),
        customs_value: money("CAD", value),
        quantity: quantity.into(),
        assume: vec![],
    };
    assert_invalid(app.client.clone().resolve_duty(resolve(max, "")).await, &["customs_value.amount"]);
    assert_invalid(app.client.clone().resolve_duty(resolve("10", "0.00001")).await, &["quantity"]);
    let biggest = app.client.clone().resolve_duty(resolve("1000000000000000", "1000000000000")).await.unwrap();
    assert_eq!(biggest.into_inner().total_duty.unwrap().amount, "61000000000000.00");
}

#[tokio::test]
async fn control_characters_are_refused_in_every_text() {
    let app = spawn_app().await;
    let m = pb::TariffMeasure {
        title: "Surtax\u{0}".into(),
        note: "reads \u{202e}backwards".into(),
        specific_duty: Some(pb::SpecificDuty { amount: money("CAD", "1"), unit: "k\u{7}g".into() }),
        ..measure("CTRL", Surtax, &["8703"], "1")
    };
    assert_invalid(
        app.client.clone().create_measure(create(m)).await,
        &["measure.title", "measure.specific_duty.unit", "measure.note"],
    );
    let fine = app.create(measure("FINE", Surtax, &["8703"], "1")).await;
    let status = app
        .client
        .clone()
        .set_measure_status(pb::SetMeasureStatusRequest {
            id: fine.id.clone(),
            status: pb::MeasureStatus::Suspended.into(),
            note: "bell\u{7}".into(),
            ..Default::default()
        })
        .await;
    assert_invalid(status, &["note"]);
    assert_eq!(count_measures(&app).await, 1);
}

#[tokio::test]
async fn errors_quote_at_most_sixty_four_characters_and_list_at_most_a_hundred_fields() {
    let app = spawn_app().await;
    let huge = "8".repeat(1_000_001);
    let err = app
        .client
        .clone()
        .create_measure(create(pb::TariffMeasure { hs_codes: vec![huge], ..measure("ECHO", Mfn, &[], "1") }))
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&err), ["measure.hs_codes[0]"]);
    assert!(err.message().len() < 300, "{} bytes", err.message().len());
    assert!(err.details().len() < 1_000, "{} bytes of details", err.details().len());

    let bad: Vec<String> = (0..1_000).map(|i| format!("x{i}")).collect();
    let err = app
        .client
        .clone()
        .create_measure(create(pb::TariffMeasure { hs_codes: bad, ..measure("MANY", Mfn, &[], "1") }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let fields = bad_fields(&err);
    assert_eq!(fields.len(), 100);
    assert_eq!(fields[99], "measure.hs_codes[99]");
    assert!(err.message().ends_with("…and 995 more"), "{}", err.message());
    assert_eq!(error_info(&err).1.get("omitted_violations").map(String::as_str), Some("900"));
}

#[tokio::test]
async fn an_absurd_grpc_timeout_is_ignored_not_a_panic() {
    let app = spawn_app().await;
    for (i, timeout) in ["18446744073709551615S", "99999999H", "123456789m", "-5S", "soon"].into_iter().enumerate() {
        let mut request = Request::new(create(measure(&format!("T{i}"), Mfn, &["8703"], "1")));
        request.metadata_mut().insert("grpc-timeout", timeout.parse().unwrap());
        let created = app.client.clone().create_measure(request).await;
        assert!(created.is_ok(), "{timeout}: {created:?}");
    }
}

#[tokio::test]
async fn a_page_too_large_for_one_message_is_cut_short_and_continued() {
    let app = spawn_app_with(|s| s.server.max_message_bytes = 64 * 1024).await;
    let mut ids = Vec::new();
    for n in 0..6 {
        let codes: Vec<String> = (0..1_500).map(|i| format!("{}{i:08}", 10 + n)).collect();
        ids.push(
            app.create(pb::TariffMeasure { hs_codes: codes, ..measure(&format!("BIG-{n}"), Mfn, &[], "1") }).await.id,
        );
    }
    let first = app.list(pb::ListMeasuresRequest { page_size: 500, ..Default::default() }).await.unwrap();
    assert!((1..6).contains(&first.measures.len()), "{} measures", first.measures.len());
    assert!(!first.next_page_token.is_empty(), "continued by a token");
    let all: Vec<String> = app
        .list_all(pb::ListMeasuresRequest { page_size: 500, ..Default::default() })
        .await
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(all, ids, "every measure once, in order");

    let batch = app.client.clone().batch_get_measures(pb::BatchGetMeasuresRequest { ids }).await;
    let status = assert_code(batch, Code::OutOfRange);
    assert_eq!(reason(&status), "RESPONSE_TOO_LARGE");
}

/// Measures written straight into the database, many at a time: what
/// twenty thousand API calls would leave behind.
async fn bulk_measures(db: &DatabaseConnection, importer: &str, n: usize, effective_to: Option<chrono::NaiveDate>) {
    let now = tradewatch_common::now();
    let day = chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
    let mut measures = Vec::new();
    let mut codes = Vec::new();
    let mut changes = Vec::new();
    for i in 0..n {
        let id = uuid::Uuid::now_v7();
        measures.push(measure_row::ActiveModel {
            id: Set(id),
            reference: Set(format!("BULK-{importer}-{i}")),
            title: Set(format!("bulk {i}")),
            imposing_economy: Set(importer.into()),
            target_economies: Set(String::new()),
            kind: Set("SURTAX".into()),
            hs_codes: Set("87,8703,870380".into()),
            excluded_hs_codes: Set(String::new()),
            ad_valorem_percent: Set("1".into()),
            specific_amount: Set(None),
            specific_currency: Set(None),
            specific_unit: Set(None),
            announced_on: Set(None),
            effective_from: Set(day),
            effective_to: Set(effective_to),
            quota_quantity: Set(None),
            quota_unit: Set(None),
            quota_period_start: Set(None),
            quota_period_end: Set(None),
            quota_used: Set(None),
            source_url: Set(String::new()),
            notes: Set(String::new()),
            version: Set(1),
            create_time: Set(now),
            update_time: Set(now),
            create_actor: Set("test".into()),
            update_actor: Set("test".into()),
        });
        for code in ["87", "8703", "870380"] {
            codes.push(measure_code::ActiveModel { measure_id: Set(id), hs_code: Set(code.into()) });
        }
        changes.push(status_change::ActiveModel {
            id: Set(uuid::Uuid::now_v7()),
            measure_id: Set(id),
            status: Set("IN_FORCE".into()),
            effective_on: Set(day),
            reason: Set("created".into()),
            change_time: Set(now),
            actor: Set("test".into()),
        });
    }
    // Each with its change on the feed, as every writer of measures appends
    // one: the schedule in memory learns of them from it.
    let feed: Vec<pb::MeasureChange> = measures
        .iter()
        .map(|m| pb::MeasureChange {
            measure: Some(pb::TariffMeasure { id: m.id.clone().unwrap().to_string(), ..Default::default() }),
            kind: pb::MeasureChangeKind::Created.into(),
            ..Default::default()
        })
        .collect();
    let txn = db.begin().await.unwrap();
    tradewatch_common::db::insert_chunked(&txn, measures).await.unwrap();
    tradewatch_common::db::insert_chunked(&txn, codes).await.unwrap();
    tradewatch_common::db::insert_chunked(&txn, changes).await.unwrap();
    tradewatch_common::feed::append_all(&txn, tariff_service::store::FEED_TOPIC, now, &feed).await.unwrap();
    txn.commit().await.unwrap();
}

#[tokio::test]
async fn twenty_thousand_measures_on_one_importer_cost_bounded_work() {
    let app = spawn_app().await;
    bulk_measures(&app.db, "CAN", 20_000, None).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let watcher = tokio::spawn(health_keeps_answering(app.addr, stopped));

    let resolve = app
        .client
        .clone()
        .resolve_duty(pb::ResolveDutyRequest {
            importing_economy: "CAN".into(),
            origin_economy: "CHN".into(),
            hs_code: "87038000".into(),
            imported_on: "2026-06-01".into(),
            customs_value: money("CAD", "1000"),
            quantity: String::new(),
            assume: vec![],
        })
        .await;
    let status = assert_code(resolve, Code::FailedPrecondition);
    assert_eq!(reason(&status), "TOO_MANY_MEASURES");

    let status_filter = |status: pb::MeasureStatus| pb::ListMeasuresRequest {
        imposing_economy: "CAN".into(),
        status: status.into(),
        page_size: 1,
        ..Default::default()
    };
    let in_force = app.list(status_filter(pb::MeasureStatus::InForce)).await.unwrap();
    assert_eq!(in_force.measures.len(), 1);
    assert!(!in_force.next_page_token.is_empty());
    let suspended = app.list(status_filter(pb::MeasureStatus::Suspended)).await.unwrap();
    assert!(suspended.measures.is_empty() && suspended.next_page_token.is_empty());
    let before = app
        .list(pb::ListMeasuresRequest { in_force_on: "2023-06-01".into(), page_size: 1, ..Default::default() })
        .await
        .unwrap();
    assert!(before.measures.is_empty());
    stop.send(true).unwrap();
    assert!(watcher.await.unwrap() >= 2);

    // Another importer's line still resolves, however many of its measures
    // ended before the day.
    bulk_measures(&app.db, "USA", 1_500, chrono::NaiveDate::from_ymd_opt(2024, 12, 31)).await;
    app.create(pb::TariffMeasure { imposing_economy: "USA".into(), ..measure("US-MFN", Mfn, &["8703"], "2.5") }).await;
    let us = app
        .client
        .clone()
        .resolve_duty(pb::ResolveDutyRequest {
            importing_economy: "USA".into(),
            origin_economy: "CHN".into(),
            hs_code: "87038000".into(),
            imported_on: "2026-06-01".into(),
            customs_value: money("USD", "1000"),
            quantity: String::new(),
            assume: vec![],
        })
        .await
        .unwrap();
    assert_eq!(us.into_inner().total_duty.unwrap().amount, "25.00");
}

/// Holds the lock a write of `measure_id` needs, from a connection of the
/// test's own: the row on PostgreSQL, the database's write lock on SQLite.
async fn hold_lock(app: &TestApp, measure_id: &str) -> tradewatch_common::db::Write {
    let conn = Database::connect(&app.url).await.unwrap();
    // On SQLite, BEGIN IMMEDIATE takes the write lock at once.
    let txn = tradewatch_common::db::begin_write(&conn).await.unwrap();
    if app.url.starts_with("postgres") {
        txn.execute_unprepared(&format!("SELECT id FROM measures WHERE id = '{measure_id}' FOR UPDATE")).await.unwrap();
    }
    txn
}

fn retitle(id: &str, title: &str) -> pb::UpdateMeasureRequest {
    pb::UpdateMeasureRequest {
        measure: Some(pb::TariffMeasure { id: id.into(), title: title.into(), ..Default::default() }),
        update_mask: Some(prost_types::FieldMask { paths: vec!["title".into()] }),
    }
}

#[tokio::test]
async fn a_held_lock_times_out_as_a_retryable_status_within_the_lock_timeout() {
    let app = spawn_app_with(|s| s.database.lock_timeout_ms = 500).await;
    let m = app.create(measure("LOCKED", Mfn, &["8703"], "1")).await;
    let lock = hold_lock(&app, &m.id).await;
    let started = Instant::now();
    let result = app.client.clone().update_measure(retitle(&m.id, "changed")).await;
    let waited = started.elapsed();
    let status = result.unwrap_err();
    if app.url.starts_with("postgres") {
        assert_eq!((status.code(), reason(&status).as_str()), (Code::Aborted, "LOCK_TIMEOUT"), "{status:?}");
    } else {
        assert_eq!((status.code(), reason(&status).as_str()), (Code::Unavailable, "DATABASE_BUSY"), "{status:?}");
    }
    assert!(waited < Duration::from_millis(500 + 2_500), "waited {waited:?}");
    lock.rollback().await.unwrap();
    let after = app.client.clone().update_measure(retitle(&m.id, "changed")).await.unwrap().into_inner();
    assert_eq!(after.measure.unwrap().title, "changed", "a retry goes through once the lock is gone");
}

#[tokio::test]
async fn a_call_past_the_server_deadline_is_deadline_exceeded_and_keeps_nothing() {
    let app = spawn_app_with(|s| {
        s.server.request_timeout_ms = 300;
        s.database.lock_timeout_ms = 5_000;
    })
    .await;
    let m = app.create(measure("SLOW", Mfn, &["8703"], "1")).await;
    let lock = hold_lock(&app, &m.id).await;
    let status = app.client.clone().update_measure(retitle(&m.id, "late")).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    lock.rollback().await.unwrap();
    let got = app.client.clone().get_measure(pb::GetMeasureRequest { id: m.id.clone() }).await.unwrap();
    let got = got.into_inner().measure.unwrap();
    assert_eq!((got.title.as_str(), got.etag.as_str()), (m.title.as_str(), m.etag.as_str()), "nothing was kept");
}

#[tokio::test]
async fn calls_past_the_in_flight_limit_are_overloaded_while_health_stays_serving() {
    const LIMIT: usize = 4;
    const CALLS: usize = 40;
    let app = spawn_app_with(|s| {
        s.server.max_in_flight = LIMIT;
        s.database.lock_timeout_ms = 10_000;
        s.server.request_timeout_ms = 10_000;
    })
    .await;
    let m = app.create(measure("BUSY", Mfn, &["8703"], "1")).await;
    let lock = hold_lock(&app, &m.id).await;
    let calls: Vec<_> = (0..CALLS)
        .map(|i| {
            let (mut client, id) = (app.client.clone(), m.id.clone());
            tokio::spawn(async move { client.update_measure(retitle(&id, &format!("title {i}"))).await })
        })
        .collect();
    // The shed calls answer at once; the admitted ones wait on the lock.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut health = HealthClient::new(channel(app.addr).await);
    for service in ["", SERVICE] {
        let check = health.check(HealthCheckRequest { service: service.into() });
        let status = tokio::time::timeout(Duration::from_secs(1), check).await.unwrap().unwrap().into_inner();
        assert_eq!(status.status(), ServingStatus::Serving);
    }
    lock.rollback().await.unwrap();
    let (mut ok, mut overloaded) = (0, 0);
    for call in calls {
        match call.await.unwrap() {
            Ok(_) => ok += 1,
            Err(status) => {
                assert_eq!((status.code(), reason(&status).as_str()), (Code::Unavailable, "OVERLOADED"), "{status:?}");
                overloaded += 1;
            }
        }
    }
    assert_eq!((ok, overloaded), (LIMIT, CALLS - LIMIT));
}

#[tokio::test]
async fn database_conditions_map_to_retryable_codes_on_each_backend() {
    let app = spawn_app().await;
    let conn = Database::connect(&app.url).await.unwrap();
    let (sql, code, reason) = if app.url.starts_with("postgres") {
        // A statement past the statement timeout: SQLSTATE 57014, all digits.
        ("SET statement_timeout = 50; SELECT pg_sleep(2)", Code::Unavailable, "DATABASE_TIMEOUT")
    } else {
        ("SELECT * FROM no_such_table", Code::Internal, "INTERNAL")
    };
    let err = conn.execute_unprepared(sql).await.unwrap_err();
    let err = tradewatch_common::Error::from(err);
    assert_eq!((err.code(), err.reason()), (code, reason), "{err:?}");
    if app.url.starts_with("postgres") {
        // A bad statement is a bug, not a condition to retry, even though its
        // SQLSTATE (42P01) is not all letters.
        let err = conn.execute_unprepared("SELECT * FROM no_such_table").await.unwrap_err();
        assert_eq!(tradewatch_common::Error::from(err).code(), Code::Internal);
        let err = conn.execute_unprepared("SELECT 1/0").await.unwrap_err();
        assert_eq!(tradewatch_common::Error::from(err).code(), Code::Internal, "22012 is no lock");
    }
}
