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

use super::devices::resolve_device;
use super::extract::{ApiJson, ApiQuery, Page, PageQuery, Tenant};
use super::media::multipart_error;
use super::ts;
use crate::app::AppState;
use crate::db::page;
use crate::db::plugins::{PluginPatch, PluginRow};
use crate::error::{ApiError, ApiResult};
use crate::limits::{LimitError, Resource};
use crate::plugins::runtime::{PluginContext, PluginMessage, RunReport};
use crate::plugins::service::{Upload, UploadError};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_plugins, upload_plugin))
        .routes(routes!(get_plugin, patch_plugin, delete_plugin))
        .routes(routes!(test_plugin))
}

/// Longest plugin name, in characters.
const MAX_NAME_CHARS: usize = 100;
/// Largest plugin configuration, in bytes of JSON.
const MAX_CONFIG_BYTES: usize = 64 * 1024;
/// Most devices a plugin can be attached to by id.
const MAX_DEVICES: usize = 1000;

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
    /// Plugins run in ascending `order`, then oldest first.
    pub order: i64,
    /// The plugin's configuration, passed to every run.
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
    /// Failed runs in a row; reaching `[plugins] disable_after_failures` disables the plugin.
    pub failures: i64,
    /// Why the gateway disabled it, until it is enabled again.
    pub disabled_reason: Option<String>,
    pub runs: i64,
    pub last_run_at: Option<String>,
    pub last_outcome: Option<String>,
    /// When the stored compiled code was made (a restart loads it without compiling).
    pub compiled_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

fn plugin_out(r: PluginRow) -> PluginOut {
    PluginOut {
        id: r.id,
        devices: r.device_ids(),
        config: serde_json::from_str(&r.config).unwrap_or_else(|_| serde_json::json!({})),
        name: r.name,
        size: r.size,
        sha256: r.sha256,
        enabled: r.enabled,
        order: r.run_order,
        failures: r.failures,
        disabled_reason: r.disabled_reason,
        runs: r.runs,
        last_run_at: r.last_run_at.map(ts),
        last_outcome: r.last_outcome,
        compiled_at: r.compiled_at.map(ts),
        created_at: ts(r.created_at),
        updated_at: ts(r.updated_at),
    }
}

/// The multipart form of an upload (for the OpenAPI document; parsed by hand).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct PluginForm {
    /// The component (`.wasm`).
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// A name, unique among the tenant's plugins.
    name: String,
    /// `true` (default) or `false`.
    enabled: Option<String>,
    /// Device ids or phone numbers, comma-separated; empty: every device.
    devices: Option<String>,
    order: Option<i64>,
    /// JSON.
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
    params(("name" = Option<String>, Query, description = "the name, for a raw upload")),
    responses((status = 201, body = PluginOut), (status = 409, body = crate::error::ErrorBody),
              (status = 413, body = crate::error::ErrorBody), (status = 415, body = crate::error::ErrorBody),
              (status = 422, body = crate::error::ErrorBody), (status = 429, body = crate::error::ErrorBody)))]
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
    let name = check_name(settings.name.as_deref())?;
    let enabled = match settings.enabled.as_deref().map(|s| s.trim().to_ascii_lowercase()) {
        None => true,
        Some(v) if v.is_empty() || v == "true" || v == "1" => true,
        Some(v) if v == "false" || v == "0" => false,
        Some(_) => return Err(ApiError::validation("enabled", "must be true or false")),
    };
    let mut devices = Vec::new();
    for d in settings.devices.as_deref().unwrap_or_default().split(',').filter(|d| !d.trim().is_empty()) {
        devices.push(resolve_device(&state, tenant.id, d).await?.id);
    }
    let run_order = match settings.order.as_deref().map(str::trim).filter(|o| !o.is_empty()) {
        None => 0,
        Some(o) => o.parse().map_err(|_| ApiError::validation("order", "must be a whole number"))?,
    };
    let config = match settings.config.as_deref().filter(|c| !c.trim().is_empty()) {
        None => "{}".to_string(),
        Some(c) => {
            let value: serde_json::Value = serde_json::from_str(c)
                .map_err(|e| ApiError::validation("config", format!("must be JSON: {e}")))?;
            check_config(&value)?
        }
    };
    if wasm.is_empty() {
        return Err(ApiError::validation("file", "the component is empty"));
    }
    let limit = state.limits.limits(tenant.id, &tenant.package).await?.get(Resource::Plugins);
    let upload = Upload { name, wasm, enabled, devices, run_order, config };
    let row = state.plugins.upload(tenant.id, upload, limit).await.map_err(|e| match e {
        UploadError::TooLarge { .. } => ApiError::PayloadTooLarge(e.to_string()),
        UploadError::Invalid(why) => ApiError::validation("file", format!("not a valid plugin: {why}")),
        UploadError::OverLimit => LimitError::Exceeded { limit: Resource::Plugins }.into(),
        UploadError::NameTaken => ApiError::Conflict("a plugin with this name exists".into()),
        UploadError::Db(e) => e.into(),
        UploadError::Internal(why) => ApiError::internal(anyhow::anyhow!(why)),
    })?;
    state.tenants.record(tenant.activity("plugin.upload", format!("plugin:{}", row.id))).await;
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
        let value = field.text().await.map_err(|e| multipart_error(e.status(), e.body_text()))?;
        if slot.replace(value).is_some() {
            return Err(ApiError::validation(name, "given more than once"));
        }
    }
    let file = file.ok_or_else(|| ApiError::validation("file", "missing the `file` part"))?;
    Ok((file, settings))
}

fn check_name(name: Option<&str>) -> ApiResult<String> {
    let name = name.map(str::trim).unwrap_or_default();
    if name.is_empty() {
        return Err(ApiError::validation("name", "missing field `name`"));
    }
    if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(ApiError::validation(
            "name",
            format!("must be 1 to {MAX_NAME_CHARS} characters without control characters"),
        ));
    }
    Ok(name.to_string())
}

fn check_config(value: &serde_json::Value) -> ApiResult<String> {
    let text = value.to_string();
    if text.len() > MAX_CONFIG_BYTES {
        return Err(ApiError::validation(
            "config",
            format!("must be at most {MAX_CONFIG_BYTES} bytes of JSON"),
        ));
    }
    Ok(text)
}

fn plugin_id(raw: &str) -> ApiResult<i64> {
    raw.trim().parse().map_err(|_| ApiError::not_found("plugin"))
}

async fn load(state: &AppState, tenant: &Tenant, id: &str) -> ApiResult<PluginRow> {
    state.db.plugin(tenant.id, plugin_id(id)?).await?.ok_or_else(|| ApiError::not_found("plugin"))
}

/// The tenant's plugins in the order they run.
#[utoipa::path(get, path = "/api/user/plugins", tag = "plugins", params(PageQuery),
    responses((status = 200, body = Page<PluginOut>)))]
async fn list_plugins(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<PluginOut>>> {
    let (limit, offset) = page(q.limit, q.offset);
    let (rows, total) = state.db.list_plugins(tenant.id, limit, offset).await?;
    Ok(Json(Page { data: rows.into_iter().map(plugin_out).collect(), total, limit, offset }))
}

/// One plugin.
#[utoipa::path(get, path = "/api/user/plugins/{id}", tag = "plugins",
    responses((status = 200, body = PluginOut), (status = 404, body = crate::error::ErrorBody)))]
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
    pub name: Option<String>,
    /// Enabling a plugin the gateway disabled clears its failure count.
    pub enabled: Option<bool>,
    /// Device ids or phone numbers; `[]`: every device of the tenant.
    #[schema(value_type = Option<Vec<String>>)]
    pub devices: Option<Vec<serde_json::Value>>,
    pub order: Option<i64>,
    /// Any JSON (at most 64 KiB), passed to every run.
    #[schema(value_type = Option<Object>)]
    pub config: Option<serde_json::Value>,
}

/// Changes a plugin's name, `enabled`, `devices`, `order` or `config`.
#[utoipa::path(patch, path = "/api/user/plugins/{id}", tag = "plugins", request_body = PluginPatchIn,
    responses((status = 200, body = PluginOut), (status = 404, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
async fn patch_plugin(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PluginPatchIn>,
) -> ApiResult<Json<PluginOut>> {
    let current = load(&state, &tenant, &id).await?;
    let name = match body.name.as_deref() {
        Some(n) => Some(check_name(Some(n))?),
        None => None,
    };
    let devices = match body.devices {
        None => None,
        Some(list) if list.len() > MAX_DEVICES => {
            return Err(ApiError::validation("devices", format!("at most {MAX_DEVICES} devices")))
        }
        Some(list) => {
            let mut ids = Vec::with_capacity(list.len());
            for d in list {
                let reference = match d {
                    serde_json::Value::String(s) => s,
                    serde_json::Value::Number(n) => n.to_string(),
                    _ => return Err(ApiError::validation("devices", "give device ids or phone numbers")),
                };
                let id = resolve_device(&state, tenant.id, &reference).await?.id;
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            Some(ids)
        }
    };
    let config = match &body.config {
        Some(v) => Some(check_config(v)?),
        None => None,
    };
    let patch = PluginPatch { name, enabled: body.enabled, devices, run_order: body.order, config };
    let row = match state.db.update_plugin(tenant.id, current.id, &patch).await {
        Ok(Some(row)) => row,
        Ok(None) => return Err(ApiError::not_found("plugin")),
        Err(crate::db::DbError::Conflict(_)) => {
            return Err(ApiError::Conflict("a plugin with this name exists".into()))
        }
        Err(e) => return Err(e.into()),
    };
    state.tenants.record(tenant.activity("plugin.update", format!("plugin:{}", row.id))).await;
    Ok(Json(plugin_out(row)))
}

/// Deletes a plugin and its key-value data.
#[utoipa::path(delete, path = "/api/user/plugins/{id}", tag = "plugins",
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
async fn delete_plugin(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = plugin_id(&id)?;
    if !state.db.delete_plugin(tenant.id, id).await? {
        return Err(ApiError::not_found("plugin"));
    }
    state.plugins.forget(id);
    state.tenants.record(tenant.activity("plugin.delete", format!("plugin:{id}"))).await;
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
}

/// What a run decided.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PluginTestOut {
    /// `success`, `error`, `trap`, `timeout`, `memory`, `output_too_large`, `invalid_output`.
    pub outcome: String,
    /// The actions and `stop`, when the run succeeded.
    #[schema(value_type = Option<Object>)]
    pub decision: Option<serde_json::Value>,
    pub error: Option<String>,
    /// The lines the plugin logged (`{level, message}`).
    #[schema(value_type = Vec<Object>)]
    pub logs: Vec<serde_json::Value>,
    pub latency_ms: f64,
}

fn test_out(report: RunReport) -> PluginTestOut {
    PluginTestOut {
        outcome: report.outcome.as_str().to_string(),
        decision: report.decision.as_ref().and_then(|d| serde_json::to_value(d).ok()),
        error: report.error,
        logs: report.logs.iter().filter_map(|l| serde_json::to_value(l).ok()).collect(),
        latency_ms: report.latency.as_secs_f64() * 1000.0,
    }
}

/// Runs the plugin on a sample message and returns its decision and logs. Nothing is sent or
/// recorded, and key-value writes are discarded (reads see the stored data). Runs even when
/// the plugin is disabled, so a fix can be tried before enabling it again.
#[utoipa::path(post, path = "/api/user/plugins/{id}/test", tag = "plugins", request_body = PluginTestIn,
    responses((status = 200, body = PluginTestOut), (status = 404, body = crate::error::ErrorBody),
              (status = 422, body = crate::error::ErrorBody)))]
async fn test_plugin(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PluginTestIn>,
) -> ApiResult<Json<PluginTestOut>> {
    let row = load(&state, &tenant, &id).await?;
    let device = match body.device.as_deref() {
        Some(d) => Some(resolve_device(&state, tenant.id, d).await?),
        None => match row.device_ids().first() {
            Some(id) => state.db.device(tenant.id, *id).await?,
            None => state.db.list_devices(tenant.id, 1, 0).await?.0.into_iter().next(),
        },
    };
    let sender = body.sender.unwrap_or_else(|| "6281234567890".into());
    let chat = body.chat.unwrap_or_else(|| format!("{sender}@s.whatsapp.net"));
    let config = match &body.config {
        Some(v) => check_config(v)?,
        None => row.config.clone(),
    };
    let input = crate::plugins::runtime::RunInput {
        message: PluginMessage {
            id: 0,
            wa_id: "TEST".into(),
            chat,
            sender,
            push_name: body.push_name,
            is_group: body.is_group.unwrap_or(false),
            text: Some(body.text.unwrap_or_else(|| "halo".into())),
            media: None,
            timestamp_ms: crate::db::now_ms(),
        },
        context: PluginContext {
            tenant_id: tenant.id,
            device_id: device.as_ref().map_or(0, |d| d.id),
            device_phone: device.map(|d| d.phone).unwrap_or_default(),
            plugin_id: row.id,
            config,
        },
    };
    Ok(Json(test_out(state.plugins.run(&row, input, true).await)))
}
