//! The gRPC API of the tariff service: turns requests into domain values,
//! runs them against the store in one transaction per write, and answers.

pub mod convert;

use sea_orm::DatabaseConnection;
use tonic::{Request, Response, Status};
use tradewatch_common::{
    Error, batch, etag,
    idempotency::{self, Key},
    paging::{self, Page},
    proto::tariff::{self as pb, tariff_service_server::TariffService},
    today,
    types::{DecimalBounds, Economy, HsCode, new_id, parse_bounded_positive, parse_date, parse_id, parse_request_id},
    validate::{Violations, optional_enum, required_enum},
};

use self::convert::*;
use crate::{
    domain::{self, Measure, Shipment, StatusChange},
    store::{self, MeasureFilter},
};

#[derive(Clone)]
pub struct TariffApi {
    db: DatabaseConnection,
    /// What the items of one list page may take: under the message limit.
    page_budget: usize,
}

impl TariffApi {
    pub fn new(db: DatabaseConnection, max_message_bytes: usize) -> Self {
        Self { db, page_budget: paging::response_budget(max_message_bytes) }
    }
}

type Reply<T> = Result<Response<T>, Status>;

fn id_field(v: &mut Violations, field: &str, raw: &str) -> Option<uuid::Uuid> {
    v.check(field, parse_id(raw))
}

#[tonic::async_trait]
impl TariffService for TariffApi {
    async fn create_measure(&self, request: Request<pb::CreateMeasureRequest>) -> Reply<pb::CreateMeasureResponse> {
        let mut req = request.into_inner();
        let mut v = Violations::new();
        let request_id = v.check("request_id", parse_request_id(&req.request_id));
        let spec = match &req.measure {
            Some(m) => measure_spec(&mut v, "measure", m),
            None => {
                v.add("measure", "is required");
                None
            }
        };
        let spec = v.finish_with(spec)?;
        req.request_id.clear();
        let key = Key::new("CreateMeasure", request_id.flatten(), &req);
        let today = today();
        let response = idempotency::write(&self.db, key, move |txn| {
            Box::pin(async move {
                let m = Measure::new(spec, today, tradewatch_common::now());
                store::insert_measure(txn, &m).await?;
                Ok(pb::CreateMeasureResponse { measure: Some(measure_to_proto(&m, today)) })
            })
        })
        .await?;
        Ok(Response::new(response))
    }

    async fn get_measure(&self, request: Request<pb::GetMeasureRequest>) -> Reply<pb::GetMeasureResponse> {
        let req = request.into_inner();
        let mut v = Violations::new();
        let id = id_field(&mut v, "id", &req.id);
        let id = v.finish_with(id)?;
        let m = store::get_measure(&self.db, id).await?.ok_or_else(|| Error::not_found("measure", id))?;
        Ok(Response::new(pb::GetMeasureResponse { measure: Some(measure_to_proto(&m, today())) }))
    }

    async fn batch_get_measures(
        &self,
        request: Request<pb::BatchGetMeasuresRequest>,
    ) -> Reply<pb::BatchGetMeasuresResponse> {
        let req = request.into_inner();
        let mut v = Violations::new();
        let ids = batch::ids(&mut v, &req.ids);
        v.finish()?;
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
        let req = request.into_inner();
        let mut v = Violations::new();
        let today = today();
        let filter = MeasureFilter {
            imposing_economy: v.filter("imposing_economy", &req.imposing_economy, Economy::parse),
            target_economy: v.filter("target_economy", &req.target_economy, Economy::parse),
            kind: optional_enum(&mut v, "kind", req.kind, kind),
            status: optional_enum(&mut v, "status", req.status, status).map(|s| (s, today)),
            hs_code: v.filter("hs_code", &req.hs_code, HsCode::parse),
            in_force_on: v.filter("in_force_on", &req.in_force_on, parse_date),
        };
        let filters = pb::ListMeasuresRequest { page_size: 0, page_token: String::new(), ..req.clone() };
        let page = Page::parse(&mut v, req.page_size, &req.page_token, &filters);
        v.finish()?;
        let (measures, mut next_page_token) = store::list_measures(&self.db, &filter, &page).await?;
        let mut measures: Vec<_> = measures.iter().map(|m| measure_to_proto(m, today)).collect();
        page.fit(&mut measures, &mut next_page_token, self.page_budget, |m| m.id.clone());
        Ok(Response::new(pb::ListMeasuresResponse { measures, next_page_token }))
    }

    async fn update_measure(&self, request: Request<pb::UpdateMeasureRequest>) -> Reply<pb::UpdateMeasureResponse> {
        let (id, etag, patch) = convert::update_measure(request.get_ref())?;
        let today = today();
        let response = idempotency::write(&self.db, None, move |txn| {
            Box::pin(async move {
                let mut m =
                    store::get_measure_for_update(txn, id).await?.ok_or_else(|| Error::not_found("measure", id))?;
                etag::check(&etag, m.version, "measure", id)?;
                let coverage = patch.changes_coverage();
                m.update(patch).map_err(|e| e.within("measure"))?;
                store::update_measure(txn, &mut m, coverage).await?;
                Ok(pb::UpdateMeasureResponse { measure: Some(measure_to_proto(&m, today)) })
            })
        })
        .await?;
        Ok(Response::new(response))
    }

    async fn set_measure_status(
        &self,
        request: Request<pb::SetMeasureStatusRequest>,
    ) -> Reply<pb::SetMeasureStatusResponse> {
        let mut req = request.into_inner();
        let mut v = Violations::new();
        let id = id_field(&mut v, "id", &req.id);
        let status = required_enum(&mut v, "status", req.status, status);
        let today = today();
        let effective_on = v.or_default("effective_on", &req.effective_on, today, parse_date);
        let reason = v.optional_text("reason", &req.reason, 2_000);
        let request_id = v.check("request_id", parse_request_id(&req.request_id));
        let (id, status, effective_on, reason) =
            v.finish_with(id.zip(status).zip(effective_on).zip(reason).map(|(((a, b), c), d)| (a, b, c, d)))?;
        req.request_id.clear();
        let key = Key::new("SetMeasureStatus", request_id.flatten(), &req);
        let response = idempotency::write(&self.db, key, move |txn| {
            Box::pin(async move {
                let mut m =
                    store::get_measure_for_update(txn, id).await?.ok_or_else(|| Error::not_found("measure", id))?;
                etag::check(&req.etag, m.version, "measure", id)?;
                m.check_status_change(status, effective_on)?;
                let change = StatusChange {
                    id: new_id(),
                    measure_id: id,
                    status,
                    effective_on,
                    reason,
                    change_time: tradewatch_common::now(),
                };
                let reply_change = change_to_proto(&change);
                store::insert_status_change(txn, &mut m, change).await?;
                Ok(pb::SetMeasureStatusResponse {
                    measure: Some(measure_to_proto(&m, today)),
                    change: Some(reply_change),
                })
            })
        })
        .await?;
        Ok(Response::new(response))
    }

    async fn list_measure_history(
        &self,
        request: Request<pb::ListMeasureHistoryRequest>,
    ) -> Reply<pb::ListMeasureHistoryResponse> {
        let req = request.into_inner();
        let mut v = Violations::new();
        let id = id_field(&mut v, "measure_id", &req.measure_id);
        let filters = pb::ListMeasureHistoryRequest { page_size: 0, page_token: String::new(), ..req.clone() };
        let page = Page::parse(&mut v, req.page_size, &req.page_token, &filters);
        let id = v.finish_with(id)?;
        if !store::measure_exists(&self.db, id).await? {
            return Err(Error::not_found("measure", id).into());
        }
        let (changes, next_page_token) = store::list_status_changes(&self.db, id, &page).await?;
        Ok(Response::new(pb::ListMeasureHistoryResponse {
            changes: changes.iter().map(change_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn record_quota_usage(
        &self,
        request: Request<pb::RecordQuotaUsageRequest>,
    ) -> Reply<pb::RecordQuotaUsageResponse> {
        let mut req = request.into_inner();
        let mut v = Violations::new();
        let id = id_field(&mut v, "measure_id", &req.measure_id);
        let quantity = v.check("quantity", parse_bounded_positive(&req.quantity, DecimalBounds::QUANTITY));
        let request_id = v.check("request_id", parse_request_id(&req.request_id));
        let (id, quantity) = v.finish_with(id.zip(quantity))?;
        req.request_id.clear();
        let key = Key::new("RecordQuotaUsage", request_id.flatten(), &req);
        let today = today();
        let response = idempotency::write(&self.db, key, move |txn| {
            Box::pin(async move {
                let mut m =
                    store::get_measure_for_update(txn, id).await?.ok_or_else(|| Error::not_found("measure", id))?;
                m.record_quota_usage(quantity)?;
                store::update_measure(txn, &mut m, false).await?;
                Ok(pb::RecordQuotaUsageResponse { measure: Some(measure_to_proto(&m, today)) })
            })
        })
        .await?;
        Ok(Response::new(response))
    }

    async fn resolve_duty(&self, request: Request<pb::ResolveDutyRequest>) -> Reply<pb::ResolveDutyResponse> {
        let req = request.into_inner();
        let mut v = Violations::new();
        let importing = v.check("importing_economy", Economy::parse(&req.importing_economy));
        let origin = v.check("origin_economy", Economy::parse(&req.origin_economy));
        let code = v.check("hs_code", HsCode::parse_line(&req.hs_code));
        let date = v.check("date", parse_date(&req.date));
        let value = money(&mut v, "customs_value", req.customs_value.as_ref());
        let quantity = v.optional("quantity", &req.quantity, |q| parse_bounded_positive(q, DecimalBounds::QUANTITY));
        let shipment = (|| {
            Some(Shipment {
                importing_economy: importing?,
                origin_economy: origin?,
                hs_code: code?,
                date: date?,
                customs_value: value?,
                quantity: quantity?,
            })
        })();
        let shipment = v.finish_with(shipment)?;
        let candidates =
            store::resolution_candidates(&self.db, &shipment.importing_economy, &shipment.hs_code, shipment.date)
                .await?;
        let resolution = domain::resolve(&shipment, &candidates)?;
        Ok(Response::new(resolution_to_proto(&resolution)))
    }
}
