//! Balancing behind a Service's virtual IP: a peer holds one HTTP/2
//! connection, so without a maximum connection age every call of the dispute
//! service goes to the tariff replica it first reached. With one, the tariff
//! servers close each connection after its age (GOAWAY, calls in flight
//! finish), the dispute service reconnects through the virtual IP, and the
//! calls spread onto every replica.

use std::time::Duration;

use tradewatch_common::{
    proto::{
        dispute::{self as dpb, dispute_service_client::DisputeServiceClient},
        tariff::{self as tpb, tariff_service_client::TariffServiceClient},
    },
    testing::{self, RunningServer, TestDatabase},
};
use tradewatch_e2e::faults::Balancer;

use crate::observability::{sample, scrape};

const BATCH_GET: &str = r#"rpc_server_call_duration_seconds_count{rpc_method="tradewatch.tariff.v1.TariffService/BatchGetMeasures",rpc_response_status_code="OK"}"#;

/// Two tariff replicas with this maximum connection age behind a virtual
/// IP, a dispute server calling them through it, and `calls` disputes that
/// cite a measure (each a BatchGetMeasures to a replica), 100 ms apart:
/// the calls each replica served.
async fn calls_per_replica(max_connection_age_secs: Option<u64>, calls: usize) -> [f64; 2] {
    let (tariff_db, dispute_db) = (TestDatabase::new().await.unwrap(), TestDatabase::new().await.unwrap());
    let mut tariff_settings = tariff_db.settings(tariff_service::SERVICE);
    tariff_settings.server.max_connection_age_secs = max_connection_age_secs;
    let t1 = testing::spawn(tariff_settings.clone(), tariff_service::app::Application::build).await.unwrap();
    let t2 = testing::spawn(tariff_settings, tariff_service::app::Application::build).await.unwrap();
    let vip = Balancer::start(vec![t1.addr, t2.addr]).await.unwrap();
    let mut dispute_settings = dispute_db.settings(dispute_service::SERVICE);
    dispute_settings.peers.tariff_url = vip.url();
    let dispute = testing::spawn(dispute_settings, dispute_service::app::Application::build).await.unwrap();

    let measure = TariffServiceClient::new(testing::channel(t1.addr).await.unwrap())
        .create_measure(tpb::CreateMeasureRequest {
            measure: Some(tpb::TariffMeasure {
                reference: "CAN-SURTAX-EV-2024".into(),
                title: "Surtax on Chinese-made electric vehicles".into(),
                imposing_economy: "CAN".into(),
                target_economies: vec!["CHN".into()],
                kind: tpb::MeasureKind::Surtax.into(),
                hs_codes: vec!["8703.80".into()],
                ad_valorem_percent: "100".into(),
                effective_from: "2024-10-01".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .measure
        .unwrap();
    let mut client = DisputeServiceClient::new(testing::channel(dispute.addr).await.unwrap());
    for i in 0..calls {
        client
            .create_dispute(dpb::CreateDisputeRequest {
                dispute: Some(dpb::Dispute {
                    reference: format!("CONSULT-{i:03}"),
                    title: "Consultations on the surtax".into(),
                    complainant: "CHN".into(),
                    respondent: "CAN".into(),
                    forum: dpb::DisputeForum::Wto.into(),
                    measure_ids: vec![measure.id.clone()],
                    opened_on: "2024-10-01".into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .unwrap_or_else(|status| panic!("call {i} failed while connections were being recycled: {status:?}"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut served = [0.0; 2];
    for (n, replica) in [&t1, &t2].into_iter().enumerate() {
        served[n] = sample(&scrape(replica.metrics_addr.unwrap()).await, BATCH_GET).unwrap_or(0.0);
    }
    for server in [dispute, t1, t2] {
        RunningServer::stop(server).await.unwrap();
    }
    served
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_connection_age_one_replica_takes_every_call() {
    let served = calls_per_replica(None, 20).await;
    assert_eq!(served[0] + served[1], 20.0, "{served:?}");
    assert!(served.contains(&0.0), "calls reached both replicas over one connection: {served:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maximum_connection_age_spreads_the_calls_onto_every_replica() {
    // 40 calls over some 4 s, connections closed after 1 s: several
    // reconnections, each to the other replica, and no call lost on the way.
    let served = calls_per_replica(Some(1), 40).await;
    assert_eq!(served[0] + served[1], 40.0, "{served:?}");
    assert!(served.iter().all(|&n| n >= 5.0), "the calls did not spread: {served:?}");
}
