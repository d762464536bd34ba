//! The outbound queue and message statuses: taking the next queued message of a device,
//! recording attempts, WhatsApp ids and outcomes, receipts, the inbound pipeline's progress,
//! and the media bytes waiting with queued messages.

use super::super::cluster::fence_sql;
use super::super::{now_ms, reader, writer, Db, DbResult};

/// What [`Db::claim_queued`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Nothing is due in the device's queue.
    Empty,
    /// The message to send now, under `wa_id`. `taken_over`: it was taken under an earlier
    /// lease (its device changed owner while it was in flight), so it may have reached
    /// WhatsApp already and goes again under the same id.
    Taken { id: i64, tenant: i64, wa_id: String, taken_over: bool },
    /// The message changed meanwhile (a receipt or a cancellation): look again.
    Retry,
    /// The lease is no longer valid: the caller must stop sending for the device.
    Fenced,
}

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
    /// Takes the device's oldest due queued message for sending under the lease `(node,
    /// epoch)`: marks it with the epoch and gives it the WhatsApp id `wa_id` unless it has one
    /// already (a message taken before keeps its id, so sending it again is the same message).
    /// The mark is written only while the lease is valid.
    pub async fn claim_queued(&self, device_id: i64, node: &str, epoch: i64, wa_id: &str) -> DbResult<Claim> {
        let next: Option<(i64, i64, Option<i64>)> = reader!(self, |p| sqlx::query_as(
            "SELECT id, user_id, claim_epoch FROM messages WHERE device_id = $1 AND status = 'queued' \
             AND (next_attempt_at IS NULL OR next_attempt_at <= $2) ORDER BY id LIMIT 1"
        )
        .bind(device_id)
        .bind(now_ms())
        .fetch_optional(p)
        .await)?;
        let Some((id, tenant, claimed_before)) = next else { return Ok(Claim::Empty) };
        let fence = fence_sql(self.dialect(), "$1", "$2", "$3");
        let sql = format!(
            "UPDATE messages SET claim_epoch = $3, wa_id = COALESCE(wa_id, $4), updated_at = $5 \
             WHERE id = $6 AND device_id = $1 AND status = 'queued' AND {fence} RETURNING wa_id"
        );
        let claimed: Option<String> = writer!(self, |p| sqlx::query_scalar(&sql)
            .bind(device_id)
            .bind(node)
            .bind(epoch)
            .bind(wa_id)
            .bind(now_ms())
            .bind(id)
            .fetch_optional(p)
            .await)?;
        Ok(match claimed {
            Some(wa_id) => {
                Claim::Taken { id, tenant, wa_id, taken_over: claimed_before.is_some_and(|e| e < epoch) }
            }
            None if self.cluster_holds(device_id, node, epoch).await? => Claim::Retry,
            None => Claim::Fenced,
        })
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

    /// Moves a queued outbound message to `sent` (WhatsApp accepted it) or `failed` (with the
    /// reason), counting the attempt. Only a message still `queued` moves: the server's ack
    /// and a refusal also arrive as receipts, and a receipt may have moved it already (to
    /// `sent`, or past it), so each status is recorded once and never goes backwards. Returns
    /// whether it moved. With a `fence` (the sender's lease `(node, epoch)`), it moves only
    /// while that lease is valid: a sender that lost its device records nothing.
    pub async fn finish_outbound(
        &self,
        id: i64,
        status: &str,
        error: Option<&str>,
        fence: Option<(&str, i64)>,
    ) -> DbResult<bool> {
        let now = now_ms();
        let (node, epoch) = fence.map_or((None, None), |(n, e)| (Some(n), Some(e)));
        let fenced = fence_sql(self.dialect(), "device_id", "$5", "$6");
        let sql = format!(
            "UPDATE messages SET status = $2, error = $3, attempts = attempts + 1, updated_at = $4 \
             WHERE id = $1 AND status = 'queued' AND ($5 IS NULL OR {fenced})"
        );
        Ok(writer!(self, |p| {
            let mut tx = p.begin().await?;
            let moved = sqlx::query(&sql)
                .bind(id)
                .bind(status)
                .bind(error)
                .bind(now)
                .bind(node)
                .bind(epoch)
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

    /// Puts a message back in the queue after a failed attempt, due again at `due_ms`, while
    /// the sender's lease `(node, epoch)` is valid.
    pub async fn requeue_message(
        &self,
        id: i64,
        due_ms: i64,
        error: &str,
        node: &str,
        epoch: i64,
    ) -> DbResult<()> {
        let fenced = fence_sql(self.dialect(), "device_id", "$5", "$6");
        let sql = format!(
            "UPDATE messages SET attempts = attempts + 1, next_attempt_at = $2, error = $3, updated_at = $4 \
             WHERE id = $1 AND status = 'queued' AND {fenced}"
        );
        writer!(self, |p| {
            sqlx::query(&sql)
                .bind(id)
                .bind(due_ms)
                .bind(error)
                .bind(now_ms())
                .bind(node)
                .bind(epoch)
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

    /// The devices held by `node` that have due messages waiting in their queue: what the
    /// node's senders should look at (a poll that covers lost wake-ups).
    pub async fn queued_devices_of(&self, node: &str) -> DbResult<Vec<i64>> {
        Ok(reader!(self, |p| sqlx::query_scalar(
            "SELECT DISTINCT m.device_id FROM messages m JOIN device_leases l ON l.device_id = m.device_id \
             WHERE l.node_id = $1 AND m.status = 'queued' \
             AND (m.next_attempt_at IS NULL OR m.next_attempt_at <= $2)"
        )
        .bind(node)
        .bind(now_ms())
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

    /// The device's inbound messages whose pipeline has not finished, oldest first:
    /// `(tenant, id)`.
    pub async fn unprocessed_inbound_of(&self, device_id: i64, limit: i64) -> DbResult<Vec<(i64, i64)>> {
        Ok(reader!(self, |p| {
            sqlx::query_as(
            "SELECT user_id, id FROM messages WHERE processed_at IS NULL AND direction = 'in' AND device_id = $1 \
             ORDER BY id LIMIT $2"
        )
        .bind(device_id)
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
