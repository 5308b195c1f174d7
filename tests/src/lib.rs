//! The demo dataset and its loader, the `make run` launcher, and a whole
//! Tradewatch stack for end-to-end tests: each service a real server
//! on its own port with its own fresh database, wired to its peers by URL
//! exactly as in production, each of which can be stopped and started again.

pub mod demo;
pub mod launcher;

use std::net::SocketAddr;

use tonic::transport::Channel;
use tradewatch_common::{
    config::Settings,
    proto::{
        dispute::dispute_service_client::DisputeServiceClient, tariff::tariff_service_client::TariffServiceClient,
    },
    testing::{self, RunningServer, TestDatabase},
};

/// One service of the stack: its database, its port, and its server while it runs.
struct Slot {
    db: TestDatabase,
    addr: Option<SocketAddr>,
    server: Option<RunningServer>,
}

impl Slot {
    async fn new() -> anyhow::Result<Self> {
        Ok(Self { db: TestDatabase::new().await?, addr: None, server: None })
    }

    fn url(&self) -> String {
        self.addr.map(|a| format!("http://{a}")).unwrap_or_else(|| "http://127.0.0.1:1".into())
    }

    /// Settings on this slot's database and port (a free one the first time).
    fn settings(&self, service: tradewatch_common::config::ServiceInfo) -> Settings {
        let mut s = self.db.settings(service);
        s.server.port = self.addr.map_or_else(testing::restartable_port, |a| a.port());
        s
    }

    async fn stop(&mut self) -> anyhow::Result<()> {
        match self.server.take() {
            Some(server) => server.stop().await,
            None => Ok(()),
        }
    }
}

pub struct Stack {
    tariff: Slot,
    dispute: Slot,
    dialogue: Slot,
}

impl Stack {
    /// Starts the three services, each wired to its peers.
    pub async fn start() -> anyhow::Result<Self> {
        let mut stack = Self { tariff: Slot::new().await?, dispute: Slot::new().await?, dialogue: Slot::new().await? };
        stack.start_tariff().await?;
        stack.start_dispute().await?;
        stack.start_dialogue().await?;
        Ok(stack)
    }

    pub async fn start_dialogue(&mut self) -> anyhow::Result<()> {
        let mut settings = self.dialogue.settings(dialogue_service::SERVICE);
        settings.peers.tariff_url = self.tariff.url();
        settings.peers.dispute_url = self.dispute.url();
        let app =
            testing::retry_while_port_busy(|| dialogue_service::app::Application::build(settings.clone())).await?;
        let addr = app.local_addr();
        self.dialogue.addr = Some(addr);
        self.dialogue.server = Some(RunningServer::start(addr, |stop| app.run_until_stopped(stop)));
        Ok(())
    }

    /// Where each service listens, as URLs.
    pub fn endpoints(&self) -> demo::Endpoints {
        demo::Endpoints { tariff: self.tariff.url(), dispute: self.dispute.url(), dialogue: self.dialogue.url() }
    }

    pub async fn start_tariff(&mut self) -> anyhow::Result<()> {
        let settings = self.tariff.settings(tariff_service::SERVICE);
        let app = testing::retry_while_port_busy(|| tariff_service::app::Application::build(settings.clone())).await?;
        let addr = app.local_addr();
        self.tariff.addr = Some(addr);
        self.tariff.server = Some(RunningServer::start(addr, |stop| app.run_until_stopped(stop)));
        Ok(())
    }

    pub async fn start_dispute(&mut self) -> anyhow::Result<()> {
        let mut settings = self.dispute.settings(dispute_service::SERVICE);
        settings.peers.tariff_url = self.tariff.url();
        let app = testing::retry_while_port_busy(|| dispute_service::app::Application::build(settings.clone())).await?;
        let addr = app.local_addr();
        self.dispute.addr = Some(addr);
        self.dispute.server = Some(RunningServer::start(addr, |stop| app.run_until_stopped(stop)));
        Ok(())
    }

    pub async fn stop_tariff(&mut self) -> anyhow::Result<()> {
        self.tariff.stop().await
    }

    pub async fn tariff(&self) -> anyhow::Result<TariffServiceClient<Channel>> {
        Ok(TariffServiceClient::new(channel(self.tariff.addr).await?))
    }

    pub async fn dispute(&self) -> anyhow::Result<DisputeServiceClient<Channel>> {
        Ok(DisputeServiceClient::new(channel(self.dispute.addr).await?))
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.dialogue.stop().await?;
        self.dispute.stop().await?;
        self.tariff.stop().await
    }
}

async fn channel(addr: Option<SocketAddr>) -> anyhow::Result<Channel> {
    testing::channel(addr.ok_or_else(|| anyhow::anyhow!("service never started"))?).await
}
