//! Session storage of the `whatsapp-web` driver: whatsapp-rust's storage `Backend` on the
//! gateway's own database, one [`SqlxStore`] per device.
//!
//! The five storage traits are implemented here as a thin layer over the `wa_*` tables of
//! [`crate::db::wa_sessions`]: this module converts between the library's types and rows
//! (serde structs as JSON), and maps storage failures to the library's `StoreError`. The
//! behaviour follows the library's `InMemoryBackend`, which `tests/wa_store.rs` runs side by
//! side with this store on SQLite and PostgreSQL.

use std::sync::Arc;

use async_trait::async_trait;
use whatsapp_rust::wacore::stats::StorageResourceReport;
use whatsapp_rust::wacore::store::device::DEVICE_PROPS;
use whatsapp_rust::wacore::store::error::{Result, StoreError};
use whatsapp_rust::wacore::store::traits::{DeviceStore, MsgSecretEntry, MsgSecretStore};
use whatsapp_rust::wacore::store::Device;

use crate::db::wa_sessions::WaMsgSecret;
use crate::db::{Db, DbError, DbResult};
use crate::devices::driver::WriteGuard;

mod appsync;
mod protocol;
mod signal;

/// whatsapp-rust's storage backend for one gateway device, in the gateway's database.
///
/// Cheap to clone; every instance for the same device id sees the same rows. Run at most one
/// client per device at a time: the library assumes it is the only writer of its keys.
#[derive(Clone)]
pub struct SqlxStore {
    db: Db,
    device_id: i64,
    /// Set by [`SqlxStore::retire`]: the keys are dead (logged out) and later saves of the
    /// device row are dropped. Saves hold the read side while they write.
    retired: Arc<tokio::sync::RwLock<bool>>,
    /// Where the LID <-> phone number mappings the library stores are reported to the gateway
    /// (the session's events), whatever taught them: messages, usync answers, lookups. Weak,
    /// so the store never keeps a finished session's channel open.
    lid_reports: Option<tokio::sync::mpsc::WeakSender<crate::devices::driver::DriverEvent>>,
    /// Whether this process may still write the device's rows (see [`WriteGuard`]).
    writes: WriteGuard,
}

/// The database for one write of a session not logged out; see [`SqlxStore::writable`].
struct Writable<'a> {
    db: &'a Db,
    _not_retired: tokio::sync::RwLockReadGuard<'a, bool>,
}

impl std::ops::Deref for Writable<'_> {
    type Target = Db;

    fn deref(&self) -> &Db {
        self.db
    }
}

impl SqlxStore {
    /// The store of the gateway device `device_id` (a row of `devices`).
    pub fn new(db: Db, device_id: i64) -> SqlxStore {
        SqlxStore {
            db,
            device_id,
            retired: Arc::new(tokio::sync::RwLock::new(false)),
            lid_reports: None,
            writes: WriteGuard::default(),
        }
    }

    /// The same store, writing only while `writes` allows it (and, for a leased guard, while
    /// the database sees the lease as the device's holder); a refused write fails like an
    /// unreachable database, so the library keeps what it had and the session ends.
    pub fn guarded(self, writes: WriteGuard) -> SqlxStore {
        let db = match writes.lease() {
            Some((lease, on_refused)) => {
                self.db.fenced(self.device_id, lease.node.clone(), lease.epoch, on_refused)
            }
            None => self.db.clone(),
        };
        SqlxStore { db, writes, ..self }
    }

    /// The database, for a write this process may still make: not after the session was
    /// logged out (its rows are being wiped; a late write would leave dead keys behind), nor
    /// once the process may have lost the device.
    ///
    /// The answer holds the read side of `retired` until it is dropped, at the end of the
    /// statement that writes: `retire` then waits for writes already under way, so none of
    /// them lands after the wipe that follows it.
    fn writable(&self) -> Result<Writable<'_>> {
        // A retire in progress holds (or waits for) the write side: count it as retired.
        let guard = match self.retired.try_read() {
            Ok(guard) if !*guard => guard,
            _ => {
                return Err(StoreError::Connection(
                    format!("device {}: the session was logged out; its keys are gone", self.device_id)
                        .into(),
                ))
            }
        };
        Ok(Writable { db: self.guarded_db()?, _not_retired: guard })
    }

    /// The database, while the process may still write the device's rows.
    fn guarded_db(&self) -> Result<&Db> {
        if self.writes.allows() {
            Ok(&self.db)
        } else {
            Err(StoreError::Connection(
                format!(
                    "device {}: this process may no longer write its session (lease deadline passed)",
                    self.device_id
                )
                .into(),
            ))
        }
    }

    /// The same store, reporting every LID mapping it stores on `events` as
    /// [`DriverEvent::LidMapping`](crate::devices::driver::DriverEvent::LidMapping).
    pub fn reporting_lids(
        self,
        events: tokio::sync::mpsc::Sender<crate::devices::driver::DriverEvent>,
    ) -> SqlxStore {
        SqlxStore { lid_reports: Some(events.downgrade()), ..self }
    }

    /// Reports stored mappings (LID and phone user parts) to the session's events.
    fn report_lids(&self, entries: &[(&str, &str)]) {
        let Some(events) = self.lid_reports.as_ref().and_then(|w| w.upgrade()) else { return };
        for (lid, phone) in entries {
            let event = crate::devices::driver::DriverEvent::LidMapping {
                lid: format!("{lid}@lid"),
                phone: phone.to_string(),
                ack: None,
            };
            // Never waits inside the library's write: with the channel full (the supervisor
            // busy, or closing the session) the report waits on a task of its own, which ends
            // when the session's receiver goes. A closed channel: nobody listens any more.
            match events.try_send(event) {
                Ok(()) | Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => {}
                Err(tokio::sync::mpsc::error::TrySendError::Full(event)) => {
                    let events = events.clone();
                    tokio::spawn(async move {
                        let _ = events.send(event).await;
                    });
                }
            }
        }
    }

    /// Drops every later save of the device row by this store (and its clones), once a save in
    /// flight has finished. For a logged-out session, before its rows are wiped: the client
    /// flushes its device state in a detached task when it stops, and that late save would
    /// otherwise bring the wiped session back as a paired device.
    pub async fn retire(&self) {
        *self.retired.write().await = true;
    }

    /// The gateway device this store belongs to.
    pub fn device_id(&self) -> i64 {
        self.device_id
    }

    /// Deletes every session row of the device in one transaction; see [`wipe`].
    pub async fn wipe(db: &Db, device_id: i64) -> DbResult<()> {
        wipe(db, device_id).await
    }

    /// Whether the device holds paired keys; see [`has_device`].
    pub async fn has_device(db: &Db, device_id: i64) -> DbResult<bool> {
        has_device(db, device_id).await
    }
}

/// Deletes every session row of the device (keys, sessions, sync state, buffers) in one
/// transaction: after a logout the device has to pair again with fresh keys.
pub async fn wipe(db: &Db, device_id: i64) -> DbResult<()> {
    db.wa_wipe(device_id).await
}

/// Whether the device holds keys that completed pairing (its phone number is known), so a
/// client can log in without a QR code. Keys created for a pairing that never finished do not
/// count.
pub async fn has_device(db: &Db, device_id: i64) -> DbResult<bool> {
    db.wa_device_paired(device_id).await
}

/// A storage failure as the library's error: unreachable database or failed statement.
fn db_err(err: DbError) -> StoreError {
    if err.is_unavailable() {
        StoreError::Connection(Box::new(err))
    } else {
        StoreError::Database(Box::new(err))
    }
}

fn json_err(err: serde_json::Error) -> StoreError {
    StoreError::Serialization(Box::new(err))
}

/// A stored `u32` id or count read back from a BIGINT column.
fn to_u32(value: i64, what: &str) -> Result<u32> {
    u32::try_from(value).map_err(|_| StoreError::Validation(format!("stored {what} {value} is out of range")))
}

/// A row count as the library's `u32`.
fn count(rows: u64) -> u32 {
    u32::try_from(rows).unwrap_or(u32::MAX)
}

#[async_trait]
impl DeviceStore for SqlxStore {
    async fn save(&self, device: &Device) -> Result<()> {
        let retired = self.retired.read().await;
        if *retired {
            return Ok(());
        }
        let data = serde_json::to_string(device).map_err(json_err)?;
        let pn = device.pn.as_ref().map(|jid| jid.to_string());
        // Holding the read side: `retire` waits for this save, then later ones are dropped.
        self.guarded_db()?.wa_put_device(self.device_id, pn.as_deref(), &data).await.map_err(db_err)
    }

    async fn load(&self) -> Result<Option<Device>> {
        let Some(data) = self.db.wa_device(self.device_id).await.map_err(db_err)? else {
            return Ok(None);
        };
        let mut device: Device = serde_json::from_str(&data).map_err(json_err)?;
        // Not serialized: give it the defaults of a fresh `Device`, as the in-memory store
        // would hand back; the client builder applies its overrides on top.
        device.device_props = Arc::new(DEVICE_PROPS.clone());
        Ok(Some(device))
    }

    async fn exists(&self) -> Result<bool> {
        self.db.wa_device_exists(self.device_id).await.map_err(db_err)
    }

    /// Persists fresh keys (`Device::new()`) unless the device already has some, so the identity
    /// a pairing starts with survives a crash. Answers the gateway's device id.
    async fn create(&self) -> Result<i32> {
        let id = i32::try_from(self.device_id)
            .map_err(|_| StoreError::Validation(format!("device id {} does not fit i32", self.device_id)))?;
        let data = serde_json::to_string(&Device::new()).map_err(json_err)?;
        self.writable()?.wa_insert_device(self.device_id, None, &data).await.map_err(db_err)?;
        Ok(id)
    }

    async fn resource_report(&self) -> StorageResourceReport {
        // The data lives in the shared database, not in per-session memory.
        StorageResourceReport { memory_bytes: Some(0), ..StorageResourceReport::default() }
    }
}

#[async_trait]
impl MsgSecretStore for SqlxStore {
    async fn put_msg_secrets(&self, entries: Vec<MsgSecretEntry>) -> Result<usize> {
        let rows: Vec<WaMsgSecret<'_>> = entries
            .iter()
            .map(|e| WaMsgSecret {
                chat: &e.chat,
                sender: &e.sender,
                msg_id: &e.msg_id,
                secret: &e.secret,
                expires_at: e.expires_at,
                message_ts: e.message_ts,
            })
            .collect();
        self.writable()?.wa_put_msg_secrets(self.device_id, &rows).await.map_err(db_err)?;
        Ok(entries.len())
    }

    async fn get_msg_secret(&self, chat: &str, sender: &str, msg_id: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.get_msg_secret_with_ts(chat, sender, msg_id).await?.map(|(secret, _)| secret))
    }

    async fn get_msg_secret_with_ts(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> Result<Option<(Vec<u8>, i64)>> {
        self.db.wa_msg_secret(self.device_id, chat, sender, msg_id).await.map_err(db_err)
    }

    async fn delete_expired_msg_secrets(&self, cutoff_timestamp: i64) -> Result<u32> {
        self.writable()?
            .wa_delete_expired_msg_secrets(self.device_id, cutoff_timestamp)
            .await
            .map(count)
            .map_err(db_err)
    }
}
