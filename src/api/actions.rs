//! Sending the kinds beyond text and media (`send-location`, `send-contact`, `send-poll`),
//! acting on a message (`/api/user/messages/{id}`: reaction, edit, delete, read, forward) and
//! a device's presence.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, ApiQuery, Tenant};
use super::messages::{message_out, string_or_number, CommonIn, MessageOut};
use crate::content::{ContactCard, Location, PollSpec};
use crate::devices::driver::PresenceState;
use crate::error::{ApiError, ApiResult};
use crate::messages::keeper::MediaBytes;
use crate::messages::service::{SendCommon, Shared};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(send_location))
        .routes(routes!(send_contact))
        .routes(routes!(send_poll))
        .routes(routes!(react))
        .routes(routes!(super::messages::get_message, edit_message, delete_message))
        .routes(routes!(mark_read))
        .routes(routes!(forward))
        .routes(routes!(set_presence))
        .routes(routes!(get_media))
        .routes(routes!(get_media_by_link))
}

/// Media bytes as a download: their type, a file name, and headers that keep a browser from
/// running them (a customer's "document" could be HTML).
pub(crate) fn media_response(media: MediaBytes) -> Response {
    let inline = ["image/", "video/", "audio/"].iter().any(|p| media.mime.starts_with(p));
    let name = media
        .filename
        .as_deref()
        .map(|n| n.replace(['"', '\\', '\r', '\n'], "_"))
        .unwrap_or_else(|| "media".into());
    let disposition = format!("{}; filename=\"{name}\"", if inline { "inline" } else { "attachment" });
    let mime =
        HeaderValue::from_str(&media.mime).unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let mut response = (StatusCode::OK, media.bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, mime);
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("sandbox"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=300"));
    response
}

/// The bytes of a message's media (received or sent) while they are kept, with their content
/// type and file name.
#[utoipa::path(get, path = "/api/user/messages/{id}/media", tag = "messages",
    params(("id" = i64, Path, description = "The message's id.")),
    responses((status = 200, content_type = "*/*", description = "The media's bytes"),
              (status = 404, description = "No such message, or it has no media."),
              (status = 409, description = "The media is still being downloaded, its download failed, or downloads are off."),
              (status = 410, description = "The bytes were deleted after the retention period.")))]
async fn get_media(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = message_id(&id)?;
    Ok(media_response(state.messages.media(&tenant, id).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LinkQuery {
    /// When the link stops working, in Unix seconds.
    pub expires: i64,
    /// The link's signature.
    pub signature: String,
}

/// The bytes of a message's media through a signed link (`media.download_url` in the
/// message's view and its webhooks): no API key, until the link expires.
#[utoipa::path(get, path = "/media/{id}", tag = "messages",
    params(("id" = i64, Path, description = "The message's id."), LinkQuery),
    responses((status = 200, content_type = "*/*", description = "The media's bytes"),
              (status = 403, description = "The signature does not match, or the link expired."),
              (status = 404, description = "No such message, or it has no media."),
              (status = 409, description = "The media is not downloaded."),
              (status = 410, description = "The bytes were deleted after the retention period.")))]
async fn get_media_by_link(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<LinkQuery>,
) -> ApiResult<Response> {
    let id = message_id(&id)?;
    Ok(media_response(state.messages.media_by_link(id, q.expires, &q.signature).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct SendLocationIn {
    /// The sending device: id or phone number. Aliases `pengirim`, `from`, `sender`.
    #[serde(alias = "pengirim", alias = "from", alias = "sender", deserialize_with = "string_or_number")]
    #[schema(value_type = super::openapi::schemas::DeviceRef)]
    pub device: String,
    /// Recipient: a phone number in any common form, or a group id ending `@g.us`. Alias `nomor`.
    #[serde(alias = "nomor", alias = "number", deserialize_with = "string_or_number")]
    #[schema(value_type = super::openapi::schemas::Recipient)]
    pub to: String,
    /// Degrees, -90 to 90.
    #[schema(minimum = -90, maximum = 90)]
    pub latitude: f64,
    /// Degrees, -180 to 180.
    #[schema(minimum = -180, maximum = 180)]
    pub longitude: f64,
    /// The place's name, shown above the map.
    #[serde(default)]
    #[schema(max_length = 1024)]
    pub name: Option<String>,
    #[serde(default)]
    #[schema(max_length = 1024)]
    pub address: Option<String>,
    /// The message to quote: the gateway's id of a message in this chat, or a WhatsApp
    /// message id.
    #[serde(default, deserialize_with = "super::messages::opt_string_or_number")]
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

#[derive(Deserialize, utoipa::ToSchema)]
pub struct SendContactIn {
    /// The sending device: id or phone number. Aliases `pengirim`, `from`, `sender`.
    #[serde(alias = "pengirim", alias = "from", alias = "sender", deserialize_with = "string_or_number")]
    #[schema(value_type = super::openapi::schemas::DeviceRef)]
    pub device: String,
    /// Recipient: a phone number in any common form, or a group id ending `@g.us`. Alias `nomor`.
    #[serde(alias = "nomor", alias = "number", deserialize_with = "string_or_number")]
    #[schema(value_type = super::openapi::schemas::Recipient)]
    pub to: String,
    /// 1 to 10 contacts; a vCard is built for each.
    #[schema(min_items = 1, max_items = 10)]
    pub contacts: Vec<ContactCard>,
    /// The message to quote: the gateway's id of a message in this chat, or a WhatsApp
    /// message id.
    #[serde(default, deserialize_with = "super::messages::opt_string_or_number")]
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

#[derive(Deserialize, utoipa::ToSchema)]
pub struct SendPollIn {
    /// The sending device: id or phone number. Aliases `pengirim`, `from`, `sender`.
    #[serde(alias = "pengirim", alias = "from", alias = "sender", deserialize_with = "string_or_number")]
    #[schema(value_type = super::openapi::schemas::DeviceRef)]
    pub device: String,
    /// Recipient: a phone number in any common form, or a group id ending `@g.us`. Alias `nomor`.
    #[serde(alias = "nomor", alias = "number", deserialize_with = "string_or_number")]
    #[schema(value_type = super::openapi::schemas::Recipient)]
    pub to: String,
    /// Up to 255 characters.
    #[schema(max_length = 255)]
    pub question: String,
    /// 2 to 12 distinct options, each up to 255 characters.
    #[schema(min_items = 2, max_items = 12)]
    pub options: Vec<String>,
    /// Whether a voter may choose more than one option.
    #[serde(default)]
    pub multiple: bool,
    /// The message to quote: the gateway's id of a message in this chat, or a WhatsApp
    /// message id.
    #[serde(default, deserialize_with = "super::messages::opt_string_or_number")]
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

/// The device, recipient and common fields of a send body.
macro_rules! common_of {
    ($b:expr, $headers:expr) => {
        CommonIn { reply_to: $b.reply_to, typing_ms: $b.typing_ms, asynchronous: $b.asynchronous }
            .into_send($b.device, $b.to, $headers)?
    };
}

async fn send_shared(
    state: &AppState,
    tenant: &Tenant,
    common: SendCommon,
    shared: Shared,
) -> ApiResult<Json<MessageOut>> {
    Ok(Json(message_out(state, state.messages.send_shared(tenant, common, shared).await?)))
}

/// Sends a location pin. Queued, paced, limited and idempotent like send-message.
#[utoipa::path(post, path = "/api/send-location", tag = "messages", request_body = SendLocationIn,
    params(super::messages::IdempotencyKey),
    responses((status = 200, body = MessageOut), (status = 404, description = "No such device."),
              (status = 409, description = "The device is not connected."),
              (status = 422, description = "Coordinates out of range, or another invalid field."),
              (status = 429, description = "The package's `messages_per_month` limit is reached, or the rate limit.")))]
async fn send_location(
    State(state): State<AppState>,
    tenant: Tenant,
    headers: HeaderMap,
    ApiJson(mut b): ApiJson<SendLocationIn>,
) -> ApiResult<Json<MessageOut>> {
    let location = Location {
        latitude: b.latitude,
        longitude: b.longitude,
        name: b.name.take(),
        address: b.address.take(),
    };
    send_shared(&state, &tenant, common_of!(b, &headers), Shared::Location(location)).await
}

/// Sends contact cards (`{name, phone}` each; the gateway builds the vCards).
#[utoipa::path(post, path = "/api/send-contact", tag = "messages", request_body = SendContactIn,
    params(super::messages::IdempotencyKey),
    responses((status = 200, body = MessageOut), (status = 404, description = "No such device."),
              (status = 409, description = "The device is not connected."),
              (status = 429, description = "The package's `messages_per_month` limit is reached, or the rate limit.")))]
async fn send_contact(
    State(state): State<AppState>,
    tenant: Tenant,
    headers: HeaderMap,
    ApiJson(mut b): ApiJson<SendContactIn>,
) -> ApiResult<Json<MessageOut>> {
    let contacts = std::mem::take(&mut b.contacts);
    send_shared(&state, &tenant, common_of!(b, &headers), Shared::Contacts(contacts)).await
}

/// Sends a poll. Votes arrive as `message.poll_vote` events and as counts on the message.
#[utoipa::path(post, path = "/api/send-poll", tag = "messages", request_body = SendPollIn,
    params(super::messages::IdempotencyKey),
    responses((status = 200, body = MessageOut), (status = 404, description = "No such device."),
              (status = 409, description = "The device is not connected."),
              (status = 429, description = "The package's `messages_per_month` limit is reached, or the rate limit.")))]
async fn send_poll(
    State(state): State<AppState>,
    tenant: Tenant,
    headers: HeaderMap,
    ApiJson(b): ApiJson<SendPollIn>,
) -> ApiResult<Json<MessageOut>> {
    let poll = PollSpec { question: b.question, options: b.options, multiple: b.multiple };
    send_shared(&state, &tenant, common_of!(b, &headers), Shared::Poll(poll)).await
}

fn message_id(raw: &str) -> ApiResult<i64> {
    raw.parse().ok().filter(|id: &i64| *id > 0).ok_or_else(|| ApiError::not_found("message"))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ReactionIn {
    /// One emoji; empty takes this device's reaction back.
    #[schema(max_length = 64)]
    pub emoji: String,
}

/// Reacts to a message with one emoji (empty removes the reaction). Answers the message with
/// its reactions.
#[utoipa::path(post, path = "/api/user/messages/{id}/reaction", tag = "messages", request_body = ReactionIn,
    params(("id" = i64, Path, description = "The message's id.")),
    responses((status = 200, body = MessageOut), (status = 404, description = "No such message."),
              (status = 409, description = "The device is not connected, or the message has not reached WhatsApp."),
              (status = 422, description = "Not a single emoji.")))]
async fn react(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<ReactionIn>,
) -> ApiResult<Json<MessageOut>> {
    let id = message_id(&id)?;
    Ok(Json(message_out(&state, state.messages.react(&tenant, id, &b.emoji).await?)))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct EditIn {
    /// The new text, up to 65,536 characters, not blank.
    #[schema(pattern = r"\S", max_length = 65536)]
    pub text: String,
}

/// Edits the text of a text message this device sent, within WhatsApp's 15 minutes. The
/// earlier text is kept in `previous_texts`.
#[utoipa::path(patch, path = "/api/user/messages/{id}", tag = "messages", request_body = EditIn,
    params(("id" = i64, Path, description = "The message's id.")),
    responses((status = 200, body = MessageOut), (status = 404, description = "No such message."),
              (status = 409, description = "The device is not connected, or the message has not reached WhatsApp."),
              (status = 422, description = "Not a text this device sent, or too late to edit.")))]
async fn edit_message(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<EditIn>,
) -> ApiResult<Json<MessageOut>> {
    let id = message_id(&id)?;
    Ok(Json(message_out(&state, state.messages.edit(&tenant, id, &b.text).await?)))
}

/// Deletes a message this device sent, for everyone (within WhatsApp's 48 hours). The message
/// stays in the history with `revoked_at`.
#[utoipa::path(delete, path = "/api/user/messages/{id}", tag = "messages",
    params(("id" = i64, Path, description = "The message's id.")),
    responses((status = 200, body = MessageOut), (status = 404, description = "No such message."),
              (status = 409, description = "The device is not connected, or the message has not reached WhatsApp."),
              (status = 422, description = "Not a message this device sent, or too late to delete.")))]
async fn delete_message(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<MessageOut>> {
    let id = message_id(&id)?;
    Ok(Json(message_out(&state, state.messages.revoke(&tenant, id).await?)))
}

/// Marks the chat read up to this received message (the sender sees blue ticks).
#[utoipa::path(post, path = "/api/user/messages/{id}/read", tag = "messages",
    params(("id" = i64, Path, description = "The message's id.")),
    responses((status = 200, body = MessageOut), (status = 404, description = "No such message."),
              (status = 409, description = "The device is not connected."),
              (status = 422, description = "Not a received message.")))]
async fn mark_read(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<MessageOut>> {
    let id = message_id(&id)?;
    Ok(Json(message_out(&state, state.messages.mark_read(&tenant, id).await?)))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ForwardIn {
    /// Recipient: a phone number in any common form, or a group id. Alias `nomor`.
    #[serde(alias = "nomor", alias = "number", deserialize_with = "string_or_number")]
    #[schema(value_type = super::openapi::schemas::Recipient)]
    pub to: String,
    /// The device to send from (id or phone number); the message's own device when left out.
    #[serde(default, deserialize_with = "super::messages::opt_string_or_number")]
    #[schema(value_type = Option<String>)]
    pub device: Option<String>,
    /// Answer at once with status `queued` instead of waiting for the driver.
    #[serde(default, rename = "async")]
    pub asynchronous: bool,
}

/// Sends the message's content again to another chat, marked forwarded. Queued, limited and
/// idempotent like send-message.
#[utoipa::path(post, path = "/api/user/messages/{id}/forward", tag = "messages", request_body = ForwardIn,
    params(("id" = i64, Path, description = "The message's id."), super::messages::IdempotencyKey),
    responses((status = 200, body = MessageOut), (status = 404, description = "No such message or device."),
              (status = 409, description = "The device is not connected."),
              (status = 422, description = "Nothing to forward (media whose bytes are gone, a deleted message).")))]
async fn forward(
    State(state): State<AppState>,
    tenant: Tenant,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<ForwardIn>,
) -> ApiResult<Json<MessageOut>> {
    let id = message_id(&id)?;
    let common = CommonIn { reply_to: None, typing_ms: None, asynchronous: b.asynchronous };
    let common = common.into_send(b.device.unwrap_or_default(), b.to, &headers)?;
    Ok(Json(message_out(&state, state.messages.forward(&tenant, id, common).await?)))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct PresenceIn {
    /// The chat for `typing`, `recording` and `paused` (a phone number or group id).
    #[serde(default, deserialize_with = "super::messages::opt_string_or_number")]
    #[schema(value_type = Option<String>)]
    pub chat: Option<String>,
    pub state: PresenceState,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PresenceOut {
    pub state: PresenceState,
    pub chat: Option<String>,
}

/// Shows "typing…" or "recording…" in a chat (`paused` stops it), or the device as online
/// (`available`) or offline (`unavailable`).
#[utoipa::path(post, path = "/api/user/devices/{id}/presence", tag = "devices", request_body = PresenceIn,
    params(("id" = String, Path, description = "The device's id or phone number.")),
    responses((status = 200, body = PresenceOut), (status = 404, description = "No such device."),
              (status = 409, description = "The device is not connected."),
              (status = 422, description = "A chat state without `chat`.")))]
async fn set_presence(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(device): Path<String>,
    ApiJson(b): ApiJson<PresenceIn>,
) -> ApiResult<Json<PresenceOut>> {
    state.messages.presence(&tenant, &device, b.chat.as_deref(), b.state).await?;
    Ok(Json(PresenceOut { state: b.state, chat: b.chat }))
}
