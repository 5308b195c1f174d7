//! Builds the tariff server from settings and runs it until shutdown.

use std::{future::Future, net::SocketAddr};

use sea_orm::DatabaseConnection;
use tonic::service::Routes;
use tradewatch_common::{
    config::Settings,
    db,
    proto::tariff::tariff_service_server::{SERVICE_NAME, TariffServiceServer},
    server::GrpcServer,
};

use crate::{api::TariffApi, store::Migrator};

/// A tariff server bound to its port, its database open and migrated.
pub struct Application {
    server: GrpcServer,
    db: DatabaseConnection,
    settings: Settings,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        // First: it holds a SQLite file before anything touches it.
        let server = GrpcServer::bind(&settings, crate::SERVICE.name).await?;
        let db = db::open::<Migrator>(&settings.database).await?;
        Ok(Self { server, db, settings })
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

    pub async fn run_until_stopped(
        mut self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let limit = self.settings.server.max_message_bytes;
        let feed = self.server.feed(&self.db);
        let tariff = TariffApi::new(self.db.clone(), feed, limit);
        // The trade index loads in the background, so that the first
        // exposure or coverage does not wait for a million flows.
        tokio::spawn(tariff.clone().warm());
        self.server.ready_after(tariff.clone().load_schedule());
        let api = TariffServiceServer::new(tariff)
            .max_decoding_message_size(self.settings.server.max_request_bytes)
            .max_encoding_message_size(limit);
        self.server.serve(SERVICE_NAME, Routes::new(api), self.db, db::schema_of::<Migrator>(), shutdown).await
    }
}

/// `tariff-service migrate`: brings the schema up to date and exits.
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    Ok(db::migrate::<Migrator>(&settings.database).await?)
}

tradewatch_common::impl_served!(Application);
