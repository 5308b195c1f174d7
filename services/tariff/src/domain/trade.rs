//! Trade flows and what measures are worth in trade (DESIGN §14): the flows'
//! natural key and how an import lands on the record, sums kept one per
//! currency, hypothetical status changes laid over the record, and the
//! tallies of a measure's exposure and of an importer's trade coverage.
//! Which flows a measure reaches is [`MeasureSpec::coverage`]'s alone; the
//! store finds the candidates, these rules count them. Pure.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use tradewatch_common::{
    Error, Reason, Result,
    types::{Economy, HsCode, Money, format_date, format_decimal},
};
use uuid::Uuid;

use super::{Coverage, Measure, MeasureKind, MeasureStatus, Partly};

/// The first and last years a flow may be of: GATT's first year to the end
/// of the century.
pub const FIRST_YEAR: i32 = 1948;
pub const LAST_YEAR: i32 = 2100;

/// Most flows one import carries.
pub const MAX_FLOWS_PER_IMPORT: usize = 1_000;

/// Most hypothetical status changes one call assumes.
pub const MAX_ASSUMPTIONS: usize = 100;

/// The natural key of a flow: one statistic per exporter, importer, code
/// and year.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    pub importing: Economy,
    pub exporting: Economy,
    pub year: i32,
    pub hs_code: HsCode,
}

impl std::fmt::Display for FlowKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} from {}, {} in {}", self.importing, self.exporting, self.hs_code, self.year)
    }
}

/// A quantity traded and its unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quantity {
    pub amount: Decimal,
    pub unit: String,
}

/// Everything a client sets on a flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowSpec {
    pub key: FlowKey,
    pub value: Money,
    pub quantity: Option<Quantity>,
    pub source_url: String,
    pub note: String,
}

/// A stored flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TradeFlow {
    pub id: Uuid,
    pub spec: FlowSpec,
    pub version: i64,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
    pub create_actor: String,
    pub update_actor: String,
}

impl TradeFlow {
    pub fn new(spec: FlowSpec, now: DateTime<Utc>, actor: &str) -> Self {
        Self {
            id: tradewatch_common::types::new_id(),
            spec,
            version: 1,
            create_time: now,
            update_time: now,
            create_actor: actor.to_owned(),
            update_actor: actor.to_owned(),
        }
    }

    /// The flow revised by `spec` (same key): its id and creation kept.
    fn revised(&self, spec: FlowSpec, now: DateTime<Utc>, actor: &str) -> Self {
        Self {
            spec,
            version: self.version + 1,
            update_time: now,
            update_actor: actor.to_owned(),
            create_actor: self.create_actor.clone(),
            ..*self
        }
    }
}

/// What an import does to the record.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ImportPlan {
    /// Keys not stored before.
    pub created: Vec<TradeFlow>,
    /// Stored flows revised, as they will be.
    pub replaced: Vec<TradeFlow>,
    /// Flows the same as stored, field for field.
    pub unchanged: usize,
}

/// How `specs` (keys distinct) land on the record whose flows of the same
/// keys are `stored`: each list in natural-key order.
pub fn plan_import(
    specs: Vec<FlowSpec>,
    stored: &HashMap<FlowKey, TradeFlow>,
    now: DateTime<Utc>,
    actor: &str,
) -> ImportPlan {
    let mut plan = ImportPlan::default();
    for spec in specs {
        match stored.get(&spec.key) {
            None => plan.created.push(TradeFlow::new(spec, now, actor)),
            Some(old) if old.spec == spec => plan.unchanged += 1,
            Some(old) => plan.replaced.push(old.revised(spec, now, actor)),
        }
    }
    // In key order: rows join the natural key's index in its order.
    plan.created.sort_by(|a, b| a.spec.key.cmp(&b.spec.key));
    plan.replaced.sort_by(|a, b| a.spec.key.cmp(&b.spec.key));
    plan
}

/// An ISO 4217 code as three bytes: what the in-memory index keeps per flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

impl Currency {
    /// The code of a validated currency (three upper-case letters).
    pub fn of(code: &str) -> Option<Self> {
        <[u8; 3]>::try_from(code.as_bytes()).ok().filter(|b| b.iter().all(u8::is_ascii_uppercase)).map(Self)
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

/// An amount of money in ten-thousandths, exactly: every amount a caller
/// sends has at most 4 decimal places, so the sums of a coverage are
/// integer additions (a million flows of 10^15 each stay far inside).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Units(i128);

impl Units {
    const SCALE: u32 = 4;

    /// `amount` in ten-thousandths; None past 4 decimal places or too large.
    pub fn of(amount: Decimal) -> Option<Self> {
        let mut d = amount.normalize();
        if d.scale() > Self::SCALE {
            return None;
        }
        d.rescale(Self::SCALE);
        (d.scale() == Self::SCALE).then(|| Self(d.mantissa()))
    }

    pub fn to_decimal(self) -> Decimal {
        Decimal::try_from_i128_with_scale(self.0, Self::SCALE).unwrap_or(Decimal::MAX).normalize()
    }

    fn checked_add(self, other: Self) -> Option<Self> {
        self.0.checked_add(other.0).map(Self)
    }
}

/// Amounts kept one per currency, never converted, in currency-code order.
/// One currency, the usual case, is kept without an allocation: a coverage
/// keeps sums for every measure it meets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sums {
    /// The only currency, while there is one.
    one: Option<(Currency, Units)>,
    /// Two currencies or more, in code order (`one` is then None).
    many: Vec<(Currency, Units)>,
}

impl Sums {
    /// Adds `amount` in `currency`; a sum past what a decimal holds is
    /// OUT_OF_RANGE.
    #[inline]
    pub fn add(&mut self, currency: Currency, amount: Units) -> Result<()> {
        let sum = match (&mut self.one, self.many.is_empty()) {
            (None, true) => {
                self.one = Some((currency, amount));
                return Ok(());
            }
            (Some((c, sum)), _) if *c == currency => sum,
            (Some(first), _) => {
                let first = *first;
                self.one = None;
                self.many = vec![first];
                return self.add(currency, amount);
            }
            (None, false) => {
                let at = match self.many.binary_search_by(|(c, _)| c.cmp(&currency)) {
                    Ok(at) => at,
                    Err(at) => {
                        self.many.insert(at, (currency, Units::default()));
                        at
                    }
                };
                &mut self.many[at].1
            }
        };
        *sum = sum.checked_add(amount).ok_or_else(too_large)?;
        Ok(())
    }

    /// Each currency and its sum, in code order.
    pub fn iter(&self) -> impl Iterator<Item = (Currency, Units)> + '_ {
        self.one.iter().chain(self.many.iter()).copied()
    }

    /// The sum in `currency`, zero when there is none.
    pub fn get(&self, currency: Currency) -> Units {
        self.iter().find(|(c, _)| *c == currency).map_or(Units::default(), |(_, a)| a)
    }

    pub fn currencies(&self) -> impl Iterator<Item = Currency> + '_ {
        self.iter().map(|(c, _)| c)
    }

    pub fn is_empty(&self) -> bool {
        self.one.is_none() && self.many.is_empty()
    }

    /// The sums as money, in currency-code order.
    pub fn to_money(&self) -> Vec<Money> {
        self.iter().map(|(c, a)| Money::new(c.as_str(), a.to_decimal())).collect()
    }
}

fn too_large() -> Error {
    Error::out_of_range(Reason::DutyOverflow, "the sum of these trade flows is too large to compute")
}

/// `part` of `whole` in percent, to 4 places (half to even), "0" of nothing.
pub fn percent(part: Units, whole: Units) -> Decimal {
    let (part, whole) = (part.to_decimal(), whole.to_decimal());
    if whole.is_zero() {
        return Decimal::ZERO;
    }
    part.checked_mul(Decimal::ONE_HUNDRED)
        .and_then(|p| p.checked_div(whole))
        .map_or(Decimal::ZERO, |p| p.round_dp(4).normalize())
}

/// The last day of `year`: the default day of an exposure or coverage.
pub fn last_day(year: i32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, 12, 31).unwrap_or(NaiveDate::MAX)
}

/// A status change assumed for one call, never written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assumption {
    pub measure_id: Uuid,
    pub status: MeasureStatus,
    /// None: the day the answer is for.
    pub effective_on: Option<NaiveDate>,
}

/// The measures an answer reads, with the assumed changes laid over them.
#[derive(Debug, Default)]
pub struct Hypothesis {
    /// Each assumed measure as it would be; absent when its assumption
    /// changes nothing (it already has that status that day).
    measures: HashMap<Uuid, Measure>,
    /// Each assumption, the day it takes hold, and its measure as stored.
    assumed: Vec<(Assumption, NaiveDate, Measure)>,
}

impl Hypothesis {
    /// Lays `assumptions` over `measures` (each the stored measure the
    /// assumption of the same index names), for an answer about `day`. An
    /// assumption SetMeasureStatus would refuse is refused the same way,
    /// named `assume[i]`; one that changes nothing is kept as such.
    pub fn new(assumptions: Vec<Assumption>, measures: &[&Measure], day: NaiveDate) -> Result<Self> {
        let mut out = Self::default();
        for (i, (a, m)) in assumptions.into_iter().zip(measures).enumerate() {
            let on = a.effective_on.unwrap_or(day);
            match m.check_status_change(a.status, on) {
                Ok(()) => {
                    let mut hypothetical = (*m).clone();
                    hypothetical.push_change(super::StatusChange {
                        id: Uuid::nil(),
                        measure_id: m.id,
                        status: a.status,
                        effective_on: on,
                        note: "assumed".into(),
                        change_time: m.update_time,
                        actor: String::new(),
                    });
                    out.measures.insert(m.id, hypothetical);
                }
                Err(err) if err.is(Reason::MeasureStatusUnchanged) => {}
                Err(err) => return Err(err.about(&format!("assume[{i}]"))),
            }
            out.assumed.push((a, on, (*m).clone()));
        }
        Ok(out)
    }

    /// Whether the answer is hypothetical: something was assumed.
    pub fn is_hypothetical(&self) -> bool {
        !self.assumed.is_empty()
    }

    /// The measure as the answer reads it.
    pub fn read<'a>(&'a self, m: &'a Measure) -> &'a Measure {
        self.measures.get(&m.id).unwrap_or(m)
    }

    /// Whether `m` is assumed to change.
    pub fn changes(&self, id: Uuid) -> bool {
        self.measures.contains_key(&id)
    }

    /// The measure `id` as assumed to be, if it is assumed to change.
    pub fn changed(&self, id: Uuid) -> Option<&Measure> {
        self.measures.get(&id)
    }

    /// The assumed measures as they would be.
    pub fn measures(&self) -> impl Iterator<Item = &Measure> {
        self.measures.values()
    }

    /// One line per assumption for `explanations`: what it is, and whether
    /// it changes the status of its measure on `day`. `bears` tells whether
    /// a measure takes part in the answer at all (covers the line, reaches a
    /// flow); one that does not changes nothing, whatever its status.
    pub fn explain(&self, day: NaiveDate, bears: impl Fn(Uuid) -> bool) -> Vec<String> {
        let on = format_date(day);
        self.assumed
            .iter()
            .map(|(a, effective_on, m)| {
                let what = format!(
                    "assumed, not recorded: {} {} from {}",
                    m.spec.reference,
                    a.status.as_str(),
                    format_date(*effective_on)
                );
                let before = m.status_on(day);
                let after = self.read(m).status_on(day);
                if before == after {
                    format!("{what}: changes nothing, it is {} on {on} either way", before.as_str())
                } else if !bears(m.id) {
                    format!(
                        "{what}: {} instead of {} on {on}, but it does not bear on this answer",
                        after.as_str(),
                        before.as_str()
                    )
                } else {
                    format!(
                        "{what}: {} instead of {} on {on}, which changes this answer",
                        after.as_str(),
                        before.as_str()
                    )
                }
            })
            .collect()
    }
}

/// Whether `m` counts for imports from `origin` on `day` in an answer that
/// counts measures of `kinds` (empty: every kind): it applies that day and
/// covers the origin.
pub fn counts(m: &Measure, origin: &Economy, day: NaiveDate, kinds: &[MeasureKind]) -> bool {
    (kinds.is_empty() || kinds.contains(&m.spec.kind)) && m.spec.covers_origin(origin) && m.applies_on(day)
}

/// One flow as the tallies count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowValue {
    pub currency: Currency,
    pub amount: Units,
}

/// A flow a measure reaches: whole, or in part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReachedFlow {
    pub id: Uuid,
    pub hs_code: String,
    pub exporting: Economy,
    pub value: FlowValue,
    pub whole: bool,
    /// The measure's prefix that reached it.
    pub matched: HsCode,
}

/// The trade one measure hits in a year.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exposure {
    pub covered: Sums,
    pub upper_bound: Sums,
    pub approximate: bool,
    /// Every flow counted.
    pub flows: Vec<ReachedFlow>,
    pub explanations: Vec<String>,
    /// Flows covered in part, explained or not.
    partial: usize,
}

/// Flows covered in part that an exposure explains one by one.
const EXPLAINED_FLOWS: usize = 20;

impl Exposure {
    /// Counts one candidate flow by the measure's coverage of its code.
    pub fn count(
        &mut self,
        coverage: Coverage<'_>,
        id: Uuid,
        hs_code: &str,
        exporting: &Economy,
        value: FlowValue,
    ) -> Result<()> {
        let (whole, matched) = match coverage {
            Coverage::None => return Ok(()),
            Coverage::Whole(prefix) => (true, prefix),
            Coverage::Partial { prefix, why } => {
                self.approximate = true;
                self.partial += 1;
                if self.partial > EXPLAINED_FLOWS {
                    return self.bound(id, hs_code, exporting, value, prefix);
                }
                self.explanations.push(match why {
                    Partly::Coarser => format!(
                        "flow {hs_code} from {exporting} is published at a coarser level than the measure's {prefix}: \
                         in the upper bound only"
                    ),
                    Partly::CutBy(x) => {
                        format!("flow {hs_code} from {exporting} holds the excluded {x}: in the upper bound only")
                    }
                });
                (false, prefix)
            }
        };
        if whole {
            self.covered.add(value.currency, value.amount)?;
            self.flows.push(ReachedFlow {
                id,
                hs_code: hs_code.to_owned(),
                exporting: *exporting,
                value,
                whole,
                matched: *matched,
            });
            self.upper_bound.add(value.currency, value.amount)
        } else {
            self.bound(id, hs_code, exporting, value, matched)
        }
    }

    /// Counts a flow covered in part: in the upper bound only.
    fn bound(
        &mut self,
        id: Uuid,
        hs_code: &str,
        exporting: &Economy,
        value: FlowValue,
        matched: &HsCode,
    ) -> Result<()> {
        self.upper_bound.add(value.currency, value.amount)?;
        self.flows.push(ReachedFlow {
            id,
            hs_code: hs_code.to_owned(),
            exporting: *exporting,
            value,
            whole: false,
            matched: *matched,
        });
        Ok(())
    }

    /// The explanations, with the partial flows past those explained one
    /// by one counted in a line of their own.
    pub fn finish_explanations(&mut self) {
        if self.partial > EXPLAINED_FLOWS {
            self.explanations
                .push(format!("…and {} more flows in the upper bound only", self.partial - EXPLAINED_FLOWS));
        }
    }

    /// Largest value first, then by code and exporter: the flows a listing
    /// shows first.
    pub fn rank_flows(&mut self) {
        self.flows.sort_by(|a, b| {
            b.value
                .amount
                .cmp(&a.value.amount)
                .then_with(|| a.hs_code.cmp(&b.hs_code))
                .then_with(|| a.exporting.cmp(&b.exporting))
        });
    }

    /// The duty the covered trade would bear under `m` (as the answer reads
    /// it) on `day`: covered value times its ad valorem rate when it applies
    /// that day, zero in each currency otherwise.
    pub fn estimated_duty(&mut self, m: &Measure, day: NaiveDate) -> Result<Vec<Money>> {
        let status = m.status_on(day);
        let on = format_date(day);
        let rate = if status == MeasureStatus::InForce {
            self.explanations.push(format!(
                "estimated duty: covered value × {}% ({} is IN_FORCE on {on})",
                format_decimal(m.spec.ad_valorem_percent),
                m.spec.reference
            ));
            m.spec.ad_valorem_percent
        } else {
            self.explanations.push(format!(
                "estimated duty: none, {} is {} on {on}",
                m.spec.reference,
                status.as_str()
            ));
            Decimal::ZERO
        };
        if let Some(d) = &m.spec.specific_duty {
            self.explanations.push(format!(
                "the specific duty of {} {} per {} is not in the estimate",
                format_decimal(d.amount.amount),
                d.amount.currency,
                d.unit
            ));
        }
        self.covered
            .iter()
            .map(|(c, a)| {
                let duty = a
                    .to_decimal()
                    .checked_mul(rate)
                    .and_then(|d| d.checked_div(Decimal::ONE_HUNDRED))
                    .ok_or_else(too_large)?;
                Ok(Money::new(c.as_str(), duty).rounded())
            })
            .collect()
    }
}

/// What a measure covers of the flows counted in a trade coverage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MeasureTally {
    pub covered: Sums,
    pub upper_bound: Sums,
    pub flows: usize,
}

impl MeasureTally {
    /// Counts one flow the measure reaches, whole or in part.
    pub fn count(&mut self, value: FlowValue, whole: bool) -> Result<()> {
        self.flows += 1;
        if whole {
            self.covered.add(value.currency, value.amount)?;
        }
        self.upper_bound.add(value.currency, value.amount)
    }

    /// Adds the flows `other` counts.
    pub fn add(&mut self, other: &MeasureTally) -> Result<()> {
        self.flows += other.flows;
        for (c, a) in other.covered.iter() {
            self.covered.add(c, a)?;
        }
        for (c, a) in other.upper_bound.iter() {
            self.upper_bound.add(c, a)?;
        }
        Ok(())
    }
}

/// What the measures of one kind cover, each flow once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KindTally {
    pub covered: Sums,
    pub upper_bound: Sums,
    pub flows: usize,
}

/// An importer's trade coverage from the flows of one origin (or every
/// origin) and year: GTA's trade-coverage share, counted exactly. Measures
/// are known by an index the caller gives them (0, 1, …).
#[derive(Debug, Clone, Default)]
pub struct CoverageTally {
    pub total: Sums,
    pub covered: Sums,
    pub upper_bound: Sums,
    pub approximate: bool,
    pub flows: usize,
    pub covered_flows: usize,
    /// By kind, in MeasureKind order.
    by_kind: [KindTally; 8],
    /// By the measures' index; None for one that reaches no flow.
    by_measure: Vec<Option<MeasureTally>>,
}

impl CoverageTally {
    /// Counts one flow, given every counted measure that reaches it and how
    /// (`hits`: the measure's index, its kind, and whether it covers the flow
    /// whole; each measure once). The flow counts once in each sum however
    /// many measures hit it.
    pub fn count(&mut self, value: FlowValue, hits: &[(usize, MeasureKind, bool)]) -> Result<()> {
        let (mut reach, mut cover) = (0u16, 0u16);
        for (_, kind, whole) in hits {
            let bit = 1 << kind_index(*kind);
            reach |= bit;
            if *whole {
                cover |= bit;
            }
        }
        self.count_flow(value, reach, cover)?;
        for (index, _, whole) in hits {
            let mut one = MeasureTally::default();
            one.count(value, *whole)?;
            self.add_measure(*index, &one)?;
        }
        Ok(())
    }

    /// Counts one flow in the totals and by kind, once: `reach` and `cover`
    /// are the kinds (bit [`kind_index`]) of the counted measures that reach
    /// it, and of those that cover it whole. (The measures' own tallies are
    /// [`Self::add_measure`]'s.)
    pub fn count_flow(&mut self, value: FlowValue, reach: u16, cover: u16) -> Result<()> {
        self.flows += 1;
        self.total.add(value.currency, value.amount)?;
        if reach == 0 {
            return Ok(());
        }
        self.covered_flows += 1;
        if cover != 0 {
            self.covered.add(value.currency, value.amount)?;
        } else {
            self.approximate = true;
        }
        self.upper_bound.add(value.currency, value.amount)?;
        for (at, tally) in self.by_kind.iter_mut().enumerate() {
            if reach & (1 << at) == 0 {
                continue;
            }
            tally.flows += 1;
            if cover & (1 << at) != 0 {
                tally.covered.add(value.currency, value.amount)?;
            }
            tally.upper_bound.add(value.currency, value.amount)?;
        }
        Ok(())
    }

    /// Adds to measure `index`'s tally what it covers of more flows.
    pub fn add_measure(&mut self, index: usize, more: &MeasureTally) -> Result<()> {
        if self.by_measure.len() <= index {
            self.by_measure.resize(index + 1, None);
        }
        match &mut self.by_measure[index] {
            Some(tally) => tally.add(more),
            empty => {
                *empty = Some(more.clone());
                Ok(())
            }
        }
    }

    /// The kinds that reach a flow, in MeasureKind order.
    pub fn kinds(&self) -> Vec<(MeasureKind, &KindTally)> {
        MeasureKind::ALL.iter().zip(&self.by_kind).filter(|(_, t)| t.flows > 0).map(|(k, t)| (*k, t)).collect()
    }

    /// The measures that reach a flow, by index.
    pub fn measures(&self) -> impl Iterator<Item = (usize, &MeasureTally)> {
        self.by_measure.iter().enumerate().filter_map(|(i, t)| t.as_ref().map(|t| (i, t)))
    }

    /// How many measures reach a flow.
    pub fn measure_count(&self) -> usize {
        self.by_measure.iter().flatten().count()
    }

    /// The first `limit` measures by covered value, then upper bound
    /// ([`rank_sums`]), then by `reference_of` (their reference).
    pub fn ranked<'r>(&self, reference_of: impl Fn(usize) -> &'r str, limit: usize) -> Vec<(usize, &MeasureTally)> {
        let mut ranked: Vec<(usize, &MeasureTally)> = self.measures().collect();
        ranked.sort_by(|a, b| {
            rank_sums(&a.1.covered, &b.1.covered)
                .then_with(|| rank_sums(&a.1.upper_bound, &b.1.upper_bound))
                .then_with(|| reference_of(a.0).cmp(reference_of(b.0)))
                .then(a.0.cmp(&b.0))
        });
        ranked.truncate(limit);
        ranked
    }
}

/// The order measures are ranked in by one of their sums: larger first,
/// compared currency by currency in code order (a currency one lacks
/// counts as zero).
pub fn rank_sums(a: &Sums, b: &Sums) -> std::cmp::Ordering {
    if let (Some((ca, x)), Some((cb, y))) = (a.one, b.one)
        && ca == cb
    {
        return y.cmp(&x);
    }
    let mut currencies: Vec<Currency> = a.currencies().chain(b.currencies()).collect();
    currencies.sort_unstable();
    currencies.dedup();
    currencies.into_iter().map(|c| b.get(c).cmp(&a.get(c))).find(|o| o.is_ne()).unwrap_or(std::cmp::Ordering::Equal)
}

/// A kind's place in MeasureKind order.
pub fn kind_index(kind: MeasureKind) -> usize {
    MeasureKind::ALL.iter().position(|k| *k == kind).unwrap_or(0)
}

/// NOT_FOUND for an assumed measure that does not exist, naming its field.
pub fn assumed_not_found(i: usize, id: Uuid) -> Error {
    Error::not_found("measure", id).about(&format!("assume[{i}].measure_id"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::measure::tests::{change, date, dec, eco, hs, measure, spec};

    fn key(code: &str, year: i32) -> FlowKey {
        FlowKey { importing: eco("CHN"), exporting: eco("CAN"), year, hs_code: hs(code) }
    }

    fn flow_spec(code: &str, value: &str) -> FlowSpec {
        FlowSpec {
            key: key(code, 2024),
            value: Money::new("CAD", dec(value)),
            quantity: None,
            source_url: "https://example.org".into(),
            note: String::new(),
        }
    }

    fn cad(amount: &str) -> FlowValue {
        FlowValue { currency: Currency::of("CAD").unwrap_or(Currency(*b"XXX")), amount: units(amount) }
    }

    fn units(amount: &str) -> Units {
        Units::of(dec(amount)).unwrap_or_default()
    }

    fn money(sums: &Sums) -> Vec<(String, String)> {
        sums.to_money().iter().map(|m| (m.currency.clone(), format_decimal(m.amount))).collect()
    }

    #[test]
    fn an_import_creates_replaces_and_leaves_alone() {
        let now = Utc::now();
        let stored_same = TradeFlow::new(flow_spec("1205", "100"), now, "a");
        let stored_old = TradeFlow::new(flow_spec("230641", "50"), now, "a");
        let stored: HashMap<_, _> =
            [stored_same.clone(), stored_old.clone()].into_iter().map(|f| (f.spec.key.clone(), f)).collect();
        let plan = plan_import(
            vec![flow_spec("1205", "100"), flow_spec("230641", "55"), flow_spec("071310", "9")],
            &stored,
            now,
            "b",
        );
        assert_eq!(plan.unchanged, 1);
        assert_eq!(plan.created.len(), 1);
        assert_eq!(plan.created[0].spec.key.hs_code.as_str(), "071310");
        let replaced = &plan.replaced[0];
        assert_eq!((replaced.id, replaced.version, replaced.create_actor.as_str()), (stored_old.id, 2, "a"));
        assert_eq!(replaced.update_actor, "b");
        assert_eq!(format_decimal(replaced.spec.value.amount), "55");
    }

    #[test]
    fn sums_keep_currencies_apart_and_in_code_order() {
        let mut s = Sums::default();
        let usd = Currency::of("USD").unwrap_or(Currency(*b"XXX"));
        s.add(usd, units("3.5")).unwrap_or_default();
        s.add(cad("1").currency, units("2")).unwrap_or_default();
        s.add(usd, units("1.5")).unwrap_or_default();
        assert_eq!(money(&s), [("CAD".to_owned(), "2".to_owned()), ("USD".to_owned(), "5".to_owned())]);
        assert!(Currency::of("cad").is_none() && Currency::of("CADX").is_none());
        let mut huge = Sums::default();
        huge.add(usd, Units(i128::MAX)).unwrap_or_default();
        assert_eq!(huge.add(usd, units("1")).err().map(|e| e.code()), Some(tonic::Code::OutOfRange));
        assert_eq!(Units::of(dec("0.00001")), None, "more places than an amount keeps");
        assert_eq!(units("1250000.5").to_decimal(), dec("1250000.5"));
    }

    #[test]
    fn exposure_counts_whole_flows_and_bounds_the_rest() -> Result<()> {
        let mut s = spec(MeasureKind::AntiDumping, &["120510", "72"], "10");
        s.excluded_hs_codes = vec![hs("720810")];
        let m = measure(s);
        let mut e = Exposure::default();
        let can = eco("CAN");
        for (code, value) in [("12051090", "100"), ("1205", "40"), ("7208", "7"), ("720810", "1000"), ("0203", "5")] {
            e.count(m.spec.coverage(code), Uuid::now_v7(), code, &can, cad(value))?;
        }
        assert_eq!(money(&e.covered), [("CAD".to_owned(), "100".to_owned())]);
        assert_eq!(money(&e.upper_bound), [("CAD".to_owned(), "147".to_owned())]);
        assert!(e.approximate);
        assert_eq!(e.flows.len(), 3, "the excluded and the unrelated flows are not counted");
        e.rank_flows();
        assert_eq!(e.flows.iter().map(|f| f.hs_code.as_str()).collect::<Vec<_>>(), ["12051090", "1205", "7208"]);
        assert_eq!(e.estimated_duty(&m, date("2025-12-31"))?, [Money::new("CAD", dec("10.00"))]);
        Ok(())
    }

    #[test]
    fn a_measure_that_does_not_apply_estimates_no_duty() -> Result<()> {
        let mut m = measure(spec(MeasureKind::Retaliatory, &["230641"], "100"));
        m.push_change(change(&m, MeasureStatus::Suspended, "2026-03-01"));
        let mut e = Exposure::default();
        e.count(m.spec.coverage("230641"), Uuid::now_v7(), "230641", &eco("CAN"), cad("920.9"))?;
        assert_eq!(e.estimated_duty(&m, date("2026-02-28"))?, [Money::new("CAD", dec("920.90"))]);
        assert_eq!(e.estimated_duty(&m, date("2026-03-01"))?, [Money::new("CAD", dec("0"))]);
        assert!(e.explanations.iter().any(|x| x.contains("SUSPENDED on 2026-03-01")), "{:?}", e.explanations);
        Ok(())
    }

    #[test]
    fn coverage_counts_each_flow_once_however_many_measures_hit_it() -> Result<()> {
        let (a, b) = (0, 1);
        let mut t = CoverageTally::default();
        t.count(cad("100"), &[(a, MeasureKind::Mfn, true), (b, MeasureKind::Surtax, true)])?;
        t.count(cad("10"), &[(b, MeasureKind::Surtax, false)])?;
        t.count(cad("1"), &[])?;
        assert_eq!((t.flows, t.covered_flows), (3, 2));
        assert_eq!(money(&t.total), [("CAD".to_owned(), "111".to_owned())]);
        assert_eq!(money(&t.covered), [("CAD".to_owned(), "100".to_owned())]);
        assert_eq!(money(&t.upper_bound), [("CAD".to_owned(), "110".to_owned())]);
        assert!(t.approximate);
        let kinds: Vec<_> = t.kinds().iter().map(|(k, t)| (*k, money(&t.covered), t.flows)).collect();
        assert_eq!(t.measure_count(), 2);
        assert_eq!(
            kinds,
            [
                (MeasureKind::Mfn, vec![("CAD".to_owned(), "100".to_owned())], 1),
                (MeasureKind::Surtax, vec![("CAD".to_owned(), "100".to_owned())], 2)
            ]
        );
        let ranked = t.ranked(|_| "", 10);
        assert_eq!(ranked.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [b, a], "b covers as much and more in part");
        assert_eq!(t.ranked(|_| "", 1).iter().map(|(id, _)| *id).collect::<Vec<_>>(), [b], "the first only");

        // Ties are ranked by reference, also at the cut.
        let mut tied = CoverageTally::default();
        for i in 0..4 {
            tied.count(cad("5"), &[(i, MeasureKind::Surtax, true)])?;
        }
        let references = ["D", "B", "A", "C"];
        let top: Vec<&str> = tied.ranked(|i| references[i], 2).iter().map(|(i, _)| references[*i]).collect();
        assert_eq!(top, ["A", "B"]);
        Ok(())
    }

    #[test]
    fn assumptions_lay_over_the_record_without_touching_it() -> Result<()> {
        let m = measure(spec(MeasureKind::Retaliatory, &["230641"], "100"));
        let day = date("2026-03-15");
        let suspend = Assumption { measure_id: m.id, status: MeasureStatus::Suspended, effective_on: None };
        let h = Hypothesis::new(vec![suspend], &[&m], day)?;
        assert!(h.is_hypothetical());
        assert_eq!(h.read(&m).status_on(day), MeasureStatus::Suspended);
        assert_eq!(m.status_on(day), MeasureStatus::InForce, "the record is as it was");
        let lines = h.explain(day, |_| true);
        assert!(lines[0].contains("SUSPENDED instead of IN_FORCE on 2026-03-15"), "{lines:?}");

        // Refused as SetMeasureStatus would refuse it.
        let early =
            Assumption { measure_id: m.id, status: MeasureStatus::InForce, effective_on: Some(date("2023-06-01")) };
        let err = Hypothesis::new(vec![early], &[&m], day).err();
        assert_eq!(err.as_ref().map(Error::reason), Some("MEASURE_NOT_SUSPENDED"), "reinstating an announced measure");
        let mut revoked = m.clone();
        revoked.push_change(change(&m, MeasureStatus::Revoked, "2026-01-01"));
        let suspend = Assumption { measure_id: m.id, status: MeasureStatus::Suspended, effective_on: None };
        let err = Hypothesis::new(vec![suspend], &[&revoked], day).err();
        assert_eq!(
            err.as_ref().map(|e| (e.reason(), e.metadata().get("field").cloned())),
            Some(("MEASURE_STATUS_FINAL", Some("assume[0]".into())))
        );
        let mut suspended = m.clone();
        suspended.push_change(change(&m, MeasureStatus::Suspended, "2026-01-01"));
        let same = Assumption { measure_id: m.id, status: MeasureStatus::Suspended, effective_on: None };
        let h = Hypothesis::new(vec![same], &[&suspended], day)?;
        assert!(h.is_hypothetical() && !h.changes(m.id));
        assert!(h.explain(day, |_| true)[0].contains("changes nothing"));
        Ok(())
    }

    #[test]
    fn shares_are_percentages_to_four_places() {
        assert_eq!(format_decimal(percent(units("1"), units("3"))), "33.3333");
        assert_eq!(format_decimal(percent(units("5"), units("5"))), "100");
        assert_eq!(format_decimal(percent(units("5"), Units::default())), "0");
        assert_eq!(last_day(2024), date("2024-12-31"));
    }
}
