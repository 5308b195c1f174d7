use std::net::SocketAddr;

use tariff_service::{SERVICE, app::Application};
use tonic::{Code, Status, transport::Channel};
use tonic_types::StatusExt;
use tradewatch_common::{
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
    server: RunningServer,
    // Dropped last: the database outlives the server.
    _database: TestDatabase,
}

pub async fn spawn_app() -> TestApp {
    let database = TestDatabase::new().await.expect("test database");
    let app = Application::build(database.settings(SERVICE)).await.expect("build the tariff service");
    let addr = app.local_addr();
    let db = app.db().clone();
    let server = RunningServer::start(addr, |shutdown| app.run_until_stopped(shutdown));
    let client = TariffServiceClient::new(channel(addr).await);
    TestApp { addr, client, db, server, _database: database }
}

pub async fn channel(addr: SocketAddr) -> Channel {
    testing::channel(addr).await.expect("connect to the test server")
}

impl TestApp {
    /// Sends the shutdown signal and waits for the server to finish.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.server.stop().await
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

/// The fields a status names in its `BadRequest`.
pub fn bad_fields(status: &Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

pub fn reason(status: &Status) -> String {
    status.get_error_details().error_info().map(|i| i.reason.clone()).unwrap_or_default()
}

#[track_caller]
pub fn assert_invalid(result: Result<impl std::fmt::Debug, Status>, fields: &[&str]) {
    let status = result.expect_err("expected INVALID_ARGUMENT");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(bad_fields(&status), fields, "{status:?}");
}

#[track_caller]
pub fn assert_code(result: Result<impl std::fmt::Debug, Status>, code: Code) -> Status {
    let status = result.expect_err("expected an error");
    assert_eq!(status.code(), code, "{status:?}");
    status
}

pub fn uuid() -> String {
    uuid::Uuid::now_v7().to_string()
}
