//! The plugins a tenant keeps: uploading (validated, compiled, within the package's `plugins`
//! limit), changing settings (with the cool-down after the gateway disabled one), deleting, and
//! dry runs; each change recorded in the activity log. The API and the dashboard both call
//! this; [`Plugins`] runs them.

use super::hosts::AllowedHosts;
use super::runtime::{
    PluginContext, PluginKind, PluginMessage, RunInput, RunReport, TransformContext, TransformEvent,
    TransformInput,
};
use super::service::{RunAbout, Upload, UploadError};
use super::Plugins;
use crate::db::plugins::{PluginPatch, PluginRow};
use crate::db::{now_ms, Db, DbError};
use crate::devices::find_device;
use crate::error::{ApiError, ApiResult};
use crate::limits::{LimitError, LimitsService, Resource};
use crate::tenants::{Tenant, TenantService};
use crate::webhooks::EventType;

/// Longest plugin name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// Largest plugin configuration, in bytes of JSON.
pub const MAX_CONFIG_BYTES: usize = 64 * 1024;
/// Most devices a plugin can be attached to by id.
pub const MAX_DEVICES: usize = 1000;

/// The settings of an upload as text, the way forms and query strings carry them; each is
/// checked and a bad one named in the error.
#[derive(Debug, Clone, Default)]
pub struct UploadFields {
    pub name: Option<String>,
    /// `true`/`1` or `false`/`0`; default true.
    pub enabled: Option<String>,
    /// Device ids or phone numbers; none: every device.
    pub devices: Vec<String>,
    /// A whole number; default 0.
    pub order: Option<String>,
    /// JSON; default `{}`.
    pub config: Option<String>,
}

/// What to change on a plugin; `None` keeps the value.
#[derive(Debug, Clone, Default)]
pub struct PluginChange {
    pub name: Option<String>,
    pub enabled: Option<bool>,
    /// Device ids or phone numbers; empty: every device.
    pub devices: Option<Vec<String>>,
    pub order: Option<i64>,
    pub config: Option<serde_json::Value>,
    /// Run for messages in groups too.
    pub groups: Option<bool>,
    /// Host patterns the plugin may reach over HTTP (replacing the list).
    pub allowed_hosts: Option<Vec<String>>,
    pub log_http_bodies: Option<bool>,
}

/// A sample message for a dry run; every field has a default.
#[derive(Debug, Clone, Default)]
pub struct Trial {
    pub text: Option<String>,
    pub sender: Option<String>,
    pub push_name: Option<String>,
    pub chat: Option<String>,
    pub is_group: Option<bool>,
    /// Device id or phone number; default the plugin's first device, else the tenant's first.
    pub device: Option<String>,
    /// Instead of the stored configuration.
    pub config: Option<serde_json::Value>,
    /// For a transformation: the event type; default `message.received`.
    pub event: Option<String>,
    /// For a transformation: the event's data; default the sample message as that event.
    pub data: Option<serde_json::Value>,
}

#[derive(Clone)]
pub struct PluginService {
    db: Db,
    limits: LimitsService,
    tenants: TenantService,
    plugins: Plugins,
    country_code: String,
    reenable_cooldown_secs: u64,
}

fn not_found() -> ApiError {
    ApiError::not_found("plugin")
}

impl PluginService {
    pub fn new(
        db: Db,
        limits: LimitsService,
        tenants: TenantService,
        plugins: Plugins,
        country_code: &str,
        reenable_cooldown_secs: u64,
    ) -> Self {
        PluginService {
            db,
            limits,
            tenants,
            plugins,
            country_code: country_code.to_string(),
            reenable_cooldown_secs,
        }
    }

    /// A page of the tenant's plugins in the order they run, and their number.
    pub async fn list(&self, tenant: &Tenant, limit: i64, offset: i64) -> ApiResult<(Vec<PluginRow>, i64)> {
        if tenant.devices.is_all() {
            return Ok(self.db.list_plugins(tenant.id, limit, offset).await?);
        }
        // Plugins are few (a package limits them): the visible ones are picked here.
        let (all, _) = self.db.list_plugins(tenant.id, i64::MAX, 0).await?;
        let visible: Vec<PluginRow> = all.into_iter().filter(|p| visible(tenant, p)).collect();
        let total = visible.len() as i64;
        let page = visible.into_iter().skip(offset.max(0) as usize).take(limit.max(0) as usize).collect();
        Ok((page, total))
    }

    /// One of the tenant's plugins: one that runs for a device the acting key sees.
    pub async fn get(&self, tenant: &Tenant, id: i64) -> ApiResult<PluginRow> {
        self.db.plugin(tenant.id, id).await?.filter(|p| visible(tenant, p)).ok_or_else(not_found)
    }

    /// One of the tenant's plugins that the acting key may change, try and delete: one that
    /// runs only for devices the key sees.
    async fn changeable(&self, tenant: &Tenant, id: i64) -> ApiResult<PluginRow> {
        let row = self.get(tenant, id).await?;
        may_run_for(tenant, &row.device_ids())?;
        Ok(row)
    }

    /// Checks, compiles and stores a component within the package's limit.
    pub async fn upload(&self, tenant: &Tenant, wasm: Vec<u8>, fields: UploadFields) -> ApiResult<PluginRow> {
        let name = check_name(fields.name.as_deref())?;
        let enabled = match fields.enabled.as_deref().map(|s| s.trim().to_ascii_lowercase()) {
            None => true,
            Some(v) if v.is_empty() || v == "true" || v == "1" => true,
            Some(v) if v == "false" || v == "0" => false,
            Some(_) => return Err(ApiError::validation("enabled", "must be true or false")),
        };
        let devices = self.device_ids(tenant, fields.devices).await?;
        may_run_for(tenant, &devices)?;
        let run_order = match fields.order.as_deref().map(str::trim).filter(|o| !o.is_empty()) {
            None => 0,
            Some(o) => o.parse().map_err(|_| ApiError::validation("order", "must be a whole number"))?,
        };
        let config = match fields.config.as_deref().filter(|c| !c.trim().is_empty()) {
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
        let limit = self.limits.limits(tenant.id, &tenant.package).await?.get(Resource::Plugins);
        let upload = Upload { name, wasm, enabled, devices, run_order, config };
        let row = self.plugins.upload(tenant.id, upload, limit).await.map_err(|e| match e {
            UploadError::TooLarge { .. } => ApiError::PayloadTooLarge(e.to_string()),
            UploadError::Invalid(why) => ApiError::validation("file", format!("not a valid plugin: {why}")),
            UploadError::OverLimit => LimitError::Exceeded { limit: Resource::Plugins }.into(),
            UploadError::NameTaken => ApiError::Conflict("a plugin with this name exists".into()),
            UploadError::Db(e) => e.into(),
            UploadError::Internal(why) => ApiError::internal(anyhow::anyhow!(why)),
        })?;
        self.tenants.record(tenant.activity("plugin.upload", format!("plugin:{}", row.id))).await;
        Ok(row)
    }

    /// Changes the settings given. A plugin the gateway disabled for failing may be enabled
    /// again only after `[plugins] reenable_cooldown`, so re-enabling cannot keep a failing
    /// plugin running.
    pub async fn update(&self, tenant: &Tenant, id: i64, change: PluginChange) -> ApiResult<PluginRow> {
        let current = self.changeable(tenant, id).await?;
        let name = match change.name.as_deref() {
            Some(n) => Some(check_name(Some(n))?),
            None => None,
        };
        let devices = match change.devices {
            None => None,
            Some(list) => {
                let ids = self.device_ids(tenant, list).await?;
                may_run_for(tenant, &ids)?;
                Some(ids)
            }
        };
        let config = match &change.config {
            Some(v) => Some(check_config(v)?),
            None => None,
        };
        let allowed_hosts = match &change.allowed_hosts {
            Some(list) => {
                let hosts =
                    AllowedHosts::parse(list).map_err(|why| ApiError::validation("allowed_hosts", why))?;
                Some(serde_json::to_string(&hosts).map_err(ApiError::internal)?)
            }
            None => None,
        };
        if change.enabled == Some(true) && !current.enabled {
            let cooldown_ms =
                i64::try_from(self.reenable_cooldown_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
            if let Some(until) = current.disabled_at.map(|at| at.saturating_add(cooldown_ms)) {
                if now_ms() < until {
                    return Err(ApiError::Conflict(format!(
                        "the plugin was disabled after failed runs; it can be enabled again from {}",
                        crate::time::rfc3339_ms(until)
                    )));
                }
            }
        }
        let patch = PluginPatch {
            name,
            enabled: change.enabled,
            devices,
            run_order: change.order,
            config,
            in_groups: change.groups,
            allowed_hosts,
            log_http_bodies: change.log_http_bodies,
        };
        let row = match self.db.update_plugin(tenant.id, current.id, &patch).await {
            Ok(Some(row)) => row,
            Ok(None) => return Err(not_found()),
            Err(DbError::Conflict(_)) => {
                return Err(ApiError::Conflict("a plugin with this name exists".into()))
            }
            Err(e) => return Err(e.into()),
        };
        self.tenants.record(tenant.activity("plugin.update", format!("plugin:{}", row.id))).await;
        Ok(row)
    }

    /// Deletes a plugin and its key-value data; not a transformation a webhook endpoint
    /// still names.
    pub async fn delete(&self, tenant: &Tenant, id: i64) -> ApiResult<()> {
        self.changeable(tenant, id).await?;
        let users = self.db.webhooks_transformed_by(tenant.id, id).await?;
        if !users.is_empty() {
            let list: Vec<String> = users.iter().map(i64::to_string).collect();
            return Err(ApiError::Conflict(format!(
                "webhook endpoint {} uses this plugin as its transformation; remove it there first",
                list.join(", ")
            )));
        }
        if !self.db.delete_plugin(tenant.id, id).await? {
            return Err(not_found());
        }
        self.plugins.forget(id);
        self.tenants.record(tenant.activity("plugin.delete", format!("plugin:{id}"))).await;
        Ok(())
    }

    /// Runs the plugin on a sample message: nothing is sent or recorded and key-value writes
    /// are discarded. Runs a disabled plugin too, so a fix can be tried before enabling it.
    pub async fn try_run(&self, tenant: &Tenant, id: i64, trial: Trial) -> ApiResult<RunReport> {
        // Its key-value store holds what runs for every device it serves wrote.
        let row = self.changeable(tenant, id).await?;
        let device = match trial.device.as_deref() {
            Some(d) => Some(find_device(&self.db, &self.country_code, tenant, d).await?),
            None => match row.device_ids().first() {
                Some(id) => self.db.device(tenant.id, *id).await?.filter(|d| tenant.sees(d.id)),
                None => {
                    self.db.list_devices(tenant.id, tenant.devices.ids(), 1, 0).await?.0.into_iter().next()
                }
            },
        };
        let sender = trial.sender.unwrap_or_else(|| "6281234567890".into());
        let chat = trial.chat.unwrap_or_else(|| format!("{sender}@s.whatsapp.net"));
        let config = match &trial.config {
            Some(v) => check_config(v)?,
            None => row.config.clone(),
        };
        let message = PluginMessage {
            id: 0,
            wa_id: "TEST".into(),
            chat,
            sender,
            push_name: trial.push_name,
            is_group: trial.is_group.unwrap_or(false),
            kind: "text".into(),
            text: Some(trial.text.unwrap_or_else(|| "halo".into())),
            timestamp_ms: now_ms(),
            ..PluginMessage::default()
        };
        if row.kind == PluginKind::Transform.as_str() {
            let phone = device.as_ref().map(|d| d.phone.clone()).unwrap_or_default();
            let device_id = device.as_ref().map_or(0, |d| d.id);
            let event =
                self.sample_event(tenant, &row, trial.event, trial.data, &message, device_id, &phone).await?;
            let input =
                TransformInput { context: TransformContext { config, ..event.context }, event: event.event };
            return Ok(self.plugins.transform(&row, input, RunAbout::default(), true).await);
        }
        let input = RunInput {
            message,
            context: PluginContext {
                tenant_id: tenant.id,
                device_id: device.as_ref().map_or(0, |d| d.id),
                device_phone: device.map(|d| d.phone).unwrap_or_default(),
                plugin_id: row.id,
                config,
            },
        };
        Ok(self.plugins.run(&row, input, true).await)
    }

    /// A transformation's dry-run input: the event named (default `message.received`) with
    /// the data given, or the sample message as that event; to the first endpoint that uses
    /// the plugin, if any.
    #[allow(clippy::too_many_arguments)]
    async fn sample_event(
        &self,
        tenant: &Tenant,
        row: &PluginRow,
        event: Option<String>,
        data: Option<serde_json::Value>,
        message: &PluginMessage,
        device_id: i64,
        phone: &str,
    ) -> ApiResult<TransformInput> {
        let kind = match event.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
            None => EventType::MessageReceived,
            Some(name) => EventType::parse(name).ok_or_else(|| {
                let known: Vec<&str> = EventType::ALL.iter().map(|e| e.as_str()).collect();
                ApiError::validation("event", format!("unknown event `{name}`; known: {}", known.join(", ")))
            })?,
        };
        let data = match data {
            Some(serde_json::Value::Object(map)) => serde_json::Value::Object(map),
            Some(_) => return Err(ApiError::validation("data", "must be a JSON object")),
            None => {
                let now = crate::time::rfc3339_ms(now_ms());
                serde_json::json!({
                    "id": 0, "device": phone, "device_id": device_id, "direction": "in",
                    "chat": message.chat, "from": message.sender, "to": phone, "text": message.text,
                    "type": "text", "status": "received", "push_name": message.push_name,
                    "is_group": message.is_group, "source": "device", "wa_id": message.wa_id,
                    "created_at": now, "updated_at": now,
                })
            }
        };
        let endpoint = match self.db.webhooks_transformed_by(tenant.id, row.id).await?.first() {
            Some(id) => self.db.webhook(tenant.id, *id).await?,
            None => None,
        };
        Ok(TransformInput {
            event: TransformEvent {
                id: "msg_dry_run".into(),
                kind: kind.as_str().into(),
                timestamp: crate::time::rfc3339_ms(now_ms()),
                data: data.to_string(),
            },
            context: TransformContext {
                tenant_id: tenant.id,
                endpoint_id: endpoint.as_ref().map_or(0, |e| e.id),
                url: endpoint.map(|e| e.url).unwrap_or_default(),
                plugin_id: row.id,
                config: row.config.clone(),
            },
        })
    }

    /// The ids of the referenced devices, each once.
    async fn device_ids(&self, tenant: &Tenant, references: Vec<String>) -> ApiResult<Vec<i64>> {
        if references.len() > MAX_DEVICES {
            return Err(ApiError::validation("devices", format!("at most {MAX_DEVICES} devices")));
        }
        let mut ids = Vec::with_capacity(references.len());
        for reference in references.iter().filter(|d| !d.trim().is_empty()) {
            let id = find_device(&self.db, &self.country_code, tenant, reference).await?.id;
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        Ok(ids)
    }
}

/// Whether the acting key sees plugin `row`: it runs for every device, or for one the key sees.
fn visible(tenant: &Tenant, row: &PluginRow) -> bool {
    let ids = row.device_ids();
    ids.is_empty() || ids.iter().any(|d| tenant.sees(*d))
}

/// Refuses a plugin for devices `ids` (none: every device) reaching beyond the acting key's.
fn may_run_for(tenant: &Tenant, ids: &[i64]) -> ApiResult<()> {
    if ids.is_empty() {
        return tenant.needs_every_device("a plugin for every device");
    }
    ids.iter().try_for_each(|d| tenant.may_change(Some(*d), "the plugin"))
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
