//! TLS, mTLS, bearer tokens, scopes and grants, peers over TLS with their
//! own tokens, and the actors every write records: real servers, keys and
//! certificates made for the test, on the test's database backend.

use std::time::Duration;

use tonic::{
    Code, Request, Status,
    metadata::AsciiMetadataValue,
    service::interceptor::InterceptedService,
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity},
};
use tradewatch_common::{
    dev_identity::{DevIdentity, DevIssuer, TokenSpec},
    proto::{
        dialogue::{self as gpb, dialogue_service_client::DialogueServiceClient},
        dispute::{self as dpb, dispute_service_client::DisputeServiceClient},
        tariff::{self as tpb, tariff_service_client::TariffServiceClient},
    },
    testing::{ServiceSlot, reason},
};

/// A directory of development keys and certificates, gone after the test.
struct Keys {
    _dir: tempfile::TempDir,
    identity: DevIdentity,
    issuer: DevIssuer,
}

impl Keys {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let identity = DevIdentity::open_or_create(dir.path()).unwrap();
        let issuer = identity.issuer().unwrap();
        Self { _dir: dir, identity, issuer }
    }

    fn token(&self, subject: &str, scopes: &[&str]) -> String {
        self.issuer.token(&TokenSpec::new(subject, scopes)).unwrap()
    }

    /// A token file for a service's peer calls.
    fn token_file(&self, name: &str, subject: &str, scopes: &[&str]) -> std::path::PathBuf {
        let path = self.identity.path(name);
        std::fs::write(&path, self.token(subject, scopes)).unwrap();
        path
    }

    fn tls(&self, client_certificate: bool) -> ClientTlsConfig {
        let ca = std::fs::read(self.identity.path("ca.crt")).unwrap();
        let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
        if !client_certificate {
            return tls;
        }
        let cert = std::fs::read(self.identity.path("client.crt")).unwrap();
        let key = std::fs::read(self.identity.path("client.key")).unwrap();
        tls.identity(Identity::from_pem(cert, key))
    }
}

type Authed = InterceptedService<Channel, Bearer>;

/// Adds `authorization: Bearer <token>` to every call (when there is a token).
#[derive(Clone)]
struct Bearer(Option<AsciiMetadataValue>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

fn bearer(token: Option<&str>) -> Bearer {
    Bearer(token.map(|t| format!("Bearer {t}").parse().unwrap()))
}

async fn tls_channel(slot: &ServiceSlot, tls: ClientTlsConfig) -> Result<Channel, tonic::transport::Error> {
    let addr = slot.addr.unwrap();
    Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
}

async fn tariff_as(slot: &ServiceSlot, keys: &Keys, token: Option<&str>) -> TariffServiceClient<Authed> {
    TariffServiceClient::with_interceptor(tls_channel(slot, keys.tls(false)).await.unwrap(), bearer(token))
}

/// A tariff service with TLS and JWT auth on; `grants` as `auth.grants`.
async fn secure_tariff(keys: &Keys, client_certificates: bool, grants: &str) -> ServiceSlot {
    let mut slot = ServiceSlot::new().await.unwrap();
    let mut settings = slot.settings(tariff_service::SERVICE);
    keys.identity.secure(&mut settings, client_certificates);
    settings.auth.grants = grants.into();
    slot.start(settings, tariff_service::app::Application::build).await.unwrap();
    slot
}

fn surtax(reference: &str) -> tpb::CreateMeasureRequest {
    tpb::CreateMeasureRequest {
        measure: Some(tpb::TariffMeasure {
            reference: reference.into(),
            title: "Surtax on steel".into(),
            imposing_economy: "CAN".into(),
            kind: tpb::MeasureKind::Surtax.into(),
            hs_codes: vec!["72".into()],
            ad_valorem_percent: "25".into(),
            effective_from: "2024-10-15".into(),
            ..Default::default()
        }),
        request_id: String::new(),
    }
}

/// The measures a full reader sees.
async fn measure_count(slot: &ServiceSlot, keys: &Keys) -> usize {
    let reader = keys.token("auditor", &["tariff:read"]);
    let mut client = tariff_as(slot, keys, Some(&reader)).await;
    client.list_measures(tpb::ListMeasuresRequest::default()).await.unwrap().into_inner().measures.len()
}

#[track_caller]
fn refused<T: std::fmt::Debug>(result: Result<T, Status>, code: Code, reason_expected: &str, why: &str) {
    match result {
        Ok(v) => panic!("{why}: expected {code:?}, got {v:?}"),
        Err(status) => {
            assert_eq!(status.code(), code, "{why}: {status:?}");
            assert_eq!(reason(&status), reason_expected, "{why}: {status:?}");
        }
    }
}

#[tokio::test]
async fn every_bad_token_is_unauthenticated_and_writes_nothing() {
    let keys = Keys::new();
    let slot = secure_tariff(&keys, false, "").await;
    let writer = TokenSpec::new("alice", &["tariff:write"]);
    let other = DevIssuer::new(DevIdentity::ISSUER, DevIdentity::AUDIENCE).unwrap();
    // Another key under the same key id: the signature does not verify.
    let forged = other.token(&writer).unwrap();
    let unsigned = {
        use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD as B64};
        let payload = keys.token("alice", &["tariff:write"]).split('.').nth(1).unwrap().to_owned();
        format!("{}.{payload}.", B64.encode(r#"{"alg":"none","typ":"JWT"}"#))
    };
    let mut unknown_kid = DevIssuer::new(DevIdentity::ISSUER, DevIdentity::AUDIENCE).unwrap();
    unknown_kid.add_ed25519_key("not-in-the-jwks").unwrap();
    let cases: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        ("malformed", Some("not.a.jwt".into())),
        ("bad signature", Some(forged)),
        ("expired", Some(keys.issuer.token(&TokenSpec { expires_in: -3600, ..writer.clone() }).unwrap())),
        ("not yet valid", Some(keys.issuer.token(&TokenSpec { not_before_in: Some(3600), ..writer.clone() }).unwrap())),
        (
            "wrong issuer",
            Some(keys.issuer.token(&TokenSpec { issuer: Some("https://elsewhere".into()), ..writer.clone() }).unwrap()),
        ),
        (
            "wrong audience",
            Some(keys.issuer.token(&TokenSpec { audience: Some("billing".into()), ..writer.clone() }).unwrap()),
        ),
        ("unknown key id", Some(unknown_kid.token_with("not-in-the-jwks", &writer).unwrap())),
        ("alg none", Some(unsigned)),
    ];
    for (why, token) in &cases {
        let mut client = tariff_as(&slot, &keys, token.as_deref()).await;
        refused(client.create_measure(surtax(why)).await, Code::Unauthenticated, "UNAUTHENTICATED", why);
        refused(
            client.get_measure(tpb::GetMeasureRequest { id: uuid::Uuid::now_v7().to_string() }).await,
            Code::Unauthenticated,
            "UNAUTHENTICATED",
            why,
        );
    }
    // Within the leeway, an expired token still passes.
    let late = keys.issuer.token(&TokenSpec { expires_in: -10, ..writer.clone() }).unwrap();
    tariff_as(&slot, &keys, Some(&late)).await.create_measure(surtax("LATE")).await.unwrap();
    assert_eq!(measure_count(&slot, &keys).await, 1, "only the call with a valid token wrote");

    // Health and reflection need no token. Health is NOT_SERVING until the
    // schedule has loaded, which the calls above need not wait for.
    let channel = tls_channel(&slot, keys.tls(false)).await.unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let serving = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
    let mut status = 0;
    for _ in 0..100 {
        status = health
            .check(tonic_health::pb::HealthCheckRequest { service: String::new() })
            .await
            .unwrap()
            .into_inner()
            .status;
        if status == serving {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(status, serving);
}

#[tokio::test]
async fn scopes_and_grants_decide_who_reads_and_who_writes() {
    let keys = Keys::new();
    let slot =
        secure_tariff(&keys, false, "system:serviceaccount:tradewatch:dispute=tariff:read; ci-bot=tariff:write").await;

    let reader = keys.token("analyst", &["tariff:read"]);
    let mut client = tariff_as(&slot, &keys, Some(&reader)).await;
    let denied = client.create_measure(surtax("READER")).await.unwrap_err();
    assert_eq!((denied.code(), reason(&denied)), (Code::PermissionDenied, "PERMISSION_DENIED".into()), "{denied:?}");
    assert_eq!(
        tradewatch_common::testing::error_info(&denied).1.get("required_scope").map(String::as_str),
        Some("tariff:write")
    );
    assert!(client.list_measures(tpb::ListMeasuresRequest::default()).await.is_ok());
    // A scope of another service is no scope here.
    let elsewhere = keys.token("analyst", &["dispute:write"]);
    refused(
        tariff_as(&slot, &keys, Some(&elsewhere)).await.create_measure(surtax("ELSEWHERE")).await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
        "dispute:write",
    );

    let writer = keys.token("alice", &["tariff:read", "tariff:write"]);
    let created = tariff_as(&slot, &keys, Some(&writer))
        .await
        .create_measure(surtax("WRITER"))
        .await
        .unwrap()
        .into_inner()
        .measure
        .unwrap();
    assert_eq!((created.create_actor.as_str(), created.update_actor.as_str()), ("alice", "alice"));

    // A token without scopes gets what its subject is granted, and only that.
    let service_account = keys.token("system:serviceaccount:tradewatch:dispute", &[]);
    let mut sa = tariff_as(&slot, &keys, Some(&service_account)).await;
    assert!(sa.get_measure(tpb::GetMeasureRequest { id: created.id.clone() }).await.is_ok());
    refused(sa.create_measure(surtax("SA")).await, Code::PermissionDenied, "PERMISSION_DENIED", "granted read only");
    let bot = keys.token("ci-bot", &[]);
    let mut bot = tariff_as(&slot, &keys, Some(&bot)).await;
    let usage = bot
        .set_measure_status(tpb::SetMeasureStatusRequest {
            id: created.id.clone(),
            status: tpb::MeasureStatus::Suspended.into(),
            effective_on: "2026-03-01".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(usage.change.unwrap().actor, "ci-bot");
    assert_eq!(usage.measure.unwrap().update_actor, "ci-bot");
    assert_eq!(measure_count(&slot, &keys).await, 1, "refused writes wrote nothing");
}

#[tokio::test]
async fn rs256_es256_and_eddsa_tokens_are_accepted() {
    use rsa::{pkcs8::EncodePrivateKey as _, traits::PublicKeyParts as _};
    let keys = Keys::new();
    let mut issuer = keys.identity.issuer().unwrap();
    issuer.add_ed25519_key("ed").unwrap();
    let rsa_key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
    let pem = rsa_key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).unwrap();
    issuer.add_rsa_key("rsa", &pem, &rsa_key.n().to_bytes_be(), &rsa_key.e().to_bytes_be()).unwrap();
    std::fs::write(keys.identity.path("jwks.json"), issuer.jwks()).unwrap();
    let slot = secure_tariff(&keys, false, "").await;
    let spec = TokenSpec::new("multi", &["tariff:read"]);
    for kid in ["dev-es256", "ed", "rsa"] {
        let token = issuer.token_with(kid, &spec).unwrap();
        let listed =
            tariff_as(&slot, &keys, Some(&token)).await.list_measures(tpb::ListMeasuresRequest::default()).await;
        assert!(listed.is_ok(), "{kid}: {listed:?}");
    }
}

#[tokio::test]
async fn mtls_admits_only_clients_with_a_certificate_of_the_ca() {
    let keys = Keys::new();
    let slot = secure_tariff(&keys, true, "").await;
    let token = keys.token("alice", &["tariff:read"]);
    // Without a client certificate the handshake fails: no call gets through.
    let without = match tls_channel(&slot, keys.tls(false)).await {
        Err(_) => None,
        Ok(channel) => Some(
            TariffServiceClient::with_interceptor(channel, bearer(Some(&token)))
                .list_measures(tpb::ListMeasuresRequest::default())
                .await,
        ),
    };
    assert!(matches!(without, None | Some(Err(_))), "{without:?}");
    let channel = tls_channel(&slot, keys.tls(true)).await.unwrap();
    let listed = TariffServiceClient::with_interceptor(channel, bearer(Some(&token)))
        .list_measures(tpb::ListMeasuresRequest::default())
        .await;
    assert!(listed.is_ok(), "{listed:?}");
    // Plaintext to a TLS port gets nowhere either.
    let plain = tradewatch_common::testing::channel(slot.addr.unwrap()).await;
    if let Ok(channel) = plain {
        assert!(TariffServiceClient::new(channel).list_measures(tpb::ListMeasuresRequest::default()).await.is_err());
    }
}

#[tokio::test]
async fn an_https_peer_that_speaks_no_tls_fails_closed() {
    // A plaintext tariff service, and a dispute service told it is https://.
    let mut tariff = ServiceSlot::new().await.unwrap();
    let settings = tariff.settings(tariff_service::SERVICE);
    tariff.start(settings, tariff_service::app::Application::build).await.unwrap();
    let measure = TariffServiceClient::new(tradewatch_common::testing::channel(tariff.addr.unwrap()).await.unwrap())
        .create_measure(surtax("PLAIN"))
        .await
        .unwrap()
        .into_inner()
        .measure
        .unwrap();
    let mut dispute = ServiceSlot::new().await.unwrap();
    let mut settings = dispute.settings(dispute_service::SERVICE);
    settings.peers.tariff_url = format!("https://{}", tariff.addr.unwrap());
    dispute.start(settings, dispute_service::app::Application::build).await.unwrap();
    let mut client =
        DisputeServiceClient::new(tradewatch_common::testing::channel(dispute.addr.unwrap()).await.unwrap());
    let refused = client
        .create_dispute(dpb::CreateDisputeRequest {
            dispute: Some(dpb::Dispute {
                reference: "WT/DS-TLS".into(),
                title: "A dispute citing a measure".into(),
                complainant: "CHN".into(),
                respondent: "CAN".into(),
                forum: dpb::DisputeForum::Wto.into(),
                measure_ids: vec![measure.id],
                opened_on: "2024-12-01".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!((refused.code(), reason(&refused)), (Code::Unavailable, "PEER_UNAVAILABLE".into()), "{refused:?}");
    assert!(client.list_disputes(dpb::ListDisputesRequest::default()).await.unwrap().into_inner().disputes.is_empty());
}

#[tokio::test]
async fn peers_call_each_other_over_tls_with_their_own_tokens_and_every_write_names_its_actor() {
    let keys = Keys::new();
    let grants = "dispute-service=tariff:read; dialogue-service=tariff:read tariff:write dispute:read dispute:write";
    let tariff = secure_tariff(&keys, true, grants).await;
    let mut dispute = ServiceSlot::new().await.unwrap();
    let mut settings = dispute.settings(dispute_service::SERVICE);
    keys.identity.secure(&mut settings, true);
    settings.auth.grants = grants.into();
    settings.peers.tariff_url = format!("https://{}", tariff.addr.unwrap());
    keys.identity.secure_peers(&mut settings, keys.token_file("dispute.token", "dispute-service", &[]));
    dispute.start(settings, dispute_service::app::Application::build).await.unwrap();
    let mut dialogue = ServiceSlot::new().await.unwrap();
    let mut settings = dialogue.settings(dialogue_service::SERVICE);
    keys.identity.secure(&mut settings, true);
    settings.peers.tariff_url = format!("https://{}", tariff.addr.unwrap());
    settings.peers.dispute_url = format!("https://{}", dispute.addr.unwrap());
    keys.identity.secure_peers(&mut settings, keys.token_file("dialogue.token", "dialogue-service", &[]));
    dialogue.start(settings, dialogue_service::app::Application::build).await.unwrap();

    let alice =
        keys.token("alice", &["tariff:read", "tariff:write", "dispute:write", "dialogue:read", "dialogue:write"]);
    let channel = |slot: &ServiceSlot| {
        let addr = slot.addr.unwrap();
        let tls = keys.tls(true);
        async move {
            Endpoint::from_shared(format!("https://{addr}")).unwrap().tls_config(tls).unwrap().connect().await.unwrap()
        }
    };
    let mut tariff_client = TariffServiceClient::with_interceptor(channel(&tariff).await, bearer(Some(&alice)));
    let measure = tariff_client.create_measure(surtax("SOR/2024-188")).await.unwrap().into_inner().measure.unwrap();

    // The dispute service checks the cited measure over TLS with its own token.
    let mut disputes = DisputeServiceClient::with_interceptor(channel(&dispute).await, bearer(Some(&alice)));
    let created = disputes
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
        .unwrap()
        .into_inner()
        .dispute
        .unwrap();
    assert_eq!(created.create_actor, "alice");
    let events = disputes
        .list_dispute_events(dpb::ListDisputeEventsRequest { dispute_id: created.id.clone(), ..Default::default() })
        .await;
    refused(events, Code::PermissionDenied, "PERMISSION_DENIED", "alice may not read disputes");

    // The relay delivers a suspension to the tariff service with its own token.
    let mut dialogues = DialogueServiceClient::with_interceptor(channel(&dialogue).await, bearer(Some(&alice)));
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
                description: "Suspend the steel surtax".into(),
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
    let fulfilled = dialogues
        .set_commitment_status(gpb::SetCommitmentStatusRequest {
            id: commitment.id.clone(),
            status: gpb::CommitmentStatus::Fulfilled.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .commitment
        .unwrap();
    assert_eq!((fulfilled.create_actor.as_str(), fulfilled.status_actor.as_str()), ("alice", "alice"));

    let mut applied = None;
    for _ in 0..100 {
        let c = dialogues
            .get_commitment(gpb::GetCommitmentRequest { id: commitment.id.clone() })
            .await
            .unwrap()
            .into_inner()
            .commitment
            .unwrap();
        if c.effect_state() != gpb::EffectState::Pending {
            applied = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let applied = applied.expect("the relay settles the effect");
    assert_eq!(applied.effect_state(), gpb::EffectState::Applied, "{applied:?}");
    assert_eq!(applied.update_actor, "dialogue-relay");
    let history = tariff_client
        .list_measure_history(tpb::ListMeasureHistoryRequest { measure_id: measure.id.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .changes;
    let actors: Vec<(&str, tpb::MeasureStatus)> = history.iter().map(|c| (c.actor.as_str(), c.status())).collect();
    assert_eq!(actors, [("alice", tpb::MeasureStatus::InForce), ("dialogue-service", tpb::MeasureStatus::Suspended)]);

    dialogue.stop().await.unwrap();
    let mut dispute = dispute;
    dispute.stop().await.unwrap();
    let mut tariff = tariff;
    tariff.stop().await.unwrap();
}

#[tokio::test]
async fn with_auth_off_every_write_is_anonymous() {
    let mut slot = ServiceSlot::new().await.unwrap();
    let settings = slot.settings(tariff_service::SERVICE);
    slot.start(settings, tariff_service::app::Application::build).await.unwrap();
    let mut client = TariffServiceClient::new(tradewatch_common::testing::channel(slot.addr.unwrap()).await.unwrap());
    let m = client.create_measure(surtax("ANON")).await.unwrap().into_inner().measure.unwrap();
    assert_eq!((m.create_actor.as_str(), m.update_actor.as_str()), ("anonymous", "anonymous"));
}

#[tokio::test]
async fn the_plaintext_health_port_serves_health_alone() {
    let keys = Keys::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut slot = ServiceSlot::new().await.unwrap();
    let mut settings = slot.settings(tariff_service::SERVICE);
    keys.identity.secure(&mut settings, true);
    settings.server.health_port = Some(port);
    slot.start(settings, tariff_service::app::Application::build).await.unwrap();
    let channel = tradewatch_common::testing::channel(format!("127.0.0.1:{port}").parse().unwrap()).await.unwrap();
    // The service's own name turns SERVING once its database has answered.
    let mut status = 0;
    for _ in 0..100 {
        status = tonic_health::pb::health_client::HealthClient::new(channel.clone())
            .check(tonic_health::pb::HealthCheckRequest { service: "tradewatch.tariff.v1.TariffService".into() })
            .await
            .unwrap()
            .into_inner()
            .status;
        if status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);
    let api = TariffServiceClient::new(channel).list_measures(tpb::ListMeasuresRequest::default()).await;
    assert_eq!(api.map(|_| ()).unwrap_err().code(), Code::Unimplemented, "the API is not on the health port");
}

/// Serves the JWKS in `body` over plain HTTP/1.1 on 127.0.0.1, counting the fetches.
async fn serve_jwks(
    body: std::sync::Arc<std::sync::Mutex<String>>,
) -> (std::net::SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let fetches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = fetches.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let json = body.lock().unwrap().clone();
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{json}",
                json.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
        }
    });
    (addr, fetches)
}

#[tokio::test]
async fn a_jwks_url_is_fetched_again_for_a_rotated_key_but_not_for_every_unknown_one() {
    use std::sync::atomic::Ordering;
    let keys = Keys::new();
    let served = std::sync::Arc::new(std::sync::Mutex::new(keys.issuer.jwks()));
    let (addr, fetches) = serve_jwks(served.clone()).await;
    let mut slot = ServiceSlot::new().await.unwrap();
    let mut settings = slot.settings(tariff_service::SERVICE);
    keys.identity.secure(&mut settings, false);
    settings.auth.jwks_file = None;
    settings.auth.jwks_url = Some(format!("http://{addr}/openid/v1/jwks"));
    slot.start(settings, tariff_service::app::Application::build).await.unwrap();
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "fetched at start");

    let reader = TokenSpec { scp_list: true, ..TokenSpec::new("analyst", &["tariff:read"]) };
    let list = |token: String| {
        let slot = &slot;
        let keys = &keys;
        async move { tariff_as(slot, keys, Some(&token)).await.list_measures(tpb::ListMeasuresRequest::default()).await }
    };
    assert!(list(keys.issuer.token(&reader).unwrap()).await.is_ok(), "scopes in an scp list count");

    // The issuer rotates in a new key: its first token brings a fetch.
    let mut rotated = keys.identity.issuer().unwrap();
    rotated.add_ed25519_key("rotated").unwrap();
    *served.lock().unwrap() = rotated.jwks();
    assert!(list(rotated.token_with("rotated", &reader).unwrap()).await.is_ok());
    assert_eq!(fetches.load(Ordering::SeqCst), 2);

    // Tokens naming keys nobody published do not make the service fetch each time.
    let mut stranger = DevIssuer::new(DevIdentity::ISSUER, DevIdentity::AUDIENCE).unwrap();
    stranger.add_ed25519_key("stranger").unwrap();
    for _ in 0..5 {
        let refused = list(stranger.token_with("stranger", &reader).unwrap()).await.unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated);
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 2, "at most one fetch every 30 s");
}
