//! GetBilateralBrief: each section against records made through the other
//! services' APIs; a peer stopped, a peer too slow for the deadline; a kept
//! brief that follows a write; bad input.

use std::time::{Duration, Instant};

use tonic::Code;
use tradewatch_common::proto::{
    dialogue as lpb, dispute as dpb, relations as pb,
    tariff::{self as tpb, MeasureKind::*},
};

use crate::helpers::*;

/// China's meal duty, Canada's EV surtax and a general safeguard; flows each
/// way; WT/DS589 lapsed and WT/DS636 under way; a session in the window and
/// one before it, and commitments.
async fn the_record(app: &TestApp) -> (tpb::TariffMeasure, dpb::Dispute) {
    app.measure(measure("CN-MFN-2306", "CHN", &[], Mfn, &["2306"], "5", "2024-01-01")).await;
    let meal = app.measure(measure("CN-MEAL", "CHN", &["CAN"], Retaliatory, &["230641"], "100", "2025-03-20")).await;
    app.measure(measure("CN-PORK", "CHN", &["CAN"], Retaliatory, &["0203"], "25", "2025-03-20")).await;
    app.measure(measure("CN-USA", "CHN", &["USA"], Retaliatory, &["0203"], "10", "2025-03-20")).await;
    app.measure(measure("CA-MFN-8703", "CAN", &[], Mfn, &["8703"], "6.1", "2024-01-01")).await;
    app.measure(measure("SOR/2024-187", "CAN", &["CHN"], Surtax, &["87038000"], "100", "2024-10-01")).await;
    app.measure(measure("CA-SAFEGUARD-72", "CAN", &[], Safeguard, &["7208"], "15", "2024-01-01")).await;
    app.flows(vec![
        flow("CAN", "CHN", "230641", 2024, "921000000"),
        flow("CAN", "CHN", "0203", 2024, "468600000"),
        flow("CHN", "CAN", "87038000", 2023, "2200000000"),
    ])
    .await;
    let ds589 = app
        .dispute(dpb::Dispute {
            reference: "WT/DS589".into(),
            title: "China — Measures concerning the importation of canola seed from Canada".into(),
            complainant: "CAN".into(),
            respondent: "CHN".into(),
            forum: dpb::DisputeForum::Wto.into(),
            opened_on: "2019-09-09".into(),
            ..Default::default()
        })
        .await;
    app.advance(&ds589.id, dpb::DisputeStage::PanelEstablished, "2021-07-26").await;
    app.advance(&ds589.id, dpb::DisputeStage::PanelSuspended, "2022-08-30").await;
    app.advance(&ds589.id, dpb::DisputeStage::Lapsed, "2023-08-31").await;
    let ds636 = app
        .dispute(dpb::Dispute {
            reference: "WT/DS636".into(),
            title: "China — Additional import duties on certain products from Canada".into(),
            complainant: "CAN".into(),
            respondent: "CHN".into(),
            forum: dpb::DisputeForum::Wto.into(),
            opened_on: "2025-03-20".into(),
            measure_ids: vec![meal.id.clone()],
            ..Default::default()
        })
        .await;
    app.advance(&ds636.id, dpb::DisputeStage::PanelEstablished, "2025-06-23").await;
    let beijing = app.session(session("Beijing", "2026-01-16", &["CAN", "CHN"])).await;
    app.session(session("Paris", "2025-01-10", &["CAN", "CHN"])).await;
    app.session(session("Elsewhere", "2026-01-20", &["CAN", "USA"])).await;
    app.commitment(
        &beijing.id,
        lpb::Commitment {
            description: "Suspend the additional 100% tariff on Canadian canola meal".into(),
            owner_economies: vec!["CHN".into()],
            due_on: "2026-03-01".into(),
            measure_id: meal.id.clone(),
            dispute_id: ds636.id.clone(),
            effect: lpb::CommitmentEffect::SuspendMeasure.into(),
            effective_on: "2026-03-01".into(),
            ..Default::default()
        },
    )
    .await;
    app.commitment(
        &beijing.id,
        lpb::Commitment {
            description: "Launch a Ministerial Energy Dialogue".into(),
            owner_economies: vec!["CAN".into(), "CHN".into()],
            due_on: "2026-12-31".into(),
            ..Default::default()
        },
    )
    .await;
    (meal, ds636)
}

fn references(section: &pb::MeasuresSection) -> Vec<String> {
    section.measures.iter().map(|m| m.measure.as_ref().unwrap().reference.clone()).collect()
}

#[tokio::test]
async fn a_brief_has_every_section_from_the_record() {
    let app = spawn_app().await;
    let (meal, ds636) = the_record(&app).await;
    let brief = app.brief("2026-03-15").await;
    assert_eq!((brief.economy_a.as_str(), brief.economy_b.as_str(), brief.on.as_str()), ("CAN", "CHN", "2026-03-15"));

    // Measures: each side's, not MFN, not another origin's, ranked by trade.
    let m = brief.measures.unwrap();
    assert_eq!(m.status(), pb::SectionStatus::Ok);
    assert_eq!(references(&m), ["SOR/2024-187", "CA-SAFEGUARD-72", "CN-MEAL", "CN-PORK"]);
    let surtax = &m.measures[0];
    assert_eq!((surtax.year, amounts(&surtax.covered_value)), (2023, vec![("CAD".into(), "2200000000.00".into())]));
    assert!(m.measures[1].covered_value.is_empty(), "a general safeguard that hits no recorded trade");
    let meal_line = &m.measures[2];
    assert_eq!(
        (meal_line.year, amounts(&meal_line.covered_value)),
        (2024, vec![("CAD".into(), "921000000.00".into())])
    );

    // Disputes: the lapsed one is over, WT/DS636 is at its panel.
    let d = brief.disputes.unwrap();
    assert_eq!(d.status(), pb::SectionStatus::Ok);
    assert_eq!(d.disputes.len(), 1);
    let under_way = &d.disputes[0];
    assert_eq!(under_way.dispute.as_ref().unwrap().id, ds636.id);
    assert_eq!(
        (under_way.stage(), under_way.stage_since.as_str()),
        (dpb::DisputeStage::PanelEstablished, "2025-06-23")
    );
    assert_eq!(under_way.days_in_stage, 265);

    // Sessions in the twelve months to the day, of both.
    let s = brief.sessions.unwrap();
    let titles: Vec<&str> = s.sessions.iter().map(|s| s.title.as_str()).collect();
    assert_eq!(titles, ["Beijing"]);

    // Commitments still open, the overdue one marked, and what the
    // suspension is worth: the meal trade and its duty before and after.
    let c = brief.commitments.unwrap();
    assert_eq!(c.status(), pb::SectionStatus::Ok);
    assert_eq!(c.commitments.len(), 2);
    let suspend = &c.commitments[0];
    assert!(suspend.overdue, "due 2026-03-01, still open on 2026-03-15");
    assert!(!c.commitments[1].overdue);
    assert!(c.commitments[1].worth.is_none());
    let worth = suspend.worth.as_ref().unwrap();
    assert_eq!(worth.status(), pb::SectionStatus::Ok);
    assert_eq!(amounts(&worth.relieved_value), [("CAD".into(), "921000000.00".into())]);
    assert_eq!(worth.relieved_upper_bound_value, worth.relieved_value);
    assert!(!worth.approximate, "the meal flow is the measure's own line");
    assert_eq!((worth.hs_code.as_str(), worth.origin_economy.as_str(), worth.year), ("230641", "CAN", 2024));
    assert_eq!(worth.duty_before, money("CAD", "967050000.00"), "5% MFN and the 100% duty");
    assert_eq!(worth.duty_after, money("CAD", "46050000.00"), "the MFN rate alone");

    // Nothing was written: the measure is as it was.
    let now = app.tariff.clone().get_measure(tpb::GetMeasureRequest { id: meal.id.clone() }).await.unwrap();
    assert_eq!(now.into_inner().measure.unwrap().etag, meal.etag);

    // A year earlier: the surtax's measures, no Beijing session yet, and the
    // meal duty not yet imposed.
    let before = app.brief("2025-01-15").await;
    assert_eq!(references(before.measures.as_ref().unwrap()), ["SOR/2024-187", "CA-SAFEGUARD-72"]);
    let titles: Vec<&str> = before.sessions.as_ref().unwrap().sessions.iter().map(|s| s.title.as_str()).collect();
    assert_eq!(titles, ["Paris"]);
    assert!(before.disputes.as_ref().unwrap().disputes.is_empty(), "DS589 lapsed, DS636 not yet filed");
    assert!(before.commitments.as_ref().unwrap().commitments.is_empty());
}

#[tokio::test]
async fn a_stopped_peer_empties_its_sections_and_the_rest_is_whole() {
    let mut app = spawn_app().await;
    the_record(&app).await;
    app.stop_tariff().await;
    let started = Instant::now();
    let brief = app.brief("2026-03-15").await;
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    let m = brief.measures.unwrap();
    assert_eq!((m.status(), m.peer.as_str()), (pb::SectionStatus::Unavailable, "tariff"));
    assert!(m.measures.is_empty());
    assert_eq!(brief.disputes.unwrap().status(), pb::SectionStatus::Ok);
    assert_eq!(brief.sessions.unwrap().status(), pb::SectionStatus::Ok);
    let c = brief.commitments.unwrap();
    assert_eq!(c.status(), pb::SectionStatus::Ok, "the commitments come from the dialogue service");
    let worth = c.commitments[0].worth.as_ref().unwrap();
    assert_eq!((worth.status(), worth.peer.as_str()), (pb::SectionStatus::Unavailable, "tariff"));
    // Back again: whole again.
    app.start_tariff().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let brief = app.brief("2026-03-15").await;
        if brief.measures.unwrap().status() == pb::SectionStatus::Ok {
            break;
        }
        assert!(Instant::now() < deadline, "the tariff section came back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Accepts connections and never answers: a peer that hangs.
async fn hanging_peer() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (url, task)
}

#[tokio::test]
async fn a_deadline_shorter_than_a_slow_peer_is_answered_in_time() {
    let (url, hang) = hanging_peer().await;
    let app = spawn_app_with(Some(url)).await;
    the_record(&app).await;
    let mut req = tonic::Request::new(pb::GetBilateralBriefRequest {
        economy_a: "CAN".into(),
        economy_b: "CHN".into(),
        on: "2026-03-15".into(),
    });
    req.set_timeout(Duration::from_millis(1_200));
    let started = Instant::now();
    let brief = app.client.clone().get_bilateral_brief(req).await.unwrap().into_inner().brief.unwrap();
    assert!(started.elapsed() < Duration::from_millis(1_200), "answered in time: {:?}", started.elapsed());
    let d = brief.disputes.unwrap();
    assert_eq!((d.status(), d.peer.as_str()), (pb::SectionStatus::Unavailable, "dispute"));
    assert_eq!(brief.measures.unwrap().status(), pb::SectionStatus::Ok);
    assert_eq!(brief.sessions.unwrap().status(), pb::SectionStatus::Ok);
    hang.abort();
}

#[tokio::test]
async fn a_kept_brief_follows_a_write_in_another_service_within_a_second() {
    let app = spawn_app().await;
    the_record(&app).await;
    let first = app.brief("2026-03-15").await;
    assert_eq!(first, app.brief("2026-03-15").await, "the same answer, kept");
    app.measure(measure("CN-AD-1205", "CHN", &["CAN"], AntiDumping, &["1205"], "75.8", "2025-08-14")).await;
    let written = Instant::now();
    loop {
        let brief = app.brief("2026-03-15").await;
        if references(brief.measures.as_ref().unwrap()).contains(&"CN-AD-1205".to_owned()) {
            break;
        }
        assert!(written.elapsed() < Duration::from_secs(1), "the brief still lacks the new measure");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A revised statistic moves the measure's trade too.
    app.flows(vec![flow("CAN", "CHN", "230641", 2024, "920900000")]).await;
    let written = Instant::now();
    loop {
        let brief = app.brief("2026-03-15").await;
        let meal =
            brief.measures.unwrap().measures.into_iter().find(|m| m.measure.as_ref().unwrap().reference == "CN-MEAL");
        if amounts(&meal.unwrap().covered_value) == [("CAD".to_owned(), "920900000.00".to_owned())] {
            break;
        }
        assert!(written.elapsed() < Duration::from_secs(1), "the brief still has the old figure");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn bad_briefs_are_refused_by_field() {
    let app = spawn_app().await;
    let ask = |a: &str, b: &str, on: &str| pb::GetBilateralBriefRequest {
        economy_a: a.into(),
        economy_b: b.into(),
        on: on.into(),
    };
    assert_invalid(
        app.client.clone().get_bilateral_brief(ask("XX", "", "15/03/2026")).await,
        &["economy_a", "economy_b", "on"],
    );
    assert_invalid(app.client.clone().get_bilateral_brief(ask("CAN", "CAN", "")).await, &["economy_b"]);
    assert_invalid(
        app.client.clone().get_dispute_dossier(pb::GetDisputeDossierRequest { dispute_id: "nope".into() }).await,
        &["dispute_id"],
    );
    let status = assert_code(
        app.client.clone().get_dispute_dossier(pb::GetDisputeDossierRequest { dispute_id: uuid() }).await,
        Code::NotFound,
    );
    assert_eq!(tradewatch_common::testing::reason(&status), "NOT_FOUND");
}
