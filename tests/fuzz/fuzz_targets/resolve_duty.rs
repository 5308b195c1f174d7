//! ResolveDuty's four rules on schedules the fuzzer makes up: measures of
//! every kind on a few nested prefixes, origins, dates, specific duties,
//! quotas with some of their room used, suspensions and reinstatements.
//! Invariants: never a panic; the total is the sum of the lines; every line
//! comes from a measure of the importer that covers the code and the origin
//! and is in force that day (a suspended measure never applies); a quota's
//! in-quota rate replaces the whole stack.

#![no_main]

use std::sync::Arc;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rust_decimal::Decimal;
use tariff_service::{
    api::convert,
    domain::{self, Levy, Measure, MeasureKind, MeasureStatus, Shipment},
};
use tradewatch_common::{
    proto::{common::Money as PbMoney, tariff as pb},
    types::{Economy, HsCode, Money},
};

const PREFIXES: [&str; 6] = ["87", "8703", "870380", "87038000", "8703800010", "8704"];
const CODES: [&str; 3] = ["8703800010", "8703800090", "8704100000"];
const ORIGINS: [&str; 3] = ["CHN", "USA", "MEX"];

#[derive(Debug, Arbitrary)]
struct Spec {
    kind: u8,
    prefix: u8,
    /// Bit i: targets ORIGINS[i]; none set: every origin.
    origins: u8,
    /// Hundredths of a percent.
    rate: u16,
    /// Cents per kg, in the shipment's currency or another.
    specific: Option<(u16, bool)>,
    /// Days after 2024-01-01.
    from: u16,
    length: Option<u16>,
    /// Suspended from this day (after `from`), and reinstated after so many days.
    suspended: Option<(u16, Option<u16>)>,
    /// The quota's quantity and how much of it is used.
    quota: Option<(u16, u16)>,
}

#[derive(Debug, Arbitrary)]
struct Case {
    measures: Vec<Spec>,
    code: u8,
    origin: u8,
    day: u16,
    value_cents: u32,
    quantity: Option<u16>,
}

fn day(offset: u16) -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap_or_default() + chrono::Days::new(u64::from(offset % 1_500))
}

fn cents(n: impl Into<i64>) -> String {
    Decimal::new(n.into(), 2).to_string()
}

fn measure(i: usize, s: &Spec) -> Option<Measure> {
    let kinds = [
        pb::MeasureKind::Mfn,
        pb::MeasureKind::Preferential,
        pb::MeasureKind::Surtax,
        pb::MeasureKind::Retaliatory,
        pb::MeasureKind::AntiDumping,
        pb::MeasureKind::Countervailing,
        pb::MeasureKind::Safeguard,
        pb::MeasureKind::TariffRateQuota,
    ];
    let kind = kinds[usize::from(s.kind) % kinds.len()];
    let from = day(s.from);
    let to = s.length.map(|n| from + chrono::Days::new(u64::from(n % 800)));
    let date = |d: chrono::NaiveDate| d.format("%Y-%m-%d").to_string();
    let request = pb::CreateMeasureRequest {
        measure: Some(pb::TariffMeasure {
            reference: format!("FUZZ-{i}"),
            title: "a made-up measure".into(),
            imposing_economy: "CAN".into(),
            target_economies: (0..ORIGINS.len())
                .filter(|b| s.origins & (1 << b) != 0)
                .map(|b| ORIGINS[b].to_owned())
                .collect(),
            kind: kind.into(),
            hs_codes: vec![PREFIXES[usize::from(s.prefix) % PREFIXES.len()].to_owned()],
            ad_valorem_percent: cents(s.rate),
            specific_duty: s.specific.map(|(c, same)| pb::SpecificDuty {
                amount: Some(PbMoney { currency_code: if same { "CAD" } else { "USD" }.into(), amount: cents(c) }),
                unit: "kg".into(),
            }),
            effective_from: date(from),
            effective_to: to.map(date).unwrap_or_default(),
            quota: (kind == pb::MeasureKind::TariffRateQuota).then(|| pb::Quota {
                quantity: s.quota.map_or(1_000, |(q, _)| q).to_string(),
                unit: "kg".into(),
                period_start: date(from),
                period_end: date(to.unwrap_or(from + chrono::Days::new(365))),
                ..Default::default()
            }),
            ..Default::default()
        }),
        request_id: String::new(),
    };
    let (spec, _) = convert::create_measure(&request).ok()?;
    let mut m = Measure::new(spec, day(0), tradewatch_common::now(), "fuzz");
    if let Some((used, _)) = s.quota.map(|(q, u)| (u.min(q), q)) {
        let _ = m.record_quota_usage(Decimal::from(used));
    }
    if let Some((after, back)) = s.suspended {
        let on = from + chrono::Days::new(u64::from(after % 400));
        if let Ok(change) = m.status_change(MeasureStatus::Suspended, on, String::new(), tradewatch_common::now(), "f")
        {
            m.push_change(change);
            if let Some(back) = back {
                let again = on + chrono::Days::new(u64::from(back % 200) + 1);
                let now = tradewatch_common::now();
                if let Ok(change) = m.status_change(MeasureStatus::InForce, again, String::new(), now, "f") {
                    m.push_change(change);
                }
            }
        }
    }
    Some(m)
}

fuzz_target!(|case: Case| {
    let measures: Vec<Measure> = case.measures.iter().take(12).enumerate().filter_map(|(i, s)| measure(i, s)).collect();
    let levies: Vec<Levy> =
        measures.iter().map(|m| Levy::of(m, Arc::from(m.spec.target_economies.as_slice()))).collect();
    let (Ok(code), Ok(origin)) = (
        HsCode::parse(CODES[usize::from(case.code) % CODES.len()]),
        Economy::parse(ORIGINS[usize::from(case.origin) % ORIGINS.len()]),
    ) else {
        return;
    };
    let Ok(importer) = Economy::parse("CAN") else { return };
    let shipment = Shipment {
        importing_economy: importer,
        origin_economy: origin,
        hs_code: code,
        imported_on: day(case.day),
        customs_value: Money::new("CAD", Decimal::new(i64::from(case.value_cents), 2)),
        quantity: case.quantity.map(Decimal::from),
    };
    let Ok(resolution) = domain::resolve(&shipment, &levies) else { return };
    let sum: Decimal = resolution.lines.iter().map(|l| l.amount.amount).sum();
    assert_eq!(resolution.total_duty.amount, sum, "the total is the sum of the lines");
    assert!(!resolution.lines.is_empty(), "a resolution has its base line");
    for line in &resolution.lines {
        let m = measures.iter().find(|m| m.id == line.measure_id).expect("a line comes from a measure given");
        assert_eq!(
            m.status_on(shipment.imported_on),
            MeasureStatus::InForce,
            "{} applies only in force",
            m.spec.reference
        );
        assert!(m.spec.covers_origin(&shipment.origin_economy), "{} covers the origin", m.spec.reference);
        assert!(m.spec.matched_prefix(&shipment.hs_code).is_some(), "{} covers the code", m.spec.reference);
    }
    if resolution.lines.iter().any(|l| l.kind == MeasureKind::TariffRateQuota) {
        assert_eq!(resolution.lines.len(), 1, "the in-quota rate replaces the stack");
        assert!(!resolution.quota_full);
    }
});
