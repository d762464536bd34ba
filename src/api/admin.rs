//! The operator's API: tenants, their packages, overrides, status and keys.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::account::ApiKeyOut;
use super::extract::{Admin, ApiJson, ApiQuery, Page, PageQuery};
use super::ts;
use crate::app::AppState;
use crate::db::{page, TenantRow};
use crate::error::{ApiError, ApiResult};
use crate::limits::{Overrides, Resource};
use crate::tenants::{hash_password, CreateTenant};

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

fn tenant_out(row: TenantRow, overrides: &Overrides, api_key: Option<String>) -> TenantOut {
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
    pub name: String,
    pub email: String,
    /// A package from `[packages]`; the configured default when absent.
    pub package: Option<String>,
    /// Dashboard password (at least 8 characters).
    pub password: Option<String>,
}

/// Creates a tenant and its first API key, shown once.
#[utoipa::path(post, path = "/api/admin/tenants", tag = "admin", request_body = TenantIn,
    responses((status = 201, body = TenantOut), (status = 409, body = crate::error::ErrorBody),
              (status = 422, body = crate::error::ErrorBody)))]
async fn create_tenant(
    State(state): State<AppState>,
    admin: Admin,
    ApiJson(body): ApiJson<TenantIn>,
) -> ApiResult<(StatusCode, Json<TenantOut>)> {
    let input =
        CreateTenant { name: body.name, email: body.email, package: body.package, password: body.password };
    let (row, key) = state.tenants.create(input).await?;
    state.tenants.record(admin.activity(Some(row.id), "tenant.create", format!("tenant:{}", row.id))).await;
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
    let (limit, offset) = page(q.limit, q.offset);
    let (rows, total) = state.db.list_tenants(limit, offset).await?;
    let mut data = Vec::with_capacity(rows.len());
    for row in rows {
        let overrides = state.limits.overrides(row.id).await?;
        data.push(tenant_out(row, &overrides, None));
    }
    Ok(Json(Page { data, total, limit, offset }))
}

/// One tenant.
#[utoipa::path(get, path = "/api/admin/tenants/{id}", tag = "admin",
    responses((status = 200, body = TenantOut), (status = 404, body = crate::error::ErrorBody)))]
async fn get_tenant(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<i64>,
) -> ApiResult<Json<TenantOut>> {
    let row = state.db.tenant(id).await?.ok_or_else(|| ApiError::not_found("tenant"))?;
    let overrides = state.limits.overrides(id).await?;
    Ok(Json(tenant_out(row, &overrides, None)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantPatch {
    pub name: Option<String>,
    pub package: Option<String>,
    /// `active` or `suspended`.
    pub status: Option<String>,
    pub password: Option<String>,
    /// Limit overrides merged into the stored ones: a number sets a limit, `null` makes it
    /// unlimited, and the string `"package"` goes back to the package's value.
    #[schema(value_type = Object)]
    pub limits: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Changes a tenant's package, status, password or limit overrides.
#[utoipa::path(patch, path = "/api/admin/tenants/{id}", tag = "admin", request_body = TenantPatch,
    responses((status = 200, body = TenantOut), (status = 404, body = crate::error::ErrorBody),
              (status = 422, body = crate::error::ErrorBody)))]
async fn patch_tenant(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<i64>,
    ApiJson(body): ApiJson<TenantPatch>,
) -> ApiResult<Json<TenantOut>> {
    state.db.tenant(id).await?.ok_or_else(|| ApiError::not_found("tenant"))?;
    if let Some(p) = &body.package {
        if !state.limits.has_package(p) {
            return Err(ApiError::validation(
                "package",
                format!("unknown package; configured: {}", state.limits.package_names().join(", ")),
            ));
        }
    }
    if let Some(s) = &body.status {
        if s != "active" && s != "suspended" {
            return Err(ApiError::validation("status", "must be `active` or `suspended`"));
        }
    }
    if let Some(n) = &body.name {
        if n.trim().is_empty() || n.chars().count() > 200 {
            return Err(ApiError::validation("name", "must be 1 to 200 characters"));
        }
    }
    let mut overrides = state.limits.overrides(id).await?;
    if let Some(changes) = &body.limits {
        for (key, value) in changes {
            let field = format!("limits.{key}");
            let r = Resource::parse(key)
                .ok_or_else(|| ApiError::validation(field.clone(), "is not a known limit"))?;
            match value {
                serde_json::Value::Null => {
                    overrides.insert(r, None);
                }
                serde_json::Value::String(s) if s == "package" => {
                    overrides.remove(&r);
                }
                v => match v.as_i64() {
                    Some(n) if n >= 0 => {
                        overrides.insert(r, Some(n));
                    }
                    _ => {
                        return Err(ApiError::validation(
                            field,
                            "must be a non-negative integer, null (unlimited) or \"package\"",
                        ))
                    }
                },
            }
        }
    }
    let password_hash = body.password.as_deref().map(hash_password).transpose()?;
    if body.limits.is_some() {
        let json = serde_json::to_string(&overrides).map_err(ApiError::internal)?;
        state.db.set_limit_overrides(id, &json).await?;
    }
    let row = state
        .db
        .update_tenant(
            id,
            body.name.as_deref().map(str::trim),
            body.package.as_deref(),
            body.status.as_deref(),
            password_hash.as_deref(),
        )
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    let action = match body.status.as_deref() {
        Some("suspended") => "tenant.suspend",
        Some("active") => "tenant.activate",
        _ => "tenant.update",
    };
    state.tenants.record(admin.activity(Some(id), action, format!("tenant:{id}"))).await;
    Ok(Json(tenant_out(row, &overrides, None)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminKeyIn {
    #[serde(default)]
    pub name: String,
}

/// Issues another API key for a tenant.
#[utoipa::path(post, path = "/api/admin/tenants/{id}/api-keys", tag = "admin",
    responses((status = 201, body = ApiKeyOut), (status = 404, body = crate::error::ErrorBody)))]
async fn create_tenant_api_key(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<i64>,
    body: Option<ApiJson<AdminKeyIn>>,
) -> ApiResult<(StatusCode, Json<ApiKeyOut>)> {
    state.db.tenant(id).await?.ok_or_else(|| ApiError::not_found("tenant"))?;
    let name = body.map(|ApiJson(b)| b.name).unwrap_or_default();
    let (row, secret) = state.tenants.issue_key(id, &name).await?;
    state.tenants.record(admin.activity(Some(id), "api_key.create", format!("api_key:{}", row.id))).await;
    Ok((StatusCode::CREATED, Json(ApiKeyOut::from_row(row, Some(secret)))))
}
