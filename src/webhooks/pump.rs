//! Where events come from: message status changes and device updates.
//!
//! Message events are read from `message_status_history`, the table every status change
//! (inbound stored, queued, sent, delivered, read, failed) is written to in the same
//! transaction as the change. The pump takes history rows not yet turned into events, builds
//! the event of each for the tenant's subscribed endpoints and queues the deliveries, marking
//! the rows done in the same transaction: the event of a committed change is never lost and
//! never queued twice, and no send or receive path has to remember to emit anything. A quiet
//! database costs one indexed read per poll.
//!
//! Device events come three ways. `device.qr` comes from the device supervisor's broadcast:
//! it describes live state, so a code the listener misses (it fell behind, or the process was
//! down) costs nothing, the next one is current. `device.status` is planned here
//! ([`UpdateLog::plan`]) and queued by the supervisor in the transaction that stores the new
//! status, only when the write passed the lease check: every stored change has its event, and
//! a process that lost the device queues none. `contact.resolved` and `group.*` report
//! something that happened once: the supervisor hands them to [`UpdateLog::record`]
//! (implemented here) and waits until they are queued before it takes the device's next event,
//! so a flood of them slows the device down instead of losing any. The broadcast listener
//! leaves the last two kinds alone, so each is queued once.

use std::time::Duration;

use tokio::sync::broadcast;

use super::events::{
    self, ContactResolvedData, DeviceQrData, DeviceStatusData, EventType, GroupEventData, MessageData,
};
use super::{signing, Webhooks};
use crate::db::webhooks::NewDelivery;
use crate::db::DbError;
use crate::devices::manager::{DeviceUpdate, UpdateLog};

/// History rows taken per transaction.
const BATCH: i64 = 200;
/// How often the pump looks for new history rows.
const POLL: Duration = Duration::from_millis(100);

impl Webhooks {
    pub(super) async fn run_pump(&self) {
        let shutdown = self.inner.shutdown.clone();
        loop {
            let wait = match self.pump_once().await {
                Ok(n) if n as i64 >= BATCH => Duration::ZERO,
                Ok(_) => POLL,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook event pump failed");
                    Duration::from_secs(1)
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.cancelled() => break,
            }
        }
    }

    /// Turns one batch of status-history rows into deliveries; returns the rows taken.
    pub async fn pump_once(&self) -> Result<usize, DbError> {
        if !self.inner.db.system_has_unhooked_history().await? {
            return Ok(0);
        }
        let max_attempts = self.inner.events.max_attempts;
        let mut queued = 0usize;
        let taken = self
            .inner
            .db
            .system_pump_message_events(BATCH, |item, message, targets| {
                let Some(event) = EventType::for_message_status(&item.status) else { return Vec::new() };
                let targets: Vec<_> =
                    targets.iter().filter(|t| t.takes(event.as_str(), Some(message.device_id))).collect();
                if targets.is_empty() {
                    return Vec::new();
                }
                let data = MessageData::reporting(message, &item.status, item.detail.as_deref())
                    .with_links(&self.inner.links);
                let payload = events::body(event, item.created_at, &data);
                let webhook_id = signing::new_message_id();
                queued += targets.len();
                targets
                    .into_iter()
                    .map(|t| NewDelivery {
                        user_id: message.user_id,
                        endpoint_id: t.id,
                        webhook_id: webhook_id.clone(),
                        event: event.as_str().to_string(),
                        message_id: Some(message.id),
                        device_id: Some(message.device_id),
                        payload: payload.clone(),
                        max_attempts,
                        due: item.created_at.max(crate::db::now_ms()),
                    })
                    .collect()
            })
            .await?;
        if queued > 0 {
            self.inner.events.wake();
        }
        Ok(taken)
    }

    pub(super) async fn run_device_events(&self, mut updates: broadcast::Receiver<DeviceUpdate>) {
        let shutdown = self.inner.shutdown.clone();
        loop {
            let update = tokio::select! {
                u = updates.recv() => u,
                _ = shutdown.cancelled() => break,
            };
            match update {
                // Queued by the supervisor through `UpdateLog` already.
                Ok(u) if u.is_lasting() => {}
                Ok(u) => {
                    if let Err(e) = self.device_event(&u).await {
                        tracing::warn!(error = %e, "could not queue a device webhook event");
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "device updates came faster than webhooks could queue them")
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    }

    /// Queues the webhook event of a device update (none for a pairing code, nor for a
    /// device deleted meanwhile).
    async fn device_event(&self, update: &DeviceUpdate) -> Result<(), DbError> {
        let list = self.device_deliveries(update).await?;
        if !list.is_empty() {
            self.inner.db.enqueue_deliveries(&list).await?;
            self.inner.events.wake();
        }
        Ok(())
    }

    /// The deliveries of a device update's webhook event, not queued yet.
    async fn device_deliveries(&self, update: &DeviceUpdate) -> Result<Vec<NewDelivery>, DbError> {
        let events = &self.inner.events;
        let (tenant, device_id) = match update {
            DeviceUpdate::Status { tenant_id, device_id, .. }
            | DeviceUpdate::Qr { tenant_id, device_id, .. }
            | DeviceUpdate::ContactResolved { tenant_id, device_id, .. }
            | DeviceUpdate::Group { tenant_id, device_id, .. } => (*tenant_id, *device_id),
            DeviceUpdate::PairCode { .. } => return Ok(Vec::new()),
        };
        let Some(device) = self.inner.db.device(tenant, device_id).await? else { return Ok(Vec::new()) };
        match update {
            DeviceUpdate::Status { status, detail, .. } => {
                let data = DeviceStatusData {
                    device_id,
                    device: device.phone,
                    status: status.as_str().into(),
                    detail: detail.clone(),
                };
                events.plan(tenant, Some(device_id), EventType::DeviceStatus, &data).await
            }
            DeviceUpdate::Qr { qr, expires_at, .. } => {
                let data = DeviceQrData {
                    device_id,
                    device: device.phone,
                    qr: qr.clone(),
                    expires_at: crate::time::rfc3339(*expires_at),
                };
                events.plan(tenant, Some(device_id), EventType::DeviceQr, &data).await
            }
            DeviceUpdate::ContactResolved { lid, phone, .. } => {
                let data = ContactResolvedData {
                    device_id,
                    device: device.phone,
                    lid: lid.clone(),
                    phone: phone.clone(),
                };
                events.plan(tenant, Some(device_id), EventType::ContactResolved, &data).await
            }
            DeviceUpdate::Group { event, subject, .. } => {
                let (kind, data) = GroupEventData::of(device_id, device.phone, event, subject.clone());
                events.plan(tenant, Some(device_id), kind, &data).await
            }
            DeviceUpdate::PairCode { .. } => Ok(Vec::new()),
        }
    }
}

#[async_trait::async_trait]
impl UpdateLog for Webhooks {
    async fn record(&self, update: &DeviceUpdate) -> Result<(), String> {
        self.device_event(update).await.map_err(|e| e.to_string())
    }

    async fn plan(&self, update: &DeviceUpdate) -> Result<Vec<NewDelivery>, String> {
        self.device_deliveries(update).await.map_err(|e| e.to_string())
    }

    fn queued(&self) {
        self.inner.events.wake();
    }
}
