//! Test support: a fresh, empty database per test, dropped afterwards.
//!
//! SQLite by default (a file in a temporary folder). When
//! `TRADEWATCH_TEST_DATABASE_URL` names a PostgreSQL server, each test gets a
//! database of its own on it, created empty and dropped (`WITH (FORCE)`) when
//! the test ends, so tests never share state.

use std::{future::Future, net::SocketAddr};

use sea_orm::{ConnectionTrait, Database};
use tokio::{sync::oneshot, task::JoinHandle};
use tonic::transport::Channel;

use crate::config::{
    AuthMode, AuthSettings, DatabaseSettings, FeedSettings, IdempotencySettings, LogFormat, LogSettings, PeerSettings,
    RelaySettings, ServerSettings, ServiceInfo, Settings, TelemetrySettings, TlsSettings,
};
use crate::server::Served;

/// The variable that selects PostgreSQL for the test suite.
pub const TEST_DATABASE_URL: &str = "TRADEWATCH_TEST_DATABASE_URL";

pub struct TestDatabase {
    pub url: String,
    backing: Backing,
}

enum Backing {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl TestDatabase {
    pub async fn new() -> anyhow::Result<Self> {
        match std::env::var(TEST_DATABASE_URL) {
            Ok(admin_url) if !admin_url.is_empty() => Self::postgres(admin_url).await,
            _ => {
                let dir = tempfile::tempdir()?;
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
                Ok(Self { url, backing: Backing::Sqlite(dir) })
            }
        }
    }

    async fn postgres(admin_url: String) -> anyhow::Result<Self> {
        let name = format!("tradewatch_test_{}", uuid::Uuid::now_v7().simple());
        let admin = Database::connect(&admin_url).await?;
        admin.execute_unprepared(&format!("CREATE DATABASE \"{name}\"")).await?;
        admin.close().await?;
        let (base, query) = match admin_url.split_once('?') {
            Some((base, query)) => (base, format!("?{query}")),
            None => (admin_url.as_str(), String::new()),
        };
        let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
        let url = format!("{server}/{name}{query}");
        Ok(Self { url, backing: Backing::Postgres { admin_url, name } })
    }

    /// Settings for a service under test: this database, port 0, short
    /// timeouts, peers as given.
    pub fn settings(&self, _service: ServiceInfo) -> Settings {
        Settings {
            server: ServerSettings {
                host: "127.0.0.1".into(),
                port: 0,
                drain_timeout_secs: 5,
                max_message_bytes: 4 * 1024 * 1024,
                max_request_bytes: 1024 * 1024,
                request_timeout_ms: 30_000,
                max_in_flight: 1_024,
                max_concurrent_streams: 200,
                tls: TlsSettings::default(),
                health_port: None,
                max_connection_age_secs: None,
            },
            database: DatabaseSettings {
                url: self.url.clone(),
                password_file: None,
                max_connections: None,
                migrate_on_start: true,
                acquire_timeout_ms: 5_000,
                statement_timeout_ms: 15_000,
                lock_timeout_ms: 3_000,
            },
            peers: PeerSettings {
                tariff_url: "http://127.0.0.1:1".into(),
                dispute_url: "http://127.0.0.1:1".into(),
                dialogue_url: "http://127.0.0.1:1".into(),
                timeout_ms: 2_000,
                ca_file: None,
                cert_file: None,
                key_file: None,
                token_file: None,
            },
            telemetry: TelemetrySettings { otlp_endpoint: None, metrics_port: None, metrics_on_any_port: true },
            log: LogSettings { format: LogFormat::Pretty, filter: "warn".into() },
            idempotency: IdempotencySettings { retention_days: 30 },
            relay: RelaySettings { lease_secs: 30, per_peer: 4 },
            feed: FeedSettings {
                retention_days: 7,
                heartbeat_secs: 30,
                max_watchers: 256,
                buffer: 256,
                poll_ms: 1_000,
            },
            auth: AuthSettings {
                mode: AuthMode::None,
                jwks_file: None,
                jwks_url: None,
                jwks_ca_file: None,
                jwks_refresh_secs: 300,
                issuer: None,
                audience: None,
                leeway_secs: 60,
                allow_unauthenticated: false,
                grants: String::new(),
            },
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Backing::Postgres { admin_url, name } = &self.backing else {
            return;
        };
        let (admin_url, name) = (admin_url.clone(), name.clone());
        // Drop runs inside the test's runtime: use a thread with its own.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async {
                let admin = Database::connect(&admin_url).await?;
                admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await?;
                admin.close().await?;
                anyhow::Ok(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop a test database");
        }
    }
}

/// A server running in the test's runtime until `stop`.
pub struct RunningServer {
    pub addr: SocketAddr,
    /// Where it serves `/metrics` (set by [`spawn`]).
    pub metrics_addr: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

impl RunningServer {
    /// Spawns `run(shutdown)`, a service's `run_until_stopped`, serving `addr`.
    pub fn start<F, Fut>(addr: SocketAddr, run: F) -> Self
    where
        F: FnOnce(std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = Box::pin(async move {
            let _ = stopped.await;
        });
        let handle = tokio::spawn(run(shutdown));
        Self { addr, metrics_addr: None, stop: Some(stop), handle: Some(handle) }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sends the shutdown signal and waits for the server to finish.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.handle.take() {
            Some(handle) => handle.await?,
            None => Ok(()),
        }
    }
}

/// Builds a service with `build` on `settings` (again while a restart's port
/// is still held) and runs it until stopped.
pub async fn spawn<A, F, Fut>(settings: Settings, build: F) -> anyhow::Result<RunningServer>
where
    A: Served,
    F: Fn(Settings) -> Fut,
    Fut: Future<Output = anyhow::Result<A>>,
{
    let app = retry_while_port_busy(|| build(settings.clone())).await?;
    let metrics_addr = app.metrics_addr();
    let mut server = RunningServer::start(app.local_addr(), |stop| app.serve(stop));
    server.metrics_addr = metrics_addr;
    Ok(server)
}

/// A connected channel to a test server.
pub async fn channel(addr: SocketAddr) -> anyhow::Result<Channel> {
    Ok(tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?.connect().await?)
}

/// Waits until the server on `channel` is SERVING (its indexes loaded),
/// asking its health every 20 ms for at most 30 s.
pub async fn serving(channel: Channel) -> anyhow::Result<()> {
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};
    let mut health = HealthClient::new(channel);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let status = health.check(HealthCheckRequest::default()).await.map(|r| r.into_inner().status);
        if status.as_ref().is_ok_and(|s| *s == ServingStatus::Serving as i32) {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("not SERVING after 30 s: {status:?}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The fields a status names in its `google.rpc.BadRequest`.
pub fn bad_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

/// The `google.rpc.ErrorInfo` of a status: its reason and metadata.
pub fn error_info(status: &tonic::Status) -> (String, std::collections::HashMap<String, String>) {
    use tonic_types::StatusExt;
    status.get_error_details().error_info().map(|i| (i.reason.clone(), i.metadata.clone())).unwrap_or_default()
}

/// The `ErrorInfo` reason of a status.
pub fn reason(status: &tonic::Status) -> String {
    error_info(status).0
}

/// Asserts INVALID_ARGUMENT naming exactly `fields`, in order.
#[track_caller]
pub fn assert_invalid<T: std::fmt::Debug>(result: Result<T, tonic::Status>, fields: &[&str]) {
    match result {
        Ok(v) => panic!("expected INVALID_ARGUMENT naming {fields:?}, got {v:?}"),
        Err(status) => {
            assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
            assert_eq!(bad_fields(&status), fields, "{status:?}");
        }
    }
}

/// Asserts the call failed with `code`, and returns its status.
#[track_caller]
pub fn assert_code<T: std::fmt::Debug>(result: Result<T, tonic::Status>, code: tonic::Code) -> tonic::Status {
    match result {
        Ok(v) => panic!("expected {code:?}, got {v:?}"),
        Err(status) => {
            assert_eq!(status.code(), code, "{status:?}");
            status
        }
    }
}

/// A fresh UUID string, for ids that exist nowhere.
pub fn uuid() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A port free right now (the kernel's choice), for a listener a test
/// starts next.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0)).and_then(|l| l.local_addr()).map_or(0, |a| a.port())
}

/// A free port for a server a test will stop and start again on the same
/// address. It is taken from below the kernel's ephemeral range, so no
/// client socket or port-0 server borrows it while the server is down.
pub fn restartable_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    for _ in 0..200 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(u64::from(std::process::id()));
        let port = 20_000 + u16::try_from(h.finish() % 10_000).unwrap_or(0);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    0
}

/// Retries `build` while its port is still held (a restart right after a
/// stop), for up to five seconds.
pub async fn retry_while_port_busy<T, F, Fut>(mut build: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let mut tries = 0;
    loop {
        match build().await {
            Err(err) if tries < 50 && format!("{err:#}").contains("in use") => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

/// One service of a multi-service test: its database and port, kept across
/// stops and starts, and its server while it runs.
pub struct ServiceSlot {
    db: TestDatabase,
    pub addr: Option<SocketAddr>,
    /// Where the running server serves `/metrics`.
    pub metrics_addr: Option<SocketAddr>,
    server: Option<RunningServer>,
}

impl ServiceSlot {
    pub async fn new() -> anyhow::Result<Self> {
        Ok(Self { db: TestDatabase::new().await?, addr: None, metrics_addr: None, server: None })
    }

    /// Settings on this slot's database and port (a restartable one the first time).
    pub fn settings(&self, service: ServiceInfo) -> Settings {
        let mut s = self.db.settings(service);
        s.server.port = self.addr.map_or_else(restartable_port, |a| a.port());
        s
    }

    /// The URL of the slot's database, for a look from the test itself.
    pub fn database_url(&self) -> &str {
        &self.db.url
    }

    /// The slot's URL; before its first start, one where nothing listens.
    pub fn url(&self) -> String {
        self.addr.map_or_else(|| "http://127.0.0.1:1".into(), |a| format!("http://{a}"))
    }

    /// Builds a service with `build` on `settings` (again while a restart's
    /// port is still held) and runs it in this slot.
    pub async fn start<A, F, Fut>(&mut self, settings: Settings, build: F) -> anyhow::Result<()>
    where
        A: Served,
        F: Fn(Settings) -> Fut,
        Fut: Future<Output = anyhow::Result<A>>,
    {
        let server = spawn(settings, build).await?;
        self.metrics_addr = server.metrics_addr;
        self.run(server);
        Ok(())
    }

    pub fn run(&mut self, server: RunningServer) {
        self.addr = Some(server.addr);
        self.server = Some(server);
    }

    pub async fn stop(&mut self) -> anyhow::Result<()> {
        match self.server.take() {
            Some(server) => server.stop().await,
            None => Ok(()),
        }
    }
}
