//! Tariff measures and their status timeline.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use tradewatch_common::{
    Error, Reason, Result,
    error::FieldViolation,
    named_enum,
    patch::patched,
    types::{Economy, HsCode, Money, format_date, format_decimal},
};
use uuid::Uuid;

named_enum!(
    /// What a measure is, which decides how it takes part in duty resolution.
    pub enum MeasureKind {
        Mfn => "MFN",
        Preferential => "PREFERENTIAL",
        Surtax => "SURTAX",
        Retaliatory => "RETALIATORY",
        AntiDumping => "ANTI_DUMPING",
        Countervailing => "COUNTERVAILING",
        Safeguard => "SAFEGUARD",
        TariffRateQuota => "TARIFF_RATE_QUOTA",
    }
);

impl MeasureKind {
    /// MFN and preferential rates form the base (rule 1).
    pub fn is_base(self) -> bool {
        matches!(self, Self::Mfn | Self::Preferential)
    }

    /// Duties that stack on top of the base (rule 2).
    pub fn is_additional(self) -> bool {
        matches!(self, Self::Surtax | Self::Retaliatory | Self::AntiDumping | Self::Countervailing | Self::Safeguard)
    }
}

named_enum!(
    /// A measure's status on a given day.
    pub enum MeasureStatus {
        Announced => "ANNOUNCED",
        InForce => "IN_FORCE",
        Suspended => "SUSPENDED",
        Expired => "EXPIRED",
        Revoked => "REVOKED",
    }
);

/// A duty of a fixed amount per unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecificDuty {
    pub amount: Money,
    pub unit: String,
}

/// The quota of a tariff-rate quota, without its fill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaTerms {
    pub quantity: Decimal,
    pub unit: String,
    pub period_start: NaiveDate,
    pub period_end: NaiveDate,
}

impl QuotaTerms {
    pub fn holds(&self, day: NaiveDate) -> bool {
        self.period_start <= day && day <= self.period_end
    }
}

/// Everything a client sets on a measure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeasureSpec {
    pub reference: String,
    pub title: String,
    pub imposing_economy: Economy,
    /// Empty: every origin.
    pub target_economies: Vec<Economy>,
    pub kind: MeasureKind,
    pub hs_codes: Vec<HsCode>,
    pub excluded_hs_codes: Vec<HsCode>,
    pub ad_valorem_percent: Decimal,
    pub specific_duty: Option<SpecificDuty>,
    pub announced_on: Option<NaiveDate>,
    pub effective_from: NaiveDate,
    pub effective_to: Option<NaiveDate>,
    pub quota: Option<QuotaTerms>,
    pub source_url: String,
    pub note: String,
}

impl MeasureSpec {
    /// The rules between fields, each violation named relative to the
    /// measure (`effective_to`, `quota`, `excluded_hs_codes[0]`).
    pub fn violations(&self) -> Vec<FieldViolation> {
        let mut out = Vec::new();
        let mut bad = |field: String, why: String| out.push(FieldViolation::new(field, why));
        if self.hs_codes.is_empty() {
            bad("hs_codes".into(), "is required: at least one HS prefix".into());
        }
        // Linear: each exclusion's shorter prefixes (at most four) looked up.
        let covered: std::collections::HashSet<&HsCode> = self.hs_codes.iter().collect();
        for (i, excluded) in self.excluded_hs_codes.iter().enumerate() {
            let prefixes = excluded.prefixes();
            if !prefixes[..prefixes.len() - 1].iter().any(|p| covered.contains(p)) {
                bad(format!("excluded_hs_codes[{i}]"), format!("{excluded} lies inside none of hs_codes"));
            }
        }
        for (i, target) in self.target_economies.iter().enumerate() {
            if *target == self.imposing_economy {
                bad(format!("target_economies[{i}]"), "is the imposing economy itself".into());
            }
        }
        if let Some(to) = self.effective_to
            && to < self.effective_from
        {
            bad("effective_to".into(), format!("{} is before effective_from", format_date(to)));
        }
        match (&self.quota, self.kind) {
            (None, MeasureKind::TariffRateQuota) => {
                bad("quota".into(), "is required on a TARIFF_RATE_QUOTA measure".into());
            }
            (Some(_), kind) if kind != MeasureKind::TariffRateQuota => {
                bad("quota".into(), format!("is only allowed on TARIFF_RATE_QUOTA measures, not {}", kind.as_str()));
            }
            (Some(q), _) if q.period_end < q.period_start => {
                bad("quota.period_end".into(), "is before quota.period_start".into());
            }
            _ => {}
        }
        out
    }

    /// Whether goods from `origin` fall under the measure.
    pub fn covers_origin(&self, origin: &Economy) -> bool {
        self.target_economies.is_empty() || self.target_economies.contains(origin)
    }

    /// How much of `code` (a tariff line, or the heading a statistic is
    /// published at) the measure covers: the one statement of the prefix
    /// and exclusion rules, for duty resolution and for trade exposure alike.
    /// - Nothing when an excluded prefix is a prefix of the code.
    /// - Whole when one of `hs_codes` is a prefix of the code (the longest
    ///   such), unless an exclusion lies inside the code: then in part.
    /// - In part when the code is coarser than one of `hs_codes`: the code is
    ///   a proper prefix of it (code `1205`, measure `120510`).
    ///
    /// Linear in the measure's codes.
    pub fn coverage(&self, code: &str) -> Coverage<'_> {
        coverage_of(&self.hs_codes, &self.excluded_hs_codes, code)
    }

    /// The prefix by which the measure covers a shipment of `code` in
    /// `ResolveDuty` ([`Coverage::matched`]).
    pub fn matched_prefix(&self, code: &HsCode) -> Option<&HsCode> {
        self.coverage(code.as_str()).matched()
    }
}

/// How much of `code` a measure of these prefixes and exclusions covers:
/// the rule [`MeasureSpec::coverage`] states, for whatever holds a measure's
/// codes.
pub fn coverage_of<'a>(hs_codes: &'a [HsCode], excluded: &'a [HsCode], code: &str) -> Coverage<'a> {
    if excluded.iter().any(|x| code.starts_with(x.as_str())) {
        return Coverage::None;
    }
    if let Some(prefix) = hs_codes.iter().filter(|c| code.starts_with(c.as_str())).max_by_key(|c| c.as_str().len()) {
        // Not a prefix of the code (above), so longer than it.
        return match excluded.iter().find(|x| x.as_str().starts_with(code)) {
            Some(exclusion) => Coverage::Partial { prefix, why: Partly::CutBy(exclusion) },
            None => Coverage::Whole(prefix),
        };
    }
    match hs_codes.iter().find(|c| c.as_str().starts_with(code)) {
        Some(prefix) => Coverage::Partial { prefix, why: Partly::Coarser },
        None => Coverage::None,
    }
}

/// The status the dates alone give: ANNOUNCED before `effective_from`,
/// EXPIRED after `effective_to`, IN_FORCE between.
fn status_by_dates(effective_from: NaiveDate, effective_to: Option<NaiveDate>, day: NaiveDate) -> MeasureStatus {
    if day < effective_from {
        MeasureStatus::Announced
    } else if effective_to.is_some_and(|to| day > to) {
        MeasureStatus::Expired
    } else {
        MeasureStatus::InForce
    }
}

/// The status on `day` of a measure of these dates whose latest change
/// effective on or before it (if any) set `latest`: a reinstatement
/// (IN_FORCE) or an announcement defers to the dates, and the dates'
/// EXPIRED wins over a suspension.
pub(crate) fn status_on(
    effective_from: NaiveDate,
    effective_to: Option<NaiveDate>,
    latest: Option<MeasureStatus>,
    day: NaiveDate,
) -> MeasureStatus {
    let by_dates = status_by_dates(effective_from, effective_to, day);
    match latest {
        Some(MeasureStatus::Revoked) => MeasureStatus::Revoked,
        Some(MeasureStatus::Expired) => MeasureStatus::Expired,
        Some(MeasureStatus::Suspended) if by_dates != MeasureStatus::Expired => MeasureStatus::Suspended,
        _ => by_dates,
    }
}

/// The days a measure applies, as inclusive periods in order, read off
/// `applies` at the days where it can change: its dates and `change_days`.
pub(crate) fn in_force_periods(
    effective_from: NaiveDate,
    effective_to: Option<NaiveDate>,
    change_days: impl Iterator<Item = NaiveDate>,
    applies: impl Fn(NaiveDate) -> bool,
) -> Vec<(NaiveDate, NaiveDate)> {
    let mut bounds: Vec<NaiveDate> =
        std::iter::once(effective_from).chain(effective_to.and_then(|to| to.succ_opt())).chain(change_days).collect();
    bounds.sort_unstable();
    bounds.dedup();
    let mut periods: Vec<(NaiveDate, NaiveDate)> = Vec::new();
    for (i, from) in bounds.iter().enumerate() {
        if !applies(*from) {
            continue;
        }
        let to = bounds.get(i + 1).and_then(|next| next.pred_opt()).unwrap_or(NaiveDate::MAX);
        match periods.last_mut() {
            Some(last) if last.1.succ_opt() == Some(*from) => last.1 = to,
            _ => periods.push((*from, to)),
        }
    }
    periods
}

/// Room left in a quota with `used` of it drawn (never negative).
pub(crate) fn quota_room(quota: &QuotaTerms, used: Decimal) -> Decimal {
    quota.quantity.checked_sub(used).unwrap_or_default().max(Decimal::ZERO)
}

/// How much of an HS code a measure covers ([`MeasureSpec::coverage`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage<'a> {
    /// All of it, by this prefix of the measure's.
    Whole(&'a HsCode),
    /// Some of it at most, reached by this prefix of the measure's.
    Partial { prefix: &'a HsCode, why: Partly<'a> },
    /// None of it.
    None,
}

impl<'a> Coverage<'a> {
    /// The prefix by which a measure of this coverage of a tariff line
    /// covers a shipment of it in `ResolveDuty`: the longest of its prefixes
    /// that covers the line. A line an exclusion cuts into (a 6-digit line,
    /// an 8-digit exclusion inside it) is covered: the line as declared falls
    /// under the measure.
    pub fn matched(self) -> Option<&'a HsCode> {
        match self {
            Coverage::Whole(prefix) | Coverage::Partial { prefix, why: Partly::CutBy(_) } => Some(prefix),
            Coverage::Partial { why: Partly::Coarser, .. } | Coverage::None => None,
        }
    }
}

/// Why a measure covers a code only in part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partly<'a> {
    /// The code is coarser than the measure's prefix.
    Coarser,
    /// This exclusion of the measure lies inside the code.
    CutBy(&'a HsCode),
}

/// One entry of the status timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    pub id: Uuid,
    pub measure_id: Uuid,
    pub status: MeasureStatus,
    pub effective_on: NaiveDate,
    pub note: String,
    pub change_time: DateTime<Utc>,
    /// Who recorded it.
    pub actor: String,
}

/// The fields an update changes: `Some` for each field the update mask
/// names, with its new value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MeasurePatch {
    pub title: Option<String>,
    pub target_economies: Option<Vec<Economy>>,
    pub hs_codes: Option<Vec<HsCode>>,
    pub excluded_hs_codes: Option<Vec<HsCode>>,
    pub ad_valorem_percent: Option<Decimal>,
    pub specific_duty: Option<Option<SpecificDuty>>,
    pub announced_on: Option<Option<NaiveDate>>,
    pub effective_from: Option<NaiveDate>,
    pub effective_to: Option<Option<NaiveDate>>,
    pub quota: Option<Option<QuotaTerms>>,
    pub source_url: Option<String>,
    pub note: Option<String>,
}

impl MeasurePatch {
    /// The fields an update mask may name, as the API spells them.
    pub const FIELDS: &'static [&'static str] = &[
        "title",
        "target_economies",
        "hs_codes",
        "excluded_hs_codes",
        "ad_valorem_percent",
        "specific_duty",
        "announced_on",
        "effective_from",
        "effective_to",
        "quota",
        "source_url",
        "note",
    ];

    fn apply_to(self, s: &mut MeasureSpec) {
        use tradewatch_common::patch::set;
        set(&mut s.title, self.title);
        set(&mut s.target_economies, self.target_economies);
        set(&mut s.hs_codes, self.hs_codes);
        set(&mut s.excluded_hs_codes, self.excluded_hs_codes);
        set(&mut s.ad_valorem_percent, self.ad_valorem_percent);
        set(&mut s.specific_duty, self.specific_duty);
        set(&mut s.announced_on, self.announced_on);
        set(&mut s.effective_from, self.effective_from);
        set(&mut s.effective_to, self.effective_to);
        set(&mut s.quota, self.quota);
        set(&mut s.source_url, self.source_url);
        set(&mut s.note, self.note);
    }

    /// Whether the covered codes or origins change (their index rows with them).
    pub fn changes_coverage(&self) -> bool {
        self.hs_codes.is_some() || self.target_economies.is_some()
    }
}

/// A stored measure with its quota fill and status timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Measure {
    pub id: Uuid,
    pub spec: MeasureSpec,
    /// Quota used so far; zero for measures without a quota.
    pub quota_used: Decimal,
    /// Every status change, in the order they take hold (effective_on, then
    /// the order they were recorded).
    pub changes: Vec<StatusChange>,
    pub version: i64,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
    /// Who created it, and who wrote it last.
    pub create_actor: String,
    pub update_actor: String,
}

impl Measure {
    /// A new measure made on `today`, with its first status: IN_FORCE, or
    /// ANNOUNCED while its `effective_from` is ahead.
    pub fn new(spec: MeasureSpec, today: NaiveDate, now: DateTime<Utc>, actor: &str) -> Self {
        let id = tradewatch_common::types::new_id();
        let (status, effective_on) = Self::initial_status(&spec, today);
        let first = StatusChange {
            id: tradewatch_common::types::new_id(),
            measure_id: id,
            status,
            effective_on,
            note: "created".into(),
            change_time: now,
            actor: actor.to_owned(),
        };
        Self {
            id,
            spec,
            quota_used: Decimal::ZERO,
            changes: vec![first],
            version: 1,
            create_time: now,
            update_time: now,
            create_actor: actor.to_owned(),
            update_actor: actor.to_owned(),
        }
    }

    /// Applies an update: the fields the patch names change, then every
    /// rule of a measure holds again, and the quota keeps room for what was
    /// already used. Violations are named relative to the measure.
    pub fn update(&mut self, patch: MeasurePatch) -> Result<()> {
        let used = self.quota_used;
        self.spec = patched(
            &self.spec,
            |s| patch.apply_to(s),
            |s| {
                let mut violations = s.violations();
                if s.quota.as_ref().is_some_and(|q| q.quantity < used) {
                    violations.push(FieldViolation::new(
                        "quota.quantity",
                        format!("is less than the {} already used", format_decimal(used)),
                    ));
                }
                violations
            },
        )?;
        Ok(())
    }

    /// The status on `day`: the latest change effective on or before it,
    /// where a reinstatement (IN_FORCE) or an announcement defers to the
    /// dates, and the dates' EXPIRED wins over a suspension.
    pub fn status_on(&self, day: NaiveDate) -> MeasureStatus {
        let latest = self.changes.iter().rfind(|c| c.effective_on <= day).map(|c| c.status);
        status_on(self.spec.effective_from, self.spec.effective_to, latest, day)
    }

    /// Whether the measure applies on `day` (its status that day is IN_FORCE).
    pub fn applies_on(&self, day: NaiveDate) -> bool {
        self.status_on(day) == MeasureStatus::InForce
    }

    /// The days the measure applies, as inclusive periods in order: what
    /// [`Self::applies_on`] answers for every day, read off [`Self::status_on`]
    /// at the days where it can change (its dates and its changes' days), for
    /// indexes that ask about many measures at once.
    pub fn in_force_periods(&self) -> Vec<(NaiveDate, NaiveDate)> {
        let days = self.changes.iter().map(|c| c.effective_on);
        in_force_periods(self.spec.effective_from, self.spec.effective_to, days, |day| self.applies_on(day))
    }

    /// Room left in the quota, if the measure has one (never negative).
    pub fn quota_room(&self) -> Option<Decimal> {
        self.spec.quota.as_ref().map(|q| quota_room(q, self.quota_used))
    }

    /// Adds `quantity` to the quota fill, or says why it cannot.
    pub fn record_quota_usage(&mut self, quantity: Decimal) -> Result<()> {
        let Some(room) = self.quota_room() else {
            return Err(Error::failed_precondition(
                Reason::NotAQuota,
                format!("measure {} is a {} measure and has no quota", self.id, self.spec.kind.as_str()),
            ));
        };
        if quantity > room {
            // FAILED_PRECONDITION, not RESOURCE_EXHAUSTED: retry and alerting
            // middleware read the latter as rate limiting.
            return Err(Error::failed_precondition(
                Reason::QuotaExhausted,
                format!(
                    "the quota of measure {} has {} left; {} does not fit",
                    self.id,
                    format_decimal(room),
                    format_decimal(quantity)
                ),
            )
            .with_metadata("remaining", format_decimal(room)));
        }
        // Both are bounded (10^12), so the sum fits; checked all the same.
        self.quota_used = self
            .quota_used
            .checked_add(quantity)
            .ok_or_else(|| Error::out_of_range(Reason::QuotaOverflow, "the quota fill would overflow"))?;
        Ok(())
    }

    /// A status change of this measure, checked against its timeline.
    pub fn status_change(
        &self,
        status: MeasureStatus,
        effective_on: NaiveDate,
        note: String,
        now: DateTime<Utc>,
        actor: &str,
    ) -> Result<StatusChange> {
        self.check_status_change(status, effective_on)?;
        Ok(StatusChange {
            id: tradewatch_common::types::new_id(),
            measure_id: self.id,
            status,
            effective_on,
            note,
            change_time: now,
            actor: actor.to_owned(),
        })
    }

    /// Checks a status change before it is recorded.
    pub fn check_status_change(&self, to: MeasureStatus, effective_on: NaiveDate) -> Result<()> {
        let current = self.status_on(effective_on);
        let on = format_date(effective_on);
        let refuse = |reason: Reason, message: String| {
            Err(Error::failed_precondition(reason, message)
                .with_metadata("current_status", current.as_str())
                .with_metadata("effective_on", on.clone()))
        };
        match (current, to) {
            (_, MeasureStatus::Announced) => {
                Err(Error::invalid_field("status", "ANNOUNCED follows from effective_from and cannot be set"))
            }
            (MeasureStatus::Revoked | MeasureStatus::Expired, _) => refuse(
                Reason::MeasureStatusFinal,
                format!("measure {} is {} on {on}: its status can no longer change", self.id, current.as_str()),
            ),
            (c, t) if c == t => {
                refuse(Reason::MeasureStatusUnchanged, format!("measure {} is already {} on {on}", self.id, c.as_str()))
            }
            (c, MeasureStatus::InForce) if c != MeasureStatus::Suspended => refuse(
                Reason::MeasureNotSuspended,
                format!("only a suspended measure can be reinstated; measure {} is {} on {on}", self.id, c.as_str()),
            ),
            _ => Ok(()),
        }
    }

    /// The status recorded when a measure is created on `today`.
    fn initial_status(spec: &MeasureSpec, today: NaiveDate) -> (MeasureStatus, NaiveDate) {
        if today < spec.effective_from {
            (MeasureStatus::Announced, spec.announced_on.unwrap_or(today).min(spec.effective_from))
        } else {
            (MeasureStatus::InForce, spec.effective_from)
        }
    }

    /// Inserts `change` keeping the timeline ordered.
    pub fn push_change(&mut self, change: StatusChange) {
        let at = self.changes.partition_point(|c| c.effective_on <= change.effective_on);
        self.changes.insert(at, change);
    }
}

/// Most measures one `ImportMeasures` takes.
pub const MAX_MEASURES_PER_IMPORT: usize = 1_000;

/// What an import of measures does: the measures to create, and how many
/// were stored already as sent.
#[derive(Debug)]
pub struct MeasureImport {
    pub created: Vec<Measure>,
    pub unchanged: usize,
}

/// Plans an import: a reference not in `stored` is a new measure; one
/// stored with the same spec is left alone; one stored with another spec is
/// ALREADY_EXISTS naming `measures[i].reference` (an import never changes a
/// stored measure: UpdateMeasure does).
pub fn plan_measure_import(
    specs: Vec<MeasureSpec>,
    stored: &std::collections::HashMap<String, Measure>,
    today: NaiveDate,
    now: DateTime<Utc>,
    actor: &str,
) -> Result<MeasureImport> {
    let mut plan = MeasureImport { created: Vec::with_capacity(specs.len()), unchanged: 0 };
    for (i, spec) in specs.into_iter().enumerate() {
        match stored.get(&spec.reference) {
            None => plan.created.push(Measure::new(spec, today, now, actor)),
            Some(m) if m.spec == spec => plan.unchanged += 1,
            Some(m) => {
                return Err(Error::already_exists("measure", "reference", &spec.reference)
                    .with_metadata("field", format!("measures[{i}].reference"))
                    .with_metadata("id", m.id.to_string()));
            }
        }
    }
    Ok(plan)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn date(s: &str) -> NaiveDate {
        tradewatch_common::types::parse_date(s).unwrap_or_default()
    }

    pub fn eco(s: &str) -> Economy {
        Economy::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn hs(s: &str) -> HsCode {
        HsCode::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn dec(s: &str) -> Decimal {
        tradewatch_common::types::parse_decimal(s).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn spec(kind: MeasureKind, codes: &[&str], rate: &str) -> MeasureSpec {
        MeasureSpec {
            reference: format!("REF-{}-{}", kind.as_str(), codes.join("-")),
            title: "test".into(),
            imposing_economy: eco("CAN"),
            target_economies: vec![],
            kind,
            hs_codes: codes.iter().map(|c| hs(c)).collect(),
            excluded_hs_codes: vec![],
            ad_valorem_percent: dec(rate),
            specific_duty: None,
            announced_on: None,
            effective_from: date("2024-01-01"),
            effective_to: None,
            quota: None,
            source_url: String::new(),
            note: String::new(),
        }
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn an_import_creates_the_new_keeps_the_same_and_refuses_a_changed_reference() {
        let now = chrono::Utc::now();
        let stored_spec = spec(MeasureKind::Mfn, &["8703"], "6.1");
        let stored = Measure::new(stored_spec.clone(), date("2024-06-01"), now, "loader");
        let by_reference = std::collections::HashMap::from([(stored_spec.reference.clone(), stored.clone())]);
        let new = spec(MeasureKind::Mfn, &["8704"], "6.1");
        let plan = plan_measure_import(
            vec![new.clone(), stored_spec.clone()],
            &by_reference,
            date("2024-06-01"),
            now,
            "loader",
        )
        .unwrap();
        assert_eq!(plan.unchanged, 1);
        assert_eq!(plan.created.len(), 1);
        assert_eq!(plan.created[0].spec, new);
        assert_eq!(plan.created[0].changes.len(), 1, "a new measure starts its timeline");

        let changed = MeasureSpec { ad_valorem_percent: dec("7"), ..stored_spec };
        let err =
            plan_measure_import(vec![new, changed], &by_reference, date("2024-06-01"), now, "loader").unwrap_err();
        assert_eq!(err.code(), tonic::Code::AlreadyExists);
        assert!(err.to_string().contains("REF-MFN-8703"), "{err}");
    }

    pub fn measure(spec: MeasureSpec) -> Measure {
        Measure {
            id: Uuid::now_v7(),
            spec,
            quota_used: Decimal::ZERO,
            changes: vec![],
            version: 1,
            create_time: Utc::now(),
            update_time: Utc::now(),
            create_actor: "test".into(),
            update_actor: "test".into(),
        }
    }

    pub fn change(m: &Measure, status: MeasureStatus, on: &str) -> StatusChange {
        StatusChange {
            id: Uuid::now_v7(),
            measure_id: m.id,
            status,
            effective_on: date(on),
            note: "test".into(),
            change_time: Utc::now(),
            actor: "test".into(),
        }
    }

    #[test]
    fn kinds_and_statuses_round_trip_their_names() {
        for &k in MeasureKind::ALL {
            assert_eq!(MeasureKind::parse(k.as_str()), Some(k));
        }
        for &s in MeasureStatus::ALL {
            assert_eq!(MeasureStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(MeasureKind::parse("UNSPECIFIED"), None);
    }

    #[test]
    fn status_follows_dates_and_the_latest_change() {
        let mut s = spec(MeasureKind::Surtax, &["1205"], "100");
        s.effective_from = date("2025-03-20");
        s.effective_to = Some(date("2026-12-31"));
        let mut m = measure(s);
        assert_eq!(m.status_on(date("2025-03-19")), MeasureStatus::Announced);
        assert_eq!(m.status_on(date("2025-03-20")), MeasureStatus::InForce);
        assert_eq!(m.status_on(date("2027-01-01")), MeasureStatus::Expired);
        let suspended = change(&m, MeasureStatus::Suspended, "2026-03-01");
        m.push_change(suspended);
        assert_eq!(m.status_on(date("2026-02-28")), MeasureStatus::InForce, "before the suspension");
        assert_eq!(m.status_on(date("2026-03-01")), MeasureStatus::Suspended, "dated suspension");
        assert!(!m.applies_on(date("2026-06-01")));
        assert_eq!(m.status_on(date("2027-01-01")), MeasureStatus::Expired, "expiry wins over suspension");
        let reinstated = change(&m, MeasureStatus::InForce, "2026-06-01");
        m.push_change(reinstated);
        assert_eq!(m.status_on(date("2026-06-01")), MeasureStatus::InForce);
        let revoked = change(&m, MeasureStatus::Revoked, "2026-09-01");
        m.push_change(revoked);
        assert_eq!(m.status_on(date("2027-01-01")), MeasureStatus::Revoked);
    }

    #[test]
    fn status_changes_are_checked() {
        let mut m = measure(spec(MeasureKind::Surtax, &["72"], "25"));
        let d = date("2025-01-01");
        assert!(m.check_status_change(MeasureStatus::Suspended, d).is_ok());
        let code = |r: Result<()>| r.err().map(|e| (e.code(), e.reason().to_owned()));
        assert_eq!(
            code(m.check_status_change(MeasureStatus::InForce, d)),
            Some((tonic::Code::FailedPrecondition, "MEASURE_STATUS_UNCHANGED".to_owned()))
        );
        assert_eq!(
            code(m.check_status_change(MeasureStatus::InForce, date("2023-06-01"))),
            Some((tonic::Code::FailedPrecondition, "MEASURE_NOT_SUSPENDED".to_owned()))
        );
        assert_eq!(
            code(m.check_status_change(MeasureStatus::Announced, d)),
            Some((tonic::Code::InvalidArgument, "INVALID_ARGUMENT".to_owned()))
        );
        let c = change(&m, MeasureStatus::Suspended, "2025-01-01");
        m.push_change(c);
        assert_eq!(
            code(m.check_status_change(MeasureStatus::Suspended, d)),
            Some((tonic::Code::FailedPrecondition, "MEASURE_STATUS_UNCHANGED".to_owned()))
        );
        assert!(m.check_status_change(MeasureStatus::InForce, d).is_ok());
        let c = change(&m, MeasureStatus::Revoked, "2025-02-01");
        m.push_change(c);
        assert_eq!(
            code(m.check_status_change(MeasureStatus::InForce, date("2025-03-01"))),
            Some((tonic::Code::FailedPrecondition, "MEASURE_STATUS_FINAL".to_owned()))
        );
    }

    #[test]
    fn new_measures_are_announced_until_effective() {
        let mut s = spec(MeasureKind::Surtax, &["72"], "25");
        s.effective_from = date("2030-01-01");
        s.announced_on = Some(date("2029-06-01"));
        assert_eq!(Measure::initial_status(&s, date("2029-07-01")), (MeasureStatus::Announced, date("2029-06-01")));
        assert_eq!(Measure::initial_status(&s, date("2030-01-02")), (MeasureStatus::InForce, date("2030-01-01")));
    }

    #[test]
    fn quota_usage_never_passes_the_quantity() {
        let mut s = spec(MeasureKind::TariffRateQuota, &["870380"], "6.1");
        s.quota = Some(QuotaTerms {
            quantity: dec("20"),
            unit: "vehicle".into(),
            period_start: date("2026-01-01"),
            period_end: date("2026-12-31"),
        });
        let mut m = measure(s);
        assert!(m.record_quota_usage(dec("19.5")).is_ok());
        let err = m.record_quota_usage(dec("1")).err();
        assert_eq!(err.as_ref().map(|e| e.code()), Some(tonic::Code::FailedPrecondition));
        assert_eq!(err.as_ref().and_then(|e| e.metadata().get("remaining").cloned()), Some("0.5".into()));
        assert_eq!(m.quota_used, dec("19.5"), "a refused usage records nothing");
        assert!(m.record_quota_usage(dec("0.5")).is_ok());
        assert_eq!(m.quota_room(), Some(Decimal::ZERO));
        let mut plain = measure(spec(MeasureKind::Mfn, &["87"], "6.1"));
        assert_eq!(plain.record_quota_usage(dec("1")).err().as_ref().map(Error::reason), Some("NOT_A_QUOTA"));
    }

    #[test]
    fn cross_field_rules_name_their_field() {
        let mut s = spec(MeasureKind::Mfn, &["8703"], "6.1");
        s.excluded_hs_codes = vec![hs("870380"), hs("7208")];
        s.target_economies = vec![eco("CAN")];
        s.effective_to = Some(date("2023-01-01"));
        s.quota = Some(QuotaTerms {
            quantity: dec("1"),
            unit: "u".into(),
            period_start: date("2026-01-01"),
            period_end: date("2026-12-31"),
        });
        let fields: Vec<_> = s.violations().into_iter().map(|v| v.field).collect();
        assert_eq!(fields, ["excluded_hs_codes[1]", "target_economies[0]", "effective_to", "quota"]);
        let mut trq = spec(MeasureKind::TariffRateQuota, &[], "0");
        trq.quota = None;
        let fields: Vec<_> = trq.violations().into_iter().map(|v| v.field).collect();
        assert_eq!(fields, ["hs_codes", "quota"]);
    }

    #[test]
    fn exclusions_carve_codes_out() {
        let mut s = spec(MeasureKind::Surtax, &["72", "7308"], "25");
        s.excluded_hs_codes = vec![hs("7208")];
        assert_eq!(s.matched_prefix(&hs("72101100")).map(HsCode::as_str), Some("72"));
        assert_eq!(s.matched_prefix(&hs("72085100")), None);
        assert_eq!(s.matched_prefix(&hs("73089000")).map(HsCode::as_str), Some("7308"));
        assert_eq!(s.matched_prefix(&hs("76011000")), None);
    }

    proptest::proptest! {
        #[test]
        fn in_force_periods_say_what_applies_on_says(
            from in 0i64..40, to in proptest::option::of(0i64..60),
            changes in proptest::collection::vec((0i64..70, 0usize..4), 0..5),
            probe in -5i64..80,
        ) {
            let day = |n: i64| date("2025-01-01") + chrono::Duration::days(n);
            let mut s = spec(MeasureKind::Surtax, &["72"], "25");
            s.effective_from = day(from);
            s.effective_to = to.map(|t| day(from + t));
            let mut m = measure(s);
            let statuses = [MeasureStatus::Suspended, MeasureStatus::InForce, MeasureStatus::Revoked, MeasureStatus::Expired];
            for (on, status) in changes {
                let c = change(&m, statuses[status], "2025-01-01");
                m.push_change(StatusChange { effective_on: day(on), ..c });
            }
            let periods = m.in_force_periods();
            let inside = periods.iter().any(|(a, b)| *a <= day(probe) && day(probe) <= *b);
            proptest::prop_assert_eq!(inside, m.applies_on(day(probe)), "{:?}", periods);
        }
    }

    #[test]
    fn coverage_tells_whole_from_part() {
        let mut s = spec(MeasureKind::AntiDumping, &["120510", "72"], "10");
        s.excluded_hs_codes = vec![hs("720810")];
        let p = |c: &str| hs(c);
        // Finer or the same: whole, by the longest prefix.
        assert_eq!(s.coverage("12051090"), Coverage::Whole(&p("120510")));
        assert_eq!(s.coverage("120510"), Coverage::Whole(&p("120510")));
        assert_eq!(s.coverage("7210"), Coverage::Whole(&p("72")));
        // Coarser than the measure: in part.
        assert_eq!(s.coverage("1205"), Coverage::Partial { prefix: &p("120510"), why: Partly::Coarser });
        assert_eq!(s.coverage("12"), Coverage::Partial { prefix: &p("120510"), why: Partly::Coarser });
        // An exclusion inside the code cuts it; one the code lies inside takes it out.
        assert_eq!(s.coverage("7208"), Coverage::Partial { prefix: &p("72"), why: Partly::CutBy(&p("720810")) });
        assert_eq!(s.coverage("72"), Coverage::Partial { prefix: &p("72"), why: Partly::CutBy(&p("720810")) });
        assert_eq!(s.coverage("720810"), Coverage::None);
        assert_eq!(s.coverage("72081000"), Coverage::None);
        // Elsewhere: nothing.
        assert_eq!(s.coverage("1206"), Coverage::None);
        assert_eq!(s.coverage("73"), Coverage::None);
        // A shipment's line an exclusion cuts into is covered as declared.
        let mut cars = spec(MeasureKind::Surtax, &["8703"], "100");
        cars.excluded_hs_codes = vec![hs("87038010")];
        assert_eq!(cars.matched_prefix(&hs("870380")).map(HsCode::as_str), Some("8703"));
        assert_eq!(cars.matched_prefix(&hs("87038010")), None);
        let fine = spec(MeasureKind::Surtax, &["87038010"], "100");
        assert_eq!(fine.matched_prefix(&hs("870380")), None, "a line coarser than the measure is not covered");
    }
}
