//! What measures are worth in trade, from the two indexes in memory: the
//! schedule's measures laid over the trade index's flows. This module only
//! finds which flows a measure may reach, by ranges of sorted codes; whether
//! and how it reaches each is [`crate::domain::MeasureSpec::coverage`]'s
//! call, and the sums are the domain's tallies.

use chrono::NaiveDate;
use tradewatch_common::{Result, types::Economy};

use super::{
    schedule::Index,
    trade_index::{Code, Entry, Flows, under},
};
use crate::domain::{Coverage, CoverageTally, Exposure, Hypothesis, Measure, MeasureKind, counts};

/// The trade `m` (as the answer reads it) reaches in `year`: the flows into
/// its imposing economy from the origins it covers, under its prefixes or
/// coarser than them. Work: a binary search per prefix and group, plus the
/// flows reached.
pub fn measure_exposure(flows: &Flows, m: &Measure, year: i32) -> Result<Exposure> {
    let mut exposure = Exposure::default();
    let Some(groups) = flows.year(&m.spec.imposing_economy, year) else { return Ok(exposure) };
    // Nested prefixes ("72" and "7208") would find the same flows twice:
    // only the outermost are walked.
    let mut prefixes: Vec<Code> = m.spec.hs_codes.iter().filter_map(|c| Code::of(c.as_str())).collect();
    prefixes.sort_unstable();
    let mut outer: Vec<Code> = Vec::with_capacity(prefixes.len());
    for p in prefixes {
        if !outer.last().is_some_and(|o| o.is_prefix_of(&p)) {
            outer.push(p);
        }
    }
    for (exporter, group) in groups {
        if !m.spec.covers_origin(exporter) {
            continue;
        }
        let mut reached: Vec<usize> = Vec::new();
        for p in &outer {
            reached.extend(under(group, p));
            // Flows published coarser than the prefix: its own prefixes.
            let digits = p.as_str();
            for len in (2..digits.len()).step_by(2) {
                if let Some(shorter) = Code::of(&digits[..len])
                    && let Ok(at) = group.binary_search_by_key(&shorter, |e| e.code)
                {
                    reached.push(at);
                }
            }
        }
        reached.sort_unstable();
        reached.dedup();
        for at in reached {
            let e = &group[at];
            let code = e.code.as_str();
            exposure.count(m.spec.coverage(code), e.id, code, exporter, e.value)?;
        }
    }
    Ok(exposure)
}

/// What one coverage counts: the importer's measures of `kinds` that apply
/// on `day` (as `hypothesis` reads them).
pub struct CoverageQuery<'a> {
    pub importer: &'a Economy,
    /// None: every origin.
    pub exporter: Option<&'a Economy>,
    pub year: i32,
    pub day: NaiveDate,
    pub kinds: &'a [MeasureKind],
    pub hypothesis: &'a Hypothesis,
}

/// An importer's trade coverage: each group of flows (one origin) walked
/// once beside the importer's prefixes in code order, so that every prefix
/// that is a prefix of a flow's code, and every one a flow's code is a prefix
/// of, is met on the way. Linear in the group's flows and the importer's
/// prefixes, plus the measures that reach each flow.
pub fn trade_coverage(schedule: &Index, flows: &Flows, q: &CoverageQuery<'_>) -> Result<CoverageTally> {
    let mut tally = CoverageTally::default();
    let Some(groups) = flows.year(q.importer, q.year) else { return Ok(tally) };
    let empty = std::collections::BTreeMap::new();
    let prefixes = schedule.prefixes(q.importer).unwrap_or(&empty);
    for (exporter, group) in groups {
        if q.exporter.is_some_and(|e| e != exporter) {
            continue;
        }
        count_group(schedule, prefixes, exporter, group, q, &mut tally)?;
    }
    Ok(tally)
}

/// On the walk: a prefix met, with the measures naming it that count
/// (`measures[from..to]`), or a flow met.
enum Met {
    Prefix { code: Code, from: usize, to: usize },
    Flow(usize),
}

impl Met {
    fn code(&self, group: &[Entry]) -> Code {
        match self {
            Met::Prefix { code, .. } => *code,
            Met::Flow(at) => group[*at].code,
        }
    }
}

fn count_group(
    schedule: &Index,
    prefixes: &std::collections::BTreeMap<String, Vec<uuid::Uuid>>,
    exporter: &Economy,
    group: &[Entry],
    q: &CoverageQuery<'_>,
    tally: &mut CoverageTally,
) -> Result<()> {
    // The measures that count, as prefixes are met; and per flow the
    // measures that may reach it: met before it (its prefixes), or after it
    // (prefixes it is coarser than, kept apart and sorted in at the end).
    let mut measures: Vec<&Measure> = Vec::new();
    let mut direct: Vec<(usize, usize)> = Vec::new();
    let mut coarser: Vec<(usize, usize)> = Vec::new();
    let mut stack: Vec<Met> = Vec::new();
    let walk = |from: &str| {
        prefixes
            .range::<str, _>((std::ops::Bound::Included(from), std::ops::Bound::Unbounded))
            .filter_map(|(c, ids)| Code::of(c).map(|code| (code, ids)))
            .peekable()
    };
    let mut codes = walk("");
    let mut at = 0;
    loop {
        // With no flow met that a later prefix could lie inside, the
        // prefixes before the next flow's chapter matter to no flow: skip
        // them (a sparse group costs its flows, not the whole schedule).
        if let Some(e) = group.get(at)
            && !stack.iter().any(|m| matches!(m, Met::Flow(_)))
        {
            let chapter = &e.code.as_str()[..2.min(e.code.as_str().len())];
            if codes.peek().is_some_and(|(c, _)| c.as_str() < chapter) {
                codes = walk(chapter);
                stack.clear();
            }
        } else if at == group.len() && !stack.iter().any(|m| matches!(m, Met::Flow(_))) {
            break;
        }
        // The next in code order; a prefix before a flow of the same code.
        let next_prefix = codes.peek().map(|(c, _)| *c);
        let met = match (next_prefix, group.get(at)) {
            (None, None) => break,
            (Some(p), Some(e)) if e.code < p => None,
            (Some(_), _) => codes.next(),
            (None, Some(_)) => None,
        };
        let (code, is_flow) = match &met {
            Some((code, _)) => (*code, false),
            None => (group[at].code, true),
        };
        while stack.last().is_some_and(|top| !top.code(group).is_prefix_of(&code)) {
            stack.pop();
        }
        if is_flow {
            for m in &stack {
                if let Met::Prefix { from, to, .. } = m {
                    direct.extend((*from..*to).map(|i| (at, i)));
                }
            }
            stack.push(Met::Flow(at));
            at += 1;
        } else if let Some((code, ids)) = met {
            let from = measures.len();
            for id in ids {
                let Some(m) = schedule.measure(id) else { continue };
                let m = q.hypothesis.read(m);
                if counts(m, exporter, q.day, q.kinds) {
                    measures.push(m);
                }
            }
            let to = measures.len();
            if from < to {
                for m in &stack {
                    if let Met::Flow(flow) = m {
                        coarser.extend((from..to).map(|i| (*flow, i)));
                    }
                }
            }
            stack.push(Met::Prefix { code, from, to });
        }
    }
    coarser.sort_unstable();
    let mut hits: Vec<(uuid::Uuid, MeasureKind, bool)> = Vec::new();
    let (mut d, mut c) = (direct.iter().peekable(), coarser.iter().peekable());
    for (i, e) in group.iter().enumerate() {
        hits.clear();
        let code = e.code.as_str();
        let reaching = std::iter::from_fn(|| {
            if let Some(&&(f, m)) = d.peek()
                && f == i
            {
                d.next();
                return Some(m);
            }
            if let Some(&&(f, m)) = c.peek()
                && f == i
            {
                c.next();
                return Some(m);
            }
            None
        });
        for m in reaching {
            let m = measures[m];
            // A measure met under two of its prefixes reaches the flow once.
            if hits.iter().any(|(id, _, _)| *id == m.id) {
                continue;
            }
            match m.spec.coverage(code) {
                Coverage::Whole(_) => hits.push((m.id, m.spec.kind, true)),
                Coverage::Partial { .. } => hits.push((m.id, m.spec.kind, false)),
                Coverage::None => {}
            }
        }
        tally.count(e.value, &hits)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use chrono::{NaiveDate, Utc};
    use proptest::prelude::*;
    use rust_decimal::Decimal;
    use tradewatch_common::types::HsCode;
    use uuid::Uuid;

    use super::*;
    use crate::{
        domain::{MeasureSpec, MeasureStatus, StatusChange},
        store::flows::FlowRow,
    };

    const CODES: &[&str] = &["12", "23", "72"];

    /// Codes that share prefixes often: a chapter, then 0 to 4 pairs of
    /// digits from two.
    fn arb_code() -> impl Strategy<Value = String> {
        (0..CODES.len(), proptest::collection::vec(prop_oneof![Just("00"), Just("10")], 0..=4))
            .prop_map(|(c, rest)| format!("{}{}", CODES[c], rest.concat()))
    }

    fn day(s: &str) -> NaiveDate {
        tradewatch_common::types::parse_date(s).unwrap_or_default()
    }

    fn eco(s: &str) -> Economy {
        Economy::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[derive(Debug, Clone)]
    struct M {
        kind: MeasureKind,
        codes: Vec<String>,
        /// Each an extension of one of codes.
        exclusions: Vec<(usize, String)>,
        targets: Vec<&'static str>,
        suspended: bool,
    }

    fn arb_measure() -> impl Strategy<Value = M> {
        (
            proptest::sample::select(MeasureKind::ALL.to_vec()),
            proptest::collection::btree_set(arb_code(), 1..=3),
            proptest::collection::vec((0usize..3, prop_oneof![Just("00"), Just("10"), Just("1000")]), 0..=2),
            proptest::sample::subsequence(vec!["CAN", "USA"], 0..=2),
            any::<bool>(),
        )
            .prop_map(|(kind, codes, exclusions, targets, suspended)| {
                let codes: Vec<String> = codes.into_iter().collect();
                let exclusions = exclusions
                    .into_iter()
                    .filter_map(|(i, more)| {
                        let base = &codes[i % codes.len()];
                        let x = format!("{base}{more}");
                        (x.len() <= 10).then_some((i % codes.len(), x))
                    })
                    .collect();
                M { kind, codes, exclusions, targets, suspended }
            })
    }

    fn build(m: &M, n: usize) -> Measure {
        let mut excluded: Vec<HsCode> = Vec::new();
        for (_, x) in &m.exclusions {
            let x = HsCode::parse(x).unwrap_or_else(|e| panic!("{e}"));
            if !excluded.contains(&x) {
                excluded.push(x);
            }
        }
        let spec = MeasureSpec {
            reference: format!("M{n}"),
            title: "t".into(),
            imposing_economy: eco("CHN"),
            target_economies: m.targets.iter().map(|t| eco(t)).collect(),
            kind: m.kind,
            hs_codes: m.codes.iter().map(|c| HsCode::parse(c).unwrap_or_else(|e| panic!("{e}"))).collect(),
            excluded_hs_codes: excluded,
            ad_valorem_percent: Decimal::TEN,
            specific_duty: None,
            announced_on: None,
            effective_from: day("2024-01-01"),
            effective_to: None,
            quota: None,
            source_url: String::new(),
            note: String::new(),
        };
        let mut measure = Measure::new(spec, day("2024-06-01"), Utc::now(), "test");
        if m.suspended {
            measure.push_change(StatusChange {
                id: Uuid::now_v7(),
                measure_id: measure.id,
                status: MeasureStatus::Suspended,
                effective_on: day("2024-03-01"),
                note: String::new(),
                change_time: Utc::now(),
                actor: String::new(),
            });
        }
        measure
    }

    fn value(v: &crate::domain::FlowValue) -> (String, Decimal) {
        (v.currency.as_str().to_owned(), v.amount)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        /// The walk beside the schedule finds what asking every measure of
        /// every flow finds, and exposure what asking every flow finds.
        #[test]
        fn the_indexes_answer_as_every_measure_asked_of_every_flow(
            measures in proptest::collection::vec(arb_measure(), 0..8),
            flows in proptest::collection::btree_set((arb_code(), proptest::sample::select(vec!["CAN", "USA"]), 1u32..1000), 0..25),
            kinds in proptest::sample::subsequence(MeasureKind::ALL.to_vec(), 0..=3),
            exporter in proptest::option::of(proptest::sample::select(vec!["CAN", "USA"])),
        ) {
            let measures: Vec<Measure> = measures.iter().enumerate().map(|(n, m)| build(m, n)).collect();
            let mut schedule = Index::default();
            for m in &measures {
                schedule.insert(m.clone());
            }
            // One flow per code and exporter: the natural key.
            let mut keys = BTreeSet::new();
            let rows: Vec<FlowRow> = flows
                .iter()
                .filter(|(code, e, _)| keys.insert((code.clone(), *e)))
                .map(|(code, e, amount)| FlowRow {
                    id: Uuid::now_v7(),
                    importing: "CHN".into(),
                    exporting: (*e).into(),
                    year: 2024,
                    hs_code: code.clone(),
                    currency: if amount % 3 == 0 { "USD".into() } else { "CAD".into() },
                    amount: amount.to_string(),
                })
                .collect();
            let mut index = Flows::default();
            index.apply(rows.clone()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let hypothesis = Hypothesis::default();
            let exporter = exporter.map(eco);
            let on = day("2024-06-01");
            let query = CoverageQuery { importer: &eco("CHN"), exporter: exporter.as_ref(), year: 2024, day: on, kinds: &kinds, hypothesis: &hypothesis };
            let walked = trade_coverage(&schedule, &index, &query).map_err(|e| TestCaseError::fail(e.to_string()))?;

            let mut asked = CoverageTally::default();
            // In the index's order: by exporter, then code.
            let mut ordered: Vec<&FlowRow> = rows.iter().filter(|r| exporter.as_ref().is_none_or(|e| e.as_str() == r.exporting)).collect();
            ordered.sort_by(|a, b| (&a.exporting, &a.hs_code).cmp(&(&b.exporting, &b.hs_code)));
            for r in ordered {
                let origin = eco(&r.exporting);
                let hits: Vec<_> = measures
                    .iter()
                    .filter(|m| counts(m, &origin, on, &kinds))
                    .filter_map(|m| match m.spec.coverage(&r.hs_code) {
                        Coverage::Whole(_) => Some((m.id, m.spec.kind, true)),
                        Coverage::Partial { .. } => Some((m.id, m.spec.kind, false)),
                        Coverage::None => None,
                    })
                    .collect();
                let v = crate::domain::FlowValue {
                    currency: crate::domain::Currency::of(&r.currency).unwrap_or_else(|| unreachable!()),
                    amount: r.amount.parse().unwrap_or_default(),
                };
                asked.count(v, &hits).map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
            prop_assert_eq!(&walked.total, &asked.total);
            prop_assert_eq!(&walked.covered, &asked.covered);
            prop_assert_eq!(&walked.upper_bound, &asked.upper_bound);
            prop_assert_eq!(walked.approximate, asked.approximate);
            prop_assert_eq!((walked.flows, walked.covered_flows), (asked.flows, asked.covered_flows));
            prop_assert_eq!(walked.kinds(), asked.kinds());
            prop_assert_eq!(&walked.by_measure, &asked.by_measure);

            for m in &measures {
                let exposed = measure_exposure(&index, m, 2024).map_err(|e| TestCaseError::fail(e.to_string()))?;
                let mut expected = crate::domain::Exposure::default();
                for r in &rows {
                    let origin = eco(&r.exporting);
                    if !m.spec.covers_origin(&origin) {
                        continue;
                    }
                    let v = crate::domain::FlowValue {
                        currency: crate::domain::Currency::of(&r.currency).unwrap_or_else(|| unreachable!()),
                        amount: r.amount.parse().unwrap_or_default(),
                    };
                    expected.count(m.spec.coverage(&r.hs_code), r.id, &r.hs_code, &origin, v).map_err(|e| TestCaseError::fail(e.to_string()))?;
                }
                prop_assert_eq!(&exposed.covered, &expected.covered);
                prop_assert_eq!(&exposed.upper_bound, &expected.upper_bound);
                prop_assert_eq!(exposed.approximate, expected.approximate);
                let ids = |e: &crate::domain::Exposure| {
                    e.flows.iter().map(|f| (f.id, f.whole, value(&f.value))).collect::<BTreeSet<_>>()
                };
                prop_assert_eq!(ids(&exposed).len(), exposed.flows.len(), "each flow once");
                prop_assert_eq!(ids(&exposed), ids(&expected));
            }
        }
    }
}
