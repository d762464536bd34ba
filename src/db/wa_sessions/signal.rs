//! Signal state beyond the key -> bytes tables: one-time and signed pre-keys, and the
//! per-user lookup across sessions and identities.

use super::{exec_chunks, last_per_key, params, rows_per_statement, session_write, values};
use crate::db::{reader, Db, DbResult};

impl Db {
    /// Whether the device has a Signal session or identity for any device of `user`, i.e. an
    /// address `user@server` or `user:device@server`.
    pub async fn wa_has_signal_state_for_user(&self, device_id: i64, user: &str) -> DbResult<bool> {
        const MATCH: &str = "device_id = $1 AND substr(address, 1, length($2)) = $2 \
                             AND substr(address, length($2) + 1, 1) IN ('@', ':')";
        let sql = format!(
            "SELECT device_id FROM wa_signal_sessions WHERE {MATCH} \
             UNION ALL SELECT device_id FROM wa_identities WHERE {MATCH} LIMIT 1"
        );
        let found: Option<i64> =
            reader!(self, |p| sqlx::query_scalar(&sql).bind(device_id).bind(user).fetch_optional(p).await)?;
        Ok(found.is_some())
    }

    /// Stores one-time pre-keys `(id, record)`, replacing existing ones, in one transaction.
    pub async fn wa_put_prekeys(
        &self,
        device_id: i64,
        rows: &[(i64, &[u8])],
        uploaded: bool,
    ) -> DbResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let rows = last_per_key(rows, |(id, _)| *id);
        session_write!(self, |tx| {
            exec_chunks!(
                tx,
                rows,
                2,
                |n| format!(
                    "INSERT INTO wa_prekeys (device_id, uploaded, prekey_id, record) VALUES {} \
                     ON CONFLICT (device_id, prekey_id) DO UPDATE SET record = excluded.record, \
                     uploaded = excluded.uploaded",
                    values(n, "$1, $2", 2, 3)
                ),
                [device_id, uploaded],
                |q, (id, record)| q.bind(*id).bind(*record)
            );
        });
        Ok(())
    }

    /// The pre-key record with this id, if stored.
    pub async fn wa_prekey(&self, device_id: i64, id: i64) -> DbResult<Option<Vec<u8>>> {
        Ok(reader!(self, |p| sqlx::query_scalar(
            "SELECT record FROM wa_prekeys WHERE device_id = $1 AND prekey_id = $2"
        )
        .bind(device_id)
        .bind(id)
        .fetch_optional(p)
        .await)?)
    }

    /// The stored pre-keys among `ids`, in no particular order.
    pub async fn wa_prekeys(&self, device_id: i64, ids: &[i64]) -> DbResult<Vec<(i64, Vec<u8>)>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(rows_per_statement(1)) {
            let sql = format!(
                "SELECT prekey_id, record FROM wa_prekeys WHERE device_id = $1 AND prekey_id IN ({})",
                params(chunk.len(), 2)
            );
            let rows: Vec<(i64, Vec<u8>)> = reader!(self, |p| {
                let mut q = sqlx::query_as(&sql).persistent(false).bind(device_id);
                for id in chunk {
                    q = q.bind(*id);
                }
                q.fetch_all(p).await
            })?;
            out.extend(rows);
        }
        Ok(out)
    }

    /// Marks stored pre-keys as uploaded; ids that are not stored stay absent.
    pub async fn wa_mark_prekeys_uploaded(&self, device_id: i64, ids: &[i64]) -> DbResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        session_write!(self, |tx| {
            exec_chunks!(
                tx,
                ids,
                1,
                |n| format!(
                    "UPDATE wa_prekeys SET uploaded = $2 WHERE device_id = $1 AND prekey_id IN ({})",
                    params(n, 3)
                ),
                [device_id, true],
                |q, id| q.bind(*id)
            );
        });
        Ok(())
    }

    pub async fn wa_delete_prekey(&self, device_id: i64, id: i64) -> DbResult<()> {
        session_write!(self, |tx| sqlx::query(
            "DELETE FROM wa_prekeys WHERE device_id = $1 AND prekey_id = $2"
        )
        .bind(device_id)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected());
        Ok(())
    }

    /// The highest stored pre-key id, 0 when there is none.
    pub async fn wa_max_prekey_id(&self, device_id: i64) -> DbResult<i64> {
        let max: Option<i64> = reader!(self, |p| sqlx::query_scalar(
            "SELECT MAX(prekey_id) FROM wa_prekeys WHERE device_id = $1"
        )
        .bind(device_id)
        .fetch_one(p)
        .await)?;
        Ok(max.unwrap_or(0))
    }

    pub async fn wa_put_signed_prekey(&self, device_id: i64, id: i64, record: &[u8]) -> DbResult<()> {
        session_write!(self, |tx| sqlx::query(
            "INSERT INTO wa_signed_prekeys (device_id, prekey_id, record) VALUES ($1, $2, $3) \
             ON CONFLICT (device_id, prekey_id) DO UPDATE SET record = excluded.record"
        )
        .bind(device_id)
        .bind(id)
        .bind(record)
        .execute(&mut *tx)
        .await?
        .rows_affected());
        Ok(())
    }

    pub async fn wa_signed_prekey(&self, device_id: i64, id: i64) -> DbResult<Option<Vec<u8>>> {
        Ok(reader!(self, |p| sqlx::query_scalar(
            "SELECT record FROM wa_signed_prekeys WHERE device_id = $1 AND prekey_id = $2"
        )
        .bind(device_id)
        .bind(id)
        .fetch_optional(p)
        .await)?)
    }

    /// Every signed pre-key of the device, by id.
    pub async fn wa_signed_prekeys(&self, device_id: i64) -> DbResult<Vec<(i64, Vec<u8>)>> {
        Ok(reader!(self, |p| sqlx::query_as(
            "SELECT prekey_id, record FROM wa_signed_prekeys WHERE device_id = $1 ORDER BY prekey_id"
        )
        .bind(device_id)
        .fetch_all(p)
        .await)?)
    }

    pub async fn wa_delete_signed_prekey(&self, device_id: i64, id: i64) -> DbResult<()> {
        session_write!(self, |tx| sqlx::query(
            "DELETE FROM wa_signed_prekeys WHERE device_id = $1 AND prekey_id = $2"
        )
        .bind(device_id)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected());
        Ok(())
    }
}
