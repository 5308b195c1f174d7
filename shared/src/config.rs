//! Typed settings of a service: defaults in code, then an optional file, then
//! `TRADEWATCH__SECTION__KEY` environment variables. A bad value stops start-up
//! with a message that names its key.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    net::IpAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;

/// The fixed facts of one service: its name and default port.
#[derive(Debug, Clone, Copy)]
pub struct ServiceInfo {
    /// Short name: `tariff`, `dispute`, `dialogue`.
    pub name: &'static str,
    pub default_port: u16,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub peers: PeerSettings,
    #[serde(default)]
    pub telemetry: TelemetrySettings,
    pub log: LogSettings,
    pub auth: AuthSettings,
    pub idempotency: IdempotencySettings,
    pub relay: RelaySettings,
    pub feed: FeedSettings,
}

/// The change feeds of the Watch RPCs.
#[derive(Debug, Clone, Deserialize)]
pub struct FeedSettings {
    /// How long changes are kept: a resume token older than this is
    /// OUT_OF_RANGE `RESUME_TOKEN_EXPIRED`.
    pub retention_days: u32,
    /// A heartbeat is sent after this long without a change to send.
    pub heartbeat_secs: u64,
    /// Watch streams the process serves at once; more are RESOURCE_EXHAUSTED
    /// `TOO_MANY_WATCHERS`.
    pub max_watchers: usize,
    /// Changes held for one watcher that does not read; past this it is cut
    /// off with RESOURCE_EXHAUSTED `WATCHER_TOO_SLOW`.
    pub buffer: usize,
    /// How often watchers look for changes without a wake-up (PostgreSQL
    /// NOTIFY, or a write of this process): the fallback that bounds the
    /// delay when a notification is lost.
    pub poll_ms: u64,
}

impl FeedSettings {
    pub fn retention(&self) -> Duration {
        Duration::from_secs(u64::from(self.retention_days) * 24 * 3600)
    }
}

/// The dialogue relay's pacing (the other services ignore it).
#[derive(Debug, Clone, Deserialize)]
pub struct RelaySettings {
    /// How long a claimed effect stays with the replica that claimed it;
    /// after it, another replica takes the effect over.
    pub lease_secs: u64,
    /// Deliveries in flight at once to each peer.
    pub per_peer: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct IdempotencySettings {
    /// How long a `request_id` is remembered: a retry within it returns the
    /// first answer; after it, the same id is a new request.
    pub retention_days: u32,
}

impl IdempotencySettings {
    pub fn retention(&self) -> Duration {
        Duration::from_secs(u64::from(self.retention_days) * 24 * 3600)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    /// How long in-flight calls may take to finish after SIGTERM.
    pub drain_timeout_secs: u64,
    /// Largest message sent, in bytes; a list page is cut short to fit.
    pub max_message_bytes: usize,
    /// Largest request accepted, in bytes. Decoding expands a message (a
    /// list of short strings takes some 40 times its wire size), so requests
    /// are held to less than responses.
    pub max_request_bytes: usize,
    /// The deadline of every call, unless the caller's `grpc-timeout` is
    /// shorter: DEADLINE_EXCEEDED past it.
    pub request_timeout_ms: u64,
    /// Calls served at once by the process; more are UNAVAILABLE with reason
    /// `OVERLOADED`. Health and reflection are never counted nor shed.
    pub max_in_flight: usize,
    /// Concurrent HTTP/2 streams one connection may open.
    pub max_concurrent_streams: u32,
    #[serde(default)]
    pub tls: TlsSettings,
    /// A second, plaintext port serving `grpc.health.v1.Health` alone, for
    /// probes that cannot speak TLS (the kubelet's); unset means none.
    pub health_port: Option<u16>,
    /// Each client connection is closed gracefully (GOAWAY; the calls open
    /// on it finish) after this many seconds, so that
    /// clients behind a Service's virtual IP reconnect and spread onto new
    /// replicas. Unset means connections live as long as their clients.
    #[serde(default)]
    pub max_connection_age_secs: Option<u64>,
}

/// TLS on the server's port: on when `cert_file` and `key_file` are set (PEM);
/// `client_ca_file` also requires client certificates signed by that CA
/// (mTLS). Files are read at start: a renewed certificate takes a restart.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TlsSettings {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub client_ca_file: Option<PathBuf>,
}

impl TlsSettings {
    pub fn enabled(&self) -> bool {
        self.cert_file.is_some()
    }
}

impl ServerSettings {
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_secs(self.drain_timeout_secs)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub fn max_connection_age(&self) -> Option<Duration> {
        self.max_connection_age_secs.map(Duration::from_secs)
    }
}

#[derive(Clone, Deserialize)]
pub struct DatabaseSettings {
    /// `sqlite://path?mode=rwc` or `postgres://user:password@host/db`.
    pub url: String,
    /// A file holding the PostgreSQL password (a mounted Secret's key, say),
    /// read once at start and put into `url`, whose user it is; then `url`
    /// itself need hold no secret. A trailing newline is not part of it.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Pool size; unset means 4 on SQLite (one writer at a time anyway) and
    /// 10 on PostgreSQL.
    pub max_connections: Option<u32>,
    /// Run migrations when `serve` starts (the default); Kubernetes turns it
    /// off and runs `migrate` as a Job instead.
    pub migrate_on_start: bool,
    /// How long a call waits for a pooled connection before UNAVAILABLE.
    pub acquire_timeout_ms: u64,
    /// PostgreSQL `statement_timeout` of serving connections: a statement
    /// running longer is cancelled (UNAVAILABLE). Migrations run without it.
    pub statement_timeout_ms: u64,
    /// How long a write waits for a lock another write holds: PostgreSQL's
    /// `lock_timeout` (then ABORTED) and SQLite's busy timeout (then
    /// UNAVAILABLE). Both are safe to retry.
    pub lock_timeout_ms: u64,
}

impl fmt::Debug for DatabaseSettings {
    // The URL may carry a password: never print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &redact_url(&self.url))
            .field("password_file", &self.password_file)
            .field("max_connections", &self.max_connections)
            .field("migrate_on_start", &self.migrate_on_start)
            .field("acquire_timeout_ms", &self.acquire_timeout_ms)
            .field("statement_timeout_ms", &self.statement_timeout_ms)
            .field("lock_timeout_ms", &self.lock_timeout_ms)
            .finish()
    }
}

impl DatabaseSettings {
    /// Puts the password of `password_file` into `url`, percent-encoded.
    fn read_password_file(&mut self) -> Result<(), ConfigError> {
        let Some(path) = &self.password_file else { return Ok(()) };
        let bad = |why: String| Err(ConfigError(format!("database.password_file: {why}")));
        if self.url.starts_with("sqlite:") {
            return bad("a SQLite database takes no password".into());
        }
        let password = match std::fs::read_to_string(path) {
            Ok(p) => p,
            Err(err) => return bad(format!("{} cannot be read: {err}", path.display())),
        };
        let password = password.strip_suffix('\n').unwrap_or(&password);
        let password = password.strip_suffix('\r').unwrap_or(password);
        if password.is_empty() {
            return bad(format!("{} is empty", path.display()));
        }
        let Ok(mut url) = url::Url::parse(&self.url) else {
            return Err(ConfigError(format!("database.url: {:?} is not a URL", redact_url(&self.url))));
        };
        if url.username().is_empty() {
            return Err(ConfigError("database.url: names no user, whose password database.password_file holds".into()));
        }
        // Percent-encoded whole: the driver decodes the URL's password, so a
        // `%` in it must arrive as `%25`.
        let encoded = percent_encoding::utf8_percent_encode(password, percent_encoding::NON_ALPHANUMERIC).to_string();
        if url.set_password(Some(&encoded)).is_err() {
            return Err(ConfigError(format!("database.url: {:?} cannot take a password", redact_url(&self.url))));
        }
        self.url = url.into();
        Ok(())
    }
}

/// Whether an http(s) URL's host is the loopback interface.
fn is_loopback_url(url: &str) -> bool {
    let host = url.split_once("://").map_or(url, |(_, rest)| rest).split(['/', '?']).next().unwrap_or_default();
    let host =
        host.rsplit_once(':').map_or(host, |(h, port)| if port.chars().all(|c| c.is_ascii_digit()) { h } else { host });
    host == "localhost" || host.trim_matches(['[', ']']).parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The URL with any password replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct PeerSettings {
    pub tariff_url: String,
    pub dispute_url: String,
    /// The dialogue service (read by the relations service).
    pub dialogue_url: String,
    /// Deadline of one call to a peer, unless the caller's own is shorter.
    pub timeout_ms: u64,
    /// The CA that signs `https://` peers' certificates (PEM); unset means the
    /// system's roots.
    pub ca_file: Option<PathBuf>,
    /// A client certificate and key (PEM) for peers that require mTLS.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// The service's own token, sent as `authorization: Bearer` on every
    /// peer call; re-read when the file changes (a projected service-account
    /// token rotates).
    pub token_file: Option<PathBuf>,
}

/// Who may call: `none` (every caller is `anonymous`) or `jwt` (a bearer
/// token checked against a JWKS, issuer and audience).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    None,
    Jwt,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    pub mode: AuthMode,
    /// The keys that sign tokens: a JWKS file, or a URL fetched at start and
    /// every `jwks_refresh_secs` (and again, at most every 30 s, when a token
    /// names a key id it does not hold).
    pub jwks_file: Option<PathBuf>,
    pub jwks_url: Option<String>,
    /// The CA of an `https://` JWKS URL (PEM); unset means the system's roots.
    pub jwks_ca_file: Option<PathBuf>,
    pub jwks_refresh_secs: u64,
    /// The `iss` and one of the `aud` every token must carry.
    pub issuer: Option<String>,
    pub audience: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway_secs: u64,
    /// Lets a service bound to a non-loopback address run with mode `none`.
    pub allow_unauthenticated: bool,
    /// Scopes granted by subject, for tokens that carry none (Kubernetes
    /// service-account tokens): `subject=scope scope;subject=scope`.
    pub grants: String,
}

impl AuthSettings {
    /// `grants` as subject → scopes.
    pub fn parsed_grants(&self) -> Result<BTreeMap<String, BTreeSet<String>>, String> {
        let mut grants: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for entry in self.grants.split(';').map(str::trim).filter(|e| !e.is_empty()) {
            let (subject, scopes) =
                entry.split_once('=').ok_or_else(|| format!("{entry:?} is not subject=scope [scope …]"))?;
            let subject = subject.trim();
            if subject.is_empty() {
                return Err(format!("{entry:?} names no subject"));
            }
            let scopes: BTreeSet<String> = scopes.split_whitespace().map(str::to_owned).collect();
            if scopes.is_empty() {
                return Err(format!("{entry:?} grants no scope"));
            }
            grants.entry(subject.to_owned()).or_default().extend(scopes);
        }
        Ok(grants)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct TelemetrySettings {
    /// OTLP/gRPC collector, for example `http://otel-collector:4317`; unset
    /// means the standard `OTEL_EXPORTER_OTLP_ENDPOINT`, and without it no
    /// export.
    pub otlp_endpoint: Option<String>,
    /// Where `/metrics` is served: unset means the gRPC port + 1000, 0 turns
    /// metrics off.
    pub metrics_port: Option<u16>,
    /// Tests only (never read from configuration): serve metrics on a port
    /// the kernel picks, as several servers share one machine.
    #[serde(skip)]
    pub metrics_on_any_port: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    pub format: LogFormat,
    /// `tracing` filter directives; `RUST_LOG` overrides them.
    pub filter: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

/// A configuration that cannot be used; the message names the key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

impl Settings {
    /// Reads the settings of `service`: defaults, then `file` if given, then
    /// the environment.
    pub fn load(service: ServiceInfo, file: Option<&Path>) -> Result<Self, ConfigError> {
        let env =
            config::Environment::with_prefix("TRADEWATCH").prefix_separator("__").separator("__").try_parsing(true);
        Self::load_from(service, file, env)
    }

    fn load_from(service: ServiceInfo, file: Option<&Path>, env: config::Environment) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder();
        for (key, value) in defaults(service) {
            builder = builder.set_default(key, value).map_err(|e| ConfigError(e.to_string()))?;
        }
        if let Some(file) = file {
            builder = builder.add_source(config::File::from(file).required(true));
        }
        let mut settings: Settings = builder
            .add_source(env)
            .build()
            .and_then(config::Config::try_deserialize)
            .map_err(|e| ConfigError(e.to_string()))?;
        settings.validate()?;
        settings.database.read_password_file()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: String| Err(ConfigError(format!("{key}: {why}")));
        if self.server.host.parse::<IpAddr>().is_err() {
            return bad("server.host", format!("{:?} is not an IP address", self.server.host));
        }
        if !(1024..=64 * 1024 * 1024).contains(&self.server.max_message_bytes) {
            return bad("server.max_message_bytes", "must be between 1 KiB and 64 MiB".into());
        }
        if !(1024..=64 * 1024 * 1024).contains(&self.server.max_request_bytes) {
            return bad("server.max_request_bytes", "must be between 1 KiB and 64 MiB".into());
        }
        let url = &self.database.url;
        if !(url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return bad("database.url", format!("{:?} is neither sqlite:… nor postgres://…", redact_url(url)));
        }
        if self.server.request_timeout_ms == 0 {
            return bad("server.request_timeout_ms", "must be greater than zero".into());
        }
        if self.server.max_in_flight == 0 {
            return bad("server.max_in_flight", "must be at least 1".into());
        }
        if self.server.max_concurrent_streams == 0 {
            return bad("server.max_concurrent_streams", "must be at least 1".into());
        }
        if self.server.max_connection_age_secs == Some(0) {
            return bad("server.max_connection_age_secs", "must be at least 1 (unset means no limit)".into());
        }
        if self.database.lock_timeout_ms == 0 {
            return bad("database.lock_timeout_ms", "must be greater than zero".into());
        }
        if self.database.statement_timeout_ms == 0 {
            return bad("database.statement_timeout_ms", "must be greater than zero".into());
        }
        if self.database.max_connections == Some(0) {
            return bad("database.max_connections", "must be at least 1".into());
        }
        for (key, value) in [
            ("peers.tariff_url", &self.peers.tariff_url),
            ("peers.dispute_url", &self.peers.dispute_url),
            ("peers.dialogue_url", &self.peers.dialogue_url),
        ] {
            if !(value.starts_with("http://") || value.starts_with("https://"))
                || value.parse::<tonic::transport::Uri>().is_err()
            {
                return bad(key, format!("{value:?} is not an http:// or https:// URL"));
            }
        }
        if self.peers.timeout_ms == 0 {
            return bad("peers.timeout_ms", "must be greater than zero".into());
        }
        if let Some(endpoint) = &self.telemetry.otlp_endpoint
            && endpoint.parse::<tonic::transport::Uri>().is_err()
        {
            return bad("telemetry.otlp_endpoint", format!("{endpoint:?} is not a URL"));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.filter).is_err() {
            return bad("log.filter", format!("{:?} is not a tracing filter", self.log.filter));
        }
        if self.relay.lease_secs == 0 {
            return bad("relay.lease_secs", "must be at least 1".into());
        }
        if self.relay.per_peer == 0 {
            return bad("relay.per_peer", "must be at least 1".into());
        }
        if !(1..=3_650).contains(&self.feed.retention_days) {
            return bad("feed.retention_days", "must be between 1 and 3650".into());
        }
        if self.feed.heartbeat_secs == 0 || self.feed.heartbeat_secs > 30 {
            return bad("feed.heartbeat_secs", "must be between 1 and 30".into());
        }
        if self.feed.max_watchers == 0 {
            return bad("feed.max_watchers", "must be at least 1".into());
        }
        if !(2..=100_000).contains(&self.feed.buffer) {
            return bad("feed.buffer", "must be between 2 and 100000".into());
        }
        if self.feed.poll_ms == 0 {
            return bad("feed.poll_ms", "must be greater than zero".into());
        }
        if !(1..=36_500).contains(&self.idempotency.retention_days) {
            return bad("idempotency.retention_days", "must be between 1 and 36500".into());
        }
        self.validate_security()
    }

    fn validate_security(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError(format!("{key}: {why}")));
        let tls = &self.server.tls;
        match (&tls.cert_file, &tls.key_file) {
            (Some(_), None) => return bad("server.tls.key_file", "must be set with server.tls.cert_file"),
            (None, Some(_)) => return bad("server.tls.cert_file", "must be set with server.tls.key_file"),
            _ => {}
        }
        if tls.client_ca_file.is_some() && !tls.enabled() {
            return bad("server.tls.client_ca_file", "requires server.tls.cert_file and server.tls.key_file");
        }
        match (&self.peers.cert_file, &self.peers.key_file) {
            (Some(_), None) => return bad("peers.key_file", "must be set with peers.cert_file"),
            (None, Some(_)) => return bad("peers.cert_file", "must be set with peers.key_file"),
            _ => {}
        }
        if self.peers.token_file.is_some() {
            for (key, url) in [
                ("peers.tariff_url", &self.peers.tariff_url),
                ("peers.dispute_url", &self.peers.dispute_url),
                ("peers.dialogue_url", &self.peers.dialogue_url),
            ] {
                if url.starts_with("http://") && !is_loopback_url(url) {
                    return bad(
                        key,
                        "is http:// but peers.token_file is set: the token would cross the network in clear",
                    );
                }
            }
        }
        if self.relay.lease_secs.saturating_mul(1000) <= self.peers.timeout_ms.saturating_mul(2) {
            return bad(
                "relay.lease_secs",
                "must be more than twice peers.timeout_ms, so a delivery ends within its lease",
            );
        }
        let auth = &self.auth;
        if let Err(why) = auth.parsed_grants() {
            return bad("auth.grants", &why);
        }
        match auth.mode {
            AuthMode::Jwt => {
                match (&auth.jwks_file, &auth.jwks_url) {
                    (None, None) => {
                        return bad("auth.jwks_file", "auth.mode jwt needs auth.jwks_file or auth.jwks_url");
                    }
                    (Some(_), Some(_)) => return bad("auth.jwks_url", "set auth.jwks_file or auth.jwks_url, not both"),
                    _ => {}
                }
                if let Some(url) = &auth.jwks_url
                    && !(url.starts_with("https://") || (url.starts_with("http://") && is_loopback_url(url)))
                {
                    return bad(
                        "auth.jwks_url",
                        "must be an https:// URL (http:// only on loopback): the keys decide who may write",
                    );
                }
                if auth.issuer.as_deref().is_none_or(str::is_empty) {
                    return bad("auth.issuer", "auth.mode jwt needs the issuer tokens must carry");
                }
                if auth.audience.as_deref().is_none_or(str::is_empty) {
                    return bad("auth.audience", "auth.mode jwt needs the audience tokens must carry");
                }
                if auth.jwks_refresh_secs == 0 {
                    return bad("auth.jwks_refresh_secs", "must be greater than zero");
                }
            }
            AuthMode::None => {}
        }
        Ok(())
    }

    /// Serving beyond loopback with auth off needs `auth.allow_unauthenticated`:
    /// anyone who reaches the port could write. Checked when a server binds
    /// (`migrate` listens nowhere).
    pub fn check_exposure(&self) -> Result<(), ConfigError> {
        let loopback = self.server.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if self.auth.mode == AuthMode::None && !loopback && !self.auth.allow_unauthenticated {
            return Err(ConfigError(format!(
                "auth.allow_unauthenticated: the server would listen on {} (server.host), beyond loopback, with \
                 auth.mode none, so anyone who reaches the port could write. Set auth.mode jwt, or \
                 auth.allow_unauthenticated true to accept that",
                self.server.host
            )));
        }
        Ok(())
    }
}

fn defaults(service: ServiceInfo) -> Vec<(&'static str, config::Value)> {
    vec![
        ("server.host", "127.0.0.1".into()),
        ("server.port", i64::from(service.default_port).into()),
        ("server.drain_timeout_secs", 20_i64.into()),
        ("server.max_message_bytes", (4_i64 * 1024 * 1024).into()),
        ("server.max_request_bytes", (1024_i64 * 1024).into()),
        ("server.request_timeout_ms", 30_000_i64.into()),
        ("server.max_in_flight", 1_024_i64.into()),
        ("server.max_concurrent_streams", 200_i64.into()),
        ("database.url", format!("sqlite://var/{}.db?mode=rwc", service.name).into()),
        ("database.migrate_on_start", true.into()),
        ("database.acquire_timeout_ms", 5_000_i64.into()),
        ("database.statement_timeout_ms", 15_000_i64.into()),
        ("database.lock_timeout_ms", 3_000_i64.into()),
        ("peers.tariff_url", "http://127.0.0.1:50052".into()),
        ("peers.dispute_url", "http://127.0.0.1:50051".into()),
        ("peers.dialogue_url", "http://127.0.0.1:50053".into()),
        ("peers.timeout_ms", 5_000_i64.into()),
        ("log.format", "pretty".into()),
        ("idempotency.retention_days", 30_i64.into()),
        ("feed.retention_days", 7_i64.into()),
        ("feed.heartbeat_secs", 30_i64.into()),
        ("feed.max_watchers", 256_i64.into()),
        ("feed.buffer", 256_i64.into()),
        ("feed.poll_ms", 1_000_i64.into()),
        ("relay.lease_secs", 30_i64.into()),
        ("relay.per_peer", 4_i64.into()),
        ("auth.mode", "none".into()),
        ("auth.jwks_refresh_secs", 300_i64.into()),
        ("auth.leeway_secs", 60_i64.into()),
        ("auth.allow_unauthenticated", false.into()),
        ("auth.grants", "".into()),
        ("log.filter", "info,sqlx=warn,sea_orm=warn,h2=warn,tower=warn".into()),
    ]
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const SERVICE: ServiceInfo = ServiceInfo { name: "tariff", default_port: 50052 };

    fn load(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let env = config::Environment::with_prefix("TRADEWATCH")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .source(Some(map));
        Settings::load_from(SERVICE, None, env)
    }

    #[test]
    fn defaults_follow_the_service() -> Result<(), ConfigError> {
        let s = load(&[])?;
        assert_eq!(s.server.host, "127.0.0.1");
        assert_eq!(s.server.port, 50052);
        assert_eq!(s.database.url, "sqlite://var/tariff.db?mode=rwc");
        assert_eq!(s.peers.dispute_url, "http://127.0.0.1:50051");
        assert_eq!(s.log.format, LogFormat::Pretty);
        assert!(s.telemetry.otlp_endpoint.is_none());
        Ok(())
    }

    #[test]
    fn the_password_comes_from_its_file_into_the_url() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("password");
        std::fs::write(&file, "p@ss:w/rd%41%\n")?;
        let path = file.display().to_string();
        let url = "postgres://tariff@db:5432/tariff?sslmode=verify-full&sslrootcert=/var/run/ca.crt";
        let s = load(&[("TRADEWATCH__DATABASE__URL", url), ("TRADEWATCH__DATABASE__PASSWORD_FILE", &path)])?;
        let parsed = url::Url::parse(&s.database.url)?;
        assert_eq!(parsed.username(), "tariff");
        let password = percent_encoding::percent_decode_str(parsed.password().unwrap_or_default()).decode_utf8()?;
        assert_eq!(password, "p@ss:w/rd%41%");
        assert_eq!(parsed.host_str(), Some("db"));
        assert_eq!(parsed.query(), Some("sslmode=verify-full&sslrootcert=/var/run/ca.crt"));
        assert!(!format!("{:?}", s.database).contains("p%40ss"), "the password is never printed");

        // Refusals name the setting, and never show the password.
        let refused = |vars: &[(&str, &str)]| load(vars).err().map(|e| e.to_string()).unwrap_or_default();
        let missing = dir.path().join("absent").display().to_string();
        let e = refused(&[("TRADEWATCH__DATABASE__URL", url), ("TRADEWATCH__DATABASE__PASSWORD_FILE", &missing)]);
        assert!(e.contains("database.password_file") && e.contains("cannot be read"), "{e}");
        let e = refused(&[("TRADEWATCH__DATABASE__PASSWORD_FILE", &path)]);
        assert!(e.contains("database.password_file") && e.contains("SQLite"), "{e}");
        let e = refused(&[
            ("TRADEWATCH__DATABASE__URL", "postgres://db/tariff"),
            ("TRADEWATCH__DATABASE__PASSWORD_FILE", &path),
        ]);
        assert!(e.contains("database.url") && e.contains("no user"), "{e}");
        std::fs::write(&file, "\n")?;
        let e = refused(&[("TRADEWATCH__DATABASE__URL", url), ("TRADEWATCH__DATABASE__PASSWORD_FILE", &path)]);
        assert!(e.contains("is empty"), "{e}");
        Ok(())
    }

    #[test]
    fn environment_overrides_defaults() -> Result<(), ConfigError> {
        let s = load(&[
            ("TRADEWATCH__SERVER__HOST", "0.0.0.0"),
            ("TRADEWATCH__SERVER__PORT", "6000"),
            ("TRADEWATCH__DATABASE__URL", "postgres://u:p@db/tariff"),
            ("TRADEWATCH__LOG__FORMAT", "json"),
            ("TRADEWATCH__TELEMETRY__OTLP_ENDPOINT", "http://collector:4317"),
            ("TRADEWATCH__PEERS__TARIFF_URL", "http://tariff:50052"),
            ("TRADEWATCH__AUTH__ALLOW_UNAUTHENTICATED", "true"),
        ])?;
        assert_eq!(s.server.host, "0.0.0.0");
        assert_eq!(s.server.port, 6000);
        assert_eq!(s.log.format, LogFormat::Json);
        assert_eq!(s.peers.tariff_url, "http://tariff:50052");
        assert_eq!(s.telemetry.otlp_endpoint.as_deref(), Some("http://collector:4317"));
        Ok(())
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            ("TRADEWATCH__SERVER__PORT", "not-a-port", "server.port"),
            ("TRADEWATCH__SERVER__PORT", "70000", "server.port"),
            ("TRADEWATCH__SERVER__HOST", "localhost:80", "server.host"),
            ("TRADEWATCH__DATABASE__URL", "mysql://db", "database.url"),
            ("TRADEWATCH__LOG__FORMAT", "xml", "log.format"),
            ("TRADEWATCH__PEERS__DISPUTE_URL", "dispute:50051", "peers.dispute_url"),
            ("TRADEWATCH__DATABASE__MAX_CONNECTIONS", "0", "database.max_connections"),
            ("TRADEWATCH__AUTH__MODE", "basic", "auth.mode"),
            ("TRADEWATCH__AUTH__MODE", "jwt", "auth.jwks_file"),
            ("TRADEWATCH__SERVER__TLS__CERT_FILE", "/tls/tls.crt", "server.tls.key_file"),
            ("TRADEWATCH__SERVER__TLS__CLIENT_CA_FILE", "/tls/ca.crt", "server.tls.client_ca_file"),
            ("TRADEWATCH__PEERS__KEY_FILE", "/tls/tls.key", "peers.cert_file"),
            ("TRADEWATCH__AUTH__GRANTS", "alice", "auth.grants"),
        ];
        for (var, value, key) in cases {
            let err = load(&[(var, value)]).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains(key), "{var}={value}: {err:?} does not name {key}");
        }
    }

    #[test]
    fn a_public_bind_without_auth_refuses_to_serve_unless_allowed() -> Result<(), ConfigError> {
        let public = load(&[("TRADEWATCH__SERVER__HOST", "0.0.0.0")])?;
        let err = public.check_exposure().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("auth.allow_unauthenticated"), "{err}");
        load(&[("TRADEWATCH__SERVER__HOST", "::1")])?.check_exposure()?;
        load(&[("TRADEWATCH__SERVER__HOST", "0.0.0.0"), ("TRADEWATCH__AUTH__ALLOW_UNAUTHENTICATED", "true")])?
            .check_exposure()?;
        let s = load(&[
            ("TRADEWATCH__SERVER__HOST", "0.0.0.0"),
            ("TRADEWATCH__AUTH__MODE", "jwt"),
            ("TRADEWATCH__AUTH__JWKS_URL", "https://kubernetes.default.svc/openid/v1/jwks"),
            ("TRADEWATCH__AUTH__ISSUER", "https://kubernetes.default.svc"),
            ("TRADEWATCH__AUTH__AUDIENCE", "tradewatch"),
        ])?;
        assert_eq!(s.auth.mode, AuthMode::Jwt);
        s.check_exposure()?;
        Ok(())
    }

    #[test]
    fn secrets_never_cross_the_network_in_clear() {
        let jwt = [
            ("TRADEWATCH__AUTH__MODE", "jwt"),
            ("TRADEWATCH__AUTH__ISSUER", "https://issuer"),
            ("TRADEWATCH__AUTH__AUDIENCE", "tradewatch"),
        ];
        let refused = |vars: &[(&str, &str)], key: &str| {
            let err = load(vars).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains(key), "{vars:?}: {err:?} does not name {key}");
        };
        refused(
            &[jwt.as_slice(), &[("TRADEWATCH__AUTH__JWKS_URL", "http://keys.example.org/jwks")]].concat(),
            "auth.jwks_url",
        );
        assert!(
            load(&[jwt.as_slice(), &[("TRADEWATCH__AUTH__JWKS_URL", "http://127.0.0.1:8080/jwks")]].concat()).is_ok()
        );
        refused(
            &[
                ("TRADEWATCH__PEERS__TOKEN_FILE", "/run/token"),
                ("TRADEWATCH__PEERS__TARIFF_URL", "http://tariff:50052"),
            ],
            "peers.tariff_url",
        );
        assert!(load(&[("TRADEWATCH__PEERS__TOKEN_FILE", "/run/token")]).is_ok(), "loopback peers by default");
        refused(
            &[("TRADEWATCH__RELAY__LEASE_SECS", "5"), ("TRADEWATCH__PEERS__TIMEOUT_MS", "5000")],
            "relay.lease_secs",
        );
        refused(&[("TRADEWATCH__IDEMPOTENCY__RETENTION_DAYS", "100000000")], "idempotency.retention_days");
    }

    #[test]
    fn grants_are_read_by_subject() -> Result<(), ConfigError> {
        let s = load(&[(
            "TRADEWATCH__AUTH__GRANTS",
            "system:serviceaccount:tradewatch:dialogue=tariff:write dispute:write; ci = tariff:read",
        )])?;
        let grants = s.auth.parsed_grants().unwrap_or_default();
        assert_eq!(grants.len(), 2);
        assert!(grants["system:serviceaccount:tradewatch:dialogue"].contains("dispute:write"));
        assert!(grants["ci"].contains("tariff:read"));
        Ok(())
    }

    #[test]
    fn database_password_is_never_printed() -> Result<(), ConfigError> {
        let s = load(&[("TRADEWATCH__DATABASE__URL", "postgres://app:s3cret@db:5432/tariff")])?;
        let printed = format!("{s:?}");
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(printed.contains("app:***@db:5432"), "{printed}");
        Ok(())
    }
}
