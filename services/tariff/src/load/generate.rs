//! A realistic schedule, generated for tests and benchmarks
//! (`tradewatch-schedule generate`): one importer's ten-digit lines over
//! every chapter, each with its MFN rate and a preferential rate for each
//! group of origins, then special measures (surtaxes, anti-dumping and
//! countervailing duties, safeguards, retaliation) on 4- and 6-digit
//! prefixes, each against one of a set of origins. The same arguments give
//! the same file.

/// What to generate.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Rate lines in all: codes × treatments.
    pub lines: usize,
    /// Treatments per code: MFN and `treatments - 1` preferential groups.
    pub treatments: usize,
    /// Special measures over the codes.
    pub special: usize,
    /// The origins the special measures target.
    pub origins: usize,
}

impl Default for Shape {
    fn default() -> Self {
        Self { lines: 100_000, treatments: 15, special: 5_000, origins: 20 }
    }
}

/// Economies the groups and special measures draw on.
const ECONOMIES: [&str; 48] = [
    "CHN", "USA", "MEX", "JPN", "KOR", "DEU", "VNM", "GBR", "ITA", "IND", "FRA", "BRA", "THA", "TUR", "IDN", "MYS",
    "TWN", "ESP", "NLD", "BEL", "AUS", "NZL", "CHL", "PER", "COL", "SGP", "BRN", "PHL", "PAK", "BGD", "EGY", "ZAF",
    "NGA", "KEN", "ETH", "MAR", "UKR", "POL", "SWE", "NOR", "CHE", "AUT", "IRL", "PRT", "GRC", "ISR", "ARE", "SAU",
];

const SPECIAL_KINDS: [&str; 5] = ["SURTAX", "ANTI_DUMPING", "COUNTERVAILING", "SAFEGUARD", "RETALIATORY"];

/// The ten-digit code of line `i`: chapters 01 to 97 but 77, in turn.
fn code(i: usize) -> String {
    let chapters: Vec<usize> = (1..=97).filter(|c| *c != 77).collect();
    let chapter = chapters[i % chapters.len()];
    let rest = i / chapters.len();
    let (heading, subheading, line) = (rest % 90 + 1, (rest / 90) % 90 + 1, rest / 8_100 + 10);
    format!("{chapter:02}{heading:02}{subheading:02}{line:02}00")
}

/// Splitmix64: a fixed sequence, so the file is the same every time.
struct Sequence(u64);

impl Sequence {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n.max(1)).unwrap_or(1)).unwrap_or_default()
    }
}

/// The groups file and the schedule, for `importer`.
pub fn generate(importer: &str, shape: Shape) -> (String, String) {
    let treatments = shape.treatments.max(1);
    let codes = shape.lines.div_ceil(treatments);
    let mut seq = Sequence(0x7472_6164_6577_6174);
    let pool: Vec<&str> = ECONOMIES.iter().copied().filter(|e| *e != importer).collect();
    let mut groups = String::from("group,economies\n");
    for g in 1..treatments {
        let size = 2 + seq.below(10);
        let members: Vec<&str> = (0..size).map(|k| pool[(g * 7 + k * 3) % pool.len()]).collect();
        let mut members = members;
        members.sort_unstable();
        members.dedup();
        groups.push_str(&format!("G{g:02},{}\n", members.join(" ")));
    }
    let mut schedule = String::from(
        "hs_code,kind,origins,ad_valorem_percent,specific_amount,specific_currency,specific_unit,effective_from,effective_to,reference,source_url\n",
    );
    let source = "https://example.org/customs-tariff";
    let mut written = 0;
    'lines: for i in 0..codes {
        let code = code(i);
        let mfn = seq.below(250);
        for t in 0..treatments {
            if written == shape.lines {
                break 'lines;
            }
            written += 1;
            if t == 0 {
                // One line in 20 has a specific duty beside its rate.
                let specific = if i % 20 == 0 { format!("0.{:02},CAD,kg", 1 + i % 90) } else { ",,".to_owned() };
                schedule.push_str(&format!("{code},MFN,,{}.{},{specific},2024-01-01,,,{source}\n", mfn / 10, mfn % 10));
            } else {
                let rate = mfn.saturating_sub(seq.below(mfn + 1)) / 10;
                schedule.push_str(&format!("{code},PREFERENTIAL,@G{t:02},{rate},,,,2024-01-01,,,{source}\n"));
            }
        }
    }
    let origins = &pool[..shape.origins.clamp(1, pool.len())];
    for n in 0..shape.special {
        let digits = if n % 2 == 0 { 4 } else { 6 };
        let prefix = &code(seq.below(codes.max(1)))[..digits];
        let kind = SPECIAL_KINDS[n % SPECIAL_KINDS.len()];
        let origin = origins[seq.below(origins.len())];
        let rate = 5 + seq.below(100);
        let month = 1 + n % 12;
        schedule.push_str(&format!(
            "{prefix},{kind},{origin},{rate},,,,2025-{month:02}-01,,{importer}-{kind}-{n:05},{source}\n"
        ));
    }
    (groups, schedule)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::load::{Groups, parse};

    #[test]
    fn the_generated_schedule_loads_line_for_line() {
        let shape = Shape { lines: 3_000, treatments: 15, special: 200, origins: 20 };
        let (groups, schedule) = generate("CAN", shape);
        assert_eq!(generate("CAN", shape), (groups.clone(), schedule.clone()), "the same every time");
        let groups = Groups::parse(&groups).unwrap();
        let lines = parse(&schedule, "CAN", &groups).unwrap_or_else(|e| panic!("{e:#?}"));
        assert_eq!(lines.len(), 3_200);
        let special: Vec<_> = lines.iter().filter(|l| l.measure.kind > 2).collect();
        assert_eq!(special.len(), 200);
        let origins: std::collections::HashSet<_> =
            special.iter().map(|l| l.measure.target_economies[0].clone()).collect();
        assert!(origins.len() > 15 && origins.len() <= 20, "{origins:?}");
    }

    #[test]
    fn codes_are_distinct_ten_digit_lines() {
        let codes: std::collections::HashSet<String> = (0..7_000).map(code).collect();
        assert_eq!(codes.len(), 7_000);
        assert!(codes.iter().all(|c| c.len() == 10 && !c.starts_with("77")));
    }
}
