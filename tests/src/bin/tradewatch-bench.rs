//! `tradewatch-bench`: the project's own load generator (`make bench`).
//!
//! For each backend asked (SQLite, PostgreSQL), starts the three release
//! binaries as their own processes on free loopback ports, measures how long
//! each takes from start to SERVING and its idle RSS, loads a tariff
//! schedule of 10,000 MFN lines and 500 special measures through the public
//! API, then drives each scenario with tonic clients over N connections × M
//! streams: a warm-up, then a timed run. It prints one table: requests per
//! second, p50/p90/p99/max, and each scenario's throughput as a ratio of the
//! bare health `Check` of the same server in the same run (DESIGN §13: the
//! ratios are what hold from run to run on a shared machine). Last, on a
//! stack of its own loaded with the Canada–China demo record, the relations
//! service's GetBilateralBrief next to its Check.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use sea_orm::{ConnectionTrait as _, Database};
use tonic::codegen::http;
use tonic::transport::Endpoint;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tradewatch_common::proto::{
    common::Money,
    dialogue::{self as gpb, dialogue_service_client::DialogueServiceClient},
    dispute::{self as dpb, dispute_service_client::DisputeServiceClient},
    relations::{self as rpb, relations_service_client::RelationsServiceClient},
    tariff::{self as tpb, tariff_service_client::TariffServiceClient},
};
use tradewatch_e2e::{demo, faults::ServiceProcess};

#[derive(Debug, Parser)]
#[command(
    name = "tradewatch-bench",
    version,
    about = "Tradewatch's load generator: req/s, latency and ratios to Check"
)]
struct Cli {
    /// Where the release binaries are (tariff-service, dispute-service, dialogue-service, relations-service)
    #[arg(long, value_name = "DIR", default_value = "target/release")]
    bin_dir: PathBuf,
    /// The backends to run on
    #[arg(long, value_enum, num_args = 1.., default_values_t = [Backend::Sqlite, Backend::Postgres])]
    backend: Vec<Backend>,
    /// An existing PostgreSQL database to make the bench's databases next to
    #[arg(long, env = "TRADEWATCH_BENCH_POSTGRES", default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres: String,
    /// Client connections per scenario
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Concurrent streams per connection
    #[arg(long, default_value_t = 10)]
    streams: usize,
    /// Seconds of each scenario's timed run
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Seconds of warm-up before each
    #[arg(long, default_value_t = 1)]
    warmup: u64,
    /// MFN tariff lines in the schedule
    #[arg(long, default_value_t = 10_000)]
    lines: usize,
    /// Special measures (surtaxes, anti-dumping, quotas, …) over them
    #[arg(long, default_value_t = 500)]
    special: usize,
    /// Trade flows to import for the exposure and coverage scenarios (10
    /// economy pairs × 5 years); 0 skips them
    #[arg(long, default_value_t = 1_000_000)]
    flows: usize,
    /// Rate lines of the national schedule loaded with tradewatch-schedule's
    /// loader into a tariff service of its own (15 treatments a code, and
    /// 5,000 special measures against 20 origins); 0 skips it
    #[arg(long, default_value_t = 100_000)]
    national: usize,
    /// Where the SQLite databases go
    #[arg(long, value_name = "DIR", default_value = "var/bench")]
    var: PathBuf,
    /// h2load, to measure the Gets and ResolveDuty from outside as well (one
    /// request repeated, the cheapest client there is); skipped when absent
    #[arg(long, value_name = "PATH", default_value = "h2load")]
    h2load: PathBuf,
    /// Do not run h2load
    #[arg(long)]
    no_h2load: bool,
    /// Run no scenario: start the services of the first backend, load the
    /// schedule, write the h2load request bodies next to the databases,
    /// print the h2load commands, and keep serving for this many seconds (or
    /// until interrupted), for outside tools (h2load, perf) to measure
    #[arg(long, value_name = "SECONDS")]
    serve: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite",
            Self::Postgres => "PostgreSQL",
        }
    }
}

/// One service process of the bench, and its memory when idle.
struct Service {
    process: ServiceProcess,
    idle_rss_kib: u64,
}

impl Service {
    async fn start(bin_dir: &Path, name: &'static str, env: &[(&str, String)]) -> anyhow::Result<Self> {
        let binary = bin_dir.join(format!("{name}-service"));
        anyhow::ensure!(binary.exists(), "{} is missing: build it with cargo build --release", binary.display());
        let mut env = env.to_vec();
        env.extend([
            ("TRADEWATCH__LOG__FILTER", "warn".to_owned()),
            ("TRADEWATCH__SERVER__MAX_IN_FLIGHT", "4096".to_owned()),
        ]);
        let process = ServiceProcess::start(bin_dir, name, &env).await?;
        // Idle: a moment after SERVING, before any call of the bench.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let idle_rss_kib = process.rss_kib();
        Ok(Self { process, idle_rss_kib })
    }

    fn url(&self) -> String {
        self.process.url()
    }
}

/// What one scenario measured.
struct Outcome {
    scenario: String,
    streams: usize,
    errors: usize,
    per_second: f64,
    latencies: Vec<Duration>,
    /// The scenario whose throughput this one is compared with.
    baseline: Option<String>,
}

impl Outcome {
    fn percentile(&self, p: f64) -> Duration {
        percentile(&self.latencies, p)
    }
}

/// The `p` quantile of `sorted` latencies (zero when there are none).
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// A call the load makes: the `n`th, on `channel`.
type Call = Arc<dyn Fn(Conn, usize) -> futures::future::BoxFuture<'static, Result<(), tonic::Status>> + Send + Sync>;

/// One HTTP/2 connection that the generated clients call directly. tonic's
/// `Channel` hands every call to a buffer task first: a hop per call that a
/// load generator sharing the cores with the server should not spend.
#[derive(Clone)]
struct Conn {
    send: hyper::client::conn::http2::SendRequest<tonic::body::Body>,
    authority: http::uri::Authority,
}

impl Conn {
    async fn connect(url: &str) -> anyhow::Result<Self> {
        let uri: http::Uri = url.parse()?;
        let authority = uri.authority().context("the URL names a host and port")?.clone();
        let tcp = tokio::net::TcpStream::connect(authority.as_str()).await?;
        tcp.set_nodelay(true)?;
        let (send, connection) = hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .handshake(hyper_util::rt::TokioIo::new(tcp))
            .await?;
        tokio::spawn(connection);
        Ok(Self { send, authority })
    }
}

impl tonic::codegen::Service<http::Request<tonic::body::Body>> for Conn {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = hyper::Error;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, hyper::Error>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), hyper::Error>> {
        self.send.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<tonic::body::Body>) -> Self::Future {
        // The generated clients send a path; HTTP/2 wants the scheme and authority too.
        let mut uri = std::mem::take(request.uri_mut()).into_parts();
        uri.scheme = Some(http::uri::Scheme::HTTP);
        uri.authority = Some(self.authority.clone());
        if let Ok(uri) = http::Uri::from_parts(uri) {
            *request.uri_mut() = uri;
        }
        Box::pin(self.send.send_request(request))
    }
}

/// Runs `call` over `connections` connections × `streams` streams: warm-up,
/// then `seconds` timed.
async fn drive(
    url: &str,
    scenario: &str,
    connections: usize,
    streams: usize,
    warmup: Duration,
    seconds: Duration,
    call: Call,
) -> anyhow::Result<Outcome> {
    let mut channels = Vec::new();
    for _ in 0..connections {
        channels.push(Conn::connect(url).await?);
    }
    let counter = Arc::new(AtomicUsize::new(0));
    let run = |until: Instant, record: bool| {
        let mut tasks = Vec::new();
        for channel in &channels {
            for _ in 0..streams {
                let (channel, call, counter) = (channel.clone(), call.clone(), counter.clone());
                tasks.push(tokio::spawn(async move {
                    let mut latencies = Vec::with_capacity(if record { 50_000 } else { 0 });
                    let mut errors = 0;
                    let mut first_error = None;
                    while Instant::now() < until {
                        let n = counter.fetch_add(1, Ordering::Relaxed);
                        let started = Instant::now();
                        // Only answers count: a call that fails fast must not
                        // pass for throughput.
                        match call(channel.clone(), n).await {
                            Ok(()) if record => latencies.push(started.elapsed()),
                            Ok(()) => {}
                            Err(status) => {
                                errors += 1;
                                first_error.get_or_insert(status);
                            }
                        }
                    }
                    (latencies, errors, first_error)
                }));
            }
        }
        tasks
    };
    for task in run(Instant::now() + warmup, false) {
        task.await?;
    }
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for task in run(started + seconds, true) {
        let (l, e, f) = task.await?;
        latencies.extend(l);
        errors += e;
        first_error = first_error.or(f);
    }
    let took = started.elapsed();
    if let Some(status) = first_error {
        eprintln!("  {scenario}: {errors} errors, the first: {:?} {}", status.code(), status.message());
    }
    latencies.sort_unstable();
    Ok(Outcome {
        scenario: scenario.to_owned(),
        streams: connections * streams,
        errors,
        per_second: latencies.len() as f64 / took.as_secs_f64(),
        latencies,
        baseline: None,
    })
}

/// A call as h2load makes it: the same request body every time.
struct Wire {
    scenario: String,
    path: &'static str,
    body: Vec<u8>,
    /// The Check of the same server it is compared with (None: it is one).
    baseline: Option<String>,
    streams: usize,
}

impl Wire {
    fn new(scenario: String, path: &'static str, message: &impl prost::Message, streams: usize) -> Self {
        let payload = message.encode_to_vec();
        // The gRPC length-prefixed message: not compressed, then the length.
        let mut body = vec![0];
        body.extend_from_slice(&u32::try_from(payload.len()).unwrap_or(u32::MAX).to_be_bytes());
        body.extend_from_slice(&payload);
        Self { scenario, path, body, baseline: None, streams }
    }

    fn against(mut self, check: &str) -> Self {
        self.baseline = Some(check.to_owned());
        self
    }
}

/// Runs h2load on `wire` against `url`: `connections` clients, the streams
/// of `wire` spread over them, a warm-up, then `seconds` timed.
fn h2load(cli: &Cli, url: &str, wire: &Wire) -> anyhow::Result<Outcome> {
    let dir = std::env::temp_dir().join(format!("tradewatch-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let body = dir.join("request.bin");
    std::fs::write(&body, &wire.body)?;
    let log = dir.join("requests.tsv");
    let streams = wire.streams / cli.connections;
    let output = std::process::Command::new(&cli.h2load)
        .args(["-c", &cli.connections.to_string(), "-m", &streams.to_string(), "-t", "1"])
        .args(["-D", &cli.seconds.to_string(), &format!("--warm-up-time={}", cli.warmup)])
        .arg(format!("--log-file={}", log.display()))
        .args(["-H", "content-type: application/grpc", "-H", "te: trailers", "-d"])
        .arg(&body)
        .arg(format!("{url}{}", wire.path))
        .output()
        .with_context(|| format!("run {}", cli.h2load.display()));
    // One row per measured request: start (µs since the epoch), status, µs to the response.
    let rows = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    let output = output?;
    let mut latencies: Vec<Duration> =
        rows.lines().filter_map(|row| row.split('\t').nth(2)?.trim().parse().ok().map(Duration::from_micros)).collect();
    latencies.sort_unstable();
    let text = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(output.status.success(), "h2load failed: {text}{}", String::from_utf8_lossy(&output.stderr));
    // "finished in 5.00s, 81234.20 req/s, …"
    let per_second = text
        .lines()
        .find_map(|l| l.strip_prefix("finished in ")?.split(", ").nth(1)?.strip_suffix(" req/s")?.parse().ok())
        .with_context(|| format!("no req/s in h2load's output: {text}"))?;
    // "requests: 1000 total, 1000 started, 1000 done, 998 succeeded, 2 failed, …"
    let failed = text
        .lines()
        .find_map(|l| l.strip_prefix("requests: ")?.split(", ").find_map(|f| f.strip_suffix(" failed")?.parse().ok()))
        .unwrap_or(0);
    Ok(Outcome {
        scenario: wire.scenario.clone(),
        streams: wire.streams,
        // Requests not answered 200 or not at all (a gRPC error is a 200
        // with a grpc-status: each call is checked once through tonic first).
        errors: failed,
        per_second,
        latencies,
        baseline: wire.baseline.clone(),
    })
}

fn check(service: &'static str) -> Call {
    Arc::new(move |channel, _| {
        Box::pin(async move {
            HealthClient::new(channel).check(HealthCheckRequest { service: service.into() }).await.map(|_| ())
        })
    })
}

/// The schedule: `lines` MFN lines at 8 and 10 digits over every chapter,
/// each its own measure, and `special` measures at 4 and 6 digits over them.
fn schedule(lines: usize, special: usize) -> (Vec<String>, Vec<tpb::TariffMeasure>) {
    let codes: Vec<String> = (0..lines)
        .map(|k| {
            let chapter = 1 + k % 97;
            let rest = (k / 97) * 3_701 % 1_000_000;
            if k % 2 == 0 { format!("{chapter:02}{rest:06}") } else { format!("{chapter:02}{rest:06}{:02}", k % 100) }
        })
        .collect();
    let measure = |reference: String, kind: tpb::MeasureKind, code: String, rate: String, targets: Vec<String>| {
        tpb::TariffMeasure {
            reference,
            title: "generated for the bench".into(),
            imposing_economy: "CAN".into(),
            target_economies: targets,
            kind: kind.into(),
            hs_codes: vec![code],
            ad_valorem_percent: rate,
            effective_from: "2024-01-01".into(),
            ..Default::default()
        }
    };
    let mut measures: Vec<_> = codes
        .iter()
        .enumerate()
        .map(|(i, code)| {
            measure(
                format!("MFN-{i}"),
                tpb::MeasureKind::Mfn,
                code.clone(),
                format!("{}.{}", i % 120 / 10, i % 10),
                vec![],
            )
        })
        .collect();
    let kinds = [
        tpb::MeasureKind::Surtax,
        tpb::MeasureKind::AntiDumping,
        tpb::MeasureKind::Retaliatory,
        tpb::MeasureKind::Safeguard,
    ];
    for i in 0..special {
        let line = &codes[(i * 19) % codes.len()];
        let width = if i % 2 == 0 { 4 } else { 6 };
        measures.push(measure(
            format!("SPECIAL-{i}"),
            kinds[i % kinds.len()],
            line[..width].to_owned(),
            "25".into(),
            vec!["CHN".into()],
        ));
    }
    (codes, measures)
}

/// Creates `measures` through the API, 32 at a time; their ids.
async fn load(url: &str, measures: Vec<tpb::TariffMeasure>) -> anyhow::Result<Vec<String>> {
    let channel = Endpoint::from_shared(url.to_owned())?.connect().await?;
    let mut ids = Vec::with_capacity(measures.len());
    let mut pending = measures.into_iter();
    loop {
        let batch: Vec<_> = pending.by_ref().take(32).collect();
        if batch.is_empty() {
            return Ok(ids);
        }
        let calls = batch.into_iter().map(|m| {
            let mut client = TariffServiceClient::new(channel.clone());
            async move {
                client.create_measure(tpb::CreateMeasureRequest { measure: Some(m), request_id: String::new() }).await
            }
        });
        for created in futures::future::join_all(calls).await {
            ids.push(created?.into_inner().measure.context("a created measure")?.id);
        }
    }
}

struct Stack {
    tariff: Service,
    dispute: Service,
    dialogue: Service,
    /// The PostgreSQL databases to drop afterwards.
    databases: Vec<String>,
}

async fn start_stack(cli: &Cli, backend: Backend, run: &str) -> anyhow::Result<Stack> {
    let mut databases = Vec::new();
    let mut url = |service: &str| -> anyhow::Result<String> {
        Ok(match backend {
            Backend::Sqlite => {
                std::fs::create_dir_all(&cli.var)?;
                let file = cli.var.join(format!("{run}-{service}.db"));
                for suffix in ["", "-wal", "-shm", ".lock"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
                }
                format!("sqlite://{}?mode=rwc", file.display())
            }
            Backend::Postgres => {
                let name = format!("tradewatch_bench_{run}_{service}");
                databases.push(name.clone());
                let base = cli.postgres.rsplit_once('/').map_or(cli.postgres.as_str(), |(server, _)| server);
                format!("{base}/{name}")
            }
        })
    };
    let urls = [url("tariff")?, url("dispute")?, url("dialogue")?];
    if backend == Backend::Postgres {
        let admin = Database::connect(&cli.postgres).await.context("connect to PostgreSQL (--postgres)")?;
        for name in &databases {
            admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await?;
            admin.execute_unprepared(&format!("CREATE DATABASE \"{name}\"")).await?;
        }
    }
    let db = |u: &String| ("TRADEWATCH__DATABASE__URL", u.clone());
    let tariff = Service::start(&cli.bin_dir, "tariff", &[db(&urls[0])]).await?;
    let dispute =
        Service::start(&cli.bin_dir, "dispute", &[db(&urls[1]), ("TRADEWATCH__PEERS__TARIFF_URL", tariff.url())])
            .await?;
    let dialogue = Service::start(
        &cli.bin_dir,
        "dialogue",
        &[
            db(&urls[2]),
            ("TRADEWATCH__PEERS__TARIFF_URL", tariff.url()),
            ("TRADEWATCH__PEERS__DISPUTE_URL", dispute.url()),
        ],
    )
    .await?;
    Ok(Stack { tariff, dispute, dialogue, databases })
}

async fn drop_databases(cli: &Cli, names: &[String]) -> anyhow::Result<()> {
    if names.is_empty() {
        return Ok(());
    }
    let admin = Database::connect(&cli.postgres).await?;
    for name in names {
        admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await?;
    }
    Ok(())
}

/// What one backend's run measured: through tonic, through h2load, and the notes on start-up and memory.
type Measured = (Vec<Outcome>, Vec<Outcome>, Vec<String>);

async fn bench(cli: &Cli, backend: Backend, run: &str) -> anyhow::Result<Measured> {
    let stack = start_stack(cli, backend, run).await?;
    let mut notes = Vec::new();
    for s in [&stack.tariff, &stack.dispute, &stack.dialogue] {
        notes.push(format!(
            "{:<11} {:<9} SERVING {:>5} ms after start, idle RSS {:>5.1} MiB",
            backend.name(),
            s.process.name,
            s.process.started_in.as_millis(),
            s.idle_rss_kib as f64 / 1024.0
        ));
    }
    let outcome = match cli.serve {
        Some(seconds) => serve(cli, backend, &stack, Duration::from_secs(seconds)).await.map(|()| Default::default()),
        None => run_scenarios(cli, backend, &stack).await,
    };
    for s in [&stack.tariff, &stack.dispute, &stack.dialogue] {
        notes.push(format!(
            "{:<11} {:<9} RSS after the load {:>5.1} MiB",
            backend.name(),
            s.process.name,
            s.process.rss_kib() as f64 / 1024.0
        ));
    }
    tear_down(cli, backend, run, stack).await?;
    let (mut outcome, mut wire, more) = outcome?;
    notes.extend(more);
    if cli.serve.is_none() {
        let (o, w, n) = brief_scenarios(cli, backend, &format!("{run}_brief")).await?;
        outcome.extend(o);
        wire.extend(w);
        notes.extend(n);
        if cli.national > 0 {
            let (o, w, n) = national_scenarios(cli, backend, &format!("{run}_national")).await?;
            outcome.extend(o);
            wire.extend(w);
            notes.extend(n);
        }
    }
    Ok((outcome, wire, notes))
}

/// A national schedule at full size: generated, checked and written with
/// the loader of `tradewatch-schedule` into a tariff service of its own; the
/// load's rate, the first answer and the RSS; then the service started again
/// on it (start to SERVING, to the first answer, RSS) and ResolveDuty on it
/// next to Check, at the default streams and at 32.
async fn national_scenarios(cli: &Cli, backend: Backend, run: &str) -> anyhow::Result<Scenarios> {
    use tariff_service::load::{self, Groups, generate};

    let shape = generate::Shape { lines: cli.national, ..Default::default() };
    let (groups, schedule) = generate::generate("CAN", shape);
    let groups = Groups::parse(&groups).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let checked = Instant::now();
    let lines = load::parse(&schedule, "CAN", &groups).map_err(|e| anyhow::anyhow!("{:?}", &e[..e.len().min(5)]))?;
    let checked = checked.elapsed();
    let codes: Vec<String> = lines
        .iter()
        .filter(|l| l.measure.kind == i32::from(tpb::MeasureKind::Mfn))
        .map(|l| l.measure.hs_codes[0].clone())
        .collect();
    let (url, database) = match backend {
        Backend::Sqlite => {
            std::fs::create_dir_all(&cli.var)?;
            let file = cli.var.join(format!("{run}-tariff.db"));
            (format!("sqlite://{}?mode=rwc", file.display()), None)
        }
        Backend::Postgres => {
            let name = format!("tradewatch_bench_{run}_tariff");
            let admin = Database::connect(&cli.postgres).await.context("connect to PostgreSQL (--postgres)")?;
            admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await?;
            admin.execute_unprepared(&format!("CREATE DATABASE \"{name}\"")).await?;
            let base = cli.postgres.rsplit_once('/').map_or(cli.postgres.as_str(), |(server, _)| server);
            (format!("{base}/{name}"), Some(name))
        }
    };
    let outcome = national_on(cli, backend, &url, &lines, &codes, checked).await;
    if let Some(name) = database {
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop_databases(cli, &[name]).await?;
    } else {
        for suffix in ["", "-wal", "-shm", ".lock"] {
            let _ = std::fs::remove_file(cli.var.join(format!("{run}-tariff.db{suffix}")));
        }
    }
    outcome
}

async fn national_on(
    cli: &Cli,
    backend: Backend,
    url: &str,
    lines: &[tariff_service::load::Line],
    codes: &[String],
    checked: Duration,
) -> anyhow::Result<Scenarios> {
    let db = [("TRADEWATCH__DATABASE__URL", url.to_owned())];
    let label = |s: &str| format!("{} {s}", backend.name());
    let name = backend.name();
    let mut notes = Vec::new();
    let resolve = |code: &str| tpb::ResolveDutyRequest {
        importing_economy: "CAN".into(),
        origin_economy: "MEX".into(),
        hs_code: code.to_owned(),
        imported_on: "2025-06-01".into(),
        customs_value: Some(Money { currency_code: "CAD".into(), amount: "40000".into() }),
        quantity: "100".into(),
        ..Default::default()
    };
    {
        let tariff = Service::start(&cli.bin_dir, "tariff", &db).await?;
        let mut client = TariffServiceClient::new(Endpoint::from_shared(tariff.url())?.connect().await?);
        let written = Instant::now();
        let loaded =
            tariff_service::load::load(&client, lines, |_| {}).await.map_err(|refused| anyhow::anyhow!("{refused}"))?;
        let written = written.elapsed();
        let first = Instant::now();
        client.resolve_duty(resolve(&codes[codes.len() / 2])).await.context("the first ResolveDuty")?;
        #[allow(clippy::cast_precision_loss)]
        let rate = lines.len() as f64 / written.as_secs_f64().max(1e-9);
        notes.push(format!(
            "{name:<11} national schedule: {} lines checked in {:.1?}, written in {:.1?} ({rate:.0} lines/s, {} created); the first ResolveDuty {:.1?}; RSS {:.1} MiB",
            lines.len(),
            checked,
            written,
            loaded.created,
            first.elapsed(),
            tariff.process.rss_kib() as f64 / 1024.0
        ));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let tariff = Service::start(&cli.bin_dir, "tariff", &db).await?;
    let mut client = TariffServiceClient::new(Endpoint::from_shared(tariff.url())?.connect().await?);
    let first = Instant::now();
    client.resolve_duty(resolve(&codes[codes.len() / 3])).await.context("the first ResolveDuty after a start")?;
    notes.push(format!(
        "{name:<11} national schedule, started again: SERVING {} ms after start, the first ResolveDuty {:.1?} after that (the half second of the idle RSS reading between), idle RSS {:.1} MiB, RSS with the schedule {:.1} MiB",
        tariff.process.started_in.as_millis(),
        first.elapsed(),
        tariff.idle_rss_kib as f64 / 1024.0,
        tariff.process.rss_kib() as f64 / 1024.0
    ));
    let (n, m) = (cli.connections, cli.streams);
    let (warmup, seconds) = (Duration::from_secs(cli.warmup), Duration::from_secs(cli.seconds));
    let url = tariff.url();
    let check_label = label("national tariff Check");
    let scenario = label(&format!("ResolveDuty (national, {} lines)", lines.len()));
    let mut out = vec![drive(&url, &check_label, n, m, warmup, seconds, check("")).await?];
    let call: Call = {
        let requests: Arc<Vec<tpb::ResolveDutyRequest>> = Arc::new(codes.iter().map(|c| resolve(c)).collect());
        Arc::new(move |channel, i| {
            let request = requests[i.wrapping_mul(7_919) % requests.len()].clone();
            Box::pin(async move { TariffServiceClient::new(channel).resolve_duty(request).await.map(|_| ()) })
        })
    };
    out.push(with_baseline(drive(&url, &scenario, n, m, warmup, seconds, call.clone()).await?, &check_label));
    out.push(with_baseline(
        drive(&url, &scenario, n, P99_STREAMS_PER_CONNECTION, warmup, seconds, call.clone()).await?,
        &check_label,
    ));
    // The same at 32 streams while measures of the same importer change at
    // a steady rate: every answer first patches the index with the writes
    // committed before it.
    let changing = special_measures(&mut client).await?;
    let writing = Arc::new(AtomicBool::new(true));
    let writer = tokio::spawn(write_steadily(client.clone(), changing, WRITES_PER_SECOND, writing.clone()));
    let mixed = format!("{scenario}, {WRITES_PER_SECOND} writes/s");
    let outcome = drive(&url, &mixed, n, P99_STREAMS_PER_CONNECTION, warmup, seconds, call).await;
    writing.store(false, Ordering::Relaxed);
    let writes = writer.await??;
    out.push(with_baseline(outcome?, &check_label));
    #[allow(clippy::cast_precision_loss)]
    let write_rate = writes.done as f64 / writes.took.as_secs_f64().max(1e-9);
    notes.push(format!(
        "{name:<11} national schedule under writes: {} UpdateMeasure in {:.1?} ({write_rate:.1}/s), {} failed, their p99 {:.1?}",
        writes.done,
        writes.took,
        writes.failed,
        writes.p99
    ));
    notes.push(format!(
        "{name:<11} national schedule: RSS after the load {:.1} MiB",
        tariff.process.rss_kib() as f64 / 1024.0
    ));
    let mut wire = Vec::new();
    if !cli.no_h2load {
        let request = resolve(&codes[codes.len() / 2]);
        let path = "/tradewatch.tariff.v1.TariffService/ResolveDuty";
        let runs = [
            Wire::new(check_label.clone(), "/grpc.health.v1.Health/Check", &HealthCheckRequest::default(), n * m),
            Wire::new(scenario.clone(), path, &request, n * m).against(&check_label),
            Wire::new(scenario.clone(), path, &request, n * P99_STREAMS_PER_CONNECTION).against(&check_label),
        ];
        for run in runs {
            match h2load(cli, &url, &run) {
                Ok(outcome) => wire.push(outcome),
                Err(err) => {
                    eprintln!("  h2load not run: {err:#}");
                    break;
                }
            }
        }
    }
    Ok((out, wire, notes))
}

/// Writes a second while ResolveDuty runs on the national schedule.
const WRITES_PER_SECOND: u32 = 50;

/// Some of the national schedule's special measures, to change.
async fn special_measures(
    client: &mut TariffServiceClient<tonic::transport::Channel>,
) -> anyhow::Result<Vec<tpb::TariffMeasure>> {
    let mut out = Vec::new();
    for kind in [tpb::MeasureKind::Surtax, tpb::MeasureKind::AntiDumping] {
        let page = client
            .list_measures(tpb::ListMeasuresRequest {
                page_size: 500,
                imposing_economy: "CAN".into(),
                kind: kind.into(),
                ..Default::default()
            })
            .await
            .context("list the special measures")?;
        out.extend(page.into_inner().measures);
    }
    anyhow::ensure!(!out.is_empty(), "the national schedule has no special measures to change");
    Ok(out)
}

struct Writes {
    done: usize,
    failed: usize,
    took: Duration,
    p99: Duration,
}

/// UpdateMeasure at `per_second` on the measures given in turn (each a new
/// rate), until `on` goes false; each write on its own task, so a slow one
/// does not hold back the next.
async fn write_steadily(
    client: TariffServiceClient<tonic::transport::Channel>,
    measures: Vec<tpb::TariffMeasure>,
    per_second: u32,
    on: Arc<AtomicBool>,
) -> anyhow::Result<Writes> {
    let mut tick = tokio::time::interval(Duration::from_secs(1) / per_second);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let started = Instant::now();
    let mut writes = tokio::task::JoinSet::new();
    let mut i = 0usize;
    while on.load(Ordering::Relaxed) {
        tick.tick().await;
        let mut m = measures[i % measures.len()].clone();
        m.etag.clear();
        m.ad_valorem_percent = (5 + i % 40).to_string();
        let mut client = client.clone();
        writes.spawn(async move {
            let sent = Instant::now();
            let mask = Some(prost_types::FieldMask { paths: vec!["ad_valorem_percent".into()] });
            let ok =
                client.update_measure(tpb::UpdateMeasureRequest { measure: Some(m), update_mask: mask }).await.is_ok();
            (ok, sent.elapsed())
        });
        i += 1;
    }
    let took = started.elapsed();
    let (mut done, mut failed, mut latencies) = (0, 0, Vec::new());
    while let Some(write) = writes.join_next().await {
        let (ok, latency) = write?;
        if ok {
            done += 1;
            latencies.push(latency);
        } else {
            failed += 1;
        }
    }
    latencies.sort_unstable();
    Ok(Writes { done, failed, took, p99: percentile(&latencies, 0.99) })
}

/// Stops a stack and removes its databases.
async fn tear_down(cli: &Cli, backend: Backend, run: &str, stack: Stack) -> anyhow::Result<()> {
    let databases = stack.databases.clone();
    drop(stack);
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop_databases(cli, &databases).await?;
    if backend == Backend::Sqlite {
        for service in ["tariff", "dispute", "dialogue"] {
            for suffix in ["", "-wal", "-shm", ".lock"] {
                let _ = std::fs::remove_file(cli.var.join(format!("{run}-{service}.db{suffix}")));
            }
        }
    }
    Ok(())
}

/// GetBilateralBrief of Canada and China on the demo record (13 measures, 6
/// trade flows, 3 disputes, 5 sessions, 8 commitments), on a stack of its
/// own with the relations service in front, next to relations' own Check.
/// Its tariff and dispute parts are kept between calls while the feeds stay
/// quiet, as in production; its sessions and commitments are read from the
/// dialogue service on every call.
async fn brief_scenarios(cli: &Cli, backend: Backend, run: &str) -> anyhow::Result<Scenarios> {
    let stack = start_stack(cli, backend, run).await?;
    let outcome = brief_on(cli, backend, &stack).await;
    tear_down(cli, backend, run, stack).await?;
    outcome
}

async fn brief_on(cli: &Cli, backend: Backend, stack: &Stack) -> anyhow::Result<Scenarios> {
    let relations = Service::start(
        &cli.bin_dir,
        "relations",
        &[
            ("TRADEWATCH__PEERS__TARIFF_URL", stack.tariff.url()),
            ("TRADEWATCH__PEERS__DISPUTE_URL", stack.dispute.url()),
            ("TRADEWATCH__PEERS__DIALOGUE_URL", stack.dialogue.url()),
        ],
    )
    .await?;
    let at = demo::Endpoints {
        tariff: stack.tariff.url(),
        dispute: stack.dispute.url(),
        dialogue: stack.dialogue.url(),
        relations: relations.url(),
        security: None,
    };
    demo::load(&demo::Dataset::load()?, &at).await?;
    let request =
        rpb::GetBilateralBriefRequest { economy_a: "CAN".into(), economy_b: "CHN".into(), on: "2026-03-15".into() };
    let url = relations.url();
    let mut client = RelationsServiceClient::new(Endpoint::from_shared(url.clone())?.connect().await?);
    let first = Instant::now();
    let brief = client.get_bilateral_brief(request.clone()).await?.into_inner().brief.context("a brief")?;
    let first = first.elapsed();
    let commitments = brief.commitments.as_ref().map_or(0, |c| c.commitments.len());
    anyhow::ensure!(
        brief.measures.as_ref().is_some_and(|m| m.measures.len() == 9) && commitments == 6,
        "the demo brief of 2026-03-15 has 9 measures and 6 open commitments"
    );
    let label = |s: &str| format!("{} {s}", backend.name());
    let (n, m) = (cli.connections, cli.streams);
    let (warmup, seconds) = (Duration::from_secs(cli.warmup), Duration::from_secs(cli.seconds));
    let relations_check = label("relations Check");
    let mut out = vec![drive(&url, &relations_check, n, m, warmup, seconds, check("")).await?];
    let brief_label = label("GetBilateralBrief (CAN–CHN demo)");
    let call: Call = {
        let request = request.clone();
        Arc::new(move |channel, _| {
            let request = request.clone();
            Box::pin(async move { RelationsServiceClient::new(channel).get_bilateral_brief(request).await.map(|_| ()) })
        })
    };
    out.push(with_baseline(drive(&url, &brief_label, n, m, warmup, seconds, call).await?, &relations_check));
    let mut notes = vec![format!(
        "{:<11} relations GetBilateralBrief (CAN–CHN demo): the first call, nothing kept, {:.1} ms",
        backend.name(),
        first.as_secs_f64() * 1e3
    )];
    notes.push(format!(
        "{:<11} relations SERVING {:>5} ms after start, idle RSS {:>5.1} MiB, RSS after the load {:>5.1} MiB",
        backend.name(),
        relations.process.started_in.as_millis(),
        relations.idle_rss_kib as f64 / 1024.0,
        relations.process.rss_kib() as f64 / 1024.0
    ));
    let mut wire = Vec::new();
    if !cli.no_h2load {
        let runs = [
            Wire::new(relations_check.clone(), "/grpc.health.v1.Health/Check", &HealthCheckRequest::default(), n * m),
            Wire::new(brief_label, "/tradewatch.relations.v1.RelationsService/GetBilateralBrief", &request, n * m)
                .against(&relations_check),
        ];
        for run in runs {
            match h2load(cli, &url, &run) {
                Ok(outcome) => wire.push(outcome),
                Err(err) => {
                    eprintln!("  h2load not run: {err:#}");
                    break;
                }
            }
        }
    }
    Ok((out, wire, notes))
}

/// What the scenarios measured: through tonic, through h2load, and notes.
type Scenarios = (Vec<Outcome>, Vec<Outcome>, Vec<String>);

async fn run_scenarios(cli: &Cli, backend: Backend, stack: &Stack) -> anyhow::Result<Scenarios> {
    let (n, m) = (cli.connections, cli.streams);
    let (warmup, seconds) = (Duration::from_secs(cli.warmup), Duration::from_secs(cli.seconds));
    let loaded = Instant::now();
    let (codes, measures) = schedule(cli.lines, cli.special);
    let ids = Arc::new(load(&stack.tariff.url(), measures).await?);
    eprintln!(
        "{}: loaded {} lines and {} special measures in {:.1?}",
        backend.name(),
        cli.lines,
        cli.special,
        loaded.elapsed()
    );
    let codes = Arc::new(codes);
    let tariff = stack.tariff.url();
    let mut out = Vec::new();
    let label = |s: &str| format!("{} {s}", backend.name());

    let tariff_check = label("tariff Check");
    out.push(drive(&tariff, &tariff_check, n, m, warmup, seconds, check("")).await?);
    let get_measure: Call = {
        let ids = ids.clone();
        Arc::new(move |channel, i| {
            let id = ids[i.wrapping_mul(7_919) % ids.len()].clone();
            Box::pin(async move {
                TariffServiceClient::new(channel).get_measure(tpb::GetMeasureRequest { id }).await.map(|_| ())
            })
        })
    };
    out.push(with_baseline(
        drive(&tariff, &label("GetMeasure"), n, m, warmup, seconds, get_measure).await?,
        &tariff_check,
    ));
    let list: Call = Arc::new(|channel, _| {
        Box::pin(async move {
            TariffServiceClient::new(channel)
                .list_measures(tpb::ListMeasuresRequest { page_size: 50, ..Default::default() })
                .await
                .map(|_| ())
        })
    });
    out.push(with_baseline(
        drive(&tariff, &label("ListMeasures (50)"), n, m, warmup, seconds, list).await?,
        &tariff_check,
    ));
    let resolve: Call = {
        let codes = codes.clone();
        Arc::new(move |channel, i| {
            let code = codes[i.wrapping_mul(7_919) % codes.len()].clone();
            Box::pin(async move {
                TariffServiceClient::new(channel)
                    .resolve_duty(tpb::ResolveDutyRequest {
                        importing_economy: "CAN".into(),
                        origin_economy: "CHN".into(),
                        hs_code: code,
                        imported_on: "2025-06-01".into(),
                        customs_value: Some(Money { currency_code: "CAD".into(), amount: "40000".into() }),
                        ..Default::default()
                    })
                    .await
                    .map(|_| ())
            })
        })
    };
    let resolve_label = label(&resolve_scenario(cli.lines));
    out.push(with_baseline(
        drive(&tariff, &resolve_label, n, m, warmup, seconds, resolve.clone()).await?,
        &tariff_check,
    ));
    // DESIGN §13: p99 at 32 streams.
    out.push(with_baseline(
        drive(&tariff, &resolve_label, n, P99_STREAMS_PER_CONNECTION, warmup, seconds, resolve).await?,
        &tariff_check,
    ));

    let (trade, trade_notes) = if cli.flows > 0 {
        trade_scenarios(cli, backend, &tariff, &codes, &ids, &tariff_check).await?
    } else {
        (Vec::new(), Vec::new())
    };
    out.extend(trade);

    let dispute = stack.dispute.url();
    let d = create_dispute(&dispute).await?;
    let dispute_check = label("dispute Check");
    out.push(drive(&dispute, &dispute_check, n, m, warmup, seconds, check("")).await?);
    let dispute_id = d.id.clone();
    let get_dispute: Call = Arc::new(move |channel, _| {
        let id = d.id.clone();
        Box::pin(async move {
            DisputeServiceClient::new(channel).get_dispute(dpb::GetDisputeRequest { id }).await.map(|_| ())
        })
    });
    out.push(with_baseline(
        drive(&dispute, &label("GetDispute"), n, m, warmup, seconds, get_dispute).await?,
        &dispute_check,
    ));

    let dialogue = stack.dialogue.url();
    let session = create_session(&dialogue).await?;
    let session_id = session.id.clone();
    let dialogue_check = label("dialogue Check");
    out.push(drive(&dialogue, &dialogue_check, n, m, warmup, seconds, check("")).await?);
    let get_session: Call = Arc::new(move |channel, _| {
        let id = session.id.clone();
        Box::pin(async move {
            DialogueServiceClient::new(channel).get_session(gpb::GetSessionRequest { id }).await.map(|_| ())
        })
    });
    out.push(with_baseline(
        drive(&dialogue, &label("GetSession"), n, m, warmup, seconds, get_session).await?,
        &dialogue_check,
    ));

    if backend == Backend::Postgres {
        // A write through the whole stack of one service, next to the same
        // database doing the least a write can: one row, one commit.
        let create: Call = Arc::new(|channel, i| {
            Box::pin(async move {
                DisputeServiceClient::new(channel)
                    .create_dispute(dpb::CreateDisputeRequest {
                        dispute: Some(bench_dispute(format!("BENCH-{i}"))),
                        request_id: String::new(),
                    })
                    .await
                    .map(|_| ())
            })
        });
        let baseline = label("single-row INSERT (sqlx)");
        out.push(insert_baseline(cli, &baseline, n * m, warmup, seconds).await?);
        out.push(with_baseline(
            drive(&dispute, &label("CreateDispute"), n, m, warmup, seconds, create).await?,
            &baseline,
        ));
    }

    let mut wire = Vec::new();
    if cli.no_h2load {
        return Ok((out, wire, trade_notes));
    }
    let (streams, resolve) = (n * m, repeated_resolve(&codes));
    TariffServiceClient::new(Endpoint::from_shared(tariff.clone())?.connect().await?)
        .resolve_duty(resolve.clone())
        .await
        .context("the ResolveDuty h2load sends")?;
    let runs = wire_calls(
        stack,
        &label,
        streams,
        cli.connections * P99_STREAMS_PER_CONNECTION,
        cli.lines,
        &ids[0],
        &resolve,
        &dispute_id,
        &session_id,
    );
    let mut runs = Vec::from(runs);
    if cli.flows > 0 {
        runs.push((
            &stack.tariff,
            Wire::new(
                label(&coverage_scenario(cli.flows)),
                "/tradewatch.tariff.v1.TariffService/GetTradeCoverage",
                &coverage_request(),
                COVERAGE_STREAMS,
            )
            .against(&label("tariff Check")),
        ));
    }
    for (service, run) in runs {
        match h2load(cli, &service.url(), &run) {
            Ok(outcome) => wire.push(outcome),
            Err(err) if wire.is_empty() => {
                eprintln!("  h2load not run: {err:#}");
                break;
            }
            Err(err) => return Err(err),
        }
    }
    Ok((out, wire, trade_notes))
}

async fn create_dispute(url: &str) -> anyhow::Result<dpb::Dispute> {
    DisputeServiceClient::new(Endpoint::from_shared(url.to_owned())?.connect().await?)
        .create_dispute(dpb::CreateDisputeRequest {
            dispute: Some(bench_dispute("WT/DS627".into())),
            request_id: String::new(),
        })
        .await?
        .into_inner()
        .dispute
        .context("a dispute")
}

async fn create_session(url: &str) -> anyhow::Result<gpb::DialogueSession> {
    DialogueServiceClient::new(Endpoint::from_shared(url.to_owned())?.connect().await?)
        .create_session(gpb::CreateSessionRequest { session: Some(bench_session()), request_id: String::new() })
        .await?
        .into_inner()
        .session
        .context("a session")
}

/// The calls h2load makes, with the service each goes to: every server's
/// Check, then the reads compared with it (ResolveDuty again at
/// `p99_streams`, for its p99). `label` names each scenario.
#[allow(clippy::too_many_arguments)]
fn wire_calls<'a>(
    stack: &'a Stack,
    label: &dyn Fn(&str) -> String,
    streams: usize,
    p99_streams: usize,
    lines: usize,
    measure_id: &str,
    resolve: &tpb::ResolveDutyRequest,
    dispute_id: &str,
    session_id: &str,
) -> [(&'a Service, Wire); 8] {
    let check = |service: &str| {
        Wire::new(
            label(&format!("{service} Check")),
            "/grpc.health.v1.Health/Check",
            &HealthCheckRequest::default(),
            streams,
        )
    };
    let resolve_at = |streams| {
        Wire::new(label(&resolve_scenario(lines)), "/tradewatch.tariff.v1.TariffService/ResolveDuty", resolve, streams)
            .against(&label("tariff Check"))
    };
    [
        (&stack.tariff, check("tariff")),
        (
            &stack.tariff,
            Wire::new(
                label("GetMeasure"),
                "/tradewatch.tariff.v1.TariffService/GetMeasure",
                &tpb::GetMeasureRequest { id: measure_id.to_owned() },
                streams,
            )
            .against(&label("tariff Check")),
        ),
        (&stack.tariff, resolve_at(streams)),
        (&stack.tariff, resolve_at(p99_streams)),
        (&stack.dispute, check("dispute")),
        (
            &stack.dispute,
            Wire::new(
                label("GetDispute"),
                "/tradewatch.dispute.v1.DisputeService/GetDispute",
                &dpb::GetDisputeRequest { id: dispute_id.to_owned() },
                streams,
            )
            .against(&label("dispute Check")),
        ),
        (&stack.dialogue, check("dialogue")),
        (
            &stack.dialogue,
            Wire::new(
                label("GetSession"),
                "/tradewatch.dialogue.v1.DialogueService/GetSession",
                &gpb::GetSessionRequest { id: session_id.to_owned() },
                streams,
            )
            .against(&label("dialogue Check")),
        ),
    ]
}

/// GetTradeCoverage is measured at 8 streams in all (DESIGN §14).
const COVERAGE_STREAMS: usize = 8;

/// The exporters of the bench's flows, all into Canada: 10 economy pairs.
const EXPORTERS: [&str; 10] = ["CHN", "USA", "MEX", "JPN", "KOR", "DEU", "VNM", "GBR", "ITA", "IND"];

/// The years of the bench's flows.
const YEARS: std::ops::RangeInclusive<i32> = 2020..=2024;

fn coverage_scenario(flows: usize) -> String {
    if flows >= 1_000_000 && flows.is_multiple_of(1_000_000) {
        format!("GetTradeCoverage ({}M flows)", flows / 1_000_000)
    } else {
        format!("GetTradeCoverage ({flows} flows)")
    }
}

/// Canada's coverage of its 2024 imports from China on 2025-06-01, by every
/// measure of its schedule: each of the pair's flows is reached by its MFN
/// line, some by a special measure too.
fn coverage_request() -> tpb::GetTradeCoverageRequest {
    tpb::GetTradeCoverageRequest {
        importing_economy: "CAN".into(),
        exporting_economy: "CHN".into(),
        year: 2024,
        on: "2025-06-01".into(),
        ..Default::default()
    }
}

/// `total` flows into Canada, spread evenly over [`EXPORTERS`] and
/// [`YEARS`]: in each group the schedule's lines first (so that the MFN
/// lines and the special measures reach them), then other codes of the same
/// chapters at 6 and 8 digits, distinct within the group.
fn trade_flows(codes: &[String], total: usize) -> Vec<tpb::TradeFlow> {
    let groups = EXPORTERS.len() * YEARS.count();
    let per_group = total.div_ceil(groups);
    let mut group_codes: Vec<String> = codes.iter().take(per_group).cloned().collect();
    let mut seen: std::collections::HashSet<String> = group_codes.iter().cloned().collect();
    let mut k = 0usize;
    while group_codes.len() < per_group {
        let chapter = 1 + k % 97;
        let rest = (k / 97).wrapping_mul(7_919) % 1_000_000;
        let code = if k.is_multiple_of(3) {
            format!("{chapter:02}{:04}", rest % 10_000)
        } else {
            format!("{chapter:02}{rest:06}")
        };
        if seen.insert(code.clone()) {
            group_codes.push(code);
        }
        k += 1;
    }
    let mut flows = Vec::with_capacity(total);
    'all: for year in YEARS {
        for exporter in EXPORTERS {
            for (i, code) in group_codes.iter().enumerate() {
                if flows.len() == total {
                    break 'all;
                }
                let amount = (i.wrapping_mul(7_919) + usize::try_from(year).unwrap_or(0)) % 1_000_000_000;
                flows.push(tpb::TradeFlow {
                    exporting_economy: exporter.into(),
                    importing_economy: "CAN".into(),
                    hs_code: code.clone(),
                    year,
                    value: Some(Money { currency_code: "CAD".into(), amount: format!("{amount}.25") }),
                    source_url: "https://www150.statcan.gc.ca/".into(),
                    note: "generated for the bench".into(),
                    ..Default::default()
                });
            }
        }
    }
    flows
}

/// Imports `--flows` flows, 1,000 a call and 4 calls at a time, and reads
/// them once (the first read loads the trade index); what it took.
async fn import_flows(cli: &Cli, backend: Backend, tariff: &str, codes: &[String]) -> anyhow::Result<Vec<String>> {
    let flows = trade_flows(codes, cli.flows);
    let channel = Endpoint::from_shared(tariff.to_owned())?.connect().await?;
    let started = Instant::now();
    let batches: Vec<Vec<tpb::TradeFlow>> = flows.chunks(1_000).map(<[_]>::to_vec).collect();
    let mut pending = batches.into_iter();
    loop {
        let round: Vec<_> = pending.by_ref().take(4).collect();
        if round.is_empty() {
            break;
        }
        let calls =
            round.into_iter().map(|flows| {
                let mut client = TariffServiceClient::new(channel.clone());
                async move {
                    client.import_trade_flows(tpb::ImportTradeFlowsRequest { flows, request_id: String::new() }).await
                }
            });
        for imported in futures::future::join_all(calls).await {
            imported.context("ImportTradeFlows")?;
        }
    }
    let took = started.elapsed();
    let mut notes = vec![format!(
        "{:<11} tariff    ImportTradeFlows: {} flows, 1,000 a call, 4 calls at a time, in {:.1} s: {:.0} flows/s",
        backend.name(),
        flows.len(),
        took.as_secs_f64(),
        flows.len() as f64 / took.as_secs_f64()
    )];
    drop(flows);
    // The first read loads the trade index: timed apart from the scenario.
    let first = Instant::now();
    let warm = TariffServiceClient::new(channel.clone()).get_trade_coverage(coverage_request()).await?.into_inner();
    notes.push(format!(
        "{:<11} tariff    first GetTradeCoverage (the index loaded): {:.0} ms; {} flows of the pair and year, {} measures reaching them",
        backend.name(),
        first.elapsed().as_secs_f64() * 1_000.0,
        warm.flow_count,
        warm.measure_count
    ));
    Ok(notes)
}

/// Imports the flows, then GetTradeCoverage and GetMeasureExposure on them.
async fn trade_scenarios(
    cli: &Cli,
    backend: Backend,
    tariff: &str,
    codes: &[String],
    ids: &[String],
    tariff_check: &str,
) -> anyhow::Result<(Vec<Outcome>, Vec<String>)> {
    let notes = import_flows(cli, backend, tariff, codes).await?;
    let (warmup, seconds) = (Duration::from_secs(cli.warmup), Duration::from_secs(cli.seconds));
    let label = |s: &str| format!("{} {s}", backend.name());
    let per_connection = COVERAGE_STREAMS.div_ceil(cli.connections).max(1);
    let coverage: Call = Arc::new(|channel, _| {
        Box::pin(
            async move { TariffServiceClient::new(channel).get_trade_coverage(coverage_request()).await.map(|_| ()) },
        )
    });
    let mut out = vec![with_baseline(
        drive(
            tariff,
            &label(&coverage_scenario(cli.flows)),
            cli.connections,
            per_connection,
            warmup,
            seconds,
            coverage,
        )
        .await?,
        tariff_check,
    )];
    // A special measure's exposure across the ten origins of a year.
    let special = ids.get(cli.lines).cloned().unwrap_or_else(|| ids[0].clone());
    let exposure: Call = Arc::new(move |channel, _| {
        let id = special.clone();
        Box::pin(async move {
            TariffServiceClient::new(channel)
                .get_measure_exposure(tpb::GetMeasureExposureRequest { id, year: 2024, ..Default::default() })
                .await
                .map(|_| ())
        })
    });
    out.push(with_baseline(
        drive(
            tariff,
            &label("GetMeasureExposure (a special measure)"),
            cli.connections,
            cli.streams,
            warmup,
            seconds,
            exposure,
        )
        .await?,
        tariff_check,
    ));
    Ok((out, notes))
}

/// ResolveDuty's p99 is measured at 8 streams a connection, through tonic
/// and h2load alike: 32 at the default 4 connections (DESIGN §13).
const P99_STREAMS_PER_CONNECTION: usize = 8;

/// ResolveDuty's scenario, named by the schedule it resolves against.
fn resolve_scenario(lines: usize) -> String {
    if lines.is_multiple_of(1_000) {
        format!("ResolveDuty ({}k lines)", lines / 1_000)
    } else {
        format!("ResolveDuty ({lines} lines)")
    }
}

/// The ResolveDuty that h2load repeats: a code from the middle of the schedule.
fn repeated_resolve(codes: &[String]) -> tpb::ResolveDutyRequest {
    tpb::ResolveDutyRequest {
        importing_economy: "CAN".into(),
        origin_economy: "CHN".into(),
        hs_code: codes[codes.len() / 2].clone(),
        imported_on: "2025-06-01".into(),
        customs_value: Some(Money { currency_code: "CAD".into(), amount: "40000".into() }),
        ..Default::default()
    }
}

/// Loads the schedule, makes a dispute and a session to get, writes one
/// h2load request body per RPC and keeps the stack serving for `hold`, or
/// until interrupted.
async fn serve(cli: &Cli, backend: Backend, stack: &Stack, hold: Duration) -> anyhow::Result<()> {
    let (codes, measures) = schedule(cli.lines, cli.special);
    let ids = load(&stack.tariff.url(), measures).await?;
    let dispute = create_dispute(&stack.dispute.url()).await?;
    let session = create_session(&stack.dialogue.url()).await?;
    let label = |s: &str| s.to_owned();
    let mut calls = Vec::from(wire_calls(
        stack,
        &label,
        0,
        0,
        cli.lines,
        &ids[0],
        &repeated_resolve(&codes),
        &dispute.id,
        &session.id,
    ));
    if cli.flows > 0 {
        for note in import_flows(cli, backend, &stack.tariff.url(), &codes).await? {
            println!("{note}");
        }
        calls.push((
            &stack.tariff,
            Wire::new(
                coverage_scenario(cli.flows),
                "/tradewatch.tariff.v1.TariffService/GetTradeCoverage",
                &coverage_request(),
                0,
            ),
        ));
    }
    let dir = cli.var.join(format!("h2load-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    println!(
        "{}: {} lines and {} special measures loaded; serving for {} s (Ctrl-C ends it sooner)\n",
        backend.name(),
        cli.lines,
        cli.special,
        hold.as_secs()
    );
    for s in [&stack.tariff, &stack.dispute, &stack.dialogue] {
        println!("{:<9} {} (pid {})", s.process.name, s.url(), s.process.pid().unwrap_or(0));
    }
    println!();
    let mut written = std::collections::HashSet::new();
    for (service, wire) in &calls {
        // "tariff Check" → tariff-check.bin; one file per RPC.
        let name: String = wire.scenario.split(" (").next().unwrap_or_default().replace(' ', "-").to_lowercase();
        if !written.insert(name.clone()) {
            continue;
        }
        let body = dir.join(format!("{name}.bin"));
        std::fs::write(&body, &wire.body)?;
        println!(
            "h2load -c {} -m {} -t 1 -D 5 --warm-up-time=1 -H 'content-type: application/grpc' -H 'te: trailers' -d {} \
             {}{}",
            cli.connections,
            cli.streams,
            body.display(),
            service.url(),
            wire.path
        );
    }
    tokio::select! {
        () = tokio::time::sleep(hold) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn with_baseline(mut outcome: Outcome, baseline: &str) -> Outcome {
    outcome.baseline = Some(baseline.to_owned());
    outcome
}

fn bench_dispute(reference: String) -> dpb::Dispute {
    dpb::Dispute {
        reference,
        title: "China — Anti-dumping measures on canola seed from Canada".into(),
        complainant: "CAN".into(),
        respondent: "CHN".into(),
        forum: dpb::DisputeForum::Wto.into(),
        hs_codes: vec!["1205".into()],
        opened_on: "2025-09-26".into(),
        ..Default::default()
    }
}

fn bench_session() -> gpb::DialogueSession {
    gpb::DialogueSession {
        title: "Canada–China Economic and Financial Strategic Dialogue".into(),
        track: gpb::DialogueTrack::EconomicFinancial.into(),
        level: gpb::SessionLevel::Ministerial.into(),
        host_economy: "CHN".into(),
        economies: vec!["CAN".into(), "CHN".into()],
        location: "Beijing".into(),
        starts_on: "2026-01-15".into(),
        ends_on: "2026-01-15".into(),
        status: gpb::SessionStatus::Held.into(),
        ..Default::default()
    }
}

/// `concurrency` tasks inserting one row each per transaction through
/// sqlx, on a database of its own: the floor under any write.
async fn insert_baseline(
    cli: &Cli,
    scenario: &str,
    concurrency: usize,
    warmup: Duration,
    seconds: Duration,
) -> anyhow::Result<Outcome> {
    use sea_orm::sqlx::postgres::PgPoolOptions;
    let name = "tradewatch_bench_baseline";
    let admin = Database::connect(&cli.postgres).await?;
    admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await?;
    admin.execute_unprepared(&format!("CREATE DATABASE \"{name}\"")).await?;
    let base = cli.postgres.rsplit_once('/').map_or(cli.postgres.as_str(), |(server, _)| server);
    let pool = PgPoolOptions::new().max_connections(10).connect(&format!("{base}/{name}")).await?;
    sea_orm::sqlx::query("CREATE TABLE rows (id uuid PRIMARY KEY, body text NOT NULL, at timestamptz NOT NULL)")
        .execute(&pool)
        .await?;
    let run = |until: Instant, record: bool| {
        (0..concurrency)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    while Instant::now() < until {
                        let started = Instant::now();
                        sea_orm::sqlx::query("INSERT INTO rows (id, body, at) VALUES ($1, $2, now())")
                            .bind(uuid::Uuid::now_v7())
                            .bind("China — Anti-dumping measures on canola seed from Canada")
                            .execute(&pool)
                            .await?;
                        if record {
                            latencies.push(started.elapsed());
                        }
                    }
                    Ok::<_, sea_orm::sqlx::Error>(latencies)
                })
            })
            .collect::<Vec<_>>()
    };
    for task in run(Instant::now() + warmup, false) {
        task.await??;
    }
    let started = Instant::now();
    let mut latencies = Vec::new();
    for task in run(started + seconds, true) {
        latencies.extend(task.await??);
    }
    let took = started.elapsed();
    pool.close().await;
    admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await?;
    latencies.sort_unstable();
    Ok(Outcome {
        scenario: scenario.to_owned(),
        streams: concurrency,
        errors: 0,
        per_second: latencies.len() as f64 / took.as_secs_f64(),
        latencies,
        baseline: None,
    })
}

/// One table: `client` names who made the calls (its errors column).
fn print(outcomes: &[Outcome], client: &str) {
    let ms = |d: Duration| format!("{:.2}", d.as_secs_f64() * 1_000.0);
    println!(
        "| {:<42} | {:>7} | {:>9} | {:>8} | {:>8} | {:>8} | {:>8} | {:>6} | {:>6} |",
        format!("scenario ({client})"),
        "streams",
        "req/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "ratio",
        "errors"
    );
    println!(
        "|{:-<44}|{:->9}|{:->11}|{:->10}|{:->10}|{:->10}|{:->10}|{:->8}|{:->8}|",
        "", "", "", "", "", "", "", "", ""
    );
    for o in outcomes {
        let ratio = o
            .baseline
            .as_ref()
            .and_then(|b| outcomes.iter().find(|x| &x.scenario == b && x.baseline.is_none()))
            .map_or_else(|| "—".to_owned(), |b| format!("{:.2}", o.per_second / b.per_second));
        println!(
            "| {:<42} | {:>7} | {:>9.0} | {:>8} | {:>8} | {:>8} | {:>8} | {:>6} | {:>6} |",
            o.scenario,
            o.streams,
            o.per_second,
            ms(o.percentile(0.50)),
            ms(o.percentile(0.90)),
            ms(o.percentile(0.99)),
            ms(o.latencies.last().copied().unwrap_or_default()),
            ratio,
            o.errors
        );
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    anyhow::ensure!(
        cli.connections > 0 && cli.streams > 0 && cli.lines > 0,
        "--connections, --streams and --lines must each be at least 1"
    );
    let run = format!("{}", std::process::id());
    let (mut outcomes, mut wire, mut notes) = (Vec::new(), Vec::new(), Vec::new());
    for &backend in &cli.backend {
        if cli.serve.is_some() {
            bench(&cli, backend, &run).await?;
            return Ok(());
        }
        let (o, w, n) = bench(&cli, backend, &run).await?;
        outcomes.extend(o);
        wire.extend(w);
        notes.extend(n);
    }
    println!(
        "\ntradewatch-bench: {} connections × {} streams, {} s warm-up, {} s per scenario; ratio: req/s over the same \
         server's Check (CreateDispute: over the single-row INSERT)\n",
        cli.connections, cli.streams, cli.warmup, cli.seconds
    );
    print(&outcomes, "tonic");
    println!();
    if !wire.is_empty() {
        println!(
            "h2load: {} connections, one request body repeated, {} s warm-up, {} s per scenario; ratio: req/s over the \
             same server's Check\n",
            cli.connections, cli.warmup, cli.seconds
        );
        print(&wire, "h2load");
        println!();
    }
    for note in notes {
        println!("{note}");
    }
    Ok(())
}
