//! The session handlers: create, read, list, update and move a session's
//! status; agenda links are checked with the dispute and tariff services.

use super::*;

/// The change-feed topic of sessions: no Watch streams it; it keeps the
/// sessions GetSession answers from as fresh as the feed's head.
pub(super) const SESSION_TOPIC: &str = "session";

pub(super) async fn create_session(
    api: &DialogueApi,
    request: Request<pb::CreateSessionRequest>,
) -> Reply<pb::CreateSessionResponse> {
    let deadline = Deadline::of(&request);
    let actor = actor(&request);
    let mut req = request.into_inner();
    let (spec, status, request_id) = convert::create_session(&req)?;
    req.request_id.clear();
    let key = Key::new("CreateSession", request_id, &req);
    if let Some(done) = idempotency::replay(&api.db, key.as_ref()).await? {
        return Ok(Response::new(done));
    }
    api.check_links(
        &prefixed("session", spec.agenda_disputes()),
        &prefixed("session", spec.agenda_measures()),
        deadline,
    )
    .await?;
    let session = Session::new(spec, status, tradewatch_common::now(), &actor).map_err(|e| e.within("session"))?;
    let id = session.id;
    let response = idempotency::write(&api.db, key, move |txn| {
        Box::pin(async move {
            store::insert_session(txn, &session).await?;
            let session = session_to_proto(&session);
            feed::append(txn, SESSION_TOPIC, tradewatch_common::now(), &session).await?;
            Ok(pb::CreateSessionResponse { session: Some(session) })
        })
    })
    .await?;
    let id = response.session.as_ref().map_or_else(|| id.to_string(), |s| s.id.clone());
    audit(&actor, "CreateSession", "session", id, request_id);
    Ok(Response::new(response))
}

pub(super) async fn get_session(
    api: &DialogueApi,
    request: Request<pb::GetSessionRequest>,
) -> Reply<pb::GetSessionResponse> {
    let id = validate::id("id", &request.get_ref().id)?;
    let db = &api.db;
    let load = || async move { Ok(store::get_session(db, id).await?.map(|s| session_to_proto(&s))) };
    let s = api.sessions.get(&id.to_string(), load).await?.ok_or_else(|| Error::not_found("session", id))?;
    Ok(Response::new(pb::GetSessionResponse { session: Some(pb::DialogueSession::clone(&s)) }))
}

pub(super) async fn list_sessions(
    api: &DialogueApi,
    request: Request<pb::ListSessionsRequest>,
) -> Reply<pb::ListSessionsResponse> {
    let (filter, page) = convert::list_sessions(request.get_ref())?;
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
    let actor = actor(&request);
    let (id, etag, patch) = convert::update_session(request.get_ref())?;
    // Links on a new agenda are checked before the transaction.
    if let Some(agenda) = &patch.agenda {
        let disputes = prefixed("session", agenda_disputes(agenda));
        let measures = prefixed("session", agenda_measures(agenda));
        api.check_links(&disputes, &measures, deadline).await?;
    }
    let by = actor.clone();
    let response = idempotency::write(&api.db, None, move |txn| {
        Box::pin(async move {
            let mut s = store::get_session_for_update(txn, id).await?.ok_or_else(|| Error::not_found("session", id))?;
            etag::check(&etag, s.version, "session", id)?;
            let index = patch.changes_index();
            s.update(patch).map_err(|e| e.within("session"))?;
            store::update_session(txn, &mut s, index, &by).await?;
            let session = session_to_proto(&s);
            feed::append(txn, SESSION_TOPIC, tradewatch_common::now(), &session).await?;
            Ok(pb::UpdateSessionResponse { session: Some(session) })
        })
    })
    .await?;
    audit(&actor, "UpdateSession", "session", id, None);
    Ok(Response::new(response))
}

pub(super) async fn set_session_status(
    api: &DialogueApi,
    request: Request<pb::SetSessionStatusRequest>,
) -> Reply<pb::SetSessionStatusResponse> {
    let actor = actor(&request);
    let mut req = request.into_inner();
    let (id, status, request_id) = convert::set_session_status(&req)?;
    let sent_etag = req.etag.clone();
    req.request_id.clear();
    let key = Key::new("SetSessionStatus", request_id, &req);
    let by = actor.clone();
    let response = idempotency::write(&api.db, key, move |txn| {
        Box::pin(async move {
            let mut s = store::get_session_for_update(txn, id).await?.ok_or_else(|| Error::not_found("session", id))?;
            etag::check(&sent_etag, s.version, "session", id)?;
            s.set_status(status)?;
            store::update_session(txn, &mut s, false, &by).await?;
            let session = session_to_proto(&s);
            feed::append(txn, SESSION_TOPIC, tradewatch_common::now(), &session).await?;
            Ok(pb::SetSessionStatusResponse { session: Some(session) })
        })
    })
    .await?;
    audit(&actor, "SetSessionStatus", "session", id, request_id);
    Ok(Response::new(response))
}
