//! Faults that must lose nothing: a peer that hangs, and a PostgreSQL
//! database whose connections are killed and which refuses connections for
//! a while, under a steady write load. Loopback only, bounded in time.

use std::time::{Duration, Instant};

use dialogue_service::relay::RelayOptions;
use tonic::Code;
use tradewatch_common::{
    proto::{
        dialogue::{self as gpb, dialogue_service_client::DialogueServiceClient},
        dispute::{self as dpb, dispute_service_client::DisputeServiceClient},
        tariff::{self as tpb, tariff_service_client::TariffServiceClient},
    },
    testing::{self, ServiceSlot},
};
use tradewatch_e2e::faults::Proxy;

fn surtax(reference: &str) -> tpb::CreateMeasureRequest {
    tpb::CreateMeasureRequest {
        measure: Some(tpb::TariffMeasure {
            reference: reference.into(),
            title: "A surtax".into(),
            imposing_economy: "CAN".into(),
            kind: tpb::MeasureKind::Surtax.into(),
            hs_codes: vec!["72".into()],
            ad_valorem_percent: "25".into(),
            effective_from: "2024-10-15".into(),
            ..Default::default()
        }),
        request_id: String::new(),
    }
}

fn fast_relay() -> RelayOptions {
    RelayOptions {
        poll: Duration::from_millis(50),
        backoff: Duration::from_millis(200),
        max_backoff: Duration::from_secs(1),
        lease: Duration::from_secs(10),
        per_peer: 4,
        crash_after_delivery: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_peer_costs_its_callers_a_deadline_and_holds_back_no_other_peer() {
    let mut tariff = ServiceSlot::new().await.unwrap();
    let settings = tariff.settings(tariff_service::SERVICE);
    tariff.start(settings, tariff_service::app::Application::build).await.unwrap();
    let mut dispute = ServiceSlot::new().await.unwrap();
    let mut settings = dispute.settings(dispute_service::SERVICE);
    settings.peers.tariff_url = tariff.url();
    dispute.start(settings, dispute_service::app::Application::build).await.unwrap();
    // The dialogue service reaches the tariff service through a proxy the test can hang.
    let proxy = Proxy::start(tariff.addr.unwrap()).await.unwrap();
    let mut dialogue = ServiceSlot::new().await.unwrap();
    let mut settings = dialogue.settings(dialogue_service::SERVICE);
    settings.peers.tariff_url = proxy.url();
    settings.peers.dispute_url = dispute.url();
    settings.peers.timeout_ms = 2_000;
    dialogue.start(settings, |s| dialogue_service::app::Application::build_with(s, fast_relay())).await.unwrap();

    let mut tariffs = TariffServiceClient::new(testing::channel(tariff.addr.unwrap()).await.unwrap());
    let mut measures = Vec::new();
    for i in 0..5 {
        measures
            .push(tariffs.create_measure(surtax(&format!("HUNG-{i}"))).await.unwrap().into_inner().measure.unwrap().id);
    }
    let case = DisputeServiceClient::new(testing::channel(dispute.addr.unwrap()).await.unwrap())
        .create_dispute(dpb::CreateDisputeRequest {
            dispute: Some(dpb::Dispute {
                reference: "WT/DS-SETTLE".into(),
                title: "A dispute the dialogue settles".into(),
                complainant: "CHN".into(),
                respondent: "CAN".into(),
                forum: dpb::DisputeForum::Wto.into(),
                opened_on: "2024-12-06".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .dispute
        .unwrap();
    let mut dialogues = DialogueServiceClient::new(testing::channel(dialogue.addr.unwrap()).await.unwrap());
    let session = dialogues
        .create_session(gpb::CreateSessionRequest {
            session: Some(tradewatch_e2e::ministerial_session()),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .session
        .unwrap();
    let commit = |c: gpb::Commitment| gpb::AddCommitmentRequest {
        session_id: session.id.clone(),
        commitment: Some(gpb::Commitment {
            owner_economies: vec!["CAN".into()],
            effective_on: "2026-03-01".into(),
            ..c
        }),
        request_id: String::new(),
    };
    let mut suspensions = Vec::new();
    for (i, measure) in measures.iter().enumerate() {
        let c = gpb::Commitment {
            description: format!("Suspend surtax {i}"),
            measure_id: measure.clone(),
            effect: gpb::CommitmentEffect::SuspendMeasure.into(),
            ..Default::default()
        };
        suspensions.push(dialogues.add_commitment(commit(c)).await.unwrap().into_inner().commitment.unwrap().id);
    }
    let settle = gpb::Commitment {
        description: "Settle the dispute".into(),
        dispute_id: case.id.clone(),
        effect: gpb::CommitmentEffect::SettleDispute.into(),
        ..Default::default()
    };
    let settle = dialogues.add_commitment(commit(settle)).await.unwrap().into_inner().commitment.unwrap().id;

    // The tariff service hangs: five suspensions queue towards it, then a settlement.
    proxy.hang(true);
    let fulfil = |id: String| gpb::SetCommitmentStatusRequest {
        id,
        status: gpb::CommitmentStatus::Fulfilled.into(),
        ..Default::default()
    };
    for id in &suspensions {
        dialogues.set_commitment_status(fulfil(id.clone())).await.unwrap();
    }
    let queued = Instant::now();
    dialogues.set_commitment_status(fulfil(settle.clone())).await.unwrap();
    let mut settled_after = None;
    for _ in 0..100 {
        let c = dialogues.get_commitment(gpb::GetCommitmentRequest { id: settle.clone() }).await.unwrap().into_inner();
        if c.commitment.unwrap().effect_state() == gpb::EffectState::Applied {
            settled_after = Some(queued.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let settled_after = settled_after.expect("the settlement is applied while the tariff service hangs");
    let pending = {
        let mut n = 0;
        for id in &suspensions {
            let c = dialogues.get_commitment(gpb::GetCommitmentRequest { id: id.clone() }).await.unwrap().into_inner();
            n += usize::from(c.commitment.unwrap().effect_state() == gpb::EffectState::Pending);
        }
        n
    };
    eprintln!(
        "hung peer: the settlement applied {settled_after:?} after it was queued behind 5 effects to the hung peer ({pending} still pending)"
    );
    assert!(settled_after < Duration::from_secs(2), "held back: {settled_after:?}");
    assert_eq!(pending, 5, "nothing reaches a hung peer");

    // A caller whose call needs the hung peer gets an answer within the peer deadline.
    let asked = Instant::now();
    let refused = dialogues
        .add_commitment(commit(gpb::Commitment {
            description: "Suspend again".into(),
            measure_id: measures[0].clone(),
            effect: gpb::CommitmentEffect::SuspendMeasure.into(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    let took = asked.elapsed();
    eprintln!("hung peer: a call needing it answered {:?} after {took:?}", refused.code());
    assert!(matches!(refused.code(), Code::Unavailable | Code::DeadlineExceeded), "{refused:?}");
    assert!(took < Duration::from_secs(4), "bounded by the 2 s peer deadline: {took:?}");

    // The peer comes back: the suspensions are delivered, each once.
    proxy.hang(false);
    for _ in 0..100 {
        let mut applied = 0;
        for id in &suspensions {
            let c = dialogues.get_commitment(gpb::GetCommitmentRequest { id: id.clone() }).await.unwrap().into_inner();
            applied += usize::from(c.commitment.unwrap().effect_state() == gpb::EffectState::Applied);
        }
        if applied == suspensions.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for id in &measures {
        let m =
            tariffs.get_measure(tpb::GetMeasureRequest { id: id.clone() }).await.unwrap().into_inner().measure.unwrap();
        assert_eq!(m.update_actor, "anonymous");
        let history = tariffs
            .list_measure_history(tpb::ListMeasureHistoryRequest { measure_id: id.clone(), ..Default::default() })
            .await
            .unwrap()
            .into_inner()
            .changes;
        assert_eq!(history.len(), 2, "created, then suspended once: {history:?}");
    }
    dialogue.stop().await.unwrap();
    dispute.stop().await.unwrap();
    tariff.stop().await.unwrap();
}

/// Runs `sql` on the PostgreSQL server of the test suite.
async fn admin(sql: &str) {
    use sea_orm::ConnectionTrait as _;
    let url = std::env::var(testing::TEST_DATABASE_URL).unwrap();
    let db = sea_orm::Database::connect(&url).await.unwrap();
    db.execute_unprepared(sql).await.unwrap();
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_going_away_is_unavailable_loses_no_acknowledged_write_and_recovers() {
    if std::env::var(testing::TEST_DATABASE_URL).is_err() {
        eprintln!("a PostgreSQL fault test: it runs with TRADEWATCH_TEST_DATABASE_URL set (make test in CI)");
        return;
    }
    let mut slot = ServiceSlot::new().await.unwrap();
    let database = slot.database_url().rsplit('/').next().unwrap().split('?').next().unwrap().to_owned();
    let settings = slot.settings(tariff_service::SERVICE);
    slot.start(settings, tariff_service::app::Application::build).await.unwrap();
    let channel = testing::channel(slot.addr.unwrap()).await.unwrap();

    // A steady write load, every acknowledged id kept.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (channel, stop) = (channel.clone(), stop.clone());
        tokio::spawn(async move {
            let mut client = TariffServiceClient::new(channel);
            let (mut acknowledged, mut refused) = (Vec::new(), std::collections::BTreeMap::<String, usize>::new());
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                i += 1;
                let mut request = tonic::Request::new(surtax(&format!("LOAD-{i:05}")));
                request.set_timeout(Duration::from_secs(5));
                match client.create_measure(request).await {
                    Ok(r) => acknowledged.push(r.into_inner().measure.unwrap().id),
                    Err(status) => *refused.entry(format!("{:?}", status.code())).or_default() += 1,
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (acknowledged, refused)
        })
    };
    let readiness = |channel: tonic::transport::Channel| async move {
        tonic_health::pb::health_client::HealthClient::new(channel)
            .check(tonic_health::pb::HealthCheckRequest { service: "tradewatch.tariff.v1.TariffService".into() })
            .await
            .map(|r| r.into_inner().status)
            .unwrap_or_default()
    };
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Every connection of the service killed at once.
    admin(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}' AND pid <> pg_backend_pid()"
    ))
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    // The database refuses connections for a while.
    admin(&format!("ALTER DATABASE \"{database}\" ALLOW_CONNECTIONS false")).await;
    admin(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}' AND pid <> pg_backend_pid()"
    ))
    .await;
    let down = Instant::now();
    let mut saw_not_serving = false;
    while down.elapsed() < Duration::from_secs(7) {
        saw_not_serving |= readiness(channel.clone()).await == 2;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    admin(&format!("ALTER DATABASE \"{database}\" ALLOW_CONNECTIONS true")).await;
    let back = Instant::now();
    let mut serving_after = None;
    while back.elapsed() < Duration::from_secs(15) {
        if readiness(channel.clone()).await == 1 {
            serving_after = Some(back.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (acknowledged, refused) = writer.await.unwrap();
    eprintln!(
        "postgres faults: {} writes acknowledged, refused {refused:?}; readiness NOT_SERVING seen: {saw_not_serving}; SERVING again {serving_after:?} after connections were allowed",
        acknowledged.len()
    );
    assert!(saw_not_serving, "readiness went NOT_SERVING while the database refused connections");
    assert!(serving_after.is_some(), "the service recovered without a restart");
    assert!(
        refused.keys().all(|code| code == "Unavailable" || code == "Aborted" || code == "DeadlineExceeded"),
        "{refused:?}"
    );
    assert!(refused.contains_key("Unavailable"), "calls during the outage were UNAVAILABLE: {refused:?}");
    let mut client = TariffServiceClient::new(channel);
    for id in &acknowledged {
        client
            .get_measure(tpb::GetMeasureRequest { id: id.clone() })
            .await
            .unwrap_or_else(|e| panic!("{id} lost: {e:?}"));
    }
    assert!(client.create_measure(surtax("AFTER")).await.is_ok(), "writes go through again");
    slot.stop().await.unwrap();
}

pub(crate) fn bin_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_BIN_EXE_tradewatch-demo")).parent().unwrap().to_owned()
}

async fn session(dialogues: &mut DialogueServiceClient<tonic::transport::Channel>, title: &str) -> String {
    dialogues
        .create_session(gpb::CreateSessionRequest {
            session: Some(gpb::DialogueSession {
                title: title.into(),
                track: gpb::DialogueTrack::Trade.into(),
                level: gpb::SessionLevel::Ministerial.into(),
                host_economy: "CHN".into(),
                economies: vec!["CAN".into(), "CHN".into()],
                starts_on: "2026-01-16".into(),
                status: gpb::SessionStatus::Held.into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .session
        .unwrap()
        .id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn effects_a_killed_relay_had_claimed_are_taken_over_after_its_lease_and_applied_once() {
    use tradewatch_e2e::faults::ServiceProcess;
    let mut tariff = ServiceSlot::new().await.unwrap();
    let settings = tariff.settings(tariff_service::SERVICE);
    tariff.start(settings, tariff_service::app::Application::build).await.unwrap();
    let proxy = Proxy::start(tariff.addr.unwrap()).await.unwrap();
    let dialogue_db = testing::TestDatabase::new().await.unwrap();
    let env = vec![
        ("TRADEWATCH__DATABASE__URL", dialogue_db.url.clone()),
        ("TRADEWATCH__PEERS__TARIFF_URL", proxy.url()),
        ("TRADEWATCH__PEERS__DISPUTE_URL", "http://127.0.0.1:1".to_owned()),
        ("TRADEWATCH__RELAY__LEASE_SECS", "3".to_owned()),
        ("TRADEWATCH__PEERS__TIMEOUT_MS", "1000".to_owned()),
    ];
    let first = ServiceProcess::start(&bin_dir(), "dialogue", &env).await.unwrap();

    let mut tariffs = TariffServiceClient::new(testing::channel(tariff.addr.unwrap()).await.unwrap());
    let mut dialogues = DialogueServiceClient::new(
        testing::channel(format!("127.0.0.1:{}", first.port).parse().unwrap()).await.unwrap(),
    );
    let session_id = session(&mut dialogues, "Before the crash").await;
    let mut commitments = Vec::new();
    for i in 0..5 {
        let measure = tariffs.create_measure(surtax(&format!("KILL-{i}"))).await.unwrap().into_inner().measure.unwrap();
        let c = dialogues
            .add_commitment(gpb::AddCommitmentRequest {
                session_id: session_id.clone(),
                commitment: Some(gpb::Commitment {
                    description: format!("Suspend surtax {i}"),
                    owner_economies: vec!["CAN".into()],
                    measure_id: measure.id,
                    effect: gpb::CommitmentEffect::SuspendMeasure.into(),
                    effective_on: "2026-03-01".into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .unwrap();
        commitments.push(c.into_inner().commitment.unwrap().id);
    }
    // The first replica claims the effects and hangs on them; then it is killed.
    proxy.hang(true);
    for id in &commitments {
        dialogues
            .set_commitment_status(gpb::SetCommitmentStatusRequest {
                id: id.clone(),
                status: gpb::CommitmentStatus::Fulfilled.into(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    first.kill9().await;
    let killed = Instant::now();
    proxy.hang(false);
    let second = ServiceProcess::start(&bin_dir(), "dialogue", &env).await.unwrap();
    let mut dialogues = DialogueServiceClient::new(
        testing::channel(format!("127.0.0.1:{}", second.port).parse().unwrap()).await.unwrap(),
    );
    let mut applied_after = None;
    for _ in 0..200 {
        let mut applied = 0;
        for id in &commitments {
            let c = dialogues.get_commitment(gpb::GetCommitmentRequest { id: id.clone() }).await.unwrap().into_inner();
            applied += usize::from(c.commitment.unwrap().effect_state() == gpb::EffectState::Applied);
        }
        if applied == commitments.len() {
            applied_after = Some(killed.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let applied_after = applied_after.expect("the second replica applies every effect");
    let text = crate::observability::scrape(tariff.metrics_addr.unwrap()).await;
    let calls = crate::observability::sample(
        &text,
        r#"rpc_server_call_duration_seconds_count{rpc_method="tradewatch.tariff.v1.TariffService/SetMeasureStatus",rpc_response_status_code="OK"}"#,
    );
    eprintln!(
        "kill -9 of a relay: its 5 claimed effects applied by the other replica {applied_after:?} after the kill (lease 3 s); {calls:?} deliveries reached the tariff service"
    );
    assert!(applied_after >= Duration::from_secs(2), "taken over only when the lease ended: {applied_after:?}");
    assert_eq!(calls, Some(5.0), "each effect reached the tariff service once");
    drop(second);
    tariff.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_killed_mid_write_leaves_no_half_written_resource() {
    use tradewatch_e2e::faults::ServiceProcess;
    for name in ["tariff", "dispute", "dialogue"] {
        let db = testing::TestDatabase::new().await.unwrap();
        let env = vec![
            ("TRADEWATCH__DATABASE__URL", db.url.clone()),
            ("TRADEWATCH__PEERS__TARIFF_URL", "http://127.0.0.1:1".to_owned()),
            ("TRADEWATCH__PEERS__DISPUTE_URL", "http://127.0.0.1:1".to_owned()),
        ];
        let process = ServiceProcess::start(&bin_dir(), name, &env).await.unwrap();
        let addr: std::net::SocketAddr = format!("127.0.0.1:{}", process.port).parse().unwrap();
        let load = tokio::spawn(async move {
            let channel = testing::channel(addr).await.unwrap();
            let (mut acknowledged, mut i) = (0usize, 0usize);
            loop {
                i += 1;
                let ok = match name {
                    "tariff" => {
                        let mut m = surtax(&format!("W-{i:05}"));
                        if let Some(m) = m.measure.as_mut() {
                            m.target_economies = vec!["CHN".into()];
                        }
                        TariffServiceClient::new(channel.clone()).create_measure(m).await.is_ok()
                    }
                    "dispute" => DisputeServiceClient::new(channel.clone())
                        .create_dispute(dpb::CreateDisputeRequest {
                            dispute: Some(dpb::Dispute {
                                reference: format!("WT/DS-{i:05}"),
                                title: "A dispute".into(),
                                complainant: "CAN".into(),
                                respondent: "CHN".into(),
                                forum: dpb::DisputeForum::Wto.into(),
                                hs_codes: vec!["1205".into()],
                                opened_on: "2024-12-06".into(),
                                ..Default::default()
                            }),
                            request_id: String::new(),
                        })
                        .await
                        .is_ok(),
                    _ => {
                        let mut client = DialogueServiceClient::new(channel.clone());
                        client
                            .create_session(gpb::CreateSessionRequest {
                                session: Some(gpb::DialogueSession {
                                    title: format!("Session {i}"),
                                    track: gpb::DialogueTrack::Trade.into(),
                                    level: gpb::SessionLevel::WorkingGroup.into(),
                                    host_economy: "CAN".into(),
                                    economies: vec!["CAN".into(), "CHN".into()],
                                    starts_on: "2026-01-16".into(),
                                    status: gpb::SessionStatus::Planned.into(),
                                    ..Default::default()
                                }),
                                request_id: String::new(),
                            })
                            .await
                            .is_ok()
                    }
                };
                if !ok {
                    return acknowledged;
                }
                acknowledged += 1;
            }
        });
        tokio::time::sleep(Duration::from_millis(800)).await;
        process.kill9().await;
        let acknowledged = load.await.unwrap();
        let restarted = ServiceProcess::start(&bin_dir(), name, &env).await.unwrap();
        let channel = testing::channel(format!("127.0.0.1:{}", restarted.port).parse().unwrap()).await.unwrap();
        // Everything there is whole: found by its link rows, with its timeline.
        let (stored, whole) = match name {
            "tariff" => {
                let mut client = TariffServiceClient::new(channel);
                let all = list_all_measures(&mut client, tpb::ListMeasuresRequest::default()).await;
                let by_links = list_all_measures(
                    &mut client,
                    tpb::ListMeasuresRequest {
                        hs_code: "72".into(),
                        target_economy: "CHN".into(),
                        ..Default::default()
                    },
                )
                .await;
                let mut timed = 0;
                for id in &all {
                    let history = client
                        .list_measure_history(tpb::ListMeasureHistoryRequest {
                            measure_id: id.clone(),
                            ..Default::default()
                        })
                        .await
                        .unwrap()
                        .into_inner()
                        .changes;
                    timed += usize::from(!history.is_empty());
                }
                (all.len(), by_links.len().min(timed))
            }
            "dispute" => {
                let mut client = DisputeServiceClient::new(channel);
                let all = client
                    .list_disputes(dpb::ListDisputesRequest { page_size: 500, ..Default::default() })
                    .await
                    .unwrap()
                    .into_inner()
                    .disputes;
                let by_code = client
                    .list_disputes(dpb::ListDisputesRequest {
                        page_size: 500,
                        hs_code: "1205".into(),
                        ..Default::default()
                    })
                    .await
                    .unwrap()
                    .into_inner()
                    .disputes;
                let mut timed = 0;
                for d in &all {
                    let events = client
                        .list_dispute_events(dpb::ListDisputeEventsRequest {
                            dispute_id: d.id.clone(),
                            ..Default::default()
                        })
                        .await
                        .unwrap()
                        .into_inner()
                        .events;
                    timed += usize::from(!events.is_empty());
                }
                (all.len(), by_code.len().min(timed))
            }
            _ => {
                let mut client = DialogueServiceClient::new(channel);
                let all = client
                    .list_sessions(gpb::ListSessionsRequest { page_size: 500, ..Default::default() })
                    .await
                    .unwrap()
                    .into_inner()
                    .sessions;
                let by_economy = client
                    .list_sessions(gpb::ListSessionsRequest {
                        page_size: 500,
                        economy: "CHN".into(),
                        ..Default::default()
                    })
                    .await
                    .unwrap()
                    .into_inner()
                    .sessions;
                (all.len(), by_economy.len())
            }
        };
        eprintln!(
            "kill -9 of the {name} service mid-write: {acknowledged} writes acknowledged, {stored} stored, {whole} whole"
        );
        assert!(acknowledged > 0, "the load wrote before the kill");
        assert!(stored >= acknowledged, "{name}: acknowledged writes lost ({stored} < {acknowledged})");
        assert!(stored <= acknowledged + 1, "{name}: at most the write in flight went through unacknowledged");
        assert_eq!(whole, stored, "{name}: a resource is half written");
        drop(restarted);
    }
}

async fn list_all_measures(
    client: &mut TariffServiceClient<tonic::transport::Channel>,
    request: tpb::ListMeasuresRequest,
) -> Vec<String> {
    let mut ids = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_measures(tpb::ListMeasuresRequest { page_size: 500, page_token: token.clone(), ..request.clone() })
            .await
            .unwrap()
            .into_inner();
        ids.extend(page.measures.into_iter().map(|m| m.id));
        if page.next_page_token.is_empty() {
            return ids;
        }
        token = page.next_page_token;
    }
}

/// A SQLite database has one serving process: its read caches count that
/// process's writes instead of asking the database before every answer, so
/// a second process on the same file is refused at start, naming the file
/// and the process that serves it, and the first goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_serving_one_sqlite_file_is_refused_at_start() {
    use tradewatch_e2e::faults::ServiceProcess;
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("tariff.db");
    let url = format!("sqlite://{}?mode=rwc", file.display());
    let env = vec![("TRADEWATCH__DATABASE__URL", url.clone())];
    let first = ServiceProcess::start(&bin_dir(), "tariff", &env).await.unwrap();

    let second = tokio::process::Command::new(bin_dir().join("tariff-service"))
        .arg("serve")
        .env("TRADEWATCH__DATABASE__URL", &url)
        .env("TRADEWATCH__SERVER__PORT", testing::free_port().to_string())
        .env("TRADEWATCH__TELEMETRY__METRICS_PORT", testing::free_port().to_string())
        .kill_on_drop(true)
        .output();
    let second = tokio::time::timeout(Duration::from_secs(20), second)
        .await
        .expect("the second process ended by itself")
        .unwrap();
    let said = String::from_utf8_lossy(&second.stderr).into_owned() + &String::from_utf8_lossy(&second.stdout);
    assert!(!second.status.success(), "the second process was refused: {said}");
    let pid = first.pid().unwrap().to_string();
    assert!(
        said.contains("is served by another process") && said.contains(&pid) && said.contains("tariff.db"),
        "it says why, naming the file and the process: {said}"
    );

    let mut client =
        TariffServiceClient::new(testing::channel(format!("127.0.0.1:{}", first.port).parse().unwrap()).await.unwrap());
    let created = client.create_measure(surtax("STILL-SERVING")).await.unwrap().into_inner().measure.unwrap();
    client.get_measure(tpb::GetMeasureRequest { id: created.id }).await.unwrap();

    // Once the first has ended, however it ended, the file can be served again.
    first.kill9().await;
    let again = ServiceProcess::start(&bin_dir(), "tariff", &env).await.unwrap();
    drop(again);
}
