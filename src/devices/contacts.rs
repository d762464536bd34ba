//! `ContactService`: the people a tenant's devices talk to. The list comes from the direct
//! chats (with the WhatsApp name of the latest message); one contact adds the profile WhatsApp
//! shows (about text, picture, business), read through the device when asked and kept for
//! [`PROFILE_TTL_MS`]; blocking and unblocking go through the device and are remembered.

use chrono::{DateTime, Utc};

use super::driver::{ChatChange, DeviceKey, DriverError, SavedName};
use super::find_device;
use super::groups::service::driver_error;
use super::manager::DeviceManager;
use crate::db::chats::{ChatStateChange, MUTED_FOREVER};
use crate::db::contacts::{ContactRow, ProfileUpdate};
use crate::db::{now_ms, Db, DeviceRow};
use crate::error::{ApiError, ApiResult};
use crate::phone::ChatAddress;
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
        match ChatAddress::parse(input, &self.country_code) {
            Ok(c) if !c.is_group() => Ok(c.jid()),
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
            Some(d) => Some(find_device(&self.db, &self.country_code, tenant, d).await?.id),
            None => None,
        };
        let q = crate::content::search_text(q).map_err(|e| ApiError::validation("q", e))?;
        let (rows, total) =
            self.db.list_contacts(tenant.id, device_id, tenant.devices.ids(), q, limit, offset).await?;
        Ok((self.with_lids(tenant, rows).await?, total))
    }

    async fn device(&self, tenant: &Tenant, device: &str) -> ApiResult<DeviceRow> {
        find_device(&self.db, &self.country_code, tenant, device).await
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
        let session = self.manager.session(device.id).await;
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
            .session(device.id)
            .await
            .ok_or_else(|| ApiError::DeviceNotConnected("the device is not connected".into()))?;
        session.block(&jid, blocked).await.map_err(driver_error)?;
        self.db.set_blocked(tenant.id, device.id, &jid, blocked).await?;
        let action = if blocked { "contact.block" } else { "contact.unblock" };
        self.tenants.record(tenant.activity(action, format!("contact:{jid}"))).await;
        self.stored(tenant, device.id, &jid).await
    }
}

/// The chat or contact an app-state change names, as the gateway stores it: a LID whose number
/// the device knows becomes the number's JID (where its messages are). `None` for what is no
/// chat of a person or group (status broadcasts, channels).
async fn stored_jid(db: &Db, key: &DeviceKey, jid: &str) -> Result<Option<String>, crate::db::DbError> {
    let Ok(address) = ChatAddress::parse(jid, "") else { return Ok(None) };
    let jid = address.jid();
    if !crate::phone::is_lid(&jid) {
        return Ok(Some(jid));
    }
    let mapping = db.lid_mapping(key.tenant_id, key.device_id, &jid).await?;
    Ok(Some(mapping.map(|m| crate::phone::user_jid(&m.phone)).unwrap_or(jid)))
}

/// Stores a change the phone made to a chat's state (archived, pinned, muted); `false` when it
/// could not be stored.
pub async fn remember_chat_state(
    db: &Db,
    key: &DeviceKey,
    chat: &str,
    change: ChatChange,
    at: DateTime<Utc>,
) -> bool {
    let change = match change {
        ChatChange::Archived(a) => ChatStateChange::Archived(a),
        ChatChange::Pinned(p) => ChatStateChange::Pinned(p),
        ChatChange::Muted { until } => {
            ChatStateChange::MutedUntil(Some(until.map_or(MUTED_FOREVER, |t| t.timestamp_millis())))
        }
        ChatChange::Unmuted => ChatStateChange::MutedUntil(None),
    };
    let stored = async {
        let Some(chat) = stored_jid(db, key, chat).await? else { return Ok(()) };
        db.set_chat_state(key.tenant_id, key.device_id, &chat, change, at.timestamp_millis()).await
    };
    match stored.await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(device_id = key.device_id, error = %e, "could not store a chat's state");
            false
        }
    }
}

/// Stores the name the account saved a contact under; `false` when it could not be stored.
pub async fn remember_saved_name(db: &Db, key: &DeviceKey, jid: &str, name: &SavedName) -> bool {
    let clean =
        |n: &Option<String>| n.as_deref().map(str::trim).filter(|n| !n.is_empty()).map(str::to_string);
    let (full, first) = (clean(&name.full_name), clean(&name.first_name));
    let stored = async {
        let Some(jid) = stored_jid(db, key, jid).await?.filter(|j| !j.ends_with("@g.us")) else {
            return Ok(());
        };
        let saved = full.as_deref().or(first.as_deref());
        db.set_saved_name(key.tenant_id, key.device_id, &jid, saved, first.as_deref()).await
    };
    match stored.await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(device_id = key.device_id, error = %e, "could not store a contact's saved name");
            false
        }
    }
}
