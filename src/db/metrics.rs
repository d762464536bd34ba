//! What `/metrics` reads from the database at each scrape: the outbound queue and devices by
//! status (for the whole database, whichever process holds the devices), and the pools.

use super::{now_ms, reader, Db, DbResult, Pools};

/// The queue and the devices as one scrape sees them.
#[derive(Debug, Clone, Default)]
pub struct MetricsSnapshot {
    /// Messages queued to be sent.
    pub queued: i64,
    /// Milliseconds since the oldest queued message was stored (0 when none is queued).
    pub oldest_queued_age_ms: i64,
    /// Devices by status.
    pub devices: Vec<(String, i64)>,
}

/// One connection pool's size and idle connections.
#[derive(Debug, Clone)]
pub struct PoolUsage {
    pub name: &'static str,
    pub size: u32,
    pub idle: usize,
}

impl Db {
    pub async fn metrics_snapshot(&self) -> DbResult<MetricsSnapshot> {
        // The queue's partial index holds exactly the queued rows, so this reads no others.
        let (queued, oldest): (i64, Option<i64>) = reader!(self, |p| sqlx::query_as(
            "SELECT COUNT(*), MIN(created_at) FROM messages WHERE status = 'queued'"
        )
        .fetch_one(p)
        .await)?;
        let devices: Vec<(String, i64)> = reader!(self, |p| sqlx::query_as(
            "SELECT status, COUNT(*) FROM devices GROUP BY status ORDER BY status"
        )
        .fetch_all(p)
        .await)?;
        let oldest_queued_age_ms = oldest.map_or(0, |at| (now_ms() - at).max(0));
        Ok(MetricsSnapshot { queued, oldest_queued_age_ms, devices })
    }

    /// Each pool's connections: on SQLite the readers and the one writer, on PostgreSQL one.
    pub fn pool_usage(&self) -> Vec<PoolUsage> {
        match &self.pools {
            Pools::Sqlite { read, write } => vec![
                PoolUsage { name: "read", size: read.size(), idle: read.num_idle() },
                PoolUsage { name: "write", size: write.size(), idle: write.num_idle() },
            ],
            Pools::Postgres(pool) => {
                vec![PoolUsage { name: "main", size: pool.size(), idle: pool.num_idle() }]
            }
        }
    }
}
