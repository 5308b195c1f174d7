//! The commitment handlers: add, read and list commitments, and move their
//! status, queueing an effect for the relay in the same transaction.

use super::*;

pub(super) async fn add_commitment(
    api: &DialogueApi,
    request: Request<pb::AddCommitmentRequest>,
) -> Reply<pb::AddCommitmentResponse> {
    let deadline = Deadline::of(&request);
    let actor = actor(&request);
    let mut req = request.into_inner();
    let (session_id, spec, request_id) = convert::add_commitment(&req)?;
    req.request_id.clear();
    let key = Key::new("AddCommitment", request_id, &req);
    if let Some(done) = idempotency::replay(&api.db, key.as_ref()).await? {
        return Ok(Response::new(done));
    }
    let session =
        store::get_session(&api.db, session_id).await?.ok_or_else(|| Error::not_found("session", session_id))?;
    let mut v = Violations::new();
    let spec = v.rules("commitment", spec, |s| s.violations_in(&session.spec));
    let spec = v.finish_with(spec)?;
    let disputes: Vec<_> = spec.dispute_id.map(|id| ("commitment.dispute_id".to_owned(), id)).into_iter().collect();
    let measures: Vec<_> = spec.measure_id.map(|id| ("commitment.measure_id".to_owned(), id)).into_iter().collect();
    api.check_links(&disputes, &measures, deadline).await?;
    let commitment = Commitment::new(session_id, spec, tradewatch_common::now(), &actor);
    let id = commitment.id;
    let actor_of_change = actor.clone();
    let response = idempotency::write(&api.db, key, move |txn| {
        Box::pin(async move {
            // The session may have gone since it was read: read it again.
            store::get_session(txn, session_id).await?.ok_or_else(|| Error::not_found("session", session_id))?;
            store::insert_commitment(txn, &commitment).await?;
            let commitment = commitment_to_proto(&commitment);
            let change = watch::change(pb::CommitmentChangeKind::Created, &commitment, &actor_of_change);
            feed::append(txn, watch::TOPIC, tradewatch_common::now(), &change).await?;
            Ok(pb::AddCommitmentResponse { commitment: Some(commitment) })
        })
    })
    .await?;
    api.feed.wake();
    let id = response.commitment.as_ref().map_or_else(|| id.to_string(), |c| c.id.clone());
    audit(&actor, "AddCommitment", "commitment", id, request_id);
    Ok(Response::new(response))
}

pub(super) async fn get_commitment(
    api: &DialogueApi,
    request: Request<pb::GetCommitmentRequest>,
) -> Reply<pb::GetCommitmentResponse> {
    let id = validate::id("id", &request.get_ref().id)?;
    let c = store::get_commitment(&api.db, id).await?.ok_or_else(|| Error::not_found("commitment", id))?;
    Ok(Response::new(pb::GetCommitmentResponse { commitment: Some(commitment_to_proto(&c)) }))
}

pub(super) async fn list_commitments(
    api: &DialogueApi,
    request: Request<pb::ListCommitmentsRequest>,
) -> Reply<pb::ListCommitmentsResponse> {
    let (filter, page) = convert::list_commitments(request.get_ref())?;
    let (commitments, mut next_page_token) = store::list_commitments(&api.db, &filter, &page).await?;
    let mut commitments: Vec<_> = commitments.iter().map(commitment_to_proto).collect();
    page.fit(&mut commitments, &mut next_page_token, api.page_budget, |c| c.id.clone());
    Ok(Response::new(pb::ListCommitmentsResponse { commitments, next_page_token }))
}

pub(super) async fn set_commitment_status(
    api: &DialogueApi,
    request: Request<pb::SetCommitmentStatusRequest>,
) -> Reply<pb::SetCommitmentStatusResponse> {
    let actor = actor(&request);
    let mut req = request.into_inner();
    let set = convert::set_commitment_status(&req)?;
    let (id, status, effective_on, request_id) = (set.id, set.status, set.effective_on, set.request_id);
    let by = actor.clone();
    let sent_etag = req.etag.clone();
    req.request_id.clear();
    let key = Key::new("SetCommitmentStatus", set.request_id, &req);
    let today = today();
    let response = idempotency::write(&api.db, key, move |txn| {
        Box::pin(async move {
            let mut c =
                store::get_commitment_for_update(txn, id).await?.ok_or_else(|| Error::not_found("commitment", id))?;
            etag::check(&sent_etag, c.version, "commitment", id)?;
            let order = c.set_status(status, effective_on, today, &by)?;
            store::update_commitment(txn, &mut c, &by).await?;
            if let Some(order) = &order {
                store::enqueue(txn, order).await?;
            }
            let commitment = commitment_to_proto(&c);
            let change = watch::change(pb::CommitmentChangeKind::StatusChanged, &commitment, &by);
            feed::append(txn, watch::TOPIC, tradewatch_common::now(), &change).await?;
            Ok(pb::SetCommitmentStatusResponse { commitment: Some(commitment) })
        })
    })
    .await?;
    api.feed.wake();
    audit(&actor, "SetCommitmentStatus", "commitment", id, request_id);
    api.relay.notify();
    Ok(Response::new(response))
}
