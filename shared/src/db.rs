//! Connecting to the service's database, SQLite or PostgreSQL, with the
//! settings each needs, and beginning write transactions that are safe on
//! both.

use std::{path::Path, time::Duration};

use sea_orm::{
    ActiveModelTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, EntityTrait, SqlErr, SqliteTransactionMode, TransactionOptions, TransactionTrait,
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
        opt.max_connections(settings.max_connections.unwrap_or(10)).min_connections(1).map_sqlx_postgres_opts(
            move |o| o.options([("statement_timeout", statement.to_string()), ("lock_timeout", lock.to_string())]),
        );
    }
    Database::connect(opt).await
}

fn make_sqlite_folder(url: &str) {
    let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path.starts_with(":memory:") {
        return;
    }
    if let Some(parent) = Path::new(path).parent()
        && !parent.as_os_str().is_empty()
        && let Err(err) = std::fs::create_dir_all(parent)
    {
        tracing::warn!(folder = %parent.display(), %err, "cannot create the database folder");
    }
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
    let db = connect_for(settings, Purpose::Migrate).await?;
    M::up(&db, None).await?;
    tracing::info!(applied = M::migrations().len(), "schema up to date");
    db.close().await
}

/// Begins a transaction that will write. On SQLite it takes the write lock at
/// once (BEGIN IMMEDIATE): a deferred read-then-write transaction can fail
/// with SQLITE_BUSY_SNAPSHOT, which busy_timeout does not cure.
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    })
    .await
}

/// Rows one multi-row INSERT carries: far below SQLite's 32,766 and
/// PostgreSQL's 65,535 bind parameters for any of our tables.
pub const INSERT_CHUNK_ROWS: usize = 500;

/// Ids one `IN (…)` list carries.
pub const ID_CHUNK: usize = 500;

/// Inserts `rows` in statements of at most [`INSERT_CHUNK_ROWS`] rows, so no
/// request can reach a bind-parameter limit. Nothing to insert is no
/// statement at all.
pub async fn insert_chunked<A>(conn: &impl ConnectionTrait, rows: Vec<A>) -> Result<(), DbErr>
where
    A: ActiveModelTrait + Send,
{
    let mut rows = rows.into_iter();
    loop {
        let chunk: Vec<A> = rows.by_ref().take(INSERT_CHUNK_ROWS).collect();
        if chunk.is_empty() {
            return Ok(());
        }
        A::Entity::insert_many(chunk).exec_without_returning(conn).await?;
    }
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
