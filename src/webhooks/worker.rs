//! The delivery worker: claims due deliveries with a lease and sends them, signed.
//!
//! Each pass asks which endpoints have due deliveries, then leases up to the free share of
//! each (`[webhooks] max_in_flight` per endpoint, counted in the database so it holds across
//! processes, and `[webhooks] concurrency` per process) and runs every attempt as its own
//! task. The lease lasts the request timeout plus 15 s, so a slow attempt is never taken by a
//! second worker while it still runs. An attempt:
//!
//! - signs the stored body with every secret that currently signs and POSTs it through the
//!   hardened client (no redirects, timeouts, internal addresses refused at connect time);
//! - succeeds on any 2xx; anything else, a timeout, a refused target or a network error is a
//!   failure and is tried again after the next delay of `[webhooks] retry_schedule` (entry
//!   `n` is the wait before attempt `n + 1`) with ±20 % jitter, until the schedule is used up
//!   (then the delivery is `failed`). A `Retry-After` answer (seconds or an HTTP date) moves
//!   the next attempt later, up to an hour or twice the scheduled wait, never earlier;
//! - `410 Gone` disables the endpoint at once; a failure on an endpoint failing since longer
//!   than `[webhooks] disable_after` disables it too.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::Rng;
use reqwest::header::{HeaderMap, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, Response};
use tokio::sync::OwnedSemaphorePermit;

use super::transform::{target_url, Shaped};
use super::{truncate, Webhooks, LOG_TEXT_MAX};
use crate::db::activity::NewActivity;
use crate::db::webhooks::{AttemptRecord, DeliveryRow, EndpointRow, NewLog, NextStep};
use crate::db::{now_ms, DbError};
use crate::net::NetError;
use crate::plugins::runtime::TransformedRequest;

/// Endpoints looked at per pass.
const ENDPOINTS_PER_PASS: i64 = 100;
/// The longest the worker sleeps before looking again.
const IDLE: Duration = Duration::from_secs(1);
/// Finished deliveries are kept this long (for retries from the log), then deleted.
const KEEP_FINISHED_MS: i64 = 7 * 24 * 3600 * 1000;
/// The jitter applied to every scheduled wait.
pub const JITTER: f64 = 0.2;
/// `Retry-After` is honoured up to this long (or twice the scheduled wait, if longer).
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(3600);

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// `success`, `failure`, `timeout` or `blocked`.
    pub kind: &'static str,
    pub http_status: Option<u16>,
    pub error: Option<String>,
    pub response: Option<String>,
    pub retry_after: Option<Duration>,
}

impl Outcome {
    pub fn success(&self) -> bool {
        self.kind == "success"
    }

    pub(crate) fn from_error(e: NetError) -> Outcome {
        let kind = match e {
            NetError::Timeout => "timeout",
            NetError::Blocked(_) => "blocked",
            _ => "failure",
        };
        Outcome { kind, http_status: None, error: Some(e.to_string()), response: None, retry_after: None }
    }
}

/// The wait before the next attempt after `attempts_made` attempts, or `None` when the
/// schedule is used up. `jitter` is in `[-JITTER, JITTER]`.
pub fn next_delay(
    schedule: &[u64],
    attempts_made: usize,
    jitter: f64,
    retry_after: Option<Duration>,
) -> Option<Duration> {
    let scheduled = Duration::from_secs(*schedule.get(attempts_made)?);
    let jittered = scheduled.mul_f64((1.0 + jitter.clamp(-JITTER, JITTER)).max(0.0));
    Some(match retry_after {
        Some(asked) => asked.clamp(jittered, (scheduled * 2).max(RETRY_AFTER_CAP).max(jittered)),
        None => jittered,
    })
}

/// Reads `Retry-After`: delay seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    Some((at.with_timezone(&Utc) - now).to_std().unwrap_or(Duration::ZERO))
}

impl Webhooks {
    pub(super) async fn run_worker(&self) {
        let shutdown = self.inner.shutdown.clone();
        let wake = self.inner.events.wake.clone();
        let mut last_prune: Option<Instant> = None;
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            let started = match self.pass().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook delivery pass failed");
                    0
                }
            };
            if last_prune.is_none_or(|t| t.elapsed() > Duration::from_secs(3600)) {
                last_prune = Some(Instant::now());
                match self.inner.db.system_prune_deliveries(now_ms() - KEEP_FINISHED_MS).await {
                    Ok(n) if n > 0 => tracing::info!(deleted = n, "old webhook deliveries deleted"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "could not delete old webhook deliveries"),
                }
            }
            if started > 0 && self.inner.permits.available_permits() > 0 {
                continue; // More may be due (endpoints past this pass's page).
            }
            // Due work held back by a cap starts when an attempt ends (that wakes the worker);
            // otherwise sleep until the next retry falls due, at most a second.
            let now = now_ms();
            let wait = match self.inner.db.system_next_delivery_at(now).await {
                Ok(Some(at)) => Duration::from_millis((at - now).clamp(1, IDLE.as_millis() as i64) as u64),
                _ => IDLE,
            };
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.cancelled() => break,
            }
        }
    }

    /// One pass: lease what is due and start an attempt for each. Returns the attempts started.
    pub async fn pass(&self) -> Result<usize, DbError> {
        let inner = &self.inner;
        let now = now_ms();
        let lease_until = now + (inner.config.timeout as i64 + 15) * 1000;
        let mut started = 0;
        for endpoint_id in inner.db.system_due_webhooks(now, ENDPOINTS_PER_PASS).await? {
            let free = inner.permits.available_permits() as i64;
            if free == 0 {
                break;
            }
            let max = i64::from(inner.config.max_in_flight);
            for delivery in inner.db.system_claim_deliveries(endpoint_id, now, lease_until, max, free).await?
            {
                let Ok(permit) = inner.permits.clone().try_acquire_owned() else {
                    let _ = inner.db.system_release_delivery(delivery.id, now).await;
                    continue;
                };
                let me = self.clone();
                inner.tasks.spawn(async move { me.attempt(delivery, permit).await });
                started += 1;
            }
        }
        Ok(started)
    }

    async fn attempt(&self, delivery: DeliveryRow, _permit: OwnedSemaphorePermit) {
        let db = &self.inner.db;
        let endpoint = match db.system_webhook(delivery.endpoint_id).await {
            Ok(Some(e)) => e,
            Ok(None) => return, // Deleted meanwhile; its deliveries went with it.
            Err(e) => {
                tracing::warn!(delivery_id = delivery.id, error = %e, "cannot load a webhook endpoint");
                let _ = db.system_release_delivery(delivery.id, now_ms() + 5_000).await;
                return;
            }
        };
        let shaped = self.shape(&endpoint, &delivery).await;
        let started = Instant::now();
        let (outcome, request, _) = match shaped {
            Shaped::Standard => {
                self.post(&endpoint, &delivery.webhook_id, &delivery.payload, None, LOG_TEXT_MAX).await
            }
            Shaped::Transformed(shaped) => match Body::of(&shaped, &endpoint) {
                Ok(body) => {
                    let answer =
                        self.send_signed(&endpoint, &delivery.webhook_id, body, None, LOG_TEXT_MAX).await;
                    self.inner.metrics.webhook_attempt(
                        endpoint.user_id,
                        "notify",
                        answer.0.kind,
                        started.elapsed(),
                    );
                    answer
                }
                Err(why) => {
                    let outcome = Outcome {
                        kind: "failure",
                        http_status: None,
                        error: Some(why),
                        response: None,
                        retry_after: None,
                    };
                    (outcome, String::new(), None)
                }
            },
            Shaped::Unsent(why) => {
                if let Err(e) = self.record_unsent(&endpoint, &delivery, why).await {
                    tracing::warn!(delivery_id = delivery.id, error = %e, "cannot record an unsent webhook delivery");
                    let _ = db.system_release_delivery(delivery.id, now_ms() + 5_000).await;
                }
                self.inner.events.wake();
                return;
            }
            Shaped::Later => {
                let _ = db.system_release_delivery(delivery.id, now_ms() + 1_000).await;
                return;
            }
        };
        let latency_ms = started.elapsed().as_millis() as i64;
        if let Err(e) = self.record(&endpoint, &delivery, &outcome, request, latency_ms).await {
            tracing::warn!(delivery_id = delivery.id, error = %e, "cannot record a webhook attempt");
            let _ = db.system_release_delivery(delivery.id, now_ms() + 5_000).await;
        }
        self.inner.events.wake();
    }

    /// Signs and POSTs `payload` to the endpoint. `timeout` shortens the client's timeout
    /// (reply mode). Returns the outcome, the request as logged, and the answer's body when it
    /// fits in `keep` bytes (the log keeps at most 4 KiB of it).
    pub(crate) async fn post(
        &self,
        endpoint: &EndpointRow,
        webhook_id: &str,
        payload: &str,
        timeout: Option<Duration>,
        keep: usize,
    ) -> (Outcome, String, Option<Vec<u8>>) {
        let started = std::time::Instant::now();
        let body =
            Body { url: endpoint.url.clone(), content_type: "application/json", headers: &[], body: payload };
        let answer = self.send_signed(endpoint, webhook_id, body, timeout, keep).await;
        let mode = if endpoint.mode == "reply" { "reply" } else { "notify" };
        self.inner.metrics.webhook_attempt(endpoint.user_id, mode, answer.0.kind, started.elapsed());
        answer
    }

    /// Signs and POSTs `body` (the standard one or a transformation's) to the endpoint;
    /// [`Webhooks::post`] without the metrics.
    async fn send_signed(
        &self,
        endpoint: &EndpointRow,
        webhook_id: &str,
        body: Body<'_>,
        timeout: Option<Duration>,
        keep: usize,
    ) -> (Outcome, String, Option<Vec<u8>>) {
        let Body { url, content_type, headers, body: payload } = body;
        let timestamp = Utc::now().timestamp();
        let extra: String = headers.iter().map(|(name, value)| format!("{name}: {value}\n")).collect();
        let request_text = truncate(
            &format!(
                "POST {url}\ncontent-type: {content_type}\n{extra}webhook-id: {webhook_id}\n\
                 webhook-timestamp: {timestamp}\n\n{payload}"
            ),
            LOG_TEXT_MAX,
        );
        let secrets = match self.signing_secrets(endpoint) {
            Ok(s) => s,
            Err(e) => {
                let outcome = Outcome {
                    kind: "failure",
                    http_status: None,
                    error: Some(e.to_string()),
                    response: None,
                    retry_after: None,
                };
                return (outcome, request_text, None);
            }
        };
        let signature = super::signing::signature_header(&secrets, webhook_id, timestamp, payload.as_bytes());
        let http = &self.inner.http;
        let request = match http.request(Method::POST, &url) {
            Ok(r) => r,
            Err(e) => return (Outcome::from_error(e), request_text, None),
        };
        let mut request =
            headers.iter().fold(request, |r, (name, value)| r.header(name.as_str(), value.as_str()));
        request = request
            .header(CONTENT_TYPE, content_type)
            .header("webhook-id", webhook_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(payload.to_string());
        if let Some(t) = timeout {
            request = request.timeout(t);
        }
        match http.send(request).await {
            Ok(response) => {
                let (outcome, body) = read_outcome(response, keep).await;
                (outcome, request_text, body)
            }
            Err(e) => (Outcome::from_error(e), request_text, None),
        }
    }

    async fn record(
        &self,
        endpoint: &EndpointRow,
        delivery: &DeliveryRow,
        outcome: &Outcome,
        request: String,
        latency_ms: i64,
    ) -> Result<(), DbError> {
        let config = &self.inner.config;
        let attempts_made = delivery.attempts + 1;
        let gone = outcome.http_status == Some(410);
        let next = if outcome.success() {
            NextStep::Delivered
        } else if gone || attempts_made >= delivery.max_attempts {
            NextStep::Failed
        } else {
            let jitter = rand::thread_rng().gen_range(-JITTER..=JITTER);
            match next_delay(&config.retry_schedule, attempts_made as usize, jitter, outcome.retry_after) {
                Some(d) => NextStep::RetryAt(now_ms() + d.as_millis() as i64),
                None => NextStep::Failed,
            }
        };
        let log = NewLog {
            outcome: outcome.kind.into(),
            http_status: outcome.http_status.map(i64::from),
            latency_ms: Some(latency_ms),
            error: outcome.error.clone(),
            request: Some(request),
            response: outcome.response.clone(),
            ..attempt_log(endpoint, delivery)
        };
        let record = AttemptRecord {
            delivery_id: delivery.id,
            endpoint_id: endpoint.id,
            sent: true,
            success: outcome.success(),
            next,
            log,
        };
        let health = self.inner.db.system_record_attempt(&record).await?;
        tracing::debug!(
            delivery_id = delivery.id,
            attempt = attempts_made,
            outcome = outcome.kind,
            "webhook attempt"
        );
        if !health.enabled || outcome.success() {
            return Ok(());
        }
        let limit_ms = (config.disable_after as i64).saturating_mul(1000);
        let reason = if gone {
            Some("the endpoint answered 410 Gone".to_string())
        } else {
            health.failing_since.filter(|since| now_ms() - since >= limit_ms).map(|since| {
                format!(
                    "every attempt failed since {} (longer than webhooks.disable_after, {} s)",
                    crate::time::rfc3339_ms(since),
                    config.disable_after
                )
            })
        };
        if let Some(reason) = reason {
            self.disable(endpoint.id, &reason).await?;
        }
        Ok(())
    }

    /// Records a delivery its transformation skipped (`why` is `None`) or could not shape:
    /// finished without a request, as `skipped` or `failed`, with a log row that can be retried.
    async fn record_unsent(
        &self,
        endpoint: &EndpointRow,
        delivery: &DeliveryRow,
        why: Option<String>,
    ) -> Result<(), DbError> {
        let (next, outcome) = match why {
            None => (NextStep::Skipped, "skipped"),
            Some(_) => (NextStep::Failed, "transform_failed"),
        };
        let log = NewLog { outcome: outcome.into(), error: why, ..attempt_log(endpoint, delivery) };
        let record = AttemptRecord {
            delivery_id: delivery.id,
            endpoint_id: endpoint.id,
            sent: false,
            success: false,
            next,
            log,
        };
        self.inner.db.system_record_attempt(&record).await?;
        tracing::debug!(delivery_id = delivery.id, outcome, "webhook delivery not sent");
        Ok(())
    }

    /// Disables an endpoint for a reason the tenant sees on it and in the activity log.
    async fn disable(&self, endpoint_id: i64, reason: &str) -> Result<(), DbError> {
        let db = &self.inner.db;
        if let Some(tenant) = db.system_disable_webhook(endpoint_id, reason).await? {
            tracing::info!(endpoint_id, reason, "webhook endpoint disabled");
            db.record_activity(&NewActivity {
                user_id: Some(tenant),
                actor: "system".into(),
                action: "webhook.disabled".into(),
                target: Some(format!("webhook:{endpoint_id}")),
                detail: Some(reason.to_string()),
                ip: None,
            })
            .await?;
        }
        Ok(())
    }
}

/// The log row of an attempt at `delivery`, before what the attempt found is filled in.
fn attempt_log(endpoint: &EndpointRow, delivery: &DeliveryRow) -> NewLog {
    NewLog {
        user_id: delivery.user_id,
        kind: "webhook".into(),
        target: endpoint.url.clone(),
        event: delivery.event.clone(),
        message_id: delivery.message_id,
        attempt: delivery.attempts + 1,
        endpoint_id: Some(endpoint.id),
        delivery_id: Some(delivery.id),
        webhook_id: Some(delivery.webhook_id.clone()),
        device_id: delivery.device_id,
        ..NewLog::default()
    }
}

/// What one request carries: the standard body, or a transformation's request.
pub(crate) struct Body<'a> {
    url: String,
    content_type: &'a str,
    /// Extra headers (a transformation's), checked by the plugin host.
    headers: &'a [(String, String)],
    body: &'a str,
}

impl<'a> Body<'a> {
    /// The request a transformation returned, to the endpoint's URL with its path.
    fn of(shaped: &'a TransformedRequest, endpoint: &EndpointRow) -> Result<Body<'a>, String> {
        Ok(Body {
            url: target_url(&endpoint.url, shaped.path.as_deref())?,
            content_type: &shaped.content_type,
            headers: &shaped.headers,
            body: &shaped.body,
        })
    }
}

/// Classifies a response and reads its body: up to `keep` bytes are kept (for the log), and
/// the body as read is returned too (up to `keep` bytes; `None` when it was longer).
pub(crate) async fn read_outcome(mut response: Response, keep: usize) -> (Outcome, Option<Vec<u8>>) {
    let status = response.status();
    let retry_after = header_retry_after(response.headers());
    let mut body = Vec::new();
    let mut complete = true;
    let mut read_error = None;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = keep.saturating_sub(body.len());
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if chunk.len() > room {
                    complete = false;
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                complete = false;
                read_error =
                    Some(if e.is_timeout() { NetError::Timeout } else { NetError::Request(e.to_string()) });
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&body).into_owned();
    let response_text = (!text.is_empty()).then(|| truncate(&text, LOG_TEXT_MAX));
    let code = status.as_u16();
    let (kind, error) = if status.is_success() {
        ("success", None)
    } else if status.is_redirection() {
        ("failure", Some(format!("HTTP {code}: redirects are not followed")))
    } else {
        ("failure", Some(format!("HTTP {code}")))
    };
    let (kind, error) = match (kind, read_error) {
        ("success", Some(NetError::Timeout)) => ("timeout", Some("the answer's body timed out".to_string())),
        (k, _) => (k, error),
    };
    let outcome = Outcome { kind, http_status: Some(code), error, response: response_text, retry_after };
    (outcome, complete.then_some(body))
}

fn header_retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers.get(RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(|v| parse_retry_after(v, Utc::now()))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const SCHEDULE: [u64; 8] = [0, 5, 300, 1800, 7200, 18000, 36000, 36000];

    #[test]
    fn the_schedule_is_walked_and_then_used_up() {
        assert_eq!(next_delay(&SCHEDULE, 1, 0.0, None), Some(Duration::from_secs(5)));
        assert_eq!(next_delay(&SCHEDULE, 2, 0.0, None), Some(Duration::from_secs(300)));
        assert_eq!(next_delay(&SCHEDULE, 7, 0.0, None), Some(Duration::from_secs(36000)));
        assert_eq!(next_delay(&SCHEDULE, 8, 0.0, None), None);
        assert_eq!(next_delay(&SCHEDULE, 2, 0.2, None), Some(Duration::from_secs(360)));
    }

    #[test]
    fn retry_after_only_ever_waits_longer_and_is_capped() {
        let s = |n| Some(Duration::from_secs(n));
        assert_eq!(next_delay(&SCHEDULE, 1, 0.0, s(120)), s(120), "longer than 5 s: honoured");
        assert_eq!(next_delay(&SCHEDULE, 2, 0.0, s(1)), s(300), "shorter than scheduled: the schedule");
        assert_eq!(next_delay(&SCHEDULE, 1, 0.0, s(86_400)), s(3600), "capped at an hour");
        assert_eq!(next_delay(&SCHEDULE, 6, 0.0, s(86_400)), s(72_000), "or twice a long scheduled wait");
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:30:00 GMT", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    proptest! {
        #[test]
        fn jitter_stays_within_a_fifth(n in 0usize..8, j in -1.0f64..1.0, asked in proptest::option::of(0u64..200_000)) {
            let scheduled = SCHEDULE[n] as f64;
            let d = next_delay(&SCHEDULE, n, j, asked.map(Duration::from_secs)).unwrap().as_secs_f64();
            prop_assert!(d >= scheduled * (1.0 - JITTER) - 1e-6);
            let cap = (scheduled * 2.0).max(RETRY_AFTER_CAP.as_secs_f64()).max(scheduled * (1.0 + JITTER));
            let upper = if asked.is_some() { cap } else { scheduled * (1.0 + JITTER) };
            prop_assert!(d <= upper + 1e-6);
        }
    }
}
