//! Builds the relations server from settings and runs it until shutdown.

use std::{future::Future, net::SocketAddr};

use tonic::service::Routes;
use tradewatch_common::{
    client::Peer,
    config::Settings,
    proto::relations::relations_service_server::{RelationsServiceServer, SERVICE_NAME},
    server::GrpcServer,
};

use crate::{api::RelationsApi, fresh::Freshness, peers::Peers};

/// A relations server bound to its port. It keeps no database.
pub struct Application {
    server: GrpcServer,
    settings: Settings,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let server = GrpcServer::bind_stateless(&settings, crate::SERVICE.name).await?;
        Ok(Self { server, settings })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Where `/metrics` is served, when it is.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.server.metrics_addr()
    }

    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let settings = &self.settings.peers;
        let metrics = self.server.metrics();
        let peer = |name: &'static str, url: &str| -> anyhow::Result<Peer> {
            Ok(Peer::configured(name, url, settings)?.with_metrics(metrics.clone()))
        };
        let peers = Peers {
            tariff: peer("tariff service", &settings.tariff_url)?,
            dispute: peer("dispute service", &settings.dispute_url)?,
            dialogue: peer("dialogue service", &settings.dialogue_url)?,
        };
        let fresh = Freshness::watch(&peers, self.server.stopping());
        let api = RelationsServiceServer::new(RelationsApi::new(peers, fresh))
            .max_decoding_message_size(self.settings.server.max_request_bytes)
            .max_encoding_message_size(self.settings.server.max_message_bytes);
        self.server.serve_stateless(SERVICE_NAME, Routes::new(api), shutdown).await
    }
}

/// `relations-service migrate`: there is nothing to migrate; it says so and
/// exits, so that a deployment that runs `migrate` for every service needs
/// no exception.
pub async fn migrate(_settings: &Settings) -> anyhow::Result<()> {
    tracing::info!("relations-service keeps no database: nothing to migrate");
    Ok(())
}

tradewatch_common::impl_served!(Application);
