//! The webhook delivery queue (`webhook_deliveries`): durable work as rows.
//!
//! An event becomes one row per subscribed endpoint, `pending` and due at once. A worker takes
//! due rows of one endpoint by setting their lease (`lease_until`) in one transaction that
//! first locks the endpoint row and counts its rows already leased, so no endpoint ever has
//! more than `max_in_flight` attempts running across all gateway processes: on PostgreSQL the
//! endpoint row is locked `FOR UPDATE` and the rows are picked `FOR UPDATE SKIP LOCKED`; on
//! SQLite the single writer makes the transaction atomic and the claim is a conditional
//! `UPDATE … RETURNING`. An attempt's outcome, its log row and the endpoint's health are
//! written in one transaction. A process that dies mid-attempt leaves a lease that runs out,
//! and the row is taken again (with the same `webhook-id`).
//!
//! Whether a row is due, whether its lease still runs, and when a new lease or a next attempt
//! falls due are all on the database's clock ([`now_sql`]), so processes whose clocks disagree
//! still agree on who may take a row. A time a caller passes in (a lease end, a retry time) is
//! on its own clock and counts only as a wait from its now. `created_at`, `updated_at` and the
//! log's times are the process's clock: they are shown, and decide nobody's claim.
//!
//! Message events come from `message_status_history`, which is written in the same
//! transaction as the status change it records: [`Db::system_pump_message_events`] turns each
//! history row into deliveries exactly once (`webhooked`), so a crash between a change and its
//! event loses nothing.

use super::{bind_log, event_pattern, NewLog, INSERT_LOG};
use crate::db::cluster::now_sql;
use crate::db::tenants::announce_tenant_change;
use crate::db::{now_ms, reader, writer, Db, DbResult, Dialect, MessageRow};

/// A delivery to queue.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub user_id: i64,
    pub endpoint_id: i64,
    pub webhook_id: String,
    pub event: String,
    pub message_id: Option<i64>,
    /// The device the event is about (none for test events).
    pub device_id: Option<i64>,
    pub payload: String,
    pub max_attempts: i64,
    /// When the first attempt is due (Unix ms, the caller's clock: it is stored as that wait
    /// from the database's now).
    pub due: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: i64,
    pub user_id: i64,
    pub endpoint_id: i64,
    pub webhook_id: String,
    pub event: String,
    pub message_id: Option<i64>,
    pub payload: String,
    pub status: String,
    pub attempts: i64,
    pub max_attempts: i64,
    pub next_attempt_at: Option<i64>,
    pub lease_until: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub device_id: Option<i64>,
    /// What the endpoint's transformation returned for this delivery (JSON), once it ran.
    pub transformed: Option<String>,
}

const DELIVERY_COLUMNS: &str =
    "id, user_id, endpoint_id, webhook_id, event, message_id, payload, status, attempts, \
     max_attempts, next_attempt_at, lease_until, last_error, created_at, updated_at, device_id, transformed";

/// An endpoint an event may go to.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TargetRow {
    pub id: i64,
    pub user_id: i64,
    pub events: String,
    pub mode: String,
    pub device_id: Option<i64>,
}

impl TargetRow {
    /// Whether this endpoint takes `event` of `device_id` through the queue. `reply`
    /// endpoints get `message.received` in the inbound pipeline instead.
    pub fn takes(&self, event: &str, device_id: Option<i64>) -> bool {
        self.events.contains(&format!("\"{event}\""))
            && (self.device_id.is_none() || self.device_id == device_id)
            && !(self.mode == "reply" && event == "message.received")
    }
}

/// A status-history row turned into events.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StatusItem {
    pub id: i64,
    pub message_id: i64,
    pub status: String,
    pub detail: Option<String>,
    pub created_at: i64,
}

/// What happens to a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    Delivered,
    /// Try again at this time (Unix ms, the caller's clock: it is stored as that wait from
    /// the database's now).
    RetryAt(i64),
    /// No attempts left.
    Failed,
    /// The endpoint's transformation chose to send nothing for this event.
    Skipped,
}

/// One finished attempt to record.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub delivery_id: i64,
    pub endpoint_id: i64,
    /// Whether a request reached for the endpoint (false when its transformation skipped the
    /// event or failed): only then does the attempt count for the endpoint's health.
    pub sent: bool,
    pub success: bool,
    pub next: NextStep,
    pub log: NewLog,
}

/// The endpoint after an attempt was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointHealth {
    pub enabled: bool,
    /// The first failure since the last success.
    pub failing_since: Option<i64>,
}

/// What retrying a log row did.
#[derive(Debug)]
pub enum RetryLog {
    /// The delivery is due now, with the same `webhook-id`.
    Queued(Box<DeliveryRow>),
    NotFound,
    /// A plugin run: nothing to send again.
    NotWebhook,
    /// The delivery is no longer stored (its endpoint was deleted, or it aged out).
    Gone,
    /// An attempt of this delivery is running right now.
    InProgress,
    /// The endpoint is disabled.
    Disabled,
}

/// The dialect of a transaction's database: how the macros below, which run inside a
/// caller's transaction, find the SQL for the database's clock.
pub(crate) trait TxDialect: sqlx::Database {
    const DIALECT: Dialect;
}

impl TxDialect for sqlx::Sqlite {
    const DIALECT: Dialect = Dialect::Sqlite;
}

impl TxDialect for sqlx::Postgres {
    const DIALECT: Dialect = Dialect::Postgres;
}

/// The database's clock ([`now_sql`]) of transaction `_tx`'s database.
pub(crate) fn tx_now_sql<D: TxDialect>(_tx: &sqlx::Transaction<'_, D>) -> &'static str {
    now_sql(D::DIALECT)
}

/// Cancels an endpoint's pending deliveries that no worker holds (by the database's clock),
/// inside transaction `$tx`; `$now` is the change's `updated_at`.
macro_rules! cancel_pending {
    ($tx:expr, $endpoint:expr, $reason:expr, $now:expr) => {
        sqlx::query(&format!(
            "UPDATE webhook_deliveries SET status = 'cancelled', last_error = $2, next_attempt_at = NULL, \
             updated_at = $3 WHERE endpoint_id = $1 AND status = 'pending' \
             AND (lease_until IS NULL OR lease_until < {})",
            $crate::db::webhooks::deliveries::tx_now_sql(&$tx)
        ))
        .bind($endpoint)
        .bind($reason)
        .bind($now)
        .execute(&mut *$tx)
        .await?
    };
}
pub(crate) use cancel_pending;

/// Inserts deliveries inside transaction `$tx`, each due `d.due - $now` from the database's
/// now; `$now` is the caller's clock and the rows' `created_at`.
macro_rules! insert_deliveries {
    ($tx:expr, $list:expr, $now:expr) => {
        let sql = format!(
            "INSERT INTO webhook_deliveries (user_id, endpoint_id, webhook_id, event, message_id, payload, status, \
             attempts, max_attempts, next_attempt_at, created_at, updated_at, device_id) \
             VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, {} + $8, $9, $9, $10)",
            $crate::db::webhooks::deliveries::tx_now_sql(&$tx)
        );
        for d in $list {
            sqlx::query(&sql)
            .bind(d.user_id)
            .bind(d.endpoint_id)
            .bind(&d.webhook_id)
            .bind(&d.event)
            .bind(d.message_id)
            .bind(&d.payload)
            .bind(d.max_attempts)
            .bind($crate::db::webhooks::deliveries::wait_until(d.due, $now))
            .bind($now)
            .bind(d.device_id)
            .execute(&mut *$tx)
            .await?;
        }
    };
}
pub(crate) use insert_deliveries;

/// The wait from `now` until `at`, both on the caller's clock: what a statement adds to the
/// database's now for a due time or a lease end the caller gave. Never negative, and small
/// enough that the sum cannot overflow.
pub(crate) fn wait_until(at: i64, now: i64) -> i64 {
    at.saturating_sub(now).clamp(0, i64::MAX / 2)
}

/// `$1, $2, …` from `first` for `n` values.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

impl Db {
    /// The tenant's enabled endpoints that take `event` (of `device_id`) through the queue.
    pub async fn webhook_targets(
        &self,
        tenant: i64,
        device_id: Option<i64>,
        event: &str,
    ) -> DbResult<Vec<TargetRow>> {
        let rows: Vec<TargetRow> = reader!(self, |p| sqlx::query_as(
            "SELECT w.id, w.user_id, w.events, w.mode, w.device_id FROM webhook_endpoints w \
             JOIN users u ON u.id = w.user_id AND u.status = 'active' \
             WHERE w.user_id = $1 AND w.enabled = TRUE AND w.events LIKE $2 ORDER BY w.id"
        )
        .bind(tenant)
        .bind(event_pattern(event))
        .fetch_all(p)
        .await)?;
        Ok(rows.into_iter().filter(|t| t.takes(event, device_id)).collect())
    }

    /// Queues deliveries in one transaction.
    pub async fn enqueue_deliveries(&self, list: &[NewDelivery]) -> DbResult<()> {
        if list.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        writer!(self, |p| {
            let mut tx = p.begin().await?;
            insert_deliveries!(tx, list, now);
            tx.commit().await?;
        });
        Ok(())
    }

    /// Takes up to `batch` status-history rows not yet turned into events, asks `plan` for the
    /// deliveries of each (given the message and its tenant's enabled endpoints), queues them
    /// and marks the rows done, all in one transaction. Returns the rows taken.
    pub async fn system_pump_message_events<F>(&self, batch: i64, mut plan: F) -> DbResult<usize>
    where
        F: FnMut(&StatusItem, &MessageRow, &[TargetRow]) -> Vec<NewDelivery>,
    {
        // As in `system_claim_deliveries`: on PostgreSQL a CTE picks the rows once.
        let claim = match self.dialect() {
            Dialect::Sqlite => {
                "UPDATE message_status_history SET webhooked = TRUE WHERE id IN \
                 (SELECT id FROM message_status_history WHERE webhooked = 0 ORDER BY id LIMIT $1) \
                 RETURNING id, message_id, status, detail, created_at"
            }
            Dialect::Postgres => {
                "WITH picked AS (SELECT id FROM message_status_history WHERE NOT webhooked \
                 ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED) UPDATE message_status_history h SET webhooked = TRUE \
                 FROM picked WHERE h.id = picked.id RETURNING h.id, h.message_id, h.status, h.detail, h.created_at"
            }
        };
        let now = now_ms();
        writer!(self, |p| {
            let mut tx = p.begin().await?;
            let mut items: Vec<StatusItem> = sqlx::query_as(claim).bind(batch).fetch_all(&mut *tx).await?;
            if items.is_empty() {
                return Ok(0);
            }
            items.sort_by_key(|i| i.id);
            let mut ids: Vec<i64> = items.iter().map(|i| i.message_id).collect();
            ids.sort_unstable();
            ids.dedup();
            let sql = format!(
                "SELECT m.id, m.user_id, m.device_id, d.phone AS device_phone, m.direction, m.chat, m.sender, \
                 m.recipient, m.text, m.type, m.status, m.wa_id, m.push_name, m.is_group, m.media, m.error, \
                 m.source, m.attempts, m.created_at, m.updated_at, m.details, m.media_state, m.sender_lid FROM messages m JOIN devices d ON d.id = m.device_id \
                 WHERE m.id IN ({})",
                placeholders(1, ids.len())
            );
            let mut q = sqlx::query_as(&sql);
            for id in &ids {
                q = q.bind(*id);
            }
            let messages: Vec<MessageRow> = q.fetch_all(&mut *tx).await?;
            let mut tenants: Vec<i64> = messages.iter().map(|m| m.user_id).collect();
            tenants.sort_unstable();
            tenants.dedup();
            let targets: Vec<TargetRow> = if tenants.is_empty() {
                Vec::new()
            } else {
                let sql = format!(
                    "SELECT w.id, w.user_id, w.events, w.mode, w.device_id FROM webhook_endpoints w \
                     JOIN users u ON u.id = w.user_id AND u.status = 'active' \
                     WHERE w.enabled = TRUE AND w.user_id IN ({}) ORDER BY w.id",
                    placeholders(1, tenants.len())
                );
                let mut q = sqlx::query_as(&sql);
                for t in &tenants {
                    q = q.bind(*t);
                }
                q.fetch_all(&mut *tx).await?
            };
            let mut deliveries = Vec::new();
            for item in &items {
                let Some(message) = messages.iter().find(|m| m.id == item.message_id) else { continue };
                let mine: Vec<TargetRow> =
                    targets.iter().filter(|t| t.user_id == message.user_id).cloned().collect();
                if !mine.is_empty() {
                    deliveries.extend(plan(item, message, &mine));
                }
            }
            insert_deliveries!(tx, &deliveries, now);
            tx.commit().await?;
            Ok(items.len())
        })
    }

    /// Endpoints with deliveries due now that no worker holds, oldest due first, by the
    /// database's clock. The caller's `_now` plays no part.
    pub async fn system_due_webhooks(&self, _now: i64, limit: i64) -> DbResult<Vec<i64>> {
        let now = now_sql(self.dialect());
        let sql = format!(
            "SELECT d.endpoint_id FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id \
             WHERE d.status = 'pending' AND d.next_attempt_at <= {now} \
             AND (d.lease_until IS NULL OR d.lease_until < {now}) \
             AND e.enabled = TRUE GROUP BY d.endpoint_id ORDER BY MIN(d.next_attempt_at) LIMIT $1"
        );
        Ok(reader!(self, |p| sqlx::query_scalar(&sql).bind(limit).fetch_all(p).await)?)
    }

    /// When the next pending delivery of an enabled endpoint falls due (not due yet by the
    /// database's clock), if any, on the caller's clock whose now is `now` (Unix ms).
    /// (Deliveries due already but held back by a cap start when an attempt ends.)
    pub async fn system_next_delivery_at(&self, now: i64) -> DbResult<Option<i64>> {
        let db_now = now_sql(self.dialect());
        let sql = format!(
            "SELECT $1 + (MIN(d.next_attempt_at) - {db_now}) FROM webhook_deliveries d \
             JOIN webhook_endpoints e ON e.id = d.endpoint_id \
             WHERE d.status = 'pending' AND d.next_attempt_at > {db_now} AND e.enabled = TRUE"
        );
        Ok(reader!(self, |p| sqlx::query_scalar(&sql).bind(now).fetch_one(p).await)?)
    }

    /// Whether some status-history row still waits to be turned into events (a cheap read
    /// before the pump's write transaction).
    pub async fn system_has_unhooked_history(&self) -> DbResult<bool> {
        let sql = match self.dialect() {
            Dialect::Sqlite => "SELECT id FROM message_status_history WHERE webhooked = 0 LIMIT 1",
            Dialect::Postgres => "SELECT id FROM message_status_history WHERE NOT webhooked LIMIT 1",
        };
        let found: Option<i64> = reader!(self, |p| sqlx::query_scalar(sql).fetch_optional(p).await)?;
        Ok(found.is_some())
    }

    /// Leases up to `limit` deliveries of one enabled endpoint due and free by the database's
    /// clock, never letting the endpoint's leased rows exceed `max_in_flight`. `now` and
    /// `lease_until` are the caller's clock: the lease lasts `lease_until - now` from the
    /// database's now, and `now` is the rows' `updated_at`.
    pub async fn system_claim_deliveries(
        &self,
        endpoint_id: i64,
        now: i64,
        lease_until: i64,
        max_in_flight: i64,
        limit: i64,
    ) -> DbResult<Vec<DeliveryRow>> {
        let db_now = now_sql(self.dialect());
        let due = format!(
            "SELECT id FROM webhook_deliveries WHERE endpoint_id = $1 AND status = 'pending' \
             AND next_attempt_at <= {db_now} AND (lease_until IS NULL OR lease_until < {db_now}) \
             ORDER BY next_attempt_at, id LIMIT $4"
        );
        // PostgreSQL may run the sub-select of `WHERE id IN (…)` again for each row it updates,
        // and each run sees the rows just leased as taken and picks more: the CTE picks once.
        // SQLite evaluates the list once, and its single writer makes the statement atomic.
        let (lock_endpoint, claim) = match self.dialect() {
            Dialect::Sqlite => (
                "SELECT id FROM webhook_endpoints WHERE id = $1 AND enabled = TRUE",
                format!(
                    "UPDATE webhook_deliveries SET lease_until = {db_now} + $3, updated_at = $2 WHERE id IN ({due}) \
                     AND status = 'pending' AND (lease_until IS NULL OR lease_until < {db_now}) \
                     RETURNING {DELIVERY_COLUMNS}"
                ),
            ),
            Dialect::Postgres => (
                "SELECT id FROM webhook_endpoints WHERE id = $1 AND enabled = TRUE FOR UPDATE",
                format!(
                    "WITH picked AS ({due} FOR UPDATE SKIP LOCKED) UPDATE webhook_deliveries d \
                     SET lease_until = {db_now} + $3, updated_at = $2 FROM picked WHERE d.id = picked.id RETURNING {}",
                    DELIVERY_COLUMNS.split(", ").map(|c| format!("d.{c}")).collect::<Vec<_>>().join(", ")
                ),
            ),
        };
        let count_leased = format!(
            "SELECT COUNT(*) FROM webhook_deliveries WHERE endpoint_id = $1 AND status = 'pending' \
             AND lease_until >= {db_now}"
        );
        writer!(self, |p| {
            let mut tx = p.begin().await?;
            let enabled: Option<i64> =
                sqlx::query_scalar(lock_endpoint).bind(endpoint_id).fetch_optional(&mut *tx).await?;
            if enabled.is_none() {
                return Ok(Vec::new());
            }
            let leased: i64 = sqlx::query_scalar(&count_leased).bind(endpoint_id).fetch_one(&mut *tx).await?;
            let free = (max_in_flight - leased).min(limit);
            if free <= 0 {
                return Ok(Vec::new());
            }
            let mut rows: Vec<DeliveryRow> = sqlx::query_as(&claim)
                .bind(endpoint_id)
                .bind(now)
                .bind(wait_until(lease_until, now))
                .bind(free)
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            rows.sort_by_key(|r| (r.next_attempt_at, r.id));
            Ok(rows)
        })
    }

    /// Records an attempt: the log row, the delivery's next step and the endpoint's health, in
    /// one transaction. A retry of a delivery whose endpoint was disabled meanwhile is cancelled.
    pub async fn system_record_attempt(&self, rec: &AttemptRecord) -> DbResult<EndpointHealth> {
        let now = now_ms();
        let health_sql = if rec.success {
            // At most once a second while healthy: a busy endpoint's row is not rewritten (and
            // locked) by every successful attempt.
            "UPDATE webhook_endpoints SET failing_since = NULL, last_success_at = $2 WHERE id = $1 \
             AND (failing_since IS NOT NULL OR last_success_at IS NULL OR last_success_at < $2 - 1000) \
             RETURNING enabled, failing_since"
        } else {
            "UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, $2), last_failure_at = $2 \
             WHERE id = $1 RETURNING enabled, failing_since"
        };
        let (status, wait) = match rec.next {
            NextStep::Delivered => ("delivered", None),
            NextStep::RetryAt(at) => ("pending", Some(wait_until(at, now))),
            NextStep::Failed => ("failed", None),
            NextStep::Skipped => ("skipped", None),
        };
        let update = format!(
            "UPDATE webhook_deliveries SET status = $2, attempts = attempts + 1, next_attempt_at = {} + $3, \
             lease_until = NULL, last_error = $4, updated_at = $5 WHERE id = $1",
            now_sql(self.dialect())
        );
        let last_error =
            if rec.success || rec.next == NextStep::Skipped { None } else { rec.log.error.clone() };
        writer!(self, |p| {
            let mut tx = p.begin().await?;
            // A skipped or untransformable event says nothing about the endpoint.
            let health: Option<(bool, Option<i64>)> = if rec.sent {
                sqlx::query_as(health_sql).bind(rec.endpoint_id).bind(now).fetch_optional(&mut *tx).await?
            } else {
                sqlx::query_as("SELECT enabled, failing_since FROM webhook_endpoints WHERE id = $1")
                    .bind(rec.endpoint_id)
                    .fetch_optional(&mut *tx)
                    .await?
            };
            let enabled = health.map(|h| h.0).unwrap_or(rec.success);
            let status = if status == "pending" && !enabled { "cancelled" } else { status };
            sqlx::query(&update)
                .bind(rec.delivery_id)
                .bind(status)
                .bind(wait)
                .bind(&last_error)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            let _: i64 = bind_log!(sqlx::query_scalar(INSERT_LOG), rec.log, now).fetch_one(&mut *tx).await?;
            tx.commit().await?;
            Ok(EndpointHealth { enabled, failing_since: health.and_then(|h| h.1) })
        })
    }

    /// Keeps what the endpoint's transformation returned for a delivery (JSON), so its retries
    /// send the same request.
    pub async fn system_store_transformed(&self, id: i64, transformed: &str) -> DbResult<()> {
        writer!(self, |p| sqlx::query("UPDATE webhook_deliveries SET transformed = $2 WHERE id = $1")
            .bind(id)
            .bind(transformed)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Gives a leased delivery back without an attempt (shutdown, storage trouble), due at `due`
    /// (the caller's clock: due that long from the database's now).
    pub async fn system_release_delivery(&self, id: i64, due: i64) -> DbResult<()> {
        let now = now_ms();
        let sql = format!(
            "UPDATE webhook_deliveries SET lease_until = NULL, next_attempt_at = {} + $2, updated_at = $3 \
             WHERE id = $1 AND status = 'pending'",
            now_sql(self.dialect())
        );
        writer!(self, |p| sqlx::query(&sql)
            .bind(id)
            .bind(wait_until(due, now))
            .bind(now)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Disables an enabled endpoint (gone, or failing too long) and cancels its queue.
    /// Returns its tenant when this call disabled it.
    pub async fn system_disable_webhook(&self, id: i64, reason: &str) -> DbResult<Option<i64>> {
        let now = now_ms();
        let tenant = writer!(self, |p| {
            let mut tx = p.begin().await?;
            let tenant: Option<i64> = sqlx::query_scalar(
                "UPDATE webhook_endpoints SET enabled = FALSE, disabled_at = $2, disabled_reason = $3, updated_at = $2 \
                 WHERE id = $1 AND enabled = TRUE RETURNING user_id",
            )
            .bind(id)
            .bind(now)
            .bind(reason)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(tenant) = tenant {
                cancel_pending!(tx, id, reason, now);
                announce_tenant_change!(self, tx, tenant);
            }
            tx.commit().await?;
            tenant
        });
        if let Some(tenant) = tenant {
            self.tenants.forget_tenant(tenant);
        }
        Ok(tenant)
    }

    /// Deletes finished deliveries last touched before `before` (their log rows stay).
    pub async fn system_prune_deliveries(&self, before: i64) -> DbResult<u64> {
        Ok(writer!(self, |p| sqlx::query(
            "DELETE FROM webhook_deliveries WHERE status <> 'pending' AND updated_at < $1"
        )
        .bind(before)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?)
    }

    /// Stores a reply-mode attempt (made in the inbound pipeline, not by the worker) as a
    /// finished delivery with its log row, so the log row can be retried like any other.
    pub async fn record_reply_attempt(
        &self,
        delivery: &NewDelivery,
        success: bool,
        log: &NewLog,
    ) -> DbResult<i64> {
        let now = now_ms();
        let status = if success { "delivered" } else { "failed" };
        writer!(self, |p| {
            let mut tx = p.begin().await?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO webhook_deliveries (user_id, endpoint_id, webhook_id, event, message_id, payload, status, \
                 attempts, max_attempts, last_error, created_at, updated_at, device_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 1, 1, $8, $9, $9, $10) RETURNING id",
            )
            .bind(delivery.user_id)
            .bind(delivery.endpoint_id)
            .bind(&delivery.webhook_id)
            .bind(&delivery.event)
            .bind(delivery.message_id)
            .bind(&delivery.payload)
            .bind(status)
            .bind(if success { None } else { log.error.clone() })
            .bind(now)
            .bind(delivery.device_id)
            .fetch_one(&mut *tx)
            .await?;
            let mut log = log.clone();
            log.delivery_id = Some(id);
            let _: i64 = bind_log!(sqlx::query_scalar(INSERT_LOG), log, now).fetch_one(&mut *tx).await?;
            tx.commit().await?;
            Ok(id)
        })
    }

    /// Makes the delivery of one of the tenant's log rows due now (by the database's clock),
    /// with its `webhook-id`: a finished delivery gets one more attempt; a pending one is tried
    /// now and keeps its remaining schedule.
    pub async fn retry_webhook_log(&self, tenant: i64, log_id: i64) -> DbResult<RetryLog> {
        let now = now_ms();
        let db_now = now_sql(self.dialect());
        let state_sql = format!(
            "SELECT d.lease_until >= {db_now} AS held, e.enabled FROM webhook_deliveries d \
             JOIN webhook_endpoints e ON e.id = d.endpoint_id WHERE d.user_id = $1 AND d.id = $2"
        );
        let sql = format!(
            "UPDATE webhook_deliveries SET next_attempt_at = {db_now}, updated_at = $3, \
             max_attempts = CASE WHEN status = 'pending' THEN max_attempts ELSE attempts + 1 END, status = 'pending' \
             WHERE user_id = $1 AND id = $2 RETURNING {DELIVERY_COLUMNS}"
        );
        writer!(self, |p| {
            let mut tx = p.begin().await?;
            let log: Option<(String, Option<i64>)> =
                sqlx::query_as("SELECT kind, delivery_id FROM webhook_logs WHERE user_id = $1 AND id = $2")
                    .bind(tenant)
                    .bind(log_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let delivery_id = match log {
                None => return Ok(RetryLog::NotFound),
                Some((kind, _)) if kind != "webhook" => return Ok(RetryLog::NotWebhook),
                Some((_, None)) => return Ok(RetryLog::Gone),
                Some((_, Some(id))) => id,
            };
            // `held` is NULL (no lease) or whether the lease still runs.
            let state: Option<(Option<bool>, bool)> =
                sqlx::query_as(&state_sql).bind(tenant).bind(delivery_id).fetch_optional(&mut *tx).await?;
            match state {
                None => return Ok(RetryLog::Gone),
                Some((_, false)) => return Ok(RetryLog::Disabled),
                Some((Some(true), _)) => return Ok(RetryLog::InProgress),
                Some(_) => {}
            }
            let row: DeliveryRow =
                sqlx::query_as(&sql).bind(tenant).bind(delivery_id).bind(now).fetch_one(&mut *tx).await?;
            tx.commit().await?;
            Ok(RetryLog::Queued(Box::new(row)))
        })
    }
}
