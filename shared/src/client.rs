//! Calling another Tradewatch service: one shared channel per peer, a
//! deadline on every call (the caller's remaining budget when shorter),
//! trace context passed on, and retries with backoff only for UNAVAILABLE
//! on idempotent calls (AIP-194). A peer that cannot be reached is
//! UNAVAILABLE for our caller too; what a peer refuses comes back as it was.

use std::{
    future::Future,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use tonic::{Code, Request, Status, metadata::MetadataMap, transport::Channel};
use tonic_types::StatusExt;
use uuid::Uuid;

use crate::{
    Error, Result,
    config::PeerSettings,
    proto::{
        dispute::{self as dpb, dispute_service_client::DisputeServiceClient},
        tariff::{self as tpb, tariff_service_client::TariffServiceClient},
    },
    telemetry, tls,
};

pub use crate::batch::BATCH_LIMIT;
const ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(50);

/// The time left for a call: the caller's `grpc-timeout`, if it sent one.
#[derive(Debug, Clone, Copy, Default)]
pub struct Deadline(Option<Instant>);

impl Deadline {
    /// The deadline of an incoming request: the one the server's guard set
    /// (the shorter of the caller's `grpc-timeout` and the server's own
    /// limit), else the caller's.
    pub fn of<T>(request: &Request<T>) -> Self {
        match request.extensions().get::<Deadline>() {
            Some(deadline) => *deadline,
            None => Self::from_metadata(request.metadata()),
        }
    }

    pub fn from_metadata(metadata: &MetadataMap) -> Self {
        let timeout = metadata.get("grpc-timeout").and_then(|v| v.to_str().ok()).and_then(parse_grpc_timeout);
        Self(timeout.and_then(|t| Instant::now().checked_add(t)))
    }

    pub fn none() -> Self {
        Self(None)
    }

    /// `d` from now; a `d` too large for the clock is no deadline.
    pub fn after(d: Duration) -> Self {
        Self(Instant::now().checked_add(d))
    }

    fn remaining(&self) -> Option<Duration> {
        self.0.map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// The deadline `percent` of the way from now to this one (none stays
    /// none): what a call that composes its peers' answers gives them,
    /// keeping the rest to answer with what came back in time.
    #[must_use]
    pub fn share(self, percent: u32) -> Self {
        match self.remaining() {
            Some(left) => Self::after(left.mul_f64(f64::from(percent.min(100)) / 100.0)),
            None => self,
        }
    }
}

/// The service's own token, read from a file and read again whenever the
/// file changes (Kubernetes rewrites a projected service-account token before
/// it expires).
#[derive(Debug, Clone)]
struct TokenFile {
    path: PathBuf,
    cached: Arc<Mutex<Option<(SystemTime, tonic::metadata::AsciiMetadataValue)>>>,
}

impl TokenFile {
    fn new(path: PathBuf) -> Self {
        Self { path, cached: Arc::new(Mutex::new(None)) }
    }

    /// `Bearer <token>`; `None` when the file cannot be read (the peer then
    /// refuses the call UNAUTHENTICATED, which our caller sees).
    fn bearer(&self) -> Option<tonic::metadata::AsciiMetadataValue> {
        let modified = std::fs::metadata(&self.path).and_then(|m| m.modified()).ok();
        let mut cached = self.cached.lock().ok()?;
        if let (Some(modified), Some((at, value))) = (modified, cached.as_ref())
            && *at == modified
        {
            return Some(value.clone());
        }
        let token = match std::fs::read_to_string(&self.path) {
            Ok(token) => token,
            Err(err) => {
                tracing::warn!(path = %self.path.display(), error = %err, "peers.token_file cannot be read");
                return None;
            }
        };
        let value: tonic::metadata::AsciiMetadataValue = format!("Bearer {}", token.trim()).parse().ok()?;
        *cached = modified.map(|m| (m, value.clone()));
        Some(value)
    }
}

/// `grpc-timeout` as the gRPC spec writes it: 1 to 8 ASCII digits and a
/// unit (H, M, S, m, u, n). Anything else is no timeout at all.
pub fn parse_grpc_timeout(s: &str) -> Option<Duration> {
    if !s.is_ascii() {
        return None;
    }
    let (digits, unit) = s.split_at(s.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// One peer service: a lazily connected, shared channel.
#[derive(Debug, Clone)]
pub struct Peer {
    name: &'static str,
    channel: Channel,
    timeout: Duration,
    token: Option<TokenFile>,
    metrics: Option<crate::metrics::Metrics>,
}

impl Peer {
    /// A peer at a plain `http://` URL (or `https://` with the system's
    /// roots), called without a token.
    pub fn new(name: &'static str, url: &str, timeout: Duration) -> anyhow::Result<Self> {
        let tls = url.starts_with("https://").then(|| tonic::transport::ClientTlsConfig::new().with_native_roots());
        Self::build(name, url, timeout, tls, None)
    }

    /// A peer as `peers` configures it: an `https://` URL is TLS verified
    /// against `peers.ca_file` (with our certificate when one is set) and
    /// never plaintext; every call carries the token of `peers.token_file`.
    pub fn configured(name: &'static str, url: &str, peers: &PeerSettings) -> anyhow::Result<Self> {
        let tls = if url.starts_with("https://") { Some(tls::peer_config(peers)?) } else { None };
        let token = peers.token_file.clone().map(TokenFile::new);
        if let Some(token) = &token {
            token
                .bearer()
                .ok_or_else(|| anyhow::anyhow!("peers.token_file {}: cannot be read", token.path.display()))?;
        }
        Self::build(name, url, Duration::from_millis(peers.timeout_ms), tls, token)
    }

    /// `name` says who the peer is in errors ("tariff service"); the channel
    /// connects on first use and reconnects after the peer comes back.
    fn build(
        name: &'static str,
        url: &str,
        timeout: Duration,
        tls: Option<tonic::transport::ClientTlsConfig>,
        token: Option<TokenFile>,
    ) -> anyhow::Result<Self> {
        let mut endpoint = tonic::transport::Endpoint::from_shared(url.to_owned())?
            .connect_timeout(timeout.min(Duration::from_secs(2)))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true);
        if let Some(tls) = tls {
            endpoint = endpoint.tls_config(tls)?;
        }
        Ok(Self { name, channel: endpoint.connect_lazy(), timeout, token, metrics: None })
    }

    /// The same peer, its calls measured in `metrics`
    /// (`rpc_client_call_duration_seconds`).
    #[must_use]
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// A request to the peer: the shorter of our timeout and the caller's
    /// remaining time, and the current trace context.
    pub fn request<M>(&self, message: M, deadline: Deadline) -> Request<M> {
        let timeout = deadline.remaining().map_or(self.timeout, |left| left.min(self.timeout));
        let mut request = Request::new(message);
        request.set_timeout(timeout);
        telemetry::inject_context(request.metadata_mut());
        if let Some(bearer) = self.token.as_ref().and_then(TokenFile::bearer) {
            request.metadata_mut().insert("authorization", bearer);
        }
        request
    }

    /// A request for a stream that lasts as long as it is read (a Watch):
    /// no timeout, the trace context and the token as [`Self::request`].
    pub fn stream_request<M>(&self, message: M) -> Request<M> {
        let mut request = Request::new(message);
        telemetry::inject_context(request.metadata_mut());
        if let Some(bearer) = self.token.as_ref().and_then(TokenFile::bearer) {
            request.metadata_mut().insert("authorization", bearer);
        }
        request
    }

    /// The peer's channel, for a stream of [`Self::stream_request`].
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// Who the peer is in errors ("tariff service").
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Runs `call`, retrying an idempotent one while the peer is UNAVAILABLE
    /// and time is left. A peer that stays down, or does not answer in time,
    /// is UNAVAILABLE for our caller.
    /// Each attempt is a CLIENT span named `method`
    /// (`tradewatch.tariff.v1.TariffService/BatchGetMeasures`), whose context
    /// the peer continues, and one observation of the call duration.
    pub async fn call<T, F, Fut>(
        &self,
        method: &'static str,
        deadline: Deadline,
        idempotent: bool,
        mut call: F,
    ) -> Result<T>
    where
        F: FnMut(Channel, Deadline) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        use tracing::Instrument as _;
        let deadline = match deadline.remaining() {
            Some(left) if left < self.timeout => deadline,
            _ => Deadline::after(self.timeout),
        };
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let (service, rpc) = method.split_once('/').unwrap_or((method, ""));
            let span = tracing::info_span!(
                "peer",
                otel.name = method,
                otel.kind = "client",
                rpc.system = "grpc",
                rpc.service = service,
                rpc.method = rpc,
                peer.service = self.name,
                rpc.grpc.status_code = tracing::field::Empty,
                otel.status_code = tracing::field::Empty,
            );
            let started = Instant::now();
            // The request is made (and the trace context injected) inside the span.
            let attempt_call = span.in_scope(|| call(self.channel.clone(), deadline));
            let outcome = attempt_call.instrument(span.clone()).await;
            let code = outcome.as_ref().map_or_else(Status::code, |_| Code::Ok);
            telemetry::record_status(&span, code, false);
            if let Some(metrics) = &self.metrics {
                metrics.client_call(method, code, started.elapsed());
            }
            match outcome {
                Ok(v) => return Ok(v),
                Err(status) if status.code() == Code::Unavailable && idempotent && attempt < ATTEMPTS => {
                    let left = deadline.remaining().unwrap_or_default();
                    if left <= backoff {
                        return Err(self.unavailable(&status));
                    }
                    tracing::debug!(peer = self.name, attempt, error = %status.message(), "peer unavailable; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                    attempt += 1;
                }
                Err(status) => return Err(self.passed_on(status)),
            }
        }
    }

    fn unavailable(&self, status: &Status) -> Error {
        tracing::warn!(peer = self.name, code = ?status.code(), error = %status.message(), "peer unavailable");
        Error::unavailable(crate::Reason::PeerUnavailable, format!("the {} is unavailable; retry later", self.name))
            .with_metadata("peer", self.name)
    }

    /// A peer's answer turned into our error: outages are UNAVAILABLE, a
    /// refusal keeps its code and reason.
    fn passed_on(&self, status: Status) -> Error {
        match status.code() {
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown => self.unavailable(&status),
            Code::Internal | Code::DataLoss | Code::Unimplemented | Code::Unauthenticated | Code::PermissionDenied => {
                Error::internal(anyhow::anyhow!("the {} answered {:?}: {}", self.name, status.code(), status.message()))
            }
            code => {
                let details = status.get_error_details();
                let reason = details.error_info().map(|i| i.reason.clone()).unwrap_or_default();
                let reason = if reason.is_empty() {
                    crate::error::reason_name(crate::Reason::PeerRefused).to_owned()
                } else {
                    reason
                };
                let mut err =
                    Error::from_peer(code, reason, format!("the {} refused: {}", self.name, status.message()));
                if let Some(info) = details.error_info() {
                    for (k, v) in &info.metadata {
                        err = err.with_metadata(k.clone(), v.clone());
                    }
                }
                err.with_metadata("peer", self.name)
            }
        }
    }

    /// Which of `ids` the peer does not know, asked with batched `BatchGet`
    /// calls of at most 100 ids (`batch_get` makes one call). A batch whose
    /// answer would not fit in one message (large resources) is asked again
    /// in halves.
    async fn missing<F, Fut>(
        &self,
        method: &'static str,
        ids: &[Uuid],
        deadline: Deadline,
        batch_get: F,
    ) -> Result<Vec<Uuid>>
    where
        F: Fn(Channel, Deadline, Vec<String>) -> Fut,
        Fut: Future<Output = Result<(), Status>>,
    {
        let mut unique: Vec<Uuid> = ids.to_vec();
        unique.sort();
        unique.dedup();
        let mut missing = Vec::new();
        let mut batches: Vec<&[Uuid]> = unique.chunks(BATCH_LIMIT).collect();
        while let Some(batch) = batches.pop() {
            let wanted: Vec<String> = batch.iter().map(ToString::to_string).collect();
            let answer = self.call(method, deadline, true, |ch, d| batch_get(ch, d, wanted.clone())).await;
            match answer {
                Ok(()) => {}
                Err(err) if err.code() == Code::NotFound => {
                    let listed = err.metadata().get("missing_ids").cloned().unwrap_or_default();
                    missing.extend(listed.split(',').filter_map(|s| Uuid::try_parse(s).ok()));
                }
                Err(err) if err.is(crate::Reason::ResponseTooLarge) && batch.len() > 1 => {
                    let (a, b) = batch.split_at(batch.len() / 2);
                    batches.extend([a, b]);
                }
                Err(err) => return Err(err),
            }
        }
        Ok(missing)
    }

    /// The tariff measures among `ids` that do not exist.
    pub async fn missing_measures(&self, ids: &[Uuid], deadline: Deadline) -> Result<Vec<Uuid>> {
        self.missing("tradewatch.tariff.v1.TariffService/BatchGetMeasures", ids, deadline, |ch, d, ids| async move {
            TariffServiceClient::new(ch)
                .batch_get_measures(self.request(tpb::BatchGetMeasuresRequest { ids }, d))
                .await
                .map(|_| ())
        })
        .await
    }

    /// The disputes among `ids` that do not exist.
    pub async fn missing_disputes(&self, ids: &[Uuid], deadline: Deadline) -> Result<Vec<Uuid>> {
        self.missing("tradewatch.dispute.v1.DisputeService/BatchGetDisputes", ids, deadline, |ch, d, ids| async move {
            DisputeServiceClient::new(ch)
                .batch_get_disputes(self.request(dpb::BatchGetDisputesRequest { ids }, d))
                .await
                .map(|_| ())
        })
        .await
    }
}

/// Adds a field violation for every id in `ids` (at `field[i]`) that is in `missing`.
pub fn name_missing(v: &mut crate::validate::Violations, field: &str, ids: &[Uuid], missing: &[Uuid], what: &str) {
    for (i, id) in ids.iter().enumerate() {
        if missing.contains(id) {
            v.add(format!("{field}[{i}]"), format!("{id} is not a known {what}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_file_is_read_again_when_it_is_replaced() {
        let dir = std::env::temp_dir().join(format!("tradewatch-token-{}", Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let path = dir.join("token");
        std::fs::write(&path, "first\n").unwrap_or_else(|e| panic!("{e}"));
        let file = TokenFile::new(path.clone());
        let read = |f: &TokenFile| f.bearer().map(|v| v.to_str().unwrap_or_default().to_owned());
        assert_eq!(read(&file).as_deref(), Some("Bearer first"));
        assert_eq!(read(&file).as_deref(), Some("Bearer first"), "unchanged: the cached value");
        // As the kubelet rotates a projected token: a new file moved over the old one.
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(dir.join("next"), "second").unwrap_or_else(|e| panic!("{e}"));
        std::fs::rename(dir.join("next"), &path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read(&file).as_deref(), Some("Bearer second"));
        std::fs::remove_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read(&file), None, "gone: no token rather than a stale one");
    }

    #[test]
    fn grpc_timeouts_parse() {
        assert_eq!(parse_grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("5"), None);
        assert_eq!(parse_grpc_timeout(""), None);
        assert_eq!(parse_grpc_timeout("xS"), None);
        assert_eq!(parse_grpc_timeout("99999999H"), Some(Duration::from_secs(99_999_999 * 3600)));
        for hostile in ["18446744073709551615S", "123456789S", "-1S", "+1S", "1 S", "S", "1s", "é"] {
            assert_eq!(parse_grpc_timeout(hostile), None, "{hostile}");
        }
    }

    #[test]
    fn an_absurd_grpc_timeout_is_no_deadline_and_no_panic() {
        let mut metadata = MetadataMap::new();
        metadata.insert("grpc-timeout", tonic::metadata::MetadataValue::from_static("18446744073709551615S"));
        assert!(Deadline::from_metadata(&metadata).remaining().is_none());
        metadata.insert("grpc-timeout", tonic::metadata::MetadataValue::from_static("99999999H"));
        let _ = Deadline::from_metadata(&metadata);
        let _ = Deadline::after(Duration::MAX);
    }

    #[tokio::test]
    async fn a_peer_that_is_down_is_unavailable_after_retries() {
        let peer = Peer::new("tariff service", "http://127.0.0.1:1", Duration::from_millis(800))
            .unwrap_or_else(|e| panic!("{e}"));
        let started = Instant::now();
        let err = peer.missing_measures(&[Uuid::now_v7()], Deadline::none()).await.err();
        assert_eq!(err.as_ref().map(Error::code), Some(Code::Unavailable));
        assert_eq!(err.as_ref().map(Error::reason), Some("PEER_UNAVAILABLE"));
        assert!(started.elapsed() < Duration::from_secs(2), "bounded by the deadline");
    }

    #[tokio::test]
    async fn a_batch_too_large_to_answer_is_asked_again_in_halves() {
        let peer =
            Peer::new("tariff service", "http://127.0.0.1:1", Duration::from_secs(1)).unwrap_or_else(|e| panic!("{e}"));
        let ids: Vec<Uuid> = (0..100).map(|_| Uuid::now_v7()).collect();
        let unknown = ids[37].to_string();
        let asked = std::sync::Mutex::new(Vec::new());
        let missing = peer
            .missing("test/BatchGet", &ids, Deadline::none(), |_, _, wanted: Vec<String>| {
                asked.lock().map(|mut a| a.push(wanted.len())).unwrap_or_default();
                let unknown = unknown.clone();
                async move {
                    if wanted.len() > 10 {
                        return Err(Status::from(Error::out_of_range(
                            crate::Reason::ResponseTooLarge,
                            "ask for fewer",
                        )));
                    }
                    if wanted.contains(&unknown) {
                        return Err(Status::from(Error::not_found_many("measure", std::slice::from_ref(&unknown))));
                    }
                    Ok(())
                }
            })
            .await;
        assert_eq!(missing.ok(), Some(vec![ids[37]]));
        let asked = asked.into_inner().unwrap_or_default();
        assert_eq!(asked.iter().filter(|n| **n <= 10).sum::<usize>(), 100, "every id asked once in a batch that fit");
    }

    #[tokio::test]
    async fn non_idempotent_calls_are_not_retried() {
        let peer =
            Peer::new("tariff service", "http://127.0.0.1:1", Duration::from_secs(1)).unwrap_or_else(|e| panic!("{e}"));
        let mut calls = 0;
        let _ = peer
            .call("test/Call", Deadline::none(), false, |_, _| {
                calls += 1;
                async { Err::<(), _>(Status::unavailable("down")) }
            })
            .await;
        assert_eq!(calls, 1);
        let mut calls = 0;
        let _ = peer
            .call("test/Call", Deadline::none(), true, |_, _| {
                calls += 1;
                async { Err::<(), _>(Status::unavailable("down")) }
            })
            .await;
        assert_eq!(calls, ATTEMPTS);
    }
}
