//! Faults on the wire, for the fault tests: a TCP proxy in front of a
//! service that forwards, or accepts connections and never answers (a hung
//! peer), as the test says; and a listener that never answers at all. Also a
//! virtual IP as kube-proxy makes one: each new connection to one of several
//! replicas, in turn.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

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

/// A Service's virtual IP in front of several replicas: every new
/// connection goes to the next replica in turn, and stays with it, as
/// kube-proxy balances connections (not calls).
pub struct VirtualIp {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl VirtualIp {
    pub async fn start(replicas: Vec<SocketAddr>) -> anyhow::Result<Self> {
        anyhow::ensure!(!replicas.is_empty(), "a virtual IP needs replicas");
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            for turn in 0.. {
                let Ok((mut inbound, _)) = listener.accept().await else { break };
                let target = replicas[turn % replicas.len()];
                connections.spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else { return };
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
            }
        });
        Ok(Self { addr, task })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for VirtualIp {
    fn drop(&mut self) {
        // The JoinSet inside goes with the task, and aborts every connection.
        self.task.abort();
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
                .env("TRADEWATCH__LOG__FILTER", "error")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true);
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
        let service = match self.name {
            "tariff" => "tradewatch.tariff.v1.TariffService",
            "dispute" => "tradewatch.dispute.v1.DisputeService",
            "relations" => "tradewatch.relations.v1.RelationsService",
            _ => "tradewatch.dialogue.v1.DialogueService",
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(Exited(status));
            }
            if let Ok(channel) =
                tonic::transport::Endpoint::from_shared(self.url()).map_err(|_| TimedOut)?.connect().await
            {
                let health = tonic_health::pb::health_client::HealthClient::new(channel)
                    .check(tonic_health::pb::HealthCheckRequest { service: service.into() })
                    .await;
                if health.is_ok_and(|h| h.into_inner().status == 1) {
                    return Ok(());
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        Err(TimedOut)
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
