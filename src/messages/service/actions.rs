//! What a tenant does to a message already there: react to it, edit or delete one it sent,
//! mark one it received read, forward it; and what its device shows (typing, online).
//!
//! Each action goes to WhatsApp at once through the device's session (it is not queued: an
//! action on a message is only worth doing now, and repeating one is harmless), and is then
//! recorded on the message, where the history shows it and the webhook pump reports it.

use std::time::Duration;

use serde_json::json;

use super::{invalid, MessageService, Queued, SendCommon};
use crate::content::{check_emoji, Details};
use crate::db::messages::MessageRef;
use crate::db::{Db, MessageRow};
use crate::devices::driver::{
    Content, DriverError, MediaKind, MessageKey, OutboundMedia, Outgoing, PresenceState, Session,
};
use crate::devices::find_device;
use crate::error::{ApiError, ApiResult};
use crate::messages::check_text;
use crate::messages::outbound::SendError;
use crate::messages::view::{CHANGE_EDITED, CHANGE_REACTION, CHANGE_READ_MARK, CHANGE_REVOKED};
use crate::phone::user_jid;
use crate::tenants::Tenant;
use crate::time::rfc3339_ms;

/// How long after sending a text WhatsApp lets its author edit it.
pub const EDIT_WINDOW: Duration = Duration::from_secs(15 * 60);
/// How long after sending WhatsApp lets its author delete a message for everyone.
pub const REVOKE_WINDOW: Duration = Duration::from_secs(48 * 3600);

/// WhatsApp's key of a stored message; refused while it has no WhatsApp id.
fn key_of(row: &MessageRow) -> ApiResult<MessageKey> {
    let Some(wa_id) = row.wa_id.clone() else {
        return Err(ApiError::Conflict("the message has not reached WhatsApp yet".into()));
    };
    let from_me = row.direction == "out";
    Ok(MessageKey {
        chat: row.chat.clone(),
        wa_id,
        from_me,
        participant: (row.is_group && !from_me).then(|| user_jid(&row.sender)),
    })
}

/// Sends an action message (reaction, edit, deletion) under a fresh WhatsApp id.
async fn act(session: &dyn Session, chat: &str, content: Content) -> ApiResult<()> {
    let id = session.new_message_id();
    session.send(&chat.to_string(), &Outgoing::new(content), &id).await.map_err(driver_error)
}

/// Records a change on a stored message; returns the message as it is now.
async fn record(
    db: &Db,
    row: &MessageRow,
    status: &'static str,
    change: impl FnOnce(&MessageRow, &mut Option<String>, &mut Details) -> Option<serde_json::Value> + Send,
) -> ApiResult<MessageRow> {
    let target = MessageRef::Id { tenant: row.user_id, id: row.id };
    let changed = db.change_message(target, status, change).await?;
    Ok(changed.ok_or_else(|| ApiError::not_found("message"))?.0)
}

/// Reacts to a stored message from this device (an empty emoji takes the reaction back) and
/// records it. The API and the inbound pipeline both react through here.
pub(crate) async fn react(
    db: &Db,
    session: &dyn Session,
    row: &MessageRow,
    emoji: &str,
) -> ApiResult<MessageRow> {
    check_emoji(emoji).map_err(invalid)?;
    let key = key_of(row)?;
    if row.details().revoked_at.is_some() {
        return Err(ApiError::validation("id", "the message was deleted"));
    }
    act(session, &row.chat, Content::Reaction { target: key, emoji: emoji.to_string() }).await?;
    let at = rfc3339_ms(crate::db::now_ms());
    let emoji = emoji.to_string();
    record(db, row, CHANGE_REACTION, move |_, _, d| {
        d.react("me", &emoji, &at).then(|| json!({"from": "me", "emoji": emoji}))
    })
    .await
}

/// Marks a received message read (blue ticks for its sender) and records when.
pub(crate) async fn mark_read(db: &Db, session: &dyn Session, row: &MessageRow) -> ApiResult<MessageRow> {
    if row.direction != "in" {
        return Err(ApiError::validation("id", "only received messages can be marked read"));
    }
    let key = key_of(row)?;
    session
        .mark_read(&row.chat, key.participant.as_ref(), std::slice::from_ref(&key.wa_id))
        .await
        .map_err(driver_error)?;
    let at = rfc3339_ms(crate::db::now_ms());
    record(db, row, CHANGE_READ_MARK, move |_, _, d| {
        d.read_at.is_none().then(|| {
            d.read_at = Some(at);
            serde_json::Value::Null
        })
    })
    .await
}

impl MessageService {
    /// The tenant's message `id`, the live session of its device and its WhatsApp key.
    async fn target(
        &self,
        tenant: &Tenant,
        id: i64,
    ) -> ApiResult<(MessageRow, std::sync::Arc<dyn Session>, MessageKey)> {
        let row = self.own_message(tenant, id).await?.ok_or_else(|| ApiError::not_found("message"))?;
        let key = key_of(&row)?;
        let session =
            self.device_manager.session(row.device_id).await.ok_or(SendError::DeviceNotConnected)?;
        Ok((row, session, key))
    }

    /// Records the tenant's action in its activity log, tells live views the message changed,
    /// and passes the message on.
    async fn done(&self, tenant: &Tenant, action: &str, row: MessageRow) -> ApiResult<MessageRow> {
        self.outbound.feed().content_changed(tenant.id, row.id);
        self.tenants.record(tenant.activity(action, format!("message:{}", row.id))).await;
        Ok(row)
    }

    /// Reacts to a message with one emoji; an empty emoji takes this device's reaction back.
    pub async fn react(&self, tenant: &Tenant, id: i64, emoji: &str) -> ApiResult<MessageRow> {
        check_emoji(emoji).map_err(invalid)?;
        let (row, session, _) = self.target(tenant, id).await?;
        let row = react(&self.db, &*session, &row, emoji).await?;
        self.done(tenant, "message.react", row).await
    }

    /// Edits the text of a text message this device sent, within WhatsApp's edit window.
    pub async fn edit(&self, tenant: &Tenant, id: i64, text: &str) -> ApiResult<MessageRow> {
        check_text(text)?;
        let (row, session, key) = self.target(tenant, id).await?;
        own_and_recent(&row, EDIT_WINDOW, "edited")?;
        if row.kind != "text" {
            return Err(ApiError::validation("id", "only text messages can be edited"));
        }
        if row.text.as_deref() == Some(text) {
            return Ok(row);
        }
        act(&*session, &row.chat, Content::Edit { target: key, text: text.to_string() }).await?;
        let at = rfc3339_ms(crate::db::now_ms());
        let text = text.to_string();
        let row = record(&self.db, &row, CHANGE_EDITED, move |_, t, d| {
            let previous = t.replace(text.clone());
            d.previous_texts.extend(previous.clone());
            d.edited_at = Some(at);
            Some(json!({"from": "me", "text": text, "previous": previous}))
        })
        .await?;
        self.done(tenant, "message.edit", row).await
    }

    /// Deletes a message this device sent, for everyone, within WhatsApp's window.
    pub async fn revoke(&self, tenant: &Tenant, id: i64) -> ApiResult<MessageRow> {
        let (row, session, key) = self.target(tenant, id).await?;
        own_and_recent(&row, REVOKE_WINDOW, "deleted")?;
        if row.details().revoked_at.is_some() {
            return Ok(row);
        }
        act(&*session, &row.chat, Content::Revoke { target: key }).await?;
        let at = rfc3339_ms(crate::db::now_ms());
        let row = record(&self.db, &row, CHANGE_REVOKED, move |_, _, d| {
            d.revoked_at.is_none().then(|| {
                d.revoked_at = Some(at);
                json!({"from": "me"})
            })
        })
        .await?;
        self.done(tenant, "message.delete", row).await
    }

    /// Marks the chat read up to this inbound message (blue ticks for the sender).
    pub async fn mark_read(&self, tenant: &Tenant, id: i64) -> ApiResult<MessageRow> {
        let (row, session, _) = self.target(tenant, id).await?;
        let row = mark_read(&self.db, &*session, &row).await?;
        self.done(tenant, "message.read", row).await
    }

    /// Sends the content of a message again, to `to` (through `device`, or the message's
    /// own device), as a new message marked forwarded. Media is forwarded while the media store
    /// keeps its bytes.
    pub async fn forward(&self, tenant: &Tenant, id: i64, common: SendCommon) -> ApiResult<MessageRow> {
        let row = self.own_message(tenant, id).await?.ok_or_else(|| ApiError::not_found("message"))?;
        let d = row.details();
        if d.revoked_at.is_some() {
            return Err(ApiError::validation("id", "the message was deleted"));
        }
        // No device named: the message's own.
        let device = match common.device.as_str() {
            "" => row.device_id.to_string(),
            named => named.to_string(),
        };
        let common = SendCommon { device, reply_to: None, ..common };
        let mut q: Queued = match self.prepare(tenant, &common).await? {
            Ok(q) => q,
            Err(first) => return Ok(first),
        };
        q.details.forwarded = true;
        if let Some(meta) = row.media_meta() {
            // Media goes again from the bytes the media store keeps.
            let kept =
                self.keeper.bytes(&row).await.map_err(|e| ApiError::validation("id", e.to_string()))?;
            let kind = MediaKind::parse(&meta.kind).unwrap_or(MediaKind::Document);
            let media = OutboundMedia {
                kind,
                bytes: std::sync::Arc::new(kept.bytes),
                mime: kept.mime,
                filename: kept.filename,
                caption: meta.caption.clone(),
            };
            return self.queue(tenant, q, meta.caption, Some(media), "message.forward").await;
        }
        q.details.location = d.location;
        q.details.contacts = d.contacts;
        q.details.poll = d.poll;
        if q.details.location.is_none() && q.details.contacts.is_empty() && q.details.poll.is_none() {
            match row.text.as_deref() {
                Some(t) if !t.trim().is_empty() => {}
                _ => return Err(ApiError::validation("id", "the message has nothing to forward")),
            }
        }
        self.queue(tenant, q, row.text.clone(), None, "message.forward").await
    }

    /// Shows `state` from the device: in `chat` (typing, recording, paused) or to everyone
    /// (available, unavailable).
    pub async fn presence(
        &self,
        tenant: &Tenant,
        device: &str,
        chat: Option<&str>,
        state: PresenceState,
    ) -> ApiResult<()> {
        let device = find_device(&self.db, &self.country_code, tenant, device).await?;
        let chat = match chat.filter(|c| !c.trim().is_empty()) {
            Some(c) => Some(self.recipient(c, "chat")?.jid()),
            None if state.in_chat() => {
                return Err(ApiError::validation("chat", format!("is required for `{}`", state.as_str())))
            }
            None => None,
        };
        let session = self.device_manager.session(device.id).await.ok_or(SendError::DeviceNotConnected)?;
        session.presence(chat.as_ref(), state).await.map_err(driver_error)?;
        self.tenants.record(tenant.activity("device.presence", format!("device:{}", device.id))).await;
        Ok(())
    }
}

/// Refuses a message this device did not send, or one sent longer than `window` ago.
fn own_and_recent(row: &MessageRow, window: Duration, done: &str) -> ApiResult<()> {
    if row.direction != "out" {
        return Err(ApiError::validation("id", format!("only messages this device sent can be {done}")));
    }
    let age = crate::db::now_ms().saturating_sub(row.created_at);
    if age > window.as_millis() as i64 {
        return Err(ApiError::validation(
            "id",
            format!("WhatsApp allows this only within {} minutes of sending", window.as_secs() / 60),
        ));
    }
    Ok(())
}

/// A driver's refusal as the API's error.
fn driver_error(e: DriverError) -> ApiError {
    match e {
        DriverError::NotConnected => SendError::DeviceNotConnected.into(),
        DriverError::Invalid(m) => ApiError::validation("id", m),
        DriverError::NotFound(m) => ApiError::NotFound(m),
        DriverError::Forbidden(m) => ApiError::Forbidden(m),
        DriverError::Failed(m) => ApiError::Unavailable(format!("WhatsApp did not take it: {m}")),
    }
}
