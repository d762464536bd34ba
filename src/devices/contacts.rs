//! `ContactService`: the people a tenant's devices talk to. The list comes from the direct
//! chats (with the WhatsApp name of the latest message); one contact adds the profile WhatsApp
//! shows (about text, picture, business), read through the device when asked and kept for
//! [`PROFILE_TTL_MS`]; blocking and unblocking go through the device and are remembered.

use super::driver::DriverError;
use super::find_device;
use super::groups::service::driver_error;
use super::manager::DeviceManager;
use crate::db::contacts::{ContactRow, ProfileUpdate};
use crate::db::{now_ms, Db, DeviceRow};
use crate::error::{ApiError, ApiResult};
use crate::phone::{lid_jid, Recipient};
use crate::tenants::{Tenant, TenantService};

/// How long a profile read from WhatsApp is answered from storage (a day).
pub const PROFILE_TTL_MS: i64 = 24 * 3600 * 1000;

/// A contact with the LID behind its number, when the device knows it.
#[derive(Debug, Clone)]
pub struct Contact {
    pub row: ContactRow,
    /// The number (digits), unless only the LID is known.
    pub phone: Option<String>,
    pub lid: Option<String>,
}

#[derive(Clone)]
pub struct ContactService {
    db: Db,
    tenants: TenantService,
    manager: DeviceManager,
    country_code: String,
}

impl ContactService {
    pub fn new(db: Db, tenants: TenantService, manager: DeviceManager, country_code: &str) -> Self {
        ContactService { db, tenants, manager, country_code: country_code.to_string() }
    }

    /// A contact's JID from a number as people write it, a user JID or a LID.
    fn jid(&self, input: &str) -> ApiResult<String> {
        if let Some(lid) = lid_jid(input).filter(|_| input.contains('@')) {
            return Ok(lid);
        }
        match Recipient::parse(input, &self.country_code) {
            Ok(r) if !r.is_group() => Ok(r.jid()),
            _ => Err(ApiError::validation("jid", "must be a phone number, a user JID or a LID")),
        }
    }

    async fn with_lids(&self, tenant: &Tenant, rows: Vec<ContactRow>) -> ApiResult<Vec<Contact>> {
        let mut by_device: Vec<(i64, Vec<String>)> = Vec::new();
        for r in &rows {
            if let Some(phone) = r.jid.strip_suffix("@s.whatsapp.net") {
                match by_device.iter_mut().find(|(d, _)| *d == r.device_id) {
                    Some((_, phones)) => phones.push(phone.to_string()),
                    None => by_device.push((r.device_id, vec![phone.to_string()])),
                }
            }
        }
        let mut known: Vec<(i64, String, String)> = Vec::new();
        for (device, phones) in by_device {
            for (phone, lid) in self.db.lids_of(tenant.id, device, &phones).await? {
                known.push((device, phone, lid));
            }
        }
        Ok(rows
            .into_iter()
            .map(|row| {
                let phone = row.jid.strip_suffix("@s.whatsapp.net").map(str::to_string);
                let lid = if row.jid.ends_with("@lid") {
                    Some(row.jid.clone())
                } else {
                    known
                        .iter()
                        .find(|(d, p, _)| *d == row.device_id && Some(p) == phone.as_ref())
                        .map(|(_, _, l)| l.clone())
                        .or_else(|| row.lid.clone())
                };
                Contact { row, phone, lid }
            })
            .collect())
    }

    /// A page of the tenant's contacts (of one device, or all), the latest chat first.
    pub async fn list(
        &self,
        tenant: &Tenant,
        device: Option<&str>,
        q: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> ApiResult<(Vec<Contact>, i64)> {
        let device_id = match device {
            Some(d) => Some(find_device(&self.db, &self.country_code, tenant.id, d).await?.id),
            None => None,
        };
        let q = crate::content::search_text(q).map_err(|e| ApiError::validation("q", e))?;
        let (rows, total) = self.db.list_contacts(tenant.id, device_id, q, limit, offset).await?;
        Ok((self.with_lids(tenant, rows).await?, total))
    }

    async fn device(&self, tenant: &Tenant, device: &str) -> ApiResult<DeviceRow> {
        find_device(&self.db, &self.country_code, tenant.id, device).await
    }

    /// One contact with its profile: read from WhatsApp when not read in the last day (or when
    /// `refresh`) and the device is connected; a number not on WhatsApp is 404.
    pub async fn get(
        &self,
        tenant: &Tenant,
        device: &str,
        contact: &str,
        refresh: bool,
    ) -> ApiResult<Contact> {
        let device = self.device(tenant, device).await?;
        let jid = self.jid(contact)?;
        let stored = self.db.contact(tenant.id, device.id, &jid).await?;
        let fresh =
            stored.as_ref().and_then(|c| c.fetched_at).is_some_and(|at| now_ms() - at < PROFILE_TTL_MS);
        let session = self.manager.connected(device.id);
        if (refresh || !fresh) && !jid.ends_with("@lid") {
            match session {
                Some(session) => match session.contact_profile(&jid).await {
                    Ok(profile) => {
                        let update = ProfileUpdate {
                            about: profile.about,
                            picture_url: profile.picture_url,
                            business: profile.business,
                            business_name: profile.business_name,
                            lid: profile.lid,
                        };
                        self.db.put_profile(tenant.id, device.id, &jid, &update).await?;
                    }
                    Err(DriverError::NotFound(_)) => {
                        return Err(ApiError::NotFound("no such contact on WhatsApp".into()))
                    }
                    Err(e) => return Err(driver_error(e)),
                },
                None if stored.is_none() => {
                    return Err(ApiError::DeviceNotConnected("the device is not connected".into()))
                }
                None => {}
            }
        }
        self.stored(tenant, device.id, &jid).await
    }

    /// The contact as stored now, with its LID.
    async fn stored(&self, tenant: &Tenant, device_id: i64, jid: &str) -> ApiResult<Contact> {
        let row = self
            .db
            .contact(tenant.id, device_id, jid)
            .await?
            .ok_or_else(|| ApiError::not_found("contact"))?;
        Ok(self.with_lids(tenant, vec![row]).await?.remove(0))
    }

    /// Blocks or unblocks a contact through the device.
    pub async fn block(
        &self,
        tenant: &Tenant,
        device: &str,
        contact: &str,
        blocked: bool,
    ) -> ApiResult<Contact> {
        let device = self.device(tenant, device).await?;
        let mut jid = self.jid(contact)?;
        if jid.ends_with("@lid") {
            // WhatsApp blocks by number: the LID's, when the device knows it.
            let mapping = self.db.lid_mapping(tenant.id, device.id, &jid).await?;
            jid = match mapping {
                Some(m) => format!("{}@s.whatsapp.net", m.phone),
                None => return Err(ApiError::NotFound("the number behind this LID is not known yet".into())),
            };
        }
        let session = self
            .manager
            .connected(device.id)
            .ok_or_else(|| ApiError::DeviceNotConnected("the device is not connected".into()))?;
        session.block(&jid, blocked).await.map_err(driver_error)?;
        self.db.set_blocked(tenant.id, device.id, &jid, blocked).await?;
        let action = if blocked { "contact.block" } else { "contact.unblock" };
        self.tenants.record(tenant.activity(action, format!("contact:{jid}"))).await;
        self.stored(tenant, device.id, &jid).await
    }
}
