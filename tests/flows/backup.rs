//! Backup and restore as a platform team drills it: the demo record written
//! through the APIs of the three services, each database backed up by its
//! service binary while the stack serves (`backup --to`), a write after the
//! backup, then every backup restored (`restore --from`) into fresh
//! databases, the stack started on them, and every record and every feed
//! position found as it was when the backup was taken — on SQLite and, with
//! `TRADEWATCH_TEST_DATABASE_URL`, on PostgreSQL.

use std::{future::Future, path::Path, time::Duration};

use tonic::transport::Channel;
use tradewatch_common::proto::{
    dialogue::{self as gpb, dialogue_service_client::DialogueServiceClient},
    dispute::{self as dpb, dispute_service_client::DisputeServiceClient},
    tariff::{self as tpb, tariff_service_client::TariffServiceClient},
};
use tradewatch_e2e::{Stack, demo};

const SERVICES: [&str; 3] = ["tariff", "dispute", "dialogue"];

/// A feed's changes as a watcher from the start reads them: each change's
/// resume token and what it says.
type Feed<C> = Vec<(String, C)>;

/// What the three services list: every record.
#[derive(Debug, PartialEq)]
struct Snapshot {
    measures: Vec<tpb::TariffMeasure>,
    flows: Vec<tpb::TradeFlow>,
    disputes: Vec<dpb::Dispute>,
    sessions: Vec<gpb::DialogueSession>,
    commitments: Vec<gpb::Commitment>,
}

/// The three feeds, as watchers opened before the first write read them.
struct Feeds {
    measures: (tonic::Streaming<tpb::WatchMeasuresResponse>, Feed<tpb::MeasureChange>),
    disputes: (tonic::Streaming<dpb::WatchDisputesResponse>, Feed<dpb::DisputeChange>),
    commitments: (tonic::Streaming<gpb::WatchCommitmentsResponse>, Feed<gpb::CommitmentChange>),
}

impl Feeds {
    /// Watchers of everything committed from now on.
    async fn open(c: &Clients) -> Self {
        let (mut t, mut d, mut g) = (c.tariff.clone(), c.dispute.clone(), c.dialogue.clone());
        let m = t.watch_measures(tpb::WatchMeasuresRequest::default()).await.unwrap().into_inner();
        let ds = d.watch_disputes(dpb::WatchDisputesRequest::default()).await.unwrap().into_inner();
        let cs = g.watch_commitments(gpb::WatchCommitmentsRequest::default()).await.unwrap().into_inner();
        Self { measures: (m, vec![]), disputes: (ds, vec![]), commitments: (cs, vec![]) }
    }

    /// Reads what came since the last read; how many changes that was.
    async fn read(&mut self) -> usize {
        let (m, d, c) = tokio::join!(
            drain(&mut self.measures.0, |r| (r.resume_token, r.change)),
            drain(&mut self.disputes.0, |r| (r.resume_token, r.change)),
            drain(&mut self.commitments.0, |r| (r.resume_token, r.change)),
        );
        let n = m.len() + d.len() + c.len();
        self.measures.1.extend(m);
        self.disputes.1.extend(d);
        self.commitments.1.extend(c);
        n
    }
}

struct Clients {
    tariff: TariffServiceClient<Channel>,
    dispute: DisputeServiceClient<Channel>,
    dialogue: DialogueServiceClient<Channel>,
}

impl Clients {
    async fn of(stack: &Stack) -> Self {
        Self {
            tariff: stack.tariff().await.unwrap(),
            dispute: stack.dispute().await.unwrap(),
            dialogue: stack.dialogue().await.unwrap(),
        }
    }

    async fn snapshot(&self) -> Snapshot {
        let (t, d, g) = (&self.tariff, &self.dispute, &self.dialogue);
        let measures = pages(|page_token| {
            let mut t = t.clone();
            async move {
                let r = t.list_measures(tpb::ListMeasuresRequest { page_size: 100, page_token, ..Default::default() });
                let r = r.await.unwrap().into_inner();
                (r.measures, r.next_page_token)
            }
        })
        .await;
        let flows = pages(|page_token| {
            let mut t = t.clone();
            async move {
                let req = tpb::ListTradeFlowsRequest { page_size: 100, page_token, ..Default::default() };
                let r = t.list_trade_flows(req).await.unwrap().into_inner();
                (r.flows, r.next_page_token)
            }
        })
        .await;
        let disputes = pages(|page_token| {
            let mut d = d.clone();
            async move {
                let req = dpb::ListDisputesRequest { page_size: 100, page_token, ..Default::default() };
                let r = d.list_disputes(req).await.unwrap().into_inner();
                (r.disputes, r.next_page_token)
            }
        })
        .await;
        let sessions = pages(|page_token| {
            let mut g = g.clone();
            async move {
                let req = gpb::ListSessionsRequest { page_size: 100, page_token, ..Default::default() };
                let r = g.list_sessions(req).await.unwrap().into_inner();
                (r.sessions, r.next_page_token)
            }
        })
        .await;
        let commitments = pages(|page_token| {
            let mut g = g.clone();
            async move {
                let req = gpb::ListCommitmentsRequest { page_size: 100, page_token, ..Default::default() };
                let r = g.list_commitments(req).await.unwrap().into_inner();
                (r.commitments, r.next_page_token)
            }
        })
        .await;
        Snapshot { measures, flows, disputes, sessions, commitments }
    }

    /// A snapshot once the stack is quiet (the dialogue relay delivers the
    /// effects of fulfilled commitments a moment after they are written):
    /// two in a row that agree, no change in any feed between them.
    async fn settled(&self, feeds: &mut Feeds) -> Snapshot {
        let mut last = self.snapshot().await;
        for _ in 0..20 {
            let moved = feeds.read().await;
            let next = self.snapshot().await;
            if moved == 0 && next == last {
                return next;
            }
            last = next;
        }
        panic!("the stack never settled");
    }
}

/// Every page of a list.
async fn pages<T, F, Fut>(mut page: F) -> Vec<T>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = (Vec<T>, String)>,
{
    let (mut all, mut token) = (Vec::new(), String::new());
    loop {
        let (items, next) = page(token).await;
        all.extend(items);
        if next.is_empty() {
            return all;
        }
        token = next;
    }
}

/// How long a watcher waits for the next change before it takes the feed
/// as read: every change is committed before it reads, and a watcher from
/// a position replays what follows it at once.
const IDLE: Duration = Duration::from_millis(1_000);

/// The changes of a stream, until it goes quiet.
async fn drain<R, C>(stream: &mut tonic::Streaming<R>, split: impl Fn(R) -> (String, Option<C>)) -> Feed<C> {
    let mut out = Vec::new();
    while let Ok(Some(message)) = tokio::time::timeout(IDLE, stream.message()).await.map(Result::unwrap) {
        if let (token, Some(change)) = split(message) {
            out.push((token, change));
        }
    }
    out
}

async fn measure_feed(c: &mut TariffServiceClient<Channel>, after: &str) -> Feed<tpb::MeasureChange> {
    let req = tpb::WatchMeasuresRequest { start_after: after.into(), ..Default::default() };
    drain(&mut c.watch_measures(req).await.unwrap().into_inner(), |r| (r.resume_token, r.change)).await
}

async fn dispute_feed(c: &mut DisputeServiceClient<Channel>, after: &str) -> Feed<dpb::DisputeChange> {
    let req = dpb::WatchDisputesRequest { start_after: after.into(), ..Default::default() };
    drain(&mut c.watch_disputes(req).await.unwrap().into_inner(), |r| (r.resume_token, r.change)).await
}

async fn commitment_feed(c: &mut DialogueServiceClient<Channel>, after: &str) -> Feed<gpb::CommitmentChange> {
    let req = gpb::WatchCommitmentsRequest { start_after: after.into(), ..Default::default() };
    drain(&mut c.watch_commitments(req).await.unwrap().into_inner(), |r| (r.resume_token, r.change)).await
}

/// Runs `<service>-service <args>` on the database at `url`; its exit status
/// and what it printed.
fn service(service: &str, url: &str, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(crate::faults::bin_dir().join(format!("{service}-service")))
        .args(args)
        .env("TRADEWATCH__DATABASE__URL", url)
        .env("TRADEWATCH__LOG__FORMAT", "json")
        .output()
        .unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), said)
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn surtax(reference: &str) -> tpb::CreateMeasureRequest {
    tpb::CreateMeasureRequest {
        measure: Some(tpb::TariffMeasure {
            reference: reference.into(),
            title: "A surtax written after the backup".into(),
            imposing_economy: "CAN".into(),
            target_economies: vec!["CHN".into()],
            kind: tpb::MeasureKind::Surtax.into(),
            hs_codes: vec!["7208".into()],
            ad_valorem_percent: "25".into(),
            effective_from: "2026-10-15".into(),
            ..Default::default()
        }),
        request_id: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_serving_restores_every_record_and_feed_position() {
    let stack = Stack::start().await.unwrap();
    let clients = Clients::of(&stack).await;
    let mut feeds = Feeds::open(&clients).await;
    let loaded = demo::load(&demo::Dataset::load().unwrap(), &stack.endpoints()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = |s: &str| dir.path().join(format!("{s}.backup"));

    // Backed up while the stack serves; again if anything moved meanwhile.
    let mut taken = None;
    for _ in 0..3 {
        let before = clients.settled(&mut feeds).await;
        for s in SERVICES {
            let _ = std::fs::remove_file(file(s));
            let (ok, said) = service(s, stack.database_url(s).unwrap(), &["backup", "--to", path(&file(s))]);
            assert!(ok, "{s}-service backup: {said}");
        }
        if feeds.read().await == 0 && clients.snapshot().await == before {
            taken = Some(before);
            break;
        }
    }
    let before = taken.expect("a backup of a quiet stack");
    assert_eq!(before.measures.len(), loaded.measures);
    assert_eq!(before.disputes.len(), loaded.disputes);
    assert_eq!(before.sessions.len(), loaded.sessions);
    assert_eq!(before.commitments.len(), loaded.commitments);
    let (measure_changes, dispute_changes, commitment_changes) =
        (feeds.measures.1.clone(), feeds.disputes.1.clone(), feeds.commitments.1.clone());
    assert!(measure_changes.len() >= loaded.measures, "every measure's creation is in its feed");
    assert!(dispute_changes.len() >= loaded.disputes && commitment_changes.len() >= loaded.commitments);
    drop(feeds);

    // A backup never replaces a file.
    let (ok, said) =
        service("tariff", stack.database_url("tariff").unwrap(), &["backup", "--to", path(&file("tariff"))]);
    assert!(!ok && said.contains("exists"), "{said}");

    // Written after the backup: not in it.
    let mut tariff = clients.tariff.clone();
    let late = tariff.create_measure(surtax("AFTER-BACKUP")).await.unwrap().into_inner().measure.unwrap().id;
    stack.stop().await.unwrap();

    let mut restored = Stack::unstarted(None).await.unwrap();
    for s in SERVICES {
        let url = restored.database_url(s).unwrap();
        let (ok, said) = service(s, url, &["restore", "--from", path(&file(s))]);
        assert!(ok, "{s}-service restore: {said}");
        // Into a database that holds something, never.
        let (ok, said) = service(s, url, &["restore", "--from", path(&file(s))]);
        assert!(!ok && said.contains("restored into"), "a second restore of {s} is refused: {said}");
    }
    // A backup of one kind of database is not restored into the other.
    let (ok, said) =
        service("tariff", "postgres://postgres@127.0.0.1:1/none", &["restore", "--from", path(&file("tariff"))]);
    let sqlite = stack_is_sqlite(&restored);
    assert!(!ok && (!sqlite || said.contains("is a SQLite backup")), "{said}");

    restored.start_all().await.unwrap();
    let clients = Clients::of(&restored).await;
    let after = clients.snapshot().await;
    assert_eq!(after, before, "every record, as backed up");
    let mut tariff = clients.tariff.clone();
    let lost = tariff.get_measure(tpb::GetMeasureRequest { id: late }).await;
    assert_eq!(lost.map(|_| ()).unwrap_err().code(), tonic::Code::NotFound, "the write after the backup is not in it");

    // Feed positions hold: a watcher resuming from a token taken before
    // the backup reads exactly what followed it, then what is new.
    let (mut d, mut g) = (clients.dispute.clone(), clients.dialogue.clone());
    assert_eq!(measure_feed(&mut tariff, &measure_changes[0].0).await, measure_changes[1..]);
    assert_eq!(dispute_feed(&mut d, &dispute_changes[0].0).await, dispute_changes[1..]);
    assert_eq!(commitment_feed(&mut g, &commitment_changes[0].0).await, commitment_changes[1..]);
    let last = &measure_changes.last().unwrap().0;
    let mut watch = tariff
        .watch_measures(tpb::WatchMeasuresRequest { start_after: last.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let new = tariff.create_measure(surtax("AFTER-RESTORE")).await.unwrap().into_inner().measure.unwrap();
    let next = loop {
        let m = tokio::time::timeout(Duration::from_secs(10), watch.message()).await.unwrap().unwrap().unwrap();
        if let Some(change) = m.change {
            break change;
        }
    };
    assert_eq!(
        next.measure.map(|m| m.id),
        Some(new.id),
        "the first change after the last backed-up one is the new write"
    );
    restored.stop().await.unwrap();
}

fn stack_is_sqlite(stack: &Stack) -> bool {
    stack.database_url("tariff").is_ok_and(|u| u.starts_with("sqlite:"))
}
