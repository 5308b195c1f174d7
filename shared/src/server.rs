//! The one gRPC server every service runs: its API beside
//! `grpc.health.v1.Health` and server reflection v1 and v1alpha, on one port,
//! with message-size limits, a span per RPC, the guard of [`crate::guard`]
//! (deadline, calls in flight, caught panics), a bound on streams per
//! connection, and a graceful shutdown.
//!
//! Health: `""` is SERVING while the process serves; the service's own name is
//! SERVING only while its database answers and holds every migration of this
//! version (checked every few seconds; a service without a database is
//! SERVING while it serves), so a readiness probe on the service
//! name keeps a new version out of rotation until its migrations ran, and
//! takes a replica out when its database is gone, while the liveness probe
//! on `""` leaves it running.
//! On shutdown both go NOT_SERVING first, new connections are refused,
//! in-flight calls finish within `drain_timeout_secs`, then `serve` returns.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use sea_orm::DatabaseConnection;
use tokio::{net::TcpListener, sync::Notify};
use tonic::{service::Routes, transport::server::TcpIncoming};
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::{
    auth::{AuthLayer, Authenticator},
    config::{ServerSettings, Settings},
    db,
    feed::Feed,
    guard::GuardLayer,
    metrics::{self, Metrics},
    proto, telemetry, tls,
};

const DB_CHECK_EVERY: Duration = Duration::from_secs(5);

/// How often expired idempotency keys are removed.
const IDEMPOTENCY_SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// Headers of one call, bearer token included, fit well within this.
const MAX_HEADER_LIST_BYTES: u32 = 32 * 1024;

/// A service's application, bound and ready to serve: what the tests start
/// the same way for every service.
pub trait Served: Send + Sized + 'static {
    fn local_addr(&self) -> SocketAddr;

    /// Where `/metrics` is served, when it is.
    fn metrics_addr(&self) -> Option<SocketAddr>;

    /// Serves until `shutdown` resolves, then drains.
    fn serve(
        self,
        shutdown: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> futures::future::BoxFuture<'static, anyhow::Result<()>>;
}

/// Implements [`Served`] for a service's `Application`, which has
/// `local_addr()` and `run_until_stopped(shutdown)`.
#[macro_export]
macro_rules! impl_served {
    ($app:ty) => {
        impl $crate::server::Served for $app {
            fn local_addr(&self) -> std::net::SocketAddr {
                <$app>::local_addr(self)
            }

            fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
                <$app>::metrics_addr(self)
            }

            fn serve(
                self,
                shutdown: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
            ) -> futures::future::BoxFuture<'static, anyhow::Result<()>> {
                Box::pin(self.run_until_stopped(shutdown))
            }
        }
    };
}

/// A server bound to its port, not yet serving.
pub struct GrpcServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    settings: ServerSettings,
    tls: Option<tonic::transport::ServerTlsConfig>,
    auth: Option<Authenticator>,
    health_listener: Option<TcpListener>,
    metrics: Metrics,
    metrics_listener: Option<TcpListener>,
    retention: Duration,
    stopping: tokio::sync::watch::Sender<bool>,
    service: String,
    feed_settings: crate::config::FeedSettings,
    /// The change feed of the service, once asked for: its background work
    /// (LISTEN, the prune) runs and stops with the server.
    feed: Option<Feed>,
    /// What must be done before the service is SERVING (its indexes
    /// loaded); calls are answered meanwhile, health says NOT_SERVING.
    ready: Option<std::pin::Pin<Box<dyn Future<Output = ()> + Send>>>,
    /// The hold on a SQLite file, kept while the server lives.
    _sqlite: Option<crate::db::SqliteHold>,
}

impl GrpcServer {
    /// Reads the TLS files and the JWKS, then binds `server.host:server.port`
    /// and the metrics port of `service` (`tariff`); port 0 takes a free port
    /// (tests).
    pub async fn bind(settings: &Settings, service: &str) -> anyhow::Result<Self> {
        Self::bind_with(settings, service, true).await
    }

    /// [`Self::bind`] for a service that keeps no database (the relations
    /// service): `database.*` is not read.
    pub async fn bind_stateless(settings: &Settings, service: &str) -> anyhow::Result<Self> {
        Self::bind_with(settings, service, false).await
    }

    async fn bind_with(settings: &Settings, service: &str, database: bool) -> anyhow::Result<Self> {
        settings.check_exposure()?;
        let sqlite = if database { crate::db::hold_sqlite(&settings.database.url)? } else { None };
        let tls = tls::server_config(&settings.server.tls)?;
        let auth = Authenticator::from_settings(&settings.auth).await?;
        let server = &settings.server;
        let addr = format!("{}:{}", server.host, server.port);
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|err| anyhow::anyhow!("cannot listen on {addr} (server.host, server.port): {err}"))?;
        let local_addr = listener.local_addr()?;
        let health_listener = match server.health_port {
            Some(port) => {
                let addr = format!("{}:{port}", server.host);
                Some(TcpListener::bind(&addr).await.map_err(|err| {
                    anyhow::anyhow!("cannot listen on {addr} (server.host, server.health_port): {err}")
                })?)
            }
            None => None,
        };
        let metrics_addr = if settings.telemetry.metrics_on_any_port {
            Some(format!("{}:0", server.host))
        } else {
            metrics::address(&server.host, server.port, settings.telemetry.metrics_port)
        };
        let metrics_listener = match metrics_addr {
            Some(addr) => Some(TcpListener::bind(&addr).await.map_err(|err| {
                anyhow::anyhow!("cannot listen on {addr} for metrics (telemetry.metrics_port): {err}")
            })?),
            None => None,
        };
        let metrics = Metrics::new(service, env!("CARGO_PKG_VERSION"));
        Ok(Self {
            listener,
            local_addr,
            settings: server.clone(),
            tls,
            auth,
            health_listener,
            metrics,
            metrics_listener,
            retention: settings.idempotency.retention(),
            stopping: tokio::sync::watch::Sender::new(false),
            service: service.to_owned(),
            feed_settings: settings.feed.clone(),
            feed: None,
            ready: None,
            _sqlite: sqlite,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where `/metrics` is served, when it is.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The service's change feed on `db`, served with this server: its
    /// watchers end when the server begins to shut down, its background work
    /// when the server stops.
    pub fn feed(&mut self, db: &DatabaseConnection) -> Feed {
        let feed = Feed::new(&self.service, db.clone(), &self.feed_settings, self.metrics.clone(), self.stopping());
        self.feed = Some(feed.clone());
        feed
    }

    /// Turns true when the server begins to shut down: long-lived work
    /// (watch streams) ends then, so that the drain does not wait on it.
    pub fn stopping(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    /// Health stays NOT_SERVING until `ready` is done (and the database
    /// answers): a replica that loads its indexes at start takes traffic
    /// only once they are loaded. Calls are served meanwhile.
    pub fn ready_after(&mut self, ready: impl Future<Output = ()> + Send + 'static) {
        self.ready = Some(Box::pin(ready));
    }

    /// The server's metrics, for what the service measures itself.
    pub fn metrics(&self) -> Metrics {
        self.metrics.clone()
    }

    /// Serves `routes` (the service's API, registered under `service_name`)
    /// until `shutdown` resolves, then drains. The service's health follows
    /// `db` and its `schema`.
    pub async fn serve(
        self,
        service_name: &'static str,
        routes: Routes,
        db: DatabaseConnection,
        schema: Vec<String>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        self.serve_with(service_name, routes, Some((db, schema)), shutdown).await
    }

    /// [`Self::serve`] for a service that keeps no database: its health is
    /// SERVING while it serves (its peers being down takes the sections it
    /// reads from them, not the service, out).
    pub async fn serve_stateless(
        self,
        service_name: &'static str,
        routes: Routes,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        self.serve_with(service_name, routes, None, shutdown).await
    }

    async fn serve_with(
        self,
        service_name: &'static str,
        routes: Routes,
        database: Option<(DatabaseConnection, Vec<String>)>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (reporter, health) = tonic_health::server::health_reporter();
        // health_reporter() marks "" SERVING at once: not before we are ready.
        reporter.set_service_status("", ServingStatus::NotServing).await;
        reporter.set_service_status(service_name, ServingStatus::NotServing).await;

        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                // google.rpc.ErrorInfo and BadRequest, so that grpcurl can
                // print the details of an error.
                .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
                .with_service_name(service_name)
                .with_service_name("grpc.health.v1.Health")
                .with_service_name("grpc.reflection.v1.ServerReflection")
                .with_service_name("grpc.reflection.v1alpha.ServerReflection")
        };
        if let Some((pool, _)) = &database {
            let pool = pool.clone();
            self.metrics.on_scrape({
                let metrics = self.metrics.clone();
                move || {
                    let (metrics, pool) = (metrics.clone(), pool.clone());
                    async move {
                        let (used, idle) = db::pool_usage(&pool);
                        metrics.set_pool(used, idle);
                    }
                }
            });
        }
        let sweeper = database.as_ref().map(|(db, _)| {
            tokio::spawn(crate::idempotency::sweep(db.clone(), self.retention, IDEMPOTENCY_SWEEP_EVERY))
        });
        let feed_work = self.feed.clone().map(|feed| tokio::spawn(feed.run()));
        let metrics_server = self.metrics_listener.map(|listener| {
            tracing::info!(address = ?listener.local_addr().ok(), "serving metrics at /metrics");
            tokio::spawn(metrics::serve(listener, self.metrics.clone()))
        });
        // The plaintext health port answers from the same reporter.
        let health_only = self.health_listener.map(|listener| {
            tracing::info!(address = ?listener.local_addr().ok(), "serving health alone, in plaintext");
            let server = tonic::transport::Server::builder().add_service(health.clone());
            tokio::spawn(server.serve_with_incoming(TcpIncoming::from(listener).with_nodelay(Some(true))))
        });
        let routes =
            routes.add_service(health).add_service(reflection().build_v1()?).add_service(reflection().build_v1alpha()?);

        let stopping = Arc::new(Notify::new());
        let signal = {
            let (reporter, stopping, streams) = (reporter.clone(), stopping.clone(), self.stopping.clone());
            async move {
                shutdown.await;
                tracing::info!("shutting down: NOT_SERVING, draining in-flight calls");
                streams.send_replace(true);
                reporter.set_service_status("", ServingStatus::NotServing).await;
                reporter.set_service_status(service_name, ServingStatus::NotServing).await;
                stopping.notify_one();
            }
        };

        tracing::info!(
            address = %self.local_addr,
            service = service_name,
            max_request_bytes = self.settings.max_request_bytes,
            max_message_bytes = self.settings.max_message_bytes,
            tls = self.tls.is_some(),
            mtls = self.settings.tls.client_ca_file.is_some(),
            auth = if self.auth.is_some() { "jwt" } else { "none" },
            "serving"
        );
        let guard = GuardLayer::new(self.settings.request_timeout(), self.settings.max_in_flight, self.metrics.clone());
        let mut builder = tonic::transport::Server::builder();
        if let Some(age) = self.settings.max_connection_age() {
            // Clients reconnect, through the Service, to whichever replica
            // it picks; calls still open on the old connection finish. No
            // grace: in tonic 0.14 a grace replaces the graceful close by a
            // forced one at age + grace, cutting the calls in flight.
            builder = builder.max_connection_age(age);
        }
        if let Some(tls) = self.tls {
            builder = builder.tls_config(tls)?;
        }
        let serve = builder
            .trace_fn(telemetry::rpc_span)
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(10)))
            .max_concurrent_streams(self.settings.max_concurrent_streams)
            .http2_max_header_list_size(MAX_HEADER_LIST_BYTES)
            .layer(guard)
            .layer(AuthLayer::new(self.auth))
            .add_routes(routes)
            // Nagle off on every connection: the builder's tcp_nodelay does not
            // reach connections from a listener of our own, and a response
            // written in two segments would otherwise wait for the client's
            // delayed ACK (40 ms).
            .serve_with_incoming_shutdown(TcpIncoming::from(self.listener).with_nodelay(Some(true)), signal);
        tokio::pin!(serve);

        // The first answer before the first call is served; then every few
        // seconds. With work to finish first, NOT_SERVING until it is done.
        let watcher = match (database, self.ready) {
            (Some((db, schema)), None) => {
                let schema = Arc::new(schema);
                let mut serving = None;
                check_database(&reporter, service_name, &db, &schema, &mut serving).await;
                reporter.set_service_status("", ServingStatus::Serving).await;
                Some(tokio::spawn(watch_database(reporter, service_name, db, schema, serving)))
            }
            (Some((db, schema)), Some(ready)) => Some(tokio::spawn({
                let stopping = self.stopping.subscribe();
                async move {
                    ready.await;
                    // Not SERVING again once shutting down.
                    if *stopping.borrow() {
                        return;
                    }
                    let schema = Arc::new(schema);
                    let mut serving = None;
                    check_database(&reporter, service_name, &db, &schema, &mut serving).await;
                    reporter.set_service_status("", ServingStatus::Serving).await;
                    watch_database(reporter, service_name, db, schema, serving).await;
                }
            })),
            (None, _) => {
                reporter.set_service_status(service_name, ServingStatus::Serving).await;
                reporter.set_service_status("", ServingStatus::Serving).await;
                None
            }
        };

        let result = tokio::select! {
            result = &mut serve => result,
            () = stopping.notified() => {
                match tokio::time::timeout(self.settings.drain_timeout(), &mut serve).await {
                    Ok(result) => result,
                    Err(_) => {
                        tracing::warn!(timeout = ?self.settings.drain_timeout(), "drain timed out; closing the remaining calls");
                        Ok(())
                    }
                }
            }
        };
        if let Some(watcher) = watcher {
            watcher.abort();
        }
        if let Some(health_only) = health_only {
            health_only.abort();
        }
        if let Some(metrics_server) = metrics_server {
            metrics_server.abort();
        }
        if let Some(sweeper) = sweeper {
            sweeper.abort();
        }
        if let Some(feed_work) = feed_work {
            feed_work.abort();
        }
        tracing::info!("stopped");
        Ok(result?)
    }
}

/// Keeps the service's health in step with its database.
async fn watch_database(
    reporter: HealthReporter,
    service_name: &'static str,
    db: DatabaseConnection,
    schema: Arc<Vec<String>>,
    mut serving: Option<bool>,
) {
    loop {
        tokio::time::sleep(DB_CHECK_EVERY).await;
        check_database(&reporter, service_name, &db, &schema, &mut serving).await;
    }
}

async fn check_database(
    reporter: &HealthReporter,
    service_name: &'static str,
    db: &DatabaseConnection,
    schema: &[String],
    serving: &mut Option<bool>,
) {
    let ok = match db::pending_migrations(db, schema).await {
        Ok(0) => true,
        Ok(pending) => {
            if *serving != Some(false) {
                tracing::warn!(
                    service = service_name,
                    pending,
                    "the database lacks migrations of this version: NOT_SERVING until `migrate` has run"
                );
            }
            false
        }
        Err(err) => {
            if *serving != Some(false) {
                tracing::warn!(service = service_name, error = %err, "database unreachable: NOT_SERVING");
            }
            false
        }
    };
    if *serving != Some(ok) {
        if ok {
            tracing::info!(service = service_name, "database reachable and up to date: SERVING");
        }
        let status = if ok { ServingStatus::Serving } else { ServingStatus::NotServing };
        reporter.set_service_status(service_name, status).await;
        *serving = Some(ok);
    }
}
