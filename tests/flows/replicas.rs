//! Several replicas of a service on one database: every effect of a
//! fulfilled commitment is delivered by exactly one dialogue replica.

use std::time::Duration;

use dialogue_service::relay::RelayOptions;
use tradewatch_common::{
    proto::{
        dialogue::{self as gpb, dialogue_service_client::DialogueServiceClient},
        tariff::{self as tpb, tariff_service_client::TariffServiceClient},
    },
    testing::{self, TestDatabase},
};

use crate::observability::{sample, scrape};

const EFFECTS: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_on_one_outbox_deliver_each_effect_exactly_once() {
    let (tariff_db, dialogue_db) = (TestDatabase::new().await.unwrap(), TestDatabase::new().await.unwrap());
    let tariff_settings = tariff_db.settings(tariff_service::SERVICE);
    let t1 = testing::spawn(tariff_settings.clone(), tariff_service::app::Application::build).await.unwrap();
    let t2 = testing::spawn(tariff_settings, tariff_service::app::Application::build).await.unwrap();
    let relay = RelayOptions {
        poll: Duration::from_millis(50),
        backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(500),
        lease: Duration::from_secs(10),
        per_peer: 4,
        crash_after_delivery: None,
    };
    let mut replicas = Vec::new();
    for tariff in [&t1, &t2] {
        let mut settings = dialogue_db.settings(dialogue_service::SERVICE);
        settings.peers.tariff_url = tariff.url();
        let relay = relay.clone();
        replicas.push(
            testing::spawn(settings, move |s| dialogue_service::app::Application::build_with(s, relay.clone()))
                .await
                .unwrap(),
        );
    }

    let mut tariff = TariffServiceClient::new(testing::channel(t1.addr).await.unwrap());
    let mut measures = Vec::new();
    for i in 0..EFFECTS {
        let m = tpb::TariffMeasure {
            reference: format!("SURTAX-{i:03}"),
            title: "A surtax to suspend".into(),
            imposing_economy: "CAN".into(),
            kind: tpb::MeasureKind::Surtax.into(),
            hs_codes: vec!["72".into()],
            ad_valorem_percent: "25".into(),
            effective_from: "2024-10-15".into(),
            ..Default::default()
        };
        let created =
            tariff.create_measure(tpb::CreateMeasureRequest { measure: Some(m), request_id: String::new() }).await;
        measures.push(created.unwrap().into_inner().measure.unwrap().id);
    }
    let mut clients = Vec::new();
    for replica in &replicas {
        clients.push(DialogueServiceClient::new(testing::channel(replica.addr).await.unwrap()));
    }
    let session = clients[0]
        .create_session(gpb::CreateSessionRequest {
            session: Some(tradewatch_e2e::ministerial_session()),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .session
        .unwrap();
    let mut commitments = Vec::new();
    for (i, measure) in measures.iter().enumerate() {
        let added = clients[i % 2]
            .add_commitment(gpb::AddCommitmentRequest {
                session_id: session.id.clone(),
                commitment: Some(gpb::Commitment {
                    description: format!("Suspend surtax {i}"),
                    owner_economies: vec!["CAN".into()],
                    measure_id: measure.clone(),
                    effect: gpb::CommitmentEffect::SuspendMeasure.into(),
                    effective_on: "2026-03-01".into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await;
        commitments.push(added.unwrap().into_inner().commitment.unwrap().id);
    }
    let started = std::time::Instant::now();
    for (i, id) in commitments.iter().enumerate() {
        clients[i % 2]
            .set_commitment_status(gpb::SetCommitmentStatusRequest {
                id: id.clone(),
                status: gpb::CommitmentStatus::Fulfilled.into(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    // Every effect settles: APPLIED, each once.
    let mut states = Vec::new();
    for _ in 0..300 {
        states.clear();
        for id in &commitments {
            let c = clients[0].get_commitment(gpb::GetCommitmentRequest { id: id.clone() }).await.unwrap().into_inner();
            states.push(c.commitment.unwrap().effect_state());
        }
        if states.iter().all(|s| *s != gpb::EffectState::Pending) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let settled_in = started.elapsed();
    assert!(states.iter().all(|s| *s == gpb::EffectState::Applied), "{states:?}");

    // Count the deliveries: the tariff replicas' SetMeasureStatus calls, and
    // each relay's own count.
    let delivered = r#"rpc_server_call_duration_seconds_count{rpc_method="tradewatch.tariff.v1.TariffService/SetMeasureStatus",rpc_response_status_code="OK"}"#;
    let mut calls = 0.0;
    for t in [&t1, &t2] {
        calls += sample(&scrape(t.metrics_addr.unwrap()).await, delivered).unwrap_or(0.0);
    }
    let mut per_replica = Vec::new();
    for replica in &replicas {
        let text = scrape(replica.metrics_addr.unwrap()).await;
        per_replica.push(sample(&text, r#"tradewatch_relay_deliveries_total{outcome="applied"}"#).unwrap_or(0.0));
        assert_eq!(sample(&text, "tradewatch_outbox_pending_effects"), Some(0.0), "{text}");
    }
    eprintln!(
        "{EFFECTS} effects, two relays: delivered {per_replica:?} per replica, {calls} SetMeasureStatus calls, all settled in {settled_in:?}"
    );
    assert_eq!(calls, EFFECTS as f64, "each effect reached the tariff service once");
    assert_eq!(per_replica.iter().sum::<f64>(), EFFECTS as f64, "each effect was delivered by one replica");
    for r in replicas {
        r.stop().await.unwrap();
    }
    t1.stop().await.unwrap();
    t2.stop().await.unwrap();
}
