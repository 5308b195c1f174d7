//! Builds the dialogue server and its effect relay from settings and runs
//! both until shutdown.

use std::{future::Future, net::SocketAddr, time::Duration};

use sea_orm::DatabaseConnection;
use tokio::sync::watch;
use tonic::service::Routes;
use tradewatch_common::{
    client::Peer,
    config::Settings,
    db,
    proto::dialogue::dialogue_service_server::{DialogueServiceServer, SERVICE_NAME},
    server::GrpcServer,
};

use crate::{
    api::DialogueApi,
    relay::{Relay, RelayOptions, Wake},
    store::Migrator,
};

/// A dialogue server bound to its port, its database open and migrated.
pub struct Application {
    server: GrpcServer,
    db: DatabaseConnection,
    settings: Settings,
    relay: RelayOptions,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let relay = RelayOptions {
            lease: Duration::from_secs(settings.relay.lease_secs),
            per_peer: settings.relay.per_peer,
            ..RelayOptions::default()
        };
        Self::build_with(settings, relay).await
    }

    /// Like `build`, with the relay paced (or crashed, in tests) as asked.
    pub async fn build_with(settings: Settings, relay: RelayOptions) -> anyhow::Result<Self> {
        // First: it holds a SQLite file before anything touches it.
        let server = GrpcServer::bind(&settings, crate::SERVICE.name).await?;
        let db = db::open::<Migrator>(&settings.database).await?;
        Ok(Self { server, db, settings, relay })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Where `/metrics` is served, when it is.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.server.metrics_addr()
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Serves and relays until `shutdown`; then the server drains its calls
    /// and the relay its due effects, each within the drain timeout.
    pub async fn run_until_stopped(
        mut self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let peers = &self.settings.peers;
        let metrics = self.server.metrics();
        let dispute = Peer::configured("dispute service", &peers.dispute_url, peers)?.with_metrics(metrics.clone());
        let tariff = Peer::configured("tariff service", &peers.tariff_url, peers)?.with_metrics(metrics.clone());
        metrics.on_scrape({
            let (db, metrics) = (self.db.clone(), metrics.clone());
            move || {
                let (db, metrics) = (db.clone(), metrics.clone());
                async move {
                    match crate::store::backlog(&db).await {
                        Ok((pending, oldest)) => {
                            let age = oldest
                                .map(|at| (tradewatch_common::now() - at).to_std().unwrap_or_default())
                                .unwrap_or_default();
                            metrics.set_outbox(pending, age);
                        }
                        Err(err) => tracing::warn!(error = %err, "outbox backlog unknown for this scrape"),
                    }
                }
            }
        });
        let wake = Wake::new();
        let drain = self.settings.server.drain_timeout();

        let feed = self.server.feed(&self.db);
        let (stop, stopped) = watch::channel(false);
        let relay = Relay::new(self.db.clone(), dispute.clone(), tariff.clone(), wake.clone(), self.relay)
            .with_metrics(metrics)
            .with_feed(feed.clone());
        let relay = tokio::spawn(relay.run(stopped, drain));

        let limit = self.settings.server.max_message_bytes;
        let api = DialogueServiceServer::new(DialogueApi::new(self.db.clone(), feed, dispute, tariff, wake, limit))
            .max_decoding_message_size(self.settings.server.max_request_bytes)
            .max_encoding_message_size(limit);
        let shutdown = async move {
            shutdown.await;
            let _ = stop.send(true);
        };
        let served =
            self.server.serve(SERVICE_NAME, Routes::new(api), self.db, db::schema_of::<Migrator>(), shutdown).await;
        if let Err(err) = relay.await {
            tracing::error!(%err, "effect relay failed");
        }
        served
    }
}

/// `dialogue-service migrate`: brings the schema up to date and exits.
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    Ok(db::migrate::<Migrator>(&settings.database).await?)
}

tradewatch_common::impl_served!(Application);
