//! The `wa_*` tables: session state of the `whatsapp-web` driver, one set of rows per device.
//!
//! whatsapp-rust keeps its Signal keys, app-state sync state and protocol bookkeeping through
//! five storage traits; `devices::whatsapp_web::store` implements them on the methods here.
//! This layer knows tables and columns, not the library's types: values arrive as bytes,
//! JSON text and integers. Every method takes the gateway's device id first and touches only
//! that device's rows. Batch writes run in one transaction as multi-row statements of at most
//! [`MAX_ROWS`] rows, with the device id bound once as `$1`. A batch naming one key twice keeps
//! the last value (PostgreSQL refuses an upsert that touches a row twice, so duplicates are
//! folded before the statement is built).

use std::collections::HashSet;
use std::fmt::Write as _;
use std::hash::Hash;

use super::{now_ms, reader, writer, Db, DbError, DbResult};

mod appsync;
mod messages;
mod protocol;
mod signal;

pub use appsync::WaSyncKeyRow;
pub use messages::{WaMsgSecret, WaPendingInbound, WaTcTokenRow};
pub use protocol::{WaLidMapping, WaLidMappingRow};

/// The most rows one multi-row statement carries.
const MAX_ROWS: usize = 500;
/// The most bind parameters one statement carries (both backends allow far more).
const MAX_PARAMS: usize = 4000;

/// Every session table, for [`Db::wa_wipe`] and [`Db::wa_row_count`].
const TABLES: [&str; 19] = [
    "wa_device",
    "wa_identities",
    "wa_signal_sessions",
    "wa_prekeys",
    "wa_signed_prekeys",
    "wa_sender_keys",
    "wa_app_state_keys",
    "wa_app_state_latest_key",
    "wa_app_state_versions",
    "wa_app_state_mutation_macs",
    "wa_base_keys",
    "wa_device_registry",
    "wa_group_metadata",
    "wa_lid_pn_mappings",
    "wa_sender_key_devices",
    "wa_tc_tokens",
    "wa_sent_messages",
    "wa_pending_inbound",
    "wa_msg_secrets",
];

/// The session tables that map a text key to opaque bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaBlobTable {
    /// Remote identity keys by Signal address.
    Identities,
    /// Signal session records by address.
    SignalSessions,
    /// Group sender-key records by sender-key address.
    SenderKeys,
    /// Serialized group metadata by group JID.
    GroupMetadata,
}

impl WaBlobTable {
    /// Table, key column, value column.
    fn parts(self) -> (&'static str, &'static str, &'static str) {
        match self {
            WaBlobTable::Identities => ("wa_identities", "address", "identity_key"),
            WaBlobTable::SignalSessions => ("wa_signal_sessions", "address", "record"),
            WaBlobTable::SenderKeys => ("wa_sender_keys", "address", "record"),
            WaBlobTable::GroupMetadata => ("wa_group_metadata", "group_jid", "metadata"),
        }
    }
}

impl DbError {
    /// Whether the database could not be reached at all (pool exhausted or closed, I/O), or
    /// refused the write because this process no longer holds the device, as opposed to a
    /// statement that failed: either way the session has to end.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            DbError::Fenced(_)
                | DbError::Sqlx(
                    sqlx::Error::PoolTimedOut
                        | sqlx::Error::PoolClosed
                        | sqlx::Error::Io(_)
                        | sqlx::Error::Tls(_)
                        | sqlx::Error::WorkerCrashed
                )
        )
    }
}

/// Rows per statement for rows of `params_per_row` parameters.
fn rows_per_statement(params_per_row: usize) -> usize {
    (MAX_PARAMS / params_per_row.max(1)).clamp(1, MAX_ROWS)
}

/// The VALUES list of a multi-row statement: `rows` tuples, each the `fixed` text (parameters
/// shared by every row, such as `$1` for the device id) followed by `per_row` fresh
/// parameters numbered from `first`.
fn values(rows: usize, fixed: &str, per_row: usize, first: usize) -> String {
    let mut sql = String::with_capacity(rows * (fixed.len() + per_row * 7 + 4));
    let mut n = first;
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        sql.push_str(fixed);
        for c in 0..per_row {
            if c > 0 || !fixed.is_empty() {
                sql.push_str(", ");
            }
            let _ = write!(sql, "${n}");
            n += 1;
        }
        sql.push(')');
    }
    sql
}

/// `$first, $first+1, …`: `n` parameters for an `IN (…)` list.
fn params(n: usize, first: usize) -> String {
    let mut sql = String::with_capacity(n * 6);
    for i in 0..n {
        if i > 0 {
            sql.push_str(", ");
        }
        let _ = write!(sql, "${}", first + i);
    }
    sql
}

/// The last item for each key, in the order of those last occurrences.
fn last_per_key<T, K: Eq + Hash>(items: &[T], key: impl Fn(&T) -> K) -> Vec<&T> {
    let mut seen = HashSet::with_capacity(items.len());
    let mut out: Vec<&T> = items.iter().rev().filter(|item| seen.insert(key(item))).collect();
    out.reverse();
    out
}

/// Runs one statement per chunk of `$rows` on `$tx`: `$sql` is built for `$n` rows, the
/// `$fixed` values are bound first, then `$bind` binds each row to `$q`.
macro_rules! exec_chunks {
    ($tx:expr, $rows:expr, $per_row:expr, |$n:ident| $sql:expr, [$($fixed:expr),*],
     |$q:ident, $row:pat_param| $bind:expr) => {
        for chunk in $rows.chunks($crate::db::wa_sessions::rows_per_statement($per_row)) {
            let $n = chunk.len();
            let sql = $sql;
            let mut $q = sqlx::query(&sql).persistent(false)$(.bind($fixed))*;
            for $row in chunk {
                $q = $bind;
            }
            $q.execute(&mut *$tx).await?;
        }
    };
}
use exec_chunks;

/// Runs `$body` in a write transaction bound to `$tx` and commits it; `$body` yields the
/// result and returns early with `?` on failure (the transaction then rolls back). On a handle
/// made by [`Db::fenced`] the transaction first checks, and on PostgreSQL locks, the device's
/// lease: a process that lost the device writes nothing, and nobody can take the lease over
/// until the write has committed.
macro_rules! session_write {
    ($db:expr, |$tx:ident| $body:expr) => {
        $crate::db::writer!($db, |p| {
            let mut $tx = p.begin().await?;
            if let Some(fence) = &$db.fence {
                let held: Option<i32> = sqlx::query_scalar(&fence.sql)
                    .bind(fence.device_id)
                    .bind(&*fence.node)
                    .bind(fence.epoch)
                    .fetch_optional(&mut *$tx)
                    .await?;
                if held.is_none() {
                    fence.refused();
                    return Err($crate::db::DbError::Fenced(format!(
                        "device {}: lease epoch {} is no longer held by this process",
                        fence.device_id, fence.epoch
                    )));
                }
            }
            let out = $body;
            $tx.commit().await?;
            out
        })
    };
}
use session_write;

impl Db {
    /// The stored `wacore::store::Device` JSON of the device, if any.
    pub async fn wa_device(&self, device_id: i64) -> DbResult<Option<String>> {
        Ok(reader!(self, |p| sqlx::query_scalar("SELECT data FROM wa_device WHERE device_id = $1")
            .bind(device_id)
            .fetch_optional(p)
            .await)?)
    }

    /// Stores the device JSON, replacing what was there; `pn` is its paired phone JID.
    pub async fn wa_put_device(&self, device_id: i64, pn: Option<&str>, data: &str) -> DbResult<()> {
        session_write!(self, |tx| sqlx::query(
            "INSERT INTO wa_device (device_id, pn, data, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (device_id) DO UPDATE SET pn = excluded.pn, data = excluded.data, \
             updated_at = excluded.updated_at"
        )
        .bind(device_id)
        .bind(pn)
        .bind(data)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?
        .rows_affected());
        Ok(())
    }

    /// Stores the device JSON unless the device already has one; answers whether it was stored.
    pub async fn wa_insert_device(&self, device_id: i64, pn: Option<&str>, data: &str) -> DbResult<bool> {
        let inserted = session_write!(self, |tx| sqlx::query(
            "INSERT INTO wa_device (device_id, pn, data, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (device_id) DO NOTHING"
        )
        .bind(device_id)
        .bind(pn)
        .bind(data)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?
        .rows_affected());
        Ok(inserted > 0)
    }

    /// Whether the device has a stored `Device` row (paired or not).
    pub async fn wa_device_exists(&self, device_id: i64) -> DbResult<bool> {
        let found: Option<i64> =
            reader!(self, |p| sqlx::query_scalar("SELECT device_id FROM wa_device WHERE device_id = $1")
                .bind(device_id)
                .fetch_optional(p)
                .await)?;
        Ok(found.is_some())
    }

    /// Whether the device has stored keys that completed pairing (a phone JID is known).
    pub async fn wa_device_paired(&self, device_id: i64) -> DbResult<bool> {
        let found: Option<i64> = reader!(self, |p| sqlx::query_scalar(
            "SELECT device_id FROM wa_device WHERE device_id = $1 AND pn IS NOT NULL"
        )
        .bind(device_id)
        .fetch_optional(p)
        .await)?;
        Ok(found.is_some())
    }

    /// Deletes every session row of the device, in one transaction (logout: it must pair again).
    pub async fn wa_wipe(&self, device_id: i64) -> DbResult<()> {
        writer!(self, |p| {
            let mut tx = p.begin().await?;
            for table in TABLES {
                sqlx::query(&format!("DELETE FROM {table} WHERE device_id = $1"))
                    .bind(device_id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// How many session rows the device has across all `wa_*` tables.
    pub async fn wa_row_count(&self, device_id: i64) -> DbResult<i64> {
        let sql = TABLES
            .iter()
            .map(|t| format!("SELECT COUNT(*) AS n FROM {t} WHERE device_id = $1"))
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        // SUM over BIGINT is NUMERIC on PostgreSQL: cast back.
        let sql = format!("SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM ({sql}) AS counts");
        Ok(reader!(self, |p| sqlx::query_scalar(&sql).bind(device_id).fetch_one(p).await)?)
    }

    /// The bytes stored under `key` in `table`, if any.
    pub async fn wa_blob(&self, table: WaBlobTable, device_id: i64, key: &str) -> DbResult<Option<Vec<u8>>> {
        let (table, key_col, value_col) = table.parts();
        let sql = format!("SELECT {value_col} FROM {table} WHERE device_id = $1 AND {key_col} = $2");
        Ok(reader!(self, |p| sqlx::query_scalar(&sql).bind(device_id).bind(key).fetch_optional(p).await)?)
    }

    /// Whether `table` has a row under `key`.
    pub async fn wa_blob_exists(&self, table: WaBlobTable, device_id: i64, key: &str) -> DbResult<bool> {
        let (table, key_col, _) = table.parts();
        let sql = format!("SELECT device_id FROM {table} WHERE device_id = $1 AND {key_col} = $2");
        let found: Option<i64> =
            reader!(self, |p| sqlx::query_scalar(&sql).bind(device_id).bind(key).fetch_optional(p).await)?;
        Ok(found.is_some())
    }

    /// Stores each `(key, bytes)` in `table`, replacing existing values, in one transaction.
    pub async fn wa_put_blobs(
        &self,
        table: WaBlobTable,
        device_id: i64,
        rows: &[(&str, &[u8])],
    ) -> DbResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let (table, key_col, value_col) = table.parts();
        let rows = last_per_key(rows, |(key, _)| *key);
        session_write!(self, |tx| {
            exec_chunks!(
                tx,
                rows,
                2,
                |n| format!(
                    "INSERT INTO {table} (device_id, {key_col}, {value_col}) VALUES {} \
                     ON CONFLICT (device_id, {key_col}) DO UPDATE SET {value_col} = excluded.{value_col}",
                    values(n, "$1", 2, 2)
                ),
                [device_id],
                |q, (key, value)| q.bind(*key).bind(*value)
            );
        });
        Ok(())
    }

    /// Deletes the row under `key` in `table` (nothing to delete is fine).
    pub async fn wa_delete_blob(&self, table: WaBlobTable, device_id: i64, key: &str) -> DbResult<()> {
        let (table, key_col, _) = table.parts();
        let sql = format!("DELETE FROM {table} WHERE device_id = $1 AND {key_col} = $2");
        session_write!(self, |tx| sqlx::query(&sql)
            .bind(device_id)
            .bind(key)
            .execute(&mut *tx)
            .await?
            .rows_affected());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_share_the_fixed_parameters_and_number_the_rest() {
        assert_eq!(values(2, "$1", 2, 2), "($1, $2, $3), ($1, $4, $5)");
        assert_eq!(values(1, "$1, $2", 1, 3), "($1, $2, $3)");
        assert_eq!(values(2, "", 1, 1), "($1), ($2)");
        assert_eq!(params(3, 2), "$2, $3, $4");
    }

    #[test]
    fn the_last_value_of_a_key_wins_in_order() {
        let rows = [("a", 1), ("b", 2), ("a", 3), ("c", 4)];
        let kept: Vec<_> = last_per_key(&rows, |(k, _)| *k).into_iter().copied().collect();
        assert_eq!(kept, [("b", 2), ("a", 3), ("c", 4)]);
    }

    #[test]
    fn statements_stay_within_both_limits() {
        assert_eq!(rows_per_statement(2), MAX_ROWS);
        assert_eq!(rows_per_statement(20), MAX_PARAMS / 20);
        assert_eq!(rows_per_statement(0), MAX_ROWS);
    }
}
