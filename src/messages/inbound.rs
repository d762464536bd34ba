//! The inbound side: store every message once, then run the tenant's pipeline on it.
//!
//! Storing happens before WhatsApp is acknowledged (the driver waits for it), so a crash loses
//! nothing. The pipeline runs after the store, outside the driver's event loop, so a slow stage
//! never holds up the device; a message whose pipeline did not finish (`processed_at` is null)
//! is run again at start. The stages are the seam where keyword rules, plugins and reply
//! webhooks plug in (SPEC §8): each returns replies to send and whether to stop the chain.

use std::sync::Arc;

use async_trait::async_trait;

use super::media::{filename_from_url, MediaOptions};
use super::outbound::{Outbound, SendError, SendRequest};
use super::phone::Recipient;
use crate::config::WhatsappConfig;
use crate::db::{Db, DbError, DeviceRow, MessageRow, NewMessage};
use crate::devices::driver::{DeviceKey, InboundMessage, OutboundMedia, ReceiptKind};
use crate::devices::manager::MessageSink;
use crate::limits::LimitError;
use crate::net::HttpClient;

/// What a stage sees: the stored message and the device it arrived at.
pub struct InboundContext {
    pub tenant_id: i64,
    pub package: String,
    pub device: DeviceRow,
    pub message: MessageRow,
}

/// A reply a stage wants sent to the chat.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub content: ReplyContent,
    /// Which stage produced it (`auto_reply`, `plugin`, `webhook`), recorded as the source.
    pub source: &'static str,
}

/// What a reply sends.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplyContent {
    Text(String),
    /// Media fetched from `url` (public addresses only, size- and time-limited) when sent.
    Media(ReplyMedia),
}

/// A media reply by URL.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplyMedia {
    pub url: String,
    /// `image`, `video`, `audio` or `document`; detected from the content when absent.
    pub kind: Option<String>,
    pub caption: Option<String>,
    pub filename: Option<String>,
}

impl Reply {
    pub fn text(text: impl Into<String>, source: &'static str) -> Reply {
        Reply { content: ReplyContent::Text(text.into()), source }
    }

    pub fn media(media: ReplyMedia, source: &'static str) -> Reply {
        Reply { content: ReplyContent::Media(media), source }
    }
}

/// What a stage decided.
#[derive(Debug, Default)]
pub struct StageOutcome {
    pub replies: Vec<Reply>,
    /// Stop the chain: later stages do not see the message.
    pub stop: bool,
}

/// One step of the inbound pipeline.
#[async_trait]
pub trait Stage: Send + Sync {
    fn name(&self) -> &'static str;
    async fn run(&self, ctx: &InboundContext) -> StageOutcome;
}

/// Stores inbound messages and runs the pipeline. Implements the devices' [`MessageSink`].
#[derive(Clone)]
pub struct Inbound {
    db: Db,
    outbound: Outbound,
    stages: Arc<Vec<Arc<dyn Stage>>>,
    media: Arc<MediaFetch>,
    tasks: tokio_util::task::TaskTracker,
}

/// How media replies are fetched: the hardened client and the size caps.
pub struct MediaFetch {
    pub http: HttpClient,
    pub whatsapp: WhatsappConfig,
}

impl Inbound {
    pub fn new(
        db: Db,
        outbound: Outbound,
        stages: Vec<Arc<dyn Stage>>,
        media: MediaFetch,
        tasks: tokio_util::task::TaskTracker,
    ) -> Self {
        Inbound { db, outbound, stages: Arc::new(stages), media: Arc::new(media), tasks }
    }

    /// Runs the pipeline for messages stored before a restart whose pipeline never finished.
    pub async fn resume(&self) -> Result<usize, DbError> {
        let pending = self.db.unprocessed_inbound(1000).await?;
        let n = pending.len();
        for (tenant, id) in pending {
            if let Some(row) = self.db.message(tenant, id).await? {
                let me = self.clone();
                self.tasks.spawn(async move { me.process(row).await });
            }
        }
        Ok(n)
    }

    async fn process(&self, message: MessageRow) {
        let id = message.id;
        if let Err(e) = self.run_pipeline(message).await {
            tracing::warn!(message_id = id, error = %e, "inbound pipeline failed");
        }
        if let Err(e) = self.db.mark_processed(id).await {
            tracing::warn!(message_id = id, error = %e, "could not mark the message processed");
        }
    }

    async fn run_pipeline(&self, message: MessageRow) -> Result<(), DbError> {
        if self.stages.is_empty() {
            return Ok(());
        }
        let Some(device) = self.db.device(message.user_id, message.device_id).await? else { return Ok(()) };
        let Some(tenant) = self.db.tenant(message.user_id).await? else { return Ok(()) };
        if tenant.status != "active" {
            return Ok(());
        }
        let ctx = InboundContext { tenant_id: tenant.id, package: tenant.package, device, message };
        for (stage_no, stage) in self.stages.iter().enumerate() {
            let outcome = stage.run(&ctx).await;
            for (reply_no, reply) in outcome.replies.into_iter().enumerate() {
                // Keyed by message, stage and position: a pipeline run again after a crash
                // finds its replies already queued and sends none twice.
                let key = format!("reply:{}:{stage_no}:{reply_no}", ctx.message.id);
                self.reply(&ctx, reply, key).await;
            }
            if outcome.stop {
                break;
            }
        }
        Ok(())
    }

    /// Sends a reply to the chat the message came from, through the same device. A reply that
    /// cannot be sent (over the monthly limit, media that cannot be fetched) is stored as a
    /// failed outbound message with the reason, so the tenant sees it in the history.
    async fn reply(&self, ctx: &InboundContext, reply: Reply, idempotency_key: String) {
        let Ok(to) = Recipient::parse(&ctx.message.chat, "0") else { return };
        let (text, media) = match reply.content {
            ReplyContent::Text(text) => (Some(text), None),
            ReplyContent::Media(m) => {
                let caption = m.caption.clone();
                match self.fetch(m).await {
                    Ok(media) => (caption, Some(media)),
                    Err(why) => {
                        let error = format!("cannot fetch the media reply: {why}");
                        self.record_unsent(ctx, &to, caption, reply.source, error).await;
                        return;
                    }
                }
            }
        };
        let req = SendRequest {
            tenant: ctx.tenant_id,
            package: ctx.package.clone(),
            device: ctx.device.clone(),
            to: to.clone(),
            text: text.clone(),
            media,
            source: reply.source,
            idempotency_key: Some(idempotency_key),
            asynchronous: true,
            require_connected: false,
        };
        match self.outbound.send(req).await {
            Ok(_) => {}
            Err(SendError::Limit(LimitError::Exceeded { limit })) => {
                self.record_unsent(ctx, &to, text, reply.source, format!("limit_exceeded: {limit}")).await
            }
            Err(e) => tracing::info!(message_id = ctx.message.id, error = %e, "reply not sent"),
        }
    }

    async fn fetch(&self, m: ReplyMedia) -> Result<OutboundMedia, String> {
        let options = MediaOptions::parse(m.kind.as_deref(), m.caption, m.filename.as_deref())
            .map_err(|e| e.to_string())?;
        let (_, cap) = options.read_cap(&self.media.whatsapp);
        let (bytes, content_type) =
            self.media.http.get_capped(&m.url, cap).await.map_err(|e| e.to_string())?;
        options
            .build(
                Vec::from(bytes),
                content_type.as_deref(),
                filename_from_url(&m.url).as_deref(),
                &self.media.whatsapp,
            )
            .map_err(|e| e.to_string())
    }

    async fn record_unsent(
        &self,
        ctx: &InboundContext,
        to: &Recipient,
        text: Option<String>,
        source: &str,
        error: String,
    ) {
        let failed = NewMessage {
            user_id: ctx.tenant_id,
            device_id: ctx.device.id,
            direction: "out".into(),
            chat: to.jid(),
            sender: ctx.device.phone.clone(),
            recipient: to.as_str().to_string(),
            text,
            kind: "text".into(),
            status: "failed".into(),
            is_group: to.is_group(),
            source: source.into(),
            error: Some(error),
            ..Default::default()
        };
        if let Err(e) = self.db.insert_outbound(&failed).await {
            tracing::warn!(message_id = ctx.message.id, error = %e, "could not record an unsent reply");
        }
    }
}

fn new_message(device: &DeviceKey, m: &InboundMessage) -> NewMessage {
    let media = m.media.as_ref().and_then(|x| serde_json::to_string(x).ok());
    let kind = m.media.as_ref().map(|x| x.kind.clone()).unwrap_or_else(|| "text".into());
    if m.from_me {
        // Sent by this account from the phone (or echoed back): history only, never answered.
        NewMessage {
            user_id: device.tenant_id,
            device_id: device.device_id,
            direction: "out".into(),
            chat: m.chat.clone(),
            sender: device.phone.clone(),
            recipient: m.chat.split('@').next().unwrap_or_default().to_string(),
            text: m.text.clone(),
            kind,
            status: "sent".into(),
            wa_id: Some(m.wa_id.clone()),
            is_group: m.is_group,
            media,
            source: "phone".into(),
            ..Default::default()
        }
    } else {
        NewMessage {
            user_id: device.tenant_id,
            device_id: device.device_id,
            direction: "in".into(),
            chat: m.chat.clone(),
            sender: m.sender.clone(),
            recipient: device.phone.clone(),
            text: m.text.clone(),
            kind,
            status: "received".into(),
            wa_id: Some(m.wa_id.clone()),
            push_name: m.push_name.clone(),
            is_group: m.is_group,
            media,
            source: "whatsapp".into(),
            ..Default::default()
        }
    }
}

#[async_trait]
impl MessageSink for Inbound {
    async fn inbound(&self, device: &DeviceKey, messages: Vec<InboundMessage>) -> bool {
        for m in &messages {
            match self.db.insert_inbound(&new_message(device, m)).await {
                Ok(Some(row)) if row.direction == "in" => {
                    let me = self.clone();
                    self.tasks.spawn(async move { me.process(row).await });
                }
                Ok(Some(row)) => {
                    let _ = self.db.mark_processed(row.id).await;
                }
                Ok(None) => {} // Already stored: WhatsApp redelivered it.
                Err(e) => {
                    tracing::error!(device_id = device.device_id, error = %e, "could not store an inbound message");
                    return false;
                }
            }
        }
        true
    }

    async fn receipt(&self, device: &DeviceKey, wa_ids: Vec<String>, kind: ReceiptKind) {
        let status = match kind {
            ReceiptKind::Server => "sent",
            ReceiptKind::Delivered => "delivered",
            ReceiptKind::Read => "read",
            ReceiptKind::Error => {
                for wa_id in &wa_ids {
                    if let Ok(Some((_, id))) = self.db.system_outbound_by_wa_id(wa_id).await {
                        let _ =
                            self.db.set_message_status(id, "failed", None, Some("refused by WhatsApp")).await;
                    }
                }
                return;
            }
        };
        if let Err(e) = self.db.apply_receipt(device.device_id, &wa_ids, status).await {
            tracing::warn!(device_id = device.device_id, error = %e, "could not apply a receipt");
        }
    }
}
