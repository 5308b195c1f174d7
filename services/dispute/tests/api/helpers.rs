use std::net::SocketAddr;

use tonic::{Status, transport::Channel};
use tradewatch_common::{
    proto::{
        dispute::{self as pb, dispute_service_client::DisputeServiceClient},
        tariff::{self as tpb, tariff_service_client::TariffServiceClient},
    },
    testing::{self, RunningServer, TestDatabase},
};

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: DisputeServiceClient<Channel>,
    pub tariff: TariffServiceClient<Channel>,
    pub tariff_addr: SocketAddr,
    tariff_server: Option<RunningServer>,
    server: RunningServer,
    tariff_db: TestDatabase,
    /// The settings it runs with, for a replica.
    pub settings: tradewatch_common::config::Settings,
    _db: TestDatabase,
}

async fn start_tariff(db: &TestDatabase, port: u16) -> RunningServer {
    let mut settings = db.settings(tariff_service::SERVICE);
    settings.server.port = port;
    testing::spawn(settings, tariff_service::app::Application::build).await.expect("start the tariff service")
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// A dispute server whose settings `change` adjusts first.
pub async fn spawn_app_with(change: impl FnOnce(&mut tradewatch_common::config::Settings)) -> TestApp {
    let tariff_db = TestDatabase::new().await.expect("tariff test database");
    let tariff_server = start_tariff(&tariff_db, testing::restartable_port()).await;
    let db = TestDatabase::new().await.expect("dispute test database");
    let mut settings = db.settings(dispute_service::SERVICE);
    settings.peers.tariff_url = tariff_server.url();
    change(&mut settings);
    let app = dispute_service::app::Application::build(settings.clone()).await.expect("build the dispute service");
    let addr = app.local_addr();
    let server = RunningServer::start(addr, |shutdown| app.run_until_stopped(shutdown));
    TestApp {
        addr,
        client: DisputeServiceClient::new(testing::channel(addr).await.unwrap()),
        tariff: TariffServiceClient::new(testing::channel(tariff_server.addr).await.unwrap()),
        tariff_addr: tariff_server.addr,
        tariff_server: Some(tariff_server),
        server,
        tariff_db,
        settings,
        _db: db,
    }
}

impl TestApp {
    pub async fn stop_tariff(&mut self) {
        if let Some(s) = self.tariff_server.take() {
            s.stop().await.unwrap();
        }
    }

    /// The tariff service again, on the same port and database.
    pub async fn restart_tariff(&mut self) {
        self.tariff_server = Some(start_tariff(&self.tariff_db, self.tariff_addr.port()).await);
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.server.stop().await
    }

    pub async fn measure(&self, reference: &str, codes: &[&str]) -> String {
        let m = tpb::TariffMeasure {
            reference: reference.into(),
            title: format!("{reference} title"),
            imposing_economy: "CHN".into(),
            target_economies: vec!["CAN".into()],
            kind: tpb::MeasureKind::AntiDumping.into(),
            hs_codes: codes.iter().map(|c| (*c).to_owned()).collect(),
            ad_valorem_percent: "75.8".into(),
            effective_from: "2025-08-14".into(),
            ..Default::default()
        };
        let created = self
            .tariff
            .clone()
            .create_measure(tpb::CreateMeasureRequest { measure: Some(m), request_id: String::new() })
            .await;
        created.unwrap().into_inner().measure.unwrap().id
    }

    pub async fn create(&self, d: pb::Dispute) -> Result<pb::Dispute, Status> {
        self.client
            .clone()
            .create_dispute(pb::CreateDisputeRequest { dispute: Some(d), request_id: String::new() })
            .await
            .map(|r| r.into_inner().dispute.unwrap())
    }

    pub async fn advance(
        &self,
        id: &str,
        to: pb::DisputeStage,
        on: &str,
    ) -> Result<pb::AdvanceDisputeResponse, Status> {
        self.client
            .clone()
            .advance_dispute(pb::AdvanceDisputeRequest {
                id: id.into(),
                to_stage: to.into(),
                occurred_on: on.into(),
                ..Default::default()
            })
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn list_all(&self, mut req: pb::ListDisputesRequest) -> Vec<pb::Dispute> {
        let mut out = Vec::new();
        loop {
            let page = self.client.clone().list_disputes(req.clone()).await.unwrap().into_inner();
            out.extend(page.disputes);
            if page.next_page_token.is_empty() {
                return out;
            }
            req.page_token = page.next_page_token;
        }
    }

    pub async fn events(&self, id: &str) -> Vec<pb::DisputeEvent> {
        let req = pb::ListDisputeEventsRequest { dispute_id: id.into(), page_size: 2, ..Default::default() };
        let mut req = req;
        let mut out = Vec::new();
        loop {
            let page = self.client.clone().list_dispute_events(req.clone()).await.unwrap().into_inner();
            out.extend(page.events);
            if page.next_page_token.is_empty() {
                return out;
            }
            req.page_token = page.next_page_token;
        }
    }
}

/// The canola dispute, WT/DS589, as a starting point.
pub fn dispute(reference: &str) -> pb::Dispute {
    pb::Dispute {
        reference: reference.into(),
        title: "China — Measures concerning the importation of canola seed from Canada".into(),
        complainant: "CAN".into(),
        respondent: "CHN".into(),
        forum: pb::DisputeForum::Wto.into(),
        hs_codes: vec!["1205".into()],
        legal_basis: "GATT 1994 Art. I:1".into(),
        opened_on: "2019-09-09".into(),
        source_url: "https://www.wto.org/english/tratop_e/dispu_e/cases_e/ds589_e.htm".into(),
        ..Default::default()
    }
}

pub use tradewatch_common::testing::{assert_code, assert_invalid, bad_fields, error_info as info, uuid};
