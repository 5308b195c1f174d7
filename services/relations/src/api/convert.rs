//! Requests parsed once, every bad field named; and the sections of an
//! answer built from what the peers said.

use chrono::NaiveDate;
use tradewatch_common::{
    Error,
    proto::relations as pb,
    types::{Economy, format_date, parse_date},
    validate::Violations,
};
use uuid::Uuid;

use crate::peers::peer_of;

/// `GetBilateralBrief`, parsed: the two economies and the day.
pub struct BriefAsk {
    pub a: Economy,
    pub b: Economy,
    pub on: NaiveDate,
}

impl BriefAsk {
    pub fn day(&self) -> String {
        format_date(self.on)
    }
}

pub fn bilateral_brief(req: &pb::GetBilateralBriefRequest, today: NaiveDate) -> Result<BriefAsk, Error> {
    let mut v = Violations::new();
    let a = v.check("economy_a", Economy::parse(&req.economy_a));
    let b = v.check("economy_b", Economy::parse(&req.economy_b));
    if let (Some(a), Some(b)) = (&a, &b)
        && a == b
    {
        v.add("economy_b", "is economy_a itself: a brief is of two economies");
    }
    let on = v.or_default("on", &req.on, today, parse_date);
    let ask = (|| Some(BriefAsk { a: a?, b: b?, on: on? }))();
    v.finish_with(ask)
}

pub fn dispute_dossier(req: &pb::GetDisputeDossierRequest) -> Result<Uuid, Error> {
    tradewatch_common::validate::id("dispute_id", &req.dispute_id)
}

/// What every section says of itself: whole, truncated (and where), or
/// unavailable (and which peer).
#[derive(Debug, Clone, Default)]
pub struct State {
    pub status: i32,
    pub peer: String,
    pub detail: String,
}

impl State {
    pub fn ok() -> Self {
        Self { status: pb::SectionStatus::Ok.into(), ..Self::default() }
    }

    /// Whole, or truncated with `detail` saying where it stopped.
    pub fn ok_unless(truncated: Option<String>) -> Self {
        match truncated {
            Some(detail) => Self { status: pb::SectionStatus::Truncated.into(), peer: String::new(), detail },
            None => Self::ok(),
        }
    }

    /// The section could not be read: `err`, from the peer it names (else
    /// `fallback`).
    pub fn unavailable(err: &Error, fallback: &'static str) -> Self {
        let peer = peer_of(err, fallback);
        Self {
            status: pb::SectionStatus::Unavailable.into(),
            detail: format!("the {peer} service could not be asked in time: {}", err.message()),
            peer,
        }
    }

    pub fn is_ok(&self) -> bool {
        self.status != i32::from(pb::SectionStatus::Unavailable)
    }
}

pub fn measures_section(s: State, measures: Vec<pb::BriefMeasure>) -> pb::MeasuresSection {
    pb::MeasuresSection { status: s.status, peer: s.peer, detail: s.detail, measures }
}

pub fn disputes_section(s: State, disputes: Vec<pb::BriefDispute>) -> pb::DisputesSection {
    pb::DisputesSection { status: s.status, peer: s.peer, detail: s.detail, disputes }
}

pub fn sessions_section(
    s: State,
    sessions: Vec<tradewatch_common::proto::dialogue::DialogueSession>,
) -> pb::SessionsSection {
    pb::SessionsSection { status: s.status, peer: s.peer, detail: s.detail, sessions }
}

pub fn commitments_section(s: State, commitments: Vec<pb::BriefCommitment>) -> pb::CommitmentsSection {
    pb::CommitmentsSection { status: s.status, peer: s.peer, detail: s.detail, commitments }
}

pub fn timeline_section(s: State, events: Vec<tradewatch_common::proto::dispute::DisputeEvent>) -> pb::TimelineSection {
    pb::TimelineSection { status: s.status, peer: s.peer, detail: s.detail, events }
}

pub fn cited_section(
    s: State,
    measures: Vec<tradewatch_common::proto::tariff::TariffMeasure>,
) -> pb::CitedMeasuresSection {
    pb::CitedMeasuresSection { status: s.status, peer: s.peer, detail: s.detail, measures }
}

/// A day as a peer wrote it, or None (empty or not a date).
pub fn day(s: &str) -> Option<NaiveDate> {
    parse_date(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_brief_names_every_bad_field() {
        let today = parse_date("2026-03-15").unwrap_or_default();
        let bad = pb::GetBilateralBriefRequest { economy_a: "XX".into(), economy_b: "".into(), on: "soon".into() };
        let err = bilateral_brief(&bad, today).err();
        let fields: Vec<String> =
            err.map(|e| e.violations().iter().map(|v| v.field.clone()).collect()).unwrap_or_default();
        assert_eq!(fields, ["economy_a", "economy_b", "on"]);
        let same = pb::GetBilateralBriefRequest { economy_a: "CAN".into(), economy_b: "CAN".into(), on: String::new() };
        let err = bilateral_brief(&same, today).err();
        assert_eq!(err.map(|e| e.violations()[0].field.clone()).as_deref(), Some("economy_b"));
        let ok = pb::GetBilateralBriefRequest { economy_a: "CAN".into(), economy_b: "CHN".into(), on: String::new() };
        assert_eq!(
            bilateral_brief(&ok, today).map(|a| a.day()).ok().as_deref(),
            Some("2026-03-15"),
            "today by default"
        );
    }
}
