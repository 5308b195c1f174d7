//! WatchMeasures and WatchTradeFlows: the change feeds of measures and of
//! trade flows, through the requests' filters.

use tradewatch_common::{
    Error,
    feed::Responder,
    proto::tariff as pb,
    types::{Economy, HsCode, timestamp},
    validate::{Violations, optional_enum},
};

use super::convert::{kind, kind_to_proto};
use crate::domain::MeasureKind;

/// The feed topic of the measures' changes.
pub const TOPIC: &str = crate::store::FEED_TOPIC;

/// The change a write appends to the feed: `measure` as it stands after it.
pub fn change(kind: pb::MeasureChangeKind, measure: &pb::TariffMeasure, actor: &str) -> pb::MeasureChange {
    pb::MeasureChange {
        kind: kind.into(),
        change_time: Some(timestamp(tradewatch_common::now())),
        actor: actor.to_owned(),
        measure: Some(measure.clone()),
    }
}

/// The filters of one watcher.
pub struct MeasureWatch {
    imposing_economy: Option<String>,
    target_economy: Option<String>,
    hs_code: Option<String>,
    kind: Option<MeasureKind>,
}

pub fn watch_measures(req: &pb::WatchMeasuresRequest) -> Result<MeasureWatch, Error> {
    let mut v = Violations::new();
    let watch = MeasureWatch {
        imposing_economy: v.filter("imposing_economy", &req.imposing_economy, Economy::parse).map(|e| e.to_string()),
        target_economy: v.filter("target_economy", &req.target_economy, Economy::parse).map(|e| e.to_string()),
        hs_code: v.filter("hs_code", &req.hs_code, HsCode::parse).map(|c| c.to_string()),
        kind: optional_enum(&mut v, "kind", req.kind, kind),
    };
    v.finish()?;
    Ok(watch)
}

impl MeasureWatch {
    /// The same rules as ListMeasures' filters of the same names.
    fn keeps(&self, m: &pb::TariffMeasure) -> bool {
        self.imposing_economy.as_ref().is_none_or(|e| &m.imposing_economy == e)
            && self
                .target_economy
                .as_ref()
                .is_none_or(|e| m.target_economies.is_empty() || m.target_economies.contains(e))
            && self.hs_code.as_ref().is_none_or(|c| m.hs_codes.iter().any(|h| h.starts_with(c) || c.starts_with(h)))
            && self.kind.is_none_or(|k| m.kind == kind_to_proto(k))
    }
}

impl Responder for MeasureWatch {
    const TOPIC: &'static str = TOPIC;
    type Change = pb::MeasureChange;
    type Response = pb::WatchMeasuresResponse;

    fn change(&self, token: String, change: pb::MeasureChange) -> Option<Self::Response> {
        let keep = change.measure.as_ref().is_some_and(|m| self.keeps(m));
        keep.then_some(pb::WatchMeasuresResponse { resume_token: token, change: Some(change) })
    }

    fn heartbeat(&self, token: String) -> Self::Response {
        pb::WatchMeasuresResponse { resume_token: token, change: None }
    }
}

/// The feed topic of the trade flows' changes.
pub const FLOW_TOPIC: &str = crate::store::FLOW_TOPIC;

/// The change an import appends for each flow it creates or replaces.
pub fn flow_change(kind: pb::TradeFlowChangeKind, flow: pb::TradeFlow, actor: &str) -> pb::TradeFlowChange {
    pb::TradeFlowChange {
        kind: kind.into(),
        change_time: Some(timestamp(tradewatch_common::now())),
        actor: actor.to_owned(),
        flow: Some(flow),
    }
}

/// The filters of one watcher of trade flows.
pub struct FlowWatch {
    exporting_economy: Option<String>,
    importing_economy: Option<String>,
    hs_code: Option<String>,
    year: Option<i32>,
}

pub fn watch_trade_flows(req: &pb::WatchTradeFlowsRequest) -> Result<FlowWatch, Error> {
    let mut v = Violations::new();
    let year = super::convert::year(&mut v, "year", req.year).flatten();
    let watch = FlowWatch {
        exporting_economy: v.filter("exporting_economy", &req.exporting_economy, Economy::parse).map(|e| e.to_string()),
        importing_economy: v.filter("importing_economy", &req.importing_economy, Economy::parse).map(|e| e.to_string()),
        hs_code: v.filter("hs_code", &req.hs_code, HsCode::parse).map(|c| c.to_string()),
        year,
    };
    v.finish()?;
    Ok(watch)
}

impl FlowWatch {
    /// The same rules as ListTradeFlows' filters of the same names.
    fn keeps(&self, f: &pb::TradeFlow) -> bool {
        self.exporting_economy.as_ref().is_none_or(|e| &f.exporting_economy == e)
            && self.importing_economy.as_ref().is_none_or(|e| &f.importing_economy == e)
            && self.hs_code.as_ref().is_none_or(|c| f.hs_code.starts_with(c) || c.starts_with(&f.hs_code))
            && self.year.is_none_or(|y| f.year == y)
    }
}

impl Responder for FlowWatch {
    const TOPIC: &'static str = FLOW_TOPIC;
    type Change = pb::TradeFlowChange;
    type Response = pb::WatchTradeFlowsResponse;

    fn change(&self, token: String, change: pb::TradeFlowChange) -> Option<Self::Response> {
        let keep = change.flow.as_ref().is_some_and(|f| self.keeps(f));
        keep.then_some(pb::WatchTradeFlowsResponse { resume_token: token, change: Some(change) })
    }

    fn heartbeat(&self, token: String) -> Self::Response {
        pb::WatchTradeFlowsResponse { resume_token: token, change: None }
    }
}
