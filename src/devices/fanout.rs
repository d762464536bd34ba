//! A device's live state for the live views of every process.
//!
//! Only the process holding a device runs its session, but a client's Server-Sent Events
//! stream or dashboard page may be served by any process behind the load balancer. The holder
//! publishes each status change, QR code and pairing code on the [`Bus`](crate::cluster::Bus)
//! (PostgreSQL only: on SQLite there is no other process); every other process feeds them into
//! its [`DeviceManager::subscribe_everywhere`] stream. Webhooks and the outbound queue keep
//! listening to this process's own updates ([`DeviceManager::subscribe`]), so nothing is
//! emitted or acted on twice.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::manager::{DeviceManager, DeviceStatus, DeviceUpdate};
use crate::cluster::Signal;

/// The live updates that cross processes, as they travel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
enum Shared {
    Status { device_id: i64, tenant_id: i64, status: DeviceStatus, detail: Option<String> },
    Qr { device_id: i64, tenant_id: i64, qr: String, expires_at: DateTime<Utc> },
    PairCode { device_id: i64, tenant_id: i64, code: String, expires_at: DateTime<Utc> },
}

impl Shared {
    fn of(update: &DeviceUpdate) -> Option<Shared> {
        Some(match update.clone() {
            DeviceUpdate::Status { device_id, tenant_id, status, detail } => {
                Shared::Status { device_id, tenant_id, status, detail }
            }
            DeviceUpdate::Qr { device_id, tenant_id, qr, expires_at } => {
                Shared::Qr { device_id, tenant_id, qr, expires_at }
            }
            DeviceUpdate::PairCode { device_id, tenant_id, code, expires_at } => {
                Shared::PairCode { device_id, tenant_id, code, expires_at }
            }
            DeviceUpdate::ContactResolved { .. } | DeviceUpdate::Group { .. } => return None,
        })
    }

    fn into_update(self) -> DeviceUpdate {
        match self {
            Shared::Status { device_id, tenant_id, status, detail } => {
                DeviceUpdate::Status { device_id, tenant_id, status, detail }
            }
            Shared::Qr { device_id, tenant_id, qr, expires_at } => {
                DeviceUpdate::Qr { device_id, tenant_id, qr, expires_at }
            }
            Shared::PairCode { device_id, tenant_id, code, expires_at } => {
                DeviceUpdate::PairCode { device_id, tenant_id, code, expires_at }
            }
        }
    }
}

/// `<origin node>:<JSON>`, the payload of a [`Signal::Update`].
fn encode(origin: &str, shared: &Shared) -> Option<String> {
    serde_json::to_string(shared).ok().map(|json| format!("{origin}:{json}"))
}

/// The origin and the update a payload carries; `None` for anything unreadable.
fn decode(payload: &str) -> Option<(&str, Shared)> {
    let (origin, json) = payload.split_once(':')?;
    Some((origin, serde_json::from_str(json).ok()?))
}

impl DeviceManager {
    /// Tells the other processes' live views about an update of a device running here.
    pub(super) async fn share(&self, update: &DeviceUpdate) {
        let bus = self.node().bus();
        if !bus.is_shared() {
            return;
        }
        if let Some(payload) = Shared::of(update).and_then(|s| encode(&self.node().id(), &s)) {
            bus.publish(Signal::Update(payload.into())).await;
        }
    }

    /// Feeds an update another process shared into this process's live views (its own are
    /// there already).
    pub(super) fn receive_shared(&self, payload: &str) {
        match decode(payload) {
            Some((origin, shared)) if origin != &*self.node().id() => {
                self.show_everywhere(shared.into_update())
            }
            Some(_) => {}
            None => tracing::debug!("an unreadable device update from another process"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{decode, encode, Shared};
    use crate::devices::manager::DeviceStatus;

    #[test]
    fn shared_updates_survive_the_bus() {
        let status = Shared::Status {
            device_id: 4,
            tenant_id: 2,
            status: DeviceStatus::Connected,
            detail: Some("a: b".into()),
        };
        let payload = encode("node-1", &status).unwrap();
        assert_eq!(decode(&payload), Some(("node-1", status)));
        assert_eq!(decode("node-1:{not json"), None);
        assert_eq!(decode("no origin"), None);
    }
}
