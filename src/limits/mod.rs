//! Packages, per-tenant overrides, usage reservations and request rate limits.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Datelike, TimeZone, Utc};

use crate::config::{Config, PackageConfig};
use crate::db::{Db, DbError};

pub mod rate;

pub use crate::resource::Resource;
pub use rate::RateLimiter;

#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error("the {limit} limit is reached")]
    Exceeded { limit: Resource },
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Limits in effect for one tenant: `None` is unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits(BTreeMap<Resource, Option<i64>>);

impl Limits {
    pub fn get(&self, r: Resource) -> Option<i64> {
        self.0.get(&r).copied().flatten()
    }

    /// As JSON: every resource, `null` for unlimited.
    pub fn to_json(&self) -> serde_json::Value {
        let map: serde_json::Map<String, serde_json::Value> =
            Resource::ALL.iter().map(|r| (r.name().to_string(), serde_json::json!(self.get(*r)))).collect();
        serde_json::Value::Object(map)
    }
}

fn package_limits(p: &PackageConfig) -> Limits {
    let norm = |v: Option<i64>| v.filter(|n| *n >= 0);
    Limits(BTreeMap::from([
        (Resource::Devices, norm(p.devices)),
        (Resource::MessagesPerMonth, norm(p.messages_per_month)),
        (Resource::AutoReplies, norm(p.auto_replies)),
        (Resource::ScheduledMessages, norm(p.scheduled_messages)),
        (Resource::Plugins, norm(p.plugins)),
        (Resource::WebhookEndpoints, norm(p.webhook_endpoints)),
        (Resource::RequestsPerMinute, norm(p.requests_per_minute)),
        (Resource::ApiKeys, norm(p.api_keys)),
    ]))
}

/// Per-tenant overrides as stored: a resource name mapped to a number or `null` (unlimited).
pub type Overrides = BTreeMap<Resource, Option<i64>>;

/// Applies overrides on top of a package's limits.
pub fn effective(package: &Limits, overrides: &Overrides) -> Limits {
    let mut out = package.clone();
    for (r, v) in overrides {
        out.0.insert(*r, v.filter(|n| *n >= 0));
    }
    out
}

/// The calendar month (UTC) that contains `at`, as `YYYY-MM`, with its start and end.
pub fn month_period(at: DateTime<Utc>) -> (String, DateTime<Utc>, DateTime<Utc>) {
    let start = Utc.with_ymd_and_hms(at.year(), at.month(), 1, 0, 0, 0).single().unwrap_or(at);
    let (ny, nm) = if at.month() == 12 { (at.year() + 1, 1) } else { (at.year(), at.month() + 1) };
    let end = Utc.with_ymd_and_hms(ny, nm, 1, 0, 0, 0).single().unwrap_or(at);
    (format!("{:04}-{:02}", at.year(), at.month()), start, end)
}

/// Reads and reserves tenant limits. Other modules call it before creating limited things.
#[derive(Clone)]
pub struct LimitsService {
    db: Db,
    packages: Arc<BTreeMap<String, Limits>>,
}

impl LimitsService {
    pub fn new(db: Db, config: &Config) -> Self {
        let packages = config.packages.iter().map(|(name, p)| (name.clone(), package_limits(p))).collect();
        LimitsService { db, packages: Arc::new(packages) }
    }

    pub fn has_package(&self, name: &str) -> bool {
        self.packages.contains_key(name)
    }

    pub fn package_names(&self) -> Vec<String> {
        self.packages.keys().cloned().collect()
    }

    /// The package's limits (unknown packages are unlimited-free: no access at all is safer,
    /// but a package removed from config must not lock tenants out, so they get zero limits).
    pub fn package(&self, name: &str) -> Limits {
        self.packages
            .get(name)
            .cloned()
            .unwrap_or_else(|| Limits(Resource::ALL.iter().map(|r| (*r, Some(0))).collect()))
    }

    /// The tenant's overrides as stored.
    pub async fn overrides(&self, tenant: i64) -> Result<Overrides, LimitError> {
        Ok(serde_json::from_str(&self.db.limit_overrides(tenant).await?).unwrap_or_default())
    }

    /// The limits in effect for a tenant on `package`.
    pub async fn limits(&self, tenant: i64, package: &str) -> Result<Limits, LimitError> {
        Ok(effective(&self.package(package), &self.overrides(tenant).await?))
    }

    /// Messages used in the current month.
    /// Creates something `resource` counts, within the tenant's package limit: `create` is
    /// given the limit (`None`: unlimited) and answers `None` when the tenant already holds that
    /// many (the storage counts and inserts under the tenant's lock).
    pub async fn create_within<T, Fut>(
        &self,
        tenant: i64,
        package: &str,
        resource: Resource,
        create: impl FnOnce(Option<i64>) -> Fut,
    ) -> Result<T, LimitError>
    where
        Fut: std::future::Future<Output = crate::db::DbResult<Option<T>>>,
    {
        let limit = self.limits(tenant, package).await?.get(resource);
        create(limit).await?.ok_or(LimitError::Exceeded { limit: resource })
    }

    pub async fn messages_used(&self, tenant: i64) -> Result<i64, LimitError> {
        let row = self.db.limits_row(tenant).await?;
        let (period, _, _) = month_period(Utc::now());
        Ok(if row.messages_period == period { row.messages_used } else { 0 })
    }

    /// This month (`YYYY-MM`) and the tenant's monthly message limit in it (`None`: unlimited),
    /// for storing a message and taking its place in the allowance in one transaction.
    pub async fn message_allowance(
        &self,
        tenant: i64,
        package: &str,
    ) -> Result<(String, Option<i64>), LimitError> {
        let limit = self.limits(tenant, package).await?.get(Resource::MessagesPerMonth);
        Ok((month_period(Utc::now()).0, limit))
    }

    /// Reserves `n` outbound messages in this month's allowance, or refuses with
    /// `limit_exceeded`. Atomic on both databases: concurrent callers never overshoot.
    pub async fn reserve_messages(&self, tenant: i64, package: &str, n: i64) -> Result<(), LimitError> {
        let limit = self.limits(tenant, package).await?.get(Resource::MessagesPerMonth);
        let (period, _, _) = month_period(Utc::now());
        if self.db.reserve_messages(tenant, &period, n, limit).await? {
            Ok(())
        } else {
            Err(LimitError::Exceeded { limit: Resource::MessagesPerMonth })
        }
    }

    /// Gives back messages reserved this month that were never sent.
    pub async fn release_messages(&self, tenant: i64, n: i64) -> Result<(), LimitError> {
        let (period, _, _) = month_period(Utc::now());
        Ok(self.db.release_messages(tenant, &period, n).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn overrides_replace_package_values_and_null_means_unlimited() {
        let basic = package_limits(&PackageConfig {
            devices: Some(1),
            messages_per_month: Some(1000),
            requests_per_minute: Some(600),
            ..Default::default()
        });
        let over = Overrides::from([(Resource::Devices, Some(3)), (Resource::MessagesPerMonth, None)]);
        let eff = effective(&basic, &over);
        assert_eq!(eff.get(Resource::Devices), Some(3));
        assert_eq!(eff.get(Resource::MessagesPerMonth), None);
        assert_eq!(eff.get(Resource::RequestsPerMinute), Some(600));
    }

    #[test]
    fn december_rolls_into_the_next_year() {
        let at = Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 59).unwrap();
        let (name, start, end) = month_period(at);
        assert_eq!(name, "2026-12");
        assert_eq!(start, Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap());
        assert_eq!(end, Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap());
    }

    proptest! {
        #[test]
        fn every_instant_lies_inside_its_month(secs in 0i64..4_102_444_800) {
            let at = Utc.timestamp_opt(secs, 0).unwrap();
            let (_, start, end) = month_period(at);
            prop_assert!(start <= at && at < end);
            prop_assert!((end - start).num_days() >= 28 && (end - start).num_days() <= 31);
        }
    }
}

/// Usage of each limited resource (what `/api/user/limits` reports as `usage`).
#[derive(Debug, serde::Serialize)]
pub struct Usage {
    pub devices: i64,
    pub messages_per_month: i64,
    pub auto_replies: i64,
    pub scheduled_messages: i64,
    pub plugins: i64,
    pub webhook_endpoints: i64,
    pub api_keys: i64,
}

impl Usage {
    /// The use of one resource (0 for the request rate, which is not counted here).
    pub fn of(&self, resource: Resource) -> i64 {
        match resource {
            Resource::Devices => self.devices,
            Resource::MessagesPerMonth => self.messages_per_month,
            Resource::AutoReplies => self.auto_replies,
            Resource::ScheduledMessages => self.scheduled_messages,
            Resource::Plugins => self.plugins,
            Resource::WebhookEndpoints => self.webhook_endpoints,
            Resource::ApiKeys => self.api_keys,
            Resource::RequestsPerMinute => 0,
        }
    }
}

impl LimitsService {
    /// Current usage of every limited resource of a tenant.
    pub async fn usage(&self, tenant: i64) -> Result<Usage, LimitError> {
        let counts = self.db.resource_counts(tenant).await?;
        let get = |r: Resource| counts.iter().find(|(k, _)| *k == r).map(|(_, v)| *v).unwrap_or(0);
        Ok(Usage {
            devices: get(Resource::Devices),
            messages_per_month: self.messages_used(tenant).await?,
            auto_replies: get(Resource::AutoReplies),
            scheduled_messages: get(Resource::ScheduledMessages),
            plugins: get(Resource::Plugins),
            webhook_endpoints: get(Resource::WebhookEndpoints),
            api_keys: get(Resource::ApiKeys),
        })
    }
}

/// A change to one of a tenant's limit overrides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverrideChange {
    /// Back to the package's value.
    Package,
    Unlimited,
    /// At most this many (must not be negative).
    Value(i64),
}

/// `overrides` with `changes` applied; a negative value is refused, naming `limits.<name>`.
pub fn apply_overrides(
    mut overrides: Overrides,
    changes: &[(Resource, OverrideChange)],
) -> Result<Overrides, (String, &'static str)> {
    for (resource, change) in changes {
        match change {
            OverrideChange::Package => {
                overrides.remove(resource);
            }
            OverrideChange::Unlimited => {
                overrides.insert(*resource, None);
            }
            OverrideChange::Value(n) if *n >= 0 => {
                overrides.insert(*resource, Some(*n));
            }
            OverrideChange::Value(_) => {
                return Err((
                    format!("limits.{resource}"),
                    "must be a non-negative integer, null (unlimited) or \"package\"",
                ))
            }
        }
    }
    Ok(overrides)
}
