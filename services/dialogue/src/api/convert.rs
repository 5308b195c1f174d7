//! Proto messages to domain types and back. Every bad field is named by its
//! path in the request.

use chrono::NaiveDate;
use tradewatch_common::{
    Error,
    paging::Page,
    proto::dialogue as pb,
    proto_enum_map,
    types::{Economy, format_date, parse_date, parse_id, parse_request_id},
    validate::{Violations, limits, optional_enum, required_enum, update_mask},
};
use uuid::Uuid;

pub use tradewatch_common::types::timestamp;

use crate::{
    domain::{
        AgendaItem, Commitment, CommitmentSpec, CommitmentStatus, Effect, EffectState, Level, Participant, Session,
        SessionPatch, SessionSpec, SessionStatus, Track,
    },
    store::{CommitmentFilter, SessionFilter},
};

proto_enum_map!(track, track_to_proto, pb::DialogueTrack, Track, "DIALOGUE_TRACK_");
proto_enum_map!(level, level_to_proto, pb::SessionLevel, Level, "SESSION_LEVEL_");
proto_enum_map!(session_status, session_status_to_proto, pb::SessionStatus, SessionStatus, "SESSION_STATUS_");
proto_enum_map!(
    commitment_status,
    commitment_status_to_proto,
    pb::CommitmentStatus,
    CommitmentStatus,
    "COMMITMENT_STATUS_"
);
proto_enum_map!(effect, effect_to_proto, pb::CommitmentEffect, Effect, "COMMITMENT_EFFECT_");
proto_enum_map!(effect_state, effect_state_to_proto, pb::EffectState, EffectState, "EFFECT_STATE_");

/// The fields of `s` that `paths` name, each parsed as the field demands;
/// violations are named `{prefix}.{field}`. Create and update parse fields
/// alike: a create names them all.
pub fn session_patch(v: &mut Violations, prefix: &str, s: &pb::DialogueSession, paths: &[&str]) -> SessionPatch {
    let f = |name: &str| format!("{prefix}.{name}");
    let wants = |name: &str| paths.contains(&name);
    let mut p = SessionPatch::default();
    if wants("title") {
        p.title = v.text(&f("title"), &s.title, 500);
    }
    if wants("track") {
        p.track = required_enum(v, &f("track"), s.track, track);
    }
    if wants("level") {
        p.level = required_enum(v, &f("level"), s.level, level);
    }
    if wants("host_economy") {
        p.host_economy = v.check(f("host_economy"), Economy::parse(&s.host_economy));
    }
    if wants("economies") {
        p.economies = Some(v.list(&f("economies"), &s.economies, limits::ECONOMIES, Economy::parse));
    }
    if wants("location") {
        p.location = v.optional_text(&f("location"), &s.location, 200);
    }
    if wants("starts_on") {
        p.starts_on = v.check(f("starts_on"), parse_date(&s.starts_on));
    }
    if wants("ends_on") {
        p.ends_on = v.optional(f("ends_on"), &s.ends_on, parse_date);
    }
    if wants("participants") && v.count(&f("participants"), &s.participants, limits::PARTICIPANTS) {
        let parsed: Vec<Option<Participant>> = s
            .participants
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let at = |name: &str| f(&format!("participants[{i}].{name}"));
                let name = v.text(&at("name"), &p.name, 200);
                let role = v.optional_text(&at("role"), &p.role, 200);
                let organization = v.optional_text(&at("organization"), &p.organization, 200);
                let economy = v.optional(at("economy"), &p.economy, Economy::parse).map(|e| e.map(|e| e.to_string()));
                Some(Participant { name: name?, role: role?, organization: organization?, economy: economy? })
            })
            .collect();
        p.participants = parsed.into_iter().collect();
    }
    if wants("agenda") && v.count(&f("agenda"), &s.agenda, limits::AGENDA_ITEMS) {
        let parsed: Vec<Option<AgendaItem>> = s
            .agenda
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let at = |name: &str| f(&format!("agenda[{i}].{name}"));
                let topic = v.text(&at("topic"), &a.topic, 500);
                let dispute_ids = v.list(&at("dispute_ids"), &a.dispute_ids, limits::LINKED_IDS, parse_id);
                let measure_ids = v.list(&at("measure_ids"), &a.measure_ids, limits::LINKED_IDS, parse_id);
                Some(AgendaItem { topic: topic?, dispute_ids, measure_ids })
            })
            .collect();
        p.agenda = parsed.into_iter().collect();
    }
    if wants("outcome_summary") {
        p.outcome_summary = v.optional_text(&f("outcome_summary"), &s.outcome_summary, 10_000);
    }
    if wants("source_url") {
        p.source_url = v.url(&f("source_url"), &s.source_url);
    }
    p
}

/// Every client-set field of a new session, validated, with the rules
/// between fields applied; violations are named `{prefix}.{field}`.
pub fn session_spec(v: &mut Violations, prefix: &str, s: &pb::DialogueSession) -> Option<SessionSpec> {
    let p = session_patch(v, prefix, s, SessionPatch::FIELDS);
    let starts_on = p.starts_on?;
    let spec = SessionSpec {
        title: p.title?,
        track: p.track?,
        level: p.level?,
        host_economy: p.host_economy?,
        economies: p.economies?,
        location: p.location?,
        starts_on,
        ends_on: p.ends_on?.unwrap_or(starts_on),
        participants: p.participants?,
        agenda: p.agenda?,
        outcome_summary: p.outcome_summary?,
        source_url: p.source_url?,
    };
    v.rules(prefix, spec, |s| s.violations())
}

/// `CreateSession`: the session, its first status (PLANNED unless given)
/// and the request id.
pub fn create_session(req: &pb::CreateSessionRequest) -> Result<(SessionSpec, SessionStatus, Option<Uuid>), Error> {
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
    Ok((spec, status, request_id.flatten()))
}

/// `ListSessions`: the filters and the page.
pub fn list_sessions(req: &pb::ListSessionsRequest) -> Result<(SessionFilter, Page), Error> {
    let mut v = Violations::new();
    let filter = SessionFilter {
        track: optional_enum(&mut v, "track", req.track, track),
        level: optional_enum(&mut v, "level", req.level, level),
        status: optional_enum(&mut v, "status", req.status, session_status),
        economy: v.filter("economy", &req.economy, Economy::parse),
        dispute_id: v.filter("dispute_id", &req.dispute_id, parse_id),
        measure_id: v.filter("measure_id", &req.measure_id, parse_id),
        ends_on_from: v.filter("ends_on_from", &req.ends_on_from, parse_date),
        starts_on_to: v.filter("starts_on_to", &req.starts_on_to, parse_date),
    };
    let filters = pb::ListSessionsRequest { page_size: 0, page_token: String::new(), ..req.clone() };
    let page = Page::parse(&mut v, req.page_size, &req.page_token, &filters);
    v.finish()?;
    Ok((filter, page))
}

/// `SetSessionStatus`: the session, its new status and the request id.
pub fn set_session_status(req: &pb::SetSessionStatusRequest) -> Result<(Uuid, SessionStatus, Option<Uuid>), Error> {
    let mut v = Violations::new();
    let id = v.check("id", parse_id(&req.id));
    let status = required_enum(&mut v, "status", req.status, session_status);
    let request_id = v.check("request_id", parse_request_id(&req.request_id));
    let (id, status) = v.finish_with(id.zip(status))?;
    Ok((id, status, request_id.flatten()))
}

/// `AddCommitment`: the session, the commitment and the request id.
pub fn add_commitment(req: &pb::AddCommitmentRequest) -> Result<(Uuid, CommitmentSpec, Option<Uuid>), Error> {
    let mut v = Violations::new();
    let session_id = v.check("session_id", parse_id(&req.session_id));
    let request_id = v.check("request_id", parse_request_id(&req.request_id));
    let spec = match &req.commitment {
        Some(c) => commitment_spec(&mut v, "commitment", c),
        None => {
            v.add("commitment", "is required");
            None
        }
    };
    let (session_id, spec) = v.finish_with(session_id.zip(spec))?;
    Ok((session_id, spec, request_id.flatten()))
}

/// `ListCommitments`: the filters and the page.
pub fn list_commitments(req: &pb::ListCommitmentsRequest) -> Result<(CommitmentFilter, Page), Error> {
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
    Ok((filter, page))
}

/// `SetCommitmentStatus`, parsed: the day its effect takes hold, if given.
pub struct SetCommitmentStatus {
    pub id: Uuid,
    pub status: CommitmentStatus,
    pub effective_on: Option<NaiveDate>,
    pub request_id: Option<Uuid>,
}

pub fn set_commitment_status(req: &pb::SetCommitmentStatusRequest) -> Result<SetCommitmentStatus, Error> {
    let mut v = Violations::new();
    let id = v.check("id", parse_id(&req.id));
    let status = required_enum(&mut v, "status", req.status, commitment_status);
    let effective_on = v.optional("effective_on", &req.effective_on, parse_date);
    let request_id = v.check("request_id", parse_request_id(&req.request_id));
    let parsed = (|| {
        Some(SetCommitmentStatus { id: id?, status: status?, effective_on: effective_on?, request_id: request_id? })
    })();
    v.finish_with(parsed)
}

/// `UpdateSession`: the session's id, its etag and the patch of the fields
/// the mask names, parsed before any database work or peer call.
pub fn update_session(req: &pb::UpdateSessionRequest) -> Result<(Uuid, String, SessionPatch), Error> {
    let mut v = Violations::new();
    let Some(s) = &req.session else {
        return Err(Error::invalid_field("session", "is required"));
    };
    let id = v.check("session.id", parse_id(&s.id));
    let paths = update_mask(
        &mut v,
        req.update_mask.as_ref(),
        "session",
        |p| SessionPatch::FIELDS.contains(&p),
        &[("status", "SetSessionStatus")],
    );
    let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
    let patch = session_patch(&mut v, "session", s, &paths);
    let id = v.finish_with(id)?;
    Ok((id, s.etag.clone(), patch))
}

pub fn session_to_proto(s: &Session) -> pb::DialogueSession {
    let spec = &s.spec;
    pb::DialogueSession {
        id: s.id.to_string(),
        title: spec.title.clone(),
        track: track_to_proto(spec.track),
        level: level_to_proto(spec.level),
        host_economy: spec.host_economy.to_string(),
        economies: spec.economies.iter().map(ToString::to_string).collect(),
        location: spec.location.clone(),
        starts_on: format_date(spec.starts_on),
        ends_on: format_date(spec.ends_on),
        status: session_status_to_proto(s.status),
        participants: spec
            .participants
            .iter()
            .map(|p| pb::Participant {
                name: p.name.clone(),
                role: p.role.clone(),
                organization: p.organization.clone(),
                economy: p.economy.clone().unwrap_or_default(),
            })
            .collect(),
        agenda: spec
            .agenda
            .iter()
            .map(|a| pb::AgendaItem {
                topic: a.topic.clone(),
                dispute_ids: a.dispute_ids.iter().map(ToString::to_string).collect(),
                measure_ids: a.measure_ids.iter().map(ToString::to_string).collect(),
            })
            .collect(),
        outcome_summary: spec.outcome_summary.clone(),
        source_url: spec.source_url.clone(),
        etag: tradewatch_common::etag::of(s.version),
        create_time: Some(timestamp(s.create_time)),
        update_time: Some(timestamp(s.update_time)),
        create_actor: s.create_actor.clone(),
        update_actor: s.update_actor.clone(),
    }
}

/// The client-set fields of a commitment; violations are named
/// `{prefix}.{field}`. An UNSPECIFIED effect means NONE.
pub fn commitment_spec(v: &mut Violations, prefix: &str, c: &pb::Commitment) -> Option<CommitmentSpec> {
    let f = |name: &str| format!("{prefix}.{name}");
    let description = v.text(&f("description"), &c.description, 5_000);
    let owner_economies = v.list(&f("owner_economies"), &c.owner_economies, limits::ECONOMIES, Economy::parse);
    let due_on = v.optional(f("due_on"), &c.due_on, parse_date);
    let dispute_id = v.optional(f("dispute_id"), &c.dispute_id, parse_id);
    let measure_id = v.optional(f("measure_id"), &c.measure_id, parse_id);
    let effect = if c.effect == 0 { Some(Effect::None) } else { required_enum(v, &f("effect"), c.effect, effect) };
    let effective_on = v.optional(f("effective_on"), &c.effective_on, parse_date);
    let spec = CommitmentSpec {
        description: description?,
        owner_economies,
        due_on: due_on?,
        dispute_id: dispute_id?,
        measure_id: measure_id?,
        effect: effect?,
        effective_on: effective_on?,
    };
    v.rules(prefix, spec, |s| s.violations())
}

pub fn commitment_to_proto(c: &Commitment) -> pb::Commitment {
    pb::Commitment {
        id: c.id.to_string(),
        session_id: c.session_id.to_string(),
        description: c.spec.description.clone(),
        owner_economies: c.spec.owner_economies.iter().map(ToString::to_string).collect(),
        due_on: c.spec.due_on.map(format_date).unwrap_or_default(),
        status: commitment_status_to_proto(c.status),
        dispute_id: c.spec.dispute_id.map(|i| i.to_string()).unwrap_or_default(),
        measure_id: c.spec.measure_id.map(|i| i.to_string()).unwrap_or_default(),
        effect: effect_to_proto(c.spec.effect),
        effective_on: c.spec.effective_on.map(format_date).unwrap_or_default(),
        effect_state: effect_state_to_proto(c.effect_state),
        effect_detail: c.effect_detail.clone(),
        etag: tradewatch_common::etag::of(c.version),
        create_time: Some(timestamp(c.create_time)),
        update_time: Some(timestamp(c.update_time)),
        create_actor: c.create_actor.clone(),
        update_actor: c.update_actor.clone(),
        status_actor: c.status_actor.clone(),
    }
}
