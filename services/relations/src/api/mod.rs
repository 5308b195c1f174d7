//! The gRPC API of the relations service: a brief or a dossier made of
//! sections, each read from one peer, all of them at once under the
//! caller's deadline. A peer that fails or is late costs its sections
//! (UNAVAILABLE, naming it), never the call; only a dossier's dispute is
//! primary. Every list read is bounded, and a section that reached a bound
//! says so.

pub mod convert;

use std::{collections::HashSet, sync::Arc};

use chrono::NaiveDate;
use futures::{StreamExt as _, stream};
use tonic::{Request, Response, Status};
use tradewatch_common::{
    Error,
    client::Deadline,
    proto::{
        dialogue as lpb, dispute as dpb,
        relations::{self as pb, relations_service_server::RelationsService},
        tariff as tpb,
    },
    today,
    types::format_date,
};

use self::convert::*;
use crate::{
    domain::{self, Stage, StageEntered},
    fresh::{Freshness, Kept},
    peers::Peers,
};

/// The kinds of measure a brief lists: all but MFN rates, which a schedule
/// applies to every origin and no one imposes on another.
const KINDS: [tpb::MeasureKind; 7] = [
    tpb::MeasureKind::Preferential,
    tpb::MeasureKind::Surtax,
    tpb::MeasureKind::Retaliatory,
    tpb::MeasureKind::AntiDumping,
    tpb::MeasureKind::Countervailing,
    tpb::MeasureKind::Safeguard,
    tpb::MeasureKind::TariffRateQuota,
];

/// Bounds on what one call reads.
mod bounds {
    /// Measures of one kind that one economy imposes on the other.
    pub const MEASURES: usize = 500;
    /// Disputes an economy is a party to.
    pub const DISPUTES: usize = 500;
    /// Events of one dispute's timeline.
    pub const EVENTS: usize = 2_000;
    /// Sessions of the two economies.
    pub const SESSIONS: usize = 200;
    /// Commitments of one session, or acting on one dispute or measure.
    pub const COMMITMENTS: usize = 500;
    /// Commitments whose worth is worked out.
    pub const WORTHS: usize = 20;
    /// Calls in flight to the peers at once within one section.
    pub const IN_FLIGHT: usize = 16;
}

/// The share of the caller's remaining time the peers get: the rest is for
/// answering with what came back.
const PEER_SHARE: u32 = 85;

#[derive(Clone)]
pub struct RelationsApi {
    peers: Peers,
    measures: Arc<Kept<(String, String, NaiveDate), pb::MeasuresSection>>,
    disputes: Arc<Kept<(String, String, NaiveDate), pb::DisputesSection>>,
    worths: Arc<Kept<(String, String, NaiveDate), pb::CommitmentWorth>>,
}

type Reply<T> = Result<Response<T>, Status>;

impl RelationsApi {
    pub fn new(peers: Peers, fresh: Arc<Freshness>) -> Self {
        Self {
            peers,
            measures: Arc::new(Kept::new(fresh.clone())),
            disputes: Arc::new(Kept::new(fresh.clone())),
            worths: Arc::new(Kept::new(fresh)),
        }
    }

    /// The measures each economy imposes on the other that apply on the day,
    /// each with the trade of the other it covers.
    async fn measures_section(&self, ask: &BriefAsk, deadline: Deadline) -> pb::MeasuresSection {
        let key = (ask.a.to_string(), ask.b.to_string(), ask.on);
        if let Some(kept) = self.measures.get(&key) {
            return (*kept).clone();
        }
        let mark = self.measures.mark();
        let day = ask.day();
        let (ab, ba) = tokio::join!(
            self.side(ask.a.as_str(), ask.b.as_str(), &day, deadline),
            self.side(ask.b.as_str(), ask.a.as_str(), &day, deadline)
        );
        let section = match (ab, ba) {
            (Ok((mut first, t1)), Ok((second, t2))) => {
                first.extend(second);
                measures_section(State::ok_unless(t1.or(t2)), first)
            }
            (Err(err), _) | (_, Err(err)) => return measures_section(State::unavailable(&err, "tariff"), vec![]),
        };
        self.measures.put(key, mark, Arc::new(section.clone()));
        section
    }

    /// The measures `imposing` imposes on `origin` on `day`, ranked by the
    /// trade of `origin` they cover, and where the listing stopped short.
    async fn side(
        &self,
        imposing: &str,
        origin: &str,
        day: &str,
        deadline: Deadline,
    ) -> Result<(Vec<pb::BriefMeasure>, Option<String>), Error> {
        let lists = futures::future::join_all(
            KINDS.iter().map(|k| self.peers.measures(imposing, origin, *k, day, deadline, bounds::MEASURES)),
        );
        let coverage = self.peers.coverage(imposing, origin, day, &KINDS, 500, deadline);
        let (lists, coverage) = tokio::join!(lists, coverage);
        let coverage = coverage?;
        let mut measures = Vec::new();
        let mut truncated = None;
        for (kind, listed) in KINDS.iter().zip(lists) {
            let (listed, more) = listed?;
            if more {
                truncated = Some(format!(
                    "the first {} {} measures {imposing} imposes on {origin}: ask ListMeasures for the rest",
                    bounds::MEASURES,
                    kind.as_str_name()
                ));
            }
            measures.extend(listed);
        }
        let rank = |id: &str| coverage.measures.iter().position(|m| m.measure_id == id).unwrap_or(usize::MAX);
        measures.sort_by(|a, b| rank(&a.id).cmp(&rank(&b.id)).then_with(|| a.reference.cmp(&b.reference)));
        let brief = measures
            .into_iter()
            .map(|m| {
                let covered = coverage.measures.iter().find(|c| c.measure_id == m.id);
                let (covered_value, upper_bound_value) =
                    covered.map(|c| (c.covered_value.clone(), c.upper_bound_value.clone())).unwrap_or_default();
                pb::BriefMeasure {
                    approximate: covered_value != upper_bound_value,
                    year: coverage.year,
                    covered_value,
                    upper_bound_value,
                    measure: Some(m),
                }
            })
            .collect();
        Ok((brief, truncated))
    }

    /// The disputes between the two economies under way on the day.
    async fn disputes_section(&self, ask: &BriefAsk, deadline: Deadline) -> pb::DisputesSection {
        let key = (ask.a.to_string(), ask.b.to_string(), ask.on);
        if let Some(kept) = self.disputes.get(&key) {
            return (*kept).clone();
        }
        let mark = self.disputes.mark();
        let section = match self.disputes_between(ask, deadline).await {
            Ok((disputes, truncated)) => disputes_section(State::ok_unless(truncated), disputes),
            Err(err) => return disputes_section(State::unavailable(&err, "dispute"), vec![]),
        };
        self.disputes.put(key, mark, Arc::new(section.clone()));
        section
    }

    async fn disputes_between(
        &self,
        ask: &BriefAsk,
        deadline: Deadline,
    ) -> Result<(Vec<pb::BriefDispute>, Option<String>), Error> {
        let (listed, more) = self.peers.disputes(ask.a.as_str(), deadline, bounds::DISPUTES).await?;
        let between: Vec<dpb::Dispute> = listed
            .into_iter()
            .filter(|d| domain::between(&d.complainant, &d.respondent, ask.a.as_str(), ask.b.as_str()))
            .collect();
        let asks: Vec<_> = between.iter().map(|d| self.peers.events(&d.id, deadline, bounds::EVENTS)).collect();
        let timelines: Vec<_> = stream::iter(asks).buffered(bounds::IN_FLIGHT).collect().await;
        let mut out = Vec::new();
        for (d, timeline) in between.into_iter().zip(timelines) {
            let (events, _) = timeline?;
            let entries = stage_entries(&events);
            let Some(entered) = domain::stage_on(&entries, ask.on) else { continue };
            if entered.stage.is_terminal() {
                continue;
            }
            let stage = dpb::DisputeStage::from_str_name(&format!("DISPUTE_STAGE_{}", entered.stage.0))
                .unwrap_or(dpb::DisputeStage::Unspecified);
            out.push(pb::BriefDispute {
                stage: stage.into(),
                stage_since: format_date(entered.on),
                days_in_stage: domain::days_between(entered.on, ask.on),
                dispute: Some(d),
            });
        }
        out.sort_by(|a, b| {
            let key = |x: &pb::BriefDispute| x.dispute.as_ref().map(|d| (d.opened_on.clone(), d.reference.clone()));
            key(a).cmp(&key(b))
        });
        let truncated = more.then(|| {
            format!(
                "the first {} disputes {} is a party to were read: ask ListDisputes for the rest",
                bounds::DISPUTES,
                ask.a
            )
        });
        Ok((out, truncated))
    }

    /// The sessions of the window and the open commitments of every session
    /// of both to the day, read afresh (no feed streams sessions).
    async fn dialogue_sections(
        &self,
        ask: &BriefAsk,
        deadline: Deadline,
    ) -> (pb::SessionsSection, pb::CommitmentsSection) {
        let listed = self
            .peers
            .sessions(
                lpb::ListSessionsRequest { economy: ask.a.to_string(), starts_on_to: ask.day(), ..Default::default() },
                deadline,
                bounds::SESSIONS,
            )
            .await;
        let (listed, more) = match listed {
            Ok(listed) => listed,
            Err(err) => {
                let down = State::unavailable(&err, "dialogue");
                return (sessions_section(down.clone(), vec![]), commitments_section(down, vec![]));
            }
        };
        let mut sessions: Vec<lpb::DialogueSession> =
            listed.into_iter().filter(|s| domain::of_both(&s.economies, ask.a.as_str(), ask.b.as_str())).collect();
        sessions.sort_by(|a, b| (&a.starts_on, &a.id).cmp(&(&b.starts_on, &b.id)));
        let truncated = more.then(|| {
            format!("the first {} sessions of {} were read: ask ListSessions for the rest", bounds::SESSIONS, ask.a)
        });
        let (from, _) = domain::session_window(ask.on);
        let window: Vec<lpb::DialogueSession> =
            sessions.iter().filter(|s| day(&s.ends_on).is_some_and(|end| end >= from)).cloned().collect();
        let commitments = self.open_commitments(&sessions, ask, deadline).await;
        (sessions_section(State::ok_unless(truncated.clone()), window), commitments)
    }

    async fn open_commitments(
        &self,
        sessions: &[lpb::DialogueSession],
        ask: &BriefAsk,
        deadline: Deadline,
    ) -> pb::CommitmentsSection {
        let asks: Vec<_> = sessions
            .iter()
            .map(|s| {
                let req = lpb::ListCommitmentsRequest { session_id: s.id.clone(), ..Default::default() };
                self.peers.commitments(req, deadline, bounds::COMMITMENTS)
            })
            .collect();
        let read: Vec<_> = stream::iter(asks).buffered(bounds::IN_FLIGHT).collect().await;
        let mut open = Vec::new();
        let mut truncated = None;
        for listed in read {
            match listed {
                Ok((commitments, more)) => {
                    if more {
                        truncated = Some(format!(
                            "the first {} commitments of a session were read: ask ListCommitments for the rest",
                            bounds::COMMITMENTS
                        ));
                    }
                    open.extend(commitments.into_iter().filter(|c| domain::is_open(status_name(c))));
                }
                Err(err) => return commitments_section(State::unavailable(&err, "dialogue"), vec![]),
            }
        }
        open.sort_by(|a, b| {
            (a.due_on.is_empty(), &a.due_on, &a.description).cmp(&(b.due_on.is_empty(), &b.due_on, &b.description))
        });
        let relieving: Vec<usize> = open
            .iter()
            .enumerate()
            .filter(|(_, c)| domain::relieves(effect_name(c)) && !c.measure_id.is_empty())
            .map(|(i, _)| i)
            .take(bounds::WORTHS)
            .collect();
        let asks: Vec<_> = relieving.iter().map(|i| self.worth(&open[*i], ask.on, deadline)).collect();
        let worths: Vec<pb::CommitmentWorth> = stream::iter(asks).buffered(bounds::IN_FLIGHT).collect().await;
        let mut worths = relieving.into_iter().zip(worths).collect::<std::collections::HashMap<_, _>>();
        let commitments = open
            .into_iter()
            .enumerate()
            .map(|(i, c)| pb::BriefCommitment {
                overdue: domain::overdue(true, day(&c.due_on), ask.on),
                worth: worths.remove(&i),
                commitment: Some(c),
            })
            .collect();
        commitments_section(State::ok_unless(truncated), commitments)
    }

    /// What a commitment that suspends or revokes a measure is worth, as of
    /// the day its effect takes hold (else the brief's day).
    async fn worth(&self, c: &lpb::Commitment, on: NaiveDate, deadline: Deadline) -> pb::CommitmentWorth {
        let day = day(&c.effective_on).unwrap_or(on);
        let key = (c.id.clone(), c.etag.clone(), day);
        if let Some(kept) = self.worths.get(&key) {
            return (*kept).clone();
        }
        let mark = self.worths.mark();
        let worth = self.work_out_worth(c, day, deadline).await;
        if worth.status != i32::from(pb::SectionStatus::Unavailable) {
            self.worths.put(key, mark, Arc::new(worth.clone()));
        }
        worth
    }

    async fn work_out_worth(&self, c: &lpb::Commitment, day: NaiveDate, deadline: Deadline) -> pb::CommitmentWorth {
        let on = format_date(day);
        let mut worth = pb::CommitmentWorth { status: pb::SectionStatus::Ok.into(), ..Default::default() };
        let exposure = self
            .peers
            .exposure(
                tpb::GetMeasureExposureRequest {
                    id: c.measure_id.clone(),
                    on: on.clone(),
                    max_flows: 20,
                    ..Default::default()
                },
                deadline,
            )
            .await;
        let exposure = match exposure {
            Ok(e) => e,
            Err(err) if err.code() == tonic::Code::Unavailable => {
                let s = State::unavailable(&err, "tariff");
                worth.status = s.status;
                worth.peer = s.peer;
                worth.explanations.push(s.detail);
                return worth;
            }
            Err(err) => {
                worth.explanations.push(format!("the measure's exposure could not be had: {}", err.message()));
                return worth;
            }
        };
        worth.year = exposure.year;
        worth.relieved_value = exposure.covered_value.clone();
        worth.relieved_upper_bound_value = exposure.upper_bound_value.clone();
        worth.approximate = exposure.approximate;
        let Some(measure) = exposure.measure.as_ref() else { return worth };
        let Some(flow) =
            exposure.flows.iter().find(|f| f.coverage() == tpb::FlowCoverage::Whole).or(exposure.flows.first())
        else {
            worth.explanations.push(format!("the record holds no trade the measure {} reaches", measure.reference));
            return worth;
        };
        let Some(traded) = flow.flow.as_ref() else { return worth };
        let whole = flow.coverage() == tpb::FlowCoverage::Whole;
        worth.hs_code = domain::priced_line(&traded.hs_code, whole, &flow.matched_hs_code);
        worth.origin_economy = traded.exporting_economy.clone();
        worth.customs_value = traded.value.clone();
        worth.explanations.push(format!(
            "priced on {} from {} in {}, the measure's most-traded line of {} (flow {}{})",
            worth.hs_code,
            traded.exporting_economy,
            measure.imposing_economy,
            exposure.year,
            traded.hs_code,
            if whole { "" } else { ", which the measure covers in part" }
        ));
        let status = if effect_name(c) == "REVOKE_MEASURE" {
            tpb::MeasureStatus::Revoked
        } else {
            tpb::MeasureStatus::Suspended
        };
        let shipment = tpb::ResolveDutyRequest {
            importing_economy: measure.imposing_economy.clone(),
            origin_economy: traded.exporting_economy.clone(),
            hs_code: worth.hs_code.clone(),
            imported_on: on.clone(),
            customs_value: traded.value.clone(),
            ..Default::default()
        };
        let assumed = tpb::ResolveDutyRequest {
            assume: vec![tpb::AssumedStatusChange {
                measure_id: c.measure_id.clone(),
                status: status.into(),
                effective_on: on.clone(),
            }],
            ..shipment.clone()
        };
        let (before, after) =
            tokio::join!(self.peers.resolve(shipment, deadline), self.peers.resolve(assumed, deadline));
        match (before, after) {
            (Ok(before), Ok(after)) => {
                worth.duty_before = before.total_duty;
                worth.duty_after = after.total_duty;
            }
            (Err(err), _) | (_, Err(err)) => {
                if err.code() == tonic::Code::Unavailable {
                    let s = State::unavailable(&err, "tariff");
                    worth.status = s.status;
                    worth.peer = s.peer;
                }
                worth.explanations.push(format!(
                    "the duty on {} could not be worked out: {}",
                    worth.hs_code,
                    err.message()
                ));
            }
        }
        worth
    }
}

/// A timeline's stage entries: its creation and every move, in order.
fn stage_entries(events: &[dpb::DisputeEvent]) -> Vec<StageEntered> {
    events
        .iter()
        .filter(|e| e.to_stage != i32::from(dpb::DisputeStage::Unspecified))
        .filter_map(|e| {
            let stage = dpb::DisputeStage::try_from(e.to_stage).ok()?;
            let name = stage.as_str_name().trim_start_matches("DISPUTE_STAGE_").to_owned();
            Some(StageEntered { on: day(&e.occurred_on)?, stage: Stage(name) })
        })
        .collect()
}

fn status_name(c: &lpb::Commitment) -> &'static str {
    lpb::CommitmentStatus::try_from(c.status).map_or("", |s| s.as_str_name()).trim_start_matches("COMMITMENT_STATUS_")
}

fn effect_name(c: &lpb::Commitment) -> &'static str {
    lpb::CommitmentEffect::try_from(c.effect).map_or("", |e| e.as_str_name()).trim_start_matches("COMMITMENT_EFFECT_")
}

#[tonic::async_trait]
impl RelationsService for RelationsApi {
    async fn get_bilateral_brief(
        &self,
        request: Request<pb::GetBilateralBriefRequest>,
    ) -> Reply<pb::GetBilateralBriefResponse> {
        let deadline = Deadline::of(&request).share(PEER_SHARE);
        let ask = convert::bilateral_brief(request.get_ref(), today())?;
        let (measures, disputes, (sessions, commitments)) = tokio::join!(
            self.measures_section(&ask, deadline),
            self.disputes_section(&ask, deadline),
            self.dialogue_sections(&ask, deadline)
        );
        Ok(Response::new(pb::GetBilateralBriefResponse {
            brief: Some(pb::BilateralBrief {
                economy_a: ask.a.to_string(),
                economy_b: ask.b.to_string(),
                on: ask.day(),
                measures: Some(measures),
                disputes: Some(disputes),
                sessions: Some(sessions),
                commitments: Some(commitments),
            }),
        }))
    }

    async fn get_dispute_dossier(
        &self,
        request: Request<pb::GetDisputeDossierRequest>,
    ) -> Reply<pb::GetDisputeDossierResponse> {
        let deadline = Deadline::of(&request).share(PEER_SHARE);
        let id = convert::dispute_dossier(request.get_ref())?.to_string();
        let dispute = self.peers.dispute(&id, deadline).await?.ok_or_else(|| Error::not_found("dispute", &id))?;
        let measure_ids = dispute.measure_ids.clone();
        let timeline = async {
            match self.peers.events(&id, deadline, bounds::EVENTS).await {
                Ok((events, more)) => timeline_section(
                    State::ok_unless(more.then(|| format!("the first {} events", bounds::EVENTS))),
                    events,
                ),
                Err(err) => timeline_section(State::unavailable(&err, "dispute"), vec![]),
            }
        };
        let cited = async {
            match self.peers.measures_by_id(&measure_ids, deadline).await {
                Ok(measures) => cited_section(State::ok(), measures),
                Err(err) => cited_section(State::unavailable(&err, "tariff"), vec![]),
            }
        };
        let sessions = async {
            let req = lpb::ListSessionsRequest { dispute_id: id.clone(), ..Default::default() };
            match self.peers.sessions(req, deadline, bounds::SESSIONS).await {
                Ok((sessions, more)) => sessions_section(
                    State::ok_unless(more.then(|| format!("the first {} sessions", bounds::SESSIONS))),
                    sessions,
                ),
                Err(err) => sessions_section(State::unavailable(&err, "dialogue"), vec![]),
            }
        };
        let commitments = self.acting_on(&id, &measure_ids, deadline);
        let (timeline, measures, sessions, commitments) = tokio::join!(timeline, cited, sessions, commitments);
        Ok(Response::new(pb::GetDisputeDossierResponse {
            dossier: Some(pb::DisputeDossier {
                dispute: Some(dispute),
                timeline: Some(timeline),
                measures: Some(measures),
                sessions: Some(sessions),
                commitments: Some(commitments),
            }),
        }))
    }
}

impl RelationsApi {
    /// The commitments that act on the dispute or on the measures it cites,
    /// each once.
    async fn acting_on(&self, dispute_id: &str, measure_ids: &[String], deadline: Deadline) -> pb::CommitmentsSection {
        let on = today();
        let mut asks = vec![lpb::ListCommitmentsRequest { dispute_id: dispute_id.to_owned(), ..Default::default() }];
        asks.extend(
            measure_ids.iter().map(|m| lpb::ListCommitmentsRequest { measure_id: m.clone(), ..Default::default() }),
        );
        let asks: Vec<_> =
            asks.into_iter().map(|req| self.peers.commitments(req, deadline, bounds::COMMITMENTS)).collect();
        let read: Vec<_> = stream::iter(asks).buffered(bounds::IN_FLIGHT).collect().await;
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        let mut truncated = None;
        for listed in read {
            match listed {
                Ok((commitments, more)) => {
                    if more {
                        truncated = Some(format!("the first {} commitments of one filter", bounds::COMMITMENTS));
                    }
                    for c in commitments {
                        if seen.insert(c.id.clone()) {
                            let open = domain::is_open(status_name(&c));
                            out.push(pb::BriefCommitment {
                                overdue: domain::overdue(open, day(&c.due_on), on),
                                worth: None,
                                commitment: Some(c),
                            });
                        }
                    }
                }
                Err(err) => return commitments_section(State::unavailable(&err, "dialogue"), vec![]),
            }
        }
        out.sort_by(|a, b| {
            let key = |x: &pb::BriefCommitment| {
                x.commitment.as_ref().map(|c| (c.due_on.is_empty(), c.due_on.clone(), c.id.clone()))
            };
            key(a).cmp(&key(b))
        });
        commitments_section(State::ok_unless(truncated), out)
    }
}
