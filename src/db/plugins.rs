//! Uploaded plugins (`plugins`): the component as uploaded, wasmtime's compiled artefact, and
//! what the tenant set (enabled, devices, order, config), plus the run tally that disables a
//! plugin failing too often.

use std::sync::Arc;

use super::tenants::announce_tenant_change;
use super::{insert_within_limit, now_ms, reader, writer, Db, DbResult};
use crate::resource::Resource;

/// A plugin as listed: everything but the component and the artefact.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PluginRow {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub size: i64,
    pub sha256: String,
    pub enabled: bool,
    /// JSON array of device ids; empty means every device of the tenant.
    pub devices: String,
    pub run_order: i64,
    /// The plugin's JSON configuration.
    pub config: String,
    /// Whether it runs for messages in groups too (otherwise direct chats only).
    pub in_groups: bool,
    /// The hosts it may reach over HTTP: a JSON array of patterns (see `plugins::hosts`).
    pub allowed_hosts: String,
    /// Whether its run log keeps the bodies of its HTTP requests and responses.
    pub log_http_bodies: bool,
    /// `auto_reply` (runs for inbound messages) or `transform` (shapes the events of the
    /// webhook endpoints that name it).
    pub kind: String,
    /// Failed runs in a row.
    pub failures: i64,
    pub disabled_reason: Option<String>,
    /// When the plugin was disabled for failing too often.
    pub disabled_at: Option<i64>,
    pub runs: i64,
    pub last_run_at: Option<i64>,
    pub last_outcome: Option<String>,
    /// The wasmtime engine that compiled the stored artefact.
    pub engine: Option<String>,
    pub compiled_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl PluginRow {
    /// The device ids the plugin is attached to (empty: every device).
    pub fn device_ids(&self) -> Vec<i64> {
        serde_json::from_str(&self.devices).unwrap_or_default()
    }

    /// Whether the plugin runs for messages of `device_id`.
    pub fn applies_to(&self, device_id: i64) -> bool {
        let ids = self.device_ids();
        ids.is_empty() || ids.contains(&device_id)
    }
}

const SELECT: &str = "SELECT id, user_id, name, size, sha256, enabled, devices, run_order, config, in_groups, \
     allowed_hosts, log_http_bodies, kind, failures, \
     disabled_reason, disabled_at, runs, last_run_at, last_outcome, engine, compiled_at, created_at, updated_at \
     FROM plugins";

/// The component and its compiled artefact.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PluginCode {
    pub sha256: String,
    pub wasm: Vec<u8>,
    pub compiled: Option<Vec<u8>>,
    pub engine: Option<String>,
}

/// A plugin to store (already validated and compiled by the caller).
#[derive(Debug, Clone)]
pub struct NewPlugin {
    pub name: String,
    pub sha256: String,
    pub wasm: Vec<u8>,
    pub compiled: Vec<u8>,
    pub engine: String,
    pub enabled: bool,
    pub devices: Vec<i64>,
    pub run_order: i64,
    pub config: String,
    /// `auto_reply` or `transform`, from the component.
    pub kind: String,
}

/// What a tenant may change; `None` keeps the stored value.
#[derive(Debug, Clone, Default)]
pub struct PluginPatch {
    pub name: Option<String>,
    pub enabled: Option<bool>,
    pub devices: Option<Vec<i64>>,
    pub run_order: Option<i64>,
    pub config: Option<String>,
    pub in_groups: Option<bool>,
    /// JSON array of validated host patterns.
    pub allowed_hosts: Option<String>,
    pub log_http_bodies: Option<bool>,
}

/// What recording a failed run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Failed runs in a row, this one included (0 after a success).
    pub failures: i64,
    /// This run's failure disabled the plugin.
    pub disabled_now: bool,
    /// The plugin's run count after this run: tallies of runs that end together are told
    /// apart by it (the higher, the later the database counted it).
    pub runs: i64,
}

impl Db {
    /// Creates a plugin unless the tenant already has `limit` plugins (`None` = unlimited; the
    /// answer is `None` at the limit). A name the tenant already uses is `DbError::Conflict`.
    pub async fn create_plugin(
        &self,
        tenant: i64,
        plugin: &NewPlugin,
        limit: Option<i64>,
    ) -> DbResult<Option<PluginRow>> {
        let devices = serde_json::to_string(&plugin.devices).unwrap_or_else(|_| "[]".into());
        let size = plugin.wasm.len() as i64;
        let now = now_ms();
        let id: Option<i64> = insert_within_limit!(self, tenant, Resource::Plugins, limit, |tx| {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO plugins (user_id, name, size, sha256, wasm, compiled, engine, compiled_at, \
                 enabled, devices, run_order, config, kind, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $8, $8) RETURNING id",
            )
            .bind(tenant)
            .bind(&plugin.name)
            .bind(size)
            .bind(&plugin.sha256)
            .bind(&plugin.wasm)
            .bind(&plugin.compiled)
            .bind(&plugin.engine)
            .bind(now)
            .bind(plugin.enabled)
            .bind(&devices)
            .bind(plugin.run_order)
            .bind(&plugin.config)
            .bind(&plugin.kind)
            .fetch_one(&mut *tx)
            .await?;
            announce_tenant_change!(self, tx, tenant);
            id
        })?;
        self.tenants.forget_tenant(tenant);
        match id {
            Some(id) => self.plugin(tenant, id).await,
            None => Ok(None),
        }
    }

    pub async fn plugin(&self, tenant: i64, id: i64) -> DbResult<Option<PluginRow>> {
        let sql = format!("{SELECT} WHERE user_id = $1 AND id = $2");
        Ok(reader!(self, |p| sqlx::query_as(&sql).bind(tenant).bind(id).fetch_optional(p).await)?)
    }

    /// A page of the tenant's plugins in the order they run, with the total.
    pub async fn list_plugins(
        &self,
        tenant: i64,
        limit: i64,
        offset: i64,
    ) -> DbResult<(Vec<PluginRow>, i64)> {
        let sql = format!("{SELECT} WHERE user_id = $1 ORDER BY run_order, id LIMIT $2 OFFSET $3");
        let rows =
            reader!(self, |p| sqlx::query_as(&sql).bind(tenant).bind(limit).bind(offset).fetch_all(p).await)?;
        let total: i64 =
            reader!(self, |p| sqlx::query_scalar("SELECT COUNT(*) FROM plugins WHERE user_id = $1")
                .bind(tenant)
                .fetch_one(p)
                .await)?;
        Ok((rows, total))
    }

    /// The tenant's enabled auto-reply plugins for messages of `device_id` (in a group: those
    /// set to run in groups), in the order they run; from memory when read in the last moments (every
    /// change to a plugin's settings, and a plugin disabled for failing, forgets them). The
    /// run counters of a remembered row may be behind; what decides a run is not.
    pub async fn active_plugins(
        &self,
        tenant: i64,
        device_id: i64,
        is_group: bool,
    ) -> DbResult<Vec<PluginRow>> {
        let enabled = match self.tenants.plugins(tenant) {
            Some(rows) => rows,
            None => {
                let generation = self.tenants.generation();
                let sql = format!("{SELECT} WHERE user_id = $1 AND enabled = $2 ORDER BY run_order, id");
                let rows: Vec<PluginRow> =
                    reader!(self, |p| sqlx::query_as(&sql).bind(tenant).bind(true).fetch_all(p).await)?;
                let rows = Arc::new(rows);
                self.tenants.put_plugins(generation, tenant, &rows);
                rows
            }
        };
        Ok(enabled
            .iter()
            .filter(|r| r.kind == "auto_reply" && r.applies_to(device_id) && (r.in_groups || !is_group))
            .cloned()
            .collect())
    }

    /// The component and artefact of a plugin of the tenant.
    pub async fn plugin_code(&self, tenant: i64, id: i64) -> DbResult<Option<PluginCode>> {
        Ok(reader!(self, |p| sqlx::query_as(
            "SELECT sha256, wasm, compiled, engine FROM plugins WHERE user_id = $1 AND id = $2"
        )
        .bind(tenant)
        .bind(id)
        .fetch_optional(p)
        .await)?)
    }

    /// Stores an artefact compiled again (after a wasmtime upgrade or a setting change).
    pub async fn store_plugin_artefact(
        &self,
        tenant: i64,
        id: i64,
        compiled: &[u8],
        engine: &str,
    ) -> DbResult<()> {
        writer!(self, |p| sqlx::query(
            "UPDATE plugins SET compiled = $3, engine = $4, compiled_at = $5 WHERE user_id = $1 AND id = $2"
        )
        .bind(tenant)
        .bind(id)
        .bind(compiled)
        .bind(engine)
        .bind(now_ms())
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Applies a patch; `None` when the tenant has no such plugin. Enabling a disabled plugin
    /// clears its failure count and the reason it was disabled.
    pub async fn update_plugin(
        &self,
        tenant: i64,
        id: i64,
        patch: &PluginPatch,
    ) -> DbResult<Option<PluginRow>> {
        let devices =
            patch.devices.as_ref().map(|d| serde_json::to_string(d).unwrap_or_else(|_| "[]".into()));
        let enable = patch.enabled == Some(true);
        let n = writer!(self, |p| {
            let mut tx = p.begin().await?;
            let n = sqlx::query(
            "UPDATE plugins SET name = COALESCE($3, name), enabled = COALESCE($4, enabled), \
             devices = COALESCE($5, devices), run_order = COALESCE($6, run_order), config = COALESCE($7, config), \
             in_groups = COALESCE($11, in_groups), allowed_hosts = COALESCE($12, allowed_hosts), \
             log_http_bodies = COALESCE($13, log_http_bodies), \
             failures = CASE WHEN $8 AND enabled = $10 THEN 0 ELSE failures END, \
             disabled_reason = CASE WHEN $8 THEN NULL ELSE disabled_reason END, \
             disabled_at = CASE WHEN $8 THEN NULL ELSE disabled_at END, \
             updated_at = $9 WHERE user_id = $1 AND id = $2"
        )
        .bind(tenant)
        .bind(id)
        .bind(&patch.name)
        .bind(patch.enabled)
        .bind(&devices)
        .bind(patch.run_order)
        .bind(&patch.config)
        .bind(enable)
        .bind(now_ms())
        .bind(false)
        .bind(patch.in_groups)
        .bind(&patch.allowed_hosts)
        .bind(patch.log_http_bodies)
        .execute(&mut *tx)
        .await?
        .rows_affected();
            announce_tenant_change!(self, tx, tenant);
            tx.commit().await?;
            n
        });
        self.tenants.forget_tenant(tenant);
        if n == 0 {
            return Ok(None);
        }
        self.plugin(tenant, id).await
    }

    /// Deletes a plugin and its key-value data; false when the tenant has no such plugin.
    pub async fn delete_plugin(&self, tenant: i64, id: i64) -> DbResult<bool> {
        let n = writer!(self, |p| {
            let mut tx = p.begin().await?;
            sqlx::query("DELETE FROM plugin_kv WHERE user_id = $1 AND plugin_id = $2")
                .bind(tenant)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let n = sqlx::query("DELETE FROM plugins WHERE user_id = $1 AND id = $2")
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

    /// Records a run's outcome. A success clears the failure count; a failure adds one, and
    /// the failure that reaches `disable_after` disables the plugin with `reason` (exactly one
    /// run sees `disabled_now`, however many fail together).
    pub async fn record_plugin_run(
        &self,
        tenant: i64,
        id: i64,
        outcome: &str,
        success: bool,
        disable_after: i64,
        reason: &str,
    ) -> DbResult<Tally> {
        let now = now_ms();
        let (failures, runs, disabled_now) = writer!(self, |p| {
            let mut tx = p.begin().await?;
            let counts: Option<(i64, i64)> = sqlx::query_as(
                "UPDATE plugins SET runs = runs + 1, last_run_at = $3, last_outcome = $4, \
                 failures = CASE WHEN $5 THEN 0 ELSE failures + 1 END \
                 WHERE user_id = $1 AND id = $2 RETURNING failures, runs",
            )
            .bind(tenant)
            .bind(id)
            .bind(now)
            .bind(outcome)
            .bind(success)
            .fetch_optional(&mut *tx)
            .await?;
            let (failures, runs) = counts.unwrap_or((0, 0));
            let mut disabled = 0;
            if !success && failures >= disable_after {
                disabled = sqlx::query(
                    "UPDATE plugins SET enabled = $3, disabled_reason = $4, disabled_at = $5, updated_at = $5 \
                     WHERE user_id = $1 AND id = $2 AND enabled = $6",
                )
                .bind(tenant)
                .bind(id)
                .bind(false)
                .bind(reason)
                .bind(now)
                .bind(true)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if disabled == 1 {
                    announce_tenant_change!(self, tx, tenant);
                }
            }
            tx.commit().await?;
            (failures, runs, disabled == 1)
        });
        if disabled_now {
            self.tenants.forget_tenant(tenant);
        }
        Ok(Tally { failures, disabled_now, runs })
    }
}
