//! Signed outbound webhooks: endpoints, events, durable delivery, reply mode.
//!
//! - [`signing`]: Standard Webhooks signatures, pure.
//! - [`secrets`]: endpoint secrets encrypted at rest.
//! - [`events`]: event types and the `data` of each.
//! - [`Events`]: what other modules call to emit an event; it queues one delivery row per
//!   subscribed endpoint and wakes the worker.
//! - `pump`: turns message status changes into `message.*` events from the status history
//!   (written in the same transaction as the change), and device updates into `device.*`;
//!   `contact.resolved` and `group.*` are queued by the device supervisor itself, through
//!   [`crate::devices::manager::UpdateLog`], before it handles the device's next event.
//! - `worker`: claims due deliveries with a lease and sends them through the hardened client
//!   ([`crate::net`]), retrying on `[webhooks] retry_schedule`.
//! - [`reply`]: the inbound pipeline stage that asks `reply` endpoints for an answer.
//! - `transform`: the request of an endpoint that names a transformation plugin (run once per
//!   delivery, kept for its retries).
//!
//! Decisions a tenant sees:
//! - delivery is at least once and unordered; `webhook-id` is the idempotency key, the same
//!   on every retry and on a manual retry of a log row;
//! - every attempt is a `webhook_logs` row; request and response are kept up to 4 KiB;
//! - `notify` endpoints get every stored inbound message (`message.received`), whatever the
//!   pipeline decides; `reply` endpoints get it in the pipeline after the keyword rules (not
//!   when a rule stopped the chain), once, and their answer is sent to the chat. Other
//!   subscribed events reach `reply` endpoints through the queue like `notify` ones;
//! - a `410 Gone` answer disables the endpoint at once; an endpoint that keeps failing for
//!   `[webhooks] disable_after` (no success since its first failure) is disabled; either is
//!   recorded in the activity log (`webhook.disabled`) and shown on the endpoint
//!   (`disabled_reason`, `disabled_at`). Disabling an endpoint cancels its queued deliveries;
//! - an endpoint never has more than `[webhooks] max_in_flight` attempts running at once.

use crate::messages::media::store::MediaLinks;
use crate::metrics::Metrics;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, WebhooksConfig};
use crate::db::webhooks::{EndpointRow, NewDelivery};
use crate::db::{now_ms, Db, DbError};
use crate::devices::manager::DeviceManager;
use crate::net::{HttpClient, HttpOptions, NetError};

pub mod endpoints;
pub mod events;
mod pump;
pub mod reply;
pub mod secrets;
pub mod signing;
mod transform;
mod worker;

pub use events::EventType;
pub use reply::ReplyStage;
use secrets::SecretBox;
use signing::Secret;

/// How long a rotated-out secret keeps signing.
pub const ROTATION_GRACE_MS: i64 = 24 * 3600 * 1000;
/// Most old secrets kept signing at once.
pub const MAX_OLD_SECRETS: usize = 10;
/// Request and response text kept in a log row.
pub const LOG_TEXT_MAX: usize = 4096;

/// Emits webhook events. Cheap to clone; every module that has something to report holds one.
#[derive(Clone)]
pub struct Events {
    db: Db,
    wake: Arc<Notify>,
    max_attempts: i64,
}

impl Events {
    /// Queues `event` with `data` for every enabled endpoint of `tenant` subscribed to it (and
    /// to `device_id`, for endpoints limited to one device). Returns the deliveries queued.
    /// The log rows of a delivery point at `data.message_id` (or `data.id` for `message.*`).
    pub async fn emit<T: Serialize>(
        &self,
        tenant: i64,
        device_id: Option<i64>,
        event: EventType,
        data: &T,
    ) -> Result<usize, DbError> {
        let list = self.plan(tenant, device_id, event, data).await?;
        if list.is_empty() {
            return Ok(0);
        }
        self.db.enqueue_deliveries(&list).await?;
        self.wake.notify_one();
        Ok(list.len())
    }

    /// The deliveries [`Events::emit`] would queue, for a caller that queues them in the
    /// transaction of the change they report (then calls [`Events::wake`]).
    pub async fn plan<T: Serialize>(
        &self,
        tenant: i64,
        device_id: Option<i64>,
        event: EventType,
        data: &T,
    ) -> Result<Vec<NewDelivery>, DbError> {
        let targets = self.db.webhook_targets(tenant, device_id, event.as_str()).await?;
        if targets.is_empty() {
            return Ok(Vec::new());
        }
        let value = serde_json::to_value(data).unwrap_or_default();
        let payload = events::body(event, now_ms(), &value);
        let webhook_id = signing::new_message_id();
        let message_id = events::message_id_of(event, &value);
        Ok(targets
            .iter()
            .map(|t| NewDelivery {
                user_id: tenant,
                endpoint_id: t.id,
                webhook_id: webhook_id.clone(),
                event: event.as_str().to_string(),
                message_id,
                device_id,
                payload: payload.clone(),
                max_attempts: self.max_attempts,
                due: now_ms(),
            })
            .collect())
    }

    /// Wakes the delivery worker (something was queued by other means).
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

/// The webhook service: endpoint secrets, the delivery worker, reply calls. Cheap to clone.
#[derive(Clone)]
pub struct Webhooks {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    config: WebhooksConfig,
    secrets: SecretBox,
    http: HttpClient,
    events: Events,
    permits: Arc<Semaphore>,
    /// Signs the media links event payloads carry.
    links: MediaLinks,
    metrics: Metrics,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    /// Runs the endpoints' transformations; set once the plugin service exists (it emits its
    /// events through this service, so it is made after it).
    plugins: std::sync::OnceLock<crate::plugins::Plugins>,
}

/// A secret that still signs after a rotation, as stored (sealed) in `old_secrets`.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
struct OldSecret {
    secret: String,
    expires_at: i64,
}

/// Why a secret could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error(transparent)]
    Key(#[from] secrets::KeyError),
    #[error(transparent)]
    Net(#[from] NetError),
}

impl Webhooks {
    /// Sets up the secret key (see [`secrets`]) and the delivery client.
    pub async fn build(
        db: Db,
        config: &Config,
        links: MediaLinks,
        metrics: Metrics,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) -> Result<Webhooks, WebhookError> {
        let wh = config.webhooks.clone();
        let secrets = SecretBox::bootstrap(&db, &wh.secret_key).await?;
        let http =
            HttpClient::new(HttpOptions::new(Duration::from_secs(wh.timeout), wh.allow_private_targets))?;
        let events = Events {
            db: db.clone(),
            wake: Arc::new(Notify::new()),
            max_attempts: wh.retry_schedule.len() as i64,
        };
        let permits = Arc::new(Semaphore::new(wh.concurrency as usize));
        Ok(Webhooks {
            inner: Arc::new(Inner {
                db,
                config: wh,
                secrets,
                http,
                events,
                permits,
                links,
                metrics,
                shutdown,
                tasks,
                plugins: std::sync::OnceLock::new(),
            }),
        })
    }

    /// The plugin service that runs the endpoints' transformations (set once; later calls
    /// change nothing).
    pub fn use_plugins(&self, plugins: crate::plugins::Plugins) {
        let _ = self.inner.plugins.set(plugins);
    }

    /// The handle other modules emit events through.
    pub fn events(&self) -> Events {
        self.inner.events.clone()
    }

    pub fn config(&self) -> &WebhooksConfig {
        &self.inner.config
    }

    /// Starts the delivery worker, the message-event pump and the device-event listener.
    pub fn start(&self, devices: &DeviceManager) {
        let me = self.clone();
        self.inner.tasks.spawn(async move { me.run_worker().await });
        let me = self.clone();
        self.inner.tasks.spawn(async move { me.run_pump().await });
        let me = self.clone();
        let updates = devices.subscribe();
        self.inner.tasks.spawn(async move { me.run_device_events(updates).await });
    }

    /// A new secret, sealed for `tenant`: what to show once and what to store.
    pub fn new_secret(&self, tenant: i64) -> (Secret, String) {
        let secret = Secret::generate();
        let sealed = self.inner.secrets.seal(tenant, secret.to_whsec().as_bytes());
        (secret, sealed)
    }

    /// The rotation of an endpoint's stored secrets: the current one joins the old ones for
    /// [`ROTATION_GRACE_MS`], expired old ones go, and `sealed_new` becomes current.
    pub fn rotated(&self, current: &str, old: &str, sealed_new: String) -> (String, String) {
        let now = now_ms();
        let mut list: Vec<OldSecret> = serde_json::from_str(old).unwrap_or_default();
        list.retain(|o| o.expires_at > now);
        list.insert(0, OldSecret { secret: current.to_string(), expires_at: now + ROTATION_GRACE_MS });
        list.truncate(MAX_OLD_SECRETS);
        (sealed_new, serde_json::to_string(&list).unwrap_or_else(|_| "[]".into()))
    }

    /// The secrets that sign for an endpoint now: the current one first, then old ones still
    /// within their grace.
    pub(crate) fn signing_secrets(&self, endpoint: &EndpointRow) -> Result<Vec<Secret>, secrets::OpenError> {
        let now = now_ms();
        let open = |sealed: &str| -> Result<Secret, secrets::OpenError> {
            let text = self.inner.secrets.open(endpoint.user_id, sealed)?;
            let text = String::from_utf8(text).map_err(|_| secrets::OpenError)?;
            Secret::parse(&text).map_err(|_| secrets::OpenError)
        };
        let mut out = vec![open(&endpoint.secret)?];
        let old: Vec<OldSecret> = serde_json::from_str(&endpoint.old_secrets).unwrap_or_default();
        for o in old.iter().filter(|o| o.expires_at > now) {
            out.push(open(&o.secret)?);
        }
        Ok(out)
    }

    /// Checks an endpoint URL for registration: well-formed, and (unless private targets are
    /// allowed) neither an internal address nor a name that resolves only to internal ones.
    /// A name that does not resolve now is accepted; delivery checks it again.
    pub async fn check_target(&self, url: &str) -> Result<reqwest::Url, NetError> {
        let parsed = self.inner.http.check_url(url)?;
        if self.inner.config.allow_private_targets {
            return Ok(parsed);
        }
        let host =
            parsed.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_string();
        if host.parse::<std::net::IpAddr>().is_ok() {
            return Ok(parsed);
        }
        let port = parsed.port_or_known_default().unwrap_or(443);
        let lookup =
            tokio::time::timeout(Duration::from_secs(3), tokio::net::lookup_host((host.as_str(), port)))
                .await;
        if let Ok(Ok(addrs)) = lookup {
            let addrs: Vec<_> = addrs.collect();
            if !addrs.is_empty() && addrs.iter().all(|a| crate::net::is_forbidden_ip(a.ip())) {
                return Err(NetError::Blocked(format!("{host} (it resolves only to internal addresses)")));
            }
        }
        Ok(parsed)
    }
}

/// `text` cut to at most `max` bytes on a character boundary, marked when cut, ready to be
/// stored (U+0000, which PostgreSQL refuses, replaced).
pub fn truncate(text: &str, max: usize) -> String {
    let text = crate::db::without_nul(text);
    if text.len() <= max {
        return text.into_owned();
    }
    const MARK: &str = "…[truncated]";
    let mut end = max.saturating_sub(MARK.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{MARK}", &text[..end])
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn short_text_is_kept() {
        assert_eq!(truncate("halo", 10), "halo");
        let cut = truncate(&"x".repeat(5000), LOG_TEXT_MAX);
        assert!(cut.len() <= LOG_TEXT_MAX && cut.ends_with("[truncated]"));
    }

    proptest! {
        #[test]
        fn truncation_respects_characters_and_the_cap(s in "\\PC{0,3000}", max in 16usize..2048) {
            let cut = truncate(&s, max);
            prop_assert!(cut.len() <= max);
            prop_assert!(s.starts_with(cut.trim_end_matches("…[truncated]")));
        }
    }
}
