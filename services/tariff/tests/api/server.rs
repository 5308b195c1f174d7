use tokio_stream::StreamExt;
use tonic::Code;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};
use tradewatch_common::proto::tariff as pb;

use crate::helpers::*;

const SERVICE: &str = "tradewatch.tariff.v1.TariffService";

#[tokio::test]
async fn health_is_reported_for_the_service_and_the_server() {
    let app = spawn_app().await;
    let mut health = HealthClient::new(channel(app.addr).await);
    for service in ["", SERVICE] {
        let status = health.check(HealthCheckRequest { service: service.into() }).await.unwrap().into_inner().status();
        assert_eq!(status, ServingStatus::Serving, "{service:?}");
    }
    let unknown = health.check(HealthCheckRequest { service: "nope.Service".into() }).await;
    assert_eq!(unknown.unwrap_err().code(), Code::NotFound);
}

#[tokio::test]
async fn reflection_answers_in_v1_and_v1alpha() {
    use tonic_reflection::pb::{v1, v1alpha};
    let app = spawn_app().await;
    let ch = channel(app.addr).await;

    let req = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut stream = v1::server_reflection_client::ServerReflectionClient::new(ch.clone())
        .server_reflection_info(tokio_stream::iter([req]))
        .await
        .unwrap()
        .into_inner();
    let Some(Ok(v1::ServerReflectionResponse {
        message_response: Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)),
        ..
    })) = stream.next().await
    else {
        panic!("no v1 list response");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.contains(&SERVICE.to_owned()), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health".to_owned()), "{names:?}");
    assert!(!names.iter().any(|n| n.contains("dispute")), "only this service is advertised: {names:?}");

    let req = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1alpha::server_reflection_request::MessageRequest::FileContainingSymbol(format!(
            "{SERVICE}.ResolveDuty"
        ))),
    };
    let mut stream = v1alpha::server_reflection_client::ServerReflectionClient::new(ch)
        .server_reflection_info(tokio_stream::iter([req]))
        .await
        .unwrap()
        .into_inner();
    let response = stream.next().await.unwrap().unwrap().message_response;
    assert!(
        matches!(response, Some(v1alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(ref f)) if !f.file_descriptor_proto.is_empty()),
        "{response:?}"
    );
}

#[tokio::test]
async fn a_lost_database_is_unavailable_and_leaks_nothing() {
    let app = spawn_app().await;
    let m = app.create(measure("DB-1", pb::MeasureKind::Mfn, &["87"], "1")).await;
    app.db.close_by_ref().await.unwrap();
    let status =
        assert_code(app.client.clone().get_measure(pb::GetMeasureRequest { id: m.id }).await, Code::Unavailable);
    assert_eq!(reason(&status), "DATABASE_UNAVAILABLE");
    assert!(!status.message().to_lowercase().contains("pool"), "{status:?}");
}

#[tokio::test]
async fn shutdown_lets_the_server_stop_cleanly() {
    let app = spawn_app().await;
    let addr = app.addr;
    app.create(measure("STOP-1", pb::MeasureKind::Mfn, &["87"], "1")).await;
    tokio::time::timeout(std::time::Duration::from_secs(10), app.stop())
        .await
        .expect("stopped in time")
        .expect("clean stop");
    let refused = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap().connect().await;
    assert!(refused.is_err(), "no new connections after shutdown");
}

#[tokio::test]
async fn messages_over_the_size_limit_are_refused() {
    let app = spawn_app().await;
    let huge = measure(&"R".repeat(5 * 1024 * 1024), pb::MeasureKind::Mfn, &["87"], "1");
    let status = app
        .client
        .clone()
        .create_measure(pb::CreateMeasureRequest { measure: Some(huge), request_id: String::new() })
        .await
        .unwrap_err();
    // tonic answers a decode limit with OUT_OF_RANGE.
    assert!(matches!(status.code(), Code::OutOfRange | Code::ResourceExhausted), "{status:?}");
    assert!(status.message().contains("too large"), "{status:?}");
    assert!(app.list_all(pb::ListMeasuresRequest::default()).await.is_empty());
}

#[tokio::test]
async fn shutdown_reports_not_serving_then_drains_open_streams() {
    let app = spawn_app().await;
    let mut health = HealthClient::new(channel(app.addr).await);
    let mut watch = health.watch(HealthCheckRequest { service: SERVICE.into() }).await.unwrap().into_inner();
    assert_eq!(watch.next().await.unwrap().unwrap().status(), ServingStatus::Serving);

    let started = std::time::Instant::now();
    let stopping = tokio::spawn(app.stop());
    // The open Watch stream sees NOT_SERVING before the server goes away.
    let next =
        tokio::time::timeout(std::time::Duration::from_secs(3), watch.next()).await.expect("a status after SIGTERM");
    assert_eq!(next.unwrap().unwrap().status(), ServingStatus::NotServing);
    // The stream is held open by the client: the drain timeout (5 s in tests) ends it.
    stopping.await.unwrap().expect("clean stop");
    assert!(started.elapsed() < std::time::Duration::from_secs(8), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_schema_behind_this_version_keeps_the_service_out_of_rotation_until_migrated() {
    let mut settings = None;
    let app = spawn_app_with(|s| {
        s.database.migrate_on_start = false;
        settings = Some(s.clone());
    })
    .await;
    let health = HealthClient::new(channel(app.addr).await);
    let status = |service: &'static str| {
        let mut health = health.clone();
        async move { health.check(HealthCheckRequest { service: service.into() }).await.unwrap().into_inner().status() }
    };
    assert_eq!(status("").await, ServingStatus::Serving, "the process is alive");
    assert_eq!(status(SERVICE).await, ServingStatus::NotServing, "not ready on an unmigrated database");

    tariff_service::app::migrate(&settings.unwrap()).await.unwrap();
    // The database is checked every few seconds.
    let mut ready = false;
    for _ in 0..100 {
        if status(SERVICE).await == ServingStatus::Serving {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ready, "still NOT_SERVING after the migrations ran");
}
