//! WatchCommitments: the commitments' change feed, through the request's
//! filters.

use tradewatch_common::{
    Error,
    feed::Responder,
    proto::dialogue as pb,
    types::{Economy, parse_id, timestamp},
    validate::Violations,
};

/// The feed topic of the commitments' changes.
pub const TOPIC: &str = "commitment";

/// The change a write appends to the feed: `commitment` as it stands after it.
pub fn change(kind: pb::CommitmentChangeKind, commitment: &pb::Commitment, actor: &str) -> pb::CommitmentChange {
    pb::CommitmentChange {
        kind: kind.into(),
        change_time: Some(timestamp(tradewatch_common::now())),
        actor: actor.to_owned(),
        commitment: Some(commitment.clone()),
    }
}

/// The filters of one watcher.
pub struct CommitmentWatch {
    session_id: Option<String>,
    owner_economy: Option<String>,
}

pub fn watch_commitments(req: &pb::WatchCommitmentsRequest) -> Result<CommitmentWatch, Error> {
    let mut v = Violations::new();
    let watch = CommitmentWatch {
        session_id: v.filter("session_id", &req.session_id, parse_id).map(|id| id.to_string()),
        owner_economy: v.filter("owner_economy", &req.owner_economy, Economy::parse).map(|e| e.to_string()),
    };
    v.finish()?;
    Ok(watch)
}

impl CommitmentWatch {
    /// The same rules as ListCommitments' filters of the same names.
    fn keeps(&self, c: &pb::Commitment) -> bool {
        self.session_id.as_ref().is_none_or(|id| &c.session_id == id)
            && self.owner_economy.as_ref().is_none_or(|e| c.owner_economies.contains(e))
    }
}

impl Responder for CommitmentWatch {
    const TOPIC: &'static str = TOPIC;
    type Change = pb::CommitmentChange;
    type Response = pb::WatchCommitmentsResponse;

    fn change(&self, token: String, change: pb::CommitmentChange) -> Option<Self::Response> {
        let keep = change.commitment.as_ref().is_some_and(|c| self.keeps(c));
        keep.then_some(pb::WatchCommitmentsResponse { resume_token: token, change: Some(change) })
    }

    fn heartbeat(&self, token: String) -> Self::Response {
        pb::WatchCommitmentsResponse { resume_token: token, change: None }
    }
}
