//! Sending media: `POST /api/send-media` with a multipart upload, or JSON with `url` or `base64`.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::multipart::MultipartError;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::{Extension, Json};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::devices::resolve_device;
use super::extract::{ApiJson, Tenant};
use super::messages::{idempotency_key, message_out, parse_recipient, string_or_number, MessageOut};
use crate::app::AppState;
use crate::config::Config;
use crate::error::{ApiError, ApiResult};
use crate::messages::media::{decode_base64, filename_from_url, MediaError, MediaOptions};
use crate::messages::outbound::{SendError, SendRequest};
use crate::net::{HttpClient, HttpOptions, NetError};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(send_media)).layer(Extension(MediaFetcher::default()))
}

/// The hardened client for media URLs, built on first use from the configuration and shared by
/// every request of this router.
#[derive(Clone, Default)]
struct MediaFetcher(Arc<OnceLock<HttpClient>>);

impl MediaFetcher {
    fn client(&self, config: &Config) -> Result<HttpClient, NetError> {
        if let Some(client) = self.0.get() {
            return Ok(client.clone());
        }
        let timeout = Duration::from_secs(config.whatsapp.media_fetch_timeout.max(1));
        let client = HttpClient::new(HttpOptions::new(timeout, config.webhooks.allow_private_targets))?;
        Ok(self.0.get_or_init(|| client).clone())
    }
}

/// The JSON form of a media send.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct SendMediaIn {
    /// The sending device: id or phone number. Aliases `pengirim`, `from`, `sender`.
    #[serde(alias = "pengirim", alias = "from", alias = "sender", deserialize_with = "string_or_number")]
    #[schema(value_type = String)]
    pub device: String,
    /// Recipient: a phone number in any common form, or a group id ending `@g.us`. Alias `nomor`.
    #[serde(alias = "nomor", alias = "number", deserialize_with = "string_or_number")]
    #[schema(value_type = String)]
    pub to: String,
    /// An http(s) URL the gateway downloads the media from. Give `url` or `base64`.
    #[serde(default)]
    pub url: Option<String>,
    /// The media as base64, or a data URL (`data:image/png;base64,...`).
    #[serde(default)]
    pub base64: Option<String>,
    /// Up to 1,024 characters. Aliases `pesan`, `text`, `message`.
    #[serde(default, alias = "pesan", alias = "text", alias = "message")]
    pub caption: Option<String>,
    /// The name shown for a document; defaults to the URL's or upload's name.
    #[serde(default)]
    pub filename: Option<String>,
    /// `image`, `video`, `audio` or `document`; detected from the content when left out.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Answer at once with status `queued` instead of waiting for the driver.
    #[serde(default, rename = "async")]
    pub asynchronous: bool,
}

/// The multipart form of a media send (for the OpenAPI document; parsed by hand).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct SendMediaForm {
    /// The file.
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
    /// Device id or phone. Aliases `pengirim`, `from`, `sender`.
    pub device: String,
    /// Recipient. Alias `nomor`.
    pub to: String,
    /// Aliases `pesan`, `text`, `message`.
    pub caption: Option<String>,
    pub filename: Option<String>,
    #[schema(rename = "type")]
    pub kind: Option<String>,
    /// `true` or `1` to answer at once with status `queued`.
    #[schema(rename = "async")]
    pub asynchronous: Option<String>,
}

/// Where the bytes come from.
enum Source {
    Upload { bytes: Vec<u8>, filename: Option<String>, content_type: Option<String> },
    Url(String),
    Base64(String),
}

/// A media send, whichever way it came.
struct MediaRequest {
    device: String,
    to: String,
    caption: Option<String>,
    filename: Option<String>,
    kind: Option<String>,
    asynchronous: bool,
    source: Source,
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

/// One of `url` and `base64`; `upload` only in forms.
fn pick_source(
    upload: Option<Source>,
    url: Option<String>,
    base64: Option<String>,
    field: &str,
) -> ApiResult<Source> {
    let url = non_empty(url).map(Source::Url);
    let base64 = non_empty(base64).map(Source::Base64);
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
            asynchronous: b.asynchronous,
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
            upload = Some(Source::Upload { bytes, filename, content_type });
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
            "url" => "url",
            "base64" => "base64",
            _ => continue,
        };
        let value = field.text().await.map_err(field_error)?;
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
    Ok(MediaRequest {
        source: pick_source(upload, text.remove("url"), text.remove("base64"), "file")?,
        device,
        to,
        caption: text.remove("caption"),
        filename: text.remove("filename"),
        kind: text.remove("type"),
        asynchronous,
    })
}

fn is_multipart(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.trim_start().to_ascii_lowercase().starts_with("multipart/form-data"))
}

/// Media errors: too large is 413, the rest 422 on the field at fault (`source` for empty media).
fn media_error(e: MediaError, source: &str) -> ApiError {
    match e {
        MediaError::TooLarge { .. } => ApiError::PayloadTooLarge(e.to_string()),
        other => ApiError::validation(other.field().unwrap_or(source), other.to_string()),
    }
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
    params(("Idempotency-Key" = Option<String>, Header, description = "repeat-safe key")),
    responses((status = 200, body = MessageOut), (status = 400, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody),
              (status = 413, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody),
              (status = 429, body = crate::error::ErrorBody)))]
async fn send_media(
    State(state): State<AppState>,
    tenant: Tenant,
    Extension(fetcher): Extension<MediaFetcher>,
    headers: HeaderMap,
    req: Request,
) -> ApiResult<Json<MessageOut>> {
    let key = idempotency_key(&headers)?;
    let body = if is_multipart(&headers) {
        read_form(req, &state).await?
    } else {
        let ApiJson(json) = ApiJson::<SendMediaIn>::from_request(req, &state).await?;
        MediaRequest::try_from(json)?
    };
    let device = resolve_device(&state, tenant.id, &body.device).await?;
    let to = parse_recipient(&state, &body.to, "to")?;
    let options = MediaOptions::parse(body.kind.as_deref(), body.caption, body.filename.as_deref())
        .map_err(|e| media_error(e, "type"))?;
    // Checked again by the send; checking first spares a download that cannot be sent.
    if state.devices.connected(device.id).is_none() {
        return Err(SendError::DeviceNotConnected.into());
    }
    let whatsapp = &state.config.whatsapp;
    let (bytes, declared, source_name, field) = match body.source {
        Source::Upload { bytes, filename, content_type } => (bytes, content_type, filename, "file"),
        Source::Base64(text) => {
            let decoded = decode_base64(&text).map_err(|e| media_error(e, "base64"))?;
            (decoded.bytes, decoded.mime, None, "base64")
        }
        Source::Url(url) => {
            let client = fetcher.client(&state.config).map_err(ApiError::internal)?;
            let (cap_kind, cap) = options.read_cap(whatsapp);
            match client.get_capped(&url, cap).await {
                Ok((bytes, content_type)) => (Vec::from(bytes), content_type, filename_from_url(&url), "url"),
                Err(NetError::TooLarge { max }) => {
                    return Err(media_error(MediaError::TooLarge { kind: cap_kind, max }, "url"))
                }
                Err(e) => return Err(ApiError::validation("url", format!("cannot fetch the media: {e}"))),
            }
        }
    };
    let media = options
        .build(bytes, declared.as_deref(), source_name.as_deref(), whatsapp)
        .map_err(|e| media_error(e, field))?;
    let row = state
        .outbound
        .send(SendRequest {
            tenant: tenant.id,
            package: tenant.package.clone(),
            device,
            to,
            text: media.caption.clone(),
            media: Some(media),
            source: "api",
            idempotency_key: key,
            asynchronous: body.asynchronous,
            require_connected: true,
        })
        .await?;
    state.tenants.record(tenant.activity("message.send_media", format!("message:{}", row.id))).await;
    Ok(Json(message_out(row)))
}
