//! The demo dataset and its loader, the `make run` launcher, and a whole
//! Tradewatch stack for end-to-end tests: each service a real server
//! on its own port with its own fresh database, wired to its peers by URL
//! exactly as in production, each of which can be stopped and started again.

pub mod chaos;
pub mod demo;
pub mod faults;
pub mod launcher;

use std::net::SocketAddr;

use tonic::transport::Channel;
use tradewatch_common::{
    config::Settings,
    dev_identity::{DevIdentity, TokenSpec},
    proto::{
        dispute::dispute_service_client::DisputeServiceClient, tariff::tariff_service_client::TariffServiceClient,
    },
    testing::{self, ServiceSlot as Slot},
};

/// A session held in Beijing on 16 January 2026, with no agenda: what the
/// flows that need a session to hang commitments on create.
pub fn ministerial_session() -> tradewatch_common::proto::dialogue::DialogueSession {
    use tradewatch_common::proto::dialogue as gpb;
    gpb::DialogueSession {
        title: "Ministerial meeting on trade".into(),
        track: gpb::DialogueTrack::Trade.into(),
        level: gpb::SessionLevel::Ministerial.into(),
        host_economy: "CHN".into(),
        economies: vec!["CAN".into(), "CHN".into()],
        starts_on: "2026-01-16".into(),
        status: gpb::SessionStatus::Held.into(),
        ..Default::default()
    }
}

pub struct Stack {
    tariff: Slot,
    dispute: Slot,
    dialogue: Slot,
    relations: Slot,
    /// TLS and JWT auth on, with this development identity.
    identity: Option<DevIdentity>,
}

/// The scopes each service's own token is granted on its peers, as
/// `auth.grants`: what `make run-secure` and the secured stack use.
pub const PEER_GRANTS: &str = "dispute-service=tariff:read; dialogue-service=tariff:read tariff:write dispute:read \
     dispute:write; relations-service=tariff:read dispute:read dialogue:read";

/// Every scope of the four services.
pub const ALL_SCOPES: &[&str] = &[
    "tariff:read",
    "tariff:write",
    "dispute:read",
    "dispute:write",
    "dialogue:read",
    "dialogue:write",
    "relations:read",
];

impl Stack {
    /// Starts the four services, each wired to its peers.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(None).await
    }

    /// The same with TLS and JWT auth on every port, and each service calling
    /// its peers over TLS with a token of its own.
    pub async fn start_secure(identity: DevIdentity) -> anyhow::Result<Self> {
        Self::start_with(Some(identity)).await
    }

    async fn start_with(identity: Option<DevIdentity>) -> anyhow::Result<Self> {
        let mut stack = Self::unstarted(identity).await?;
        stack.start_all().await?;
        Ok(stack)
    }

    /// A stack on fresh, empty databases, none of its services started
    /// (their databases are not even created: a restore goes into them).
    pub async fn unstarted(identity: Option<DevIdentity>) -> anyhow::Result<Self> {
        Ok(Self {
            tariff: Slot::new().await?,
            dispute: Slot::new().await?,
            dialogue: Slot::new().await?,
            relations: Slot::new().await?,
            identity,
        })
    }

    /// Starts the four services, each wired to its peers.
    pub async fn start_all(&mut self) -> anyhow::Result<()> {
        self.start_tariff().await?;
        self.start_dispute().await?;
        self.start_dialogue().await?;
        self.start_relations().await
    }

    /// The database URL of `service` (tariff, dispute or dialogue).
    pub fn database_url(&self, service: &str) -> anyhow::Result<&str> {
        match service {
            "tariff" => Ok(self.tariff.database_url()),
            "dispute" => Ok(self.dispute.database_url()),
            "dialogue" => Ok(self.dialogue.database_url()),
            other => anyhow::bail!("{other} keeps no database"),
        }
    }

    fn url(&self, slot: &Slot) -> String {
        let url = slot.url();
        match (&self.identity, url.strip_prefix("http://")) {
            (Some(_), Some(rest)) => format!("https://{rest}"),
            _ => url,
        }
    }

    /// `settings` secured for `service` when the stack is.
    fn secure(&self, settings: &mut Settings, service: &str) -> anyhow::Result<()> {
        let Some(identity) = &self.identity else { return Ok(()) };
        identity.secure(settings, false);
        settings.auth.grants = PEER_GRANTS.into();
        let token = identity.issuer()?.token(&TokenSpec::new(&format!("{service}-service"), &[]))?;
        let token_file = identity.path(&format!("{service}.token"));
        tradewatch_common::dev_identity::write_private(&token_file, &token)?;
        identity.secure_peers(settings, token_file);
        Ok(())
    }

    pub async fn start_dialogue(&mut self) -> anyhow::Result<()> {
        let mut settings = self.dialogue.settings(dialogue_service::SERVICE);
        settings.peers.tariff_url = self.tariff.url();
        settings.peers.dispute_url = self.dispute.url();
        self.secure(&mut settings, "dialogue")?;
        self.dialogue.start(settings, dialogue_service::app::Application::build).await
    }

    pub async fn start_relations(&mut self) -> anyhow::Result<()> {
        let mut settings = self.relations.settings(relations_service::SERVICE);
        settings.peers.tariff_url = self.tariff.url();
        settings.peers.dispute_url = self.dispute.url();
        settings.peers.dialogue_url = self.dialogue.url();
        self.secure(&mut settings, "relations")?;
        self.relations.start(settings, relations_service::app::Application::build).await
    }

    /// Where each service listens, as URLs; on a secured stack, with the CA
    /// and a token holding every scope.
    pub fn endpoints(&self) -> demo::Endpoints {
        let security = self.identity.as_ref().and_then(|identity| {
            let token = identity.issuer().ok()?.token(&TokenSpec::new("tradewatch-demo", ALL_SCOPES)).ok()?;
            Some(demo::ClientSecurity { ca_file: identity.path("ca.crt"), token })
        });
        demo::Endpoints {
            tariff: self.url(&self.tariff),
            dispute: self.url(&self.dispute),
            dialogue: self.url(&self.dialogue),
            relations: self.url(&self.relations),
            security,
        }
    }

    pub async fn start_tariff(&mut self) -> anyhow::Result<()> {
        let mut settings = self.tariff.settings(tariff_service::SERVICE);
        self.secure(&mut settings, "tariff")?;
        self.tariff.start(settings, tariff_service::app::Application::build).await
    }

    pub async fn start_dispute(&mut self) -> anyhow::Result<()> {
        let mut settings = self.dispute.settings(dispute_service::SERVICE);
        settings.peers.tariff_url = self.tariff.url();
        self.secure(&mut settings, "dispute")?;
        self.dispute.start(settings, dispute_service::app::Application::build).await
    }

    /// Where each service serves `/metrics`: tariff, dispute, dialogue.
    pub fn metrics_addrs(&self) -> [Option<SocketAddr>; 3] {
        [self.tariff.metrics_addr, self.dispute.metrics_addr, self.dialogue.metrics_addr]
    }

    /// The dialogue service's client, with a token when the stack is secured.
    pub async fn dialogue(
        &self,
    ) -> anyhow::Result<tradewatch_common::proto::dialogue::dialogue_service_client::DialogueServiceClient<Channel>>
    {
        Ok(tradewatch_common::proto::dialogue::dialogue_service_client::DialogueServiceClient::new(
            channel(self.dialogue.addr).await?,
        ))
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
        self.relations.stop().await?;
        self.dialogue.stop().await?;
        self.dispute.stop().await?;
        self.tariff.stop().await
    }
}

async fn channel(addr: Option<SocketAddr>) -> anyhow::Result<Channel> {
    testing::channel(addr.ok_or_else(|| anyhow::anyhow!("service never started"))?).await
}
