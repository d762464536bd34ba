//! Plugin key-value data (`plugin_kv`), scoped to (tenant, plugin): every query names both.
//! Sizes are bytes (`octet_length`, the same on both backends): a key counts its UTF-8 bytes.

use super::{now_ms, reader, writer, Db, DbError, DbResult};

impl Db {
    /// The value stored under `key`.
    pub async fn plugin_kv_get(&self, tenant: i64, plugin_id: i64, key: &str) -> DbResult<Option<Vec<u8>>> {
        Ok(reader!(self, |p| sqlx::query_scalar(
            "SELECT value FROM plugin_kv WHERE user_id = $1 AND plugin_id = $2 AND key = $3"
        )
        .bind(tenant)
        .bind(plugin_id)
        .bind(key)
        .fetch_optional(p)
        .await)?)
    }

    /// The bytes `key` takes (key plus value), `None` when absent.
    pub async fn plugin_kv_entry_size(
        &self,
        tenant: i64,
        plugin_id: i64,
        key: &str,
    ) -> DbResult<Option<i64>> {
        Ok(reader!(self, |p| sqlx::query_scalar(
            "SELECT CAST(octet_length(key) + octet_length(value) AS BIGINT) FROM plugin_kv \
             WHERE user_id = $1 AND plugin_id = $2 AND key = $3"
        )
        .bind(tenant)
        .bind(plugin_id)
        .bind(key)
        .fetch_optional(p)
        .await)?)
    }

    /// How many keys the plugin stores and how many bytes they take (keys plus values): what
    /// counts against `[plugins] kv_quota_bytes`.
    pub async fn plugin_kv_usage(&self, tenant: i64, plugin_id: i64) -> DbResult<(i64, i64)> {
        Ok(reader!(self, |p| sqlx::query_as(
            "SELECT CAST(COUNT(*) AS BIGINT), \
             CAST(COALESCE(SUM(octet_length(key) + octet_length(value)), 0) AS BIGINT) \
             FROM plugin_kv WHERE user_id = $1 AND plugin_id = $2"
        )
        .bind(tenant)
        .bind(plugin_id)
        .fetch_one(p)
        .await)?)
    }

    /// Applies a run's writes in one transaction: `Some` stores the value, `None` removes the
    /// key. `NotFound` (and nothing applied) when the tenant has no such plugin.
    pub async fn apply_plugin_kv(
        &self,
        tenant: i64,
        plugin_id: i64,
        writes: &[(String, Option<Vec<u8>>)],
    ) -> DbResult<()> {
        if writes.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        writer!(self, |p| {
            let mut tx = p.begin().await?;
            for (key, value) in writes {
                match value {
                    Some(value) => {
                        // Only into a plugin of this tenant (the foreign keys alone would
                        // accept another tenant's plugin id).
                        let n = sqlx::query(
                            "INSERT INTO plugin_kv (user_id, plugin_id, key, value, updated_at) \
                             SELECT $1, $2, $3, $4, $5 \
                             WHERE EXISTS (SELECT 1 FROM plugins WHERE id = $2 AND user_id = $1) \
                             ON CONFLICT (user_id, plugin_id, key) \
                             DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                        )
                        .bind(tenant)
                        .bind(plugin_id)
                        .bind(key)
                        .bind(value)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                        if n == 0 {
                            return Err(DbError::NotFound);
                        }
                    }
                    None => {
                        sqlx::query(
                            "DELETE FROM plugin_kv WHERE user_id = $1 AND plugin_id = $2 AND key = $3",
                        )
                        .bind(tenant)
                        .bind(plugin_id)
                        .bind(key)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
            }
            tx.commit().await?;
        });
        Ok(())
    }
}
