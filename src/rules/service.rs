//! The rules a tenant keeps: creating, changing, listing and deleting them, with every field
//! checked, the package's `auto_replies` limit applied and each change recorded in the
//! activity log. The API and the dashboard both call this.

use crate::db::rules::{NewRule, RuleRow};
use crate::db::Db;
use crate::devices::find_device;
use crate::error::{ApiError, ApiResult};
use crate::limits::{LimitsService, Resource};
use crate::rules::engine::{check_reply, MatchMode, Matcher, RuleError};
use crate::tenants::{Tenant, TenantService};

/// Longest cooldown, in seconds (a year).
pub const MAX_COOLDOWN_SECONDS: i64 = 366 * 24 * 3600;
/// Priorities range over ±1,000,000.
pub const MAX_PRIORITY: i64 = 1_000_000;

impl From<RuleError> for ApiError {
    fn from(e: RuleError) -> Self {
        ApiError::validation(e.field(), e.to_string())
    }
}

/// What to set on a rule. A field left `None` keeps the rule's value (on a new rule, takes the
/// default); `device: Some(None)` answers on every device.
#[derive(Debug, Clone, Default)]
pub struct RuleChange {
    pub keyword: Option<String>,
    pub match_mode: Option<String>,
    pub reply: Option<String>,
    /// Device id or phone number.
    pub device: Option<Option<String>>,
    pub case_sensitive: Option<bool>,
    pub priority: Option<i64>,
    pub enabled: Option<bool>,
    pub cooldown_seconds: Option<i64>,
    pub stop: Option<bool>,
    /// Also answer in groups (default: direct chats only).
    pub groups: Option<bool>,
}

#[derive(Clone)]
pub struct RuleService {
    db: Db,
    limits: LimitsService,
    tenants: TenantService,
    country_code: String,
}

fn not_found() -> ApiError {
    ApiError::not_found("auto-reply rule")
}

impl RuleService {
    pub fn new(db: Db, limits: LimitsService, tenants: TenantService, country_code: &str) -> Self {
        RuleService { db, limits, tenants, country_code: country_code.to_string() }
    }

    /// A page of the tenant's rules in the order they are tried, with the total.
    pub async fn list(&self, tenant: &Tenant, limit: i64, offset: i64) -> ApiResult<(Vec<RuleRow>, i64)> {
        Ok(self.db.list_rules(tenant.id, tenant.devices.ids(), limit, offset).await?)
    }

    /// One of the tenant's rules: of the acting key's devices, or for every device.
    pub async fn get(&self, tenant: &Tenant, id: i64) -> ApiResult<RuleRow> {
        self.db.rule(tenant.id, id).await?.filter(|r| tenant.sees_bound(r.device_id)).ok_or_else(not_found)
    }

    /// Creates a rule (`keyword` and `reply` required) within the package's limit.
    pub async fn create(&self, tenant: &Tenant, change: RuleChange) -> ApiResult<RuleRow> {
        let rule = self.build(tenant, None, change).await?;
        tenant.may_change(rule.device_id, "a rule")?;
        let row = self
            .limits
            .create_within(tenant.id, &tenant.package, Resource::AutoReplies, |limit| {
                self.db.create_rule(tenant.id, &rule, limit)
            })
            .await?;
        self.tenants.record(tenant.activity("auto_reply.create", format!("auto_reply:{}", row.id))).await;
        Ok(row)
    }

    /// Changes the fields given; the rule's cooldowns start over.
    pub async fn update(&self, tenant: &Tenant, id: i64, change: RuleChange) -> ApiResult<RuleRow> {
        let current = self.get(tenant, id).await?;
        tenant.may_change(current.device_id, "the rule")?;
        let rule = self.build(tenant, Some(&current), change).await?;
        tenant.may_change(rule.device_id, "a rule")?;
        let row = self.db.update_rule(tenant.id, id, &rule).await?.ok_or_else(not_found)?;
        self.tenants.record(tenant.activity("auto_reply.update", format!("auto_reply:{id}"))).await;
        Ok(row)
    }

    pub async fn delete(&self, tenant: &Tenant, id: i64) -> ApiResult<()> {
        tenant.may_change(self.get(tenant, id).await?.device_id, "the rule")?;
        if !self.db.delete_rule(tenant.id, id).await? {
            return Err(not_found());
        }
        self.tenants.record(tenant.activity("auto_reply.delete", format!("auto_reply:{id}"))).await;
        Ok(())
    }

    /// Merges the change into the current rule (or the defaults) and checks every field.
    async fn build(
        &self,
        tenant: &Tenant,
        current: Option<&RuleRow>,
        change: RuleChange,
    ) -> ApiResult<NewRule> {
        let keyword = change.keyword.or_else(|| current.map(|c| c.keyword.clone()));
        let keyword = keyword.ok_or_else(|| ApiError::validation("keyword", "missing field `keyword`"))?;
        let reply = change.reply.or_else(|| current.map(|c| c.reply.clone()));
        let reply = reply.ok_or_else(|| ApiError::validation("reply", "missing field `reply`"))?;
        let mode = match change.match_mode {
            Some(m) => MatchMode::parse(&m)?,
            None => current.map_or(Ok(MatchMode::Contains), |c| MatchMode::parse(&c.match_mode))?,
        };
        let case_sensitive = change.case_sensitive.or(current.map(|c| c.case_sensitive)).unwrap_or(false);
        let matcher = Matcher::parse(&keyword, mode, case_sensitive)?;
        check_reply(&reply)?;
        let device_id = match change.device {
            Some(Some(d)) if !d.trim().is_empty() => {
                Some(find_device(&self.db, &self.country_code, tenant, &d).await?.id)
            }
            Some(_) => None,
            None => current.and_then(|c| c.device_id),
        };
        let priority = change.priority.or(current.map(|c| c.priority)).unwrap_or(0);
        if priority.abs() > MAX_PRIORITY {
            return Err(ApiError::validation(
                "priority",
                format!("must be between -{MAX_PRIORITY} and {MAX_PRIORITY}"),
            ));
        }
        let cooldown_seconds = change.cooldown_seconds.or(current.map(|c| c.cooldown_seconds)).unwrap_or(0);
        if !(0..=MAX_COOLDOWN_SECONDS).contains(&cooldown_seconds) {
            return Err(ApiError::validation(
                "cooldown_seconds",
                format!("must be 0 to {MAX_COOLDOWN_SECONDS}"),
            ));
        }
        Ok(NewRule {
            device_id,
            keyword: keyword.trim().to_string(),
            match_mode: matcher.mode().as_str().to_string(),
            reply,
            case_sensitive,
            priority,
            enabled: change.enabled.or(current.map(|c| c.enabled)).unwrap_or(true),
            stop_chain: change.stop.or(current.map(|c| c.stop_chain)).unwrap_or(true),
            cooldown_seconds,
            in_groups: change.groups.or(current.map(|c| c.in_groups)).unwrap_or(false),
        })
    }
}
