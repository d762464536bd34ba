//! The webhook endpoints a tenant keeps and their log: creating (within the package's
//! `webhook_endpoints` limit, with a new signing secret), changing, rotating the secret,
//! deleting, and sending a logged delivery again; each change recorded in the activity log.
//! The API and the dashboard both call this.

use super::{EventType, Webhooks};
use crate::db::webhooks::deliveries::{DeliveryRow, RetryLog};
use crate::db::webhooks::{EndpointRow, EndpointSettings, LogFilter, LogRow};
use crate::db::Db;
use crate::devices::find_device;
use crate::error::{ApiError, ApiResult};
use crate::limits::{LimitsService, Resource};
use crate::net::NetError;
use crate::plugins::runtime::{PluginKind, TRANSFORM_WORLD};
use crate::tenants::{Tenant, TenantService};

/// Longest description, in characters.
pub const MAX_DESCRIPTION: usize = 200;

/// What to set on an endpoint. A field left `None` keeps the endpoint's value (on a new one,
/// takes the default); `device: Some(None)` hears about every device.
#[derive(Debug, Clone, Default)]
pub struct EndpointChange {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub mode: Option<String>,
    pub enabled: Option<bool>,
    /// Device id or phone number.
    pub device: Option<Option<String>>,
    pub description: Option<String>,
    /// The transformation plugin that shapes its events; `Some(None)` removes it.
    pub transform_plugin_id: Option<Option<i64>>,
}

#[derive(Clone)]
pub struct EndpointService {
    db: Db,
    limits: LimitsService,
    tenants: TenantService,
    webhooks: Webhooks,
    country_code: String,
}

fn not_found() -> ApiError {
    ApiError::not_found("webhook")
}

impl EndpointService {
    pub fn new(
        db: Db,
        limits: LimitsService,
        tenants: TenantService,
        webhooks: Webhooks,
        country_code: &str,
    ) -> Self {
        EndpointService { db, limits, tenants, webhooks, country_code: country_code.to_string() }
    }

    /// A page of the tenant's endpoints and their number.
    pub async fn list(&self, tenant: &Tenant, limit: i64, offset: i64) -> ApiResult<(Vec<EndpointRow>, i64)> {
        Ok(self.db.list_webhooks(tenant.id, tenant.devices.ids(), limit, offset).await?)
    }

    /// One of the tenant's endpoints: of the acting key's devices, or for every device.
    pub async fn get(&self, tenant: &Tenant, id: i64) -> ApiResult<EndpointRow> {
        self.db.webhook(tenant.id, id).await?.filter(|w| tenant.sees_bound(w.device_id)).ok_or_else(not_found)
    }

    /// Creates an endpoint (`url` required) within the package's limit; the answer carries
    /// its signing secret (`whsec_…`), shown only now.
    pub async fn create(&self, tenant: &Tenant, change: EndpointChange) -> ApiResult<(EndpointRow, String)> {
        let settings = self.build(tenant, None, change).await?;
        tenant.may_change(settings.device_id, "a webhook")?;
        let (secret, sealed) = self.webhooks.new_secret(tenant.id);
        let row = self
            .limits
            .create_within(tenant.id, &tenant.package, Resource::WebhookEndpoints, |limit| {
                self.db.create_webhook(tenant.id, &settings, &sealed, limit)
            })
            .await?;
        self.tenants.record(tenant.activity("webhook.create", format!("webhook:{}", row.id))).await;
        Ok((row, secret.to_whsec()))
    }

    /// Changes the fields given. Enabling clears the reason it was disabled; disabling
    /// cancels its queued deliveries.
    pub async fn update(&self, tenant: &Tenant, id: i64, change: EndpointChange) -> ApiResult<EndpointRow> {
        let current = self.get(tenant, id).await?;
        tenant.may_change(current.device_id, "the webhook")?;
        let settings = self.build(tenant, Some(&current), change).await?;
        tenant.may_change(settings.device_id, "a webhook")?;
        let reason = (!settings.enabled).then_some("disabled by you");
        let row = self.db.update_webhook(tenant.id, id, &settings, reason).await?.ok_or_else(not_found)?;
        self.tenants.record(tenant.activity("webhook.update", format!("webhook:{id}"))).await;
        Ok(row)
    }

    /// Deletes an endpoint and its queued deliveries; its log rows stay.
    pub async fn delete(&self, tenant: &Tenant, id: i64) -> ApiResult<()> {
        tenant.may_change(self.get(tenant, id).await?.device_id, "the webhook")?;
        if !self.db.delete_webhook(tenant.id, id).await? {
            return Err(not_found());
        }
        self.tenants.record(tenant.activity("webhook.delete", format!("webhook:{id}"))).await;
        Ok(())
    }

    /// Replaces the signing secret; the old one keeps signing alongside for 24 hours. The
    /// answer carries the new secret.
    pub async fn rotate_secret(&self, tenant: &Tenant, id: i64) -> ApiResult<(EndpointRow, String)> {
        tenant.may_change(self.get(tenant, id).await?.device_id, "the webhook")?;
        let (secret, sealed) = self.webhooks.new_secret(tenant.id);
        let webhooks = self.webhooks.clone();
        let row = self
            .db
            .rotate_webhook_secret(tenant.id, id, move |current, old| webhooks.rotated(current, old, sealed))
            .await?
            .ok_or_else(not_found)?;
        self.tenants.record(tenant.activity("webhook.rotate_secret", format!("webhook:{id}"))).await;
        Ok((row, secret.to_whsec()))
    }

    /// Webhook attempts and plugin runs, newest first, and their number.
    pub async fn logs(
        &self,
        tenant: &Tenant,
        filter: &LogFilter,
        limit: i64,
        offset: i64,
    ) -> ApiResult<(Vec<LogRow>, i64)> {
        Ok(self.db.list_webhook_logs(tenant.id, tenant.devices.ids(), filter, limit, offset).await?)
    }

    /// One of the tenant's log rows; a key limited to some devices sees those of its devices.
    pub async fn log(&self, tenant: &Tenant, id: i64) -> ApiResult<LogRow> {
        self.db
            .webhook_log(tenant.id, id)
            .await?
            .filter(|l| tenant.devices.is_all() || l.device_id.is_some_and(|d| tenant.sees(d)))
            .ok_or_else(|| ApiError::not_found("log row"))
    }

    /// Sends the delivery of a log row again with the same `webhook-id`.
    pub async fn retry(&self, tenant: &Tenant, log_id: i64) -> ApiResult<DeliveryRow> {
        self.log(tenant, log_id).await?;
        let row = match self.db.retry_webhook_log(tenant.id, log_id).await? {
            RetryLog::Queued(row) => *row,
            RetryLog::NotFound => return Err(ApiError::not_found("log row")),
            RetryLog::NotWebhook => return Err(ApiError::Conflict("only webhook attempts can be retried".into())),
            RetryLog::Gone => {
                return Err(ApiError::NotFound(
                    "the delivery of this log row is no longer kept (its endpoint was deleted, or it is older than 7 days)"
                        .into(),
                ))
            }
            RetryLog::InProgress => {
                return Err(ApiError::Conflict("an attempt of this delivery is running; try again shortly".into()))
            }
            RetryLog::Disabled => return Err(ApiError::Conflict("the endpoint is disabled; enable it first".into())),
        };
        self.webhooks.events().wake();
        self.tenants.record(tenant.activity("webhook.retry", format!("webhook_log:{log_id}"))).await;
        Ok(row)
    }

    /// Merges the change into the current endpoint (or the defaults) and checks every field.
    async fn build(
        &self,
        tenant: &Tenant,
        current: Option<&EndpointRow>,
        change: EndpointChange,
    ) -> ApiResult<EndpointSettings> {
        let url = change.url.or_else(|| current.map(|c| c.url.clone()));
        let url = url.ok_or_else(|| ApiError::validation("url", "missing field `url`"))?;
        let url = self.webhooks.check_target(&url).await.map_err(|e| match e {
            NetError::Blocked(what) => ApiError::validation(
                "url",
                format!("{what}: private, loopback, link-local and metadata addresses are not allowed as webhook targets"),
            ),
            other => ApiError::validation("url", other.to_string()),
        })?;
        let mode = change.mode.or_else(|| current.map(|c| c.mode.clone())).unwrap_or_else(|| "notify".into());
        if mode != "notify" && mode != "reply" {
            return Err(ApiError::validation("mode", "must be `notify` or `reply`"));
        }
        let events: Vec<EventType> = match (change.events, current) {
            (Some(list), _) => parse_events(&list, &mode)?,
            (None, Some(c)) => {
                parse_events(&serde_json::from_str::<Vec<String>>(&c.events).unwrap_or_default(), &mode)?
            }
            (None, None) if mode == "reply" => vec![EventType::MessageReceived],
            (None, None) => EventType::ALL.to_vec(),
        };
        let device_id = match change.device {
            Some(Some(d)) if !d.trim().is_empty() => {
                Some(find_device(&self.db, &self.country_code, tenant, &d).await?.id)
            }
            Some(_) => None,
            None => current.and_then(|c| c.device_id),
        };
        let description =
            change.description.or_else(|| current.map(|c| c.description.clone())).unwrap_or_default();
        if description.chars().count() > MAX_DESCRIPTION {
            return Err(ApiError::validation(
                "description",
                format!("must be at most {MAX_DESCRIPTION} characters"),
            ));
        }
        let transform_plugin_id = match change.transform_plugin_id {
            Some(id) => id,
            None => current.and_then(|c| c.transform_plugin_id),
        };
        if let Some(plugin_id) = transform_plugin_id {
            if mode != "notify" {
                return Err(ApiError::validation(
                    "transform_plugin_id",
                    "only a `notify` endpoint's events go through a transformation",
                ));
            }
            let plugin = self.db.plugin(tenant.id, plugin_id).await?;
            match plugin {
                None => {
                    return Err(ApiError::validation(
                        "transform_plugin_id",
                        format!("you have no plugin {plugin_id}"),
                    ))
                }
                Some(p) if p.kind != PluginKind::Transform.as_str() => {
                    return Err(ApiError::validation(
                        "transform_plugin_id",
                        format!(
                            "plugin {plugin_id} is an auto-reply plugin; a transformation is built for the {TRANSFORM_WORLD} world"
                        ),
                    ))
                }
                Some(_) => {}
            }
        }
        let names: Vec<&str> = events.iter().map(|e| e.as_str()).collect();
        Ok(EndpointSettings {
            url: url.to_string(),
            description: description.trim().to_string(),
            events: serde_json::to_string(&names).unwrap_or_else(|_| "[]".into()),
            mode,
            device_id,
            transform_plugin_id,
            enabled: change.enabled.or(current.map(|c| c.enabled)).unwrap_or(true),
        })
    }
}

fn parse_events(list: &[String], mode: &str) -> ApiResult<Vec<EventType>> {
    let mut out: Vec<EventType> = Vec::new();
    for name in list {
        let event = EventType::parse(name.trim()).ok_or_else(|| {
            let known: Vec<&str> = EventType::ALL.iter().map(|e| e.as_str()).collect();
            ApiError::validation("events", format!("unknown event `{name}`; known: {}", known.join(", ")))
        })?;
        if !out.contains(&event) {
            out.push(event);
        }
    }
    if out.is_empty() {
        return Err(ApiError::validation("events", "must name at least one event"));
    }
    if mode == "reply" && !out.contains(&EventType::MessageReceived) {
        return Err(ApiError::validation("events", "reply mode needs `message.received`"));
    }
    Ok(out)
}
