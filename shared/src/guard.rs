//! The guard in front of every service's API: a deadline on
//! every call, a bound on calls in flight in the process, and a panic caught
//! and answered INTERNAL while the process goes on serving.
//!
//! tonic's own `Server::timeout` answers CANCELLED and its `load_shed`
//! answers RESOURCE_EXHAUSTED per connection, sparing nothing; this layer
//! answers DEADLINE_EXCEEDED and UNAVAILABLE `OVERLOADED`, counts calls
//! across all connections, and never sheds health or reflection.

use std::{
    any::Any,
    convert::Infallible,
    panic::AssertUnwindSafe,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use futures::{FutureExt as _, future::BoxFuture};
use tokio::sync::Semaphore;
use tonic::{
    body::Body,
    codegen::{Service, http},
};

use crate::{
    Error,
    client::{Deadline, parse_grpc_timeout},
    metrics::Metrics,
};

/// Paths that are never shed: probes and tools must reach a busy server.
fn never_shed(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/") || path.starts_with("/grpc.reflection.")
}

/// The limits the guard applies; cheap to clone.
#[derive(Clone)]
pub struct GuardLayer {
    request_timeout: Duration,
    in_flight: Arc<Semaphore>,
    max_in_flight: usize,
    metrics: Metrics,
}

impl GuardLayer {
    pub fn new(request_timeout: Duration, max_in_flight: usize, metrics: Metrics) -> Self {
        Self { request_timeout, in_flight: Arc::new(Semaphore::new(max_in_flight)), max_in_flight, metrics }
    }
}

impl<S> tower_layer::Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Guard { inner, limits: self.clone() }
    }
}

/// A service behind the guard.
#[derive(Clone)]
pub struct Guard<S> {
    inner: S,
    limits: GuardLayer,
}

impl<S, B> Service<http::Request<B>> for Guard<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path().to_owned();
        if never_shed(&path) {
            return self.guarded(request, path);
        }
        // Every API call is measured: its duration by method and status,
        // and the calls in flight; its span gets the status too.
        let metrics = self.limits.metrics.clone();
        let counted = metrics.call_started();
        let started = std::time::Instant::now();
        let call = self.guarded(request, path.clone());
        Box::pin(async move {
            let _counted = counted;
            let response = call.await;
            let code = response.as_ref().map_or(tonic::Code::Unknown, status_of);
            // A method nobody serves is counted under one label, whatever
            // its answer, so that made-up paths cannot grow the series.
            let method = if crate::proto::is_method(&path) { path.trim_start_matches('/') } else { "unknown" };
            metrics.server_call(method, code, started.elapsed());
            crate::telemetry::record_status(&tracing::Span::current(), code, true);
            response
        })
    }
}

/// The gRPC status of a response: `grpc-status` in its headers (an error
/// answered at once), else OK (the status then comes in the trailers, and
/// every failure of ours is answered at once).
fn status_of(response: &http::Response<Body>) -> tonic::Code {
    response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map_or(tonic::Code::Ok, tonic::Code::from_i32)
}

impl<S> Guard<S> {
    fn guarded<B>(
        &mut self,
        mut request: http::Request<B>,
        path: String,
    ) -> BoxFuture<'static, Result<http::Response<Body>, Infallible>>
    where
        S: Service<http::Request<B>, Response = http::Response<Body>, Error = Infallible> + Clone + Send + 'static,
        S::Future: Send + 'static,
        B: Send + 'static,
    {
        let permit = if never_shed(&path) {
            None
        } else {
            match self.limits.in_flight.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    tracing::warn!(%path, max_in_flight = self.limits.max_in_flight, "overloaded: call shed");
                    let err = Error::unavailable(
                        crate::Reason::Overloaded,
                        format!(
                            "the server is serving its limit of {} calls; retry with backoff",
                            self.limits.max_in_flight
                        ),
                    )
                    .with_metadata("max_in_flight", self.limits.max_in_flight.to_string());
                    return Box::pin(std::future::ready(Ok(reply(err))));
                }
            }
        };
        let caller = request.headers().get("grpc-timeout").and_then(|v| v.to_str().ok()).and_then(parse_grpc_timeout);
        let budget = caller.map_or(self.limits.request_timeout, |c| c.min(self.limits.request_timeout));
        request.extensions_mut().insert(Deadline::after(budget));

        // The service that was made ready is the one that serves (tower's rule).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let call = std::panic::catch_unwind(AssertUnwindSafe(move || inner.call(request)));
        Box::pin(async move {
            let _permit = permit;
            let call = match call {
                Ok(call) => call,
                Err(panic) => return Ok(panicked(&path, panic.as_ref())),
            };
            match tokio::time::timeout(budget, AssertUnwindSafe(call).catch_unwind()).await {
                Ok(Ok(response)) => response,
                Ok(Err(panic)) => Ok(panicked(&path, panic.as_ref())),
                Err(_) => {
                    tracing::warn!(%path, ?budget, "deadline exceeded: call abandoned");
                    Ok(reply(
                        Error::deadline_exceeded(format!(
                            "the call did not finish within its deadline ({budget:?}); a write may or may not \
                             have taken effect: retry with the same request_id, or read before writing again"
                        ))
                        .with_metadata("timeout_ms", budget.as_millis().to_string()),
                    ))
                }
            }
        })
    }
}

fn reply(err: Error) -> http::Response<Body> {
    tonic::Status::from(err).into_http()
}

fn panicked(path: &str, panic: &(dyn Any + Send)) -> http::Response<Body> {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with no message".to_owned());
    reply(Error::internal(anyhow::anyhow!("the handler of {path} panicked: {what}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_metrics() -> Metrics {
        Metrics::new("test", "0")
    }
    use tower_layer::Layer as _;

    #[derive(Clone)]
    struct Handler(fn(&str) -> http::Response<Body>, Duration);

    impl Service<http::Request<()>> for Handler {
        type Response = http::Response<Body>;
        type Error = Infallible;
        type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: http::Request<()>) -> Self::Future {
            let (handler, delay) = (self.0, self.1);
            let path = request.uri().path().to_owned();
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                Ok(handler(&path))
            })
        }
    }

    fn ok(_: &str) -> http::Response<Body> {
        http::Response::new(Body::default())
    }

    fn boom(path: &str) -> http::Response<Body> {
        panic!("boom at {path}")
    }

    fn status_of(response: &http::Response<Body>) -> Option<tonic::Status> {
        tonic::Status::from_header_map(response.headers())
    }

    fn request(path: &str, timeout: Option<&str>) -> http::Request<()> {
        let mut r = http::Request::builder().uri(path);
        if let Some(t) = timeout {
            r = r.header("grpc-timeout", t);
        }
        r.body(()).unwrap_or_default()
    }

    #[tokio::test]
    async fn a_panic_is_internal_and_the_service_goes_on() {
        let mut guard =
            GuardLayer::new(Duration::from_secs(5), 10, test_metrics()).layer(Handler(boom, Duration::ZERO));
        for _ in 0..2 {
            let response = guard.call(request("/x.S/M", None)).await.unwrap_or_else(|e| match e {});
            assert_eq!(status_of(&response).map(|s| s.code()), Some(tonic::Code::Internal));
        }
    }

    #[tokio::test]
    async fn the_shorter_deadline_wins_and_is_deadline_exceeded() {
        let mut guard =
            GuardLayer::new(Duration::from_millis(50), 10, test_metrics()).layer(Handler(ok, Duration::from_secs(5)));
        let response =
            guard.call(request("/x.S/M", Some("18446744073709551615S"))).await.unwrap_or_else(|e| match e {});
        assert_eq!(status_of(&response).map(|s| s.code()), Some(tonic::Code::DeadlineExceeded));
        let mut guard =
            GuardLayer::new(Duration::from_secs(60), 10, test_metrics()).layer(Handler(ok, Duration::from_secs(5)));
        let response = guard.call(request("/x.S/M", Some("20m"))).await.unwrap_or_else(|e| match e {});
        assert_eq!(status_of(&response).map(|s| s.code()), Some(tonic::Code::DeadlineExceeded));
    }

    #[tokio::test]
    async fn calls_past_the_limit_are_overloaded_but_health_is_never_shed() {
        let layer = GuardLayer::new(Duration::from_secs(5), 2, test_metrics());
        let slow = layer.layer(Handler(ok, Duration::from_millis(300)));
        let held: Vec<_> = (0..2).map(|_| tokio::spawn(slow.clone().call(request("/x.S/M", None)))).collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let shed = slow.clone().call(request("/x.S/M", None)).await.unwrap_or_else(|e| match e {});
        let status = status_of(&shed);
        assert_eq!(status.as_ref().map(tonic::Status::code), Some(tonic::Code::Unavailable));
        let health =
            slow.clone().call(request("/grpc.health.v1.Health/Check", None)).await.unwrap_or_else(|e| match e {});
        assert_eq!(status_of(&health).map(|s| s.code()), None, "health answered");
        for h in held {
            let response = h.await.ok().and_then(Result::ok);
            assert!(response.is_some_and(|r| status_of(&r).is_none()));
        }
        let after = slow.clone().call(request("/x.S/M", None)).await.unwrap_or_else(|e| match e {});
        assert!(status_of(&after).is_none(), "permits come back");
    }
}
