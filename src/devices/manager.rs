//! The device supervisor: one task per live device session.
//!
//! It opens the driver session, turns driver events into live status (kept in memory, written
//! to `devices.status`, and broadcast for Server-Sent Events and webhooks), hands inbound
//! messages and receipts to the [`MessageSink`], and reconnects with exponential backoff and
//! jitter when a connection is lost. A logged-out device stops until it is paired again.
//!
//! A session runs only under the device's lease ([`Node::acquire`]): a run takes the lease
//! before it opens the session and checks it before every reconnect, its status writes carry
//! the lease's [`Fence`], and when WhatsApp reports that another client took the session over
//! the run stops if the lease moved to another process. Which devices this process takes is
//! the balancer's choice (`devices/balancer.rs`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rand::Rng;
use serde::Serialize;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::driver::{
    DeviceKey, Driver, DriverError, DriverEvent, GroupEvent, InboundMessage, ReceiptKind, Session, StopReason,
};
use crate::cluster::{Fence, Node};
use crate::db::devices::StatusChange;
use crate::db::{Db, DeviceRow};

/// A device's connection state as the API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeviceStatus {
    Disconnected,
    Connecting,
    Qr,
    Connected,
    LoggedOut,
}

impl DeviceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceStatus::Disconnected => "disconnected",
            DeviceStatus::Connecting => "connecting",
            DeviceStatus::Qr => "qr",
            DeviceStatus::Connected => "connected",
            DeviceStatus::LoggedOut => "logged_out",
        }
    }

    pub fn parse(s: &str) -> DeviceStatus {
        match s {
            "connecting" => DeviceStatus::Connecting,
            "qr" => DeviceStatus::Qr,
            "connected" => DeviceStatus::Connected,
            "logged_out" => DeviceStatus::LoggedOut,
            _ => DeviceStatus::Disconnected,
        }
    }
}

/// A QR code or pairing code currently offered, with its expiry.
#[derive(Debug, Clone, Serialize)]
pub struct Offered {
    pub code: String,
    pub expires_at: DateTime<Utc>,
}

/// The live state of one device.
#[derive(Debug, Clone, Serialize)]
pub struct LiveStatus {
    pub status: DeviceStatus,
    /// Why the device is in this state (the last error, a logout reason, ...).
    pub detail: Option<String>,
    pub qr: Option<Offered>,
    pub pair_code: Option<Offered>,
    pub since: DateTime<Utc>,
}

impl LiveStatus {
    fn new(status: DeviceStatus, detail: Option<String>) -> Self {
        LiveStatus { status, detail, qr: None, pair_code: None, since: Utc::now() }
    }
}

/// A change broadcast to listeners (SSE streams, webhooks, the outbound sender).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DeviceUpdate {
    Status {
        device_id: i64,
        tenant_id: i64,
        status: DeviceStatus,
        detail: Option<String>,
    },
    Qr {
        device_id: i64,
        tenant_id: i64,
        qr: String,
        expires_at: DateTime<Utc>,
    },
    PairCode {
        device_id: i64,
        tenant_id: i64,
        code: String,
        expires_at: DateTime<Utc>,
    },
    /// The device learned (or changed) the phone number behind a LID; stored messages under
    /// the LID now show the number.
    ContactResolved {
        device_id: i64,
        tenant_id: i64,
        lid: String,
        phone: String,
    },
    /// Something happened to a group the device is in; `subject` is the group's, when known.
    Group {
        device_id: i64,
        tenant_id: i64,
        event: GroupEvent,
        subject: Option<String>,
    },
}

impl DeviceUpdate {
    pub fn device_id(&self) -> i64 {
        match self {
            DeviceUpdate::Status { device_id, .. }
            | DeviceUpdate::Qr { device_id, .. }
            | DeviceUpdate::PairCode { device_id, .. }
            | DeviceUpdate::ContactResolved { device_id, .. }
            | DeviceUpdate::Group { device_id, .. } => *device_id,
        }
    }

    pub fn tenant_id(&self) -> i64 {
        match self {
            DeviceUpdate::Status { tenant_id, .. }
            | DeviceUpdate::Qr { tenant_id, .. }
            | DeviceUpdate::PairCode { tenant_id, .. }
            | DeviceUpdate::ContactResolved { tenant_id, .. }
            | DeviceUpdate::Group { tenant_id, .. } => *tenant_id,
        }
    }

    /// Whether the update must reach webhooks even when a listener falls behind (a status
    /// change, a LID's number learned, a group event): it goes to the [`UpdateLog`] before it
    /// counts as handled. The others are codes that the next one replaces (QR, pairing code):
    /// a listener that misses one sees the current one in the next.
    pub fn is_lasting(&self) -> bool {
        matches!(
            self,
            DeviceUpdate::Status { .. } | DeviceUpdate::ContactResolved { .. } | DeviceUpdate::Group { .. }
        )
    }
}

/// Where lasting device updates ([`DeviceUpdate::is_lasting`]) are recorded before they count
/// as handled (implemented by the webhooks module, which queues them as events). The
/// broadcast that also carries them skips updates for a listener that falls behind; this does
/// not.
#[async_trait]
pub trait UpdateLog: Send + Sync {
    /// Records the update durably; an error means it is not recorded.
    async fn record(&self, update: &DeviceUpdate) -> Result<(), String>;
    /// What recording the update would queue, for the caller to queue in the transaction of
    /// the change it reports; [`UpdateLog::queued`] afterwards.
    async fn plan(&self, update: &DeviceUpdate) -> Result<Vec<crate::db::webhooks::NewDelivery>, String>;
    /// Planned rows were queued by the caller.
    fn queued(&self);
}

/// Attempts to record a lasting update before it is given up on (logged).
const RECORD_ATTEMPTS: u32 = 5;

/// Where inbound messages and receipts go (implemented by the messages module).
#[async_trait]
pub trait MessageSink: Send + Sync {
    /// Stores the messages; `true` when all are stored (then WhatsApp may forget them).
    async fn inbound(&self, device: &DeviceKey, messages: Vec<InboundMessage>) -> bool;
    /// Applies delivery reports to the device's outbound messages.
    async fn receipt(&self, device: &DeviceKey, wa_ids: Vec<String>, kind: ReceiptKind);
    /// Runs again the pipelines of the device's messages that never finished: this process
    /// just took the device (at start, or from a process that stopped or died).
    async fn resume(&self, device: &DeviceKey);
    /// Stores that `lid` (`…@lid`) is `phone` (digits) for the device and gives the messages
    /// stored under the LID the number. `Ok(true)` when the mapping is new or changed.
    async fn lid_mapping(&self, device: &DeviceKey, lid: &str, phone: &str) -> Result<bool, String>;
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("the device is already connected")]
    AlreadyConnected,
    #[error("the device is not connected")]
    NotConnected,
    #[error("no QR code is available yet; try again in a moment")]
    NoQrYet,
    #[error("the device's session runs in another gateway process; try again in a moment")]
    OtherProcess,
    #[error(transparent)]
    Driver(#[from] DriverError),
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
}

/// What a status change says about the device's link to the phone.
#[derive(Debug, Clone, Copy)]
enum Link<'a> {
    Unchanged,
    /// Linked; with the account's JID when it was just paired.
    Paired(Option<&'a str>),
    /// Unlinked (logged out): it needs pairing again.
    Unpaired,
}

struct Slot {
    live: LiveStatus,
    session: Option<Arc<dyn Session>>,
    /// The running supervision task: its number and its cancellation.
    run: Option<(u64, CancellationToken)>,
    /// The lease the running task holds, once it took it.
    fence: Option<Fence>,
    /// A logout is under way: its task was taken out of the slot, and nothing may start one
    /// again until the logout has set the status and given the lease up.
    logging_out: bool,
}

impl Slot {
    fn new(live: LiveStatus) -> Slot {
        Slot { live, session: None, run: None, fence: None, logging_out: false }
    }

    /// Whether a supervision task runs and has not been told to stop.
    fn running(&self) -> bool {
        self.run.as_ref().is_some_and(|(_, c)| !c.is_cancelled())
    }
}

struct Inner {
    driver: Arc<dyn Driver>,
    db: Db,
    node: Node,
    reconnect_min: Duration,
    reconnect_max: Duration,
    slots: Mutex<HashMap<i64, Slot>>,
    updates: broadcast::Sender<DeviceUpdate>,
    /// This process's updates and those other processes shared, for live views.
    everywhere: broadcast::Sender<DeviceUpdate>,
    sink: OnceLock<Arc<dyn MessageSink>>,
    log: OnceLock<Arc<dyn UpdateLog>>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    next_run: std::sync::atomic::AtomicU64,
}

/// Supervises every device session of this process. Cheap to clone.
#[derive(Clone)]
pub struct DeviceManager {
    inner: Arc<Inner>,
}

impl DeviceManager {
    pub fn new(
        driver: Arc<dyn Driver>,
        db: Db,
        node: Node,
        reconnect: (Duration, Duration),
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) -> Self {
        let (updates, _) = broadcast::channel(1024);
        let (everywhere, _) = broadcast::channel(1024);
        DeviceManager {
            inner: Arc::new(Inner {
                driver,
                db,
                node,
                reconnect_min: reconnect.0,
                reconnect_max: reconnect.1,
                slots: Mutex::new(HashMap::new()),
                updates,
                everywhere,
                sink: OnceLock::new(),
                log: OnceLock::new(),
                shutdown,
                tasks,
                next_run: std::sync::atomic::AtomicU64::new(1),
            }),
        }
    }

    /// Connects the message side; set once at start-up, before any session opens.
    pub fn set_sink(&self, sink: Arc<dyn MessageSink>) {
        let _ = self.inner.sink.set(sink);
    }

    /// Connects the record of lasting updates; set once at start-up, before any session opens.
    pub fn set_update_log(&self, log: Arc<dyn UpdateLog>) {
        let _ = self.inner.log.set(log);
    }

    /// Status changes and QR codes of the devices running in this process, as they happen
    /// (what webhooks and the outbound queue act on).
    pub fn subscribe(&self) -> broadcast::Receiver<DeviceUpdate> {
        self.inner.updates.subscribe()
    }

    /// Like [`DeviceManager::subscribe`], plus the status changes, QR codes and pairing
    /// codes of devices running in other processes on the same database (for live views).
    pub fn subscribe_everywhere(&self) -> broadcast::Receiver<DeviceUpdate> {
        self.inner.everywhere.subscribe()
    }

    /// Shows an update from another process in this process's live views.
    pub(super) fn show_everywhere(&self, update: DeviceUpdate) {
        let _ = self.inner.everywhere.send(update);
    }

    /// Broadcasts an update of a device running here: to this process's listeners and live
    /// views, and to the other processes' live views.
    async fn broadcast(&self, update: DeviceUpdate) {
        let _ = self.inner.everywhere.send(update.clone());
        self.share(&update).await;
        let _ = self.inner.updates.send(update);
    }

    /// This process as a node of the cluster.
    pub fn node(&self) -> &Node {
        &self.inner.node
    }

    /// Starts the device's session unless one is running: it resumes a paired session or
    /// begins pairing, once it holds the device's lease (it ends at once when another live
    /// process holds it).
    pub fn start(&self, device: &DeviceRow) {
        let key = DeviceKey {
            device_id: device.id,
            tenant_id: device.user_id,
            phone: device.phone.clone(),
            writes: Default::default(),
        };
        let cancel = {
            let mut slots = self.lock();
            let slot = slots.entry(device.id).or_insert_with(|| {
                Slot::new(LiveStatus::new(DeviceStatus::parse(&device.status), device.status_detail.clone()))
            });
            if slot.running() {
                return;
            }
            let cancel = self.inner.shutdown.child_token();
            let run_id = self.inner.next_run.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            slot.run = Some((run_id, cancel.clone()));
            (run_id, cancel)
        };
        let manager = self.clone();
        self.inner.tasks.spawn(async move { manager.run(key, cancel.0, cancel.1).await });
    }

    /// Stops the device's session, keeping its keys; the task gives the lease up as it ends.
    pub fn stop(&self, device_id: i64) {
        if let Some(slot) = self.lock().get_mut(&device_id) {
            if let Some((_, run)) = &slot.run {
                run.cancel();
            }
        }
    }

    /// Stops the session and waits (up to `wait`) until its task ended and gave the lease
    /// up: a device handed to another process is closed here before the other opens it.
    pub async fn hand_over(&self, device_id: i64, wait: Duration) {
        self.stop(device_id);
        let deadline = tokio::time::Instant::now() + wait;
        while self.lock().get(&device_id).is_some_and(|s| s.run.is_some())
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops every session at once (this process can no longer prove it holds its leases).
    pub fn stop_all(&self) {
        for slot in self.lock().values() {
            if let Some((_, run)) = &slot.run {
                run.cancel();
            }
        }
    }

    /// The devices whose task runs here, with the lease each holds (`None` while it is still
    /// taking it).
    pub fn running(&self) -> Vec<(i64, Option<Fence>)> {
        self.lock().iter().filter(|(_, s)| s.running()).map(|(id, s)| (*id, s.fence.clone())).collect()
    }

    /// Whether a task of this process runs the device, and under which lease.
    pub fn fence_of(&self, device_id: i64) -> Option<Fence> {
        self.lock().get(&device_id).filter(|s| s.running()).and_then(|s| s.fence.clone())
    }

    /// Whether a task for the device still exists (running or stopping).
    pub fn has_task(&self, device_id: i64) -> bool {
        self.lock().get(&device_id).is_some_and(|s| s.run.is_some() || s.logging_out)
    }

    /// Whether the device's task was told to stop and has not ended yet.
    pub fn stopping(&self, device_id: i64) -> bool {
        self.lock().get(&device_id).is_some_and(|s| s.run.is_some() && !s.running())
    }

    /// Whether any task still runs (stopping ones included).
    pub fn any_running(&self) -> bool {
        self.lock().values().any(|s| s.run.is_some())
    }

    /// Stops the session and forgets the device (it was deleted).
    pub async fn remove(&self, device_id: i64) {
        self.stop(device_id);
        let session = self.lock().remove(&device_id).and_then(|s| s.session);
        if let Some(s) = session {
            s.close().await;
        }
        if let Err(e) = self.inner.driver.forget(device_id).await {
            tracing::warn!(device_id, error = %e, "could not delete the session keys of a removed device");
        }
    }

    /// The live status; `None` when this process has never seen the device.
    pub fn live(&self, device_id: i64) -> Option<LiveStatus> {
        self.lock().get(&device_id).map(|s| s.live.clone())
    }

    /// The live status while a task of this process runs the device; otherwise the stored
    /// one, which the process that ran it last wrote.
    pub fn status_of(&self, device: &DeviceRow) -> LiveStatus {
        let here = self.lock().get(&device.id).filter(|s| s.run.is_some()).map(|s| s.live.clone());
        here.unwrap_or_else(|| LiveStatus {
            since: chrono::DateTime::from_timestamp_millis(device.updated_at).unwrap_or_else(Utc::now),
            ..LiveStatus::new(DeviceStatus::parse(&device.status), device.status_detail.clone())
        })
    }

    /// The session of a connected device.
    pub fn connected(&self, device_id: i64) -> Option<Arc<dyn Session>> {
        let slots = self.lock();
        let slot = slots.get(&device_id)?;
        (slot.live.status == DeviceStatus::Connected).then(|| slot.session.clone()).flatten()
    }

    /// The QR code to show, starting a new pairing round when none is running. Waits a few
    /// seconds for the first code.
    pub async fn qr(&self, device: &DeviceRow) -> Result<Offered, DeviceError> {
        let mut updates = self.subscribe();
        match self.live(device.id) {
            Some(l) if l.status == DeviceStatus::Connected => return Err(DeviceError::AlreadyConnected),
            Some(LiveStatus { qr: Some(qr), .. }) if qr.expires_at > Utc::now() => return Ok(qr),
            _ => {}
        }
        self.require_here(device.id).await?;
        self.start(device);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(l) = self.live(device.id) {
                if l.status == DeviceStatus::Connected {
                    return Err(DeviceError::AlreadyConnected);
                }
                if let Some(qr) = l.qr.filter(|q| q.expires_at > Utc::now()) {
                    return Ok(qr);
                }
            }
            match tokio::time::timeout_at(deadline, updates.recv()).await {
                Err(_) => return Err(DeviceError::NoQrYet),
                Ok(Err(broadcast::error::RecvError::Closed)) => return Err(DeviceError::NoQrYet),
                Ok(_) => {}
            }
        }
    }

    /// Requests a phone-number pairing code for an unpaired device.
    pub async fn pair_code(&self, device: &DeviceRow, phone: &str) -> Result<Offered, DeviceError> {
        if self.live(device.id).is_some_and(|l| l.status == DeviceStatus::Connected) {
            return Err(DeviceError::AlreadyConnected);
        }
        self.require_here(device.id).await?;
        self.qr(device).await?;
        let session =
            self.lock().get(&device.id).and_then(|s| s.session.clone()).ok_or(DeviceError::NoQrYet)?;
        let code = session.request_pair_code(phone).await?;
        let offered = Offered { code, expires_at: Utc::now() + chrono::Duration::seconds(180) };
        Ok(offered)
    }

    /// Logs the device out (unlinks it from the phone) and clears its keys; no reconnect.
    pub async fn logout(&self, device: &DeviceRow) -> Result<(), DeviceError> {
        // Take the run out of the slot at once (it no longer reconnects, sets the status or
        // deletes keys: this logout does, and a reset's new run may follow), but cancel it only
        // after the session logged out: cancelling closes the connection, and a logout under
        // a closed connection never tells WhatsApp that the device left.
        // Until it is done the device counts as running here, so the balancer does not start
        // it again between taking the task out and giving the lease up.
        let (session, run, fence) = match self.lock().get_mut(&device.id) {
            Some(slot) => {
                slot.logging_out = true;
                (slot.session.clone(), slot.run.take(), slot.fence.take())
            }
            None => (None, None, None),
        };
        if let Some(s) = session {
            if let Err(e) = s.logout().await {
                tracing::warn!(device_id = device.id, error = %e, "logout through the session failed");
            }
        }
        if let Some((_, run)) = run {
            run.cancel();
        }
        let forgotten = self.inner.driver.forget(device.id).await;
        if forgotten.is_ok() {
            self.set_status(
                device.id,
                device.user_id,
                DeviceStatus::LoggedOut,
                Some("logged out".into()),
                Link::Unpaired,
                fence.as_ref(),
            )
            .await;
            // A logged-out device has no session to hold; pairing again takes a new lease.
            if let Some(fence) = &fence {
                self.inner.node.release(device.id, fence).await;
            }
        }
        if let Some(slot) = self.lock().get_mut(&device.id) {
            slot.logging_out = false;
        }
        Ok(forgotten?)
    }

    /// Fails when another live process holds the device's lease: its session, QR code and
    /// pairing are there.
    async fn require_here(&self, device_id: i64) -> Result<(), DeviceError> {
        match self.inner.db.cluster_holder(device_id).await? {
            Some((node, _)) if *node != *self.inner.node.id() => Err(DeviceError::OtherProcess),
            _ => Ok(()),
        }
    }

    /// Logs out, clears the session, and starts a fresh pairing round.
    pub async fn reset(&self, device: &DeviceRow) -> Result<(), DeviceError> {
        self.logout(device).await?;
        self.start(device);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Slot>> {
        self.inner.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn set_status(
        &self,
        device_id: i64,
        tenant_id: i64,
        status: DeviceStatus,
        detail: Option<String>,
        link: Link<'_>,
        fence: Option<&Fence>,
    ) {
        let (paired, jid) = match link {
            Link::Unchanged => (None, None),
            Link::Paired(jid) => (Some(true), jid),
            Link::Unpaired => (Some(false), None),
        };
        let update = DeviceUpdate::Status { device_id, tenant_id, status, detail: detail.clone() };
        let changed = self
            .lock()
            .get(&device_id)
            .is_none_or(|slot| slot.live.status != status || slot.live.detail != detail);
        // The `device.status` event of a change goes in with the change, in one transaction:
        // it is queued exactly when the status is stored. When it cannot be planned, the
        // status is stored alone and the event recorded after it, as other events are.
        let log = self.inner.log.get().filter(|_| changed);
        let planned = match log {
            Some(log) => match log.plan(&update).await {
                Ok(list) => Some(list),
                Err(e) => {
                    tracing::warn!(device_id, error = %e, "could not plan the device.status event");
                    None
                }
            },
            None => None,
        };
        // Only the lease's holder writes a device's status: a task that lost its device
        // (another process took it over) changes nothing, here or in the database.
        let stored = self
            .inner
            .db
            .system_set_device_status(
                device_id,
                StatusChange { status: status.as_str(), detail: detail.as_deref(), paired, jid },
                fence.map(|f| (&*f.node, f.epoch)),
                planned.as_deref().unwrap_or_default(),
            )
            .await;
        let mut queued = false;
        match stored {
            Ok(true) => queued = planned.is_some(),
            Ok(false) => {
                crate::cluster::Stats::count(&self.inner.node.stats().fenced_writes);
                tracing::debug!(device_id, "not the device's holder any more; its status is not changed");
                return;
            }
            Err(e) => tracing::warn!(device_id, error = %e, "could not store the device status"),
        }
        {
            let mut slots = self.lock();
            let slot =
                slots.entry(device_id).or_insert_with(|| Slot::new(LiveStatus::new(status, detail.clone())));
            slot.live.status = status;
            slot.live.detail = detail;
            slot.live.since = Utc::now();
            if status != DeviceStatus::Qr {
                slot.live.qr = None;
                slot.live.pair_code = None;
            }
        }
        match log {
            Some(log) if queued => {
                log.queued();
                self.broadcast(update).await;
            }
            // Queued for webhooks by this process, the device's holder, before it moves on:
            // one `device.status` event per change, whatever its listeners' pace.
            Some(_) => self.announce(update).await,
            // Without webhooks (or without a change) live views still hear of it.
            None if changed => self.broadcast(update).await,
            None => {}
        }
    }

    /// One device's supervision loop: take the lease, open, follow events, reconnect when the
    /// reason allows and the lease is still held; give the lease up at the end.
    async fn run(&self, key: DeviceKey, run_id: u64, cancel: CancellationToken) {
        let id = key.device_id;
        let fence = match self.inner.node.acquire(id).await {
            Ok(Some(fence)) => fence,
            Ok(None) => {
                tracing::debug!(device_id = id, "another gateway process holds the device");
                self.with_own_slot(id, run_id, |slot| slot.run = None);
                return;
            }
            Err(e) => {
                tracing::warn!(device_id = id, error = %e, "cannot take the device's lease");
                self.with_own_slot(id, run_id, |slot| slot.run = None);
                return;
            }
        };
        self.with_own_slot(id, run_id, |slot| slot.fence = Some(fence.clone()));
        if let Some(sink) = self.inner.sink.get() {
            sink.resume(&key).await;
        }
        let key = DeviceKey { writes: self.write_guard(&fence), ..key };
        self.supervise(&key, run_id, &cancel, &fence).await;
        // A logout or reset took the device from this task and handles the lease itself.
        // Otherwise the lease is given up before the task counts as ended, so nobody sees a
        // device held here without a task.
        let mut own = false;
        self.with_own_slot(id, run_id, |slot| {
            own = true;
            slot.session = None;
        });
        if own {
            self.inner.node.release(id, &fence).await;
        }
        self.with_own_slot(id, run_id, |slot| {
            slot.run = None;
            slot.fence = None;
        });
    }

    /// Session-state writes under `fence` go ahead while this process is within its lease
    /// deadline and still the node that took the lease (it rejoins under a new id once it was
    /// declared dead), and while the database still sees `fence` as the holder; a refused
    /// write counts as fenced.
    fn write_guard(&self, fence: &Fence) -> crate::devices::driver::WriteGuard {
        let node = self.inner.node.clone();
        let holder = fence.node.clone();
        let refused = self.inner.node.clone();
        crate::devices::driver::WriteGuard::leased(
            fence.clone(),
            move || {
                let allowed = node.within_deadline() && node.id() == holder;
                if !allowed {
                    crate::cluster::Stats::count(&node.stats().fenced_writes);
                }
                allowed
            },
            move || crate::cluster::Stats::count(&refused.stats().fenced_writes),
        )
    }

    async fn supervise(&self, key: &DeviceKey, run_id: u64, cancel: &CancellationToken, fence: &Fence) {
        let mut backoff = self.inner.reconnect_min;
        let (id, tenant) = (key.device_id, key.tenant_id);
        let mut first = true;
        loop {
            if !first && !self.inner.node.holds(id, fence).await {
                tracing::info!(
                    device_id = id,
                    "the device's lease moved to another process; not reconnecting"
                );
                return;
            }
            first = false;
            self.set_status(id, tenant, DeviceStatus::Connecting, None, Link::Unchanged, Some(fence)).await;
            let (tx, mut rx) = mpsc::channel(256);
            let session = tokio::select! {
                opened = self.inner.driver.open(key.clone(), tx) => opened,
                _ = cancel.cancelled() => return,
            };
            let session = match session {
                Ok(s) => s,
                Err(e) => {
                    let detail = format!("could not connect: {e}");
                    self.set_status(
                        id,
                        tenant,
                        DeviceStatus::Connecting,
                        Some(detail),
                        Link::Unchanged,
                        Some(fence),
                    )
                    .await;
                    if !self.pause(cancel, &mut backoff).await {
                        return;
                    }
                    continue;
                }
            };
            self.with_own_slot(id, run_id, |slot| slot.session = Some(session.clone()));
            let reason = loop {
                tokio::select! {
                    event = rx.recv() => match event {
                        None => break StopReason::ConnectionLost("the driver ended the session".into()),
                        Some(DriverEvent::Stopped(reason)) => break reason,
                        Some(event) => self.on_event(key, event, &mut backoff, fence).await,
                    },
                    _ = cancel.cancelled() => {
                        session.close().await;
                        break StopReason::Closed;
                    }
                }
            };
            self.with_own_slot(id, run_id, |slot| slot.session = None);
            let status = |status, detail: Option<String>| {
                self.set_status(id, tenant, status, detail, Link::Unchanged, Some(fence))
            };
            match reason {
                StopReason::Closed => {
                    // Stopped on purpose: a process that stops reports the device as
                    // disconnected; a device handed to another process is reported by it.
                    if !cancel.is_cancelled() || self.inner.shutdown.is_cancelled() {
                        status(DeviceStatus::Disconnected, None).await;
                    }
                    return;
                }
                StopReason::ConnectionLost(why) => {
                    tracing::info!(device_id = id, reason = %why, "connection lost; reconnecting");
                    status(DeviceStatus::Connecting, Some(why)).await;
                }
                StopReason::StreamReplaced => {
                    if !self.inner.node.holds(id, fence).await {
                        // Another process took the device over and logged in: its session now.
                        tracing::info!(device_id = id, "another gateway process took the session over");
                        return;
                    }
                    // Still the holder: a client outside this cluster uses the same session
                    // (a copied database, another deployment). Fighting over it would kick
                    // each other off for ever; wait long between attempts instead.
                    let why = "another client outside this gateway uses this session; reconnecting slowly"
                        .to_string();
                    tracing::warn!(device_id = id, "{why}");
                    status(DeviceStatus::Disconnected, Some(why)).await;
                    backoff = self.inner.reconnect_max;
                }
                StopReason::QrExhausted => {
                    let why = "the QR codes expired without a scan; ask for a new QR".to_string();
                    status(DeviceStatus::Disconnected, Some(why)).await;
                    return;
                }
                StopReason::LoggedOut(why) => {
                    // Unless a logout through the gateway took this run over (it cleans up).
                    let mut own = false;
                    self.with_own_slot(id, run_id, |_| own = true);
                    if own {
                        if let Err(e) = self.inner.driver.forget(id).await {
                            tracing::warn!(device_id = id, error = %e, "could not delete session keys after logout");
                        }
                        self.set_status(
                            id,
                            tenant,
                            DeviceStatus::LoggedOut,
                            Some(why),
                            Link::Unpaired,
                            Some(fence),
                        )
                        .await;
                    }
                    return;
                }
                StopReason::Refused(why) => {
                    status(DeviceStatus::Disconnected, Some(why)).await;
                    backoff = self.inner.reconnect_max;
                }
            }
            if !self.pause(cancel, &mut backoff).await {
                return;
            }
        }
    }

    /// Runs `f` on the device's slot if run `run_id` still owns it (a newer run may have
    /// replaced it after a reset).
    fn with_own_slot(&self, device_id: i64, run_id: u64, f: impl FnOnce(&mut Slot)) {
        if let Some(slot) = self.lock().get_mut(&device_id) {
            if slot.run.as_ref().is_some_and(|(id, _)| *id == run_id) {
                f(slot);
            }
        }
    }

    /// Waits `backoff` with up to 25% jitter, then doubles it (up to the maximum).
    /// False when cancelled meanwhile.
    async fn pause(&self, cancel: &CancellationToken, backoff: &mut Duration) -> bool {
        let jitter = rand::thread_rng().gen_range(0.0..=0.25);
        let wait = backoff.mul_f64(1.0 + jitter);
        *backoff = (*backoff * 2).min(self.inner.reconnect_max);
        tokio::select! {
            _ = tokio::time::sleep(wait) => true,
            _ = cancel.cancelled() => false,
        }
    }

    async fn on_event(&self, key: &DeviceKey, event: DriverEvent, backoff: &mut Duration, fence: &Fence) {
        let fence = Some(fence);
        let (id, tenant) = (key.device_id, key.tenant_id);
        match event {
            DriverEvent::Qr { code, ttl } => {
                let expires_at = Utc::now() + chrono::Duration::from_std(ttl).unwrap_or_default();
                self.set_status(id, tenant, DeviceStatus::Qr, None, Link::Unchanged, fence).await;
                if let Some(slot) = self.lock().get_mut(&id) {
                    slot.live.qr = Some(Offered { code: code.clone(), expires_at });
                }
                self.broadcast(DeviceUpdate::Qr { device_id: id, tenant_id: tenant, qr: code, expires_at })
                    .await;
            }
            DriverEvent::PairCode { code, ttl } => {
                let expires_at = Utc::now() + chrono::Duration::from_std(ttl).unwrap_or_default();
                if let Some(slot) = self.lock().get_mut(&id) {
                    slot.live.pair_code = Some(Offered { code: code.clone(), expires_at });
                }
                self.broadcast(DeviceUpdate::PairCode { device_id: id, tenant_id: tenant, code, expires_at })
                    .await;
            }
            DriverEvent::Paired { jid } => {
                self.set_status(
                    id,
                    tenant,
                    DeviceStatus::Connecting,
                    Some("paired".into()),
                    Link::Paired(Some(&jid)),
                    fence,
                )
                .await;
            }
            DriverEvent::Connected => {
                *backoff = self.inner.reconnect_min;
                self.set_status(id, tenant, DeviceStatus::Connected, None, Link::Paired(None), fence).await;
            }
            DriverEvent::Disconnected { reason } => {
                self.set_status(id, tenant, DeviceStatus::Connecting, Some(reason), Link::Unchanged, fence)
                    .await;
            }
            DriverEvent::Messages { messages, ack } => {
                // A message that names both the LID and the number behind it teaches the
                // mapping; learned first, so the message itself is stored resolved too.
                for m in messages.iter().filter(|m| !m.from_me) {
                    if let (Some(lid), false) = (&m.sender_lid, m.sender.contains('@')) {
                        if let Err(e) = self.learn_lid(key, lid, &m.sender).await {
                            tracing::warn!(device_id = id, error = %e, "could not store a LID mapping");
                        }
                    }
                }
                let stored = match self.inner.sink.get() {
                    Some(sink) => sink.inbound(key, messages).await,
                    None => false,
                };
                if let Some(ack) = ack {
                    ack.send(stored);
                }
            }
            DriverEvent::Receipt { wa_ids, kind } => {
                if let Some(sink) = self.inner.sink.get() {
                    sink.receipt(key, wa_ids, kind).await;
                }
            }
            DriverEvent::LidMapping { lid, phone, ack } => {
                let stored = self.learn_lid(key, &lid, &phone).await;
                if let Err(e) = &stored {
                    tracing::warn!(device_id = id, error = %e, "could not store a LID mapping");
                }
                if let Some(ack) = ack {
                    ack.send(stored.is_ok());
                }
            }
            DriverEvent::Group(event) => {
                let session = self.connected(id);
                let subject =
                    super::groups::service::remember(&self.inner.db, key, session.as_deref(), &event).await;
                self.announce(DeviceUpdate::Group { device_id: id, tenant_id: tenant, event, subject }).await;
            }
            DriverEvent::ChatState { chat, change, at, ack } => {
                let stored =
                    super::contacts::remember_chat_state(&self.inner.db, key, &chat, change, at).await;
                if let Some(ack) = ack {
                    ack.send(stored);
                }
            }
            DriverEvent::ContactName { jid, name, ack } => {
                let stored = super::contacts::remember_saved_name(&self.inner.db, key, &jid, &name).await;
                if let Some(ack) = ack {
                    ack.send(stored);
                }
            }
            DriverEvent::Stopped(_) => {}
        }
    }

    /// Hands a LID mapping to the sink and announces it when it is new or changed.
    async fn learn_lid(&self, key: &DeviceKey, lid: &str, phone: &str) -> Result<(), String> {
        let Some(sink) = self.inner.sink.get() else { return Err("no message sink".into()) };
        if sink.lid_mapping(key, lid, phone).await? {
            self.announce(DeviceUpdate::ContactResolved {
                device_id: key.device_id,
                tenant_id: key.tenant_id,
                lid: lid.to_string(),
                phone: phone.to_string(),
            })
            .await;
        }
        Ok(())
    }

    /// Records a lasting update in the [`UpdateLog`], then broadcasts it for live views. The
    /// device's next event waits meanwhile, so a flood of events slows the device down instead
    /// of losing any. A failing record is tried again a few times with a growing pause; given
    /// up (logged), the update still goes out live.
    async fn announce(&self, update: DeviceUpdate) {
        if let Some(log) = self.inner.log.get() {
            let mut pause = Duration::from_millis(100);
            for attempt in 1..=RECORD_ATTEMPTS {
                let Err(e) = log.record(&update).await else { break };
                let device_id = update.device_id();
                if attempt == RECORD_ATTEMPTS || self.inner.shutdown.is_cancelled() {
                    tracing::error!(device_id, error = %e, "a device event could not be queued for webhooks; it is lost");
                    break;
                }
                tracing::warn!(device_id, attempt, error = %e, "could not queue a device event for webhooks; trying again");
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = self.inner.shutdown.cancelled() => {}
                }
                pause *= 2;
            }
        }
        self.broadcast(update).await;
    }
}
