//! The send path and the durable per-device outbound queue.
//!
//! A send reserves the monthly allowance, stores the message as `queued` (with its media bytes
//! in `media_blobs`), and wakes the device's sender task. The sender takes queued rows oldest
//! first, sends them through the device session with a paced gap (minimum gap plus jitter, so a
//! burst does not get the number banned), and records `sent` with WhatsApp's id or, after the
//! configured attempts, `failed` with the reason. Because the queue is rows, a restart resumes it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::phone::Recipient;
use crate::config::WhatsappConfig;
use crate::db::{now_ms, Db, DbError, DeviceRow, MessageRow, NewMessage};
use crate::devices::driver::{DriverError, MediaKind, OutboundMedia};
use crate::devices::manager::{DeviceManager, DeviceStatus, DeviceUpdate};
use crate::limits::{LimitError, LimitsService};

/// Media metadata stored with a message (`messages.media`, JSON).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MediaMeta {
    pub kind: String,
    pub mime: Option<String>,
    pub size: Option<u64>,
    pub filename: Option<String>,
    pub caption: Option<String>,
    /// Where the bytes wait while the message is queued.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub blob_id: Option<i64>,
}

/// What to send.
pub struct SendRequest {
    pub tenant: i64,
    pub package: String,
    pub device: DeviceRow,
    pub to: Recipient,
    pub text: Option<String>,
    pub media: Option<OutboundMedia>,
    /// `api`, `auto_reply`, `plugin`, `webhook`, `scheduled`.
    pub source: &'static str,
    pub idempotency_key: Option<String>,
    /// Answer at once with `queued` instead of waiting for the driver.
    pub asynchronous: bool,
    /// Refuse when the device is not connected (API sends); scheduled sends may queue.
    pub require_connected: bool,
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
    pacing: Pacing,
    workers: Mutex<HashMap<i64, Arc<Notify>>>,
    waiters: Mutex<HashMap<i64, Vec<oneshot::Sender<()>>>>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

/// The outbound side of every device. Cheap to clone.
#[derive(Clone)]
pub struct Outbound {
    inner: Arc<Inner>,
}

impl Outbound {
    pub fn new(
        db: Db,
        devices: DeviceManager,
        limits: LimitsService,
        config: &WhatsappConfig,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) -> Self {
        let pacing = Pacing {
            min_gap: Duration::from_millis(config.send_min_gap_ms),
            jitter: Duration::from_millis(config.send_jitter_ms),
            wait: Duration::from_secs(config.send_wait_timeout),
            max_attempts: config.send_max_attempts,
        };
        Outbound {
            inner: Arc::new(Inner {
                db,
                devices,
                limits,
                pacing,
                workers: Mutex::new(HashMap::new()),
                waiters: Mutex::new(HashMap::new()),
                shutdown,
                tasks,
            }),
        }
    }

    /// Starts senders for devices with queued messages and wakes a device's sender whenever
    /// it connects.
    pub async fn start(&self) -> Result<(), DbError> {
        for device_id in self.inner.db.devices_with_queued().await? {
            self.wake(device_id);
        }
        let me = self.clone();
        let mut updates = self.inner.devices.subscribe();
        let shutdown = self.inner.shutdown.clone();
        self.inner.tasks.spawn(async move {
            loop {
                tokio::select! {
                    update = updates.recv() => match update {
                        Ok(DeviceUpdate::Status { device_id, status: DeviceStatus::Connected, .. }) => me.wake(device_id),
                        Ok(_) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                            // Missed updates: wake every sender so none waits for a lost signal.
                            let ids: Vec<i64> = me.inner.workers.lock().unwrap_or_else(|e| e.into_inner()).keys().copied().collect();
                            ids.into_iter().for_each(|id| me.wake(id));
                        }
                        Err(_) => break,
                    },
                    _ = shutdown.cancelled() => break,
                }
            }
        });
        Ok(())
    }

    /// Validates, reserves the allowance, stores and queues a message; waits for the driver
    /// unless asked not to.
    pub async fn send(&self, req: SendRequest) -> Result<MessageRow, SendError> {
        let inner = &self.inner;
        if req.require_connected && inner.devices.connected(req.device.id).is_none() {
            return Err(SendError::DeviceNotConnected);
        }
        inner.limits.reserve_messages(req.tenant, &req.package, 1).await?;
        let stored = self.store(&req).await;
        let (row, fresh, blob) = match stored {
            Ok(v) => v,
            Err(e) => {
                let _ = inner.limits.release_messages(req.tenant, 1).await;
                return Err(e.into());
            }
        };
        if !fresh {
            // A repeated idempotency key: the first result stands and nothing is sent.
            let _ = inner.limits.release_messages(req.tenant, 1).await;
            if let Some(blob_id) = blob {
                let _ = inner.db.delete_media_blob(req.tenant, blob_id).await;
            }
            return Ok(row);
        }
        if req.asynchronous {
            self.wake(row.device_id);
            return Ok(row);
        }
        let (tx, rx) = oneshot::channel();
        inner.waiters.lock().unwrap_or_else(|e| e.into_inner()).entry(row.id).or_default().push(tx);
        self.wake(row.device_id);
        let _ = tokio::time::timeout(inner.pacing.wait, rx).await;
        inner.waiters.lock().unwrap_or_else(|e| e.into_inner()).remove(&row.id);
        Ok(inner.db.message(req.tenant, row.id).await?.unwrap_or(row))
    }

    /// Stores the message; returns it, whether it is new, and the blob holding its media.
    async fn store(&self, req: &SendRequest) -> Result<(MessageRow, bool, Option<i64>), DbError> {
        let db = &self.inner.db;
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
                };
                (m.kind.as_str().to_string(), serde_json::to_string(&meta).ok())
            }
            None => ("text".to_string(), None),
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
            source: req.source.into(),
            idempotency_key: req.idempotency_key.clone(),
            ..Default::default()
        };
        let (row, fresh) = db.insert_outbound(&new).await?;
        Ok((row, fresh, blob))
    }

    /// Wakes the device's sender, starting it if needed.
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
            let Some(session) = inner.devices.connected(device_id) else {
                if !self.wait(&notify, idle).await {
                    break;
                }
                continue;
            };
            let next = match inner.db.next_queued(device_id).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(device_id, error = %e, "cannot read the outbound queue");
                    if !self.wait(&notify, Duration::from_secs(1)).await {
                        break;
                    }
                    continue;
                }
            };
            let Some((id, tenant)) = next else {
                let due = inner.db.next_queued_due(device_id).await.ok().flatten();
                let wait = due
                    .map(|d| Duration::from_millis((d - now_ms()).clamp(10, 30_000) as u64))
                    .unwrap_or(idle);
                if !self.wait(&notify, wait).await {
                    break;
                }
                continue;
            };
            let Ok(Some(msg)) = inner.db.message(tenant, id).await else { continue };
            let outcome = self.deliver(&*session, &msg).await;
            match outcome {
                Ok(wa_id) => {
                    if let Err(e) = inner.db.set_message_status(id, "sent", Some(&wa_id), None).await {
                        tracing::error!(message_id = id, error = %e, "sent, but could not record it");
                    }
                    self.drop_blob(&msg).await;
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
                    // Stays queued; the sender waits for the device to come back.
                    continue;
                }
                Err(e) => {
                    let attempts = msg.attempts + 1;
                    let reason = e.to_string();
                    if attempts >= i64::from(inner.pacing.max_attempts)
                        || matches!(e, DriverError::Invalid(_))
                    {
                        tracing::info!(message_id = id, error = %reason, "send failed");
                        let _ = inner.db.set_message_status(id, "failed", None, Some(&reason)).await;
                        let _ = inner.limits.release_messages(tenant, 1).await;
                        self.drop_blob(&msg).await;
                        self.release_waiters(id);
                    } else {
                        let due = now_ms() + 1000 * (1 << attempts.min(6));
                        let _ = inner.db.requeue_message(id, due, &reason).await;
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

    async fn deliver(
        &self,
        session: &dyn crate::devices::driver::Session,
        msg: &MessageRow,
    ) -> Result<String, DriverError> {
        let meta: Option<MediaMeta> = msg.media.as_deref().and_then(|m| serde_json::from_str(m).ok());
        match meta {
            None => session.send_text(&msg.chat, msg.text.as_deref().unwrap_or_default()).await,
            Some(meta) => {
                let blob = match meta.blob_id {
                    Some(b) => self.inner.db.media_blob(msg.user_id, b).await.ok().flatten(),
                    None => None,
                };
                let Some(bytes) = blob else {
                    return Err(DriverError::Invalid("the media of this message is no longer stored".into()));
                };
                let kind = MediaKind::parse(&meta.kind).unwrap_or(MediaKind::Document);
                let media = OutboundMedia {
                    kind,
                    bytes: Arc::new(bytes),
                    mime: meta.mime.clone().unwrap_or_else(|| "application/octet-stream".into()),
                    filename: meta.filename.clone(),
                    caption: meta.caption.clone(),
                };
                session.send_media(&msg.chat, &media).await
            }
        }
    }

    async fn drop_blob(&self, msg: &MessageRow) {
        let meta: Option<MediaMeta> = msg.media.as_deref().and_then(|m| serde_json::from_str(m).ok());
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
