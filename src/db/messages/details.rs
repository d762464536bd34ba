//! Changes to a stored message after the fact: reactions, edits, deletion, poll votes and read
//! marks. Each is a read-modify-write of the message's text and `details` in one transaction
//! (the row locked on PostgreSQL; SQLite has one writer), with a status-history row naming the
//! change, so the webhook pump turns it into its event exactly once.

use super::super::{now_ms, writer, Db, DbResult, Dialect};
use super::{Details, MessageRow, COLUMNS, FROM_MESSAGES};

/// Which stored message to change.
#[derive(Debug, Clone, Copy)]
pub enum MessageRef<'a> {
    /// The tenant's message by the gateway's id.
    Id { tenant: i64, id: i64 },
    /// The message a device stored under WhatsApp's id (inbound or outbound).
    WaId { device_id: i64, wa_id: &'a str },
}

impl Db {
    /// Applies `change` to the message's text and details. `change` answers what changed
    /// (JSON, the status-history entry's detail), or `None` when nothing did; only then are
    /// they stored, with a status-history entry `status` (`reaction`, `edited`, `revoked`,
    /// `poll_vote`, `read_mark`). Returns the message as it is afterwards and whether it
    /// changed; `None` when there is no such message.
    pub async fn change_message<F>(
        &self,
        target: MessageRef<'_>,
        status: &'static str,
        change: F,
    ) -> DbResult<Option<(MessageRow, bool)>>
    where
        F: FnOnce(&MessageRow, &mut Option<String>, &mut Details) -> Option<serde_json::Value> + Send,
    {
        let lock = if self.dialect() == Dialect::Postgres { " FOR UPDATE OF m" } else { "" };
        let cond = match target {
            MessageRef::Id { .. } => "m.user_id = $1 AND m.id = $2",
            MessageRef::WaId { .. } => "m.device_id = $1 AND m.direction IN ('in', 'out') AND m.wa_id = $2",
        };
        let sql = format!("{COLUMNS} {FROM_MESSAGES} WHERE {cond} ORDER BY m.id LIMIT 1{lock}");
        let now = now_ms();
        let changed: Option<(i64, i64, bool)> = writer!(self, |p| {
            let mut tx = p.begin().await?;
            let row: Option<MessageRow> = match target {
                MessageRef::Id { tenant, id } => {
                    sqlx::query_as(&sql).bind(tenant).bind(id).fetch_optional(&mut *tx).await?
                }
                MessageRef::WaId { device_id, wa_id } => {
                    sqlx::query_as(&sql).bind(device_id).bind(wa_id).fetch_optional(&mut *tx).await?
                }
            };
            match row {
                None => None,
                Some(row) => {
                    let mut text = row.text.clone();
                    let mut details = row.details();
                    if let Some(detail) = change(&row, &mut text, &mut details) {
                        let detail = (!detail.is_null()).then(|| detail.to_string());
                        sqlx::query(
                            "UPDATE messages SET text = $2, details = $3, updated_at = $4 WHERE id = $1",
                        )
                        .bind(row.id)
                        .bind(&text)
                        .bind(details.to_json())
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                        sqlx::query(
                            "INSERT INTO message_status_history (message_id, status, detail, created_at) \
                             VALUES ($1, $2, $3, $4)",
                        )
                        .bind(row.id)
                        .bind(status)
                        .bind(&detail)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                        tx.commit().await?;
                        Some((row.user_id, row.id, true))
                    } else {
                        Some((row.user_id, row.id, false))
                    }
                }
            }
        });
        let Some((tenant, id, changed)) = changed else { return Ok(None) };
        Ok(self.message(tenant, id).await?.map(|row| (row, changed)))
    }
}

impl Db {
    /// The gateway's id of the message a device stored under WhatsApp id `wa_id` (inbound or
    /// outbound), if any.
    pub async fn message_id_by_wa_id(&self, device_id: i64, wa_id: &str) -> DbResult<Option<i64>> {
        Ok(super::super::reader!(self, |p| sqlx::query_scalar(
            "SELECT id FROM messages WHERE device_id = $1 AND direction IN ('in', 'out') AND wa_id = $2 \
             ORDER BY id LIMIT 1"
        )
        .bind(device_id)
        .bind(wa_id)
        .fetch_optional(p)
        .await)?)
    }
}
