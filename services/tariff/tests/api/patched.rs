//! The schedule each replica keeps in memory is patched write by write, not
//! rebuilt: after any sequence of writes, every answer it gives equals the
//! answer of a replica that has just loaded the schedule afresh.

use proptest::prelude::*;
use tonic::Code;
use tradewatch_common::proto::tariff as pb;

use crate::helpers::*;

const CODES: [&str; 5] = ["87", "8703", "870380", "72081000", "1205"];
const ORIGINS: [&str; 3] = ["CHN", "USA", "MEX"];
const DAYS: [&str; 4] = ["2024-03-01", "2025-06-01", "2026-02-01", "2026-09-01"];

/// One write to one of the measures made so far (or a new one).
#[derive(Debug, Clone)]
enum Write {
    Create { codes: Vec<usize>, origins: Vec<usize>, rate: u32, quota: bool },
    Codes { of: usize, codes: Vec<usize> },
    Origins { of: usize, origins: Vec<usize> },
    Rate { of: usize, rate: u32 },
    Ends { of: usize, day: usize },
    Status { of: usize, status: pb::MeasureStatus, day: usize },
    Usage { of: usize, quantity: u32 },
}

fn codes() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::btree_set(0..CODES.len(), 1..4).prop_map(|s| s.into_iter().collect())
}

fn origins() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::btree_set(0..ORIGINS.len(), 0..3).prop_map(|s| s.into_iter().collect())
}

fn write() -> impl Strategy<Value = Write> {
    let of = 0usize..8;
    let status = prop::sample::select(vec![
        pb::MeasureStatus::Suspended,
        pb::MeasureStatus::InForce,
        pb::MeasureStatus::Revoked,
    ]);
    prop_oneof![
        2 => (codes(), origins(), 0u32..120, proptest::bool::weighted(0.3))
            .prop_map(|(codes, origins, rate, quota)| Write::Create { codes, origins, rate, quota }),
        2 => (of.clone(), codes()).prop_map(|(of, codes)| Write::Codes { of, codes }),
        2 => (of.clone(), origins()).prop_map(|(of, origins)| Write::Origins { of, origins }),
        1 => (of.clone(), 0u32..120).prop_map(|(of, rate)| Write::Rate { of, rate }),
        1 => (of.clone(), 0..DAYS.len()).prop_map(|(of, day)| Write::Ends { of, day }),
        2 => (of.clone(), status, 0..DAYS.len()).prop_map(|(of, status, day)| Write::Status { of, status, day }),
        1 => (of, 1u32..4).prop_map(|(of, quantity)| Write::Usage { of, quantity }),
    ]
}

fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask { paths: paths.iter().map(|p| (*p).to_owned()).collect() })
}

fn probe(code: &str, origin: &str, day: &str) -> pb::ResolveDutyRequest {
    pb::ResolveDutyRequest {
        importing_economy: "CAN".into(),
        origin_economy: origin.into(),
        hs_code: code.into(),
        imported_on: day.into(),
        customs_value: money("CAD", "1000"),
        quantity: "1".into(),
        assume: vec![],
    }
}

/// Applies `w`; a write the service refuses (a status it cannot go to, a
/// quota a measure does not have) writes nothing, which the check covers too.
async fn apply(app: &TestApp, made: &mut Vec<pb::TariffMeasure>, n: usize, w: Write) {
    let mut client = app.client.clone();
    let pick = |of: usize| pb::TariffMeasure { etag: String::new(), ..made[of % made.len()].clone() };
    let outcome = match w {
        Write::Create { codes, origins, rate, quota: with_quota } => {
            let kind = if with_quota { pb::MeasureKind::TariffRateQuota } else { pb::MeasureKind::Surtax };
            let codes: Vec<&str> = codes.iter().map(|&c| CODES[c]).collect();
            let origins: Vec<&str> = origins.iter().map(|&o| ORIGINS[o]).collect();
            let mut m = against(measure(&format!("PATCH-{n}"), kind, &codes, &rate.to_string()), &origins);
            if with_quota {
                m = quota(m, "5");
                m.effective_from = "2026-01-16".into();
            }
            client.create_measure(pb::CreateMeasureRequest { measure: Some(m), request_id: String::new() }).await.map(
                |r| {
                    made.push(r.into_inner().measure.unwrap());
                },
            )
        }
        Write::Codes { of, codes } => {
            let mut m = pick(of);
            m.hs_codes = codes.iter().map(|&c| CODES[c].to_owned()).collect();
            client
                .update_measure(pb::UpdateMeasureRequest { measure: Some(m), update_mask: mask(&["hs_codes"]) })
                .await
                .map(drop)
        }
        Write::Origins { of, origins } => {
            let mut m = pick(of);
            m.target_economies = origins.iter().map(|&o| ORIGINS[o].to_owned()).collect();
            let update_mask = mask(&["target_economies"]);
            client.update_measure(pb::UpdateMeasureRequest { measure: Some(m), update_mask }).await.map(drop)
        }
        Write::Rate { of, rate } => {
            let mut m = pick(of);
            m.ad_valorem_percent = rate.to_string();
            let update_mask = mask(&["ad_valorem_percent"]);
            client.update_measure(pb::UpdateMeasureRequest { measure: Some(m), update_mask }).await.map(drop)
        }
        Write::Ends { of, day } => {
            let mut m = pick(of);
            m.effective_to = DAYS[day].into();
            client
                .update_measure(pb::UpdateMeasureRequest { measure: Some(m), update_mask: mask(&["effective_to"]) })
                .await
                .map(drop)
        }
        Write::Status { of, status, day } => client
            .set_measure_status(pb::SetMeasureStatusRequest {
                id: pick(of).id,
                status: status.into(),
                effective_on: DAYS[day].into(),
                ..Default::default()
            })
            .await
            .map(drop),
        Write::Usage { of, quantity } => client
            .record_quota_usage(pb::RecordQuotaUsageRequest {
                id: pick(of).id,
                quantity: quantity.to_string(),
                request_id: String::new(),
            })
            .await
            .map(drop),
    };
    if let Err(status) = outcome {
        assert!(
            matches!(status.code(), Code::InvalidArgument | Code::FailedPrecondition),
            "a refused write answers a documented code: {status:?}"
        );
    }
}

/// Every line, origin and day the measures could be asked about.
async fn answers(mut client: Client) -> Vec<Result<pb::ResolveDutyResponse, Code>> {
    let mut out = Vec::new();
    for code in ["8703800010", "87031000", "7208100000", "120510", "0306120000"] {
        for origin in ORIGINS {
            for day in DAYS {
                out.push(
                    client.resolve_duty(probe(code, origin, day)).await.map(|r| r.into_inner()).map_err(|s| s.code()),
                );
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    #[test]
    fn a_schedule_patched_write_by_write_answers_as_a_fresh_load(
        writes in proptest::collection::vec(write(), 1..16),
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async {
            let app = spawn_app().await;
            let mut made = vec![app.create(against(measure("PATCH-MFN", pb::MeasureKind::Mfn, &["8703"], "6.1"), &[])).await];
            // A first answer loads the schedule; each after a write patches it.
            let mut client = app.client.clone();
            client.resolve_duty(probe("8703800010", "CHN", DAYS[1])).await.unwrap();
            for (n, w) in writes.into_iter().enumerate() {
                apply(&app, &mut made, n, w).await;
                // Any answer: the MFN line may no longer cover the code.
                let asked = client.resolve_duty(probe("8703800010", "CHN", DAYS[2])).await;
                assert!(asked.as_ref().map_or_else(|s| s.code() == Code::NotFound, |_| true), "{asked:?}");
            }
            let patched = answers(app.client.clone()).await;
            let (replica, fresh) = app.replica().await;
            let loaded = answers(fresh).await;
            replica.stop().await.unwrap();
            app.stop().await.unwrap();
            assert_eq!(patched, loaded);
        });
    }
}
