//! The gRPC API of the dispute service: turns requests into domain values,
//! checks links to tariff measures with the tariff service, runs each write
//! in one transaction, and answers.

pub mod convert;

use sea_orm::DatabaseConnection;
use tonic::{Request, Response, Status};
use tradewatch_common::{
    Error, batch,
    client::{self, Deadline, Peer},
    etag,
    idempotency::{self, Key},
    paging::{self, Page},
    proto::dispute::{self as pb, dispute_service_server::DisputeService},
    today,
    types::{Economy, HsCode, parse_date, parse_id, parse_request_id},
    validate::{Violations, optional_enum, required_enum},
};
use uuid::Uuid;

use self::convert::*;
use crate::{
    domain::Dispute,
    store::{self, DisputeFilter},
};

#[derive(Clone)]
pub struct DisputeApi {
    db: DatabaseConnection,
    tariff: Peer,
    /// What the items of one list page may take: under the message limit.
    page_budget: usize,
}

impl DisputeApi {
    pub fn new(db: DatabaseConnection, tariff: Peer, max_message_bytes: usize) -> Self {
        Self { db, tariff, page_budget: paging::response_budget(max_message_bytes) }
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

fn id_field(v: &mut Violations, field: &str, raw: &str) -> Option<Uuid> {
    v.check(field, parse_id(raw))
}

#[tonic::async_trait]
impl DisputeService for DisputeApi {
    async fn create_dispute(&self, request: Request<pb::CreateDisputeRequest>) -> Reply<pb::CreateDisputeResponse> {
        let deadline = Deadline::of(&request);
        let mut req = request.into_inner();
        let mut v = Violations::new();
        let request_id = v.check("request_id", parse_request_id(&req.request_id));
        let spec = match &req.dispute {
            Some(d) => dispute_spec(&mut v, "dispute", d),
            None => {
                v.add("dispute", "is required");
                None
            }
        };
        let spec = v.finish_with(spec)?;
        req.request_id.clear();
        let key = Key::new("CreateDispute", request_id.flatten(), &req);
        if let Some(done) = idempotency::replay(&self.db, key.as_ref()).await? {
            return Ok(Response::new(done));
        }
        self.check_measures("dispute.measure_ids", &spec.measure_ids, deadline).await?;
        let response = idempotency::write(&self.db, key, move |txn| {
            Box::pin(async move {
                let (dispute, created) = Dispute::open(spec, tradewatch_common::now());
                store::insert_dispute(txn, &dispute, &created).await?;
                Ok(pb::CreateDisputeResponse { dispute: Some(dispute_to_proto(&dispute)) })
            })
        })
        .await?;
        Ok(Response::new(response))
    }

    async fn get_dispute(&self, request: Request<pb::GetDisputeRequest>) -> Reply<pb::GetDisputeResponse> {
        let req = request.into_inner();
        let mut v = Violations::new();
        let id = id_field(&mut v, "id", &req.id);
        let id = v.finish_with(id)?;
        let d = store::get_dispute(&self.db, id).await?.ok_or_else(|| Error::not_found("dispute", id))?;
        Ok(Response::new(pb::GetDisputeResponse { dispute: Some(dispute_to_proto(&d)) }))
    }

    async fn batch_get_disputes(
        &self,
        request: Request<pb::BatchGetDisputesRequest>,
    ) -> Reply<pb::BatchGetDisputesResponse> {
        let req = request.into_inner();
        let mut v = Violations::new();
        let ids = batch::ids(&mut v, &req.ids);
        v.finish()?;
        let found = store::get_disputes(&self.db, &ids).await?;
        let disputes: Vec<_> =
            batch::in_request_order("dispute", &ids, &found, |d| d.id)?.iter().map(dispute_to_proto).collect();
        batch::check_size("dispute", &disputes, self.page_budget)?;
        Ok(Response::new(pb::BatchGetDisputesResponse { disputes }))
    }

    async fn list_disputes(&self, request: Request<pb::ListDisputesRequest>) -> Reply<pb::ListDisputesResponse> {
        let req = request.into_inner();
        let mut v = Violations::new();
        let filter = DisputeFilter {
            economy: v.filter("economy", &req.economy, Economy::parse),
            complainant: v.filter("complainant", &req.complainant, Economy::parse),
            respondent: v.filter("respondent", &req.respondent, Economy::parse),
            stage: optional_enum(&mut v, "stage", req.stage, stage),
            forum: optional_enum(&mut v, "forum", req.forum, forum),
            hs_code: v.filter("hs_code", &req.hs_code, HsCode::parse),
            measure_id: v.filter("measure_id", &req.measure_id, parse_id),
            open: req.open,
        };
        let filters = pb::ListDisputesRequest { page_size: 0, page_token: String::new(), ..req.clone() };
        let page = Page::parse(&mut v, req.page_size, &req.page_token, &filters);
        v.finish()?;
        let (disputes, mut next_page_token) = store::list_disputes(&self.db, &filter, &page).await?;
        let mut disputes: Vec<_> = disputes.iter().map(dispute_to_proto).collect();
        page.fit(&mut disputes, &mut next_page_token, self.page_budget, |d| d.id.clone());
        Ok(Response::new(pb::ListDisputesResponse { disputes, next_page_token }))
    }

    async fn update_dispute(&self, request: Request<pb::UpdateDisputeRequest>) -> Reply<pb::UpdateDisputeResponse> {
        let deadline = Deadline::of(&request);
        let (id, etag, patch) = convert::update_dispute(request.get_ref())?;
        if let Some(ids) = &patch.measure_ids {
            self.check_measures("dispute.measure_ids", ids, deadline).await?;
        }
        let response = idempotency::write(&self.db, None, move |txn| {
            Box::pin(async move {
                let mut d =
                    store::get_dispute_for_update(txn, id).await?.ok_or_else(|| Error::not_found("dispute", id))?;
                etag::check(&etag, d.version, "dispute", id)?;
                let links = patch.changes_links();
                d.update(patch).map_err(|e| e.within("dispute"))?;
                store::update_dispute(txn, &mut d, links).await?;
                Ok(pb::UpdateDisputeResponse { dispute: Some(dispute_to_proto(&d)) })
            })
        })
        .await?;
        Ok(Response::new(response))
    }

    async fn advance_dispute(&self, request: Request<pb::AdvanceDisputeRequest>) -> Reply<pb::AdvanceDisputeResponse> {
        let mut req = request.into_inner();
        let mut v = Violations::new();
        let id = id_field(&mut v, "id", &req.id);
        let to = required_enum(&mut v, "to_stage", req.to_stage, stage);
        let on = v.or_default("occurred_on", &req.occurred_on, today(), parse_date);
        let note = v.optional_text("note", &req.note, 2_000);
        let request_id = v.check("request_id", parse_request_id(&req.request_id));
        let (((id, to), on), note) = v.finish_with(id.zip(to).zip(on).zip(note))?;
        let sent_etag = req.etag.clone();
        req.request_id.clear();
        let key = Key::new("AdvanceDispute", request_id.flatten(), &req);
        let response = idempotency::write(&self.db, key, move |txn| {
            Box::pin(async move {
                let mut d =
                    store::get_dispute_for_update(txn, id).await?.ok_or_else(|| Error::not_found("dispute", id))?;
                etag::check(&sent_etag, d.version, "dispute", id)?;
                let event = d.advance(to, on, &note, tradewatch_common::now())?;
                store::update_dispute(txn, &mut d, false).await?;
                store::insert_event(txn, &event).await?;
                Ok(pb::AdvanceDisputeResponse {
                    dispute: Some(dispute_to_proto(&d)),
                    event: Some(event_to_proto(&event)),
                })
            })
        })
        .await?;
        Ok(Response::new(response))
    }

    async fn record_dispute_event(
        &self,
        request: Request<pb::RecordDisputeEventRequest>,
    ) -> Reply<pb::RecordDisputeEventResponse> {
        let mut req = request.into_inner();
        let mut v = Violations::new();
        let dispute_id = id_field(&mut v, "dispute_id", &req.dispute_id);
        let request_id = v.check("request_id", parse_request_id(&req.request_id));
        let event = match &req.event {
            None => {
                v.add("event", "is required");
                None
            }
            Some(e) => {
                let kind = required_enum(&mut v, "event.kind", e.kind, event_kind);
                let on = v.check("event.occurred_on", parse_date(&e.occurred_on));
                let description = v.text("event.description", &e.description, 10_000);
                kind.zip(on).zip(description)
            }
        };
        let (dispute_id, ((kind, on), description)) = v.finish_with(dispute_id.zip(event))?;
        req.request_id.clear();
        let key = Key::new("RecordDisputeEvent", request_id.flatten(), &req);
        let response = idempotency::write(&self.db, key, move |txn| {
            Box::pin(async move {
                let d = store::get_dispute(txn, dispute_id)
                    .await?
                    .ok_or_else(|| Error::not_found("dispute", dispute_id))?;
                let event = d.record(kind, on, description, tradewatch_common::now()).map_err(|e| e.within("event"))?;
                store::insert_event(txn, &event).await?;
                Ok(pb::RecordDisputeEventResponse { event: Some(event_to_proto(&event)) })
            })
        })
        .await?;
        Ok(Response::new(response))
    }

    async fn list_dispute_events(
        &self,
        request: Request<pb::ListDisputeEventsRequest>,
    ) -> Reply<pb::ListDisputeEventsResponse> {
        let req = request.into_inner();
        let mut v = Violations::new();
        let id = id_field(&mut v, "dispute_id", &req.dispute_id);
        let filters = pb::ListDisputeEventsRequest { page_size: 0, page_token: String::new(), ..req.clone() };
        let page = Page::parse(&mut v, req.page_size, &req.page_token, &filters);
        let id = v.finish_with(id)?;
        if !store::dispute_exists(&self.db, id).await? {
            return Err(Error::not_found("dispute", id).into());
        }
        let (events, next_page_token) = store::list_events(&self.db, id, &page).await?;
        Ok(Response::new(pb::ListDisputeEventsResponse {
            events: events.iter().map(event_to_proto).collect(),
            next_page_token,
        }))
    }
}
