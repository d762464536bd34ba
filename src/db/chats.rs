//! Conversations (`chats`): one row per device and chat, written in the same transaction as
//! each stored message (`upsert_chat`), so the chat list is a page of an index, not a grouping
//! of the history. Every query names the tenant.

use sqlx::Row as _;

use super::{reader, writer, Db, DbResult, Dialect};

/// One conversation of a device.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ChatRow {
    pub device_id: i64,
    /// The contact's JID, or the group's.
    pub chat: String,
    pub is_group: bool,
    pub last_message_id: i64,
    pub last_at: i64,
    /// Inbound messages after the last read mark.
    pub unread: i64,
    /// The group's subject when cached, else the name the account saved the contact under,
    /// else the contact's WhatsApp name.
    pub name: Option<String>,
    pub archived: bool,
    pub pinned: bool,
    /// Muted until then (milliseconds; [`MUTED_FOREVER`]: no end); `None`: not muted.
    pub muted_until: Option<i64>,
}

/// `muted_until` of a chat muted with no end.
pub const MUTED_FOREVER: i64 = i64::MAX;

impl ChatRow {
    /// Whether the chat is muted at `now` (milliseconds).
    pub fn muted_at(&self, now: i64) -> bool {
        self.muted_until.is_some_and(|until| until > now)
    }
}

/// One change the phone made to a chat's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatStateChange {
    Archived(bool),
    Pinned(bool),
    /// Muted until then (milliseconds, [`MUTED_FOREVER`] for no end), or unmuted (`None`).
    MutedUntil(Option<i64>),
}

/// Filters of the chat list.
#[derive(Debug, Clone, Default)]
pub struct ChatFilter {
    pub device_id: Option<i64>,
    /// Only chats of these devices (those of an API key limited to some devices).
    pub devices: Option<Vec<i64>>,
    /// Part of the chat id or the name, any case.
    pub q: Option<String>,
    /// Only chats with unread messages.
    pub unread: bool,
    /// Only archived chats (`true`) or only the others (`false`).
    pub archived: Option<bool>,
    /// Only pinned chats (`true`) or only the others (`false`).
    pub pinned: Option<bool>,
    /// Only chats muted now (`true`) or only the others (`false`).
    pub muted: Option<bool>,
}

/// Unread inbound messages a read mark covers: their WhatsApp id, sender and whether in a group.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UnreadRow {
    pub wa_id: Option<String>,
    pub sender: String,
    pub is_group: bool,
}

/// The chats with their names: a group's subject, a contact's saved name or WhatsApp name.
const FROM_NAMED: &str = "chats c LEFT JOIN device_groups g ON g.device_id = c.device_id AND g.jid = c.chat \
     LEFT JOIN contact_profiles p ON p.device_id = c.device_id AND p.jid = c.chat";

const COLUMNS: &str = "SELECT c.device_id, c.chat, c.is_group, c.last_message_id, c.last_at, \
     CAST(c.unread AS BIGINT) AS unread, COALESCE(g.subject, p.saved_name, c.name) AS name, c.archived, c.pinned, \
     c.muted_until";

/// Makes a stored message its chat's latest and counts it unread when it came in (run in the
/// message's insert transaction). Binds: device, chat, tenant, is_group, message id, time,
/// unread increment (1 or 0), the contact's name (direct chats, inbound).
pub(crate) const UPSERT_CHAT: &str =
    "INSERT INTO chats (device_id, chat, user_id, is_group, last_message_id, last_at, unread, read_upto, name) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8) \
     ON CONFLICT (device_id, chat) DO UPDATE SET last_message_id = excluded.last_message_id, \
     last_at = excluded.last_at, unread = chats.unread + excluded.unread, name = COALESCE(excluded.name, chats.name)";

/// Folds the chat named by a LID into the chat of its number (binds: device, LID JID, number's
/// JID), after its messages moved there: first the LID's row takes the number's name when the
/// number has no row, else the two rows add up (the later message stays the latest) and each
/// part of the state (archived, pinned, muted) is the one the phone changed last.
pub(crate) fn merge_chat_sql(dialect: Dialect) -> [String; 3] {
    let greatest = match dialect {
        Dialect::Postgres => "GREATEST",
        Dialect::Sqlite => "MAX",
    };
    let of_lid_row =
        |col: &str| format!("(SELECT l.{col} FROM chats l WHERE l.device_id = $1 AND l.chat = $2)");
    let of_lid = |col: &str| format!("COALESCE({}, 0)", of_lid_row(col));
    [
        "UPDATE chats SET chat = $3 WHERE device_id = $1 AND chat = $2 \
         AND NOT EXISTS (SELECT 1 FROM chats n WHERE n.device_id = $1 AND n.chat = $3)"
            .to_string(),
        format!(
            "UPDATE chats SET unread = unread + {}, last_message_id = {greatest}(last_message_id, {}), \
             last_at = {greatest}(last_at, {}), {} WHERE device_id = $1 AND chat = $3",
            of_lid("unread"),
            of_lid("last_message_id"),
            of_lid("last_at"),
            [("archived", "archived_at"), ("pinned", "pinned_at"), ("muted_until", "muted_at")]
                .map(|(col, at)| {
                    let newer = format!("COALESCE({}, -1) > COALESCE({at}, -1)", of_lid_row(at));
                    format!(
                        "{col} = CASE WHEN {newer} THEN {} ELSE {col} END, \
                         {at} = CASE WHEN {newer} THEN {} ELSE {at} END",
                        of_lid_row(col),
                        of_lid_row(at)
                    )
                })
                .join(", ")
        ),
        "DELETE FROM chats WHERE device_id = $1 AND chat = $2".to_string(),
    ]
}

impl Db {
    /// A page of the tenant's chats, the latest message first, with the total.
    pub async fn list_chats(
        &self,
        tenant: i64,
        f: &ChatFilter,
        limit: i64,
        offset: i64,
    ) -> DbResult<(Vec<ChatRow>, i64)> {
        // Only the filters given, so the planner sees plain equalities and walks the index
        // ending in the sort order.
        let q = f.q.as_deref().map(|q| format!("%{}%", q.to_lowercase().replace(['%', '_'], "")));
        // A row without a message (only its state is known yet) is not listed.
        let mut cond = String::from("WHERE c.user_id = $1 AND c.last_message_id > 0");
        let mut n = 1;
        if f.device_id.is_some() {
            n += 1;
            cond.push_str(&format!(" AND c.device_id = ${n}"));
        }
        cond.push_str(&super::device_scope("c.device_id", f.devices.as_deref(), false));
        if q.is_some() {
            n += 1;
            cond.push_str(&format!(
                " AND (LOWER(c.chat) LIKE ${n} OR LOWER(COALESCE(g.subject, c.name, '')) LIKE ${n} \
                 OR LOWER(COALESCE(p.saved_name, '')) LIKE ${n})"
            ));
        }
        if f.unread {
            cond.push_str(" AND c.unread > 0");
        }
        for (col, wanted) in [("archived", f.archived), ("pinned", f.pinned)] {
            if let Some(wanted) = wanted {
                // Literal, so SQLite (integers) and PostgreSQL (booleans) both compare it.
                cond.push_str(&format!(" AND c.{col} = {}", if wanted { "TRUE" } else { "FALSE" }));
            }
        }
        if let Some(wanted) = f.muted {
            // Muted now: an end still ahead (a chat muted with no end has the farthest one).
            let now = super::now_ms();
            cond.push_str(&if wanted {
                format!(" AND c.muted_until > {now}")
            } else {
                format!(" AND (c.muted_until IS NULL OR c.muted_until <= {now})")
            });
        }
        let sql = format!(
            "{COLUMNS} FROM {FROM_NAMED} {cond} ORDER BY c.last_message_id DESC LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        );
        // The name joins only matter to a search by name; without one the count reads the
        // chats alone.
        let from = if q.is_some() { FROM_NAMED } else { "chats c" };
        let count = format!("SELECT COUNT(*) FROM {from} {cond}");
        let (rows, total): (Vec<ChatRow>, i64) = reader!(self, |p| {
            let mut page = sqlx::query_as(&sql).bind(tenant);
            let mut counted = sqlx::query_scalar(&count).bind(tenant);
            if let Some(d) = f.device_id {
                page = page.bind(d);
                counted = counted.bind(d);
            }
            if let Some(q) = &q {
                page = page.bind(q.clone());
                counted = counted.bind(q.clone());
            }
            let rows = page.bind(limit).bind(offset).fetch_all(p).await?;
            let total = counted.fetch_one(p).await?;
            Ok::<_, sqlx::Error>((rows, total))
        })?;
        Ok((rows, total))
    }

    /// One chat of the tenant's device.
    pub async fn chat(&self, tenant: i64, device_id: i64, chat: &str) -> DbResult<Option<ChatRow>> {
        let sql =
            format!("{COLUMNS} FROM {FROM_NAMED} WHERE c.user_id = $1 AND c.device_id = $2 AND c.chat = $3");
        Ok(reader!(self, |p| sqlx::query_as(&sql)
            .bind(tenant)
            .bind(device_id)
            .bind(chat)
            .fetch_optional(p)
            .await)?)
    }

    /// Marks the chat read up to its latest message; answers the inbound messages that were
    /// unread (the newest `limit`), for read receipts. `None` when the tenant has no such chat.
    pub async fn read_chat(
        &self,
        tenant: i64,
        device_id: i64,
        chat: &str,
        limit: i64,
    ) -> DbResult<Option<Vec<UnreadRow>>> {
        Ok(writer!(self, |p| {
            let mut tx = p.begin().await?;
            let row = sqlx::query("SELECT last_message_id, read_upto FROM chats WHERE user_id = $1 AND device_id = $2 AND chat = $3")
                .bind(tenant)
                .bind(device_id)
                .bind(chat)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                tx.rollback().await?;
                return Ok(None);
            };
            let (last, upto): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
            let unread: Vec<UnreadRow> = sqlx::query_as(
                "SELECT wa_id, sender, is_group FROM messages WHERE device_id = $1 AND chat = $2 AND id > $3 \
                 AND id <= $4 AND direction = 'in' AND user_id = $5 ORDER BY id DESC LIMIT $6",
            )
            .bind(device_id)
            .bind(chat)
            .bind(upto)
            .bind(last)
            .bind(tenant)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE chats SET unread = 0, read_upto = last_message_id WHERE device_id = $1 AND chat = $2",
            )
            .bind(device_id)
            .bind(chat)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(Some(unread))
        })?)
    }

    /// Stores a change the phone made to a chat's state (`at`: when, milliseconds). A chat
    /// without a stored message gets an empty row, which the first message then fills.
    pub async fn set_chat_state(
        &self,
        tenant: i64,
        device_id: i64,
        chat: &str,
        change: ChatStateChange,
        at: i64,
    ) -> DbResult<()> {
        let (col, col_at, archived, pinned, muted_until) = match change {
            ChatStateChange::Archived(a) => ("archived", "archived_at", a, false, None),
            ChatStateChange::Pinned(p) => ("pinned", "pinned_at", false, p, None),
            ChatStateChange::MutedUntil(until) => ("muted_until", "muted_at", false, false, until),
        };
        let is_group = chat.ends_with("@g.us");
        let sql = format!(
            "INSERT INTO chats (device_id, chat, user_id, is_group, last_message_id, last_at, unread, read_upto, \
             archived, pinned, muted_until, {col_at}) \
             SELECT $2, $3, $1, $4, 0, 0, 0, 0, $5, $6, $7, $8 WHERE EXISTS (SELECT 1 FROM devices WHERE id = $2 AND user_id = $1) \
             ON CONFLICT (device_id, chat) DO UPDATE SET {col} = excluded.{col}, {col_at} = excluded.{col_at}"
        );
        writer!(self, |p| sqlx::query(&sql)
            .bind(tenant)
            .bind(device_id)
            .bind(chat)
            .bind(is_group)
            .bind(archived)
            .bind(pinned)
            .bind(muted_until)
            .bind(at)
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// The tenant's messages with these ids (any order).
    pub async fn messages_by_ids(&self, tenant: i64, ids: &[i64]) -> DbResult<Vec<super::MessageRow>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        let sql = format!(
            // `+` keeps SQLite from walking the tenant's whole history by `user_id` instead of
            // looking the ids up.
            "{} {} WHERE m.id IN ({list}) AND +m.user_id = $1",
            super::messages::COLUMNS,
            super::messages::FROM_MESSAGES
        );
        Ok(reader!(self, |p| sqlx::query_as(&sql).bind(tenant).fetch_all(p).await)?)
    }
}
