//! Commitments made in a session, and the effect a fulfilled one has on the
//! dispute or tariff service.

use chrono::{DateTime, NaiveDate, Utc};
use tradewatch_common::{Error, Reason, Result, error::FieldViolation, types::Economy};
use uuid::Uuid;

use tradewatch_common::named_enum;

named_enum!(pub enum CommitmentStatus {
    Open => "OPEN",
    InProgress => "IN_PROGRESS",
    Fulfilled => "FULFILLED",
    Lapsed => "LAPSED",
    Withdrawn => "WITHDRAWN",
});

impl CommitmentStatus {
    /// OPEN → IN_PROGRESS or any end; IN_PROGRESS → OPEN or any end;
    /// FULFILLED, LAPSED and WITHDRAWN are final.
    pub fn next(self) -> &'static [CommitmentStatus] {
        use CommitmentStatus::*;
        match self {
            Open => &[InProgress, Fulfilled, Lapsed, Withdrawn],
            InProgress => &[Open, Fulfilled, Lapsed, Withdrawn],
            Fulfilled | Lapsed | Withdrawn => &[],
        }
    }

    /// Open or in progress: what `overdue_on` looks at.
    pub fn is_pending(self) -> bool {
        matches!(self, Self::Open | Self::InProgress)
    }
}

named_enum!(pub enum Effect {
    None => "NONE",
    SettleDispute => "SETTLE_DISPUTE",
    SuspendMeasure => "SUSPEND_MEASURE",
    RevokeMeasure => "REVOKE_MEASURE",
});

named_enum!(pub enum EffectState {
    None => "NONE",
    Pending => "PENDING",
    Applied => "APPLIED",
    Rejected => "REJECTED",
});

/// Everything a client sets on a commitment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitmentSpec {
    pub description: String,
    /// One or more, no repeats: a joint commitment has several owners.
    pub owner_economies: Vec<Economy>,
    pub due_on: Option<NaiveDate>,
    pub dispute_id: Option<Uuid>,
    pub measure_id: Option<Uuid>,
    pub effect: Effect,
    pub effective_on: Option<NaiveDate>,
}

impl CommitmentSpec {
    /// The rules between fields, named relative to the commitment.
    pub fn violations(&self) -> Vec<FieldViolation> {
        let mut out = Vec::new();
        if self.owner_economies.is_empty() {
            out.push(FieldViolation::new("owner_economies", "is required: at least one economy"));
        }
        match self.effect {
            Effect::SettleDispute if self.dispute_id.is_none() => {
                out.push(FieldViolation::new("dispute_id", "is required by the SETTLE_DISPUTE effect"));
            }
            Effect::SuspendMeasure | Effect::RevokeMeasure if self.measure_id.is_none() => {
                out.push(FieldViolation::new(
                    "measure_id",
                    format!("is required by the {} effect", self.effect.as_str()),
                ));
            }
            _ => {}
        }
        out
    }
}

impl CommitmentSpec {
    /// The rules against the session the commitment is added to: every
    /// owner takes part in it.
    pub fn violations_in(&self, session: &super::SessionSpec) -> Vec<FieldViolation> {
        self.owner_economies
            .iter()
            .enumerate()
            .filter(|(_, owner)| !session.economies.contains(owner))
            .map(|(i, owner)| {
                FieldViolation::new(
                    format!("owner_economies[{i}]"),
                    format!("{owner} does not take part in the session"),
                )
            })
            .collect()
    }
}

/// What a fulfilled commitment asks of another service, written to the
/// outbox in the transaction that fulfils it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectOrder {
    /// Also the idempotency key (`request_id`) sent with every delivery.
    pub id: Uuid,
    pub commitment_id: Uuid,
    pub effect: Effect,
    pub target_id: Uuid,
    pub effective_on: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commitment {
    pub id: Uuid,
    pub session_id: Uuid,
    pub spec: CommitmentSpec,
    pub status: CommitmentStatus,
    pub effect_state: EffectState,
    pub effect_detail: String,
    pub version: i64,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
    /// Who added it, who wrote it last, and who set its current status.
    pub create_actor: String,
    pub update_actor: String,
    pub status_actor: String,
}

impl Commitment {
    pub fn new(session_id: Uuid, spec: CommitmentSpec, now: DateTime<Utc>, by: &str) -> Self {
        Self {
            id: tradewatch_common::types::new_id(),
            session_id,
            spec,
            status: CommitmentStatus::Open,
            effect_state: EffectState::None,
            effect_detail: String::new(),
            version: 1,
            create_time: now,
            update_time: now,
            create_actor: by.to_owned(),
            update_actor: by.to_owned(),
            status_actor: by.to_owned(),
        }
    }

    /// Changes the status. Fulfilling a commitment with an effect returns the
    /// order to deliver, dated `effective_on` (given here, else the commitment's,
    /// else `today`), and marks the effect PENDING.
    pub fn set_status(
        &mut self,
        to: CommitmentStatus,
        effective_on: Option<NaiveDate>,
        today: NaiveDate,
        by: &str,
    ) -> Result<Option<EffectOrder>> {
        if !self.status.next().contains(&to) {
            let allowed: Vec<String> =
                self.status.next().iter().map(|s| format!("COMMITMENT_STATUS_{}", s.as_str())).collect();
            return Err(Error::failed_precondition(
                Reason::IllegalStatusTransition,
                format!("commitment {} cannot go from {} to {}", self.id, self.status.as_str(), to.as_str()),
            )
            .with_metadata("allowed_statuses", allowed.join(",")));
        }
        self.status = to;
        by.clone_into(&mut self.status_actor);
        if to != CommitmentStatus::Fulfilled {
            return Ok(None);
        }
        let target = match self.spec.effect {
            Effect::None => return Ok(None),
            Effect::SettleDispute => self.spec.dispute_id,
            Effect::SuspendMeasure | Effect::RevokeMeasure => self.spec.measure_id,
        };
        let Some(target_id) = target else {
            return Err(Error::internal(anyhow::anyhow!("commitment {} has an effect without a target", self.id)));
        };
        let effective_on = effective_on.or(self.spec.effective_on).unwrap_or(today);
        self.spec.effective_on = Some(effective_on);
        self.effect_state = EffectState::Pending;
        self.effect_detail = String::new();
        Ok(Some(EffectOrder {
            id: tradewatch_common::types::new_id(),
            commitment_id: self.id,
            effect: self.spec.effect,
            target_id,
            effective_on,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::session::tests::{day, eco};

    fn spec(effect: Effect) -> CommitmentSpec {
        CommitmentSpec {
            description: "Suspend the additional duty on canola meal and peas".into(),
            owner_economies: vec![eco("CHN")],
            due_on: Some(day("2026-03-01")),
            dispute_id: None,
            measure_id: Some(Uuid::now_v7()),
            effect,
            effective_on: None,
        }
    }

    #[test]
    fn every_status_move_is_as_the_rules_say() {
        use CommitmentStatus::*;
        for from in CommitmentStatus::ALL {
            for to in CommitmentStatus::ALL {
                let mut c = Commitment::new(Uuid::now_v7(), spec(Effect::None), Utc::now(), "test");
                c.status = *from;
                let legal = from.is_pending() && from != to;
                assert_eq!(c.set_status(*to, None, day("2026-03-01"), "test").is_ok(), legal, "{from:?} -> {to:?}");
                assert!(!matches!((from, to), (Fulfilled | Lapsed | Withdrawn, _)) || !legal);
            }
        }
    }

    #[test]
    fn fulfilling_an_effect_orders_it_dated() -> Result<()> {
        let mut c = Commitment::new(Uuid::now_v7(), spec(Effect::SuspendMeasure), Utc::now(), "test");
        let order = c.set_status(CommitmentStatus::Fulfilled, None, day("2026-03-05"), "test")?;
        let order = order.ok_or_else(|| Error::internal(anyhow::anyhow!("no order")))?;
        assert_eq!(
            (order.effect, order.effective_on, Some(order.target_id)),
            (Effect::SuspendMeasure, day("2026-03-05"), c.spec.measure_id)
        );
        assert_eq!(c.effect_state, EffectState::Pending);

        let mut dated = Commitment::new(
            Uuid::now_v7(),
            CommitmentSpec { effective_on: Some(day("2026-03-01")), ..spec(Effect::RevokeMeasure) },
            Utc::now(),
            "test",
        );
        let order = dated.set_status(CommitmentStatus::Fulfilled, None, day("2026-03-05"), "test")?;
        assert_eq!(order.map(|o| o.effective_on), Some(day("2026-03-01")), "the commitment's own effective_on");
        let mut overridden = Commitment::new(Uuid::now_v7(), spec(Effect::RevokeMeasure), Utc::now(), "test");
        let order =
            overridden.set_status(CommitmentStatus::Fulfilled, Some(day("2026-04-01")), day("2026-03-05"), "test")?;
        assert_eq!(order.map(|o| o.effective_on), Some(day("2026-04-01")));

        let mut plain = Commitment::new(Uuid::now_v7(), spec(Effect::None), Utc::now(), "test");
        assert_eq!(plain.set_status(CommitmentStatus::Fulfilled, None, day("2026-03-05"), "test")?, None);
        assert_eq!(plain.effect_state, EffectState::None);
        Ok(())
    }

    #[test]
    fn an_effect_needs_its_target() {
        let mut s = spec(Effect::SettleDispute);
        assert_eq!(s.violations().into_iter().map(|v| v.field).collect::<Vec<_>>(), ["dispute_id"]);
        s.effect = Effect::SuspendMeasure;
        s.measure_id = None;
        assert_eq!(s.violations().into_iter().map(|v| v.field).collect::<Vec<_>>(), ["measure_id"]);
    }

    #[test]
    fn open_and_in_progress_are_the_pending_statuses() {
        let pending: Vec<_> = CommitmentStatus::ALL.iter().filter(|s| s.is_pending()).collect();
        assert_eq!(pending, [&CommitmentStatus::Open, &CommitmentStatus::InProgress]);
    }
}
