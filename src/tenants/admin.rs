//! What the operator does to tenants: create them, list them with their limit overrides,
//! change name, package, status, password and overrides, and issue keys outside the package's
//! limit; each recorded in the activity log as the admin. The admin API and the operator's
//! dashboard pages both call this.

use super::{hash_password, Admin, CreateTenant, Devices, Scopes, TenantService};
use crate::db::{ApiKeyRow, TenantRow};
use crate::error::{ApiError, ApiResult};
use crate::limits::{apply_overrides, OverrideChange, Overrides, Resource};

/// What to change on a tenant; `None` keeps the value.
#[derive(Debug, Clone, Default)]
pub struct TenantChange {
    pub name: Option<String>,
    pub package: Option<String>,
    /// `active` or `suspended`.
    pub status: Option<String>,
    pub password: Option<String>,
    pub limits: Option<Vec<(Resource, OverrideChange)>>,
}

impl TenantService {
    /// Creates a tenant and its first API key (the secret is in the answer only).
    pub async fn admin_create(&self, admin: &Admin, input: CreateTenant) -> ApiResult<(TenantRow, String)> {
        let (row, key) = self.create(input).await?;
        self.record(admin.activity(Some(row.id), "tenant.create", format!("tenant:{}", row.id))).await;
        Ok((row, key))
    }

    /// A page of every tenant, newest first, with their limit overrides, and their number.
    pub async fn admin_list(&self, limit: i64, offset: i64) -> ApiResult<(Vec<(TenantRow, Overrides)>, i64)> {
        let (rows, total) = self.db.list_tenants(limit, offset).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let overrides = self.limits.overrides(row.id).await?;
            out.push((row, overrides));
        }
        Ok((out, total))
    }

    pub async fn admin_get(&self, id: i64) -> ApiResult<(TenantRow, Overrides)> {
        let row = self.db.tenant(id).await?.ok_or_else(|| ApiError::not_found("tenant"))?;
        let overrides = self.limits.overrides(id).await?;
        Ok((row, overrides))
    }

    /// Changes what is given; suspending or activating is recorded as such.
    pub async fn admin_update(
        &self,
        admin: &Admin,
        id: i64,
        change: TenantChange,
    ) -> ApiResult<(TenantRow, Overrides)> {
        self.db.tenant(id).await?.ok_or_else(|| ApiError::not_found("tenant"))?;
        if let Some(p) = &change.package {
            if !self.limits.has_package(p) {
                return Err(ApiError::validation(
                    "package",
                    format!("unknown package; configured: {}", self.limits.package_names().join(", ")),
                ));
            }
        }
        if let Some(s) = &change.status {
            if s != "active" && s != "suspended" {
                return Err(ApiError::validation("status", "must be `active` or `suspended`"));
            }
        }
        if let Some(n) = &change.name {
            if n.trim().is_empty() || n.chars().count() > 200 {
                return Err(ApiError::validation("name", "must be 1 to 200 characters"));
            }
        }
        let mut overrides = self.limits.overrides(id).await?;
        if let Some(changes) = &change.limits {
            overrides = apply_overrides(overrides, changes)
                .map_err(|(field, why)| ApiError::validation(field, why))?;
        }
        let password_hash = change.password.as_deref().map(hash_password).transpose()?;
        if change.limits.is_some() {
            let json = serde_json::to_string(&overrides).map_err(ApiError::internal)?;
            self.db.set_limit_overrides(id, &json).await?;
        }
        let row = self
            .db
            .update_tenant(
                id,
                change.name.as_deref().map(str::trim),
                change.package.as_deref(),
                change.status.as_deref(),
                password_hash.as_deref(),
            )
            .await?
            .ok_or_else(|| ApiError::not_found("tenant"))?;
        let action = match change.status.as_deref() {
            Some("suspended") => "tenant.suspend",
            Some("active") => "tenant.activate",
            _ => "tenant.update",
        };
        self.record(admin.activity(Some(id), action, format!("tenant:{id}"))).await;
        Ok((row, overrides))
    }

    /// Issues another key for a tenant; the operator is not held to the tenant's package.
    pub async fn admin_issue_key(
        &self,
        admin: &Admin,
        id: i64,
        name: &str,
    ) -> ApiResult<(ApiKeyRow, String)> {
        self.db.tenant(id).await?.ok_or_else(|| ApiError::not_found("tenant"))?;
        let (row, secret) = self.issue_key(id, name, Scopes::ALL, &Devices::All, None).await?;
        self.record(admin.activity(Some(id), "api_key.create", format!("api_key:{}", row.id))).await;
        Ok((row, secret))
    }
}
