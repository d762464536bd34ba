//! The send path and the durable per-device outbound queue.
//!
//! A send reserves the monthly allowance, stores the message as `queued` (with its media bytes
//! in `media_blobs`), and wakes the device's sender task. The sender takes queued rows oldest
//! first, sends them through the device session with a paced gap (minimum gap plus jitter, so a
//! burst does not get the number banned), and records `sent` once WhatsApp accepted the message
//! or, after the configured attempts, `failed` with the reason. Because the queue is rows, a
//! restart resumes it.
//!
//! A message's WhatsApp id is chosen and stored before its first attempt, and every attempt
//! sends under it: a retry after a lost ack, or a resend after a crash between the send and its
//! record, is the same message to WhatsApp and to the recipient, never a second one.
//!
//! With several processes on one database, any process accepts a send for a device connected
//! in any of them; only the process holding the device's lease sends. It takes each row with
//! a claim fenced by the lease's epoch and records the outcome under the same fence, so a
//! process that lost the device neither takes nor records anything. A send stored elsewhere
//! wakes the holder through the [`Bus`]; the holder also polls its devices' queues every scan
//! interval, so a lost wake-up only delays a message. A synchronous request served by another
//! process waits by reading the row.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tokio::sync::{oneshot, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::feed::MessageFeed;
use super::keeper::MediaKeeper;
use crate::cluster::{Bus, Signal, Stats};
use crate::config::WhatsappConfig;
use crate::content::Details;
use crate::db::activity::NewActivity;
use crate::db::messages::{Allowance, Claim, Stored};
use crate::db::{now_ms, Db, DbError, DeviceRow, MessageRow, NewMessage};
use crate::devices::driver::{
    Content, DriverError, MediaKind, MessageKey, OutboundMedia, Outgoing, PresenceState, Quote, Session,
};
use crate::devices::manager::{DeviceManager, DeviceStatus, DeviceUpdate};
use crate::limits::{LimitError, LimitsService};
use crate::metrics::Metrics;
use crate::phone::Recipient;
use crate::resource::Resource;

pub use crate::db::messages::MediaMeta;

/// What to send.
pub struct SendRequest {
    pub tenant: i64,
    pub package: String,
    pub device: DeviceRow,
    pub to: Recipient,
    pub text: Option<String>,
    pub media: Option<OutboundMedia>,
    /// A location, contact cards or a poll (the message's kind then), the quoted message,
    /// mentions and the "typing…" to show first.
    pub details: Details,
    /// `api`, `auto_reply`, `plugin`, `webhook`, `scheduled`.
    pub source: &'static str,
    pub idempotency_key: Option<String>,
    /// Answer at once with `queued` instead of waiting for the driver.
    pub asynchronous: bool,
    /// Refuse when the device is not connected (API sends); scheduled sends may queue.
    pub require_connected: bool,
    /// The activity-log entry of this send, recorded with the message (its target, when
    /// empty, is the message).
    pub activity: Option<NewActivity>,
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("the device is not connected")]
    DeviceNotConnected,
    #[error(transparent)]
    Limit(#[from] LimitError),
    #[error(transparent)]
    Db(#[from] DbError),
}

#[derive(Clone, Copy)]
struct Pacing {
    min_gap: Duration,
    jitter: Duration,
    wait: Duration,
    max_attempts: u32,
}

struct Inner {
    db: Db,
    devices: DeviceManager,
    limits: LimitsService,
    /// Where new messages are announced.
    feed: MessageFeed,
    /// Keeps the bytes of sent media.
    keeper: MediaKeeper,
    pacing: Pacing,
    bus: Bus,
    workers: Mutex<HashMap<i64, Arc<Notify>>>,
    waiters: Mutex<HashMap<i64, Vec<oneshot::Sender<()>>>>,
    metrics: Metrics,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

/// The outbound side of every device. Cheap to clone.
#[derive(Clone)]
pub struct Outbound {
    inner: Arc<Inner>,
}

impl Outbound {
    // Each is a separate shared service the queue needs; grouping them would only rename them.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        db: Db,
        devices: DeviceManager,
        limits: LimitsService,
        keeper: MediaKeeper,
        config: &WhatsappConfig,
        metrics: Metrics,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) -> Self {
        let pacing = Pacing {
            min_gap: Duration::from_millis(config.send_min_gap_ms),
            jitter: Duration::from_millis(config.send_jitter_ms),
            wait: Duration::from_secs(config.send_wait_timeout),
            max_attempts: config.send_max_attempts,
        };
        let bus = devices.node().bus().clone();
        Outbound {
            inner: Arc::new(Inner {
                db,
                bus,
                devices,
                limits,
                feed: MessageFeed::default(),
                keeper,
                pacing,
                workers: Mutex::new(HashMap::new()),
                waiters: Mutex::new(HashMap::new()),
                metrics,
                shutdown,
                tasks,
            }),
        }
    }

    /// The gateway's metrics, which the rest of the message path counts in too.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Wakes a device's sender whenever the device connects here, another process queued a
    /// message for a device held here, or the poll of this process's queues finds one waiting.
    pub async fn start(&self) -> Result<(), DbError> {
        let me = self.clone();
        let mut updates = self.inner.devices.subscribe();
        let mut signals = self.inner.bus.subscribe();
        let mut poll = tokio::time::interval(self.inner.devices.node().timing().scan);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let shutdown = self.inner.shutdown.clone();
        self.inner.tasks.spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                tokio::select! {
                    update = updates.recv() => match update {
                        Ok(DeviceUpdate::Status { device_id, status: DeviceStatus::Connected, .. }) => me.wake(device_id),
                        Ok(_) => {}
                        Err(RecvError::Lagged(_)) => me.wake_queued().await,
                        Err(RecvError::Closed) => break,
                    },
                    signal = signals.recv() => match signal {
                        Ok(Signal::Queued(device_id)) if me.holds(device_id) => me.wake(device_id),
                        Ok(Signal::Resync) | Err(RecvError::Lagged(_)) => me.wake_queued().await,
                        Ok(_) => {}
                        Err(RecvError::Closed) => break,
                    },
                    _ = poll.tick() => me.wake_queued().await,
                    _ = shutdown.cancelled() => break,
                }
            }
        });
        Ok(())
    }

    /// Whether this process runs the device's session (holds its lease).
    fn holds(&self, device_id: i64) -> bool {
        self.inner.devices.fence_of(device_id).is_some()
    }

    /// Wakes the senders of this process's devices that have due queued messages.
    async fn wake_queued(&self) {
        let node = self.inner.devices.node().id();
        match self.inner.db.queued_devices_of(&node).await {
            Ok(devices) => devices.into_iter().filter(|d| self.holds(*d)).for_each(|d| self.wake(d)),
            Err(e) => tracing::warn!(error = %e, "cannot read the outbound queues"),
        }
    }

    /// Whether the device can send now: connected here, or connected in another live process.
    async fn connected_anywhere(&self, device_id: i64) -> Result<bool, DbError> {
        if self.inner.devices.connected(device_id).is_some() {
            return Ok(true);
        }
        self.inner.db.cluster_online(device_id).await
    }

    /// Has the device's sender look at its queue: here when this process holds the device,
    /// otherwise through the bus (its holder's poll covers a lost signal).
    async fn queued(&self, device_id: i64) {
        if self.holds(device_id) {
            self.wake(device_id);
        } else {
            self.inner.bus.publish(Signal::Queued(device_id)).await;
        }
    }

    /// Validates, reserves the allowance, stores and queues a message; waits for the driver
    /// unless asked not to.
    pub async fn send(&self, req: SendRequest) -> Result<MessageRow, SendError> {
        let inner = &self.inner;
        // A retry of a request that was accepted gets the first answer, whatever the device
        // or the allowance is now.
        if let Some(key) = &req.idempotency_key {
            if let Some(row) = self.replay(req.tenant, key).await? {
                return Ok(row);
            }
        }
        if req.require_connected && !self.connected_anywhere(req.device.id).await? {
            return Err(SendError::DeviceNotConnected);
        }
        let (row, fresh, blob) = self.store(&req).await?;
        if !fresh {
            // Over the limit, or a repeated idempotency key (the first result stands): nothing
            // was stored or counted, and nothing is sent.
            if let Some(blob_id) = blob {
                let _ = inner.db.delete_media_blob(req.tenant, blob_id).await;
            }
            return row.ok_or(SendError::Limit(LimitError::Exceeded { limit: Resource::MessagesPerMonth }));
        }
        let Some(row) = row else { return Err(SendError::Db(DbError::NotFound)) };
        if req.asynchronous {
            self.queued(row.device_id).await;
            return Ok(row);
        }
        let (tx, mut rx) = oneshot::channel();
        inner.waiters.lock().unwrap_or_else(|e| e.into_inner()).entry(row.id).or_default().push(tx);
        self.queued(row.device_id).await;
        // Released by this process's sender; when another process sends, the row tells.
        let deadline = tokio::time::Instant::now() + inner.pacing.wait;
        loop {
            let tick = tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + REMOTE_POLL));
            tokio::select! {
                _ = &mut rx => break,
                _ = tick => {}
            }
            if tokio::time::Instant::now() >= deadline {
                break;
            }
            if !self.holds(row.device_id)
                && inner.db.message(req.tenant, row.id).await?.is_some_and(|m| m.status != "queued")
            {
                break;
            }
        }
        inner.waiters.lock().unwrap_or_else(|e| e.into_inner()).remove(&row.id);
        Ok(inner.db.message(req.tenant, row.id).await?.unwrap_or(row))
    }

    /// The live session of a connected device.
    pub fn session(&self, device_id: i64) -> Option<Arc<dyn Session>> {
        self.inner.devices.connected(device_id)
    }

    /// Where this process announces the messages it stores.
    pub fn feed(&self) -> &MessageFeed {
        &self.inner.feed
    }

    /// The message an earlier send with this idempotency key stored, if any: what a retry of
    /// that request answers, before any check or work the first request did.
    pub async fn replay(&self, tenant: i64, idempotency_key: &str) -> Result<Option<MessageRow>, DbError> {
        self.inner.db.message_by_idempotency_key(tenant, idempotency_key).await
    }

    /// Stores the message and takes its place in the month's allowance in one transaction;
    /// returns it (`None`: over the limit), whether it is new, and the blob holding its media.
    async fn store(&self, req: &SendRequest) -> Result<(Option<MessageRow>, bool, Option<i64>), SendError> {
        let db = &self.inner.db;
        let (period, limit) = self.inner.limits.message_allowance(req.tenant, &req.package).await?;
        let mut blob = None;
        let (kind, media) = match &req.media {
            Some(m) => {
                let blob_id = db.put_media_blob(req.tenant, &m.bytes).await?;
                blob = Some(blob_id);
                let meta = MediaMeta {
                    kind: m.kind.as_str().into(),
                    mime: Some(m.mime.clone()),
                    size: Some(m.bytes.len() as u64),
                    filename: m.filename.clone(),
                    caption: m.caption.clone(),
                    blob_id: Some(blob_id),
                    key: None,
                    error: None,
                    sha256: None,
                    source: None,
                };
                (m.kind.as_str().to_string(), serde_json::to_string(&meta).ok())
            }
            None => (kind_of(&req.details).to_string(), None),
        };
        let text = req.text.clone().or_else(|| req.media.as_ref().and_then(|m| m.caption.clone()));
        let new = NewMessage {
            user_id: req.tenant,
            device_id: req.device.id,
            direction: "out".into(),
            chat: req.to.jid(),
            sender: req.device.phone.clone(),
            recipient: req.to.as_str().to_string(),
            text,
            kind,
            status: "queued".into(),
            is_group: req.to.is_group(),
            media,
            details: req.details.to_json(),
            source: req.source.into(),
            idempotency_key: req.idempotency_key.clone(),
            ..Default::default()
        };
        let allowance = Allowance { period: &period, limit };
        match db.insert_outbound(&new, Some(allowance), req.activity.as_ref()).await? {
            Stored::New(row) => {
                self.inner.metrics.message(row.user_id, "out", "queued", &row.kind);
                self.inner.feed.publish(row.user_id, row.id);
                Ok((Some(row), true, blob))
            }
            Stored::Existing(row) => Ok((Some(row), false, blob)),
            Stored::OverLimit => Ok((None, false, blob)),
        }
    }

    /// Wakes the device's sender here, starting it if needed.
    pub fn wake(&self, device_id: i64) {
        let (notify, spawn) = {
            let mut workers = self.inner.workers.lock().unwrap_or_else(|e| e.into_inner());
            match workers.get(&device_id) {
                Some(n) => (n.clone(), false),
                None => {
                    let n = Arc::new(Notify::new());
                    workers.insert(device_id, n.clone());
                    (n, true)
                }
            }
        };
        if spawn {
            let me = self.clone();
            let n = notify.clone();
            self.inner.tasks.spawn(async move { me.sender(device_id, n).await });
        }
        notify.notify_one();
    }

    /// One device's sender loop.
    async fn sender(&self, device_id: i64, notify: Arc<Notify>) {
        let inner = &self.inner;
        let idle = Duration::from_secs(30);
        loop {
            if inner.shutdown.is_cancelled() {
                break;
            }
            let (Some(session), Some(fence)) =
                (inner.devices.connected(device_id), inner.devices.fence_of(device_id))
            else {
                if !self.wait(&notify, idle).await {
                    break;
                }
                continue;
            };
            let claim =
                inner.db.claim_queued(device_id, &fence.node, fence.epoch, &session.new_message_id()).await;
            let (id, tenant, wa_id) = match claim {
                Ok(Claim::Taken { id, tenant, wa_id, taken_over }) => {
                    if taken_over {
                        Stats::count(&inner.devices.node().stats().resent_after_takeover);
                        tracing::info!(
                            message_id = id,
                            wa_id,
                            "sending a message again that was in flight when its device changed process; \
                             same WhatsApp id"
                        );
                    }
                    (id, tenant, wa_id)
                }
                Ok(Claim::Retry) => continue,
                Ok(Claim::Empty) => {
                    let due = inner.db.next_queued_due(device_id).await.ok().flatten();
                    let wait = due
                        .map(|d| Duration::from_millis((d - now_ms()).clamp(10, 30_000) as u64))
                        .unwrap_or(idle);
                    if !self.wait(&notify, wait).await {
                        break;
                    }
                    continue;
                }
                Ok(Claim::Fenced) => {
                    Stats::count(&inner.devices.node().stats().fenced_writes);
                    // The device moved to another process; its session here is being stopped.
                    tracing::info!(device_id, "not the device's holder any more; not sending");
                    if !self.wait(&notify, idle).await {
                        break;
                    }
                    continue;
                }
                Err(e) => {
                    tracing::warn!(device_id, error = %e, "cannot read the outbound queue");
                    if !self.wait(&notify, Duration::from_secs(1)).await {
                        break;
                    }
                    continue;
                }
            };
            let Ok(Some(msg)) = inner.db.message(tenant, id).await else { continue };
            let fenced = Some((&*fence.node, fence.epoch));
            // The last check before the wire: a process that could not renew in time (frozen,
            // or cut off from the database) sends nothing, even before its sessions are
            // stopped; the row stays queued under its id for whoever holds the device.
            if !inner.devices.node().within_deadline() {
                tracing::warn!(message_id = id, "past the lease deadline; not sending");
                if !self.wait(&notify, Duration::from_secs(1)).await {
                    break;
                }
                continue;
            }
            let outcome = tokio::select! {
                outcome = self.deliver(&*session, &msg, &wa_id) => outcome,
                // Stopping mid-send: the message stays queued under its id and goes (again)
                // after the restart.
                _ = inner.shutdown.cancelled() => break,
            };
            match outcome {
                Ok(()) => {
                    let keep = match inner.db.finish_outbound(id, "sent", None, fenced).await {
                        Ok(true) => {
                            inner.metrics.message(tenant, "out", "sent", &msg.kind);
                            inner.feed.status_changed(tenant, id);
                            true
                        }
                        // A receipt recorded it first, or the device moved to another process,
                        // which sends it again under the same id and keeps its media then.
                        Ok(false) => {
                            let holds = inner.devices.node().holds(device_id, &fence).await;
                            if !holds {
                                Stats::count(&inner.devices.node().stats().fenced_writes);
                            }
                            holds
                        }
                        Err(e) => {
                            tracing::error!(message_id = id, error = %e, "sent, but could not record it");
                            true
                        }
                    };
                    if keep {
                        self.keep_sent(&msg).await;
                    }
                    self.release_waiters(id);
                    let gap = inner.pacing.min_gap
                        + inner.pacing.jitter.mul_f64(rand::thread_rng().gen_range(0.0..=1.0));
                    if !gap.is_zero() {
                        tokio::select! {
                            _ = tokio::time::sleep(gap) => {}
                            _ = inner.shutdown.cancelled() => break,
                        }
                    }
                }
                Err(DriverError::NotConnected) => {
                    // Stays queued; the sender waits for the device to come back (woken when
                    // it connects, or checking again soon if the drop is not reported yet).
                    if !self.wait(&notify, Duration::from_secs(1)).await {
                        break;
                    }
                    continue;
                }
                Err(e) => {
                    let attempts = msg.attempts + 1;
                    let reason = e.to_string();
                    if attempts >= i64::from(inner.pacing.max_attempts)
                        || matches!(e, DriverError::Invalid(_))
                    {
                        tracing::info!(message_id = id, error = %reason, "send failed");
                        if let Ok(true) = inner.db.finish_outbound(id, "failed", Some(&reason), fenced).await
                        {
                            inner.metrics.message(tenant, "out", "failed", &msg.kind);
                            inner.feed.status_changed(tenant, id);
                            let _ = inner.limits.release_messages(tenant, 1).await;
                            self.drop_blob(&msg).await;
                        }
                        self.release_waiters(id);
                    } else {
                        let due = now_ms() + 1000 * (1 << attempts.min(6));
                        let _ = inner.db.requeue_message(id, due, &reason, &fence.node, fence.epoch).await;
                    }
                }
            }
        }
        self.inner.workers.lock().unwrap_or_else(|e| e.into_inner()).remove(&device_id);
    }

    /// Waits for a wake-up or `timeout`; false on shutdown.
    async fn wait(&self, notify: &Notify, timeout: Duration) -> bool {
        tokio::select! {
            _ = notify.notified() => true,
            _ = tokio::time::sleep(timeout) => true,
            _ = self.inner.shutdown.cancelled() => false,
        }
    }

    async fn deliver(&self, session: &dyn Session, msg: &MessageRow, wa_id: &str) -> Result<(), DriverError> {
        let details = msg.details();
        let content = match msg.media_meta() {
            Some(meta) => {
                let blob = match meta.blob_id {
                    Some(b) => self.inner.db.media_blob(msg.user_id, b).await.ok().flatten(),
                    None => None,
                };
                let Some(bytes) = blob else {
                    return Err(DriverError::Invalid("the media of this message is no longer stored".into()));
                };
                Content::Media(OutboundMedia {
                    kind: MediaKind::parse(&meta.kind).unwrap_or(MediaKind::Document),
                    bytes: Arc::new(bytes),
                    mime: meta.mime.clone().unwrap_or_else(|| "application/octet-stream".into()),
                    filename: meta.filename.clone(),
                    caption: meta.caption.clone(),
                })
            }
            None => content_of(msg, &details)?,
        };
        let message = Outgoing {
            content,
            reply_to: details.reply_to.as_ref().map(|q| Quote {
                key: MessageKey {
                    chat: msg.chat.clone(),
                    wa_id: q.wa_id.clone(),
                    from_me: q.from_me,
                    participant: q
                        .sender
                        .as_deref()
                        .filter(|_| msg.is_group && !q.from_me)
                        .map(crate::phone::user_jid),
                },
                text: q.text.clone(),
            }),
            mentions: details.mentions.iter().map(|m| crate::phone::user_jid(m)).collect(),
            forwarded: details.forwarded,
        };
        // "typing…" before the first attempt only: a retry does not make the chat wait again.
        if let Some(ms) = details.typing_ms.filter(|_| msg.attempts == 0) {
            if session.presence(Some(&msg.chat), PresenceState::Typing).await.is_ok() {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
        }
        session.send(&msg.chat, &message, wa_id).await
    }

    /// Moves the bytes of sent media from the queue to the media store.
    async fn keep_sent(&self, msg: &MessageRow) {
        let Some(blob_id) = msg.media_meta().and_then(|m| m.blob_id) else { return };
        if let Ok(Some(bytes)) = self.inner.db.media_blob(msg.user_id, blob_id).await {
            self.inner.keeper.keep_sent(msg, bytes).await;
        }
        let _ = self.inner.db.delete_media_blob(msg.user_id, blob_id).await;
    }

    async fn drop_blob(&self, msg: &MessageRow) {
        let meta = msg.media_meta();
        if let Some(blob_id) = meta.and_then(|m| m.blob_id) {
            let _ = self.inner.db.delete_media_blob(msg.user_id, blob_id).await;
        }
    }

    fn release_waiters(&self, id: i64) {
        if let Some(list) = self.inner.waiters.lock().unwrap_or_else(|e| e.into_inner()).remove(&id) {
            for tx in list {
                let _ = tx.send(());
            }
        }
    }
}

/// How often a synchronous send served by a process that does not hold the device reads the
/// message to see whether its holder sent it.
const REMOTE_POLL: Duration = Duration::from_millis(100);

/// The kind a message without media is stored as, from what its details carry.
fn kind_of(details: &Details) -> &'static str {
    if details.location.is_some() {
        "location"
    } else if !details.contacts.is_empty() {
        "contact"
    } else if details.poll.is_some() {
        "poll"
    } else {
        "text"
    }
}

/// What a stored message without media sends.
fn content_of(msg: &MessageRow, details: &Details) -> Result<Content, DriverError> {
    let missing = || DriverError::Invalid(format!("the {} of this message is missing", msg.kind));
    Ok(match msg.kind.as_str() {
        "location" => Content::Location(details.location.clone().ok_or_else(missing)?),
        "contact" => Content::Contacts(details.contacts.clone()),
        "poll" => Content::Poll(details.poll.clone().ok_or_else(missing)?),
        _ => Content::Text(msg.text.clone().unwrap_or_default()),
    })
}
