//! The calls the relations service makes to the three others, each through
//! the common crate's [`Peer`]: under the caller's deadline, with a CLIENT
//! span and `rpc_client_*` metrics, the service's own token and TLS as
//! configured, retried while a peer is UNAVAILABLE. Lists are followed page
//! by page up to a bound, and say whether they stopped short of the end.

use std::future::Future;

use tonic::transport::Channel;
use tradewatch_common::{
    Error, Result,
    client::{Deadline, Peer},
    proto::{
        dialogue::{self as lpb, dialogue_service_client::DialogueServiceClient},
        dispute::{self as dpb, dispute_service_client::DisputeServiceClient},
        tariff::{self as tpb, tariff_service_client::TariffServiceClient},
    },
};

/// The page size of every list this service reads.
const PAGE: i32 = 500;

/// The three services.
#[derive(Clone)]
pub struct Peers {
    pub tariff: Peer,
    pub dispute: Peer,
    pub dialogue: Peer,
}

/// Items read and whether more were left unread (the bound was reached).
pub type Listed<T> = (Vec<T>, bool);

/// Follows `page` (a page token in, a page and the next token out) until the
/// last page or `max` items.
async fn pages<T, F, Fut>(max: usize, mut page: F) -> Result<Listed<T>>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, String)>>,
{
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let (items, next) = page(token).await?;
        out.extend(items);
        if next.is_empty() {
            return Ok((out, false));
        }
        if out.len() >= max {
            out.truncate(max);
            return Ok((out, true));
        }
        token = next;
    }
}

impl Peers {
    fn tariff_client(channel: Channel) -> TariffServiceClient<Channel> {
        TariffServiceClient::new(channel)
    }

    /// The measures `imposing` imposes of `kind` that apply to goods from
    /// `origin` and are in force on `on`, at most `max`.
    pub async fn measures(
        &self,
        imposing: &str,
        origin: &str,
        kind: tpb::MeasureKind,
        on: &str,
        deadline: Deadline,
        max: usize,
    ) -> Result<Listed<tpb::TariffMeasure>> {
        let peer = &self.tariff;
        pages(max, |page_token| {
            let req = tpb::ListMeasuresRequest {
                page_size: PAGE,
                page_token,
                imposing_economy: imposing.to_owned(),
                target_economy: origin.to_owned(),
                kind: kind.into(),
                in_force_on: on.to_owned(),
                ..Default::default()
            };
            async move {
                let page = peer
                    .call("tradewatch.tariff.v1.TariffService/ListMeasures", deadline, true, |ch, d| {
                        let req = peer.request(req.clone(), d);
                        async move { Self::tariff_client(ch).list_measures(req).await }
                    })
                    .await?
                    .into_inner();
                Ok((page.measures, page.next_page_token))
            }
        })
        .await
    }

    /// `importer`'s coverage of its imports from `exporter` on `on` (the
    /// latest year recorded), by the measures of `kinds`.
    pub async fn coverage(
        &self,
        importer: &str,
        exporter: &str,
        on: &str,
        kinds: &[tpb::MeasureKind],
        max_measures: i32,
        deadline: Deadline,
    ) -> Result<tpb::GetTradeCoverageResponse> {
        let req = tpb::GetTradeCoverageRequest {
            importing_economy: importer.to_owned(),
            exporting_economy: exporter.to_owned(),
            on: on.to_owned(),
            kinds: kinds.iter().map(|k| (*k).into()).collect(),
            max_measures,
            ..Default::default()
        };
        let peer = &self.tariff;
        Ok(peer
            .call("tradewatch.tariff.v1.TariffService/GetTradeCoverage", deadline, true, |ch, d| {
                let req = peer.request(req.clone(), d);
                async move { Self::tariff_client(ch).get_trade_coverage(req).await }
            })
            .await?
            .into_inner())
    }

    /// The measures of `ids` that exist, in the order asked.
    pub async fn measures_by_id(&self, ids: &[String], deadline: Deadline) -> Result<Vec<tpb::TariffMeasure>> {
        let peer = &self.tariff;
        let mut wanted: Vec<String> = ids.to_vec();
        let mut out = Vec::new();
        for batch in ids.chunks(tradewatch_common::client::BATCH_LIMIT) {
            wanted.clear();
            wanted.extend(batch.iter().cloned());
            loop {
                let req = tpb::BatchGetMeasuresRequest { ids: wanted.clone() };
                let answer = peer
                    .call("tradewatch.tariff.v1.TariffService/BatchGetMeasures", deadline, true, |ch, d| {
                        let req = peer.request(req.clone(), d);
                        async move { Self::tariff_client(ch).batch_get_measures(req).await }
                    })
                    .await;
                match answer {
                    Ok(found) => {
                        out.extend(found.into_inner().measures);
                        break;
                    }
                    // A cited measure that is gone is left out, the others read.
                    Err(err) if err.code() == tonic::Code::NotFound => {
                        let missing = err.metadata().get("missing_ids").cloned().unwrap_or_default();
                        let missing: Vec<&str> = missing.split(',').collect();
                        wanted.retain(|id| !missing.contains(&id.as_str()));
                        if wanted.is_empty() || missing.iter().all(|m| m.is_empty()) {
                            break;
                        }
                    }
                    Err(err) => return Err(err),
                }
            }
        }
        Ok(out)
    }

    /// A measure's exposure, as asked.
    pub async fn exposure(
        &self,
        req: tpb::GetMeasureExposureRequest,
        deadline: Deadline,
    ) -> Result<tpb::GetMeasureExposureResponse> {
        let peer = &self.tariff;
        Ok(peer
            .call("tradewatch.tariff.v1.TariffService/GetMeasureExposure", deadline, true, |ch, d| {
                let req = peer.request(req.clone(), d);
                async move { Self::tariff_client(ch).get_measure_exposure(req).await }
            })
            .await?
            .into_inner())
    }

    /// What a shipment pays, as asked.
    pub async fn resolve(&self, req: tpb::ResolveDutyRequest, deadline: Deadline) -> Result<tpb::ResolveDutyResponse> {
        let peer = &self.tariff;
        Ok(peer
            .call("tradewatch.tariff.v1.TariffService/ResolveDuty", deadline, true, |ch, d| {
                let req = peer.request(req.clone(), d);
                async move { Self::tariff_client(ch).resolve_duty(req).await }
            })
            .await?
            .into_inner())
    }

    /// The disputes `economy` is a party to, at most `max`.
    pub async fn disputes(&self, economy: &str, deadline: Deadline, max: usize) -> Result<Listed<dpb::Dispute>> {
        let peer = &self.dispute;
        pages(max, |page_token| {
            let req = dpb::ListDisputesRequest {
                page_size: PAGE,
                page_token,
                economy: economy.to_owned(),
                ..Default::default()
            };
            async move {
                let page = peer
                    .call("tradewatch.dispute.v1.DisputeService/ListDisputes", deadline, true, |ch, d| {
                        let req = peer.request(req.clone(), d);
                        async move { DisputeServiceClient::new(ch).list_disputes(req).await }
                    })
                    .await?
                    .into_inner();
                Ok((page.disputes, page.next_page_token))
            }
        })
        .await
    }

    /// One dispute, or None when there is none of that id.
    pub async fn dispute(&self, id: &str, deadline: Deadline) -> Result<Option<dpb::Dispute>> {
        let peer = &self.dispute;
        let req = dpb::GetDisputeRequest { id: id.to_owned() };
        let answer = peer
            .call("tradewatch.dispute.v1.DisputeService/GetDispute", deadline, true, |ch, d| {
                let req = peer.request(req.clone(), d);
                async move { DisputeServiceClient::new(ch).get_dispute(req).await }
            })
            .await;
        match answer {
            Ok(found) => Ok(found.into_inner().dispute),
            Err(err) if err.code() == tonic::Code::NotFound => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// A dispute's timeline, oldest first, at most `max` events.
    pub async fn events(&self, dispute_id: &str, deadline: Deadline, max: usize) -> Result<Listed<dpb::DisputeEvent>> {
        let peer = &self.dispute;
        pages(max, |page_token| {
            let req = dpb::ListDisputeEventsRequest { dispute_id: dispute_id.to_owned(), page_size: PAGE, page_token };
            async move {
                let page = peer
                    .call("tradewatch.dispute.v1.DisputeService/ListDisputeEvents", deadline, true, |ch, d| {
                        let req = peer.request(req.clone(), d);
                        async move { DisputeServiceClient::new(ch).list_dispute_events(req).await }
                    })
                    .await?
                    .into_inner();
                Ok((page.events, page.next_page_token))
            }
        })
        .await
    }

    /// The sessions `req` filters (its page fields are set here), at most `max`.
    pub async fn sessions(
        &self,
        req: lpb::ListSessionsRequest,
        deadline: Deadline,
        max: usize,
    ) -> Result<Listed<lpb::DialogueSession>> {
        let peer = &self.dialogue;
        pages(max, |page_token| {
            let req = lpb::ListSessionsRequest { page_size: PAGE, page_token, ..req.clone() };
            async move {
                let page = peer
                    .call("tradewatch.dialogue.v1.DialogueService/ListSessions", deadline, true, |ch, d| {
                        let req = peer.request(req.clone(), d);
                        async move { DialogueServiceClient::new(ch).list_sessions(req).await }
                    })
                    .await?
                    .into_inner();
                Ok((page.sessions, page.next_page_token))
            }
        })
        .await
    }

    /// The commitments `req` filters (its page fields are set here), at most `max`.
    pub async fn commitments(
        &self,
        req: lpb::ListCommitmentsRequest,
        deadline: Deadline,
        max: usize,
    ) -> Result<Listed<lpb::Commitment>> {
        let peer = &self.dialogue;
        pages(max, |page_token| {
            let req = lpb::ListCommitmentsRequest { page_size: PAGE, page_token, ..req.clone() };
            async move {
                let page = peer
                    .call("tradewatch.dialogue.v1.DialogueService/ListCommitments", deadline, true, |ch, d| {
                        let req = peer.request(req.clone(), d);
                        async move { DialogueServiceClient::new(ch).list_commitments(req).await }
                    })
                    .await?
                    .into_inner();
                Ok((page.commitments, page.next_page_token))
            }
        })
        .await
    }
}

/// The peer an error of a peer call names, for a section's `peer`: the
/// error's own `peer` metadata when it has one.
pub fn peer_of(err: &Error, fallback: &'static str) -> String {
    match err.metadata().get("peer").map(String::as_str) {
        Some("tariff service") => "tariff".into(),
        Some("dispute service") => "dispute".into(),
        Some("dialogue service") => "dialogue".into(),
        _ => fallback.into(),
    }
}
