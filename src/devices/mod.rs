//! WhatsApp devices: the driver seam, the simulator, QR rendering and the per-device supervisor.

pub mod balancer;
pub mod commands;
pub mod contacts;
pub mod driver;
pub mod fanout;
pub mod groups;
pub mod manager;
pub mod qr;
pub mod routed;
pub mod service;
pub mod simulator;
pub mod whatsapp_web;

use crate::db::{Db, DeviceRow};
use crate::error::{ApiError, ApiResult};
use crate::phone::normalize_device_phone;
use crate::tenants::Tenant;

/// Finds one of the tenant's devices by id or by phone number (in any common form, read with
/// `country_code`); another tenant's device, and one the acting key is not limited to, is not
/// found.
pub async fn find_device(
    db: &Db,
    country_code: &str,
    tenant: &Tenant,
    reference: &str,
) -> ApiResult<DeviceRow> {
    let reference = reference.trim();
    if let Ok(id) = reference.parse::<i64>() {
        if let Some(d) = db.device(tenant.id, id).await?.filter(|d| tenant.sees(d.id)) {
            return Ok(d);
        }
    }
    if let Ok(phone) = normalize_device_phone(reference, country_code) {
        if let Some(d) = db.device_by_phone(tenant.id, &phone).await?.filter(|d| tenant.sees(d.id)) {
            return Ok(d);
        }
    }
    Err(ApiError::not_found("device"))
}
