//! What the schedule in memory takes per measure: the generated national
//! schedule (100,000 rate lines and 5,000 special measures, as
//! `tradewatch-schedule generate` writes it) and the 10,000-line one, each
//! held whole as measures and as the schedule's index holds them, counted by
//! an allocator that tallies the bytes and allocations live.
//!
//! `cargo bench -p tariff-service --bench schedule_memory`

#![allow(clippy::expect_used)]

use tariff_service::{
    api::convert,
    domain::Measure,
    load::{self, Groups, generate},
    store::ScheduleIndex,
};
use tradewatch_common::proto::tariff as pb;

#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

/// Bytes and allocations live.
#[allow(clippy::cast_possible_wrap)]
fn live() -> (isize, isize) {
    let stats = dhat::HeapStats::get();
    (stats.curr_bytes as isize, stats.curr_blocks as isize)
}

/// The generated schedule as stored measures.
fn measures(lines: usize, special: usize) -> Vec<Measure> {
    let shape = generate::Shape { lines, special, ..Default::default() };
    let (groups, schedule) = generate::generate("CAN", shape);
    let groups = Groups::parse(&groups).expect("the generated groups parse");
    let lines = load::parse(&schedule, "CAN", &groups).expect("the generated schedule parses");
    let (today, now) = (tradewatch_common::today(), tradewatch_common::now());
    let mut out = Vec::with_capacity(lines.len());
    for batch in lines.chunks(1_000) {
        let request = pb::ImportMeasuresRequest {
            measures: batch.iter().map(|l| l.measure.clone()).collect(),
            request_id: String::new(),
        };
        let (specs, _) = convert::import_measures(&request).expect("the generated measures are valid");
        out.extend(specs.into_iter().map(|spec| Measure::new(spec, today, now, "bench")));
    }
    out
}

/// Bytes per measure counting what the allocator adds to each allocation:
/// 16 bytes, a common figure for glibc's and mimalloc's size classes alike.
#[allow(clippy::cast_precision_loss)]
fn per_measure((bytes, allocations): (isize, isize), n: usize) -> (f64, f64, f64) {
    let n = n as f64;
    (bytes as f64 / n, allocations as f64 / n, (bytes + 16 * allocations) as f64 / n)
}

fn main() {
    let _profiler = dhat::Profiler::builder().testing().build();
    println!(
        "| schedule | held as | bytes per measure | allocations per measure | with 16 B per allocation | MiB in all |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for (name, lines, special) in
        [("100,000 lines + 5,000 special", 100_000, 5_000), ("10,000 lines + 500 special", 10_000, 500)]
    {
        let before = live();
        let whole = measures(lines, special);
        let held = live();
        let n = whole.len();
        let mut index = ScheduleIndex::default();
        for m in &whole {
            index.insert(m);
        }
        index.shrink();
        let indexed = live();
        drop(whole);
        let after = live();
        let rows = [
            ("whole measures", (held.0 - before.0, held.1 - before.1)),
            ("the schedule's index", (indexed.0 - held.0, indexed.1 - held.1)),
            ("the index, alone after", (after.0 - before.0, after.1 - before.1)),
        ];
        for (what, (bytes, allocations)) in rows {
            let (b, a, with) = per_measure((bytes, allocations), n);
            #[allow(clippy::cast_precision_loss)]
            let mib = (bytes + 16 * allocations) as f64 / (1024.0 * 1024.0);
            println!("| {name} ({n} measures) | {what} | {b:.0} | {a:.2} | {with:.0} | {mib:.1} |");
        }
        assert_eq!(index.len(), n);
    }
}
