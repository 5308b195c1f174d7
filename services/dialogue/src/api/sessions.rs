//! The session handlers: create, read, list, update and move a session's
//! status; agenda links are checked with the dispute and tariff services.

use super::*;

pub(super) async fn create_session(
    api: &DialogueApi,
    request: Request<pb::CreateSessionRequest>,
) -> Reply<pb::CreateSessionResponse> {
    let deadline = Deadline::of(&request);
    let mut req = request.into_inner();
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
    req.request_id.clear();
    let key = Key::new("CreateSession", request_id.flatten(), &req);
    if let Some(done) = idempotency::replay(&api.db, key.as_ref()).await? {
        return Ok(Response::new(done));
    }
    api.check_links(
        &prefixed("session", spec.agenda_disputes()),
        &prefixed("session", spec.agenda_measures()),
        deadline,
    )
    .await?;
    let session = Session::new(spec, status, tradewatch_common::now()).map_err(|e| e.within("session"))?;
    let response = idempotency::write(&api.db, key, move |txn| {
        Box::pin(async move {
            store::insert_session(txn, &session).await?;
            Ok(pb::CreateSessionResponse { session: Some(session_to_proto(&session)) })
        })
    })
    .await?;
    Ok(Response::new(response))
}

pub(super) async fn get_session(
    api: &DialogueApi,
    request: Request<pb::GetSessionRequest>,
) -> Reply<pb::GetSessionResponse> {
    let req = request.into_inner();
    let mut v = Violations::new();
    let id = id_field(&mut v, "id", &req.id);
    let id = v.finish_with(id)?;
    let s = store::get_session(&api.db, id).await?.ok_or_else(|| Error::not_found("session", id))?;
    Ok(Response::new(pb::GetSessionResponse { session: Some(session_to_proto(&s)) }))
}

pub(super) async fn list_sessions(
    api: &DialogueApi,
    request: Request<pb::ListSessionsRequest>,
) -> Reply<pb::ListSessionsResponse> {
    let req = request.into_inner();
    let mut v = Violations::new();
    let filter = SessionFilter {
        track: optional_enum(&mut v, "track", req.track, track),
        level: optional_enum(&mut v, "level", req.level, level),
        status: optional_enum(&mut v, "status", req.status, session_status),
        economy: v.filter("economy", &req.economy, Economy::parse),
        dispute_id: v.filter("dispute_id", &req.dispute_id, parse_id),
        measure_id: v.filter("measure_id", &req.measure_id, parse_id),
        from: v.filter("starts_on_from", &req.starts_on_from, parse_date),
        to: v.filter("starts_on_to", &req.starts_on_to, parse_date),
    };
    let filters = pb::ListSessionsRequest { page_size: 0, page_token: String::new(), ..req.clone() };
    let page = Page::parse(&mut v, req.page_size, &req.page_token, &filters);
    v.finish()?;
    let (sessions, mut next_page_token) = store::list_sessions(&api.db, &filter, &page).await?;
    let mut sessions: Vec<_> = sessions.iter().map(session_to_proto).collect();
    page.fit(&mut sessions, &mut next_page_token, api.page_budget, |s| s.id.clone());
    Ok(Response::new(pb::ListSessionsResponse { sessions, next_page_token }))
}

pub(super) async fn update_session(
    api: &DialogueApi,
    request: Request<pb::UpdateSessionRequest>,
) -> Reply<pb::UpdateSessionResponse> {
    let deadline = Deadline::of(&request);
    let (id, etag, patch) = convert::update_session(request.get_ref())?;
    // Links on a new agenda are checked before the transaction.
    if let Some(agenda) = &patch.agenda {
        let disputes = prefixed("session", agenda_disputes(agenda));
        let measures = prefixed("session", agenda_measures(agenda));
        api.check_links(&disputes, &measures, deadline).await?;
    }
    let response = idempotency::write(&api.db, None, move |txn| {
        Box::pin(async move {
            let mut s = store::get_session_for_update(txn, id).await?.ok_or_else(|| Error::not_found("session", id))?;
            etag::check(&etag, s.version, "session", id)?;
            let index = patch.changes_index();
            s.update(patch).map_err(|e| e.within("session"))?;
            store::update_session(txn, &mut s, index).await?;
            Ok(pb::UpdateSessionResponse { session: Some(session_to_proto(&s)) })
        })
    })
    .await?;
    Ok(Response::new(response))
}

pub(super) async fn set_session_status(
    api: &DialogueApi,
    request: Request<pb::SetSessionStatusRequest>,
) -> Reply<pb::SetSessionStatusResponse> {
    let mut req = request.into_inner();
    let mut v = Violations::new();
    let id = id_field(&mut v, "id", &req.id);
    let status = required_enum(&mut v, "status", req.status, session_status);
    let request_id = v.check("request_id", parse_request_id(&req.request_id));
    let (id, status) = v.finish_with(id.zip(status))?;
    let sent_etag = req.etag.clone();
    req.request_id.clear();
    let key = Key::new("SetSessionStatus", request_id.flatten(), &req);
    let response = idempotency::write(&api.db, key, move |txn| {
        Box::pin(async move {
            let mut s = store::get_session_for_update(txn, id).await?.ok_or_else(|| Error::not_found("session", id))?;
            etag::check(&sent_etag, s.version, "session", id)?;
            s.set_status(status)?;
            store::update_session(txn, &mut s, false).await?;
            Ok(pb::SetSessionStatusResponse { session: Some(session_to_proto(&s)) })
        })
    })
    .await?;
    Ok(Response::new(response))
}
