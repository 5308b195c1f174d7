//! WatchMeasures: every change kind, filters, resume tokens (after a
//! disconnect, a restart, on another replica), expiry, heartbeats, the caps
//! on slow and surplus watchers, shutdown, and commit order under
//! concurrent writers.

use std::{collections::HashSet, time::Duration};

use pb::MeasureKind::*;
use prost_types::FieldMask;
use tonic::Code;
use tradewatch_common::proto::tariff as pb;

use crate::helpers::*;

type Watch = tonic::Streaming<pb::WatchMeasuresResponse>;

async fn watch(client: &Client, req: pb::WatchMeasuresRequest) -> Result<Watch, tonic::Status> {
    client.clone().watch_measures(req).await.map(tonic::Response::into_inner)
}

fn after(token: &str) -> pb::WatchMeasuresRequest {
    pb::WatchMeasuresRequest { start_after: token.into(), ..Default::default() }
}

/// The next change (heartbeats skipped) and its resume token.
async fn next_change(w: &mut Watch) -> (String, pb::MeasureChange) {
    loop {
        let response = tokio::time::timeout(Duration::from_secs(10), w.message())
            .await
            .expect("a change within 10 s")
            .expect("the stream goes on")
            .expect("the stream is open");
        assert!(!response.resume_token.is_empty(), "every response carries a resume token");
        if let Some(change) = response.change {
            return (response.resume_token, change);
        }
    }
}

/// The stream's next message is this error.
async fn next_error(w: &mut Watch) -> tonic::Status {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), w.message()).await.expect("an answer within 10 s") {
            Ok(Some(_)) => {}
            Ok(None) => panic!("the stream ended without an error"),
            Err(status) => return status,
        }
    }
}

fn kind(change: &pb::MeasureChange) -> pb::MeasureChangeKind {
    change.kind()
}

#[tokio::test]
async fn every_kind_of_change_arrives_in_order_with_the_measure_after_it() {
    let app = spawn_app().await;
    let mut client = app.client.clone();
    let mut w = watch(&client, after("")).await.unwrap();

    let trq = app
        .create(quota(against(measure("CAN-TRQ-EV-2026", TariffRateQuota, &["870380"], "6.1"), &["CHN"]), "49000"))
        .await;
    let mut patch = trq.clone();
    patch.title = "Canada's quota of Chinese-made EVs at 6.1 %".into();
    client
        .update_measure(pb::UpdateMeasureRequest {
            measure: Some(patch),
            update_mask: Some(FieldMask { paths: vec!["title".into()] }),
        })
        .await
        .unwrap();
    client
        .set_measure_status(pb::SetMeasureStatusRequest {
            id: trq.id.clone(),
            status: pb::MeasureStatus::Suspended.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    client
        .record_quota_usage(pb::RecordQuotaUsageRequest {
            id: trq.id.clone(),
            quantity: "120".into(),
            request_id: String::new(),
        })
        .await
        .unwrap();

    let mut tokens = HashSet::new();
    let expected = [
        pb::MeasureChangeKind::Created,
        pb::MeasureChangeKind::Updated,
        pb::MeasureChangeKind::StatusChanged,
        pb::MeasureChangeKind::QuotaUsed,
    ];
    let mut changes = Vec::new();
    for want in expected {
        let (token, change) = next_change(&mut w).await;
        assert_eq!(kind(&change), want, "{change:?}");
        assert!(tokens.insert(token), "each change has its own token");
        assert_eq!(change.actor, "anonymous");
        assert!(change.change_time.is_some());
        changes.push(change.measure.unwrap());
    }
    assert!(changes.iter().all(|m| m.id == trq.id));
    assert_eq!(changes[0].title, trq.title);
    assert_eq!(changes[1].title, "Canada's quota of Chinese-made EVs at 6.1 %");
    assert_eq!(changes[2].status(), pb::MeasureStatus::Suspended);
    assert_eq!(changes[3].quota.as_ref().unwrap().used, "120");
    assert_ne!(changes[2].etag, changes[3].etag, "the measure as it stood after each change");
}

#[tokio::test]
async fn filters_keep_only_the_measures_they_name() {
    let app = spawn_app().await;
    let client = app.client.clone();
    let canola = pb::WatchMeasuresRequest {
        imposing_economy: "CHN".into(),
        target_economy: "CAN".into(),
        hs_code: "1205.10".into(),
        kind: AntiDumping.into(),
        ..Default::default()
    };
    let mut w = watch(&client, canola).await.unwrap();
    let mut by_origin =
        watch(&client, pb::WatchMeasuresRequest { target_economy: "CHN".into(), ..Default::default() }).await.unwrap();

    // Each misses one filter of the first watcher.
    let mut chn = measure("CHN-AD-CANOLA-USA", AntiDumping, &["1205"], "75.8");
    chn.imposing_economy = "CHN".into();
    app.create(against(chn.clone(), &["USA"])).await;
    let mut other_code = chn.clone();
    other_code.reference = "CHN-AD-PEAS".into();
    other_code.hs_codes = vec!["0713".into()];
    app.create(against(other_code, &["CAN"])).await;
    let mut other_kind = chn.clone();
    other_kind.reference = "CHN-SURTAX-CANOLA".into();
    other_kind.kind = Surtax.into();
    app.create(against(other_kind, &["CAN"])).await;
    app.create(against(measure("CAN-SURTAX-STEEL", Surtax, &["72"], "25"), &["CHN"])).await;
    // Matches: an origin list that names CAN, a code under the prefix 1205.
    let mut canola_duty = chn.clone();
    canola_duty.reference = "MOFCOM-2025-AD-CANOLA".into();
    let canola_duty = app.create(against(canola_duty, &["CAN", "AUS"])).await;

    let (_, change) = next_change(&mut w).await;
    assert_eq!(change.measure.unwrap().id, canola_duty.id, "the first change that passes every filter");
    // Target economy: those naming CHN, and none other.
    let (_, change) = next_change(&mut by_origin).await;
    assert_eq!(change.measure.unwrap().reference, "CAN-SURTAX-STEEL");

    assert_invalid(
        watch(
            &client,
            pb::WatchMeasuresRequest { hs_code: "12x".into(), imposing_economy: "china".into(), ..Default::default() },
        )
        .await,
        &["imposing_economy", "hs_code"],
    );
}

#[tokio::test]
async fn a_resume_token_continues_exactly_after_its_change_after_a_disconnect_and_a_restart() {
    let app = spawn_app().await;
    let mut w = watch(&app.client, after("")).await.unwrap();
    let first = app.create(measure("MFN-1", Mfn, &["8703"], "6.1")).await;
    let (token, change) = next_change(&mut w).await;
    assert_eq!(change.measure.unwrap().id, first.id);
    drop(w);

    let second = app.create(measure("MFN-2", Mfn, &["8704"], "6.1")).await;
    let mut w = watch(&app.client, after(&token)).await.unwrap();
    let (token, change) = next_change(&mut w).await;
    assert_eq!(change.measure.unwrap().id, second.id, "nothing skipped, nothing repeated");
    drop(w);

    let app = app.restart().await;
    let third = app.create(measure("MFN-3", Mfn, &["8705"], "6.1")).await;
    let mut w = watch(&app.client, after(&token)).await.unwrap();
    let (_, change) = next_change(&mut w).await;
    assert_eq!(change.measure.unwrap().id, third.id, "the token outlives the process");
}

#[tokio::test]
async fn another_replica_streams_what_one_wrote_and_continues_its_tokens() {
    let app = spawn_app().await;
    let (replica, other) = app.replica().await;
    // Live: written through one, seen by a watcher of the other.
    let mut w = watch(&other, after("")).await.unwrap();
    let first = app.create(measure("CAN-SURTAX-AL", Surtax, &["76"], "25")).await;
    let (token, change) = next_change(&mut w).await;
    assert_eq!(change.measure.unwrap().id, first.id);
    // Resumed: a token of one replica's stream continues on the other's.
    let second = app.create(measure("CAN-SURTAX-STEEL", Surtax, &["72"], "25")).await;
    let mut w = watch(&app.client, after(&token)).await.unwrap();
    let (_, change) = next_change(&mut w).await;
    assert_eq!(change.measure.unwrap().id, second.id);
    replica.stop().await.unwrap();
}

#[tokio::test]
async fn tokens_past_retention_are_out_of_range_and_made_up_ones_invalid() {
    let app = spawn_app().await;
    let mut w = watch(&app.client, after("")).await.unwrap();
    app.create(measure("MFN-1", Mfn, &["8703"], "6.1")).await;
    app.create(measure("MFN-2", Mfn, &["8704"], "6.1")).await;
    let (old, _) = next_change(&mut w).await;
    let (newest, _) = next_change(&mut w).await;
    // Every change is past a retention of zero.
    let removed = tradewatch_common::feed::prune(&app.db, Duration::ZERO).await.unwrap();
    assert_eq!(removed, 2);
    let status = assert_code(watch(&app.client, after(&old)).await, Code::OutOfRange);
    assert_eq!(reason(&status), "RESUME_TOKEN_EXPIRED");
    // The newest token lost nothing: it still continues.
    let mut w = watch(&app.client, after(&newest)).await.unwrap();
    let third = app.create(measure("MFN-3", Mfn, &["8705"], "6.1")).await;
    assert_eq!(next_change(&mut w).await.1.measure.unwrap().id, third.id);

    assert_invalid(watch(&app.client, after("not-a-token")).await, &["start_after"]);
    let of_disputes = tradewatch_common::feed::Position(1).token("dispute");
    assert_invalid(watch(&app.client, after(&of_disputes)).await, &["start_after"]);
    let future = tradewatch_common::feed::Position(1_000_000).token("tariff");
    assert_invalid(watch(&app.client, after(&future)).await, &["start_after"]);
}

#[tokio::test]
async fn an_idle_stream_gets_heartbeats_whose_token_resumes() {
    let app = spawn_app_with(|s| s.feed.heartbeat_secs = 1).await;
    // A change the watcher's filter drops still moves its position on.
    let mut w = watch(&app.client, pb::WatchMeasuresRequest { imposing_economy: "CHN".into(), ..Default::default() })
        .await
        .unwrap();
    app.create(measure("MFN-1", Mfn, &["8703"], "6.1")).await;
    let beat = tokio::time::timeout(Duration::from_secs(5), w.message()).await.unwrap().unwrap().unwrap();
    assert!(beat.change.is_none(), "{beat:?}");
    let second = app.create(measure("MFN-2", Mfn, &["8704"], "6.1")).await;
    let mut w = watch(&app.client, after(&beat.resume_token)).await.unwrap();
    assert_eq!(next_change(&mut w).await.1.measure.unwrap().id, second.id, "the heartbeat's token continues");
}

#[tokio::test]
async fn a_watcher_that_stops_reading_is_cut_off_and_resumes_from_its_last_token() {
    const MEASURES: usize = 300;
    let app = spawn_app_with(|s| s.feed.buffer = 8).await;
    // A caller with the smallest HTTP/2 windows, on a connection of its own,
    // and large changes: the windows fill, then the server's send buffer,
    // then what the watcher holds for it.
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(65_535);
    let slow = pb::tariff_service_client::TariffServiceClient::new(endpoint.connect().await.unwrap());
    let mut w = watch(&slow, after("")).await.unwrap();
    let codes: Vec<String> = (0..150).map(|i| format!("8703{:06}", i * 2)).collect();
    let mut ids = Vec::new();
    for i in 0..MEASURES {
        let mut m = measure(&format!("MFN-{i:03}"), Mfn, &["8703"], "6.1");
        m.hs_codes = codes.clone();
        m.note = "n".repeat(1_900);
        ids.push(app.create(m).await.id);
    }
    // Not a byte read for longer than the server waits for room.
    tokio::time::sleep(tradewatch_common::feed::STALL + Duration::from_secs(1)).await;
    let mut seen = Vec::new();
    let mut last = String::new();
    let status = loop {
        match tokio::time::timeout(Duration::from_secs(10), w.message()).await.unwrap() {
            Ok(Some(r)) => {
                if let Some(c) = r.change {
                    seen.push(c.measure.unwrap().id);
                }
                last = r.resume_token;
            }
            Ok(None) => panic!("ended without an error after {} changes", seen.len()),
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(reason(&status), "WATCHER_TOO_SLOW");
    assert!(seen.len() < MEASURES, "cut off before the end");
    let mut w = watch(&app.client, after(&last)).await.unwrap();
    while seen.len() < MEASURES {
        seen.push(next_change(&mut w).await.1.measure.unwrap().id);
    }
    assert_eq!(seen, ids, "every change once, in order, across the cut");
}

#[tokio::test]
async fn watchers_past_the_cap_are_refused_until_one_ends() {
    let app = spawn_app_with(|s| s.feed.max_watchers = 1).await;
    let w = watch(&app.client, after("")).await.unwrap();
    let status = assert_code(watch(&app.client, after("")).await, Code::ResourceExhausted);
    assert_eq!(reason(&status), "TOO_MANY_WATCHERS");
    drop(w);
    let mut admitted = false;
    for _ in 0..50 {
        if watch(&app.client, after("")).await.is_ok() {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(admitted, "the slot of a watcher gone is freed");
}

#[tokio::test]
async fn shutdown_ends_the_watchers_and_does_not_wait_for_them() {
    let app = spawn_app().await;
    let mut w = watch(&app.client, after("")).await.unwrap();
    let started = std::time::Instant::now();
    app.stop().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(4), "the drain waited {:?}", started.elapsed());
    let status = next_error(&mut w).await;
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_reach_a_watcher_each_change_exactly_once_in_one_order() {
    const WRITERS: usize = 8;
    const EACH: usize = 25;
    let app = spawn_app().await;
    let mut w = watch(&app.client, after("")).await.unwrap();
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let client = app.client.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in 0..EACH {
                    let m = measure(&format!("W{writer}-{i:02}"), Mfn, &["8703"], "6.1");
                    let created = client
                        .clone()
                        .create_measure(pb::CreateMeasureRequest { measure: Some(m), request_id: String::new() })
                        .await
                        .unwrap();
                    ids.push(created.into_inner().measure.unwrap().id);
                }
                ids
            })
        })
        .collect();
    let mut written = HashSet::new();
    for writer in writers {
        written.extend(writer.await.unwrap());
    }
    let mut seen = Vec::new();
    let mut tokens = Vec::new();
    while seen.len() < WRITERS * EACH {
        let (token, change) = next_change(&mut w).await;
        seen.push(change.measure.unwrap().id);
        tokens.push(token);
    }
    assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), written, "every change, none twice");
    // Another watcher from the first token sees the rest in the same order.
    let mut again = watch(&app.client, after(&tokens[0])).await.unwrap();
    for id in &seen[1..] {
        assert_eq!(&next_change(&mut again).await.1.measure.unwrap().id, id);
    }
}
