//! Proto messages to domain types and back. Every bad field is named by its
//! path in the request.

use chrono::NaiveDate;
use tradewatch_common::{
    Error,
    paging::Page,
    proto::dispute as pb,
    proto_enum_map,
    types::{Economy, HsCode, format_date, parse_date, parse_id, parse_request_id},
    validate::{Violations, limits, optional_enum, required_enum, update_mask},
};
use uuid::Uuid;

use crate::{
    domain::{Dispute, DisputePatch, DisputeSpec, Event, EventKind, Forum, Stage},
    store::DisputeFilter,
};

pub use tradewatch_common::types::timestamp;

proto_enum_map!(stage, stage_to_proto, pb::DisputeStage, Stage, "DISPUTE_STAGE_");
proto_enum_map!(forum, forum_to_proto, pb::DisputeForum, Forum, "DISPUTE_FORUM_");
proto_enum_map!(event_kind, event_kind_to_proto, pb::DisputeEventKind, EventKind, "DISPUTE_EVENT_KIND_");

/// The fields of `d` that `paths` name, each parsed as the field demands;
/// violations are named `{prefix}.{field}`. Create and update parse fields
/// alike: a create names them all.
pub fn dispute_patch(v: &mut Violations, prefix: &str, d: &pb::Dispute, paths: &[&str]) -> DisputePatch {
    let f = |name: &str| format!("{prefix}.{name}");
    let wants = |name: &str| paths.contains(&name);
    let mut p = DisputePatch::default();
    if wants("title") {
        p.title = v.text(&f("title"), &d.title, 500);
    }
    if wants("summary") {
        p.summary = v.optional_text(&f("summary"), &d.summary, 10_000);
    }
    if wants("third_parties") {
        p.third_parties = Some(v.list(&f("third_parties"), &d.third_parties, limits::ECONOMIES, Economy::parse));
    }
    if wants("hs_codes") {
        p.hs_codes = Some(v.list(&f("hs_codes"), &d.hs_codes, limits::HS_CODES, HsCode::parse));
    }
    if wants("measure_ids") {
        p.measure_ids = Some(v.list(&f("measure_ids"), &d.measure_ids, limits::LINKED_IDS, parse_id));
    }
    if wants("legal_basis") {
        p.legal_basis = v.optional_text(&f("legal_basis"), &d.legal_basis, 2_000);
    }
    if wants("opened_on") {
        p.opened_on = v.check(f("opened_on"), parse_date(&d.opened_on));
    }
    if wants("source_url") {
        p.source_url = v.url(&f("source_url"), &d.source_url);
    }
    p
}

/// Every client-set field of a new dispute, validated, with the rules
/// between fields applied; violations are named `{prefix}.{field}`.
pub fn dispute_spec(v: &mut Violations, prefix: &str, d: &pb::Dispute) -> Option<DisputeSpec> {
    let f = |name: &str| format!("{prefix}.{name}");
    let reference = v.text(&f("reference"), &d.reference, 200);
    let complainant = v.check(f("complainant"), Economy::parse(&d.complainant));
    let respondent = v.check(f("respondent"), Economy::parse(&d.respondent));
    let forum = required_enum(v, &f("forum"), d.forum, forum);
    let p = dispute_patch(v, prefix, d, DisputePatch::FIELDS);
    let spec = DisputeSpec {
        reference: reference?,
        title: p.title?,
        summary: p.summary?,
        complainant: complainant?,
        respondent: respondent?,
        third_parties: p.third_parties?,
        forum: forum?,
        hs_codes: p.hs_codes?,
        measure_ids: p.measure_ids?,
        legal_basis: p.legal_basis?,
        opened_on: p.opened_on?,
        source_url: p.source_url?,
    };
    v.rules(prefix, spec, |s| s.violations())
}

/// `CreateDispute`: the dispute and the request id.
pub fn create_dispute(req: &pb::CreateDisputeRequest) -> Result<(DisputeSpec, Option<Uuid>), Error> {
    let mut v = Violations::new();
    let request_id = v.check("request_id", parse_request_id(&req.request_id));
    let spec = match &req.dispute {
        Some(d) => dispute_spec(&mut v, "dispute", d),
        None => {
            v.add("dispute", "is required");
            None
        }
    };
    let spec = v.finish_with(spec)?;
    Ok((spec, request_id.flatten()))
}

/// `ListDisputes`: the filters and the page.
pub fn list_disputes(req: &pb::ListDisputesRequest) -> Result<(DisputeFilter, Page), Error> {
    let mut v = Violations::new();
    let filter = DisputeFilter {
        economy: v.filter("economy", &req.economy, Economy::parse),
        complainant: v.filter("complainant", &req.complainant, Economy::parse),
        respondent: v.filter("respondent", &req.respondent, Economy::parse),
        stage: optional_enum(&mut v, "stage", req.stage, stage),
        forum: optional_enum(&mut v, "forum", req.forum, forum),
        hs_code: v.filter("hs_code", &req.hs_code, HsCode::parse),
        measure_id: v.filter("measure_id", &req.measure_id, parse_id),
        open: req.open,
    };
    let filters = pb::ListDisputesRequest { page_size: 0, page_token: String::new(), ..req.clone() };
    let page = Page::parse(&mut v, req.page_size, &req.page_token, &filters);
    v.finish()?;
    Ok((filter, page))
}

/// `AdvanceDispute`, parsed: the day defaults to `today`.
pub struct Advance {
    pub id: Uuid,
    pub to: Stage,
    pub on: NaiveDate,
    pub note: String,
    pub request_id: Option<Uuid>,
}

pub fn advance_dispute(req: &pb::AdvanceDisputeRequest, today: NaiveDate) -> Result<Advance, Error> {
    let mut v = Violations::new();
    let id = v.check("id", parse_id(&req.id));
    let to = required_enum(&mut v, "to_stage", req.to_stage, stage);
    let on = v.or_default("occurred_on", &req.occurred_on, today, parse_date);
    let note = v.optional_text("note", &req.note, 2_000);
    let request_id = v.check("request_id", parse_request_id(&req.request_id));
    let parsed = (|| Some(Advance { id: id?, to: to?, on: on?, note: note?, request_id: request_id? }))();
    v.finish_with(parsed)
}

/// `RecordDisputeEvent`, parsed: the event's kind, day and description.
pub struct NewEvent {
    pub dispute_id: Uuid,
    pub kind: EventKind,
    pub on: NaiveDate,
    pub description: String,
    pub request_id: Option<Uuid>,
}

pub fn record_dispute_event(req: &pb::RecordDisputeEventRequest) -> Result<NewEvent, Error> {
    let mut v = Violations::new();
    let dispute_id = v.check("dispute_id", parse_id(&req.dispute_id));
    let request_id = v.check("request_id", parse_request_id(&req.request_id));
    let (kind, on, description) = match &req.event {
        None => {
            v.add("event", "is required");
            (None, None, None)
        }
        Some(e) => (
            required_enum(&mut v, "event.kind", e.kind, event_kind).and_then(|k| v.check("event.kind", k.recordable())),
            v.check("event.occurred_on", parse_date(&e.occurred_on)),
            v.text("event.description", &e.description, 10_000),
        ),
    };
    let parsed = (|| {
        Some(NewEvent {
            dispute_id: dispute_id?,
            kind: kind?,
            on: on?,
            description: description?,
            request_id: request_id?,
        })
    })();
    v.finish_with(parsed)
}

/// `ListDisputeEvents`: the dispute and the page.
pub fn list_dispute_events(req: &pb::ListDisputeEventsRequest) -> Result<(Uuid, Page), Error> {
    let mut v = Violations::new();
    let id = v.check("dispute_id", parse_id(&req.dispute_id));
    let filters = pb::ListDisputeEventsRequest { page_size: 0, page_token: String::new(), ..req.clone() };
    let page = Page::parse(&mut v, req.page_size, &req.page_token, &filters);
    let id = v.finish_with(id)?;
    Ok((id, page))
}

/// `UpdateDispute`: the dispute's id, its etag and the patch of the fields
/// the mask names, parsed before any database work or peer call.
pub fn update_dispute(req: &pb::UpdateDisputeRequest) -> Result<(Uuid, String, DisputePatch), Error> {
    let mut v = Violations::new();
    let Some(d) = &req.dispute else {
        return Err(Error::invalid_field("dispute", "is required"));
    };
    let id = v.check("dispute.id", parse_id(&d.id));
    let paths = update_mask(
        &mut v,
        req.update_mask.as_ref(),
        "dispute",
        |p| DisputePatch::FIELDS.contains(&p),
        &[("stage", "AdvanceDispute"), ("closed_on", "AdvanceDispute")],
    );
    let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
    let patch = dispute_patch(&mut v, "dispute", d, &paths);
    let id = v.finish_with(id)?;
    Ok((id, d.etag.clone(), patch))
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
        create_actor: d.create_actor.clone(),
        update_actor: d.update_actor.clone(),
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
        actor: e.actor.clone(),
    }
}
