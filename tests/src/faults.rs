//! Faults on the wire, for the fault tests: a TCP proxy in front of a
//! service that forwards, or accepts connections and never answers (a hung
//! peer), as the test says. Also a virtual IP as kube-proxy makes one: each
//! new connection to one of several replicas, in turn, with the faults of the
//! chaos drill (a replica down, moved or slow).

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use std::time::Duration;

use tokio::{net::TcpListener, task::JoinHandle};

/// A proxy on a loopback port in front of `target`.
pub struct Proxy {
    pub addr: SocketAddr,
    hang: Arc<AtomicBool>,
    forwarding: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    task: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let hang = Arc::new(AtomicBool::new(false));
        let forwarding = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (flag, live) = (hang.clone(), forwarding.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let flag = flag.clone();
                let connection = tokio::spawn(async move {
                    if flag.load(Ordering::SeqCst) {
                        // Accepted, never answered: held until the caller gives up.
                        let _held = inbound;
                        std::future::pending::<()>().await;
                        return;
                    }
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else { return };
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
                if let Ok(mut live) = live.lock() {
                    live.push(connection.abort_handle());
                }
            }
        });
        Ok(Self { addr, hang, forwarding, task })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// From now on connections are accepted and never answered (`true`), or
    /// forwarded again (`false`, as a hung peer restarted). Either way the
    /// connections open now are cut, so the callers' next ones see the change.
    pub fn hang(&self, hang: bool) {
        self.hang.store(hang, Ordering::SeqCst);
        if let Ok(mut live) = self.forwarding.lock() {
            for connection in live.drain(..) {
                connection.abort();
            }
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        if let Ok(mut live) = self.forwarding.lock() {
            for connection in live.drain(..) {
                connection.abort();
            }
        }
    }
}

/// A Service's virtual IP in front of several replicas, as kube-proxy makes
/// one: every new connection goes to the next replica in turn and stays
/// with it (connections are balanced, not calls). A replica that refuses
/// the connection is passed over, as an endpoint that failed its readiness
/// probe is. For the faults of the chaos drill, each replica's slot can be
/// pointed elsewhere (a replica restarted on another port), emptied (a
/// replica that is down) or slowed (every chunk either way held back).
pub struct Balancer {
    pub addr: SocketAddr,
    slots: Arc<Vec<Slot>>,
    task: JoinHandle<()>,
}

/// One replica behind a [`Balancer`].
#[derive(Default)]
struct Slot {
    target: std::sync::Mutex<Option<SocketAddr>>,
    delay_ms: Arc<std::sync::atomic::AtomicU64>,
    /// Wakes this replica's connections to end them.
    cut: Arc<tokio::sync::Notify>,
}

impl Balancer {
    pub async fn start(replicas: Vec<SocketAddr>) -> anyhow::Result<Self> {
        anyhow::ensure!(!replicas.is_empty(), "a virtual IP needs replicas");
        Self::with_slots(replicas.into_iter().map(Some).collect()).await
    }

    /// A virtual IP with `slots` replicas, each down (`None`) until
    /// [`Balancer::set_target`] names it.
    pub async fn with_slots(slots: Vec<Option<SocketAddr>>) -> anyhow::Result<Self> {
        anyhow::ensure!(!slots.is_empty(), "a virtual IP needs replicas");
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let slots: Arc<Vec<Slot>> = Arc::new(
            slots.into_iter().map(|target| Slot { target: std::sync::Mutex::new(target), ..Slot::default() }).collect(),
        );
        let shared = slots.clone();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            for turn in 0.. {
                let Ok((inbound, _)) = listener.accept().await else { break };
                // Reap the connections that ended, so the set stays small.
                while connections.try_join_next().is_some() {}
                let slots = shared.clone();
                connections.spawn(async move {
                    for k in 0..slots.len() {
                        let slot = &slots[(turn + k) % slots.len()];
                        let Some(target) = slot.target.lock().ok().and_then(|t| *t) else { continue };
                        let connect = tokio::net::TcpStream::connect(target);
                        let Ok(Ok(outbound)) = tokio::time::timeout(Duration::from_secs(1), connect).await else {
                            continue;
                        };
                        let notify = slot.cut.clone();
                        let cut = notify.notified();
                        tokio::select! {
                            () = pump(inbound, outbound, slot.delay_ms.clone()) => {}
                            () = cut => {}
                        }
                        return;
                    }
                    // No replica takes it: the connection is refused (closed).
                });
            }
        });
        Ok(Self { addr, slots, task })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Points replica `i` at `target` (`None`: down), and cuts the
    /// connections open to it, so its callers reconnect.
    pub fn set_target(&self, i: usize, target: Option<SocketAddr>) {
        if let Some(slot) = self.slots.get(i) {
            if let Ok(mut t) = slot.target.lock() {
                *t = target;
            }
            slot.cut.notify_waiters();
        }
    }

    /// Holds every chunk to and from replica `i` back by `delay`, on the
    /// connections open now and the new ones; `Duration::ZERO` ends it.
    pub fn slow(&self, i: usize, delay: Duration) {
        if let Some(slot) = self.slots.get(i) {
            slot.delay_ms.store(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX), Ordering::SeqCst);
        }
    }

    pub fn replicas(&self) -> usize {
        self.slots.len()
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        // The JoinSet inside goes with the task, and aborts every connection.
        self.task.abort();
    }
}

/// Copies both ways until either side closes, each chunk held back by the
/// slot's delay at the time.
async fn pump(
    inbound: tokio::net::TcpStream,
    outbound: tokio::net::TcpStream,
    delay_ms: Arc<std::sync::atomic::AtomicU64>,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    async fn copy(
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        delay_ms: Arc<std::sync::atomic::AtomicU64>,
    ) {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let delay = delay_ms.load(Ordering::SeqCst);
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            if to.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    }
    let _ = (inbound.set_nodelay(true), outbound.set_nodelay(true));
    let (in_read, in_write) = inbound.into_split();
    let (out_read, out_write) = outbound.into_split();
    // When either side goes, both do: a replica killed ends its callers' connections.
    tokio::select! {
        () = copy(in_read, out_write, delay_ms.clone()) => {}
        () = copy(out_read, in_write, delay_ms) => {}
    }
}

/// Why a service process is not serving.
enum NotServing {
    Exited(std::process::ExitStatus),
    TimedOut,
}
use NotServing::{Exited, TimedOut};

/// A service binary running as its own process, for tests that kill it.
pub struct ServiceProcess {
    pub name: &'static str,
    pub port: u16,
    pub metrics_port: u16,
    /// How long it took from start to SERVING.
    pub started_in: std::time::Duration,
    child: tokio::process::Child,
}

impl ServiceProcess {
    /// Starts `<name>-service` from `bin_dir` on free loopback ports with
    /// `env` (its database URL, peers…), and waits until it serves. A free
    /// port can be taken by another test between its choice and the bind:
    /// a process that exits before serving is started again on new ports.
    pub async fn start(bin_dir: &std::path::Path, name: &'static str, env: &[(&str, String)]) -> anyhow::Result<Self> {
        Self::start_logged(bin_dir, name, env, None).await
    }

    /// [`ServiceProcess::start`], with what the process prints appended to
    /// `log` (at the `warn` level unless `env` says otherwise).
    pub async fn start_logged(
        bin_dir: &std::path::Path,
        name: &'static str,
        env: &[(&str, String)],
        log: Option<&std::path::Path>,
    ) -> anyhow::Result<Self> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (port, metrics_port) =
                (tradewatch_common::testing::free_port(), tradewatch_common::testing::free_port());
            let mut command = tokio::process::Command::new(bin_dir.join(format!("{name}-service")));
            command
                .arg("serve")
                .env("TRADEWATCH__SERVER__PORT", port.to_string())
                .env("TRADEWATCH__TELEMETRY__METRICS_PORT", metrics_port.to_string())
                .kill_on_drop(true);
            if let Some(log) = log {
                let file = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
                command.env("TRADEWATCH__LOG__FILTER", "warn").stdout(file.try_clone()?).stderr(file);
            } else {
                command
                    .env("TRADEWATCH__LOG__FILTER", "error")
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null());
            }
            for (key, value) in env {
                command.env(key, value);
            }
            let started = std::time::Instant::now();
            let child = command.spawn()?;
            let mut me = Self { name, port, metrics_port, started_in: std::time::Duration::ZERO, child };
            match me.wait_serving().await {
                Ok(()) => {
                    me.started_in = started.elapsed();
                    return Ok(me);
                }
                Err(Exited(status)) if attempt < 3 => {
                    tracing::warn!(name, %status, "the service exited before serving; again on other ports");
                }
                Err(Exited(status)) => anyhow::bail!("{name}-service exited before serving: {status}"),
                Err(TimedOut) => anyhow::bail!("{name}-service did not start serving within 30 s"),
            }
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    async fn wait_serving(&mut self) -> Result<(), NotServing> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(Exited(status));
            }
            if self.serving().await {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        Err(TimedOut)
    }

    /// Whether its gRPC health says SERVING now (its readiness).
    pub async fn serving(&self) -> bool {
        let service = match self.name {
            "tariff" => "tradewatch.tariff.v1.TariffService",
            "dispute" => "tradewatch.dispute.v1.DisputeService",
            "relations" => "tradewatch.relations.v1.RelationsService",
            _ => "tradewatch.dialogue.v1.DialogueService",
        };
        let Ok(endpoint) = tonic::transport::Endpoint::from_shared(self.url()) else { return false };
        let Ok(channel) = endpoint.timeout(std::time::Duration::from_secs(2)).connect().await else { return false };
        let health = tonic_health::pb::health_client::HealthClient::new(channel)
            .check(tonic_health::pb::HealthCheckRequest { service: service.into() })
            .await;
        health.is_ok_and(|h| h.into_inner().status == 1)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// SIGTERM, then its exit within `grace` (killed after it); whether it
    /// exited 0 in time.
    pub async fn stop(mut self, grace: std::time::Duration) -> bool {
        if let Some(pid) = self.child.id() {
            let _ = tokio::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().await;
        }
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(Ok(status)) => status.success(),
            _ => {
                let _ = self.child.start_kill();
                let _ = self.child.wait().await;
                false
            }
        }
    }

    /// Its resident memory (VmRSS), in KiB; 0 where /proc tells none.
    pub fn rss_kib(&self) -> u64 {
        self.child
            .id()
            .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
            .unwrap_or(0)
    }

    /// `kill -9`: no drain, no cleanup, whatever it was doing.
    pub async fn kill9(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
