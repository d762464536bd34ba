//! Conversations: the chat list (one row per device and chat, the latest message first, with
//! its last message and unread count) and marking a chat read (read receipts to WhatsApp for
//! the unread messages when the device is connected).

use super::MessageService;
use crate::db::chats::{ChatFilter, ChatRow};
use crate::db::MessageRow;
use crate::devices::find_device;
use crate::error::{ApiError, ApiResult};
use crate::phone::{user_jid, ChatAddress};
use crate::tenants::Tenant;

/// Read receipts sent per read mark, at most (the newest unread messages).
const MAX_RECEIPTS: i64 = 500;

/// A conversation with its latest message (absent when that message was deleted since).
#[derive(Debug, Clone)]
pub struct Chat {
    pub row: ChatRow,
    pub last: Option<MessageRow>,
}

/// Which chats a list shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChatsWanted<'a> {
    /// One device (id or phone number); all the tenant's when `None`.
    pub device: Option<&'a str>,
    /// Part of the chat id, number or name.
    pub q: Option<&'a str>,
    /// Only chats with unread messages.
    pub unread: bool,
    /// Only archived chats, or only the others; both when `None`.
    pub archived: Option<bool>,
    /// Only pinned chats, or only the others; both when `None`.
    pub pinned: Option<bool>,
    /// Only chats muted now, or only the others; both when `None`.
    pub muted: Option<bool>,
}

/// What a read mark did.
#[derive(Debug, Clone)]
pub struct ChatRead {
    pub chat: Chat,
    /// Unread messages marked read.
    pub marked: usize,
    /// Whether WhatsApp was told (blue ticks); false while the device is offline.
    pub receipts_sent: bool,
}

impl MessageService {
    /// A chat id as the chat list stores it, from a number as people write it, a JID, a group
    /// id or a LID.
    pub fn chat_id(&self, input: &str) -> ApiResult<String> {
        ChatAddress::parse(input, &self.country_code)
            .map(|c| c.jid())
            .map_err(|e| ApiError::validation("chat", e.to_string()))
    }

    /// A page of the tenant's chats that match `wanted`, the latest message first, with the
    /// total.
    pub async fn chats_where(
        &self,
        tenant: &Tenant,
        wanted: &ChatsWanted<'_>,
        limit: i64,
        offset: i64,
    ) -> ApiResult<(Vec<Chat>, i64)> {
        let device_id = match wanted.device {
            Some(d) => Some(find_device(&self.db, &self.country_code, tenant, d).await?.id),
            None => None,
        };
        let q = crate::content::search_text(wanted.q).map_err(|e| ApiError::validation("q", e))?;
        let filter = ChatFilter {
            device_id,
            devices: tenant.devices.ids().map(<[i64]>::to_vec),
            q: q.map(str::to_string),
            unread: wanted.unread,
            archived: wanted.archived,
            pinned: wanted.pinned,
            muted: wanted.muted,
        };
        let (rows, total) = self.db.list_chats(tenant.id, &filter, limit, offset).await?;
        let ids: Vec<i64> = rows.iter().map(|r| r.last_message_id).collect();
        let mut last = self.db.messages_by_ids(tenant.id, &ids).await?;
        let chats = rows
            .into_iter()
            .map(|row| {
                let found =
                    last.iter().position(|m| m.id == row.last_message_id).map(|i| last.swap_remove(i));
                Chat { row, last: found }
            })
            .collect();
        Ok((chats, total))
    }

    /// Marks a chat of the device read: its unread count clears and, when the device is
    /// connected, WhatsApp gets read receipts for the unread messages.
    pub async fn read_chat(&self, tenant: &Tenant, device: &str, chat: &str) -> ApiResult<ChatRead> {
        let device = find_device(&self.db, &self.country_code, tenant, device).await?;
        let chat = self.chat_id(chat)?;
        let unread = self
            .db
            .read_chat(tenant.id, device.id, &chat, MAX_RECEIPTS)
            .await?
            .ok_or_else(|| ApiError::not_found("chat"))?;
        let session = self.device_manager.session(device.id).await;
        let mut receipts_sent = false;
        if let (Some(session), false) = (&session, unread.is_empty()) {
            // One receipt per sender (a group's messages come from several members).
            let mut by_sender: Vec<(Option<String>, Vec<String>)> = Vec::new();
            for u in &unread {
                let Some(wa_id) = u.wa_id.clone() else { continue };
                let sender = u.is_group.then(|| user_jid(&u.sender));
                match by_sender.iter_mut().find(|(s, _)| *s == sender) {
                    Some((_, ids)) => ids.push(wa_id),
                    None => by_sender.push((sender, vec![wa_id])),
                }
            }
            receipts_sent = true;
            for (sender, ids) in by_sender {
                if let Err(e) = session.mark_read(&chat, sender.as_ref(), &ids).await {
                    tracing::warn!(device_id = device.id, error = %e, "could not send read receipts");
                    receipts_sent = false;
                }
            }
        }
        let row =
            self.db.chat(tenant.id, device.id, &chat).await?.ok_or_else(|| ApiError::not_found("chat"))?;
        let last = self.db.messages_by_ids(tenant.id, &[row.last_message_id]).await?.pop();
        Ok(ChatRead { chat: Chat { row, last }, marked: unread.len(), receipts_sent })
    }
}
