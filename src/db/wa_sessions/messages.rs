//! Per-message state: trusted-contact tokens, sent payloads kept for retries, inbound messages
//! waiting for the durability hook, and message secrets.
//!
//! The merge rules the library documents (tc-token sender time only moves forward, a
//! received token is newer-wins, message-secret expiry and parent time never shrink) are
//! single upserts, so concurrent writers converge without a read-modify-write.

use std::collections::HashMap;
use std::fmt::Write as _;

use super::{exec_chunks, last_per_key, session_write, values};
use crate::db::{reader, Db, DbResult};

/// A stored trusted-contact token. An empty `token` is a placeholder that only carries
/// `sender_timestamp`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct WaTcTokenRow {
    pub token: Vec<u8>,
    pub token_timestamp: i64,
    pub sender_timestamp: Option<i64>,
}

/// A message secret to store, keyed by `(chat, sender, msg_id)`.
#[derive(Debug, Clone, Copy)]
pub struct WaMsgSecret<'a> {
    pub chat: &'a str,
    pub sender: &'a str,
    pub msg_id: &'a str,
    pub secret: &'a [u8],
    /// Unix seconds; 0 = never expires.
    pub expires_at: i64,
    /// Unix seconds of the parent message; 0 = unknown.
    pub message_ts: i64,
}

/// An inbound message waiting for the durability hook, keyed by `(chat, sender, id)`.
#[derive(Debug, Clone, Copy)]
pub struct WaPendingInbound<'a> {
    pub chat: &'a str,
    pub sender: &'a str,
    pub id: &'a str,
    pub message: &'a [u8],
}

/// Expiry merge: 0 ("never") wins, otherwise the later deadline.
fn merge_expiry(existing: i64, incoming: i64) -> i64 {
    if existing == 0 || incoming == 0 {
        0
    } else {
        existing.max(incoming)
    }
}

/// The same merge as SQL over the existing row and `excluded`.
const MERGE_EXPIRY_SQL: &str = "CASE WHEN wa_msg_secrets.expires_at = 0 OR excluded.expires_at = 0 THEN 0 \
     WHEN excluded.expires_at > wa_msg_secrets.expires_at THEN excluded.expires_at \
     ELSE wa_msg_secrets.expires_at END";

impl Db {
    pub async fn wa_tc_token(&self, device_id: i64, jid: &str) -> DbResult<Option<WaTcTokenRow>> {
        Ok(reader!(self, |p| sqlx::query_as(
            "SELECT token, token_timestamp, sender_timestamp FROM wa_tc_tokens \
             WHERE device_id = $1 AND jid = $2"
        )
        .bind(device_id)
        .bind(jid)
        .fetch_optional(p)
        .await)?)
    }

    /// Stores a token entry as given, replacing the whole row.
    pub async fn wa_put_tc_token(&self, device_id: i64, jid: &str, entry: &WaTcTokenRow) -> DbResult<()> {
        session_write!(self, |tx| sqlx::query(
            "INSERT INTO wa_tc_tokens (device_id, jid, token, token_timestamp, sender_timestamp) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (device_id, jid) DO UPDATE SET \
             token = excluded.token, token_timestamp = excluded.token_timestamp, \
             sender_timestamp = excluded.sender_timestamp"
        )
        .bind(device_id)
        .bind(jid)
        .bind(&entry.token)
        .bind(entry.token_timestamp)
        .bind(entry.sender_timestamp)
        .execute(&mut *tx)
        .await?
        .rows_affected());
        Ok(())
    }

    /// Moves the sender time of a contact's token forward to `sender_timestamp` (never back),
    /// creating a placeholder row when there is none; the token bytes are left alone.
    pub async fn wa_touch_tc_token_sender(
        &self,
        device_id: i64,
        jid: &str,
        sender_timestamp: i64,
    ) -> DbResult<()> {
        session_write!(self, |tx| sqlx::query(
            "INSERT INTO wa_tc_tokens (device_id, jid, token, token_timestamp, sender_timestamp) \
             VALUES ($1, $2, $3, $4, $4) ON CONFLICT (device_id, jid) DO UPDATE SET \
             sender_timestamp = CASE WHEN wa_tc_tokens.sender_timestamp IS NULL \
             OR excluded.sender_timestamp > wa_tc_tokens.sender_timestamp \
             THEN excluded.sender_timestamp ELSE wa_tc_tokens.sender_timestamp END"
        )
        .bind(device_id)
        .bind(jid)
        .bind(&[][..] as &[u8])
        .bind(sender_timestamp)
        .execute(&mut *tx)
        .await?
        .rows_affected());
        Ok(())
    }

    /// Stores a token received from a contact unless a real token at least as new is stored;
    /// the sender time is left alone.
    pub async fn wa_store_received_tc_token(
        &self,
        device_id: i64,
        jid: &str,
        token: &[u8],
        token_timestamp: i64,
    ) -> DbResult<()> {
        session_write!(self, |tx| sqlx::query(
            "INSERT INTO wa_tc_tokens (device_id, jid, token, token_timestamp, sender_timestamp) \
             VALUES ($1, $2, $3, $4, NULL) ON CONFLICT (device_id, jid) DO UPDATE SET \
             token = excluded.token, token_timestamp = excluded.token_timestamp \
             WHERE length(wa_tc_tokens.token) = 0 \
             OR excluded.token_timestamp >= wa_tc_tokens.token_timestamp"
        )
        .bind(device_id)
        .bind(jid)
        .bind(token)
        .bind(token_timestamp)
        .execute(&mut *tx)
        .await?
        .rows_affected());
        Ok(())
    }

    pub async fn wa_delete_tc_token(&self, device_id: i64, jid: &str) -> DbResult<()> {
        session_write!(self, |tx| sqlx::query("DELETE FROM wa_tc_tokens WHERE device_id = $1 AND jid = $2")
            .bind(device_id)
            .bind(jid)
            .execute(&mut *tx)
            .await?
            .rows_affected());
        Ok(())
    }

    /// The JIDs that have a token row, sorted.
    pub async fn wa_tc_token_jids(&self, device_id: i64) -> DbResult<Vec<String>> {
        Ok(reader!(self, |p| sqlx::query_scalar(
            "SELECT jid FROM wa_tc_tokens WHERE device_id = $1 ORDER BY jid"
        )
        .bind(device_id)
        .fetch_all(p)
        .await)?)
    }

    /// Deletes token rows with nothing live left: no real token at or after `token_cutoff`
    /// and no sender time at or after `sender_cutoff`. Answers how many went.
    pub async fn wa_delete_expired_tc_tokens(
        &self,
        device_id: i64,
        token_cutoff: i64,
        sender_cutoff: i64,
    ) -> DbResult<u64> {
        Ok(session_write!(self, |tx| sqlx::query(
            "DELETE FROM wa_tc_tokens WHERE device_id = $1 AND NOT ( \
             (length(token) > 0 AND token_timestamp >= $2) \
             OR (sender_timestamp IS NOT NULL AND sender_timestamp >= $3))"
        )
        .bind(device_id)
        .bind(token_cutoff)
        .bind(sender_cutoff)
        .execute(&mut *tx)
        .await?
        .rows_affected()))
    }

    /// Keeps a sent message's payload (for retry receipts), replacing one with the same id.
    pub async fn wa_put_sent_message(
        &self,
        device_id: i64,
        chat_jid: &str,
        message_id: &str,
        payload: &[u8],
        stored_at: i64,
    ) -> DbResult<()> {
        session_write!(self, |tx| sqlx::query(
            "INSERT INTO wa_sent_messages (device_id, chat_jid, message_id, payload, stored_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (device_id, chat_jid, message_id) \
             DO UPDATE SET payload = excluded.payload, stored_at = excluded.stored_at"
        )
        .bind(device_id)
        .bind(chat_jid)
        .bind(message_id)
        .bind(payload)
        .bind(stored_at)
        .execute(&mut *tx)
        .await?
        .rows_affected());
        Ok(())
    }

    /// Removes a sent message's payload and answers it, in one statement: of two concurrent
    /// takes only one gets it.
    pub async fn wa_take_sent_message(
        &self,
        device_id: i64,
        chat_jid: &str,
        message_id: &str,
    ) -> DbResult<Option<Vec<u8>>> {
        Ok(session_write!(self, |tx| sqlx::query_scalar(
            "DELETE FROM wa_sent_messages WHERE device_id = $1 AND chat_jid = $2 AND message_id = $3 \
             RETURNING payload"
        )
        .bind(device_id)
        .bind(chat_jid)
        .bind(message_id)
        .fetch_optional(&mut *tx)
        .await?))
    }

    /// Deletes sent payloads stored before `cutoff` (Unix seconds); answers how many went.
    pub async fn wa_delete_sent_messages_before(&self, device_id: i64, cutoff: i64) -> DbResult<u64> {
        Ok(session_write!(self, |tx| sqlx::query(
            "DELETE FROM wa_sent_messages WHERE device_id = $1 AND stored_at < $2"
        )
        .bind(device_id)
        .bind(cutoff)
        .execute(&mut *tx)
        .await?
        .rows_affected()))
    }

    /// Buffers inbound messages (replacing ones with the same key), in one transaction.
    pub async fn wa_put_pending_inbound(
        &self,
        device_id: i64,
        rows: &[WaPendingInbound<'_>],
        stored_at: i64,
    ) -> DbResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let rows = last_per_key(rows, |r| (r.chat, r.sender, r.id));
        session_write!(self, |tx| {
            exec_chunks!(
                tx,
                rows,
                4,
                |n| format!(
                    "INSERT INTO wa_pending_inbound \
                     (device_id, stored_at, chat, sender, message_id, message) VALUES {} \
                     ON CONFLICT (device_id, chat, sender, message_id) DO UPDATE SET \
                     message = excluded.message, stored_at = excluded.stored_at",
                    values(n, "$1, $2", 4, 3)
                ),
                [device_id, stored_at],
                |q, r| q.bind(r.chat).bind(r.sender).bind(r.id).bind(r.message)
            );
        });
        Ok(())
    }

    pub async fn wa_pending_inbound(
        &self,
        device_id: i64,
        chat: &str,
        sender: &str,
        id: &str,
    ) -> DbResult<Option<Vec<u8>>> {
        Ok(reader!(self, |p| sqlx::query_scalar(
            "SELECT message FROM wa_pending_inbound \
             WHERE device_id = $1 AND chat = $2 AND sender = $3 AND message_id = $4"
        )
        .bind(device_id)
        .bind(chat)
        .bind(sender)
        .bind(id)
        .fetch_optional(p)
        .await)?)
    }

    /// Deletes buffered inbound messages by `(chat, sender, id)`, in one transaction.
    pub async fn wa_delete_pending_inbound(
        &self,
        device_id: i64,
        keys: &[(&str, &str, &str)],
    ) -> DbResult<()> {
        if keys.is_empty() {
            return Ok(());
        }
        session_write!(self, |tx| {
            exec_chunks!(
                tx,
                keys,
                3,
                |n| {
                    let mut sql = String::from("DELETE FROM wa_pending_inbound WHERE device_id = $1 AND (");
                    for i in 0..n {
                        let k = 2 + 3 * i;
                        let or = if i > 0 { " OR " } else { "" };
                        let _ = write!(
                            sql,
                            "{or}(chat = ${k} AND sender = ${} AND message_id = ${})",
                            k + 1,
                            k + 2
                        );
                    }
                    sql.push(')');
                    sql
                },
                [device_id],
                |q, (chat, sender, id)| q.bind(*chat).bind(*sender).bind(*id)
            );
        });
        Ok(())
    }

    /// Deletes buffered inbound messages stored before `cutoff` (Unix seconds).
    pub async fn wa_delete_pending_inbound_before(&self, device_id: i64, cutoff: i64) -> DbResult<u64> {
        Ok(session_write!(self, |tx| sqlx::query(
            "DELETE FROM wa_pending_inbound WHERE device_id = $1 AND stored_at < $2"
        )
        .bind(device_id)
        .bind(cutoff)
        .execute(&mut *tx)
        .await?
        .rows_affected()))
    }

    /// Stores message secrets in one transaction. A key already stored, or named twice,
    /// takes the new secret, the merged expiry (0 = never wins, else the later) and the
    /// later parent time.
    pub async fn wa_put_msg_secrets(&self, device_id: i64, rows: &[WaMsgSecret<'_>]) -> DbResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut merged: Vec<WaMsgSecret<'_>> = Vec::with_capacity(rows.len());
        let mut index: HashMap<(&str, &str, &str), usize> = HashMap::with_capacity(rows.len());
        for row in rows {
            match index.get(&(row.chat, row.sender, row.msg_id)) {
                Some(&i) => {
                    let kept = &mut merged[i];
                    kept.secret = row.secret;
                    kept.expires_at = merge_expiry(kept.expires_at, row.expires_at);
                    kept.message_ts = kept.message_ts.max(row.message_ts);
                }
                None => {
                    index.insert((row.chat, row.sender, row.msg_id), merged.len());
                    merged.push(*row);
                }
            }
        }
        session_write!(self, |tx| {
            exec_chunks!(
                tx,
                merged,
                6,
                |n| format!(
                    "INSERT INTO wa_msg_secrets \
                     (device_id, chat, sender, message_id, secret, expires_at, message_ts) VALUES {} \
                     ON CONFLICT (device_id, chat, sender, message_id) DO UPDATE SET \
                     secret = excluded.secret, expires_at = {MERGE_EXPIRY_SQL}, \
                     message_ts = CASE WHEN excluded.message_ts > wa_msg_secrets.message_ts \
                     THEN excluded.message_ts ELSE wa_msg_secrets.message_ts END",
                    values(n, "$1", 6, 2)
                ),
                [device_id],
                |q, r| q
                    .bind(r.chat)
                    .bind(r.sender)
                    .bind(r.msg_id)
                    .bind(r.secret)
                    .bind(r.expires_at)
                    .bind(r.message_ts)
            );
        });
        Ok(())
    }

    /// The secret and parent message time stored for `(chat, sender, msg_id)`.
    pub async fn wa_msg_secret(
        &self,
        device_id: i64,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> DbResult<Option<(Vec<u8>, i64)>> {
        Ok(reader!(self, |p| sqlx::query_as(
            "SELECT secret, message_ts FROM wa_msg_secrets \
             WHERE device_id = $1 AND chat = $2 AND sender = $3 AND message_id = $4"
        )
        .bind(device_id)
        .bind(chat)
        .bind(sender)
        .bind(msg_id)
        .fetch_optional(p)
        .await)?)
    }

    /// Deletes secrets whose deadline is set and at or before `cutoff` (Unix seconds).
    pub async fn wa_delete_expired_msg_secrets(&self, device_id: i64, cutoff: i64) -> DbResult<u64> {
        Ok(session_write!(self, |tx| sqlx::query(
            "DELETE FROM wa_msg_secrets WHERE device_id = $1 AND expires_at <> 0 AND expires_at <= $2"
        )
        .bind(device_id)
        .bind(cutoff)
        .execute(&mut *tx)
        .await?
        .rows_affected()))
    }
}

#[cfg(test)]
mod tests {
    use super::merge_expiry;

    #[test]
    fn never_expiring_wins_and_deadlines_only_grow() {
        assert_eq!(merge_expiry(0, 50), 0);
        assert_eq!(merge_expiry(50, 0), 0);
        assert_eq!(merge_expiry(50, 40), 50);
        assert_eq!(merge_expiry(40, 50), 50);
    }
}
