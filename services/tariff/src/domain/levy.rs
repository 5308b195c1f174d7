//! A measure as duty resolution and trade coverage read it: what it levies,
//! on which codes and origins, on which days. The schedule holds one per
//! measure, about 120 bytes and two small allocations, where a whole
//! [`Measure`] with its titles, sources, notes and timeline takes over a
//! kilobyte; the rules are the measure's own ([`coverage_of`],
//! [`super::measure::status_on`]), stated once.

use std::sync::Arc;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use tradewatch_common::types::{Economy, HsCode};
use uuid::Uuid;

use super::{
    Coverage, Measure, MeasureKind, MeasureStatus, QuotaTerms, SpecificDuty, coverage_of,
    measure::{in_force_periods, quota_room, status_on},
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Levy {
    pub id: Uuid,
    pub ad_valorem_percent: Decimal,
    codes: Codes,
    /// Empty: every origin. Measures naming the same origins may share one.
    pub targets: Arc<[Economy]>,
    /// The reference, then the title.
    text: Box<str>,
    /// What few measures have; None for a plain rate.
    rare: Option<Box<Rare>>,
    pub effective_from: NaiveDate,
    pub effective_to: Option<NaiveDate>,
    reference_len: u32,
    pub kind: MeasureKind,
    pub importer: Economy,
}

/// The HS prefixes a measure names: most name one.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Codes {
    One(HsCode),
    Many(Box<[HsCode]>),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Rare {
    excluded: Box<[HsCode]>,
    specific_duty: Option<SpecificDuty>,
    /// The quota's terms and how much of it is drawn.
    quota: Option<(QuotaTerms, Decimal)>,
    /// The status changes that can make the status differ from what the
    /// dates say, in timeline order: the leading IN_FORCE and ANNOUNCED
    /// changes (a measure's first) defer to the dates, and are left out.
    timeline: Box<[(NaiveDate, MeasureStatus)]>,
}

impl From<&Measure> for Levy {
    fn from(m: &Measure) -> Self {
        Self::of(m, Arc::from(m.spec.target_economies.as_slice()))
    }
}

impl Levy {
    /// `m` as resolution reads it, its targets being `targets` (equal to
    /// `m`'s, shared with other levies or not).
    pub fn of(m: &Measure, targets: Arc<[Economy]>) -> Self {
        let spec = &m.spec;
        let codes = match spec.hs_codes.as_slice() {
            [one] => Codes::One(*one),
            many => Codes::Many(many.into()),
        };
        let defers = |s: MeasureStatus| matches!(s, MeasureStatus::InForce | MeasureStatus::Announced);
        let timeline: Box<[(NaiveDate, MeasureStatus)]> =
            m.changes.iter().skip_while(|c| defers(c.status)).map(|c| (c.effective_on, c.status)).collect();
        let rare = Rare {
            excluded: spec.excluded_hs_codes.as_slice().into(),
            specific_duty: spec.specific_duty.clone(),
            quota: spec.quota.clone().map(|q| (q, m.quota_used)),
            timeline,
        };
        let plain = rare == Rare::default();
        Self {
            id: m.id,
            ad_valorem_percent: spec.ad_valorem_percent,
            codes,
            targets,
            text: format!("{}{}", spec.reference, spec.title).into_boxed_str(),
            rare: (!plain).then(|| Box::new(rare)),
            effective_from: spec.effective_from,
            effective_to: spec.effective_to,
            reference_len: u32::try_from(spec.reference.len()).unwrap_or(u32::MAX),
            kind: spec.kind,
            importer: spec.imposing_economy,
        }
    }

    pub fn reference(&self) -> &str {
        self.text.get(..self.reference_len as usize).unwrap_or_default()
    }

    pub fn title(&self) -> &str {
        self.text.get(self.reference_len as usize..).unwrap_or_default()
    }

    pub fn hs_codes(&self) -> &[HsCode] {
        match &self.codes {
            Codes::One(code) => std::slice::from_ref(code),
            Codes::Many(codes) => codes,
        }
    }

    pub fn excluded_hs_codes(&self) -> &[HsCode] {
        self.rare.as_ref().map_or(&[], |r| &r.excluded)
    }

    pub fn specific_duty(&self) -> Option<&SpecificDuty> {
        self.rare.as_ref().and_then(|r| r.specific_duty.as_ref())
    }

    pub fn quota(&self) -> Option<&QuotaTerms> {
        self.rare.as_ref().and_then(|r| r.quota.as_ref()).map(|(q, _)| q)
    }

    /// Room left in the quota, if the measure has one ([`Measure::quota_room`]).
    pub fn quota_room(&self) -> Option<Decimal> {
        self.rare.as_ref().and_then(|r| r.quota.as_ref()).map(|(q, used)| quota_room(q, *used))
    }

    fn timeline(&self) -> &[(NaiveDate, MeasureStatus)] {
        self.rare.as_ref().map_or(&[], |r| &r.timeline)
    }

    /// [`super::MeasureSpec::covers_origin`].
    pub fn covers_origin(&self, origin: &Economy) -> bool {
        self.targets.is_empty() || self.targets.contains(origin)
    }

    /// [`super::MeasureSpec::coverage`].
    pub fn coverage(&self, code: &str) -> Coverage<'_> {
        coverage_of(self.hs_codes(), self.excluded_hs_codes(), code)
    }

    /// [`super::MeasureSpec::matched_prefix`].
    pub fn matched_prefix(&self, code: &HsCode) -> Option<&HsCode> {
        self.coverage(code.as_str()).matched()
    }

    /// [`Measure::status_on`].
    pub fn status_on(&self, day: NaiveDate) -> MeasureStatus {
        let latest = self.timeline().iter().rfind(|(on, _)| *on <= day).map(|(_, status)| *status);
        status_on(self.effective_from, self.effective_to, latest, day)
    }

    /// [`Measure::in_force_periods`].
    pub fn in_force_periods(&self) -> Vec<(NaiveDate, NaiveDate)> {
        let days = self.timeline().iter().map(|(on, _)| *on);
        in_force_periods(self.effective_from, self.effective_to, days, |day| {
            self.status_on(day) == MeasureStatus::InForce
        })
    }

    /// Whether its dates hold `day` (whatever its status).
    pub fn dated(&self, day: NaiveDate) -> bool {
        self.effective_from <= day && self.effective_to.is_none_or(|to| to >= day)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::domain::measure::tests::{change, date, dec, hs, measure, spec};

    #[test]
    fn a_plain_rate_is_small() {
        // The figure the schedule's memory is sized by.
        assert!(std::mem::size_of::<Levy>() <= 120, "{}", std::mem::size_of::<Levy>());
        let m = measure(spec(MeasureKind::Mfn, &["870380"], "6.1"));
        let levy = Levy::from(&m);
        assert!(levy.rare.is_none(), "the first IN_FORCE change defers to the dates");
        assert_eq!((levy.reference(), levy.title()), (m.spec.reference.as_str(), m.spec.title.as_str()));
    }

    fn arb_status() -> impl Strategy<Value = MeasureStatus> {
        proptest::sample::select(vec![
            MeasureStatus::InForce,
            MeasureStatus::Suspended,
            MeasureStatus::Revoked,
            MeasureStatus::Expired,
        ])
    }

    proptest! {
        /// A levy answers every question resolution and coverage ask as its
        /// measure does, whatever the timeline, dates, codes and quota.
        #[test]
        fn a_levy_answers_as_its_measure(
            changes in proptest::collection::vec((0i64..60, arb_status()), 0..5),
            to in proptest::option::of(0i64..60),
            excluded in proptest::bool::ANY,
            quota in proptest::option::of(0u32..10),
            days in proptest::collection::vec(-5i64..70, 1..12),
            codes in proptest::sample::select(vec!["8703", "870380", "0306120000", "1205"]),
        ) {
            let start = date("2025-01-01");
            let mut s = spec(MeasureKind::Surtax, &[codes, "72"], "25");
            if excluded {
                s.excluded_hs_codes = vec![hs("72081000")];
            }
            s.effective_to = to.map(|d| start + chrono::Duration::days(d));
            if let Some(q) = quota {
                s.kind = MeasureKind::TariffRateQuota;
                s.quota = Some(QuotaTerms {
                    quantity: Decimal::from(q),
                    unit: "t".into(),
                    period_start: start,
                    period_end: date("2025-12-31"),
                });
            }
            let mut m = measure(s);
            m.quota_used = if quota.is_some() { dec("3") } else { Decimal::ZERO };
            for (d, status) in &changes {
                let c = change(&m, *status, &(start + chrono::Duration::days(*d)).format("%Y-%m-%d").to_string());
                m.push_change(c);
            }
            let levy = Levy::from(&m);
            prop_assert_eq!(levy.in_force_periods(), m.in_force_periods());
            prop_assert_eq!(levy.quota_room(), m.quota_room());
            prop_assert_eq!(levy.hs_codes(), m.spec.hs_codes.as_slice());
            prop_assert_eq!(levy.excluded_hs_codes(), m.spec.excluded_hs_codes.as_slice());
            for d in days {
                let day = start + chrono::Duration::days(d);
                prop_assert_eq!(levy.status_on(day), m.status_on(day));
            }
            for code in ["87038000", "72081000", "7208", "0306120000", "12", "120510"] {
                prop_assert_eq!(levy.coverage(code), m.spec.coverage(code));
            }
        }
    }
}
