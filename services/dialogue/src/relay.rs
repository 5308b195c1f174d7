//! The relay: delivers the effects of fulfilled commitments from the outbox
//! to the dispute and tariff services.
//!
//! Each effect is sent with its outbox id as `request_id`, so a delivery
//! repeated after a crash, a restart or a lost answer is absorbed by the
//! other side's idempotency and applies nothing twice. An outage is retried
//! with exponential backoff for as long as it lasts; a refusal no retry can
//! change (see `is_final`) marks the effect REJECTED with the reason. The relay starts with
//! whatever the outbox holds, and on shutdown makes one last pass over what is
//! due before it stops.

use std::{sync::Arc, time::Duration};

use sea_orm::DatabaseConnection;
use tokio::sync::watch;
use tonic::Code;
use tradewatch_common::metrics::{Delivery, Metrics};
use tradewatch_common::{
    Error, Result,
    client::{Deadline, Peer},
    db,
    feed::{self, Feed},
    proto::{
        dialogue as gpb,
        dispute::{self as dpb, dispute_service_client::DisputeServiceClient},
        tariff::{self as tpb, tariff_service_client::TariffServiceClient},
    },
    types::format_date,
};

use crate::{
    domain::{Effect, EffectOrder, EffectState},
    store::{self, Queued},
};

/// The actor of what the relay writes on a commitment (its effect's outcome).
pub const RELAY_ACTOR: &str = "dialogue-relay";

/// A test hook: true stops the relay, as a crash would.
pub type CrashHook = Arc<dyn Fn(&EffectOrder) -> bool + Send + Sync>;

/// How the relay paces itself.
#[derive(Clone)]
pub struct RelayOptions {
    /// How often the outbox is looked at when nothing wakes the relay.
    pub poll: Duration,
    /// The first retry waits this long; each further one twice as long…
    pub backoff: Duration,
    /// …up to this; each wait is then drawn between half of it and all of it
    /// (jitter), so failed effects do not come back in step.
    pub max_backoff: Duration,
    /// How long a claimed effect stays with the relay that claimed it; after
    /// that another replica takes it over (its relay died). Longer than a
    /// delivery can take.
    pub lease: Duration,
    /// Deliveries in flight at once to each peer: a peer that hangs holds
    /// back only its own effects.
    pub per_peer: usize,
    /// Test hook: called after the other side accepted an effect and before
    /// the outbox records it; returning true stops the relay there, as a
    /// crash would.
    pub crash_after_delivery: Option<CrashHook>,
}

impl Default for RelayOptions {
    fn default() -> Self {
        Self {
            poll: Duration::from_secs(1),
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            lease: Duration::from_secs(30),
            per_peer: 4,
            crash_after_delivery: None,
        }
    }
}

#[derive(Clone)]
pub struct Relay {
    db: DatabaseConnection,
    dispute: Peer,
    tariff: Peer,
    wake: Wake,
    options: RelayOptions,
    metrics: Option<Metrics>,
    feed: Option<Feed>,
}

/// Whether the relay should go on.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Crashed,
}

impl Relay {
    pub fn new(db: DatabaseConnection, dispute: Peer, tariff: Peer, wake: Wake, options: RelayOptions) -> Self {
        Self { db, dispute, tariff, wake, options, metrics: None, feed: None }
    }

    /// The same relay, waking the watchers of `feed` when it records an
    /// effect's outcome.
    #[must_use]
    pub fn with_feed(mut self, feed: Feed) -> Self {
        self.feed = Some(feed);
        self
    }

    /// The same relay, counting its deliveries by outcome in `metrics`.
    #[must_use]
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn count(&self, outcome: Delivery) {
        if let Some(metrics) = &self.metrics {
            metrics.delivered(outcome);
        }
    }

    /// Delivers until `stop` turns true, then drains what is due within
    /// `drain`. Effects to the dispute service and to the tariff service go
    /// in lanes of their own, so a peer that hangs holds back only its lane.
    pub async fn run(self, stop: watch::Receiver<bool>, drain: Duration) {
        tracing::info!("effect relay started");
        tokio::join!(
            self.lane(&[Effect::SettleDispute], stop.clone(), drain),
            self.lane(&[Effect::SuspendMeasure, Effect::RevokeMeasure], stop, drain),
        );
        match store::pending_count(&self.db).await {
            Ok(0) => tracing::info!("effect relay stopped with the outbox empty"),
            Ok(n) => tracing::info!(pending = n, "effect relay stopped; pending effects resume on the next start"),
            Err(err) => tracing::warn!(%err, "effect relay stopped"),
        }
    }

    async fn lane(&self, effects: &[Effect], mut stop: watch::Receiver<bool>, drain: Duration) {
        let mut woken = self.wake.subscribe();
        loop {
            if self.pass(effects).await == Flow::Crashed {
                tracing::warn!("effect relay stopped by its crash hook");
                return;
            }
            tokio::select! {
                _ = woken.changed() => {}
                () = tokio::time::sleep(self.options.poll) => {}
                _ = stop.wait_for(|stopping| *stopping) => break,
            }
        }
        if tokio::time::timeout(drain, self.pass(effects)).await.is_err() {
            tracing::warn!("effect relay: drain timed out; what is left is delivered after the next start");
        }
    }

    /// Claims and tries every effect of `effects` that is due when the pass
    /// starts, once: an effect that fails is due again only after its
    /// backoff, in a later pass.
    async fn pass(&self, effects: &[Effect]) -> Flow {
        let started = tradewatch_common::now();
        loop {
            // No more than are delivered at once: every claimed effect is
            // sent well within its lease.
            let limit = u64::try_from(self.options.per_peer).unwrap_or(4);
            let due = match store::claim(&self.db, effects, started, self.options.lease, limit).await {
                Ok(due) => due,
                Err(err) => {
                    tracing::warn!(%err, "effect relay cannot claim from the outbox");
                    return Flow::Continue;
                }
            };
            if due.is_empty() {
                return Flow::Continue;
            }
            let mut flow = Flow::Continue;
            for outcome in self.deliver_all(due).await {
                match outcome {
                    Ok(Flow::Crashed) => flow = Flow::Crashed,
                    Ok(Flow::Continue) => {}
                    Err(err) => {
                        tracing::warn!(%err, "effect relay cannot record a delivery; it is retried after its lease")
                    }
                }
            }
            if flow == Flow::Crashed {
                return flow;
            }
        }
    }

    async fn deliver_all(&self, queued: Vec<Queued>) -> Vec<Result<Flow>> {
        use futures::StreamExt as _;
        futures::stream::iter(queued)
            .map(|q| self.deliver(q))
            .buffer_unordered(self.options.per_peer.max(1))
            .collect()
            .await
    }

    async fn deliver(&self, queued: Queued) -> Result<Flow> {
        use tracing::Instrument as _;
        // The delivery continues the trace of the call that queued it.
        let span = tracing::info_span!("relay", otel.name = "relay effect", effect = queued.order.effect.as_str());
        tradewatch_common::telemetry::continue_trace(&span, &queued.traceparent);
        self.deliver_in_span(queued).instrument(span).await
    }

    async fn deliver_in_span(&self, queued: Queued) -> Result<Flow> {
        let order = &queued.order;
        let outcome = self.send(order).await;
        match outcome {
            Ok(detail) => {
                if let Some(crash) = &self.options.crash_after_delivery
                    && crash(order)
                {
                    return Ok(Flow::Crashed);
                }
                tracing::info!(effect = order.effect.as_str(), target = %order.target_id, "effect applied");
                self.settle(order, EffectState::Applied, detail).await?;
                self.count(Delivery::Applied);
            }
            Err(err) if is_final(err.code()) => {
                tracing::info!(effect = order.effect.as_str(), target = %order.target_id, reason = err.message(), "effect rejected");
                self.settle(order, EffectState::Rejected, err.message().to_owned()).await?;
                self.count(Delivery::Rejected);
            }
            Err(err) => {
                let attempts = queued.attempts.saturating_add(1);
                let wait = self.backoff(attempts);
                tracing::info!(effect = order.effect.as_str(), attempts, retry_in = ?wait, error = err.message(), "effect not delivered; retrying later");
                let at = tradewatch_common::now() + chrono::Duration::from_std(wait).unwrap_or_default();
                store::retry_later(&self.db, order.id, attempts, at, err.message()).await?;
                self.count(Delivery::Retried);
            }
        }
        Ok(Flow::Continue)
    }

    fn backoff(&self, attempts: i32) -> Duration {
        let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 16)).unwrap_or(16);
        let full = self.options.backoff.saturating_mul(1 << doublings).min(self.options.max_backoff);
        // Equal jitter: half the wait, plus a random part of the other half.
        full / 2 + full.mul_f64(jitter() / 2.0)
    }

    /// Removes the effect from the outbox and records its outcome on the
    /// commitment, in one transaction; a relay that lost a race does nothing.
    async fn settle(&self, order: &EffectOrder, state: EffectState, detail: String) -> Result<()> {
        let txn = db::begin_write(&self.db).await?;
        if store::dequeue(&*txn, order.id).await? {
            let mut c = store::get_commitment_for_update(&*txn, order.commitment_id).await?.ok_or_else(|| {
                Error::internal(anyhow::anyhow!("commitment {} of an outbox entry is gone", order.commitment_id))
            })?;
            c.effect_state = state;
            c.effect_detail = detail;
            store::update_commitment(&*txn, &mut c, RELAY_ACTOR).await?;
            let change = crate::api::watch::change(
                gpb::CommitmentChangeKind::EffectChanged,
                &crate::api::convert::commitment_to_proto(&c),
                RELAY_ACTOR,
            );
            feed::append(&*txn, crate::api::watch::TOPIC, tradewatch_common::now(), &change).await?;
        }
        txn.commit().await?;
        if let Some(feed) = &self.feed {
            feed.wake();
        }
        Ok(())
    }

    /// Sends one effect, with its outbox id as the idempotency key; returns
    /// what was done, in words.
    async fn send(&self, order: &EffectOrder) -> Result<String> {
        let on = format_date(order.effective_on);
        let request_id = order.id.to_string();
        let note = format!("commitment {} fulfilled", order.commitment_id);
        match order.effect {
            Effect::SettleDispute => {
                let req = dpb::AdvanceDisputeRequest {
                    id: order.target_id.to_string(),
                    to_stage: dpb::DisputeStage::Settled.into(),
                    occurred_on: on.clone(),
                    note: note.clone(),
                    request_id,
                    etag: String::new(),
                };
                self.dispute
                    .call("tradewatch.dispute.v1.DisputeService/AdvanceDispute", Deadline::none(), true, |ch, d| {
                        let req = self.dispute.request(req.clone(), d);
                        async move { DisputeServiceClient::new(ch).advance_dispute(req).await }
                    })
                    .await?;
                Ok(format!("dispute {} SETTLED on {on}", order.target_id))
            }
            Effect::SuspendMeasure | Effect::RevokeMeasure => {
                let status = if order.effect == Effect::SuspendMeasure {
                    tpb::MeasureStatus::Suspended
                } else {
                    tpb::MeasureStatus::Revoked
                };
                let req = tpb::SetMeasureStatusRequest {
                    id: order.target_id.to_string(),
                    status: status.into(),
                    effective_on: on.clone(),
                    note,
                    request_id,
                    etag: String::new(),
                };
                self.tariff
                    .call("tradewatch.tariff.v1.TariffService/SetMeasureStatus", Deadline::none(), true, |ch, d| {
                        let req = self.tariff.request(req.clone(), d);
                        async move { TariffServiceClient::new(ch).set_measure_status(req).await }
                    })
                    .await?;
                let word = if order.effect == Effect::SuspendMeasure { "SUSPENDED" } else { "REVOKED" };
                Ok(format!("measure {} {word} from {on}", order.target_id))
            }
            Effect::None => Err(Error::invalid_field("effect", "NONE has nothing to deliver")),
        }
    }
}

/// Wakes every lane of the relay when an effect is queued. A wake that comes
/// while a lane is busy is kept until the lane looks again.
#[derive(Debug, Clone)]
pub struct Wake(Arc<watch::Sender<u64>>);

impl Wake {
    pub fn new() -> Self {
        Self(Arc::new(watch::channel(0).0))
    }

    pub fn notify(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }
}

impl Default for Wake {
    fn default() -> Self {
        Self::new()
    }
}

/// A number in [0, 1), different on every call.
fn jitter() -> f64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    // 53 random bits make an f64 in [0, 1) exactly.
    #[allow(clippy::cast_precision_loss)]
    let unit = (h.finish() >> 11) as f64 / (1u64 << 53) as f64;
    unit
}

/// The other side's refusals that no retry can change.
fn is_final(code: Code) -> bool {
    matches!(
        code,
        Code::FailedPrecondition | Code::NotFound | Code::InvalidArgument | Code::AlreadyExists | Code::OutOfRange
    )
}
