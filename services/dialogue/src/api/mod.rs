//! The gRPC API of the dialogue service: turns requests into domain values,
//! checks links with the dispute and tariff services, runs each write in one
//! transaction (a fulfilled effect goes to the outbox in the same one), and
//! answers.

mod commitments;
pub mod convert;
mod sessions;
pub mod watch;

use sea_orm::DatabaseConnection;
use tonic::{Request, Response, Status};
use tradewatch_common::{
    Error,
    auth::{actor, audit},
    client::{Deadline, Peer},
    etag,
    feed::{self, Feed},
    idempotency::{self, Key},
    paging,
    proto::dialogue::{self as pb, dialogue_service_server::DialogueService},
    today,
    validate::{self, Violations},
};
use uuid::Uuid;

use self::convert::*;
use crate::{
    domain::{Commitment, Session, agenda_disputes, agenda_measures},
    store,
};

#[derive(Clone)]
pub struct DialogueApi {
    db: DatabaseConnection,
    /// The change feed commitment writes append to and WatchCommitments streams.
    feed: Feed,
    /// The sessions GetSession answers from, as fresh as the feed's head.
    sessions: std::sync::Arc<feed::Cache<pb::DialogueSession, pb::DialogueSession>>,
    dispute: Peer,
    tariff: Peer,
    /// Wakes the relay when an effect is queued.
    relay: crate::relay::Wake,
    /// What the items of one list page may take: under the message limit.
    page_budget: usize,
}

type Reply<T> = Result<Response<T>, Status>;

impl DialogueApi {
    pub fn new(
        db: DatabaseConnection,
        feed: Feed,
        dispute: Peer,
        tariff: Peer,
        relay: crate::relay::Wake,
        max_message_bytes: usize,
    ) -> Self {
        let sessions =
            std::sync::Arc::new(feed::Cache::new(db.clone(), sessions::SESSION_TOPIC, |s: &pb::DialogueSession| {
                Some(s.id.clone())
            }));
        Self { db, feed, sessions, dispute, tariff, relay, page_budget: paging::response_budget(max_message_bytes) }
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

#[tonic::async_trait]
impl DialogueService for DialogueApi {
    async fn create_session(&self, request: Request<pb::CreateSessionRequest>) -> Reply<pb::CreateSessionResponse> {
        sessions::create_session(self, request).await
    }

    async fn get_session(&self, request: Request<pb::GetSessionRequest>) -> Reply<pb::GetSessionResponse> {
        sessions::get_session(self, request).await
    }

    async fn list_sessions(&self, request: Request<pb::ListSessionsRequest>) -> Reply<pb::ListSessionsResponse> {
        sessions::list_sessions(self, request).await
    }

    async fn update_session(&self, request: Request<pb::UpdateSessionRequest>) -> Reply<pb::UpdateSessionResponse> {
        sessions::update_session(self, request).await
    }

    async fn set_session_status(
        &self,
        request: Request<pb::SetSessionStatusRequest>,
    ) -> Reply<pb::SetSessionStatusResponse> {
        sessions::set_session_status(self, request).await
    }

    async fn add_commitment(&self, request: Request<pb::AddCommitmentRequest>) -> Reply<pb::AddCommitmentResponse> {
        commitments::add_commitment(self, request).await
    }

    async fn get_commitment(&self, request: Request<pb::GetCommitmentRequest>) -> Reply<pb::GetCommitmentResponse> {
        commitments::get_commitment(self, request).await
    }

    async fn list_commitments(
        &self,
        request: Request<pb::ListCommitmentsRequest>,
    ) -> Reply<pb::ListCommitmentsResponse> {
        commitments::list_commitments(self, request).await
    }

    async fn set_commitment_status(
        &self,
        request: Request<pb::SetCommitmentStatusRequest>,
    ) -> Reply<pb::SetCommitmentStatusResponse> {
        commitments::set_commitment_status(self, request).await
    }

    type WatchCommitmentsStream = feed::Stream<pb::WatchCommitmentsResponse>;

    async fn watch_commitments(
        &self,
        request: Request<pb::WatchCommitmentsRequest>,
    ) -> Reply<Self::WatchCommitmentsStream> {
        let filters = watch::watch_commitments(request.get_ref())?;
        Ok(Response::new(self.feed.watch(&request.get_ref().start_after, filters).await?))
    }
}
