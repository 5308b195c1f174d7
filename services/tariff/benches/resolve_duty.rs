//! `ResolveDuty` through the storage layer on SQLite, against a generated
//! schedule: 10,000 MFN lines at 8 and 10 digits and 500 special measures
//! (surtaxes, anti-dumping duties, quotas, …) over the same codes.
//!
//! `cargo bench -p tariff-service` prints the time per resolution.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};

use criterion::{Criterion, criterion_group, criterion_main};
use sea_orm::{DatabaseConnection, TransactionTrait};
use sea_orm_migration::MigratorTrait;
use tariff_service::{
    domain::{self, Measure, MeasureKind, MeasureSpec, QuotaTerms, Shipment},
    store,
};
use tradewatch_common::{
    config::DatabaseSettings,
    now,
    types::{Economy, HsCode, Money, parse_date},
};

const MFN_LINES: usize = 10_000;
const SPECIAL: usize = 500;

fn spec(reference: String, kind: MeasureKind, codes: Vec<HsCode>, rate: i64) -> MeasureSpec {
    MeasureSpec {
        reference,
        title: "generated".into(),
        imposing_economy: Economy::parse("CAN").unwrap(),
        target_economies: if kind == MeasureKind::Mfn { vec![] } else { vec![Economy::parse("CHN").unwrap()] },
        kind,
        hs_codes: codes,
        excluded_hs_codes: vec![],
        ad_valorem_percent: rust_decimal::Decimal::new(rate, 1),
        specific_duty: None,
        announced_on: None,
        effective_from: parse_date("2024-01-01").unwrap(),
        effective_to: None,
        quota: (kind == MeasureKind::TariffRateQuota).then(|| QuotaTerms {
            quantity: 1000.into(),
            unit: "unit".into(),
            period_start: parse_date("2025-01-01").unwrap(),
            period_end: parse_date("2025-12-31").unwrap(),
        }),
        source_url: String::new(),
        note: String::new(),
    }
}

/// Tariff lines spread over every chapter: half at 8 digits, half at 10.
fn lines() -> Vec<HsCode> {
    (0..MFN_LINES)
        .map(|k| {
            let chapter = 1 + k % 97;
            let rest = (k / 97) * 3_701 % 1_000_000;
            let code = if k % 2 == 0 {
                format!("{chapter:02}{rest:06}")
            } else {
                format!("{chapter:02}{rest:06}{:02}", k % 100)
            };
            HsCode::parse(&code).unwrap()
        })
        .collect()
}

async fn setup(dir: &tempfile::TempDir) -> (DatabaseConnection, Vec<HsCode>) {
    let settings = DatabaseSettings {
        url: format!("sqlite://{}?mode=rwc", dir.path().join("bench.db").display()),
        password_file: None,
        max_connections: None,
        migrate_on_start: true,
        acquire_timeout_ms: 5_000,
        statement_timeout_ms: 15_000,
        lock_timeout_ms: 3_000,
    };
    let db = tradewatch_common::db::connect(&settings).await.unwrap();
    store::Migrator::up(&db, None).await.unwrap();
    let codes = lines();
    let today = tradewatch_common::today();
    let txn = db.begin().await.unwrap();
    for (i, code) in codes.iter().enumerate() {
        let rate = i64::try_from(i % 120).unwrap();
        let m = Measure::new(spec(format!("MFN-{i}"), MeasureKind::Mfn, vec![*code], rate), today, now(), "bench");
        store::insert_measure(&txn, &m).await.unwrap();
    }
    let kinds = [
        MeasureKind::Surtax,
        MeasureKind::AntiDumping,
        MeasureKind::TariffRateQuota,
        MeasureKind::Retaliatory,
        MeasureKind::Safeguard,
    ];
    for i in 0..SPECIAL {
        let line = &codes[(i * 19) % codes.len()];
        let width = if i % 2 == 0 { 4 } else { 6 };
        let prefix = HsCode::parse(&line.as_str()[..width]).unwrap();
        let m = Measure::new(
            spec(format!("SPECIAL-{i}"), kinds[i % kinds.len()], vec![prefix], 250),
            today,
            now(),
            "bench",
        );
        store::insert_measure(&txn, &m).await.unwrap();
    }
    txn.commit().await.unwrap();
    (db, codes)
}

async fn resolve(db: &DatabaseConnection, code: &HsCode) -> domain::Resolution {
    let shipment = Shipment {
        importing_economy: Economy::parse("CAN").unwrap(),
        origin_economy: Economy::parse("CHN").unwrap(),
        hs_code: *code,
        imported_on: parse_date("2025-06-01").unwrap(),
        customs_value: Money::new("CAD", 40_000.into()),
        quantity: None,
    };
    let candidates =
        store::resolution_candidates(db, &shipment.importing_economy, code, shipment.imported_on).await.unwrap();
    let candidates: Vec<domain::Levy> = candidates.iter().map(domain::Levy::from).collect();
    domain::resolve(&shipment, &candidates).unwrap()
}

fn resolve_duty(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let (db, codes) = rt.block_on(setup(&dir));
    println!("schedule: {MFN_LINES} MFN lines + {SPECIAL} special measures, loaded in {:.1?}", started.elapsed());
    // Every line resolves, and special measures do stack on some of them.
    let stacked = rt.block_on(async {
        let mut n = 0;
        for code in codes.iter().step_by(50) {
            n += usize::from(resolve(&db, code).await.lines.len() > 1);
        }
        n
    });
    println!("lines sampled with more than one duty: {stacked} of {}", codes.len() / 50);

    let next = AtomicUsize::new(0);
    c.bench_function("resolve_duty_sqlite_10k_lines_500_special", |b| {
        b.to_async(&rt).iter(|| {
            let code = &codes[next.fetch_add(7_919, Ordering::Relaxed) % codes.len()];
            let db = &db;
            async move { resolve(db, code).await }
        });
    });
}

criterion_group!(benches, resolve_duty);
criterion_main!(benches);
