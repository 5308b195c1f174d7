//! Proto messages to domain types and back. Every bad field is named by its
//! path in the request.

use tradewatch_common::{
    proto::dialogue as pb,
    proto_enum_map,
    types::{Economy, format_date, parse_date, parse_id},
    validate::{Violations, limits, required_enum},
};

pub use tradewatch_common::types::timestamp;

use crate::domain::{
    AgendaItem, Commitment, CommitmentSpec, CommitmentStatus, Effect, EffectState, Level, Participant, Session,
    SessionSpec, SessionStatus, Track,
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

/// The client-set fields of a session; violations are named `{prefix}.{field}`.
pub fn session_spec(v: &mut Violations, prefix: &str, s: &pb::DialogueSession) -> Option<SessionSpec> {
    let f = |name: &str| format!("{prefix}.{name}");
    let title = v.text(&f("title"), &s.title, 500);
    let track = required_enum(v, &f("track"), s.track, track);
    let level = required_enum(v, &f("level"), s.level, level);
    let host_economy = v.check(f("host_economy"), Economy::parse(&s.host_economy));
    let economies = v.list(&f("economies"), &s.economies, limits::ECONOMIES, Economy::parse);
    let location = v.optional_text(&f("location"), &s.location, 200);
    let starts_on = v.check(f("starts_on"), parse_date(&s.starts_on));
    let ends_on = match v.optional(f("ends_on"), &s.ends_on, parse_date) {
        Some(None) => starts_on,
        ends_on => ends_on.flatten(),
    };
    let participants: Vec<Option<Participant>> =
        if v.count(&f("participants"), &s.participants, limits::PARTICIPANTS) {
            s.participants.as_slice()
        } else {
            &[]
        }
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let name = v.text(&f(&format!("participants[{i}].name")), &p.name, 200);
            let role = v.optional_text(&f(&format!("participants[{i}].role")), &p.role, 200);
            let organization = v.optional_text(&f(&format!("participants[{i}].organization")), &p.organization, 200);
            let economy = v
                .optional(f(&format!("participants[{i}].economy")), &p.economy, Economy::parse)
                .map(|e| e.map(|e| e.to_string()));
            Some(Participant { name: name?, role: role?, organization: organization?, economy: economy? })
        })
        .collect();
    let agenda: Vec<Option<AgendaItem>> =
        if v.count(&f("agenda"), &s.agenda, limits::AGENDA_ITEMS) { s.agenda.as_slice() } else { &[] }
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let topic = v.text(&f(&format!("agenda[{i}].topic")), &a.topic, 500);
                let dispute_ids =
                    v.list(&f(&format!("agenda[{i}].dispute_ids")), &a.dispute_ids, limits::LINKED_IDS, parse_id);
                let measure_ids =
                    v.list(&f(&format!("agenda[{i}].measure_ids")), &a.measure_ids, limits::LINKED_IDS, parse_id);
                Some(AgendaItem { topic: topic?, dispute_ids, measure_ids })
            })
            .collect();
    let outcome_summary = v.optional_text(&f("outcome_summary"), &s.outcome_summary, 10_000);
    let source_url = v.url(&f("source_url"), &s.source_url);
    let spec = SessionSpec {
        title: title?,
        track: track?,
        level: level?,
        host_economy: host_economy?,
        economies,
        location: location?,
        starts_on: starts_on?,
        ends_on: ends_on?,
        participants: participants.into_iter().collect::<Option<_>>()?,
        agenda: agenda.into_iter().collect::<Option<_>>()?,
        outcome_summary: outcome_summary?,
        source_url: source_url?,
    };
    v.rules(prefix, spec, |s| s.violations())
}

/// The lists of a session within their limits, checked before any database
/// work or peer call (an update's patch is merged and validated later).
pub fn check_counts(v: &mut Violations, prefix: &str, s: &pb::DialogueSession) {
    v.count(&format!("{prefix}.economies"), &s.economies, limits::ECONOMIES);
    v.count(&format!("{prefix}.participants"), &s.participants, limits::PARTICIPANTS);
    if v.count(&format!("{prefix}.agenda"), &s.agenda, limits::AGENDA_ITEMS) {
        for (i, a) in s.agenda.iter().enumerate() {
            v.count(&format!("{prefix}.agenda[{i}].dispute_ids"), &a.dispute_ids, limits::LINKED_IDS);
            v.count(&format!("{prefix}.agenda[{i}].measure_ids"), &a.measure_ids, limits::LINKED_IDS);
        }
    }
}

/// Whether an update mask may name `path`.
pub fn is_updatable(path: &str) -> bool {
    copy_updatable(path, &pb::DialogueSession::default(), &mut pb::DialogueSession::default())
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
    let effect_on = v.optional(f("effect_on"), &c.effect_on, parse_date);
    let spec = CommitmentSpec {
        description: description?,
        owner_economies,
        due_on: due_on?,
        dispute_id: dispute_id?,
        measure_id: measure_id?,
        effect: effect?,
        effect_on: effect_on?,
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
        effect_on: c.spec.effect_on.map(format_date).unwrap_or_default(),
        effect_state: effect_state_to_proto(c.effect_state),
        effect_detail: c.effect_detail.clone(),
        etag: tradewatch_common::etag::of(c.version),
        create_time: Some(timestamp(c.create_time)),
        update_time: Some(timestamp(c.update_time)),
    }
}

/// Copies the field named by an update-mask `path` from `from` into `into`;
/// false when the path is not updatable.
pub fn copy_updatable(path: &str, from: &pb::DialogueSession, into: &mut pb::DialogueSession) -> bool {
    match path {
        "title" => into.title.clone_from(&from.title),
        "track" => into.track = from.track,
        "level" => into.level = from.level,
        "host_economy" => into.host_economy.clone_from(&from.host_economy),
        "economies" => into.economies.clone_from(&from.economies),
        "location" => into.location.clone_from(&from.location),
        "starts_on" => into.starts_on.clone_from(&from.starts_on),
        "ends_on" => into.ends_on.clone_from(&from.ends_on),
        "participants" => into.participants.clone_from(&from.participants),
        "agenda" => into.agenda.clone_from(&from.agenda),
        "outcome_summary" => into.outcome_summary.clone_from(&from.outcome_summary),
        "source_url" => into.source_url.clone_from(&from.source_url),
        _ => return false,
    }
    true
}
