//! Connecting to the service's database, SQLite or PostgreSQL, with the
//! settings each needs, and beginning write transactions that are safe on
//! both.

use std::{path::Path, time::Duration};

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, SqlErr,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
    sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous},
};
use sea_orm_migration::MigratorTrait;

use crate::config::DatabaseSettings;

/// Opens the pool. A SQLite file's folder is made if missing.
pub async fn connect(settings: &DatabaseSettings) -> Result<DatabaseConnection, DbErr> {
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
        opt.max_connections(settings.max_connections.unwrap_or(4)).min_connections(1).map_sqlx_sqlite_opts(|o| {
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true)
        });
    } else {
        opt.max_connections(settings.max_connections.unwrap_or(10)).min_connections(1);
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
    let db = connect(settings).await?;
    if settings.migrate_on_start {
        M::up(&db, None).await?;
    }
    Ok(db)
}

/// `<service>-service migrate`: brings the schema up to date and closes.
pub async fn migrate<M: MigratorTrait>(settings: &DatabaseSettings) -> Result<(), DbErr> {
    let db = connect(settings).await?;
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

/// Whether `err` is a unique-constraint violation.
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

/// A query that answers when the database is reachable.
pub async fn ping(db: &DatabaseConnection) -> Result<(), DbErr> {
    db.ping().await
}

/// The backend of a connection, for the few statements that differ.
pub fn backend(db: &impl ConnectionTrait) -> DbBackend {
    db.get_database_backend()
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
