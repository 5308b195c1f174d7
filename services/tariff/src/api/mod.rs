//! The gRPC API of the tariff service: turns requests into domain values,
//! runs them against the store in one transaction per write, and answers.

pub mod convert;
mod trade;
pub mod watch;

use sea_orm::DatabaseConnection;
use tonic::{Request, Response, Status};
use tradewatch_common::{
    Error,
    auth::{actor, audit},
    batch, etag,
    feed::{self, Feed},
    idempotency::{self, Key},
    paging,
    proto::tariff::{self as pb, tariff_service_server::TariffService},
    today, validate,
};

use self::convert::*;
use crate::{
    domain::{self, Measure},
    store,
};

#[derive(Clone)]
pub struct TariffApi {
    db: DatabaseConnection,
    /// The change feed every write appends to and WatchMeasures streams.
    feed: Feed,
    /// The schedule in memory that ResolveDuty and coverage read.
    schedule: std::sync::Arc<store::Schedule>,
    /// Whole measures as GetMeasure, exposure and `assume` read them: the
    /// ones read lately, each dropped when a change names it.
    measures: std::sync::Arc<feed::Cache<Measure, pb::MeasureChange>>,
    /// The trade flows in memory that exposure and coverage read.
    trade: std::sync::Arc<store::TradeIndex>,
    /// Which measures reach which flows, kept between coverages.
    matches: std::sync::Arc<store::MatchCache>,
    /// What the items of one list page may take: under the message limit.
    page_budget: usize,
}

impl TariffApi {
    pub fn new(db: DatabaseConnection, feed: Feed, max_message_bytes: usize) -> Self {
        // One head for both indexes: a call that reads both asks it once.
        let head = feed::Head::new(db.clone());
        let schedule = std::sync::Arc::new(store::Schedule::new(db.clone(), head.clone()));
        let measures = feed::Cache::new(db.clone(), watch::TOPIC, |c: &pb::MeasureChange| {
            c.measure.as_ref().map(|m| m.id.clone())
        });
        let measures = std::sync::Arc::new(measures.sharing(head.clone()).holding(MEASURES_KEPT));
        let trade = std::sync::Arc::new(store::TradeIndex::new(db.clone(), head));
        let matches = std::sync::Arc::default();
        let page_budget = paging::response_budget(max_message_bytes);
        Self { db, feed, schedule, measures, trade, matches, page_budget }
    }

    /// The measure `id` whole, as fresh as the database when the call began.
    async fn measure(&self, id: uuid::Uuid) -> Result<Option<std::sync::Arc<Measure>>, Error> {
        self.measures.get(&id.to_string(), || store::get_measure(&self.db, id)).await
    }
}

/// Whole measures kept for GetMeasure, about 1 KiB each: 16 MiB at most,
/// where the schedule holds every measure in a fraction of what they take
/// whole. A schedule of 10,000 lines is read from memory whole; of a
/// national schedule, the measures being read (past the bound the cache
/// starts again empty).
const MEASURES_KEPT: usize = 16_384;

impl TariffApi {
    /// Loads the trade index, as the first call that needs it would: a
    /// million flows take seconds. A failure is left for that call to meet.
    pub async fn warm(self) {
        if let Err(err) = self.trade.fresh().await {
            tracing::debug!(error = %err, "the trade index did not load ahead of the first call");
        }
    }

    /// Loads the schedule, which the service is not SERVING without: a
    /// replica takes traffic with its schedule in memory. A failure (the
    /// database unreachable, which health reports) is left for the first
    /// call that needs the schedule to meet.
    pub async fn load_schedule(self) {
        let started = std::time::Instant::now();
        match self.schedule.fresh().await {
            Ok(()) => tracing::info!(
                measures = self.schedule.read().map(|index| index.len()).unwrap_or_default(),
                took_ms = started.elapsed().as_millis(),
                "schedule loaded"
            ),
            Err(err) => tracing::warn!(error = %err, "the schedule did not load at start; the first call loads it"),
        }
    }
}

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl TariffService for TariffApi {
    async fn create_measure(&self, request: Request<pb::CreateMeasureRequest>) -> Reply<pb::CreateMeasureResponse> {
        let actor = actor(&request);
        let mut req = request.into_inner();
        let (spec, request_id) = convert::create_measure(&req)?;
        req.request_id.clear();
        let key = Key::new("CreateMeasure", request_id, &req);
        let today = today();
        let by = actor.clone();
        let response = idempotency::write(&self.db, key, move |txn| {
            Box::pin(async move {
                let m = Measure::new(spec, today, tradewatch_common::now(), &by);
                store::insert_measure(txn, &m).await?;
                let measure = measure_to_proto(&m, today);
                let change = watch::change(pb::MeasureChangeKind::Created, &measure, &by);
                feed::append(txn, watch::TOPIC, tradewatch_common::now(), &change).await?;
                Ok(pb::CreateMeasureResponse { measure: Some(measure) })
            })
        })
        .await?;
        self.feed.wake();
        let id = response.measure.as_ref().map(|m| m.id.as_str()).unwrap_or_default();
        audit(&actor, "CreateMeasure", "measure", id, request_id);
        Ok(Response::new(response))
    }

    async fn import_measures(&self, request: Request<pb::ImportMeasuresRequest>) -> Reply<pb::ImportMeasuresResponse> {
        let actor = actor(&request);
        let mut req = request.into_inner();
        let (specs, request_id) = convert::import_measures(&req)?;
        req.request_id.clear();
        let key = Key::new("ImportMeasures", request_id, &req);
        let today = today();
        let by = actor.clone();
        let response = idempotency::write(&self.db, key, move |txn| {
            Box::pin(async move {
                tradewatch_common::db::prefer_indexes(txn).await?;
                let references: Vec<&str> = specs.iter().map(|s| s.reference.as_str()).collect();
                let stored = store::measures_by_reference(txn, &references).await?;
                let now = tradewatch_common::now();
                let plan = domain::plan_measure_import(specs, &stored, today, now, &by)?;
                store::insert_measures(txn, &plan.created).await?;
                let changes: Vec<_> = plan
                    .created
                    .iter()
                    .map(|m| watch::change(pb::MeasureChangeKind::Created, &measure_to_proto(m, today), &by))
                    .collect();
                feed::append_all(txn, watch::TOPIC, now, &changes).await?;
                let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
                Ok(pb::ImportMeasuresResponse { created: count(plan.created.len()), unchanged: count(plan.unchanged) })
            })
        })
        .await?;
        self.feed.wake();
        let summary = format!("{} created, {} unchanged", response.created, response.unchanged);
        audit(&actor, "ImportMeasures", "measure", summary, request_id);
        Ok(Response::new(response))
    }

    async fn get_measure(&self, request: Request<pb::GetMeasureRequest>) -> Reply<pb::GetMeasureResponse> {
        let id = validate::id("id", &request.get_ref().id)?;
        let m = self.measure(id).await?.ok_or_else(|| Error::not_found("measure", id))?;
        Ok(Response::new(pb::GetMeasureResponse { measure: Some(measure_to_proto(&m, today())) }))
    }

    async fn batch_get_measures(
        &self,
        request: Request<pb::BatchGetMeasuresRequest>,
    ) -> Reply<pb::BatchGetMeasuresResponse> {
        let ids = batch::parse_ids(&request.get_ref().ids)?;
        let found = store::get_measures(&self.db, &ids).await?;
        let today = today();
        let measures: Vec<_> = batch::in_request_order("measure", &ids, &found, |m| m.id)?
            .iter()
            .map(|m| measure_to_proto(m, today))
            .collect();
        batch::check_size("measure", &measures, self.page_budget)?;
        Ok(Response::new(pb::BatchGetMeasuresResponse { measures }))
    }

    async fn list_measures(&self, request: Request<pb::ListMeasuresRequest>) -> Reply<pb::ListMeasuresResponse> {
        let today = today();
        let (filter, page) = convert::list_measures(request.get_ref(), today)?;
        let (measures, mut next_page_token) = store::list_measures(&self.db, &filter, &page).await?;
        let mut measures: Vec<_> = measures.iter().map(|m| measure_to_proto(m, today)).collect();
        page.fit(&mut measures, &mut next_page_token, self.page_budget, |m| m.id.clone());
        Ok(Response::new(pb::ListMeasuresResponse { measures, next_page_token }))
    }

    async fn update_measure(&self, request: Request<pb::UpdateMeasureRequest>) -> Reply<pb::UpdateMeasureResponse> {
        let actor = actor(&request);
        let (id, etag, patch) = convert::update_measure(request.get_ref())?;
        let today = today();
        let by = actor.clone();
        let response = idempotency::write(&self.db, None, move |txn| {
            Box::pin(async move {
                let mut m =
                    store::get_measure_for_update(txn, id).await?.ok_or_else(|| Error::not_found("measure", id))?;
                etag::check(&etag, m.version, "measure", id)?;
                let coverage = patch.changes_coverage();
                m.update(patch).map_err(|e| e.within("measure"))?;
                store::update_measure(txn, &mut m, coverage, &by).await?;
                let measure = measure_to_proto(&m, today);
                let change = watch::change(pb::MeasureChangeKind::Updated, &measure, &by);
                feed::append(txn, watch::TOPIC, tradewatch_common::now(), &change).await?;
                Ok(pb::UpdateMeasureResponse { measure: Some(measure) })
            })
        })
        .await?;
        self.feed.wake();
        audit(&actor, "UpdateMeasure", "measure", id, None);
        Ok(Response::new(response))
    }

    async fn set_measure_status(
        &self,
        request: Request<pb::SetMeasureStatusRequest>,
    ) -> Reply<pb::SetMeasureStatusResponse> {
        let actor = actor(&request);
        let mut req = request.into_inner();
        let today = today();
        let set = convert::set_measure_status(&req, today)?;
        req.request_id.clear();
        let key = Key::new("SetMeasureStatus", set.request_id, &req);
        let (id, request_id, by) = (set.id, set.request_id, actor.clone());
        let response = idempotency::write(&self.db, key, move |txn| {
            Box::pin(async move {
                let id = set.id;
                let mut m =
                    store::get_measure_for_update(txn, id).await?.ok_or_else(|| Error::not_found("measure", id))?;
                etag::check(&req.etag, m.version, "measure", id)?;
                let change = m.status_change(set.status, set.effective_on, set.note, tradewatch_common::now(), &by)?;
                let reply_change = change_to_proto(&change);
                store::insert_status_change(txn, &mut m, change).await?;
                let measure = measure_to_proto(&m, today);
                let fed = watch::change(pb::MeasureChangeKind::StatusChanged, &measure, &by);
                feed::append(txn, watch::TOPIC, tradewatch_common::now(), &fed).await?;
                Ok(pb::SetMeasureStatusResponse { measure: Some(measure), change: Some(reply_change) })
            })
        })
        .await?;
        self.feed.wake();
        audit(&actor, "SetMeasureStatus", "measure", id, request_id);
        Ok(Response::new(response))
    }

    async fn list_measure_history(
        &self,
        request: Request<pb::ListMeasureHistoryRequest>,
    ) -> Reply<pb::ListMeasureHistoryResponse> {
        let (id, page) = convert::list_measure_history(request.get_ref())?;
        if !store::measure_exists(&self.db, id).await? {
            return Err(Error::not_found("measure", id).into());
        }
        let (changes, mut next_page_token) = store::list_status_changes(&self.db, id, &page).await?;
        let mut protos: Vec<_> = changes.iter().map(change_to_proto).collect();
        page.fit_at(&mut protos, &mut next_page_token, self.page_budget, |i| {
            paging::dated_cursor(changes[i].effective_on, changes[i].id)
        });
        Ok(Response::new(pb::ListMeasureHistoryResponse { changes: protos, next_page_token }))
    }

    async fn record_quota_usage(
        &self,
        request: Request<pb::RecordQuotaUsageRequest>,
    ) -> Reply<pb::RecordQuotaUsageResponse> {
        let actor = actor(&request);
        let mut req = request.into_inner();
        let (id, quantity, request_id) = convert::record_quota_usage(&req)?;
        req.request_id.clear();
        let key = Key::new("RecordQuotaUsage", request_id, &req);
        let today = today();
        let by = actor.clone();
        let response = idempotency::write(&self.db, key, move |txn| {
            Box::pin(async move {
                let mut m =
                    store::get_measure_for_update(txn, id).await?.ok_or_else(|| Error::not_found("measure", id))?;
                m.record_quota_usage(quantity)?;
                store::update_measure(txn, &mut m, false, &by).await?;
                let measure = measure_to_proto(&m, today);
                let change = watch::change(pb::MeasureChangeKind::QuotaUsed, &measure, &by);
                feed::append(txn, watch::TOPIC, tradewatch_common::now(), &change).await?;
                Ok(pb::RecordQuotaUsageResponse { measure: Some(measure) })
            })
        })
        .await?;
        self.feed.wake();
        audit(&actor, "RecordQuotaUsage", "measure", id, request_id);
        Ok(Response::new(response))
    }

    async fn resolve_duty(&self, request: Request<pb::ResolveDutyRequest>) -> Reply<pb::ResolveDutyResponse> {
        trade::resolve_duty(self, request).await
    }

    async fn import_trade_flows(
        &self,
        request: Request<pb::ImportTradeFlowsRequest>,
    ) -> Reply<pb::ImportTradeFlowsResponse> {
        trade::import_trade_flows(self, request).await
    }

    async fn list_trade_flows(&self, request: Request<pb::ListTradeFlowsRequest>) -> Reply<pb::ListTradeFlowsResponse> {
        trade::list_trade_flows(self, request).await
    }

    async fn get_measure_exposure(
        &self,
        request: Request<pb::GetMeasureExposureRequest>,
    ) -> Reply<pb::GetMeasureExposureResponse> {
        trade::get_measure_exposure(self, request).await
    }

    async fn get_trade_coverage(
        &self,
        request: Request<pb::GetTradeCoverageRequest>,
    ) -> Reply<pb::GetTradeCoverageResponse> {
        trade::get_trade_coverage(self, request).await
    }

    type WatchTradeFlowsStream = feed::Stream<pb::WatchTradeFlowsResponse>;

    async fn watch_trade_flows(
        &self,
        request: Request<pb::WatchTradeFlowsRequest>,
    ) -> Reply<Self::WatchTradeFlowsStream> {
        trade::watch_trade_flows(self, request).await
    }

    type WatchMeasuresStream = feed::Stream<pb::WatchMeasuresResponse>;

    async fn watch_measures(&self, request: Request<pb::WatchMeasuresRequest>) -> Reply<Self::WatchMeasuresStream> {
        let filters = watch::watch_measures(request.get_ref())?;
        Ok(Response::new(self.feed.watch(&request.get_ref().start_after, filters).await?))
    }
}
