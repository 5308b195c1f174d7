//! A national schedule loaded in bulk: `ImportMeasures` (all or nothing,
//! known by reference, idempotent) and the CSV loader of
//! `tradewatch-schedule` driving it: every bad line named before anything is
//! written, a load interrupted half-way resumed, and the schedule answering
//! ResolveDuty at once.

use tonic::Code;
use tradewatch_common::proto::tariff::{self as pb, MeasureKind::Mfn};

use crate::helpers::*;
use tariff_service::load::{self, Groups, generate};

async fn import(app: &TestApp, measures: Vec<pb::TariffMeasure>) -> Result<pb::ImportMeasuresResponse, tonic::Status> {
    app.client
        .clone()
        .import_measures(pb::ImportMeasuresRequest { measures, request_id: String::new() })
        .await
        .map(tonic::Response::into_inner)
}

async fn count(app: &TestApp) -> usize {
    app.list_all(pb::ListMeasuresRequest { page_size: 500, ..Default::default() }).await.len()
}

#[tokio::test]
async fn an_import_creates_leaves_the_same_alone_and_streams_each_creation() {
    let app = spawn_app().await;
    let first = vec![measure("L-1", Mfn, &["8703"], "6.1"), measure("L-2", Mfn, &["8704"], "6.1")];
    let answer = import(&app, first.clone()).await.unwrap();
    assert_eq!((answer.created, answer.unchanged), (2, 0));
    let mut again = first.clone();
    again.push(measure("L-3", Mfn, &["8705"], "6.1"));
    let answer = import(&app, again).await.unwrap();
    assert_eq!((answer.created, answer.unchanged), (1, 2), "the two stored as sent are left alone");
    assert_eq!(count(&app).await, 3);

    // Each created measure is a CREATED change on the feed, in order.
    let mut stream = app
        .client
        .clone()
        .watch_measures(pb::WatchMeasuresRequest { start_after: String::new(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    import(&app, vec![measure("L-4", Mfn, &["8706"], "6.1"), measure("L-5", Mfn, &["8707"], "6.1")]).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let next = tokio::time::timeout(std::time::Duration::from_secs(5), stream.message()).await.unwrap().unwrap();
        if let Some(change) = next.and_then(|r| r.change) {
            assert_eq!(change.kind(), pb::MeasureChangeKind::Created);
            seen.push(change.measure.unwrap().reference);
        }
    }
    assert_eq!(seen, ["L-4", "L-5"]);

    // ResolveDuty reads them at once.
    let duty = app
        .client
        .clone()
        .resolve_duty(pb::ResolveDutyRequest {
            importing_economy: "CAN".into(),
            origin_economy: "CHN".into(),
            hs_code: "8707.10".into(),
            imported_on: "2025-01-01".into(),
            customs_value: money("CAD", "100"),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(duty.total_duty.unwrap().amount, "6.10");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn every_bad_measure_is_named_and_nothing_is_written() {
    let app = spawn_app().await;
    app.create(measure("STORED", Mfn, &["8703"], "6.1")).await;
    let mut bad_rate = measure("B-1", Mfn, &["8704"], "6.1");
    bad_rate.ad_valorem_percent = "-1".into();
    let refused =
        import(&app, vec![measure("B-0", Mfn, &["8704"], "6.1"), bad_rate, measure("B-0", Mfn, &["8705"], "6.1")])
            .await;
    assert_invalid(refused, &["measures[1].ad_valorem_percent", "measures[2].reference"]);
    // A stored reference with other fields: ALREADY_EXISTS naming it, and the
    // new one beside it is not written either.
    let refused =
        import(&app, vec![measure("N-1", Mfn, &["8706"], "6.1"), measure("STORED", Mfn, &["8703"], "7")]).await;
    let status = assert_code(refused, Code::AlreadyExists);
    let (_, metadata) = tradewatch_common::testing::error_info(&status);
    assert_eq!(metadata.get("field").map(String::as_str), Some("measures[1].reference"));
    assert_invalid(import(&app, vec![]).await, &["measures"]);
    let many: Vec<_> = (0..1_001).map(|i| measure(&format!("M-{i}"), Mfn, &["8703"], "1")).collect();
    assert_invalid(import(&app, many).await, &["measures"]);
    assert_eq!(count(&app).await, 1, "nothing written but the one created before");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_retry_with_the_same_request_id_answers_as_the_first() {
    let app = spawn_app().await;
    let request =
        pb::ImportMeasuresRequest { measures: vec![measure("R-1", Mfn, &["8703"], "6.1")], request_id: uuid() };
    let first = app.client.clone().import_measures(request.clone()).await.unwrap().into_inner();
    let again = app.client.clone().import_measures(request.clone()).await.unwrap().into_inner();
    assert_eq!((first.created, again.created, again.unchanged), (1, 1, 0), "the first answer, replayed");
    let mut other = request;
    other.measures[0].reference = "R-2".into();
    assert_invalid(app.client.clone().import_measures(other).await, &["request_id"]);
    app.stop().await.unwrap();
}

const GROUPS: &str = "group,economies\nCUSMA,MEX USA\nCPTPP,AUS JPN MEX VNM\n";

#[tokio::test]
async fn the_loader_refuses_a_bad_file_whole_and_writes_nothing() {
    let app = spawn_app().await;
    let groups = Groups::parse(GROUPS).unwrap();
    let text = "hs_code,kind,origins,ad_valorem_percent,effective_from,source_url\n\
                8703.80.00,MFN,,6.1,2024-01-01,https://example.org/t\n\
                8703.80.00,PREFERENTIAL,@GPT,0,2024-01-01,https://example.org/t\n\
                8703.80.00,MFN,,6.1,2024-01-01,https://example.org/t\n\
                8703.80.00,PREFERENTIAL,@CUSMA,0,2024-13-01,https://example.org/t\n";
    let errors = load::parse(text, "CAN", &groups).unwrap_err();
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(errors[0].starts_with("line 3:") && errors[0].contains("GPT"), "an unknown group: {errors:#?}");
    assert!(errors[1].starts_with("line 4:") && errors[1].contains("line 2"), "a duplicate: {errors:#?}");
    assert!(errors[2].starts_with("line 5:") && errors[2].contains("effective_from"), "a bad date: {errors:#?}");
    assert_eq!(count(&app).await, 0);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn an_interrupted_load_resumes_where_it_stopped() {
    let app = spawn_app().await;
    let shape = generate::Shape { lines: 2_400, treatments: 12, special: 100, origins: 10 };
    let (groups, schedule) = generate::generate("CAN", shape);
    let lines = load::parse(&schedule, "CAN", &Groups::parse(&groups).unwrap()).unwrap();
    assert_eq!(lines.len(), 2_500);
    // The first run stops after its first batch (the process died).
    let client = app.client.clone();
    let first = load::load(&client, &lines[..load::BATCH], |_| {}).await.unwrap();
    assert_eq!((first.created, first.unchanged), (1_000, 0));
    // Run again on the whole file: the batch written is left alone, the rest created.
    let mut seen = Vec::new();
    let again = load::load(&client, &lines, |done| seen.push(done)).await.unwrap();
    assert_eq!((again.created, again.unchanged, again.batches), (1_500, 1_000, 3));
    assert_eq!(seen, [1_000, 2_000, 2_500], "progress after each batch");
    let total = app.list_all(pb::ListMeasuresRequest { page_size: 500, ..Default::default() }).await.len();
    assert_eq!(total, 2_500);
    // And a third time: nothing to do.
    let third = load::load(&client, &lines, |_| {}).await.unwrap();
    assert_eq!((third.created, third.unchanged), (0, 2_500));
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_line_the_service_refuses_is_named_by_its_line_number() {
    let app = spawn_app().await;
    app.create(measure("CAN-MFN-ALL-8703", Mfn, &["8703"], "9")).await;
    let text = "hs_code,kind,origins,ad_valorem_percent,effective_from,source_url\n\
                8702,MFN,,6.1,2024-01-01,https://example.org/notice\n\
                8703,MFN,,6.1,2024-01-01,https://example.org/notice\n";
    let lines = load::parse(text, "CAN", &Groups::default()).unwrap();
    let refused = load::load(&app.client, &lines, |_| {}).await.unwrap_err();
    assert_eq!((refused.first_line, refused.last_line), (2, 3));
    assert!(refused.to_string().contains("CAN-MFN-ALL-8703"), "{refused}");
    assert_eq!(count(&app).await, 1, "the batch is all or nothing");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_batch_of_more_rows_than_one_statement_carries_is_written_whole() {
    use sea_orm::{ConnectionTrait as _, Statement};

    let app = spawn_app().await;
    // 1,000 preferential lines of 16 origins each: 16,000 origin rows, more
    // than one INSERT of two columns carries.
    let origins = [
        "AUS", "BRN", "CHL", "JPN", "MYS", "MEX", "NZL", "PER", "SGP", "VNM", "GBR", "USA", "KOR", "CHE", "NOR", "ISL",
    ];
    let measures: Vec<_> = (0..1_000)
        .map(|i| against(measure(&format!("WIDE-{i}"), pb::MeasureKind::Preferential, &["8703"], "0"), &origins))
        .collect();
    let answer = import(&app, measures).await.unwrap();
    assert_eq!(answer.created, 1_000);
    let rows = app
        .db
        .query_one_raw(Statement::from_string(
            app.db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM measure_targets",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rows.try_get::<i64>("", "n").unwrap(), 16_000);
    let listed = app
        .list_all(pb::ListMeasuresRequest { page_size: 500, target_economy: "ISL".into(), ..Default::default() })
        .await;
    assert_eq!(listed.len(), 1_000, "every measure names its last origin");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn text_with_quotes_backslashes_and_braces_is_stored_as_sent() {
    let mut m = measure("ODD-1", Mfn, &["8703"], "6.1");
    m.title = r#"a "quoted" \ back,slash {NULL} NULL — ünï"#.into();
    m.note = "\\\\x00 \"".into();
    let app = spawn_app().await;
    let answer = import(&app, vec![m.clone(), measure("ODD-2", Mfn, &["8704"], "6.1")]).await.unwrap();
    assert_eq!(answer.created, 2);
    let stored = app.list_all(pb::ListMeasuresRequest { page_size: 10, ..Default::default() }).await;
    let odd = stored.iter().find(|s| s.reference == "ODD-1").unwrap();
    assert_eq!((odd.title.as_str(), odd.note.as_str()), (m.title.as_str(), m.note.as_str()));
    app.stop().await.unwrap();
}
