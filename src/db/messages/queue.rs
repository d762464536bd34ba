//! The outbound queue and message statuses: taking the next queued message of a device,
//! recording attempts, WhatsApp ids and outcomes, receipts, the inbound pipeline's progress,
//! and the media bytes waiting with queued messages.

use super::super::{now_ms, reader, writer, Db, DbResult};

/// Statuses an outbound message may move to from each status (receipts never go backwards).
fn earlier_statuses(status: &str) -> &'static [&'static str] {
    match status {
        "sent" => &["queued"],
        "delivered" => &["queued", "sent"],
        "read" => &["queued", "sent", "delivered"],
        _ => &[],
    }
}

impl Db {
    /// The next outbound message waiting in a device's queue, oldest first.
    pub async fn next_queued(&self, device_id: i64) -> DbResult<Option<(i64, i64)>> {
        Ok(reader!(self, |p| sqlx::query_as(
            "SELECT id, user_id FROM messages WHERE device_id = $1 AND status = 'queued' \
             AND (next_attempt_at IS NULL OR next_attempt_at <= $2) ORDER BY id LIMIT 1"
        )
        .bind(device_id)
        .bind(now_ms())
        .fetch_optional(p)
        .await)?)
    }

    /// When the next queued message of a device becomes due (Unix ms), if any is queued.
    pub async fn next_queued_due(&self, device_id: i64) -> DbResult<Option<i64>> {
        Ok(reader!(self, |p| {
            sqlx::query_scalar(
            "SELECT MIN(COALESCE(next_attempt_at, 0)) FROM messages WHERE device_id = $1 AND status = 'queued'"
        )
        .bind(device_id)
        .fetch_one(p)
        .await
        })?)
    }

    /// Moves a message to `status` (with WhatsApp's id when sent) and records the change.
    pub async fn set_message_status(
        &self,
        id: i64,
        status: &str,
        wa_id: Option<&str>,
        error: Option<&str>,
    ) -> DbResult<()> {
        let now = now_ms();
        writer!(self, |p| {
            let mut tx = p.begin().await?;
            sqlx::query(
                "UPDATE messages SET status = $2, wa_id = COALESCE($3, wa_id), error = $4, \
                 attempts = attempts + 1, updated_at = $5 WHERE id = $1",
            )
            .bind(id)
            .bind(status)
            .bind(wa_id)
            .bind(error)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query("INSERT INTO message_status_history (message_id, status, detail, created_at) VALUES ($1, $2, $3, $4)")
                .bind(id)
                .bind(status)
                .bind(error)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Records the WhatsApp id chosen for a queued outbound message before its first attempt
    /// (kept if one is recorded already): retries and resends reuse it.
    pub async fn set_outbound_wa_id(&self, id: i64, wa_id: &str) -> DbResult<()> {
        writer!(self, |p| sqlx::query(
            "UPDATE messages SET wa_id = $2, updated_at = $3 WHERE id = $1 AND wa_id IS NULL"
        )
        .bind(id)
        .bind(wa_id)
        .bind(now_ms())
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Moves a queued outbound message to `sent` (WhatsApp accepted it) or `failed` (with the
    /// reason), counting the attempt. Only a message still `queued` moves: the server's ack
    /// and a refusal also arrive as receipts, and a receipt may have moved it already (to
    /// `sent`, or past it), so each status is recorded once and never goes backwards. Returns
    /// whether it moved.
    pub async fn finish_outbound(&self, id: i64, status: &str, error: Option<&str>) -> DbResult<bool> {
        let now = now_ms();
        Ok(writer!(self, |p| {
            let mut tx = p.begin().await?;
            let moved = sqlx::query(
                "UPDATE messages SET status = $2, error = $3, attempts = attempts + 1, updated_at = $4 \
                 WHERE id = $1 AND status = 'queued'",
            )
            .bind(id)
            .bind(status)
            .bind(error)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0;
            if moved {
                sqlx::query("INSERT INTO message_status_history (message_id, status, detail, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(id)
                    .bind(status)
                    .bind(error)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            moved
        }))
    }

    /// Puts a message back in the queue after a failed attempt, due again at `due_ms`.
    pub async fn requeue_message(&self, id: i64, due_ms: i64, error: &str) -> DbResult<()> {
        writer!(self, |p| {
            sqlx::query(
            "UPDATE messages SET attempts = attempts + 1, next_attempt_at = $2, error = $3, updated_at = $4 WHERE id = $1"
        )
        .bind(id)
        .bind(due_ms)
        .bind(error)
        .bind(now_ms())
        .execute(p)
        .await
        .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Applies a receipt: moves the device's outbound messages with these WhatsApp ids forward
    /// to `status` (never backwards). Returns the ids and tenants of the messages that changed.
    pub async fn apply_receipt(
        &self,
        device_id: i64,
        wa_ids: &[String],
        status: &str,
    ) -> DbResult<Vec<(i64, i64)>> {
        let earlier = earlier_statuses(status);
        if earlier.is_empty() || wa_ids.is_empty() {
            return Ok(Vec::new());
        }
        let list = earlier.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "UPDATE messages SET status = $3, updated_at = $4 WHERE device_id = $1 AND direction = 'out' \
             AND wa_id = $2 AND status IN ({list}) RETURNING id, user_id"
        );
        let now = now_ms();
        let mut changed = Vec::new();
        for wa_id in wa_ids {
            let row: Option<(i64, i64)> = writer!(self, |p| {
                let mut tx = p.begin().await?;
                let row: Option<(i64, i64)> = sqlx::query_as(&sql)
                    .bind(device_id)
                    .bind(wa_id)
                    .bind(status)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?;
                if let Some((id, _)) = row {
                    sqlx::query("INSERT INTO message_status_history (message_id, status, created_at) VALUES ($1, $2, $3)")
                        .bind(id)
                        .bind(status)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                row
            });
            changed.extend(row);
        }
        Ok(changed)
    }

    /// The device that sent the outbound message with this WhatsApp id, with the message id.
    pub async fn system_outbound_by_wa_id(&self, wa_id: &str) -> DbResult<Option<(i64, i64)>> {
        Ok(reader!(self, |p| {
            sqlx::query_as(
            "SELECT device_id, id FROM messages WHERE wa_id = $1 AND direction = 'out' ORDER BY id DESC LIMIT 1"
        )
        .bind(wa_id)
        .fetch_optional(p)
        .await
        })?)
    }

    /// The WhatsApp id of an outbound message, by gateway id (simulator receipts).
    pub async fn system_message_wa_id(&self, id: i64) -> DbResult<Option<(i64, Option<String>)>> {
        Ok(reader!(self, |p| sqlx::query_as(
            "SELECT device_id, wa_id FROM messages WHERE id = $1 AND direction = 'out'"
        )
        .bind(id)
        .fetch_optional(p)
        .await)?)
    }

    /// Devices that have messages waiting in their queue (to resume sending at start).
    pub async fn devices_with_queued(&self) -> DbResult<Vec<i64>> {
        Ok(reader!(self, |p| sqlx::query_scalar(
            "SELECT DISTINCT device_id FROM messages WHERE status = 'queued'"
        )
        .fetch_all(p)
        .await)?)
    }

    /// Inbound messages whose pipeline has not finished, oldest first: `(tenant, id)`.
    pub async fn unprocessed_inbound(&self, limit: i64) -> DbResult<Vec<(i64, i64)>> {
        Ok(reader!(self, |p| {
            sqlx::query_as(
            "SELECT user_id, id FROM messages WHERE processed_at IS NULL AND direction = 'in' ORDER BY id LIMIT $1"
        )
        .bind(limit)
        .fetch_all(p)
        .await
        })?)
    }

    pub async fn mark_processed(&self, id: i64) -> DbResult<()> {
        writer!(self, |p| sqlx::query("UPDATE messages SET processed_at = $2 WHERE id = $1")
            .bind(id)
            .bind(now_ms())
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Keeps the bytes of queued outbound media; returns the blob id.
    pub async fn put_media_blob(&self, tenant: i64, data: &[u8]) -> DbResult<i64> {
        Ok(writer!(self, |p| sqlx::query_scalar(
            "INSERT INTO media_blobs (user_id, data, created_at) VALUES ($1, $2, $3) RETURNING id"
        )
        .bind(tenant)
        .bind(data)
        .bind(now_ms())
        .fetch_one(p)
        .await)?)
    }

    pub async fn media_blob(&self, tenant: i64, id: i64) -> DbResult<Option<Vec<u8>>> {
        Ok(reader!(self, |p| sqlx::query_scalar(
            "SELECT data FROM media_blobs WHERE user_id = $1 AND id = $2"
        )
        .bind(tenant)
        .bind(id)
        .fetch_optional(p)
        .await)?)
    }

    pub async fn delete_media_blob(&self, tenant: i64, id: i64) -> DbResult<()> {
        writer!(self, |p| sqlx::query("DELETE FROM media_blobs WHERE user_id = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }
}
