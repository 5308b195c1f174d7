use std::time::Duration;

use dialogue_service::relay::RelayOptions;
use tonic::transport::Channel;
use tradewatch_common::{
    proto::{
        common::Money,
        dialogue::{self as lpb, dialogue_service_client::DialogueServiceClient},
        dispute::{self as dpb, dispute_service_client::DisputeServiceClient},
        relations::{self as pb, relations_service_client::RelationsServiceClient},
        tariff::{self as tpb, tariff_service_client::TariffServiceClient},
    },
    testing::{self, ServiceSlot as Slot},
};

/// The four services, each in a slot of its own.
pub struct TestApp {
    pub client: RelationsServiceClient<Channel>,
    pub tariff: TariffServiceClient<Channel>,
    pub disputes: DisputeServiceClient<Channel>,
    pub dialogue: DialogueServiceClient<Channel>,
    tariff_slot: Slot,
    dispute_slot: Slot,
    dialogue_slot: Slot,
    relations_slot: Slot,
    /// Where the relations service reaches the dispute service, when a test
    /// puts something in between.
    pub dispute_url: Option<String>,
}

fn placeholder() -> Channel {
    tonic::transport::Endpoint::from_static("http://127.0.0.1:1").connect_lazy()
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(None).await
}

/// The four services; the relations service reaches the dispute service at
/// `dispute_url` when one is given.
pub async fn spawn_app_with(dispute_url: Option<String>) -> TestApp {
    let mut app = TestApp {
        client: RelationsServiceClient::new(placeholder()),
        tariff: TariffServiceClient::new(placeholder()),
        disputes: DisputeServiceClient::new(placeholder()),
        dialogue: DialogueServiceClient::new(placeholder()),
        tariff_slot: Slot::new().await.expect("test database"),
        dispute_slot: Slot::new().await.expect("test database"),
        dialogue_slot: Slot::new().await.expect("test database"),
        relations_slot: Slot::new().await.expect("test database"),
        dispute_url,
    };
    app.start_tariff().await;
    let mut settings = app.dispute_slot.settings(dispute_service::SERVICE);
    settings.peers.tariff_url = app.tariff_slot.url();
    app.dispute_slot.start(settings, dispute_service::app::Application::build).await.unwrap();
    let mut settings = app.dialogue_slot.settings(dialogue_service::SERVICE);
    settings.peers.tariff_url = app.tariff_slot.url();
    settings.peers.dispute_url = app.dispute_slot.url();
    let relay = RelayOptions {
        poll: Duration::from_millis(100),
        backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(500),
        lease: Duration::from_secs(5),
        per_peer: 4,
        crash_after_delivery: None,
    };
    let build = |settings| dialogue_service::app::Application::build_with(settings, relay.clone());
    app.dialogue_slot.start(settings, build).await.unwrap();
    app.start_relations().await;
    app.tariff = TariffServiceClient::new(testing::channel(app.tariff_slot.addr.unwrap()).await.unwrap());
    app.disputes = DisputeServiceClient::new(testing::channel(app.dispute_slot.addr.unwrap()).await.unwrap());
    app.dialogue = DialogueServiceClient::new(testing::channel(app.dialogue_slot.addr.unwrap()).await.unwrap());
    app.client = RelationsServiceClient::new(testing::channel(app.relations_slot.addr.unwrap()).await.unwrap());
    app
}

impl TestApp {
    pub async fn start_tariff(&mut self) {
        let settings = self.tariff_slot.settings(tariff_service::SERVICE);
        self.tariff_slot.start(settings, tariff_service::app::Application::build).await.unwrap();
    }

    pub async fn stop_tariff(&mut self) {
        self.tariff_slot.stop().await.expect("clean stop");
    }

    async fn start_relations(&mut self) {
        let mut settings = self.relations_slot.settings(relations_service::SERVICE);
        settings.peers.tariff_url = self.tariff_slot.url();
        settings.peers.dispute_url = self.dispute_url.clone().unwrap_or_else(|| self.dispute_slot.url());
        settings.peers.dialogue_url = self.dialogue_slot.url();
        settings.peers.timeout_ms = 2_000;
        self.relations_slot.start(settings, relations_service::app::Application::build).await.unwrap();
    }

    pub fn relations_addr(&self) -> std::net::SocketAddr {
        self.relations_slot.addr.unwrap()
    }

    pub async fn brief(&self, on: &str) -> pb::BilateralBrief {
        self.client
            .clone()
            .get_bilateral_brief(pb::GetBilateralBriefRequest {
                economy_a: "CAN".into(),
                economy_b: "CHN".into(),
                on: on.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .brief
            .unwrap()
    }

    pub async fn measure(&self, m: tpb::TariffMeasure) -> tpb::TariffMeasure {
        self.tariff
            .clone()
            .create_measure(tpb::CreateMeasureRequest { measure: Some(m), request_id: String::new() })
            .await
            .unwrap()
            .into_inner()
            .measure
            .unwrap()
    }

    pub async fn flows(&self, flows: Vec<tpb::TradeFlow>) {
        self.tariff
            .clone()
            .import_trade_flows(tpb::ImportTradeFlowsRequest { flows, request_id: String::new() })
            .await
            .unwrap();
    }

    pub async fn dispute(&self, d: dpb::Dispute) -> dpb::Dispute {
        self.disputes
            .clone()
            .create_dispute(dpb::CreateDisputeRequest { dispute: Some(d), request_id: String::new() })
            .await
            .unwrap()
            .into_inner()
            .dispute
            .unwrap()
    }

    pub async fn advance(&self, id: &str, stage: dpb::DisputeStage, on: &str) {
        self.disputes
            .clone()
            .advance_dispute(dpb::AdvanceDisputeRequest {
                id: id.into(),
                to_stage: stage.into(),
                occurred_on: on.into(),
                ..Default::default()
            })
            .await
            .unwrap();
    }

    pub async fn session(&self, s: lpb::DialogueSession) -> lpb::DialogueSession {
        self.dialogue
            .clone()
            .create_session(lpb::CreateSessionRequest { session: Some(s), request_id: String::new() })
            .await
            .unwrap()
            .into_inner()
            .session
            .unwrap()
    }

    pub async fn commitment(&self, session_id: &str, c: lpb::Commitment) -> lpb::Commitment {
        self.dialogue
            .clone()
            .add_commitment(lpb::AddCommitmentRequest {
                session_id: session_id.into(),
                commitment: Some(c),
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .commitment
            .unwrap()
    }
}

pub fn money(currency: &str, amount: &str) -> Option<Money> {
    Some(Money { currency_code: currency.into(), amount: amount.into() })
}

pub fn measure(
    reference: &str,
    imposing: &str,
    targets: &[&str],
    kind: tpb::MeasureKind,
    codes: &[&str],
    rate: &str,
    from: &str,
) -> tpb::TariffMeasure {
    tpb::TariffMeasure {
        reference: reference.into(),
        title: format!("{reference} title"),
        imposing_economy: imposing.into(),
        target_economies: targets.iter().map(|t| (*t).to_owned()).collect(),
        kind: kind.into(),
        hs_codes: codes.iter().map(|c| (*c).to_owned()).collect(),
        ad_valorem_percent: rate.into(),
        effective_from: from.into(),
        source_url: "https://example.org/notice".into(),
        ..Default::default()
    }
}

pub fn flow(exporter: &str, importer: &str, code: &str, year: i32, amount: &str) -> tpb::TradeFlow {
    tpb::TradeFlow {
        exporting_economy: exporter.into(),
        importing_economy: importer.into(),
        hs_code: code.into(),
        year,
        value: money("CAD", amount),
        source_url: "https://www150.statcan.gc.ca/".into(),
        ..Default::default()
    }
}

pub fn session(title: &str, starts_on: &str, economies: &[&str]) -> lpb::DialogueSession {
    lpb::DialogueSession {
        title: title.into(),
        track: lpb::DialogueTrack::Trade.into(),
        level: lpb::SessionLevel::Ministerial.into(),
        host_economy: economies[0].into(),
        economies: economies.iter().map(|e| (*e).to_owned()).collect(),
        starts_on: starts_on.into(),
        ends_on: starts_on.into(),
        status: lpb::SessionStatus::Held.into(),
        ..Default::default()
    }
}

pub fn amounts(money: &[Money]) -> Vec<(String, String)> {
    money.iter().map(|m| (m.currency_code.clone(), m.amount.clone())).collect()
}

pub use tradewatch_common::testing::{assert_code, assert_invalid, uuid};
