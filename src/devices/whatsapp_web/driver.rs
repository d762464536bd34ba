//! The `whatsapp-web` driver: one `whatsapp-rust` client per device, all in this process,
//! with the session keys in the gateway's database ([`SqlxStore`]).
//!
//! Inbound messages reach the gateway through the library's durability hook, so WhatsApp is
//! acknowledged only after the message is stored. A send goes out under the id the gateway
//! chose and returns once the server acked it (the library's own send returns when the frame
//! is written). The library reconnects dropped connections by itself (Fibonacci backoff); when
//! it gives up (QR codes exhausted, stream replaced, logged out, refused) the session reports
//! `Stopped` and the device supervisor decides what follows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};
use whatsapp_rust::bot::{Bot, BotHandle};
use whatsapp_rust::client::Client;
use whatsapp_rust::transport::{Transport, TransportEvent, TransportFactory};
use whatsapp_rust::types::events::{Event, InboundMessage as WaInbound};
use whatsapp_rust::waproto::whatsapp as wa;
use whatsapp_rust::{InboundDurabilityHook, Jid, TokioRuntime};

use super::mapping;
use super::store::SqlxStore;
use crate::db::Db;
use crate::devices::driver::{
    Ack, ContactProfile, Content, DeviceKey, Driver, DriverError, DriverEvent, GroupChange, GroupInfo,
    InboundBody, MediaKind, NumberCheck, OutboundMedia, Outgoing, ParticipantAction, ParticipantOutcome,
    PresenceState, Session, StopReason, Update,
};

/// How long a new session may stay silent before its status says WhatsApp is unreachable.
const NO_ANSWER_AFTER: Duration = Duration::from_secs(10);

/// How long a send waits for the server's ack before it counts as failed (and is retried
/// under the same id). The server acks within a second; a connection that drops first fails
/// the wait at once.
const SERVER_ACK_TIMEOUT: Duration = Duration::from_secs(20);

/// What the server answered a send: `Ok` for an ack, `Err` with the error code of a nack.
type AckOutcome = Result<(), String>;

/// Sends waiting for the server's ack, by message id. Dropping a waiter (the connection went
/// away) fails the wait.
#[derive(Clone, Default)]
struct AckWaiters(Arc<Mutex<HashMap<String, oneshot::Sender<AckOutcome>>>>);

impl AckWaiters {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<AckOutcome>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn register(&self, id: &str) -> oneshot::Receiver<AckOutcome> {
        let (tx, rx) = oneshot::channel();
        self.lock().insert(id.to_string(), tx);
        rx
    }

    fn settle(&self, id: &str, outcome: AckOutcome) {
        if let Some(tx) = self.lock().remove(id) {
            let _ = tx.send(outcome);
        }
    }

    /// Stops waiting for `id` (its send failed, or the wait gave up).
    fn forget(&self, id: &str) {
        self.lock().remove(id);
    }

    /// The connection is gone: no ack will come for what is waiting.
    fn fail_all(&self) {
        self.lock().clear();
    }
}

/// Where the driver connects: the real network by default; tests plug in a fake server.
#[derive(Clone)]
pub struct WaNetwork {
    pub transport: Arc<dyn TransportFactory>,
    pub http: Arc<dyn whatsapp_rust::http::HttpClient>,
}

impl WaNetwork {
    /// The real WhatsApp network: WebSocket transport and one shared HTTP client for media.
    pub fn real() -> WaNetwork {
        WaNetwork {
            transport: Arc::new(whatsapp_rust::transport::TokioWebSocketTransportFactory::new()),
            http: Arc::new(whatsapp_rust::http::UreqHttpClient::new()),
        }
    }
}

/// Hands the builder a shared factory (the builder wants an owned one), and remembers the
/// session's latest connection error for its status.
struct SharedTransport {
    factory: Arc<dyn TransportFactory>,
    last_error: Arc<Mutex<Option<String>>>,
}

#[async_trait]
impl TransportFactory for SharedTransport {
    async fn create_transport(
        &self,
    ) -> Result<(Arc<dyn Transport>, whatsapp_rust::async_channel::Receiver<TransportEvent>), anyhow::Error>
    {
        let created = self.factory.create_transport().await;
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) =
            created.as_ref().err().map(|e| format!("{e:#}"));
        created
    }
}

/// Hands the builder the shared HTTP client.
struct SharedHttp(Arc<dyn whatsapp_rust::http::HttpClient>);

#[async_trait]
impl whatsapp_rust::http::HttpClient for SharedHttp {
    async fn execute(
        &self,
        request: whatsapp_rust::http::HttpRequest,
    ) -> anyhow::Result<whatsapp_rust::http::HttpResponse> {
        self.0.execute(request).await
    }
}

/// The real-network driver.
pub struct WhatsappWeb {
    db: Db,
    network: WaNetwork,
    device_name: String,
    version: Option<(u32, u32, u32)>,
}

impl WhatsappWeb {
    /// `version` pins the WhatsApp Web version announced; `None` asks WhatsApp for the latest.
    pub fn new(db: Db, network: WaNetwork, device_name: String, version: Option<(u32, u32, u32)>) -> Self {
        WhatsappWeb { db, network, device_name, version }
    }
}

/// Stores inbound batches before the library acknowledges them: it hands the batch to the
/// supervisor with an [`Ack`] and waits for the answer.
struct StoreFirst {
    events: mpsc::Sender<DriverEvent>,
    /// Where the device's polls are stored: a vote names the options it chose by their hashes.
    db: Db,
    device: DeviceKey,
}

/// The phone number behind a LID sender that came without one (`sender_pn` is optional on the
/// wire), from the LID-to-number mappings the client learnt earlier (number checks, earlier
/// messages, group member lists).
async fn known_number(client: &Client, info: &whatsapp_rust::types::message::MessageInfo) -> Option<Jid> {
    let source = &info.source;
    if !source.sender.is_lid() || source.sender_alt.as_ref().is_some_and(|alt| alt.is_pn()) {
        return None;
    }
    let entry = client.get_lid_pn_entry(&source.sender).await.ok().flatten()?;
    Some(Jid::pn(entry.phone_number.to_string()))
}

/// How often a poll vote's secret is looked up again when the store does not have it yet
/// (waits of 20, 40, … up to 500 ms: about 2.3 s in all).
const POLL_SECRET_RETRIES: u32 = 7;

impl StoreFirst {
    /// The options a poll vote chose, when it opens: the vote is encrypted with a key derived
    /// from the poll's message secret (which the library kept when the poll was sent or
    /// received), and names the options by their SHA-256, matched against the poll's options as
    /// the gateway stored them. `None` leaves the vote an unsupported message.
    async fn poll_vote(
        &self,
        client: &Client,
        message: &wa::Message,
        info: &whatsapp_rust::types::message::MessageInfo,
    ) -> Option<Update> {
        use whatsapp_rust::features::PollVoteCiphertext;
        use whatsapp_rust::wacore::poll::compute_option_hash;
        use whatsapp_rust::wacore::proto_helpers::MessageExt;
        use whatsapp_rust::wacore_binary::JidExt;
        let update = message.get_base_message().poll_update_message.as_option()?;
        let key = update.poll_creation_message_key.as_option()?;
        let poll_id = key.id.as_deref()?;
        let vote = update.vote.as_option()?;
        let source = &info.source;
        let voter = source.sender.to_non_ad();
        let me = client.pn()?.to_non_ad();
        // The key is the voter's view: `from_me` when the voter created the poll; in a group
        // `participant` is the creator; in a direct chat the creator is the voter's other side.
        let creator: Jid = if key.from_me == Some(true) {
            voter.clone()
        } else if let Some(participant) = key.participant.as_deref().filter(|p| !p.is_empty()) {
            participant.parse().ok()?
        } else if source.is_from_me {
            source.chat.to_non_ad()
        } else {
            me.clone()
        };
        // The secret is kept under the chat and the creator as the library saw them when the
        // poll went by: a phone number or a LID.
        let mut chats = vec![source.chat.to_non_ad()];
        chats.extend(source.sender_alt.iter().filter(|_| !source.is_group).map(Jid::to_non_ad));
        let mut creators = vec![creator.clone()];
        if creator.is_same_user_as(&me) {
            creators.extend(client.lid().map(|lid| lid.to_non_ad()));
        }
        // A vote on a poll the gateway does not have changes nothing: no need for its secret.
        let id = self.db.message_id_by_wa_id(self.device.device_id, poll_id).await.ok()??;
        let poll = self.db.message(self.device.tenant_id, id).await.ok()??.details().poll?;
        // The library writes secrets behind (buffered, flushed on its own task) and only its
        // own lookups see the buffer; a vote right after the poll went out can arrive before
        // the flush, so the store is asked again for a moment.
        let backend = client.persistence_manager().backend();
        let mut secret = None;
        let mut pause = Duration::from_millis(20);
        'find: for attempt in 0..=POLL_SECRET_RETRIES {
            for chat in &chats {
                for who in &creators {
                    let found = backend.get_msg_secret(&chat.to_string(), &who.to_string(), poll_id).await;
                    if let Ok(Some(found)) = found {
                        secret = Some(found);
                        break 'find;
                    }
                }
            }
            if attempt < POLL_SECRET_RETRIES {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(500));
            }
        }
        let ciphertext =
            PollVoteCiphertext { enc_payload: vote.enc_payload.as_deref()?, enc_iv: vote.enc_iv.as_deref()? };
        let chosen =
            client.polls().decrypt_vote(ciphertext, &secret?, poll_id, &creator, &voter).await.ok()?;
        let options = poll
            .options
            .into_iter()
            .filter(|o| chosen.iter().any(|hash| hash.as_slice() == compute_option_hash(o).as_slice()))
            .collect();
        Some(Update::PollVote { target: poll_id.to_string(), options })
    }
}

#[async_trait]
impl InboundDurabilityHook for StoreFirst {
    async fn on_messages(&self, client: Arc<Client>, batch: &[WaInbound]) -> anyhow::Result<()> {
        let mut messages = Vec::with_capacity(batch.len());
        // Messages, and reactions, edits, deletions and poll votes (which change one).
        for m in batch.iter().filter(|m| mapping::is_chat_message(&m.message)) {
            let mut message = match known_number(&client, &m.info).await {
                Some(number) => {
                    let mut info = (*m.info).clone();
                    info.source.sender_alt = Some(number);
                    mapping::inbound_message(&m.message, &info)
                }
                None => mapping::inbound_message(&m.message, &m.info),
            };
            if let Some(vote) = self.poll_vote(&client, &m.message, &m.info).await {
                message.body = InboundBody::Update(vote);
            }
            messages.push(message);
        }
        if messages.is_empty() {
            return Ok(());
        }
        let (ack, stored) = Ack::new();
        self.events
            .send(DriverEvent::Messages { messages, ack: Some(ack) })
            .await
            .map_err(|_| anyhow::anyhow!("the gateway is not listening"))?;
        match tokio::time::timeout(Duration::from_secs(30), stored).await {
            Ok(Ok(true)) => Ok(()),
            Ok(_) => Err(anyhow::anyhow!("the gateway could not store the messages")),
            Err(_) => Err(anyhow::anyhow!("the gateway did not store the messages in time")),
        }
    }
}

#[async_trait]
impl Driver for WhatsappWeb {
    async fn open(
        &self,
        device: DeviceKey,
        events: mpsc::Sender<DriverEvent>,
    ) -> Result<Arc<dyn Session>, DriverError> {
        let store = Arc::new(
            SqlxStore::new(self.db.clone(), device.device_id)
                .reporting_lids(events.clone())
                .guarded(device.writes.clone()),
        );
        let handler_events = events.clone();
        let handler_store = store.clone();
        let acks = AckWaiters::default();
        let handler_acks = acks.clone();
        // The library retries failed connection attempts silently (it only logs them); note
        // whether anything happened so a session that cannot reach WhatsApp says so.
        let progressed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let handler_progress = progressed.clone();
        let last_error = Arc::new(Mutex::new(None));
        let mut builder = Bot::builder()
            .with_backend_arc(store.clone())
            .with_transport_factory(SharedTransport {
                factory: self.network.transport.clone(),
                last_error: last_error.clone(),
            })
            .with_http_client(SharedHttp(self.network.http.clone()))
            .with_runtime(TokioRuntime)
            .skip_history_sync()
            .with_device_props(
                whatsapp_rust::wacore::store::DevicePropsOverride::new().with_os(self.device_name.clone()),
            )
            .with_inbound_durability_hook(StoreFirst {
                events: events.clone(),
                db: self.db.clone(),
                device: device.clone(),
            });
        if let Some(version) = self.version {
            builder = builder.with_version(version);
        }
        let bot = builder
            .on_event(move |event: Arc<Event>, client| {
                let events = handler_events.clone();
                let progressed = handler_progress.clone();
                let store = handler_store.clone();
                let acks = handler_acks.clone();
                async move {
                    match &*event {
                        Event::ServerAck(ack) => {
                            acks.settle(&ack.id, ack.error.clone().map_or(Ok(()), Err));
                        }
                        Event::Disconnected(_)
                        | Event::LoggedOut(_)
                        | Event::StreamReplaced(_)
                        | Event::ConnectFailure(_) => acks.fail_all(),
                        _ => {}
                    }
                    // The account's own ids tell a change of its own membership (joined, left)
                    // from other members'.
                    let own: Vec<Jid> = client.pn().into_iter().chain(client.lid()).collect();
                    if let Some(mapped) = mapping::driver_event_knowing(&event, &own) {
                        if matches!(mapped, DriverEvent::Stopped(StopReason::LoggedOut(_))) {
                            // Dead keys: the supervisor wipes them, a late save must not return.
                            store.retire().await;
                        }
                        if matches!(
                            mapped,
                            DriverEvent::Qr { .. } | DriverEvent::Connected | DriverEvent::Paired { .. }
                        ) {
                            progressed.store(true, std::sync::atomic::Ordering::Relaxed);
                        }
                        let _ = events.send(mapped).await;
                    }
                }
            })
            .build()
            .await
            .map_err(|e| DriverError::Failed(format!("could not start the WhatsApp client: {e}")))?;
        let handle = bot.spawn();
        let client = handle.client();
        let watchdog_events = events.clone();
        tokio::spawn(async move {
            tokio::time::sleep(NO_ANSWER_AFTER).await;
            if !progressed.load(std::sync::atomic::Ordering::Relaxed) && !watchdog_events.is_closed() {
                let cause = match last_error.lock().unwrap_or_else(|e| e.into_inner()).take() {
                    Some(error) => format!("last error: {error}"),
                    None => "is the network reachable?".to_string(),
                };
                let reason = format!(
                    "no answer from WhatsApp within {} s ({cause}); still retrying",
                    NO_ANSWER_AFTER.as_secs()
                );
                let _ = watchdog_events.send(DriverEvent::Disconnected { reason }).await;
            }
        });
        Ok(Arc::new(WaSession {
            client,
            handle: Mutex::new(Some(handle)),
            events,
            db: self.db.clone(),
            device,
            store,
            acks,
        }))
    }

    async fn forget(&self, device_id: i64) -> Result<(), DriverError> {
        SqlxStore::wipe(&self.db, device_id).await.map_err(|e| DriverError::Failed(e.to_string()))
    }

    async fn is_paired(&self, device_id: i64) -> Result<bool, DriverError> {
        SqlxStore::has_device(&self.db, device_id).await.map_err(|e| DriverError::Failed(e.to_string()))
    }
}

/// One device's live client.
struct WaSession {
    client: Arc<Client>,
    handle: Mutex<Option<BotHandle>>,
    events: mpsc::Sender<DriverEvent>,
    db: Db,
    device: DeviceKey,
    store: Arc<SqlxStore>,
    acks: AckWaiters,
}

fn parse_jid(to: &str) -> Result<Jid, DriverError> {
    to.parse::<Jid>().map_err(|e| DriverError::Invalid(format!("not a WhatsApp id: {to} ({e})")))
}

fn send_error(e: whatsapp_rust::SendError) -> DriverError {
    match e {
        whatsapp_rust::SendError::NotLoggedIn => DriverError::NotConnected,
        whatsapp_rust::SendError::InvalidRequest(m) => DriverError::Invalid(m),
        other => DriverError::Failed(other.to_string()),
    }
}

impl WaSession {
    fn logged_in(&self) -> Result<(), DriverError> {
        if self.client.is_logged_in() {
            Ok(())
        } else {
            Err(DriverError::NotConnected)
        }
    }

    fn take_handle(&self) -> Option<BotHandle> {
        self.handle.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Uploads media and builds its message (without quote or mentions).
    async fn upload_media(&self, media: &OutboundMedia) -> Result<wa::Message, DriverError> {
        use whatsapp_rust::media;
        use whatsapp_rust::wacore::download::MediaType;
        if !self.client.is_logged_in() {
            return Err(DriverError::NotConnected);
        }
        let media_type = match media.kind {
            MediaKind::Image => MediaType::Image,
            MediaKind::Video => MediaType::Video,
            MediaKind::Audio | MediaKind::Voice => MediaType::Audio,
            MediaKind::Document => MediaType::Document,
            MediaKind::Sticker => MediaType::Sticker,
        };
        let uploaded = self
            .client
            .upload(media.bytes.as_ref().clone(), media_type, whatsapp_rust::UploadOptions::default())
            .await
            .map_err(|e| DriverError::Failed(format!("media upload failed: {e}")))?;
        let mime = Some(media.mime.clone());
        let message = match media.kind {
            MediaKind::Image => media::image_message(
                uploaded,
                media::ImageOptions { caption: media.caption.clone(), mimetype: mime, ..Default::default() },
            ),
            MediaKind::Video => media::video_message(
                uploaded,
                media::VideoOptions { caption: media.caption.clone(), mimetype: mime, ..Default::default() },
            ),
            MediaKind::Audio | MediaKind::Voice => media::audio_message(
                uploaded,
                media::AudioOptions {
                    mimetype: mime,
                    ptt: Some(media.kind == MediaKind::Voice),
                    ..Default::default()
                },
            ),
            MediaKind::Sticker => super::outgoing::sticker_message(uploaded, mime),
            MediaKind::Document => media::document_message(
                uploaded,
                media::DocumentOptions {
                    mimetype: mime,
                    file_name: media.filename.clone(),
                    caption: media.caption.clone(),
                    ..Default::default()
                },
            ),
        };
        Ok(message)
    }

    /// Sends `message` as `id` and waits for the server's ack.
    async fn send_acked(&self, to: Jid, message: wa::Message, id: &str) -> Result<(), DriverError> {
        if !self.client.is_logged_in() {
            return Err(DriverError::NotConnected);
        }
        // Registered first: the ack may arrive before the send call returns.
        let acked = self.acks.register(id);
        let options = whatsapp_rust::send::SendOptions::default().with_message_id(id);
        if let Err(e) = self.client.send_message_with_options(to, message, options).await {
            self.acks.forget(id);
            return Err(send_error(e));
        }
        match tokio::time::timeout(SERVER_ACK_TIMEOUT, acked).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(code))) => {
                Err(DriverError::Invalid(format!("WhatsApp refused the message (error {code})")))
            }
            // The connection went away before the ack: it is sent again once connected.
            Ok(Err(_)) => Err(DriverError::NotConnected),
            Err(_) => {
                self.acks.forget(id);
                Err(DriverError::Failed(format!(
                    "WhatsApp did not acknowledge the message within {} s",
                    SERVER_ACK_TIMEOUT.as_secs()
                )))
            }
        }
    }
}

#[async_trait]
impl Session for WaSession {
    fn new_message_id(&self) -> String {
        self.client.generate_message_id()
    }

    async fn send(&self, to: &String, message: &Outgoing, id: &str) -> Result<(), DriverError> {
        let jid = parse_jid(to)?;
        // The account's own JID names it as the author in keys and quotes of its own messages.
        let me = self.client.pn().ok_or(DriverError::NotConnected)?.to_non_ad_string();
        let wa_message = match &message.content {
            Content::Media(media) => self.upload_media(media).await?,
            other => super::outgoing::message_of(other, &me).map_err(DriverError::Invalid)?,
        };
        let wa_message = super::outgoing::with_context(wa_message, message, &me);
        self.send_acked(jid, wa_message, id).await
    }

    async fn mark_read(
        &self,
        chat: &String,
        sender: Option<&String>,
        wa_ids: &[String],
    ) -> Result<(), DriverError> {
        if !self.client.is_logged_in() {
            return Err(DriverError::NotConnected);
        }
        let chat = parse_jid(chat)?;
        let sender = sender.map(|s| parse_jid(s)).transpose()?;
        let ids: Vec<&str> = wa_ids.iter().map(String::as_str).collect();
        self.client
            .mark_as_read(&chat, sender.as_ref(), &ids)
            .await
            .map_err(|e| DriverError::Failed(format!("could not send the read receipt: {e}")))
    }

    async fn presence(&self, chat: Option<&String>, state: PresenceState) -> Result<(), DriverError> {
        use whatsapp_rust::features::ChatStateType;
        use whatsapp_rust::features::PresenceError;
        if !self.client.is_logged_in() {
            return Err(DriverError::NotConnected);
        }
        let chat_state = match state {
            PresenceState::Typing => Some(ChatStateType::Composing),
            PresenceState::Recording => Some(ChatStateType::Recording),
            PresenceState::Paused => Some(ChatStateType::Paused),
            PresenceState::Available | PresenceState::Unavailable => None,
        };
        if let Some(chat_state) = chat_state {
            let chat = chat.ok_or_else(|| {
                DriverError::Invalid(format!("{} needs the chat to show it in", state.as_str()))
            })?;
            let chat = parse_jid(chat)?;
            return self
                .client
                .chatstate()
                .send(&chat, chat_state)
                .await
                .map_err(|e| DriverError::Failed(format!("could not send the chat state: {e}")));
        }
        let presence = self.client.presence();
        let sent = if state == PresenceState::Available {
            presence.set_available().await
        } else {
            presence.set_unavailable().await
        };
        sent.map_err(|e| match e {
            // WhatsApp shows presence under the account's name, which the phone shares after
            // linking (or the app-state sync brings).
            PresenceError::PushNameEmpty => {
                DriverError::Invalid("the account's name is not known to this device yet".into())
            }
            other => DriverError::Failed(format!("could not send the presence: {other}")),
        })
    }

    async fn download(&self, kind: &str, source: &str) -> Result<Vec<u8>, DriverError> {
        if !self.client.is_logged_in() {
            return Err(DriverError::NotConnected);
        }
        let media = mapping::media_message(kind, source).map_err(DriverError::Invalid)?;
        self.client
            .download(media.as_ref())
            .await
            .map_err(|e| DriverError::Failed(format!("media download failed: {e}")))
    }

    async fn request_pair_code(&self, phone: &str) -> Result<String, DriverError> {
        let options = whatsapp_rust::pair_code::PairCodeOptions {
            phone_number: phone.to_string(),
            ..Default::default()
        };
        self.client
            .pair_with_code(options)
            .await
            .map_err(|e| DriverError::Failed(format!("pair code refused: {e}")))
    }

    async fn check_numbers(&self, numbers: &[String]) -> Result<Vec<NumberCheck>, DriverError> {
        if !self.client.is_logged_in() {
            return Err(DriverError::NotConnected);
        }
        let jids: Vec<Jid> = numbers.iter().map(|n| Jid::pn(n.as_str())).collect();
        let results = self
            .client
            .contacts()
            .is_on_whatsapp(&jids)
            .await
            .map_err(|e| DriverError::Failed(format!("number check failed: {e}")))?;
        Ok(numbers
            .iter()
            .map(|n| {
                let hit = results.iter().find(|r| r.jid.user.as_str() == n.as_str() && r.is_registered);
                NumberCheck {
                    number: n.clone(),
                    on_whatsapp: hit.is_some(),
                    jid: hit.map(|r| r.jid.to_non_ad_string()),
                }
            })
            .collect())
    }

    async fn groups(&self) -> Result<Vec<GroupInfo>, DriverError> {
        self.logged_in()?;
        super::groups::groups(&self.client).await
    }

    async fn group(&self, group: &String) -> Result<GroupInfo, DriverError> {
        self.logged_in()?;
        super::groups::group(&self.client, group).await
    }

    async fn create_group(
        &self,
        subject: &str,
        participants: &[String],
    ) -> Result<(GroupInfo, Vec<ParticipantOutcome>), DriverError> {
        self.logged_in()?;
        super::groups::create_group(&self.client, subject, participants).await
    }

    async fn update_group(&self, group: &String, change: &GroupChange) -> Result<(), DriverError> {
        self.logged_in()?;
        super::groups::update_group(&self.client, group, change).await
    }

    async fn group_participants(
        &self,
        group: &String,
        action: ParticipantAction,
        participants: &[String],
    ) -> Result<Vec<ParticipantOutcome>, DriverError> {
        self.logged_in()?;
        super::groups::group_participants(&self.client, group, action, participants).await
    }

    async fn group_invite(&self, group: &String, reset: bool) -> Result<String, DriverError> {
        self.logged_in()?;
        super::groups::group_invite(&self.client, group, reset).await
    }

    async fn join_group(&self, code: &str) -> Result<String, DriverError> {
        self.logged_in()?;
        super::groups::join_group(&self.client, code).await
    }

    async fn leave_group(&self, group: &String) -> Result<(), DriverError> {
        self.logged_in()?;
        super::groups::leave_group(&self.client, group).await
    }

    async fn contact_profile(&self, contact: &String) -> Result<ContactProfile, DriverError> {
        self.logged_in()?;
        super::contacts::contact_profile(&self.client, contact).await
    }

    async fn block(&self, contact: &String, blocked: bool) -> Result<(), DriverError> {
        self.logged_in()?;
        super::contacts::block(&self.client, contact, blocked).await
    }

    async fn logout(&self) -> Result<(), DriverError> {
        self.client.logout().await;
        if let Some(handle) = self.take_handle() {
            handle.shutdown().await;
        }
        self.store.retire().await;
        SqlxStore::wipe(&self.db, self.device.device_id)
            .await
            .map_err(|e| DriverError::Failed(e.to_string()))?;
        let _ = self
            .events
            .send(DriverEvent::Stopped(StopReason::LoggedOut("logged out by the gateway".into())))
            .await;
        Ok(())
    }

    async fn close(&self) {
        self.acks.fail_all();
        if let Some(handle) = self.take_handle() {
            handle.shutdown().await;
        }
        let _ = self.events.send(DriverEvent::Stopped(StopReason::Closed)).await;
    }
}

impl Drop for WaSession {
    fn drop(&mut self) {
        // A session dropped without close(): stop its client rather than leak a connection.
        if let Some(handle) = self.take_handle() {
            handle.abort();
        }
    }
}
