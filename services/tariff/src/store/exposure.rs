//! What measures are worth in trade, from the two indexes in memory: the
//! schedule's measures laid over the trade index's flows. This module only
//! finds which flows a measure may reach, by ranges of sorted codes; whether
//! and how it reaches each is [`crate::domain::MeasureSpec::coverage`]'s
//! call, and the sums are the domain's tallies.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use chrono::NaiveDate;
use tradewatch_common::{Error, Result, types::Economy};

use super::{
    schedule::CoverageTable,
    trade_index::{Code, Entry, Flows, Group, under},
};
use crate::domain::{
    Coverage, CoverageTally, Exposure, Hypothesis, Measure, MeasureKind, MeasureTally, counts, kind_index,
};

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
        let group = &group.flows;
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
    /// None: every origin.
    pub exporter: Option<&'a Economy>,
    pub year: i32,
    pub day: NaiveDate,
    pub kinds: &'a [MeasureKind],
    pub hypothesis: &'a Hypothesis,
    /// The most measures to rank and list.
    pub max_measures: usize,
    /// Whether to list the slots of every measure that counts and reaches a
    /// flow (for explanations).
    pub list_reaching: bool,
}

/// Which of the importer's measures reach each flow of one group, and how:
/// what the walk beside the coverage table finds, kept while neither the
/// group's flows nor the importer's measures change, so that a coverage
/// only asks which of them count that day. In the flows' order: the hits
/// of flow `i` are `hits[offsets[i]..offsets[i + 1]]`, each a measure's
/// slot in the table and whether it covers the flow whole.
pub struct GroupMatches {
    table: u64,
    group: u64,
    offsets: Vec<u32>,
    /// (slot, the measure's kind as [`kind_index`], whole).
    hits: Vec<(u32, u8, bool)>,
    /// What each measure that reaches a flow covers of the group (a
    /// measure's tally does not depend on which others count), ranked as a
    /// coverage ranks measures: a coverage of this one group takes the first
    /// of them that count.
    by_slot: Vec<(u32, MeasureTally)>,
}

/// The matches of the groups asked about lately, by importer, year and
/// exporter; at most [`MATCHES_KEPT`] groups (then it starts again empty).
#[derive(Default)]
pub struct MatchCache(Mutex<HashMap<(Economy, i32, Economy), Arc<GroupMatches>>>);

/// Groups whose matches are kept: about 8 bytes per flow and measure reaching it.
const MATCHES_KEPT: usize = 256;

impl MatchCache {
    /// The matches of `group`, built now unless kept from an earlier call
    /// at the same versions of the group and the table.
    fn get(&self, key: (&Economy, i32, &Economy), group: &Group, table: &CoverageTable) -> Result<Arc<GroupMatches>> {
        let poisoned = || Error::internal(anyhow::anyhow!("the trade matches' lock is poisoned"));
        let mut kept = self.0.lock().map_err(|_| poisoned())?;
        let key = (*key.0, key.1, *key.2);
        if let Some(m) = kept.get(&key)
            && m.table == table.generation()
            && m.group == group.version
        {
            return Ok(m.clone());
        }
        let built = Arc::new(matches(table, &group.flows, group.version)?);
        if kept.len() >= MATCHES_KEPT {
            kept.clear();
        }
        kept.insert(key, built.clone());
        Ok(built)
    }
}

/// On the walk: a measure's prefix, or a flow.
enum Met {
    Prefix { code: Code, slot: usize },
    Flow(usize),
}

/// Walks `flows` (sorted by code) once beside the table's prefixes in code
/// order, so that every prefix that is a prefix of a flow's code, and every
/// one a flow's code is a prefix of, is met on the way: linear in the flows
/// and the prefixes, plus the measures that reach each flow.
fn matches(table: &CoverageTable, flows: &[Entry], version: u64) -> Result<GroupMatches> {
    // Per flow, the measures that may reach it: met before it (its
    // prefixes), or after it (prefixes it is coarser than, kept apart and
    // sorted in at the end).
    let mut direct: Vec<(usize, usize)> = Vec::new();
    let mut coarser: Vec<(usize, usize)> = Vec::new();
    let mut stack: Vec<Met> = Vec::new();
    let code_of = |m: &Met| match m {
        Met::Prefix { code, .. } => *code,
        Met::Flow(at) => flows[*at].code,
    };
    let prefixes = &table.prefixes;
    let (mut p, mut at) = (0, 0);
    loop {
        if !stack.iter().any(|m| matches!(m, Met::Flow(_))) {
            let Some(e) = flows.get(at) else { break };
            // With no flow met that a later prefix could lie inside, the
            // prefixes before the next flow's chapter matter to no flow:
            // skip them (a sparse group costs its flows, not the schedule).
            let chapter = e.code.chapter();
            if prefixes.get(p).is_some_and(|(c, _)| *c < chapter) {
                p += prefixes[p..].partition_point(|(c, _)| *c < chapter);
                stack.clear();
            }
        }
        // The next in code order; a prefix before a flow of the same code.
        let prefix_first = match (prefixes.get(p), flows.get(at)) {
            (None, None) => break,
            (Some((c, _)), Some(e)) => *c <= e.code,
            (Some(_), None) => true,
            (None, Some(_)) => false,
        };
        let code = if prefix_first { prefixes[p].0 } else { flows[at].code };
        while stack.last().is_some_and(|top| !code_of(top).is_prefix_of(&code)) {
            stack.pop();
        }
        if prefix_first {
            let slot = prefixes[p].1 as usize;
            p += 1;
            for m in &stack {
                if let Met::Flow(flow) = m {
                    coarser.push((*flow, slot));
                }
            }
            stack.push(Met::Prefix { code, slot });
        } else {
            for m in &stack {
                if let Met::Prefix { slot, .. } = m {
                    direct.push((at, *slot));
                }
            }
            stack.push(Met::Flow(at));
            at += 1;
        }
    }
    coarser.sort_unstable();
    let mut offsets = Vec::with_capacity(flows.len() + 1);
    let mut hits: Vec<(u32, u8, bool)> = Vec::with_capacity(direct.len() + coarser.len());
    let (mut d, mut c) = (direct.iter().peekable(), coarser.iter().peekable());
    for (i, e) in flows.iter().enumerate() {
        let from = hits.len();
        offsets.push(u32::try_from(from).unwrap_or(u32::MAX));
        while let Some(&&(f, slot)) = d.peek()
            && f == i
        {
            d.next();
            reach(table, slot, &e.code, true, &mut hits, from);
        }
        while let Some(&&(f, slot)) = c.peek()
            && f == i
        {
            c.next();
            reach(table, slot, &e.code, false, &mut hits, from);
        }
    }
    offsets.push(u32::try_from(hits.len()).unwrap_or(u32::MAX));
    let mut by_slot: HashMap<u32, MeasureTally> = HashMap::new();
    for (i, e) in flows.iter().enumerate() {
        for &(slot, _, whole) in &hits[offsets[i] as usize..offsets[i + 1] as usize] {
            by_slot.entry(slot).or_default().count(e.value, whole)?;
        }
    }
    let mut by_slot: Vec<(u32, MeasureTally)> = by_slot.into_iter().collect();
    by_slot.sort_unstable_by(|a, b| {
        rank(&a.1, &b.1).then_with(|| reference(table, a.0).cmp(reference(table, b.0))).then(a.0.cmp(&b.0))
    });
    Ok(GroupMatches { table: table.generation(), group: version, offsets, hits, by_slot })
}

/// Records that the measure in `slot` reaches the flow of `code`, met under
/// a prefix of the code (`under`) or under one the code is coarser than. For
/// a measure without exclusions that decides it: whole, or in part (as its
/// [`crate::domain::MeasureSpec::coverage`] would say); one with exclusions
/// asks its own coverage. A measure met under several prefixes counts once
/// (among the flow's hits from `from` on), whole if any says so.
fn reach(table: &CoverageTable, slot: usize, code: &Code, under: bool, hits: &mut Vec<(u32, u8, bool)>, from: usize) {
    let t = &table.measures[slot];
    let whole = if t.exclusions {
        match t.measure.coverage(code.as_str()) {
            Coverage::Whole(_) => true,
            Coverage::Partial { .. } => false,
            Coverage::None => return,
        }
    } else {
        under
    };
    let kind = u8::try_from(kind_index(t.kind)).unwrap_or(0);
    let slot = u32::try_from(slot).unwrap_or(u32::MAX);
    match hits[from..].iter_mut().find(|(s, _, _)| *s == slot) {
        Some(hit) => hit.2 |= whole,
        None => hits.push((slot, kind, whole)),
    }
}

fn reference(table: &CoverageTable, slot: u32) -> &str {
    table.measures[slot as usize].measure.reference()
}

/// The order of [`CoverageTally::ranked`]: larger covered value first, then
/// larger upper bound.
fn rank(a: &MeasureTally, b: &MeasureTally) -> std::cmp::Ordering {
    crate::domain::rank_sums(&a.covered, &b.covered)
        .then_with(|| crate::domain::rank_sums(&a.upper_bound, &b.upper_bound))
}

/// What a trade coverage counted.
pub struct TradeCoverage {
    /// The flows: totals, covered, by kind.
    pub tally: CoverageTally,
    /// The measures that count and reach a flow, ranked, the first
    /// `max_measures` of them, by slot.
    pub measures: Vec<(usize, MeasureTally)>,
    /// How many count and reach a flow, listed or not.
    pub measure_count: usize,
    /// Their slots, all of them, when the query asks for them.
    pub reaching: Vec<usize>,
}

/// An importer's trade coverage (`table` is its coverage table): for each
/// group of flows (one origin), the matches of its flows, of which the
/// measures that count that day (as the query reads them) are counted.
/// Linear in the group's flows and the measures reaching them, plus the
/// importer's measures once per origin; the measures of one origin come
/// ranked already.
pub fn trade_coverage(
    table: &CoverageTable,
    flows: &Flows,
    cache: &MatchCache,
    importer: &Economy,
    q: &CoverageQuery<'_>,
) -> Result<TradeCoverage> {
    let mut out =
        TradeCoverage { tally: CoverageTally::default(), measures: vec![], measure_count: 0, reaching: vec![] };
    let Some(groups) = flows.year(importer, q.year) else { return Ok(out) };
    let groups: Vec<(&Economy, &Group)> = groups.iter().filter(|(e, _)| q.exporter.is_none_or(|x| x == *e)).collect();
    let mut merged: Vec<Option<MeasureTally>> = Vec::new();
    for (exporter, group) in &groups {
        let matches = cache.get((importer, q.year, exporter), group, table)?;
        // Which measures count for this origin that day, once each.
        let counting: Vec<bool> = table
            .measures
            .iter()
            .map(|t| match q.hypothesis.changed(t.measure.id) {
                Some(assumed) => counts(assumed, exporter, q.day, q.kinds),
                None => t.counts(exporter, q.day, q.kinds),
            })
            .collect();
        for (i, e) in group.flows.iter().enumerate() {
            let (from, to) = (matches.offsets[i] as usize, matches.offsets[i + 1] as usize);
            let (mut reach, mut cover) = (0u16, 0u16);
            for &(slot, kind, whole) in &matches.hits[from..to] {
                if counting[slot as usize] {
                    reach |= 1 << kind;
                    if whole {
                        cover |= 1 << kind;
                    }
                }
            }
            out.tally.count_flow(e.value, reach, cover)?;
        }
        let counted = matches.by_slot.iter().filter(|(slot, _)| counting[*slot as usize]);
        if groups.len() == 1 {
            out.measure_count = counted.clone().count();
            out.measures = counted.clone().take(q.max_measures).map(|(slot, t)| (*slot as usize, t.clone())).collect();
            if q.list_reaching {
                out.reaching = counted.map(|(slot, _)| *slot as usize).collect();
            }
            return Ok(out);
        }
        // Several origins: a measure's tallies over each add up.
        merged.resize(table.measures.len(), None);
        for (slot, t) in counted {
            match &mut merged[*slot as usize] {
                Some(sum) => sum.add(t)?,
                empty => *empty = Some(t.clone()),
            }
        }
    }
    let mut all: Vec<(usize, MeasureTally)> =
        merged.into_iter().enumerate().filter_map(|(slot, t)| t.map(|t| (slot, t))).collect();
    out.measure_count = all.len();
    if q.list_reaching {
        out.reaching = all.iter().map(|(slot, _)| *slot).collect();
    }
    let order = |a: &(usize, MeasureTally), b: &(usize, MeasureTally)| {
        rank(&a.1, &b.1)
            .then_with(|| reference(table, a.0 as u32).cmp(reference(table, b.0 as u32)))
            .then(a.0.cmp(&b.0))
    };
    if q.max_measures < all.len() {
        all.select_nth_unstable_by(q.max_measures, order);
        all.truncate(q.max_measures);
    }
    all.sort_by(order);
    out.measures = all;
    Ok(out)
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
        domain::{MeasureSpec, MeasureStatus, MeasureTally, StatusChange},
        store::{flows::FlowRow, schedule::Index},
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

    fn value(v: &crate::domain::FlowValue) -> (String, crate::domain::Units) {
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
            limit in 0usize..10,
        ) {
            let measures: Vec<Measure> = measures.iter().enumerate().map(|(n, m)| build(m, n)).collect();
            let mut schedule = Index::default();
            for m in &measures {
                schedule.insert(m);
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
            let table = CoverageTable::build(&schedule, &eco("CHN"));
            let query = CoverageQuery { exporter: exporter.as_ref(), year: 2024, day: on, kinds: &kinds, hypothesis: &hypothesis, max_measures: limit, list_reaching: false };
            let answer = trade_coverage(&table, &index, &MatchCache::default(), &eco("CHN"), &query).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let walked = &answer.tally;

            let mut asked = CoverageTally::default();
            // In the index's order: by exporter, then code.
            let mut ordered: Vec<&FlowRow> = rows.iter().filter(|r| exporter.as_ref().is_none_or(|e| e.as_str() == r.exporting)).collect();
            ordered.sort_by(|a, b| (&a.exporting, &a.hs_code).cmp(&(&b.exporting, &b.hs_code)));
            for r in ordered {
                let origin = eco(&r.exporting);
                let hits: Vec<_> = measures
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| counts(m, &origin, on, &kinds))
                    .filter_map(|(i, m)| match m.spec.coverage(&r.hs_code) {
                        Coverage::Whole(_) => Some((i, m.spec.kind, true)),
                        Coverage::Partial { .. } => Some((i, m.spec.kind, false)),
                        Coverage::None => None,
                    })
                    .collect();
                let v = crate::domain::FlowValue {
                    currency: crate::domain::Currency::of(&r.currency).unwrap_or_else(|| unreachable!()),
                    amount: crate::domain::Units::of(r.amount.parse().unwrap_or_default()).unwrap_or_default(),
                };
                asked.count(v, &hits).map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
            prop_assert_eq!(&walked.total, &asked.total);
            prop_assert_eq!(&walked.covered, &asked.covered);
            prop_assert_eq!(&walked.upper_bound, &asked.upper_bound);
            prop_assert_eq!(walked.approximate, asked.approximate);
            prop_assert_eq!((walked.flows, walked.covered_flows), (asked.flows, asked.covered_flows));
            prop_assert_eq!(walked.kinds(), asked.kinds());
            // The same measures, ranked the same way, cut at the same place.
            let walked_ranked: Vec<(Uuid, MeasureTally)> =
                answer.measures.iter().map(|(slot, t)| (table.measures[*slot].measure.id, t.clone())).collect();
            let asked_ranked: Vec<(Uuid, MeasureTally)> = asked
                .ranked(|i| measures[i].spec.reference.as_str(), limit)
                .into_iter()
                .map(|(i, t)| (measures[i].id, t.clone()))
                .collect();
            prop_assert_eq!(walked_ranked, asked_ranked);
            prop_assert_eq!(answer.measure_count, asked.measure_count());

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
                        amount: crate::domain::Units::of(r.amount.parse().unwrap_or_default()).unwrap_or_default(),
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
