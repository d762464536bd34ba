//! The inbound side: store every message once, then run the tenant's pipeline on it.
//!
//! Storing happens before WhatsApp is acknowledged (the driver waits for it), so a crash loses
//! nothing. The pipeline runs after the store, outside the driver's event loop, so a slow stage
//! never holds up the device; a message whose pipeline did not finish (`processed_at` is null)
//! is run again at start. The stages are the seam where keyword rules, plugins and reply
//! webhooks plug in, in that order: each returns replies to send and whether to stop the chain.
//! The pipeline passes every reply through one loop guard ([`ReplyGuard`]) before sending it.

mod lids;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::json;

use super::guard::{ReplyGuard, Verdict};
use super::keeper::MediaKeeper;
use super::media::{MediaFetcher, MediaOptions};
use super::outbound::{Outbound, SendError, SendRequest};
use super::view::{CHANGE_EDITED, CHANGE_POLL_VOTE, CHANGE_REACTION, CHANGE_REVOKED};
use crate::content::{ContactCard, Details, Location, QuotedRef};
use crate::db::dead_letters::NewDeadLetter;
use crate::db::messages::{MessageRef, Stored};
use crate::db::{without_nul, Db, DbError, DeviceRow, MessageRow, NewMessage, TenantRow};
use crate::devices::driver::{DeviceKey, InboundBody, InboundMessage, OutboundMedia, ReceiptKind, Update};
use crate::devices::manager::MessageSink;
use crate::limits::LimitError;
use crate::metrics::Metrics;
use crate::phone::{lid_jid, Recipient};
use crate::time::rfc3339_ms;

/// What a stage sees: the stored message, the device it arrived at and its tenant (read once
/// per message).
pub struct InboundContext {
    pub tenant_id: i64,
    pub tenant: TenantRow,
    pub device: DeviceRow,
    pub message: MessageRow,
}

/// A reply a stage wants sent to the chat, or done to the message.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub content: ReplyContent,
    /// Which stage produced it (`auto_reply`, `plugin`, `webhook`), recorded as the source.
    pub source: &'static str,
    /// The answer quotes the message it answers.
    pub quote: bool,
}

/// What a reply sends or does.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplyContent {
    Text(String),
    /// Media fetched from `url` (public addresses only, size- and time-limited) when sent.
    Media(ReplyMedia),
    Location(Location),
    Contacts(Vec<ContactCard>),
    /// A reaction to the message (no message is sent, nothing counts against the limit).
    React(String),
    /// Marks the message read.
    MarkRead,
}

impl ReplyContent {
    /// Whether this sends a message to the chat (a reaction or a read mark does not).
    fn is_message(&self) -> bool {
        !matches!(self, ReplyContent::React(_) | ReplyContent::MarkRead)
    }
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
        Reply::new(ReplyContent::Text(text.into()), source)
    }

    pub fn media(media: ReplyMedia, source: &'static str) -> Reply {
        Reply::new(ReplyContent::Media(media), source)
    }

    pub fn new(content: ReplyContent, source: &'static str) -> Reply {
        Reply { content, source, quote: false }
    }

    /// The same reply, quoting the message it answers.
    pub fn quoting(self) -> Reply {
        Reply { quote: true, ..self }
    }

    /// The reply with U+0000 replaced in its texts: stages relay text from plugins and
    /// webhook answers, and the sent message is stored.
    fn storable(self) -> Reply {
        let clean = |s: String| if s.contains('\0') { without_nul(&s).into_owned() } else { s };
        let content = match self.content {
            ReplyContent::Text(text) => ReplyContent::Text(clean(text)),
            ReplyContent::Media(m) => ReplyContent::Media(ReplyMedia {
                caption: m.caption.map(clean),
                filename: m.filename.map(clean),
                ..m
            }),
            ReplyContent::Location(l) => ReplyContent::Location(Location {
                name: l.name.map(clean),
                address: l.address.map(clean),
                ..l
            }),
            ReplyContent::Contacts(c) => ReplyContent::Contacts(
                c.into_iter().map(|c| ContactCard { name: clean(c.name), phone: clean(c.phone) }).collect(),
            ),
            other => other,
        };
        Reply { content, ..self }
    }
}

/// What a stage decided.
#[derive(Debug, Default)]
pub struct StageOutcome {
    pub replies: Vec<Reply>,
    /// Stop the chain: later stages do not see the message.
    pub stop: bool,
}

/// One step of the inbound pipeline: decides what to answer; the pipeline sends it.
#[async_trait]
pub trait Stage: Send + Sync {
    /// The stage's name in the metrics: `rules`, `plugins`, `webhooks`.
    fn name(&self) -> &'static str;

    async fn run(&self, ctx: &InboundContext) -> StageOutcome;
}

/// Stores inbound messages and runs the pipeline. Implements the devices' [`MessageSink`].
#[derive(Clone)]
pub struct Inbound {
    db: Db,
    outbound: Outbound,
    stages: Arc<Vec<Arc<dyn Stage>>>,
    guard: Arc<ReplyGuard>,
    media: MediaFetcher,
    keeper: MediaKeeper,
    store_failures: Arc<StoreFailures>,
    /// Messages whose pipeline runs in this process now: a resume leaves them alone.
    running: Arc<Mutex<HashSet<i64>>>,
    metrics: Metrics,
    tasks: tokio_util::task::TaskTracker,
}

impl Inbound {
    pub fn new(
        db: Db,
        outbound: Outbound,
        stages: Vec<Arc<dyn Stage>>,
        guard: ReplyGuard,
        media: MediaFetcher,
        keeper: MediaKeeper,
        tasks: tokio_util::task::TaskTracker,
    ) -> Self {
        let metrics = outbound.metrics().clone();
        Inbound {
            db,
            outbound,
            stages: Arc::new(stages),
            guard: Arc::new(guard),
            media,
            keeper,
            store_failures: Arc::default(),
            running: Arc::default(),
            metrics,
            tasks,
        }
    }

    /// Runs the pipeline for the device's messages whose pipeline never finished (stored
    /// before a crash, or by a process that lost the device): done by the process that takes
    /// the device, so no two processes resume the same messages.
    pub async fn resume(&self, device_id: i64) -> Result<usize, DbError> {
        let pending = self.db.unprocessed_inbound_of(device_id, 1000).await?;
        let mut resumed = 0;
        for (tenant, id) in pending {
            if self.lock_running().contains(&id) {
                continue;
            }
            if let Some(row) = self.db.message(tenant, id).await? {
                let me = self.clone();
                self.tasks.spawn(async move { me.process(row).await });
                resumed += 1;
            }
        }
        Ok(resumed)
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashSet<i64>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn process(&self, message: MessageRow) {
        let id = message.id;
        if !self.lock_running().insert(id) {
            return;
        }
        let started = std::time::Instant::now();
        if let Err(e) = self.run_pipeline(message).await {
            tracing::warn!(message_id = id, error = %e, "inbound pipeline failed");
        }
        if let Err(e) = self.db.mark_processed(id).await {
            tracing::warn!(message_id = id, error = %e, "could not mark the message processed");
        }
        self.metrics.pipeline_run(started.elapsed());
        self.lock_running().remove(&id);
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
        let ctx = InboundContext { tenant_id: tenant.id, tenant, device, message };
        let mut guard = self.guard.for_message();
        for (stage_no, stage) in self.stages.iter().enumerate() {
            let outcome = stage.run(&ctx).await;
            let result = match (outcome.stop, outcome.replies.is_empty()) {
                (true, _) => "stopped",
                (false, false) => "replied",
                (false, true) => "nothing",
            };
            self.metrics.pipeline_stage(stage.name(), result);
            for (reply_no, reply) in outcome.replies.into_iter().enumerate() {
                if !reply.content.is_message() {
                    // A reaction or a read mark cannot start a loop: it is not a message the
                    // other side's automation answers.
                    self.act(&ctx, reply).await;
                    continue;
                }
                match guard.admit(&ctx).await {
                    Verdict::Send => {}
                    Verdict::Echo => {
                        tracing::info!(
                            message_id = ctx.message.id,
                            source = reply.source,
                            "loop guard: not answering text the gateway sent"
                        );
                        continue;
                    }
                    Verdict::TooMany => {
                        tracing::info!(
                            message_id = ctx.message.id,
                            source = reply.source,
                            "loop guard: too many automatic replies to this chat in the last minute"
                        );
                        continue;
                    }
                }
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
        let reply = reply.storable();
        let mut details = Details::default();
        if reply.quote {
            details.reply_to = ctx.message.wa_id.clone().map(|wa_id| QuotedRef {
                id: Some(ctx.message.id),
                wa_id,
                sender: (ctx.message.direction == "in").then(|| ctx.message.sender.clone()),
                from_me: ctx.message.direction == "out",
                text: ctx.message.text.as_deref().map(|t| crate::webhooks::truncate(t, 200)),
            });
        }
        let (text, media) = match reply.content {
            ReplyContent::Text(text) => (Some(text), None),
            ReplyContent::Location(location) => match location.checked() {
                Ok(location) => {
                    let label = location.name.clone();
                    details.location = Some(location);
                    (label, None)
                }
                Err(why) => {
                    let error = format!("the location reply is not valid: {why}");
                    self.record_unsent(ctx, &to, None, reply.source, error).await;
                    return;
                }
            },
            ReplyContent::Contacts(cards) => {
                let digits = |p: &str| match Recipient::parse(p, "0") {
                    Ok(r) => r.number().map(str::to_string).ok_or_else(|| "not a phone number".to_string()),
                    Err(e) => Err(e.to_string()),
                };
                match crate::content::check_contacts(cards, digits) {
                    Ok(cards) => {
                        let names = cards.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ");
                        details.contacts = cards;
                        (Some(names), None)
                    }
                    Err(why) => {
                        let error = format!("the contact reply is not valid: {why}");
                        self.record_unsent(ctx, &to, None, reply.source, error).await;
                        return;
                    }
                }
            }
            ReplyContent::React(_) | ReplyContent::MarkRead => return,
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
            package: ctx.tenant.package.clone(),
            device: ctx.device.clone(),
            to: to.clone(),
            text: text.clone(),
            media,
            details,
            source: reply.source,
            idempotency_key: Some(idempotency_key),
            asynchronous: true,
            require_connected: false,
            activity: None,
        };
        match self.outbound.send(req).await {
            Ok(_) => {}
            Err(SendError::Limit(LimitError::Exceeded { limit })) => {
                self.record_unsent(ctx, &to, text, reply.source, format!("limit_exceeded: {limit}")).await
            }
            Err(e) => tracing::info!(message_id = ctx.message.id, error = %e, "reply not sent"),
        }
    }

    /// Does a reaction or read mark a stage asked for, on the message it runs for. It needs the
    /// device connected now; otherwise it is dropped (logged), like a send that cannot wait.
    async fn act(&self, ctx: &InboundContext, reply: Reply) {
        let Some(session) = self.outbound.session(ctx.device.id) else {
            tracing::info!(
                message_id = ctx.message.id,
                source = reply.source,
                "device offline: reaction or read mark dropped"
            );
            return;
        };
        let done = match &reply.content {
            ReplyContent::React(emoji) => {
                let emoji = without_nul(emoji);
                super::service::actions::react(&self.db, &*session, &ctx.message, &emoji).await
            }
            ReplyContent::MarkRead => {
                super::service::actions::mark_read(&self.db, &*session, &ctx.message).await
            }
            _ => return,
        };
        if let Err(e) = done {
            tracing::info!(message_id = ctx.message.id, source = reply.source, error = %e, "reaction or read mark not done");
        }
    }

    /// Applies a reaction, edit, deletion or poll vote from WhatsApp to the message it names,
    /// when this device stored it in the same chat; the status history records it, and the
    /// webhook pump turns that into the event. An edit or deletion counts only from the
    /// message's author. A change to a message the gateway does not have is dropped.
    async fn apply_update(
        &self,
        device: &DeviceKey,
        m: &InboundMessage,
        update: &Update,
    ) -> Result<(), DbError> {
        let from = if m.from_me { "me".to_string() } else { without_nul(&m.sender).into_owned() };
        let at = rfc3339_ms(m.timestamp.timestamp_millis());
        let target = without_nul(update.target()).into_owned();
        let target = MessageRef::WaId { device_id: device.device_id, wa_id: &target };
        let chat = m.chat.clone();
        let same_chat = move |row: &MessageRow| row.chat == chat;
        let author = |row: &MessageRow| {
            if row.direction == "out" {
                m.from_me
            } else {
                !m.from_me && row.sender == m.sender
            }
        };
        let changed = match update {
            Update::Reaction { emoji, .. } => {
                let emoji = without_nul(emoji).into_owned();
                self.db
                    .change_message(target, CHANGE_REACTION, |row, _, d| {
                        (same_chat(row) && d.react(&from, &emoji, &at))
                            .then(|| json!({"from": from, "emoji": emoji}))
                    })
                    .await?
            }
            Update::Edit { text, .. } => {
                let text = without_nul(text).into_owned();
                self.db
                    .change_message(target, CHANGE_EDITED, |row, t, d| {
                        if !same_chat(row) || !author(row) || t.as_deref() == Some(text.as_str()) {
                            return None;
                        }
                        let previous = t.replace(text.clone());
                        d.previous_texts.extend(previous.clone());
                        d.edited_at = Some(at.clone());
                        Some(json!({"from": from, "text": text, "previous": previous}))
                    })
                    .await?
            }
            Update::Revoke { .. } => {
                self.db
                    .change_message(target, CHANGE_REVOKED, |row, _, d| {
                        if !same_chat(row) || !author(row) || d.revoked_at.is_some() {
                            return None;
                        }
                        d.revoked_at = Some(at.clone());
                        Some(json!({"from": from}))
                    })
                    .await?
            }
            Update::PollVote { options, .. } => {
                let options: Vec<String> = options.iter().map(|o| without_nul(o).into_owned()).collect();
                self.db
                    .change_message(target, CHANGE_POLL_VOTE, |row, _, d| {
                        let poll = d.poll.as_ref().filter(|_| same_chat(row))?;
                        let mut chosen: Vec<String> = Vec::new();
                        for o in options.iter().filter(|o| poll.options.contains(o)) {
                            if !chosen.contains(o) {
                                chosen.push(o.clone());
                            }
                        }
                        if !poll.multiple {
                            chosen.truncate(1);
                        }
                        let before = d.votes.get(&from).cloned().unwrap_or_default();
                        if before == chosen {
                            return None;
                        }
                        if chosen.is_empty() {
                            d.votes.remove(&from);
                        } else {
                            d.votes.insert(from.clone(), chosen.clone());
                        }
                        Some(json!({"from": from, "options": chosen}))
                    })
                    .await?
            }
        };
        match changed {
            None => tracing::debug!(
                device_id = device.device_id,
                "a change to a message the gateway does not have"
            ),
            Some((row, true)) => self.outbound.feed().content_changed(row.user_id, row.id),
            Some(_) => {}
        }
        Ok(())
    }

    async fn fetch(&self, m: ReplyMedia) -> Result<OutboundMedia, String> {
        let options = MediaOptions::parse(m.kind.as_deref(), m.caption, m.filename.as_deref())
            .map_err(|e| e.to_string())?;
        self.media.fetch(&m.url, options).await.map_err(|e| e.to_string())
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
        match self.db.insert_outbound(&failed, None, None).await {
            Ok(Stored::New(row)) => self.outbound.feed().publish(row.user_id, row.id),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(message_id = ctx.message.id, error = %e, "could not record an unsent reply")
            }
        }
    }
}

/// The `type` an inbound message is stored with, and its details (`quoted`: the gateway's id
/// of the message it quotes, when stored here).
fn kind_and_details(device: &DeviceKey, m: &InboundMessage, quoted: Option<i64>) -> (String, Details) {
    let mut details = Details {
        reply_to: m.reply_to.as_ref().map(|q| QuotedRef {
            id: quoted,
            wa_id: q.wa_id.clone(),
            sender: q.sender.clone(),
            // A quote of this account's own message names the device's number as its author.
            from_me: q.sender.as_deref() == Some(device.phone.as_str()),
            text: q.text.as_deref().map(|t| crate::webhooks::truncate(t, 200)),
        }),
        mentions: m.mentions.clone(),
        ..Default::default()
    };
    let kind = match &m.body {
        InboundBody::Plain | InboundBody::Update(_) => {
            m.media.as_ref().map(|x| x.kind.clone()).unwrap_or_else(|| "text".into())
        }
        InboundBody::Location(l) => {
            details.location = Some(l.clone());
            "location".into()
        }
        InboundBody::Contacts(c) => {
            details.contacts = c.clone();
            "contact".into()
        }
        InboundBody::Poll(p) => {
            details.poll = Some(p.clone());
            "poll".into()
        }
        InboundBody::Unsupported(name) => {
            details.unsupported = Some(name.chars().take(64).collect());
            "unsupported".into()
        }
    };
    (kind, details)
}

/// The row an inbound message is stored as. Its text comes from strangers: U+0000, which
/// PostgreSQL cannot store, is replaced, so such a message is stored like any other.
fn new_message(device: &DeviceKey, m: &InboundMessage, quoted: Option<i64>) -> NewMessage {
    let media = m.media.as_ref().and_then(|x| serde_json::to_string(x).ok());
    let (kind, details) = kind_and_details(device, m, quoted);
    let kind = without_nul(&kind).into_owned();
    // Everything in the details came from the sender too; the JSON is cleaned as a whole.
    let details = details.to_json().map(|j| without_nul(&j).into_owned());
    let clean = |s: &Option<String>| s.as_deref().map(|s| without_nul(s).into_owned());
    let m = &InboundMessage {
        wa_id: without_nul(&m.wa_id).into_owned(),
        sender: without_nul(&m.sender).into_owned(),
        push_name: clean(&m.push_name),
        text: clean(&m.text),
        ..m.clone()
    };
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
            details,
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
            sender_lid: m.sender_lid.clone(),
            is_group: m.is_group,
            media,
            details,
            source: "whatsapp".into(),
            ..Default::default()
        }
    }
}

/// The record of an inbound message given up on: the message as JSON, and the history row
/// standing in for it (no content, status `failed`, the reason as its error).
fn dead_letter(
    device: &DeviceKey,
    m: &InboundMessage,
    reason: &str,
    attempts: u32,
) -> (NewDeadLetter, NewMessage) {
    let payload = serde_json::json!({
        "wa_id": m.wa_id,
        "chat": m.chat,
        "sender": m.sender,
        "push_name": m.push_name,
        "is_group": m.is_group,
        "text": m.text,
        "media": m.media,
        "timestamp": m.timestamp.timestamp_millis(),
        "from_me": m.from_me,
    });
    let reason = format!("the gateway could not store this message: {}", without_nul(reason));
    let stored = new_message(device, m, None);
    let placeholder = NewMessage {
        text: None,
        media: None,
        details: None,
        push_name: None,
        status: "failed".into(),
        error: Some(reason.clone()),
        ..stored.clone()
    };
    let letter = NewDeadLetter {
        user_id: device.tenant_id,
        device_id: device.device_id,
        wa_id: stored.wa_id.clone().unwrap_or_default(),
        chat: stored.chat,
        sender: stored.sender,
        payload: payload.to_string(),
        reason,
        attempts: i64::from(attempts),
    };
    (letter, placeholder)
}

/// The digits of a phone number given as digits or as a user JID (`…@s.whatsapp.net`).
fn phone_of(input: &str) -> Option<String> {
    let input = input.trim();
    let user = match input.rsplit_once('@') {
        Some((local, "s.whatsapp.net" | "c.us")) => local.split(':').next().unwrap_or(local),
        Some(_) => return None,
        None => input.strip_prefix('+').unwrap_or(input),
    };
    let ok = (crate::phone::MIN_DIGITS..=crate::phone::MAX_DIGITS).contains(&user.len())
        && user.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| user.to_string())
}

/// Failed attempts to store inbound messages, by (device, WhatsApp id), in memory: after
/// [`STORE_ATTEMPTS`] a message becomes a dead letter. Bounded; forgetting a count only
/// means a few more attempts.
#[derive(Default)]
pub struct StoreFailures {
    counts: std::sync::Mutex<std::collections::HashMap<(i64, String), u32>>,
}

/// Attempts to store an inbound message before it is recorded as a dead letter.
pub const STORE_ATTEMPTS: u32 = 3;

impl StoreFailures {
    fn failed(&self, device_id: i64, wa_id: &str) -> u32 {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if counts.len() >= 10_000 {
            counts.clear();
        }
        let n = counts.entry((device_id, wa_id.to_string())).or_insert(0);
        *n += 1;
        *n
    }

    fn forget(&self, device_id: i64, wa_id: &str) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if !counts.is_empty() {
            counts.remove(&(device_id, wa_id.to_string()));
        }
    }
}

#[async_trait]
impl MessageSink for Inbound {
    async fn resume(&self, device: &DeviceKey) {
        match self.resume(device.device_id).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                device_id = device.device_id,
                messages = n,
                "resumed unfinished inbound pipelines"
            ),
            Err(e) => {
                tracing::warn!(device_id = device.device_id, error = %e, "cannot resume inbound pipelines")
            }
        }
    }

    /// Stores a batch; `false` (do not acknowledge, WhatsApp delivers it again) when a message
    /// could not be stored. A message refused [`STORE_ATTEMPTS`] times becomes a dead letter
    /// and counts as handled, so it neither comes back forever nor holds up the others.
    async fn inbound(&self, device: &DeviceKey, messages: Vec<InboundMessage>) -> bool {
        for m in &messages {
            if let InboundBody::Update(update) = &m.body {
                // A LID whose number is known counts as the number, as for messages: the
                // reaction or vote is from the number, in the number's chat.
                let resolved = lids::resolve(&self.db, device, m).await;
                let m = resolved.as_ref().unwrap_or(m);
                match self.apply_update(device, m, update).await {
                    Ok(()) => self.store_failures.forget(device.device_id, &m.wa_id),
                    Err(e) => {
                        let attempts = self.store_failures.failed(device.device_id, &m.wa_id);
                        tracing::error!(device_id = device.device_id, attempts, error = %e, "could not apply a change to a message");
                        if attempts < STORE_ATTEMPTS {
                            return false;
                        }
                        // Given up: a lost reaction or edit must not hold up the messages after it.
                        self.store_failures.forget(device.device_id, &m.wa_id);
                    }
                }
                continue;
            }
            let quoted = match &m.reply_to {
                Some(q) => {
                    self.db.message_id_by_wa_id(device.device_id, &without_nul(&q.wa_id)).await.ok().flatten()
                }
                None => None,
            };
            let resolved = lids::resolve(&self.db, device, m).await;
            let m = resolved.as_ref().unwrap_or(m);
            let mut new = new_message(device, m, quoted);
            if m.media.is_some() {
                let has_source = m.media.as_ref().is_some_and(|x| x.source.is_some());
                new.media_state = Some(self.keeper.initial_state(has_source).to_string());
            }
            match self.db.insert_inbound(&new).await {
                Ok(Some(row)) if row.direction == "in" => {
                    self.metrics.message(row.user_id, "in", "received", &row.kind);
                    self.keeper.download(row.clone());
                    self.store_failures.forget(device.device_id, &m.wa_id);
                    self.outbound.feed().publish(row.user_id, row.id);
                    let me = self.clone();
                    self.tasks.spawn(async move { me.process(row).await });
                }
                Ok(Some(row)) => {
                    self.keeper.download(row.clone());
                    self.store_failures.forget(device.device_id, &m.wa_id);
                    self.outbound.feed().publish(row.user_id, row.id);
                    let _ = self.db.mark_processed(row.id).await;
                }
                Ok(None) => {} // Already stored: WhatsApp redelivered it.
                Err(e) => {
                    if let Ok(true) = self.db.is_dead_letter(device.device_id, &without_nul(&m.wa_id)).await {
                        continue; // Given up on before: WhatsApp redelivered it.
                    }
                    let attempts = self.store_failures.failed(device.device_id, &m.wa_id);
                    tracing::error!(device_id = device.device_id, attempts, error = %e, "could not store an inbound message");
                    if attempts < STORE_ATTEMPTS {
                        return false;
                    }
                    let (letter, placeholder) = dead_letter(device, m, &e.to_string(), attempts);
                    match self.db.record_dead_letter(&letter, &placeholder).await {
                        Ok(row) => {
                            tracing::warn!(
                                device_id = device.device_id,
                                dead_letter = row.id,
                                "an inbound message that cannot be stored was recorded as a dead letter"
                            );
                            self.store_failures.forget(device.device_id, &m.wa_id);
                            if let Some(id) = row.message_id {
                                self.outbound.feed().publish(device.tenant_id, id);
                                let _ = self.db.mark_processed(id).await;
                            }
                        }
                        Err(e) => {
                            tracing::error!(device_id = device.device_id, error = %e, "could not record a dead letter");
                            return false;
                        }
                    }
                }
            }
        }
        true
    }

    async fn lid_mapping(&self, device: &DeviceKey, lid: &str, phone: &str) -> Result<bool, String> {
        let (Some(lid), Some(phone)) = (lid_jid(lid), phone_of(phone)) else {
            return Err(format!("not a LID and a phone number: {lid:?}, {phone:?}"));
        };
        // Most messages carrying both repeat a mapping already known: a read spares a write.
        match self.db.lid_mapping(device.tenant_id, device.device_id, &lid).await {
            Ok(Some(known)) if known.phone == phone => return Ok(false),
            _ => {}
        }
        self.db.learn_lid(device.tenant_id, device.device_id, &lid, &phone).await.map_err(|e| e.to_string())
    }

    async fn receipt(&self, device: &DeviceKey, wa_ids: Vec<String>, kind: ReceiptKind) {
        let status = match kind {
            ReceiptKind::Server => "sent",
            ReceiptKind::Delivered => "delivered",
            ReceiptKind::Read => "read",
            ReceiptKind::Error => {
                // A refusal (the server's nack): the sender records the same, whichever of the
                // two comes first.
                for wa_id in &wa_ids {
                    if let Ok(Some((_, id))) = self.db.system_outbound_by_wa_id(wa_id).await {
                        if let Ok(true) =
                            self.db.finish_outbound(id, "failed", Some("refused by WhatsApp"), None).await
                        {
                            self.outbound.feed().status_changed(device.tenant_id, id);
                        }
                    }
                }
                return;
            }
        };
        match self.db.apply_receipt(device.device_id, &wa_ids, status).await {
            Ok(changed) => {
                for (id, tenant) in changed {
                    self.outbound.feed().status_changed(tenant, id);
                }
            }
            Err(e) => tracing::warn!(device_id = device.device_id, error = %e, "could not apply a receipt"),
        }
    }
}
