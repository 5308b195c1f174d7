//! Change feeds: what the Watch RPCs stream (DESIGN §11).
//!
//! Every write appends its change to the `changes` table in its own
//! transaction, as the last thing it does, so a change is committed exactly
//! when the write is. A change's `seq` orders the feed, and it must order it
//! as the commits did: a watcher that reads "after the highest seq I saw"
//! would skip a change whose seq was handed out first but committed last.
//! So on PostgreSQL a writer takes a transaction-scoped advisory lock before
//! it draws its seq and holds it until its commit: seqs are drawn and
//! committed one writer at a time, and whenever a change is visible, every
//! change with a lower seq is visible too (or was rolled back and never will
//! be). SQLite runs one write transaction at a time anyway. The lock is
//! taken after everything else the write did, so it is held only for the
//! insert and the commit.
//!
//! A watcher reads the changes after its position in batches, hands each
//! one that its filters keep to the caller, and waits for a wake-up: a
//! PostgreSQL NOTIFY, sent by every writer at commit and received by one
//! LISTEN connection per process that wakes all its watchers; a write of
//! this process (SQLite); or, failing both, a poll every `feed.poll_ms`.
//!
//! A resume token is the seq of the change it came with; a watcher given one
//! continues after it, on any replica. Changes older than
//! `feed.retention_days` are removed in the background, and the highest seq
//! removed is kept: a token below it is OUT_OF_RANGE `RESUME_TOKEN_EXPIRED`.
//! A watcher holds at most `feed.buffer` responses for its caller; when they
//! are all waiting and the caller makes no room for [`STALL`], the watcher
//! sends what it holds, then RESOURCE_EXHAUSTED `WATCHER_TOO_SLOW`, and ends.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use prost::Message;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait as _, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter as _, QueryOrder as _,
    QuerySelect as _, TransactionTrait as _,
};
use sha2::{Digest as _, Sha256};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::{
    Reason,
    config::FeedSettings,
    db,
    error::{Error, Result},
    metrics::Metrics,
};

pub mod entity {
    //! The feed's tables: the changes, and how far they were pruned.
    pub mod change {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
        #[sea_orm(table_name = "changes")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub seq: i64,
            /// What the change is of (`measure`, `session`, …): a Watch
            /// streams its resource's topic, a cache reads its own.
            pub topic: String,
            pub change_time: DateTimeUtc,
            /// The topic's change message (`MeasureChange`, …), encoded.
            pub payload: Vec<u8>,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }

    pub mod state {
        use sea_orm::entity::prelude::*;

        /// One row: every change with a seq up to `pruned_through` is gone.
        #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
        #[sea_orm(table_name = "change_feed")]
        pub struct Model {
            #[sea_orm(primary_key, auto_increment = false)]
            pub id: i32,
            pub pruned_through: i64,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }
}

pub mod migration {
    //! Creates `changes` and `change_feed`; every service's migrator lists it.
    use sea_orm_migration::{prelude::*, schema::*};

    pub struct Migration;

    impl MigrationName for Migration {
        fn name(&self) -> &str {
            "m20261129_000010_change_feed"
        }
    }

    #[derive(DeriveIden)]
    enum Changes {
        Table,
        Seq,
        Topic,
        ChangeTime,
        Payload,
    }

    #[derive(DeriveIden)]
    enum ChangeFeed {
        Table,
        Id,
        PrunedThrough,
    }

    const BY_TIME: &str = "changes_by_change_time";

    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            // SQLite: INTEGER PRIMARY KEY AUTOINCREMENT, so that no seq is
            // ever handed out twice, even after the newest changes are gone.
            manager
                .create_table(
                    Table::create()
                        .table(Changes::Table)
                        .if_not_exists()
                        .col(big_integer(Changes::Seq).auto_increment().primary_key())
                        .col(string_len(Changes::Topic, 32))
                        .col(timestamp_with_time_zone(Changes::ChangeTime))
                        .col(binary(Changes::Payload))
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(
                    Index::create()
                        .name(BY_TIME)
                        .table(Changes::Table)
                        .col(Changes::ChangeTime)
                        .if_not_exists()
                        .to_owned(),
                )
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table(ChangeFeed::Table)
                        .if_not_exists()
                        .col(integer(ChangeFeed::Id).primary_key())
                        .col(big_integer(ChangeFeed::PrunedThrough))
                        .to_owned(),
                )
                .await?;
            manager
                .exec_stmt(
                    Query::insert()
                        .into_table(ChangeFeed::Table)
                        .columns([ChangeFeed::Id, ChangeFeed::PrunedThrough])
                        .values_panic([1.into(), 0.into()])
                        .to_owned(),
                )
                .await
        }

        async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager.drop_table(Table::drop().table(ChangeFeed::Table).to_owned()).await?;
            manager.drop_table(Table::drop().table(Changes::Table).to_owned()).await
        }
    }
}

/// The channel writers NOTIFY at commit (each service has its own database).
const CHANNEL: &str = "tradewatch_changes";

/// The advisory lock that puts the feed's writers in line (PostgreSQL).
const APPEND_LOCK: i64 = 0x7477_6665_6564; // "twfeed"

/// Changes read in one query.
const BATCH: u64 = 256;

/// How often old changes are removed.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Changes removed by one statement of the prune.
const PRUNE_BATCH: u64 = 1_000;

/// Appends one change of `topic`, `change` as it will be streamed or
/// cached, to the feed in the write's transaction. Call it after every other
/// statement of the write: on PostgreSQL it takes the feed's lock, held until
/// the commit.
pub async fn append<M: Message>(
    conn: &impl ConnectionTrait,
    topic: &str,
    change_time: DateTime<Utc>,
    change: &M,
) -> Result<()> {
    append_all(conn, topic, change_time, [change]).await
}

/// Appends several changes of `topic`, in order, as [`append`] appends one:
/// one lock, inserts of many rows each (a bulk write's changes cost a few
/// statements, not one each), one notification.
pub async fn append_all<'a, M: Message + 'a>(
    conn: &impl ConnectionTrait,
    topic: &str,
    change_time: DateTime<Utc>,
    changes: impl IntoIterator<Item = &'a M>,
) -> Result<()> {
    let rows: Vec<_> = changes
        .into_iter()
        .map(|change| entity::change::ActiveModel {
            seq: NotSet,
            topic: Set(topic.to_owned()),
            change_time: Set(change_time),
            payload: Set(change.encode_to_vec()),
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    let postgres = conn.get_database_backend() == DbBackend::Postgres;
    if postgres {
        conn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({APPEND_LOCK})")).await?;
    }
    // Each statement numbers its rows in the order given.
    db::insert_chunked(conn, rows).await?;
    if postgres {
        // Delivered at commit, and not at all on a rollback.
        conn.execute_unprepared(&format!("NOTIFY {CHANNEL}")).await?;
    }
    Ok(())
}

/// A position in the feed, as a resume token: the seq of the last change
/// passed, sealed with the service's name so that a made-up token, or one
/// of another service's feed, is refused rather than obeyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position(pub i64);

const TOKEN_VERSION: u8 = 1;
const TOKEN_SEAL: &[u8] = b"tradewatch change feed";

impl Position {
    /// The token of this position in `service`'s feed.
    pub fn token(self, service: &str) -> String {
        let mut body = Vec::with_capacity(13);
        body.push(TOKEN_VERSION);
        body.extend_from_slice(&self.0.to_be_bytes());
        let sum = Sha256::new().chain_update(TOKEN_SEAL).chain_update(service).chain_update(&body).finalize();
        body.extend_from_slice(&sum[..4]);
        URL_SAFE_NO_PAD.encode(body)
    }

    /// The position a token of `service`'s feed names.
    pub fn parse(token: &str, service: &str) -> Result<Self, &'static str> {
        const INVALID: &str = "is not a resume token of this service";
        if token.len() > 32 {
            return Err(INVALID);
        }
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| INVALID)?;
        if bytes.len() != 13 || bytes[0] != TOKEN_VERSION {
            return Err(INVALID);
        }
        let sum = Sha256::new().chain_update(TOKEN_SEAL).chain_update(service).chain_update(&bytes[..9]).finalize();
        if sum[..4] != bytes[9..] {
            return Err(INVALID);
        }
        let mut seq = [0; 8];
        seq.copy_from_slice(&bytes[1..9]);
        Ok(Self(i64::from_be_bytes(seq)))
    }
}

/// What a Watch RPC answers: the responses of one watcher, then the status
/// it ended with, if the server ended it.
pub type Stream<R> = std::pin::Pin<Box<dyn futures::Stream<Item = Result<R, Status>> + Send>>;

/// How long a watcher whose buffer is full waits for its caller to read
/// before cutting it off.
pub const STALL: Duration = Duration::from_secs(5);

/// One process's side of its service's feed: the wake-ups, the cap on
/// watchers and their streams. Cheap to clone.
#[derive(Clone)]
pub struct Feed(Arc<Inner>);

struct Inner {
    /// The service whose feed this is: its name seals the tokens.
    service: String,
    db: DatabaseConnection,
    settings: FeedSettings,
    /// Whether the LISTEN connection is up (PostgreSQL): watchers then need
    /// no poll of their own.
    listening: std::sync::atomic::AtomicBool,
    wake: watch::Sender<u64>,
    stop: watch::Receiver<bool>,
    watchers: Arc<Semaphore>,
    metrics: Metrics,
}

/// What a watcher sends its caller: a change the filters kept, built from
/// the stored change and its token, or nothing; and the heartbeat of a token.
pub trait Responder: Send + 'static {
    /// The topic streamed: the changes of other topics are passed over.
    const TOPIC: &'static str;
    /// The topic's change message, as [`append`] stored it.
    type Change: Message + Default;
    type Response: Send + 'static;

    /// The response for one change, or None when the filters drop it.
    fn change(&self, token: String, change: Self::Change) -> Option<Self::Response>;

    fn heartbeat(&self, token: String) -> Self::Response;
}

impl Feed {
    /// `service`'s feed on `db`; its watchers end when `stop` turns true
    /// (the server's shutdown).
    pub fn new(
        service: &str,
        db: DatabaseConnection,
        settings: &FeedSettings,
        metrics: Metrics,
        stop: watch::Receiver<bool>,
    ) -> Self {
        Self(Arc::new(Inner {
            service: service.to_owned(),
            listening: std::sync::atomic::AtomicBool::new(false),
            db,
            settings: settings.clone(),
            wake: watch::Sender::new(0),
            stop,
            watchers: Arc::new(Semaphore::new(settings.max_watchers)),
            metrics,
        }))
    }

    /// Wakes this process's watchers: after a write of this process commits.
    pub fn wake(&self) {
        self.0.wake.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The feed's background work, until aborted: on PostgreSQL the LISTEN
    /// connection that wakes the watchers at every commit, on any replica;
    /// everywhere the removal of changes past retention.
    pub async fn run(self) {
        let listen = async {
            if self.0.db.get_database_backend() == DbBackend::Postgres {
                self.listen().await;
            }
        };
        let prune = async {
            loop {
                match prune(&self.0.db, self.0.settings.retention()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(removed = n, "removed changes past the feed's retention"),
                    Err(err) => tracing::warn!(error = %err, "old changes could not be removed; trying again later"),
                }
                tokio::time::sleep(PRUNE_EVERY).await;
            }
        };
        tokio::join!(listen, prune);
    }

    async fn listen(&self) {
        use sea_orm::sqlx::postgres::PgListener;
        let pool = self.0.db.get_postgres_connection_pool().clone();
        let retry = Duration::from_millis(self.0.settings.poll_ms);
        loop {
            match PgListener::connect_with(&pool).await {
                Ok(mut listener) => match listener.listen(CHANNEL).await {
                    Ok(()) => {
                        self.0.listening.store(true, std::sync::atomic::Ordering::SeqCst);
                        // Whatever committed while nobody listened.
                        self.wake();
                        loop {
                            match listener.try_recv().await {
                                Ok(Some(_)) => self.wake(),
                                // The connection was lost and is made again
                                // on the next call; what was sent meanwhile
                                // is lost: look anyway.
                                Ok(None) => self.wake(),
                                Err(err) => {
                                    self.0.listening.store(false, std::sync::atomic::Ordering::SeqCst);
                                    tracing::warn!(error = %err, "the feed's LISTEN connection failed; polling until it is back");
                                    break;
                                }
                            }
                        }
                    }
                    Err(err) => tracing::warn!(error = %err, "LISTEN failed; polling until it works"),
                },
                Err(err) => tracing::warn!(error = %err, "no connection to LISTEN on; polling until there is"),
            }
            tokio::time::sleep(retry).await;
        }
    }

    /// Starts a watcher after `start_after` (empty: after the last change
    /// committed now), sending what `responder` makes of each change.
    pub async fn watch<R: Responder>(&self, start_after: &str, responder: R) -> Result<Stream<R::Response>> {
        let start = match start_after {
            "" => None,
            token => {
                Some(Position::parse(token, &self.0.service).map_err(|why| Error::invalid_field("start_after", why))?)
            }
        };
        let Ok(permit) = self.0.watchers.clone().try_acquire_owned() else {
            let max = self.0.settings.max_watchers;
            return Err(Error::resource_exhausted(
                Reason::TooManyWatchers,
                format!("the server is serving its limit of {max} watchers; retry with backoff"),
            )
            .with_metadata("max_watchers", max.to_string()));
        };
        let (pruned, head) = bounds(&self.0.db).await?;
        let newest = head.max(pruned);
        let position = match start {
            None => newest,
            Some(Position(seq)) if seq < pruned => {
                let days = self.0.settings.retention_days;
                return Err(Error::out_of_range(
                    Reason::ResumeTokenExpired,
                    format!(
                        "start_after is older than the {days} days of changes kept: read the current state with a \
                         List, then watch with an empty start_after"
                    ),
                )
                .with_metadata("retention_days", days.to_string()));
            }
            Some(Position(seq)) if seq > newest => {
                return Err(Error::invalid_field("start_after", "is not a resume token of this service's feed"));
            }
            Some(Position(seq)) => seq,
        };
        use futures::StreamExt as _;
        let (tx, rx) = mpsc::channel(self.0.settings.buffer);
        let (end, ended) = oneshot::channel::<Status>();
        let watcher = Watcher {
            feed: self.0.clone(),
            responder,
            position,
            check_pruned: true,
            tx,
            end: Some(end),
            _permit: permit,
        };
        tokio::spawn(watcher.run());
        // The responses buffered, then the status the watcher ended with.
        let ended = futures::stream::once(ended).filter_map(|status| std::future::ready(status.ok().map(Err)));
        Ok(Box::pin(ReceiverStream::new(rx).map(Ok).chain(ended)))
    }
}

/// The feed's head, for caches that must answer as fresh as the database
/// was when a call began: [`Head::read`] returns the highest seq of a query
/// sent after it was called.
///
/// Calls wait in rounds. The callers that arrive while a query is under way
/// join the next round, which is sent as soon as that query has answered, so
/// under load one query serves every call that arrived during the one
/// before, a call waits for at most two, and each waiting call is woken once.
/// The query runs in a task of its own: a caller that gives up (its
/// deadline) does not cancel it for the others.
///
/// Two things make the query cheap or needless:
/// - On SQLite, whose one serving process makes every write
///   ([`db::local_writes`]), no query is needed while no write has been under
///   way since the last one was sent: its answer is still the head.
/// - On PostgreSQL the queries of a busy spell run on one connection of the
///   pool, kept by the task that sends them until no caller waits, without
///   the pool's checks on every checkout and return: one round trip each. A
///   connection that fails is closed and the query tried once more on a new
///   one; a query that takes longer than [`HEAD_TIMEOUT`] (a connection
///   lost without a word) fails its round UNAVAILABLE and closes it.
#[derive(Clone)]
pub struct Head(Arc<HeadInner>);

struct HeadInner {
    db: DatabaseConnection,
    /// SQLite: this process's writes, which are all the writes.
    local: Option<&'static db::LocalWrites>,
    state: std::sync::Mutex<HeadState>,
}

/// A round's answer, once its query has answered.
type Answer = Option<Result<i64, Arc<Error>>>;

struct HeadState {
    /// The round that callers arriving now join: not sent yet.
    next: watch::Sender<Answer>,
    /// Whether a caller waits for `next`.
    wanted: bool,
    /// Whether a task is sending rounds (one at a time: two in flight made
    /// more queries, not more answers).
    sending: bool,
    /// The latest answer, and the local writes' mark taken before its query
    /// was sent (SQLite).
    latest: Option<(i64, Option<u64>)>,
}

/// The head, as [`head_seq`] reads it, in the SQL the held connection runs.
const HEAD_SQL: &str = "SELECT max(seq) FROM changes";

impl Head {
    pub fn new(db: DatabaseConnection) -> Self {
        let local = (db.get_database_backend() == DbBackend::Sqlite).then(db::local_writes);
        Self(Arc::new(HeadInner {
            db,
            local,
            state: std::sync::Mutex::new(HeadState {
                next: watch::Sender::new(None),
                wanted: false,
                sending: false,
                latest: None,
            }),
        }))
    }

    /// The highest seq committed, read by a query sent after this call (or,
    /// on SQLite, known to be what such a query would read).
    pub async fn read(&self) -> Result<i64> {
        let mut round = {
            let mut state = self.0.lock()?;
            if let (Some(local), Some((seq, Some(mark)))) = (self.0.local, state.latest)
                && local.unchanged_since(mark)
            {
                return Ok(seq);
            }
            state.wanted = true;
            if !state.sending {
                state.sending = true;
                tokio::spawn(Sender { inner: self.0.clone(), ended: false }.run());
            }
            state.next.subscribe()
        };
        let answer = round
            .wait_for(Option::is_some)
            .await
            .map_err(|_| Error::internal(anyhow::anyhow!("the feed head's query was dropped unanswered")))?;
        match answer.as_ref() {
            Some(Ok(seq)) => Ok(*seq),
            Some(Err(err)) => Err(err.for_another()),
            None => Err(Error::internal(anyhow::anyhow!("the feed head's round ended unanswered"))),
        }
    }
}

impl HeadInner {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, HeadState>> {
        self.state.lock().map_err(|_| Error::internal(anyhow::anyhow!("the feed head lock is poisoned")))
    }

    /// The head, on `held` (kept between the queries of a busy spell) on
    /// PostgreSQL when the pool can spare a connection, else from the pool.
    async fn query(&self, held: &mut Option<KeptConnection>) -> Result<i64> {
        let postgres = self.db.get_database_backend() == DbBackend::Postgres;
        if !postgres || self.db.get_postgres_connection_pool().options().get_max_connections() < KEEP_FROM {
            return head_seq(&self.db).await;
        }
        let timed_out = || Error::from(sea_orm::DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout));
        match tokio::time::timeout(HEAD_TIMEOUT, self.query_kept(held)).await {
            Ok(answer) => answer,
            Err(_) => {
                if let Some(mut conn) = held.take() {
                    conn.close_on_drop();
                }
                tracing::warn!(timeout = ?HEAD_TIMEOUT, "the feed head's query did not answer; closing its connection");
                Err(timed_out())
            }
        }
    }

    async fn query_kept(&self, held: &mut Option<KeptConnection>) -> Result<i64> {
        use sea_orm::{RuntimeErr, sqlx};
        let failed = |err: sqlx::Error| Error::from(sea_orm::DbErr::Query(RuntimeErr::SqlxError(Arc::new(err))));
        let pool = self.db.get_postgres_connection_pool();
        if pool.is_closed() {
            // Closing waits for every connection: give this one back.
            *held = None;
        }
        loop {
            let kept = held.is_some();
            let conn = match &mut *held {
                Some(conn) => conn,
                None => held.insert(pool.acquire().await.map_err(failed)?),
            };
            match sqlx::query_scalar::<_, Option<i64>>(HEAD_SQL).fetch_one(&mut **conn).await {
                Ok(seq) => return Ok(seq.unwrap_or(0)),
                Err(err) => {
                    if let Some(mut conn) = held.take() {
                        conn.close_on_drop();
                    }
                    // A kept connection may have been closed while idle:
                    // once more on a new one.
                    if !kept {
                        return Err(failed(err));
                    }
                    tracing::debug!(error = %err, "the feed head's connection failed; trying a new one");
                }
            }
        }
    }
}

/// A PostgreSQL connection the head's sender keeps while callers wait.
type KeptConnection = sea_orm::sqlx::pool::PoolConnection<sea_orm::sqlx::Postgres>;

/// A pool this small keeps no connection for the head: the LISTEN
/// connection, the head's and one for everything else.
const KEEP_FROM: u32 = 3;

/// The longest a head query may take before its round fails UNAVAILABLE.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// The task that sends rounds while callers wait for them; the connection
/// it keeps goes back to the pool when it ends.
struct Sender {
    inner: Arc<HeadInner>,
    ended: bool,
}

impl Sender {
    async fn run(mut self) {
        let mut held = None;
        loop {
            let inner = &*self.inner;
            // Callers ready to run now join this round before it is sent.
            tokio::task::yield_now().await;
            tokio::task::yield_now().await;
            let Ok((round, mark)) = inner.lock().map(|mut state| {
                state.wanted = false;
                (std::mem::replace(&mut state.next, watch::Sender::new(None)), inner.local.map(|l| l.mark()))
            }) else {
                return;
            };
            let answer = inner.query(&mut held).await;
            let Ok(more) = inner.lock().map(|mut state| {
                if let Ok(seq) = &answer {
                    state.latest = Some((*seq, mark));
                }
                // Decided here, with the flag: a caller that finds it off
                // starts another sender.
                state.sending = state.wanted;
                state.wanted
            }) else {
                return;
            };
            round.send_replace(Some(answer.map_err(Arc::new)));
            if !more {
                self.ended = true;
                return;
            }
        }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        // Ended early (a panic, the runtime's shutdown): the callers of the
        // round under way and of the next one are told so rather than left
        // waiting, and the next caller starts another sender.
        if let Ok(mut state) = self.inner.state.lock() {
            state.sending = false;
            state.wanted = false;
            state.next = watch::Sender::new(None);
        }
    }
}

/// Resources by id, kept in memory and answered as fresh as the database
/// was when the call began: before each answer the cache is brought up to
/// the feed's [`Head`], dropping every resource a change since names; a miss
/// is read from the database (after the head, so at least as fresh) and kept
/// unless the cache moved on meanwhile. For services whose every write of
/// the resource appends to the feed.
pub struct Cache<T, C> {
    db: DatabaseConnection,
    head: Head,
    state: std::sync::RwLock<CacheState<T>>,
    catch_up: tokio::sync::Mutex<()>,
    /// The topic of the changes that name the cached resources.
    topic: &'static str,
    /// The id of the resource a change names.
    id_of: fn(&C) -> Option<String>,
    /// Entries it keeps at most; past it, it starts again empty.
    max_entries: usize,
}

struct CacheState<T> {
    seq: Option<i64>,
    entries: std::collections::HashMap<String, Arc<T>>,
}

/// Entries a cache keeps at most unless told; past it, it starts again empty.
const CACHE_ENTRIES: usize = 100_000;

/// Past this many changes to catch up on, a cache starts again empty.
const CACHE_CATCH_UP: i64 = 5_000;

impl<T, C: Message + Default> Cache<T, C> {
    pub fn new(db: DatabaseConnection, topic: &'static str, id_of: fn(&C) -> Option<String>) -> Self {
        let head = Head::new(db.clone());
        Self {
            db,
            head,
            state: std::sync::RwLock::new(CacheState { seq: None, entries: std::collections::HashMap::new() }),
            catch_up: tokio::sync::Mutex::new(()),
            topic,
            id_of,
            max_entries: CACHE_ENTRIES,
        }
    }

    /// The cache asking `head` for the feed's head, shared with other
    /// readers of the same database: a call that reads several asks once.
    #[must_use]
    pub fn sharing(mut self, head: Head) -> Self {
        self.head = head;
        self
    }

    /// The cache keeping at most `max_entries` (100,000 unless told).
    #[must_use]
    pub fn holding(mut self, max_entries: usize) -> Self {
        self.max_entries = max_entries.max(1);
        self
    }

    fn poisoned() -> Error {
        Error::internal(anyhow::anyhow!("a cache's lock is poisoned"))
    }

    /// Brings the cache up to the head; returns the position it reflects.
    async fn fresh(&self) -> Result<i64> {
        let head = self.head.read().await?;
        if let Some(seq) = self.state.read().map_err(|_| Self::poisoned())?.seq
            && seq >= head
        {
            return Ok(seq);
        }
        let _turn = self.catch_up.lock().await;
        let seq = self.state.read().map_err(|_| Self::poisoned())?.seq;
        let stale: Option<Vec<String>> = match seq {
            Some(seq) if seq >= head => return Ok(seq),
            Some(seq) if head - seq <= CACHE_CATCH_UP => {
                let changes = changes_between::<C>(&self.db, self.topic, seq, head).await?;
                // Read after the changes: a prune in between may have taken some.
                (pruned_through(&self.db).await? <= seq)
                    .then(|| changes.iter().filter_map(|(_, c)| (self.id_of)(c)).collect())
            }
            _ => None,
        };
        let mut state = self.state.write().map_err(|_| Self::poisoned())?;
        match stale {
            Some(ids) => {
                for id in ids {
                    state.entries.remove(&id);
                }
            }
            None => state.entries.clear(),
        }
        state.seq = Some(head);
        Ok(head)
    }

    /// The resource `id`: from memory, or from `load` (None: there is none).
    pub async fn get<F, Fut>(&self, id: &str, load: F) -> Result<Option<Arc<T>>>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Option<T>>>,
    {
        let seq = self.fresh().await?;
        if let Some(found) = self.state.read().map_err(|_| Self::poisoned())?.entries.get(id) {
            return Ok(Some(found.clone()));
        }
        let Some(loaded) = load().await? else { return Ok(None) };
        let loaded = Arc::new(loaded);
        let mut state = self.state.write().map_err(|_| Self::poisoned())?;
        // A catch-up since may have dropped a change this read predates.
        if state.seq == Some(seq) {
            if state.entries.len() >= self.max_entries {
                state.entries.clear();
            }
            state.entries.insert(id.to_owned(), loaded.clone());
        }
        Ok(Some(loaded))
    }
}

/// The highest seq committed (0 when there is none).
async fn head_seq(db: &DatabaseConnection) -> Result<i64> {
    let head: Option<Option<i64>> = entity::change::Entity::find()
        .select_only()
        .column_as(entity::change::Column::Seq.max(), "head")
        .into_tuple()
        .one(db)
        .await?;
    Ok(head.flatten().unwrap_or(0))
}

/// The changes of `topic` with a seq in `(after, through]`, in order, as
/// their messages: what a cache applies to catch up.
pub async fn changes_between<M: Message + Default>(
    db: &DatabaseConnection,
    topic: &str,
    after: i64,
    through: i64,
) -> Result<Vec<(i64, M)>> {
    changes_in(db, topic, after, through, None).await.map(Option::unwrap_or_default)
}

/// Like [`changes_between`], or None when the range holds more than `max`
/// changes of `topic`: a cache that would rather load afresh than apply so
/// many learns it without reading them all. Other topics' changes in the
/// range do not count.
pub async fn changes_between_at_most<M: Message + Default>(
    db: &DatabaseConnection,
    topic: &str,
    after: i64,
    through: i64,
    max: u64,
) -> Result<Option<Vec<(i64, M)>>> {
    changes_in(db, topic, after, through, Some(max)).await
}

async fn changes_in<M: Message + Default>(
    db: &DatabaseConnection,
    topic: &str,
    after: i64,
    through: i64,
    max: Option<u64>,
) -> Result<Option<Vec<(i64, M)>>> {
    let mut query = entity::change::Entity::find()
        .select_only()
        .column(entity::change::Column::Seq)
        .column(entity::change::Column::Payload)
        .filter(entity::change::Column::Seq.gt(after))
        .filter(entity::change::Column::Seq.lte(through))
        .filter(entity::change::Column::Topic.eq(topic))
        .order_by_asc(entity::change::Column::Seq);
    if let Some(max) = max {
        query = query.limit(max.saturating_add(1));
    }
    let rows: Vec<(i64, Vec<u8>)> = query.into_tuple().all(db).await?;
    if max.is_some_and(|max| rows.len() as u64 > max) {
        return Ok(None);
    }
    rows.into_iter()
        .map(|(seq, payload)| Ok((seq, M::decode(payload.as_slice()).map_err(Error::internal)?)))
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// The highest seq pruned: changes up to it are gone.
pub async fn pruned_through(db: &DatabaseConnection) -> Result<i64> {
    Ok(entity::state::Entity::find_by_id(1).one(db).await?.map_or(0, |s| s.pruned_through))
}

/// The highest seq pruned and the highest committed: where the feed begins
/// and ends now.
async fn bounds(db: &DatabaseConnection) -> Result<(i64, i64)> {
    Ok((pruned_through(db).await?, head_seq(db).await?))
}

/// Removes the changes older than `retention`, in batches, recording the
/// highest seq removed; returns how many went.
pub async fn prune(db: &DatabaseConnection, retention: Duration) -> Result<u64> {
    use entity::{change, state};
    let cutoff = crate::now() - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    let mut removed = 0;
    loop {
        let batch: Vec<i64> = change::Entity::find()
            .select_only()
            .column(change::Column::Seq)
            .filter(change::Column::ChangeTime.lt(cutoff))
            .order_by_asc(change::Column::Seq)
            .limit(PRUNE_BATCH)
            .into_tuple()
            .all(db)
            .await?;
        let Some(&through) = batch.last() else { return Ok(removed) };
        let txn = db.begin().await?;
        state::Entity::update_many()
            .col_expr(state::Column::PrunedThrough, sea_orm::sea_query::Expr::value(through))
            .filter(state::Column::Id.eq(1))
            .filter(state::Column::PrunedThrough.lt(through))
            .exec(&txn)
            .await?;
        let gone = change::Entity::delete_many().filter(change::Column::Seq.lte(through)).exec(&txn).await?;
        txn.commit().await?;
        removed += gone.rows_affected;
        if (batch.len() as u64) < PRUNE_BATCH {
            return Ok(removed);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct Watcher<R: Responder> {
    feed: Arc<Inner>,
    responder: R,
    position: i64,
    /// Whether the feed's prune must be checked after the next read: on the
    /// first, and while catching up a backlog that retention may reach.
    check_pruned: bool,
    tx: mpsc::Sender<R::Response>,
    end: Option<oneshot::Sender<Status>>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

enum Step {
    Go,
    End,
}

impl<R: Responder> Watcher<R> {
    async fn run(mut self) {
        let _counted = self.feed.metrics.watcher_started();
        let mut wake = self.feed.wake.subscribe();
        let mut stop = self.feed.stop.clone();
        let heartbeat = Duration::from_secs(self.feed.settings.heartbeat_secs);
        let poll = Duration::from_millis(self.feed.settings.poll_ms);
        let mut last_sent = Instant::now();
        loop {
            if *stop.borrow() {
                self.end(Status::unavailable("the server is shutting down: watch again from the last resume_token"));
                return;
            }
            // Marks the wake-ups seen so far: one that comes while reading is
            // not lost, it makes the next wait return at once.
            wake.borrow_and_update();
            let (sent, full) = match self.read().await {
                Ok(Some(progress)) => progress,
                Ok(None) => return,
                Err(err) => {
                    self.end(err.into());
                    return;
                }
            };
            if sent {
                last_sent = Instant::now();
            }
            if full {
                continue;
            }
            // With LISTEN up, a notification comes at every commit: the
            // heartbeat's wait is poll enough. Otherwise poll.
            let listening = self.feed.listening.load(std::sync::atomic::Ordering::SeqCst);
            let wait = if listening { heartbeat } else { poll };
            tokio::select! {
                _ = wake.changed() => {}
                () = tokio::time::sleep(wait) => {}
                () = tokio::time::sleep_until((last_sent + heartbeat).into()) => {
                    let beat = self.responder.heartbeat(Position(self.position).token(&self.feed.service));
                    match self.send(beat).await {
                        Step::Go => last_sent = Instant::now(),
                        Step::End => return,
                    }
                }
                stopped = stop.changed() => {
                    if stopped.is_err() {
                        // The server is gone without a shutdown.
                        self.end(Status::unavailable("the server stopped: watch again from the last resume_token"));
                        return;
                    }
                }
                () = self.tx.closed() => return,
            }
        }
    }

    /// Reads and sends one batch: whether something was sent and whether the
    /// batch was full; None when the watcher ended.
    async fn read(&mut self) -> Result<Option<(bool, bool)>> {
        use entity::change;
        let rows: Vec<(i64, String, Vec<u8>)> = change::Entity::find()
            .select_only()
            .column(change::Column::Seq)
            .column(change::Column::Topic)
            .column(change::Column::Payload)
            .filter(change::Column::Seq.gt(self.position))
            .order_by_asc(change::Column::Seq)
            .limit(BATCH)
            .into_tuple()
            .all(&self.feed.db)
            .await?;
        let full = rows.len() as u64 == BATCH;
        // A prune between the last read and this one may have removed
        // changes right after the position: then they cannot be streamed.
        if std::mem::replace(&mut self.check_pruned, full) && pruned_through(&self.feed.db).await? > self.position {
            let days = self.feed.settings.retention_days;
            return Err(Error::out_of_range(
                Reason::ResumeTokenExpired,
                format!("changes after this position passed the {days} days kept while the stream caught up: read the current state with a List, then watch with an empty start_after"),
            )
            .with_metadata("retention_days", days.to_string()));
        }
        let mut sent = false;
        for (seq, topic, payload) in rows {
            // Passed over, the position moves on all the same.
            self.position = seq;
            if topic != R::TOPIC {
                continue;
            }
            let change = R::Change::decode(payload.as_slice()).map_err(Error::internal)?;
            if let Some(response) = self.responder.change(Position(seq).token(&self.feed.service), change) {
                match self.send(response).await {
                    Step::Go => sent = true,
                    Step::End => return Ok(None),
                }
            }
        }
        Ok(Some((sent, full)))
    }

    /// Queues one response, waiting up to [`STALL`] for room; a caller that
    /// makes none gets what is buffered, then WATCHER_TOO_SLOW.
    async fn send(&mut self, response: R::Response) -> Step {
        let mut stop = self.feed.stop.clone();
        let sent = tokio::select! {
            sent = tokio::time::timeout(STALL, self.tx.send(response)) => sent,
            _ = stop.wait_for(|stopping| *stopping) => {
                self.end(Status::unavailable("the server is shutting down: watch again from the last resume_token"));
                return Step::End;
            }
        };
        match sent {
            Ok(Ok(())) => Step::Go,
            Ok(Err(_)) => Step::End,
            Err(_) => {
                let buffered = self.feed.settings.buffer;
                self.feed.metrics.watcher_cut_off();
                tracing::info!(buffered, "a watcher read too slowly: cut off");
                let err = Error::resource_exhausted(
                    Reason::WatcherTooSlow,
                    format!(
                        "the stream was read too slowly: {buffered} responses waited for the caller for {}s. Watch \
                         again with the last resume_token received",
                        STALL.as_secs()
                    ),
                )
                .with_metadata("buffered", buffered.to_string());
                self.end(err.into());
                Step::End
            }
        }
    }

    fn end(&mut self, status: Status) {
        if let Some(end) = self.end.take() {
            let _ = end.send(status);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_its_position() {
        for seq in [0, 1, 42, i64::MAX] {
            assert_eq!(Position::parse(&Position(seq).token("tariff"), "tariff"), Ok(Position(seq)));
        }
    }

    #[test]
    fn made_up_and_altered_tokens_are_refused() {
        let token = Position(7).token("tariff");
        assert!(Position::parse(&token, "dispute").is_err(), "another service's token");
        let mut bytes = URL_SAFE_NO_PAD.decode(&token).unwrap_or_default();
        bytes[8] ^= 1;
        let altered = URL_SAFE_NO_PAD.encode(bytes);
        for bad in [altered.as_str(), "7", "garbage!", &token[..token.len() - 1], &"A".repeat(40)] {
            assert!(Position::parse(bad, "tariff").is_err(), "{bad} was accepted");
        }
    }
}
