//! Devices: create, list, pair (QR, pair code), live status and events, logout, reset.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, ApiQuery, Page, PageQuery, Tenant};
use super::ts;
use crate::app::AppState;
use crate::db::devices::CreateDevice;
use crate::db::{page, DeviceRow};
use crate::devices::driver::DriverError;
use crate::devices::manager::{DeviceError, DeviceStatus, DeviceUpdate, LiveStatus};
use crate::devices::qr;
use crate::error::{ApiError, ApiResult};
use crate::limits::{LimitError, Resource};
use crate::messages::phone::normalize_device_phone;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_devices, create_device))
        .routes(routes!(list_device_statuses))
        .routes(routes!(get_device, patch_device, delete_device))
        .routes(routes!(get_device_qr))
        .routes(routes!(create_pair_code))
        .routes(routes!(device_events))
        .routes(routes!(logout_device))
        .routes(routes!(reset_session))
        .routes(routes!(check_numbers))
}

impl From<DeviceError> for ApiError {
    fn from(e: DeviceError) -> Self {
        match e {
            DeviceError::AlreadyConnected => ApiError::Conflict(e.to_string()),
            DeviceError::NotConnected => ApiError::DeviceNotConnected(e.to_string()),
            DeviceError::NoQrYet => ApiError::Unavailable(e.to_string()),
            DeviceError::Driver(DriverError::NotConnected) => ApiError::DeviceNotConnected(e.to_string()),
            DeviceError::Driver(DriverError::Invalid(m)) => ApiError::BadRequest(m),
            DeviceError::Driver(DriverError::Failed(m)) => ApiError::Unavailable(format!("WhatsApp: {m}")),
            DeviceError::Db(d) => d.into(),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DeviceOut {
    pub id: i64,
    pub phone: String,
    pub name: String,
    /// `disconnected`, `connecting`, `qr`, `connected` or `logged_out`.
    pub status: DeviceStatus,
    /// Why the device is in this state, when there is something to say.
    pub detail: Option<String>,
    /// The WhatsApp account this device is linked to, once paired.
    pub jid: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

pub fn device_out(row: DeviceRow, live: LiveStatus) -> DeviceOut {
    DeviceOut {
        id: row.id,
        phone: row.phone,
        name: row.name,
        status: live.status,
        detail: live.detail,
        jid: row.jid,
        created_at: ts(row.created_at),
        updated_at: ts(row.updated_at),
    }
}

/// Finds one of the tenant's devices by id or by phone number; another tenant's is not found.
pub async fn resolve_device(state: &AppState, tenant: i64, reference: &str) -> ApiResult<DeviceRow> {
    let reference = reference.trim();
    if let Ok(id) = reference.parse::<i64>() {
        if let Some(d) = state.db.device(tenant, id).await? {
            return Ok(d);
        }
    }
    if let Ok(phone) = normalize_device_phone(reference, &state.config.whatsapp.default_country_code) {
        if let Some(d) = state.db.device_by_phone(tenant, &phone).await? {
            return Ok(d);
        }
    }
    Err(ApiError::not_found("device"))
}

/// The tenant's devices with their live status.
#[utoipa::path(get, path = "/api/user/devices", tag = "devices", params(PageQuery),
    responses((status = 200, body = Page<DeviceOut>)))]
async fn list_devices(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<DeviceOut>>> {
    let (limit, offset) = page(q.limit, q.offset);
    let (rows, total) = state.db.list_devices(tenant.id, limit, offset).await?;
    let data = rows
        .into_iter()
        .map(|r| {
            let live = state.devices.status_of(&r);
            device_out(r, live)
        })
        .collect();
    Ok(Json(Page { data, total, limit, offset }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceIn {
    /// The WhatsApp number of the phone to link, in any common form.
    #[serde(deserialize_with = "super::messages::string_or_number")]
    #[schema(value_type = String)]
    pub phone: String,
    /// A label, e.g. "Toko pusat". Defaults to the number.
    pub name: Option<String>,
}

/// Adds a device (within the package's device limit) and starts pairing it.
#[utoipa::path(post, path = "/api/user/devices", tag = "devices", request_body = DeviceIn,
    responses((status = 201, body = DeviceOut), (status = 409, body = crate::error::ErrorBody),
              (status = 422, body = crate::error::ErrorBody), (status = 429, body = crate::error::ErrorBody)))]
async fn create_device(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiJson(body): ApiJson<DeviceIn>,
) -> ApiResult<(StatusCode, Json<DeviceOut>)> {
    let phone = normalize_device_phone(&body.phone, &state.config.whatsapp.default_country_code)
        .map_err(|e| ApiError::validation("phone", e.to_string()))?;
    let name =
        body.name.map(|n| n.trim().to_string()).filter(|n| !n.is_empty()).unwrap_or_else(|| phone.clone());
    if name.chars().count() > 100 {
        return Err(ApiError::validation("name", "must be at most 100 characters"));
    }
    let limit = state.limits.limits(tenant.id, &tenant.package).await?.get(Resource::Devices);
    let row = match state.db.create_device(tenant.id, &phone, &name, limit).await? {
        CreateDevice::Created(row) => row,
        CreateDevice::OverLimit => return Err(LimitError::Exceeded { limit: Resource::Devices }.into()),
    };
    state.tenants.record(tenant.activity("device.create", format!("device:{}", row.id))).await;
    state.devices.start(&row);
    let live = state.devices.status_of(&row);
    Ok((StatusCode::CREATED, Json(device_out(row, live))))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DeviceStatusOut {
    pub id: i64,
    pub phone: String,
    pub name: String,
    pub status: DeviceStatus,
    pub detail: Option<String>,
    /// When the device entered this status.
    pub since: String,
}

/// Each device's live status.
#[utoipa::path(get, path = "/api/user/devices/status", tag = "devices",
    responses((status = 200, body = Page<DeviceStatusOut>)))]
async fn list_device_statuses(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<DeviceStatusOut>>> {
    let (limit, offset) = page(q.limit, q.offset);
    let (rows, total) = state.db.list_devices(tenant.id, limit, offset).await?;
    let data = rows
        .into_iter()
        .map(|r| {
            let live = state.devices.status_of(&r);
            DeviceStatusOut {
                id: r.id,
                phone: r.phone,
                name: r.name,
                status: live.status,
                detail: live.detail,
                since: live.since.to_rfc3339(),
            }
        })
        .collect();
    Ok(Json(Page { data, total, limit, offset }))
}

/// One device.
#[utoipa::path(get, path = "/api/user/devices/{id}", tag = "devices",
    responses((status = 200, body = DeviceOut), (status = 404, body = crate::error::ErrorBody)))]
async fn get_device(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<DeviceOut>> {
    let row = resolve_device(&state, tenant.id, &id).await?;
    let live = state.devices.status_of(&row);
    Ok(Json(device_out(row, live)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DevicePatch {
    pub name: Option<String>,
}

/// Renames a device.
#[utoipa::path(patch, path = "/api/user/devices/{id}", tag = "devices", request_body = DevicePatch,
    responses((status = 200, body = DeviceOut), (status = 404, body = crate::error::ErrorBody)))]
async fn patch_device(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DevicePatch>,
) -> ApiResult<Json<DeviceOut>> {
    let row = resolve_device(&state, tenant.id, &id).await?;
    let row = match body.name.map(|n| n.trim().to_string()) {
        Some(n) if n.is_empty() || n.chars().count() > 100 => {
            return Err(ApiError::validation("name", "must be 1 to 100 characters"))
        }
        Some(n) => {
            let updated = state
                .db
                .rename_device(tenant.id, row.id, &n)
                .await?
                .ok_or_else(|| ApiError::not_found("device"))?;
            state.tenants.record(tenant.activity("device.update", format!("device:{}", row.id))).await;
            updated
        }
        None => row,
    };
    let live = state.devices.status_of(&row);
    Ok(Json(device_out(row, live)))
}

/// Deletes a device: its session is closed and its keys, messages and queue are removed.
#[utoipa::path(delete, path = "/api/user/devices/{id}", tag = "devices",
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
async fn delete_device(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let row = resolve_device(&state, tenant.id, &id).await?;
    state.devices.remove(row.id).await;
    if !state.db.delete_device(tenant.id, row.id).await? {
        return Err(ApiError::not_found("device"));
    }
    state.tenants.record(tenant.activity("device.delete", format!("device:{}", row.id))).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct QrOut {
    /// The string to encode in a QR code (what the phone scans).
    pub qr: String,
    /// The same code as an SVG image.
    pub svg: String,
    pub expires_at: String,
}

/// The current pairing QR code, as JSON with an SVG, or as a PNG with `Accept: image/png`.
/// Starts a new pairing round when the previous codes expired. 409 when already connected.
#[utoipa::path(get, path = "/api/user/devices/{id}/qr", tag = "devices",
    responses((status = 200, body = QrOut), (status = 409, body = crate::error::ErrorBody)))]
async fn get_device_qr(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let row = resolve_device(&state, tenant.id, &id).await?;
    let offered = state.devices.qr(&row).await?;
    let wants_png = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("image/png") && !a.contains("application/json"));
    if wants_png {
        let png = qr::png(&offered.code, 8).map_err(ApiError::internal)?;
        return Ok(
            ([(header::CONTENT_TYPE, "image/png"), (header::CACHE_CONTROL, "no-store")], png).into_response()
        );
    }
    let svg = qr::svg(&offered.code).map_err(ApiError::internal)?;
    Ok(Json(QrOut { qr: offered.code, svg, expires_at: offered.expires_at.to_rfc3339() }).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PairCodeIn {
    /// The phone number to link; defaults to the device's number.
    #[serde(default, deserialize_with = "super::messages::opt_string_or_number")]
    #[schema(value_type = Option<String>)]
    pub phone: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PairCodeOut {
    /// Type this in WhatsApp: Linked devices, Link with phone number.
    pub code: String,
    pub expires_at: String,
}

/// Asks for an 8-character code to link the phone by number instead of a QR scan.
#[utoipa::path(post, path = "/api/user/devices/{id}/pair-code", tag = "devices",
    responses((status = 200, body = PairCodeOut), (status = 409, body = crate::error::ErrorBody)))]
async fn create_pair_code(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
    body: Option<ApiJson<PairCodeIn>>,
) -> ApiResult<Json<PairCodeOut>> {
    let row = resolve_device(&state, tenant.id, &id).await?;
    let phone = match body.and_then(|ApiJson(b)| b.phone) {
        Some(p) => normalize_device_phone(&p, &state.config.whatsapp.default_country_code)
            .map_err(|e| ApiError::validation("phone", e.to_string()))?,
        None => row.phone.clone(),
    };
    let offered = state.devices.pair_code(&row, &phone).await?;
    state.tenants.record(tenant.activity("device.pair_code", format!("device:{}", row.id))).await;
    Ok(Json(PairCodeOut { code: offered.code, expires_at: offered.expires_at.to_rfc3339() }))
}

/// Server-Sent Events: `status` events on every status change and `qr` events as the code
/// rotates. The first event is the current status.
#[utoipa::path(get, path = "/api/user/devices/{id}/events", tag = "devices",
    responses((status = 200, content_type = "text/event-stream", description = "status and qr events")))]
async fn device_events(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let row = resolve_device(&state, tenant.id, &id).await?;
    let device_id = row.id;
    let updates = state.devices.subscribe();
    let live = state.devices.status_of(&row);
    let mut first = vec![json_event(
        "status",
        &serde_json::json!({ "device_id": device_id, "status": live.status, "detail": live.detail }),
    )];
    if let Some(qr) = &live.qr {
        first.push(json_event(
            "qr",
            &serde_json::json!({ "device_id": device_id, "qr": qr.code, "expires_at": qr.expires_at }),
        ));
    }
    let rest = tokio_stream::wrappers::BroadcastStream::new(updates).filter_map(move |u| async move {
        let update = u.ok()?;
        if update.device_id() != device_id {
            return None;
        }
        Some(match &update {
            DeviceUpdate::Status { status, detail, .. } => json_event(
                "status",
                &serde_json::json!({ "device_id": device_id, "status": status, "detail": detail }),
            ),
            DeviceUpdate::Qr { qr, expires_at, .. } => json_event(
                "qr",
                &serde_json::json!({ "device_id": device_id, "qr": qr, "expires_at": expires_at }),
            ),
            DeviceUpdate::PairCode { code, expires_at, .. } => json_event(
                "pair_code",
                &serde_json::json!({ "device_id": device_id, "code": code, "expires_at": expires_at }),
            ),
        })
    });
    let shutdown = state.shutdown.clone();
    let stream = futures::stream::iter(first).chain(rest).take_until(shutdown.cancelled_owned()).map(Ok);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

fn json_event(name: &str, data: &serde_json::Value) -> Event {
    Event::default().event(name).data(data.to_string())
}

/// Logs the device out of WhatsApp and clears its session; it stays until paired again.
#[utoipa::path(post, path = "/api/user/devices/{id}/logout", tag = "devices",
    responses((status = 200, body = DeviceOut), (status = 404, body = crate::error::ErrorBody)))]
async fn logout_device(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<DeviceOut>> {
    let row = resolve_device(&state, tenant.id, &id).await?;
    state.devices.logout(&row).await?;
    state.tenants.record(tenant.activity("device.logout", format!("device:{}", row.id))).await;
    let row = state.db.device(tenant.id, row.id).await?.ok_or_else(|| ApiError::not_found("device"))?;
    let live = state.devices.status_of(&row);
    Ok(Json(device_out(row, live)))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ResetIn {
    /// Device id or phone number (`pengirim` is accepted too).
    #[serde(alias = "pengirim", deserialize_with = "super::messages::string_or_number")]
    #[schema(value_type = String)]
    pub device: String,
}

/// Logs the device out, clears its session and starts a fresh pairing (new QR).
#[utoipa::path(post, path = "/api/reset-session", tag = "devices", request_body = ResetIn,
    responses((status = 200, body = DeviceOut), (status = 404, body = crate::error::ErrorBody)))]
async fn reset_session(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiJson(body): ApiJson<ResetIn>,
) -> ApiResult<Json<DeviceOut>> {
    let row = resolve_device(&state, tenant.id, &body.device).await?;
    state.devices.reset(&row).await?;
    state.tenants.record(tenant.activity("device.reset", format!("device:{}", row.id))).await;
    let row = state.db.device(tenant.id, row.id).await?.ok_or_else(|| ApiError::not_found("device"))?;
    let live = state.devices.status_of(&row);
    Ok(Json(device_out(row, live)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckNumbersIn {
    /// Phone numbers in any common form; at most 50.
    #[schema(value_type = Vec<String>)]
    pub numbers: Vec<serde_json::Value>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct NumberCheckOut {
    /// The number as given.
    pub input: String,
    /// The normalised number, or null when it is not a valid number.
    pub number: Option<String>,
    pub on_whatsapp: bool,
    /// The WhatsApp id to send to, when the number has WhatsApp.
    pub jid: Option<String>,
    /// Why the number could not be checked.
    pub error: Option<String>,
}

/// Checks which numbers have WhatsApp, through a connected device.
#[utoipa::path(post, path = "/api/user/devices/{id}/check-numbers", tag = "devices", request_body = CheckNumbersIn,
    responses((status = 200, body = Page<NumberCheckOut>), (status = 409, body = crate::error::ErrorBody)))]
async fn check_numbers(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CheckNumbersIn>,
) -> ApiResult<Json<Page<NumberCheckOut>>> {
    let row = resolve_device(&state, tenant.id, &id).await?;
    if body.numbers.is_empty() || body.numbers.len() > 50 {
        return Err(ApiError::validation("numbers", "must hold 1 to 50 numbers"));
    }
    let session = state.devices.connected(row.id).ok_or(DeviceError::NotConnected)?;
    let cc = &state.config.whatsapp.default_country_code;
    let parsed: Vec<(String, Result<String, String>)> = body
        .numbers
        .iter()
        .map(|v| {
            let input = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let n = normalize_device_phone(&input, cc).map_err(|e| e.to_string());
            (input, n)
        })
        .collect();
    let valid: Vec<String> = parsed.iter().filter_map(|(_, n)| n.as_ref().ok().cloned()).collect();
    let checks = if valid.is_empty() {
        Vec::new()
    } else {
        session.check_numbers(&valid).await.map_err(DeviceError::from)?
    };
    let data: Vec<NumberCheckOut> = parsed
        .into_iter()
        .map(|(input, n)| match n {
            Ok(number) => {
                let hit = checks.iter().find(|c| c.number == number);
                NumberCheckOut {
                    input,
                    on_whatsapp: hit.is_some_and(|c| c.on_whatsapp),
                    jid: hit.and_then(|c| c.jid.clone()),
                    number: Some(number),
                    error: None,
                }
            }
            Err(e) => NumberCheckOut { input, number: None, on_whatsapp: false, jid: None, error: Some(e) },
        })
        .collect();
    let total = data.len() as i64;
    Ok(Json(Page { data, total, limit: total, offset: 0 }))
}
