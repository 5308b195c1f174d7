//! Generated requests, sent to a live server: whatever a caller puts in any
//! field of a write or of ResolveDuty, the answer is a documented code —
//! never INTERNAL, never a panic, never a dropped call.

use proptest::prelude::*;
use tradewatch_common::{
    arb::{self, check_codes, enum_value, list, outcome, text},
    proto::{common::Money, tariff as pb},
};

use crate::helpers::*;

const CASES: u32 = 48;

fn money() -> impl Strategy<Value = Option<Money>> {
    proptest::option::of((text(), text()).prop_map(|(currency_code, amount)| Money { currency_code, amount }))
}

fn tariff_measure(ids: Vec<String>) -> impl Strategy<Value = pb::TariffMeasure> {
    let quota = proptest::option::of((text(), text(), text(), text(), text()).prop_map(
        |(quantity, unit, period_start, period_end, used)| pb::Quota { quantity, unit, period_start, period_end, used },
    ));
    let duty = proptest::option::of((money(), text()).prop_map(|(amount, unit)| pb::SpecificDuty { amount, unit }));
    (
        (arb::id(ids), text(), text(), text(), list(), enum_value(), list(), list()),
        (text(), duty, text(), text(), text(), enum_value(), quota, text(), text(), text()),
    )
        .prop_map(
            |(
                (id, reference, title, imposing_economy, target_economies, kind, hs_codes, excluded_hs_codes),
                (
                    ad_valorem_percent,
                    specific_duty,
                    announced_on,
                    effective_from,
                    effective_to,
                    status,
                    quota,
                    source_url,
                    note,
                    etag,
                ),
            )| pb::TariffMeasure {
                id,
                reference,
                title,
                imposing_economy,
                target_economies,
                kind,
                hs_codes,
                excluded_hs_codes,
                ad_valorem_percent,
                specific_duty,
                announced_on,
                effective_from,
                effective_to,
                status,
                quota,
                source_url,
                note,
                etag,
                create_time: None,
                update_time: None,
                create_actor: String::new(),
                update_actor: String::new(),
            },
        )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// A server with a few real measures, so generated ids also hit rows.
fn seeded(rt: &tokio::runtime::Runtime) -> (TestApp, Vec<String>) {
    rt.block_on(async {
        let app = spawn_app().await;
        let mut ids = Vec::new();
        ids.push(app.create(measure("P-MFN", pb::MeasureKind::Mfn, &["8703"], "6.1")).await.id);
        ids.push(
            app.create(quota(measure("P-TRQ", pb::MeasureKind::TariffRateQuota, &["870380"], "0"), "10")).await.id,
        );
        ids.push(app.create(measure("P-SUR", pb::MeasureKind::Surtax, &["87"], "100")).await.id);
        (app, ids)
    })
}

#[test]
fn writes_answer_only_documented_codes_whatever_they_carry() {
    let rt = runtime();
    let (app, ids) = seeded(&rt);
    let client = app.client.clone();

    check_codes(&rt, CASES, (tariff_measure(ids.clone()), text()), |(m, request_id)| {
        let mut c = client.clone();
        async move { outcome(c.create_measure(pb::CreateMeasureRequest { measure: Some(m), request_id }).await) }
    });

    let paths = proptest::collection::vec(
        prop_oneof![
            3 => prop::sample::select(vec!["title", "hs_codes", "quota", "ad_valorem_percent", "effective_to", "specific_duty", "status", "id"]).prop_map(str::to_owned),
            1 => text(),
        ],
        0..4,
    );
    check_codes(&rt, CASES, (tariff_measure(ids.clone()), paths), |(m, paths)| {
        let mut c = client.clone();
        async move {
            let mask = Some(prost_types::FieldMask { paths });
            outcome(c.update_measure(pb::UpdateMeasureRequest { measure: Some(m), update_mask: mask }).await)
        }
    });

    let status = (arb::id(ids.clone()), enum_value(), text(), text(), text(), text());
    check_codes(&rt, CASES, status, |(id, status, effective_on, note, request_id, etag)| {
        let mut c = client.clone();
        async move {
            let req = pb::SetMeasureStatusRequest { id, status, effective_on, note, request_id, etag };
            outcome(c.set_measure_status(req).await)
        }
    });

    check_codes(&rt, CASES, (arb::id(ids), text(), text()), |(id, quantity, request_id)| {
        let mut c = client.clone();
        async move {
            let req = pb::RecordQuotaUsageRequest { id, quantity, request_id };
            outcome(c.record_quota_usage(req).await)
        }
    });
    rt.block_on(app.stop()).unwrap();
}

#[test]
fn resolve_duty_answers_only_documented_codes_whatever_it_is_asked() {
    let rt = runtime();
    let (app, _) = seeded(&rt);
    let client = app.client.clone();
    let line = prop_oneof![3 => prop::sample::select(vec!["870380", "87038000", "8703800010", "870410"]).prop_map(str::to_owned), 1 => text()];
    let shipment = (text(), text(), line, text(), money(), text());
    check_codes(
        &rt,
        CASES * 2,
        shipment,
        |(importing_economy, origin_economy, hs_code, imported_on, customs_value, quantity)| {
            let mut c = client.clone();
            async move {
                let req = pb::ResolveDutyRequest {
                    importing_economy,
                    origin_economy,
                    hs_code,
                    imported_on,
                    customs_value,
                    quantity,
                    assume: vec![],
                };
                outcome(c.resolve_duty(req).await)
            }
        },
    );
    rt.block_on(app.stop()).unwrap();
}
