//! WebAssembly plugins: `GET|POST /api/user/plugins`, `GET|PATCH|DELETE /api/user/plugins/{id}`,
//! `POST /api/user/plugins/{id}/test`.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{page, text_field, ApiJson, ApiQuery, Page, PageQuery, Tenant};
use super::media::multipart_error;
use super::ts;
use crate::db::plugins::PluginRow;
use crate::error::{ApiError, ApiResult};
use crate::plugins::hosts::AllowedHosts;
use crate::plugins::manage::{PluginChange, Trial, UploadFields, MAX_DEVICES};
use crate::plugins::runtime::RunReport;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_plugins, upload_plugin))
        .routes(routes!(get_plugin, patch_plugin, delete_plugin))
        .routes(routes!(test_plugin))
}

/// An uploaded plugin.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PluginOut {
    pub id: i64,
    pub name: String,
    /// Size of the component, in bytes.
    pub size: i64,
    /// SHA-256 of the component, hex.
    pub sha256: String,
    pub enabled: bool,
    /// Ids of the devices it runs for; empty: every device of the tenant.
    pub devices: Vec<i64>,
    /// Whether it runs for messages in groups (false: direct chats only).
    pub groups: bool,
    /// The hosts it may reach over HTTP (world 0.3.0): exact names or IP addresses, or
    /// `*.example.com` for the names under a domain. Empty: none.
    pub allowed_hosts: Vec<String>,
    /// Whether its run log keeps the bodies of its HTTP requests and responses.
    pub log_http_bodies: bool,
    /// `auto_reply` (runs for inbound messages on its devices) or `transform` (shapes the
    /// events of the webhook endpoints that name it), from the world its component implements.
    #[schema(value_type = PluginKindOut)]
    pub kind: String,
    /// Plugins run in ascending `order`, then oldest first.
    pub order: i64,
    /// The plugin's configuration, passed to every run.
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
    /// Failed runs in a row; reaching `[plugins] disable_after_failures` disables the plugin.
    pub failures: i64,
    /// Why the gateway disabled it, until it is enabled again.
    pub disabled_reason: Option<String>,
    /// When the gateway disabled it for failing; it may be enabled again
    /// `[plugins] reenable_cooldown` seconds later.
    pub disabled_at: Option<String>,
    pub runs: i64,
    pub last_run_at: Option<String>,
    pub last_outcome: Option<String>,
    /// When the stored compiled code was made (a restart loads it without compiling).
    pub compiled_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

pub fn plugin_out(r: PluginRow) -> PluginOut {
    PluginOut {
        id: r.id,
        devices: r.device_ids(),
        config: serde_json::from_str(&r.config).unwrap_or_else(|_| serde_json::json!({})),
        name: r.name,
        size: r.size,
        sha256: r.sha256,
        enabled: r.enabled,
        order: r.run_order,
        groups: r.in_groups,
        allowed_hosts: AllowedHosts::from_stored(Some(&r.allowed_hosts)).as_slice().to_vec(),
        log_http_bodies: r.log_http_bodies,
        kind: r.kind,
        failures: r.failures,
        disabled_reason: r.disabled_reason,
        disabled_at: r.disabled_at.map(ts),
        runs: r.runs,
        last_run_at: r.last_run_at.map(ts),
        last_outcome: r.last_outcome,
        compiled_at: r.compiled_at.map(ts),
        created_at: ts(r.created_at),
        updated_at: ts(r.updated_at),
    }
}

/// What a plugin is for.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // Documents `kind`, stored as text.
pub enum PluginKindOut {
    AutoReply,
    Transform,
}

/// The multipart form of an upload (for the OpenAPI document; parsed by hand).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct PluginForm {
    /// The component (`.wasm`).
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// A name, unique among the tenant's plugins: 1 to 100 characters, no control characters.
    #[schema(
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*$",
        max_length = 100
    )]
    name: String,
    /// `true` (default) or `false`.
    #[schema(value_type = Option<PluginFlag>)]
    enabled: Option<String>,
    /// Device ids or phone numbers, comma-separated; empty: every device.
    devices: Option<String>,
    /// Plugins run in ascending order (default 0).
    order: Option<i64>,
    /// The configuration: JSON text, at most 64 KiB.
    #[schema(content_media_type = "application/json")]
    config: Option<String>,
}

/// `enabled` of an upload.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // Documents the upload's `enabled`, parsed as text.
enum PluginFlag {
    True,
    False,
    #[schema(rename = "1")]
    One,
    #[schema(rename = "0")]
    Zero,
    /// Left empty: `true`.
    #[schema(rename = "")]
    Empty,
}

/// The settings of a raw upload, as query parameters (a form carries them as parts instead).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Read by hand in `upload_plugin`.
struct RawUploadQuery {
    /// The plugin's name; required for a raw upload.
    name: Option<String>,
    #[param(value_type = Option<PluginFlag>, inline)]
    enabled: Option<String>,
    /// Device ids or phone numbers, comma-separated.
    devices: Option<String>,
    order: Option<i64>,
    /// The configuration as JSON text.
    config: Option<String>,
}

/// Settings given with an upload (query string of a raw upload, text parts of a form).
#[derive(Default)]
struct UploadSettings {
    name: Option<String>,
    enabled: Option<String>,
    devices: Option<String>,
    order: Option<String>,
    config: Option<String>,
}

/// Uploads a plugin: a WebAssembly component for the `wa-gateway:plugin/auto-reply` world.
///
/// Either `multipart/form-data` with the part `file` and the text part `name` (optional parts
/// `enabled`, `devices`, `order`, `config`), or the raw component with
/// `Content-Type: application/wasm` and `?name=` (the same settings as query parameters).
/// The component is validated against the world and compiled before it is stored: anything
/// else (junk, a core module, a component for another world, one importing WASI) is 422 with
/// the reason. Larger than `[plugins] max_size`: 413. Counted against the package's `plugins`.
/// A new plugin is enabled and runs for every device unless the settings say otherwise.
#[utoipa::path(post, path = "/api/user/plugins", tag = "plugins",
    request_body(content((PluginForm = "multipart/form-data"), (Vec<u8> = "application/wasm"))),
    params(RawUploadQuery),
    responses((status = 201, body = PluginOut), (status = 404, description = "No such device."),
              (status = 409, description = "A plugin with this name exists."),
              (status = 413, description = "The component is larger than `[plugins] max_size`."),
              (status = 422, description = "Not a valid plugin (the reason says why), or a setting is not valid."),
              (status = 429, description = "The package's `plugins` limit is reached, or the rate limit.")))]
async fn upload_plugin(
    State(state): State<AppState>,
    tenant: Tenant,
    headers: HeaderMap,
    req: Request,
) -> ApiResult<(StatusCode, Json<PluginOut>)> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let (wasm, settings) = if content_type.starts_with("multipart/form-data") {
        read_form(req, &state).await?
    } else if content_type.starts_with("application/wasm")
        || content_type.starts_with("application/octet-stream")
    {
        let query: HashMap<String, String> =
            serde_urlencoded::from_str(req.uri().query().unwrap_or_default()).unwrap_or_default();
        let bytes = Bytes::from_request(req, &state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge("request body is too large".into())
            } else {
                ApiError::BadRequest(e.body_text())
            }
        })?;
        let mut q = query;
        let settings = UploadSettings {
            name: q.remove("name"),
            enabled: q.remove("enabled"),
            devices: q.remove("devices"),
            order: q.remove("order"),
            config: q.remove("config"),
        };
        (bytes.to_vec(), settings)
    } else {
        return Err(ApiError::UnsupportedMediaType(
            "upload the component as multipart/form-data (part `file`) or as application/wasm".into(),
        ));
    };
    let fields = UploadFields {
        name: settings.name,
        enabled: settings.enabled,
        devices: settings.devices.as_deref().unwrap_or_default().split(',').map(str::to_string).collect(),
        order: settings.order,
        config: settings.config,
    };
    let row = state.plugins.upload(&tenant, wasm, fields).await?;
    Ok((StatusCode::CREATED, Json(plugin_out(row))))
}

/// Reads the upload form: one `file` part and the settings' text parts.
async fn read_form(req: Request, state: &AppState) -> ApiResult<(Vec<u8>, UploadSettings)> {
    let mut form =
        Multipart::from_request(req, state).await.map_err(|e| multipart_error(e.status(), e.body_text()))?;
    let mut file = None;
    let mut settings = UploadSettings::default();
    while let Some(field) = form.next_field().await.map_err(|e| multipart_error(e.status(), e.body_text()))? {
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" {
            if file.is_some() {
                return Err(ApiError::validation("file", "upload one component"));
            }
            file =
                Some(field.bytes().await.map_err(|e| multipart_error(e.status(), e.body_text()))?.to_vec());
            continue;
        }
        let slot = match name.as_str() {
            "name" => &mut settings.name,
            "enabled" => &mut settings.enabled,
            "devices" => &mut settings.devices,
            "order" => &mut settings.order,
            "config" => &mut settings.config,
            _ => continue,
        };
        let value =
            text_field(&name, field.text().await.map_err(|e| multipart_error(e.status(), e.body_text()))?)?;
        if slot.replace(value).is_some() {
            return Err(ApiError::validation(name, "given more than once"));
        }
    }
    let file = file.ok_or_else(|| ApiError::validation("file", "missing the `file` part"))?;
    Ok((file, settings))
}

fn plugin_id(raw: &str) -> ApiResult<i64> {
    raw.trim().parse().map_err(|_| ApiError::not_found("plugin"))
}

async fn load(state: &AppState, tenant: &Tenant, id: &str) -> ApiResult<PluginRow> {
    state.plugins.get(tenant, plugin_id(id)?).await
}

/// The tenant's plugins in the order they run.
#[utoipa::path(get, path = "/api/user/plugins", tag = "plugins", params(PageQuery),
    responses((status = 200, body = Page<PluginOut>)))]
async fn list_plugins(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<PluginOut>>> {
    let (limit, offset) = page(q.limit, q.offset)?;
    let (rows, total) = state.plugins.list(&tenant, limit, offset).await?;
    Ok(Json(Page { data: rows.into_iter().map(plugin_out).collect(), total, limit, offset }))
}

/// One plugin.
#[utoipa::path(get, path = "/api/user/plugins/{id}", tag = "plugins",
    params(("id" = i64, Path, description = "The plugin's id.")),
    responses((status = 200, body = PluginOut)))]
async fn get_plugin(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<PluginOut>> {
    Ok(Json(plugin_out(load(&state, &tenant, &id).await?)))
}

/// What to change; fields left out keep their value.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginPatchIn {
    /// 1 to 100 characters, no control characters.
    #[schema(
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*$",
        max_length = 100
    )]
    pub name: Option<String>,
    /// Enabling a plugin the gateway disabled clears its failure count.
    pub enabled: Option<bool>,
    /// Up to 1,000 device ids or phone numbers (strings or numbers); `[]`: every device of
    /// the tenant.
    #[schema(schema_with = plugin_devices)]
    pub devices: Option<Vec<serde_json::Value>>,
    #[serde(default, deserialize_with = "super::messages::opt_whole_i64")]
    pub order: Option<i64>,
    /// Any JSON (at most 64 KiB), passed to every run.
    #[schema(value_type = Option<Object>)]
    pub config: Option<serde_json::Value>,
    /// Run for messages in groups too (new plugins do); false: direct chats only.
    pub groups: Option<bool>,
    /// The hosts the plugin may reach over HTTP, replacing the list: up to 50 exact names or
    /// IP addresses (`api.toko.id`, `203.0.113.7`) or `*.example.com` for the names under a
    /// domain; no scheme, port or path. `[]`: none.
    #[schema(max_items = 50)]
    pub allowed_hosts: Option<Vec<String>>,
    /// Keep the bodies of its HTTP requests and responses in the run log (cut to 4 KiB).
    pub log_http_bodies: Option<bool>,
}

/// The schema of [`PluginPatchIn::devices`].
fn plugin_devices() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(ObjectBuilder::new().schema_type(SchemaType::from_iter([Type::String, Type::Number])))
        .max_items(Some(MAX_DEVICES))
        .description(Some(
            "Up to 1,000 device ids or phone numbers (strings or numbers); `[]`: every device of \
             the tenant.",
        ))
        .build()
}

/// Changes a plugin's name, `enabled`, `devices`, `order`, `config`, `groups`, `allowed_hosts`
/// or `log_http_bodies`.
#[utoipa::path(patch, path = "/api/user/plugins/{id}", tag = "plugins", request_body = PluginPatchIn,
    params(("id" = i64, Path, description = "The plugin's id.")),
    responses((status = 200, body = PluginOut), (status = 404, description = "No such plugin or device."),
              (status = 409, description = "A plugin with this name exists.")))]
async fn patch_plugin(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PluginPatchIn>,
) -> ApiResult<Json<PluginOut>> {
    let devices = match body.devices {
        None => None,
        Some(list) => Some(
            list.into_iter()
                .map(|d| match d {
                    serde_json::Value::String(s) => Ok(s),
                    serde_json::Value::Number(n) => Ok(n.to_string()),
                    _ => Err(ApiError::validation("devices", "give device ids or phone numbers")),
                })
                .collect::<ApiResult<Vec<String>>>()?,
        ),
    };
    let change = PluginChange {
        name: body.name,
        enabled: body.enabled,
        devices,
        order: body.order,
        config: body.config,
        groups: body.groups,
        allowed_hosts: body.allowed_hosts,
        log_http_bodies: body.log_http_bodies,
    };
    Ok(Json(plugin_out(state.plugins.update(&tenant, plugin_id(&id)?, change).await?)))
}

/// Deletes a plugin and its key-value data.
#[utoipa::path(delete, path = "/api/user/plugins/{id}", tag = "plugins",
    params(("id" = i64, Path, description = "The plugin's id.")),
    responses((status = 204, description = "Deleted.")))]
async fn delete_plugin(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.plugins.delete(&tenant, plugin_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A sample message for a dry run. Everything is optional.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginTestIn {
    /// Default `"halo"`.
    #[serde(alias = "message", alias = "pesan")]
    pub text: Option<String>,
    /// The sender's number; default `6281234567890`.
    pub sender: Option<String>,
    pub push_name: Option<String>,
    /// The chat; default the sender's chat.
    pub chat: Option<String>,
    pub is_group: Option<bool>,
    /// Device id or phone number the message "arrived" at; default the plugin's first device,
    /// else the tenant's first.
    pub device: Option<String>,
    /// Overrides the stored configuration for this run.
    #[schema(value_type = Option<Object>)]
    pub config: Option<serde_json::Value>,
    /// For a transformation: the event type it is given; default `message.received`.
    #[schema(schema_with = event_name)]
    pub event: Option<String>,
    /// For a transformation: the event's `data`; default a `message.received` of the sample
    /// message above.
    #[schema(value_type = Option<Object>)]
    pub data: Option<serde_json::Value>,
}

/// The schema of a dry run's `event`: a known event name.
fn event_name() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .enum_values(Some(crate::webhooks::EventType::ALL.map(|e| e.as_str())))
        .description(Some("For a transformation: the event type it is given; default `message.received`."))
        .build()
}

/// What a run decided.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PluginTestOut {
    /// `success`, `error`, `trap`, `timeout`, `memory`, `output_too_large`, `invalid_output`.
    pub outcome: String,
    /// The actions and `stop`, when the run succeeded.
    #[schema(value_type = Option<Object>)]
    pub decision: Option<serde_json::Value>,
    /// What a transformation returned, when it succeeded: `{"action": "send", body,
    /// content_type, headers, path}` or `{"action": "skip"}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub transformed: Option<serde_json::Value>,
    pub error: Option<String>,
    /// The lines the plugin logged (`{level, message}`).
    #[schema(value_type = Vec<Object>)]
    pub logs: Vec<serde_json::Value>,
    /// The HTTP requests the plugin made (a dry run makes them for real):
    /// `{"calls": [{method, host, status, latency_ms, outcome, error}], "over_cap": n}`.
    #[schema(value_type = Object)]
    pub http: serde_json::Value,
    pub latency_ms: f64,
}

pub fn test_out(report: RunReport) -> PluginTestOut {
    PluginTestOut {
        outcome: report.outcome.as_str().to_string(),
        decision: report.decision.as_ref().and_then(|d| serde_json::to_value(d).ok()),
        transformed: report.transformed.as_ref().and_then(|t| serde_json::to_value(t).ok()),
        error: report.error,
        logs: report.logs.iter().filter_map(|l| serde_json::to_value(l).ok()).collect(),
        http: serde_json::to_value(&report.http).unwrap_or_default(),
        latency_ms: report.latency.as_secs_f64() * 1000.0,
    }
}

/// Runs the plugin on a sample message and returns its decision, logs and HTTP requests.
/// Nothing is sent to WhatsApp or recorded, and key-value writes are discarded (reads see the stored data). Runs even when
/// the plugin is disabled, so a fix can be tried before enabling it again.
#[utoipa::path(post, path = "/api/user/plugins/{id}/test", tag = "plugins", request_body = PluginTestIn,
    params(("id" = i64, Path, description = "The plugin's id.")),
    responses((status = 200, body = PluginTestOut), (status = 404, description = "No such plugin or device.")))]
async fn test_plugin(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PluginTestIn>,
) -> ApiResult<Json<PluginTestOut>> {
    let trial = Trial {
        text: body.text,
        sender: body.sender,
        push_name: body.push_name,
        chat: body.chat,
        is_group: body.is_group,
        device: body.device,
        config: body.config,
        event: body.event,
        data: body.data,
    };
    Ok(Json(test_out(state.plugins.try_run(&tenant, plugin_id(&id)?, trial).await?)))
}
