//! Who is calling, and may they: bearer JWTs checked against a JWKS, scopes
//! per RPC, and the principal every write records as its actor.
//!
//! With `auth.mode` `jwt`, every call but health and reflection carries
//! `authorization: Bearer <JWT>`, signed RS256, ES256 or EdDSA by a key of the
//! JWKS (a file, or a URL fetched at start, refreshed every
//! `auth.jwks_refresh_secs` and again when a token names a key id not held),
//! with `iss` and `aud` as configured and `exp` (and `nbf` when present)
//! within `auth.leeway_secs`. A call without such a token is UNAUTHENTICATED.
//! Its scopes, from the `scope` (space-separated) or `scp` claim plus the
//! grants configured for its `sub`, must hold `<service>:read` for Get, List,
//! BatchGet, ResolveDuty and Watch and `<service>:write` for every other RPC,
//! else PERMISSION_DENIED. Nothing runs, so nothing is written, either way.
//! With mode `none` every caller is `anonymous` and may do anything.

use std::{
    collections::{BTreeMap, BTreeSet},
    convert::Infallible,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    task::{Context, Poll},
    time::{Duration, Instant},
};

use futures::future::BoxFuture;
use jsonwebtoken::{
    Algorithm, DecodingKey, Validation,
    errors::ErrorKind,
    jwk::{Jwk, JwkSet},
};
use serde::Deserialize;
use tonic::{
    Request,
    body::Body,
    codegen::{Service, http},
};

use crate::{
    Error,
    config::{AuthMode, AuthSettings},
};

/// The subject of every write when auth is off.
pub const ANONYMOUS: &str = "anonymous";

/// Algorithms a token may be signed with: never `none`, never a shared secret.
const ALGORITHMS: [Algorithm; 3] = [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];

/// A token naming an unknown key id fetches the JWKS URL again, at most this often.
const REFETCH_AT_MOST_EVERY: Duration = Duration::from_secs(30);

/// The caller of one request, as the auth layer established it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub subject: String,
    scopes: BTreeSet<String>,
    /// Auth is off: every scope is held.
    unrestricted: bool,
}

impl Principal {
    pub fn anonymous() -> Self {
        Self { subject: ANONYMOUS.to_owned(), scopes: BTreeSet::new(), unrestricted: true }
    }

    pub fn has(&self, scope: &str) -> bool {
        self.unrestricted || self.scopes.contains(scope)
    }

    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scopes.iter().map(String::as_str)
    }
}

/// Who made a request: its principal's subject, `anonymous` when auth is off
/// (or the request never passed the auth layer, as in unit tests).
pub fn actor<T>(request: &Request<T>) -> String {
    request.extensions().get::<Principal>().map_or_else(|| ANONYMOUS.to_owned(), |p| p.subject.clone())
}

/// The audit line of one write: who (`actor`) called which RPC on which
/// resource, and the request_id it carried. Logged at INFO under the target
/// `audit`, so it can be routed apart from the rest.
pub fn audit(actor: &str, rpc: &str, resource: &str, id: impl std::fmt::Display, request_id: Option<uuid::Uuid>) {
    let request_id = request_id.map(|r| r.to_string()).unwrap_or_default();
    tracing::info!(target: "audit", actor, rpc, resource, id = %id, request_id, "write");
}

/// The scope an RPC needs, from its path
/// (`/tradewatch.tariff.v1.TariffService/GetMeasure` needs `tariff:read`);
/// `None` for what is not a Tradewatch API.
pub fn required_scope(path: &str) -> Option<String> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    let name = service.strip_prefix("tradewatch.")?.split('.').next()?;
    let read = ["Get", "List", "BatchGet", "Watch"].iter().any(|p| method.starts_with(p)) || method == "ResolveDuty";
    Some(format!("{name}:{}", if read { "read" } else { "write" }))
}

/// The token of an `authorization` value: `Bearer <token>`, the scheme in
/// any case (RFC 6750).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Calls that never need a token: probes and tools must reach every server.
fn open_path(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/") || path.starts_with("/grpc.reflection.")
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    scp: Option<ScopeList>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ScopeList {
    List(Vec<String>),
    Spaced(String),
}

enum KeySource {
    File(PathBuf),
    Url(Box<JwksUrl>),
}

/// Checks bearer tokens. Cheap to clone.
#[derive(Clone)]
pub struct Authenticator(Arc<Inner>);

struct Inner {
    keys: RwLock<JwkSet>,
    source: KeySource,
    validation: Validation,
    grants: BTreeMap<String, BTreeSet<String>>,
    last_fetch: tokio::sync::Mutex<Instant>,
}

impl Authenticator {
    /// The authenticator of `auth.mode` `jwt`, its keys loaded; `None` for mode `none`.
    pub async fn from_settings(settings: &AuthSettings) -> anyhow::Result<Option<Self>> {
        if settings.mode == AuthMode::None {
            return Ok(None);
        }
        let source = match (&settings.jwks_file, &settings.jwks_url) {
            (Some(file), _) => KeySource::File(file.clone()),
            (None, Some(url)) => KeySource::Url(Box::new(JwksUrl::new(url, settings.jwks_ca_file.as_deref())?)),
            (None, None) => anyhow::bail!("auth.jwks_file or auth.jwks_url must be set"),
        };
        let keys = source.load().await?;
        let mut validation = Validation::new(Algorithm::ES256);
        validation.algorithms = ALGORITHMS.to_vec();
        validation.leeway = settings.leeway_secs;
        validation.validate_nbf = true;
        validation.set_issuer(&[settings.issuer.clone().unwrap_or_default()]);
        validation.set_audience(&[settings.audience.clone().unwrap_or_default()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let grants = settings.parsed_grants().map_err(|why| anyhow::anyhow!("auth.grants: {why}"))?;
        let auth = Self(Arc::new(Inner {
            keys: RwLock::new(keys),
            source,
            validation,
            grants,
            // As if fetched a while ago: a key rotated right after start is
            // fetched at its first token.
            last_fetch: tokio::sync::Mutex::new(
                Instant::now().checked_sub(REFETCH_AT_MOST_EVERY).unwrap_or_else(Instant::now),
            ),
        }));
        if matches!(auth.0.source, KeySource::Url(_)) {
            auth.spawn_refresh(Duration::from_secs(settings.jwks_refresh_secs));
        }
        Ok(Some(auth))
    }

    fn spawn_refresh(&self, every: Duration) {
        let weak = Arc::downgrade(&self.0);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                Self(inner).refetch().await;
            }
        });
    }

    /// Fetches the JWKS URL again; on failure the keys held stay.
    async fn refetch(&self) {
        let mut last = self.0.last_fetch.lock().await;
        if last.elapsed() < Duration::from_secs(1) {
            return; // another caller fetched just now
        }
        match self.0.source.load().await {
            Ok(keys) => {
                tracing::info!(keys = keys.keys.len(), "JWKS refreshed");
                if let Ok(mut held) = self.0.keys.write() {
                    *held = keys;
                }
            }
            Err(err) => tracing::warn!(error = %format!("{err:#}"), "JWKS refresh failed; keeping the keys held"),
        }
        *last = Instant::now();
    }

    /// The principal a bearer token proves, or why it proves none.
    pub async fn verify(&self, token: &str) -> Result<Principal, Error> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| refuse(&e))?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(Error::unauthenticated(format!(
                "tokens signed {:?} are not accepted: RS256, ES256 or EdDSA only",
                header.alg
            )));
        }
        let key = match self.key(header.kid.as_deref(), header.alg) {
            Some(key) => key,
            None if matches!(self.0.source, KeySource::Url(_)) && self.refetch_if_stale().await => {
                self.key(header.kid.as_deref(), header.alg).ok_or_else(|| unknown_key(header.kid.as_deref()))?
            }
            None => return Err(unknown_key(header.kid.as_deref())),
        };
        // One algorithm: the header's, already checked against the allowed
        // ones and the key's own.
        let mut validation = self.0.validation.clone();
        validation.algorithms = vec![header.alg];
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| refuse(&e))?;
        let claims = data.claims;
        if claims.sub.is_empty() {
            return Err(Error::unauthenticated("the token's sub claim is empty"));
        }
        let mut scopes: BTreeSet<String> =
            claims.scope.iter().flat_map(|s| s.split_whitespace()).map(str::to_owned).collect();
        match claims.scp {
            Some(ScopeList::List(list)) => scopes.extend(list),
            Some(ScopeList::Spaced(s)) => scopes.extend(s.split_whitespace().map(str::to_owned)),
            None => {}
        }
        if let Some(granted) = self.0.grants.get(&claims.sub) {
            scopes.extend(granted.iter().cloned());
        }
        Ok(Principal { subject: claims.sub, scopes, unrestricted: false })
    }

    /// The key a token names: by `kid`, or the only key when it names none.
    fn key(&self, kid: Option<&str>, alg: Algorithm) -> Option<DecodingKey> {
        let keys = self.0.keys.read().ok()?;
        let jwk: &Jwk = match kid {
            Some(kid) => keys.find(kid)?,
            None if keys.keys.len() == 1 => keys.keys.first()?,
            None => return None,
        };
        // A key published for one algorithm signs with that one only.
        if let Some(declared) = jwk.common.key_algorithm
            && declared.to_string() != format!("{alg:?}")
        {
            return None;
        }
        DecodingKey::from_jwk(jwk).ok()
    }

    /// Fetches the JWKS again unless that was done in the last 30 s; one
    /// caller fetches while the others wait, then they all look again.
    async fn refetch_if_stale(&self) -> bool {
        let last = self.0.last_fetch.lock().await;
        if last.elapsed() < REFETCH_AT_MOST_EVERY {
            return false;
        }
        drop(last);
        self.refetch().await;
        true
    }
}

fn unknown_key(kid: Option<&str>) -> Error {
    match kid {
        Some(kid) => {
            Error::unauthenticated(format!("the token's key id {} is not in the JWKS", crate::types::quote(kid)))
        }
        None => Error::unauthenticated("the token names no key id (kid) and the JWKS holds more than one key"),
    }
}

/// UNAUTHENTICATED saying what is wrong with a token, never echoing it.
fn refuse(err: &jsonwebtoken::errors::Error) -> Error {
    let why = match err.kind() {
        ErrorKind::ExpiredSignature => "the token has expired".to_owned(),
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)".to_owned(),
        ErrorKind::InvalidIssuer => "the token's issuer (iss) is not the one accepted".to_owned(),
        ErrorKind::InvalidAudience => "the token's audience (aud) is not this service's".to_owned(),
        ErrorKind::InvalidSignature => "the token's signature does not verify".to_owned(),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName | ErrorKind::UnsupportedAlgorithm => {
            "the token's algorithm is not accepted: RS256, ES256 or EdDSA with the key's own".to_owned()
        }
        ErrorKind::MissingRequiredClaim(claim) => format!("the token has no {claim} claim"),
        ErrorKind::InvalidClaimFormat(claim) => format!("the token's {claim} claim is malformed"),
        _ => "the bearer token is malformed".to_owned(),
    };
    Error::unauthenticated(why)
}

impl KeySource {
    async fn load(&self) -> anyhow::Result<JwkSet> {
        let (json, from) = match self {
            Self::File(path) => (
                std::fs::read(path).map_err(|e| anyhow::anyhow!("auth.jwks_file {}: {e}", path.display()))?,
                path.display().to_string(),
            ),
            Self::Url(url) => (url.fetch().await?, url.url.to_string()),
        };
        let keys: JwkSet = serde_json::from_slice(&json).map_err(|e| anyhow::anyhow!("the JWKS of {from}: {e}"))?;
        let usable = keys.keys.iter().filter(|k| DecodingKey::from_jwk(k).is_ok()).count();
        anyhow::ensure!(usable > 0, "the JWKS of {from} holds no usable key");
        Ok(keys)
    }
}

type HttpsClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    http_body_util::Empty<bytes::Bytes>,
>;

/// A JWKS served over HTTP(S): Kubernetes' `/openid/v1/jwks`, an identity provider's `jwks_uri`.
struct JwksUrl {
    url: http::Uri,
    client: HttpsClient,
}

impl JwksUrl {
    fn new(url: &str, ca_file: Option<&Path>) -> anyhow::Result<Self> {
        let url: http::Uri = url.parse().map_err(|e| anyhow::anyhow!("auth.jwks_url {url:?}: {e}"))?;
        let builder = match ca_file {
            Some(ca) => hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(crate::tls::client_config_with_ca("auth.jwks_ca_file", ca)?),
            None => hyper_rustls::HttpsConnectorBuilder::new()
                .with_provider_and_native_roots(rustls::crypto::ring::default_provider())?,
        };
        let connector = builder.https_or_http().enable_http1().build();
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector);
        Ok(Self { url, client })
    }

    async fn fetch(&self) -> anyhow::Result<Vec<u8>> {
        use http_body_util::BodyExt as _;
        let request = http::Request::get(self.url.clone())
            .header(http::header::ACCEPT, "application/json")
            .body(http_body_util::Empty::new())?;
        let response = tokio::time::timeout(Duration::from_secs(10), self.client.request(request))
            .await
            .map_err(|_| anyhow::anyhow!("auth.jwks_url {}: no answer in 10 s", self.url))?
            .map_err(|e| anyhow::anyhow!("auth.jwks_url {}: {e}", self.url))?;
        anyhow::ensure!(response.status().is_success(), "auth.jwks_url {}: HTTP {}", self.url, response.status());
        let body = http_body_util::Limited::new(response.into_body(), 1024 * 1024);
        let bytes = body.collect().await.map_err(|e| anyhow::anyhow!("auth.jwks_url {}: {e}", self.url))?;
        Ok(bytes.to_bytes().to_vec())
    }
}

/// The tower layer that authenticates and authorizes every call.
#[derive(Clone)]
pub struct AuthLayer {
    auth: Option<Authenticator>,
}

impl AuthLayer {
    /// `None`: auth is off, every caller is `anonymous`.
    pub fn new(auth: Option<Authenticator>) -> Self {
        Self { auth }
    }
}

impl<S> tower_layer::Layer<S> for AuthLayer {
    type Service = Authenticated<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authenticated { inner, auth: self.auth.clone() }
    }
}

#[derive(Clone)]
pub struct Authenticated<S> {
    inner: S,
    auth: Option<Authenticator>,
}

impl<S, B> Service<http::Request<B>> for Authenticated<S>
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

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let path = request.uri().path().to_owned();
        let Some(auth) = self.auth.clone().filter(|_| !open_path(&path)) else {
            request.extensions_mut().insert(Principal::anonymous());
            return Box::pin(inner.call(request));
        };
        let bearer = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .map(|v| v.to_str().ok().and_then(bearer_token).map(str::to_owned));
        Box::pin(async move {
            let principal = match bearer {
                None => Err(Error::unauthenticated("this call needs an authorization: Bearer <token> header")),
                Some(None) => Err(Error::unauthenticated("the authorization header is not Bearer <token>")),
                Some(Some(token)) => auth.verify(&token).await,
            };
            let principal = match principal {
                Ok(principal) => principal,
                Err(err) => {
                    tracing::info!(%path, reason = err.message(), "unauthenticated call refused");
                    return Ok(tonic::Status::from(err).into_http());
                }
            };
            if let Some(scope) = required_scope(&path)
                && !principal.has(&scope)
            {
                tracing::info!(%path, subject = %principal.subject, %scope, "call refused: scope missing");
                return Ok(tonic::Status::from(Error::permission_denied(&principal.subject, &scope)).into_http());
            }
            request.extensions_mut().insert(principal);
            inner.call(request).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rpc_needs_the_scope_of_its_service_and_kind() {
        let cases = [
            ("/tradewatch.tariff.v1.TariffService/GetMeasure", Some("tariff:read")),
            ("/tradewatch.tariff.v1.TariffService/ResolveDuty", Some("tariff:read")),
            ("/tradewatch.tariff.v1.TariffService/BatchGetMeasures", Some("tariff:read")),
            ("/tradewatch.tariff.v1.TariffService/ListMeasureHistory", Some("tariff:read")),
            ("/tradewatch.tariff.v1.TariffService/RecordQuotaUsage", Some("tariff:write")),
            ("/tradewatch.tariff.v1.TariffService/ImportTradeFlows", Some("tariff:write")),
            ("/tradewatch.tariff.v1.TariffService/ImportMeasures", Some("tariff:write")),
            ("/tradewatch.relations.v1.RelationsService/GetBilateralBrief", Some("relations:read")),
            ("/tradewatch.tariff.v1.TariffService/ListTradeFlows", Some("tariff:read")),
            ("/tradewatch.tariff.v1.TariffService/GetMeasureExposure", Some("tariff:read")),
            ("/tradewatch.tariff.v1.TariffService/GetTradeCoverage", Some("tariff:read")),
            ("/tradewatch.tariff.v1.TariffService/WatchTradeFlows", Some("tariff:read")),
            ("/tradewatch.dispute.v1.DisputeService/AdvanceDispute", Some("dispute:write")),
            ("/tradewatch.dialogue.v1.DialogueService/WatchSessions", Some("dialogue:read")),
            ("/tradewatch.dialogue.v1.DialogueService/AddCommitment", Some("dialogue:write")),
            ("/grpc.health.v1.Health/Check", None),
            ("/other.Service/Get", None),
        ];
        for (path, scope) in cases {
            assert_eq!(required_scope(path).as_deref(), scope, "{path}");
        }
        assert!(open_path("/grpc.health.v1.Health/Watch"));
        assert!(open_path("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"));
        assert!(!open_path("/tradewatch.tariff.v1.TariffService/GetMeasure"));
    }

    #[test]
    fn the_bearer_scheme_is_read_in_any_case() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
    }

    #[test]
    fn anonymous_holds_every_scope_and_a_token_only_its_own() {
        assert!(Principal::anonymous().has("tariff:write"));
        let p = Principal { subject: "ci".into(), scopes: ["tariff:read".to_owned()].into(), unrestricted: false };
        assert!(p.has("tariff:read"));
        assert!(!p.has("tariff:write"));
    }
}
