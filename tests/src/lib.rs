//! The demo dataset and its loader, the `make run` launcher, and a whole
//! Tradewatch stack for end-to-end tests: each service a real server
//! on its own port with its own fresh database, wired to its peers by URL
//! exactly as in production, each of which can be stopped and started again.

pub mod demo;
pub mod launcher;

use std::net::SocketAddr;

use tonic::transport::Channel;
use tradewatch_common::{
    proto::{
        dispute::dispute_service_client::DisputeServiceClient, tariff::tariff_service_client::TariffServiceClient,
    },
    testing::{self, ServiceSlot as Slot},
};

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
        self.dialogue.start(settings, dialogue_service::app::Application::build).await
    }

    /// Where each service listens, as URLs.
    pub fn endpoints(&self) -> demo::Endpoints {
        demo::Endpoints { tariff: self.tariff.url(), dispute: self.dispute.url(), dialogue: self.dialogue.url() }
    }

    pub async fn start_tariff(&mut self) -> anyhow::Result<()> {
        let settings = self.tariff.settings(tariff_service::SERVICE);
        self.tariff.start(settings, tariff_service::app::Application::build).await
    }

    pub async fn start_dispute(&mut self) -> anyhow::Result<()> {
        let mut settings = self.dispute.settings(dispute_service::SERVICE);
        settings.peers.tariff_url = self.tariff.url();
        self.dispute.start(settings, dispute_service::app::Application::build).await
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
