//! Conversations: the chat list and marking a chat read.

use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{page, ApiQuery, Page, PageQuery, Tenant};
use super::messages::{message_out, MessageOut};
use super::ts;
use crate::db::chats::MUTED_FOREVER;
use crate::error::ApiResult;
use crate::messages::service::chats::{Chat, ChatsWanted};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_chats)).routes(routes!(read_chat))
}

/// One conversation of a device.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ChatOut {
    pub device_id: i64,
    /// The contact's JID (`…@s.whatsapp.net`, or `…@lid` while its number is unknown) or the
    /// group's (`…@g.us`).
    pub chat: String,
    /// The contact's number (digits) in a direct chat.
    pub phone: Option<String>,
    pub is_group: bool,
    /// The group's subject; for a contact the name the account saved it under, else its
    /// WhatsApp name.
    pub name: Option<String>,
    /// Inbound messages since the chat was last marked read.
    pub unread: i64,
    /// When the latest message was stored (RFC 3339).
    pub last_at: String,
    /// The latest message (null if it was deleted since).
    pub last_message: Option<MessageOut>,
    /// Archived on the account's phone (or another linked device), as WhatsApp syncs it.
    pub archived: bool,
    /// Muted now, as WhatsApp syncs it.
    pub muted: bool,
    /// Until when the chat is muted (RFC 3339); null when it is not muted or muted with no end.
    pub muted_until: Option<String>,
    /// Pinned on the account's phone, as WhatsApp syncs it.
    pub pinned: bool,
}

fn chat_out(state: &AppState, c: Chat) -> ChatOut {
    let r = c.row;
    let muted = r.muted_at(crate::db::now_ms());
    let muted_until = r.muted_until.filter(|&until| muted && until != MUTED_FOREVER).map(ts);
    let phone = (!r.is_group).then(|| r.chat.strip_suffix("@s.whatsapp.net").map(str::to_string)).flatten();
    ChatOut {
        device_id: r.device_id,
        phone,
        is_group: r.is_group,
        name: r.name,
        unread: r.unread,
        last_at: ts(r.last_at),
        last_message: c.last.map(|m| message_out(state, m)),
        archived: r.archived,
        muted,
        muted_until,
        pinned: r.pinned,
        chat: r.chat,
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChatsQuery {
    #[param(ignore)]
    pub limit: Option<i64>,
    #[param(ignore)]
    pub offset: Option<i64>,
    /// Device id or phone number; all the tenant's devices when left out.
    pub device: Option<String>,
    /// Part of the chat id, number, name or group subject (any case, up to 100 characters).
    pub q: Option<String>,
    /// Only chats with unread messages (`true`, `false`, `1`, `0`; empty: all).
    #[serde(default, deserialize_with = "flag")]
    pub unread: Option<bool>,
    /// `false`: hide archived chats (the main list, as the phone shows it); `true`: only the
    /// archived ones; left out: every chat, each with its `archived` flag.
    #[serde(default, deserialize_with = "flag")]
    pub archived: Option<bool>,
    /// `true`: only pinned chats; `false`: only the others; left out: every chat.
    #[serde(default, deserialize_with = "flag")]
    pub pinned: Option<bool>,
    /// `true`: only chats muted now; `false`: only the others; left out: every chat.
    #[serde(default, deserialize_with = "flag")]
    pub muted: Option<bool>,
}

/// A yes/no query flag; empty counts as not given.
pub(crate) fn flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    match Option::<String>::deserialize(d)?.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some("true" | "1") => Ok(Some(true)),
        Some("false" | "0") => Ok(Some(false)),
        Some(_) => Err(serde::de::Error::custom("must be true or false")),
    }
}

/// The tenant's conversations, the latest message first: per device and chat, its name, unread
/// count, latest message, and whether the phone archived, muted or pinned it. Archived chats
/// are listed too unless `archived=false`.
#[utoipa::path(get, path = "/api/user/chats", tag = "chats", params(PageQuery, ChatsQuery),
    responses((status = 200, body = Page<ChatOut>), (status = 404, description = "No such device."),
              (status = 422, description = "A filter is not valid.")))]
async fn list_chats(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiQuery(q): ApiQuery<ChatsQuery>,
) -> ApiResult<Json<Page<ChatOut>>> {
    let (limit, offset) = page(q.limit, q.offset)?;
    let wanted = ChatsWanted {
        device: q.device.as_deref(),
        q: q.q.as_deref(),
        unread: q.unread.unwrap_or(false),
        archived: q.archived,
        pinned: q.pinned,
        muted: q.muted,
    };
    let (chats, total) = state.messages.chats_where(&tenant, &wanted, limit, offset).await?;
    let data = chats.into_iter().map(|c| chat_out(&state, c)).collect();
    Ok(Json(Page { data, total, limit, offset }))
}

#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // Documents the path; read by `Path`.
struct ChatPath {
    #[param(schema_with = super::openapi::schemas::chat_text)]
    chat: String,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReadQuery {
    /// The device (id or phone number) whose chat this is.
    pub device: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ChatReadOut {
    #[serde(flatten)]
    pub chat: ChatOut,
    /// Unread messages marked read.
    pub marked: usize,
    /// Whether WhatsApp got read receipts (blue ticks); false while the device is offline.
    pub receipts_sent: bool,
}

/// Marks a chat read: its unread count clears and, when the device is connected, the sender
/// sees blue ticks on the unread messages.
#[utoipa::path(post, path = "/api/user/chats/{chat}/read", tag = "chats", params(ChatPath, ReadQuery),
    responses((status = 200, body = ChatReadOut), (status = 404, description = "No such device or chat."),
              (status = 422, description = "Not a chat id.")))]
async fn read_chat(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(chat): Path<String>,
    ApiQuery(q): ApiQuery<ReadQuery>,
) -> ApiResult<Json<ChatReadOut>> {
    let read = state.messages.read_chat(&tenant, &q.device, &chat).await?;
    Ok(Json(ChatReadOut {
        chat: chat_out(&state, read.chat),
        marked: read.marked,
        receipts_sent: read.receipts_sent,
    }))
}
