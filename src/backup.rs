//! `wa-gateway backup FILE` and `wa-gateway restore FILE` for a SQLite database.
//!
//! A backup is SQLite's `VACUUM INTO`: one read transaction, so the copy is the database as of
//! one moment even while the gateway writes (WAL readers never block writers, nor the other
//! way round), written to a temporary name and renamed once checked. A restore only runs while
//! no gateway serves the file (it takes the same lock `serve` takes), checks the copy, keeps the
//! database it replaces beside it, and leaves the migrations of a copy from an older gateway
//! to the next start. PostgreSQL has `pg_dump` and `pg_restore` for both.
//!
//! The WhatsApp sessions' keys are in the database, so a restored gateway reconnects its
//! devices without a QR code; media kept in a folder is not in the database and is copied
//! apart.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

use crate::cluster::SingleProcessLock;
use crate::db::sqlite_file;

/// What a copy holds, as its summary line shows.
#[derive(Debug, Clone)]
pub struct Summary {
    pub path: PathBuf,
    pub bytes: u64,
    pub tenants: i64,
    pub devices: i64,
    pub messages: i64,
    /// The newest migration applied to it.
    pub migration: i64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({} bytes; {} tenants, {} devices, {} messages; schema version {})",
            self.path.display(),
            self.bytes,
            self.tenants,
            self.devices,
            self.messages,
            self.migration
        )
    }
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct Restored {
    pub summary: Summary,
    /// Where the database it replaced was moved (`None` when there was none).
    pub previous: Option<PathBuf>,
}

fn sqlite_only(url: &str, what: &str) -> anyhow::Result<PathBuf> {
    match sqlite_file(url) {
        Some(path) => Ok(path),
        None if url.starts_with("postgres") => bail!(
            "the database is PostgreSQL: {what} it with PostgreSQL's own tools, e.g. \
             `pg_dump --format=custom --file=gateway.dump \"$URL\"` and \
             `pg_restore --clean --if-exists --dbname=\"$URL\" gateway.dump`"
        ),
        None => bail!("database.url does not name a SQLite file"),
    }
}

/// Writes a consistent copy of the SQLite database of `url` to `dest`, which must not exist.
pub async fn backup(url: &str, dest: &Path) -> anyhow::Result<Summary> {
    let source = sqlite_only(url, "back")?;
    if !source.exists() {
        bail!("there is no database at {}", source.display());
    }
    if dest.exists() {
        bail!("{} already exists; name a new file", dest.display());
    }
    let partial = partial_name(dest);
    let _ = std::fs::remove_file(&partial);
    let options = SqliteConnectOptions::new()
        .filename(&source)
        .busy_timeout(std::time::Duration::from_secs(30))
        .disable_statement_logging();
    let mut conn = options.connect().await.with_context(|| format!("cannot open {}", source.display()))?;
    let copied =
        sqlx::query("VACUUM INTO ?").bind(partial.to_string_lossy().as_ref()).execute(&mut conn).await;
    conn.close().await.ok();
    copied.with_context(|| format!("cannot write {}", partial.display()))?;
    let summary = match check(&partial).await {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e.context("the copy did not pass its check"));
        }
    };
    std::fs::rename(&partial, dest)
        .with_context(|| format!("cannot rename the copy to {}", dest.display()))?;
    Ok(Summary { path: dest.to_path_buf(), ..summary })
}

/// Replaces the SQLite database of `url` with the copy at `source`. Refused while a gateway
/// serves the database.
pub async fn restore(url: &str, source: &Path) -> anyhow::Result<Restored> {
    let target = sqlite_only(url, "restore")?;
    let _lock = SingleProcessLock::take(url)
        .map_err(|e| anyhow::anyhow!("stop the gateway before restoring: {e}"))?;
    if !source.exists() {
        bail!("there is no file at {}", source.display());
    }
    let summary =
        check(source).await.with_context(|| format!("{} is not a usable backup", source.display()))?;
    let newest = sqlx::migrate!("migrations/sqlite").migrations.iter().map(|m| m.version).max().unwrap_or(0);
    if summary.migration > newest {
        bail!(
            "{} was made by a newer gateway (schema version {}, this one knows up to {newest}); \
             restore it with that version",
            source.display(),
            summary.migration
        );
    }
    if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let partial = partial_name(&target);
    std::fs::copy(source, &partial).with_context(|| format!("cannot copy to {}", partial.display()))?;
    std::fs::File::open(&partial).and_then(|f| f.sync_all()).context("cannot flush the copy")?;
    // The old database moves aside with its write-ahead log: a log left beside the restored
    // file would be replayed into it.
    let previous = if target.exists() {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
        let aside = with_suffix(&target, &format!(".before-restore-{stamp}"));
        for suffix in ["", "-wal", "-shm"] {
            let file = with_suffix(&target, suffix);
            if file.exists() {
                let to = with_suffix(&aside, suffix);
                std::fs::rename(&file, &to)
                    .with_context(|| format!("cannot move {} aside", file.display()))?;
            }
        }
        Some(aside)
    } else {
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(with_suffix(&target, suffix));
        }
        None
    };
    std::fs::rename(&partial, &target)
        .with_context(|| format!("cannot put the copy at {}", target.display()))?;
    Ok(Restored { summary: Summary { path: target, ..summary }, previous })
}

/// Opens a copy without changing it and checks that it is a whole gateway database.
async fn check(path: &Path) -> anyhow::Result<Summary> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .immutable(true)
        .disable_statement_logging();
    let mut conn = options.connect().await.with_context(|| format!("cannot open {}", path.display()))?;
    let verdict: String = sqlx::query_scalar("PRAGMA integrity_check").fetch_one(&mut conn).await?;
    if verdict != "ok" {
        bail!("SQLite's integrity check says: {verdict}");
    }
    let migration: Option<i64> =
        sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&mut conn)
            .await
            .context("it holds no gateway schema")?;
    let count = |table: &'static str| format!("SELECT COUNT(*) FROM {table}");
    let tenants: i64 = sqlx::query_scalar(&count("users")).fetch_one(&mut conn).await?;
    let devices: i64 = sqlx::query_scalar(&count("devices")).fetch_one(&mut conn).await?;
    let messages: i64 = sqlx::query_scalar(&count("messages")).fetch_one(&mut conn).await?;
    conn.close().await.ok();
    let bytes = std::fs::metadata(path)?.len();
    Ok(Summary {
        path: path.to_path_buf(),
        bytes,
        tenants,
        devices,
        messages,
        migration: migration.context("it holds no applied migration")?,
    })
}

/// `dir/.name.partial`: where a copy is written before it is renamed into place.
fn partial_name(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.partial"))
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}
