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

use super::extract::{page, ApiJson, ApiQuery, Page, PageQuery, Tenant};
use super::ts;
use crate::db::lids::LidMappingRow;
use crate::db::DeviceRow;
use crate::devices::manager::{DeviceStatus, DeviceUpdate, LiveStatus};
use crate::devices::qr;
use crate::devices::service::Device;
use crate::error::{ApiError, ApiResult};
use crate::phone::normalize_device_phone;
use crate::state::AppState;
use crate::webhooks::events::GroupEventData;

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
        .routes(routes!(get_lid))
        .routes(routes!(list_lids))
}

/// A LID and the phone number behind it, as one device learned it from WhatsApp.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LidOut {
    pub device_id: i64,
    /// The LID JID (`…@lid`).
    pub lid: String,
    /// The phone number (digits).
    pub phone: String,
    /// When the device learned it (RFC 3339).
    pub updated_at: String,
}

impl From<LidMappingRow> for LidOut {
    fn from(r: LidMappingRow) -> Self {
        LidOut { device_id: r.device_id, lid: r.lid, phone: r.phone, updated_at: ts(r.updated_at) }
    }
}

/// The phone number behind a LID, as the device knows it.
#[utoipa::path(get, path = "/api/user/devices/{id}/lids/{lid}", tag = "devices",
    params(("id" = String, Path, description = "The device's id or phone number."),
           ("lid" = String, Path, description = "The LID: its digits or `…@lid`.")),
    responses((status = 200, body = LidOut),
              (status = 404, description = "No such device, or the device does not know this LID.")))]
async fn get_lid(
    State(state): State<AppState>,
    tenant: Tenant,
    Path((id, lid)): Path<(String, String)>,
) -> ApiResult<Json<LidOut>> {
    Ok(Json(state.devices.lid(&tenant, &id, &lid).await?.into()))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LidsQuery {
    /// The phone number whose LIDs to list.
    pub phone: String,
}

/// The LIDs the device knows behind a phone number, newest first (usually one).
#[utoipa::path(get, path = "/api/user/devices/{id}/lids", tag = "devices",
    params(("id" = String, Path, description = "The device's id or phone number."), LidsQuery),
    responses((status = 200, body = LidsOut), (status = 404, description = "No such device.")))]
async fn list_lids(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<LidsQuery>,
) -> ApiResult<Json<LidsOut>> {
    let rows = state.devices.lids_of_phone(&tenant, &id, &q.phone).await?;
    Ok(Json(LidsOut { data: rows.into_iter().map(LidOut::from).collect() }))
}

/// The LIDs behind a phone number.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LidsOut {
    pub data: Vec<LidOut>,
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

impl From<Device> for DeviceOut {
    fn from(Device { row, live }: Device) -> Self {
        device_out(row, live)
    }
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

/// Finds one of the tenant's devices by id or by phone number; another tenant's, and one the
/// acting key is not limited to, is not found.
pub async fn resolve_device(state: &AppState, tenant: &Tenant, reference: &str) -> ApiResult<DeviceRow> {
    crate::devices::find_device(&state.db, &state.config.whatsapp.default_country_code, tenant, reference)
        .await
}

/// The tenant's devices with their live status.
#[utoipa::path(get, path = "/api/user/devices", tag = "devices", params(PageQuery),
    responses((status = 200, body = Page<DeviceOut>)))]
async fn list_devices(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<DeviceOut>>> {
    let (limit, offset) = page(q.limit, q.offset)?;
    let (devices, total) = state.devices.list(&tenant, limit, offset).await?;
    Ok(Json(Page { data: devices.into_iter().map(DeviceOut::from).collect(), total, limit, offset }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceIn {
    /// The WhatsApp number of the phone to link.
    #[serde(deserialize_with = "super::messages::string_or_number")]
    #[schema(value_type = super::openapi::schemas::PhoneNumber)]
    pub phone: String,
    /// A label, e.g. "Toko pusat", up to 100 characters. Defaults to the number when left out
    /// or blank.
    #[schema(max_length = 100)]
    pub name: Option<String>,
}

/// Adds a device (within the package's device limit) and starts pairing it.
#[utoipa::path(post, path = "/api/user/devices", tag = "devices", request_body = DeviceIn,
    responses((status = 201, body = DeviceOut),
              (status = 409, description = "You already have a device with this phone number."),
              (status = 429, description = "The package's `devices` limit is reached, or the rate limit.")))]
async fn create_device(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiJson(body): ApiJson<DeviceIn>,
) -> ApiResult<(StatusCode, Json<DeviceOut>)> {
    let device = state.devices.create(&tenant, &body.phone, body.name.as_deref()).await?;
    Ok((StatusCode::CREATED, Json(device.into())))
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
#[utoipa::path(get, path = "/api/user/devices/status", tag = "devices", params(PageQuery),
    responses((status = 200, body = Page<DeviceStatusOut>)))]
async fn list_device_statuses(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<DeviceStatusOut>>> {
    let (limit, offset) = page(q.limit, q.offset)?;
    let (devices, total) = state.devices.list(&tenant, limit, offset).await?;
    let data = devices
        .into_iter()
        .map(|Device { row: r, live }| DeviceStatusOut {
            id: r.id,
            phone: r.phone,
            name: r.name,
            status: live.status,
            detail: live.detail,
            since: crate::time::rfc3339(live.since),
        })
        .collect();
    Ok(Json(Page { data, total, limit, offset }))
}

/// One device.
#[utoipa::path(get, path = "/api/user/devices/{id}", tag = "devices",
    params(("id" = String, Path, description = "The device's id or phone number.")),
    responses((status = 200, body = DeviceOut)))]
async fn get_device(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<DeviceOut>> {
    Ok(Json(state.devices.get(&tenant, &id).await?.into()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DevicePatch {
    /// The new label, 1 to 100 characters; left out or `null`: unchanged.
    #[schema(pattern = r"\S", max_length = 100)]
    pub name: Option<String>,
}

/// Renames a device.
#[utoipa::path(patch, path = "/api/user/devices/{id}", tag = "devices", request_body = DevicePatch,
    params(("id" = String, Path, description = "The device's id or phone number.")),
    responses((status = 200, body = DeviceOut)))]
async fn patch_device(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DevicePatch>,
) -> ApiResult<Json<DeviceOut>> {
    let device = match body.name {
        Some(name) => state.devices.rename(&tenant, &id, &name).await?,
        None => state.devices.get(&tenant, &id).await?,
    };
    Ok(Json(device.into()))
}

/// Deletes a device: its session is closed and its keys, messages and queue are removed.
#[utoipa::path(delete, path = "/api/user/devices/{id}", tag = "devices",
    params(("id" = String, Path, description = "The device's id or phone number.")),
    responses((status = 204, description = "Deleted.")))]
async fn delete_device(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.devices.delete(&tenant, &id).await?;
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
    params(("id" = String, Path, description = "The device's id or phone number.")),
    responses((status = 200, content((QrOut = "application/json"), (Vec<u8> = "image/png"))),
              (status = 409, description = "The device is already connected."),
              (status = 503, description = "No QR code yet (try again shortly), or WhatsApp failed.")))]
async fn get_device_qr(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let offered = state.devices.qr(&tenant, &id).await?;
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
    Ok(Json(QrOut { qr: offered.code, svg, expires_at: crate::time::rfc3339(offered.expires_at) })
        .into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PairCodeIn {
    /// The phone number to link; defaults to the device's number.
    #[serde(default, deserialize_with = "super::messages::opt_string_or_number")]
    #[schema(value_type = Option<super::openapi::schemas::PhoneNumber>)]
    pub phone: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PairCodeOut {
    /// Type this in WhatsApp: Linked devices, Link with phone number.
    pub code: String,
    pub expires_at: String,
}

/// Asks for an 8-character code to link the phone by number instead of a QR scan. The body is
/// optional.
#[utoipa::path(post, path = "/api/user/devices/{id}/pair-code", tag = "devices",
    request_body = Option<PairCodeIn>,
    params(("id" = String, Path, description = "The device's id or phone number.")),
    responses((status = 200, body = PairCodeOut),
              (status = 409, description = "The device is already connected."),
              (status = 503, description = "No pairing session yet (try again shortly), or WhatsApp failed.")))]
async fn create_pair_code(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
    body: Option<ApiJson<Option<PairCodeIn>>>,
) -> ApiResult<Json<PairCodeOut>> {
    let phone = body.and_then(|ApiJson(b)| b).and_then(|b| b.phone);
    let offered = state.devices.pair_code(&tenant, &id, phone.as_deref()).await?;
    Ok(Json(PairCodeOut { code: offered.code, expires_at: crate::time::rfc3339(offered.expires_at) }))
}

/// Server-Sent Events: `status` events on every status change and `qr` events as the code
/// rotates. The first event is the current status.
#[utoipa::path(get, path = "/api/user/devices/{id}/events", tag = "devices",
    params(("id" = String, Path, description = "The device's id or phone number.")),
    responses((status = 200, content_type = "text/event-stream",
                  description = "`status`, `qr` and `pair_code` events, each with a JSON `data` line.")))]
async fn device_events(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let row = resolve_device(&state, &tenant, &id).await?;
    Ok(event_stream(&state, &row))
}

/// The device's status changes, QR codes and pair codes as Server-Sent Events, starting with
/// the current status (the API's and the dashboard's device events).
pub fn event_stream(state: &AppState, row: &DeviceRow) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let device_id = row.id;
    let updates = state.device_manager.subscribe_everywhere();
    let live = state.device_manager.status_of(row);
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
    let phone = row.phone.clone();
    let rest = tokio_stream::wrappers::BroadcastStream::new(updates).filter_map(move |u| {
        let phone = phone.clone();
        async move {
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
                DeviceUpdate::ContactResolved { lid, phone, .. } => json_event(
                    "contact_resolved",
                    &serde_json::json!({ "device_id": device_id, "lid": lid, "phone": phone }),
                ),
                DeviceUpdate::Group { event, subject, .. } => {
                    let (kind, data) = GroupEventData::of(device_id, phone.clone(), event, subject.clone());
                    json_event(kind.as_str(), &serde_json::to_value(data).unwrap_or_default())
                }
            })
        }
    });
    let shutdown = state.shutdown.clone();
    let stream = futures::stream::iter(first).chain(rest).take_until(shutdown.cancelled_owned()).map(Ok);
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

fn json_event(name: &str, data: &serde_json::Value) -> Event {
    Event::default().event(name).data(data.to_string())
}

/// Logs the device out of WhatsApp and clears its session; it stays until paired again.
#[utoipa::path(post, path = "/api/user/devices/{id}/logout", tag = "devices",
    params(("id" = String, Path, description = "The device's id or phone number.")),
    responses((status = 200, body = DeviceOut), (status = 503, description = "WhatsApp failed.")))]
async fn logout_device(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<DeviceOut>> {
    Ok(Json(state.devices.logout(&tenant, &id).await?.into()))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ResetIn {
    /// Device id or phone number (`pengirim` is accepted too).
    #[serde(alias = "pengirim", deserialize_with = "super::messages::string_or_number")]
    #[schema(value_type = super::openapi::schemas::DeviceRef)]
    pub device: String,
}

/// Logs the device out, clears its session and starts a fresh pairing (new QR).
#[utoipa::path(post, path = "/api/reset-session", tag = "devices", request_body = ResetIn,
    responses((status = 200, body = DeviceOut), (status = 404, description = "No such device."),
              (status = 503, description = "WhatsApp failed.")))]
async fn reset_session(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiJson(body): ApiJson<ResetIn>,
) -> ApiResult<Json<DeviceOut>> {
    Ok(Json(state.devices.reset(&tenant, &body.device).await?.into()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckNumbersIn {
    /// 1 to 50 phone numbers in any common form (strings or numbers). One that is not a valid
    /// number gets an `error` in the answer instead of failing the request.
    #[schema(value_type = Vec<Value>, min_items = 1, max_items = 50)]
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
    params(("id" = String, Path, description = "The device's id or phone number.")),
    responses((status = 200, body = Page<NumberCheckOut>),
              (status = 409, description = "The device is not connected."),
              (status = 503, description = "WhatsApp failed.")))]
async fn check_numbers(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CheckNumbersIn>,
) -> ApiResult<Json<Page<NumberCheckOut>>> {
    let row = resolve_device(&state, &tenant, &id).await?;
    if body.numbers.is_empty() || body.numbers.len() > 50 {
        return Err(ApiError::validation("numbers", "must hold 1 to 50 numbers"));
    }
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
    let checks = if valid.is_empty() { Vec::new() } else { state.devices.check_numbers(&row, valid).await? };
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
