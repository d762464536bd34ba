//! Where the media bytes of messages are: which downloads are pending, recording where the
//! bytes went (or why they could not be had), and what the retention sweeper deletes.

use super::super::{now_ms, reader, writer, Db, DbResult};

impl Db {
    /// Records the media state of a message, with its media details as JSON.
    pub async fn set_media_state(&self, id: i64, state: &str, media: &str) -> DbResult<()> {
        writer!(self, |p| sqlx::query(
            "UPDATE messages SET media_state = $2, media = $3, updated_at = $4 WHERE id = $1"
        )
        .bind(id)
        .bind(state)
        .bind(media)
        .bind(now_ms())
        .execute(p)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Messages whose media is still to be downloaded, oldest first: (tenant, id).
    pub async fn pending_media(&self, limit: i64) -> DbResult<Vec<(i64, i64)>> {
        Ok(reader!(self, |p| sqlx::query_as(
            "SELECT user_id, id FROM messages WHERE media_state = 'pending' ORDER BY created_at, id LIMIT $1"
        )
        .bind(limit)
        .fetch_all(p)
        .await)?)
    }
}

impl Db {
    /// A message by id whatever its tenant: for signed media links, whose signature names the
    /// message and stands in for the tenant's key.
    pub async fn message_any_tenant(&self, id: i64) -> DbResult<Option<super::MessageRow>> {
        let sql = format!("{} {} WHERE m.id = $1", super::COLUMNS, super::FROM_MESSAGES);
        Ok(reader!(self, |p| sqlx::query_as(&sql).bind(id).fetch_optional(p).await)?)
    }
}
