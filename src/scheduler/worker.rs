//! The scheduler worker: finds due scheduled messages, sends each run exactly once, records it.
//!
//! Every `[scheduler] poll_interval_ms` the worker claims up to a batch of due rows by setting
//! their lease (`claimed_until`, `[scheduler] claim_lease` ahead) in one statement: on
//! PostgreSQL `FOR UPDATE SKIP LOCKED` keeps two processes off the same rows, on SQLite the
//! single writer makes the statement atomic. For each claimed row it then
//!
//! 1. marks the run `missed` when it is more than `[scheduler] missed_grace` late (the gateway
//!    was down when it fell due), else
//! 2. hands the message to the outbound queue (`Outbound::send`, source `scheduled`, queued
//!    even when the device is momentarily offline) with the idempotency key
//!    `scheduled:<id>:<run time>`: the outbound insert is unique per key, so a second attempt
//!    at the same run (after a crash between this step and the next, or by a process that
//!    took over an expired lease) gets the message stored the first time and sends nothing;
//! 3. records the run on the row, on condition that the row is still pending for that run
//!    time: a one-off becomes `sent` (or `failed` with the reason, e.g. the monthly limit), a
//!    recurring one computes its next run in its time zone and stays `pending`.
//!
//! A recurring message that missed several runs while the gateway was down sends once (if the
//! latest due run is within the grace) and continues with its next future run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::cron::CronExpr;
use super::{on_scheduled_sent, run_key, ScheduledMedia};
use crate::config::{Config, SchedulerConfig, WhatsappConfig};
use crate::db::schedules::{RunRecord, ScheduleRow};
use crate::db::{now_ms, Db, DbError, MessageRow};
use crate::devices::driver::OutboundMedia;
use crate::limits::LimitError;
use crate::messages::media::{MediaFetcher, MediaOptions};
use crate::messages::outbound::{Outbound, SendError, SendRequest};
use crate::metrics::Metrics;
use crate::phone::Recipient;
use crate::time::{rfc3339_ms, timezone_or_default};
use crate::webhooks::Events;

/// Rows claimed per statement.
const BATCH: i64 = 50;
/// How long a row waits after a storage error before it is tried again.
const RETRY_AFTER_MS: i64 = 5_000;

struct Inner {
    db: Db,
    outbound: Outbound,
    config: SchedulerConfig,
    whatsapp: WhatsappConfig,
    media: MediaFetcher,
    wake: Notify,
    halt_after_send: AtomicBool,
    events: Events,
    metrics: Metrics,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

/// The scheduler. Cheap to clone.
#[derive(Clone)]
pub struct Scheduler {
    inner: Arc<Inner>,
}

/// What one pass over the due rows did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tick {
    /// Claimed this many rows (fewer than a batch: nothing else is due).
    Ran(usize),
    /// A whole batch: more may be due at once.
    Full,
    /// The fault injection stopped the worker.
    Halted,
}

/// How a run ended, before it is recorded.
enum RunResult {
    Sent(Box<MessageRow>),
    Failed(String),
    Missed(String),
}

impl Scheduler {
    pub fn new(
        db: Db,
        outbound: Outbound,
        events: Events,
        media: MediaFetcher,
        config: &Config,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) -> Self {
        let metrics = outbound.metrics().clone();
        Scheduler {
            inner: Arc::new(Inner {
                db,
                outbound,
                config: config.scheduler.clone(),
                whatsapp: config.whatsapp.clone(),
                media,
                wake: Notify::new(),
                halt_after_send: AtomicBool::new(false),
                events,
                metrics,
                shutdown,
                tasks,
            }),
        }
    }

    /// Starts the worker loop; it runs until shutdown. Rows that fell due while the gateway
    /// was down are handled by its first pass, at once.
    pub fn start(&self) {
        let me = self.clone();
        self.inner.tasks.spawn(async move { me.run().await });
    }

    /// Looks for due rows now instead of at the next poll.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Fault injection for tests: the worker stops dead after its next successful hand-over to
    /// the outbound queue, before recording the run, as if the process had crashed there.
    #[doc(hidden)]
    pub fn halt_after_next_send(&self) {
        self.inner.halt_after_send.store(true, Ordering::SeqCst);
    }

    async fn run(&self) {
        let poll = Duration::from_millis(self.inner.config.poll_interval_ms.max(1));
        loop {
            if self.inner.shutdown.is_cancelled() {
                break;
            }
            match self.tick().await {
                Ok(Tick::Halted) => {
                    tracing::warn!("scheduler halted by fault injection");
                    return;
                }
                Ok(Tick::Full) => continue,
                Ok(Tick::Ran(_)) => {}
                Err(e) => tracing::warn!(error = %e, "scheduler pass failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = self.inner.wake.notified() => {}
                _ = self.inner.shutdown.cancelled() => break,
            }
        }
    }

    /// Claims the due rows and runs each. Public so tests and tools can drive it.
    pub async fn tick(&self) -> Result<Tick, DbError> {
        let now = now_ms();
        let lease = i64::try_from(self.inner.config.claim_lease.saturating_mul(1000)).unwrap_or(i64::MAX / 2);
        let ids = self.inner.db.system_claim_due_schedules(now, now.saturating_add(lease), BATCH).await?;
        let n = ids.len();
        for id in ids {
            match self.run_one(id).await {
                Ok(true) => {}
                Ok(false) => return Ok(Tick::Halted),
                Err(e) => {
                    tracing::warn!(schedule_id = id, error = %e, "scheduled run failed; it will be retried");
                    let _ = self.inner.db.system_release_schedule(id, now_ms() + RETRY_AFTER_MS).await;
                }
            }
        }
        Ok(if n as i64 >= BATCH { Tick::Full } else { Tick::Ran(n) })
    }

    /// Runs one claimed row. False when the fault injection says to stop.
    async fn run_one(&self, id: i64) -> Result<bool, DbError> {
        let db = &self.inner.db;
        let Some(row) = db.system_schedule(id).await? else { return Ok(true) };
        let Some(run_at) = row.next_run_at.filter(|_| row.status == "pending") else { return Ok(true) };
        let late_ms = now_ms() - run_at;
        let grace_ms = i64::try_from(self.inner.config.missed_grace.saturating_mul(1000)).unwrap_or(i64::MAX);
        let result = if late_ms > grace_ms {
            RunResult::Missed(format!(
                "missed: due at {}, {} s late (more than scheduler.missed_grace; the gateway was not running)",
                rfc3339_ms(run_at),
                late_ms / 1000
            ))
        } else {
            match self.send(&row, run_at).await? {
                Ok(message) => {
                    if self.inner.halt_after_send.swap(false, Ordering::SeqCst) {
                        return Ok(false);
                    }
                    RunResult::Sent(Box::new(message))
                }
                Err(reason) => RunResult::Failed(reason),
            }
        };
        self.record(&row, run_at, result).await?;
        Ok(true)
    }

    /// Hands the run's message to the outbound queue. The outer error is a storage failure
    /// (the run is retried); the inner one a reason the run failed for good.
    async fn send(&self, row: &ScheduleRow, run_at: i64) -> Result<Result<MessageRow, String>, DbError> {
        let db = &self.inner.db;
        let Some(tenant) = db.tenant(row.user_id).await? else {
            return Ok(Err("the account no longer exists".into()));
        };
        if tenant.status != "active" {
            return Ok(Err("the account is suspended".into()));
        }
        let Some(device) = db.device(row.user_id, row.device_id).await? else {
            return Ok(Err("the device no longer exists".into()));
        };
        let to = match Recipient::parse(&row.recipient, &self.inner.whatsapp.default_country_code) {
            Ok(to) => to,
            Err(e) => return Ok(Err(format!("invalid recipient: {e}"))),
        };
        let media = match row.media_spec() {
            None => None,
            Some(spec) => match self.fetch_media(spec, row.text.clone()).await {
                Ok(m) => Some(m),
                Err(reason) => return Ok(Err(reason)),
            },
        };
        let text = match &media {
            Some(m) => m.caption.clone(),
            None => row.text.clone(),
        };
        let request = SendRequest {
            tenant: row.user_id,
            package: tenant.package,
            device,
            to,
            text,
            media,
            details: Default::default(),
            source: "scheduled",
            idempotency_key: Some(run_key(row.id, run_at)),
            asynchronous: true,
            require_connected: false,
            activity: None,
        };
        match self.inner.outbound.send(request).await {
            Ok(message) => Ok(Ok(message)),
            Err(SendError::Limit(LimitError::Exceeded { limit })) => {
                Ok(Err(format!("limit_exceeded: {limit}")))
            }
            Err(SendError::Limit(LimitError::Db(e)) | SendError::Db(e)) => Err(e),
            Err(SendError::DeviceNotConnected) => Ok(Err("the device is not connected".into())),
        }
    }

    async fn fetch_media(
        &self,
        spec: Result<ScheduledMedia, String>,
        caption: Option<String>,
    ) -> Result<OutboundMedia, String> {
        let spec = spec?;
        let options = MediaOptions::parse(spec.kind.as_deref(), caption, spec.filename.as_deref())
            .map_err(|e| e.to_string())?;
        self.inner.media.fetch(&spec.url, options).await.map_err(|e| e.to_string())
    }

    /// Records a run and, for a sent one, calls the `scheduled.sent` hook.
    async fn record(&self, row: &ScheduleRow, run_at: i64, result: RunResult) -> Result<(), DbError> {
        let next = match &row.cron {
            None => None,
            Some(expr) => {
                let tz = timezone_or_default(&row.timezone);
                let after = Utc.timestamp_millis_opt(now_ms().max(run_at)).single().unwrap_or_else(Utc::now);
                match CronExpr::parse(expr).ok().and_then(|c| c.next_after(tz, after)) {
                    Some(next) => Some(next.timestamp_millis()),
                    None => {
                        let record = RunRecord {
                            status: "failed",
                            error: Some("the cron expression has no further run".into()),
                            message_id: sent_id(&result),
                            next_run_at: None,
                            ran: sent_id(&result).is_some(),
                        };
                        if self.inner.db.system_record_run(row.id, run_at, &record).await? {
                            self.inner.metrics.scheduler_run("failed");
                        }
                        return Ok(());
                    }
                }
            }
        };
        let (status, error, message) = match result {
            RunResult::Sent(m) => ("sent", None, Some(m)),
            RunResult::Failed(e) => ("failed", Some(e), None),
            RunResult::Missed(e) => ("missed", Some(e), None),
        };
        let record = RunRecord {
            // A recurring message stays pending for its next run whatever this one did.
            status: if next.is_some() { "pending" } else { status },
            error,
            message_id: message.as_ref().map(|m| m.id),
            next_run_at: next,
            ran: message.is_some(),
        };
        let recorded = self.inner.db.system_record_run(row.id, run_at, &record).await?;
        if recorded {
            self.inner.metrics.scheduler_run(status);
        }
        match (&message, recorded) {
            (Some(m), true) => on_scheduled_sent(&self.inner.events, row, m, run_at, next).await,
            (_, false) => {
                tracing::debug!(schedule_id = row.id, "the run was recorded elsewhere or cancelled")
            }
            (None, true) => {
                tracing::info!(schedule_id = row.id, status, error = ?record.error, "scheduled run not sent")
            }
        }
        Ok(())
    }
}

fn sent_id(result: &RunResult) -> Option<i64> {
    match result {
        RunResult::Sent(m) => Some(m.id),
        _ => None,
    }
}
