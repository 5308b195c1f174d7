//! The schedule in memory: every measure, indexed by importer and HS
//! prefix, so that ResolveDuty and trade coverage answer without queries of
//! their own. Before each answer the index is brought up to the feed's head as read
//! by a query that began after the call did ([`Head`], shared by the calls in
//! flight): it never answers from a schedule older than the last write
//! committed before the call began, whichever replica made it. Catching up
//! reloads the measures the changes since name; a gap past the feed's
//! retention, or a long one, reloads everything. The index is built before
//! the service is SERVING, read a page at a time, and holds each measure as
//! a [`Levy`]: what resolution and coverage read of it, a few hundred bytes
//! (BENCHMARKS.md). GetMeasure reads whole measures elsewhere.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex, RwLock, RwLockReadGuard,
        atomic::{AtomicU64, Ordering},
    },
};

use chrono::NaiveDate;
use sea_orm::DatabaseConnection;
use tradewatch_common::{
    Error, Result, db,
    feed::{self, Head},
    proto::tariff as pb,
    types::{Economy, HsCode},
};
use uuid::Uuid;

use super::{
    measures::{MAX_CANDIDATES, get_measures, schedule_page, too_many_measures},
    trade_index::Code,
};
use crate::domain::{Levy, Measure, MeasureKind};

/// Past this many changes of measures to catch up on, everything is
/// reloaded.
const RELOAD_AFTER: u64 = 5_000;

/// Measures read at once when the schedule loads.
const RELOAD_PAGE: u64 = 2_500;

pub struct Schedule {
    db: DatabaseConnection,
    head: Head,
    index: RwLock<Index>,
    /// The coverage tables built, by importer, each at its generation.
    tables: Mutex<HashMap<String, Arc<CoverageTable>>>,
    /// One catch-up at a time; the others wait for it.
    catch_up: tokio::sync::Mutex<()>,
}

#[derive(Default)]
pub struct Index {
    /// The feed position the index reflects; None before the first load.
    seq: Option<i64>,
    levies: FastMap<Uuid, Arc<Levy>>,
    /// Importer → HS prefix a measure names → the measures naming it.
    by_code: FastMap<Economy, FastMap<HsCode, Vec<Arc<Levy>>>>,
    /// The sets of origins the measures name, each held once: a schedule's
    /// treatments name the same groups over and over. Kept until the next
    /// reload when no measure names one any more.
    origins: HashSet<Arc<[Economy]>>,
    /// Importer → a number that changes whenever one of its measures does:
    /// what a coverage table was built at.
    generations: HashMap<Economy, u64>,
}

/// The index's maps hash with foldhash, seeded per process: every
/// ResolveDuty looks up each prefix of its code, and SipHash's rounds were
/// most of those lookups' cost. Only writers of measures add keys.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Generations are drawn from one counter, so that no two states of any
/// importer's measures share one, across reloads too.
static GENERATIONS: AtomicU64 = AtomicU64::new(1);

impl Index {
    /// Adds `m`, or puts it in place of the measure of its id.
    pub fn insert(&mut self, m: &Measure) {
        self.remove(m.id);
        let targets = match self.origins.get(m.spec.target_economies.as_slice()) {
            Some(shared) => shared.clone(),
            None => {
                let targets: Arc<[Economy]> = m.spec.target_economies.as_slice().into();
                self.origins.insert(targets.clone());
                targets
            }
        };
        let levy = Arc::new(Levy::of(m, targets));
        self.bump(levy.importer);
        let codes = self.by_code.entry(levy.importer).or_default();
        for code in levy.hs_codes() {
            codes.entry(*code).or_default().push(levy.clone());
        }
        self.levies.insert(levy.id, levy);
    }

    /// A new generation for `importer`'s measures.
    fn bump(&mut self, importer: Economy) {
        self.generations.insert(importer, GENERATIONS.fetch_add(1, Ordering::Relaxed));
    }

    fn remove(&mut self, id: Uuid) {
        let Some(old) = self.levies.remove(&id) else { return };
        self.bump(old.importer);
        if let Some(codes) = self.by_code.get_mut(&old.importer) {
            for code in old.hs_codes() {
                if let Some(levies) = codes.get_mut(code) {
                    levies.retain(|l| l.id != id);
                    if levies.is_empty() {
                        codes.remove(code);
                    }
                }
            }
            if codes.is_empty() {
                self.by_code.remove(&old.importer);
            }
        }
    }

    /// Gives back what growing left over, once a load is done.
    pub fn shrink(&mut self) {
        self.levies.shrink_to_fit();
        for codes in self.by_code.values_mut() {
            codes.shrink_to_fit();
            codes.values_mut().for_each(Vec::shrink_to_fit);
        }
    }

    /// One measure as the index holds it, or None.
    pub fn levy(&self, id: &Uuid) -> Option<&Arc<Levy>> {
        self.levies.get(id)
    }

    /// How many measures it holds.
    pub fn len(&self) -> usize {
        self.levies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.levies.is_empty()
    }
}

/// One importer's measures laid out to be walked beside flows sorted by
/// code: every prefix they name with the measure naming it, in code order,
/// and per measure what deciding whether it counts needs, side by side in
/// memory (a coverage asks it of every measure of the importer).
pub struct CoverageTable {
    generation: u64,
    /// (prefix, the measure's slot in `measures`), in code order.
    pub prefixes: Vec<(Code, u32)>,
    pub measures: Vec<TableMeasure>,
}

/// A measure in a coverage table.
pub struct TableMeasure {
    pub measure: Arc<Levy>,
    pub kind: MeasureKind,
    /// The days it applies ([`Levy::in_force_periods`]): the first
    /// period kept inline (most measures have one), the others after it.
    pub period: Option<(NaiveDate, NaiveDate)>,
    pub more_periods: Box<[(NaiveDate, NaiveDate)]>,
    /// Whether it has exclusions: then which flows it covers whole is its
    /// own [`Levy::coverage`]'s to say, flow by flow.
    pub exclusions: bool,
}

impl TableMeasure {
    /// [`crate::domain::counts`], on the table's copy of what it reads.
    pub fn counts(&self, origin: &Economy, day: NaiveDate, kinds: &[MeasureKind]) -> bool {
        (kinds.is_empty() || kinds.contains(&self.kind))
            && self.measure.covers_origin(origin)
            && self.period.iter().chain(self.more_periods.iter()).any(|(from, to)| *from <= day && day <= *to)
    }
}

impl CoverageTable {
    /// What it was built at: changes whenever the importer's measures do.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The table of `importer`'s measures in `index`.
    pub fn build(index: &Index, importer: &Economy) -> Self {
        let generation = index.generations.get(importer).copied().unwrap_or(0);
        let mut slots: HashMap<Uuid, u32> = HashMap::new();
        let mut measures = Vec::new();
        let mut prefixes = Vec::new();
        for (code, levies) in index.by_code.get(importer).into_iter().flatten() {
            let Some(code) = Code::of(code.as_str()) else { continue };
            for levy in levies {
                let slot = *slots.entry(levy.id).or_insert_with(|| {
                    let mut periods = levy.in_force_periods().into_iter();
                    measures.push(TableMeasure {
                        measure: levy.clone(),
                        kind: levy.kind,
                        period: periods.next(),
                        more_periods: periods.collect(),
                        exclusions: !levy.excluded_hs_codes().is_empty(),
                    });
                    u32::try_from(measures.len() - 1).unwrap_or(u32::MAX)
                });
                prefixes.push((code, slot));
            }
        }
        prefixes.sort_unstable();
        Self { generation, prefixes, measures }
    }
}

impl Schedule {
    /// The schedule of `db`, fresh to the feed's `head`.
    pub fn new(db: DatabaseConnection, head: Head) -> Self {
        Self {
            db,
            head,
            index: RwLock::new(Index::default()),
            tables: Mutex::new(HashMap::new()),
            catch_up: tokio::sync::Mutex::new(()),
        }
    }

    /// The index as the last catch-up left it: call [`Self::fresh`] first.
    pub fn read(&self) -> Result<RwLockReadGuard<'_, Index>> {
        self.index.read().map_err(|_| Error::internal(anyhow::anyhow!("the schedule's lock is poisoned")))
    }

    fn write(&self) -> Result<std::sync::RwLockWriteGuard<'_, Index>> {
        self.index.write().map_err(|_| Error::internal(anyhow::anyhow!("the schedule's lock is poisoned")))
    }

    /// Brings the index up to the database as it stood when the call began.
    pub async fn fresh(self: &Arc<Self>) -> Result<()> {
        let head = self.head.read().await?;
        if self.read()?.seq.is_some_and(|seq| seq >= head) {
            return Ok(());
        }
        // In a task of its own: a caller that gives up (its deadline) does
        // not throw away a load the next caller would start again.
        let this = self.clone();
        tokio::spawn(async move { this.catch_up_to(head).await })
            .await
            .map_err(|err| Error::internal(anyhow::anyhow!("the schedule's catch-up failed: {err}")))?
    }

    async fn catch_up_to(&self, head: i64) -> Result<()> {
        let _turn = self.catch_up.lock().await;
        let Some(from) = self.read()?.seq else {
            return self.reload(head).await;
        };
        if from >= head {
            return Ok(());
        }
        let Some(changes) =
            feed::changes_between_at_most::<pb::MeasureChange>(&self.db, super::FEED_TOPIC, from, head, RELOAD_AFTER)
                .await?
        else {
            return self.reload(head).await;
        };
        // Read after the changes: a prune in between may have taken some.
        if feed::pruned_through(&self.db).await? > from {
            return self.reload(head).await;
        }
        let ids: Vec<Uuid> = changes
            .iter()
            .filter_map(|(_, c)| c.measure.as_ref())
            .filter_map(|m| Uuid::parse_str(&m.id).ok())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let measures = get_measures(&self.db, &ids).await?;
        let mut index = self.write()?;
        for m in &measures {
            index.insert(m);
        }
        index.seq = Some(head);
        Ok(())
    }

    /// Loads every measure, a page at a time, into a new index: what the
    /// database holds at `head` or later. A write
    /// committed after `head` was read may be read or not; either way its
    /// change comes after `head`, and the next catch-up reads the measure again.
    async fn reload(&self, head: i64) -> Result<()> {
        let failed =
            |err: tokio::task::JoinError| Error::internal(anyhow::anyhow!("loading the schedule failed: {err}"));
        // One snapshot on one connection: pages read on the pool's
        // connections in turn would leave each connection's page cache full
        // of the table, and could mix states of it.
        let txn = db::begin_snapshot(&self.db).await?;
        let mut index = Index::default();
        let mut page = schedule_page(&txn, None, RELOAD_PAGE).await?;
        while let Some(last) = page.last().map(|m| m.id) {
            let more = page.len() as u64 == RELOAD_PAGE;
            // Off the async threads: a large schedule takes a while to index.
            let indexing = tokio::task::spawn_blocking(move || {
                for m in &page {
                    index.insert(m);
                }
                index
            });
            // The next page is read while this one is indexed.
            let reading =
                async { if more { schedule_page(&txn, Some(last), RELOAD_PAGE).await } else { Ok(Vec::new()) } };
            let (next, indexed) = tokio::join!(reading, indexing);
            index = indexed.map_err(failed)?;
            page = next?;
        }
        txn.commit().await?;
        index.shrink();
        index.seq = Some(head);
        let old = std::mem::replace(&mut *self.write()?, index);
        // Freed after the lock is released, and the reload's garbage with
        // it given back at once.
        drop(old);
        tradewatch_common::memory::release_freed();
        Ok(())
    }

    /// `importer`'s coverage table as the index stands (call
    /// [`Self::fresh`] first): the one built before while none of its
    /// measures changed since, else a new one (one build at a time).
    pub fn coverage_table(&self, importer: &Economy) -> Result<Arc<CoverageTable>> {
        let index = self.read()?;
        let generation = index.generations.get(importer).copied().unwrap_or(0);
        let mut tables = self
            .tables
            .lock()
            .map_err(|_| Error::internal(anyhow::anyhow!("the coverage tables' lock is poisoned")))?;
        if let Some(table) = tables.get(importer.as_str())
            && table.generation == generation
        {
            return Ok(table.clone());
        }
        let table = Arc::new(CoverageTable::build(&index, importer));
        tables.insert(importer.to_string(), table.clone());
        Ok(table)
    }

    /// The candidates of `ResolveDuty`, as [`super::resolution_candidates`]
    /// finds them in SQL: the importer's measures naming a prefix of `code`
    /// whose dates hold `day`, at most [`MAX_CANDIDATES`].
    pub async fn candidates(
        self: &Arc<Self>,
        importer: &Economy,
        code: &HsCode,
        day: NaiveDate,
    ) -> Result<Vec<Arc<Levy>>> {
        self.fresh().await?;
        let index = self.read()?;
        let Some(codes) = index.by_code.get(importer) else { return Ok(vec![]) };
        let mut out: Vec<Arc<Levy>> = Vec::new();
        for prefix in code.prefixes() {
            for levy in codes.get(&prefix).into_iter().flatten() {
                // Only a measure naming two prefixes of the code is met twice.
                let met = levy.hs_codes().len() > 1 && out.iter().any(|l| l.id == levy.id);
                if levy.dated(day) && !met {
                    if u64::try_from(out.len()).unwrap_or(u64::MAX) == MAX_CANDIDATES {
                        return Err(too_many_measures(importer, code.as_str(), day));
                    }
                    out.push(levy.clone());
                }
            }
        }
        // One order on every replica, however each index was built.
        out.sort_unstable_by_key(|l| l.id);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::domain::measure::tests::{date, eco, measure, spec};

    /// What an index answers from, in one order however it was built: each
    /// measure as held, and per importer and prefix the measures naming it.
    type Snapshot = (BTreeMap<Uuid, Levy>, BTreeMap<(String, String), Vec<Uuid>>);

    fn snapshot(index: &Index) -> Snapshot {
        let levies = index.levies.iter().map(|(id, l)| (*id, (**l).clone())).collect();
        let mut by_code = BTreeMap::new();
        for (importer, codes) in &index.by_code {
            for (code, levies) in codes {
                let mut ids: Vec<Uuid> = levies.iter().map(|l| l.id).collect();
                ids.sort_unstable();
                by_code.insert((importer.to_string(), code.to_string()), ids);
            }
        }
        (levies, by_code)
    }

    const CODES: [&str; 5] = ["87", "8703", "870380", "72081000", "1205"];
    const ORIGINS: [&str; 3] = ["CHN", "USA", "MEX"];

    /// One write: which of a few measures it puts, and what it says.
    fn arb_write() -> impl Strategy<Value = (usize, bool, Vec<usize>, Vec<usize>, u32, Option<i64>)> {
        (
            0usize..6,
            proptest::bool::ANY,
            proptest::collection::vec(0..CODES.len(), 1..4),
            proptest::collection::vec(0..ORIGINS.len(), 0..3),
            0u32..50,
            proptest::option::of(0i64..400),
        )
    }

    proptest! {
        /// Patching the index write by write leaves it as loading the
        /// measures as they end up would build it.
        #[test]
        fn a_patched_index_equals_a_fresh_load(writes in proptest::collection::vec(arb_write(), 1..40)) {
            let ids: Vec<Uuid> = (0..6).map(|_| Uuid::now_v7()).collect();
            let mut patched = Index::default();
            let mut last: BTreeMap<Uuid, Measure> = BTreeMap::new();
            for (slot, usa, mut codes, origins, rate, to) in writes {
                codes.sort_unstable();
                codes.dedup();
                let codes: Vec<&str> = codes.iter().map(|&c| CODES[c]).collect();
                let mut s = spec(MeasureKind::Surtax, &codes, &rate.to_string());
                if usa {
                    s.imposing_economy = eco("USA");
                }
                s.target_economies = origins.iter().map(|&o| eco(ORIGINS[o])).collect();
                s.effective_to = to.map(|d| date("2024-01-01") + chrono::Duration::days(d));
                let mut m = measure(s);
                m.id = ids[slot];
                patched.insert(&m);
                last.insert(m.id, m);
            }
            let mut fresh = Index::default();
            for m in last.values() {
                fresh.insert(m);
            }
            patched.shrink();
            prop_assert_eq!(snapshot(&patched), snapshot(&fresh));
            prop_assert_eq!(patched.len(), last.len());
        }
    }
}
