//! Logs and traces: `tracing` with pretty or JSON output (JSON lines carry
//! the `trace_id` and `span_id` of their span), a SERVER span per RPC and a
//! CLIENT span per peer call with their gRPC status, and OpenTelemetry export
//! over OTLP/gRPC when an endpoint is configured (`telemetry.otlp_endpoint`,
//! else the standard `OTEL_EXPORTER_OTLP_ENDPOINT`). W3C trace context is read
//! from incoming gRPC metadata and written into outgoing calls, so one trace
//! follows a request across the services.

use opentelemetry::{
    global,
    propagation::{Extractor, Injector},
    trace::TracerProvider as _,
};
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{EnvFilter, Layer, layer::SubscriberExt, util::SubscriberInitExt};

use crate::config::{LogFormat, LogSettings, TelemetrySettings};

/// Flushes and stops the exporter when dropped: keep it alive in `main`.
#[must_use = "dropping the guard stops trace export"]
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Err(err) = self.provider.shutdown() {
            eprintln!("telemetry: flushing traces failed: {err}");
        }
    }
}

/// Installs the global subscriber. Spans always get trace ids, so context is
/// passed on to peers even when nothing is exported.
pub fn init(service: &str, log: &LogSettings, telemetry: &TelemetrySettings) -> anyhow::Result<TelemetryGuard> {
    global::set_text_map_propagator(TraceContextPropagator::new());
    let resource = Resource::builder()
        .with_service_name(format!("{service}-service"))
        .with_attribute(opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    let mut provider = SdkTracerProvider::builder().with_resource(resource);
    let endpoint = telemetry
        .otlp_endpoint
        .clone()
        .or_else(|| std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok().filter(|e| !e.is_empty()));
    if let Some(endpoint) = endpoint {
        use opentelemetry_otlp::WithExportConfig as _;
        let exporter = opentelemetry_otlp::SpanExporter::builder().with_tonic().with_endpoint(endpoint).build()?;
        provider = provider.with_batch_exporter(exporter);
    }
    let provider = provider.build();
    global::set_tracer_provider(provider.clone());
    // No busy/idle clocks on every poll, no thread or source-line attributes:
    // a span per call costs what it records, and these record nothing a
    // trace of an RPC needs.
    let otel = tracing_opentelemetry::layer()
        .with_tracked_inactivity(false)
        .with_threads(false)
        .with_location(false)
        .with_tracer(provider.tracer("tradewatch"));

    let filter = EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new(&log.filter))?;
    let fmt = match log.format {
        LogFormat::Pretty => tracing_subscriber::fmt::layer().with_target(false).boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer().event_format(JsonWithTrace).boxed(),
    };
    // The log filter chooses what is logged, not what is traced: spans are
    // exported at INFO and above whatever the logs show.
    let otel = otel.with_filter(tracing_subscriber::filter::LevelFilter::INFO);
    // A second init (several servers in one test process) keeps the first.
    let _ = tracing_subscriber::registry().with(fmt.with_filter(filter)).with(otel).try_init();
    Ok(TelemetryGuard { provider })
}

/// The span of one incoming RPC, a child of the caller's trace if it sent one.
pub fn rpc_span(request: &tonic::codegen::http::Request<()>) -> tracing::Span {
    let path = request.uri().path();
    let (service, method) = path.trim_start_matches('/').split_once('/').unwrap_or(("", path));
    let span = tracing::info_span!(
        "rpc",
        otel.name = %path.trim_start_matches('/'),
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = %service,
        rpc.method = %method,
        rpc.grpc.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    let parent = global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(request.headers())));
    // Fails only when no OpenTelemetry layer is installed (tests without init).
    let _ = span.set_parent(parent);
    span
}

/// The W3C `traceparent` of the current span, to be stored with work done
/// later (an outbox entry); empty when there is none.
pub fn current_traceparent() -> String {
    let cx = tracing::Span::current().context();
    let mut carrier = std::collections::HashMap::new();
    global::get_text_map_propagator(|p| p.inject_context(&cx, &mut carrier));
    carrier.remove("traceparent").unwrap_or_default()
}

/// Makes `span` a child of the trace a stored `traceparent` names.
pub fn continue_trace(span: &tracing::Span, traceparent: &str) {
    if traceparent.is_empty() {
        return;
    }
    let carrier = std::collections::HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let parent = global::get_text_map_propagator(|p| p.extract(&carrier));
    let _ = span.set_parent(parent);
}

/// Writes the current span's trace context into outgoing gRPC metadata.
pub fn inject_context(metadata: &mut tonic::metadata::MetadataMap) {
    let cx = tracing::Span::current().context();
    global::get_text_map_propagator(|p| p.inject_context(&cx, &mut MetadataInjector(metadata)));
}

struct HeaderExtractor<'a>(&'a tonic::codegen::http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

struct MetadataInjector<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            tonic::metadata::MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(key, value);
        }
    }
}

/// Records a call's gRPC status on its span, as the semantic conventions
/// say: `rpc.grpc.status_code` always; the span status ERROR on a SERVER span
/// only for the codes that are the server's fault, on a CLIENT span for any
/// code but OK.
pub fn record_status(span: &tracing::Span, code: tonic::Code, server: bool) {
    use tonic::Code::*;
    span.record("rpc.grpc.status_code", code as i64);
    let error = if server {
        matches!(code, Unknown | DeadlineExceeded | Unimplemented | Internal | Unavailable | DataLoss)
    } else {
        code != Ok
    };
    if error {
        span.record("otel.status_code", "ERROR");
    }
}

/// JSON log lines: timestamp, level, target, the event's fields, the span it
/// happened in, and that span's `trace_id` and `span_id`, so logs join traces.
struct JsonWithTrace;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for JsonWithTrace
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        use opentelemetry::trace::TraceContextExt as _;
        let meta = event.metadata();
        let mut line = serde_json::Map::new();
        let mut fields = JsonFields(&mut line);
        event.record(&mut fields);
        // The fixed keys last: an event field of the same name never hides them.
        line.insert("timestamp".into(), chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true).into());
        line.insert("level".into(), meta.level().as_str().into());
        line.insert("target".into(), meta.target().into());
        if let Some(span) = ctx.lookup_current() {
            line.insert("span".into(), span.name().into());
        }
        let cx = tracing::Span::current().context();
        let otel = cx.span();
        let sc = otel.span_context();
        if sc.is_valid() {
            line.insert("trace_id".into(), sc.trace_id().to_string().into());
            line.insert("span_id".into(), sc.span_id().to_string().into());
        }
        writeln!(writer, "{}", serde_json::Value::Object(line))
    }
}

struct JsonFields<'a>(&'a mut serde_json::Map<String, serde_json::Value>);

impl tracing::field::Visit for JsonFields<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().into(), format!("{value:?}").into());
    }
}
