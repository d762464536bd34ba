//! The operator's API: tenants, their packages, overrides, status and keys.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::account::ApiKeyOut;
use super::extract::{page, Admin, ApiJson, ApiQuery, Page, PageQuery};
use super::ts;
use crate::db::TenantRow;
use crate::error::{ApiError, ApiResult};
use crate::limits::{OverrideChange, Overrides, Resource};
use crate::state::AppState;
use crate::tenants::{CreateTenant, TenantChange};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_tenant, list_tenants))
        .routes(routes!(get_tenant, patch_tenant))
        .routes(routes!(create_tenant_api_key))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TenantOut {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub package: String,
    /// `active` or `suspended`.
    pub status: String,
    /// Per-tenant overrides of the package limits; `null` is unlimited.
    #[schema(value_type = Object)]
    pub limits: serde_json::Value,
    pub created_at: String,
    /// The first API key: only in the answer to creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
}

pub fn tenant_out(row: TenantRow, overrides: &Overrides, api_key: Option<String>) -> TenantOut {
    TenantOut {
        id: row.id,
        name: row.name,
        email: row.email,
        package: row.package,
        status: row.status,
        limits: serde_json::to_value(overrides).unwrap_or_default(),
        created_at: ts(row.created_at),
        api_key,
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantIn {
    /// 1 to 200 characters.
    #[schema(pattern = r"\S", max_length = 200)]
    pub name: String,
    #[schema(schema_with = super::openapi::schemas::email)]
    pub email: String,
    /// A package from `[packages]`; the configured default when absent.
    pub package: Option<String>,
    /// Dashboard password: 8 characters to 1,024 bytes.
    #[schema(min_length = 8, max_length = 1024)]
    pub password: Option<String>,
}

/// Creates a tenant and its first API key, shown once.
#[utoipa::path(post, path = "/api/admin/tenants", tag = "admin", request_body = TenantIn,
    responses((status = 201, body = TenantOut),
              (status = 409, description = "A tenant with this email exists.")))]
async fn create_tenant(
    State(state): State<AppState>,
    admin: Admin,
    ApiJson(body): ApiJson<TenantIn>,
) -> ApiResult<(StatusCode, Json<TenantOut>)> {
    let input =
        CreateTenant { name: body.name, email: body.email, package: body.package, password: body.password };
    let (row, key) = state.tenants.admin_create(&admin, input).await?;
    Ok((StatusCode::CREATED, Json(tenant_out(row, &Overrides::new(), Some(key)))))
}

/// Every tenant, newest first.
#[utoipa::path(get, path = "/api/admin/tenants", tag = "admin", params(PageQuery),
    responses((status = 200, body = Page<TenantOut>)))]
async fn list_tenants(
    State(state): State<AppState>,
    _admin: Admin,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<TenantOut>>> {
    let (limit, offset) = page(q.limit, q.offset)?;
    let (rows, total) = state.tenants.admin_list(limit, offset).await?;
    let data = rows.into_iter().map(|(row, overrides)| tenant_out(row, &overrides, None)).collect();
    Ok(Json(Page { data, total, limit, offset }))
}

fn tenant_id(raw: &str) -> ApiResult<i64> {
    raw.trim().parse().map_err(|_| ApiError::not_found("tenant"))
}

/// One tenant.
#[utoipa::path(get, path = "/api/admin/tenants/{id}", tag = "admin",
    params(("id" = i64, Path, description = "The tenant's id.")),
    responses((status = 200, body = TenantOut)))]
async fn get_tenant(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<TenantOut>> {
    let (row, overrides) = state.tenants.admin_get(tenant_id(&id)?).await?;
    Ok(Json(tenant_out(row, &overrides, None)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantPatch {
    /// 1 to 200 characters.
    #[schema(pattern = r"\S", max_length = 200)]
    pub name: Option<String>,
    /// A package from `[packages]`.
    pub package: Option<String>,
    #[schema(value_type = Option<TenantStatus>)]
    pub status: Option<String>,
    /// Dashboard password: 8 characters to 1,024 bytes.
    #[schema(min_length = 8, max_length = 1024)]
    pub password: Option<String>,
    #[schema(schema_with = super::openapi::schemas::limit_overrides)]
    pub limits: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Whether a tenant's keys and dashboard login work.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // Documents `TenantPatch::status`, which is parsed as a string.
pub enum TenantStatus {
    Active,
    Suspended,
}

/// Changes a tenant's name, package, status, password or limit overrides; fields left out keep
/// their value.
#[utoipa::path(patch, path = "/api/admin/tenants/{id}", tag = "admin", request_body = TenantPatch,
    params(("id" = i64, Path, description = "The tenant's id.")),
    responses((status = 200, body = TenantOut)))]
async fn patch_tenant(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TenantPatch>,
) -> ApiResult<Json<TenantOut>> {
    let id = tenant_id(&id)?;
    let limits = match body.limits {
        None => None,
        Some(changes) => {
            let mut parsed = Vec::with_capacity(changes.len());
            for (key, value) in changes {
                let field = format!("limits.{key}");
                let r = Resource::parse(&key)
                    .ok_or_else(|| ApiError::validation(field.clone(), "is not a known limit"))?;
                let change = match value {
                    serde_json::Value::Null => OverrideChange::Unlimited,
                    serde_json::Value::String(s) if s == "package" => OverrideChange::Package,
                    v => match v.as_i64().or_else(|| v.as_f64().and_then(super::messages::whole_number)) {
                        Some(n) => OverrideChange::Value(n),
                        None => {
                            return Err(ApiError::validation(
                                field,
                                "must be a non-negative integer, null (unlimited) or \"package\"",
                            ))
                        }
                    },
                };
                parsed.push((r, change));
            }
            Some(parsed)
        }
    };
    let change = TenantChange {
        name: body.name,
        package: body.package,
        status: body.status,
        password: body.password,
        limits,
    };
    let (row, overrides) = state.tenants.admin_update(&admin, id, change).await?;
    Ok(Json(tenant_out(row, &overrides, None)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminKeyIn {
    /// A label for the key, up to 100 characters; `api key` when left out or blank.
    #[serde(default)]
    #[schema(max_length = 100)]
    pub name: String,
}

/// Issues another API key for a tenant. The body is optional.
#[utoipa::path(post, path = "/api/admin/tenants/{id}/api-keys", tag = "admin",
    request_body = Option<AdminKeyIn>,
    params(("id" = i64, Path, description = "The tenant's id.")),
    responses((status = 201, body = ApiKeyOut)))]
async fn create_tenant_api_key(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    body: Option<ApiJson<Option<AdminKeyIn>>>,
) -> ApiResult<(StatusCode, Json<ApiKeyOut>)> {
    let name = body.and_then(|ApiJson(b)| b).map(|b| b.name).unwrap_or_default();
    let (row, secret) = state.tenants.admin_issue_key(&admin, tenant_id(&id)?, &name).await?;
    Ok((StatusCode::CREATED, Json(ApiKeyOut::from_row(row, Some(secret)))))
}
