//! Simulator control (SPEC §6.4): plays the phone side when `whatsapp.driver = "simulator"`.
//! Admin-only; every route answers 404 with the real driver.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{Admin, ApiJson, ApiQuery};
use super::messages::string_or_number;
use crate::app::AppState;
use crate::db::DeviceRow;
use crate::devices::driver::ReceiptKind;
use crate::devices::simulator::{SimError, SimInbound, Simulator};
use crate::error::{ApiError, ApiResult};
use crate::messages::phone::normalize_device_phone;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(sim_scan))
        .routes(routes!(sim_inbound))
        .routes(routes!(sim_outbox))
        .routes(routes!(sim_disconnect))
        .routes(routes!(sim_receipt))
        .routes(routes!(sim_logout))
}

impl From<SimError> for ApiError {
    fn from(e: SimError) -> Self {
        match e {
            SimError::Storage(d) => d.into(),
            SimError::UnknownMessage(_) => ApiError::NotFound(e.to_string()),
            SimError::Invalid(m) => ApiError::validation("body", m),
            other => ApiError::Conflict(other.to_string()),
        }
    }
}

fn simulator(state: &AppState) -> ApiResult<&Simulator> {
    state.simulator.as_deref().ok_or_else(|| {
        ApiError::NotFound("the simulator runs only with whatsapp.driver = \"simulator\"".into())
    })
}

/// A device by id or phone, across tenants (a phone shared by two tenants is ambiguous).
async fn find_device(state: &AppState, reference: &str) -> ApiResult<DeviceRow> {
    if let Ok(id) = reference.trim().parse::<i64>() {
        if let Some(d) = state.db.system_device(id).await? {
            return Ok(d);
        }
    }
    let phone = normalize_device_phone(reference, &state.config.whatsapp.default_country_code)
        .map_err(|_| ApiError::not_found("device"))?;
    let mut found = state.db.system_devices_by_phone(&phone).await?;
    match found.len() {
        0 => Err(ApiError::not_found("device")),
        1 => Ok(found.remove(0)),
        _ => {
            Err(ApiError::Conflict("several tenants have a device with this phone; use the device id".into()))
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct SimDeviceIn {
    /// Device id or phone number.
    #[serde(deserialize_with = "string_or_number")]
    #[schema(value_type = String)]
    pub device: String,
}

/// The phone scans the device's current QR code; the device becomes `connected`.
#[utoipa::path(post, path = "/api/admin/simulator/scan", tag = "simulator", request_body = SimDeviceIn,
    responses((status = 200), (status = 409, body = crate::error::ErrorBody)))]
async fn sim_scan(
    State(state): State<AppState>,
    _admin: Admin,
    ApiJson(body): ApiJson<SimDeviceIn>,
) -> ApiResult<Json<serde_json::Value>> {
    let sim = simulator(&state)?;
    let device = find_device(&state, &body.device).await?;
    sim.scan(device.id).await?;
    Ok(Json(serde_json::json!({ "device": device.id, "scanned": true })))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct SimInboundIn {
    #[serde(deserialize_with = "string_or_number")]
    #[schema(value_type = String)]
    pub device: String,
    /// The sender's phone number.
    #[serde(deserialize_with = "string_or_number")]
    #[schema(value_type = String)]
    pub from: String,
    pub text: String,
    pub push_name: Option<String>,
    /// WhatsApp message id (random when absent); sending the same id twice stores it once.
    pub id: Option<String>,
    /// A group id (`…@g.us`) when the message is posted in a group.
    pub group: Option<String>,
}

/// A message arrives at the device. Answers once the gateway has stored it.
#[utoipa::path(post, path = "/api/admin/simulator/inbound", tag = "simulator", request_body = SimInboundIn,
    responses((status = 200), (status = 409, body = crate::error::ErrorBody)))]
async fn sim_inbound(
    State(state): State<AppState>,
    _admin: Admin,
    ApiJson(body): ApiJson<SimInboundIn>,
) -> ApiResult<Json<serde_json::Value>> {
    let sim = simulator(&state)?;
    let device = find_device(&state, &body.device).await?;
    let from = normalize_device_phone(&body.from, &state.config.whatsapp.default_country_code)
        .map_err(|e| ApiError::validation("from", e.to_string()))?;
    let inbound =
        SimInbound { from, text: body.text, push_name: body.push_name, id: body.id, group: body.group };
    let wa_id = sim.inbound(device.id, inbound).await?;
    Ok(Json(serde_json::json!({ "device": device.id, "id": wa_id })))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct OutboxQuery {
    /// Device id or phone number.
    pub device: String,
}

/// What the gateway sent through the device, oldest first.
#[utoipa::path(get, path = "/api/admin/simulator/outbox", tag = "simulator", params(OutboxQuery),
    responses((status = 200)))]
async fn sim_outbox(
    State(state): State<AppState>,
    _admin: Admin,
    ApiQuery(q): ApiQuery<OutboxQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let sim = simulator(&state)?;
    let device = find_device(&state, &q.device).await?;
    Ok(Json(serde_json::json!({ "data": sim.outbox(device.id) })))
}

/// The connection drops; the gateway reconnects by itself.
#[utoipa::path(post, path = "/api/admin/simulator/disconnect", tag = "simulator", request_body = SimDeviceIn,
    responses((status = 200), (status = 409, body = crate::error::ErrorBody)))]
async fn sim_disconnect(
    State(state): State<AppState>,
    _admin: Admin,
    ApiJson(body): ApiJson<SimDeviceIn>,
) -> ApiResult<Json<serde_json::Value>> {
    let sim = simulator(&state)?;
    let device = find_device(&state, &body.device).await?;
    sim.disconnect(device.id)?;
    Ok(Json(serde_json::json!({ "device": device.id, "disconnected": true })))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct SimReceiptIn {
    /// The gateway's message id, or WhatsApp's id of the message.
    #[serde(deserialize_with = "string_or_number")]
    #[schema(value_type = String)]
    pub message_id: String,
    /// `delivered` or `read`.
    pub status: String,
}

/// The recipient's phone reports a message delivered or read.
#[utoipa::path(post, path = "/api/admin/simulator/receipt", tag = "simulator", request_body = SimReceiptIn,
    responses((status = 200), (status = 404, body = crate::error::ErrorBody)))]
async fn sim_receipt(
    State(state): State<AppState>,
    _admin: Admin,
    ApiJson(body): ApiJson<SimReceiptIn>,
) -> ApiResult<Json<serde_json::Value>> {
    let sim = simulator(&state)?;
    let kind = match body.status.as_str() {
        "delivered" => ReceiptKind::Delivered,
        "read" => ReceiptKind::Read,
        _ => return Err(ApiError::validation("status", "must be `delivered` or `read`")),
    };
    let wa_id = match body.message_id.parse::<i64>() {
        Ok(id) => match state.db.system_message_wa_id(id).await? {
            Some((_, Some(wa))) => wa,
            Some((_, None)) => return Err(ApiError::Conflict("that message has not been sent yet".into())),
            None => body.message_id.clone(),
        },
        Err(_) => body.message_id.clone(),
    };
    sim.receipt(&wa_id, kind)?;
    Ok(Json(serde_json::json!({ "message_id": body.message_id, "status": body.status })))
}

/// The phone unlinks the device; its status becomes `logged_out`.
#[utoipa::path(post, path = "/api/admin/simulator/logout", tag = "simulator", request_body = SimDeviceIn,
    responses((status = 200), (status = 409, body = crate::error::ErrorBody)))]
async fn sim_logout(
    State(state): State<AppState>,
    _admin: Admin,
    ApiJson(body): ApiJson<SimDeviceIn>,
) -> ApiResult<Json<serde_json::Value>> {
    let sim = simulator(&state)?;
    let device = find_device(&state, &body.device).await?;
    sim.logout(device.id).await?;
    Ok(Json(serde_json::json!({ "device": device.id, "logged_out": true })))
}
