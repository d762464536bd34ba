//! The `simulator` driver: an in-process stand-in for the WhatsApp network.
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

use super::driver::{
    Ack, ContactCard, ContactProfile, DriverError, DriverEvent, InboundBody, InboundMedia, InboundMessage,
    InboundQuote, Location, MediaKind, PollSpec, ReceiptKind, StopReason, Update,
};
use crate::db::{Db, DbError};
use crate::phone::{lid_jid, user_jid};

mod app_state;
mod groups;
pub mod remote;
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

/// A message the simulated contact sends to the device: text, or one of the other kinds, or
/// a change to an earlier message (`message` names it by WhatsApp id).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SimInbound {
    /// The sender's phone number (digits, an optional leading `+`); may be empty when
    /// `from_lid` is given (WhatsApp then hides the number).
    pub from: String,
    /// The sender's LID (`<digits>` or `<digits>@lid`): the message is addressed by LID, with
    /// the number beside it when `from` is given too.
    #[serde(default)]
    pub from_lid: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    /// `text`, `image`, `video`, `audio`, `voice`, `document`, `sticker`, `location`,
    /// `contact`, `poll`, `reaction`, `edit`, `revoke` or `poll_vote`; taken from the field
    /// given when absent.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub media: Option<SimInboundMedia>,
    #[serde(default)]
    pub location: Option<Location>,
    #[serde(default)]
    pub contact: Option<ContactCard>,
    #[serde(default)]
    pub poll: Option<PollSpec>,
    #[serde(default)]
    pub reaction: Option<SimReaction>,
    #[serde(default)]
    pub edit: Option<SimEdit>,
    #[serde(default)]
    pub revoke: Option<SimTarget>,
    #[serde(default)]
    pub poll_vote: Option<SimPollVote>,
    /// The WhatsApp id of the message this one quotes.
    #[serde(default)]
    pub reply_to: Option<String>,
    /// Who wrote the quoted message: a phone number or a LID (`<digits>@lid`).
    #[serde(default)]
    pub reply_to_from: Option<String>,
    /// Numbers (or LIDs, `<digits>@lid`) mentioned in the text.
    #[serde(default)]
    pub mentions: Vec<String>,
    #[serde(default)]
    pub push_name: Option<String>,
    /// WhatsApp message id; a random `3EB0…` id when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// The group the message was posted in (`…@g.us`, or the bare group id).
    #[serde(default)]
    pub group: Option<String>,
}

/// Media a simulated contact sends.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct SimInboundMedia {
    /// `image`, `video`, `audio`, `voice`, `document` or `sticker`.
    pub kind: String,
    pub mime: String,
    /// The bytes, base64.
    pub base64: String,
    #[serde(default)]
    pub filename: Option<String>,
    #[serde(default)]
    pub caption: Option<String>,
    /// Milliseconds the simulated media server takes to hand the bytes out (a slow network).
    #[serde(default)]
    pub delay_ms: Option<u64>,
}

/// A reaction: to `message` (a WhatsApp id), with `emoji` (empty removes it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SimReaction {
    pub message: String,
    pub emoji: String,
}

/// An edit: `message` (a WhatsApp id) gets the new `text`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SimEdit {
    pub message: String,
    pub text: String,
}

/// A message (by WhatsApp id) that something is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SimTarget {
    pub message: String,
}

/// A vote on the poll `message` (a WhatsApp id) for `options` (their texts; none withdraws).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SimPollVote {
    pub message: String,
    #[serde(default)]
    pub options: Vec<String>,
}

/// Media the gateway sent, as the outbox reports it (metadata and a digest, not bytes).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimMedia {
    pub kind: MediaKind,
    pub mime: String,
    pub size: u64,
    pub filename: Option<String>,
    pub caption: Option<String>,
    /// SHA-256 of the bytes, hex.
    pub sha256: String,
}

/// One thing the gateway did through a device: a message it sent (by kind), a read mark or
/// a presence update.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SimSent {
    /// The WhatsApp message id returned to the gateway (empty for read marks and presence).
    pub id: String,
    /// The destination JID.
    pub to: String,
    /// `text`, `image`, `video`, `audio`, `voice`, `document`, `sticker`, `location`,
    /// `contact`, `poll`, `reaction`, `edit`, `revoke`, `read` or `presence`.
    #[serde(rename = "type")]
    pub kind: String,
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media: Option<SimMedia>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<ContactCard>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub poll: Option<PollSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reaction: Option<SimReaction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edit: Option<SimEdit>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoke: Option<SimTarget>,
    /// The WhatsApp id of the quoted message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub forwarded: bool,
    /// Read marks: the WhatsApp ids marked read.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub read: Vec<String>,
    /// Presence: `typing`, `recording`, `paused`, `available` or `unavailable`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence: Option<String>,
    pub at: DateTime<Utc>,
    /// Its place among everything the device ever sent, from 1: the outbox's cursor.
    pub seq: u64,
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
    /// The simulated media server: bytes of inbound media by reference, oldest first.
    media: Mutex<VecDeque<(String, SimBlob)>>,
    /// The simulated network's groups, by JID.
    groups: Mutex<HashMap<String, groups::SimGroup>>,
    /// What contacts show of themselves (about, picture, business), by number.
    profiles: Mutex<HashMap<String, ContactProfile>>,
}

/// Media bytes on the simulated media server, and how long handing them out takes.
#[derive(Clone)]
pub(crate) struct SimBlob {
    pub bytes: Arc<Vec<u8>>,
    pub delay: Duration,
}

/// Media blobs the simulated media server keeps; the oldest go first.
const MEDIA_CAP: usize = 1_000;

/// Per device: the live session, if any, and the outbox (kept across sessions).
#[derive(Default)]
struct SimDevice {
    live: Option<Live>,
    outbox: VecDeque<SimSent>,
    /// Entries ever put in the outbox (the last one's `seq`).
    sent_total: u64,
    /// Sessions opened, and how many of them replaced a live one (as WhatsApp does when a
    /// second client logs in with the same keys).
    sessions: SessionCounts,
}

/// How often a device's session was opened on the simulated network.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SessionCounts {
    pub opened: u64,
    pub replaced: u64,
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

impl Inner {
    /// What a contact (digits) shows of itself; `None` when the number is not on WhatsApp
    /// (ends in `0000`, as `check_numbers` answers).
    pub(crate) fn profile(&self, phone: &str) -> Option<ContactProfile> {
        if phone.ends_with("0000") {
            return None;
        }
        let profiles = self.profiles.lock().unwrap_or_else(|e| e.into_inner());
        Some(profiles.get(phone).cloned().unwrap_or_default())
    }

    /// Puts bytes on the simulated media server; returns their reference.
    fn host_media(&self, blob: SimBlob) -> String {
        let reference = format!("sim-media-{}", random_b64(12).replace(['/', '+', '='], ""));
        let mut media = self.media.lock().unwrap_or_else(|e| e.into_inner());
        media.push_back((reference.clone(), blob));
        while media.len() > MEDIA_CAP {
            media.pop_front();
        }
        reference
    }

    /// The bytes behind a media reference, if the server still has them.
    pub(crate) fn hosted_media(&self, reference: &str) -> Option<SimBlob> {
        let media = self.media.lock().unwrap_or_else(|e| e.into_inner());
        media.iter().find(|(r, _)| r == reference).map(|(_, b)| b.clone())
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
                media: Mutex::new(VecDeque::new()),
                groups: Mutex::new(HashMap::new()),
                profiles: Mutex::new(HashMap::new()),
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
        let lid = match msg.from_lid.as_deref() {
            Some(l) => Some(lid_jid(l).ok_or_else(|| {
                SimError::Invalid("`from_lid` must be a LID: digits, or digits@lid".into())
            })?),
            None => None,
        };
        let sender = match (phone_digits(&msg.from), &lid) {
            (Some(number), _) => number,
            (None, Some(lid)) if msg.from.trim().is_empty() => lid.clone(),
            _ => return Err(SimError::Invalid("`from` must be a phone number of 8 to 15 digits".into())),
        };
        let group = msg.group.as_deref().map(group_jid).transpose()?;
        let wa_id = match msg.id.as_deref().map(str::trim) {
            Some(id) if !id.is_empty() && id.len() <= 128 => id.to_string(),
            Some(id) if !id.is_empty() => {
                return Err(SimError::Invalid("`id` is longer than 128 characters".into()))
            }
            _ => new_wa_id(),
        };
        let (body, mut media, text) = inbound_body(&msg)?;
        if let (Some(m), Some(given)) = (media.as_mut(), msg.media.as_ref()) {
            // Decoded again here: `inbound_body` checked it already.
            let bytes =
                base64::engine::general_purpose::STANDARD.decode(given.base64.trim()).unwrap_or_default();
            let blob = SimBlob {
                bytes: Arc::new(bytes),
                delay: Duration::from_millis(given.delay_ms.unwrap_or(0).min(60_000)),
            };
            m.source = Some(self.inner.host_media(blob));
        }
        let reply_to = match msg.reply_to.as_deref().map(str::trim) {
            Some(id) if !id.is_empty() && id.len() <= 128 => {
                let sender = msg.reply_to_from.as_deref().map(|who| {
                    phone_digits(who).or_else(|| lid_jid(who).filter(|_| who.contains('@'))).ok_or_else(
                        || SimError::Invalid("`reply_to_from` must be a phone number or digits@lid".into()),
                    )
                });
                Some(InboundQuote { wa_id: id.to_string(), sender: sender.transpose()?, text: None })
            }
            Some(id) if !id.is_empty() => {
                return Err(SimError::Invalid("`reply_to` is longer than 128 characters".into()))
            }
            _ => None,
        };
        let mentions = msg
            .mentions
            .iter()
            .map(|m| {
                phone_digits(m).or_else(|| lid_jid(m).filter(|_| m.contains('@'))).ok_or_else(|| {
                    SimError::Invalid(format!("`mentions`: {m:?} is not a phone number or digits@lid"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let message = InboundMessage {
            wa_id: wa_id.clone(),
            chat: group.clone().unwrap_or_else(|| user_jid(&sender)),
            sender,
            sender_lid: lid,
            push_name: msg.push_name,
            is_group: group.is_some(),
            text,
            media,
            body,
            reply_to,
            mentions,
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

    /// WhatsApp tells the device which phone number is behind a LID (as the real network
    /// does after a contact lookup or in a later message). Returns once the gateway stored it.
    pub async fn lid_mapping(&self, device_id: i64, lid: &str, phone: &str) -> Result<(), SimError> {
        let lid = lid_jid(lid)
            .ok_or_else(|| SimError::Invalid("`lid` must be a LID: digits, or digits@lid".into()))?;
        let phone = phone_digits(phone)
            .ok_or_else(|| SimError::Invalid("`phone` must be a phone number of 8 to 15 digits".into()))?;
        let (ack, stored) = Ack::new();
        let delivered = self.inner.with_live(device_id, None, |live| {
            if live.is_connected() {
                live.emit(DriverEvent::LidMapping { lid, phone, ack: Some(ack) });
            }
            live.is_connected()
        });
        if delivered != Some(true) {
            return Err(SimError::NotConnected);
        }
        match tokio::time::timeout(ACK_TIMEOUT, stored).await {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) | Ok(Err(_)) => Err(SimError::NotStored),
            Err(_) => Err(SimError::AckTimeout),
        }
    }

    /// What the gateway sent through the device, oldest first (the last [`OUTBOX_CAP`]).
    pub fn outbox(&self, device_id: i64) -> Vec<SimSent> {
        self.outbox_after(device_id, 0, usize::MAX)
    }

    /// At most `limit` entries of the outbox whose `seq` is above `after`, oldest first.
    pub fn outbox_after(&self, device_id: i64, after: u64, limit: usize) -> Vec<SimSent> {
        let devices = self.inner.lock();
        let Some(device) = devices.get(&device_id) else { return Vec::new() };
        // `seq` rises by one per entry, so the first entry after the cursor is found by index.
        let first = device.outbox.front().map_or(0, |s| s.seq);
        let skip = after.saturating_add(1).saturating_sub(first).min(device.outbox.len() as u64) as usize;
        device.outbox.range(skip..).take(limit).cloned().collect()
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

    /// A contact (digits) sets what it shows of itself: about text, profile picture URL,
    /// whether it is a business and its name.
    pub fn set_profile(&self, phone: &str, profile: ContactProfile) -> Result<(), SimError> {
        let phone = phone_digits(phone)
            .ok_or_else(|| SimError::Invalid("`phone` must be a phone number of 8 to 15 digits".into()))?;
        self.inner.profiles.lock().unwrap_or_else(|e| e.into_inner()).insert(phone, profile);
        Ok(())
    }

    /// How often the device's session was opened, and how often that replaced a live one.
    pub fn sessions(&self, device_id: i64) -> SessionCounts {
        self.inner.lock().get(&device_id).map(|d| d.sessions).unwrap_or_default()
    }

    /// Whether the device has a live, connected session.
    pub fn is_connected(&self, device_id: i64) -> bool {
        self.inner.with_live(device_id, None, |l| l.is_connected()).unwrap_or(false)
    }
}

/// The kind of a simulated inbound message from its fields: its body, media and text.
fn inbound_body(msg: &SimInbound) -> Result<(InboundBody, Option<InboundMedia>, Option<String>), SimError> {
    let bad = |m: &str| SimError::Invalid(m.to_string());
    let given: Vec<&str> = [
        msg.media.as_ref().map(|_| "media"),
        msg.location.as_ref().map(|_| "location"),
        msg.contact.as_ref().map(|_| "contact"),
        msg.poll.as_ref().map(|_| "poll"),
        msg.reaction.as_ref().map(|_| "reaction"),
        msg.edit.as_ref().map(|_| "edit"),
        msg.revoke.as_ref().map(|_| "revoke"),
        msg.poll_vote.as_ref().map(|_| "poll_vote"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if given.len() > 1 {
        return Err(bad(&format!("give one of {} per message", given.join(", "))));
    }
    let text = msg.text.clone().filter(|t| !t.is_empty());
    let target = |id: &str| -> Result<String, SimError> {
        let id = id.trim();
        if id.is_empty() || id.len() > 128 {
            return Err(bad("`message` must be a WhatsApp message id of 1 to 128 characters"));
        }
        Ok(id.to_string())
    };
    let (body, media, text) = match given.first().copied() {
        None => {
            let text = text.ok_or_else(|| bad("`text` (or another kind's field) is required"))?;
            (InboundBody::Plain, None, Some(text))
        }
        Some("media") => {
            let m = msg.media.as_ref().expect("given");
            let Some(kind) = MediaKind::parse(&m.kind) else {
                return Err(bad("`media.kind` must be image, video, audio, voice, document or sticker"));
            };
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(m.base64.trim())
                .map_err(|_| bad("`media.base64` is not valid base64"))?;
            if m.mime.trim().is_empty() || m.mime.len() > 255 {
                return Err(bad("`media.mime` must be a content type such as image/jpeg"));
            }
            let media = InboundMedia {
                kind: kind.as_str().into(),
                mime: Some(m.mime.trim().to_string()),
                size: Some(bytes.len() as u64),
                filename: m.filename.clone(),
                caption: m.caption.clone(),
                source: None,
            };
            (InboundBody::Plain, Some(media), m.caption.clone().or(text))
        }
        Some("location") => {
            let l = msg
                .location
                .clone()
                .expect("given")
                .checked()
                .map_err(|e| bad(&format!("`location.{e}`")))?;
            (InboundBody::Location(l), None, text)
        }
        Some("contact") => {
            let c = msg.contact.clone().expect("given");
            let cards = crate::content::check_contacts(vec![c], |p| {
                phone_digits(p).ok_or_else(|| "must be a phone number of 8 to 15 digits".to_string())
            })
            .map_err(|e| bad(&format!("`contact`: {e}")))?;
            (InboundBody::Contacts(cards), None, text)
        }
        Some("poll") => {
            let p = msg.poll.clone().expect("given").checked().map_err(|e| bad(&format!("`poll.{e}`")))?;
            (InboundBody::Poll(p), None, text)
        }
        Some("reaction") => {
            let r = msg.reaction.as_ref().expect("given");
            crate::content::check_emoji(&r.emoji).map_err(|e| bad(&format!("`reaction.{e}`")))?;
            let update = Update::Reaction { target: target(&r.message)?, emoji: r.emoji.clone() };
            (InboundBody::Update(update), None, None)
        }
        Some("edit") => {
            let e = msg.edit.as_ref().expect("given");
            if e.text.trim().is_empty() {
                return Err(bad("`edit.text` must not be blank"));
            }
            (
                InboundBody::Update(Update::Edit { target: target(&e.message)?, text: e.text.clone() }),
                None,
                None,
            )
        }
        Some("revoke") => {
            let r = msg.revoke.as_ref().expect("given");
            (InboundBody::Update(Update::Revoke { target: target(&r.message)? }), None, None)
        }
        Some(_) => {
            let v = msg.poll_vote.as_ref().expect("given");
            let update = Update::PollVote { target: target(&v.message)?, options: v.options.clone() };
            (InboundBody::Update(update), None, None)
        }
    };
    if let Some(kind) = msg.kind.as_deref() {
        if kind_of(&body, media.as_ref()) != kind {
            return Err(bad(&format!(
                "`type` is {kind:?} but the fields given make a {:?}",
                kind_of(&body, media.as_ref())
            )));
        }
    }
    Ok((body, media, text))
}

/// The simulator's name for a message's kind (as `SimInbound::kind` takes it).
fn kind_of(body: &InboundBody, media: Option<&InboundMedia>) -> &'static str {
    match body {
        InboundBody::Plain => match media.and_then(|m| MediaKind::parse(&m.kind)) {
            Some(kind) => kind.as_str(),
            None => "text",
        },
        InboundBody::Location(_) => "location",
        InboundBody::Contacts(_) => "contact",
        InboundBody::Poll(_) => "poll",
        InboundBody::Update(Update::Reaction { .. }) => "reaction",
        InboundBody::Update(Update::Edit { .. }) => "edit",
        InboundBody::Update(Update::Revoke { .. }) => "revoke",
        InboundBody::Update(Update::PollVote { .. }) => "poll_vote",
        InboundBody::Unsupported(_) => "unsupported",
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
