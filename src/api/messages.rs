//! Sending text and reading history: `send-message`, `chat-history`, its detail and CSV export.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::devices::resolve_device;
use super::extract::{ApiJson, ApiQuery, Page, Tenant};
use super::ts;
use crate::app::AppState;
use crate::db::{page, MessageFilter, MessageRow};
use crate::error::{ApiError, ApiResult};
use crate::messages::outbound::{MediaMeta, SendError, SendRequest};
use crate::messages::phone::Recipient;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(send_message))
        .routes(routes!(list_chat_history))
        .routes(routes!(export_chat_history))
        .routes(routes!(get_chat_message))
}

/// Accepts a JSON string or number (old clients send phone numbers as numbers).
pub fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum StrOrNum {
        S(String),
        I(i64),
        U(u64),
    }
    Ok(
        match StrOrNum::deserialize(d)
            .map_err(|_| serde::de::Error::custom("expected a string or a number"))?
        {
            StrOrNum::S(s) => s,
            StrOrNum::I(i) => i.to_string(),
            StrOrNum::U(u) => u.to_string(),
        },
    )
}

/// Like [`string_or_number`] for optional fields (`null` is `None`).
pub fn opt_string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    struct Wrap(#[serde(deserialize_with = "string_or_number")] String);
    Ok(Option::<Wrap>::deserialize(d)?.map(|Wrap(s)| s))
}

impl From<SendError> for ApiError {
    fn from(e: SendError) -> Self {
        match e {
            SendError::DeviceNotConnected => ApiError::DeviceNotConnected(
                "the device is not connected; pair it or wait for it to reconnect".into(),
            ),
            SendError::Limit(l) => l.into(),
            SendError::Db(d) => d.into(),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MessageOut {
    pub id: i64,
    /// The device's phone number.
    pub device: String,
    pub device_id: i64,
    /// `in` or `out`.
    pub direction: String,
    /// The chat's WhatsApp id (`…@s.whatsapp.net` or a group `…@g.us`).
    pub chat: String,
    pub from: String,
    pub to: String,
    pub text: Option<String>,
    /// `text`, `image`, `video`, `audio` or `document`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `queued`, `sent`, `delivered`, `read`, `failed` or `received`.
    pub status: String,
    pub push_name: Option<String>,
    pub is_group: bool,
    #[schema(value_type = Option<Object>)]
    pub media: Option<serde_json::Value>,
    pub error: Option<String>,
    /// What produced it: `api`, `auto_reply`, `plugin`, `webhook`, `scheduled`, `whatsapp`, `phone`.
    pub source: String,
    /// WhatsApp's id for the message.
    pub wa_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

pub fn message_out(r: MessageRow) -> MessageOut {
    let media = r.media.as_deref().and_then(|m| serde_json::from_str::<MediaMeta>(m).ok()).map(|mut m| {
        m.blob_id = None;
        serde_json::to_value(m).unwrap_or_default()
    });
    MessageOut {
        id: r.id,
        device: r.device_phone,
        device_id: r.device_id,
        direction: r.direction,
        chat: r.chat,
        from: r.sender,
        to: r.recipient,
        text: r.text,
        kind: r.kind,
        status: r.status,
        push_name: r.push_name,
        is_group: r.is_group,
        media,
        error: r.error,
        source: r.source,
        wa_id: r.wa_id,
        created_at: ts(r.created_at),
        updated_at: ts(r.updated_at),
    }
}

/// The send body: the seed's `pengirim`/`nomor`/`pesan` or `device`/`to`/`text` (`from` too).
#[derive(Deserialize, utoipa::ToSchema)]
pub struct SendMessageIn {
    /// The sending device: id or phone number. Aliases `pengirim`, `from`, `sender`.
    #[serde(alias = "pengirim", alias = "from", alias = "sender", deserialize_with = "string_or_number")]
    #[schema(value_type = String)]
    pub device: String,
    /// Recipient: a phone number in any common form, or a group id ending `@g.us`. Alias `nomor`.
    #[serde(alias = "nomor", alias = "number", deserialize_with = "string_or_number")]
    #[schema(value_type = String)]
    pub to: String,
    /// The text. Aliases `pesan`, `message`.
    #[serde(alias = "pesan", alias = "message")]
    pub text: String,
    /// Answer at once with status `queued` instead of waiting for the driver.
    #[serde(default, rename = "async")]
    pub asynchronous: bool,
}

/// Largest text message, in characters (WhatsApp's own limit is about 65,536).
pub const MAX_TEXT_CHARS: usize = 65_536;

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

/// Parses a recipient for the tenant's configured country code, answering 422 on `field`.
pub fn parse_recipient(state: &AppState, raw: &str, field: &str) -> ApiResult<Recipient> {
    Recipient::parse(raw, &state.config.whatsapp.default_country_code)
        .map_err(|e| ApiError::validation(field, e.to_string()))
}

/// Sends a text message. Waits until the driver took it (`sent`) unless `async` is true
/// (`queued`). A repeat with the same `Idempotency-Key` returns the first result and sends
/// nothing.
#[utoipa::path(post, path = "/api/send-message", tag = "messages", request_body = SendMessageIn,
    params(("Idempotency-Key" = Option<String>, Header, description = "repeat-safe key")),
    responses((status = 200, body = MessageOut), (status = 404, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody),
              (status = 429, body = crate::error::ErrorBody)))]
async fn send_message(
    State(state): State<AppState>,
    tenant: Tenant,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SendMessageIn>,
) -> ApiResult<Json<MessageOut>> {
    let key = idempotency_key(&headers)?;
    let device = resolve_device(&state, tenant.id, &body.device).await?;
    let to = parse_recipient(&state, &body.to, "to")?;
    let text = body.text;
    if text.trim().is_empty() {
        return Err(ApiError::validation("text", "must not be empty"));
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(ApiError::validation("text", format!("must be at most {MAX_TEXT_CHARS} characters")));
    }
    let row = state
        .outbound
        .send(SendRequest {
            tenant: tenant.id,
            package: tenant.package.clone(),
            device,
            to,
            text: Some(text),
            media: None,
            source: "api",
            idempotency_key: key,
            asynchronous: body.asynchronous,
            require_connected: true,
        })
        .await?;
    state.tenants.record(tenant.activity("message.send", format!("message:{}", row.id))).await;
    Ok(Json(message_out(row)))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct HistoryQuery {
    pub limit: Option<i64>,
    pub offset: Option<i64>,
    /// Device id or phone number.
    pub device: Option<String>,
    /// `in` or `out`.
    pub direction: Option<String>,
    /// A chat: phone number or group id.
    pub chat: Option<String>,
    /// Text to search for (case-insensitive).
    pub q: Option<String>,
    pub status: Option<String>,
    /// RFC 3339 time or a date (`2026-11-25`), inclusive.
    pub since: Option<String>,
    /// RFC 3339 time or a date, exclusive.
    pub until: Option<String>,
}

fn parse_time(raw: &str, field: &str) -> ApiResult<i64> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw.trim()) {
        return Ok(t.timestamp_millis());
    }
    if let Ok(d) = NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc().timestamp_millis());
    }
    Err(ApiError::validation(field, "must be an RFC 3339 time or a YYYY-MM-DD date"))
}

async fn history_filter(state: &AppState, tenant: &Tenant, q: &HistoryQuery) -> ApiResult<MessageFilter> {
    let mut f = MessageFilter::default();
    if let Some(d) = q.device.as_deref().filter(|d| !d.is_empty()) {
        f.device_id = Some(resolve_device(state, tenant.id, d).await?.id);
    }
    if let Some(d) = q.direction.as_deref().filter(|d| !d.is_empty()) {
        if d != "in" && d != "out" {
            return Err(ApiError::validation("direction", "must be `in` or `out`"));
        }
        f.direction = Some(d.to_string());
    }
    if let Some(c) = q.chat.as_deref().filter(|c| !c.is_empty()) {
        f.chat = Some(parse_recipient(state, c, "chat")?.jid());
    }
    if let Some(s) = q.status.as_deref().filter(|s| !s.is_empty()) {
        const STATUSES: [&str; 6] = ["queued", "sent", "delivered", "read", "failed", "received"];
        if !STATUSES.contains(&s) {
            return Err(ApiError::validation("status", format!("must be one of {}", STATUSES.join(", "))));
        }
        f.status = Some(s.to_string());
    }
    f.q = q.q.clone().filter(|s| !s.is_empty());
    if let Some(s) = q.since.as_deref().filter(|s| !s.is_empty()) {
        f.since = Some(parse_time(s, "since")?);
    }
    if let Some(s) = q.until.as_deref().filter(|s| !s.is_empty()) {
        f.until = Some(parse_time(s, "until")?);
    }
    Ok(f)
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
#[utoipa::path(get, path = "/api/user/chat-history", tag = "messages", params(HistoryQuery),
    responses((status = 200, body = HistoryPage)))]
async fn list_chat_history(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> ApiResult<Json<HistoryPage>> {
    let (limit, offset) = page(q.limit, q.offset);
    let filter = history_filter(&state, &tenant, &q).await?;
    let found = state.db.list_messages(tenant.id, &filter, limit, offset).await?;
    let data = found.rows.into_iter().map(message_out).collect();
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
    responses((status = 200, body = MessageDetailOut), (status = 404, body = crate::error::ErrorBody)))]
async fn get_chat_message(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<MessageDetailOut>> {
    let id: i64 = id.parse().map_err(|_| ApiError::not_found("message"))?;
    let row = state.db.message(tenant.id, id).await?.ok_or_else(|| ApiError::not_found("message"))?;
    let history = state.db.message_status_history(tenant.id, id).await?;
    Ok(Json(MessageDetailOut {
        message: message_out(row),
        status_history: history
            .into_iter()
            .map(|h| StatusChangeOut { status: h.status, detail: h.detail, at: ts(h.created_at) })
            .collect(),
    }))
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
#[utoipa::path(get, path = "/api/user/chat-history/export.csv", tag = "messages", params(HistoryQuery),
    responses((status = 200, content_type = "text/csv", description = "CSV file")))]
async fn export_chat_history(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> ApiResult<Response> {
    let filter = history_filter(&state, &tenant, &q).await?;
    state.tenants.record(tenant.activity("message.export", None)).await;
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
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}
