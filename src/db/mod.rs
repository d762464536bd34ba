//! Storage: one `Db` handle over SQLite or PostgreSQL.
//!
//! Queries are written once with `$1` placeholders (both backends accept them) and run on the
//! pool of whichever backend is configured through the `reader!` and `writer!` macros, which expand
//! the same code once per backend so each copy is checked against that backend's types.
//! On SQLite all writes go through one connection, so a write transaction never meets a busy
//! database and "check then insert" inside one transaction is atomic; on PostgreSQL the same
//! transactions lock the tenant row (`lock_tenant`) to get the same guarantee.
//! Every method for tenant-owned data takes the tenant id first and filters by it.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

pub mod activity;
pub mod chats;
pub mod cluster;
pub mod commands;
pub mod contacts;
pub mod dead_letters;
pub mod devices;
pub mod groups;
pub mod lids;
pub mod messages;
pub mod metrics;
pub mod plugin_kv;
pub mod plugins;
pub mod retention;
pub mod rules;
pub mod schedules;
pub mod sessions;
pub mod settings;
pub mod shared_limits;
pub mod tenant_cache;
pub mod tenants;
pub mod wa_sessions;
pub mod webhooks;

pub use activity::ActivityRow;
pub use devices::DeviceRow;
pub use messages::{MessageFilter, MessagePage, MessageRow, NewMessage, StatusEventRow};
pub use tenants::{ApiKeyRow, AuthRow, NewApiKey, TenantRow};

/// Storage failures. Unique-constraint violations are `Conflict`, so callers can answer 409.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{0}")]
    Conflict(String),
    #[error("not found")]
    NotFound,
    #[error("database error: {0}")]
    Sqlx(sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A fenced write (see [`Db::fenced`]) found that this process no longer holds the lease.
    #[error("fenced: {0}")]
    Fenced(String),
}

impl From<sqlx::Error> for DbError {
    fn from(err: sqlx::Error) -> Self {
        if let Some(db) = err.as_database_error() {
            if db.is_unique_violation() {
                return DbError::Conflict("already exists".into());
            }
        }
        DbError::Sqlx(err)
    }
}

pub type DbResult<T> = Result<T, DbError>;

/// Which SQL dialect the database speaks, for the few statements that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub(crate) enum Pools {
    Sqlite { read: SqlitePool, write: SqlitePool },
    Postgres(PgPool),
}

/// The database handle. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    pub(crate) pools: Pools,
    /// Set on a handle made by [`Db::fenced`]: its session-state writes check a device lease.
    pub(crate) fence: Option<Arc<cluster::SessionFence>>,
    /// API keys, tenant rows and limit overrides as last read, shared by every clone.
    pub(crate) tenants: Arc<tenant_cache::TenantCache>,
}

/// Runs `$body` with `$p` bound to a pool for reads.
macro_rules! reader {
    ($db:expr, |$p:ident| $body:expr) => {
        match &$db.pools {
            $crate::db::Pools::Sqlite { read: $p, .. } => $body,
            $crate::db::Pools::Postgres($p) => $body,
        }
    };
}

/// Runs `$body` with `$p` bound to the pool for writes (the single writer on SQLite).
macro_rules! writer {
    ($db:expr, |$p:ident| $body:expr) => {
        match &$db.pools {
            $crate::db::Pools::Sqlite { write: $p, .. } => $body,
            $crate::db::Pools::Postgres($p) => $body,
        }
    };
}

/// Creates something a package limits: in one transaction holding the tenant's lock, counts
/// the tenant's `$resource` and, unless it already has `$limit` (`None`: no limit), evaluates
/// `$insert` with the transaction as `$tx` and commits. The whole expression is
/// `DbResult<Option<_>>`, `None` when the limit was reached: concurrent creations cannot
/// overshoot it.
macro_rules! insert_within_limit {
    ($db:expr, $tenant:expr, $resource:expr, $limit:expr, |$tx:ident| $insert:expr) => {{
        let lock = $db.lock_tenant_sql();
        let count_sql = $crate::db::tenants::count_sql($resource).expect("a countable resource");
        let tenant: i64 = $tenant;
        let limit: Option<i64> = $limit;
        let created: $crate::db::DbResult<Option<_>> = $crate::db::writer!($db, |p| {
            async {
                let mut $tx = p.begin().await?;
                sqlx::query(lock).bind(tenant).execute(&mut *$tx).await?;
                let count: i64 = sqlx::query_scalar(count_sql).bind(tenant).fetch_one(&mut *$tx).await?;
                if limit.is_some_and(|l| count >= l) {
                    return Ok(None);
                }
                let created = $insert;
                $tx.commit().await?;
                Ok(Some(created))
            }
            .await
        });
        created
    }};
}

pub(crate) use {insert_within_limit, reader, writer};

/// Options for [`Db::connect`].
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub url: String,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

/// A migrated SQLite database in a temporary folder, which lives as long as the returned
/// guard (unit tests).
#[cfg(test)]
pub(crate) async fn temp_sqlite() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite:{}", dir.path().join("gateway.db").display());
    let db =
        Db::connect(&ConnectOptions { url, max_connections: 2, acquire_timeout: Duration::from_secs(5) })
            .await
            .expect("connect");
    db.migrate().await.expect("migrate");
    (dir, db)
}

/// The file a `sqlite:` URL names; `None` for another URL or an in-memory database.
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let path = rest.trim_start_matches("//");
    let path = path.split('?').next().unwrap_or(path);
    (!path.is_empty() && path != ":memory:").then(|| std::path::PathBuf::from(path))
}

impl Db {
    /// Connects to `url` (`sqlite:PATH` or `postgres://...`), creating a SQLite file and its
    /// folder when missing.
    pub async fn connect(opts: &ConnectOptions) -> DbResult<Db> {
        if opts.url.starts_with("sqlite:") {
            if let Some(path) = sqlite_file(&opts.url) {
                if let Some(parent) = path.parent() {
                    if !parent.as_os_str().is_empty() {
                        std::fs::create_dir_all(parent).map_err(|e| DbError::Sqlx(sqlx::Error::Io(e)))?;
                    }
                }
            }
            let base = SqliteConnectOptions::from_str(&opts.url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10));
            let write = SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(opts.acquire_timeout)
                .connect_with(base.clone())
                .await?;
            let read = SqlitePoolOptions::new()
                .max_connections(opts.max_connections)
                .acquire_timeout(opts.acquire_timeout)
                .connect_with(base)
                .await?;
            Ok(Db { pools: Pools::Sqlite { read, write }, fence: None, tenants: Arc::default() })
        } else {
            let options = PgConnectOptions::from_str(&opts.url)?;
            let pool = PgPoolOptions::new()
                .max_connections(opts.max_connections)
                .acquire_timeout(opts.acquire_timeout)
                .connect_with(options)
                .await?;
            Ok(Db { pools: Pools::Postgres(pool), fence: None, tenants: Arc::default() })
        }
    }

    pub fn dialect(&self) -> Dialect {
        match self.pools {
            Pools::Sqlite { .. } => Dialect::Sqlite,
            Pools::Postgres(_) => Dialect::Postgres,
        }
    }

    /// The PostgreSQL pool, when the database is PostgreSQL (to listen for notifications).
    pub(crate) fn postgres_pool(&self) -> Option<&PgPool> {
        match &self.pools {
            Pools::Postgres(p) => Some(p),
            Pools::Sqlite { .. } => None,
        }
    }

    /// Applies the embedded migrations of this backend.
    pub async fn migrate(&self) -> DbResult<()> {
        match &self.pools {
            Pools::Sqlite { write, .. } => sqlx::migrate!("migrations/sqlite").run(write).await?,
            Pools::Postgres(pool) => sqlx::migrate!("migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    /// Answers whether the database takes a query (for `/readyz`).
    pub async fn ping(&self) -> DbResult<()> {
        reader!(self, |p| sqlx::query("SELECT 1").execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Closes every connection.
    pub async fn close(&self) {
        match &self.pools {
            Pools::Sqlite { read, write } => {
                read.close().await;
                write.close().await;
            }
            Pools::Postgres(pool) => pool.close().await,
        }
    }

    /// The statement that locks a tenant row inside a transaction (a no-op on SQLite, whose
    /// single writer already serialises write transactions).
    pub(crate) fn lock_tenant_sql(&self) -> &'static str {
        match self.dialect() {
            Dialect::Sqlite => "SELECT id FROM users WHERE id = $1",
            // Not FOR UPDATE: that also blocks every insert whose foreign key names the tenant
            // (it takes FOR KEY SHARE), which deadlocked a device creation against a status
            // change writing its webhook delivery. NO KEY UPDATE still serialises the holders.
            Dialect::Postgres => "SELECT id FROM users WHERE id = $1 FOR NO KEY UPDATE",
        }
    }
}

/// Now, in Unix milliseconds: every timestamp is stored this way on both backends.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// `text` with every U+0000 replaced by U+FFFD. PostgreSQL cannot store U+0000 in text, so
/// text from outside that the gateway must keep (WhatsApp messages and names, plugin output,
/// webhook answers) goes through this; API input with it is refused instead.
pub fn without_nul(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        std::borrow::Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// The largest page of any list.
pub const MAX_LIMIT: i64 = 500;

/// The deepest offset of any list. Deeper pages cost a scan of every row before them; a
/// filter (a time range, a chat) reaches old rows cheaply instead.
pub const MAX_OFFSET: i64 = 100_000;

/// `limit` and `offset` brought into `0..=MAX_LIMIT` and `0..=MAX_OFFSET`: the storage layer
/// never computes with, or hands the database, values the API would refuse.
/// SQL narrowing rows to the devices an API key is limited to: ` AND {column} IN (…)` (no
/// device at all for an empty set), nothing for every device (`None`). `or_unbound` also keeps
/// rows bound to no device (`column` NULL: tenant-wide rules and webhooks). The ids are
/// integers written into the statement, never text from a request.
pub fn device_scope(column: &str, devices: Option<&[i64]>, or_unbound: bool) -> String {
    let Some(ids) = devices else { return String::new() };
    let within = if ids.is_empty() {
        "1 = 0".to_string()
    } else {
        let list: Vec<String> = ids.iter().map(i64::to_string).collect();
        format!("{column} IN ({})", list.join(","))
    };
    if or_unbound {
        format!(" AND ({column} IS NULL OR {within})")
    } else {
        format!(" AND {within}")
    }
}

pub fn clamp_page(limit: i64, offset: i64) -> (i64, i64) {
    (limit.clamp(0, MAX_LIMIT), offset.clamp(0, MAX_OFFSET))
}
