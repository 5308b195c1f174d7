//! The trade flows in memory, for exposure and coverage: each flow's code,
//! value and id, grouped by importer, year and exporter and sorted by code,
//! so that the flows under an HS prefix are one range found by binary
//! search, and the flows of an importer, origin and year one slice. Like
//! the schedule, it is brought up to the feed's head (shared with the
//! schedule) before each answer: never older than the last write committed
//! before the call began, on any replica. Catching up rereads the flows the
//! changes name; a gap past retention, or a long one, reloads everything.
//! About 48 bytes a flow, plus the map's.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{Arc, RwLock, RwLockReadGuard},
};

use sea_orm::DatabaseConnection;
use tradewatch_common::{
    Error, Result, db,
    feed::{self, Head},
    proto::tariff as pb,
    types::{Economy, parse_decimal},
};
use uuid::Uuid;

use super::flows::{FlowRow, flow_rows, flow_rows_after};
use crate::domain::{Currency, FlowValue, Units};

/// The feed topic of the trade flows' changes.
pub const FLOW_TOPIC: &str = "trade_flow";

/// Past this many flow changes to catch up on, everything is reloaded.
const RELOAD_AFTER: u64 = 20_000;

/// Flows read in one query of a load.
const LOAD_PAGE: u64 = 20_000;

/// An HS code of 2 to 10 digits in ten bytes, zero-padded: ordered as the
/// code's string is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Code([u8; 10]);

impl Code {
    pub fn of(code: &str) -> Option<Self> {
        let bytes = code.as_bytes();
        if bytes.is_empty() || bytes.len() > 10 || !bytes.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let mut out = [0; 10];
        out[..bytes.len()].copy_from_slice(bytes);
        Some(Self(out))
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0[..self.len()]).unwrap_or_default()
    }

    /// Its first two digits: the chapter.
    pub fn chapter(&self) -> Self {
        let mut out = [0; 10];
        out[..2].copy_from_slice(&self.0[..2]);
        Self(out)
    }

    fn len(&self) -> usize {
        self.0.iter().position(|b| *b == 0).unwrap_or(10)
    }

    /// Whether `self` is a prefix of `other` (a code is a prefix of itself).
    pub fn is_prefix_of(&self, other: &Code) -> bool {
        let len = self.len();
        self.0[..len] == other.0[..len]
    }
}

/// The flows under `prefix` in a group sorted by code: those whose code
/// starts with it, one range.
pub fn under(flows: &[Entry], prefix: &Code) -> std::ops::Range<usize> {
    let start = flows.partition_point(|e| e.code < *prefix);
    start..start + flows[start..].partition_point(|e| prefix.is_prefix_of(&e.code))
}

/// One flow as the index keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub code: Code,
    pub value: FlowValue,
    pub id: Uuid,
}

/// The flows of one importer, exporter and year, sorted by code.
#[derive(Debug, Clone, Default)]
pub struct Group {
    pub flows: Vec<Entry>,
    /// Changes whenever the group's flows do (a flow joins, a value is
    /// revised): what anything built from them was built at.
    pub version: u64,
}

/// Versions are drawn from one counter: no two states of any group share one.
static VERSIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn next_version() -> u64 {
    VERSIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// The flows of one importer and year: by exporter.
pub type YearFlows = BTreeMap<Economy, Group>;

#[derive(Default)]
pub struct Flows {
    /// The feed position the index reflects; None before the first load.
    seq: Option<i64>,
    /// Importer → year → exporter → flows sorted by code.
    by_importer: HashMap<Economy, BTreeMap<i32, YearFlows>>,
}

impl Flows {
    /// The flows of `importer` in `year`, by exporter.
    pub fn year(&self, importer: &Economy, year: i32) -> Option<&YearFlows> {
        self.by_importer.get(importer)?.get(&year)
    }

    /// The latest year with a flow into `importer` from an exporter `from`
    /// accepts.
    pub fn latest_year(&self, importer: &Economy, from: impl Fn(&Economy) -> bool) -> Option<i32> {
        let years = self.by_importer.get(importer)?;
        years.iter().rev().find(|(_, by)| by.iter().any(|(e, g)| from(e) && !g.flows.is_empty())).map(|(y, _)| *y)
    }

    fn group_mut(&mut self, importer: Economy, year: i32, exporter: Economy) -> &mut Group {
        self.by_importer.entry(importer).or_default().entry(year).or_default().entry(exporter).or_default()
    }

    /// Adds the rows of flows not in the index, leaving the groups unsorted
    /// until [`Self::sort`]: a load's pages.
    fn add_unsorted(&mut self, rows: Vec<FlowRow>) -> Result<()> {
        // Rows of one group come in runs (they are read in id order, which
        // is the order they were imported in): one lookup a run.
        let mut names = Economies::default();
        let mut run: Option<((usize, i32, usize), Vec<Entry>)> = None;
        for row in rows {
            let (place, entry) = entry_of(&row, &mut names)?;
            match &mut run {
                Some((at, entries)) if *at == place => entries.push(entry),
                _ => {
                    if let Some(((i, year, e), entries)) = run.replace((place, vec![entry])) {
                        self.group_mut(names.get(i), year, names.get(e)).flows.extend(entries);
                    }
                }
            }
        }
        if let Some(((i, year, e), entries)) = run {
            self.group_mut(names.get(i), year, names.get(e)).flows.extend(entries);
        }
        Ok(())
    }

    fn sort(&mut self) {
        for group in self.by_importer.values_mut().flat_map(|y| y.values_mut()).flat_map(|g| g.values_mut()) {
            group.flows.sort_unstable_by_key(|e| e.code);
            group.flows.shrink_to_fit();
            group.version = next_version();
        }
    }

    /// Applies the rows of flows created or revised since. A flow's key
    /// never changes, so a revision is found by its code in its group and
    /// takes its place; new flows join their group, sorted in once per group.
    pub(super) fn apply(&mut self, rows: Vec<FlowRow>) -> Result<()> {
        let mut names = Economies::default();
        let mut added: HashMap<(Economy, i32, Economy), Vec<Entry>> = HashMap::new();
        for row in rows {
            let ((i, year, e), entry) = entry_of(&row, &mut names)?;
            let place = (names.get(i), year, names.get(e));
            let (importer, year, exporter) = &place;
            let group =
                self.by_importer.get_mut(importer).and_then(|y| y.get_mut(year)).and_then(|g| g.get_mut(exporter));
            let at = group.as_ref().and_then(|g| g.flows.binary_search_by_key(&entry.code, |e| e.code).ok());
            match (group, at) {
                (Some(group), Some(at)) => {
                    group.flows[at] = entry;
                    group.version = next_version();
                }
                _ => added.entry(place).or_default().push(entry),
            }
        }
        for ((importer, year, exporter), new) in added {
            let group = self.group_mut(importer, year, exporter);
            group.flows.extend(new);
            group.flows.sort_unstable_by_key(|e| e.code);
            group.version = next_version();
        }
        Ok(())
    }
}

/// The economies met while reading rows, each parsed once: a load reads a
/// million rows naming a few dozen.
#[derive(Default)]
struct Economies(Vec<Economy>);

impl Economies {
    fn index(&mut self, code: &str) -> Result<usize, String> {
        if let Some(at) = self.0.iter().position(|e| e.as_str() == code) {
            return Ok(at);
        }
        self.0.push(Economy::parse(code)?);
        Ok(self.0.len() - 1)
    }

    fn get(&self, at: usize) -> Economy {
        self.0[at]
    }
}

/// A row's place (importer, year, exporter, the economies by their index
/// in `names`) and entry.
fn entry_of(row: &FlowRow, names: &mut Economies) -> Result<((usize, i32, usize), Entry)> {
    let bad = |what: &str, why: String| tradewatch_common::db::corrupt("trade flow", row.id, what, why);
    let importer = names.index(&row.importing).map_err(|e| bad("importer", e))?;
    let exporter = names.index(&row.exporting).map_err(|e| bad("exporter", e))?;
    let code = Code::of(&row.hs_code).ok_or_else(|| bad("hs code", row.hs_code.clone()))?;
    let currency = Currency::of(&row.currency).ok_or_else(|| bad("currency", row.currency.clone()))?;
    let amount = parse_decimal(&row.amount).ok().and_then(Units::of).ok_or_else(|| bad("value", row.amount.clone()))?;
    Ok(((importer, row.year, exporter), Entry { code, value: FlowValue { currency, amount }, id: row.id }))
}

/// The index of one process, kept fresh by the feed.
pub struct TradeIndex {
    db: DatabaseConnection,
    head: Head,
    index: RwLock<Flows>,
    /// One catch-up at a time; the others wait for it.
    catch_up: tokio::sync::Mutex<()>,
}

impl TradeIndex {
    pub fn new(db: DatabaseConnection, head: Head) -> Self {
        Self { db, head, index: RwLock::new(Flows::default()), catch_up: tokio::sync::Mutex::new(()) }
    }

    /// The flows as the database held them when the call began, or later.
    pub fn read(&self) -> Result<RwLockReadGuard<'_, Flows>> {
        self.index.read().map_err(|_| Error::internal(anyhow::anyhow!("the trade index's lock is poisoned")))
    }

    /// Brings the index up to the database as it stood when the call began.
    pub async fn fresh(self: &Arc<Self>) -> Result<()> {
        let head = self.head.read().await?;
        if self.read()?.seq.is_some_and(|seq| seq >= head) {
            return Ok(());
        }
        // In a task of its own, as the schedule's: a caller that gives up
        // does not throw away a load the next caller would start again.
        let this = self.clone();
        tokio::spawn(async move { this.catch_up_to(head).await })
            .await
            .map_err(|err| Error::internal(anyhow::anyhow!("the trade index's catch-up failed: {err}")))?
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
            feed::changes_between_at_most::<pb::TradeFlowChange>(&self.db, FLOW_TOPIC, from, head, RELOAD_AFTER)
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
            .filter_map(|(_, c)| c.flow.as_ref())
            .filter_map(|f| Uuid::parse_str(&f.id).ok())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let rows = flow_rows(&self.db, &ids).await?;
        let mut index =
            self.index.write().map_err(|_| Error::internal(anyhow::anyhow!("the trade index's lock is poisoned")))?;
        index.apply(rows)?;
        index.seq = Some(head);
        Ok(())
    }

    /// Loads every flow: what the database holds at `head` or later. Page
    /// by page: the rows of one page at most are held beside the index.
    async fn reload(&self, head: i64) -> Result<()> {
        let mut fresh = Flows::default();
        let mut after = None;
        // One snapshot on one connection, as the schedule's reload.
        let txn = db::begin_snapshot(&self.db).await?;
        loop {
            let rows = flow_rows_after(&txn, after, LOAD_PAGE).await?;
            let Some(last) = rows.last() else { break };
            after = Some(last.id);
            let full = rows.len() as u64 == LOAD_PAGE;
            fresh.add_unsorted(rows)?;
            if !full {
                break;
            }
        }
        txn.commit().await?;
        // Off the async threads: sorting a million entries takes a while.
        let mut fresh = tokio::task::spawn_blocking(move || {
            fresh.sort();
            fresh
        })
        .await
        .map_err(|err| Error::internal(anyhow::anyhow!("sorting the trade index failed: {err}")))?;
        fresh.seq = Some(head);
        let old = std::mem::replace(
            &mut *self
                .index
                .write()
                .map_err(|_| Error::internal(anyhow::anyhow!("the trade index's lock is poisoned")))?,
            fresh,
        );
        drop(old);
        tradewatch_common::memory::release_freed();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: Uuid, exporter: &str, code: &str, amount: &str) -> FlowRow {
        FlowRow {
            id,
            importing: "CHN".into(),
            exporting: exporter.into(),
            year: 2024,
            hs_code: code.into(),
            currency: "CAD".into(),
            amount: amount.into(),
        }
    }

    #[test]
    fn codes_order_as_their_strings() {
        let mut codes = ["1205", "120510", "12", "1206", "120500", "23"];
        let mut packed: Vec<Code> = codes.iter().filter_map(|c| Code::of(c)).collect();
        codes.sort_unstable();
        packed.sort_unstable();
        assert_eq!(packed.iter().map(Code::as_str).collect::<Vec<_>>(), codes);
        assert!(Code::of("").is_none() && Code::of("12345678901").is_none() && Code::of("12a4").is_none());
    }

    #[test]
    fn the_flows_under_a_prefix_are_one_range() -> Result<()> {
        let mut flows = Flows::default();
        let codes = ["0203", "12", "1205", "120510", "12051090", "1206", "23"];
        flows.apply(codes.iter().map(|c| row(Uuid::now_v7(), "CAN", c, "1")).collect())?;
        let chn = Economy::parse("CHN").map_err(anyhow::Error::msg).map_err(Error::internal)?;
        let can = Economy::parse("CAN").map_err(anyhow::Error::msg).map_err(Error::internal)?;
        let group = flows.year(&chn, 2024).and_then(|y| y.get(&can)).map(|g| g.flows.clone()).unwrap_or_default();
        let under_of = |p: &str| -> Vec<&str> {
            Code::of(p).map(|p| group[under(&group, &p)].iter().map(|e| e.code.as_str()).collect()).unwrap_or_default()
        };
        assert_eq!(under_of("1205"), ["1205", "120510", "12051090"]);
        assert_eq!(under_of("12"), ["12", "1205", "120510", "12051090", "1206"]);
        assert!(under_of("120590").is_empty());
        assert_eq!(under_of("23"), ["23"]);
        assert_eq!(under_of("0203"), ["0203"]);
        Ok(())
    }

    #[test]
    fn revisions_take_their_flows_place_and_new_flows_are_sorted_in() -> Result<()> {
        let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let mut flows = Flows::default();
        let chn = Economy::parse("CHN").map_err(anyhow::Error::msg).map_err(Error::internal)?;
        let can = Economy::parse("CAN").map_err(anyhow::Error::msg).map_err(Error::internal)?;
        let version = |flows: &Flows| flows.year(&chn, 2024).and_then(|y| y.get(&can)).map(|g| g.version);
        flows.apply(vec![row(a, "CAN", "230641", "5"), row(b, "CAN", "1205", "7")])?;
        let first = version(&flows);
        flows.apply(vec![row(a, "CAN", "230641", "6")])?;
        let revised = version(&flows);
        assert_ne!(revised, first, "a revision is a new version");
        flows.apply(vec![row(c, "CAN", "071310", "1")])?;
        assert_ne!(version(&flows), revised, "and so is a new flow");
        let group = &flows.year(&chn, 2024).and_then(|y| y.get(&can)).map(|g| g.flows.clone()).unwrap_or_default();
        let seen: Vec<(&str, String)> =
            group.iter().map(|e| (e.code.as_str(), e.value.amount.to_decimal().to_string())).collect();
        assert_eq!(seen, [("071310", "1".to_owned()), ("1205", "7".to_owned()), ("230641", "6".to_owned())]);
        assert_eq!(flows.latest_year(&chn, |_| true), Some(2024));
        assert_eq!(flows.latest_year(&chn, |e| e.as_str() == "USA"), None);
        Ok(())
    }
}
