//! Scheduled messages: `GET|POST /api/user/scheduled-messages`,
//! `GET|DELETE /api/user/scheduled-messages/{id}` (DELETE cancels).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{page, ApiJson, ApiQuery, Page, PageQuery, Tenant};
use super::messages::string_or_number;
use super::ts;
use crate::db::schedules::ScheduleRow;
use crate::error::{ApiError, ApiResult};
use crate::scheduler::service::NewScheduled;
use crate::state::AppState;

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

impl From<ScheduleRow> for ScheduleOut {
    fn from(r: ScheduleRow) -> Self {
        let media = r.media_spec().and_then(Result::ok);
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
}

/// A message to send later: give `send_at` (once) or `cron` (recurring), not both.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleIn {
    /// The sending device: id or phone number. Aliases `pengirim`, `from`, `sender`.
    #[serde(alias = "pengirim", alias = "from", alias = "sender", deserialize_with = "string_or_number")]
    #[schema(value_type = super::openapi::schemas::DeviceRef)]
    pub device: String,
    /// Recipient: a phone number in any common form, or a group id. Alias `nomor`.
    #[serde(alias = "nomor", alias = "number", deserialize_with = "string_or_number")]
    #[schema(value_type = super::openapi::schemas::Recipient)]
    pub to: String,
    /// The text (required without `media_url`, up to 65,536 characters); with media, its
    /// caption (optional, up to 1,024 characters). Aliases `pesan`, `message`, `caption`.
    #[serde(default, alias = "pesan", alias = "message", alias = "caption")]
    #[schema(max_length = 65536)]
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
    /// Detected from the content when left out. Alias `type`.
    #[serde(default, alias = "type")]
    #[schema(value_type = Option<super::media::MediaType>)]
    pub media_type: Option<String>,
    /// The name shown for a document.
    #[serde(default)]
    pub filename: Option<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ScheduleQuery {
    /// Documented by [`super::extract::PageQuery`].
    #[param(ignore)]
    pub limit: Option<i64>,
    #[param(ignore)]
    pub offset: Option<i64>,
    /// Only messages with this status.
    #[param(value_type = Option<ScheduleStatus>, inline)]
    pub status: Option<String>,
}

/// Where a scheduled message is (see `ScheduleOut::status`).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // Documents `status`, stored and filtered as text (`STATUSES`).
pub enum ScheduleStatus {
    Pending,
    Sent,
    Failed,
    Missed,
    Cancelled,
}

impl From<ScheduleIn> for NewScheduled {
    fn from(s: ScheduleIn) -> Self {
        NewScheduled {
            device: s.device,
            to: s.to,
            text: s.text,
            send_at: s.send_at,
            cron: s.cron,
            timezone: s.timezone,
            media_url: s.media_url,
            media_type: s.media_type,
            filename: s.filename,
        }
    }
}

fn schedule_id(raw: &str) -> ApiResult<i64> {
    raw.trim().parse().map_err(|_| ApiError::not_found("scheduled message"))
}

/// The tenant's scheduled messages, newest first.
#[utoipa::path(get, path = "/api/user/scheduled-messages", tag = "scheduled", params(PageQuery, ScheduleQuery),
    responses((status = 200, body = Page<ScheduleOut>)))]
async fn list_schedules(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiQuery(q): ApiQuery<ScheduleQuery>,
) -> ApiResult<Json<Page<ScheduleOut>>> {
    let (limit, offset) = page(q.limit, q.offset)?;
    let status = q.status.filter(|s| !s.is_empty());
    let (rows, total) = state.schedules.list(&tenant, status.as_deref(), limit, offset).await?;
    Ok(Json(Page { data: rows.into_iter().map(ScheduleOut::from).collect(), total, limit, offset }))
}

/// Schedules a message: once at `send_at`, or recurring by `cron` in `timezone`; text, or
/// media by URL (fetched when it goes out). Counts against the package's `scheduled_messages`
/// limit while pending. The message is queued for the device when due even if the device is
/// offline then; it goes out once the device is connected.
#[utoipa::path(post, path = "/api/user/scheduled-messages", tag = "scheduled", request_body = ScheduleIn,
    responses((status = 201, body = ScheduleOut), (status = 404, description = "No such device."),
              (status = 429, description = "The package's `scheduled_messages` limit is reached, or the rate limit.")))]
async fn create_schedule(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiJson(body): ApiJson<ScheduleIn>,
) -> ApiResult<(StatusCode, Json<ScheduleOut>)> {
    let row = state.schedules.create(&tenant, body.into()).await?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

/// One scheduled message.
#[utoipa::path(get, path = "/api/user/scheduled-messages/{id}", tag = "scheduled",
    params(("id" = i64, Path, description = "The scheduled message's id.")),
    responses((status = 200, body = ScheduleOut)))]
async fn get_schedule(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<ScheduleOut>> {
    Ok(Json(state.schedules.get(&tenant, schedule_id(&id)?).await?.into()))
}

/// Cancels a pending scheduled message (status `cancelled`; cancelling again changes
/// nothing). One already sent, failed or missed cannot be cancelled (409).
#[utoipa::path(delete, path = "/api/user/scheduled-messages/{id}", tag = "scheduled",
    params(("id" = i64, Path, description = "The scheduled message's id.")),
    responses((status = 200, body = ScheduleOut),
              (status = 409, description = "The message was already sent, failed or missed.")))]
async fn cancel_schedule(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<ScheduleOut>> {
    Ok(Json(state.schedules.cancel(&tenant, schedule_id(&id)?).await?.into()))
}
