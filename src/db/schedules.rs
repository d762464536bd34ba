//! Scheduled messages (`scheduled_messages`): tenant CRUD, and the scheduler's claims.
//!
//! A row is `pending` with `next_run_at` set until it is done (`sent`, `failed`, `missed`) or
//! `cancelled`; a recurring row stays `pending` and moves `next_run_at` forward after each run.
//! A scheduler takes due rows by setting `claimed_until` (a lease) in one statement, so two
//! processes never take the same row while the lease runs, and a process that died mid-send
//! leaves a lease that runs out and lets another take the row over. Recording a run is
//! conditional on the row still being due at the claimed time, so a late duplicate cannot move
//! a recurring row forward twice.
//!
//! Whether a row is due, whether its lease still runs and when a new lease ends are on the
//! database's clock ([`now_sql`]), so processes whose clocks disagree still agree on who runs
//! a row; a lease end a caller passes counts only as a wait from its own now. `created_at`,
//! `updated_at` and `last_run_at` are the process's clock: they are shown, and decide nobody's
//! claim.

use serde::{Deserialize, Serialize};

use super::cluster::now_sql;
use super::{insert_within_limit, now_ms, reader, writer, Db, DbResult, Dialect};
use crate::resource::Resource;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ScheduleRow {
    pub id: i64,
    pub user_id: i64,
    pub device_id: i64,
    pub device_phone: String,
    pub recipient: String,
    pub text: Option<String>,
    /// [`ScheduledMedia`] as JSON; read it with [`ScheduleRow::media_spec`].
    pub media: Option<String>,
    pub send_at: Option<i64>,
    pub cron: Option<String>,
    pub timezone: String,
    pub status: String,
    pub error: Option<String>,
    pub next_run_at: Option<i64>,
    pub last_run_at: Option<i64>,
    pub claimed_until: Option<i64>,
    pub message_id: Option<i64>,
    pub runs: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A row of a page with the number of rows matching the page's filter.
#[derive(sqlx::FromRow)]
struct Counted {
    #[sqlx(flatten)]
    row: ScheduleRow,
    total: i64,
}

/// Media of a scheduled message, stored as JSON in `scheduled_messages.media` and fetched when
/// the message goes out (so a long-lived recurring message sends the URL's current content).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduledMedia {
    pub url: String,
    /// `image`, `video`, `audio` or `document`; detected from the content when absent.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
}

impl ScheduleRow {
    /// The media to fetch when the message goes out; an error when the stored JSON is not one.
    pub fn media_spec(&self) -> Option<Result<ScheduledMedia, String>> {
        let raw = self.media.as_deref()?;
        Some(serde_json::from_str(raw).map_err(|e| format!("invalid stored media: {e}")))
    }
}

const COLUMNS: &str = "s.id, s.user_id, s.device_id, d.phone AS device_phone, s.recipient, s.text, s.media, \
     s.send_at, s.cron, s.timezone, s.status, s.error, s.next_run_at, s.last_run_at, s.claimed_until, s.message_id, \
     s.runs, s.created_at, s.updated_at";
const FROM: &str = "FROM scheduled_messages s JOIN devices d ON d.id = s.device_id";

/// A scheduled message to store (checked by the caller).
#[derive(Debug, Clone)]
pub struct NewSchedule {
    pub device_id: i64,
    pub recipient: String,
    pub text: Option<String>,
    pub media: Option<String>,
    pub send_at: Option<i64>,
    pub cron: Option<String>,
    pub timezone: String,
    /// The first run (Unix ms).
    pub next_run_at: i64,
}

/// What a run did, to record on the row.
#[derive(Debug, Clone)]
pub struct RunRecord {
    /// `pending` (a recurring row waiting for `next_run_at`), `sent`, `failed` or `missed`.
    pub status: &'static str,
    pub error: Option<String>,
    pub message_id: Option<i64>,
    pub next_run_at: Option<i64>,
    /// Whether the run sent something (sets `last_run_at`).
    pub ran: bool,
}

/// The wait from `now` until `at`, both on the caller's clock: what a statement adds to the
/// database's now for a lease end the caller gave. Never negative, and small enough that the
/// sum cannot overflow.
fn wait_until(at: i64, now: i64) -> i64 {
    at.saturating_sub(now).clamp(0, i64::MAX / 2)
}

impl Db {
    /// Creates a scheduled message unless the tenant already has `limit` pending ones (`None`
    /// = unlimited; the answer is `None` at the limit).
    pub async fn create_schedule(
        &self,
        tenant: i64,
        s: &NewSchedule,
        limit: Option<i64>,
    ) -> DbResult<Option<ScheduleRow>> {
        let id: Option<i64> = insert_within_limit!(self, tenant, Resource::ScheduledMessages, limit, |tx| {
            sqlx::query_scalar(
                "INSERT INTO scheduled_messages (user_id, device_id, recipient, text, media, send_at, cron, \
                 timezone, status, next_run_at, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9, $10, $10) RETURNING id",
            )
            .bind(tenant)
            .bind(s.device_id)
            .bind(&s.recipient)
            .bind(&s.text)
            .bind(&s.media)
            .bind(s.send_at)
            .bind(&s.cron)
            .bind(&s.timezone)
            .bind(s.next_run_at)
            .bind(now_ms())
            .fetch_one(&mut *tx)
            .await?
        })?;
        match id {
            Some(id) => self.schedule(tenant, id).await,
            None => Ok(None),
        }
    }

    pub async fn schedule(&self, tenant: i64, id: i64) -> DbResult<Option<ScheduleRow>> {
        let sql = format!("SELECT {COLUMNS} {FROM} WHERE s.user_id = $1 AND s.id = $2");
        Ok(reader!(self, |p| sqlx::query_as(&sql).bind(tenant).bind(id).fetch_optional(p).await)?)
    }

    /// A page of the tenant's scheduled messages, newest first, optionally of one status.
    pub async fn list_schedules(
        &self,
        tenant: i64,
        devices: Option<&[i64]>,
        status: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> DbResult<(Vec<ScheduleRow>, i64)> {
        // The total comes from the same statement as the page: counted separately, a row
        // changing status between the two (a due message being sent) could be counted but
        // missing from the page, or the other way round.
        let sql = format!(
            "SELECT {COLUMNS}, COUNT(*) OVER () AS total {FROM} WHERE s.user_id = $1 AND ($2 IS NULL OR s.status = $2){} \
             ORDER BY s.id DESC LIMIT $3 OFFSET $4",
            super::device_scope("s.device_id", devices, false)
        );
        let rows: Vec<Counted> = reader!(self, |p| sqlx::query_as(&sql)
            .bind(tenant)
            .bind(status)
            .bind(limit)
            .bind(offset)
            .fetch_all(p)
            .await)?;
        let total = match rows.first() {
            Some(first) => first.total,
            // A page past the end carries no count.
            None => reader!(self, |p| {
                sqlx::query_scalar(&format!(
                "SELECT COUNT(*) FROM scheduled_messages WHERE user_id = $1 AND ($2 IS NULL OR status = $2){}",
                super::device_scope("device_id", devices, false)
            ))
            .bind(tenant)
            .bind(status)
            .fetch_one(p)
            .await
            })?,
        };
        let rows = rows.into_iter().map(|c| c.row).collect();
        Ok((rows, total))
    }

    /// Cancels a pending scheduled message. Returns the row as it is afterwards (`None` when
    /// the tenant has no such row); a row that was not pending is returned unchanged.
    pub async fn cancel_schedule(&self, tenant: i64, id: i64) -> DbResult<Option<ScheduleRow>> {
        writer!(self, |p| sqlx::query(
            "UPDATE scheduled_messages SET status = 'cancelled', next_run_at = NULL, claimed_until = NULL, \
             updated_at = $3 WHERE user_id = $1 AND id = $2 AND status = 'pending'"
        )
        .bind(tenant)
        .bind(id)
        .bind(now_ms())
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        self.schedule(tenant, id).await
    }

    /// Claims up to `limit` due rows (pending, `next_run_at` reached and no running lease, by
    /// the database's clock) for `lease_until - now` (the caller's clock) from the database's
    /// now, counting a run on each; returns their ids, most overdue first. On PostgreSQL rows
    /// another process is claiming right now are skipped (`SKIP LOCKED`); on SQLite the single
    /// writer makes the statement atomic.
    pub async fn system_claim_due_schedules(
        &self,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> DbResult<Vec<i64>> {
        let pick = match self.dialect() {
            Dialect::Postgres => "FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        let db_now = now_sql(self.dialect());
        let due = format!(
            "status = 'pending' AND next_run_at <= {db_now} AND (claimed_until IS NULL OR claimed_until < {db_now})"
        );
        let sql = format!(
            "UPDATE scheduled_messages SET claimed_until = {db_now} + $1, runs = runs + 1 WHERE {due} AND id IN \
             (SELECT id FROM scheduled_messages WHERE {due} ORDER BY next_run_at, id LIMIT $2 {pick}) RETURNING id"
        );
        let lease = wait_until(lease_until, now);
        let mut ids: Vec<(i64,)> =
            writer!(self, |p| sqlx::query_as(&sql).bind(lease).bind(limit).fetch_all(p).await)?;
        ids.sort_unstable();
        Ok(ids.into_iter().map(|(id,)| id).collect())
    }

    /// A scheduled message by id whatever its tenant (the scheduler).
    pub async fn system_schedule(&self, id: i64) -> DbResult<Option<ScheduleRow>> {
        let sql = format!("SELECT {COLUMNS} {FROM} WHERE s.id = $1");
        Ok(reader!(self, |p| sqlx::query_as(&sql).bind(id).fetch_optional(p).await)?)
    }

    /// Records a run of the row claimed for `run_at`. False when the row moved on meanwhile
    /// (cancelled, or recorded by a process that took over the claim).
    pub async fn system_record_run(&self, id: i64, run_at: i64, run: &RunRecord) -> DbResult<bool> {
        let now = now_ms();
        let n = writer!(self, |p| {
            sqlx::query(
            "UPDATE scheduled_messages SET status = $3, error = $4, message_id = COALESCE($5, message_id), \
             next_run_at = $6, last_run_at = CASE WHEN $7 THEN $8 ELSE last_run_at END, claimed_until = NULL, \
             updated_at = $8 WHERE id = $1 AND next_run_at = $2 AND status = 'pending'"
        )
        .bind(id)
        .bind(run_at)
        .bind(run.status)
        .bind(&run.error)
        .bind(run.message_id)
        .bind(run.next_run_at)
        .bind(run.ran)
        .bind(now)
        .execute(p)
        .await
        .map(|r| r.rows_affected())
        })?;
        Ok(n == 1)
    }

    /// Gives up a claim early so the row is tried again from `retry_at` (a transient failure;
    /// the caller's clock: the lease ends that long from the database's now).
    pub async fn system_release_schedule(&self, id: i64, retry_at: i64) -> DbResult<()> {
        let sql = format!(
            "UPDATE scheduled_messages SET claimed_until = {} + $2 WHERE id = $1",
            now_sql(self.dialect())
        );
        let wait = wait_until(retry_at, now_ms());
        writer!(self, |p| sqlx::query(&sql).bind(id).bind(wait).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }
}
