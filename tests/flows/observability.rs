//! Metrics after known calls, scraped over HTTP as Prometheus scrapes them;
//! and traces that follow one call across services, received by an OTLP
//! collector in the test.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tonic::Code;
use tradewatch_common::proto::{dialogue as gpb, tariff as tpb};
use tradewatch_e2e::Stack;

/// `GET /metrics` from `addr`, as text.
pub async fn scrape(addr: std::net::SocketAddr) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"GET /metrics HTTP/1.1\r\nhost: tradewatch\r\nconnection: close\r\n\r\n").await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: text/plain; version=0.0.4"), "{head}");
    body.to_owned()
}

/// The value of the one sample named exactly `series` (name and labels).
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')).and_then(|v| v.parse().ok()))
}

/// promtool's lint of a scrape: CI installs promtool (make tools).
fn promtool_accepts(text: &str) {
    let promtool = std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".into());
    let mut child = std::process::Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{promtool} not found ({e}): `make tools` installs it, or set PROMTOOL"));
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics refused the scrape:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

const GET_MEASURE: &str = "tradewatch.tariff.v1.TariffService/GetMeasure";

#[tokio::test]
async fn metrics_count_the_calls_made_and_the_effects_waiting() {
    let mut stack = Stack::start().await.unwrap();
    let [tariff_metrics, _, dialogue_metrics] = stack.metrics_addrs().map(Option::unwrap);
    let mut tariff = stack.tariff().await.unwrap();
    let measure = tariff
        .create_measure(tpb::CreateMeasureRequest {
            measure: Some(tpb::TariffMeasure {
                reference: "SOR/2024-187".into(),
                title: "Surtax on Chinese electric vehicles".into(),
                imposing_economy: "CAN".into(),
                target_economies: vec!["CHN".into()],
                kind: tpb::MeasureKind::Surtax.into(),
                hs_codes: vec!["870380".into()],
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
    tariff.get_measure(tpb::GetMeasureRequest { id: measure.id.clone() }).await.unwrap();
    let bad = tariff.get_measure(tpb::GetMeasureRequest { id: "not-a-uuid".into() }).await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);

    let text = scrape(tariff_metrics).await;
    let count = |method: &str, code: &str| {
        sample(
            &text,
            &format!(
                r#"rpc_server_call_duration_seconds_count{{rpc_method="{method}",rpc_response_status_code="{code}"}}"#
            ),
        )
    };
    assert_eq!(count(GET_MEASURE, "OK"), Some(1.0), "{text}");
    assert_eq!(count(GET_MEASURE, "INVALID_ARGUMENT"), Some(1.0), "{text}");
    assert_eq!(count("tradewatch.tariff.v1.TariffService/CreateMeasure", "OK"), Some(1.0), "{text}");
    assert_eq!(count(GET_MEASURE, "NOT_FOUND"), None, "{text}");
    assert!(
        text.contains(&format!(
            r#"tradewatch_build_info{{service="tariff",version="{}"}} 1"#,
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
    // The relations service opens its watches of the tariff feeds on its own
    // schedule (and again after a backoff); one opening may be in flight at
    // any scrape, so the gauge is read until the calls made here are over.
    let mut in_flight = sample(&text, "rpc_server_calls_in_flight");
    for _ in 0..50 {
        if in_flight == Some(0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        in_flight = sample(&scrape(tariff_metrics).await, "rpc_server_calls_in_flight");
    }
    assert_eq!(in_flight, Some(0.0), "{text}");
    assert!(sample(&text, r#"db_client_connections_usage{state="idle"}"#).is_some(), "{text}");
    assert!(!text.contains("grpc.health"), "health checks are not counted");
    promtool_accepts(&text);

    // A suspension the relay cannot deliver while the tariff service is down.
    let mut dialogue = stack.dialogue().await.unwrap();
    let session = dialogue
        .create_session(gpb::CreateSessionRequest {
            session: Some(tradewatch_e2e::ministerial_session()),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .session
        .unwrap();
    let commitment = dialogue
        .add_commitment(gpb::AddCommitmentRequest {
            session_id: session.id,
            commitment: Some(gpb::Commitment {
                description: "Suspend the EV surtax".into(),
                owner_economies: vec!["CAN".into()],
                measure_id: measure.id.clone(),
                effect: gpb::CommitmentEffect::SuspendMeasure.into(),
                effective_on: "2026-03-01".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .commitment
        .unwrap();
    stack.stop_tariff().await.unwrap();
    dialogue
        .set_commitment_status(gpb::SetCommitmentStatusRequest {
            id: commitment.id,
            status: gpb::CommitmentStatus::Fulfilled.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut text = String::new();
    for _ in 0..50 {
        text = scrape(dialogue_metrics).await;
        if sample(&text, r#"tradewatch_relay_deliveries_total{outcome="retried"}"#).is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(sample(&text, "tradewatch_outbox_pending_effects"), Some(1.0), "{text}");
    assert!(sample(&text, "tradewatch_outbox_oldest_pending_age_seconds").is_some_and(|age| age >= 0.0), "{text}");
    assert!(
        sample(&text, r#"tradewatch_relay_deliveries_total{outcome="retried"}"#).is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert_eq!(sample(&text, r#"tradewatch_relay_deliveries_total{outcome="applied"}"#), None, "{text}");
    let link_check = r#"rpc_client_call_duration_seconds_count{rpc_method="tradewatch.tariff.v1.TariffService/BatchGetMeasures",rpc_response_status_code="OK"}"#;
    assert_eq!(sample(&text, link_check), Some(1.0), "{text}");
    let undelivered = r#"rpc_client_call_duration_seconds_count{rpc_method="tradewatch.tariff.v1.TariffService/SetMeasureStatus",rpc_response_status_code="UNAVAILABLE"}"#;
    assert!(sample(&text, undelivered).is_some_and(|n| n >= 1.0), "{text}");
    promtool_accepts(&text);
    stack.stop().await.unwrap();
}

mod otlp {
    use std::sync::{Arc, Mutex};

    use opentelemetry_proto::tonic::{
        collector::trace::v1::{
            ExportTraceServiceRequest, ExportTraceServiceResponse,
            trace_service_server::{TraceService, TraceServiceServer},
        },
        common::v1::any_value::Value,
        trace::v1::span::SpanKind,
    };

    /// One span as received, with the service that sent it.
    #[derive(Debug, Clone)]
    pub struct Received {
        pub service: String,
        pub name: String,
        pub kind: SpanKind,
        pub trace_id: Vec<u8>,
        pub span_id: Vec<u8>,
        pub parent_span_id: Vec<u8>,
        pub grpc_status: Option<i64>,
    }

    /// An OTLP/gRPC trace collector in the test process.
    #[derive(Clone, Default)]
    pub struct Collector(pub Arc<Mutex<Vec<Received>>>);

    #[tonic::async_trait]
    impl TraceService for Collector {
        async fn export(
            &self,
            request: tonic::Request<ExportTraceServiceRequest>,
        ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
            let mut received = self.0.lock().unwrap();
            for resource_spans in request.into_inner().resource_spans {
                let service = resource_spans
                    .resource
                    .iter()
                    .flat_map(|r| &r.attributes)
                    .find(|a| a.key == "service.name")
                    .and_then(|a| a.value.as_ref()?.value.clone())
                    .map(|v| match v {
                        Value::StringValue(s) => s,
                        other => format!("{other:?}"),
                    })
                    .unwrap_or_default();
                for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
                    let grpc_status = span.attributes.iter().find(|a| a.key == "rpc.grpc.status_code").and_then(|a| {
                        match a.value.as_ref()?.value.as_ref()? {
                            Value::IntValue(n) => Some(*n),
                            _ => None,
                        }
                    });
                    received.push(Received {
                        service: service.clone(),
                        name: span.name.clone(),
                        kind: span.kind(),
                        trace_id: span.trace_id,
                        span_id: span.span_id,
                        parent_span_id: span.parent_span_id,
                        grpc_status,
                    });
                }
            }
            Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
        }
    }

    /// Serves the collector on a free loopback port; returns its URL.
    pub async fn start(collector: Collector) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(collector))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        format!("http://{addr}")
    }
}

/// A service binary with its own SQLite file, exporting traces to `otlp`.
struct Process {
    child: tokio::process::Child,
    port: u16,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

async fn start_process(name: &str, dir: &std::path::Path, otlp: &str, peers: &[(&str, String)]) -> Process {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_tradewatch-demo")).with_file_name(format!("{name}-service"));
    let port = tradewatch_common::testing::free_port();
    let mut command = tokio::process::Command::new(bin);
    command
        .arg("serve")
        .env("TRADEWATCH__SERVER__PORT", port.to_string())
        .env("TRADEWATCH__DATABASE__URL", format!("sqlite://{}/{name}.db?mode=rwc", dir.display()))
        .env("TRADEWATCH__TELEMETRY__METRICS_PORT", "0")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", otlp)
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env("TRADEWATCH__LOG__FILTER", "warn,audit=info")
        .env("TRADEWATCH__LOG__FORMAT", "json")
        .stdout(std::fs::File::create(dir.join(format!("{name}.log"))).unwrap())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    for (key, value) in peers {
        command.env(key, value);
    }
    let child = command.spawn().unwrap();
    let process = Process { child, port };
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..200 {
        if let Ok(channel) = tonic::transport::Endpoint::from_shared(url.clone()).unwrap().connect().await {
            let health = tonic_health::pb::health_client::HealthClient::new(channel)
                .check(tonic_health::pb::HealthCheckRequest { service: String::new() })
                .await;
            if health.is_ok_and(|h| h.into_inner().status == 1) {
                return process;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{name}-service did not start");
}

#[tokio::test]
async fn one_trace_follows_a_call_and_a_relayed_effect_across_services() {
    use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
    use tradewatch_common::proto::{
        dialogue::dialogue_service_client::DialogueServiceClient, dispute as dpb,
        dispute::dispute_service_client::DisputeServiceClient, tariff::tariff_service_client::TariffServiceClient,
    };

    let collector = otlp::Collector::default();
    let otlp = otlp::start(collector.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let tariff = start_process("tariff", dir.path(), &otlp, &[]).await;
    let tariff_url = format!("http://127.0.0.1:{}", tariff.port);
    let dispute =
        start_process("dispute", dir.path(), &otlp, &[("TRADEWATCH__PEERS__TARIFF_URL", tariff_url.clone())]).await;
    let dispute_url = format!("http://127.0.0.1:{}", dispute.port);
    let dialogue = start_process(
        "dialogue",
        dir.path(),
        &otlp,
        &[
            ("TRADEWATCH__PEERS__TARIFF_URL", tariff_url.clone()),
            ("TRADEWATCH__PEERS__DISPUTE_URL", dispute_url.clone()),
        ],
    )
    .await;

    let connect =
        |url: String| async move { tonic::transport::Endpoint::from_shared(url).unwrap().connect().await.unwrap() };
    let measure = TariffServiceClient::new(connect(tariff_url.clone()).await)
        .create_measure(tpb::CreateMeasureRequest {
            measure: Some(tpb::TariffMeasure {
                reference: "SOR/2024-187".into(),
                title: "Surtax on Chinese electric vehicles".into(),
                imposing_economy: "CAN".into(),
                kind: tpb::MeasureKind::Surtax.into(),
                hs_codes: vec!["870380".into()],
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
    DisputeServiceClient::new(connect(dispute_url.clone()).await)
        .create_dispute(dpb::CreateDisputeRequest {
            dispute: Some(dpb::Dispute {
                reference: "WT/DS627".into(),
                title: "Canada — Surtaxes on certain products from China".into(),
                complainant: "CHN".into(),
                respondent: "CAN".into(),
                forum: dpb::DisputeForum::Wto.into(),
                measure_ids: vec![measure.id.clone()],
                opened_on: "2024-12-06".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap();
    let mut dialogues = DialogueServiceClient::new(connect(format!("http://127.0.0.1:{}", dialogue.port)).await);
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
    let commitment = dialogues
        .add_commitment(gpb::AddCommitmentRequest {
            session_id: session.id,
            commitment: Some(gpb::Commitment {
                description: "Suspend the EV surtax".into(),
                owner_economies: vec!["CAN".into()],
                measure_id: measure.id.clone(),
                effect: gpb::CommitmentEffect::SuspendMeasure.into(),
                effective_on: "2026-03-01".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .commitment
        .unwrap();
    dialogues
        .set_commitment_status(gpb::SetCommitmentStatusRequest {
            id: commitment.id,
            status: gpb::CommitmentStatus::Fulfilled.into(),
            ..Default::default()
        })
        .await
        .unwrap();

    let find = |spans: &[otlp::Received], service: &str, name: &str, kind: SpanKind| {
        spans.iter().find(|s| s.service == service && s.name == name && s.kind == kind).cloned()
    };
    let mut found = None;
    for _ in 0..100 {
        let spans = collector.0.lock().unwrap().clone();
        let all = (
            find(&spans, "dispute-service", "tradewatch.dispute.v1.DisputeService/CreateDispute", SpanKind::Server),
            find(&spans, "dispute-service", "tradewatch.tariff.v1.TariffService/BatchGetMeasures", SpanKind::Client),
            find(&spans, "tariff-service", "tradewatch.tariff.v1.TariffService/BatchGetMeasures", SpanKind::Server),
            find(
                &spans,
                "dialogue-service",
                "tradewatch.dialogue.v1.DialogueService/SetCommitmentStatus",
                SpanKind::Server,
            ),
            find(&spans, "dialogue-service", "tradewatch.tariff.v1.TariffService/SetMeasureStatus", SpanKind::Client),
            find(&spans, "tariff-service", "tradewatch.tariff.v1.TariffService/SetMeasureStatus", SpanKind::Server),
        );
        if let (Some(a), Some(b), Some(c), Some(d), Some(e), Some(f)) = all {
            found = Some((a, b, c, d, e, f));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let spans = collector.0.lock().unwrap().clone();
    let (create, check, checked, fulfil, deliver, delivered) = found.unwrap_or_else(|| {
        let logs: String = ["tariff", "dispute", "dialogue"]
            .iter()
            .map(|n| std::fs::read_to_string(dir.path().join(format!("{n}.log"))).unwrap_or_default())
            .collect();
        panic!("spans missing: {:#?}\n{logs}", collector.0.lock().unwrap())
    });
    // CreateDispute: one trace over two services, the tariff SERVER span a
    // child of the dispute CLIENT span.
    assert_eq!(check.trace_id, create.trace_id);
    assert_eq!(checked.trace_id, create.trace_id);
    assert_eq!(checked.parent_span_id, check.span_id, "the tariff span continues the dispute's client span");
    assert_eq!((check.grpc_status, checked.grpc_status), (Some(0), Some(0)));
    // SetCommitmentStatus: the relayed effect carries on the same trace.
    assert_eq!(deliver.trace_id, fulfil.trace_id);
    assert_eq!(delivered.trace_id, fulfil.trace_id);
    assert_eq!(delivered.parent_span_id, deliver.span_id);

    // The JSON log line of a write carries the trace and span of its call.
    let created = find(&spans, "tariff-service", "tradewatch.tariff.v1.TariffService/CreateMeasure", SpanKind::Server)
        .expect("the CreateMeasure span");
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let log = std::fs::read_to_string(dir.path().join("tariff.log")).unwrap();
    let audit: serde_json::Value = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["target"] == "audit" && l["rpc"] == "CreateMeasure")
        .unwrap_or_else(|| panic!("no audit line for CreateMeasure in:\n{log}"));
    assert_eq!(audit["trace_id"].as_str(), Some(hex(&created.trace_id).as_str()), "{audit}");
    assert_eq!(audit["actor"], "anonymous");
    assert_eq!(audit["span_id"].as_str(), Some(hex(&created.span_id).as_str()), "{audit}");
    drop((tariff, dispute, dialogue));
}
