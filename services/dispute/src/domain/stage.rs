//! The stages of a dispute and the only legal moves between them, from the
//! WTO dispute settlement process. One table serves `AdvanceDispute` and the
//! `ILLEGAL_STAGE_TRANSITION` error's list of legal next stages.

tradewatch_common::named_enum!(
    pub enum Stage {
        Consultations => "CONSULTATIONS",
        PanelEstablished => "PANEL_ESTABLISHED",
        PanelComposed => "PANEL_COMPOSED",
        PanelSuspended => "PANEL_SUSPENDED",
        PanelReportCirculated => "PANEL_REPORT_CIRCULATED",
        Appealed => "APPEALED",
        AppealArbitration => "APPEAL_ARBITRATION",
        ReportAdopted => "REPORT_ADOPTED",
        Compliance => "COMPLIANCE",
        RetaliationAuthorized => "RETALIATION_AUTHORIZED",
        Settled => "SETTLED",
        Withdrawn => "WITHDRAWN",
        Lapsed => "LAPSED",
        Concluded => "CONCLUDED",
    }
);

use Stage::*;

impl Stage {
    /// The stages a dispute may move to from this one: the whole table.
    pub fn next(self) -> &'static [Stage] {
        match self {
            Consultations => &[PanelEstablished, Settled, Withdrawn],
            PanelEstablished => &[PanelComposed, PanelSuspended, Settled, Withdrawn],
            PanelComposed => &[PanelSuspended, PanelReportCirculated, Settled, Withdrawn],
            PanelSuspended => &[PanelComposed, Lapsed, Settled, Withdrawn],
            PanelReportCirculated => &[Appealed, AppealArbitration, ReportAdopted, Settled],
            Appealed => &[ReportAdopted, Settled],
            AppealArbitration => &[Compliance, Concluded, Settled],
            ReportAdopted => &[Compliance, Concluded, Settled],
            Compliance => &[RetaliationAuthorized, Concluded, Settled],
            RetaliationAuthorized => &[Concluded, Settled],
            Settled | Withdrawn | Lapsed | Concluded => &[],
        }
    }

    pub fn can_move_to(self, to: Stage) -> bool {
        self.next().contains(&to)
    }

    /// Terminal stages end the dispute: `closed_on` is set on entering one.
    pub fn is_terminal(self) -> bool {
        self.next().is_empty()
    }

    /// The terminal stages, for the open/closed filter.
    pub fn terminal() -> impl Iterator<Item = Stage> {
        Self::ALL.iter().copied().filter(|s| s.is_terminal())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The table of the design, written out as pairs, to check every one of
    /// the 14 × 14 moves against.
    const LEGAL: &[(Stage, Stage)] = &[
        (Consultations, PanelEstablished),
        (Consultations, Settled),
        (Consultations, Withdrawn),
        (PanelEstablished, PanelComposed),
        (PanelEstablished, PanelSuspended),
        (PanelEstablished, Settled),
        (PanelEstablished, Withdrawn),
        (PanelComposed, PanelSuspended),
        (PanelComposed, PanelReportCirculated),
        (PanelComposed, Settled),
        (PanelComposed, Withdrawn),
        (PanelSuspended, PanelComposed),
        (PanelSuspended, Lapsed),
        (PanelSuspended, Settled),
        (PanelSuspended, Withdrawn),
        (PanelReportCirculated, Appealed),
        (PanelReportCirculated, AppealArbitration),
        (PanelReportCirculated, ReportAdopted),
        (PanelReportCirculated, Settled),
        (Appealed, ReportAdopted),
        (Appealed, Settled),
        (AppealArbitration, Compliance),
        (AppealArbitration, Concluded),
        (AppealArbitration, Settled),
        (ReportAdopted, Compliance),
        (ReportAdopted, Concluded),
        (ReportAdopted, Settled),
        (Compliance, RetaliationAuthorized),
        (Compliance, Concluded),
        (Compliance, Settled),
        (RetaliationAuthorized, Concluded),
        (RetaliationAuthorized, Settled),
    ];

    #[test]
    fn every_pair_of_stages_is_legal_exactly_as_the_table_says() {
        let mut checked = 0;
        for &from in Stage::ALL {
            for &to in Stage::ALL {
                assert_eq!(from.can_move_to(to), LEGAL.contains(&(from, to)), "{from:?} -> {to:?}");
                checked += 1;
            }
        }
        assert_eq!(checked, 196);
    }

    #[test]
    fn exactly_four_stages_are_terminal() {
        let terminal: Vec<_> = Stage::terminal().collect();
        assert_eq!(terminal, [Settled, Withdrawn, Lapsed, Concluded]);
        for t in terminal {
            assert!(!LEGAL.iter().any(|(from, _)| *from == t), "{t:?} has no way out");
        }
    }

    #[test]
    fn names_round_trip() {
        for &s in Stage::ALL {
            assert_eq!(Stage::parse(s.as_str()), Some(s));
        }
    }

    proptest! {
        /// Any walk of legal moves ends consistent: every stage reached was
        /// legal from the one before, and a terminal stage is never left.
        #[test]
        fn legal_walks_stay_consistent(choices in proptest::collection::vec(0usize..4, 0..20)) {
            let mut stage = Consultations;
            let mut path = vec![stage];
            for c in choices {
                let next = stage.next();
                if next.is_empty() {
                    prop_assert!(stage.is_terminal());
                    break;
                }
                let to = next[c % next.len()];
                prop_assert!(stage.can_move_to(to));
                stage = to;
                path.push(stage);
            }
            prop_assert!(path.iter().take(path.len() - 1).all(|s| !s.is_terminal()), "only the last stage may be terminal: {path:?}");
        }
    }
}
