//! The retention sweep: at start and every `[retention] interval_minutes`, deletes what is
//! older than its age (`[retention]`, `[media] retention_days`, or the tenant's package's
//! `[packages.NAME.retention]`): media bytes (the message stays, its media `expired`), then
//! messages, webhook and plugin-run logs, and activity-log entries.
//!
//! Deletes go in batches of `batch_size` rows, each its own short statement, with a pause
//! between batches, so traffic never waits long behind a sweep. What a sweep deleted for a
//! tenant is written to that tenant's activity log (`retention.sweep`). Several processes on
//! one database may sweep at once: a row is deleted once, and each process logs only what it
//! deleted itself.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, PackageConfig};
use crate::db::activity::NewActivity;
use crate::db::{now_ms, Db, DbError};
use crate::messages::keeper::MediaKeeper;

const DAY_MS: i64 = 86_400_000;
/// The pause between two batches.
const BATCH_PAUSE: Duration = Duration::from_millis(20);

/// What one sweep deleted, for one tenant or in all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    pub media: u64,
    pub messages: u64,
    pub webhook_logs: u64,
    pub activity_logs: u64,
}

impl Swept {
    fn is_empty(&self) -> bool {
        *self == Swept::default()
    }

    fn add(&mut self, other: Swept) {
        self.media += other.media;
        self.messages += other.messages;
        self.webhook_logs += other.webhook_logs;
        self.activity_logs += other.activity_logs;
    }
}

/// The ages of one package, in days (0: forever).
#[derive(Debug, Clone, Copy)]
struct Ages {
    messages: u32,
    webhook_logs: u32,
    activity_logs: u32,
    media: u32,
}

/// The sweep. Cheap to clone.
#[derive(Clone)]
pub struct Retention {
    db: Db,
    keeper: MediaKeeper,
    config: std::sync::Arc<Config>,
}

impl Retention {
    pub fn new(db: Db, keeper: MediaKeeper, config: std::sync::Arc<Config>) -> Retention {
        Retention { db, keeper, config }
    }

    /// Sweeps now and then every interval, until `shutdown`.
    pub fn start(&self, shutdown: CancellationToken, tasks: &TaskTracker) {
        let me = self.clone();
        let every = Duration::from_secs(self.config.retention.interval_minutes.max(1) * 60);
        tasks.spawn(async move {
            loop {
                if let Err(e) = me.sweep().await {
                    tracing::warn!(error = %e, "retention sweep failed");
                }
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = shutdown.cancelled() => return,
                }
            }
        });
    }

    /// The ages for tenants of `package`: its own where it sets them, else the gateway's.
    fn ages(&self, package: &str) -> Ages {
        let own = self.config.packages.get(package).map(|p: &PackageConfig| &p.retention);
        let r = &self.config.retention;
        let media = u32::try_from(self.config.media.retention_days).unwrap_or(u32::MAX);
        Ages {
            messages: own.and_then(|o| o.messages_days).unwrap_or(r.messages_days),
            webhook_logs: own.and_then(|o| o.webhook_logs_days).unwrap_or(r.webhook_logs_days),
            activity_logs: own.and_then(|o| o.activity_logs_days).unwrap_or(r.activity_logs_days),
            media: own.and_then(|o| o.media_days).unwrap_or(media),
        }
    }

    /// One sweep over every tenant; returns what it deleted in all.
    pub async fn sweep(&self) -> Result<Swept, DbError> {
        let now = now_ms();
        let cutoff = |days: u32| (days > 0).then(|| now - i64::from(days) * DAY_MS);
        let batch = i64::from(self.config.retention.batch_size.max(1));
        let tenants = self.db.tenant_packages().await?;
        let mut total = Swept::default();
        let mut by_tenant: std::collections::BTreeMap<i64, Swept> = Default::default();

        // Media first, a package at a time (through the media-state index): a message whose
        // bytes are kept is not deleted until they are gone.
        let mut packages: Vec<&str> = tenants.iter().map(|(_, p)| p.as_str()).collect();
        packages.sort_unstable();
        packages.dedup();
        for package in packages {
            let Some(before) = cutoff(self.ages(package).media) else { continue };
            loop {
                let ids = self.db.stored_media_before(package, before, batch).await?;
                let mut expired = 0;
                for &(tenant, id) in &ids {
                    if self.keeper.expire(tenant, id).await? {
                        by_tenant.entry(tenant).or_default().media += 1;
                        expired += 1;
                    }
                }
                // Short, or the store refused some: the next sweep goes on.
                if (ids.len() as i64) < batch || expired < ids.len() {
                    break;
                }
                tokio::time::sleep(BATCH_PAUSE).await;
            }
        }

        for (tenant, package) in &tenants {
            let ages = self.ages(package);
            let swept = by_tenant.entry(*tenant).or_default();
            if let Some(before) = cutoff(ages.messages) {
                swept.messages +=
                    self.batches(|| self.db.delete_messages_before(*tenant, before, batch)).await?;
            }
            if let Some(before) = cutoff(ages.webhook_logs) {
                swept.webhook_logs +=
                    self.batches(|| self.db.delete_webhook_logs_before(*tenant, before, batch)).await?;
            }
            if let Some(before) = cutoff(ages.activity_logs) {
                swept.activity_logs +=
                    self.batches(|| self.db.delete_activity_before(Some(*tenant), before, batch)).await?;
            }
        }
        // The gateway's own activity entries (no tenant) age as `[retention]` says.
        if let Some(before) = cutoff(self.config.retention.activity_logs_days) {
            total.activity_logs +=
                self.batches(|| self.db.delete_activity_before(None, before, batch)).await?;
        }

        for (tenant, swept) in by_tenant {
            if swept.is_empty() {
                continue;
            }
            total.add(swept);
            let entry = NewActivity {
                user_id: Some(tenant),
                actor: "system".into(),
                action: "retention.sweep".into(),
                target: None,
                detail: Some(format!(
                    "deleted {} messages, {} webhook log entries, {} activity entries; media of {} messages",
                    swept.messages, swept.webhook_logs, swept.activity_logs, swept.media
                )),
                ip: None,
            };
            if let Err(e) = self.db.record_activity(&entry).await {
                tracing::warn!(tenant, error = %e, "cannot log a retention sweep");
            }
        }
        if !total.is_empty() {
            tracing::info!(?total, "retention sweep");
        }
        Ok(total)
    }

    /// Runs `delete` (one batch) until a batch deletes fewer than a whole batch; returns the
    /// rows deleted.
    async fn batches<F, Fut>(&self, mut delete: F) -> Result<u64, DbError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<u64, DbError>>,
    {
        let batch = u64::from(self.config.retention.batch_size.max(1));
        let mut deleted = 0;
        loop {
            let n = delete().await?;
            deleted += n;
            if n < batch {
                return Ok(deleted);
            }
            tokio::time::sleep(BATCH_PAUSE).await;
        }
    }
}
