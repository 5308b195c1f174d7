//! The relations server as every service is: health SERVING without a
//! database and whatever its peers do, reflection v1 and v1alpha.

use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

use crate::helpers::*;

#[tokio::test]
async fn health_and_reflection_answer_with_every_peer_down() {
    let mut app = spawn_app().await;
    app.stop_tariff().await;
    let mut health = HealthClient::new(tradewatch_common::testing::channel(app.relations_addr()).await.unwrap());
    for service in ["", "tradewatch.relations.v1.RelationsService"] {
        let status = health.check(HealthCheckRequest { service: service.into() }).await.unwrap().into_inner();
        assert_eq!(status.status(), ServingStatus::Serving, "{service:?}");
    }
    use tokio_stream::StreamExt as _;
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let mut reflection =
        ServerReflectionClient::new(tradewatch_common::testing::channel(app.relations_addr()).await.unwrap());
    let ask = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection.server_reflection_info(tokio_stream::iter([ask])).await.unwrap().into_inner();
    let Some(Ok(answer)) = answers.next().await else { panic!("reflection answered") };
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else { panic!("a list") };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.contains(&"tradewatch.relations.v1.RelationsService".to_owned()), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health".to_owned()), "{names:?}");
}
