use std::net::SocketAddr;

use tariff_service::{SERVICE, app::Application};
use tonic::{Status, transport::Channel};
use tradewatch_common::{
    config::Settings,
    proto::{
        common::Money,
        tariff::{self as pb, tariff_service_client::TariffServiceClient},
    },
    testing::{self, RunningServer, TestDatabase},
};

pub type Client = TariffServiceClient<Channel>;

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: Client,
    pub db: sea_orm::DatabaseConnection,
    /// The URL of the service's database, for a second connection of a test's own.
    pub url: String,
    /// The settings it runs with, for a restart or a replica.
    pub settings: Settings,
    server: RunningServer,
    // Dropped last: the database outlives the server.
    _database: TestDatabase,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// A server whose settings `change` adjusts first (limits, timeouts).
pub async fn spawn_app_with(change: impl FnOnce(&mut Settings)) -> TestApp {
    let database = TestDatabase::new().await.expect("test database");
    let mut settings = database.settings(SERVICE);
    change(&mut settings);
    let app = Application::build(settings.clone()).await.expect("build the tariff service");
    let addr = app.local_addr();
    let db = app.db().clone();
    let server = RunningServer::start(addr, |shutdown| app.run_until_stopped(shutdown));
    let channel = channel(addr).await;
    testing::serving(channel.clone()).await.expect("the tariff service SERVING");
    let client = TariffServiceClient::new(channel);
    TestApp { addr, client, db, url: database.url.clone(), settings, server, _database: database }
}

pub async fn channel(addr: SocketAddr) -> Channel {
    testing::channel(addr).await.expect("connect to the test server")
}

impl TestApp {
    /// Sends the shutdown signal and waits for the server to finish.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.server.stop().await
    }

    /// Stops the server and starts a new one on the same database.
    pub async fn restart(self) -> TestApp {
        let TestApp { settings, server, _database: database, url, .. } = self;
        server.stop().await.expect("stop the tariff service");
        let app = Application::build(settings.clone()).await.expect("build the tariff service again");
        let addr = app.local_addr();
        let db = app.db().clone();
        let server = RunningServer::start(addr, |shutdown| app.run_until_stopped(shutdown));
        let channel = channel(addr).await;
        testing::serving(channel.clone()).await.expect("the tariff service SERVING");
        let client = TariffServiceClient::new(channel);
        TestApp { addr, client, db, url, settings, server, _database: database }
    }

    /// A second server on the same database: another replica.
    pub async fn replica(&self) -> (RunningServer, Client) {
        let server = testing::spawn(self.settings.clone(), Application::build).await.expect("start a replica");
        let client = TariffServiceClient::new(channel(server.addr).await);
        (server, client)
    }

    pub async fn create(&self, measure: pb::TariffMeasure) -> pb::TariffMeasure {
        self.client
            .clone()
            .create_measure(pb::CreateMeasureRequest { measure: Some(measure), request_id: String::new() })
            .await
            .expect("create measure")
            .into_inner()
            .measure
            .expect("measure in response")
    }

    pub async fn list(&self, req: pb::ListMeasuresRequest) -> Result<pb::ListMeasuresResponse, Status> {
        self.client.clone().list_measures(req).await.map(tonic::Response::into_inner)
    }

    /// Every measure, following page tokens.
    pub async fn list_all(&self, mut req: pb::ListMeasuresRequest) -> Vec<pb::TariffMeasure> {
        let mut out = Vec::new();
        loop {
            let page = self.list(req.clone()).await.expect("list page");
            out.extend(page.measures);
            if page.next_page_token.is_empty() {
                return out;
            }
            req.page_token = page.next_page_token;
        }
    }
}

pub fn money(currency: &str, amount: &str) -> Option<Money> {
    Some(Money { currency_code: currency.into(), amount: amount.into() })
}

/// A valid measure to start from.
pub fn measure(reference: &str, kind: pb::MeasureKind, codes: &[&str], rate: &str) -> pb::TariffMeasure {
    pb::TariffMeasure {
        reference: reference.into(),
        title: format!("{reference} title"),
        imposing_economy: "CAN".into(),
        kind: kind.into(),
        hs_codes: codes.iter().map(|c| (*c).to_owned()).collect(),
        ad_valorem_percent: rate.into(),
        effective_from: "2024-01-01".into(),
        source_url: "https://example.org/notice".into(),
        ..Default::default()
    }
}

pub fn against(mut m: pb::TariffMeasure, origins: &[&str]) -> pb::TariffMeasure {
    m.target_economies = origins.iter().map(|c| (*c).to_owned()).collect();
    m
}

pub fn quota(mut m: pb::TariffMeasure, quantity: &str) -> pb::TariffMeasure {
    m.quota = Some(pb::Quota {
        quantity: quantity.into(),
        unit: "vehicle".into(),
        period_start: "2026-01-16".into(),
        period_end: "2027-01-15".into(),
        used: String::new(),
    });
    m
}

pub use tradewatch_common::testing::{assert_code, assert_invalid, reason, uuid};
