//! Packages, per-tenant overrides, usage reservations and per-key rate limits.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Datelike, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::config::{Config, PackageConfig};
use crate::db::{Db, DbError};

pub mod rate;

pub use rate::RateLimiter;

/// A limited resource. Its name is what the API reports in `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resource {
    Devices,
    MessagesPerMonth,
    AutoReplies,
    ScheduledMessages,
    Plugins,
    WebhookEndpoints,
    RequestsPerMinute,
}

impl Resource {
    pub const ALL: [Resource; 7] = [
        Resource::Devices,
        Resource::MessagesPerMonth,
        Resource::AutoReplies,
        Resource::ScheduledMessages,
        Resource::Plugins,
        Resource::WebhookEndpoints,
        Resource::RequestsPerMinute,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Resource::Devices => "devices",
            Resource::MessagesPerMonth => "messages_per_month",
            Resource::AutoReplies => "auto_replies",
            Resource::ScheduledMessages => "scheduled_messages",
            Resource::Plugins => "plugins",
            Resource::WebhookEndpoints => "webhook_endpoints",
            Resource::RequestsPerMinute => "requests_per_minute",
        }
    }

    pub fn parse(name: &str) -> Option<Resource> {
        Resource::ALL.into_iter().find(|r| r.name() == name)
    }
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

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
        let row = self.db.limits_row(tenant).await?;
        Ok(serde_json::from_str(&row.overrides).unwrap_or_default())
    }

    /// The limits in effect for a tenant on `package`.
    pub async fn limits(&self, tenant: i64, package: &str) -> Result<Limits, LimitError> {
        Ok(effective(&self.package(package), &self.overrides(tenant).await?))
    }

    /// Messages used in the current month.
    pub async fn messages_used(&self, tenant: i64) -> Result<i64, LimitError> {
        let row = self.db.limits_row(tenant).await?;
        let (period, _, _) = month_period(Utc::now());
        Ok(if row.messages_period == period { row.messages_used } else { 0 })
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
