//! GetDisputeDossier: the dispute and its timeline, the measures it cites,
//! the sessions whose agenda names it and the commitments acting on it or
//! its measures; a missing dispute; its peers down.

use tradewatch_common::proto::{dialogue as lpb, dispute as dpb, relations as pb, tariff::MeasureKind::*};

use crate::helpers::*;

#[tokio::test]
async fn a_dossier_gathers_everything_around_a_dispute() {
    let mut app = spawn_app().await;
    let canola =
        app.measure(measure("CN-AD-1205", "CHN", &["CAN"], AntiDumping, &["1205"], "75.8", "2025-08-14")).await;
    let pork = app.measure(measure("CN-PORK", "CHN", &["CAN"], Retaliatory, &["0203"], "25", "2025-03-20")).await;
    let dispute = app
        .dispute(dpb::Dispute {
            reference: "WT/DS589".into(),
            title: "China — Measures concerning the importation of canola seed from Canada".into(),
            complainant: "CAN".into(),
            respondent: "CHN".into(),
            forum: dpb::DisputeForum::Wto.into(),
            opened_on: "2019-09-09".into(),
            measure_ids: vec![canola.id.clone()],
            ..Default::default()
        })
        .await;
    app.advance(&dispute.id, dpb::DisputeStage::PanelEstablished, "2021-07-26").await;
    let mut talks = session("Canola talks", "2025-06-03", &["CAN", "CHN"]);
    talks.agenda =
        vec![lpb::AgendaItem { topic: "Canola".into(), dispute_ids: vec![dispute.id.clone()], measure_ids: vec![] }];
    let talks = app.session(talks).await;
    let other = app.session(session("Other talks", "2025-07-03", &["CAN", "CHN"])).await;
    let on_dispute = app
        .commitment(
            &talks.id,
            lpb::Commitment {
                description: "Settle WT/DS589".into(),
                owner_economies: vec!["CAN".into(), "CHN".into()],
                due_on: "2026-06-30".into(),
                dispute_id: dispute.id.clone(),
                ..Default::default()
            },
        )
        .await;
    let on_measure = app
        .commitment(
            &other.id,
            lpb::Commitment {
                description: "Review the canola duty".into(),
                owner_economies: vec!["CHN".into()],
                due_on: "2026-03-01".into(),
                measure_id: canola.id.clone(),
                ..Default::default()
            },
        )
        .await;
    app.commitment(
        &other.id,
        lpb::Commitment {
            description: "Review the pork duty".into(),
            owner_economies: vec!["CHN".into()],
            measure_id: pork.id.clone(),
            ..Default::default()
        },
    )
    .await;

    let dossier = app
        .client
        .clone()
        .get_dispute_dossier(pb::GetDisputeDossierRequest { dispute_id: dispute.id.clone() })
        .await
        .unwrap()
        .into_inner()
        .dossier
        .unwrap();
    assert_eq!(dossier.dispute.as_ref().unwrap().reference, "WT/DS589");
    let timeline = dossier.timeline.unwrap();
    let stages: Vec<dpb::DisputeStage> = timeline.events.iter().map(|e| e.to_stage()).collect();
    assert_eq!(stages, [dpb::DisputeStage::Consultations, dpb::DisputeStage::PanelEstablished]);
    let measures = dossier.measures.unwrap();
    assert_eq!(measures.status(), pb::SectionStatus::Ok);
    assert_eq!(measures.measures.iter().map(|m| m.id.clone()).collect::<Vec<_>>(), [canola.id.clone()]);
    let sessions = dossier.sessions.unwrap();
    assert_eq!(sessions.sessions.iter().map(|s| s.id.clone()).collect::<Vec<_>>(), [talks.id.clone()]);
    let commitments = dossier.commitments.unwrap();
    let ids: Vec<String> = commitments.commitments.iter().map(|c| c.commitment.as_ref().unwrap().id.clone()).collect();
    assert_eq!(ids, [on_measure.id.clone(), on_dispute.id.clone()], "by due day; the pork one acts on neither");

    // The tariff service down: its section says so, the dossier stands.
    app.stop_tariff().await;
    let dossier = app
        .client
        .clone()
        .get_dispute_dossier(pb::GetDisputeDossierRequest { dispute_id: dispute.id.clone() })
        .await
        .unwrap()
        .into_inner()
        .dossier
        .unwrap();
    let measures = dossier.measures.unwrap();
    assert_eq!((measures.status(), measures.peer.as_str()), (pb::SectionStatus::Unavailable, "tariff"));
    assert_eq!(dossier.timeline.unwrap().status(), pb::SectionStatus::Ok);
    assert_eq!(dossier.commitments.unwrap().commitments.len(), 2);
}
