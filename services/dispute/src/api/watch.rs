//! WatchDisputes: the disputes' change feed, through the request's filters.

use tradewatch_common::{
    Error,
    feed::Responder,
    proto::dispute as pb,
    types::{Economy, parse_id, timestamp},
    validate::Violations,
};

/// The feed topic of the disputes' changes.
pub const TOPIC: &str = "dispute";

/// The change a write appends to the feed: `dispute` as it stands after it.
pub fn change(kind: pb::DisputeChangeKind, dispute: &pb::Dispute, actor: &str) -> pb::DisputeChange {
    pb::DisputeChange {
        kind: kind.into(),
        change_time: Some(timestamp(tradewatch_common::now())),
        actor: actor.to_owned(),
        dispute: Some(dispute.clone()),
    }
}

/// The filters of one watcher.
pub struct DisputeWatch {
    economy: Option<String>,
    complainant: Option<String>,
    respondent: Option<String>,
    measure_id: Option<String>,
}

pub fn watch_disputes(req: &pb::WatchDisputesRequest) -> Result<DisputeWatch, Error> {
    let mut v = Violations::new();
    let watch = DisputeWatch {
        economy: v.filter("economy", &req.economy, Economy::parse).map(|e| e.to_string()),
        complainant: v.filter("complainant", &req.complainant, Economy::parse).map(|e| e.to_string()),
        respondent: v.filter("respondent", &req.respondent, Economy::parse).map(|e| e.to_string()),
        measure_id: v.filter("measure_id", &req.measure_id, parse_id).map(|id| id.to_string()),
    };
    v.finish()?;
    Ok(watch)
}

impl DisputeWatch {
    /// The same rules as ListDisputes' filters of the same names.
    fn keeps(&self, d: &pb::Dispute) -> bool {
        self.economy.as_ref().is_none_or(|e| &d.complainant == e || &d.respondent == e)
            && self.complainant.as_ref().is_none_or(|e| &d.complainant == e)
            && self.respondent.as_ref().is_none_or(|e| &d.respondent == e)
            && self.measure_id.as_ref().is_none_or(|id| d.measure_ids.contains(id))
    }
}

impl Responder for DisputeWatch {
    const TOPIC: &'static str = TOPIC;
    type Change = pb::DisputeChange;
    type Response = pb::WatchDisputesResponse;

    fn change(&self, token: String, change: pb::DisputeChange) -> Option<Self::Response> {
        let keep = change.dispute.as_ref().is_some_and(|d| self.keeps(d));
        keep.then_some(pb::WatchDisputesResponse { resume_token: token, change: Some(change) })
    }

    fn heartbeat(&self, token: String) -> Self::Response {
        pb::WatchDisputesResponse { resume_token: token, change: None }
    }
}
