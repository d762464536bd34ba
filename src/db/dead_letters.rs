//! `inbound_dead_letters`: inbound messages the gateway gave up storing.
//!
//! An inbound message is acknowledged to WhatsApp only once it is stored. One that cannot be
//! stored however often it comes back (a row the database refuses) would otherwise be
//! delivered again forever and hold up the messages behind it. After a few attempts it is
//! recorded here, with a `failed` row in the tenant's history in its place, and acknowledged.

use super::{now_ms, reader, writer, Db, DbResult, NewMessage};

/// A dead letter, as the operator sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeadLetterRow {
    pub id: i64,
    pub user_id: i64,
    pub device_id: i64,
    pub wa_id: String,
    pub chat: String,
    pub sender: String,
    /// The message as JSON text.
    pub payload: String,
    pub reason: String,
    pub attempts: i64,
    /// The `failed` row in the tenant's history, when it could be stored.
    pub message_id: Option<i64>,
    pub created_at: i64,
}

/// A message to record as a dead letter.
#[derive(Debug, Clone)]
pub struct NewDeadLetter {
    pub user_id: i64,
    pub device_id: i64,
    pub wa_id: String,
    pub chat: String,
    pub sender: String,
    pub payload: String,
    pub reason: String,
    pub attempts: i64,
}

const COLUMNS: &str =
    "id, user_id, device_id, wa_id, chat, sender, payload, reason, attempts, message_id, created_at";

impl Db {
    /// Records a dead letter, with `placeholder` (the message without its content, status
    /// `failed`) in the history when that can be stored. Once per (device, WhatsApp id): a
    /// second call for the same message changes nothing. Fails only when the dead letter
    /// itself cannot be written, and then the message must not be acknowledged.
    pub async fn record_dead_letter(
        &self,
        letter: &NewDeadLetter,
        placeholder: &NewMessage,
    ) -> DbResult<DeadLetterRow> {
        // The history row first, on its own: a refusal there must not lose the dead letter.
        let message_id = match self.insert_inbound(placeholder).await {
            Ok(row) => row.map(|r| r.id),
            Err(e) => {
                tracing::warn!(device_id = letter.device_id, error = %e, "no history row for a dead letter");
                None
            }
        };
        let sql = format!(
            "INSERT INTO inbound_dead_letters (user_id, device_id, wa_id, chat, sender, payload, reason, \
             attempts, message_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (device_id, wa_id) DO UPDATE SET attempts = inbound_dead_letters.attempts \
             RETURNING {COLUMNS}"
        );
        let row = writer!(self, |p| {
            sqlx::query_as(&sql)
                .bind(letter.user_id)
                .bind(letter.device_id)
                .bind(&letter.wa_id)
                .bind(&letter.chat)
                .bind(&letter.sender)
                .bind(&letter.payload)
                .bind(&letter.reason)
                .bind(letter.attempts)
                .bind(message_id)
                .bind(now_ms())
                .fetch_one(p)
                .await
        })?;
        Ok(row)
    }

    /// Whether this device's message with WhatsApp id `wa_id` was given up on.
    pub async fn is_dead_letter(&self, device_id: i64, wa_id: &str) -> DbResult<bool> {
        let n: i64 = reader!(self, |p| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM inbound_dead_letters WHERE device_id = $1 AND wa_id = $2",
            )
            .bind(device_id)
            .bind(wa_id)
            .fetch_one(p)
            .await
        })?;
        Ok(n > 0)
    }

    /// Dead letters, newest first, of one tenant or of all; with the number of them.
    pub async fn list_dead_letters(
        &self,
        tenant: Option<i64>,
        limit: i64,
        offset: i64,
    ) -> DbResult<(Vec<DeadLetterRow>, i64)> {
        let sql = format!(
            "SELECT {COLUMNS} FROM inbound_dead_letters WHERE ($1 IS NULL OR user_id = $1) \
             ORDER BY id DESC LIMIT $2 OFFSET $3"
        );
        let rows = reader!(self, |p| {
            sqlx::query_as(&sql).bind(tenant).bind(limit).bind(offset).fetch_all(p).await
        })?;
        let total: i64 = reader!(self, |p| {
            sqlx::query_scalar("SELECT COUNT(*) FROM inbound_dead_letters WHERE ($1 IS NULL OR user_id = $1)")
                .bind(tenant)
                .fetch_one(p)
                .await
        })?;
        Ok((rows, total))
    }
}
