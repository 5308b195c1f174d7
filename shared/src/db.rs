//! Connecting to the service's database, SQLite or PostgreSQL, with the
//! settings each needs, and beginning write transactions that are safe on
//! both.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use sea_orm::{
    AccessMode, ActiveModelTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction,
    DbBackend, DbErr, EntityTrait, IsolationLevel, SqlErr, SqliteTransactionMode, TransactionOptions, TransactionTrait,
    sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous},
};
use sea_orm_migration::MigratorTrait;

use crate::config::DatabaseSettings;

/// What a pool is for: serving calls runs under the statement timeout;
/// migrations do not (an index build may take longer than any call).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Serve,
    Migrate,
}

/// A PostgreSQL connection idle this long is checked before it is handed out.
const IDLE_CHECK: Duration = Duration::from_secs(5);

/// Opens the pool for serving. A SQLite file's folder is made if missing.
pub async fn connect(settings: &DatabaseSettings) -> Result<DatabaseConnection, DbErr> {
    connect_for(settings, Purpose::Serve).await
}

async fn connect_for(settings: &DatabaseSettings, purpose: Purpose) -> Result<DatabaseConnection, DbErr> {
    let url = settings.url.as_str();
    let sqlite = url.starts_with("sqlite:");
    if sqlite {
        make_sqlite_folder(url);
    }
    let mut opt = ConnectOptions::new(url.to_owned());
    opt.acquire_timeout(Duration::from_millis(settings.acquire_timeout_ms))
        .connect_timeout(Duration::from_secs(5))
        // sqlx logs every statement at INFO: keep them for debugging only.
        .sqlx_logging_level(tracing::log::LevelFilter::Debug)
        .sqlx_slow_statements_logging_settings(tracing::log::LevelFilter::Warn, Duration::from_millis(500));
    if sqlite {
        // WAL lets readers run beside the one writer; write transactions
        // begin IMMEDIATE (see `begin_write`), so busy_timeout covers waits.
        let busy = Duration::from_millis(settings.lock_timeout_ms);
        // A file of this process's own: nothing to check before a checkout.
        opt.test_before_acquire(false);
        opt.max_connections(settings.max_connections.unwrap_or(4)).min_connections(1).map_sqlx_sqlite_opts(move |o| {
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(busy)
                .foreign_keys(true)
        });
    } else {
        // Every session waits at most this long for a row lock, and runs no
        // statement longer than this: one stuck writer cannot drain the pool.
        let statement = if purpose == Purpose::Serve { settings.statement_timeout_ms } else { 0 };
        let lock = settings.lock_timeout_ms;
        // A round trip before every checkout would double a short query's
        // cost: only a connection idle long enough to have been dropped on
        // the way is checked. One closed under a busy pool fails its next
        // statement (UNAVAILABLE) and is replaced.
        opt.test_before_acquire_if_idle_for(IDLE_CHECK);
        opt.max_connections(settings.max_connections.unwrap_or(10)).min_connections(1).map_sqlx_postgres_opts(
            move |o| o.options([("statement_timeout", statement.to_string()), ("lock_timeout", lock.to_string())]),
        );
    }
    Database::connect(opt).await
}

/// The file of a SQLite URL; None for PostgreSQL and in-memory databases.
pub(crate) fn sqlite_file(url: &str) -> Option<&Path> {
    let path = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = path.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.starts_with(":memory:") && !url.contains("mode=memory")).then(|| Path::new(path))
}

fn make_sqlite_folder(url: &str) {
    let Some(path) = sqlite_file(url) else { return };
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
        && let Err(err) = std::fs::create_dir_all(parent)
    {
        tracing::warn!(folder = %parent.display(), %err, "cannot create the database folder");
    }
}

/// A serving process's hold on its SQLite file. [`LocalWrites`] sees every
/// write only if no other process writes the file, so a second process that
/// would serve it is refused: the hold is an advisory lock on `<file>.lock`,
/// which the kernel releases when the process ends, however it ends. The
/// servers of one process (replicas in a test) share it.
pub struct SqliteHold(#[allow(dead_code)] Arc<std::fs::File>);

/// Takes the hold on the SQLite file of `url`; None for PostgreSQL and
/// in-memory databases.
pub fn hold_sqlite(url: &str) -> anyhow::Result<Option<SqliteHold>> {
    use std::{fs::TryLockError, io::Write as _};
    static HELD: Mutex<BTreeMap<PathBuf, Weak<std::fs::File>>> = Mutex::new(BTreeMap::new());
    let Some(path) = sqlite_file(url) else { return Ok(None) };
    // One name for the file however the URL spells it: the folder made and
    // resolved (links, `..`), then the file's name.
    make_sqlite_folder(url);
    let folder = match path.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder,
        _ => Path::new("."),
    };
    let folder = std::fs::canonicalize(folder)
        .map_err(|err| anyhow::anyhow!("cannot open the folder of {} (database.url): {err}", path.display()))?;
    let path = folder.join(path.file_name().unwrap_or(path.as_os_str()));
    let mut lock_path = path.clone().into_os_string();
    lock_path.push(".lock");
    let mut held = HELD.lock().map_err(|_| anyhow::anyhow!("the SQLite holds' lock is poisoned"))?;
    held.retain(|_, file| file.strong_count() > 0);
    if let Some(file) = held.get(&path).and_then(Weak::upgrade) {
        return Ok(Some(SqliteHold(file)));
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|err| anyhow::anyhow!("cannot open {}: {err}", Path::new(&lock_path).display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&lock_path).unwrap_or_default();
            anyhow::bail!(
                "{} (database.url) is served by another process (pid {}): a SQLite database has one serving \
                 process; run replicas on PostgreSQL",
                path.display(),
                holder.trim()
            );
        }
        Err(TryLockError::Error(err)) => {
            anyhow::bail!("cannot lock {}: {err}", Path::new(&lock_path).display())
        }
    }
    file.set_len(0)?;
    write!(file, "{}", std::process::id())?;
    let file = Arc::new(file);
    held.insert(path, Arc::downgrade(&file));
    Ok(Some(SqliteHold(file)))
}

/// Connects for `serve`: brings the schema up to date first unless
/// `database.migrate_on_start` is off (a Kubernetes Job runs `migrate`).
pub async fn open<M: MigratorTrait>(settings: &DatabaseSettings) -> Result<DatabaseConnection, DbErr> {
    let in_memory = settings.url.contains(":memory:") || settings.url.contains("mode=memory");
    if settings.migrate_on_start && !in_memory {
        // On a pool of their own, without the serving timeouts.
        migrate::<M>(settings).await?;
    }
    let db = connect(settings).await?;
    if settings.migrate_on_start && in_memory {
        // An in-memory SQLite database lives and dies with its pool.
        M::up(&db, None).await?;
    }
    Ok(db)
}

/// `<service>-service migrate`: brings the schema up to date and closes.
pub async fn migrate<M: MigratorTrait>(settings: &DatabaseSettings) -> Result<(), DbErr> {
    // Migrations write too: not beside another process serving a SQLite file.
    let _hold = hold_sqlite(&settings.url).map_err(|err| DbErr::Custom(format!("{err:#}")))?;
    let db = connect_for(settings, Purpose::Migrate).await?;
    M::up(&db, None).await?;
    tracing::info!(applied = M::migrations().len(), "schema up to date");
    db.close().await
}

/// Begins a transaction that only reads, every statement of it from one
/// snapshot of the database and on one connection: REPEATABLE READ, READ
/// ONLY on PostgreSQL; on SQLite a deferred transaction, whose first read
/// fixes the snapshot (WAL). Dropped, it ends.
pub async fn begin_snapshot(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    if db.get_database_backend() == DbBackend::Postgres {
        db.begin_with_config(Some(IsolationLevel::RepeatableRead), Some(AccessMode::ReadOnly)).await
    } else {
        db.begin().await
    }
}

/// Begins a transaction that will write. On SQLite it takes the write lock at
/// once (BEGIN IMMEDIATE): a deferred read-then-write transaction can fail
/// with SQLITE_BUSY_SNAPSHOT, which busy_timeout does not cure; and it is
/// counted in [`local_writes`] from before it begins until it has ended.
pub async fn begin_write(db: &DatabaseConnection) -> Result<Write, DbErr> {
    let counted = (db.get_database_backend() == DbBackend::Sqlite).then(|| LOCAL_WRITES.start());
    let txn = db
        .begin_with_options(TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        })
        .await?;
    Ok(Write { txn, _counted: counted })
}

/// A write transaction of [`begin_write`]: used as the `DatabaseTransaction`
/// it derefs to, and ended by [`Write::commit`] or [`Write::rollback`] (or
/// dropped, which rolls it back).
pub struct Write {
    txn: DatabaseTransaction,
    _counted: Option<Counted>,
}

impl std::ops::Deref for Write {
    type Target = DatabaseTransaction;

    fn deref(&self) -> &DatabaseTransaction {
        &self.txn
    }
}

impl Write {
    pub async fn commit(self) -> Result<(), DbErr> {
        self.end(DatabaseTransaction::commit).await
    }

    pub async fn rollback(self) -> Result<(), DbErr> {
        self.end(DatabaseTransaction::rollback).await
    }

    /// Ends the transaction with `end`. The end is counted once the database
    /// has answered, even when the caller gives up meanwhile (its deadline):
    /// a COMMIT already sent still lands, so it runs in a task of its own.
    async fn end<F>(self, end: impl FnOnce(DatabaseTransaction) -> F) -> Result<(), DbErr>
    where
        F: Future<Output = Result<(), DbErr>> + Send + 'static,
    {
        let Self { txn, _counted } = self;
        let ending = end(txn);
        tokio::spawn(async move {
            let done = ending.await;
            drop(_counted);
            done
        })
        .await
        .map_err(|err| DbErr::Custom(format!("the end of a write transaction failed: {err}")))?
    }
}

/// The write transactions of this process on SQLite: those under way, and
/// how many have ended. A SQLite database has one serving process (see
/// [`connect`]), so when none is under way and none has ended since a query
/// of the database began, the database has not changed since either: what
/// lets the read caches answer without asking it again.
pub struct LocalWrites {
    running: AtomicU64,
    ended: AtomicU64,
}

static LOCAL_WRITES: LocalWrites = LocalWrites { running: AtomicU64::new(0), ended: AtomicU64::new(0) };

/// This process's SQLite writes (one count for all its SQLite databases: a
/// write to one only costs the others a query).
pub fn local_writes() -> &'static LocalWrites {
    &LOCAL_WRITES
}

impl LocalWrites {
    /// A mark to take before a query of the database is sent.
    pub fn mark(&self) -> u64 {
        self.ended.load(Ordering::SeqCst)
    }

    /// Whether no write has been under way since `mark` was taken: then the
    /// database is as a query sent after the mark found it. (`running` is
    /// read first: a write that had begun by then and is not running has
    /// ended, and `ended`, read after, counts it.)
    pub fn unchanged_since(&self, mark: u64) -> bool {
        self.running.load(Ordering::SeqCst) == 0 && self.ended.load(Ordering::SeqCst) == mark
    }

    fn start(&'static self) -> Counted {
        self.running.fetch_add(1, Ordering::SeqCst);
        Counted(self)
    }
}

/// One write under way; ended when dropped, however the write ended.
struct Counted(&'static LocalWrites);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.ended.fetch_add(1, Ordering::SeqCst);
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Bind parameters one multi-row INSERT carries at most on SQLite: below
/// its 32,766. A narrow table's rows go many to a statement (a link table's
/// two columns, 15,000), a wide one's fewer: each statement is a round trip,
/// and the rows of a large import are written in a handful of them.
pub const INSERT_PARAMS: usize = 30_000;

/// Ids one `IN (…)` list carries.
pub const ID_CHUNK: usize = 500;

/// Rows one `INSERT … SELECT FROM UNNEST` carries on PostgreSQL.
const UNNEST_ROWS: usize = 50_000;

/// Rows of `E` one multi-row INSERT of [`insert_chunked`] carries.
pub fn insert_chunk_rows<E: EntityTrait>() -> usize {
    use sea_orm::Iterable as _;
    (INSERT_PARAMS / E::Column::iter().count().max(1)).max(1)
}

/// Inserts `rows`, so that no request can reach a bind-parameter limit and
/// a large import costs a few statements. On PostgreSQL each column goes as
/// one array and the rows are `UNNEST`ed: one short statement whatever the
/// count, prepared once per connection and planned in microseconds (a
/// multi-row `VALUES` of thousands of rows is planned anew each time, and
/// costs more to plan than to execute). On SQLite, multi-row `VALUES` of at
/// most [`INSERT_PARAMS`] parameters. Nothing to insert is no statement.
pub async fn insert_chunked<A>(conn: &impl ConnectionTrait, rows: Vec<A>) -> Result<(), DbErr>
where
    A: ActiveModelTrait + Send,
{
    if conn.get_database_backend() == DbBackend::Postgres {
        // Every chunk spelt before the first is written: a chunk that cannot
        // be leaves all the rows to `VALUES`, none of them written twice.
        let statements: Option<Vec<_>> = rows.chunks(UNNEST_ROWS).map(unnest_insert).collect();
        if let Some(statements) = statements {
            for statement in statements {
                conn.execute_raw(statement).await?;
            }
            return Ok(());
        }
    }
    let per_statement = insert_chunk_rows::<A::Entity>();
    let mut rows = rows.into_iter();
    loop {
        let chunk: Vec<A> = rows.by_ref().take(per_statement).collect();
        if chunk.is_empty() {
            return Ok(());
        }
        A::Entity::insert_many(chunk).exec_without_returning(conn).await?;
    }
}

/// `INSERT INTO t (a, b, …) SELECT * FROM UNNEST($1::uuid[], $2::text[], …)`
/// for `rows`, each column's values as one PostgreSQL array literal; None
/// when a value is of a kind it does not spell (the caller then writes
/// `VALUES`), or when a column is set on some rows and not others. A column
/// set on none is left to its default.
fn unnest_insert<A: ActiveModelTrait>(rows: &[A]) -> Option<sea_orm::Statement> {
    use sea_orm::{ActiveValue, EntityName as _, IdenStatic as _, Iterable as _};

    if rows.is_empty() {
        return None;
    }
    let mut names = Vec::new();
    let mut arrays = Vec::new();
    for column in <A::Entity as EntityTrait>::Column::iter() {
        let mut literal = String::from("{");
        let mut kind = None;
        let mut set = 0;
        for (i, row) in rows.iter().enumerate() {
            let value = match row.get(column) {
                ActiveValue::Set(v) | ActiveValue::Unchanged(v) => v,
                ActiveValue::NotSet => continue,
            };
            set += 1;
            let (sql_type, text) = array_element(&value)?;
            if kind.is_some_and(|k| k != sql_type) {
                return None;
            }
            kind = Some(sql_type);
            if i > 0 {
                literal.push(',');
            }
            match text {
                None => literal.push_str("NULL"),
                Some(text) => push_quoted(&mut literal, &text),
            }
        }
        match (set, kind) {
            (0, _) => continue,
            (n, Some(kind)) if n == rows.len() => {
                literal.push('}');
                names.push(format!("\"{}\"", column.as_str()));
                arrays.push((kind, literal));
            }
            _ => return None,
        }
    }
    let table = A::Entity::default().table_name().to_owned();
    let casts: Vec<String> = arrays.iter().enumerate().map(|(i, (kind, _))| format!("${}::{kind}[]", i + 1)).collect();
    let sql = format!("INSERT INTO \"{table}\" ({}) SELECT * FROM UNNEST({})", names.join(", "), casts.join(", "));
    let values = arrays.into_iter().map(|(_, literal)| sea_orm::Value::from(literal));
    Some(sea_orm::Statement::from_sql_and_values(DbBackend::Postgres, sql, values))
}

/// Has PostgreSQL plan this transaction's statements with index scans
/// wherever one serves (no-op on SQLite). For a bulk write into tables that
/// grow under it: the lookups it makes as it goes (by reference, by key)
/// are prepared statements, and a plan PostgreSQL caches for one while its
/// table is nearly empty is a sequential scan, which it keeps as the table
/// grows to thousands of rows, until autovacuum's next ANALYZE: each batch
/// of a load then reads the whole table again. Forcing custom plans instead
/// would replan every foreign-key check, a row at a time.
pub async fn prefer_indexes(txn: &DatabaseTransaction) -> Result<(), DbErr> {
    if txn.get_database_backend() == DbBackend::Postgres {
        txn.execute_unprepared("SET LOCAL enable_seqscan = off").await?;
    }
    Ok(())
}

/// `text` as an element of a PostgreSQL array literal: in double quotes,
/// its quotes and backslashes escaped.
fn push_quoted(literal: &mut String, text: &str) {
    literal.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            literal.push('\\');
        }
        literal.push(c);
    }
    literal.push('"');
}

/// `texts` as one PostgreSQL array literal (`{"a","b"}`), to bind as one
/// parameter cast to `text[]`: `column = ANY($1::text[])` is one short
/// statement for any number of values, and its plan an index scan however
/// small the table was when the plan was made (a long `IN ($1, …)` can
/// keep a sequential scan planned while the table was empty).
pub fn text_array<'a>(texts: impl IntoIterator<Item = &'a str>) -> String {
    let mut literal = String::from("{");
    for (i, text) in texts.into_iter().enumerate() {
        if i > 0 {
            literal.push(',');
        }
        push_quoted(&mut literal, text);
    }
    literal.push('}');
    literal
}

/// The PostgreSQL type of `value` and its text in an array literal (None:
/// NULL); None for a kind of value it does not spell.
fn array_element(value: &sea_orm::Value) -> Option<(&'static str, Option<String>)> {
    use sea_orm::Value as V;
    fn text<T: ToString>(v: Option<&T>) -> Option<String> {
        v.map(ToString::to_string)
    }
    Some(match value {
        V::Bool(v) => ("bool", v.map(|b| if b { "t" } else { "f" }.to_owned())),
        V::SmallInt(v) => ("int2", text(v.as_ref())),
        V::Int(v) => ("int4", text(v.as_ref())),
        V::BigInt(v) => ("int8", text(v.as_ref())),
        V::Double(v) => ("float8", text(v.as_ref())),
        V::String(v) => ("text", v.clone()),
        V::Bytes(v) => (
            "bytea",
            v.as_ref().map(|b| {
                let mut hex = String::with_capacity(2 + 2 * b.len());
                hex.push_str("\\x");
                const DIGITS: &[u8; 16] = b"0123456789abcdef";
                for byte in b {
                    hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
                    hex.push(char::from(DIGITS[usize::from(byte & 0xf)]));
                }
                hex
            }),
        ),
        V::Uuid(v) => ("uuid", text(v.as_ref())),
        V::ChronoDate(v) => ("date", text(v.as_ref())),
        // To the microsecond, cut as a bound timestamp is (PostgreSQL would
        // round a longer fraction).
        V::ChronoDateTimeUtc(v) => ("timestamptz", v.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))),
        V::ChronoDateTimeWithTimeZone(v) => {
            ("timestamptz", v.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)))
        }
        _ => return None,
    })
}

/// An entity whose rows carry a `version` that every update bumps: the
/// etag of its resource (AIP-154).
pub trait Versioned: EntityTrait {
    /// The resource's name in errors: `measure`, `dispute`, …
    const RESOURCE: &'static str;
    const ID: Self::Column;
    const VERSION: Self::Column;
    /// Never written again after the insert.
    const CREATE_TIME: Self::Column;
}

/// Writes `row` over the row `id` if that row's version is still
/// `expected` (`row` carries the next one); another writer in between is
/// ABORTED, as a stale etag is.
pub async fn update_versioned<E: Versioned>(
    conn: &impl ConnectionTrait,
    id: uuid::Uuid,
    expected: i64,
    mut row: E::ActiveModel,
) -> crate::Result<()>
where
    E::ActiveModel: Send,
{
    use sea_orm::{ColumnTrait as _, QueryFilter as _};
    row.not_set(E::ID);
    row.not_set(E::CREATE_TIME);
    let result = E::update_many().set(row).filter(E::ID.eq(id)).filter(E::VERSION.eq(expected)).exec(conn).await?;
    if result.rows_affected == 0 {
        return Err(crate::Error::etag_mismatch(E::RESOURCE, id));
    }
    Ok(())
}

/// Whether `err` is a unique-constraint violation.
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

/// The pool's connections in use and idle.
pub fn pool_usage(db: &DatabaseConnection) -> (u32, u32) {
    let (size, idle) = match db.get_database_backend() {
        sea_orm::DatabaseBackend::Postgres => {
            let pool = db.get_postgres_connection_pool();
            (pool.size(), pool.num_idle())
        }
        sea_orm::DatabaseBackend::Sqlite => {
            let pool = db.get_sqlite_connection_pool();
            (pool.size(), pool.num_idle())
        }
        _ => (0, 0),
    };
    let idle = u32::try_from(idle).unwrap_or(u32::MAX);
    (size.saturating_sub(idle), idle)
}

/// A query that answers when the database is reachable.
pub async fn ping(db: &DatabaseConnection) -> Result<(), DbErr> {
    db.ping().await
}

/// The names of a service's migrations, in order: the schema its code needs.
pub fn schema_of<M: MigratorTrait>() -> Vec<String> {
    M::migrations().iter().map(|m| m.name().to_owned()).collect()
}

/// How many of `schema`'s migrations the database has not applied yet. A
/// migration applied that `schema` does not name is ignored: it belongs to a
/// newer version, whose migrations only expand the schema (see the deploy
/// guide), so this one still runs on it.
pub async fn pending_migrations(db: &DatabaseConnection, schema: &[String]) -> Result<usize, DbErr> {
    use sea_orm::Statement;
    let backend = db.get_database_backend();
    let exists = match backend {
        DbBackend::Postgres => {
            "SELECT COUNT(*) AS n FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = 'seaql_migrations'"
        }
        _ => "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'seaql_migrations'",
    };
    let present = match db.query_one_raw(Statement::from_string(backend, exists)).await? {
        Some(row) => row.try_get::<i64>("", "n")? > 0,
        None => false,
    };
    if !present {
        return Ok(schema.len());
    }
    let rows = db.query_all_raw(Statement::from_string(backend, "SELECT version FROM seaql_migrations")).await?;
    let mut applied = std::collections::HashSet::with_capacity(rows.len());
    for row in rows {
        applied.insert(row.try_get::<String>("", "version")?);
    }
    Ok(schema.iter().filter(|name| !applied.contains(*name)).count())
}

/// A custom SQL expression written with `?` placeholders, bound to
/// `values` in order, on either backend: PostgreSQL numbers its placeholders
/// (`$1`, `$2`, …), SQLite takes `?`. The SQL must hold no other `?`.
pub fn custom_expr(
    conn: &impl ConnectionTrait,
    sql: &str,
    values: Vec<sea_orm::Value>,
) -> sea_orm::sea_query::SimpleExpr {
    let sql = match conn.get_database_backend() {
        DbBackend::Postgres => {
            let mut numbered = String::with_capacity(sql.len() + 8);
            for (i, part) in sql.split('?').enumerate() {
                if i > 0 {
                    numbered.push_str(&format!("${i}"));
                }
                numbered.push_str(part);
            }
            numbered
        }
        _ => sql.to_owned(),
    };
    sea_orm::sea_query::Expr::cust_with_values(sql, values)
}

/// A list stored comma-joined in one column (economies, HS codes, ids: none
/// holds a comma).
pub fn join_list<T: ToString>(items: &[T]) -> String {
    items.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}

/// The inverse of [`join_list`].
pub fn split_list<T>(s: &str, parse: impl Fn(&str) -> Result<T, String>) -> Result<Vec<T>, String> {
    if s.is_empty() { Ok(vec![]) } else { s.split(',').map(parse).collect() }
}

/// The error for a stored value that no longer parses: a bug or a manual
/// edit, never the caller's fault.
pub fn corrupt(resource: &str, id: impl std::fmt::Display, what: &str, why: impl std::fmt::Display) -> crate::Error {
    crate::Error::internal(anyhow::anyhow!("stored {resource} {id} has a bad {what}: {why}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn array_literals_quote_every_element_and_escape_quotes_and_backslashes() {
        assert_eq!(text_array([]), "{}");
        assert_eq!(text_array(["a", "b\"c", "d\\e", "NULL", "x,y{}"]), r#"{"a","b\"c","d\\e","NULL","x,y{}"}"#);
        let bytes = sea_orm::Value::Bytes(Some(vec![0x00, 0xab, 0x10]));
        assert_eq!(array_element(&bytes), Some(("bytea", Some("\\x00ab10".to_owned()))));
        assert_eq!(array_element(&sea_orm::Value::String(None)), Some(("text", None)));
        assert_eq!(array_element(&sea_orm::Value::Bool(Some(true))), Some(("bool", Some("t".to_owned()))));
        let at = chrono::DateTime::parse_from_rfc3339("2026-12-03T06:46:54.123456789Z").unwrap().to_utc();
        let (kind, text) = array_element(&sea_orm::Value::ChronoDateTimeUtc(Some(at))).unwrap();
        assert_eq!((kind, text.as_deref()), ("timestamptz", Some("2026-12-03T06:46:54.123456Z")));
    }

    #[test]
    fn local_writes_tell_whether_the_database_can_have_changed_since_a_mark() {
        let writes: &'static LocalWrites =
            Box::leak(Box::new(LocalWrites { running: AtomicU64::new(0), ended: AtomicU64::new(0) }));
        let mark = writes.mark();
        assert!(writes.unchanged_since(mark));
        let write = writes.start();
        assert!(!writes.unchanged_since(mark), "a write under way");
        assert!(!writes.unchanged_since(writes.mark()), "a write under way, whatever the mark");
        drop(write);
        assert!(!writes.unchanged_since(mark), "a write ended since the mark");
        let later = writes.mark();
        assert!(writes.unchanged_since(later));
    }

    #[test]
    fn a_sqlite_file_is_held_once_per_process_and_refused_while_another_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let url = |name: &str| format!("sqlite://{}?mode=rwc", dir.path().join(name).display());
        let first = hold_sqlite(&url("a.db")).unwrap().expect("a file is held");
        let again = hold_sqlite(&url("a.db")).unwrap().expect("servers of one process share it");
        assert!(Arc::ptr_eq(&first.0, &again.0));

        // Another process's hold, as the kernel sees it: the lock file, locked
        // through another open file.
        let other = std::fs::File::create(dir.path().join("b.db.lock")).unwrap();
        other.lock().unwrap();
        let refused = hold_sqlite(&url("b.db")).err().expect("refused while held").to_string();
        assert!(refused.contains("b.db (database.url) is served by another process"), "{refused}");
        drop(other);
        assert!(hold_sqlite(&url("b.db")).unwrap().is_some(), "taken once the other let go");

        // However the URL spells the file, in a folder not made yet.
        let fresh = format!("sqlite://{}?mode=rwc", dir.path().join("new/c.db").display());
        let spelt = format!("sqlite://{}?mode=rwc", dir.path().join("new/../new/c.db").display());
        let c = hold_sqlite(&fresh).unwrap().expect("its folder is made");
        assert!(Arc::ptr_eq(&c.0, &hold_sqlite(&spelt).unwrap().expect("one file, one hold").0));

        assert!(hold_sqlite("sqlite::memory:").unwrap().is_none());
        assert!(hold_sqlite("sqlite://ignored?mode=memory&cache=shared").unwrap().is_none());
        assert!(hold_sqlite("postgres://postgres@127.0.0.1/test").unwrap().is_none());
    }
}
