//! `make chaos`: the chaos drill. The four services run with two replicas
//! each on PostgreSQL, every replica behind a virtual IP of ours on
//! loopback (as a Kubernetes Service balances connections), peers calling
//! peers through those virtual IPs. A mixed load runs against them — reads,
//! measure and dispute writes, quota draws, commitments fulfilled with
//! effects the relay delivers, watchers on every change feed — while faults
//! are injected in turn: every connection of the three databases
//! terminated (`pg_terminate_backend`), PostgreSQL restarted, a replica
//! killed with `kill -9` and started again, a replica made slow.
//!
//! Every write carries a `request_id`; a write whose outcome is unknown (the
//! connection went, the deadline passed, UNAVAILABLE) is retried with the
//! same request, as the API asks, until it is answered or its retry time is
//! up. After the load, with every replica serving again, it checks from
//! outside: every acknowledged write is there; no quota is used past its
//! quantity, and each quota's use is exactly the sum of its acknowledged
//! draws; every fulfilled commitment's effect is applied, once; and every
//! watcher saw each feed's changes once each, in the order a replay from
//! its first position gives, across all its resumes. It prints a table
//! (operations and their answers by code, faults injected, invariants) and
//! fails when any invariant does not hold.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    future::Future,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use rust_decimal::Decimal;
use sea_orm::{ConnectionTrait as _, Database, DbBackend, Statement};
use tonic::{Code, Status, transport::Channel};
use tonic_types::StatusExt as _;
use tradewatch_common::proto::{
    common::Money,
    dialogue::{self as gpb, dialogue_service_client::DialogueServiceClient},
    dispute::{self as dpb, dispute_service_client::DisputeServiceClient},
    relations::{self as rpb, relations_service_client::RelationsServiceClient},
    tariff::{self as tpb, tariff_service_client::TariffServiceClient},
};

use crate::faults::{Balancer, ServiceProcess};

/// What `tradewatch-demo chaos` was asked for.
pub struct Options {
    /// Where `tariff-service` and the others are.
    pub bin_dir: PathBuf,
    /// The replicas' logs and the report.
    pub var_dir: PathBuf,
    /// How long the load and the faults last.
    pub duration: Duration,
    /// A PostgreSQL URL with the right to create databases; the drill makes
    /// three of its own there and drops them at the end.
    pub admin_url: String,
    /// The shell command that restarts the PostgreSQL server (none: that
    /// fault is left out, and the report says so).
    pub pg_restart: Option<String>,
    /// Concurrent callers.
    pub callers: usize,
    /// Time between one fault and the next.
    pub fault_every: Duration,
}

const SERVICES: [&str; 4] = ["tariff", "dispute", "dialogue", "relations"];
const REPLICAS: usize = 2;
/// Each call's deadline.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a write whose outcome is unknown is retried.
const RETRY_FOR: Duration = Duration::from_secs(60);
/// How long the end waits for the stack to settle (serving again, effects
/// applied, feeds read to their end).
const SETTLE_WITHIN: Duration = Duration::from_secs(120);
/// The quotas the load draws on: half of them small, used up early and
/// then drawn on at their limit; half sized to the drill's length (about
/// what the load draws on each in that time), full only near its end.
const QUOTAS: usize = 4;
const SMALL_QUOTA: u64 = 2_000;
const QUOTA_PER_SECOND: u64 = 30;

/// Runs the drill; `Ok(true)` when every invariant held.
pub async fn run(opts: Options) -> anyhow::Result<bool> {
    std::fs::create_dir_all(&opts.var_dir)?;
    let databases = Databases::create(&opts.admin_url).await?;
    let outcome = {
        let signal = tradewatch_common::cli::shutdown_signal();
        tokio::select! {
            outcome = drill(&opts, &databases) => outcome,
            () = signal => Err(anyhow::anyhow!("interrupted: everything started is stopped")),
        }
    };
    // The replicas went with the drill (killed on drop); now their databases.
    if let Err(err) = databases.drop_all().await {
        eprintln!("chaos: could not drop the drill's databases: {err:#}");
    }
    let report = outcome?;
    let text = report.render(&opts);
    println!("{text}");
    let file = opts.var_dir.join("report.txt");
    std::fs::write(&file, &text)?;
    println!("(also in {})", file.display());
    Ok(report.held())
}

/// The three databases of one drill, on the server `admin_url` names.
struct Databases {
    admin_url: String,
    names: Vec<(&'static str, String)>,
}

impl Databases {
    async fn create(admin_url: &str) -> anyhow::Result<Self> {
        let me = Self {
            admin_url: admin_url.to_owned(),
            names: ["tariff", "dispute", "dialogue"]
                .into_iter()
                .map(|s| (s, format!("tradewatch_chaos_{}_{s}", std::process::id())))
                .collect(),
        };
        for (_, name) in &me.names {
            let create = async {
                me.admin(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await?;
                me.admin(&format!("CREATE DATABASE \"{name}\"")).await
            };
            if let Err(err) = create.await {
                let _ = me.drop_all().await;
                return Err(err);
            }
        }
        Ok(me)
    }

    fn url(&self, service: &str) -> String {
        let name = self.names.iter().find(|(s, _)| *s == service).map_or("", |(_, n)| n.as_str());
        let (base, query) = match self.admin_url.split_once('?') {
            Some((base, query)) => (base, format!("?{query}")),
            None => (self.admin_url.as_str(), String::new()),
        };
        let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
        format!("{server}/{name}{query}")
    }

    async fn admin(&self, sql: &str) -> anyhow::Result<()> {
        let db = Database::connect(&self.admin_url).await?;
        db.execute_unprepared(sql).await?;
        db.close().await?;
        Ok(())
    }

    /// Terminates every connection to the three databases; how many.
    async fn terminate_backends(&self) -> anyhow::Result<i64> {
        let names: Vec<String> = self.names.iter().map(|(_, n)| format!("'{n}'")).collect();
        let sql = format!(
            "SELECT count(*) AS n FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname IN ({}) AND pid <> pg_backend_pid()) AS terminated",
            names.join(", ")
        );
        let db = Database::connect(&self.admin_url).await?;
        let n = db
            .query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
            .await?
            .map(|row| row.try_get::<i64>("", "n"))
            .transpose()?
            .unwrap_or(0);
        db.close().await?;
        Ok(n)
    }

    /// Waits until the server takes connections again; how long that took.
    async fn wait_up(&self, within: Duration) -> anyhow::Result<Duration> {
        let started = Instant::now();
        loop {
            if let Ok(db) = Database::connect(&self.admin_url).await {
                let ok = db.execute_unprepared("SELECT 1").await.is_ok();
                let _ = db.close().await;
                if ok {
                    return Ok(started.elapsed());
                }
            }
            anyhow::ensure!(started.elapsed() < within, "PostgreSQL did not take connections within {within:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn drop_all(&self) -> anyhow::Result<()> {
        self.wait_up(Duration::from_secs(30)).await?;
        for (_, name) in &self.names {
            self.admin(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await?;
        }
        Ok(())
    }
}

/// The replicas of the four services and the virtual IP of each service.
struct Cluster {
    bin_dir: PathBuf,
    var_dir: PathBuf,
    vips: BTreeMap<&'static str, Balancer>,
    /// `(service, replica)` → the process running it (none while it is down).
    replicas: BTreeMap<(&'static str, usize), Option<ServiceProcess>>,
    env: BTreeMap<&'static str, Vec<(&'static str, String)>>,
}

impl Cluster {
    async fn start(opts: &Options, databases: &Databases) -> anyhow::Result<Self> {
        let mut vips = BTreeMap::new();
        for service in SERVICES {
            vips.insert(service, Balancer::with_slots(vec![None; REPLICAS]).await?);
        }
        let mut env = BTreeMap::new();
        for service in SERVICES {
            let mut e = vec![
                ("TRADEWATCH__PEERS__TARIFF_URL", vips["tariff"].url()),
                ("TRADEWATCH__PEERS__DISPUTE_URL", vips["dispute"].url()),
                ("TRADEWATCH__PEERS__DIALOGUE_URL", vips["dialogue"].url()),
                ("TRADEWATCH__PEERS__TIMEOUT_MS", "2000".to_owned()),
                ("TRADEWATCH__RELAY__LEASE_SECS", "5".to_owned()),
                ("TRADEWATCH__DATABASE__ACQUIRE_TIMEOUT_MS", "2000".to_owned()),
            ];
            if service != "relations" {
                e.push(("TRADEWATCH__DATABASE__URL", databases.url(service)));
            }
            env.insert(service, e);
        }
        let mut me =
            Self { bin_dir: opts.bin_dir.clone(), var_dir: opts.var_dir.clone(), vips, replicas: BTreeMap::new(), env };
        // In dependency order, and one replica first: it runs the migrations.
        for service in SERVICES {
            for replica in 0..REPLICAS {
                me.start_replica(service, replica).await?;
                println!("chaos: {service}-service replica {replica} is SERVING");
            }
        }
        Ok(me)
    }

    async fn start_replica(&mut self, service: &'static str, replica: usize) -> anyhow::Result<()> {
        let log = self.var_dir.join(format!("{service}-{replica}.log"));
        let process = ServiceProcess::start_logged(&self.bin_dir, service, &self.env[service], Some(&log)).await?;
        self.vips[service].set_target(replica, Some(process.addr()));
        self.replicas.insert((service, replica), Some(process));
        Ok(())
    }

    /// `kill -9` of one replica; its virtual IP passes it over until it is back.
    async fn kill(&mut self, service: &'static str, replica: usize) {
        self.vips[service].set_target(replica, None);
        if let Some(process) = self.replicas.get_mut(&(service, replica)).and_then(Option::take) {
            process.kill9().await;
        }
    }

    fn url(&self, service: &str) -> String {
        self.vips[service].url()
    }

    /// Replicas that are not SERVING now.
    async fn not_serving(&self) -> Vec<String> {
        let mut out = Vec::new();
        for ((service, replica), process) in &self.replicas {
            let serving = match process {
                Some(p) => p.serving().await,
                None => false,
            };
            if !serving {
                out.push(format!("{service}-{replica}"));
            }
        }
        out
    }

    /// SIGTERM to every replica, each given the grace period; the ones that
    /// did not exit 0 in time.
    async fn stop(mut self) -> Vec<String> {
        let mut unclean = Vec::new();
        for ((service, replica), process) in std::mem::take(&mut self.replicas).into_iter().rev() {
            if let Some(p) = process
                && !p.stop(Duration::from_secs(30)).await
            {
                unclean.push(format!("{service}-{replica}"));
            }
        }
        unclean
    }
}

// ---------------------------------------------------------------------------
// What the load saw and wrote.

/// Answers by operation and code.
#[derive(Default)]
struct Tally(Mutex<BTreeMap<&'static str, BTreeMap<&'static str, u64>>>);

impl Tally {
    fn count(&self, op: &'static str, code: Code) {
        if let Ok(mut t) = self.0.lock() {
            *t.entry(op).or_default().entry(tradewatch_common::metrics::code_name(code)).or_default() += 1;
        }
    }

    fn snapshot(&self) -> BTreeMap<&'static str, BTreeMap<&'static str, u64>> {
        self.0.lock().map(|t| t.clone()).unwrap_or_default()
    }
}

/// Every write the load made, by its outcome.
#[derive(Default)]
struct Ledger {
    measures: Vec<String>,
    disputes: Vec<String>,
    /// `(dispute, event)`.
    events: Vec<(String, String)>,
    sessions: Vec<String>,
    commitments: Vec<String>,
    /// Acknowledged draws by quota: how many, and their sum.
    draws: BTreeMap<String, (u64, u64)>,
    /// Draws whose outcome stayed unknown, by quota: how many, and their sum.
    undecided_draws: BTreeMap<String, (u64, u64)>,
    /// Draws refused with QUOTA_EXHAUSTED.
    exhausted: u64,
    /// `(commitment, measure)` fulfilled with SUSPEND_MEASURE.
    suspensions: Vec<(String, String)>,
    /// `(commitment, dispute)` fulfilled with SETTLE_DISPUTE.
    settlements: Vec<(String, String)>,
    /// Writes whose outcome stayed unknown after their retry time.
    undecided: BTreeMap<&'static str, u64>,
    /// Writes refused when nothing should refuse them: each with its status.
    refused: Vec<String>,
    /// Reads whose answer differed from the record (a ResolveDuty total).
    wrong_reads: Vec<String>,
}

/// A write's outcome after its retries.
enum Outcome<T> {
    Acked(T),
    Refused(Status),
    Undecided,
}

/// A write or read whose outcome is unknown: the API says retry it. An
/// INTERNAL or UNKNOWN that the service answered (with its ErrorInfo) is a
/// refusal; one without is the transport's (a connection cut mid-call).
fn undecided(status: &Status) -> bool {
    match status.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Aborted | Code::Cancelled | Code::ResourceExhausted => true,
        Code::Unknown | Code::Internal => {
            status.get_details_error_info().is_none_or(|info| info.domain != "tradewatch")
        }
        _ => false,
    }
}

fn with_deadline<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(CALL_TIMEOUT);
    request
}

/// Calls `call` until it is answered with OK or a refusal, retrying an
/// unknown outcome (with the same request, so the same `request_id`) with
/// backoff for [`RETRY_FOR`]. Every answer is counted.
async fn settle<T, F, Fut>(tally: &Tally, op: &'static str, mut call: F) -> Outcome<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, Status>>,
{
    let started = Instant::now();
    let mut wait = Duration::from_millis(50);
    loop {
        match call().await {
            Ok(response) => {
                tally.count(op, Code::Ok);
                return Outcome::Acked(response.into_inner());
            }
            Err(status) => {
                tally.count(op, status.code());
                if !undecided(&status) {
                    return Outcome::Refused(status);
                }
                if started.elapsed() > RETRY_FOR {
                    return Outcome::Undecided;
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(2));
            }
        }
    }
}

fn reason(status: &Status) -> String {
    status.get_details_error_info().map(|info| info.reason).unwrap_or_default()
}

fn request_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A small generator for the load's choices (no need for a crate).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n.max(1)
    }
}

/// What every caller shares: the record made before the load, and where
/// the answers go.
struct Shared {
    run: String,
    quotas: Vec<String>,
    sessions: Vec<String>,
    /// What ResolveDuty of the drill's shipment must answer: the record it
    /// reads never changes during the load.
    resolve_total: String,
    tally: Tally,
    ledger: Mutex<Ledger>,
}

/// One caller: clients of its own (its own connections, balanced over the
/// replicas by the virtual IPs).
struct Caller {
    tariff: TariffServiceClient<Channel>,
    dispute: DisputeServiceClient<Channel>,
    dialogue: DialogueServiceClient<Channel>,
    relations: RelationsServiceClient<Channel>,
    shared: Arc<Shared>,
    rng: Rng,
    id: usize,
    n: u64,
}

fn lazy(url: &str) -> anyhow::Result<Channel> {
    Ok(tonic::transport::Endpoint::from_shared(url.to_owned())?.connect_timeout(Duration::from_secs(2)).connect_lazy())
}

impl Caller {
    fn new(cluster: &Cluster, shared: Arc<Shared>, id: usize) -> anyhow::Result<Self> {
        Ok(Self {
            tariff: TariffServiceClient::new(lazy(&cluster.url("tariff"))?),
            dispute: DisputeServiceClient::new(lazy(&cluster.url("dispute"))?),
            dialogue: DialogueServiceClient::new(lazy(&cluster.url("dialogue"))?),
            relations: RelationsServiceClient::new(lazy(&cluster.url("relations"))?),
            shared,
            rng: Rng(0x5EED_0000 + u64::try_from(id).unwrap_or(0)),
            id,
            n: 0,
        })
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        match self.shared.ledger.lock() {
            Ok(l) => l,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The acknowledged answer, or none with the outcome put in the ledger.
    fn acked<T>(&self, op: &'static str, outcome: Outcome<T>) -> Option<T> {
        match outcome {
            Outcome::Acked(t) => Some(t),
            Outcome::Refused(status) => {
                self.ledger().refused.push(format!(
                    "{op}: {:?} {} {}",
                    status.code(),
                    reason(&status),
                    status.message()
                ));
                None
            }
            Outcome::Undecided => {
                *self.ledger().undecided.entry(op).or_default() += 1;
                None
            }
        }
    }

    /// An index below `n`.
    fn pick(&mut self, n: usize) -> usize {
        usize::try_from(self.rng.below(u64::try_from(n).unwrap_or(u64::MAX))).unwrap_or(0)
    }

    fn next_name(&mut self, what: &str) -> String {
        self.n += 1;
        format!("CHAOS-{}-{what}-{}-{}", self.shared.run, self.id, self.n)
    }

    async fn one(&mut self) {
        match self.rng.below(100) {
            0..20 => self.resolve().await,
            20..25 => self.brief().await,
            25..40 => self.read().await,
            40..55 => {
                let _ = self.create_measure().await;
            }
            55..75 => self.draw().await,
            75..85 => self.dispute_with_event().await,
            85..93 => self.suspend().await,
            93..97 => self.settle_dispute().await,
            _ => self.session().await,
        }
    }

    async fn resolve(&mut self) {
        let mut c = self.tariff.clone();
        match c.resolve_duty(with_deadline(drill_shipment())).await {
            Ok(r) => {
                self.shared.tally.count("ResolveDuty", Code::Ok);
                let total = r.into_inner().total_duty.map(|m| m.amount).unwrap_or_default();
                if total != self.shared.resolve_total {
                    self.ledger().wrong_reads.push(format!("ResolveDuty total {total}"));
                }
            }
            Err(status) => self.shared.tally.count("ResolveDuty", status.code()),
        }
    }

    async fn brief(&mut self) {
        let request =
            rpb::GetBilateralBriefRequest { economy_a: "CAN".into(), economy_b: "CHN".into(), on: "2026-03-15".into() };
        let code = match self.relations.get_bilateral_brief(with_deadline(request)).await {
            Ok(_) => Code::Ok,
            Err(status) => status.code(),
        };
        self.shared.tally.count("GetBilateralBrief", code);
    }

    async fn read(&mut self) {
        let pick = self.rng.below(3);
        let code = match pick {
            0 => {
                let n = self.ledger().measures.len();
                if n == 0 {
                    return;
                }
                let pick = self.pick(n);
                let Some(id) = self.ledger().measures.get(pick).cloned() else { return };
                let r = self.tariff.get_measure(with_deadline(tpb::GetMeasureRequest { id })).await;
                ("GetMeasure", r.map(|_| ()))
            }
            1 => {
                let request =
                    dpb::ListDisputesRequest { respondent: "CAN".into(), page_size: 20, ..Default::default() };
                ("ListDisputes", self.dispute.list_disputes(with_deadline(request)).await.map(|_| ()))
            }
            _ => {
                let request =
                    tpb::ListMeasuresRequest { imposing_economy: "CAN".into(), page_size: 20, ..Default::default() };
                ("ListMeasures", self.tariff.list_measures(with_deadline(request)).await.map(|_| ()))
            }
        };
        self.shared.tally.count(code.0, code.1.err().map_or(Code::Ok, |s| s.code()));
    }

    async fn create_measure(&mut self) -> Option<tpb::TariffMeasure> {
        let reference = self.next_name("M");
        let hs = format!("99{:04}", self.rng.below(10_000));
        let request = tpb::CreateMeasureRequest {
            measure: Some(tpb::TariffMeasure {
                reference,
                title: "A surtax of the chaos drill".into(),
                imposing_economy: "CAN".into(),
                target_economies: vec!["NZL".into()],
                kind: tpb::MeasureKind::Surtax.into(),
                hs_codes: vec![hs],
                ad_valorem_percent: "5".into(),
                effective_from: "2025-01-01".into(),
                ..Default::default()
            }),
            request_id: request_id(),
        };
        let client = self.tariff.clone();
        let outcome = settle(&self.shared.tally, "CreateMeasure", || {
            let (mut c, r) = (client.clone(), with_deadline(request.clone()));
            async move { c.create_measure(r).await }
        })
        .await;
        let measure = self.acked("CreateMeasure", outcome)?.measure?;
        self.ledger().measures.push(measure.id.clone());
        Some(measure)
    }

    async fn draw(&mut self) {
        let i = self.pick(self.shared.quotas.len());
        let quota = self.shared.quotas[i].clone();
        let quantity = 1 + self.rng.below(20);
        let request = tpb::RecordQuotaUsageRequest {
            id: quota.clone(),
            quantity: quantity.to_string(),
            request_id: request_id(),
        };
        let client = self.tariff.clone();
        let outcome = settle(&self.shared.tally, "RecordQuotaUsage", || {
            let (mut c, r) = (client.clone(), with_deadline(request.clone()));
            async move { c.record_quota_usage(r).await }
        })
        .await;
        let mut ledger = self.ledger();
        match outcome {
            Outcome::Acked(_) => {
                let d = ledger.draws.entry(quota).or_default();
                d.0 += 1;
                d.1 += quantity;
            }
            Outcome::Refused(status)
                if status.code() == Code::FailedPrecondition && reason(&status) == "QUOTA_EXHAUSTED" =>
            {
                ledger.exhausted += 1;
            }
            Outcome::Refused(status) => {
                ledger.refused.push(format!("RecordQuotaUsage: {:?} {}", status.code(), status.message()));
            }
            Outcome::Undecided => {
                let d = ledger.undecided_draws.entry(quota).or_default();
                d.0 += 1;
                d.1 += quantity;
            }
        }
    }

    async fn create_dispute(&mut self) -> Option<dpb::Dispute> {
        let request = dpb::CreateDisputeRequest {
            dispute: Some(dpb::Dispute {
                reference: self.next_name("D"),
                title: "A dispute of the chaos drill".into(),
                complainant: "NZL".into(),
                respondent: "CAN".into(),
                forum: dpb::DisputeForum::Wto.into(),
                opened_on: "2025-03-01".into(),
                ..Default::default()
            }),
            request_id: request_id(),
        };
        let client = self.dispute.clone();
        let outcome = settle(&self.shared.tally, "CreateDispute", || {
            let (mut c, r) = (client.clone(), with_deadline(request.clone()));
            async move { c.create_dispute(r).await }
        })
        .await;
        let dispute = self.acked("CreateDispute", outcome)?.dispute?;
        self.ledger().disputes.push(dispute.id.clone());
        Some(dispute)
    }

    async fn dispute_with_event(&mut self) {
        let Some(dispute) = self.create_dispute().await else { return };
        let request = dpb::RecordDisputeEventRequest {
            dispute_id: dispute.id.clone(),
            event: Some(dpb::DisputeEvent {
                kind: dpb::DisputeEventKind::Filing.into(),
                occurred_on: "2025-04-01".into(),
                description: "A filing of the chaos drill".into(),
                ..Default::default()
            }),
            request_id: request_id(),
        };
        let client = self.dispute.clone();
        let outcome = settle(&self.shared.tally, "RecordDisputeEvent", || {
            let (mut c, r) = (client.clone(), with_deadline(request.clone()));
            async move { c.record_dispute_event(r).await }
        })
        .await;
        if let Some(event) = self.acked("RecordDisputeEvent", outcome).and_then(|r| r.event) {
            self.ledger().events.push((dispute.id, event.id));
        }
    }

    async fn session(&mut self) {
        let request =
            gpb::CreateSessionRequest { session: Some(drill_session(&self.next_name("S"))), request_id: request_id() };
        let client = self.dialogue.clone();
        let outcome = settle(&self.shared.tally, "CreateSession", || {
            let (mut c, r) = (client.clone(), with_deadline(request.clone()));
            async move { c.create_session(r).await }
        })
        .await;
        if let Some(session) = self.acked("CreateSession", outcome).and_then(|r| r.session) {
            self.ledger().sessions.push(session.id);
        }
    }

    /// Adds a commitment with `effect` on `target` and fulfils it; its id
    /// once the fulfilment is acknowledged.
    async fn fulfil(
        &mut self,
        effect: gpb::CommitmentEffect,
        measure_id: String,
        dispute_id: String,
    ) -> Option<String> {
        let i = self.pick(self.shared.sessions.len());
        let session_id = self.shared.sessions[i].clone();
        let request = gpb::AddCommitmentRequest {
            session_id,
            commitment: Some(gpb::Commitment {
                description: self.next_name("C"),
                owner_economies: vec!["CAN".into()],
                measure_id,
                dispute_id,
                effect: effect.into(),
                effective_on: "2026-03-01".into(),
                ..Default::default()
            }),
            request_id: request_id(),
        };
        let client = self.dialogue.clone();
        let outcome = settle(&self.shared.tally, "AddCommitment", || {
            let (mut c, r) = (client.clone(), with_deadline(request.clone()));
            async move { c.add_commitment(r).await }
        })
        .await;
        let commitment = self.acked("AddCommitment", outcome)?.commitment?;
        self.ledger().commitments.push(commitment.id.clone());
        let request = gpb::SetCommitmentStatusRequest {
            id: commitment.id.clone(),
            status: gpb::CommitmentStatus::Fulfilled.into(),
            request_id: request_id(),
            ..Default::default()
        };
        let outcome = settle(&self.shared.tally, "SetCommitmentStatus", || {
            let (mut c, r) = (client.clone(), with_deadline(request.clone()));
            async move { c.set_commitment_status(r).await }
        })
        .await;
        self.acked("SetCommitmentStatus", outcome)?;
        Some(commitment.id)
    }

    async fn suspend(&mut self) {
        let Some(measure) = self.create_measure().await else { return };
        let effect = gpb::CommitmentEffect::SuspendMeasure;
        if let Some(commitment) = self.fulfil(effect, measure.id.clone(), String::new()).await {
            self.ledger().suspensions.push((commitment, measure.id));
        }
    }

    async fn settle_dispute(&mut self) {
        let Some(dispute) = self.create_dispute().await else { return };
        let effect = gpb::CommitmentEffect::SettleDispute;
        if let Some(commitment) = self.fulfil(effect, String::new(), dispute.id.clone()).await {
            self.ledger().settlements.push((commitment, dispute.id));
        }
    }
}

/// The shipment the load resolves: a Chinese electric car into Canada, on
/// the measures `setup` makes and nothing of the load touches.
fn drill_shipment() -> tpb::ResolveDutyRequest {
    tpb::ResolveDutyRequest {
        importing_economy: "CAN".into(),
        origin_economy: "CHN".into(),
        hs_code: "8703.80.00".into(),
        imported_on: "2025-06-02".into(),
        customs_value: Some(Money { currency_code: "CAD".into(), amount: "40000.00".into() }),
        ..Default::default()
    }
}

/// The sessions the drill's commitments are made at.
fn drill_session(title: &str) -> gpb::DialogueSession {
    gpb::DialogueSession {
        title: title.into(),
        track: gpb::DialogueTrack::Trade.into(),
        level: gpb::SessionLevel::SeniorOfficials.into(),
        host_economy: "CAN".into(),
        economies: vec!["CAN".into(), "NZL".into()],
        starts_on: "2026-02-02".into(),
        status: gpb::SessionStatus::Held.into(),
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------
// Watchers.

/// One change of a feed, as a watcher compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    token: String,
    kind: i32,
    id: String,
    /// The reference (measures, disputes) or description (commitments):
    /// what the end marker is recognised by.
    key: String,
    etag: String,
    /// `change_time` in microseconds.
    at: i64,
}

fn micros(t: Option<&prost_types::Timestamp>) -> i64 {
    t.map_or(0, |t| t.seconds * 1_000_000 + i64::from(t.nanos) / 1_000)
}

/// A change feed of one service.
trait Feed: Clone + Send + 'static {
    type Message: Send + 'static;
    const NAME: &'static str;
    fn open(&self, after: String) -> impl Future<Output = Result<tonic::Streaming<Self::Message>, Status>> + Send;
    /// The message's resume token, and its change (none for a heartbeat).
    fn split(message: Self::Message) -> (String, Option<Seen>);
}

#[derive(Clone)]
struct Measures(TariffServiceClient<Channel>);
#[derive(Clone)]
struct Disputes(DisputeServiceClient<Channel>);
#[derive(Clone)]
struct Commitments(DialogueServiceClient<Channel>);

impl Feed for Measures {
    type Message = tpb::WatchMeasuresResponse;
    const NAME: &'static str = "WatchMeasures";
    fn open(&self, after: String) -> impl Future<Output = Result<tonic::Streaming<Self::Message>, Status>> + Send {
        let mut c = self.0.clone();
        async move {
            let request = tpb::WatchMeasuresRequest { start_after: after, ..Default::default() };
            Ok(c.watch_measures(request).await?.into_inner())
        }
    }
    fn split(m: Self::Message) -> (String, Option<Seen>) {
        let seen = m.change.map(|c| {
            let r = c.measure.unwrap_or_default();
            Seen {
                token: String::new(),
                kind: c.kind,
                id: r.id,
                key: r.reference,
                etag: r.etag,
                at: micros(c.change_time.as_ref()),
            }
        });
        (m.resume_token, seen)
    }
}

impl Feed for Disputes {
    type Message = dpb::WatchDisputesResponse;
    const NAME: &'static str = "WatchDisputes";
    fn open(&self, after: String) -> impl Future<Output = Result<tonic::Streaming<Self::Message>, Status>> + Send {
        let mut c = self.0.clone();
        async move {
            let request = dpb::WatchDisputesRequest { start_after: after, ..Default::default() };
            Ok(c.watch_disputes(request).await?.into_inner())
        }
    }
    fn split(m: Self::Message) -> (String, Option<Seen>) {
        let seen = m.change.map(|c| {
            let r = c.dispute.unwrap_or_default();
            Seen {
                token: String::new(),
                kind: c.kind,
                id: r.id,
                key: r.reference,
                etag: r.etag,
                at: micros(c.change_time.as_ref()),
            }
        });
        (m.resume_token, seen)
    }
}

impl Feed for Commitments {
    type Message = gpb::WatchCommitmentsResponse;
    const NAME: &'static str = "WatchCommitments";
    fn open(&self, after: String) -> impl Future<Output = Result<tonic::Streaming<Self::Message>, Status>> + Send {
        let mut c = self.0.clone();
        async move {
            let request = gpb::WatchCommitmentsRequest { start_after: after, ..Default::default() };
            Ok(c.watch_commitments(request).await?.into_inner())
        }
    }
    fn split(m: Self::Message) -> (String, Option<Seen>) {
        let seen = m.change.map(|c| {
            let r = c.commitment.unwrap_or_default();
            Seen {
                token: String::new(),
                kind: c.kind,
                id: r.id,
                key: r.description,
                etag: r.etag,
                at: micros(c.change_time.as_ref()),
            }
        });
        (m.resume_token, seen)
    }
}

/// What one watcher read.
#[derive(Default)]
struct Followed {
    seen: Vec<Seen>,
    /// Streams it opened again after one ended or failed.
    resumes: u64,
    /// How its streams ended, by code.
    ends: BTreeMap<&'static str, u64>,
    reached_end: bool,
}

/// Reads `feed` from `start_after` until the change whose key is `end_key`,
/// resuming after the last token whenever a stream ends or fails; gives up
/// when `give_up` turns true. `opened` is told once the first stream is
/// open; `progress` counts the changes read.
async fn follow<F: Feed>(
    feed: F,
    start_after: String,
    end_key: String,
    mut give_up: tokio::sync::watch::Receiver<bool>,
    opened: Option<tokio::sync::oneshot::Sender<()>>,
    progress: Arc<AtomicUsize>,
) -> Followed {
    let mut out = Followed::default();
    let (mut after, mut opened, mut first) = (start_after, opened, true);
    'streams: loop {
        let open = tokio::select! {
            open = feed.open(after.clone()) => open,
            _ = give_up.wait_for(|g| *g) => break 'streams,
        };
        let mut stream = match open {
            Ok(stream) => stream,
            Err(status) => {
                *out.ends.entry(tradewatch_common::metrics::code_name(status.code())).or_default() += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        if let Some(tx) = opened.take() {
            let _ = tx.send(());
        }
        if !first {
            out.resumes += 1;
        }
        first = false;
        loop {
            let next = tokio::select! {
                next = stream.message() => next,
                _ = give_up.wait_for(|g| *g) => break 'streams,
            };
            match next {
                Ok(Some(message)) => {
                    let (token, change) = F::split(message);
                    if !token.is_empty() {
                        after.clone_from(&token);
                    }
                    if let Some(mut seen) = change {
                        seen.token = token;
                        let end = seen.key == end_key;
                        out.seen.push(seen);
                        progress.fetch_add(1, Ordering::SeqCst);
                        if end {
                            out.reached_end = true;
                            break 'streams;
                        }
                    }
                }
                Ok(None) => {
                    *out.ends.entry("closed").or_default() += 1;
                    break;
                }
                Err(status) => {
                    *out.ends.entry(tradewatch_common::metrics::code_name(status.code())).or_default() += 1;
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    out
}

/// The watchers of the drill: two on each feed, each through its own
/// connection to the service's virtual IP.
struct Watchers {
    measures: Vec<tokio::task::JoinHandle<Followed>>,
    disputes: Vec<tokio::task::JoinHandle<Followed>>,
    commitments: Vec<tokio::task::JoinHandle<Followed>>,
    progress: Vec<Arc<AtomicUsize>>,
    give_up: tokio::sync::watch::Sender<bool>,
}

const WATCHERS_PER_FEED: usize = 2;

impl Watchers {
    async fn open(cluster: &Cluster, end_key: &str) -> anyhow::Result<Self> {
        let (give_up, stop) = tokio::sync::watch::channel(false);
        let mut me = Self { measures: vec![], disputes: vec![], commitments: vec![], progress: vec![], give_up };
        let mut opened = Vec::new();
        for _ in 0..WATCHERS_PER_FEED {
            let measures = Measures(TariffServiceClient::new(lazy(&cluster.url("tariff"))?));
            let disputes = Disputes(DisputeServiceClient::new(lazy(&cluster.url("dispute"))?));
            let commitments = Commitments(DialogueServiceClient::new(lazy(&cluster.url("dialogue"))?));
            let m = me.spawn(measures, end_key, &stop, &mut opened);
            let d = me.spawn(disputes, end_key, &stop, &mut opened);
            let c = me.spawn(commitments, end_key, &stop, &mut opened);
            me.measures.push(m);
            me.disputes.push(d);
            me.commitments.push(c);
        }
        for rx in opened {
            tokio::time::timeout(Duration::from_secs(30), rx).await??;
        }
        Ok(me)
    }

    fn spawn<F: Feed>(
        &mut self,
        feed: F,
        end_key: &str,
        stop: &tokio::sync::watch::Receiver<bool>,
        opened: &mut Vec<tokio::sync::oneshot::Receiver<()>>,
    ) -> tokio::task::JoinHandle<Followed> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        opened.push(rx);
        let progress = Arc::new(AtomicUsize::new(0));
        self.progress.push(progress.clone());
        tokio::spawn(follow(feed, String::new(), end_key.to_owned(), stop.clone(), Some(tx), progress))
    }

    /// Whether every watcher has read at least one change.
    fn all_started(&self) -> bool {
        self.progress.iter().all(|p| p.load(Ordering::SeqCst) > 0)
    }
}

// ---------------------------------------------------------------------------
// Faults.

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    TerminateBackends,
    KillReplica,
    SlowReplica,
    RestartPostgres,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Self::TerminateBackends => "pg_terminate_backend of every connection",
            Self::KillReplica => "kill -9 of a replica, started again",
            Self::SlowReplica => "a replica slowed (300 ms per chunk, 8 s)",
            Self::RestartPostgres => "PostgreSQL restarted",
        }
    }
}

/// The faults injected, each with what came of it.
#[derive(Default)]
struct FaultLog {
    done: BTreeMap<Fault, Vec<String>>,
    failed: Vec<String>,
    skipped: BTreeSet<&'static str>,
}

/// Injects a fault every `every` until `until`, in turn.
async fn inject(
    cluster: &mut Cluster,
    databases: &Databases,
    pg_restart: Option<&str>,
    every: Duration,
    until: Instant,
) -> FaultLog {
    let mut log = FaultLog::default();
    let order = [Fault::TerminateBackends, Fault::KillReplica, Fault::SlowReplica, Fault::RestartPostgres];
    let (mut turn, mut kill_turn, mut slow_turn) = (0usize, 0usize, 0usize);
    let started = Instant::now();
    loop {
        let next = started + every * u32::try_from(turn + 1).unwrap_or(u32::MAX);
        if next >= until {
            break;
        }
        tokio::time::sleep_until(next.into()).await;
        let fault = order[turn % order.len()];
        turn += 1;
        let at = format!("{:>4}s", started.elapsed().as_secs());
        let outcome: anyhow::Result<String> = match fault {
            Fault::TerminateBackends => databases.terminate_backends().await.map(|n| format!("{at} {n} connections")),
            Fault::KillReplica => {
                let (service, replica) =
                    (SERVICES[kill_turn % SERVICES.len()], (kill_turn / SERVICES.len()) % REPLICAS);
                kill_turn += 1;
                cluster.kill(service, replica).await;
                tokio::time::sleep(Duration::from_secs(2)).await;
                let restarted = Instant::now();
                cluster.start_replica(service, replica).await.map(|()| {
                    format!("{at} {service}-{replica}, SERVING again {:.1?} after its start", restarted.elapsed())
                })
            }
            Fault::SlowReplica => {
                let peers = ["tariff", "dispute", "dialogue"];
                let (service, replica) = (peers[slow_turn % peers.len()], (slow_turn / peers.len()) % REPLICAS);
                slow_turn += 1;
                cluster.vips[service].slow(replica, Duration::from_millis(300));
                tokio::time::sleep(Duration::from_secs(8)).await;
                cluster.vips[service].slow(replica, Duration::ZERO);
                Ok(format!("{at} {service}-{replica}"))
            }
            Fault::RestartPostgres => match pg_restart {
                None => {
                    log.skipped.insert("PostgreSQL restarted (no restart command given)");
                    continue;
                }
                Some(command) => restart_postgres(command, databases).await.map(|d| format!("{at} down {d:.1?}")),
            },
        };
        match outcome {
            Ok(detail) => {
                println!("chaos: {} — {detail}", fault.name());
                log.done.entry(fault).or_default().push(detail);
            }
            Err(err) => {
                println!("chaos: {} failed: {err:#}", fault.name());
                log.failed.push(format!("{}: {err:#}", fault.name()));
            }
        }
    }
    log
}

async fn restart_postgres(command: &str, databases: &Databases) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let status =
        tokio::process::Command::new("sh").args(["-c", command]).stdout(std::process::Stdio::null()).status().await?;
    anyhow::ensure!(status.success(), "`{command}` exited with {status}");
    databases.wait_up(Duration::from_secs(60)).await?;
    Ok(started.elapsed())
}

// ---------------------------------------------------------------------------
// The drill.

struct Report {
    duration: Duration,
    callers: usize,
    tally: BTreeMap<&'static str, BTreeMap<&'static str, u64>>,
    faults: FaultLog,
    watchers: Vec<(&'static str, u64, BTreeMap<&'static str, u64>, usize)>,
    invariants: Vec<Invariant>,
    exhausted: u64,
    undecided: BTreeMap<&'static str, u64>,
}

struct Invariant {
    name: &'static str,
    checked: usize,
    violations: Vec<String>,
}

impl Report {
    fn held(&self) -> bool {
        self.invariants.iter().all(|i| i.violations.is_empty()) && self.faults.failed.is_empty()
    }

    fn render(&self, opts: &Options) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "\nChaos drill: {:?} of load and faults, {} callers, four services × {REPLICAS} replicas on PostgreSQL, a fault every {:?}",
            self.duration, self.callers, opts.fault_every
        );
        let _ = writeln!(s, "\n{:<22} {:>8} {:>8}  answers other than OK", "operation", "calls", "OK");
        let (mut calls_all, mut ok_all) = (0, 0);
        for (op, codes) in &self.tally {
            let calls: u64 = codes.values().sum();
            let ok = codes.get("OK").copied().unwrap_or(0);
            calls_all += calls;
            ok_all += ok;
            let others: Vec<String> =
                codes.iter().filter(|(c, _)| **c != "OK").map(|(c, n)| format!("{c} {n}")).collect();
            let _ = writeln!(s, "{op:<22} {calls:>8} {ok:>8}  {}", others.join(", "));
        }
        let _ = writeln!(s, "{:<22} {calls_all:>8} {ok_all:>8}", "all");
        let _ = writeln!(
            s,
            "(each attempt is counted; a write answered other than OK is retried with its request_id; quota draws refused as QUOTA_EXHAUSTED: {})",
            self.exhausted
        );
        if !self.undecided.is_empty() {
            let _ =
                writeln!(s, "writes whose outcome stayed unknown after {RETRY_FOR:?} of retries: {:?}", self.undecided);
        }
        let _ = writeln!(s, "\n{:<48} {:>5}  detail", "fault", "times");
        for (fault, details) in &self.faults.done {
            let _ = writeln!(s, "{:<48} {:>5}  {}", fault.name(), details.len(), details.join("; "));
        }
        for skipped in &self.faults.skipped {
            let _ = writeln!(s, "{skipped:<48} {:>5}  skipped", 0);
        }
        for failed in &self.faults.failed {
            let _ = writeln!(s, "FAILED: {failed}");
        }
        let _ = writeln!(s, "\n{:<18} {:>8} {:>8}  ended by", "watcher", "changes", "resumes");
        for (feed, resumes, ends, changes) in &self.watchers {
            let ends: Vec<String> = ends.iter().map(|(c, n)| format!("{c} {n}")).collect();
            let _ = writeln!(s, "{feed:<18} {changes:>8} {resumes:>8}  {}", ends.join(", "));
        }
        let _ = writeln!(s, "\n{:<68} {:>8}  held", "invariant", "checked");
        for i in &self.invariants {
            let held = if i.violations.is_empty() {
                "yes".to_owned()
            } else {
                format!("NO: {} violations", i.violations.len())
            };
            let _ = writeln!(s, "{:<68} {:>8}  {held}", i.name, i.checked);
            for v in i.violations.iter().take(10) {
                let _ = writeln!(s, "    {v}");
            }
        }
        let _ = writeln!(
            s,
            "\n{}",
            if self.held() { "Every invariant held." } else { "AN INVARIANT DID NOT HOLD (or a fault failed)." }
        );
        s
    }
}

async fn drill(opts: &Options, databases: &Databases) -> anyhow::Result<Report> {
    let mut cluster = Cluster::start(opts, databases).await?;
    let run = format!("{:x}", std::process::id());
    let end_key = format!("CHAOS-{run}-END");
    let watchers = Watchers::open(&cluster, &end_key).await?;
    let shared = Arc::new(setup(&cluster, run, opts.duration).await?);
    let started = Instant::now();
    while !watchers.all_started() {
        anyhow::ensure!(started.elapsed() < Duration::from_secs(30), "the watchers did not see the first changes");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "chaos: the record is set up and {} watchers follow the feeds; {:?} of load and faults begin",
        watchers.progress.len(),
        opts.duration
    );

    // The load, until the end of the drill.
    let until = Instant::now() + opts.duration;
    let mut callers = Vec::new();
    for id in 0..opts.callers.max(1) {
        let mut caller = Caller::new(&cluster, shared.clone(), id)?;
        callers.push(tokio::spawn(async move {
            while Instant::now() < until {
                caller.one().await;
            }
        }));
    }
    let faults = inject(&mut cluster, databases, opts.pg_restart.as_deref(), opts.fault_every, until).await;
    for caller in callers {
        caller.await?;
    }
    println!("chaos: the load is over; checking");

    // Every replica serving again, without a restart.
    let settle_by = Instant::now() + SETTLE_WITHIN;
    let mut not_serving = cluster.not_serving().await;
    while !not_serving.is_empty() && Instant::now() < settle_by {
        tokio::time::sleep(Duration::from_millis(500)).await;
        not_serving = cluster.not_serving().await;
    }
    let mut invariants = vec![Invariant {
        name: "every replica SERVING again after the faults",
        checked: SERVICES.len() * REPLICAS,
        violations: not_serving.iter().map(|r| format!("{r} is not SERVING")).collect(),
    }];

    let check = Checker::new(&cluster)?;
    let ledger = std::mem::take(&mut *shared.ledger.lock().map_err(|_| anyhow::anyhow!("ledger poisoned"))?);
    invariants.push(check.acknowledged(&ledger).await);
    invariants.push(check.quotas(&shared.quotas, &ledger).await);
    invariants.extend(check.effects(&ledger, Instant::now() + SETTLE_WITHIN).await);
    invariants.push(Invariant {
        name: "every write answered within its retry time",
        checked: ledger.measures.len() + ledger.disputes.len() + ledger.commitments.len(),
        violations: ledger
            .undecided
            .iter()
            .map(|(op, n)| format!("{n} {op} still unanswered after {RETRY_FOR:?}"))
            .chain(ledger.undecided_draws.iter().map(|(q, (n, _))| format!("{n} draws on {q} still unanswered")))
            .collect(),
    });
    invariants.push(Invariant {
        name: "no write refused that should not be; reads answer the record",
        checked: ledger.measures.len() + ledger.disputes.len() + ledger.commitments.len(),
        violations: ledger.refused.iter().chain(&ledger.wrong_reads).cloned().collect(),
    });

    // The end markers, then every watcher read to them and compared with a replay.
    check.end_markers(&end_key, &shared.sessions[0]).await?;
    let Watchers { measures, disputes, commitments, give_up, .. } = watchers;
    let timer = tokio::spawn(async move {
        tokio::time::sleep(SETTLE_WITHIN).await;
        let _ = give_up.send(true);
    });
    let mut followed = BTreeMap::new();
    for (feed, handles) in [(Measures::NAME, measures), (Disputes::NAME, disputes), (Commitments::NAME, commitments)] {
        let mut all = Vec::new();
        for h in handles {
            all.push(h.await?);
        }
        followed.insert(feed, all);
    }
    timer.abort();
    let watcher_rows = followed
        .iter()
        .flat_map(|(feed, all)| all.iter().map(|f| (*feed, f.resumes, f.ends.clone(), f.seen.len())))
        .collect();
    invariants.extend(check.feeds(&followed, &ledger, &end_key).await);

    let report = Report {
        duration: opts.duration,
        callers: opts.callers,
        tally: shared.tally.snapshot(),
        faults,
        watchers: watcher_rows,
        invariants,
        exhausted: ledger.exhausted,
        undecided: ledger.undecided.clone(),
    };
    let unclean = cluster.stop().await;
    if !unclean.is_empty() {
        println!("chaos: replicas that did not stop cleanly on SIGTERM: {unclean:?}");
    }
    Ok(report)
}

/// The record the load works on: quotas to draw on, sessions to make
/// commitments at, and the measures ResolveDuty and the brief read.
async fn setup(cluster: &Cluster, run: String, duration: Duration) -> anyhow::Result<Shared> {
    let mut t = TariffServiceClient::new(lazy(&cluster.url("tariff"))?);
    let mut d = DisputeServiceClient::new(lazy(&cluster.url("dispute"))?);
    let mut g = DialogueServiceClient::new(lazy(&cluster.url("dialogue"))?);
    let measure = |reference: &str, kind: tpb::MeasureKind, hs: &str, rate: &str| tpb::TariffMeasure {
        reference: reference.into(),
        title: format!("{reference} of the chaos drill"),
        imposing_economy: "CAN".into(),
        kind: kind.into(),
        hs_codes: vec![hs.into()],
        ad_valorem_percent: rate.into(),
        effective_from: "2024-10-01".into(),
        ..Default::default()
    };
    let create = |m: tpb::TariffMeasure| tpb::CreateMeasureRequest { measure: Some(m), request_id: String::new() };
    t.create_measure(create(measure(&format!("CHAOS-{run}-MFN"), tpb::MeasureKind::Mfn, "8703", "6.1"))).await?;
    let ev = tpb::TariffMeasure {
        target_economies: vec!["CHN".into()],
        ..measure(&format!("CHAOS-{run}-EV"), tpb::MeasureKind::Surtax, "8703.80", "100")
    };
    t.create_measure(create(ev)).await?;
    let mut quotas = Vec::new();
    for i in 0..QUOTAS {
        let quantity = if i % 2 == 0 { SMALL_QUOTA } else { SMALL_QUOTA.max(QUOTA_PER_SECOND * duration.as_secs()) };
        let trq = tpb::TariffMeasure {
            quota: Some(tpb::Quota {
                quantity: quantity.to_string(),
                unit: "t".into(),
                period_start: "2026-01-01".into(),
                period_end: "2026-12-31".into(),
                used: String::new(),
            }),
            ..measure(&format!("CHAOS-{run}-TRQ-{i}"), tpb::MeasureKind::TariffRateQuota, "0405", "7.5")
        };
        let m = t.create_measure(create(trq)).await?.into_inner().measure.unwrap_or_default();
        quotas.push(m.id);
    }
    d.create_dispute(dpb::CreateDisputeRequest {
        dispute: Some(dpb::Dispute {
            reference: format!("CHAOS-{run}-WTO"),
            title: "The dispute the brief reads".into(),
            complainant: "CHN".into(),
            respondent: "CAN".into(),
            forum: dpb::DisputeForum::Wto.into(),
            opened_on: "2024-12-06".into(),
            ..Default::default()
        }),
        request_id: String::new(),
    })
    .await?;
    let mut sessions = Vec::new();
    for i in 0..4 {
        let request = gpb::CreateSessionRequest {
            session: Some(drill_session(&format!("CHAOS-{run}-S-{i}"))),
            request_id: String::new(),
        };
        sessions.push(g.create_session(request).await?.into_inner().session.unwrap_or_default().id);
    }
    g.add_commitment(gpb::AddCommitmentRequest {
        session_id: sessions[0].clone(),
        commitment: Some(gpb::Commitment {
            description: format!("CHAOS-{run}-FIRST"),
            owner_economies: vec!["CAN".into()],
            effect: gpb::CommitmentEffect::None.into(),
            ..Default::default()
        }),
        request_id: String::new(),
    })
    .await?;
    let resolve = t.resolve_duty(drill_shipment()).await?.into_inner();
    let resolve_total = resolve.total_duty.map(|m| m.amount).unwrap_or_default();
    Ok(Shared { run, quotas, sessions, resolve_total, tally: Tally::default(), ledger: Mutex::new(Ledger::default()) })
}

/// The checks at the end, through the virtual IPs.
struct Checker {
    tariff: TariffServiceClient<Channel>,
    dispute: DisputeServiceClient<Channel>,
    dialogue: DialogueServiceClient<Channel>,
}

/// Calls `call` until it answers, for a check at the end: the stack is
/// serving again, but a call can still meet a connection of before.
async fn patiently<T, F, Fut>(mut call: F) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, Status>>,
{
    let mut tries = 0;
    loop {
        match call().await {
            Ok(r) => return Ok(r.into_inner()),
            Err(status) if undecided(&status) && tries < 20 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(status) => return Err(status),
        }
    }
}

impl Checker {
    fn new(cluster: &Cluster) -> anyhow::Result<Self> {
        Ok(Self {
            tariff: TariffServiceClient::new(lazy(&cluster.url("tariff"))?),
            dispute: DisputeServiceClient::new(lazy(&cluster.url("dispute"))?),
            dialogue: DialogueServiceClient::new(lazy(&cluster.url("dialogue"))?),
        })
    }

    async fn measure(&self, id: &str) -> Result<tpb::TariffMeasure, Status> {
        let r = patiently(|| {
            let mut c = self.tariff.clone();
            let id = id.to_owned();
            async move { c.get_measure(tpb::GetMeasureRequest { id }).await }
        })
        .await?;
        Ok(r.measure.unwrap_or_default())
    }

    async fn events(&self, dispute_id: &str) -> Result<Vec<dpb::DisputeEvent>, Status> {
        let (mut all, mut page_token) = (Vec::new(), String::new());
        loop {
            let r = patiently(|| {
                let mut c = self.dispute.clone();
                let request = dpb::ListDisputeEventsRequest {
                    dispute_id: dispute_id.to_owned(),
                    page_size: 100,
                    page_token: page_token.clone(),
                };
                async move { c.list_dispute_events(request).await }
            })
            .await?;
            all.extend(r.events);
            if r.next_page_token.is_empty() {
                return Ok(all);
            }
            page_token = r.next_page_token;
        }
    }

    /// The ids of `ids` that `batch` (a BatchGet of at most 100) says are
    /// missing, or the error it answered a chunk with.
    async fn missing<F, Fut>(ids: &[String], what: &str, mut batch: F) -> Vec<String>
    where
        F: FnMut(Vec<String>) -> Fut,
        Fut: Future<Output = Result<(), Status>>,
    {
        let mut out = Vec::new();
        for chunk in ids.chunks(100) {
            match batch(chunk.to_vec()).await {
                Ok(()) => {}
                Err(status) if status.code() == Code::NotFound => {
                    let missing = status
                        .get_details_error_info()
                        .and_then(|info| info.metadata.get("missing_ids").cloned())
                        .unwrap_or_default();
                    if missing.is_empty() {
                        out.push(format!("{what}s {}…: NOT_FOUND without the missing ids", chunk[0]));
                    }
                    out.extend(
                        missing.split(',').filter(|id| !id.is_empty()).map(|id| format!("{what} {id} is missing")),
                    );
                }
                Err(status) => out.push(format!("{what}s {}…: {:?} {}", chunk[0], status.code(), status.message())),
            }
        }
        out
    }

    /// Every commitment the dialogue service lists, by id.
    async fn all_commitments(&self) -> Result<HashMap<String, gpb::Commitment>, Status> {
        let (mut all, mut page_token) = (HashMap::new(), String::new());
        loop {
            let r = patiently(|| {
                let mut c = self.dialogue.clone();
                let request = gpb::ListCommitmentsRequest {
                    page_size: 100,
                    page_token: page_token.clone(),
                    ..Default::default()
                };
                async move { c.list_commitments(request).await }
            })
            .await?;
            all.extend(r.commitments.into_iter().map(|c| (c.id.clone(), c)));
            if r.next_page_token.is_empty() {
                return Ok(all);
            }
            page_token = r.next_page_token;
        }
    }

    /// Every session the dialogue service lists, by id.
    async fn all_sessions(&self) -> Result<BTreeSet<String>, Status> {
        let (mut all, mut page_token) = (BTreeSet::new(), String::new());
        loop {
            let r = patiently(|| {
                let mut c = self.dialogue.clone();
                let request =
                    gpb::ListSessionsRequest { page_size: 100, page_token: page_token.clone(), ..Default::default() };
                async move { c.list_sessions(request).await }
            })
            .await?;
            all.extend(r.sessions.into_iter().map(|s| s.id));
            if r.next_page_token.is_empty() {
                return Ok(all);
            }
            page_token = r.next_page_token;
        }
    }

    async fn acknowledged(&self, ledger: &Ledger) -> Invariant {
        let mut violations = Self::missing(&ledger.measures, "measure", |ids| {
            let tariff = self.tariff.clone();
            async move {
                let batch = || {
                    let (mut c, ids) = (tariff.clone(), ids.clone());
                    async move { c.batch_get_measures(tpb::BatchGetMeasuresRequest { ids }).await }
                };
                patiently(batch).await.map(drop)
            }
        })
        .await;
        violations.extend(
            Self::missing(&ledger.disputes, "dispute", |ids| {
                let dispute = self.dispute.clone();
                async move {
                    let batch = || {
                        let (mut c, ids) = (dispute.clone(), ids.clone());
                        async move { c.batch_get_disputes(dpb::BatchGetDisputesRequest { ids }).await }
                    };
                    patiently(batch).await.map(drop)
                }
            })
            .await,
        );
        match self.all_commitments().await {
            Ok(listed) => {
                for id in &ledger.commitments {
                    if !listed.contains_key(id) {
                        violations.push(format!("commitment {id} is missing"));
                    }
                }
                // An acknowledged fulfilment is there too.
                for (id, _) in ledger.suspensions.iter().chain(&ledger.settlements) {
                    match listed.get(id) {
                        Some(c) if c.status() == gpb::CommitmentStatus::Fulfilled => {}
                        Some(c) => {
                            violations
                                .push(format!("commitment {id} is {:?}, its fulfilment acknowledged", c.status()));
                        }
                        None => violations.push(format!("commitment {id} is missing")),
                    }
                }
            }
            Err(status) => violations.push(format!("commitments: {:?} {}", status.code(), status.message())),
        }
        match self.all_sessions().await {
            Ok(listed) => {
                violations.extend(
                    ledger
                        .sessions
                        .iter()
                        .filter(|id| !listed.contains(*id))
                        .map(|id| format!("session {id} is missing")),
                );
            }
            Err(status) => violations.push(format!("sessions: {:?} {}", status.code(), status.message())),
        }
        let mut by_dispute: HashMap<&str, Vec<&str>> = HashMap::new();
        for (dispute, event) in &ledger.events {
            by_dispute.entry(dispute).or_default().push(event);
        }
        for (dispute, wanted) in &by_dispute {
            match self.events(dispute).await {
                Ok(events) => {
                    let have: BTreeSet<&str> = events.iter().map(|e| e.id.as_str()).collect();
                    for event in wanted {
                        if !have.contains(event) {
                            violations.push(format!("event {event} of dispute {dispute} is missing"));
                        }
                    }
                }
                Err(status) => violations.push(format!("events of {dispute}: {:?}", status.code())),
            }
        }
        Invariant {
            name: "every acknowledged write is there",
            checked: ledger.measures.len()
                + ledger.suspensions.len()
                + ledger.settlements.len()
                + ledger.disputes.len()
                + ledger.commitments.len()
                + ledger.sessions.len()
                + ledger.events.len(),
            violations,
        }
    }

    async fn quotas(&self, quotas: &[String], ledger: &Ledger) -> Invariant {
        let mut violations = Vec::new();
        for id in quotas {
            let measure = match self.measure(id).await {
                Ok(m) => m,
                Err(status) => {
                    violations.push(format!("quota {id}: {:?}", status.code()));
                    continue;
                }
            };
            let quota = measure.quota.unwrap_or_default();
            let (Ok(used), Ok(quantity)) = (quota.used.parse::<Decimal>(), quota.quantity.parse::<Decimal>()) else {
                violations.push(format!("quota {id}: used {:?} of {:?} do not parse", quota.used, quota.quantity));
                continue;
            };
            let acked = Decimal::from(ledger.draws.get(id).map_or(0, |d| d.1));
            let unknown = Decimal::from(ledger.undecided_draws.get(id).map_or(0, |d| d.1));
            if used > quantity {
                violations.push(format!("quota {id}: used {used} past its quantity {quantity}"));
            }
            if used < acked || used > acked + unknown {
                violations.push(format!(
                    "quota {id}: used {used}, but the acknowledged draws add up to {acked} (and {unknown} unknown)"
                ));
            }
        }
        Invariant {
            name: "no quota past its quantity; used = the acknowledged draws",
            checked: ledger.draws.values().map(|d| usize::try_from(d.0).unwrap_or(usize::MAX)).sum(),
            violations,
        }
    }

    /// Every fulfilled commitment's effect applied (waiting for the relay
    /// until `by`), each once.
    async fn effects(&self, ledger: &Ledger, by: Instant) -> Vec<Invariant> {
        let commitments: Vec<&str> =
            ledger.suspensions.iter().chain(&ledger.settlements).map(|(c, _)| c.as_str()).collect();
        let mut pending: BTreeSet<&str> = commitments.iter().copied().collect();
        loop {
            if let Ok(listed) = self.all_commitments().await {
                pending.retain(|id| listed.get(*id).is_none_or(|c| c.effect_state() != gpb::EffectState::Applied));
            }
            if pending.is_empty() || Instant::now() > by {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let applied = Invariant {
            name: "every fulfilled commitment's effect applied",
            checked: commitments.len(),
            violations: pending.iter().map(|id| format!("commitment {id}: effect not applied")).collect(),
        };
        let mut violations = Vec::new();
        for (commitment, measure) in &ledger.suspensions {
            let history = patiently(|| {
                let mut c = self.tariff.clone();
                let request = tpb::ListMeasureHistoryRequest {
                    measure_id: measure.clone(),
                    page_size: 100,
                    ..Default::default()
                };
                async move { c.list_measure_history(request).await }
            })
            .await;
            match history {
                Ok(h) => {
                    let suspended = h.changes.iter().filter(|c| c.status() == tpb::MeasureStatus::Suspended).count();
                    if suspended != 1 {
                        violations
                            .push(format!("measure {measure} (commitment {commitment}) suspended {suspended} times"));
                    }
                }
                Err(status) => violations.push(format!("history of {measure}: {:?}", status.code())),
            }
        }
        for (commitment, dispute) in &ledger.settlements {
            match self.events(dispute).await {
                Ok(events) => {
                    let settled = events.iter().filter(|e| e.to_stage() == dpb::DisputeStage::Settled).count();
                    if settled != 1 {
                        violations.push(format!("dispute {dispute} (commitment {commitment}) settled {settled} times"));
                    }
                }
                Err(status) => violations.push(format!("events of {dispute}: {:?}", status.code())),
            }
        }
        let once = Invariant {
            name: "every effect applied exactly once (measure history, dispute events)",
            checked: commitments.len(),
            violations,
        };
        vec![applied, once]
    }

    /// A change in each feed that tells its watchers they have read it all.
    async fn end_markers(&self, end_key: &str, session_id: &str) -> anyhow::Result<()> {
        let measure = tpb::TariffMeasure {
            reference: end_key.into(),
            title: "The end of the chaos drill".into(),
            imposing_economy: "CAN".into(),
            kind: tpb::MeasureKind::Surtax.into(),
            hs_codes: vec!["9999".into()],
            ad_valorem_percent: "1".into(),
            effective_from: "2030-01-01".into(),
            ..Default::default()
        };
        let request = tpb::CreateMeasureRequest { measure: Some(measure), request_id: request_id() };
        patiently(|| {
            let (mut c, r) = (self.tariff.clone(), request.clone());
            async move { c.create_measure(r).await }
        })
        .await?;
        let dispute = dpb::Dispute {
            reference: end_key.into(),
            title: "The end of the chaos drill".into(),
            complainant: "NZL".into(),
            respondent: "CAN".into(),
            forum: dpb::DisputeForum::Wto.into(),
            opened_on: "2026-01-01".into(),
            ..Default::default()
        };
        let request = dpb::CreateDisputeRequest { dispute: Some(dispute), request_id: request_id() };
        patiently(|| {
            let (mut c, r) = (self.dispute.clone(), request.clone());
            async move { c.create_dispute(r).await }
        })
        .await?;
        let commitment = gpb::Commitment {
            description: end_key.into(),
            owner_economies: vec!["CAN".into()],
            effect: gpb::CommitmentEffect::None.into(),
            ..Default::default()
        };
        let request = gpb::AddCommitmentRequest {
            session_id: session_id.to_owned(),
            commitment: Some(commitment),
            request_id: request_id(),
        };
        patiently(|| {
            let (mut c, r) = (self.dialogue.clone(), request.clone());
            async move { c.add_commitment(r).await }
        })
        .await?;
        Ok(())
    }

    async fn feeds(
        &self,
        followed: &BTreeMap<&'static str, Vec<Followed>>,
        ledger: &Ledger,
        end_key: &str,
    ) -> Vec<Invariant> {
        let mut order = Invariant {
            name: "each watcher saw its feed once each and in order, across resumes",
            checked: 0,
            violations: vec![],
        };
        let mut complete = Invariant {
            name: "every acknowledged write in its feed, once; times in order",
            checked: 0,
            violations: vec![],
        };
        for (feed, watchers) in followed {
            let Some(first) = watchers.first() else { continue };
            for (i, w) in watchers.iter().enumerate() {
                if !w.reached_end {
                    order.violations.push(format!("{feed} watcher {i} did not reach the end marker"));
                }
            }
            let Some(origin) = first.seen.first() else {
                order.violations.push(format!("{feed}: the first watcher saw nothing"));
                continue;
            };
            // A replay from the first watcher's first position, with no fault
            // about: what every watcher must have read.
            let (give_up, stop) = tokio::sync::watch::channel(false);
            let timer = tokio::spawn(async move {
                tokio::time::sleep(SETTLE_WITHIN).await;
                let _ = give_up.send(true);
            });
            let progress = Arc::new(AtomicUsize::new(0));
            let key = end_key.to_owned();
            let after = origin.token.clone();
            let replay = match *feed {
                Measures::NAME => follow(Measures(self.tariff.clone()), after, key, stop, None, progress).await,
                Disputes::NAME => follow(Disputes(self.dispute.clone()), after, key, stop, None, progress).await,
                _ => follow(Commitments(self.dialogue.clone()), after, key, stop, None, progress).await,
            };
            timer.abort();
            let mut reference = vec![origin.clone()];
            reference.extend(replay.seen);
            order.checked += reference.len() * watchers.len();
            let tokens: BTreeSet<&str> = reference.iter().map(|s| s.token.as_str()).collect();
            if tokens.len() != reference.len() {
                order.violations.push(format!("{feed}: the replay holds a position twice"));
            }
            for (i, w) in watchers.iter().enumerate() {
                if let Some(at) = first_difference(&w.seen, &reference) {
                    order.violations.push(format!(
                        "{feed} watcher {i}: {} changes against {} in the replay; first difference at {at}: {:?} against {:?}",
                        w.seen.len(),
                        reference.len(),
                        w.seen.get(at).map(|s| (&s.key, s.kind)),
                        reference.get(at).map(|s| (&s.key, s.kind)),
                    ));
                }
            }
            // Every acknowledged write there once; each resource's changes in time order.
            let created_kind = 1; // CREATED in each of the three feeds
            let mut created: HashMap<&str, usize> = HashMap::new();
            for s in reference.iter().filter(|s| s.kind == created_kind) {
                *created.entry(s.id.as_str()).or_default() += 1;
            }
            complete.violations.extend(out_of_time_order(&reference).into_iter().map(|v| format!("{feed}: {v}")));
            let wanted: &[String] = match *feed {
                Measures::NAME => &ledger.measures,
                Disputes::NAME => &ledger.disputes,
                _ => &ledger.commitments,
            };
            complete.checked += wanted.len();
            for id in wanted {
                let n = created.get(id.as_str()).copied().unwrap_or(0);
                if n != 1 {
                    complete.violations.push(format!("{feed}: {id} created {n} times in the feed"));
                }
            }
            if *feed == Measures::NAME {
                // Each acknowledged quota draw is one QUOTA_USED change.
                let mut used: HashMap<&str, u64> = HashMap::new();
                for s in reference.iter().filter(|s| s.kind == tpb::MeasureChangeKind::QuotaUsed as i32) {
                    *used.entry(s.id.as_str()).or_default() += 1;
                }
                for (quota, (n, _)) in &ledger.draws {
                    let unknown = ledger.undecided_draws.get(quota).map_or(0, |d| d.0);
                    let seen = used.get(quota.as_str()).copied().unwrap_or(0);
                    complete.checked += 1;
                    if seen < *n || seen > n + unknown {
                        complete.violations.push(format!(
                            "{feed}: quota {quota} used {seen} times in the feed, {n} draws acknowledged"
                        ));
                    }
                }
            }
        }
        vec![order, complete]
    }
}

/// Where a watcher's changes first differ from the replay's, if they do:
/// a change it missed, read twice or read out of order.
fn first_difference(seen: &[Seen], reference: &[Seen]) -> Option<usize> {
    (0..seen.len().max(reference.len())).find(|&k| seen.get(k) != reference.get(k))
}

/// The resources whose changes go back in time in feed order.
fn out_of_time_order(changes: &[Seen]) -> Vec<String> {
    let mut last_at: HashMap<&str, i64> = HashMap::new();
    let mut out = Vec::new();
    for s in changes {
        let last = last_at.entry(s.id.as_str()).or_insert(s.at);
        if s.at < *last {
            out.push(format!("{} changed at {} µs after a change at {} µs", s.id, s.at, last));
        }
        *last = s.at;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_codes_the_api_names_as_unknown_outcomes_are_retried() {
        for code in [Code::Unavailable, Code::DeadlineExceeded, Code::Aborted, Code::Internal, Code::Unknown] {
            assert!(undecided(&Status::new(code, "the connection went")), "{code:?}");
        }
        for code in [Code::InvalidArgument, Code::FailedPrecondition, Code::NotFound, Code::AlreadyExists, Code::Ok] {
            assert!(!undecided(&Status::new(code, "")), "{code:?}");
        }
        // An INTERNAL the service itself answered wrote nothing: not retried.
        let info =
            tonic_types::ErrorDetails::with_error_info("INTERNAL", "tradewatch", std::collections::HashMap::new());
        let answered = Status::with_error_details(Code::Internal, "a bug", info);
        assert!(!undecided(&answered));
    }

    fn change(token: &str, id: &str, at: i64) -> Seen {
        Seen { token: token.into(), kind: 2, id: id.into(), key: String::new(), etag: format!("{id}{at}"), at }
    }

    #[test]
    fn a_watcher_that_missed_repeated_or_reordered_a_change_differs_from_the_replay() {
        let replay = [change("1", "a", 1), change("2", "b", 2), change("3", "a", 3)];
        assert_eq!(first_difference(&replay, &replay), None);
        let missed = [replay[0].clone(), replay[2].clone()];
        assert_eq!(first_difference(&missed, &replay), Some(1));
        let repeated = [replay[0].clone(), replay[1].clone(), replay[1].clone(), replay[2].clone()];
        assert_eq!(first_difference(&repeated, &replay), Some(2));
        let reordered = [replay[1].clone(), replay[0].clone(), replay[2].clone()];
        assert_eq!(first_difference(&reordered, &replay), Some(0));
        let short = &replay[..2];
        assert_eq!(first_difference(short, &replay), Some(2));
    }

    #[test]
    fn a_resource_whose_changes_go_back_in_time_is_named() {
        let ordered = [change("1", "a", 1), change("2", "b", 0), change("3", "a", 1), change("4", "a", 5)];
        assert!(out_of_time_order(&ordered).is_empty());
        let back = [change("1", "a", 5), change("2", "b", 9), change("3", "a", 4)];
        let found = out_of_time_order(&back);
        assert_eq!(found.len(), 1);
        assert!(found[0].starts_with("a changed at 4"), "{found:?}");
    }

    #[test]
    fn the_generator_stays_below_its_bound_and_spreads() {
        let mut rng = Rng(1);
        let picks: BTreeSet<u64> = (0..1_000).map(|_| rng.below(20)).collect();
        assert_eq!(picks, (0..20).collect());
    }
}
