use std::{sync::Arc, time::Duration};

use dialogue_service::{domain::EffectOrder, relay::RelayOptions};
use tonic::{Status, transport::Channel};
use tradewatch_common::{
    proto::{
        dialogue::{self as pb, dialogue_service_client::DialogueServiceClient},
        dispute::{self as dpb, dispute_service_client::DisputeServiceClient},
        tariff::{self as tpb, tariff_service_client::TariffServiceClient},
    },
    testing::{self, ServiceSlot as Slot},
};

pub struct TestApp {
    pub client: DialogueServiceClient<Channel>,
    pub disputes: DisputeServiceClient<Channel>,
    pub tariff: TariffServiceClient<Channel>,
    tariff_slot: Slot,
    dispute_slot: Slot,
    dialogue_slot: Slot,
}

/// A relay quick enough for tests.
pub fn fast_relay() -> RelayOptions {
    RelayOptions {
        poll: Duration::from_millis(100),
        backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(500),
        lease: Duration::from_secs(5),
        per_peer: 4,
        crash_after_delivery: None,
    }
}

pub async fn spawn_app() -> TestApp {
    let mut app = TestApp {
        client: DialogueServiceClient::new(placeholder()),
        disputes: DisputeServiceClient::new(placeholder()),
        tariff: TariffServiceClient::new(placeholder()),
        tariff_slot: Slot::new().await.expect("test database"),
        dispute_slot: Slot::new().await.expect("test database"),
        dialogue_slot: Slot::new().await.expect("test database"),
    };
    app.start_tariff().await;
    app.start_dispute().await;
    app.start_dialogue(fast_relay()).await;
    app.tariff = TariffServiceClient::new(testing::channel(app.tariff_slot.addr.unwrap()).await.unwrap());
    app.disputes = DisputeServiceClient::new(testing::channel(app.dispute_slot.addr.unwrap()).await.unwrap());
    app.client = DialogueServiceClient::new(testing::channel(app.dialogue_slot.addr.unwrap()).await.unwrap());
    app
}

/// A channel for clients replaced once the servers run.
fn placeholder() -> Channel {
    tonic::transport::Endpoint::from_static("http://127.0.0.1:1").connect_lazy()
}

impl TestApp {
    pub async fn start_tariff(&mut self) {
        let settings = self.tariff_slot.settings(tariff_service::SERVICE);
        self.tariff_slot.start(settings, tariff_service::app::Application::build).await.unwrap();
    }

    pub async fn start_dispute(&mut self) {
        let mut settings = self.dispute_slot.settings(dispute_service::SERVICE);
        settings.peers.tariff_url = self.tariff_slot.url();
        self.dispute_slot.start(settings, dispute_service::app::Application::build).await.unwrap();
    }

    pub async fn start_dialogue(&mut self, relay: RelayOptions) {
        let mut settings = self.dialogue_slot.settings(dialogue_service::SERVICE);
        settings.peers.tariff_url = self.tariff_slot.url();
        settings.peers.dispute_url = self.dispute_slot.url();
        settings.peers.timeout_ms = 1_000;
        let build = |settings| dialogue_service::app::Application::build_with(settings, relay.clone());
        self.dialogue_slot.start(settings, build).await.unwrap();
    }

    /// A second dialogue server on the same database: another replica.
    pub async fn dialogue_replica(&self) -> (testing::RunningServer, DialogueServiceClient<Channel>) {
        let mut settings = self.dialogue_slot.settings(dialogue_service::SERVICE);
        settings.peers.tariff_url = self.tariff_slot.url();
        settings.peers.dispute_url = self.dispute_slot.url();
        settings.server.port = 0;
        let build = |settings| dialogue_service::app::Application::build_with(settings, fast_relay());
        let server = testing::spawn(settings, build).await.expect("start a replica");
        let client = DialogueServiceClient::new(testing::channel(server.addr).await.unwrap());
        (server, client)
    }

    /// Starts the dialogue service with a relay that stops dead right after
    /// the other side accepted an effect, before it records the delivery.
    pub async fn start_dialogue_crashing(&mut self) {
        let crash: Arc<dyn Fn(&EffectOrder) -> bool + Send + Sync> = Arc::new(|_| true);
        self.start_dialogue(RelayOptions { crash_after_delivery: Some(crash), ..fast_relay() }).await;
    }

    pub async fn stop_tariff(&mut self) {
        self.tariff_slot.stop().await.expect("clean stop");
    }

    pub async fn stop_dispute(&mut self) {
        self.dispute_slot.stop().await.expect("clean stop");
    }

    pub async fn stop_dialogue(&mut self) {
        self.dialogue_slot.stop().await.expect("clean stop");
    }

    pub async fn measure(&self, reference: &str) -> tpb::TariffMeasure {
        let m = tpb::TariffMeasure {
            reference: reference.into(),
            title: "Additional 100% tariff on Canadian oil cakes (canola meal) and peas".into(),
            imposing_economy: "CHN".into(),
            target_economies: vec!["CAN".into()],
            kind: tpb::MeasureKind::Retaliatory.into(),
            hs_codes: vec!["230641".into(), "071310".into()],
            ad_valorem_percent: "100".into(),
            effective_from: "2025-03-20".into(),
            ..Default::default()
        };
        self.tariff
            .clone()
            .create_measure(tpb::CreateMeasureRequest { measure: Some(m), request_id: String::new() })
            .await
            .unwrap()
            .into_inner()
            .measure
            .unwrap()
    }

    pub async fn dispute(&self, reference: &str) -> dpb::Dispute {
        let d = dpb::Dispute {
            reference: reference.into(),
            title: "China — Additional duties on certain agricultural and fishery products from Canada".into(),
            complainant: "CAN".into(),
            respondent: "CHN".into(),
            forum: dpb::DisputeForum::Wto.into(),
            opened_on: "2025-09-01".into(),
            ..Default::default()
        };
        self.disputes
            .clone()
            .create_dispute(dpb::CreateDisputeRequest { dispute: Some(d), request_id: String::new() })
            .await
            .unwrap()
            .into_inner()
            .dispute
            .unwrap()
    }

    pub async fn create_session(&self, s: pb::DialogueSession) -> Result<pb::DialogueSession, Status> {
        self.client
            .clone()
            .create_session(pb::CreateSessionRequest { session: Some(s), request_id: String::new() })
            .await
            .map(|r| r.into_inner().session.unwrap())
    }

    pub async fn add(&self, session_id: &str, c: pb::Commitment) -> Result<pb::Commitment, Status> {
        self.client
            .clone()
            .add_commitment(pb::AddCommitmentRequest {
                session_id: session_id.into(),
                commitment: Some(c),
                request_id: String::new(),
            })
            .await
            .map(|r| r.into_inner().commitment.unwrap())
    }

    pub async fn set_status(
        &self,
        id: &str,
        status: pb::CommitmentStatus,
        effective_on: &str,
    ) -> Result<pb::Commitment, Status> {
        self.client
            .clone()
            .set_commitment_status(pb::SetCommitmentStatusRequest {
                id: id.into(),
                status: status.into(),
                effective_on: effective_on.into(),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().commitment.unwrap())
    }

    pub async fn commitment(&self, id: &str) -> pb::Commitment {
        self.client
            .clone()
            .get_commitment(pb::GetCommitmentRequest { id: id.into() })
            .await
            .unwrap()
            .into_inner()
            .commitment
            .unwrap()
    }

    /// Waits until the commitment's effect is no longer PENDING.
    pub async fn settled_effect(&self, id: &str) -> pb::Commitment {
        for _ in 0..150 {
            let c = self.commitment(id).await;
            if c.effect_state() != pb::EffectState::Pending {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the effect of commitment {id} stayed PENDING");
    }

    /// How often the relay has tried and failed to deliver the effect of a
    /// commitment, read from the outbox.
    pub async fn failed_deliveries(&self, commitment_id: &str) -> i32 {
        use dialogue_service::store::entity::outbox;
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        let db = sea_orm::Database::connect(self.dialogue_slot.database_url()).await.unwrap();
        let id = uuid::Uuid::parse_str(commitment_id).unwrap();
        let row = outbox::Entity::find().filter(outbox::Column::CommitmentId.eq(id)).one(&db).await.unwrap();
        db.close().await.unwrap();
        row.map_or(0, |r| r.attempts)
    }

    /// Waits, boundedly, until the relay has failed to deliver the
    /// commitment's effect at least `n` times.
    pub async fn wait_for_failed_deliveries(&self, commitment_id: &str, n: i32) {
        for _ in 0..100 {
            if self.failed_deliveries(commitment_id).await >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the relay did not try {n} times");
    }

    pub async fn history(&self, measure_id: &str) -> Vec<(tpb::MeasureStatus, String)> {
        let req = tpb::ListMeasureHistoryRequest { measure_id: measure_id.into(), ..Default::default() };
        let changes = self.tariff.clone().list_measure_history(req).await.unwrap().into_inner().changes;
        changes.into_iter().map(|c| (c.status(), c.effective_on)).collect()
    }
}

/// The Beijing session of 16 January 2026, as a starting point.
pub fn beijing(agenda: Vec<pb::AgendaItem>) -> pb::DialogueSession {
    pb::DialogueSession {
        title: "Prime Minister Carney's visit to China".into(),
        track: pb::DialogueTrack::Trade.into(),
        level: pb::SessionLevel::Leaders.into(),
        host_economy: "CHN".into(),
        economies: vec!["CAN".into(), "CHN".into()],
        location: "Beijing".into(),
        starts_on: "2026-01-14".into(),
        ends_on: "2026-01-17".into(),
        status: pb::SessionStatus::Held.into(),
        participants: vec![pb::Participant { name: "Mark Carney".into(), role: "Prime Minister".into(), organization: "Government of Canada".into(), economy: "CAN".into() }],
        agenda,
        outcome_summary: "Canada to admit up to 49,000 Chinese EVs at the MFN rate; China to lower duties on canola and lift those on meal and peas.".into(),
        ..Default::default()
    }
}

pub fn suspend(measure_id: &str) -> pb::Commitment {
    pb::Commitment {
        description: "Suspend the additional duty on Canadian canola meal and peas".into(),
        owner_economies: vec!["CHN".into()],
        due_on: "2026-03-01".into(),
        measure_id: measure_id.into(),
        effect: pb::CommitmentEffect::SuspendMeasure.into(),
        effective_on: "2026-03-01".into(),
        ..Default::default()
    }
}

pub use tradewatch_common::testing::{assert_code, assert_invalid, reason, uuid};
