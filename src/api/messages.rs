//! Sending text and reading history: `send-message`, `chat-history`, its detail and CSV export.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{page, ApiJson, ApiQuery, Page, PageQuery, Tenant};
use super::ts;
use crate::db::{MessageFilter, MessageRow, StatusEventRow};
use crate::error::{ApiError, ApiResult};
use crate::messages::service::{HistorySearch, SendCommon, TextSend};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(send_message))
        .routes(routes!(list_chat_history))
        .routes(routes!(export_chat_history))
        .routes(routes!(get_chat_message))
}

/// Accepts a JSON string or a non-negative whole number (old clients send phone numbers as
/// numbers). A negative number is refused: read as text its `-` would pass for a separator.
pub fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum StrOrNum {
        S(String),
        U(u64),
        F(f64),
    }
    let refused = || serde::de::Error::custom("expected a string or a non-negative whole number");
    match StrOrNum::deserialize(d).map_err(|_| refused())? {
        StrOrNum::S(s) => Ok(s),
        StrOrNum::U(u) => Ok(u.to_string()),
        // 2^64 as f64 is exactly u64::MAX + 1, so `<` keeps the cast exact.
        StrOrNum::F(f) if f.fract() == 0.0 && f >= 0.0 && f < u64::MAX as f64 => Ok((f as u64).to_string()),
        StrOrNum::F(_) => Err(refused()),
    }
}

/// A float without a fraction (`5.0`) as an `i64`, when it is in range. JSON does not tell
/// `5.0` from `5`, and JSON Schema's `integer` admits both, so whole-number fields take either.
pub fn whole_number(f: f64) -> Option<i64> {
    // Both ends are open: i64::MAX as f64 rounds up to 2^63, and a float equal to -2^63 may be
    // a JSON integer below i64::MIN that rounded up to it (an in-range -2^63 arrives as an
    // integer, not a float).
    (f.fract() == 0.0 && f > i64::MIN as f64 && f < i64::MAX as f64).then_some(f as i64)
}

/// An optional whole number, written as a JSON integer or as a float without a fraction.
pub fn opt_whole_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Num {
        I(i64),
        F(f64),
    }
    let refused = || serde::de::Error::custom("expected a whole number");
    match Option::<Num>::deserialize(d).map_err(|_| refused())? {
        None => Ok(None),
        Some(Num::I(i)) => Ok(Some(i)),
        Some(Num::F(f)) => whole_number(f).map(Some).ok_or_else(refused),
    }
}

/// Like [`string_or_number`] for optional fields (`null` is `None`).
pub fn opt_string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    struct Wrap(#[serde(deserialize_with = "string_or_number")] String);
    Ok(Option::<Wrap>::deserialize(d)?.map(|Wrap(s)| s))
}

pub use crate::messages::view::MessageOut;

/// The message as the API shows it.
pub fn message_out(state: &AppState, r: MessageRow) -> MessageOut {
    MessageOut::of(&r).with_links(state.media_keeper.links())
}

/// The send body: the seed's `pengirim`/`nomor`/`pesan` or `device`/`to`/`text` (`from` too).
#[derive(Deserialize, utoipa::ToSchema)]
pub struct SendMessageIn {
    /// The sending device: id or phone number. Aliases `pengirim`, `from`, `sender`.
    #[serde(alias = "pengirim", alias = "from", alias = "sender", deserialize_with = "string_or_number")]
    #[schema(value_type = super::openapi::schemas::DeviceRef)]
    pub device: String,
    /// Recipient: a phone number in any common form, or a group id ending `@g.us`. Alias `nomor`.
    #[serde(alias = "nomor", alias = "number", deserialize_with = "string_or_number")]
    #[schema(value_type = super::openapi::schemas::Recipient)]
    pub to: String,
    /// The text, up to 65,536 characters, not blank. Aliases `pesan`, `message`.
    #[serde(alias = "pesan", alias = "message")]
    #[schema(pattern = r"\S", max_length = 65536)]
    pub text: String,
    /// Phone numbers mentioned in the text (WhatsApp highlights `@<number>` in it).
    #[serde(default)]
    #[schema(max_items = 50)]
    pub mentions: Vec<String>,
    /// The message to quote: the gateway's id of a message in this chat, or a WhatsApp
    /// message id.
    #[serde(default, deserialize_with = "opt_string_or_number")]
    #[schema(value_type = Option<super::openapi::schemas::MessageRef>)]
    pub reply_to: Option<String>,
    /// Show "typing…" for this many milliseconds (at most 20,000) before the message goes.
    #[serde(default)]
    #[schema(maximum = 20000)]
    pub typing_ms: Option<u64>,
    /// Answer at once with status `queued` instead of waiting for the driver.
    #[serde(default, rename = "async")]
    pub asynchronous: bool,
}

/// Fields every send takes besides the device, the recipient and the content (each send's
/// body lists them itself, so the OpenAPI document shows one flat object per send).
#[derive(Default)]
pub struct CommonIn {
    pub reply_to: Option<String>,
    pub typing_ms: Option<u64>,
    pub asynchronous: bool,
}

impl CommonIn {
    /// The service's send options for `device` and `to`.
    pub fn into_send(self, device: String, to: String, headers: &HeaderMap) -> ApiResult<SendCommon> {
        Ok(SendCommon {
            device,
            to,
            reply_to: self.reply_to,
            typing_ms: self.typing_ms,
            idempotency_key: idempotency_key(headers)?,
            asynchronous: self.asynchronous,
        })
    }
}

/// The `Idempotency-Key` header, for the OpenAPI document.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // Read by [`idempotency_key`].
pub struct IdempotencyKey {
    /// A key of 1 to 200 visible ASCII characters (spaces and tabs around it are ignored): a
    /// repeat with the same key returns the first result and sends nothing.
    #[param(rename = "Idempotency-Key", pattern = r"^[\t ]*[!-~]([\t -~]{0,198}[!-~])?[\t ]*$")]
    idempotency_key: Option<String>,
}

/// The `Idempotency-Key` header, checked.
pub fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => {
            let key = v
                .to_str()
                .map_err(|_| ApiError::validation("Idempotency-Key", "must be visible ASCII"))?
                .trim();
            if key.is_empty() || key.len() > 200 {
                return Err(ApiError::validation("Idempotency-Key", "must be 1 to 200 characters"));
            }
            Ok(Some(key.to_string()))
        }
    }
}

/// Sends a text message. Waits until the driver took it (`sent`) unless `async` is true
/// (`queued`). A repeat with the same `Idempotency-Key` returns the first result and sends
/// nothing.
#[utoipa::path(post, path = "/api/send-message", tag = "messages", request_body = SendMessageIn,
    params(IdempotencyKey),
    responses((status = 200, body = MessageOut), (status = 404, description = "No such device."),
              (status = 409, description = "The device is not connected."),
              (status = 429, description = "The package's `messages_per_month` limit is reached, or the rate limit.")))]
async fn send_message(
    State(state): State<AppState>,
    tenant: Tenant,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SendMessageIn>,
) -> ApiResult<Json<MessageOut>> {
    let common =
        CommonIn { reply_to: body.reply_to, typing_ms: body.typing_ms, asynchronous: body.asynchronous };
    let send = TextSend {
        common: common.into_send(body.device, body.to, &headers)?,
        text: body.text,
        mentions: body.mentions,
    };
    Ok(Json(message_out(&state, state.messages.send_text(&tenant, send).await?)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Documented by [`super::extract::PageQuery`] where the operation pages.
    #[param(ignore)]
    pub limit: Option<i64>,
    #[param(ignore)]
    pub offset: Option<i64>,
    /// Device id or phone number.
    pub device: Option<String>,
    #[param(value_type = Option<Direction>, inline)]
    pub direction: Option<String>,
    #[param(schema_with = super::openapi::schemas::recipient_text)]
    pub chat: Option<String>,
    /// Who sent the message: a phone number, or a LID (`…@lid`; messages stored under the
    /// number it maps to are found too).
    #[param(schema_with = super::openapi::schemas::sender_text)]
    pub sender: Option<String>,
    /// Text to search for (case-insensitive).
    pub q: Option<String>,
    #[param(value_type = Option<MessageStatus>, inline)]
    pub status: Option<String>,
    #[param(schema_with = super::openapi::schemas::since)]
    pub since: Option<String>,
    #[param(schema_with = super::openapi::schemas::until)]
    pub until: Option<String>,
    /// The message's kind.
    #[serde(rename = "type")]
    #[param(rename = "type", value_type = Option<MessageKind>, inline)]
    pub kind: Option<String>,
}

/// What a message is.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // Documents `type`, stored and filtered as text.
pub enum MessageKind {
    Text,
    Image,
    Video,
    Audio,
    Voice,
    Document,
    Sticker,
    Location,
    Contact,
    Poll,
    Unsupported,
}

/// Which way a message went.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // Documents `direction`, stored and filtered as text.
pub enum Direction {
    In,
    Out,
}

/// Where a message is: outbound `queued`, `sent`, `delivered`, `read` or `failed`; inbound
/// `received`.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // Documents `status`, stored and filtered as text.
pub enum MessageStatus {
    Queued,
    Sent,
    Delivered,
    Read,
    Failed,
    Received,
}

impl From<&HistoryQuery> for HistorySearch {
    fn from(q: &HistoryQuery) -> Self {
        HistorySearch {
            device: q.device.clone(),
            direction: q.direction.clone(),
            chat: q.chat.clone(),
            sender: q.sender.clone(),
            q: q.q.clone(),
            status: q.status.clone(),
            since: q.since.clone(),
            until: q.until.clone(),
            kind: q.kind.clone(),
        }
    }
}

/// A page of history: the usual list fields, and whether `total` is exact.
#[derive(Serialize, utoipa::ToSchema)]
pub struct HistoryPage {
    #[serde(flatten)]
    pub page: Page<MessageOut>,
    /// False when more than 1,000 messages (or more than `offset + limit`) match: counting
    /// stops there, and `total` is that lower bound.
    pub total_exact: bool,
}

/// The tenant's messages, newest first, filtered.
#[utoipa::path(get, path = "/api/user/chat-history", tag = "messages", params(PageQuery, HistoryQuery),
    responses((status = 200, body = HistoryPage), (status = 404, description = "No such device.")))]
async fn list_chat_history(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> ApiResult<Json<HistoryPage>> {
    let (limit, offset) = page(q.limit, q.offset)?;
    let found = state.messages.history(&tenant, &HistorySearch::from(&q), limit, offset).await?;
    let data = found.rows.into_iter().map(|r| message_out(&state, r)).collect();
    Ok(Json(HistoryPage { page: Page { data, total: found.total, limit, offset }, total_exact: found.exact }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct StatusChangeOut {
    pub status: String,
    pub detail: Option<String>,
    pub at: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MessageDetailOut {
    #[serde(flatten)]
    pub message: MessageOut,
    /// Every status the message went through, oldest first.
    pub status_history: Vec<StatusChangeOut>,
}

/// One message with its delivery status history.
#[utoipa::path(get, path = "/api/user/chat-history/{id}", tag = "messages",
    params(("id" = i64, Path, description = "The message's id.")),
    responses((status = 200, body = MessageDetailOut)))]
async fn get_chat_message(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<MessageDetailOut>> {
    let id: i64 = id.parse().map_err(|_| ApiError::not_found("message"))?;
    let (row, history) = state.messages.message(&tenant, id).await?;
    let mut detail = message_detail(row, history);
    detail.message = detail.message.with_links(state.media_keeper.links());
    Ok(Json(detail))
}

/// One message with its delivery status history: the same answer as
/// `/api/user/chat-history/{id}`, at the path the message actions live under.
#[utoipa::path(get, path = "/api/user/messages/{id}", tag = "messages",
    params(("id" = i64, Path, description = "The message's id.")),
    responses((status = 200, body = MessageDetailOut)))]
pub(super) async fn get_message(
    state: State<AppState>,
    tenant: Tenant,
    id: Path<String>,
) -> ApiResult<Json<MessageDetailOut>> {
    get_chat_message(state, tenant, id).await
}

/// A message with its status history, as the API shows it.
pub fn message_detail(row: MessageRow, history: Vec<StatusEventRow>) -> MessageDetailOut {
    MessageDetailOut {
        message: MessageOut::of(&row),
        status_history: history
            .into_iter()
            .map(|h| StatusChangeOut { status: h.status, detail: h.detail, at: ts(h.created_at) })
            .collect(),
    }
}

const CSV_HEADER: [&str; 14] = [
    "id",
    "created_at",
    "device",
    "direction",
    "chat",
    "from",
    "to",
    "push_name",
    "type",
    "text",
    "status",
    "error",
    "source",
    "wa_id",
];

fn csv_rows(rows: &[MessageRow], with_header: bool) -> Vec<u8> {
    let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
    if with_header {
        let _ = w.write_record(CSV_HEADER);
    }
    for r in rows {
        let _ = w.write_record([
            r.id.to_string(),
            ts(r.created_at),
            r.device_phone.clone(),
            r.direction.clone(),
            r.chat.clone(),
            r.sender.clone(),
            r.recipient.clone(),
            r.push_name.clone().unwrap_or_default(),
            r.kind.clone(),
            r.text.clone().unwrap_or_default(),
            r.status.clone(),
            r.error.clone().unwrap_or_default(),
            r.source.clone(),
            r.wa_id.clone().unwrap_or_default(),
        ]);
    }
    w.into_inner().unwrap_or_default()
}

/// The filtered history as CSV (RFC 4180 quoting), streamed newest first, header row first.
/// Every matching message, without paging.
#[utoipa::path(get, path = "/api/user/chat-history/export.csv", tag = "messages", params(HistoryQuery),
    responses((status = 200, content_type = "text/csv", description = "CSV file"),
              (status = 404, description = "No such device.")))]
async fn export_chat_history(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> ApiResult<Response> {
    let filter = state.messages.export(&tenant, &HistorySearch::from(&q)).await?;
    Ok(export_response(&state, &tenant, filter))
}

/// The rows `filter` matches as a streamed CSV download.
pub fn export_response(state: &AppState, tenant: &Tenant, filter: MessageFilter) -> Response {
    let db = state.db.clone();
    let tenant_id = tenant.id;
    // Keyset paging: each batch continues after the last row sent, so the export is consistent
    // while new messages arrive and memory stays bounded.
    let stream = futures::stream::unfold(Some((filter, true)), move |cursor| {
        let db = db.clone();
        async move {
            let (mut filter, first) = cursor?;
            match db.list_messages_batch(tenant_id, &filter, 500).await {
                Ok(rows) if rows.is_empty() && !first => None,
                Ok(rows) => {
                    let chunk = csv_rows(&rows, first);
                    let next = rows.last().map(|r| {
                        filter.before = Some((r.created_at, r.id));
                        (filter, false)
                    });
                    Some((Ok::<_, std::io::Error>(chunk), next))
                }
                Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
            }
        }
    });
    let name = format!("chat-history-{}.csv", Utc::now().format("%Y%m%d-%H%M%S"));
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}
