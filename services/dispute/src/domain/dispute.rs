//! Disputes and their append-only timeline.

use chrono::{DateTime, NaiveDate, Utc};
use tradewatch_common::{
    Error, Reason, Result,
    error::FieldViolation,
    named_enum,
    patch::patched,
    types::{Economy, HsCode, format_date},
};
use uuid::Uuid;

use super::Stage;

named_enum!(
    pub enum Forum {
        Wto => "WTO",
        Bilateral => "BILATERAL",
        FreeTradeAgreement => "FREE_TRADE_AGREEMENT",
        DomesticTradeRemedy => "DOMESTIC_TRADE_REMEDY",
    }
);

named_enum!(
    pub enum EventKind {
        Created => "CREATED",
        StageChanged => "STAGE_CHANGED",
        Note => "NOTE",
        Filing => "FILING",
        Hearing => "HEARING",
    }
);

impl EventKind {
    /// Kinds a client may record; the others are written by the service.
    pub fn is_recordable(self) -> bool {
        matches!(self, Self::Note | Self::Filing | Self::Hearing)
    }

    /// The kind when a client may record it, else why not.
    pub fn recordable(self) -> std::result::Result<Self, String> {
        if self.is_recordable() {
            Ok(self)
        } else {
            Err(format!("{} events are written by the service: record NOTE, FILING or HEARING", self.as_str()))
        }
    }
}

/// Everything a client sets on a dispute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisputeSpec {
    pub reference: String,
    pub title: String,
    pub summary: String,
    pub complainant: Economy,
    pub respondent: Economy,
    pub third_parties: Vec<Economy>,
    pub forum: Forum,
    pub hs_codes: Vec<HsCode>,
    pub measure_ids: Vec<Uuid>,
    pub legal_basis: String,
    pub opened_on: NaiveDate,
    pub source_url: String,
}

impl DisputeSpec {
    /// The rules between fields, named relative to the dispute.
    pub fn violations(&self) -> Vec<FieldViolation> {
        let mut out = Vec::new();
        if self.respondent == self.complainant {
            out.push(FieldViolation::new("respondent", "must differ from the complainant"));
        }
        for (i, third) in self.third_parties.iter().enumerate() {
            if *third == self.complainant || *third == self.respondent {
                out.push(FieldViolation::new(format!("third_parties[{i}]"), format!("{third} is already a party")));
            }
        }
        out
    }
}

/// The fields an update changes: `Some` for each field the update mask
/// names, with its new value. The stage moves only through `advance`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DisputePatch {
    pub title: Option<String>,
    pub summary: Option<String>,
    pub third_parties: Option<Vec<Economy>>,
    pub hs_codes: Option<Vec<HsCode>>,
    pub measure_ids: Option<Vec<Uuid>>,
    pub legal_basis: Option<String>,
    pub opened_on: Option<NaiveDate>,
    pub source_url: Option<String>,
}

impl DisputePatch {
    /// The fields an update mask may name, as the API spells them.
    pub const FIELDS: &'static [&'static str] =
        &["title", "summary", "third_parties", "hs_codes", "measure_ids", "legal_basis", "opened_on", "source_url"];

    fn apply_to(self, s: &mut DisputeSpec) {
        use tradewatch_common::patch::set;
        set(&mut s.title, self.title);
        set(&mut s.summary, self.summary);
        set(&mut s.third_parties, self.third_parties);
        set(&mut s.hs_codes, self.hs_codes);
        set(&mut s.measure_ids, self.measure_ids);
        set(&mut s.legal_basis, self.legal_basis);
        set(&mut s.opened_on, self.opened_on);
        set(&mut s.source_url, self.source_url);
    }

    /// Whether the indexed lists (HS codes, measure links) change.
    pub fn changes_links(&self) -> bool {
        self.hs_codes.is_some() || self.measure_ids.is_some()
    }
}

/// One entry of the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: Uuid,
    pub dispute_id: Uuid,
    pub kind: EventKind,
    pub occurred_on: NaiveDate,
    pub from_stage: Option<Stage>,
    pub to_stage: Option<Stage>,
    pub description: String,
    pub create_time: DateTime<Utc>,
    /// Who recorded it.
    pub actor: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispute {
    pub id: Uuid,
    pub spec: DisputeSpec,
    pub stage: Stage,
    pub closed_on: Option<NaiveDate>,
    pub version: i64,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
    /// Who created it, and who wrote it last.
    pub create_actor: String,
    pub update_actor: String,
}

impl Dispute {
    /// A new dispute in CONSULTATIONS, and the CREATED event that opens its
    /// timeline.
    pub fn open(spec: DisputeSpec, now: DateTime<Utc>, by: &str) -> (Self, Event) {
        let id = tradewatch_common::types::new_id();
        let event = Event {
            id: tradewatch_common::types::new_id(),
            dispute_id: id,
            kind: EventKind::Created,
            occurred_on: spec.opened_on,
            from_stage: None,
            to_stage: Some(Stage::Consultations),
            description: format!("{} opened: {} v. {}", spec.reference, spec.complainant, spec.respondent),
            create_time: now,
            actor: by.to_owned(),
        };
        let dispute = Self {
            id,
            spec,
            stage: Stage::Consultations,
            closed_on: None,
            version: 1,
            create_time: now,
            update_time: now,
            create_actor: by.to_owned(),
            update_actor: by.to_owned(),
        };
        (dispute, event)
    }

    /// Applies an update: the fields the patch names change, and the rules
    /// of a dispute hold again. Violations are named relative to the dispute.
    pub fn update(&mut self, patch: DisputePatch) -> Result<()> {
        self.spec = patched(&self.spec, |s| patch.apply_to(s), DisputeSpec::violations)?;
        Ok(())
    }

    /// A dated note, filing or hearing on the timeline. Stage moves and the
    /// creation are recorded by `advance` and `open`, not here.
    pub fn record(
        &self,
        kind: EventKind,
        on: NaiveDate,
        description: String,
        now: DateTime<Utc>,
        by: &str,
    ) -> Result<Event> {
        kind.recordable().map_err(|why| Error::invalid_field("kind", why))?;
        self.check_on_timeline(on)?;
        Ok(Event {
            id: tradewatch_common::types::new_id(),
            dispute_id: self.id,
            kind,
            occurred_on: on,
            from_stage: None,
            to_stage: None,
            description,
            create_time: now,
            actor: by.to_owned(),
        })
    }

    /// Every event happens on or after the day the dispute was opened.
    fn check_on_timeline(&self, on: NaiveDate) -> Result<()> {
        if on < self.spec.opened_on {
            return Err(Error::invalid_field(
                "occurred_on",
                format!("{} is before the dispute was opened on {}", format_date(on), format_date(self.spec.opened_on)),
            ));
        }
        Ok(())
    }

    /// Moves the dispute to `to`, or refuses with FAILED_PRECONDITION
    /// `ILLEGAL_STAGE_TRANSITION` listing the legal next stages. Entering a
    /// terminal stage closes the dispute on `on`.
    pub fn advance(&mut self, to: Stage, on: NaiveDate, note: &str, now: DateTime<Utc>, by: &str) -> Result<Event> {
        if !self.stage.can_move_to(to) {
            let allowed: Vec<String> =
                self.stage.next().iter().map(|s| format!("DISPUTE_STAGE_{}", s.as_str())).collect();
            let message = if allowed.is_empty() {
                format!(
                    "dispute {} is {}, a final stage: it cannot move to {}",
                    self.id,
                    self.stage.as_str(),
                    to.as_str()
                )
            } else {
                format!(
                    "dispute {} cannot move from {} to {}; legal next stages: {}",
                    self.id,
                    self.stage.as_str(),
                    to.as_str(),
                    allowed.join(", ")
                )
            };
            return Err(Error::failed_precondition(Reason::IllegalStageTransition, message)
                .with_metadata("from_stage", format!("DISPUTE_STAGE_{}", self.stage.as_str()))
                .with_metadata("to_stage", format!("DISPUTE_STAGE_{}", to.as_str()))
                .with_metadata("allowed_stages", allowed.join(",")));
        }
        self.check_on_timeline(on)?;
        let event = Event {
            id: tradewatch_common::types::new_id(),
            dispute_id: self.id,
            kind: EventKind::StageChanged,
            occurred_on: on,
            from_stage: Some(self.stage),
            to_stage: Some(to),
            description: note.to_owned(),
            create_time: now,
            actor: by.to_owned(),
        };
        self.stage = to;
        if to.is_terminal() {
            self.closed_on = Some(on);
        }
        Ok(event)
    }

    pub fn is_open(&self) -> bool {
        !self.stage.is_terminal()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;
    use tonic::Code;

    use super::*;

    pub fn spec() -> DisputeSpec {
        DisputeSpec {
            reference: "WT/DS589".into(),
            title: "China — Measures concerning the importation of canola seed from Canada".into(),
            summary: String::new(),
            complainant: Economy::parse("CAN").unwrap_or_else(|e| panic!("{e}")),
            respondent: Economy::parse("CHN").unwrap_or_else(|e| panic!("{e}")),
            third_parties: vec![],
            forum: Forum::Wto,
            hs_codes: vec![],
            measure_ids: vec![],
            legal_basis: String::new(),
            opened_on: day("2019-09-09"),
            source_url: String::new(),
        }
    }

    pub fn day(s: &str) -> NaiveDate {
        tradewatch_common::types::parse_date(s).unwrap_or_default()
    }

    #[test]
    fn a_new_dispute_is_in_consultations_with_a_created_event() {
        let (d, e) = Dispute::open(spec(), Utc::now(), "test");
        assert_eq!(d.stage, Stage::Consultations);
        assert_eq!(
            (e.kind, e.to_stage, e.occurred_on),
            (EventKind::Created, Some(Stage::Consultations), day("2019-09-09"))
        );
        assert!(d.is_open());
    }

    #[test]
    fn the_canola_dispute_walks_to_its_lapse() -> Result<()> {
        let (mut d, _) = Dispute::open(spec(), Utc::now(), "test");
        let e = d.advance(Stage::PanelEstablished, day("2020-06-26"), "panel established", Utc::now(), "test")?;
        assert_eq!((e.from_stage, e.to_stage), (Some(Stage::Consultations), Some(Stage::PanelEstablished)));
        d.advance(Stage::PanelComposed, day("2021-01-01"), "", Utc::now(), "test")?;
        d.advance(Stage::PanelSuspended, day("2022-05-01"), "", Utc::now(), "test")?;
        assert!(d.closed_on.is_none());
        d.advance(Stage::Lapsed, day("2023-05-02"), "DSU 12.12", Utc::now(), "test")?;
        assert_eq!((d.stage, d.closed_on), (Stage::Lapsed, Some(day("2023-05-02"))));
        Ok(())
    }

    #[test]
    fn an_illegal_move_names_the_legal_ones() {
        let (mut d, _) = Dispute::open(spec(), Utc::now(), "test");
        let err = d.advance(Stage::Concluded, day("2020-01-01"), "", Utc::now(), "test").err();
        assert_eq!(
            err.as_ref().map(|e| (e.code(), e.reason())),
            Some((Code::FailedPrecondition, "ILLEGAL_STAGE_TRANSITION"))
        );
        assert_eq!(
            err.as_ref().and_then(|e| e.metadata().get("allowed_stages").cloned()),
            Some("DISPUTE_STAGE_PANEL_ESTABLISHED,DISPUTE_STAGE_SETTLED,DISPUTE_STAGE_WITHDRAWN".into())
        );
        assert_eq!(d.stage, Stage::Consultations, "a refused move changes nothing");
        let err = d.advance(Stage::Settled, day("2019-01-01"), "", Utc::now(), "test").err();
        assert_eq!(err.map(|e| e.code()), Some(Code::InvalidArgument), "before the dispute opened");
    }

    #[test]
    fn a_settled_dispute_cannot_move_again() -> Result<()> {
        let (mut d, _) = Dispute::open(spec(), Utc::now(), "test");
        d.advance(Stage::Settled, day("2026-01-16"), "", Utc::now(), "test")?;
        let err = d.advance(Stage::Settled, day("2026-01-17"), "", Utc::now(), "test").err();
        assert_eq!(err.as_ref().and_then(|e| e.metadata().get("allowed_stages").cloned()), Some(String::new()));
        Ok(())
    }

    #[test]
    fn parties_must_differ() {
        let mut s = spec();
        s.respondent = s.complainant;
        s.third_parties = vec![Economy::parse("USA").unwrap_or_else(|e| panic!("{e}")), s.complainant];
        let fields: Vec<_> = s.violations().into_iter().map(|v| v.field).collect();
        assert_eq!(fields, ["respondent", "third_parties[1]"]);
    }

    proptest! {
        /// Any sequence of legal moves leaves a consistent dispute: one
        /// STAGE_CHANGED event per move chaining stage to stage, and
        /// `closed_on` set exactly when the stage is terminal.
        #[test]
        fn legal_moves_keep_the_dispute_consistent(choices in proptest::collection::vec(0usize..4, 0..25)) {
            let (mut d, created) = Dispute::open(spec(), Utc::now(), "test");
            let mut timeline = vec![created];
            let mut on = day("2019-09-09");
            for c in choices {
                let next = d.stage.next();
                if next.is_empty() { break; }
                on = on.succ_opt().unwrap_or(on);
                let event = d.advance(next[c % next.len()], on, "", Utc::now(), "test").map_err(|e| TestCaseError::fail(e.to_string()))?;
                timeline.push(event);
            }
            for pair in timeline.windows(2) {
                prop_assert_eq!(pair[1].from_stage, pair[0].to_stage);
                prop_assert!(pair[0].occurred_on <= pair[1].occurred_on);
            }
            prop_assert_eq!(timeline.last().and_then(|e| e.to_stage), Some(d.stage));
            prop_assert_eq!(d.closed_on.is_some(), d.stage.is_terminal());
            if let Some(closed) = d.closed_on { prop_assert_eq!(closed, on); }
        }
    }
}
