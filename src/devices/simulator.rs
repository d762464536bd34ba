//! The `simulator` driver: an in-process stand-in for the WhatsApp network (SPEC §6.4).
//!
//! Towards the gateway it behaves like the real driver: an unpaired device gets rotating QR
//! codes until they run out, a paired device (one with persisted `sim:jid` state) connects
//! after a short delay, sends need a connection, inbound messages wait for the gateway's ack,
//! and a dropped connection is never re-established by the driver itself. The control methods
//! on [`Simulator`] play the phone and the network: scan, inbound messages, receipts,
//! disconnects and unlinking, and the outbox shows what the gateway sent.
//!
//! Each device has at most one live session. Its events go through an unbounded queue into a
//! forwarding task, so they keep their order without holding the state lock across an await.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::driver::{Ack, DriverError, DriverEvent, InboundMessage, MediaKind, ReceiptKind, StopReason};
use crate::db::{Db, DbError};

mod session;
#[cfg(test)]
mod tests;

/// The session key holding the paired account's JID.
const JID_KEY: &str = "sim:jid";
/// How long a phone-number pairing code stays valid.
pub const PAIR_CODE_TTL: Duration = Duration::from_secs(180);
/// How long [`Simulator::inbound`] waits for the gateway to store a message.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(10);
/// Sent messages kept per device; the oldest go first.
pub const OUTBOX_CAP: usize = 10_000;
const PAIR_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTVWXYZ0123456789";

/// How fast the simulated network moves; tests shorten these.
#[derive(Debug, Clone)]
pub struct SimTiming {
    /// Validity of the first QR code of a pairing round.
    pub first_qr_ttl: Duration,
    /// Validity of each following QR code.
    pub next_qr_ttl: Duration,
    /// QR codes shown before the round ends with `QrExhausted`.
    pub qr_codes: u32,
    /// Delay before a paired device reports `Connected`.
    pub connect_delay: Duration,
}

impl Default for SimTiming {
    fn default() -> Self {
        SimTiming {
            first_qr_ttl: Duration::from_secs(60),
            next_qr_ttl: Duration::from_secs(20),
            qr_codes: 6,
            connect_delay: Duration::from_millis(50),
        }
    }
}

/// A message the simulated contact sends to the device.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SimInbound {
    /// The sender's phone number (digits, an optional leading `+`).
    pub from: String,
    pub text: String,
    #[serde(default)]
    pub push_name: Option<String>,
    /// WhatsApp message id; a random `3EB0…` id when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// The group the message was posted in (`…@g.us`, or the bare group id).
    #[serde(default)]
    pub group: Option<String>,
}

/// Media the gateway sent, as the outbox reports it (metadata, not bytes).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimMedia {
    pub kind: MediaKind,
    pub mime: String,
    pub size: u64,
    pub filename: Option<String>,
    pub caption: Option<String>,
}

/// One message the gateway sent through a device.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimSent {
    /// The WhatsApp message id returned to the gateway.
    pub id: String,
    /// The destination JID.
    pub to: String,
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media: Option<SimMedia>,
    pub at: DateTime<Utc>,
}

/// Why a simulator control call was refused.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("the device has no live session")]
    NoSession,
    #[error("the device is not waiting for a scan (no pairing round, or already paired)")]
    NotWaitingForScan,
    #[error("the device is not connected")]
    NotConnected,
    #[error("the device is not linked to a phone")]
    NotLinked,
    #[error("no device sent a message with id {0:?}")]
    UnknownMessage(String),
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("the gateway did not store the message")]
    NotStored,
    #[error("the gateway did not acknowledge the message within {ACK_TIMEOUT:?}")]
    AckTimeout,
    #[error(transparent)]
    Storage(#[from] DbError),
}

/// The simulated network. Cheap to clone; the driver and the admin API share one.
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    timing: SimTiming,
    devices: Mutex<HashMap<i64, SimDevice>>,
    generations: AtomicU64,
}

/// Per device: the live session, if any, and the outbox (kept across sessions).
#[derive(Default)]
struct SimDevice {
    live: Option<Live>,
    outbox: VecDeque<SimSent>,
}

struct Live {
    /// Tells this session apart from earlier and later ones of the same device.
    generation: u64,
    phone: String,
    queue: mpsc::UnboundedSender<DriverEvent>,
    state: LinkState,
    /// Cancelled when the session ends.
    cancel: CancellationToken,
    /// The current timer (QR rotation, pair-code expiry, connect delay); a child of `cancel`.
    phase: CancellationToken,
}

enum LinkState {
    Pairing { qr: Option<String>, pair_phone: Option<String> },
    Connecting,
    Connected,
}

impl Live {
    fn emit(&self, event: DriverEvent) {
        let _ = self.queue.send(event);
    }

    /// Ends the session: `Stopped(reason)` is its last event, and its timers stop.
    fn stop(self, reason: StopReason) {
        self.emit(DriverEvent::Stopped(reason));
        self.cancel.cancel();
    }

    fn is_connected(&self) -> bool {
        matches!(self.state, LinkState::Connected)
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, HashMap<i64, SimDevice>> {
        self.devices.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the device's live session (only session `generation`, when given).
    fn with_live<R>(
        &self,
        device_id: i64,
        generation: Option<u64>,
        f: impl FnOnce(&mut Live) -> R,
    ) -> Option<R> {
        let mut devices = self.lock();
        let live = devices.get_mut(&device_id)?.live.as_mut()?;
        generation.is_none_or(|g| g == live.generation).then(|| f(live))
    }

    /// Detaches the device's live session when it is `generation` (if given) and `check`
    /// accepts it; the caller then stops it.
    fn take_live(
        &self,
        device_id: i64,
        generation: Option<u64>,
        check: impl FnOnce(&Live) -> bool,
    ) -> Option<Live> {
        let mut devices = self.lock();
        let device = devices.get_mut(&device_id)?;
        let live = device.live.as_ref()?;
        if generation.is_none_or(|g| g == live.generation) && check(live) {
            device.live.take()
        } else {
            None
        }
    }

    /// Ends a pairing round that nobody completed, unless its timer was superseded.
    fn expire_pairing(&self, device_id: i64, generation: u64, phase: &CancellationToken) {
        let expired = self.take_live(device_id, Some(generation), |live| {
            !phase.is_cancelled() && matches!(live.state, LinkState::Pairing { .. })
        });
        if let Some(live) = expired {
            live.stop(StopReason::QrExhausted);
        }
    }
}

impl Simulator {
    /// A simulated network whose paired devices are remembered in `db` (`device_sessions`).
    pub fn new(db: Db, timing: SimTiming) -> Simulator {
        Simulator {
            inner: Arc::new(Inner {
                db,
                timing,
                devices: Mutex::new(HashMap::new()),
                generations: AtomicU64::new(0),
            }),
        }
    }

    /// The phone scans the current QR code (or confirms the pair code): the device is paired
    /// to `<phone>@s.whatsapp.net`, which is persisted, then reports `Paired` and `Connected`.
    pub async fn scan(&self, device_id: i64) -> Result<(), SimError> {
        let (generation, jid) = self
            .inner
            .with_live(device_id, None, |live| {
                let LinkState::Pairing { pair_phone, .. } = &live.state else {
                    return None;
                };
                let phone = pair_phone.clone().unwrap_or_else(|| live.phone.clone());
                live.phase.cancel();
                live.state = LinkState::Connecting;
                Some((live.generation, format!("{phone}@s.whatsapp.net")))
            })
            .flatten()
            .ok_or(SimError::NotWaitingForScan)?;
        if let Err(e) = self.inner.db.session_put(device_id, JID_KEY, jid.as_bytes()).await {
            if let Some(live) = self.inner.take_live(device_id, Some(generation), |_| true) {
                live.stop(StopReason::ConnectionLost("the pairing could not be stored".into()));
            }
            return Err(e.into());
        }
        self.inner.with_live(device_id, Some(generation), |live| {
            if matches!(live.state, LinkState::Connecting) {
                live.state = LinkState::Connected;
                live.emit(DriverEvent::Paired { jid });
                live.emit(DriverEvent::Connected);
            }
        });
        Ok(())
    }

    /// A contact sends a message to the device. Returns its WhatsApp id once the gateway
    /// acknowledged it as stored, so the caller knows it is in the history.
    pub async fn inbound(&self, device_id: i64, msg: SimInbound) -> Result<String, SimError> {
        let sender = phone_digits(&msg.from)
            .ok_or_else(|| SimError::Invalid("`from` must be a phone number of 8 to 15 digits".into()))?;
        let group = msg.group.as_deref().map(group_jid).transpose()?;
        let wa_id = match msg.id.map(|id| id.trim().to_string()) {
            Some(id) if !id.is_empty() && id.len() <= 128 => id,
            Some(id) if !id.is_empty() => {
                return Err(SimError::Invalid("`id` is longer than 128 characters".into()))
            }
            _ => new_wa_id(),
        };
        let message = InboundMessage {
            wa_id: wa_id.clone(),
            chat: group.clone().unwrap_or_else(|| format!("{sender}@s.whatsapp.net")),
            sender,
            push_name: msg.push_name,
            is_group: group.is_some(),
            text: Some(msg.text),
            media: None,
            timestamp: Utc::now(),
            from_me: false,
        };
        let (ack, stored) = Ack::new();
        let delivered = self.inner.with_live(device_id, None, |live| {
            if live.is_connected() {
                live.emit(DriverEvent::Messages { messages: vec![message], ack: Some(ack) });
            }
            live.is_connected()
        });
        if delivered != Some(true) {
            return Err(SimError::NotConnected);
        }
        match tokio::time::timeout(ACK_TIMEOUT, stored).await {
            Ok(Ok(true)) => Ok(wa_id),
            Ok(Ok(false)) | Ok(Err(_)) => Err(SimError::NotStored),
            Err(_) => Err(SimError::AckTimeout),
        }
    }

    /// What the gateway sent through the device, oldest first (the last [`OUTBOX_CAP`]).
    pub fn outbox(&self, device_id: i64) -> Vec<SimSent> {
        let devices = self.inner.lock();
        devices.get(&device_id).map(|d| d.outbox.iter().cloned().collect()).unwrap_or_default()
    }

    /// The connection drops: `Disconnected`, then `Stopped(ConnectionLost)`. The simulator
    /// does not reconnect; the gateway's supervisor must open a new session.
    pub fn disconnect(&self, device_id: i64) -> Result<(), SimError> {
        let live = self.inner.take_live(device_id, None, |_| true).ok_or(SimError::NoSession)?;
        let reason = "connection dropped by the simulator";
        live.emit(DriverEvent::Disconnected { reason: reason.into() });
        live.stop(StopReason::ConnectionLost(reason.into()));
        Ok(())
    }

    /// A delivery report for a message the gateway sent, routed to the device that sent it.
    pub fn receipt(&self, wa_id: &str, kind: ReceiptKind) -> Result<(), SimError> {
        let devices = self.inner.lock();
        let device = devices
            .values()
            .find(|d| d.outbox.iter().any(|s| s.id == wa_id))
            .ok_or_else(|| SimError::UnknownMessage(wa_id.chars().take(128).collect()))?;
        let live = device.live.as_ref().filter(|l| l.is_connected()).ok_or(SimError::NotConnected)?;
        live.emit(DriverEvent::Receipt { wa_ids: vec![wa_id.to_string()], kind });
        Ok(())
    }

    /// The phone unlinks the device: its session state is deleted and a live session ends
    /// with `Stopped(LoggedOut)`.
    pub async fn logout(&self, device_id: i64) -> Result<(), SimError> {
        let persisted = self.inner.db.session_exists(device_id).await?;
        let linked_live = self
            .inner
            .with_live(device_id, None, |l| !matches!(l.state, LinkState::Pairing { .. }))
            .unwrap_or(false);
        if !persisted && !linked_live {
            return Err(SimError::NotLinked);
        }
        self.inner.db.session_delete_all(device_id).await?;
        if let Some(live) = self.inner.take_live(device_id, None, |_| true) {
            live.stop(StopReason::LoggedOut("unlinked from the phone".into()));
        }
        Ok(())
    }

    /// Whether the device has a live, connected session.
    pub fn is_connected(&self, device_id: i64) -> bool {
        self.inner.with_live(device_id, None, |l| l.is_connected()).unwrap_or(false)
    }
}

fn failed(err: DbError) -> DriverError {
    DriverError::Failed(err.to_string())
}

/// `+6281234567890` or `6281234567890` to digits, if it is 8 to 15 digits.
fn phone_digits(input: &str) -> Option<String> {
    let trimmed = input.trim();
    let digits = trimmed.strip_prefix('+').unwrap_or(trimmed);
    ((8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.to_string())
}

/// A group JID from `120363…@g.us` or the bare id (older `<number>-<time>` ids too).
fn group_jid(input: &str) -> Result<String, SimError> {
    let id = input.trim();
    let id = id.strip_suffix("@g.us").unwrap_or(id);
    let ok = !id.is_empty()
        && id.len() <= 64
        && id.split('-').count() <= 2
        && id.split('-').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if ok {
        Ok(format!("{id}@g.us"))
    } else {
        Err(SimError::Invalid("`group` must be a group JID like 120363012345678901@g.us".into()))
    }
}

fn valid_jid(to: &str) -> bool {
    match to.rsplit_once('@') {
        Some((user, "s.whatsapp.net")) => phone_digits(user).as_deref() == Some(user),
        Some((group, "g.us")) => group_jid(group).is_ok(),
        _ => false,
    }
}

/// A message id shaped like the ones WhatsApp Web makes: `3EB0` and 16 hex digits.
fn new_wa_id() -> String {
    let bytes: [u8; 8] = rand::thread_rng().gen();
    format!("3EB0{}", hex::encode_upper(bytes))
}

/// Eight characters from WhatsApp's pair-code alphabet, shown as `ABCD-EFGH`.
fn new_pair_code() -> String {
    let mut rng = rand::thread_rng();
    let mut code = String::with_capacity(9);
    for i in 0..8 {
        if i == 4 {
            code.push('-');
        }
        code.push(PAIR_ALPHABET[rng.gen_range(0..PAIR_ALPHABET.len())] as char);
    }
    code
}

fn random_b64(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    rand::thread_rng().fill(&mut bytes[..]);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
