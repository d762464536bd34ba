//! Webhook endpoints and their log: `/api/user/webhooks` (CRUD, `rotate-secret`) and
//! `/api/user/webhook-logs` (list, one row, `retry`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, NaiveDate};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::devices::resolve_device;
use super::extract::{ApiJson, ApiQuery, Page, PageQuery, Tenant};
use super::messages::opt_string_or_number;
use super::ts;
use crate::app::AppState;
use crate::db::page;
use crate::db::webhooks::deliveries::RetryLog;
use crate::db::webhooks::{CreateEndpoint, EndpointRow, EndpointSettings, LogFilter, LogRow};
use crate::error::{ApiError, ApiResult};
use crate::limits::{LimitError, Resource};
use crate::net::NetError;
use crate::webhooks::EventType;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_webhooks, create_webhook))
        .routes(routes!(get_webhook, update_webhook, delete_webhook))
        .routes(routes!(rotate_webhook_secret))
        .routes(routes!(list_webhook_logs))
        .routes(routes!(get_webhook_log))
        .routes(routes!(retry_webhook_log))
}

/// Longest description, in characters.
const MAX_DESCRIPTION: usize = 200;

/// A webhook endpoint.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WebhookOut {
    pub id: i64,
    pub url: String,
    pub description: String,
    /// The events it receives.
    pub events: Vec<String>,
    /// `notify` (events are queued and delivered) or `reply` (`message.received` is posted
    /// during the inbound pipeline and the answer is sent to the chat).
    pub mode: String,
    pub enabled: bool,
    /// The device's phone number when the endpoint only hears about one device, else `null`.
    pub device: Option<String>,
    pub device_id: Option<i64>,
    /// The signing secret (`whsec_…`): only in the answers to create and `rotate-secret`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Why the endpoint was disabled (`410 Gone`, failing too long, or by you).
    pub disabled_reason: Option<String>,
    pub disabled_at: Option<String>,
    /// The first failed attempt since the last success; `null` when healthy.
    pub failing_since: Option<String>,
    pub last_success_at: Option<String>,
    pub last_failure_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

fn webhook_out(r: EndpointRow, secret: Option<String>) -> WebhookOut {
    WebhookOut {
        id: r.id,
        url: r.url,
        description: r.description,
        events: serde_json::from_str(&r.events).unwrap_or_default(),
        mode: r.mode,
        enabled: r.enabled,
        device: r.device_phone,
        device_id: r.device_id,
        secret,
        disabled_reason: r.disabled_reason,
        disabled_at: r.disabled_at.map(ts),
        failing_since: r.failing_since.map(ts),
        last_success_at: r.last_success_at.map(ts),
        last_failure_at: r.last_failure_at.map(ts),
        created_at: ts(r.created_at),
        updated_at: ts(r.updated_at),
    }
}

/// An endpoint to create (`POST`), or the fields to change (`PATCH`: fields left out keep
/// their value).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookIn {
    /// `http` or `https` URL. Private, loopback, link-local and metadata addresses (and names
    /// that resolve only to them) are refused unless the operator allows private targets.
    pub url: Option<String>,
    /// Any of `message.received`, `message.sent`, `message.status`, `device.status`,
    /// `device.qr`, `scheduled.sent`, `plugin.failed`. Default: all of them (`notify`), or
    /// `["message.received"]` (`reply`).
    pub events: Option<Vec<String>>,
    /// `notify` (default) or `reply`; `reply` needs `message.received` among the events.
    pub mode: Option<String>,
    /// Default true. Enabling clears `disabled_reason`; disabling cancels queued deliveries.
    pub enabled: Option<bool>,
    /// Only events of this device (id or phone number); `null` or absent on create: all.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub device: Option<Option<String>>,
    /// A note for yourself (up to 200 characters).
    pub description: Option<String>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    opt_string_or_number(d).map(Some)
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

/// Merges the request into the current endpoint (or the defaults) and checks every field.
async fn build(
    state: &AppState,
    tenant: &Tenant,
    current: Option<&EndpointRow>,
    body: WebhookIn,
) -> ApiResult<EndpointSettings> {
    let url = body.url.or_else(|| current.map(|c| c.url.clone()));
    let url = url.ok_or_else(|| ApiError::validation("url", "missing field `url`"))?;
    let url = state.webhooks.check_target(&url).await.map_err(|e| match e {
        NetError::Blocked(what) => ApiError::validation(
            "url",
            format!("{what}: private, loopback, link-local and metadata addresses are not allowed as webhook targets"),
        ),
        other => ApiError::validation("url", other.to_string()),
    })?;
    let mode = body.mode.or_else(|| current.map(|c| c.mode.clone())).unwrap_or_else(|| "notify".into());
    if mode != "notify" && mode != "reply" {
        return Err(ApiError::validation("mode", "must be `notify` or `reply`"));
    }
    let events: Vec<EventType> = match (body.events, current) {
        (Some(list), _) => parse_events(&list, &mode)?,
        (None, Some(c)) => {
            parse_events(&serde_json::from_str::<Vec<String>>(&c.events).unwrap_or_default(), &mode)?
        }
        (None, None) if mode == "reply" => vec![EventType::MessageReceived],
        (None, None) => EventType::ALL.to_vec(),
    };
    let device_id = match body.device {
        Some(Some(d)) if !d.trim().is_empty() => Some(resolve_device(state, tenant.id, &d).await?.id),
        Some(_) => None,
        None => current.and_then(|c| c.device_id),
    };
    let description = body.description.or_else(|| current.map(|c| c.description.clone())).unwrap_or_default();
    if description.chars().count() > MAX_DESCRIPTION {
        return Err(ApiError::validation(
            "description",
            format!("must be at most {MAX_DESCRIPTION} characters"),
        ));
    }
    let names: Vec<&str> = events.iter().map(|e| e.as_str()).collect();
    Ok(EndpointSettings {
        url: url.to_string(),
        description: description.trim().to_string(),
        events: serde_json::to_string(&names).unwrap_or_else(|_| "[]".into()),
        mode,
        device_id,
        enabled: body.enabled.or(current.map(|c| c.enabled)).unwrap_or(true),
    })
}

fn parse_id(raw: &str, what: &str) -> ApiResult<i64> {
    raw.trim().parse().map_err(|_| ApiError::not_found(what))
}

/// The tenant's webhook endpoints (without secrets).
#[utoipa::path(get, path = "/api/user/webhooks", tag = "webhooks", params(PageQuery),
    responses((status = 200, body = Page<WebhookOut>)))]
async fn list_webhooks(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<WebhookOut>>> {
    let (limit, offset) = page(q.limit, q.offset);
    let (rows, total) = state.db.list_webhooks(tenant.id, limit, offset).await?;
    Ok(Json(Page { data: rows.into_iter().map(|r| webhook_out(r, None)).collect(), total, limit, offset }))
}

/// Registers an endpoint (within the package's `webhook_endpoints` limit). The answer holds its
/// signing secret, shown only here and after `rotate-secret`.
#[utoipa::path(post, path = "/api/user/webhooks", tag = "webhooks", request_body = WebhookIn,
    responses((status = 201, body = WebhookOut), (status = 404, body = crate::error::ErrorBody),
              (status = 422, body = crate::error::ErrorBody), (status = 429, body = crate::error::ErrorBody)))]
async fn create_webhook(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiJson(body): ApiJson<WebhookIn>,
) -> ApiResult<(StatusCode, Json<WebhookOut>)> {
    let settings = build(&state, &tenant, None, body).await?;
    let limit = state.limits.limits(tenant.id, &tenant.package).await?.get(Resource::WebhookEndpoints);
    let (secret, sealed) = state.webhooks.new_secret(tenant.id);
    let row = match state.db.create_webhook(tenant.id, &settings, &sealed, limit).await? {
        CreateEndpoint::Created(row) => *row,
        CreateEndpoint::OverLimit => {
            return Err(LimitError::Exceeded { limit: Resource::WebhookEndpoints }.into())
        }
    };
    state.tenants.record(tenant.activity("webhook.create", format!("webhook:{}", row.id))).await;
    Ok((StatusCode::CREATED, Json(webhook_out(row, Some(secret.to_whsec())))))
}

/// One endpoint (without its secret).
#[utoipa::path(get, path = "/api/user/webhooks/{id}", tag = "webhooks",
    responses((status = 200, body = WebhookOut), (status = 404, body = crate::error::ErrorBody)))]
async fn get_webhook(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<WebhookOut>> {
    let id = parse_id(&id, "webhook")?;
    let row = state.db.webhook(tenant.id, id).await?.ok_or_else(|| ApiError::not_found("webhook"))?;
    Ok(Json(webhook_out(row, None)))
}

/// Changes an endpoint: the fields given replace the current ones.
#[utoipa::path(patch, path = "/api/user/webhooks/{id}", tag = "webhooks", request_body = WebhookIn,
    responses((status = 200, body = WebhookOut), (status = 404, body = crate::error::ErrorBody),
              (status = 422, body = crate::error::ErrorBody)))]
async fn update_webhook(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<WebhookIn>,
) -> ApiResult<Json<WebhookOut>> {
    let id = parse_id(&id, "webhook")?;
    let current = state.db.webhook(tenant.id, id).await?.ok_or_else(|| ApiError::not_found("webhook"))?;
    let settings = build(&state, &tenant, Some(&current), body).await?;
    let reason = (!settings.enabled).then_some("disabled by you");
    let row = state
        .db
        .update_webhook(tenant.id, id, &settings, reason)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    state.tenants.record(tenant.activity("webhook.update", format!("webhook:{id}"))).await;
    Ok(Json(webhook_out(row, None)))
}

/// Deletes an endpoint and its queued deliveries; its log rows stay.
#[utoipa::path(delete, path = "/api/user/webhooks/{id}", tag = "webhooks",
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
async fn delete_webhook(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = parse_id(&id, "webhook")?;
    if !state.db.delete_webhook(tenant.id, id).await? {
        return Err(ApiError::not_found("webhook"));
    }
    state.tenants.record(tenant.activity("webhook.delete", format!("webhook:{id}"))).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Replaces the signing secret. The answer holds the new one; the old one keeps signing
/// (a second `v1,` entry in `webhook-signature`) for 24 hours.
#[utoipa::path(post, path = "/api/user/webhooks/{id}/rotate-secret", tag = "webhooks",
    responses((status = 200, body = WebhookOut), (status = 404, body = crate::error::ErrorBody)))]
async fn rotate_webhook_secret(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<WebhookOut>> {
    let id = parse_id(&id, "webhook")?;
    let (secret, sealed) = state.webhooks.new_secret(tenant.id);
    let webhooks = state.webhooks.clone();
    let row = state
        .db
        .rotate_webhook_secret(tenant.id, id, move |current, old| webhooks.rotated(current, old, sealed))
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    state.tenants.record(tenant.activity("webhook.rotate_secret", format!("webhook:{id}"))).await;
    Ok(Json(webhook_out(row, Some(secret.to_whsec()))))
}

/// One webhook attempt or plugin run.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WebhookLogOut {
    pub id: i64,
    /// `webhook` or `plugin`.
    pub kind: String,
    /// The URL posted to, or the plugin's name.
    pub target: String,
    pub event: String,
    /// The gateway message the event is about.
    pub message_id: Option<i64>,
    /// 1 for the first attempt of a delivery, then 2, 3, …
    pub attempt: i64,
    /// `success`, `failure`, `timeout` or `blocked` (webhooks); plugin outcomes for plugins.
    pub outcome: String,
    pub http_status: Option<i64>,
    pub latency_ms: Option<i64>,
    pub error: Option<String>,
    /// What was sent (headers that identify it and the body), up to 4 KiB.
    pub request: Option<String>,
    /// The answer's body, up to 4 KiB.
    pub response: Option<String>,
    /// The endpoint's id.
    pub webhook: Option<i64>,
    /// The `webhook-id` header: the same on every attempt of a delivery.
    pub webhook_id: Option<String>,
    /// The plugin's id (plugin runs).
    pub plugin: Option<i64>,
    pub created_at: String,
}

fn log_out(r: LogRow) -> WebhookLogOut {
    WebhookLogOut {
        id: r.id,
        kind: r.kind,
        target: r.target,
        event: r.event,
        message_id: r.message_id,
        attempt: r.attempt,
        outcome: r.outcome,
        http_status: r.http_status,
        latency_ms: r.latency_ms,
        error: r.error,
        request: r.request,
        response: r.response,
        webhook: r.endpoint_id,
        webhook_id: r.webhook_id,
        plugin: r.plugin_id,
        created_at: ts(r.created_at),
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct LogQuery {
    pub limit: Option<i64>,
    pub offset: Option<i64>,
    /// An endpoint's id.
    pub webhook: Option<String>,
    /// A plugin's id.
    pub plugin: Option<String>,
    /// `webhook` or `plugin`.
    pub kind: Option<String>,
    /// An event type, e.g. `message.received`.
    pub event: Option<String>,
    /// `success`, `failure`, `timeout`, `blocked`, …
    pub outcome: Option<String>,
    /// A gateway message id.
    pub message_id: Option<String>,
    /// RFC 3339 time or a date (`2026-11-25`), inclusive.
    pub since: Option<String>,
}

fn filter_of(q: &LogQuery) -> ApiResult<LogFilter> {
    let id = |v: &Option<String>, field: &str| -> ApiResult<Option<i64>> {
        match v.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(s) => s.parse().map(Some).map_err(|_| ApiError::validation(field, "must be a number")),
        }
    };
    let text = |v: &Option<String>| v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
    let since = match text(&q.since) {
        None => None,
        Some(s) => Some(parse_time(&s)?),
    };
    Ok(LogFilter {
        endpoint_id: id(&q.webhook, "webhook")?,
        plugin_id: id(&q.plugin, "plugin")?,
        kind: text(&q.kind),
        event: text(&q.event),
        outcome: text(&q.outcome),
        message_id: id(&q.message_id, "message_id")?,
        since,
    })
}

fn parse_time(raw: &str) -> ApiResult<i64> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(t.timestamp_millis());
    }
    if let Ok(d) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc().timestamp_millis());
    }
    Err(ApiError::validation("since", "must be an RFC 3339 time or a YYYY-MM-DD date"))
}

/// Webhook attempts and plugin runs, newest first, filtered.
#[utoipa::path(get, path = "/api/user/webhook-logs", tag = "webhooks", params(LogQuery),
    responses((status = 200, body = Page<WebhookLogOut>), (status = 422, body = crate::error::ErrorBody)))]
async fn list_webhook_logs(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiQuery(q): ApiQuery<LogQuery>,
) -> ApiResult<Json<Page<WebhookLogOut>>> {
    let (limit, offset) = page(q.limit, q.offset);
    let filter = filter_of(&q)?;
    let (rows, total) = state.db.list_webhook_logs(tenant.id, &filter, limit, offset).await?;
    Ok(Json(Page { data: rows.into_iter().map(log_out).collect(), total, limit, offset }))
}

/// One log row.
#[utoipa::path(get, path = "/api/user/webhook-logs/{id}", tag = "webhooks",
    responses((status = 200, body = WebhookLogOut), (status = 404, body = crate::error::ErrorBody)))]
async fn get_webhook_log(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<WebhookLogOut>> {
    let id = parse_id(&id, "log row")?;
    let row = state.db.webhook_log(tenant.id, id).await?.ok_or_else(|| ApiError::not_found("log row"))?;
    Ok(Json(log_out(row)))
}

/// What a retry queued.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RetryOut {
    /// `queued`: the worker sends it now.
    pub status: String,
    pub webhook: i64,
    /// The same `webhook-id` as the attempt retried.
    pub webhook_id: String,
    pub event: String,
    /// The number the new attempt will carry.
    pub attempt: i64,
}

/// Sends the delivery of a log row again, with the same `webhook-id` (one more attempt for a
/// finished delivery; now, for one waiting for its next retry).
#[utoipa::path(post, path = "/api/user/webhook-logs/{id}/retry", tag = "webhooks",
    responses((status = 202, body = RetryOut), (status = 404, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody)))]
async fn retry_webhook_log(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<RetryOut>)> {
    let id = parse_id(&id, "log row")?;
    let row = match state.db.retry_webhook_log(tenant.id, id).await? {
        RetryLog::Queued(row) => *row,
        RetryLog::NotFound => return Err(ApiError::not_found("log row")),
        RetryLog::NotWebhook => return Err(ApiError::Conflict("only webhook attempts can be retried".into())),
        RetryLog::Gone => {
            return Err(ApiError::NotFound("the delivery of this log row is no longer kept (its endpoint was deleted, or it is older than 7 days)".into()))
        }
        RetryLog::InProgress => return Err(ApiError::Conflict("an attempt of this delivery is running; try again shortly".into())),
        RetryLog::Disabled => return Err(ApiError::Conflict("the endpoint is disabled; enable it first".into())),
    };
    state.webhooks.events().wake();
    state.tenants.record(tenant.activity("webhook.retry", format!("webhook_log:{id}"))).await;
    Ok((
        StatusCode::ACCEPTED,
        Json(RetryOut {
            status: "queued".into(),
            webhook: row.endpoint_id,
            webhook_id: row.webhook_id,
            event: row.event,
            attempt: row.attempts + 1,
        }),
    ))
}
