//! The scheduled messages a tenant keeps: scheduling (every field checked, the package's
//! `scheduled_messages` limit applied), listing and cancelling, each change recorded in the
//! activity log. The API and the dashboard both call this; the worker sends what is due.

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::cron::{CronExpr, DEFAULT_TIMEZONE};
use super::{ScheduledMedia, Scheduler, STATUSES};
use crate::config::Config;
use crate::db::schedules::{NewSchedule, ScheduleRow};
use crate::db::{now_ms, Db};
use crate::devices::find_device;
use crate::error::{ApiError, ApiResult};
use crate::limits::{LimitsService, Resource};
use crate::messages::check_text;
use crate::messages::media::MediaOptions;
use crate::phone::Recipient;
use crate::tenants::{Tenant, TenantService};
use crate::time::parse_timezone;

/// A message to send later: `send_at` (once) or `cron` (recurring), not both; text, or media
/// by URL with an optional caption in `text`. Empty texts count as not given.
#[derive(Debug, Clone, Default)]
pub struct NewScheduled {
    /// The sending device: id or phone number.
    pub device: String,
    /// A phone number in any common form, or a group id.
    pub to: String,
    pub text: Option<String>,
    /// RFC 3339, or a local time without offset read in `timezone`.
    pub send_at: Option<String>,
    pub cron: Option<String>,
    /// IANA name; default `Asia/Jakarta`.
    pub timezone: Option<String>,
    pub media_url: Option<String>,
    pub media_type: Option<String>,
    pub filename: Option<String>,
}

#[derive(Clone)]
pub struct ScheduleService {
    db: Db,
    limits: LimitsService,
    tenants: TenantService,
    scheduler: Scheduler,
    country_code: String,
    allow_private_targets: bool,
    poll_interval_ms: i64,
}

fn not_found() -> ApiError {
    ApiError::not_found("scheduled message")
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

impl ScheduleService {
    pub fn new(
        db: Db,
        limits: LimitsService,
        tenants: TenantService,
        scheduler: Scheduler,
        config: &Config,
    ) -> Self {
        ScheduleService {
            db,
            limits,
            tenants,
            scheduler,
            country_code: config.whatsapp.default_country_code.clone(),
            allow_private_targets: config.webhooks.allow_private_targets,
            poll_interval_ms: config.scheduler.poll_interval_ms as i64,
        }
    }

    /// A page of the tenant's scheduled messages, newest first, optionally only those with
    /// `status`.
    pub async fn list(
        &self,
        tenant: &Tenant,
        status: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> ApiResult<(Vec<ScheduleRow>, i64)> {
        if let Some(s) = status {
            if !STATUSES.contains(&s) {
                return Err(ApiError::validation(
                    "status",
                    format!("must be one of {}", STATUSES.join(", ")),
                ));
            }
        }
        Ok(self.db.list_schedules(tenant.id, tenant.devices.ids(), status, limit, offset).await?)
    }

    /// One of the tenant's scheduled messages, of a device the acting key sees.
    pub async fn get(&self, tenant: &Tenant, id: i64) -> ApiResult<ScheduleRow> {
        self.db.schedule(tenant.id, id).await?.filter(|s| tenant.sees(s.device_id)).ok_or_else(not_found)
    }

    /// Schedules a message within the package's limit; the worker is woken when it is due
    /// before its next poll.
    pub async fn create(&self, tenant: &Tenant, input: NewScheduled) -> ApiResult<ScheduleRow> {
        let device = find_device(&self.db, &self.country_code, tenant, &input.device).await?;
        let new = self.build(device.id, input)?;
        let row = self
            .limits
            .create_within(tenant.id, &tenant.package, Resource::ScheduledMessages, |limit| {
                self.db.create_schedule(tenant.id, &new, limit)
            })
            .await?;
        self.tenants.record(tenant.activity("scheduled.create", format!("scheduled:{}", row.id))).await;
        if row.next_run_at.is_some_and(|t| t - now_ms() < self.poll_interval_ms) {
            self.scheduler.wake();
        }
        Ok(row)
    }

    /// Cancels a pending message; cancelling a cancelled one changes nothing, one already
    /// sent, failed or missed is a conflict.
    pub async fn cancel(&self, tenant: &Tenant, id: i64) -> ApiResult<ScheduleRow> {
        let before = self.get(tenant, id).await?;
        if before.status == "cancelled" {
            return Ok(before);
        }
        let after = self.db.cancel_schedule(tenant.id, id).await?.ok_or_else(not_found)?;
        if after.status != "cancelled" {
            return Err(ApiError::Conflict(format!("this scheduled message is already {}", after.status)));
        }
        self.tenants.record(tenant.activity("scheduled.cancel", format!("scheduled:{id}"))).await;
        Ok(after)
    }

    /// Checks the input and builds the row to store.
    fn build(&self, device_id: i64, input: NewScheduled) -> ApiResult<NewSchedule> {
        let to = Recipient::parse(&input.to, &self.country_code)
            .map_err(|e| ApiError::validation("to", e.to_string()))?;
        let zone = non_empty(input.timezone).unwrap_or_else(|| DEFAULT_TIMEZONE.to_string());
        let tz = parse_timezone(&zone).map_err(|e| ApiError::validation("timezone", e))?;
        let now = Utc::now();
        let (send_at, cron, next_run_at) = match (non_empty(input.send_at), non_empty(input.cron)) {
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
                let next =
                    expr.next_after(tz, now).ok_or_else(|| ApiError::validation("cron", "never runs"))?;
                (None, Some(expr.as_str().to_string()), next.timestamp_millis())
            }
        };
        let (text, media) = match non_empty(input.media_url) {
            None => {
                if input.media_type.is_some() || input.filename.is_some() {
                    return Err(ApiError::validation(
                        "media_url",
                        "media_type and filename need a media_url",
                    ));
                }
                let text = input.text.unwrap_or_default();
                check_text(&text)?;
                (Some(text), None)
            }
            Some(url) => {
                let url = crate::net::check_url(&url, self.allow_private_targets)
                    .map_err(|e| ApiError::validation("media_url", e.to_string()))?;
                let kind = non_empty(input.media_type);
                let options = MediaOptions::parse(
                    kind.as_deref(),
                    non_empty(input.text.clone()),
                    input.filename.as_deref(),
                )
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
                    filename: non_empty(input.filename),
                };
                (non_empty(input.text), Some(serde_json::to_string(&spec).map_err(ApiError::internal)?))
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
