//! Proto messages to domain types and back. Every bad field is named by its
//! path in the request.

use tradewatch_common::{
    proto::dispute as pb,
    proto_enum_map,
    types::{Economy, HsCode, format_date, parse_date, parse_id},
    validate::{Violations, limits, required_enum},
};

use crate::domain::{Dispute, DisputeSpec, Event, EventKind, Forum, Stage};

pub use tradewatch_common::types::timestamp;

proto_enum_map!(stage, stage_to_proto, pb::DisputeStage, Stage, "DISPUTE_STAGE_");
proto_enum_map!(forum, forum_to_proto, pb::DisputeForum, Forum, "DISPUTE_FORUM_");
proto_enum_map!(event_kind, event_kind_to_proto, pb::DisputeEventKind, EventKind, "DISPUTE_EVENT_KIND_");

/// The client-set fields of a dispute, validated, with the rules between
/// fields applied; violations are named `{prefix}.{field}`.
pub fn dispute_spec(v: &mut Violations, prefix: &str, d: &pb::Dispute) -> Option<DisputeSpec> {
    let f = |name: &str| format!("{prefix}.{name}");
    let reference = v.text(&f("reference"), &d.reference, 200);
    let title = v.text(&f("title"), &d.title, 500);
    let summary = v.optional_text(&f("summary"), &d.summary, 10_000);
    let complainant = v.check(f("complainant"), Economy::parse(&d.complainant));
    let respondent = v.check(f("respondent"), Economy::parse(&d.respondent));
    let third_parties = v.list(&f("third_parties"), &d.third_parties, limits::ECONOMIES, Economy::parse);
    let forum = required_enum(v, &f("forum"), d.forum, forum);
    let hs_codes = v.list(&f("hs_codes"), &d.hs_codes, limits::HS_CODES, HsCode::parse);
    let measure_ids = v.list(&f("measure_ids"), &d.measure_ids, limits::LINKED_IDS, parse_id);
    let legal_basis = v.optional_text(&f("legal_basis"), &d.legal_basis, 2_000);
    let opened_on = v.check(f("opened_on"), parse_date(&d.opened_on));
    let source_url = v.url(&f("source_url"), &d.source_url);
    let spec = DisputeSpec {
        reference: reference?,
        title: title?,
        summary: summary?,
        complainant: complainant?,
        respondent: respondent?,
        third_parties,
        forum: forum?,
        hs_codes,
        measure_ids,
        legal_basis: legal_basis?,
        opened_on: opened_on?,
        source_url: source_url?,
    };
    v.rules(prefix, spec, |s| s.violations())
}

pub fn dispute_to_proto(d: &Dispute) -> pb::Dispute {
    let s = &d.spec;
    pb::Dispute {
        id: d.id.to_string(),
        reference: s.reference.clone(),
        title: s.title.clone(),
        summary: s.summary.clone(),
        complainant: s.complainant.to_string(),
        respondent: s.respondent.to_string(),
        third_parties: s.third_parties.iter().map(ToString::to_string).collect(),
        forum: forum_to_proto(s.forum),
        stage: stage_to_proto(d.stage),
        hs_codes: s.hs_codes.iter().map(ToString::to_string).collect(),
        measure_ids: s.measure_ids.iter().map(ToString::to_string).collect(),
        legal_basis: s.legal_basis.clone(),
        opened_on: format_date(s.opened_on),
        closed_on: d.closed_on.map(format_date).unwrap_or_default(),
        source_url: s.source_url.clone(),
        etag: tradewatch_common::etag::of(d.version),
        create_time: Some(timestamp(d.create_time)),
        update_time: Some(timestamp(d.update_time)),
    }
}

pub fn event_to_proto(e: &Event) -> pb::DisputeEvent {
    pb::DisputeEvent {
        id: e.id.to_string(),
        dispute_id: e.dispute_id.to_string(),
        kind: event_kind_to_proto(e.kind),
        occurred_on: format_date(e.occurred_on),
        from_stage: e.from_stage.map_or(0, stage_to_proto),
        to_stage: e.to_stage.map_or(0, stage_to_proto),
        description: e.description.clone(),
        create_time: Some(timestamp(e.create_time)),
    }
}

/// The lists of a dispute within their limits, checked before any database
/// work or peer call (an update's patch is merged and validated later).
pub fn check_counts(v: &mut Violations, prefix: &str, d: &pb::Dispute) {
    v.count(&format!("{prefix}.third_parties"), &d.third_parties, limits::ECONOMIES);
    v.count(&format!("{prefix}.hs_codes"), &d.hs_codes, limits::HS_CODES);
    v.count(&format!("{prefix}.measure_ids"), &d.measure_ids, limits::LINKED_IDS);
}

/// Whether an update mask may name `path`.
pub fn is_updatable(path: &str) -> bool {
    copy_updatable(path, &pb::Dispute::default(), &mut pb::Dispute::default())
}

/// Copies the field named by an update-mask `path` from `from` into `into`;
/// false when the path is not updatable.
pub fn copy_updatable(path: &str, from: &pb::Dispute, into: &mut pb::Dispute) -> bool {
    match path {
        "title" => into.title.clone_from(&from.title),
        "summary" => into.summary.clone_from(&from.summary),
        "third_parties" => into.third_parties.clone_from(&from.third_parties),
        "hs_codes" => into.hs_codes.clone_from(&from.hs_codes),
        "measure_ids" => into.measure_ids.clone_from(&from.measure_ids),
        "legal_basis" => into.legal_basis.clone_from(&from.legal_basis),
        "opened_on" => into.opened_on.clone_from(&from.opened_on),
        "source_url" => into.source_url.clone_from(&from.source_url),
        _ => return false,
    }
    true
}
