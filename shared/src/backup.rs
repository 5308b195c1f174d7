//! `<service>-service backup --to FILE` and `restore --from FILE`: a copy of
//! the service's database that restores whole, with every record and every
//! feed position.
//!
//! - SQLite: `VACUUM INTO`, SQLite's own consistent copy taken in one read
//!   transaction while the service goes on serving (writers are not
//!   blocked), never a copy of a live file beside its write-ahead log. The
//!   restore checks the copy (`PRAGMA integrity_check`), writes it beside
//!   the target and renames it into place, holding the file as a serving
//!   process would: no service may serve it meanwhile.
//! - PostgreSQL: `pg_dump --format=custom` of the service's database, and
//!   `pg_restore --single-transaction --exit-on-error`: all or nothing.
//!
//! A restore goes into an empty database only (no table, or no file): it
//! never merges into, nor overwrites, data that is there.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};

use crate::{
    config::{DatabaseSettings, redact_url},
    db,
};

/// What a backup file holds, by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sqlite,
    PgDump,
}

impl Kind {
    fn of_file(path: &Path) -> anyhow::Result<Self> {
        use std::io::Read as _;
        let mut head = [0u8; 16];
        let mut file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let n = file.read(&mut head)?;
        match &head[..n] {
            h if h.starts_with(b"SQLite format 3\0") => Ok(Self::Sqlite),
            h if h.starts_with(b"PGDMP") => Ok(Self::PgDump),
            _ => bail!("{} is neither a SQLite backup nor a pg_dump archive", path.display()),
        }
    }

    fn of_url(url: &str) -> anyhow::Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::PgDump)
        } else {
            bail!("database.url: {} is neither sqlite: nor postgres://", redact_url(url))
        }
    }
}

/// Backs up the database of `settings` into `to`, which must not exist.
pub async fn backup(settings: &DatabaseSettings, to: &Path) -> anyhow::Result<()> {
    if to.exists() {
        bail!("{} exists: a backup is written to a new file", to.display());
    }
    if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot make {}", dir.display()))?;
    }
    match Kind::of_url(&settings.url)? {
        Kind::Sqlite => {
            let file = sqlite_path(&settings.url)?;
            if !file.exists() {
                bail!("{} does not exist: nothing to back up", file.display());
            }
            // Read and write, never created: VACUUM INTO writes only its target,
            // and a reader of a WAL database shares its index file.
            let db = Database::connect(format!("sqlite://{}?mode=rw", file.display())).await?;
            let target = to.to_str().with_context(|| format!("{} is not UTF-8", to.display()))?;
            db.execute_raw(Statement::from_sql_and_values(DbBackend::Sqlite, "VACUUM INTO ?", [target.into()]))
                .await
                .with_context(|| format!("VACUUM INTO {}", to.display()))?;
            db.close().await?;
        }
        Kind::PgDump => {
            let dump = pg_tool("pg_dump", &settings.url)?
                .args(["--format=custom", "--no-owner", "--no-privileges", "--file"])
                .arg(to)
                .status()
                .context("cannot run pg_dump (PostgreSQL's client tools): is it installed?")?;
            if !dump.success() {
                let _ = std::fs::remove_file(to);
                bail!("pg_dump failed ({dump})");
            }
        }
    }
    let size = std::fs::metadata(to).map(|m| m.len()).unwrap_or(0);
    tracing::info!(to = %to.display(), bytes = size, "backed up");
    Ok(())
}

/// Restores `from` into the database of `settings`, which must be empty.
pub async fn restore(settings: &DatabaseSettings, from: &Path) -> anyhow::Result<()> {
    let kind = Kind::of_url(&settings.url)?;
    let held = Kind::of_file(from)?;
    if kind != held {
        bail!("{} is a {} backup and database.url is a {} database", from.display(), held.name(), kind.name());
    }
    match kind {
        Kind::Sqlite => restore_sqlite(&settings.url, from).await?,
        Kind::PgDump => {
            let db = Database::connect(&settings.url).await?;
            let tables = db
                .query_one_raw(Statement::from_string(
                    DbBackend::Postgres,
                    "SELECT count(*) AS n FROM information_schema.tables \
                     WHERE table_schema NOT IN ('pg_catalog', 'information_schema')",
                ))
                .await?
                .map(|row| row.try_get::<i64>("", "n"))
                .transpose()?
                .unwrap_or(0);
            db.close().await?;
            if tables > 0 {
                bail!("the database of database.url holds {tables} tables: a backup is restored into an empty one");
            }
            let restored = pg_tool("pg_restore", &settings.url)?
                .args(["--single-transaction", "--exit-on-error", "--no-owner", "--no-privileges"])
                .arg(from)
                .status()
                .context("cannot run pg_restore (PostgreSQL's client tools): is it installed?")?;
            if !restored.success() {
                bail!("pg_restore failed ({restored}); nothing was restored");
            }
        }
    }
    tracing::info!(from = %from.display(), "restored");
    Ok(())
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite",
            Self::PgDump => "PostgreSQL",
        }
    }
}

async fn restore_sqlite(url: &str, from: &Path) -> anyhow::Result<()> {
    let file = sqlite_path(url)?;
    // As a serving process holds it: no service serves it while it is put
    // in place, nor does a restore run beside one.
    let _hold = db::hold_sqlite(url)?;
    if file.exists() && std::fs::metadata(&file)?.len() > 0 {
        bail!("{} exists and is not empty: a backup is restored into a new database", file.display());
    }
    for suffix in ["-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{suffix}", file.display()));
        if side.exists() && std::fs::metadata(&side)?.len() > 0 {
            bail!("{} exists: the database has a write-ahead log of its own", side.display());
        }
    }
    // Immutable: the check leaves no file of its own beside the backup.
    let copy = Database::connect(format!("sqlite://{}?mode=ro&immutable=true", from.display())).await?;
    let check = copy
        .query_one_raw(Statement::from_string(DbBackend::Sqlite, "PRAGMA integrity_check"))
        .await?
        .map(|row| row.try_get_by_index::<String>(0))
        .transpose()?
        .unwrap_or_default();
    copy.close().await?;
    if check != "ok" {
        bail!("{} fails SQLite's integrity check: {check}", from.display());
    }
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let partial = PathBuf::from(format!("{}.restoring", file.display()));
    std::fs::copy(from, &partial).with_context(|| format!("cannot write {}", partial.display()))?;
    std::fs::File::open(&partial)?.sync_all()?;
    std::fs::rename(&partial, &file).with_context(|| format!("cannot put {} in place", file.display()))?;
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
    }
    Ok(())
}

/// The file of a SQLite URL; an in-memory database has none.
fn sqlite_path(url: &str) -> anyhow::Result<PathBuf> {
    db::sqlite_file(url).map(Path::to_path_buf).with_context(|| {
        format!("database.url: {url} is an in-memory database, which has nothing to back up or restore into")
    })
}

/// `program` (pg_dump, pg_restore) on the database of `url`: the URL as its
/// `--dbname` without the password, which goes in `PGPASSWORD`, so that no
/// process listing shows it.
fn pg_tool(program: &str, url: &str) -> anyhow::Result<std::process::Command> {
    let mut parsed = url::Url::parse(url).with_context(|| format!("database.url: {} is not a URL", redact_url(url)))?;
    let mut command = std::process::Command::new(program);
    if let Some(password) = parsed.password() {
        let password = percent_encoding::percent_decode_str(password).decode_utf8()?.into_owned();
        command.env("PGPASSWORD", password);
        let _ = parsed.set_password(None);
    }
    command.arg("--dbname").arg(parsed.as_str());
    Ok(command)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(sqlite_path("sqlite://var/tariff.db?mode=rwc").ok(), Some(PathBuf::from("var/tariff.db")));
        assert_eq!(sqlite_path("sqlite:/tmp/x.db").ok(), Some(PathBuf::from("/tmp/x.db")));
        assert!(sqlite_path("sqlite::memory:").is_err());
        assert!(sqlite_path("sqlite://x.db?mode=memory").is_err());
    }

    #[test]
    fn passwords_reach_pg_tools_by_environment() -> anyhow::Result<()> {
        let command = pg_tool("pg_dump", "postgres://tariff:s%40cret@db:5432/tariff?sslmode=verify-full")?;
        let args: Vec<_> = command.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(args, ["--dbname", "postgres://tariff@db:5432/tariff?sslmode=verify-full"]);
        let env: Vec<_> = command.get_envs().collect();
        assert_eq!(env, [(std::ffi::OsStr::new("PGPASSWORD"), Some(std::ffi::OsStr::new("s@cret")))]);
        Ok(())
    }

    #[test]
    fn passwords_stay_out_of_messages() {
        let err = Kind::of_url("mysql://u:secret@h/db").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("u:***@h/db") && !err.contains("secret"), "{err}");
    }

    #[test]
    fn a_backup_is_known_by_its_first_bytes() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let (sqlite, dump, other) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("c"));
        std::fs::write(&sqlite, b"SQLite format 3\0rest")?;
        std::fs::write(&dump, b"PGDMP\x01\x0e")?;
        std::fs::write(&other, b"hello")?;
        assert_eq!(Kind::of_file(&sqlite)?, Kind::Sqlite);
        assert_eq!(Kind::of_file(&dump)?, Kind::PgDump);
        assert!(Kind::of_file(&other).is_err());
        Ok(())
    }
}
