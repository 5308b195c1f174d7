//! The gRPC API of the dispute service: turns requests into domain values,
//! checks links to tariff measures with the tariff service, runs each write
//! in one transaction, and answers.

pub mod convert;
pub mod watch;

use sea_orm::DatabaseConnection;
use tonic::{Request, Response, Status};
use tradewatch_common::{
    Error,
    auth::{actor, audit},
    batch,
    client::{self, Deadline, Peer},
    etag,
    feed::{self, Feed},
    idempotency::{self, Key},
    paging,
    proto::dispute::{self as pb, dispute_service_server::DisputeService},
    today,
    validate::{self, Violations},
};
use uuid::Uuid;

use self::convert::*;
use crate::{domain::Dispute, store};

#[derive(Clone)]
pub struct DisputeApi {
    db: DatabaseConnection,
    /// The change feed every write appends to and WatchDisputes streams.
    feed: Feed,
    /// The disputes GetDispute answers from, as fresh as the feed's head.
    cache: std::sync::Arc<feed::Cache<pb::Dispute, pb::DisputeChange>>,
    tariff: Peer,
    /// What the items of one list page may take: under the message limit.
    page_budget: usize,
}

impl DisputeApi {
    pub fn new(db: DatabaseConnection, feed: Feed, tariff: Peer, max_message_bytes: usize) -> Self {
        let cache = std::sync::Arc::new(feed::Cache::new(db.clone(), watch::TOPIC, |c: &pb::DisputeChange| {
            c.dispute.as_ref().map(|d| d.id.clone())
        }));
        Self { db, feed, cache, tariff, page_budget: paging::response_budget(max_message_bytes) }
    }

    /// INVALID_ARGUMENT naming `{field}[i]` for each measure the tariff
    /// service does not know; UNAVAILABLE if it cannot be asked.
    async fn check_measures(&self, field: &str, ids: &[Uuid], deadline: Deadline) -> Result<(), Error> {
        if ids.is_empty() {
            return Ok(());
        }
        let missing = self.tariff.missing_measures(ids, deadline).await?;
        let mut v = Violations::new();
        client::name_missing(&mut v, field, ids, &missing, "tariff measure");
        v.finish()
    }
}

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl DisputeService for DisputeApi {
    async fn create_dispute(&self, request: Request<pb::CreateDisputeRequest>) -> Reply<pb::CreateDisputeResponse> {
        let deadline = Deadline::of(&request);
        let actor = actor(&request);
        let mut req = request.into_inner();
        let (spec, request_id) = convert::create_dispute(&req)?;
        req.request_id.clear();
        let key = Key::new("CreateDispute", request_id, &req);
        if let Some(done) = idempotency::replay(&self.db, key.as_ref()).await? {
            return Ok(Response::new(done));
        }
        self.check_measures("dispute.measure_ids", &spec.measure_ids, deadline).await?;
        let by = actor.clone();
        let response = idempotency::write(&self.db, key, move |txn| {
            Box::pin(async move {
                let (dispute, created) = Dispute::open(spec, tradewatch_common::now(), &by);
                store::insert_dispute(txn, &dispute, &created).await?;
                let dispute = dispute_to_proto(&dispute);
                let change = watch::change(pb::DisputeChangeKind::Created, &dispute, &by);
                feed::append(txn, watch::TOPIC, tradewatch_common::now(), &change).await?;
                Ok(pb::CreateDisputeResponse { dispute: Some(dispute) })
            })
        })
        .await?;
        self.feed.wake();
        let id = response.dispute.as_ref().map(|d| d.id.as_str()).unwrap_or_default();
        audit(&actor, "CreateDispute", "dispute", id, request_id);
        Ok(Response::new(response))
    }

    async fn get_dispute(&self, request: Request<pb::GetDisputeRequest>) -> Reply<pb::GetDisputeResponse> {
        let id = validate::id("id", &request.get_ref().id)?;
        let db = &self.db;
        let load = || async move { Ok(store::get_dispute(db, id).await?.map(|d| dispute_to_proto(&d))) };
        let d = self.cache.get(&id.to_string(), load).await?.ok_or_else(|| Error::not_found("dispute", id))?;
        Ok(Response::new(pb::GetDisputeResponse { dispute: Some(pb::Dispute::clone(&d)) }))
    }

    async fn batch_get_disputes(
        &self,
        request: Request<pb::BatchGetDisputesRequest>,
    ) -> Reply<pb::BatchGetDisputesResponse> {
        let ids = batch::parse_ids(&request.get_ref().ids)?;
        let found = store::get_disputes(&self.db, &ids).await?;
        let disputes: Vec<_> =
            batch::in_request_order("dispute", &ids, &found, |d| d.id)?.iter().map(dispute_to_proto).collect();
        batch::check_size("dispute", &disputes, self.page_budget)?;
        Ok(Response::new(pb::BatchGetDisputesResponse { disputes }))
    }

    async fn list_disputes(&self, request: Request<pb::ListDisputesRequest>) -> Reply<pb::ListDisputesResponse> {
        let (filter, page) = convert::list_disputes(request.get_ref())?;
        let (disputes, mut next_page_token) = store::list_disputes(&self.db, &filter, &page).await?;
        let mut disputes: Vec<_> = disputes.iter().map(dispute_to_proto).collect();
        page.fit(&mut disputes, &mut next_page_token, self.page_budget, |d| d.id.clone());
        Ok(Response::new(pb::ListDisputesResponse { disputes, next_page_token }))
    }

    async fn update_dispute(&self, request: Request<pb::UpdateDisputeRequest>) -> Reply<pb::UpdateDisputeResponse> {
        let deadline = Deadline::of(&request);
        let actor = actor(&request);
        let (id, etag, patch) = convert::update_dispute(request.get_ref())?;
        if let Some(ids) = &patch.measure_ids {
            self.check_measures("dispute.measure_ids", ids, deadline).await?;
        }
        let by = actor.clone();
        let response = idempotency::write(&self.db, None, move |txn| {
            Box::pin(async move {
                let mut d =
                    store::get_dispute_for_update(txn, id).await?.ok_or_else(|| Error::not_found("dispute", id))?;
                etag::check(&etag, d.version, "dispute", id)?;
                let links = patch.changes_links();
                d.update(patch).map_err(|e| e.within("dispute"))?;
                store::update_dispute(txn, &mut d, links, &by).await?;
                let dispute = dispute_to_proto(&d);
                let change = watch::change(pb::DisputeChangeKind::Updated, &dispute, &by);
                feed::append(txn, watch::TOPIC, tradewatch_common::now(), &change).await?;
                Ok(pb::UpdateDisputeResponse { dispute: Some(dispute) })
            })
        })
        .await?;
        self.feed.wake();
        audit(&actor, "UpdateDispute", "dispute", id, None);
        Ok(Response::new(response))
    }

    async fn advance_dispute(&self, request: Request<pb::AdvanceDisputeRequest>) -> Reply<pb::AdvanceDisputeResponse> {
        let actor = actor(&request);
        let mut req = request.into_inner();
        let a = convert::advance_dispute(&req, today())?;
        req.request_id.clear();
        let key = Key::new("AdvanceDispute", a.request_id, &req);
        let (id, request_id, by) = (a.id, a.request_id, actor.clone());
        let response = idempotency::write(&self.db, key, move |txn| {
            Box::pin(async move {
                let mut d =
                    store::get_dispute_for_update(txn, a.id).await?.ok_or_else(|| Error::not_found("dispute", a.id))?;
                etag::check(&req.etag, d.version, "dispute", a.id)?;
                let event = d.advance(a.to, a.on, &a.note, tradewatch_common::now(), &by)?;
                store::update_dispute(txn, &mut d, false, &by).await?;
                store::insert_event(txn, &event).await?;
                let dispute = dispute_to_proto(&d);
                let change = watch::change(pb::DisputeChangeKind::StageChanged, &dispute, &by);
                feed::append(txn, watch::TOPIC, tradewatch_common::now(), &change).await?;
                Ok(pb::AdvanceDisputeResponse { dispute: Some(dispute), event: Some(event_to_proto(&event)) })
            })
        })
        .await?;
        self.feed.wake();
        audit(&actor, "AdvanceDispute", "dispute", id, request_id);
        Ok(Response::new(response))
    }

    async fn record_dispute_event(
        &self,
        request: Request<pb::RecordDisputeEventRequest>,
    ) -> Reply<pb::RecordDisputeEventResponse> {
        let actor = actor(&request);
        let mut req = request.into_inner();
        let e = convert::record_dispute_event(&req)?;
        req.request_id.clear();
        let key = Key::new("RecordDisputeEvent", e.request_id, &req);
        let (id, request_id, by) = (e.dispute_id, e.request_id, actor.clone());
        let response = idempotency::write(&self.db, key, move |txn| {
            Box::pin(async move {
                // Locked, so that the change carries the dispute as the
                // writes before it in the feed left it.
                let d = store::get_dispute_for_update(txn, e.dispute_id)
                    .await?
                    .ok_or_else(|| Error::not_found("dispute", e.dispute_id))?;
                let event = d
                    .record(e.kind, e.on, e.description, tradewatch_common::now(), &by)
                    .map_err(|err| err.within("event"))?;
                store::insert_event(txn, &event).await?;
                let change = watch::change(pb::DisputeChangeKind::EventRecorded, &dispute_to_proto(&d), &by);
                feed::append(txn, watch::TOPIC, tradewatch_common::now(), &change).await?;
                Ok(pb::RecordDisputeEventResponse { event: Some(event_to_proto(&event)) })
            })
        })
        .await?;
        self.feed.wake();
        audit(&actor, "RecordDisputeEvent", "dispute", id, request_id);
        Ok(Response::new(response))
    }

    async fn list_dispute_events(
        &self,
        request: Request<pb::ListDisputeEventsRequest>,
    ) -> Reply<pb::ListDisputeEventsResponse> {
        let (id, page) = convert::list_dispute_events(request.get_ref())?;
        if !store::dispute_exists(&self.db, id).await? {
            return Err(Error::not_found("dispute", id).into());
        }
        let (events, mut next_page_token) = store::list_events(&self.db, id, &page).await?;
        let mut protos: Vec<_> = events.iter().map(event_to_proto).collect();
        page.fit_at(&mut protos, &mut next_page_token, self.page_budget, |i| {
            paging::dated_cursor(events[i].occurred_on, events[i].id)
        });
        Ok(Response::new(pb::ListDisputeEventsResponse { events: protos, next_page_token }))
    }

    type WatchDisputesStream = feed::Stream<pb::WatchDisputesResponse>;

    async fn watch_disputes(&self, request: Request<pb::WatchDisputesRequest>) -> Reply<Self::WatchDisputesStream> {
        let filters = watch::watch_disputes(request.get_ref())?;
        Ok(Response::new(self.feed.watch(&request.get_ref().start_after, filters).await?))
    }
}
