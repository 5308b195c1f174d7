//! The rules of composition, pure: which disputes are between two economies
//! and where each stood on a day, which sessions fall in a brief's window,
//! what counts as open and overdue, and which line a measure's worth is
//! priced on. No I/O, no proto types: the API hands in what it read.

use chrono::{Months, NaiveDate};

/// A dispute stage, by its name (`PANEL_ESTABLISHED`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage(pub String);

impl Stage {
    /// A stage no dispute leaves: the dispute is over.
    pub fn is_terminal(&self) -> bool {
        matches!(self.0.as_str(), "SETTLED" | "WITHDRAWN" | "LAPSED" | "CONCLUDED")
    }
}

/// A stage a dispute entered, and the day it did (from its timeline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageEntered {
    pub on: NaiveDate,
    pub stage: Stage,
}

/// Where a dispute stood on `day`: the stage of the last entry on or before
/// it (entries in timeline order: by day, then as recorded), and the day it
/// entered it; None before its first entry (not yet opened).
pub fn stage_on(entries: &[StageEntered], day: NaiveDate) -> Option<&StageEntered> {
    entries.iter().rfind(|e| e.on <= day)
}

/// Whether a dispute with these `entries` was under way on `day`: opened by
/// then and not in a terminal stage.
pub fn under_way(entries: &[StageEntered], day: NaiveDate) -> bool {
    stage_on(entries, day).is_some_and(|e| !e.stage.is_terminal())
}

/// Whole days from `from` to `to` (0 when `to` is not after `from`).
pub fn days_between(from: NaiveDate, to: NaiveDate) -> i32 {
    i32::try_from((to - from).num_days().max(0)).unwrap_or(i32::MAX)
}

/// Whether one of `a`, `b` is the complainant and the other the respondent.
pub fn between(complainant: &str, respondent: &str, a: &str, b: &str) -> bool {
    (complainant == a && respondent == b) || (complainant == b && respondent == a)
}

/// The window of a brief's sessions: the twelve months to `day`, from the
/// same day a year before (the last day of a shorter month when it has no
/// such day) to `day`, both included.
pub fn session_window(day: NaiveDate) -> (NaiveDate, NaiveDate) {
    (day.checked_sub_months(Months::new(12)).unwrap_or(NaiveDate::MIN), day)
}

/// Whether a session of `economies` is one of both `a` and `b`.
pub fn of_both(economies: &[String], a: &str, b: &str) -> bool {
    economies.iter().any(|e| e == a) && economies.iter().any(|e| e == b)
}

/// Whether a commitment of this status (its name, `OPEN`) is still to be
/// kept: open or in progress.
pub fn is_open(status: &str) -> bool {
    matches!(status, "OPEN" | "IN_PROGRESS")
}

/// Whether an open commitment due on `due` is overdue on `day`: due before it.
pub fn overdue(open: bool, due: Option<NaiveDate>, day: NaiveDate) -> bool {
    open && due.is_some_and(|due| due < day)
}

/// Whether a commitment's effect takes a measure off (suspends or revokes
/// it), by the effect's name: then it has a worth in trade.
pub fn relieves(effect: &str) -> bool {
    matches!(effect, "SUSPEND_MEASURE" | "REVOKE_MEASURE")
}

/// The tariff line a measure's worth is priced on, from its most-traded
/// flow: the flow's own code when the measure covers it whole, else the
/// measure's prefix that lies inside it (the flow is coarser); a heading
/// shorter than a line is read as its first line (`1205` as `120500`), as
/// ResolveDuty takes 6 to 10 digits.
pub fn priced_line(flow_code: &str, whole: bool, matched: &str) -> String {
    let code = if whole || matched.is_empty() { flow_code } else { matched };
    let mut line = code.to_owned();
    while line.len() < 6 {
        line.push_str("00");
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or(NaiveDate::MIN)
    }

    fn entered(on: &str, stage: &str) -> StageEntered {
        StageEntered { on: day(on), stage: Stage(stage.into()) }
    }

    #[test]
    fn a_dispute_stands_where_its_last_move_by_the_day_left_it() {
        // WT/DS589: consultations 2019, a panel in 2021, suspended in 2022, lapsed in 2023.
        let ds589 = [
            entered("2019-09-09", "CONSULTATIONS"),
            entered("2021-07-26", "PANEL_ESTABLISHED"),
            entered("2022-08-30", "PANEL_SUSPENDED"),
            entered("2023-08-31", "LAPSED"),
        ];
        assert_eq!(stage_on(&ds589, day("2019-09-08")), None, "not yet opened");
        assert_eq!(stage_on(&ds589, day("2021-07-26")).map(|e| e.stage.0.as_str()), Some("PANEL_ESTABLISHED"));
        assert_eq!(stage_on(&ds589, day("2023-01-01")).map(|e| e.on), Some(day("2022-08-30")));
        assert!(under_way(&ds589, day("2023-08-30")));
        assert!(!under_way(&ds589, day("2023-08-31")), "lapsed is over");
        assert!(!under_way(&ds589, day("2019-01-01")), "not opened is not under way");
        assert_eq!(days_between(day("2022-08-30"), day("2023-08-30")), 365);
        assert_eq!(days_between(day("2023-08-30"), day("2022-08-30")), 0);
    }

    #[test]
    fn the_window_is_the_twelve_months_to_the_day() {
        assert_eq!(session_window(day("2026-03-15")), (day("2025-03-15"), day("2026-03-15")));
        assert_eq!(session_window(day("2024-02-29")), (day("2023-02-28"), day("2024-02-29")));
    }

    #[test]
    fn open_overdue_and_relieving_commitments() {
        assert!(is_open("OPEN") && is_open("IN_PROGRESS") && !is_open("FULFILLED") && !is_open("LAPSED"));
        assert!(overdue(true, Some(day("2026-03-01")), day("2026-03-15")));
        assert!(!overdue(true, Some(day("2026-03-15")), day("2026-03-15")), "due that day is not late yet");
        assert!(!overdue(false, Some(day("2026-03-01")), day("2026-03-15")));
        assert!(!overdue(true, None, day("2026-03-15")));
        assert!(relieves("SUSPEND_MEASURE") && relieves("REVOKE_MEASURE") && !relieves("SETTLE_DISPUTE"));
        assert!(between("CAN", "CHN", "CHN", "CAN") && !between("CAN", "USA", "CAN", "CHN"));
        assert!(of_both(&["CAN".into(), "CHN".into(), "USA".into()], "CHN", "CAN"));
    }

    #[test]
    fn a_worth_is_priced_on_a_line() {
        assert_eq!(priced_line("230641", true, "230641"), "230641");
        assert_eq!(priced_line("1205", true, "1205"), "120500");
        assert_eq!(priced_line("03", false, "030612"), "030612", "a coarse flow is priced on the measure's line");
        assert_eq!(priced_line("87038000", true, "8703"), "87038000");
    }
}
