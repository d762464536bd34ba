//! The tenant's own account: info, limits and usage, API keys, activity log.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{page, ApiJson, ApiQuery, Page, PageQuery, Tenant};
use super::ts;
use crate::db::{ActivityRow, ApiKeyRow};
use crate::error::{ApiError, ApiResult};
use crate::limits::month_period;
use crate::state::AppState;
use crate::tenants::{Devices, Scope, Scopes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_info))
        .routes(routes!(get_limits))
        .routes(routes!(list_api_keys, create_api_key))
        .routes(routes!(delete_api_key))
        .routes(routes!(list_activity_logs))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct InfoOut {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub package: String,
    pub status: String,
    pub timezone: String,
    pub created_at: String,
}

/// The tenant behind the API key.
#[utoipa::path(get, path = "/api/user/info", tag = "account", responses((status = 200, body = InfoOut)))]
async fn get_info(State(state): State<AppState>, tenant: Tenant) -> ApiResult<Json<InfoOut>> {
    let row = state.db.tenant(tenant.id).await?.ok_or_else(|| ApiError::not_found("tenant"))?;
    Ok(Json(InfoOut {
        id: row.id,
        name: row.name,
        email: row.email,
        package: row.package,
        status: row.status,
        timezone: row.timezone,
        created_at: ts(row.created_at),
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LimitsOut {
    pub package: String,
    /// Each limit; `null` is unlimited.
    #[schema(value_type = Object)]
    pub limits: serde_json::Value,
    /// Current usage of each limited resource.
    #[schema(value_type = Object)]
    pub usage: serde_json::Value,
    pub period_start: String,
    pub period_end: String,
}

/// The package's limits with this tenant's overrides, and usage this month.
#[utoipa::path(get, path = "/api/user/limits", tag = "account", responses((status = 200, body = LimitsOut)))]
async fn get_limits(State(state): State<AppState>, tenant: Tenant) -> ApiResult<Json<LimitsOut>> {
    let limits = state.limits.limits(tenant.id, &tenant.package).await?;
    let usage = state.limits.usage(tenant.id).await?;
    let (_, start, end) = month_period(Utc::now());
    Ok(Json(LimitsOut {
        package: tenant.package,
        limits: limits.to_json(),
        usage: serde_json::to_value(usage).map_err(ApiError::internal)?,
        period_start: crate::time::rfc3339(start),
        period_end: crate::time::rfc3339(end),
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ApiKeyOut {
    pub id: i64,
    pub name: String,
    /// The first characters of the key, to recognise it.
    pub prefix: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    /// What the key may do.
    pub scopes: Vec<Scope>,
    /// The ids of the devices the key is limited to; `null`: every device of the account.
    pub devices: Option<Vec<i64>>,
    /// The whole key: only in the answer to its creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
}

impl ApiKeyOut {
    pub fn from_row(row: ApiKeyRow, secret: Option<String>) -> Self {
        ApiKeyOut {
            id: row.id,
            name: row.name,
            prefix: row.prefix,
            created_at: ts(row.created_at),
            last_used_at: row.last_used_at.map(ts),
            scopes: Scopes::from_stored(&row.scopes).names().into_iter().filter_map(Scope::parse).collect(),
            devices: Devices::from_stored(row.devices.as_deref()).ids().map(<[i64]>::to_vec),
            api_key: secret,
        }
    }
}

/// The tenant's live API keys (never the keys themselves).
#[utoipa::path(get, path = "/api/user/api-keys", tag = "account", params(PageQuery),
    responses((status = 200, body = Page<ApiKeyOut>)))]
async fn list_api_keys(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<ApiKeyOut>>> {
    let (limit, offset) = page(q.limit, q.offset)?;
    let (rows, total) = state.tenants.list_keys(&tenant, limit, offset).await?;
    let data = rows.into_iter().map(|r| ApiKeyOut::from_row(r, None)).collect();
    Ok(Json(Page { data, total, limit, offset }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyIn {
    /// A label for the key, up to 100 characters; `api key` when left out or blank.
    #[serde(default)]
    #[schema(max_length = 100)]
    pub name: String,
    /// What the key may do, some of `read` (history, lists, media, the account), `send` (the
    /// send endpoints and the actions on messages and chats) and `manage` (devices, groups,
    /// rules, schedules, webhooks, plugins, keys). Left out: the scopes of the key making it.
    /// A key cannot make a key with a scope it lacks (403).
    #[serde(default)]
    #[schema(min_items = 1)]
    pub scopes: Option<Vec<Scope>>,
    /// The devices the key is limited to, by id or phone number: it sees no other device, nor
    /// their messages, chats, contacts, groups, schedules, rules, webhooks or plugins (all 404,
    /// as another account's), and may not act on the whole account (the activity log, new
    /// devices, rules or webhooks for every device: 403). Left out: the devices of the key
    /// making it. A key cannot make a key for a device it does not see.
    #[serde(default)]
    #[schema(value_type = Option<Vec<super::openapi::schemas::DeviceRef>>, min_items = 1, max_items = 100)]
    pub devices: Option<Vec<DeviceRef>>,
}

/// A device named by its id or its phone number.
#[derive(Deserialize)]
pub struct DeviceRef(#[serde(deserialize_with = "super::messages::string_or_number")] String);

/// Most devices one key can be limited to by name.
const MAX_KEY_DEVICES: usize = 100;

/// Creates another API key; the answer carries it once. The body is optional.
#[utoipa::path(post, path = "/api/user/api-keys", tag = "account", request_body = Option<ApiKeyIn>,
    responses((status = 201, body = ApiKeyOut),
              (status = 404, description = "A device in `devices` is not one of the account's, or not one the key making it sees.")))]
async fn create_api_key(
    State(state): State<AppState>,
    tenant: Tenant,
    body: Option<ApiJson<Option<ApiKeyIn>>>,
) -> ApiResult<(StatusCode, Json<ApiKeyOut>)> {
    let body = body.and_then(|ApiJson(b)| b);
    let (name, scopes, devices) = body.map(|b| (b.name, b.scopes, b.devices)).unwrap_or_default();
    let scopes = scopes.map(Scopes::of);
    let devices = match devices {
        Some(refs) => Some(key_devices(&state, &tenant, refs).await?),
        None => None,
    };
    let (row, secret) = state.tenants.create_key(&tenant, &name, scopes, devices).await?;
    Ok((StatusCode::CREATED, Json(ApiKeyOut::from_row(row, Some(secret)))))
}

/// The devices named for a new key, each one the acting key sees (else 404).
async fn key_devices(state: &AppState, tenant: &Tenant, refs: Vec<DeviceRef>) -> ApiResult<Devices> {
    if refs.is_empty() || refs.len() > MAX_KEY_DEVICES {
        return Err(ApiError::validation(
            "devices",
            format!("must name 1 to {MAX_KEY_DEVICES} devices, or be left out for every device"),
        ));
    }
    let mut ids = Vec::with_capacity(refs.len());
    for DeviceRef(reference) in refs {
        // Unknown, or not one the acting key sees: 404, as a send through it answers.
        ids.push(super::devices::resolve_device(state, tenant, &reference).await?.id);
    }
    Ok(Devices::only(ids))
}

/// Revokes a key at once.
#[utoipa::path(delete, path = "/api/user/api-keys/{id}", tag = "account",
    params(("id" = i64, Path, description = "The key's id.")),
    responses((status = 204, description = "Revoked."), (status = 404)))]
async fn delete_api_key(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id: i64 = id.trim().parse().map_err(|_| ApiError::not_found("api key"))?;
    state.tenants.revoke_key(&tenant, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ActivityOut {
    pub id: i64,
    /// `tenant`, `admin`, `dashboard` or `system`.
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub detail: Option<String>,
    pub ip: Option<String>,
    pub created_at: String,
}

impl From<ActivityRow> for ActivityOut {
    fn from(r: ActivityRow) -> Self {
        ActivityOut {
            id: r.id,
            actor: r.actor,
            action: r.action,
            target: r.target,
            detail: r.detail,
            ip: r.ip,
            created_at: ts(r.created_at),
        }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActivityQuery {
    /// Documented by [`PageQuery`].
    #[param(ignore)]
    pub limit: Option<i64>,
    #[param(ignore)]
    pub offset: Option<i64>,
    /// Only entries with this action, e.g. `api_key.create` (empty: every action).
    pub action: Option<String>,
}

/// What was done on this account, newest first.
#[utoipa::path(get, path = "/api/user/activity-logs", tag = "account", params(PageQuery, ActivityQuery),
    responses((status = 200, body = Page<ActivityOut>)))]
async fn list_activity_logs(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiQuery(q): ApiQuery<ActivityQuery>,
) -> ApiResult<Json<Page<ActivityOut>>> {
    let (limit, offset) = page(q.limit, q.offset)?;
    let action = q.action.as_deref().map(str::trim).filter(|a| !a.is_empty());
    let (rows, total) = state.tenants.activity(&tenant, action, limit, offset).await?;
    Ok(Json(Page { data: rows.into_iter().map(Into::into).collect(), total, limit, offset }))
}
