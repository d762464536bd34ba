//! The `whatsapp-web` driver: one `whatsapp-rust` client per device, all in this process,
//! with the session keys in the gateway's database ([`SqlxStore`]).
//!
//! Inbound messages reach the gateway through the library's durability hook, so WhatsApp is
//! acknowledged only after the message is stored. The library reconnects dropped connections
//! by itself (Fibonacci backoff); when it gives up (QR codes exhausted, stream replaced, logged
//! out, refused) the session reports `Stopped` and the device supervisor decides what follows.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;
use whatsapp_rust::bot::{Bot, BotHandle};
use whatsapp_rust::client::Client;
use whatsapp_rust::transport::{Transport, TransportEvent, TransportFactory};
use whatsapp_rust::types::events::{Event, InboundMessage as WaInbound};
use whatsapp_rust::{InboundDurabilityHook, Jid, TokioRuntime};

use super::mapping;
use super::store::SqlxStore;
use crate::db::Db;
use crate::devices::driver::{
    Ack, DeviceKey, Driver, DriverError, DriverEvent, MediaKind, NumberCheck, OutboundMedia, Session,
    StopReason,
};

/// How long a new session may stay silent before its status says WhatsApp is unreachable.
const NO_ANSWER_AFTER: Duration = Duration::from_secs(10);

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
}

#[async_trait]
impl InboundDurabilityHook for StoreFirst {
    async fn on_messages(&self, _client: Arc<Client>, batch: &[WaInbound]) -> anyhow::Result<()> {
        let messages: Vec<_> = batch.iter().map(|m| mapping::inbound_message(&m.message, &m.info)).collect();
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
        let store = Arc::new(SqlxStore::new(self.db.clone(), device.device_id));
        let handler_events = events.clone();
        let handler_store = store.clone();
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
            .with_inbound_durability_hook(StoreFirst { events: events.clone() });
        if let Some(version) = self.version {
            builder = builder.with_version(version);
        }
        let bot = builder
            .on_event(move |event: Arc<Event>, _client| {
                let events = handler_events.clone();
                let progressed = handler_progress.clone();
                let store = handler_store.clone();
                async move {
                    if let Some(mapped) = mapping::driver_event(&event) {
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
    fn take_handle(&self) -> Option<BotHandle> {
        self.handle.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

#[async_trait]
impl Session for WaSession {
    async fn send_text(&self, to: &String, text: &str) -> Result<String, DriverError> {
        if !self.client.is_logged_in() {
            return Err(DriverError::NotConnected);
        }
        let jid = parse_jid(to)?;
        let sent = self.client.send_text(jid, text).await.map_err(send_error)?;
        Ok(sent.message_id)
    }

    async fn send_media(&self, to: &String, media: &OutboundMedia) -> Result<String, DriverError> {
        use whatsapp_rust::media;
        use whatsapp_rust::wacore::download::MediaType;
        if !self.client.is_logged_in() {
            return Err(DriverError::NotConnected);
        }
        let jid = parse_jid(to)?;
        let media_type = match media.kind {
            MediaKind::Image => MediaType::Image,
            MediaKind::Video => MediaType::Video,
            MediaKind::Audio => MediaType::Audio,
            MediaKind::Document => MediaType::Document,
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
            MediaKind::Audio => {
                media::audio_message(uploaded, media::AudioOptions { mimetype: mime, ..Default::default() })
            }
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
        let sent = self.client.send_message(jid, message).await.map_err(send_error)?;
        Ok(sent.message_id)
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
