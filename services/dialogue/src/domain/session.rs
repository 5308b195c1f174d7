//! Dialogue sessions and their status rules.

use chrono::{DateTime, NaiveDate, Utc};
use tradewatch_common::{Error, Reason, Result, error::FieldViolation, patch::patched, types::Economy};
use uuid::Uuid;

use tradewatch_common::named_enum;

named_enum!(pub enum Track {
    EconomicFinancial => "ECONOMIC_FINANCIAL",
    Trade => "TRADE",
    Agriculture => "AGRICULTURE",
    Energy => "ENERGY",
    Security => "SECURITY",
    Multilateral => "MULTILATERAL",
    PeopleToPeople => "PEOPLE_TO_PEOPLE",
});

named_enum!(pub enum Level {
    Leaders => "LEADERS",
    Ministerial => "MINISTERIAL",
    SeniorOfficials => "SENIOR_OFFICIALS",
    WorkingGroup => "WORKING_GROUP",
});

named_enum!(pub enum SessionStatus {
    Planned => "PLANNED",
    Held => "HELD",
    Postponed => "POSTPONED",
    Cancelled => "CANCELLED",
});

impl SessionStatus {
    /// PLANNED → HELD, POSTPONED, CANCELLED; POSTPONED → PLANNED, CANCELLED;
    /// HELD and CANCELLED are final.
    pub fn next(self) -> &'static [SessionStatus] {
        use SessionStatus::*;
        match self {
            Planned => &[Held, Postponed, Cancelled],
            Postponed => &[Planned, Cancelled],
            Held | Cancelled => &[],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    pub name: String,
    pub role: String,
    pub organization: String,
    pub economy: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgendaItem {
    pub topic: String,
    pub dispute_ids: Vec<Uuid>,
    pub measure_ids: Vec<Uuid>,
}

/// Everything a client sets on a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSpec {
    pub title: String,
    pub track: Track,
    pub level: Level,
    pub host_economy: Economy,
    pub economies: Vec<Economy>,
    pub location: String,
    pub starts_on: NaiveDate,
    pub ends_on: NaiveDate,
    pub participants: Vec<Participant>,
    pub agenda: Vec<AgendaItem>,
    pub outcome_summary: String,
    pub source_url: String,
}

impl SessionSpec {
    /// The rules between fields, named relative to the session.
    pub fn violations(&self) -> Vec<FieldViolation> {
        let mut out = Vec::new();
        if self.economies.len() < 2 {
            out.push(FieldViolation::new("economies", "needs at least two economies"));
        }
        if self.ends_on < self.starts_on {
            out.push(FieldViolation::new("ends_on", "is before starts_on"));
        }
        out
    }

    /// Every dispute id on the agenda, with its field path.
    pub fn agenda_disputes(&self) -> Vec<(String, Uuid)> {
        agenda_disputes(&self.agenda)
    }

    /// Every measure id on the agenda, with its field path.
    pub fn agenda_measures(&self) -> Vec<(String, Uuid)> {
        agenda_measures(&self.agenda)
    }
}

/// Every dispute id on an agenda, with its path (`agenda[0].dispute_ids[1]`).
pub fn agenda_disputes(agenda: &[AgendaItem]) -> Vec<(String, Uuid)> {
    agenda
        .iter()
        .enumerate()
        .flat_map(|(i, a)| {
            a.dispute_ids.iter().enumerate().map(move |(j, id)| (format!("agenda[{i}].dispute_ids[{j}]"), *id))
        })
        .collect()
}

/// Every measure id on an agenda, with its path (`agenda[0].measure_ids[1]`).
pub fn agenda_measures(agenda: &[AgendaItem]) -> Vec<(String, Uuid)> {
    agenda
        .iter()
        .enumerate()
        .flat_map(|(i, a)| {
            a.measure_ids.iter().enumerate().map(move |(j, id)| (format!("agenda[{i}].measure_ids[{j}]"), *id))
        })
        .collect()
}

/// The fields an update changes: `Some` for each field the update mask
/// names, with its new value. The status moves only through `set_status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionPatch {
    pub title: Option<String>,
    pub track: Option<Track>,
    pub level: Option<Level>,
    pub host_economy: Option<Economy>,
    pub economies: Option<Vec<Economy>>,
    pub location: Option<String>,
    pub starts_on: Option<NaiveDate>,
    /// `Some(None)`: the day it starts.
    pub ends_on: Option<Option<NaiveDate>>,
    pub participants: Option<Vec<Participant>>,
    pub agenda: Option<Vec<AgendaItem>>,
    pub outcome_summary: Option<String>,
    pub source_url: Option<String>,
}

impl SessionPatch {
    /// The fields an update mask may name, as the API spells them.
    pub const FIELDS: &'static [&'static str] = &[
        "title",
        "track",
        "level",
        "host_economy",
        "economies",
        "location",
        "starts_on",
        "ends_on",
        "participants",
        "agenda",
        "outcome_summary",
        "source_url",
    ];

    fn apply_to(self, s: &mut SessionSpec) {
        use tradewatch_common::patch::set;
        set(&mut s.title, self.title);
        set(&mut s.track, self.track);
        set(&mut s.level, self.level);
        set(&mut s.host_economy, self.host_economy);
        set(&mut s.economies, self.economies);
        set(&mut s.location, self.location);
        set(&mut s.starts_on, self.starts_on);
        if let Some(ends_on) = self.ends_on {
            s.ends_on = ends_on.unwrap_or(s.starts_on);
        }
        set(&mut s.participants, self.participants);
        set(&mut s.agenda, self.agenda);
        set(&mut s.outcome_summary, self.outcome_summary);
        set(&mut s.source_url, self.source_url);
    }

    /// Whether the indexed lists (economies, agenda links) change.
    pub fn changes_index(&self) -> bool {
        self.economies.is_some() || self.agenda.is_some()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: Uuid,
    pub spec: SessionSpec,
    pub status: SessionStatus,
    pub version: i64,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
    /// Who created it, and who wrote it last.
    pub create_actor: String,
    pub update_actor: String,
}

impl Session {
    /// A new session: PLANNED, or HELD when it is recorded afterwards.
    pub fn new(spec: SessionSpec, status: SessionStatus, now: DateTime<Utc>, by: &str) -> Result<Self> {
        if !matches!(status, SessionStatus::Planned | SessionStatus::Held) {
            return Err(Error::invalid_field("status", "a new session is PLANNED or HELD"));
        }
        Ok(Self {
            id: tradewatch_common::types::new_id(),
            spec,
            status,
            version: 1,
            create_time: now,
            update_time: now,
            create_actor: by.to_owned(),
            update_actor: by.to_owned(),
        })
    }

    /// Applies an update: the fields the patch names change, and the rules
    /// of a session hold again. Violations are named relative to the session.
    pub fn update(&mut self, patch: SessionPatch) -> Result<()> {
        self.spec = patched(&self.spec, |s| patch.apply_to(s), SessionSpec::violations)?;
        Ok(())
    }

    /// Moves the session to `to`, or FAILED_PRECONDITION
    /// `ILLEGAL_STATUS_TRANSITION` with the legal next statuses.
    pub fn set_status(&mut self, to: SessionStatus) -> Result<()> {
        if self.status.next().contains(&to) {
            self.status = to;
            return Ok(());
        }
        let allowed: Vec<String> =
            self.status.next().iter().map(|s| format!("SESSION_STATUS_{}", s.as_str())).collect();
        Err(Error::failed_precondition(
            Reason::IllegalStatusTransition,
            format!("session {} cannot go from {} to {}", self.id, self.status.as_str(), to.as_str()),
        )
        .with_metadata("allowed_statuses", allowed.join(",")))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn eco(s: &str) -> Economy {
        Economy::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn day(s: &str) -> NaiveDate {
        tradewatch_common::types::parse_date(s).unwrap_or_default()
    }

    pub fn spec() -> SessionSpec {
        SessionSpec {
            title: "Carney visit to Beijing".into(),
            track: Track::Trade,
            level: Level::Leaders,
            host_economy: eco("CHN"),
            economies: vec![eco("CAN"), eco("CHN")],
            location: "Beijing".into(),
            starts_on: day("2026-01-14"),
            ends_on: day("2026-01-17"),
            participants: vec![],
            agenda: vec![],
            outcome_summary: String::new(),
            source_url: String::new(),
        }
    }

    #[test]
    fn every_status_move_is_as_the_rules_say() {
        use SessionStatus::*;
        let legal =
            [(Planned, Held), (Planned, Postponed), (Planned, Cancelled), (Postponed, Planned), (Postponed, Cancelled)];
        for from in SessionStatus::ALL {
            for to in SessionStatus::ALL {
                let mut s = Session::new(spec(), Planned, Utc::now(), "test").unwrap_or_else(|e| panic!("{e}"));
                s.status = *from;
                assert_eq!(s.set_status(*to).is_ok(), legal.contains(&(*from, *to)), "{from:?} -> {to:?}");
            }
        }
    }

    #[test]
    fn session_rules_name_their_fields() {
        let mut s = spec();
        s.economies = vec![eco("CAN")];
        s.ends_on = day("2026-01-01");
        let fields: Vec<_> = s.violations().into_iter().map(|v| v.field).collect();
        assert_eq!(fields, ["economies", "ends_on"]);
        assert!(Session::new(spec(), SessionStatus::Cancelled, Utc::now(), "test").is_err());
    }

    #[test]
    fn agenda_links_carry_their_paths() {
        let mut s = spec();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        s.agenda = vec![
            AgendaItem { topic: "canola".into(), dispute_ids: vec![], measure_ids: vec![a] },
            AgendaItem { topic: "EVs".into(), dispute_ids: vec![a, b], measure_ids: vec![] },
        ];
        assert_eq!(s.agenda_measures(), [("agenda[0].measure_ids[0]".to_owned(), a)]);
        assert_eq!(
            s.agenda_disputes(),
            [("agenda[1].dispute_ids[0]".to_owned(), a), ("agenda[1].dispute_ids[1]".to_owned(), b)]
        );
    }
}
