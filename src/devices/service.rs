//! The devices a tenant links: adding one (within the package's `devices` limit), renaming,
//! deleting, pairing by QR code or pair code, logging out and resetting, each change recorded
//! in the activity log. The API and the dashboard both call this; the device manager runs the
//! sessions.

use super::commands::Command;
use super::driver::{DriverError, NumberCheck};
use super::find_device;
use super::manager::{DeviceError, DeviceManager, LiveStatus, Offered};
use crate::db::lids::LidMappingRow;
use crate::db::{Db, DeviceRow};
use crate::error::{ApiError, ApiResult};
use crate::limits::{LimitsService, Resource};
use crate::phone::{lid_jid, normalize_device_phone};
use crate::tenants::{Tenant, TenantService};

/// Longest device name, in characters.
pub const MAX_NAME_CHARS: usize = 100;

impl From<DeviceError> for ApiError {
    fn from(e: DeviceError) -> Self {
        match e {
            DeviceError::AlreadyConnected => ApiError::Conflict(e.to_string()),
            DeviceError::NotConnected => ApiError::DeviceNotConnected(e.to_string()),
            DeviceError::NoQrYet | DeviceError::OtherProcess => ApiError::Unavailable(e.to_string()),
            DeviceError::Driver(DriverError::NotConnected) => ApiError::DeviceNotConnected(e.to_string()),
            DeviceError::Driver(DriverError::Invalid(m)) => ApiError::BadRequest(m),
            DeviceError::Driver(DriverError::NotFound(m)) => ApiError::NotFound(m),
            DeviceError::Driver(DriverError::Forbidden(m)) => ApiError::Forbidden(m),
            DeviceError::Driver(DriverError::Failed(m)) => ApiError::Unavailable(format!("WhatsApp: {m}")),
            DeviceError::Db(d) => d.into(),
        }
    }
}

/// A device with its live status.
#[derive(Debug, Clone)]
pub struct Device {
    pub row: DeviceRow,
    pub live: LiveStatus,
}

#[derive(Clone)]
pub struct DeviceService {
    db: Db,
    limits: LimitsService,
    tenants: TenantService,
    manager: DeviceManager,
    country_code: String,
}

impl DeviceService {
    pub fn new(
        db: Db,
        limits: LimitsService,
        tenants: TenantService,
        manager: DeviceManager,
        country_code: &str,
    ) -> Self {
        DeviceService { db, limits, tenants, manager, country_code: country_code.to_string() }
    }

    fn with_live(&self, row: DeviceRow) -> Device {
        let live = self.manager.status_of(&row);
        Device { row, live }
    }

    /// One of the tenant's devices, by id or phone number.
    pub async fn find(&self, tenant: &Tenant, reference: &str) -> ApiResult<DeviceRow> {
        find_device(&self.db, &self.country_code, tenant, reference).await
    }

    /// A page of the tenant's devices with their live status, and the total.
    pub async fn list(&self, tenant: &Tenant, limit: i64, offset: i64) -> ApiResult<(Vec<Device>, i64)> {
        let (rows, total) = self.db.list_devices(tenant.id, tenant.devices.ids(), limit, offset).await?;
        Ok((rows.into_iter().map(|r| self.with_live(r)).collect(), total))
    }

    pub async fn get(&self, tenant: &Tenant, reference: &str) -> ApiResult<Device> {
        Ok(self.with_live(self.find(tenant, reference).await?))
    }

    /// Adds a device for the phone number (named after it when `name` is blank) within the
    /// package's limit, and starts pairing it.
    pub async fn create(&self, tenant: &Tenant, phone: &str, name: Option<&str>) -> ApiResult<Device> {
        tenant.needs_every_device("adding a device")?;
        let phone = normalize_device_phone(phone, &self.country_code)
            .map_err(|e| ApiError::validation("phone", e.to_string()))?;
        let name = name.map(str::trim).filter(|n| !n.is_empty()).unwrap_or(&phone).to_string();
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(ApiError::validation("name", format!("must be at most {MAX_NAME_CHARS} characters")));
        }
        let row = self
            .limits
            .create_within(tenant.id, &tenant.package, Resource::Devices, |limit| {
                self.db.create_device(tenant.id, &phone, &name, limit)
            })
            .await?;
        self.tenants.record(tenant.activity("device.create", format!("device:{}", row.id))).await;
        self.manager.start(&row);
        Ok(self.with_live(row))
    }

    /// Gives the device a new name (1 to 100 characters).
    pub async fn rename(&self, tenant: &Tenant, reference: &str, name: &str) -> ApiResult<Device> {
        let row = self.find(tenant, reference).await?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return Err(ApiError::validation("name", format!("must be 1 to {MAX_NAME_CHARS} characters")));
        }
        let row = self
            .db
            .rename_device(tenant.id, row.id, name)
            .await?
            .ok_or_else(|| ApiError::not_found("device"))?;
        self.tenants.record(tenant.activity("device.update", format!("device:{}", row.id))).await;
        Ok(self.with_live(row))
    }

    /// Closes the device's session and deletes it with its keys, messages and queue.
    pub async fn delete(&self, tenant: &Tenant, reference: &str) -> ApiResult<()> {
        let row = self.find(tenant, reference).await?;
        self.manager.remove(row.id).await;
        if !self.db.delete_device(tenant.id, row.id).await? {
            return Err(ApiError::not_found("device"));
        }
        self.tenants.record(tenant.activity("device.delete", format!("device:{}", row.id))).await;
        Ok(())
    }

    /// The phone number the device knows behind a LID (`<digits>`, `<digits>@lid`); not found
    /// when the device has not learned it.
    pub async fn lid(&self, tenant: &Tenant, reference: &str, lid: &str) -> ApiResult<LidMappingRow> {
        let row = self.find(tenant, reference).await?;
        let lid = lid_jid(lid)
            .ok_or_else(|| ApiError::validation("lid", "must be a LID: digits, or digits@lid"))?;
        self.db.lid_mapping(tenant.id, row.id, &lid).await?.ok_or_else(|| ApiError::not_found("LID"))
    }

    /// The LIDs the device knows behind a phone number (as people write it), newest first.
    pub async fn lids_of_phone(
        &self,
        tenant: &Tenant,
        reference: &str,
        phone: &str,
    ) -> ApiResult<Vec<LidMappingRow>> {
        let row = self.find(tenant, reference).await?;
        let phone = normalize_device_phone(phone, &self.country_code)
            .map_err(|e| ApiError::validation("phone", e.to_string()))?;
        Ok(self.db.lids_of_phone(tenant.id, row.id, &phone).await?)
    }

    /// The current pairing QR code (a new pairing round when the previous codes expired).
    pub async fn qr(&self, tenant: &Tenant, reference: &str) -> ApiResult<Offered> {
        let row = self.find(tenant, reference).await?;
        Ok(self.manager.command(&row, Command::Qr).await?.offered()?)
    }

    /// A code to link the phone `phone` (default: the device's number) by typing it.
    pub async fn pair_code(
        &self,
        tenant: &Tenant,
        reference: &str,
        phone: Option<&str>,
    ) -> ApiResult<Offered> {
        let row = self.find(tenant, reference).await?;
        let phone = match phone {
            Some(p) => normalize_device_phone(p, &self.country_code)
                .map_err(|e| ApiError::validation("phone", e.to_string()))?,
            None => row.phone.clone(),
        };
        let offered = self.manager.command(&row, Command::PairCode { phone }).await?.offered()?;
        self.tenants.record(tenant.activity("device.pair_code", format!("device:{}", row.id))).await;
        Ok(offered)
    }

    /// Logs the device out of WhatsApp and clears its session; it stays until paired again.
    pub async fn logout(&self, tenant: &Tenant, reference: &str) -> ApiResult<Device> {
        let row = self.find(tenant, reference).await?;
        self.manager.command(&row, Command::Logout).await?;
        self.tenants.record(tenant.activity("device.logout", format!("device:{}", row.id))).await;
        self.reread(tenant, row.id).await
    }

    /// Logs the device out and starts a fresh pairing.
    pub async fn reset(&self, tenant: &Tenant, reference: &str) -> ApiResult<Device> {
        let row = self.find(tenant, reference).await?;
        self.manager.command(&row, Command::Reset).await?;
        self.tenants.record(tenant.activity("device.reset", format!("device:{}", row.id))).await;
        self.reread(tenant, row.id).await
    }

    /// Which of `numbers` (digits) have WhatsApp, asked through the device's session wherever
    /// it runs.
    pub async fn check_numbers(&self, row: &DeviceRow, numbers: Vec<String>) -> ApiResult<Vec<NumberCheck>> {
        Ok(self.manager.command(row, Command::CheckNumbers { numbers }).await?.numbers()?)
    }

    async fn reread(&self, tenant: &Tenant, id: i64) -> ApiResult<Device> {
        let row = self.db.device(tenant.id, id).await?.ok_or_else(|| ApiError::not_found("device"))?;
        Ok(self.with_live(row))
    }
}
