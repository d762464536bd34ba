//! Webhook endpoints (`webhook_endpoints`) and the attempt log (`webhook_logs`).
//!
//! Endpoint secrets arrive here already sealed (see `webhooks::secrets`); this layer never sees
//! a plain secret. The delivery queue is in `webhooks/deliveries.rs` next to this file.

use std::sync::Arc;

use super::tenants::announce_tenant_change;
use super::{insert_within_limit, now_ms, reader, writer, Db, DbError, DbResult};
use crate::resource::Resource;

pub mod deliveries;

pub use deliveries::{AttemptRecord, DeliveryRow, NewDelivery, NextStep, StatusItem, TargetRow};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EndpointRow {
    pub id: i64,
    pub user_id: i64,
    pub url: String,
    pub description: String,
    /// JSON array of event type names.
    pub events: String,
    /// `notify` or `reply`.
    pub mode: String,
    pub device_id: Option<i64>,
    pub device_phone: Option<String>,
    /// The plugin (a transformation) that shapes its events; none: the standard body.
    pub transform_plugin_id: Option<i64>,
    pub enabled: bool,
    /// The current secret, sealed.
    pub secret: String,
    /// JSON array of `{"secret": sealed, "expires_at": ms}` still signing after rotations.
    pub old_secrets: String,
    pub failing_since: Option<i64>,
    pub last_success_at: Option<i64>,
    pub last_failure_at: Option<i64>,
    pub disabled_at: Option<i64>,
    pub disabled_reason: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

pub(crate) const ENDPOINT_SELECT: &str =
    "SELECT w.id, w.user_id, w.url, w.description, w.events, w.mode, w.device_id, \
     d.phone AS device_phone, w.transform_plugin_id, w.enabled, w.secret, w.old_secrets, w.failing_since, w.last_success_at, \
     w.last_failure_at, w.disabled_at, w.disabled_reason, w.created_at, w.updated_at \
     FROM webhook_endpoints w LEFT JOIN devices d ON d.id = w.device_id";

/// The settings of an endpoint (checked by the caller).
#[derive(Debug, Clone)]
pub struct EndpointSettings {
    pub url: String,
    pub description: String,
    /// JSON array of event type names.
    pub events: String,
    pub mode: String,
    pub device_id: Option<i64>,
    /// A transformation plugin of the tenant (checked by the caller).
    pub transform_plugin_id: Option<i64>,
    pub enabled: bool,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LogRow {
    pub id: i64,
    pub user_id: i64,
    pub kind: String,
    pub target: String,
    pub event: String,
    pub message_id: Option<i64>,
    pub attempt: i64,
    pub outcome: String,
    pub http_status: Option<i64>,
    pub latency_ms: Option<i64>,
    pub error: Option<String>,
    pub request: Option<String>,
    pub response: Option<String>,
    pub endpoint_id: Option<i64>,
    pub delivery_id: Option<i64>,
    pub webhook_id: Option<String>,
    pub plugin_id: Option<i64>,
    pub created_at: i64,
    /// The device the event or run was about (none for test events).
    pub device_id: Option<i64>,
}

const LOG_COLUMNS: &str =
    "id, user_id, kind, target, event, message_id, attempt, outcome, http_status, latency_ms, \
     error, request, response, endpoint_id, delivery_id, webhook_id, plugin_id, created_at, device_id";

/// One `webhook_logs` row to write: a webhook attempt or a plugin run.
#[derive(Debug, Clone, Default)]
pub struct NewLog {
    pub user_id: i64,
    /// `webhook` or `plugin`.
    pub kind: String,
    /// The URL (webhooks) or the plugin's name.
    pub target: String,
    pub event: String,
    pub message_id: Option<i64>,
    pub attempt: i64,
    /// `success`, `failure`, `timeout`, `blocked`, `skipped`, `transform_failed` (webhooks);
    /// `trap`, ... (plugins).
    pub outcome: String,
    pub http_status: Option<i64>,
    pub latency_ms: Option<i64>,
    pub error: Option<String>,
    /// Truncated to 4 KiB by the caller.
    pub request: Option<String>,
    pub response: Option<String>,
    pub endpoint_id: Option<i64>,
    pub delivery_id: Option<i64>,
    pub webhook_id: Option<String>,
    pub plugin_id: Option<i64>,
    /// The device the event or run was about.
    pub device_id: Option<i64>,
}

/// Filters of the log list; every field narrows it.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    pub endpoint_id: Option<i64>,
    pub plugin_id: Option<i64>,
    pub kind: Option<String>,
    pub event: Option<String>,
    pub outcome: Option<String>,
    pub message_id: Option<i64>,
    /// Unix ms, inclusive.
    pub since: Option<i64>,
}

pub(crate) const INSERT_LOG: &str = "INSERT INTO webhook_logs (user_id, kind, target, event, message_id, attempt, outcome, \
     http_status, latency_ms, error, request, response, endpoint_id, delivery_id, webhook_id, plugin_id, created_at, device_id) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) RETURNING id";

/// Binds a [`NewLog`] to [`INSERT_LOG`].
macro_rules! bind_log {
    ($q:expr, $log:expr, $now:expr) => {
        $q.bind($log.user_id)
            .bind(&$log.kind)
            .bind(&$log.target)
            .bind(&$log.event)
            .bind($log.message_id)
            .bind($log.attempt)
            .bind(&$log.outcome)
            .bind($log.http_status)
            .bind($log.latency_ms)
            .bind(&$log.error)
            .bind(&$log.request)
            .bind(&$log.response)
            .bind($log.endpoint_id)
            .bind($log.delivery_id)
            .bind(&$log.webhook_id)
            .bind($log.plugin_id)
            .bind($now)
            .bind($log.device_id)
    };
}
pub(crate) use bind_log;

impl Db {
    /// Creates an endpoint unless the tenant already has `limit` of them (`None` = unlimited;
    /// the answer is `None` at the limit).
    pub async fn create_webhook(
        &self,
        tenant: i64,
        settings: &EndpointSettings,
        sealed_secret: &str,
        limit: Option<i64>,
    ) -> DbResult<Option<EndpointRow>> {
        let id: Option<i64> = insert_within_limit!(self, tenant, Resource::WebhookEndpoints, limit, |tx| {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO webhook_endpoints (user_id, url, description, events, mode, device_id, enabled, \
                 secret, created_at, updated_at, transform_plugin_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10) RETURNING id",
            )
            .bind(tenant)
            .bind(&settings.url)
            .bind(&settings.description)
            .bind(&settings.events)
            .bind(&settings.mode)
            .bind(settings.device_id)
            .bind(settings.enabled)
            .bind(sealed_secret)
            .bind(now_ms())
            .bind(settings.transform_plugin_id)
            .fetch_one(&mut *tx)
            .await?;
            announce_tenant_change!(self, tx, tenant);
            id
        })?;
        self.tenants.forget_tenant(tenant);
        match id {
            Some(id) => self.webhook(tenant, id).await?.map(Some).ok_or(DbError::NotFound),
            None => Ok(None),
        }
    }

    pub async fn webhook(&self, tenant: i64, id: i64) -> DbResult<Option<EndpointRow>> {
        let sql = format!("{ENDPOINT_SELECT} WHERE w.user_id = $1 AND w.id = $2");
        Ok(reader!(self, |p| sqlx::query_as(&sql).bind(tenant).bind(id).fetch_optional(p).await)?)
    }

    /// A page of the tenant's endpoints (for every device or for one of `devices`, when
    /// given) and their number.
    pub async fn list_webhooks(
        &self,
        tenant: i64,
        devices: Option<&[i64]>,
        limit: i64,
        offset: i64,
    ) -> DbResult<(Vec<EndpointRow>, i64)> {
        let sql = format!(
            "{ENDPOINT_SELECT} WHERE w.user_id = $1{} ORDER BY w.id LIMIT $2 OFFSET $3",
            super::device_scope("w.device_id", devices, true)
        );
        let rows =
            reader!(self, |p| sqlx::query_as(&sql).bind(tenant).bind(limit).bind(offset).fetch_all(p).await)?;
        let count = format!(
            "SELECT COUNT(*) FROM webhook_endpoints WHERE user_id = $1{}",
            super::device_scope("device_id", devices, true)
        );
        let total: i64 = reader!(self, |p| sqlx::query_scalar(&count).bind(tenant).fetch_one(p).await)?;
        Ok((rows, total))
    }

    /// Replaces an endpoint's settings. Enabling it clears why it was disabled and its failure
    /// clock; disabling it (`disabled_reason`) cancels its queued deliveries.
    pub async fn update_webhook(
        &self,
        tenant: i64,
        id: i64,
        settings: &EndpointSettings,
        disabled_reason: Option<&str>,
    ) -> DbResult<Option<EndpointRow>> {
        let now = now_ms();
        let updated = writer!(self, |p| {
            let mut tx = p.begin().await?;
            let n = sqlx::query(
                "UPDATE webhook_endpoints SET url = $3, description = $4, events = $5, mode = $6, device_id = $7, \
                 failing_since = CASE WHEN $8 AND NOT enabled THEN NULL ELSE failing_since END, \
                 disabled_at = CASE WHEN $8 THEN NULL WHEN enabled THEN $10 ELSE disabled_at END, \
                 disabled_reason = CASE WHEN $8 THEN NULL WHEN enabled THEN $9 ELSE disabled_reason END, \
                 enabled = $8, updated_at = $10, transform_plugin_id = $11 WHERE user_id = $1 AND id = $2",
            )
            .bind(tenant)
            .bind(id)
            .bind(&settings.url)
            .bind(&settings.description)
            .bind(&settings.events)
            .bind(&settings.mode)
            .bind(settings.device_id)
            .bind(settings.enabled)
            .bind(disabled_reason)
            .bind(now)
            .bind(settings.transform_plugin_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 1 && !settings.enabled {
                deliveries::cancel_pending!(
                    tx,
                    id,
                    disabled_reason.unwrap_or("the endpoint is disabled"),
                    now
                );
            }
            announce_tenant_change!(self, tx, tenant);
            tx.commit().await?;
            n == 1
        });
        self.tenants.forget_tenant(tenant);
        if !updated {
            return Ok(None);
        }
        self.webhook(tenant, id).await
    }

    /// Deletes an endpoint with its queued deliveries; its log rows stay. False when the tenant
    /// has no such endpoint.
    pub async fn delete_webhook(&self, tenant: i64, id: i64) -> DbResult<bool> {
        let n = writer!(self, |p| {
            let mut tx = p.begin().await?;
            let n = sqlx::query("DELETE FROM webhook_endpoints WHERE user_id = $1 AND id = $2")
                .bind(tenant)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            announce_tenant_change!(self, tx, tenant);
            tx.commit().await?;
            n
        });
        self.tenants.forget_tenant(tenant);
        Ok(n == 1)
    }

    /// Replaces the endpoint's secrets with what `rotate(current, old_secrets)` returns, read
    /// and written in one transaction (so two rotations at once cannot lose a secret).
    pub async fn rotate_webhook_secret<F>(
        &self,
        tenant: i64,
        id: i64,
        rotate: F,
    ) -> DbResult<Option<EndpointRow>>
    where
        F: FnOnce(&str, &str) -> (String, String),
    {
        let lock = self.lock_tenant_sql();
        let done = writer!(self, |p| {
            let mut tx = p.begin().await?;
            sqlx::query(lock).bind(tenant).execute(&mut *tx).await?;
            let current: Option<(String, String)> = sqlx::query_as(
                "SELECT secret, old_secrets FROM webhook_endpoints WHERE user_id = $1 AND id = $2",
            )
            .bind(tenant)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            match current {
                None => false,
                Some((secret, old)) => {
                    let (secret, old) = rotate(&secret, &old);
                    sqlx::query(
                        "UPDATE webhook_endpoints SET secret = $3, old_secrets = $4, updated_at = $5 \
                         WHERE user_id = $1 AND id = $2",
                    )
                    .bind(tenant)
                    .bind(id)
                    .bind(secret)
                    .bind(old)
                    .bind(now_ms())
                    .execute(&mut *tx)
                    .await?;
                    announce_tenant_change!(self, tx, tenant);
                    tx.commit().await?;
                    true
                }
            }
        });
        self.tenants.forget_tenant(tenant);
        if !done {
            return Ok(None);
        }
        self.webhook(tenant, id).await
    }

    /// The ids of the tenant's endpoints whose events go through plugin `plugin_id`.
    pub async fn webhooks_transformed_by(&self, tenant: i64, plugin_id: i64) -> DbResult<Vec<i64>> {
        Ok(reader!(self, |p| sqlx::query_scalar(
            "SELECT id FROM webhook_endpoints WHERE user_id = $1 AND transform_plugin_id = $2 ORDER BY id"
        )
        .bind(tenant)
        .bind(plugin_id)
        .fetch_all(p)
        .await)?)
    }

    /// An endpoint whatever its tenant (the delivery worker).
    pub async fn system_webhook(&self, id: i64) -> DbResult<Option<EndpointRow>> {
        let sql = format!("{ENDPOINT_SELECT} WHERE w.id = $1");
        Ok(reader!(self, |p| sqlx::query_as(&sql).bind(id).fetch_optional(p).await)?)
    }

    /// The tenant's enabled `reply` endpoints subscribed to `message.received` for this device;
    /// from memory when read in the last moments (every change to an endpoint forgets them).
    pub async fn reply_webhooks(&self, tenant: i64, device_id: i64) -> DbResult<Arc<Vec<EndpointRow>>> {
        if let Some(hooks) = self.tenants.reply_hooks(tenant, device_id) {
            return Ok(hooks);
        }
        let generation = self.tenants.generation();
        let sql = format!(
            "{ENDPOINT_SELECT} WHERE w.user_id = $1 AND w.enabled = TRUE AND w.mode = 'reply' \
             AND (w.device_id IS NULL OR w.device_id = $2) AND w.events LIKE $3 ORDER BY w.id"
        );
        let rows: Vec<EndpointRow> = reader!(self, |p| sqlx::query_as(&sql)
            .bind(tenant)
            .bind(device_id)
            .bind(event_pattern("message.received"))
            .fetch_all(p)
            .await)?;
        let hooks = Arc::new(rows);
        self.tenants.put_reply_hooks(generation, tenant, device_id, &hooks);
        Ok(hooks)
    }

    /// Writes one log row (a webhook attempt or a plugin run); returns its id.
    pub async fn insert_webhook_log(&self, log: &NewLog) -> DbResult<i64> {
        let now = now_ms();
        Ok(writer!(self, |p| bind_log!(sqlx::query_scalar(INSERT_LOG), log, now).fetch_one(p).await)?)
    }

    /// A page of the tenant's log, newest first, with the number of matching rows.
    pub async fn list_webhook_logs(
        &self,
        tenant: i64,
        devices: Option<&[i64]>,
        f: &LogFilter,
        limit: i64,
        offset: i64,
    ) -> DbResult<(Vec<LogRow>, i64)> {
        // A key limited to some devices sees the rows of its devices: rows of no device (test
        // events) belong to the whole account.
        let cond = format!(
            " WHERE user_id = $1 AND ($2 IS NULL OR endpoint_id = $2) AND ($3 IS NULL OR plugin_id = $3) \
             AND ($4 IS NULL OR kind = $4) AND ($5 IS NULL OR event = $5) AND ($6 IS NULL OR outcome = $6) \
             AND ($7 IS NULL OR message_id = $7) AND ($8 IS NULL OR created_at >= $8){}",
            super::device_scope("device_id", devices, false)
        );
        let sql =
            format!("SELECT {LOG_COLUMNS} FROM webhook_logs{cond} ORDER BY id DESC LIMIT $9 OFFSET $10");
        let count = format!("SELECT COUNT(*) FROM webhook_logs{cond}");
        macro_rules! filtered {
            ($q:expr) => {
                $q.bind(tenant)
                    .bind(f.endpoint_id)
                    .bind(f.plugin_id)
                    .bind(&f.kind)
                    .bind(&f.event)
                    .bind(&f.outcome)
                    .bind(f.message_id)
                    .bind(f.since)
            };
        }
        let rows: Vec<LogRow> =
            reader!(self, |p| filtered!(sqlx::query_as(&sql)).bind(limit).bind(offset).fetch_all(p).await)?;
        let total: i64 = reader!(self, |p| filtered!(sqlx::query_scalar(&count)).fetch_one(p).await)?;
        Ok((rows, total))
    }

    pub async fn webhook_log(&self, tenant: i64, id: i64) -> DbResult<Option<LogRow>> {
        let sql = format!("SELECT {LOG_COLUMNS} FROM webhook_logs WHERE user_id = $1 AND id = $2");
        Ok(reader!(self, |p| sqlx::query_as(&sql).bind(tenant).bind(id).fetch_optional(p).await)?)
    }
}

/// The `LIKE` pattern that finds an event name in an endpoint's JSON `events` array. Event
/// names contain no `%` or `_`, so the quotes make it an exact match.
pub(crate) fn event_pattern(event: &str) -> String {
    format!("%\"{event}\"%")
}
