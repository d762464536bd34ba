//! `GroupService`: a tenant's groups through one of its devices (list, read, create, change,
//! participants, invite links, join, leave), each change recorded in the activity log; and the
//! groups cache (`device_groups`) kept current from group events.
//!
//! Reads go to WhatsApp while the device is connected (and refresh the cache); while it is not,
//! the list and a group answer from the cache, marked as cached. Changes need the connection.

use std::sync::Arc;

use super::{
    invite_code, invite_link, GroupChange, GroupEvent, GroupEventKind, GroupInfo, ParticipantAction,
    ParticipantOutcome, MAX_DESCRIPTION_CHARS, MAX_PARTICIPANTS_PER_REQUEST, MAX_SUBJECT_CHARS,
};
use crate::db::{Db, DeviceRow};
use crate::devices::driver::{DeviceKey, DriverError, Session};
use crate::devices::find_device;
use crate::devices::manager::DeviceManager;
use crate::error::{ApiError, ApiResult};
use crate::phone::{lid_jid, Recipient};
use crate::tenants::{Tenant, TenantService};

/// A group as the device sees it.
#[derive(Debug, Clone)]
pub struct Group {
    pub device: DeviceRow,
    pub info: GroupInfo,
    /// Whether the device's account is an admin of the group.
    pub is_admin: bool,
    /// Answered from the cache because the device is not connected; when it was cached.
    pub cached_at: Option<i64>,
}

/// What happened to each participant of a change.
#[derive(Debug, Clone)]
pub struct ParticipantsChanged {
    pub action: ParticipantAction,
    pub outcomes: Vec<ParticipantOutcome>,
}

#[derive(Clone)]
pub struct GroupService {
    db: Db,
    tenants: TenantService,
    manager: DeviceManager,
    country_code: String,
}

/// A driver error as the API answers it.
pub fn driver_error(e: DriverError) -> ApiError {
    match e {
        DriverError::NotConnected => ApiError::DeviceNotConnected("the device is not connected".into()),
        DriverError::Invalid(m) => ApiError::BadRequest(m),
        DriverError::NotFound(m) => ApiError::NotFound(m),
        DriverError::Forbidden(m) => ApiError::Forbidden(m),
        DriverError::Failed(m) => ApiError::Unavailable(format!("WhatsApp: {m}")),
    }
}

/// A group JID from `120363…@g.us` or the bare group id; a validation error naming `field`
/// otherwise.
pub fn group_jid(input: &str, field: &str) -> ApiResult<String> {
    let input = input.trim();
    let candidate = if input.contains('@') { input.to_string() } else { format!("{input}@g.us") };
    match Recipient::parse(&candidate, "") {
        Ok(r) if r.is_group() => Ok(r.jid()),
        _ => Err(ApiError::validation(field, "must be a group id such as 120363012345678901@g.us")),
    }
}

impl GroupService {
    pub fn new(db: Db, tenants: TenantService, manager: DeviceManager, country_code: &str) -> Self {
        GroupService { db, tenants, manager, country_code: country_code.to_string() }
    }

    async fn device(&self, tenant: &Tenant, device: &str) -> ApiResult<DeviceRow> {
        find_device(&self.db, &self.country_code, tenant, device).await
    }

    /// The device's session, wherever it runs.
    async fn session(&self, device: &DeviceRow) -> ApiResult<Arc<dyn Session>> {
        self.manager
            .session(device.id)
            .await
            .ok_or_else(|| ApiError::DeviceNotConnected("the device is not connected".into()))
    }

    /// The account's own ids: its number and, when the device knows it, its LID.
    fn me(device: &DeviceRow) -> Vec<String> {
        let mut me = vec![device.phone.clone()];
        me.extend(device.jid.as_deref().and_then(lid_jid));
        me
    }

    fn group(&self, device: &DeviceRow, info: GroupInfo, cached_at: Option<i64>) -> Group {
        let me = Self::me(device);
        let is_admin = info.is_admin(&me.iter().map(String::as_str).collect::<Vec<_>>());
        Group { device: device.clone(), info, is_admin, cached_at }
    }

    /// The groups the device is in, by subject.
    pub async fn list(&self, tenant: &Tenant, device: &str) -> ApiResult<Vec<Group>> {
        let device = self.device(tenant, device).await?;
        let Some(session) = self.manager.session(device.id).await else {
            let rows = self.db.groups(tenant.id, device.id).await?;
            return Ok(rows
                .into_iter()
                .filter_map(|r| {
                    let info = serde_json::from_str(&r.info).ok()?;
                    Some(self.group(&device, info, Some(r.updated_at)))
                })
                .collect());
        };
        let mut infos = session.groups().await.map_err(driver_error)?;
        infos.sort_by(|a, b| a.subject.to_lowercase().cmp(&b.subject.to_lowercase()).then(a.jid.cmp(&b.jid)));
        let cached: Vec<(String, String, String)> = infos
            .iter()
            .map(|g| (g.jid.clone(), g.subject.clone(), serde_json::to_string(g).unwrap_or_default()))
            .collect();
        self.db.replace_groups(tenant.id, device.id, &cached).await?;
        Ok(infos.into_iter().map(|info| self.group(&device, info, None)).collect())
    }

    /// One group with its members.
    pub async fn get(&self, tenant: &Tenant, device: &str, group: &str) -> ApiResult<Group> {
        let device = self.device(tenant, device).await?;
        let jid = group_jid(group, "group")?;
        let Some(session) = self.manager.session(device.id).await else {
            let row = self
                .db
                .group(tenant.id, device.id, &jid)
                .await?
                .ok_or_else(|| ApiError::not_found("group"))?;
            let info = serde_json::from_str(&row.info).map_err(ApiError::internal)?;
            return Ok(self.group(&device, info, Some(row.updated_at)));
        };
        let info = self.fetch(tenant, &device, session.as_ref(), &jid).await?;
        Ok(self.group(&device, info, None))
    }

    /// Reads a group from WhatsApp and caches it; a group the device is not in is 404.
    async fn fetch(
        &self,
        tenant: &Tenant,
        device: &DeviceRow,
        session: &dyn Session,
        jid: &str,
    ) -> ApiResult<GroupInfo> {
        match session.group(&jid.to_string()).await {
            Ok(info) => {
                cache(&self.db, tenant.id, device.id, &info).await;
                Ok(info)
            }
            Err(DriverError::NotFound(_)) => {
                let _ = self.db.delete_group(tenant.id, device.id, jid).await;
                Err(ApiError::not_found("group"))
            }
            Err(e) => Err(driver_error(e)),
        }
    }

    /// Participants as user JIDs, from numbers as people write them (or JIDs).
    fn participants(&self, given: &[String]) -> ApiResult<Vec<String>> {
        if given.is_empty() || given.len() > MAX_PARTICIPANTS_PER_REQUEST {
            return Err(ApiError::validation(
                "participants",
                format!("must hold 1 to {MAX_PARTICIPANTS_PER_REQUEST} phone numbers"),
            ));
        }
        let mut jids: Vec<String> = Vec::with_capacity(given.len());
        for (i, p) in given.iter().enumerate() {
            let jid = match lid_jid(p) {
                Some(lid) if p.contains('@') => lid,
                _ => match Recipient::parse(p, &self.country_code) {
                    Ok(r) if !r.is_group() => r.jid(),
                    _ => {
                        return Err(ApiError::validation(
                            format!("participants[{i}]"),
                            "must be a phone number (or a user JID)",
                        ))
                    }
                },
            };
            if !jids.contains(&jid) {
                jids.push(jid);
            }
        }
        Ok(jids)
    }

    /// Creates a group of the device and `participants`; answers it and what happened to each.
    pub async fn create(
        &self,
        tenant: &Tenant,
        device: &str,
        subject: &str,
        participants: &[String],
    ) -> ApiResult<(Group, Vec<ParticipantOutcome>)> {
        let device = self.device(tenant, device).await?;
        let subject = check_subject(subject)?;
        let jids = self.participants(participants)?;
        let session = self.session(&device).await?;
        let (info, outcomes) = session.create_group(&subject, &jids).await.map_err(driver_error)?;
        cache(&self.db, tenant.id, device.id, &info).await;
        self.tenants.record(tenant.activity("group.create", format!("group:{}", info.jid))).await;
        Ok((self.group(&device, info, None), outcomes))
    }

    /// Changes the subject, description or settings; answers the group as it is afterwards.
    pub async fn update(
        &self,
        tenant: &Tenant,
        device: &str,
        group: &str,
        change: GroupChange,
    ) -> ApiResult<Group> {
        let device = self.device(tenant, device).await?;
        let jid = group_jid(group, "group")?;
        let change = GroupChange {
            subject: change.subject.as_deref().map(check_subject).transpose()?,
            description: change.description.map(|d| check_description(&d)).transpose()?,
            ..change
        };
        if change.is_empty() {
            return Err(ApiError::validation(
                "subject",
                "give at least one of subject, description, announce, locked, member_add_mode",
            ));
        }
        let session = self.session(&device).await?;
        session.update_group(&jid, &change).await.map_err(not_found_as_group)?;
        self.tenants.record(tenant.activity("group.update", format!("group:{jid}"))).await;
        let info = self.fetch(tenant, &device, session.as_ref(), &jid).await?;
        Ok(self.group(&device, info, None))
    }

    /// Adds, removes, promotes or demotes participants.
    pub async fn participants_change(
        &self,
        tenant: &Tenant,
        device: &str,
        group: &str,
        action: ParticipantAction,
        participants: &[String],
    ) -> ApiResult<ParticipantsChanged> {
        let device = self.device(tenant, device).await?;
        let jid = group_jid(group, "group")?;
        let jids = self.participants(participants)?;
        let session = self.session(&device).await?;
        let outcomes = session.group_participants(&jid, action, &jids).await.map_err(not_found_as_group)?;
        if outcomes.iter().any(ParticipantOutcome::ok) {
            self.tenants
                .record(
                    tenant
                        .activity(&format!("group.participants.{}", action.as_str()), format!("group:{jid}")),
                )
                .await;
            let _ = self.fetch(tenant, &device, session.as_ref(), &jid).await;
        }
        Ok(ParticipantsChanged { action, outcomes })
    }

    /// The group's invite link; `reset` revokes the current one first.
    pub async fn invite(&self, tenant: &Tenant, device: &str, group: &str, reset: bool) -> ApiResult<String> {
        let device = self.device(tenant, device).await?;
        let jid = group_jid(group, "group")?;
        let session = self.session(&device).await?;
        let code = session.group_invite(&jid, reset).await.map_err(not_found_as_group)?;
        if reset {
            self.tenants.record(tenant.activity("group.invite.revoke", format!("group:{jid}"))).await;
        }
        Ok(invite_link(&code))
    }

    /// Joins the group behind an invite link (or its code); answers the group.
    pub async fn join(&self, tenant: &Tenant, device: &str, link: &str) -> ApiResult<Group> {
        let device = self.device(tenant, device).await?;
        let code = invite_code(link).ok_or_else(|| {
            ApiError::validation("invite", "must be an invite link https://chat.whatsapp.com/<code>")
        })?;
        let session = self.session(&device).await?;
        let jid = session.join_group(&code).await.map_err(driver_error)?;
        self.tenants.record(tenant.activity("group.join", format!("group:{jid}"))).await;
        let info = self.fetch(tenant, &device, session.as_ref(), &jid).await?;
        Ok(self.group(&device, info, None))
    }

    /// Leaves a group.
    pub async fn leave(&self, tenant: &Tenant, device: &str, group: &str) -> ApiResult<()> {
        let device = self.device(tenant, device).await?;
        let jid = group_jid(group, "group")?;
        let session = self.session(&device).await?;
        session.leave_group(&jid).await.map_err(not_found_as_group)?;
        self.db.delete_group(tenant.id, device.id, &jid).await?;
        self.tenants.record(tenant.activity("group.leave", format!("group:{jid}"))).await;
        Ok(())
    }
}

/// A group the device is not in reads as an unknown group, whatever the driver's words.
fn not_found_as_group(e: DriverError) -> ApiError {
    match e {
        DriverError::NotFound(_) => ApiError::not_found("group"),
        other => driver_error(other),
    }
}

fn check_subject(subject: &str) -> ApiResult<String> {
    let subject = subject.trim();
    if subject.is_empty() || subject.chars().count() > MAX_SUBJECT_CHARS || subject.contains('\0') {
        return Err(ApiError::validation("subject", format!("must be 1 to {MAX_SUBJECT_CHARS} characters")));
    }
    Ok(subject.to_string())
}

fn check_description(description: &str) -> ApiResult<String> {
    if description.chars().count() > MAX_DESCRIPTION_CHARS || description.contains('\0') {
        return Err(ApiError::validation(
            "description",
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters (empty deletes it)"),
        ));
    }
    Ok(description.trim().to_string())
}

/// Caches a group's metadata; a failure only costs freshness.
async fn cache(db: &Db, tenant: i64, device_id: i64, info: &GroupInfo) {
    let json = serde_json::to_string(info).unwrap_or_default();
    if let Err(e) = db.put_group(tenant, device_id, &info.jid, &info.subject, &json).await {
        tracing::warn!(device_id, error = %e, "could not cache a group");
    }
}

/// Keeps the cache current after a group event: the metadata of a group joined (read from
/// WhatsApp when the event does not carry it), changes applied to the cached copy (read afresh
/// when there is none), a group left forgotten. Answers the group's subject, when known.
pub async fn remember(
    db: &Db,
    key: &DeviceKey,
    session: Option<&dyn Session>,
    event: &GroupEvent,
) -> Option<String> {
    let (tenant, device_id) = (key.tenant_id, key.device_id);
    let cached = || async {
        let row = db.group(tenant, device_id, &event.group).await.ok().flatten()?;
        serde_json::from_str::<GroupInfo>(&row.info).ok()
    };
    let fresh = || async {
        let info = session?.group(&event.group).await.ok()?;
        cache(db, tenant, device_id, &info).await;
        Some(info)
    };
    match &event.kind {
        GroupEventKind::Joined(Some(info)) => {
            cache(db, tenant, device_id, info).await;
            Some(info.subject.clone())
        }
        GroupEventKind::Joined(None) => fresh().await.map(|i| i.subject),
        GroupEventKind::Left => {
            let subject = cached().await.map(|i| i.subject);
            if let Err(e) = db.delete_group(tenant, device_id, &event.group).await {
                tracing::warn!(device_id, error = %e, "could not forget a group left");
            }
            subject
        }
        GroupEventKind::Participants { action, participants } => match cached().await {
            Some(mut info) => {
                action.apply(&mut info.participants, participants);
                cache(db, tenant, device_id, &info).await;
                Some(info.subject)
            }
            None => fresh().await.map(|i| i.subject),
        },
        GroupEventKind::Updated(change) => match cached().await {
            Some(mut info) => {
                change.apply(&mut info);
                cache(db, tenant, device_id, &info).await;
                Some(info.subject)
            }
            None => fresh().await.map(|i| i.subject),
        },
    }
}
