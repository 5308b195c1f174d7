//! Every request message of the four services, as its server receives it:
//! decoded from the wire (prost), then mapped to the domain and validated by
//! the service's API layer. The first byte picks the method, the rest is the
//! message. Invariants: never a panic, and a refusal is a caller's error
//! (INVALID_ARGUMENT, OUT_OF_RANGE, FAILED_PRECONDITION), never INTERNAL.

#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use tradewatch_common::{
    Error,
    proto::{dialogue as gpb, dispute as dpb, relations as rpb, tariff as tpb},
};

fn refused_well(outcome: Result<(), Error>) {
    if let Err(err) = outcome {
        let status = tonic::Status::from(err);
        assert!(
            matches!(
                status.code(),
                tonic::Code::InvalidArgument | tonic::Code::OutOfRange | tonic::Code::FailedPrecondition
            ),
            "a request was refused as {:?}: {}",
            status.code(),
            status.message()
        );
    }
}

/// Decodes `bytes` as `$request` and runs `$check` on it.
macro_rules! methods {
    ($pick:expr, $bytes:expr, $($request:ty => $check:expr),+ $(,)?) => {{
        let checks: &[&dyn Fn(&[u8])] = &[$(&|bytes: &[u8]| {
            if let Ok(request) = <$request>::decode(bytes) {
                refused_well(($check)(&request));
            }
        }),+];
        checks[usize::from($pick) % checks.len()]($bytes);
    }};
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else { return };
    let today = chrono::NaiveDate::from_ymd_opt(2026, 3, 15).unwrap_or_default();
    use dialogue_service::api::{convert as gc, watch as gw};
    use dispute_service::api::{convert as dc, watch as dw};
    use relations_service::api::convert as rc;
    use tariff_service::api::{convert as tc, watch as tw};
    methods!(pick, bytes,
        tpb::CreateMeasureRequest => |r| tc::create_measure(r).map(drop),
        tpb::ImportMeasuresRequest => |r| tc::import_measures(r).map(drop),
        tpb::ListMeasuresRequest => |r| tc::list_measures(r, today).map(drop),
        tpb::SetMeasureStatusRequest => |r| tc::set_measure_status(r, today).map(drop),
        tpb::ListMeasureHistoryRequest => |r| tc::list_measure_history(r).map(drop),
        tpb::RecordQuotaUsageRequest => |r| tc::record_quota_usage(r).map(drop),
        tpb::ResolveDutyRequest => |r| tc::resolve_duty(r).map(drop),
        tpb::ImportTradeFlowsRequest => |r| tc::import_trade_flows(r).map(drop),
        tpb::ListTradeFlowsRequest => |r| tc::list_trade_flows(r).map(drop),
        tpb::GetMeasureExposureRequest => |r| tc::get_measure_exposure(r).map(drop),
        tpb::GetTradeCoverageRequest => |r| tc::get_trade_coverage(r).map(drop),
        tpb::UpdateMeasureRequest => |r| tc::update_measure(r).map(drop),
        tpb::WatchMeasuresRequest => |r| tw::watch_measures(r).map(drop),
        tpb::WatchTradeFlowsRequest => |r| tw::watch_trade_flows(r).map(drop),
        dpb::CreateDisputeRequest => |r| dc::create_dispute(r).map(drop),
        dpb::ListDisputesRequest => |r| dc::list_disputes(r).map(drop),
        dpb::AdvanceDisputeRequest => |r| dc::advance_dispute(r, today).map(drop),
        dpb::RecordDisputeEventRequest => |r| dc::record_dispute_event(r).map(drop),
        dpb::ListDisputeEventsRequest => |r| dc::list_dispute_events(r).map(drop),
        dpb::UpdateDisputeRequest => |r| dc::update_dispute(r).map(drop),
        dpb::WatchDisputesRequest => |r| dw::watch_disputes(r).map(drop),
        gpb::CreateSessionRequest => |r| gc::create_session(r).map(drop),
        gpb::ListSessionsRequest => |r| gc::list_sessions(r).map(drop),
        gpb::SetSessionStatusRequest => |r| gc::set_session_status(r).map(drop),
        gpb::AddCommitmentRequest => |r| gc::add_commitment(r).map(drop),
        gpb::ListCommitmentsRequest => |r| gc::list_commitments(r).map(drop),
        gpb::SetCommitmentStatusRequest => |r| gc::set_commitment_status(r).map(drop),
        gpb::UpdateSessionRequest => |r| gc::update_session(r).map(drop),
        gpb::WatchCommitmentsRequest => |r| gw::watch_commitments(r).map(drop),
        rpb::GetBilateralBriefRequest => |r| rc::bilateral_brief(r, today).map(drop),
        rpb::GetDisputeDossierRequest => |r| rc::dispute_dossier(r).map(drop),
    );
});
