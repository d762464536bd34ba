//! Tenants (`users`), their API keys and their limit overrides and usage counters.

use super::{insert_within_limit, now_ms, reader, writer, Db, DbError, DbResult};
use crate::resource::Resource;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TenantRow {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub package: String,
    pub status: String,
    pub timezone: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKeyRow {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub prefix: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// What the key may do: a JSON array of scope names.
    pub scopes: String,
    /// The devices the key is limited to: a JSON array of ids, `None` for every device.
    pub devices: Option<String>,
}

/// What an API key resolves to when it authenticates a request.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuthRow {
    pub key_id: i64,
    pub user_id: i64,
    pub status: String,
    pub package: String,
    pub last_used_at: Option<i64>,
    /// The tenant's limit overrides (JSON), so a request needs one query to authenticate.
    pub overrides: String,
    /// What the key may do: a JSON array of scope names.
    pub scopes: String,
    /// The devices the key is limited to: a JSON array of ids, `None` for every device.
    pub devices: Option<String>,
}

/// The limits row of a tenant: JSON overrides plus this month's message counter.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LimitsRow {
    pub overrides: String,
    pub messages_period: String,
    pub messages_used: i64,
}

/// An API key to store: its label, its visible start, the hash of the secret, and what it may
/// do as stored (JSON scope names; JSON device ids, `None` for every device).
pub struct NewApiKey<'a> {
    pub name: &'a str,
    pub prefix: &'a str,
    pub hash: &'a str,
    pub scopes: &'a str,
    pub devices: Option<&'a str>,
}

/// A tenant to create.
pub struct NewTenant<'a> {
    pub name: &'a str,
    pub email: &'a str,
    pub package: &'a str,
    pub password_hash: Option<&'a str>,
}

/// Inside a write transaction that changed a tenant's key, row or overrides: on PostgreSQL,
/// notifies every gateway process on the database (delivered when the transaction commits),
/// so their `tenant_cache` forgets the tenant; on SQLite there is no other process.
macro_rules! announce_tenant_change {
    ($db:expr, $tx:ident, $tenant:expr) => {
        if $db.dialect() == $crate::db::Dialect::Postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind($crate::db::tenant_cache::NOTIFY_CHANNEL)
                .bind($crate::db::tenant_cache::tenant_changed_payload($tenant))
                .execute(&mut *$tx)
                .await?;
        }
    };
}

pub(crate) use announce_tenant_change;

/// Adds `$3` messages to tenant `$1`'s counter for period `$2` if the result stays within
/// `$4` (NULL: unlimited); a new period starts from zero; `$5` is now. One row changes when
/// the reservation is granted.
pub(crate) const RESERVE_MESSAGES: &str = "UPDATE user_limits SET \
     messages_used = (CASE WHEN messages_period = $2 THEN messages_used ELSE 0 END) + $3, \
     messages_period = $2, updated_at = $5 \
     WHERE user_id = $1 AND ($4 IS NULL OR \
     (CASE WHEN messages_period = $2 THEN messages_used ELSE 0 END) + $3 <= $4)";

const TENANT_COLUMNS: &str = "id, name, email, package, status, timezone, created_at, updated_at";

impl Db {
    /// Creates a tenant with its first API key (hash and visible prefix) in one transaction.
    pub async fn create_tenant(
        &self,
        new: &NewTenant<'_>,
        key_prefix: &str,
        key_hash: &str,
    ) -> DbResult<TenantRow> {
        let now = now_ms();
        let sql = format!(
            "INSERT INTO users (name, email, password_hash, package, status, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 'active', $5, $5) RETURNING {TENANT_COLUMNS}"
        );
        let row = writer!(self, |p| {
            let mut tx = p.begin().await?;
            let row: TenantRow = sqlx::query_as(&sql)
                .bind(new.name)
                .bind(new.email)
                .bind(new.password_hash)
                .bind(new.package)
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| match DbError::from(e) {
                    DbError::Conflict(_) => DbError::Conflict("a tenant with this email exists".into()),
                    other => other,
                })?;
            sqlx::query("INSERT INTO user_limits (user_id, updated_at) VALUES ($1, $2)")
                .bind(row.id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO user_api_keys (user_id, name, prefix, key_hash, created_at) \
                 VALUES ($1, 'default', $2, $3, $4)",
            )
            .bind(row.id)
            .bind(key_prefix)
            .bind(key_hash)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            row
        });
        Ok(row)
    }

    /// The tenant, from memory when read in the last moments (see `tenant_cache`).
    pub async fn tenant(&self, id: i64) -> DbResult<Option<TenantRow>> {
        if let Some(row) = self.tenants.tenant(id) {
            return Ok(Some(row));
        }
        let generation = self.tenants.generation();
        let sql = format!("SELECT {TENANT_COLUMNS} FROM users WHERE id = $1");
        let row: Option<TenantRow> =
            reader!(self, |p| sqlx::query_as(&sql).bind(id).fetch_optional(p).await)?;
        if let Some(row) = &row {
            self.tenants.put_tenant(generation, row);
        }
        Ok(row)
    }

    pub async fn tenant_by_email(&self, email: &str) -> DbResult<Option<(TenantRow, Option<String>)>> {
        let sql = format!("SELECT {TENANT_COLUMNS} FROM users WHERE email = $1");
        let row: Option<TenantRow> =
            reader!(self, |p| sqlx::query_as(&sql).bind(email).fetch_optional(p).await)?;
        let Some(row) = row else { return Ok(None) };
        let hash: Option<String> =
            reader!(self, |p| sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
                .bind(row.id)
                .fetch_one(p)
                .await)?;
        Ok(Some((row, hash)))
    }

    /// Tenants, newest first, with the total count.
    pub async fn list_tenants(&self, limit: i64, offset: i64) -> DbResult<(Vec<TenantRow>, i64)> {
        let sql = format!("SELECT {TENANT_COLUMNS} FROM users ORDER BY id DESC LIMIT $1 OFFSET $2");
        let rows = reader!(self, |p| sqlx::query_as(&sql).bind(limit).bind(offset).fetch_all(p).await)?;
        let total: i64 =
            reader!(self, |p| sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(p).await)?;
        Ok((rows, total))
    }

    /// Changes a tenant's package and/or status; `None` leaves a field as it is.
    pub async fn update_tenant(
        &self,
        id: i64,
        name: Option<&str>,
        package: Option<&str>,
        status: Option<&str>,
        password_hash: Option<&str>,
    ) -> DbResult<Option<TenantRow>> {
        let sql = format!(
            "UPDATE users SET name = COALESCE($2, name), package = COALESCE($3, package), \
             status = COALESCE($4, status), password_hash = COALESCE($5, password_hash), \
             updated_at = $6 WHERE id = $1 RETURNING {TENANT_COLUMNS}"
        );
        let row = writer!(self, |p| {
            let mut tx = p.begin().await?;
            let row: Option<TenantRow> = sqlx::query_as(&sql)
                .bind(id)
                .bind(name)
                .bind(package)
                .bind(status)
                .bind(password_hash)
                .bind(now_ms())
                .fetch_optional(&mut *tx)
                .await?;
            announce_tenant_change!(self, tx, id);
            tx.commit().await?;
            row
        });
        self.tenants.forget_tenant(id);
        Ok(row)
    }

    /// Resolves an API key hash to its tenant, if the key exists and is not revoked.
    /// From memory when read in the last moments; a revoked key or a changed tenant is
    /// forgotten as soon as the change commits (see `tenant_cache`).
    pub async fn auth_by_key_hash(&self, key_hash: &str) -> DbResult<Option<AuthRow>> {
        if let Some(row) = self.tenants.key(key_hash) {
            return Ok(Some(row));
        }
        let generation = self.tenants.generation();
        let row: Option<AuthRow> = reader!(self, |p| {
            sqlx::query_as(
            "SELECT k.id AS key_id, k.user_id, u.status, u.package, k.last_used_at, l.overrides, k.scopes, k.devices \
             FROM user_api_keys k JOIN users u ON u.id = k.user_id \
             JOIN user_limits l ON l.user_id = k.user_id \
             WHERE k.key_hash = $1 AND k.revoked_at IS NULL"
        )
        .bind(key_hash)
        .fetch_optional(p)
        .await
        })?;
        if let Some(row) = &row {
            self.tenants.put_key(generation, key_hash, row);
        }
        Ok(row)
    }

    /// Records that a key was used (callers throttle this to avoid a write per request).
    pub async fn touch_api_key(&self, key_id: i64) -> DbResult<()> {
        let now = now_ms();
        self.tenants.touched(key_id, now);
        writer!(self, |p| sqlx::query("UPDATE user_api_keys SET last_used_at = $2 WHERE id = $1")
            .bind(key_id)
            .bind(now)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Stores a new API key unless the tenant already holds `limit` keys that are not revoked
    /// (`None`: no limit); `Ok(None)` when over the limit. Concurrent calls never overshoot.
    pub async fn create_api_key(
        &self,
        tenant: i64,
        key: &NewApiKey<'_>,
        limit: Option<i64>,
    ) -> DbResult<Option<ApiKeyRow>> {
        insert_within_limit!(self, tenant, Resource::ApiKeys, limit, |tx| {
            sqlx::query_as(
                "INSERT INTO user_api_keys (user_id, name, prefix, key_hash, created_at, scopes, devices) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 RETURNING id, user_id, name, prefix, created_at, last_used_at, revoked_at, scopes, devices",
            )
            .bind(tenant)
            .bind(key.name)
            .bind(key.prefix)
            .bind(key.hash)
            .bind(now_ms())
            .bind(key.scopes)
            .bind(key.devices)
            .fetch_one(&mut *tx)
            .await?
        })
    }

    /// The tenant's keys that are not revoked, newest first.
    pub async fn list_api_keys(
        &self,
        tenant: i64,
        limit: i64,
        offset: i64,
    ) -> DbResult<(Vec<ApiKeyRow>, i64)> {
        let rows = reader!(self, |p| sqlx::query_as(
            "SELECT id, user_id, name, prefix, created_at, last_used_at, revoked_at, scopes, devices \
             FROM user_api_keys WHERE user_id = $1 AND revoked_at IS NULL \
             ORDER BY id DESC LIMIT $2 OFFSET $3"
        )
        .bind(tenant)
        .bind(limit)
        .bind(offset)
        .fetch_all(p)
        .await)?;
        let total: i64 = reader!(self, |p| sqlx::query_scalar(
            "SELECT COUNT(*) FROM user_api_keys WHERE user_id = $1 AND revoked_at IS NULL"
        )
        .bind(tenant)
        .fetch_one(p)
        .await)?;
        Ok((rows, total))
    }

    /// One of the tenant's keys that is not revoked.
    pub async fn api_key(&self, tenant: i64, key_id: i64) -> DbResult<Option<ApiKeyRow>> {
        Ok(reader!(self, |p| sqlx::query_as(
            "SELECT id, user_id, name, prefix, created_at, last_used_at, revoked_at, scopes, devices \
             FROM user_api_keys WHERE user_id = $1 AND id = $2 AND revoked_at IS NULL"
        )
        .bind(tenant)
        .bind(key_id)
        .fetch_optional(p)
        .await)?)
    }

    /// Revokes one of the tenant's keys. False when the tenant has no such live key.
    pub async fn revoke_api_key(&self, tenant: i64, key_id: i64) -> DbResult<bool> {
        let done = writer!(self, |p| {
            let mut tx = p.begin().await?;
            let done = sqlx::query(
                "UPDATE user_api_keys SET revoked_at = $3 \
                 WHERE user_id = $1 AND id = $2 AND revoked_at IS NULL",
            )
            .bind(tenant)
            .bind(key_id)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            announce_tenant_change!(self, tx, tenant);
            tx.commit().await?;
            done
        });
        self.tenants.forget_tenant(tenant);
        Ok(done == 1)
    }

    pub async fn limits_row(&self, tenant: i64) -> DbResult<LimitsRow> {
        let row: Option<LimitsRow> = reader!(self, |p| {
            sqlx::query_as(
                "SELECT overrides, messages_period, messages_used FROM user_limits WHERE user_id = $1",
            )
            .bind(tenant)
            .fetch_optional(p)
            .await
        })?;
        row.ok_or(DbError::NotFound)
    }

    /// The tenant's limit overrides as stored (JSON), from memory when read in the last
    /// moments (see `tenant_cache`).
    pub async fn limit_overrides(&self, tenant: i64) -> DbResult<String> {
        if let Some(json) = self.tenants.overrides(tenant) {
            return Ok(json);
        }
        let generation = self.tenants.generation();
        let json: Option<String> = reader!(self, |p| {
            sqlx::query_scalar("SELECT overrides FROM user_limits WHERE user_id = $1")
                .bind(tenant)
                .fetch_optional(p)
                .await
        })?;
        let json = json.ok_or(DbError::NotFound)?;
        self.tenants.put_overrides(generation, tenant, &json);
        Ok(json)
    }

    pub async fn set_limit_overrides(&self, tenant: i64, overrides_json: &str) -> DbResult<()> {
        writer!(self, |p| {
            let mut tx = p.begin().await?;
            sqlx::query("UPDATE user_limits SET overrides = $2, updated_at = $3 WHERE user_id = $1")
                .bind(tenant)
                .bind(overrides_json)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
            announce_tenant_change!(self, tx, tenant);
            tx.commit().await?;
        });
        self.tenants.forget_tenant(tenant);
        Ok(())
    }

    /// Atomically adds `n` messages to the tenant's counter for `period` if the result stays
    /// within `limit` (`None` = unlimited). A new period starts the counter from zero.
    /// Returns whether the reservation was granted.
    pub async fn reserve_messages(
        &self,
        tenant: i64,
        period: &str,
        n: i64,
        limit: Option<i64>,
    ) -> DbResult<bool> {
        let done = writer!(self, |p| {
            sqlx::query(RESERVE_MESSAGES)
                .bind(tenant)
                .bind(period)
                .bind(n)
                .bind(limit)
                .bind(now_ms())
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(done == 1)
    }

    /// Gives back `n` reserved messages of `period` (a send that never happened).
    pub async fn release_messages(&self, tenant: i64, period: &str, n: i64) -> DbResult<()> {
        writer!(self, |p| {
            sqlx::query(
            "UPDATE user_limits SET messages_used = CASE WHEN messages_used >= $3 THEN messages_used - $3 ELSE 0 END \
             WHERE user_id = $1 AND messages_period = $2"
        )
        .bind(tenant)
        .bind(period)
        .bind(n)
        .execute(p).await.map(|r| r.rows_affected())
        })?;
        Ok(())
    }
}

/// The statement counting a tenant's use of a countable resource (`$1` = tenant id).
pub(crate) fn count_sql(resource: Resource) -> Option<&'static str> {
    match resource {
        Resource::Devices => Some("SELECT COUNT(*) FROM devices WHERE user_id = $1"),
        Resource::AutoReplies => Some("SELECT COUNT(*) FROM auto_replies WHERE user_id = $1"),
        Resource::ScheduledMessages => {
            Some("SELECT COUNT(*) FROM scheduled_messages WHERE user_id = $1 AND status = 'pending'")
        }
        Resource::WebhookEndpoints => Some("SELECT COUNT(*) FROM webhook_endpoints WHERE user_id = $1"),
        Resource::Plugins => Some("SELECT COUNT(*) FROM plugins WHERE user_id = $1"),
        Resource::ApiKeys => {
            Some("SELECT COUNT(*) FROM user_api_keys WHERE user_id = $1 AND revoked_at IS NULL")
        }
        _ => None,
    }
}

impl Db {
    /// How much of each countable resource the tenant uses now.
    pub async fn resource_counts(&self, tenant: i64) -> DbResult<Vec<(Resource, i64)>> {
        let mut out = Vec::new();
        for r in Resource::ALL {
            if let Some(sql) = count_sql(r) {
                let n: i64 = reader!(self, |p| sqlx::query_scalar(sql).bind(tenant).fetch_one(p).await)?;
                out.push((r, n));
            }
        }
        Ok(out)
    }
}
