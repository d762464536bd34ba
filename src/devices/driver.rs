//! The one seam between the gateway and WhatsApp.
//!
//! A [`Driver`] opens one [`Session`] per device. The session reports what happens on the
//! WhatsApp side as [`DriverEvent`]s on a channel, and takes commands (send, pair code,
//! logout) through its methods. The shape follows `whatsapp-rust` 0.7: a session is a `Bot`
//! over the device's persisted keys, its events are the library's `Event`s reduced to what the
//! gateway needs, and a send, under an id the gateway chose, returns once WhatsApp accepted
//! the message, with delivery arriving later as receipts.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use crate::db::cluster::OnRefused;

pub use super::groups::{
    GroupChange, GroupEvent, GroupEventKind, GroupInfo, ParticipantAction, ParticipantOutcome,
};
pub use crate::content::{ContactCard, Location, PollSpec};

/// What the driver needs to know about the device it opens a session for.
#[derive(Debug, Clone)]
pub struct DeviceKey {
    pub device_id: i64,
    pub tenant_id: i64,
    /// The phone number the tenant registered (digits only).
    pub phone: String,
    /// Whether the session may still write the device's keys and protocol state.
    pub writes: WriteGuard,
}

/// Whether this process may still write a device's session state (Signal keys, app-state
/// sync, protocol bookkeeping). A process past its lease deadline (frozen, or cut off from
/// the database) or declared dead may have lost the device to another process, which then
/// writes the same rows: its late writes are refused instead of overwriting the new holder's
/// keys. Checked twice: in memory before every write, which costs nothing and stops a process
/// that knows it is late, and, for a guard made by [`WriteGuard::leased`], by the database in
/// each write's transaction against the lease, which also stops one that does not know yet.
#[derive(Clone, Default)]
pub struct WriteGuard(Option<Arc<Guard>>);

struct Guard {
    allows: Box<dyn Fn() -> bool + Send + Sync>,
    lease: Option<crate::cluster::Fence>,
    on_refused: Option<OnRefused>,
}

impl WriteGuard {
    /// Writes allowed while `allows` answers true.
    pub fn new(allows: impl Fn() -> bool + Send + Sync + 'static) -> WriteGuard {
        WriteGuard(Some(Arc::new(Guard { allows: Box::new(allows), lease: None, on_refused: None })))
    }

    /// Writes allowed while `allows` answers true and the database still sees `lease` as the
    /// device's holder; `on_refused` hears of each write the database refused.
    pub fn leased(
        lease: crate::cluster::Fence,
        allows: impl Fn() -> bool + Send + Sync + 'static,
        on_refused: impl Fn() + Send + Sync + 'static,
    ) -> WriteGuard {
        WriteGuard(Some(Arc::new(Guard {
            allows: Box::new(allows),
            lease: Some(lease),
            on_refused: Some(Arc::new(on_refused)),
        })))
    }

    /// Whether a write may go ahead now (always, without a guard).
    pub fn allows(&self) -> bool {
        self.0.as_ref().is_none_or(|guard| (guard.allows)())
    }

    /// The lease the database checks writes against, if any, and who hears of refusals.
    pub fn lease(&self) -> Option<(&crate::cluster::Fence, Option<OnRefused>)> {
        let guard = self.0.as_ref()?;
        Some((guard.lease.as_ref()?, guard.on_refused.clone()))
    }
}

impl std::fmt::Debug for WriteGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            None => f.write_str("WriteGuard(none)"),
            Some(guard) => f.debug_tuple("WriteGuard").field(&guard.lease).finish(),
        }
    }
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
    /// A voice note (push-to-talk audio, OGG/Opus).
    Voice,
    Document,
    /// A sticker (WebP).
    Sticker,
}

impl MediaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Video => "video",
            MediaKind::Audio => "audio",
            MediaKind::Voice => "voice",
            MediaKind::Document => "document",
            MediaKind::Sticker => "sticker",
        }
    }

    pub fn parse(s: &str) -> Option<MediaKind> {
        match s {
            "image" => Some(MediaKind::Image),
            "video" => Some(MediaKind::Video),
            "audio" => Some(MediaKind::Audio),
            "voice" => Some(MediaKind::Voice),
            "document" => Some(MediaKind::Document),
            "sticker" => Some(MediaKind::Sticker),
            _ => None,
        }
    }
}

/// Media attached to an inbound message: its details, and where the driver can download the
/// bytes from (the bytes stay with WhatsApp until [`Session::download`] fetches them).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InboundMedia {
    pub kind: String,
    pub mime: Option<String>,
    pub size: Option<u64>,
    pub filename: Option<String>,
    pub caption: Option<String>,
    /// What [`Session::download`] needs to fetch the bytes, in the driver's own format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Which message an action (a reaction, an edit, a deletion, a quote, a read mark) is about.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MessageKey {
    /// The chat the message is in.
    pub chat: Jid,
    /// WhatsApp's id of the message.
    pub wa_id: String,
    /// Whether this device's account sent it.
    pub from_me: bool,
    /// Who wrote it, when that is not the chat itself (a group member); `None` in a direct
    /// chat.
    pub participant: Option<Jid>,
}

/// The message a reply quotes.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Quote {
    pub key: MessageKey,
    /// Its text, shown in the quote bubble.
    pub text: Option<String>,
}

/// What an outgoing message is.
#[derive(Debug, Clone)]
pub enum Content {
    Text(String),
    Media(OutboundMedia),
    Location(Location),
    Contacts(Vec<ContactCard>),
    Poll(PollSpec),
    /// A reaction to `target`; an empty emoji removes this device's reaction.
    Reaction {
        target: MessageKey,
        emoji: String,
    },
    /// A new text for a text message this device sent.
    Edit {
        target: MessageKey,
        text: String,
    },
    /// Deletes a message this device sent, for everyone.
    Revoke {
        target: MessageKey,
    },
}

/// A message this device sends: its content, the message it quotes and who it mentions.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub content: Content,
    pub reply_to: Option<Quote>,
    /// Mentioned accounts' JIDs (`…@s.whatsapp.net`).
    pub mentions: Vec<Jid>,
    /// Shown as forwarded.
    pub forwarded: bool,
}

impl Outgoing {
    pub fn new(content: Content) -> Outgoing {
        Outgoing { content, reply_to: None, mentions: Vec::new(), forwarded: false }
    }

    pub fn text(text: &str) -> Outgoing {
        Outgoing::new(Content::Text(text.to_string()))
    }
}

/// What the device shows the other side: typing or recording in a chat, or being online.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PresenceState {
    /// "typing…" in the chat.
    Typing,
    /// "recording audio…" in the chat.
    Recording,
    /// Stops typing or recording.
    Paused,
    /// Online.
    Available,
    /// Offline.
    Unavailable,
}

impl PresenceState {
    pub fn as_str(self) -> &'static str {
        match self {
            PresenceState::Typing => "typing",
            PresenceState::Recording => "recording",
            PresenceState::Paused => "paused",
            PresenceState::Available => "available",
            PresenceState::Unavailable => "unavailable",
        }
    }

    /// Whether the state is about one chat (and needs one).
    pub fn in_chat(self) -> bool {
        matches!(self, PresenceState::Typing | PresenceState::Recording | PresenceState::Paused)
    }
}

/// The message an inbound message quotes.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct InboundQuote {
    /// WhatsApp's id of the quoted message.
    pub wa_id: String,
    /// Who wrote it (phone number, or JID when no number is known), when WhatsApp says.
    pub sender: Option<String>,
    /// Its text (or caption), when WhatsApp includes it.
    pub text: Option<String>,
}

/// A change the other side made to a message that arrived earlier (or that this device sent),
/// named by its WhatsApp id.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Update {
    Reaction { target: String, emoji: String },
    Edit { target: String, text: String },
    Revoke { target: String },
    PollVote { target: String, options: Vec<String> },
}

impl Update {
    pub fn target(&self) -> &str {
        match self {
            Update::Reaction { target, .. }
            | Update::Edit { target, .. }
            | Update::Revoke { target }
            | Update::PollVote { target, .. } => target,
        }
    }
}

/// What an inbound message is, besides its text and media.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub enum InboundBody {
    /// Text and/or media (the message's `text` and `media`).
    #[default]
    Plain,
    Location(Location),
    Contacts(Vec<ContactCard>),
    Poll(PollSpec),
    /// A change to another message; not a message of its own.
    Update(Update),
    /// A kind the gateway does not know, by WhatsApp's name for it.
    Unsupported(String),
}

/// A message that arrived at the device.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct InboundMessage {
    /// WhatsApp's message id (unique per device together with the chat).
    pub wa_id: String,
    /// The chat: the sender's JID for a direct message, the group's JID for a group.
    pub chat: Jid,
    /// The sender's phone number (digits), or their JID when no number is known (LID).
    pub sender: String,
    /// The sender's LID JID (`…@lid`) when WhatsApp addressed the message by LID; kept next
    /// to the number in `sender` when that is known.
    pub sender_lid: Option<String>,
    pub push_name: Option<String>,
    pub is_group: bool,
    /// Text, extended text or a media caption.
    pub text: Option<String>,
    pub media: Option<InboundMedia>,
    pub body: InboundBody,
    /// The message this one answers.
    pub reply_to: Option<InboundQuote>,
    /// Phone numbers (or JIDs) mentioned in the text.
    pub mentions: Vec<String>,
    pub timestamp: DateTime<Utc>,
    /// Sent by this same account (from the phone or by this gateway); never answered.
    pub from_me: bool,
}

/// A delivery report for messages the device sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ReceiptKind {
    /// The server accepted the message.
    Server,
    Delivered,
    Read,
    /// The server refused the message.
    Error,
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    /// WhatsApp told which phone number is behind a LID: `lid` is the LID JID (`…@lid`),
    /// `phone` the number's digits. `ack`, when given, learns whether the gateway stored it.
    LidMapping { lid: Jid, phone: String, ack: Option<Ack> },
    /// Something happened to a group the device is in.
    Group(GroupEvent),
    /// The account changed how a chat shows (archived, pinned, muted) on the phone or another
    /// linked device; WhatsApp syncs it as app state. `chat` is the contact's user JID, its
    /// LID or the group's JID. `ack`, when given, learns whether the gateway stored it.
    ChatState { chat: Jid, change: ChatChange, at: DateTime<Utc>, ack: Option<Ack> },
    /// The account's address book names a contact (app state): `jid` is the contact's user
    /// JID, or its LID when WhatsApp gives no number. `ack` as for `ChatState`.
    ContactName { jid: Jid, name: SavedName, ack: Option<Ack> },
    /// The session is over; the supervisor decides from the reason whether to start again.
    Stopped(StopReason),
}

/// One change to a chat's state, as the phone made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatChange {
    Archived(bool),
    Pinned(bool),
    /// Muted until the given time, or with no end (`None`).
    Muted {
        until: Option<DateTime<Utc>>,
    },
    Unmuted,
}

/// The name the account saved a contact under in its address book.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SavedName {
    pub full_name: Option<String>,
    pub first_name: Option<String>,
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
    /// What the request names does not exist (an unknown group, an invalid invite code).
    #[error("{0}")]
    NotFound(String),
    /// WhatsApp refused: the device lacks the right (not a group admin, not a member).
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Failed(String),
}

/// What WhatsApp tells about a contact.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ContactProfile {
    /// The "about" text, when the contact's privacy settings show it.
    pub about: Option<String>,
    /// A URL of the profile picture (WhatsApp's, valid for a while), when there is one to see.
    pub picture_url: Option<String>,
    /// Whether the number is a WhatsApp Business account.
    pub business: bool,
    /// The business's verified name, when it has one.
    pub business_name: Option<String>,
    /// The contact's LID JID (`…@lid`), when WhatsApp told it.
    pub lid: Option<String>,
}

/// Result of checking whether a number has WhatsApp.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
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
    /// A new WhatsApp message id for a message this device sends. The gateway takes it before
    /// the first attempt and records it, so every retry, and a resend after a crash, is the
    /// same message to WhatsApp and to the recipient.
    fn new_message_id(&self) -> String;

    /// Sends `message` to `to` as WhatsApp message `id` (media is uploaded first); returns
    /// once WhatsApp accepted it (the server's ack, where the network gives one). An error
    /// after the message went out is possible (the ack was lost): sending the same id again is
    /// then safe.
    async fn send(&self, to: &Jid, message: &Outgoing, id: &str) -> Result<(), DriverError>;

    /// Sends text, like [`Session::send`].
    async fn send_text(&self, to: &Jid, text: &str, id: &str) -> Result<(), DriverError> {
        self.send(to, &Outgoing::text(text), id).await
    }

    /// Sends media, like [`Session::send`].
    async fn send_media(&self, to: &Jid, media: &OutboundMedia, id: &str) -> Result<(), DriverError> {
        self.send(to, &Outgoing::new(Content::Media(media.clone())), id).await
    }

    /// Marks messages of one sender in `chat` read (blue ticks on their side). `sender` is the
    /// group member who wrote them, `None` in a direct chat.
    async fn mark_read(&self, chat: &Jid, sender: Option<&Jid>, wa_ids: &[String])
        -> Result<(), DriverError>;

    /// Shows `state`: in `chat` for typing, recording and paused, to everyone for available
    /// and unavailable.
    async fn presence(&self, chat: Option<&Jid>, state: PresenceState) -> Result<(), DriverError>;

    /// Downloads the bytes of inbound media of `kind` from what the driver put in
    /// [`InboundMedia::source`] (decrypted and checked against WhatsApp's digest).
    async fn download(&self, kind: &str, source: &str) -> Result<Vec<u8>, DriverError>;

    /// The groups the device is a member of, with their members.
    async fn groups(&self) -> Result<Vec<GroupInfo>, DriverError>;

    /// One group's metadata; `NotFound` when the group does not exist or the device is not
    /// in it.
    async fn group(&self, group: &Jid) -> Result<GroupInfo, DriverError>;

    /// Creates a group of the device and `participants` (user JIDs); answers its metadata
    /// and what happened to each participant.
    async fn create_group(
        &self,
        subject: &str,
        participants: &[Jid],
    ) -> Result<(GroupInfo, Vec<ParticipantOutcome>), DriverError>;

    /// Changes a group's subject, description or settings (`Forbidden` unless allowed).
    async fn update_group(&self, group: &Jid, change: &GroupChange) -> Result<(), DriverError>;

    /// Adds, removes, promotes or demotes participants (user JIDs); answers per participant.
    async fn group_participants(
        &self,
        group: &Jid,
        action: ParticipantAction,
        participants: &[Jid],
    ) -> Result<Vec<ParticipantOutcome>, DriverError>;

    /// The group's invite code; `reset` revokes the current one and answers the new one.
    async fn group_invite(&self, group: &Jid, reset: bool) -> Result<String, DriverError>;

    /// Joins the group behind an invite code; answers the group JID.
    async fn join_group(&self, code: &str) -> Result<Jid, DriverError>;

    /// Leaves a group.
    async fn leave_group(&self, group: &Jid) -> Result<(), DriverError>;

    /// What WhatsApp tells about a contact (user JID): about text, profile picture, business.
    async fn contact_profile(&self, contact: &Jid) -> Result<ContactProfile, DriverError>;

    /// Blocks (`true`) or unblocks a contact (user JID).
    async fn block(&self, contact: &Jid, blocked: bool) -> Result<(), DriverError>;

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
