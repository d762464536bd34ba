//! App-state sync: sync keys, collection versions (JSON) and mutation MACs.

use super::{exec_chunks, last_per_key, params, rows_per_statement, session_write, values};
use crate::db::{reader, Db, DbResult};

/// A stored app-state sync key.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct WaSyncKeyRow {
    pub key_data: Vec<u8>,
    pub fingerprint: Vec<u8>,
    pub key_timestamp: i64,
}

impl Db {
    pub async fn wa_sync_key(&self, device_id: i64, key_id: &[u8]) -> DbResult<Option<WaSyncKeyRow>> {
        Ok(reader!(self, |p| sqlx::query_as(
            "SELECT key_data, fingerprint, key_timestamp FROM wa_app_state_keys \
             WHERE device_id = $1 AND key_id = $2"
        )
        .bind(device_id)
        .bind(key_id)
        .fetch_optional(p)
        .await)?)
    }

    /// Stores a sync key and makes it the latest one, in one transaction.
    pub async fn wa_put_sync_key(&self, device_id: i64, key_id: &[u8], key: &WaSyncKeyRow) -> DbResult<()> {
        session_write!(self, |tx| {
            sqlx::query(
                "INSERT INTO wa_app_state_keys (device_id, key_id, key_data, fingerprint, key_timestamp) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (device_id, key_id) DO UPDATE SET \
                 key_data = excluded.key_data, fingerprint = excluded.fingerprint, \
                 key_timestamp = excluded.key_timestamp",
            )
            .bind(device_id)
            .bind(key_id)
            .bind(&key.key_data)
            .bind(&key.fingerprint)
            .bind(key.key_timestamp)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO wa_app_state_latest_key (device_id, key_id) VALUES ($1, $2) \
                 ON CONFLICT (device_id) DO UPDATE SET key_id = excluded.key_id",
            )
            .bind(device_id)
            .bind(key_id)
            .execute(&mut *tx)
            .await?;
        });
        Ok(())
    }

    /// The id of the sync key stored last, if any.
    pub async fn wa_latest_sync_key_id(&self, device_id: i64) -> DbResult<Option<Vec<u8>>> {
        Ok(reader!(self, |p| sqlx::query_scalar(
            "SELECT key_id FROM wa_app_state_latest_key WHERE device_id = $1"
        )
        .bind(device_id)
        .fetch_optional(p)
        .await)?)
    }

    /// The stored state (JSON) of an app-state collection.
    pub async fn wa_app_state_version(&self, device_id: i64, collection: &str) -> DbResult<Option<String>> {
        Ok(reader!(self, |p| sqlx::query_scalar(
            "SELECT state FROM wa_app_state_versions WHERE device_id = $1 AND collection = $2"
        )
        .bind(device_id)
        .bind(collection)
        .fetch_optional(p)
        .await)?)
    }

    pub async fn wa_put_app_state_version(
        &self,
        device_id: i64,
        collection: &str,
        state: &str,
    ) -> DbResult<()> {
        session_write!(self, |tx| sqlx::query(
            "INSERT INTO wa_app_state_versions (device_id, collection, state) VALUES ($1, $2, $3) \
             ON CONFLICT (device_id, collection) DO UPDATE SET state = excluded.state"
        )
        .bind(device_id)
        .bind(collection)
        .bind(state)
        .execute(&mut *tx)
        .await?
        .rows_affected());
        Ok(())
    }

    /// Stores `(index_mac, value_mac)` pairs of a collection at `version`, in one transaction.
    pub async fn wa_put_mutation_macs(
        &self,
        device_id: i64,
        collection: &str,
        version: i64,
        macs: &[(&[u8], &[u8])],
    ) -> DbResult<()> {
        if macs.is_empty() {
            return Ok(());
        }
        let macs = last_per_key(macs, |(index, _)| *index);
        session_write!(self, |tx| {
            exec_chunks!(
                tx,
                macs,
                2,
                |n| format!(
                    "INSERT INTO wa_app_state_mutation_macs \
                     (device_id, collection, version, index_mac, value_mac) VALUES {} \
                     ON CONFLICT (device_id, collection, index_mac) DO UPDATE SET \
                     version = excluded.version, value_mac = excluded.value_mac",
                    values(n, "$1, $2, $3", 2, 4)
                ),
                [device_id, collection, version],
                |q, (index, value)| q.bind(*index).bind(*value)
            );
        });
        Ok(())
    }

    pub async fn wa_mutation_mac(
        &self,
        device_id: i64,
        collection: &str,
        index_mac: &[u8],
    ) -> DbResult<Option<Vec<u8>>> {
        Ok(reader!(self, |p| sqlx::query_scalar(
            "SELECT value_mac FROM wa_app_state_mutation_macs \
             WHERE device_id = $1 AND collection = $2 AND index_mac = $3"
        )
        .bind(device_id)
        .bind(collection)
        .bind(index_mac)
        .fetch_optional(p)
        .await)?)
    }

    /// The stored `(index_mac, value_mac)` pairs among `index_macs`, in no particular order.
    pub async fn wa_mutation_macs(
        &self,
        device_id: i64,
        collection: &str,
        index_macs: &[&[u8]],
    ) -> DbResult<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::with_capacity(index_macs.len());
        for chunk in index_macs.chunks(rows_per_statement(1)) {
            let sql = format!(
                "SELECT index_mac, value_mac FROM wa_app_state_mutation_macs \
                 WHERE device_id = $1 AND collection = $2 AND index_mac IN ({})",
                params(chunk.len(), 3)
            );
            let rows: Vec<(Vec<u8>, Vec<u8>)> = reader!(self, |p| {
                let mut q = sqlx::query_as(&sql).persistent(false).bind(device_id).bind(collection);
                for index in chunk {
                    q = q.bind(*index);
                }
                q.fetch_all(p).await
            })?;
            out.extend(rows);
        }
        Ok(out)
    }

    /// Deletes the MACs under `index_macs` of a collection, in one transaction.
    pub async fn wa_delete_mutation_macs(
        &self,
        device_id: i64,
        collection: &str,
        index_macs: &[&[u8]],
    ) -> DbResult<()> {
        if index_macs.is_empty() {
            return Ok(());
        }
        session_write!(self, |tx| {
            exec_chunks!(
                tx,
                index_macs,
                1,
                |n| format!(
                    "DELETE FROM wa_app_state_mutation_macs \
                     WHERE device_id = $1 AND collection = $2 AND index_mac IN ({})",
                    params(n, 3)
                ),
                [device_id, collection],
                |q, index| q.bind(*index)
            );
        });
        Ok(())
    }

    /// Deletes every MAC of a collection.
    pub async fn wa_clear_mutation_macs(&self, device_id: i64, collection: &str) -> DbResult<()> {
        session_write!(self, |tx| sqlx::query(
            "DELETE FROM wa_app_state_mutation_macs WHERE device_id = $1 AND collection = $2"
        )
        .bind(device_id)
        .bind(collection)
        .execute(&mut *tx)
        .await?
        .rows_affected());
        Ok(())
    }
}
