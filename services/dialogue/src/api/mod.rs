//! The gRPC API of the dialogue service: turns requests into domain values,
//! checks links with the dispute and tariff services, runs each write in one
//! transaction (a fulfilled effect goes to the outbox in the same one), and
//! answers.

pub mod convert;

use std::sync::Arc;

use sea_orm::DatabaseConnection;
use tokio::sync::Notify;
use tonic::{Request, Response, Status};
use tradewatch_common::{
    Error,
    client::{Deadline, Peer},
    etag,
    idempotency::{self, Key},
    paging::{self, Page},
    proto::dialogue::{self as pb, dialogue_service_server::DialogueService},
    today,
    types::{Economy, parse_date, parse_id, parse_request_id},
    validate::{Violations, optional_enum, required_enum},
};
use uuid::Uuid;

use self::convert::*;
use crate::{
    domain::{Commitment, Session, SessionStatus, agenda_disputes, agenda_measures},
    store::{self, CommitmentFilter, SessionFilter},
};

#[derive(Clone)]
pub struct DialogueApi {
    db: DatabaseConnection,
    dispute: Peer,
    tariff: Peer,
    /// Wakes the relay when an effect is queued.
    relay: Arc<Notify>,
    /// What the items of one list page may take: under the message limit.
    page_budget: usize,
}

type Reply<T> = Result<Response<T>, Status>;

impl DialogueApi {
    pub fn new(
        db: DatabaseConnection,
        dispute: Peer,
        tariff: Peer,
        relay: Arc<Notify>,
        max_message_bytes: usize,
    ) -> Self {
        Self { db, dispute, tariff, relay, page_budget: paging::response_budget(max_message_bytes) }
    }

    /// Asks the dispute and tariff services, at once and in batches, whether
    /// the linked ids exist; INVALID_ARGUMENT names each one that does not,
    /// UNAVAILABLE says a service could not be asked.
    async fn check_links(
        &self,
        disputes: &[(String, Uuid)],
        measures: &[(String, Uuid)],
        deadline: Deadline,
    ) -> Result<(), Error> {
        let ids = |links: &[(String, Uuid)]| links.iter().map(|(_, id)| *id).collect::<Vec<_>>();
        let (dispute_ids, measure_ids) = (ids(disputes), ids(measures));
        let (missing_disputes, missing_measures) = tokio::join!(
            async {
                if dispute_ids.is_empty() {
                    Ok(vec![])
                } else {
                    self.dispute.missing_disputes(&dispute_ids, deadline).await
                }
            },
            async {
                if measure_ids.is_empty() {
                    Ok(vec![])
                } else {
                    self.tariff.missing_measures(&measure_ids, deadline).await
                }
            },
        );
        let (missing_disputes, missing_measures) = (missing_disputes?, missing_measures?);
        let mut v = Violations::new();
        for (field, id) in disputes.iter().filter(|(_, id)| missing_disputes.contains(id)) {
            v.add(field, format!("{id} is not a known dispute"));
        }
        for (field, id) in measures.iter().filter(|(_, id)| missing_measures.contains(id)) {
            v.add(field, format!("{id} is not a known tariff measure"));
        }
        v.finish()
    }
}

fn prefixed(prefix: &str, links: Vec<(String, Uuid)>) -> Vec<(String, Uuid)> {
    links.into_iter().map(|(f, id)| (format!("{prefix}.{f}"), id)).collect()
}

fn id_field(v: &mut Violations, field: &str, raw: &str) -> Option<Uuid> {
    v.check(field, parse_id(raw))
}

#[tonic::async_trait]
impl DialogueService for DialogueApi {
    async fn create_session(&self, request: Request<pb::CreateSessionRequest>) -> Reply<pb::CreateSessionResponse> {
        let deadline = Deadline::of(&request);
        let mut req = request.into_inner();
        let mut v = Violations::new();
        let request_id = v.check("request_id", parse_request_id(&req.request_id));
        let (spec, status) = match &req.session {
            Some(s) => {
                let status = if s.status == 0 {
                    Some(SessionStatus::Planned)
                } else {
                    required_enum(&mut v, "session.status", s.status, session_status)
                };
                (session_spec(&mut v, "session", s), status)
            }
            None => {
                v.add("session", "is required");
                (None, None)
            }
        };
        let (spec, status) = v.finish_with(spec.zip(status))?;
        req.request_id.clear();
        let key = Key::new("CreateSession", request_id.flatten(), &req);
        if let Some(done) = idempotency::replay(&self.db, key.as_ref()).await? {
            return Ok(Response::new(done));
        }
        self.check_links(
            &prefixed("session", spec.agenda_disputes()),
            &prefixed("session", spec.agenda_measures()),
            deadline,
        )
        .await?;
        let session = Session::new(spec, status, tradewatch_common::now()).map_err(|e| e.within("session"))?;
        let response = idempotency::write(&self.db, key, move |txn| {
            Box::pin(async move {
                store::insert_session(txn, &session).await?;
                Ok(pb::CreateSessionResponse { session: Some(session_to_proto(&session)) })
            })
        })
        .await?;
        Ok(Response::new(response))
    }

    async fn get_session(&self, request: Request<pb::GetSessionRequest>) -> Reply<pb::GetSessionResponse> {
        let req = request.into_inner();
        let mut v = Violations::new();
        let id = id_field(&mut v, "id", &req.id);
        let id = v.finish_with(id)?;
        let s = store::get_session(&self.db, id).await?.ok_or_else(|| Error::not_found("session", id))?;
        Ok(Response::new(pb::GetSessionResponse { session: Some(session_to_proto(&s)) }))
    }

    async fn list_sessions(&self, request: Request<pb::ListSessionsRequest>) -> Reply<pb::ListSessionsResponse> {
        let req = request.into_inner();
        let mut v = Violations::new();
        let filter = SessionFilter {
            track: optional_enum(&mut v, "track", req.track, track),
            level: optional_enum(&mut v, "level", req.level, level),
            status: optional_enum(&mut v, "status", req.status, session_status),
            economy: v.filter("economy", &req.economy, Economy::parse),
            dispute_id: v.filter("dispute_id", &req.dispute_id, parse_id),
            measure_id: v.filter("measure_id", &req.measure_id, parse_id),
            from: v.filter("starts_on_from", &req.starts_on_from, parse_date),
            to: v.filter("starts_on_to", &req.starts_on_to, parse_date),
        };
        let filters = pb::ListSessionsRequest { page_size: 0, page_token: String::new(), ..req.clone() };
        let page = Page::parse(&mut v, req.page_size, &req.page_token, &filters);
        v.finish()?;
        let (sessions, mut next_page_token) = store::list_sessions(&self.db, &filter, &page).await?;
        let mut sessions: Vec<_> = sessions.iter().map(session_to_proto).collect();
        page.fit(&mut sessions, &mut next_page_token, self.page_budget, |s| s.id.clone());
        Ok(Response::new(pb::ListSessionsResponse { sessions, next_page_token }))
    }

    async fn update_session(&self, request: Request<pb::UpdateSessionRequest>) -> Reply<pb::UpdateSessionResponse> {
        let deadline = Deadline::of(&request);
        let (id, etag, patch) = convert::update_session(request.get_ref())?;
        // Links on a new agenda are checked before the transaction.
        if let Some(agenda) = &patch.agenda {
            let disputes = prefixed("session", agenda_disputes(agenda));
            let measures = prefixed("session", agenda_measures(agenda));
            self.check_links(&disputes, &measures, deadline).await?;
        }
        let response = idempotency::write(&self.db, None, move |txn| {
            Box::pin(async move {
                let mut s =
                    store::get_session_for_update(txn, id).await?.ok_or_else(|| Error::not_found("session", id))?;
                etag::check(&etag, s.version, "session", id)?;
                let index = patch.changes_index();
                s.update(patch).map_err(|e| e.within("session"))?;
                store::update_session(txn, &mut s, index).await?;
                Ok(pb::UpdateSessionResponse { session: Some(session_to_proto(&s)) })
            })
        })
        .await?;
        Ok(Response::new(response))
    }

    async fn set_session_status(
        &self,
        request: Request<pb::SetSessionStatusRequest>,
    ) -> Reply<pb::SetSessionStatusResponse> {
        let mut req = request.into_inner();
        let mut v = Violations::new();
        let id = id_field(&mut v, "id", &req.id);
        let status = required_enum(&mut v, "status", req.status, session_status);
        let request_id = v.check("request_id", parse_request_id(&req.request_id));
        let (id, status) = v.finish_with(id.zip(status))?;
        let sent_etag = req.etag.clone();
        req.request_id.clear();
        let key = Key::new("SetSessionStatus", request_id.flatten(), &req);
        let response = idempotency::write(&self.db, key, move |txn| {
            Box::pin(async move {
                let mut s =
                    store::get_session_for_update(txn, id).await?.ok_or_else(|| Error::not_found("session", id))?;
                etag::check(&sent_etag, s.version, "session", id)?;
                s.set_status(status)?;
                store::update_session(txn, &mut s, false).await?;
                Ok(pb::SetSessionStatusResponse { session: Some(session_to_proto(&s)) })
            })
        })
        .await?;
        Ok(Response::new(response))
    }

    async fn add_commitment(&self, request: Request<pb::AddCommitmentRequest>) -> Reply<pb::AddCommitmentResponse> {
        let deadline = Deadline::of(&request);
        let mut req = request.into_inner();
        let mut v = Violations::new();
        let session_id = id_field(&mut v, "session_id", &req.session_id);
        let request_id = v.check("request_id", parse_request_id(&req.request_id));
        let spec = match &req.commitment {
            Some(c) => commitment_spec(&mut v, "commitment", c),
            None => {
                v.add("commitment", "is required");
                None
            }
        };
        let (session_id, spec) = v.finish_with(session_id.zip(spec))?;
        req.request_id.clear();
        let key = Key::new("AddCommitment", request_id.flatten(), &req);
        if let Some(done) = idempotency::replay(&self.db, key.as_ref()).await? {
            return Ok(Response::new(done));
        }
        let session =
            store::get_session(&self.db, session_id).await?.ok_or_else(|| Error::not_found("session", session_id))?;
        let mut v = Violations::new();
        let spec = v.rules("commitment", spec, |s| s.violations_in(&session.spec));
        let spec = v.finish_with(spec)?;
        let disputes: Vec<_> = spec.dispute_id.map(|id| ("commitment.dispute_id".to_owned(), id)).into_iter().collect();
        let measures: Vec<_> = spec.measure_id.map(|id| ("commitment.measure_id".to_owned(), id)).into_iter().collect();
        self.check_links(&disputes, &measures, deadline).await?;
        let commitment = Commitment::new(session_id, spec, tradewatch_common::now());
        let response = idempotency::write(&self.db, key, move |txn| {
            Box::pin(async move {
                // The session may have gone since it was read: read it again.
                store::get_session(txn, session_id).await?.ok_or_else(|| Error::not_found("session", session_id))?;
                store::insert_commitment(txn, &commitment).await?;
                Ok(pb::AddCommitmentResponse { commitment: Some(commitment_to_proto(&commitment)) })
            })
        })
        .await?;
        Ok(Response::new(response))
    }

    async fn get_commitment(&self, request: Request<pb::GetCommitmentRequest>) -> Reply<pb::GetCommitmentResponse> {
        let req = request.into_inner();
        let mut v = Violations::new();
        let id = id_field(&mut v, "id", &req.id);
        let id = v.finish_with(id)?;
        let c = store::get_commitment(&self.db, id).await?.ok_or_else(|| Error::not_found("commitment", id))?;
        Ok(Response::new(pb::GetCommitmentResponse { commitment: Some(commitment_to_proto(&c)) }))
    }

    async fn list_commitments(
        &self,
        request: Request<pb::ListCommitmentsRequest>,
    ) -> Reply<pb::ListCommitmentsResponse> {
        let req = request.into_inner();
        let mut v = Violations::new();
        let filter = CommitmentFilter {
            session_id: v.filter("session_id", &req.session_id, parse_id),
            owner_economy: v.filter("owner_economy", &req.owner_economy, Economy::parse),
            status: optional_enum(&mut v, "status", req.status, commitment_status),
            dispute_id: v.filter("dispute_id", &req.dispute_id, parse_id),
            measure_id: v.filter("measure_id", &req.measure_id, parse_id),
            overdue_on: v.filter("overdue_on", &req.overdue_on, parse_date),
        };
        let filters = pb::ListCommitmentsRequest { page_size: 0, page_token: String::new(), ..req.clone() };
        let page = Page::parse(&mut v, req.page_size, &req.page_token, &filters);
        v.finish()?;
        let (commitments, mut next_page_token) = store::list_commitments(&self.db, &filter, &page).await?;
        let mut commitments: Vec<_> = commitments.iter().map(commitment_to_proto).collect();
        page.fit(&mut commitments, &mut next_page_token, self.page_budget, |c| c.id.clone());
        Ok(Response::new(pb::ListCommitmentsResponse { commitments, next_page_token }))
    }

    async fn set_commitment_status(
        &self,
        request: Request<pb::SetCommitmentStatusRequest>,
    ) -> Reply<pb::SetCommitmentStatusResponse> {
        let mut req = request.into_inner();
        let mut v = Violations::new();
        let id = id_field(&mut v, "id", &req.id);
        let status = required_enum(&mut v, "status", req.status, commitment_status);
        let effect_on = v.optional("effect_on", &req.effect_on, parse_date);
        let request_id = v.check("request_id", parse_request_id(&req.request_id));
        let ((id, status), effect_on) = v.finish_with(id.zip(status).zip(effect_on))?;
        let sent_etag = req.etag.clone();
        req.request_id.clear();
        let key = Key::new("SetCommitmentStatus", request_id.flatten(), &req);
        let today = today();
        let response = idempotency::write(&self.db, key, move |txn| {
            Box::pin(async move {
                let mut c = store::get_commitment_for_update(txn, id)
                    .await?
                    .ok_or_else(|| Error::not_found("commitment", id))?;
                etag::check(&sent_etag, c.version, "commitment", id)?;
                let order = c.set_status(status, effect_on, today)?;
                store::update_commitment(txn, &mut c).await?;
                if let Some(order) = &order {
                    store::enqueue(txn, order).await?;
                }
                Ok(pb::SetCommitmentStatusResponse { commitment: Some(commitment_to_proto(&c)) })
            })
        })
        .await?;
        self.relay.notify_one();
        Ok(Response::new(response))
    }
}
