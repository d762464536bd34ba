//! Keeping media bytes: inbound media is downloaded when it arrives, sent media is kept once
//! WhatsApp took it, both for `[media] retention_days` (or the package's own), and served to
//! the tenant.
//!
//! A download runs on its own task, limited to `[media] download_concurrency` at once, so a
//! slow media server never holds up the pipeline or the next message. A download that fails is
//! tried again (three attempts, growing pauses); then the message's media is marked `failed`
//! with the reason. The state lives on the message (`media_state`), so downloads pending at a
//! crash resume at start; the retention sweep (`crate::retention`) deletes the bytes of old
//! media through [`MediaKeeper::expire`].

use std::sync::Arc;
use std::time::Duration;

use sha2::Digest;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::media::store::{MediaLinks, MediaStore};
use crate::config::{MediaConfig, MediaDownload};
use crate::db::messages::MediaMeta;
use crate::db::{Db, DbError, MessageRow};
use crate::devices::driver::DriverError;
use crate::devices::manager::DeviceManager;

/// Download attempts before the media is marked failed.
const DOWNLOAD_ATTEMPTS: u32 = 3;

/// Why a message's media cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    #[error("the message has no media")]
    None,
    #[error("the media is still being downloaded")]
    Pending,
    #[error("the media could not be downloaded: {0}")]
    Failed(String),
    #[error("the media was deleted after the retention period")]
    Expired,
    #[error("the media of this message is not kept (downloads are off)")]
    Skipped,
    #[error("{0}")]
    Store(String),
}

/// Media bytes with what to serve them as.
#[derive(Debug)]
pub struct MediaBytes {
    pub bytes: Vec<u8>,
    pub mime: String,
    pub filename: Option<String>,
}

struct Inner {
    db: Db,
    store: MediaStore,
    links: MediaLinks,
    devices: DeviceManager,
    config: MediaConfig,
    permits: Semaphore,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

/// The media keeper. Cheap to clone.
#[derive(Clone)]
pub struct MediaKeeper {
    inner: Arc<Inner>,
}

impl MediaKeeper {
    pub fn new(
        db: Db,
        store: MediaStore,
        links: MediaLinks,
        devices: DeviceManager,
        config: &MediaConfig,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) -> MediaKeeper {
        MediaKeeper {
            inner: Arc::new(Inner {
                db,
                store,
                links,
                devices,
                config: config.clone(),
                permits: Semaphore::new(config.download_concurrency),
                shutdown,
                tasks,
            }),
        }
    }

    /// The signer of download links.
    pub fn links(&self) -> &MediaLinks {
        &self.inner.links
    }

    /// The state a newly stored inbound message with this media starts in.
    pub fn initial_state(&self, has_source: bool) -> &'static str {
        match (self.inner.config.download, has_source) {
            (MediaDownload::Always, true) => "pending",
            _ => "skipped",
        }
    }

    /// Downloads pending at the last stop start again.
    pub async fn start(&self) -> Result<usize, DbError> {
        let pending = self.inner.db.pending_media(10_000).await?;
        let n = pending.len();
        for (tenant, id) in pending {
            if let Some(row) = self.inner.db.message(tenant, id).await? {
                self.download(row);
            }
        }
        Ok(n)
    }

    /// Downloads the media of a stored inbound message in the background.
    pub fn download(&self, row: MessageRow) {
        if row.media_state.as_deref() != Some("pending") {
            return;
        }
        let me = self.clone();
        self.inner.tasks.spawn(async move {
            let Ok(_permit) = me.inner.permits.acquire().await else { return };
            me.download_now(row).await;
        });
    }

    async fn download_now(&self, row: MessageRow) {
        let Some(mut meta) = row.media_meta() else { return };
        let Some(source) = meta.source.clone() else { return };
        let mut last_error = String::new();
        for attempt in 0..DOWNLOAD_ATTEMPTS {
            if attempt > 0 {
                let pause = Duration::from_secs(2u64.pow(attempt));
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = self.inner.shutdown.cancelled() => return,
                }
            }
            let Some(session) = self.connected(row.user_id, row.device_id).await else { return };
            let fetched = tokio::select! {
                got = session.download(&meta.kind, &source) => got,
                // Stopping: the download stays pending and starts again after the restart.
                _ = self.inner.shutdown.cancelled() => return,
            };
            match fetched {
                Ok(bytes) if bytes.len() as u64 > self.inner.config.max_bytes => {
                    last_error = format!("the media is larger than {} bytes", self.inner.config.max_bytes);
                    break;
                }
                Ok(bytes) => match self.keep(&row, &mut meta, bytes).await {
                    Ok(()) => return,
                    Err(e) => last_error = e,
                },
                Err(DriverError::NotConnected) => {
                    last_error = "the device disconnected during the download".into();
                }
                Err(e @ DriverError::Invalid(_)) => {
                    last_error = e.to_string();
                    break;
                }
                Err(e) => last_error = e.to_string(),
            }
        }
        tracing::info!(message_id = row.id, error = %last_error, "media download failed");
        meta.error = Some(last_error);
        self.record(row.id, "failed", &meta).await;
    }

    /// The device's session once it is connected; waits for the connection (the device may
    /// be reconnecting). `None` on shutdown, or once the device is deleted (the download then
    /// stays pending and is not tried again by this task).
    async fn connected(
        &self,
        tenant: i64,
        device_id: i64,
    ) -> Option<Arc<dyn crate::devices::driver::Session>> {
        let mut updates = self.inner.devices.subscribe();
        loop {
            if let Some(session) = self.inner.devices.connected(device_id) {
                return Some(session);
            }
            if let Ok(None) = self.inner.db.device(tenant, device_id).await {
                return None;
            }
            tokio::select! {
                _ = updates.recv() => {}
                _ = tokio::time::sleep(Duration::from_secs(30)) => {}
                _ = self.inner.shutdown.cancelled() => return None,
            }
        }
    }

    /// Puts the bytes in the store and marks the media `stored`.
    async fn keep(&self, row: &MessageRow, meta: &mut MediaMeta, bytes: Vec<u8>) -> Result<(), String> {
        let key = MediaStore::key_of(row.user_id, row.id);
        meta.size = Some(bytes.len() as u64);
        meta.sha256 = Some(hex::encode(sha2::Sha256::digest(&bytes)));
        self.inner.store.put(&key, bytes).await?;
        meta.key = Some(key);
        meta.error = None;
        self.record(row.id, "stored", meta).await;
        Ok(())
    }

    /// Keeps the bytes of media a device sent (once WhatsApp took it), for the retention.
    pub async fn keep_sent(&self, row: &MessageRow, bytes: Vec<u8>) {
        let Some(mut meta) = row.media_meta() else { return };
        meta.blob_id = None;
        if let Err(e) = self.keep(row, &mut meta, bytes).await {
            tracing::warn!(message_id = row.id, error = %e, "sent media not kept");
            meta.error = Some(e);
            self.record(row.id, "failed", &meta).await;
        }
    }

    async fn record(&self, id: i64, state: &str, meta: &MediaMeta) {
        let json = serde_json::to_string(meta).unwrap_or_default();
        if let Err(e) = self.inner.db.set_media_state(id, state, &json).await {
            tracing::warn!(message_id = id, error = %e, "media state not recorded");
        }
    }

    /// The bytes of a message's media, with its type and file name.
    pub async fn bytes(&self, row: &MessageRow) -> Result<MediaBytes, Unavailable> {
        let meta = row.media_meta().ok_or(Unavailable::None)?;
        match row.media_state.as_deref() {
            Some("stored") => {}
            Some("pending") => return Err(Unavailable::Pending),
            Some("failed") => return Err(Unavailable::Failed(meta.error.clone().unwrap_or_default())),
            Some("expired") => return Err(Unavailable::Expired),
            Some("skipped") => return Err(Unavailable::Skipped),
            // Queued outbound media: its bytes wait with the queue.
            _ => {
                let blob = match meta.blob_id {
                    Some(b) => self.inner.db.media_blob(row.user_id, b).await.ok().flatten(),
                    None => None,
                };
                let bytes = blob.ok_or(Unavailable::None)?;
                return Ok(MediaBytes { bytes, mime: mime_of(&meta), filename: meta.filename });
            }
        }
        let key = meta.key.clone().ok_or(Unavailable::Expired)?;
        match self.inner.store.get(&key).await.map_err(Unavailable::Store)? {
            Some(bytes) => Ok(MediaBytes { bytes, mime: mime_of(&meta), filename: meta.filename }),
            None => Err(Unavailable::Expired),
        }
    }

    /// Deletes the bytes of a message's stored media and marks it `expired` (the retention
    /// sweep, `crate::retention`). False when the store could not delete them: they stay
    /// `stored` and the next sweep tries again.
    pub async fn expire(&self, tenant: i64, id: i64) -> Result<bool, DbError> {
        let Some(row) = self.inner.db.message(tenant, id).await? else { return Ok(true) };
        let Some(mut meta) = row.media_meta() else { return Ok(true) };
        if let Some(key) = meta.key.take() {
            if let Err(e) = self.inner.store.delete(&key).await {
                tracing::warn!(message_id = id, error = %e, "expired media not deleted");
                return Ok(false);
            }
        }
        self.record(id, "expired", &meta).await;
        Ok(true)
    }
}

fn mime_of(meta: &MediaMeta) -> String {
    meta.mime.clone().filter(|m| !m.is_empty()).unwrap_or_else(|| "application/octet-stream".into())
}
