//! What the retention sweep deletes, one tenant and one small batch at a time, each batch its
//! own short statement (so a sweep never holds a lock traffic waits on for long), oldest
//! first along each table's `(user_id, …)` index.

use super::{reader, writer, Db, DbResult};

impl Db {
    /// Every tenant with its package.
    pub async fn tenant_packages(&self) -> DbResult<Vec<(i64, String)>> {
        Ok(reader!(self, |p| sqlx::query_as("SELECT id, package FROM users ORDER BY id").fetch_all(p).await)?)
    }

    /// Messages of `package`'s tenants stored before `before` whose media bytes are still
    /// kept: (tenant, id), oldest first (through the media-state index).
    pub async fn stored_media_before(
        &self,
        package: &str,
        before: i64,
        limit: i64,
    ) -> DbResult<Vec<(i64, i64)>> {
        Ok(reader!(self, |p| sqlx::query_as(
            "SELECT m.user_id, m.id FROM messages m JOIN users u ON u.id = m.user_id \
             WHERE m.media_state = 'stored' AND m.created_at < $2 AND u.package = $1 \
             ORDER BY m.created_at, m.id LIMIT $3"
        )
        .bind(package)
        .bind(before)
        .bind(limit)
        .fetch_all(p)
        .await)?)
    }

    /// Deletes up to `limit` of the tenant's messages stored before `before` that are done with:
    /// not waiting to be sent, through the inbound pipeline, no media bytes kept or coming
    /// (their status history goes with them). Returns how many.
    pub async fn delete_messages_before(&self, tenant: i64, before: i64, limit: i64) -> DbResult<u64> {
        Ok(writer!(self, |p| {
            sqlx::query(
            "DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE user_id = $1 AND created_at < $2 \
             AND status <> 'queued' AND (direction = 'out' OR processed_at IS NOT NULL) \
             AND (media_state IS NULL OR media_state NOT IN ('stored', 'pending')) \
             ORDER BY created_at, id LIMIT $3)"
        )
        .bind(tenant)
        .bind(before)
        .bind(limit)
        .execute(p)
        .await
        .map(|r| r.rows_affected())
        })?)
    }

    /// Deletes up to `limit` of the tenant's webhook and plugin-run log rows written before
    /// `before`. Returns how many.
    pub async fn delete_webhook_logs_before(&self, tenant: i64, before: i64, limit: i64) -> DbResult<u64> {
        Ok(writer!(self, |p| sqlx::query(
            "DELETE FROM webhook_logs WHERE id IN (SELECT id FROM webhook_logs WHERE user_id = $1 \
             AND created_at < $2 ORDER BY id LIMIT $3)"
        )
        .bind(tenant)
        .bind(before)
        .bind(limit)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?)
    }

    /// Deletes up to `limit` activity-log entries of the tenant (`None`: the gateway's own,
    /// which belong to no tenant) written before `before`. Returns how many.
    pub async fn delete_activity_before(
        &self,
        tenant: Option<i64>,
        before: i64,
        limit: i64,
    ) -> DbResult<u64> {
        Ok(writer!(self, |p| {
            sqlx::query(
            "DELETE FROM user_activity_logs WHERE id IN (SELECT id FROM user_activity_logs \
             WHERE (user_id = $1 OR ($1 IS NULL AND user_id IS NULL)) AND created_at < $2 ORDER BY id LIMIT $3)"
        )
        .bind(tenant)
        .bind(before)
        .bind(limit)
        .execute(p)
        .await
        .map(|r| r.rows_affected())
        })?)
    }
}
