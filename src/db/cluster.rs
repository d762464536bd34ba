//! Process and device leases for several gateway processes on one database.
//!
//! Every process registers a `gateway_nodes` row and renews it every few seconds; a node whose
//! row has expired is dead, and its devices are free. A `device_leases` row names the node that
//! may open a device's WhatsApp session and an `epoch` that grows on every change of holder:
//! `(node, epoch)` is the fencing token a holder's writes are checked against, so a process
//! that stalled past its lease cannot write over the new holder's state.
//!
//! Every time here is the database's clock, never a process's: processes on machines whose
//! clocks disagree still agree on who holds what. Renewing costs one row per node, not one per
//! device.

use std::sync::Arc;

use super::{reader, writer, Db, DbResult, Dialect};

/// A live (unexpired) gateway process.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct NodeRow {
    pub node_id: String,
    pub name: String,
    pub version: String,
    pub started_at: i64,
    pub renewed_at: i64,
    pub expires_at: i64,
    pub draining: bool,
}

/// A device lease held by a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct Lease {
    pub device_id: i64,
    pub epoch: i64,
}

/// The database's clock in Unix milliseconds, as an SQL expression.
pub(crate) fn now_sql(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Postgres => "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT",
        Dialect::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
    }
}

/// A condition true while `(node, epoch)` is the valid holder of `device`'s lease: the
/// fencing check a holder's writes carry in the same statement. The arguments are SQL
/// expressions (parameters or columns).
pub(crate) fn fence_sql(dialect: Dialect, device: &str, node: &str, epoch: &str) -> String {
    format!("EXISTS ({})", holder_sql(dialect, device, node, epoch))
}

/// A query selecting one row while `(node, epoch)` is the valid holder of `device`'s lease.
fn holder_sql(dialect: Dialect, device: &str, node: &str, epoch: &str) -> String {
    let now = now_sql(dialect);
    format!(
        "SELECT 1 FROM device_leases fl JOIN gateway_nodes fnode ON fnode.node_id = fl.node_id \
         WHERE fl.device_id = {device} AND fl.node_id = {node} AND fl.epoch = {epoch} AND fnode.expires_at > {now}"
    )
}

/// Told of each write the database refused under a fence (see [`Db::fenced`]).
pub type OnRefused = Arc<dyn Fn() + Send + Sync>;

/// The lease a fenced handle's session-state writes check (see [`Db::fenced`]).
pub(crate) struct SessionFence {
    pub(crate) device_id: i64,
    pub(crate) node: Arc<str>,
    pub(crate) epoch: i64,
    /// Selects a row while `($1, $2, $3)` holds the lease; on PostgreSQL it also locks the
    /// lease row until the transaction ends, so a takeover waits for the write in flight.
    pub(crate) sql: String,
    /// Called for every write the database refused.
    on_refused: Option<OnRefused>,
}

impl SessionFence {
    /// Reports a refused write.
    pub(crate) fn refused(&self) {
        if let Some(on_refused) = &self.on_refused {
            on_refused();
        }
    }
}

impl std::fmt::Debug for SessionFence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionFence")
            .field("device_id", &self.device_id)
            .field("node", &self.node)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

/// A device lease held by a node, with whether the device is paired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct HeldLease {
    pub device_id: i64,
    pub epoch: i64,
    pub paired: bool,
}

/// A device lease as the operator's cluster view shows it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LeaseRow {
    pub device_id: i64,
    pub node_id: Option<String>,
    pub epoch: i64,
    pub acquired_at: i64,
    /// Whether the holder is alive (a lease of a dead or stopped node is free).
    pub live: bool,
}

impl Db {
    /// The same database, for one device's session state written by the holder of its lease
    /// `(node, epoch)`: every session-state write (the `wa_*` tables) checks the lease in its
    /// own transaction and fails as [`DbError::Fenced`](super::DbError::Fenced) once another
    /// process took the device or this one was declared dead. `on_refused` hears of each such
    /// refusal. Other writes through the handle are not affected.
    pub fn fenced(&self, device_id: i64, node: Arc<str>, epoch: i64, on_refused: Option<OnRefused>) -> Db {
        let dialect = self.dialect();
        let lock = match dialect {
            Dialect::Postgres => " FOR SHARE OF fl",
            Dialect::Sqlite => "",
        };
        let sql = format!("{}{lock}", holder_sql(dialect, "$1", "$2", "$3"));
        let fence = SessionFence { device_id, node, epoch, sql, on_refused };
        Db { pools: self.pools.clone(), fence: Some(Arc::new(fence)), tenants: self.tenants.clone() }
    }

    /// The database's clock, in Unix milliseconds.
    pub async fn cluster_now(&self) -> DbResult<i64> {
        let sql = format!("SELECT {}", now_sql(self.dialect()));
        Ok(reader!(self, |p| sqlx::query_scalar(&sql).fetch_one(p).await)?)
    }

    /// Registers a node that lives `ttl_ms` from now unless renewed. A node id is never reused:
    /// registering an existing id again fails.
    pub async fn cluster_register(
        &self,
        node_id: &str,
        name: &str,
        version: &str,
        ttl_ms: i64,
    ) -> DbResult<()> {
        let now = now_sql(self.dialect());
        let sql = format!(
            "INSERT INTO gateway_nodes (node_id, name, version, started_at, renewed_at, expires_at) \
             SELECT $1, $2, $3, t.now, t.now, t.now + $4 FROM (SELECT {now} AS now) t"
        );
        writer!(self, |p| sqlx::query(&sql)
            .bind(node_id)
            .bind(name)
            .bind(version)
            .bind(ttl_ms)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Extends a live node's life to `ttl_ms` from now. False when the node has expired (or
    /// is gone): it must drop every device it holds and register again under a new id, because
    /// others may already have taken its devices.
    pub async fn cluster_renew(&self, node_id: &str, ttl_ms: i64) -> DbResult<bool> {
        let now = now_sql(self.dialect());
        let sql = format!(
            "UPDATE gateway_nodes SET renewed_at = {now}, expires_at = {now} + $2 \
             WHERE node_id = $1 AND expires_at > {now}"
        );
        let renewed = writer!(self, |p| sqlx::query(&sql)
            .bind(node_id)
            .bind(ttl_ms)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(renewed == 1)
    }

    /// Marks a node as draining (it is stopping and gives its devices away) or not.
    pub async fn cluster_set_draining(&self, node_id: &str, draining: bool) -> DbResult<()> {
        writer!(self, |p| sqlx::query("UPDATE gateway_nodes SET draining = $2 WHERE node_id = $1")
            .bind(node_id)
            .bind(draining)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Removes a node's row (a clean stop, after releasing its devices).
    pub async fn cluster_leave(&self, node_id: &str) -> DbResult<()> {
        writer!(self, |p| sqlx::query("DELETE FROM gateway_nodes WHERE node_id = $1")
            .bind(node_id)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Deletes the rows of nodes expired more than `grace_ms` ago; returns how many.
    pub async fn cluster_forget_dead(&self, grace_ms: i64) -> DbResult<u64> {
        let now = now_sql(self.dialect());
        let sql = format!("DELETE FROM gateway_nodes WHERE expires_at + $1 < {now}");
        Ok(writer!(self, |p| sqlx::query(&sql).bind(grace_ms).execute(p).await.map(|r| r.rows_affected()))?)
    }

    /// The live nodes, oldest first.
    pub async fn cluster_live_nodes(&self) -> DbResult<Vec<NodeRow>> {
        let now = now_sql(self.dialect());
        let sql = format!(
            "SELECT node_id, name, version, started_at, renewed_at, expires_at, draining \
             FROM gateway_nodes WHERE expires_at > {now} ORDER BY started_at, node_id"
        );
        Ok(reader!(self, |p| sqlx::query_as(&sql).fetch_all(p).await)?)
    }

    /// Takes the device's lease for `node_id` when it is free: never held, released, or held
    /// by a node that is gone or expired. Holding it already keeps the epoch; any change of
    /// holder raises it. The taking node must itself be alive. Returns the epoch, or `None`
    /// when a live node holds the device. Concurrent takers: exactly one wins.
    pub async fn cluster_acquire(&self, device_id: i64, node_id: &str) -> DbResult<Option<i64>> {
        let now = now_sql(self.dialect());
        let sql = format!(
            "INSERT INTO device_leases (device_id, node_id, epoch, acquired_at) \
             SELECT $1, $2, 1, {now} \
             WHERE EXISTS (SELECT 1 FROM gateway_nodes WHERE node_id = $2 AND expires_at > {now}) \
             ON CONFLICT (device_id) DO UPDATE SET \
                 node_id = excluded.node_id, \
                 epoch = device_leases.epoch + CASE WHEN device_leases.node_id = excluded.node_id THEN 0 ELSE 1 END, \
                 acquired_at = CASE WHEN device_leases.node_id = excluded.node_id \
                     THEN device_leases.acquired_at ELSE excluded.acquired_at END \
             WHERE device_leases.node_id IS NULL \
                OR device_leases.node_id = excluded.node_id \
                OR NOT EXISTS (SELECT 1 FROM gateway_nodes n \
                               WHERE n.node_id = device_leases.node_id AND n.expires_at > {now}) \
             RETURNING epoch"
        );
        Ok(writer!(self, |p| sqlx::query_scalar(&sql).bind(device_id).bind(node_id).fetch_optional(p).await)?)
    }

    /// Gives a device's lease up, if `(node_id, epoch)` still holds it. False when it did not
    /// (someone took it over): then the caller's session must already be stopping.
    pub async fn cluster_release(&self, device_id: i64, node_id: &str, epoch: i64) -> DbResult<bool> {
        let released = writer!(self, |p| {
            sqlx::query(
            "UPDATE device_leases SET node_id = NULL WHERE device_id = $1 AND node_id = $2 AND epoch = $3"
        )
        .bind(device_id)
        .bind(node_id)
        .bind(epoch)
        .execute(p)
        .await
        .map(|r| r.rows_affected())
        })?;
        Ok(released == 1)
    }

    /// Whether `(node_id, epoch)` is the valid holder of the device right now: the fencing
    /// check for a holder's writes.
    pub async fn cluster_holds(&self, device_id: i64, node_id: &str, epoch: i64) -> DbResult<bool> {
        let sql = format!("SELECT {}", fence_sql(self.dialect(), "$1", "$2", "$3"));
        Ok(reader!(self, |p| sqlx::query_scalar(&sql)
            .bind(device_id)
            .bind(node_id)
            .bind(epoch)
            .fetch_one(p)
            .await)?)
    }

    /// The live holder of a device and its epoch, if any.
    pub async fn cluster_holder(&self, device_id: i64) -> DbResult<Option<(String, i64)>> {
        let now = now_sql(self.dialect());
        let sql = format!(
            "SELECT l.node_id, l.epoch FROM device_leases l JOIN gateway_nodes n ON n.node_id = l.node_id \
             WHERE l.device_id = $1 AND n.expires_at > {now}"
        );
        Ok(reader!(self, |p| sqlx::query_as(&sql).bind(device_id).fetch_optional(p).await)?)
    }

    /// The devices a node holds, by device id.
    pub async fn cluster_leases_of(&self, node_id: &str) -> DbResult<Vec<Lease>> {
        Ok(reader!(self, |p| sqlx::query_as(
            "SELECT device_id, epoch FROM device_leases WHERE node_id = $1 ORDER BY device_id"
        )
        .bind(node_id)
        .fetch_all(p)
        .await)?)
    }

    /// Forgets every node (SQLite at start: only one process may use the file, so rows left by
    /// an earlier run are stale, and their devices are free at once).
    pub async fn cluster_forget_all(&self) -> DbResult<()> {
        writer!(self, |p| sqlx::query("DELETE FROM gateway_nodes")
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Ends the life of live nodes called `name` (earlier runs of a restarted process with a
    /// configured name), so their devices are free at once.
    pub async fn cluster_expire_named(&self, name: &str) -> DbResult<u64> {
        let now = now_sql(self.dialect());
        let sql =
            format!("UPDATE gateway_nodes SET expires_at = {now} - 1 WHERE name = $1 AND expires_at > {now}");
        Ok(writer!(self, |p| sqlx::query(&sql).bind(name).execute(p).await.map(|r| r.rows_affected()))?)
    }

    /// The leases a node holds, with whether each device is paired.
    pub async fn cluster_held(&self, node_id: &str) -> DbResult<Vec<HeldLease>> {
        Ok(reader!(self, |p| {
            sqlx::query_as(
            "SELECT l.device_id, l.epoch, d.paired FROM device_leases l JOIN devices d ON d.id = l.device_id \
             WHERE l.node_id = $1 ORDER BY l.device_id"
        )
        .bind(node_id)
        .fetch_all(p)
        .await
        })?)
    }

    /// How many devices are paired: what the live nodes share.
    pub async fn cluster_paired_count(&self) -> DbResult<i64> {
        Ok(reader!(self, |p| sqlx::query_scalar("SELECT COUNT(*) FROM devices WHERE paired = $1")
            .bind(true)
            .fetch_one(p)
            .await)?)
    }

    /// Whether the device is connected in some live process: a live node holds its lease and
    /// the holder last stored `connected`.
    pub async fn cluster_online(&self, device_id: i64) -> DbResult<bool> {
        let now = now_sql(self.dialect());
        let sql = format!(
            "SELECT COUNT(*) FROM devices d JOIN device_leases l ON l.device_id = d.id \
             JOIN gateway_nodes n ON n.node_id = l.node_id \
             WHERE d.id = $1 AND d.status = 'connected' AND n.expires_at > {now}"
        );
        let found: i64 = reader!(self, |p| sqlx::query_scalar(&sql).bind(device_id).fetch_one(p).await)?;
        Ok(found > 0)
    }

    /// A page of the device leases, with whether each holder is alive, by device id; and
    /// how many there are.
    pub async fn cluster_leases(&self, limit: i64, offset: i64) -> DbResult<(Vec<LeaseRow>, i64)> {
        let now = now_sql(self.dialect());
        let sql = format!(
            "SELECT l.device_id, l.node_id, l.epoch, l.acquired_at, \
             (n.node_id IS NOT NULL AND n.expires_at > {now}) AS live \
             FROM device_leases l LEFT JOIN gateway_nodes n ON n.node_id = l.node_id \
             ORDER BY l.device_id LIMIT $1 OFFSET $2"
        );
        let rows = reader!(self, |p| sqlx::query_as(&sql).bind(limit).bind(offset).fetch_all(p).await)?;
        let total =
            reader!(self, |p| sqlx::query_scalar("SELECT COUNT(*) FROM device_leases").fetch_one(p).await)?;
        Ok((rows, total))
    }

    /// How many devices each node holds, by node id.
    pub async fn cluster_held_counts(&self) -> DbResult<Vec<(String, i64)>> {
        Ok(reader!(self, |p| sqlx::query_as(
            "SELECT node_id, COUNT(*) FROM device_leases WHERE node_id IS NOT NULL GROUP BY node_id"
        )
        .fetch_all(p)
        .await)?)
    }

    /// Paired devices that no live node holds, by device id: what live nodes should take.
    pub async fn cluster_unheld_devices(&self, limit: i64) -> DbResult<Vec<i64>> {
        let now = now_sql(self.dialect());
        let sql = format!(
            "SELECT d.id FROM devices d \
             WHERE d.paired = $2 AND NOT EXISTS ( \
                 SELECT 1 FROM device_leases l JOIN gateway_nodes n ON n.node_id = l.node_id \
                 WHERE l.device_id = d.id AND n.expires_at > {now}) \
             ORDER BY d.id LIMIT $1"
        );
        Ok(reader!(self, |p| sqlx::query_scalar(&sql).bind(limit).bind(true).fetch_all(p).await)?)
    }
}

/// How many devices a node should hold so that `devices` spread evenly over `nodes` live,
/// non-draining nodes: the fair share, rounded up (so every device has room somewhere).
pub fn fair_share(devices: usize, nodes: usize) -> usize {
    if nodes == 0 {
        return 0;
    }
    devices.div_ceil(nodes)
}

#[cfg(test)]
mod tests {
    use super::fair_share;

    #[test]
    fn the_fair_share_leaves_room_for_every_device() {
        assert_eq!(fair_share(0, 3), 0);
        assert_eq!(fair_share(10, 1), 10);
        assert_eq!(fair_share(10, 3), 4);
        assert_eq!(fair_share(9, 3), 3);
        assert_eq!(fair_share(1, 4), 1);
        assert_eq!(fair_share(5, 0), 0);
        for devices in 0..50 {
            for nodes in 1..7 {
                assert!(fair_share(devices, nodes) * nodes >= devices);
                assert!(fair_share(devices, nodes) * nodes < devices + nodes);
            }
        }
    }
}
