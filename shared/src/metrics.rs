//! Prometheus metrics of one server, served at `/metrics` on the metrics
//! port, named as the OpenTelemetry semantic conventions are written in
//! Prometheus: `rpc_server_call_duration_seconds` and
//! `rpc_client_call_duration_seconds` by `rpc_method` and
//! `rpc_response_status_code`, `db_client_connections_usage` by `state` (the
//! semantic conventions' earlier name: promtool refuses a gauge named `_count`), calls in flight, the dialogue outbox and
//! relay, and `tradewatch_build_info`.
//!
//! `prometheus-client` is the Prometheus project's own Rust client: typed
//! metrics, no global registry (so several servers in one test process keep
//! their own counts), and the text format Prometheus and promtool read.
//! Each server owns one [`Metrics`]; gauges that mirror state elsewhere (the
//! pool, the outbox) are refreshed just before each scrape.

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, atomic::AtomicU64},
    time::Duration,
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::{Registry, Unit},
};

/// The labels of one RPC's duration.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    /// `tradewatch.tariff.v1.TariffService/GetMeasure`.
    pub rpc_method: String,
    /// `OK`, `INVALID_ARGUMENT`, …
    pub rpc_response_status_code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    service: String,
    version: String,
}

/// What a relay delivery came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Applied,
    Rejected,
    Retried,
}

type Refresh = Box<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// The metrics of one server. Cheap to clone.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

struct Inner {
    registry: Registry,
    server_duration: Family<RpcLabels, Histogram>,
    client_duration: Family<RpcLabels, Histogram>,
    in_flight: Gauge,
    pool: Family<PoolLabels, Gauge>,
    outbox_pending: Gauge,
    outbox_oldest_age: Gauge<f64, AtomicU64>,
    deliveries: Family<OutcomeLabels, Counter>,
    watchers: Gauge,
    watchers_cut_off: Counter,
    refresh: Mutex<Vec<Arc<Refresh>>>,
}

/// The buckets the semantic conventions advise for RPC durations, in seconds.
const DURATION_BUCKETS: [f64; 14] = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0];

fn histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

impl Metrics {
    /// The metrics of `service` (`tariff`), at `version`.
    pub fn new(service: &str, version: &str) -> Self {
        let mut registry = Registry::default();
        let server_duration = Family::<RpcLabels, Histogram>::new_with_constructor(histogram as fn() -> Histogram);
        registry.register_with_unit(
            "rpc_server_call_duration",
            "Duration of the RPCs this server answered",
            Unit::Seconds,
            server_duration.clone(),
        );
        let client_duration = Family::<RpcLabels, Histogram>::new_with_constructor(histogram as fn() -> Histogram);
        registry.register_with_unit(
            "rpc_client_call_duration",
            "Duration of the calls this service made to its peers, per attempt",
            Unit::Seconds,
            client_duration.clone(),
        );
        let in_flight = Gauge::default();
        registry.register("rpc_server_calls_in_flight", "Calls being served now", in_flight.clone());
        let pool = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "db_client_connections_usage",
            "Database connections of the pool, by state (used, idle)",
            pool.clone(),
        );
        let outbox_pending = Gauge::default();
        let outbox_oldest_age = Gauge::<f64, AtomicU64>::default();
        let deliveries = Family::<OutcomeLabels, Counter>::default();
        if service == "dialogue" {
            registry.register(
                "tradewatch_outbox_pending_effects",
                "Effects waiting in the outbox for the relay",
                outbox_pending.clone(),
            );
            registry.register_with_unit(
                "tradewatch_outbox_oldest_pending_age",
                "How long the oldest effect in the outbox has waited; 0 when none waits",
                Unit::Seconds,
                outbox_oldest_age.clone(),
            );
            registry.register(
                "tradewatch_relay_deliveries",
                "Effects the relay delivered, by outcome (applied, rejected, retried)",
                deliveries.clone(),
            );
        }
        let watchers = Gauge::default();
        registry.register("tradewatch_watchers", "Watch streams being served now", watchers.clone());
        let watchers_cut_off = Counter::default();
        registry.register(
            "tradewatch_watchers_cut_off",
            "Watch streams ended because the caller read too slowly (WATCHER_TOO_SLOW)",
            watchers_cut_off.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build.get_or_create(&BuildLabels { service: service.to_owned(), version: version.to_owned() }).set(1);
        registry.register("tradewatch_build_info", "The service and its version; always 1", build);
        Self(Arc::new(Inner {
            registry,
            server_duration,
            client_duration,
            in_flight,
            pool,
            outbox_pending,
            outbox_oldest_age,
            deliveries,
            watchers,
            watchers_cut_off,
            refresh: Mutex::new(Vec::new()),
        }))
    }

    /// Records one answered RPC.
    pub fn server_call(&self, method: &str, code: tonic::Code, took: Duration) {
        self.0.server_duration.get_or_create(&labels(method, code)).observe(took.as_secs_f64());
    }

    /// Records one attempt of a call to a peer.
    pub fn client_call(&self, method: &str, code: tonic::Code, took: Duration) {
        self.0.client_duration.get_or_create(&labels(method, code)).observe(took.as_secs_f64());
    }

    /// One more call in flight, until the returned guard drops.
    pub fn call_started(&self) -> InFlight {
        self.0.in_flight.inc();
        InFlight(self.0.in_flight.clone())
    }

    /// One more watch stream, until the returned guard drops.
    pub fn watcher_started(&self) -> InFlight {
        self.0.watchers.inc();
        InFlight(self.0.watchers.clone())
    }

    /// A watcher cut off for reading too slowly.
    pub fn watcher_cut_off(&self) {
        self.0.watchers_cut_off.inc();
    }

    pub fn set_pool(&self, used: u32, idle: u32) {
        self.0.pool.get_or_create(&PoolLabels { state: "used" }).set(i64::from(used));
        self.0.pool.get_or_create(&PoolLabels { state: "idle" }).set(i64::from(idle));
    }

    pub fn set_outbox(&self, pending: u64, oldest_age: Duration) {
        self.0.outbox_pending.set(i64::try_from(pending).unwrap_or(i64::MAX));
        self.0.outbox_oldest_age.set(oldest_age.as_secs_f64());
    }

    pub fn delivered(&self, outcome: Delivery) {
        let outcome = match outcome {
            Delivery::Applied => "applied",
            Delivery::Rejected => "rejected",
            Delivery::Retried => "retried",
        };
        self.0.deliveries.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// Runs `refresh` before every scrape, to bring mirrored gauges up to date.
    pub fn on_scrape<F, Fut>(&self, refresh: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let boxed: Refresh = Box::new(move || Box::pin(refresh()));
        if let Ok(mut all) = self.0.refresh.lock() {
            all.push(Arc::new(boxed));
        }
    }

    /// The text exposition, after the refreshes.
    pub async fn scrape(&self) -> String {
        let refreshes: Vec<Arc<Refresh>> = self.0.refresh.lock().map(|r| r.clone()).unwrap_or_default();
        for refresh in refreshes {
            // A refresh that hangs must not hang the scrape.
            let _ = tokio::time::timeout(Duration::from_secs(2), refresh()).await;
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.0.registry).is_err() {
            tracing::warn!("metrics could not be encoded");
        }
        prometheus_text(&out)
    }
}

/// The Prometheus text format (0.0.4) of an OpenMetrics exposition, which
/// is what `prometheus-client` writes: a counter's HELP and TYPE name its
/// samples (`x_total`, not `x`), and there is no `# UNIT` nor `# EOF`.
/// Prometheus reads either; promtool and most other tools read this one.
fn prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ").and_then(|t| t.strip_suffix(" counter")))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line.starts_with("# EOF") || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            counters.contains(name).then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// Keeps a call counted in flight while alive.
pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn labels(method: &str, code: tonic::Code) -> RpcLabels {
    RpcLabels { rpc_method: method.to_owned(), rpc_response_status_code: code_name(code).to_owned() }
}

/// The gRPC status code as the conventions write it: `OK`, `INVALID_ARGUMENT`, …
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Serves `GET /metrics` (and nothing else) on `listener` until dropped.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Metrics) {
    use hyper::{Response, StatusCode, body::Bytes, service::service_fn};
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let metrics = metrics.clone();
                async move {
                    if request.uri().path() == "/metrics" {
                        Response::builder()
                            .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
                            .body(http_body_util::Full::new(Bytes::from(metrics.scrape().await)))
                    } else {
                        Response::builder()
                            .status(StatusCode::NOT_FOUND)
                            .body(http_body_util::Full::new(Bytes::from_static(b"metrics are at /metrics\n")))
                    }
                }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
        });
    }
}

/// The address metrics are served on for a server on `grpc`: the metrics
/// port, or the gRPC port + 1000 when unset (an ephemeral port when the gRPC
/// port is); `None` when the metrics port is 0.
pub fn address(host: &str, grpc_port: u16, metrics_port: Option<u16>) -> Option<String> {
    let port = match metrics_port {
        Some(0) => return None,
        Some(port) => port,
        None if grpc_port == 0 => 0,
        None => grpc_port.checked_add(1000)?,
    };
    Some(format!("{host}:{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_scrape_names_series_as_the_conventions_do() {
        let m = Metrics::new("tariff", "1.2.3");
        m.server_call("tradewatch.tariff.v1.TariffService/GetMeasure", tonic::Code::Ok, Duration::from_millis(3));
        m.server_call(
            "tradewatch.tariff.v1.TariffService/GetMeasure",
            tonic::Code::InvalidArgument,
            Duration::from_millis(1),
        );
        m.set_pool(1, 3);
        let text = m.scrape().await;
        for series in [
            r#"rpc_server_call_duration_seconds_count{rpc_method="tradewatch.tariff.v1.TariffService/GetMeasure",rpc_response_status_code="OK"} 1"#,
            r#"rpc_server_call_duration_seconds_count{rpc_method="tradewatch.tariff.v1.TariffService/GetMeasure",rpc_response_status_code="INVALID_ARGUMENT"} 1"#,
            r#"db_client_connections_usage{state="idle"} 3"#,
            r#"tradewatch_build_info{service="tariff",version="1.2.3"} 1"#,
            "rpc_server_calls_in_flight 0",
        ] {
            assert!(text.contains(series), "{series} missing from:\n{text}");
        }
        assert!(!text.contains("tradewatch_outbox"), "only the dialogue service has an outbox");
    }

    #[test]
    fn the_metrics_port_follows_the_grpc_port() {
        assert_eq!(address("0.0.0.0", 50052, None).as_deref(), Some("0.0.0.0:51052"));
        assert_eq!(address("127.0.0.1", 0, None).as_deref(), Some("127.0.0.1:0"));
        assert_eq!(address("127.0.0.1", 50052, Some(9090)).as_deref(), Some("127.0.0.1:9090"));
        assert_eq!(address("127.0.0.1", 50052, Some(0)), None);
    }
}
