//! `ResolveDuty`: what a shipment pays on a day, by four rules.
//!
//! 1. Base: among the importer's MFN and PREFERENTIAL measures that apply and
//!    cover the code and origin, the most specific (longest prefix) of each
//!    kind; the base is the lower of the two.
//! 2. Additional duties (surtax, retaliatory, anti-dumping, countervailing,
//!    safeguard) that apply, cover the code and target the origin stack on
//!    top: ad valorem on the customs value plus specific duty times quantity.
//! 3. A tariff-rate quota that applies, covers code and origin, whose period
//!    holds the date and that has room for the quantity replaces the whole
//!    stack with its in-quota rate; without room the stack applies and
//!    `quota_full` is set.
//! 4. A code no base measure covers is NOT_FOUND.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use tradewatch_common::{
    Error, Reason, Result,
    types::{Economy, HsCode, Money, format_date, format_decimal},
};
use uuid::Uuid;

use super::{Levy, MeasureKind};

/// The shipment asked about.
#[derive(Debug, Clone)]
pub struct Shipment {
    pub importing_economy: Economy,
    pub origin_economy: Economy,
    pub hs_code: HsCode,
    pub imported_on: NaiveDate,
    pub customs_value: Money,
    /// Given by the caller; `None` means 1 for quota room, and is refused by
    /// a specific duty, which cannot be computed without it.
    pub quantity: Option<Decimal>,
}

/// One duty that applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DutyLine {
    pub measure_id: Uuid,
    pub kind: MeasureKind,
    pub matched_hs_code: HsCode,
    pub ad_valorem_percent: Decimal,
    pub amount: Money,
    pub reference: String,
    pub title: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    pub lines: Vec<DutyLine>,
    pub total_duty: Money,
    pub effective_rate_percent: Decimal,
    pub quota_full: bool,
    pub explanations: Vec<String>,
}

/// A measure that covers the shipment, with the prefix that matched.
struct Covering<'a> {
    measure: &'a Levy,
    prefix: &'a HsCode,
}

/// Resolves `shipment` against `measures`: any superset of the measures that
/// could apply (the store passes those of the importer whose prefixes match
/// the code); every rule is checked here again.
pub fn resolve<M: std::borrow::Borrow<Levy>>(shipment: &Shipment, measures: &[M]) -> Result<Resolution> {
    let mut explanations = Vec::new();
    let covering: Vec<Covering<'_>> = measures
        .iter()
        .map(std::borrow::Borrow::borrow)
        .filter(|m| m.importer == shipment.importing_economy)
        .filter(|m| m.covers_origin(&shipment.origin_economy))
        .filter_map(|m| m.matched_prefix(&shipment.hs_code).map(|prefix| Covering { measure: m, prefix }))
        .filter(|c| {
            let status = c.measure.status_on(shipment.imported_on);
            let applies = status == super::MeasureStatus::InForce;
            if !applies && c.measure.effective_from <= shipment.imported_on {
                explanations.push(format!(
                    "{} ({}) is {} on {} and does not apply",
                    c.measure.reference(),
                    c.measure.kind.as_str(),
                    status.as_str(),
                    format_date(shipment.imported_on)
                ));
            }
            applies
        })
        .collect();

    // Rule 1: the base rate.
    let most_specific = |kind: MeasureKind| {
        covering.iter().filter(|c| c.measure.kind == kind).max_by(|a, b| {
            (a.prefix.as_str().len(), a.measure.effective_from, std::cmp::Reverse(a.measure.ad_valorem_percent)).cmp(&(
                b.prefix.as_str().len(),
                b.measure.effective_from,
                std::cmp::Reverse(b.measure.ad_valorem_percent),
            ))
        })
    };
    let mfn = most_specific(MeasureKind::Mfn).map(|c| line(shipment, c)).transpose()?;
    let preferential = most_specific(MeasureKind::Preferential).map(|c| line(shipment, c)).transpose()?;
    let base = match (mfn, preferential) {
        (None, None) => {
            return Err(Error::not_found_because(
                "tariff line",
                format!(
                    "no MFN or preferential rate of {1} covers {0} on {2}: the code is not in {1}'s schedule",
                    shipment.hs_code,
                    shipment.importing_economy,
                    format_date(shipment.imported_on)
                ),
            ));
        }
        (Some(m), None) => {
            explanations.push(format!(
                "base: MFN {}% ({}, prefix {})",
                format_decimal(m.ad_valorem_percent),
                m.reference,
                m.matched_hs_code
            ));
            m
        }
        (None, Some(p)) => {
            explanations.push(format!(
                "base: preferential {}% ({}, prefix {})",
                format_decimal(p.ad_valorem_percent),
                p.reference,
                p.matched_hs_code
            ));
            p
        }
        (Some(m), Some(p)) => {
            if p.amount.amount < m.amount.amount {
                explanations.push(format!(
                    "base: preferential {}% ({}) is lower than MFN {}% ({})",
                    format_decimal(p.ad_valorem_percent),
                    p.reference,
                    format_decimal(m.ad_valorem_percent),
                    m.reference
                ));
                p
            } else {
                explanations.push(format!(
                    "base: MFN {}% ({}) is not higher than preferential {}% ({})",
                    format_decimal(m.ad_valorem_percent),
                    m.reference,
                    format_decimal(p.ad_valorem_percent),
                    p.reference
                ));
                m
            }
        }
    };

    // Rule 2: every additional duty stacks.
    let mut stack = vec![base];
    for c in covering.iter().filter(|c| c.measure.kind.is_additional()) {
        let l = line(shipment, c)?;
        explanations.push(format!(
            "{} {}% stacks ({}, prefix {})",
            l.kind.as_str(),
            format_decimal(l.ad_valorem_percent),
            l.reference,
            l.matched_hs_code
        ));
        stack.push(l);
    }

    // Rule 3: a quota with room replaces the stack.
    let needed = shipment.quantity.unwrap_or(Decimal::ONE);
    let mut quota_full = false;
    let quotas = covering.iter().filter(|c| {
        c.measure.kind == MeasureKind::TariffRateQuota
            && c.measure.quota().is_some_and(|q| q.holds(shipment.imported_on))
    });
    let mut in_quota: Option<DutyLine> = None;
    for c in quotas {
        let room = c.measure.quota_room().unwrap_or_default();
        if room >= needed {
            let l = line(shipment, c)?;
            let better = in_quota.as_ref().is_none_or(|best| l.amount.amount < best.amount.amount);
            if better {
                in_quota = Some(l);
            }
        } else {
            quota_full = true;
            explanations.push(format!(
                "quota {} has {} left, less than {}: the full duty applies",
                c.measure.reference(),
                format_decimal(room),
                format_decimal(needed)
            ));
        }
    }
    let lines = match in_quota {
        Some(l) => {
            quota_full = false;
            explanations.push(format!(
                "in quota {}: the in-quota rate {}% replaces the duties above",
                l.reference,
                format_decimal(l.ad_valorem_percent)
            ));
            vec![l]
        }
        None => stack,
    };

    let total = lines.iter().try_fold(Decimal::ZERO, |sum, l| sum.checked_add(l.amount.amount)).ok_or_else(overflow)?;
    let currency = shipment.customs_value.currency.clone();
    let effective_rate_percent = if shipment.customs_value.amount.is_zero() {
        Decimal::ZERO
    } else {
        total
            .checked_mul(Decimal::ONE_HUNDRED)
            .and_then(|t| t.checked_div(shipment.customs_value.amount))
            .ok_or_else(overflow)?
            .round_dp(4)
            .normalize()
    };
    Ok(Resolution { lines, total_duty: Money::new(currency, total), effective_rate_percent, quota_full, explanations })
}

/// Every computation is checked: values past what a decimal holds are
/// OUT_OF_RANGE, never a panic.
fn overflow() -> Error {
    Error::out_of_range(
        Reason::DutyOverflow,
        "the duty on this shipment is too large to compute; check the values sent",
    )
}

/// The duty one measure levies on the shipment, rounded to cents.
fn line(shipment: &Shipment, c: &Covering<'_>) -> Result<DutyLine> {
    let spec = c.measure;
    let value = &shipment.customs_value;
    let mut amount = value
        .amount
        .checked_mul(spec.ad_valorem_percent)
        .and_then(|a| a.checked_div(Decimal::ONE_HUNDRED))
        .ok_or_else(overflow)?;
    if let Some(specific) = spec.specific_duty() {
        let Some(quantity) = shipment.quantity else {
            return Err(Error::invalid_field(
                "quantity",
                format!(
                    "is required: {} levies {} {} per {}",
                    spec.reference(),
                    format_decimal(specific.amount.amount),
                    specific.amount.currency,
                    specific.unit
                ),
            ));
        };
        if specific.amount.currency != value.currency {
            return Err(Error::failed_precondition(
                Reason::CurrencyMismatch,
                format!(
                    "{} levies a specific duty in {}; give customs_value in {}",
                    spec.reference(),
                    specific.amount.currency,
                    specific.amount.currency
                ),
            ));
        }
        amount =
            specific.amount.amount.checked_mul(quantity).and_then(|s| amount.checked_add(s)).ok_or_else(overflow)?;
    }
    Ok(DutyLine {
        measure_id: c.measure.id,
        kind: spec.kind,
        matched_hs_code: *c.prefix,
        ad_valorem_percent: spec.ad_valorem_percent,
        amount: Money::new(value.currency.clone(), amount).rounded(),
        reference: spec.reference().to_owned(),
        title: spec.title().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use tonic::Code;

    use super::*;
    use crate::domain::{
        Measure, MeasureSpec, MeasureStatus, QuotaTerms, SpecificDuty,
        measure::tests::{change, date, dec, eco, hs, measure, spec},
    };

    /// [`super::resolve`] of measures, each read as the schedule holds it.
    fn resolve(shipment: &Shipment, measures: &[Measure]) -> Result<Resolution> {
        super::resolve(shipment, &measures.iter().map(Levy::from).collect::<Vec<_>>())
    }

    fn shipment(code: &str, day: &str, value: &str) -> Shipment {
        Shipment {
            importing_economy: eco("CAN"),
            origin_economy: eco("CHN"),
            hs_code: hs(code),
            imported_on: date(day),
            customs_value: Money::new("CAD", dec(value)),
            quantity: None,
        }
    }

    fn targeted(mut s: MeasureSpec, origin: &str) -> MeasureSpec {
        s.target_economies = vec![eco(origin)];
        s
    }

    fn trq(code: &str, rate: &str, quantity: &str) -> MeasureSpec {
        let mut s = targeted(spec(MeasureKind::TariffRateQuota, &[code], rate), "CHN");
        s.quota = Some(QuotaTerms {
            quantity: dec(quantity),
            unit: "vehicle".into(),
            period_start: date("2026-01-16"),
            period_end: date("2027-01-15"),
        });
        s
    }

    fn amounts(r: &Resolution) -> Vec<(MeasureKind, String)> {
        r.lines.iter().map(|l| (l.kind, format_decimal(l.amount.amount))).collect()
    }

    #[test]
    fn most_specific_prefix_sets_the_base() -> Result<()> {
        let measures = [
            measure(spec(MeasureKind::Mfn, &["87"], "10")),
            measure(spec(MeasureKind::Mfn, &["8703"], "6.1")),
            measure(spec(MeasureKind::Mfn, &["8704"], "1")),
        ];
        let r = resolve(&shipment("87038000", "2025-01-15", "40000"), &measures)?;
        assert_eq!(amounts(&r), [(MeasureKind::Mfn, "2440".into())]);
        assert_eq!(r.lines[0].matched_hs_code.as_str(), "8703");
        Ok(())
    }

    #[test]
    fn preferential_wins_only_when_lower() -> Result<()> {
        let mfn = measure(spec(MeasureKind::Mfn, &["8703"], "6.1"));
        let low = measure(targeted(spec(MeasureKind::Preferential, &["8703"], "0"), "CHN"));
        let high = measure(targeted(spec(MeasureKind::Preferential, &["870380"], "8"), "CHN"));
        let r = resolve(&shipment("87038000", "2025-01-15", "1000"), &[mfn.clone(), low.clone()])?;
        assert_eq!(amounts(&r), [(MeasureKind::Preferential, "0".into())]);
        let r = resolve(&shipment("87038000", "2025-01-15", "1000"), &[mfn.clone(), high])?;
        assert_eq!(
            amounts(&r),
            [(MeasureKind::Mfn, "61".into())],
            "the more specific preferential is higher: MFN stays"
        );
        let mut elsewhere = shipment("87038000", "2025-01-15", "1000");
        elsewhere.origin_economy = eco("USA");
        let r = resolve(&elsewhere, &[mfn, low])?;
        assert_eq!(amounts(&r), [(MeasureKind::Mfn, "61".into())], "a preference for another origin does not apply");
        Ok(())
    }

    #[test]
    fn additional_duties_stack_on_the_base() -> Result<()> {
        let measures = [
            measure(spec(MeasureKind::Mfn, &["8703"], "6.1")),
            measure(targeted(spec(MeasureKind::Surtax, &["87038000"], "100"), "CHN")),
            measure(targeted(spec(MeasureKind::AntiDumping, &["8703"], "10"), "USA")),
            measure(spec(MeasureKind::Safeguard, &["87"], "5")),
        ];
        let r = resolve(&shipment("8703800010", "2025-01-15", "40000"), &measures)?;
        assert_eq!(
            amounts(&r),
            [
                (MeasureKind::Mfn, "2440".into()),
                (MeasureKind::Surtax, "40000".into()),
                (MeasureKind::Safeguard, "2000".into())
            ]
        );
        assert_eq!(format_decimal(r.total_duty.amount), "44440");
        assert_eq!(format_decimal(r.effective_rate_percent), "111.1");
        assert!(!r.quota_full);
        Ok(())
    }

    #[test]
    fn specific_duty_is_multiplied_by_quantity() -> Result<()> {
        let mut s = targeted(spec(MeasureKind::AntiDumping, &["0203"], "0"), "CHN");
        s.specific_duty = Some(SpecificDuty { amount: Money::new("CAD", dec("0.35")), unit: "kg".into() });
        let measures = [measure(spec(MeasureKind::Mfn, &["02"], "0")), measure(s)];
        let mut ship = shipment("020329", "2025-01-15", "10000");
        let err = resolve(&ship, &measures).err();
        assert_eq!(
            err.map(|e| (e.code(), e.violations()[0].field.clone())),
            Some((Code::InvalidArgument, "quantity".to_owned()))
        );
        ship.quantity = Some(dec("1200"));
        let r = resolve(&ship, &measures)?;
        assert_eq!(format_decimal(r.total_duty.amount), "420");
        ship.customs_value.currency = "USD".into();
        assert_eq!(resolve(&ship, &measures).err().as_ref().map(Error::reason), Some("CURRENCY_MISMATCH"));
        Ok(())
    }

    #[test]
    fn a_quota_with_room_replaces_the_stack() -> Result<()> {
        let measures = [
            measure(spec(MeasureKind::Mfn, &["8703"], "6.1")),
            measure(targeted(spec(MeasureKind::Surtax, &["870380"], "100"), "CHN")),
            measure(trq("870380", "6.1", "49000")),
        ];
        let r = resolve(&shipment("87038000", "2026-02-01", "40000"), &measures)?;
        assert_eq!(amounts(&r), [(MeasureKind::TariffRateQuota, "2440".into())]);
        assert!(!r.quota_full);
        let before = resolve(&shipment("87038000", "2026-01-10", "40000"), &measures)?;
        assert_eq!(before.lines.len(), 2, "before the quota period the stack applies");
        Ok(())
    }

    #[test]
    fn a_full_quota_leaves_the_stack_and_says_so() -> Result<()> {
        let mut full = measure(trq("870380", "6.1", "10"));
        full.quota_used = dec("9.5");
        let measures = [
            measure(spec(MeasureKind::Mfn, &["8703"], "6.1")),
            measure(targeted(spec(MeasureKind::Surtax, &["870380"], "100"), "CHN")),
            full,
        ];
        let r = resolve(&shipment("87038000", "2026-02-01", "40000"), &measures)?;
        assert_eq!(amounts(&r), [(MeasureKind::Mfn, "2440".into()), (MeasureKind::Surtax, "40000".into())]);
        assert!(r.quota_full);
        let mut half = shipment("87038000", "2026-02-01", "40000");
        half.quantity = Some(dec("0.5"));
        assert!(!resolve(&half, &measures)?.quota_full, "half a unit still fits");
        Ok(())
    }

    #[test]
    fn a_dated_suspension_lifts_a_duty_from_its_day() -> Result<()> {
        let mfn = measure(spec(MeasureKind::Mfn, &["230641"], "5"));
        let mut retaliation = measure(targeted(spec(MeasureKind::Retaliatory, &["230641"], "100"), "CHN"));
        retaliation.push_change(change(&retaliation, MeasureStatus::Suspended, "2026-03-01"));
        let measures = [mfn, retaliation];
        let before = resolve(&shipment("23064100", "2026-02-28", "1000"), &measures)?;
        assert_eq!(format_decimal(before.total_duty.amount), "1050");
        let after = resolve(&shipment("23064100", "2026-03-01", "1000"), &measures)?;
        assert_eq!(format_decimal(after.total_duty.amount), "50");
        assert!(after.explanations.iter().any(|n| n.contains("SUSPENDED")), "{:?}", after.explanations);
        Ok(())
    }

    #[test]
    fn expired_and_future_measures_do_not_apply() -> Result<()> {
        let mut provisional = targeted(spec(MeasureKind::AntiDumping, &["1205"], "75.8"), "CAN");
        provisional.imposing_economy = eco("CHN");
        provisional.effective_from = date("2025-08-14");
        provisional.effective_to = Some(date("2026-02-28"));
        let mut definitive = provisional.clone();
        definitive.ad_valorem_percent = dec("5.9");
        definitive.effective_from = date("2026-03-01");
        definitive.effective_to = Some(date("2031-02-28"));
        let mut mfn = spec(MeasureKind::Mfn, &["1205"], "9");
        mfn.imposing_economy = eco("CHN");
        let measures = [measure(mfn), measure(provisional), measure(definitive)];
        let ship = |day: &str| Shipment {
            importing_economy: eco("CHN"),
            origin_economy: eco("CAN"),
            hs_code: hs("120510"),
            imported_on: date(day),
            customs_value: Money::new("CNY", dec("100")),
            quantity: None,
        };
        assert_eq!(format_decimal(resolve(&ship("2025-08-13"), &measures)?.total_duty.amount), "9");
        assert_eq!(format_decimal(resolve(&ship("2025-09-15"), &measures)?.total_duty.amount), "84.8");
        assert_eq!(format_decimal(resolve(&ship("2026-03-15"), &measures)?.total_duty.amount), "14.9");
        Ok(())
    }

    #[test]
    fn a_code_without_a_base_rate_is_not_found() {
        let measures = [measure(targeted(spec(MeasureKind::Surtax, &["72"], "25"), "CHN"))];
        let err = resolve(&shipment("72101100", "2025-01-15", "100"), &measures).err();
        assert_eq!(err.as_ref().map(Error::code), Some(Code::NotFound));
        assert!(err.map(|e| e.message().contains("no MFN or preferential rate")).unwrap_or(false));
        assert!(resolve(&shipment("72101100", "2025-01-15", "100"), &[] as &[Measure]).is_err());
    }

    #[test]
    fn other_importers_measures_are_ignored() -> Result<()> {
        let mut chn = spec(MeasureKind::Mfn, &["8703"], "15");
        chn.imposing_economy = eco("CHN");
        let measures = [measure(spec(MeasureKind::Mfn, &["8703"], "6.1")), measure(chn)];
        let r = resolve(&shipment("870380", "2025-01-15", "100"), &measures)?;
        assert_eq!(format_decimal(r.total_duty.amount), "6.1");
        Ok(())
    }

    fn arb_rate() -> impl Strategy<Value = Decimal> {
        (0u32..=30000).prop_map(|n| Decimal::new(i64::from(n), 2))
    }

    /// Any decimal at all, up to the type's limits: stored data may predate
    /// today's bounds, so the rules must hold for values no caller can send.
    fn arb_any_decimal() -> impl Strategy<Value = Decimal> {
        prop_oneof![
            (any::<i64>(), 0u32..=28).prop_map(|(m, s)| Decimal::new(m, s).abs()),
            Just(Decimal::MAX),
            Just(Decimal::ZERO),
            (0u32..=28).prop_map(|s| Decimal::from_i128_with_scale(1, s)),
        ]
    }

    proptest! {
        #[test]
        fn no_value_makes_resolution_panic(
            rates in proptest::collection::vec(arb_any_decimal(), 1..6),
            specific in proptest::option::of(arb_any_decimal()),
            value in arb_any_decimal(), quantity in proptest::option::of(arb_any_decimal()),
            quota in arb_any_decimal(), used in arb_any_decimal(),
        ) {
            let mut measures = vec![measure(spec(MeasureKind::Mfn, &["8703"], "0"))];
            for (i, rate) in rates.iter().enumerate() {
                let kind = [MeasureKind::Mfn, MeasureKind::Surtax, MeasureKind::Preferential, MeasureKind::Safeguard][i % 4];
                let mut s = spec(kind, &["870380"], "0");
                s.reference = format!("R{i}");
                s.ad_valorem_percent = *rate;
                s.specific_duty = specific.map(|a| SpecificDuty { amount: Money::new("CAD", a), unit: "kg".into() });
                measures.push(measure(s));
            }
            let mut q = measure(trq("870380", "6.1", "1"));
            if let Some(terms) = q.spec.quota.as_mut() { terms.quantity = quota; }
            q.quota_used = used;
            measures.push(q);
            let mut ship = shipment("87038000", "2026-06-15", "1");
            ship.customs_value = Money::new("CAD", value);
            ship.quantity = quantity;
            match resolve(&ship, &measures) {
                Ok(r) => prop_assert!(r.total_duty.amount >= Decimal::ZERO),
                Err(e) => prop_assert!(
                    matches!(e.code(), Code::OutOfRange | Code::InvalidArgument | Code::FailedPrecondition),
                    "{:?}", e
                ),
            }
        }

        #[test]
        fn total_is_the_sum_of_the_lines(
            base in arb_rate(), extra in proptest::collection::vec(arb_rate(), 0..5),
            value in 0i64..100_000_000, cents in 0u32..100,
        ) {
            let mut measures = vec![measure(spec(MeasureKind::Mfn, &["8703"], &base.to_string()))];
            for rate in &extra {
                measures.push(measure(spec(MeasureKind::Surtax, &["870380"], &rate.to_string())));
            }
            let ship = shipment("87038000", "2025-01-15", &format!("{value}.{cents:02}"));
            let r = resolve(&ship, &measures).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let sum: Decimal = r.lines.iter().map(|l| l.amount.amount).sum();
            prop_assert_eq!(r.total_duty.amount, sum);
            prop_assert_eq!(r.lines.len(), 1 + extra.len());
        }

        #[test]
        fn a_surtax_never_lowers_the_total(
            base in arb_rate(), surtax in arb_rate(), value in 0i64..100_000_000,
            with_quota in any::<bool>(), used in 0u32..3,
        ) {
            let mut measures = vec![measure(spec(MeasureKind::Mfn, &["8703"], &base.to_string()))];
            if with_quota {
                let mut q = measure(trq("870380", "6.1", "2"));
                q.quota_used = Decimal::from(used);
                measures.push(q);
            }
            let ship = shipment("87038000", "2026-02-01", &value.to_string());
            let without = resolve(&ship, &measures).map_err(|e| TestCaseError::fail(e.to_string()))?;
            measures.push(measure(targeted(spec(MeasureKind::Surtax, &["8703"], &surtax.to_string()), "CHN")));
            let with = resolve(&ship, &measures).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(with.total_duty.amount >= without.total_duty.amount);
        }
    }
}
