//! Sending media: `POST /api/send-media` with a multipart upload, or JSON with `url` or `base64`.

use std::collections::HashMap;

use axum::extract::multipart::MultipartError;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{text_field, ApiJson, Tenant};
use super::messages::{message_out, string_or_number, CommonIn, MessageOut};
use crate::error::{ApiError, ApiResult};
use crate::messages::service::{MediaSend, MediaSource};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(send_media))
}

/// The JSON form of a media send: exactly one of `url` and `base64` (not blank).
#[derive(Deserialize, utoipa::ToSchema)]
pub struct SendMediaIn {
    /// The sending device: id or phone number. Aliases `pengirim`, `from`, `sender`.
    #[serde(alias = "pengirim", alias = "from", alias = "sender", deserialize_with = "string_or_number")]
    #[schema(value_type = super::openapi::schemas::DeviceRef)]
    pub device: String,
    /// Recipient: a phone number in any common form, or a group id ending `@g.us`. Alias `nomor`.
    #[serde(alias = "nomor", alias = "number", deserialize_with = "string_or_number")]
    #[schema(value_type = super::openapi::schemas::Recipient)]
    pub to: String,
    /// An http(s) URL the gateway downloads the media from. Give `url` or `base64`.
    #[serde(default)]
    pub url: Option<String>,
    /// The media as base64, or a data URL (`data:image/png;base64,...`).
    #[serde(default)]
    pub base64: Option<String>,
    /// Up to 1,024 characters; blank is no caption. Aliases `pesan`, `text`, `message`.
    #[serde(default, alias = "pesan", alias = "text", alias = "message")]
    #[schema(max_length = 1024)]
    pub caption: Option<String>,
    /// The name shown for a document; defaults to the URL's or upload's name.
    #[serde(default)]
    pub filename: Option<String>,
    /// Detected from the content when left out or blank.
    #[serde(default, rename = "type")]
    #[schema(value_type = Option<MediaType>)]
    pub kind: Option<String>,
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

/// The multipart form of a media send (for the OpenAPI document; parsed by hand): exactly one
/// of the part `file`, `url` and `base64`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct SendMediaForm {
    /// The file.
    #[schema(value_type = Option<String>, format = Binary)]
    pub file: Option<Vec<u8>>,
    /// An http(s) URL to download the media from, instead of `file`.
    pub url: Option<String>,
    /// The media as base64 or a data URL, instead of `file`.
    pub base64: Option<String>,
    /// Device id or phone. Aliases `pengirim`, `from`, `sender`.
    #[schema(pattern = r"\S")]
    pub device: String,
    /// Recipient: a phone number with its country code, or a group id. Alias `nomor`.
    #[schema(schema_with = super::openapi::schemas::recipient_text)]
    pub to: String,
    /// Up to 1,024 characters. Aliases `pesan`, `text`, `message`.
    #[schema(max_length = 1024)]
    pub caption: Option<String>,
    pub filename: Option<String>,
    #[schema(rename = "type", value_type = Option<MediaType>)]
    pub kind: Option<String>,
    /// The message to quote: the gateway's message id or a WhatsApp message id.
    pub reply_to: Option<String>,
    /// Milliseconds of "typing…" before the message goes, at most 20,000.
    #[schema(pattern = r"^\s*[0-9]{0,5}\s*$")]
    pub typing_ms: Option<String>,
    /// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`): answer at once with status `queued`.
    #[schema(rename = "async", value_type = Option<FormBool>)]
    pub asynchronous: Option<String>,
}

/// The kind of a media message; the aliases (`photo`, `pdf`, `mp3`, …) name the kind they
/// belong to, in any case.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // Documents `type`, parsed by `MediaOptions::parse`.
pub enum MediaType {
    Image,
    Img,
    Photo,
    Picture,
    Video,
    Audio,
    Voice,
    Ptt,
    VoiceNote,
    Mp3,
    Sticker,
    Document,
    Doc,
    Docx,
    File,
    Pdf,
    Xls,
    Xlsx,
    Ppt,
    Pptx,
    Zip,
    Txt,
    Csv,
    /// Left blank: detected from the content.
    #[schema(rename = "")]
    Blank,
}

/// A yes/no form field.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // Documents the form's `async`.
pub enum FormBool {
    True,
    False,
    #[schema(rename = "1")]
    One,
    #[schema(rename = "0")]
    Zero,
    Yes,
    No,
    On,
    Off,
    /// Left empty: `false`.
    #[schema(rename = "")]
    Empty,
}

/// A media send, whichever way it came.
struct MediaRequest {
    device: String,
    to: String,
    caption: Option<String>,
    filename: Option<String>,
    kind: Option<String>,
    common: CommonIn,
    source: MediaSource,
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

/// One of `url` and `base64`; `upload` only in forms.
fn pick_source(
    upload: Option<MediaSource>,
    url: Option<String>,
    base64: Option<String>,
    field: &str,
) -> ApiResult<MediaSource> {
    let url = non_empty(url).map(MediaSource::Url);
    let base64 = non_empty(base64).map(MediaSource::Base64);
    let mut given = [upload, url, base64].into_iter().flatten();
    match (given.next(), given.next()) {
        (Some(source), None) => Ok(source),
        (None, _) => {
            Err(ApiError::validation(field, "give the media as a multipart `file`, a `url` or `base64`"))
        }
        (Some(_), Some(_)) => Err(ApiError::validation(field, "give only one of `file`, `url` and `base64`")),
    }
}

impl TryFrom<SendMediaIn> for MediaRequest {
    type Error = ApiError;

    fn try_from(b: SendMediaIn) -> ApiResult<MediaRequest> {
        Ok(MediaRequest {
            source: pick_source(None, b.url, b.base64, "url")?,
            device: b.device,
            to: b.to,
            caption: b.caption,
            filename: b.filename,
            kind: b.kind,
            common: CommonIn { reply_to: b.reply_to, typing_ms: b.typing_ms, asynchronous: b.asynchronous },
        })
    }
}

/// A multipart failure: a body over `server.body_limit` is 413, anything else 400.
pub(crate) fn multipart_error(status: StatusCode, text: String) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge("request body is too large".into())
    } else {
        ApiError::BadRequest(format!("malformed multipart body: {text}"))
    }
}

fn field_error(e: MultipartError) -> ApiError {
    multipart_error(e.status(), e.body_text())
}

/// Reads the form: one `file` part and text fields (aliases as in JSON). Unknown text fields
/// are ignored; a repeated field or a second file is refused.
async fn read_form(req: Request, state: &AppState) -> ApiResult<MediaRequest> {
    let mut form =
        Multipart::from_request(req, state).await.map_err(|e| multipart_error(e.status(), e.body_text()))?;
    let mut upload = None;
    let mut text: HashMap<&'static str, String> = HashMap::new();
    while let Some(field) = form.next_field().await.map_err(field_error)? {
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" {
            if upload.is_some() {
                return Err(ApiError::validation("file", "send one file per message"));
            }
            let filename = field.file_name().map(str::to_string);
            let content_type = field.content_type().map(str::to_string);
            let bytes = field.bytes().await.map_err(field_error)?.into();
            upload = Some(MediaSource::Upload { bytes, filename, content_type });
            continue;
        }
        if field.file_name().is_some() {
            let field = if name.is_empty() { "file".to_string() } else { name };
            return Err(ApiError::validation(field, "unexpected file; upload the media as the `file` part"));
        }
        let key = match name.as_str() {
            "device" | "pengirim" | "from" | "sender" => "device",
            "to" | "nomor" | "number" => "to",
            "caption" | "pesan" | "text" | "message" => "caption",
            "filename" => "filename",
            "type" => "type",
            "async" => "async",
            "reply_to" => "reply_to",
            "typing_ms" => "typing_ms",
            "url" => "url",
            "base64" => "base64",
            _ => continue,
        };
        let value = text_field(key, field.text().await.map_err(field_error)?)?;
        if text.insert(key, value).is_some() {
            return Err(ApiError::validation(key, "given more than once"));
        }
    }
    let required = |text: &mut HashMap<_, String>, key| {
        non_empty(text.remove(key)).ok_or_else(|| ApiError::validation(key, format!("missing field `{key}`")))
    };
    let device = required(&mut text, "device")?;
    let to = required(&mut text, "to")?;
    let asynchronous = match text.remove("async").unwrap_or_default().trim().to_ascii_lowercase().as_str() {
        "" | "false" | "0" | "no" | "off" => false,
        "true" | "1" | "yes" | "on" => true,
        _ => return Err(ApiError::validation("async", "must be true or false")),
    };
    let typing_ms = match non_empty(text.remove("typing_ms")) {
        Some(t) => Some(
            t.trim()
                .parse::<u64>()
                .map_err(|_| ApiError::validation("typing_ms", "must be a whole number of milliseconds"))?,
        ),
        None => None,
    };
    Ok(MediaRequest {
        source: pick_source(upload, text.remove("url"), text.remove("base64"), "file")?,
        device,
        to,
        caption: text.remove("caption"),
        filename: text.remove("filename"),
        kind: text.remove("type"),
        common: CommonIn { reply_to: non_empty(text.remove("reply_to")), typing_ms, asynchronous },
    })
}

fn is_multipart(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.trim_start().to_ascii_lowercase().starts_with("multipart/form-data"))
}

/// Sends an image, video, audio clip or document.
///
/// The media comes as a `multipart/form-data` upload (part `file`, other fields as text parts),
/// or as JSON with `url` (downloaded by the gateway) or `base64` (plain or a data URL). The kind
/// is `type` when given and the content fits it, else detected from the content; each kind has
/// a size cap (`[whatsapp] max_*_bytes`, 413 `payload_too_large` above it).
///
/// A `url` is fetched with a time limit (`[whatsapp] media_fetch_timeout`), the size cap, no
/// redirects, and a filter on the addresses it resolves to: tenants cannot make the gateway
/// fetch loopback, private, link-local or cloud-metadata addresses (422 on `url`) unless the
/// operator sets `[webhooks] allow_private_targets = true`.
///
/// Like send-message: waits until the driver took the message (`sent`) unless `async` is true,
/// 409 `device_not_connected` when the device is not connected, and `Idempotency-Key` makes a
/// repeat return the first result without sending.
#[utoipa::path(post, path = "/api/send-media", tag = "messages",
    request_body(content((SendMediaIn = "application/json"), (SendMediaForm = "multipart/form-data"))),
    params(super::messages::IdempotencyKey),
    responses((status = 200, body = MessageOut), (status = 404, description = "No such device."),
              (status = 409, description = "The device is not connected."),
              (status = 413, description = "The body, or the media for its kind, is too large."),
              (status = 429, description = "The package's `messages_per_month` limit is reached, or the rate limit.")))]
async fn send_media(
    State(state): State<AppState>,
    tenant: Tenant,
    headers: HeaderMap,
    req: Request,
) -> ApiResult<Json<MessageOut>> {
    let body = if is_multipart(&headers) {
        read_form(req, &state).await?
    } else {
        let ApiJson(json) = ApiJson::<SendMediaIn>::from_request(req, &state).await?;
        MediaRequest::try_from(json)?
    };
    let send = MediaSend {
        common: body.common.into_send(body.device, body.to, &headers)?,
        caption: body.caption,
        filename: body.filename,
        kind: body.kind,
        source: body.source,
    };
    Ok(Json(message_out(&state, state.messages.send_media(&tenant, send).await?)))
}
