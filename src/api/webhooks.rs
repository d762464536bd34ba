//! Webhook endpoints and their log: `/api/user/webhooks` (CRUD, `rotate-secret`) and
//! `/api/user/webhook-logs` (list, one row, `retry`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, NaiveDate};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{page, ApiJson, ApiQuery, Page, PageQuery, Tenant};
use super::messages::opt_string_or_number;
use super::ts;
use crate::db::webhooks::{EndpointRow, LogFilter, LogRow};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::webhooks::endpoints::EndpointChange;
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
    /// The plugin (a webhook transformation) that turns each event into the request sent;
    /// `null`: the standard signed JSON body.
    pub transform_plugin_id: Option<i64>,
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

pub fn webhook_out(r: EndpointRow, secret: Option<String>) -> WebhookOut {
    WebhookOut {
        id: r.id,
        url: r.url,
        description: r.description,
        events: serde_json::from_str(&r.events).unwrap_or_default(),
        mode: r.mode,
        enabled: r.enabled,
        device: r.device_phone,
        device_id: r.device_id,
        transform_plugin_id: r.transform_plugin_id,
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

/// The fields of an endpoint to change (`PATCH`: fields left out or `null` keep their value,
/// except `device`, where `null` means every device). A `POST` is parsed the same way and
/// checked to have `url`; [`WebhookCreate`] documents it.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookIn {
    /// `http` or `https` URL, up to 4,096 characters. Private, loopback, link-local and metadata
    /// addresses (and names that resolve only to them) are refused (422) unless the operator
    /// allows private targets.
    #[schema(
        pattern = r"^[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(:[1-9][0-9]{0,3})?(/[!-~]*)?$",
        max_length = 4096
    )]
    pub url: Option<String>,
    /// The events it receives (at least one); `reply` mode needs `message.received` among them.
    #[schema(schema_with = webhook_events)]
    pub events: Option<Vec<String>>,
    /// `reply` needs `message.received` among the events.
    #[schema(value_type = Option<WebhookMode>)]
    pub mode: Option<String>,
    /// Enabling clears `disabled_reason`; disabling cancels queued deliveries.
    pub enabled: Option<bool>,
    /// Only events of this device (id or phone number); `null`: every device.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<super::openapi::schemas::DeviceRef>)]
    pub device: Option<Option<String>>,
    /// A note for yourself (up to 200 characters).
    #[schema(max_length = 200)]
    pub description: Option<String>,
    /// A plugin of yours built for the `wa-gateway:transform/transform` world: each event goes
    /// out as the request it returns (still signed). `notify` endpoints only; `null` removes it.
    #[serde(default, deserialize_with = "present_id")]
    #[schema(value_type = Option<i64>, minimum = 1)]
    pub transform_plugin_id: Option<Option<i64>>,
}

/// An endpoint to create: the body of `POST /api/user/webhooks` (for the OpenAPI document; it
/// is parsed as [`WebhookIn`]).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct WebhookCreate {
    /// `http` or `https` URL, up to 4,096 characters. Private, loopback, link-local and metadata
    /// addresses (and names that resolve only to them) are refused (422) unless the operator
    /// allows private targets.
    #[schema(
        pattern = r"^[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(:[1-9][0-9]{0,3})?(/[!-~]*)?$",
        max_length = 4096
    )]
    pub url: String,
    /// The events it receives (at least one). Default: all of them (`notify`), or
    /// `["message.received"]` (`reply`, which needs it among them).
    #[schema(schema_with = webhook_events)]
    pub events: Option<Vec<String>>,
    /// Default `notify`.
    #[schema(value_type = Option<WebhookMode>)]
    pub mode: Option<String>,
    /// Default true.
    pub enabled: Option<bool>,
    /// Only events of this device (id or phone number); `null` or left out: every device.
    #[schema(value_type = Option<super::openapi::schemas::DeviceRef>)]
    pub device: Option<String>,
    /// A note for yourself (up to 200 characters).
    #[schema(max_length = 200)]
    pub description: Option<String>,
    /// A plugin of yours built for the `wa-gateway:transform/transform` world: each event goes
    /// out as the request it returns (still signed). `notify` endpoints only.
    #[schema(minimum = 1)]
    pub transform_plugin_id: Option<i64>,
}

/// How events reach an endpoint: `notify` queues and delivers them; `reply` posts
/// `message.received` during the inbound pipeline and sends the answer to the chat.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // Documents `mode`, parsed as text.
pub enum WebhookMode {
    Notify,
    Reply,
}

/// The schema of `events`: the known event names.
fn webhook_events() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(EventType::ALL.map(|e| e.as_str()))),
        )
        .min_items(Some(1))
        .description(Some(
            "The events the endpoint receives (at least one). Default on create: all of them \
             (`notify`), or `[\"message.received\"]` (`reply`, which needs it among them).",
        ))
        .build()
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    opt_string_or_number(d).map(Some)
}

/// A whole number given (`Some`), maybe as `null` (`Some(None)`).
fn present_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    super::messages::opt_whole_i64(d).map(Some)
}

impl From<WebhookIn> for EndpointChange {
    fn from(w: WebhookIn) -> Self {
        EndpointChange {
            url: w.url,
            events: w.events,
            mode: w.mode,
            enabled: w.enabled,
            device: w.device,
            description: w.description,
            transform_plugin_id: w.transform_plugin_id,
        }
    }
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
    let (limit, offset) = page(q.limit, q.offset)?;
    let (rows, total) = state.endpoints.list(&tenant, limit, offset).await?;
    Ok(Json(Page { data: rows.into_iter().map(|r| webhook_out(r, None)).collect(), total, limit, offset }))
}

/// Registers an endpoint (within the package's `webhook_endpoints` limit). The answer holds its
/// signing secret, shown only here and after `rotate-secret`.
#[utoipa::path(post, path = "/api/user/webhooks", tag = "webhooks", request_body = WebhookCreate,
    responses((status = 201, body = WebhookOut), (status = 404, description = "No such device."),
              (status = 429, description = "The package's `webhook_endpoints` limit is reached, or the rate limit.")))]
async fn create_webhook(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiJson(body): ApiJson<WebhookIn>,
) -> ApiResult<(StatusCode, Json<WebhookOut>)> {
    let (row, secret) = state.endpoints.create(&tenant, body.into()).await?;
    Ok((StatusCode::CREATED, Json(webhook_out(row, Some(secret)))))
}

/// One endpoint (without its secret).
#[utoipa::path(get, path = "/api/user/webhooks/{id}", tag = "webhooks",
    params(("id" = i64, Path, description = "The endpoint's id.")),
    responses((status = 200, body = WebhookOut)))]
async fn get_webhook(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<WebhookOut>> {
    let row = state.endpoints.get(&tenant, parse_id(&id, "webhook")?).await?;
    Ok(Json(webhook_out(row, None)))
}

/// Changes an endpoint: the fields given replace the current ones.
#[utoipa::path(patch, path = "/api/user/webhooks/{id}", tag = "webhooks", request_body = WebhookIn,
    params(("id" = i64, Path, description = "The endpoint's id.")),
    responses((status = 200, body = WebhookOut), (status = 404, description = "No such endpoint or device.")))]
async fn update_webhook(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<WebhookIn>,
) -> ApiResult<Json<WebhookOut>> {
    let row = state.endpoints.update(&tenant, parse_id(&id, "webhook")?, body.into()).await?;
    Ok(Json(webhook_out(row, None)))
}

/// Deletes an endpoint and its queued deliveries; its log rows stay.
#[utoipa::path(delete, path = "/api/user/webhooks/{id}", tag = "webhooks",
    params(("id" = i64, Path, description = "The endpoint's id.")),
    responses((status = 204, description = "Deleted.")))]
async fn delete_webhook(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.endpoints.delete(&tenant, parse_id(&id, "webhook")?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replaces the signing secret. The answer holds the new one; the old one keeps signing
/// (a second `v1,` entry in `webhook-signature`) for 24 hours.
#[utoipa::path(post, path = "/api/user/webhooks/{id}/rotate-secret", tag = "webhooks",
    params(("id" = i64, Path, description = "The endpoint's id.")),
    responses((status = 200, body = WebhookOut)))]
async fn rotate_webhook_secret(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<WebhookOut>> {
    let (row, secret) = state.endpoints.rotate_secret(&tenant, parse_id(&id, "webhook")?).await?;
    Ok(Json(webhook_out(row, Some(secret))))
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
    /// `success`, `failure`, `timeout` or `blocked` (webhooks; for an endpoint with a
    /// transformation also `skipped` or `transform_failed`, nothing sent); plugin outcomes for
    /// plugins.
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

pub fn log_out(r: LogRow) -> WebhookLogOut {
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
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// Documented by [`PageQuery`].
    #[param(ignore)]
    pub limit: Option<i64>,
    #[param(ignore)]
    pub offset: Option<i64>,
    /// An endpoint's id.
    #[param(value_type = Option<i64>)]
    pub webhook: Option<String>,
    /// A plugin's id.
    #[param(value_type = Option<i64>)]
    pub plugin: Option<String>,
    /// `webhook` or `plugin`.
    pub kind: Option<String>,
    /// An event type, e.g. `message.received`.
    pub event: Option<String>,
    /// `success`, `failure`, `timeout`, `blocked`, `skipped`, `transform_failed` (webhook
    /// attempts); `success`, `error`, `trap`, … (plugin runs).
    pub outcome: Option<String>,
    /// A gateway message id.
    #[param(value_type = Option<i64>)]
    pub message_id: Option<String>,
    #[param(schema_with = super::openapi::schemas::since)]
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
#[utoipa::path(get, path = "/api/user/webhook-logs", tag = "webhooks", params(PageQuery, LogQuery),
    responses((status = 200, body = Page<WebhookLogOut>)))]
async fn list_webhook_logs(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiQuery(q): ApiQuery<LogQuery>,
) -> ApiResult<Json<Page<WebhookLogOut>>> {
    let (limit, offset) = page(q.limit, q.offset)?;
    let filter = filter_of(&q)?;
    let (rows, total) = state.endpoints.logs(&tenant, &filter, limit, offset).await?;
    Ok(Json(Page { data: rows.into_iter().map(log_out).collect(), total, limit, offset }))
}

/// One log row.
#[utoipa::path(get, path = "/api/user/webhook-logs/{id}", tag = "webhooks",
    params(("id" = i64, Path, description = "The log row's id.")),
    responses((status = 200, body = WebhookLogOut)))]
async fn get_webhook_log(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<WebhookLogOut>> {
    Ok(Json(log_out(state.endpoints.log(&tenant, parse_id(&id, "log row")?).await?)))
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
    params(("id" = i64, Path, description = "The log row's id.")),
    responses((status = 202, body = RetryOut),
              (status = 404, description = "No such log row, or its delivery is no longer kept."),
              (status = 409, description = "Not a webhook attempt, an attempt is running, or the endpoint is disabled.")))]
async fn retry_webhook_log(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<RetryOut>)> {
    let row = state.endpoints.retry(&tenant, parse_id(&id, "log row")?).await?;
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
