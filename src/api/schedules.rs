//! Scheduled messages: `GET|POST /api/user/scheduled-messages`,
//! `GET|DELETE /api/user/scheduled-messages/{id}` (DELETE cancels).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::devices::resolve_device;
use super::extract::{ApiJson, ApiQuery, Page, Tenant};
use super::messages::{parse_recipient, string_or_number, MAX_TEXT_CHARS};
use super::ts;
use crate::app::AppState;
use crate::db::schedules::{CreateSchedule, NewSchedule, ScheduleRow};
use crate::db::{now_ms, page};
use crate::error::{ApiError, ApiResult};
use crate::limits::{LimitError, Resource};
use crate::messages::media::MediaOptions;
use crate::scheduler::cron::{parse_timezone, CronExpr, DEFAULT_TIMEZONE};
use crate::scheduler::{ScheduledMedia, STATUSES};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_schedules, create_schedule))
        .routes(routes!(get_schedule, cancel_schedule))
}

/// A scheduled message.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ScheduleOut {
    pub id: i64,
    /// The sending device's phone number.
    pub device: String,
    pub device_id: i64,
    /// The recipient: phone number digits, or a group id.
    pub to: String,
    /// The text, or the caption of media.
    pub text: Option<String>,
    /// Media fetched from this URL when the message goes out.
    pub media_url: Option<String>,
    /// `image`, `video`, `audio` or `document` (detected from the content when `null`).
    pub media_type: Option<String>,
    pub filename: Option<String>,
    /// A one-off message's time (RFC 3339, UTC), else `null`.
    pub send_at: Option<String>,
    /// A recurring message's cron expression, else `null`.
    pub cron: Option<String>,
    /// IANA time zone the cron expression is read in.
    pub timezone: String,
    /// `pending`, `sent`, `failed`, `missed` or `cancelled`. A recurring message stays
    /// `pending`; each run's problem shows in `error`.
    pub status: String,
    pub error: Option<String>,
    /// When the next run is due, while `pending`.
    pub next_run_at: Option<String>,
    /// When a run last handed the message to the device's queue.
    pub last_run_at: Option<String>,
    /// The message the last run queued (see `/api/user/chat-history/{id}` for its delivery).
    pub message_id: Option<i64>,
    /// Times a scheduler took the message up to send it.
    pub runs: i64,
    pub created_at: String,
    pub updated_at: String,
}

fn schedule_out(r: ScheduleRow) -> ScheduleOut {
    let media: Option<ScheduledMedia> = r.media.as_deref().and_then(|m| serde_json::from_str(m).ok());
    let (media_url, media_type, filename) = match media {
        Some(m) => (Some(m.url), m.kind, m.filename),
        None => (None, None, None),
    };
    ScheduleOut {
        id: r.id,
        device: r.device_phone,
        device_id: r.device_id,
        to: r.recipient,
        text: r.text,
        media_url,
        media_type,
        filename,
        send_at: r.send_at.map(ts),
        cron: r.cron,
        timezone: r.timezone,
        status: r.status,
        error: r.error,
        next_run_at: r.next_run_at.map(ts),
        last_run_at: r.last_run_at.map(ts),
        message_id: r.message_id,
        runs: r.runs,
        created_at: ts(r.created_at),
        updated_at: ts(r.updated_at),
    }
}

/// A message to send later: give `send_at` (once) or `cron` (recurring), not both.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleIn {
    /// The sending device: id or phone number. Aliases `pengirim`, `from`, `sender`.
    #[serde(alias = "pengirim", alias = "from", alias = "sender", deserialize_with = "string_or_number")]
    #[schema(value_type = String)]
    pub device: String,
    /// Recipient: a phone number in any common form, or a group id. Alias `nomor`.
    #[serde(alias = "nomor", alias = "number", deserialize_with = "string_or_number")]
    #[schema(value_type = String)]
    pub to: String,
    /// The text; with media, its caption (optional, up to 1,024 characters). Aliases `pesan`,
    /// `message`, `caption`.
    #[serde(default, alias = "pesan", alias = "message", alias = "caption")]
    pub text: Option<String>,
    /// When to send, RFC 3339 (`2026-12-01T09:00:00+07:00`); a time without an offset is read
    /// in `timezone`. Must not be in the past.
    #[serde(default)]
    pub send_at: Option<String>,
    /// A recurring schedule: five cron fields (minute hour day-of-month month day-of-week),
    /// e.g. `0 9 * * MON-FRI`, or `@daily`, `@weekly`, ...
    #[serde(default)]
    pub cron: Option<String>,
    /// IANA time zone, default `Asia/Jakarta`.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Send media fetched from this http(s) URL when the message goes out. Alias `url`.
    #[serde(default, alias = "url")]
    pub media_url: Option<String>,
    /// `image`, `video`, `audio` or `document`; detected from the content when left out.
    /// Alias `type`.
    #[serde(default, alias = "type")]
    pub media_type: Option<String>,
    /// The name shown for a document.
    #[serde(default)]
    pub filename: Option<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ScheduleQuery {
    pub limit: Option<i64>,
    pub offset: Option<i64>,
    /// Only messages with this status.
    pub status: Option<String>,
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

/// `send_at`: RFC 3339, or a local time without offset read in `tz`.
fn parse_send_at(raw: &str, tz: Tz) -> ApiResult<DateTime<Utc>> {
    let raw = raw.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&Utc));
    }
    let formats = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M"];
    let naive = formats.iter().find_map(|f| NaiveDateTime::parse_from_str(raw, f).ok());
    let Some(naive) = naive else {
        return Err(ApiError::validation(
            "send_at",
            "must be an RFC 3339 time, e.g. 2026-12-01T09:00:00+07:00",
        ));
    };
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Ok(t.with_timezone(&Utc)),
        LocalResult::None => {
            Err(ApiError::validation("send_at", "this local time does not exist in the time zone"))
        }
    }
}

/// Checks the request and builds the row to store.
fn build_schedule(state: &AppState, device_id: i64, body: ScheduleIn) -> ApiResult<NewSchedule> {
    let to = parse_recipient(state, &body.to, "to")?;
    let tz = match non_empty(body.timezone) {
        Some(name) => parse_timezone(&name).map_err(|e| ApiError::validation("timezone", e))?,
        None => parse_timezone(DEFAULT_TIMEZONE).map_err(|e| ApiError::validation("timezone", e))?,
    };
    let now = Utc::now();
    let (send_at, cron, next_run_at) = match (non_empty(body.send_at), non_empty(body.cron)) {
        (Some(_), Some(_)) => {
            return Err(ApiError::validation("cron", "give either send_at or cron, not both"))
        }
        (None, None) => {
            return Err(ApiError::validation(
                "send_at",
                "give send_at (one time) or cron (a recurring schedule)",
            ))
        }
        (Some(raw), None) => {
            let at = parse_send_at(&raw, tz)?;
            if at < now {
                return Err(ApiError::validation("send_at", "is in the past"));
            }
            (Some(at.timestamp_millis()), None, at.timestamp_millis())
        }
        (None, Some(raw)) => {
            let expr = CronExpr::parse(&raw).map_err(|e| ApiError::validation("cron", e.to_string()))?;
            let next = expr.next_after(tz, now).ok_or_else(|| ApiError::validation("cron", "never runs"))?;
            (None, Some(expr.as_str().to_string()), next.timestamp_millis())
        }
    };
    let media_url = non_empty(body.media_url);
    let (text, media) = match media_url {
        None => {
            if body.media_type.is_some() || body.filename.is_some() {
                return Err(ApiError::validation("media_url", "media_type and filename need a media_url"));
            }
            let text =
                non_empty(body.text).ok_or_else(|| ApiError::validation("text", "must not be empty"))?;
            if text.chars().count() > MAX_TEXT_CHARS {
                return Err(ApiError::validation(
                    "text",
                    format!("must be at most {MAX_TEXT_CHARS} characters"),
                ));
            }
            (Some(text), None)
        }
        Some(url) => {
            let url = crate::net::check_url(&url, state.config.webhooks.allow_private_targets)
                .map_err(|e| ApiError::validation("media_url", e.to_string()))?;
            let kind = non_empty(body.media_type);
            let options =
                MediaOptions::parse(kind.as_deref(), non_empty(body.text.clone()), body.filename.as_deref())
                    .map_err(|e| {
                        let field = match e.field() {
                            Some("type") => "media_type",
                            Some("caption") => "text",
                            _ => "media_url",
                        };
                        ApiError::validation(field, e.to_string())
                    })?;
            let spec = ScheduledMedia {
                url: url.to_string(),
                kind: options.kind().map(|k| k.as_str().to_string()),
                filename: non_empty(body.filename),
            };
            (non_empty(body.text), Some(serde_json::to_string(&spec).map_err(ApiError::internal)?))
        }
    };
    Ok(NewSchedule {
        device_id,
        recipient: to.as_str().to_string(),
        text,
        media,
        send_at,
        cron,
        timezone: tz.name().to_string(),
        next_run_at,
    })
}

fn schedule_id(raw: &str) -> ApiResult<i64> {
    raw.trim().parse().map_err(|_| ApiError::not_found("scheduled message"))
}

/// The tenant's scheduled messages, newest first.
#[utoipa::path(get, path = "/api/user/scheduled-messages", tag = "scheduled", params(ScheduleQuery),
    responses((status = 200, body = Page<ScheduleOut>)))]
async fn list_schedules(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiQuery(q): ApiQuery<ScheduleQuery>,
) -> ApiResult<Json<Page<ScheduleOut>>> {
    let (limit, offset) = page(q.limit, q.offset);
    let status = q.status.filter(|s| !s.is_empty());
    if let Some(s) = &status {
        if !STATUSES.contains(&s.as_str()) {
            return Err(ApiError::validation("status", format!("must be one of {}", STATUSES.join(", "))));
        }
    }
    let (rows, total) = state.db.list_schedules(tenant.id, status.as_deref(), limit, offset).await?;
    Ok(Json(Page { data: rows.into_iter().map(schedule_out).collect(), total, limit, offset }))
}

/// Schedules a message: once at `send_at`, or recurring by `cron` in `timezone`; text, or
/// media by URL (fetched when it goes out). Counts against the package's `scheduled_messages`
/// limit while pending. The message is queued for the device when due even if the device is
/// offline then; it goes out once the device is connected.
#[utoipa::path(post, path = "/api/user/scheduled-messages", tag = "scheduled", request_body = ScheduleIn,
    responses((status = 201, body = ScheduleOut), (status = 404, body = crate::error::ErrorBody),
              (status = 422, body = crate::error::ErrorBody), (status = 429, body = crate::error::ErrorBody)))]
async fn create_schedule(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiJson(body): ApiJson<ScheduleIn>,
) -> ApiResult<(StatusCode, Json<ScheduleOut>)> {
    let device = resolve_device(&state, tenant.id, &body.device).await?;
    let new = build_schedule(&state, device.id, body)?;
    let limit = state.limits.limits(tenant.id, &tenant.package).await?.get(Resource::ScheduledMessages);
    let row = match state.db.create_schedule(tenant.id, &new, limit).await? {
        CreateSchedule::Created(row) => *row,
        CreateSchedule::OverLimit => {
            return Err(LimitError::Exceeded { limit: Resource::ScheduledMessages }.into())
        }
    };
    state.tenants.record(tenant.activity("scheduled.create", format!("scheduled:{}", row.id))).await;
    if row.next_run_at.is_some_and(|t| t - now_ms() < state.config.scheduler.poll_interval_ms as i64) {
        state.scheduler.wake();
    }
    Ok((StatusCode::CREATED, Json(schedule_out(row))))
}

/// One scheduled message.
#[utoipa::path(get, path = "/api/user/scheduled-messages/{id}", tag = "scheduled",
    responses((status = 200, body = ScheduleOut), (status = 404, body = crate::error::ErrorBody)))]
async fn get_schedule(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<ScheduleOut>> {
    let row = state
        .db
        .schedule(tenant.id, schedule_id(&id)?)
        .await?
        .ok_or_else(|| ApiError::not_found("scheduled message"))?;
    Ok(Json(schedule_out(row)))
}

/// Cancels a pending scheduled message (status `cancelled`; cancelling again changes
/// nothing). One already sent, failed or missed cannot be cancelled (409).
#[utoipa::path(delete, path = "/api/user/scheduled-messages/{id}", tag = "scheduled",
    responses((status = 200, body = ScheduleOut), (status = 404, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody)))]
async fn cancel_schedule(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<ScheduleOut>> {
    let id = schedule_id(&id)?;
    let before =
        state.db.schedule(tenant.id, id).await?.ok_or_else(|| ApiError::not_found("scheduled message"))?;
    if before.status == "cancelled" {
        return Ok(Json(schedule_out(before)));
    }
    let after = state
        .db
        .cancel_schedule(tenant.id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("scheduled message"))?;
    if after.status != "cancelled" {
        return Err(ApiError::Conflict(format!("this scheduled message is already {}", after.status)));
    }
    state.tenants.record(tenant.activity("scheduled.cancel", format!("scheduled:{id}"))).await;
    Ok(Json(schedule_out(after)))
}
