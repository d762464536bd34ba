//! The one seam between the gateway and WhatsApp.
//!
//! A [`Driver`] opens one [`Session`] per device. The session reports what happens on the
//! WhatsApp side as [`DriverEvent`]s on a channel, and takes commands (send, pair code,
//! logout) through its methods. The shape follows `whatsapp-rust` 0.7: a session is a `Bot`
//! over the device's persisted keys, its events are the library's `Event`s reduced to what the
//! gateway needs, and a send returns once the message is handed to the network (the library's
//! `SendResult`), with delivery arriving later as receipts.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

/// What the driver needs to know about the device it opens a session for.
#[derive(Debug, Clone)]
pub struct DeviceKey {
    pub device_id: i64,
    pub tenant_id: i64,
    /// The phone number the tenant registered (digits only).
    pub phone: String,
}

/// Where a message goes: a WhatsApp JID such as `6281234567890@s.whatsapp.net` or
/// `120363000000000000@g.us`.
pub type Jid = String;

/// Media to send, already fetched and checked by the gateway.
#[derive(Clone)]
pub struct OutboundMedia {
    pub kind: MediaKind,
    pub bytes: Arc<Vec<u8>>,
    pub mime: String,
    pub filename: Option<String>,
    pub caption: Option<String>,
}

impl std::fmt::Debug for OutboundMedia {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundMedia")
            .field("kind", &self.kind)
            .field("len", &self.bytes.len())
            .field("mime", &self.mime)
            .field("filename", &self.filename)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    Image,
    Video,
    Audio,
    Document,
}

impl MediaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Video => "video",
            MediaKind::Audio => "audio",
            MediaKind::Document => "document",
        }
    }

    pub fn parse(s: &str) -> Option<MediaKind> {
        match s {
            "image" => Some(MediaKind::Image),
            "video" => Some(MediaKind::Video),
            "audio" => Some(MediaKind::Audio),
            "document" => Some(MediaKind::Document),
            _ => None,
        }
    }
}

/// Media attached to an inbound message (metadata only; the bytes stay with WhatsApp).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InboundMedia {
    pub kind: String,
    pub mime: Option<String>,
    pub size: Option<u64>,
    pub filename: Option<String>,
    pub caption: Option<String>,
}

/// A message that arrived at the device.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundMessage {
    /// WhatsApp's message id (unique per device together with the chat).
    pub wa_id: String,
    /// The chat: the sender's JID for a direct message, the group's JID for a group.
    pub chat: Jid,
    /// The sender's phone number (digits), or their JID when no number is known (LID).
    pub sender: String,
    pub push_name: Option<String>,
    pub is_group: bool,
    /// Text, extended text or a media caption.
    pub text: Option<String>,
    pub media: Option<InboundMedia>,
    pub timestamp: DateTime<Utc>,
    /// Sent by this same account (from the phone or by this gateway); never answered.
    pub from_me: bool,
}

/// A delivery report for messages the device sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptKind {
    /// The server accepted the message.
    Server,
    Delivered,
    Read,
    /// The server refused the message.
    Error,
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// The connection dropped and the driver gave up reconnecting on its own: reconnect.
    ConnectionLost(String),
    /// All QR codes expired without a scan: a new pairing round can start on demand.
    QrExhausted,
    /// Another client took over the same session keys.
    StreamReplaced,
    /// The phone unlinked this device, or WhatsApp refused the keys: pair again.
    LoggedOut(String),
    /// WhatsApp refused the connection (ban, outdated client, ...): do not retry soon.
    Refused(String),
    /// The gateway asked for it (shutdown, delete).
    Closed,
}

/// Everything a session reports.
#[derive(Debug, Clone)]
pub enum DriverEvent {
    /// A QR code to show; valid for `ttl`. Each rotation sends a new one.
    Qr { code: String, ttl: Duration },
    /// A phone-number pairing code to type on the phone.
    PairCode { code: String, ttl: Duration },
    /// The phone linked this device; `jid` is the account's own JID.
    Paired { jid: Jid },
    /// Logged in and ready to send and receive.
    Connected,
    /// The connection dropped; the driver is reconnecting by itself.
    Disconnected { reason: String },
    /// Messages arrived. The driver acknowledges them to WhatsApp only after the gateway
    /// confirmed them through `ack` (stored), so a crash cannot lose one.
    Messages { messages: Vec<InboundMessage>, ack: Option<Ack> },
    /// Delivery reports for messages this device sent, by WhatsApp message id.
    Receipt { wa_ids: Vec<String>, kind: ReceiptKind },
    /// The session is over; the supervisor decides from the reason whether to start again.
    Stopped(StopReason),
}

/// The gateway's confirmation that inbound messages are stored.
#[derive(Debug, Clone)]
pub struct Ack(pub Arc<std::sync::Mutex<Option<tokio::sync::oneshot::Sender<bool>>>>);

impl Ack {
    pub fn new() -> (Ack, tokio::sync::oneshot::Receiver<bool>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (Ack(Arc::new(std::sync::Mutex::new(Some(tx)))), rx)
    }

    /// `true`: stored, acknowledge to WhatsApp; `false`: not stored, let WhatsApp redeliver.
    pub fn send(&self, stored: bool) {
        if let Some(tx) = self.0.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = tx.send(stored);
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("the device is not connected")]
    NotConnected,
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("{0}")]
    Failed(String),
}

/// Result of checking whether a number has WhatsApp.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NumberCheck {
    pub number: String,
    pub on_whatsapp: bool,
    pub jid: Option<Jid>,
}

/// A WhatsApp connection implementation: the real network or the simulator.
#[async_trait]
pub trait Driver: Send + Sync + 'static {
    /// Opens a session for `device`, resuming its persisted keys when it was paired before,
    /// else starting a pairing round (QR codes). Events go to `events` until the session stops.
    async fn open(
        &self,
        device: DeviceKey,
        events: mpsc::Sender<DriverEvent>,
    ) -> Result<Arc<dyn Session>, DriverError>;

    /// Deletes the device's persisted session keys (after logout or when the device is deleted).
    async fn forget(&self, device_id: i64) -> Result<(), DriverError>;

    /// Whether the device has persisted keys (was paired and not logged out).
    async fn is_paired(&self, device_id: i64) -> Result<bool, DriverError>;
}

/// One live device session.
#[async_trait]
pub trait Session: Send + Sync {
    /// Sends text; returns WhatsApp's message id once the network took the message.
    async fn send_text(&self, to: &Jid, text: &str) -> Result<String, DriverError>;

    /// Uploads and sends media; returns WhatsApp's message id.
    async fn send_media(&self, to: &Jid, media: &OutboundMedia) -> Result<String, DriverError>;

    /// Asks for a phone-number pairing code for `phone` (digits); delivered as `PairCode`.
    async fn request_pair_code(&self, phone: &str) -> Result<String, DriverError>;

    /// Checks which numbers have WhatsApp.
    async fn check_numbers(&self, numbers: &[String]) -> Result<Vec<NumberCheck>, DriverError>;

    /// Unlinks the device from the phone and deletes its keys.
    async fn logout(&self) -> Result<(), DriverError>;

    /// Closes the connection, keeping the keys (shutdown). The session then emits
    /// `Stopped(Closed)`.
    async fn close(&self);
}
