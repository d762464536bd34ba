//! Messages a client sends, as the server and the addressed contact see them.
//!
//! Every `<message>` is taken apart per `<to jid>` (or its bare `<enc>`): each copy is decrypted
//! by the peer it is for (the contact, or the account's own phone for the copy every companion
//! sends its other devices), unpadded and decoded, and filed in that peer's inbox as a
//! [`Received`] with typed [`Content`]. Then the server acks the stanza, and the contact, as a
//! phone would, sends a delivery receipt (see [`FakeWhatsApp::set_auto_receipts`]); tests send
//! read receipts (or delivery ones when automatic receipts are off) with
//! [`FakeWhatsApp::contact_receipt`].
//!
//! Switches model a server or network in trouble: a swallowed stanza is neither acked nor
//! delivered; a stanza whose ack is lost is delivered, and the connection drops instead of the
//! ack (or stays, and the ack never comes).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Result};
use whatsapp_rust::transport::DisconnectReason;
use whatsapp_rust::wacore::proto_helpers::MessageExt as _;
use whatsapp_rust::wacore_binary::builder::NodeBuilder;
use whatsapp_rust::wacore_binary::{Jid, JidExt as _, Node};
use whatsapp_rust::waproto::whatsapp as wa;

use super::conn::{attr, Conn};
use super::directory::Who;
use super::peer::{EncKind, Peer};
use super::stanza::bytes_of;
use super::{unix_now, FakeEvent, FakeWhatsApp, Switches};

/// A message the client sent one of the fake's peers, as that peer decrypted it.
#[derive(Debug, Clone)]
pub struct Received {
    /// The stanza id (WhatsApp's message id).
    pub id: String,
    /// The companion device that sent it.
    pub from: Jid,
    /// The stanza's `to`: the contact's JID, or the group's.
    pub to: String,
    pub enc: EncKind,
    /// The message as decrypted; a phone copy's `DeviceSentMessage` is left wrapped.
    pub message: wa::Message,
    pub content: Content,
}

/// What a message carries, for assertions.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    Text(String),
    Media(MediaRef),
    Location {
        latitude: f64,
        longitude: f64,
        name: Option<String>,
        address: Option<String>,
    },
    /// Shared contacts: each one's display name and vCard.
    Contacts(Vec<(Option<String>, String)>),
    /// A poll: its question, options and how many a voter may choose (0: any number).
    Poll {
        question: String,
        options: Vec<String>,
        selectable: u32,
    },
    /// A reaction to message `target` (an empty emoji takes it back).
    Reaction {
        target: String,
        emoji: String,
    },
    /// A new text for message `target`.
    Edit {
        target: String,
        text: String,
    },
    /// Message `target` deleted for everyone.
    Revoke {
        target: String,
    },
    /// Nothing but a sender key for a group (the content follows as a group message).
    KeyDistribution,
    /// Anything else, by the name of its first set field.
    Other(String),
}

/// A media message's reference to its encrypted upload.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MediaRef {
    /// `image`, `video`, `audio`, `voice` (push-to-talk audio), `document` or `sticker`.
    pub kind: &'static str,
    pub url: Option<String>,
    pub direct_path: Option<String>,
    pub media_key: Vec<u8>,
    pub file_sha256: Vec<u8>,
    pub file_enc_sha256: Vec<u8>,
    pub file_length: Option<u64>,
    pub mimetype: Option<String>,
    pub caption: Option<String>,
    pub file_name: Option<String>,
}

impl Content {
    /// The content of `message` (looking inside the usual wrappers).
    pub fn of(message: &wa::Message) -> Content {
        use wa::message::protocol_message::Type as ProtocolType;
        let base = message.get_base_message();
        if let Some(text) = base.text_content() {
            return Content::Text(text.to_string());
        }
        if let Some(l) = base.location_message.as_option() {
            return Content::Location {
                latitude: l.degrees_latitude.unwrap_or_default(),
                longitude: l.degrees_longitude.unwrap_or_default(),
                name: l.name.clone(),
                address: l.address.clone(),
            };
        }
        let card =
            |c: &wa::message::ContactMessage| (c.display_name.clone(), c.vcard.clone().unwrap_or_default());
        if let Some(c) = base.contact_message.as_option() {
            return Content::Contacts(vec![card(c)]);
        }
        if let Some(a) = base.contacts_array_message.as_option() {
            return Content::Contacts(a.contacts.iter().map(card).collect());
        }
        let poll =
            [&base.poll_creation_message, &base.poll_creation_message_v2, &base.poll_creation_message_v3];
        if let Some(p) = poll.into_iter().find_map(|p| p.as_option()) {
            return Content::Poll {
                question: p.name.clone().unwrap_or_default(),
                options: p.options.iter().filter_map(|o| o.option_name.clone()).collect(),
                selectable: p.selectable_options_count.unwrap_or_default(),
            };
        }
        let target_of = |key: &whatsapp_rust::buffa::MessageField<wa::MessageKey>| {
            key.as_option().and_then(|k| k.id.clone()).unwrap_or_default()
        };
        if let Some(r) = base.reaction_message.as_option() {
            return Content::Reaction {
                target: target_of(&r.key),
                emoji: r.text.clone().unwrap_or_default(),
            };
        }
        if let Some(p) = base.protocol_message.as_option() {
            match p.r#type {
                Some(ProtocolType::REVOKE) => return Content::Revoke { target: target_of(&p.key) },
                Some(ProtocolType::MESSAGE_EDIT) => {
                    let text =
                        p.edited_message.as_option().and_then(|m| m.text_content()).unwrap_or_default();
                    return Content::Edit { target: target_of(&p.key), text: text.to_string() };
                }
                _ => {}
            }
        }
        macro_rules! media {
            ($field:ident, $kind:literal, caption: $caption:expr, name: $name:expr) => {
                if let Some(m) = base.$field.as_option() {
                    return Content::Media(MediaRef {
                        kind: $kind,
                        url: m.url.clone(),
                        direct_path: m.direct_path.clone(),
                        media_key: m.media_key.clone().unwrap_or_default(),
                        file_sha256: m.file_sha256.clone().unwrap_or_default(),
                        file_enc_sha256: m.file_enc_sha256.clone().unwrap_or_default(),
                        file_length: m.file_length,
                        mimetype: m.mimetype.clone(),
                        caption: $caption(m),
                        file_name: $name(m),
                    });
                }
            };
        }
        media!(image_message, "image", caption: |m: &wa::message::ImageMessage| m.caption.clone(), name: |_| None);
        media!(video_message, "video", caption: |m: &wa::message::VideoMessage| m.caption.clone(), name: |_| None);
        if base.audio_message.as_option().is_some_and(|a| a.ptt == Some(true)) {
            media!(audio_message, "voice", caption: |_| None, name: |_| None);
        }
        media!(audio_message, "audio", caption: |_| None, name: |_| None);
        media!(
            document_message,
            "document",
            caption: |m: &wa::message::DocumentMessage| m.caption.clone(),
            name: |m: &wa::message::DocumentMessage| m.file_name.clone()
        );
        media!(sticker_message, "sticker", caption: |_| None, name: |_| None);
        if base.sender_key_distribution_message.is_set() {
            return Content::KeyDistribution;
        }
        Content::Other(format!("{base:?}").chars().take(80).collect())
    }

    /// The text, if this is a text message.
    pub fn text(&self) -> Option<&str> {
        match self {
            Content::Text(t) => Some(t),
            _ => None,
        }
    }
}

/// Which receipt a contact sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptKind {
    Delivered,
    Read,
}

impl FakeWhatsApp {
    /// A `<message>` from a client: decrypt every copy for the fake's peers, then ack and let
    /// the contacts send their delivery receipts.
    pub(super) async fn on_client_message(self: &Arc<Self>, conn: &Arc<Conn>, node: Node) {
        let info = conn.info();
        let (Some(phone), Some(device)) = (info.phone.clone(), info.device) else { return };
        let to = attr(&node, "to").unwrap_or_default();
        let id = attr(&node, "id").unwrap_or_default();
        if let Some(account) = self.state.lock().unwrap().accounts.get_mut(&phone) {
            account.sent.push((to.clone(), id.clone()));
        }
        self.record(FakeEvent::MessageReceived { phone: phone.clone(), to: to.clone(), id: id.clone() });
        if self.take_switch(&phone, |s| &mut s.swallow) {
            self.record(FakeEvent::Swallowed { phone, id });
            return;
        }
        let sender = Jid::pn_device(phone.clone(), device);
        let to_jid: Option<Jid> = to.parse().ok();
        let mut fresh = Vec::new();
        let group = to_jid.clone().filter(|j| j.is_group());
        if let Some(to_jid) = &to_jid {
            if to_jid.is_group() {
                fresh = self.on_client_group_message(&sender, to_jid, &node).await;
            } else {
                for (target, kind, bytes) in pairwise_copies(&node, to_jid) {
                    if let Some(contact) =
                        self.decrypt_copy(&phone, &sender, &to, &id, &target, kind, &bytes).await
                    {
                        fresh.push(contact);
                    }
                }
            }
        }
        if self.take_switch(&phone, |s| &mut s.withhold_ack) {
            self.note(format!("withholding the ack of {id}"));
            return;
        }
        if self.take_switch(&phone, |s| &mut s.drop_before_ack) {
            self.note(format!("dropping connection {} instead of acking {id}", conn.id));
            conn.close(Some(DisconnectReason::ReadError("connection reset by the fake server".to_string())));
            return;
        }
        let ack = NodeBuilder::new("ack")
            .attr("class", "message")
            .attr("id", id.clone())
            .attr("from", to.clone())
            .attr("t", unix_now().to_string())
            .build();
        let _ = conn.send_node(&ack);
        if self.auto_receipts() {
            for contact in fresh {
                let node =
                    receipt_node(&contact, group.as_ref(), std::slice::from_ref(&id), ReceiptKind::Delivered);
                for device in self.companions(&phone) {
                    self.deliver(&phone, device, node.clone());
                }
            }
        }
    }

    /// Decrypts one pairwise copy of message `id` for `target`, and files it in the right inbox.
    /// Returns the contact's number when a contact got this id for the first time.
    #[allow(clippy::too_many_arguments)]
    async fn decrypt_copy(
        &self,
        phone: &str,
        sender: &Jid,
        to: &str,
        id: &str,
        target: &Jid,
        kind: EncKind,
        bytes: &[u8],
    ) -> Option<String> {
        let who = self.state.lock().unwrap().who(target);
        let peer = match &who {
            Who::Contact { phone: contact } => self.contact_peer(contact).await,
            Who::Account { phone: p, device: 0 } if p == phone => {
                return self.decrypt_phone_copy(phone, sender, to, id, kind, bytes).await;
            }
            // Other companions of the account, other accounts: not modelled.
            _ => return None,
        };
        let peer = match peer {
            Ok(peer) => peer,
            Err(e) => {
                self.note(format!("no peer for {target}: {e:#}"));
                return None;
            }
        };
        let by = target.user.to_string();
        match peer.decrypt(sender, kind, bytes).await {
            Ok(message) => {
                let Who::Contact { phone: contact } = who else { return None };
                let received = Received {
                    id: id.to_string(),
                    from: sender.clone(),
                    to: to.to_string(),
                    enc: kind,
                    content: Content::of(&message),
                    message,
                };
                let first = {
                    let mut state = self.state.lock().unwrap();
                    let inbox = &mut state.directory.contact(&contact).inbox;
                    let first = !inbox.iter().any(|r| r.id == id);
                    inbox.push(received);
                    first
                };
                self.record(FakeEvent::Decrypted {
                    by,
                    from: sender.to_string(),
                    id: id.to_string(),
                    enc: kind,
                });
                first.then_some(contact)
            }
            Err(e) => {
                self.record(FakeEvent::DecryptFailed {
                    by,
                    from: sender.to_string(),
                    id: id.to_string(),
                    error: format!("{e:#}"),
                });
                None
            }
        }
    }

    async fn decrypt_phone_copy(
        &self,
        phone: &str,
        sender: &Jid,
        to: &str,
        id: &str,
        kind: EncKind,
        bytes: &[u8],
    ) -> Option<String> {
        let peer = self.phone_peer(phone).await.ok()?;
        match peer.decrypt(sender, kind, bytes).await {
            Ok(message) => {
                let received = Received {
                    id: id.to_string(),
                    from: sender.clone(),
                    to: to.to_string(),
                    enc: kind,
                    content: Content::of(&message),
                    message,
                };
                if let Some(account) = self.state.lock().unwrap().accounts.get_mut(phone) {
                    account.phone_copies.push(received);
                }
                self.record(FakeEvent::Decrypted {
                    by: phone.to_string(),
                    from: sender.to_string(),
                    id: id.to_string(),
                    enc: kind,
                });
            }
            Err(e) => self.record(FakeEvent::DecryptFailed {
                by: phone.to_string(),
                from: sender.to_string(),
                id: id.to_string(),
                error: format!("{e:#}"),
            }),
        }
        None
    }

    /// The Signal peer of contact `phone` (created with the contact when first asked for).
    pub(super) async fn contact_peer(&self, phone: &str) -> Result<Arc<Peer>> {
        let cell = self.state.lock().unwrap().directory.contact(phone).peer.clone();
        let peer = cell
            .get_or_try_init(|| async { Peer::new(Jid::pn(phone.to_string()), None).await.map(Arc::new) });
        Ok(peer.await?.clone())
    }

    // ---- the test's side ----------------------------------------------------------------

    /// Contact `contact` (digits) sends the account `phone` a receipt for `ids` (one stanza;
    /// several ids go in a `<list>`, as the server aggregates them).
    pub fn contact_receipt(
        &self,
        phone: &str,
        contact: &str,
        ids: &[String],
        kind: ReceiptKind,
    ) -> Result<()> {
        if ids.is_empty() {
            return Err(anyhow!("a receipt needs an id"));
        }
        let node = receipt_node(contact, None, ids, kind);
        for device in self.companions(phone) {
            self.deliver(phone, device, node.clone());
        }
        Ok(())
    }

    /// Whether contacts send a delivery receipt as soon as they decrypted a message (default:
    /// yes, as phones do).
    pub fn set_auto_receipts(&self, enabled: bool) {
        self.state.lock().unwrap().auto_receipts = enabled;
    }

    fn auto_receipts(&self) -> bool {
        self.state.lock().unwrap().auto_receipts
    }

    /// Every copy contact `contact` decrypted, in arrival order (a resent message once per
    /// copy).
    pub fn received_by(&self, contact: &str) -> Vec<Received> {
        let state = self.state.lock().unwrap();
        state.directory.get(contact).map(|c| c.inbox.clone()).unwrap_or_default()
    }

    /// The messages contact `contact` got, as its phone shows them: one per message id, in
    /// the order they first arrived.
    pub fn messages_of(&self, contact: &str) -> Vec<Received> {
        let mut seen = Vec::new();
        for r in self.received_by(contact) {
            if !seen.iter().any(|s: &Received| s.id == r.id) {
                seen.push(r);
            }
        }
        seen
    }

    /// The copies the account's own phone decrypted (each wraps a `DeviceSentMessage`).
    pub fn phone_copies(&self, phone: &str) -> Vec<Received> {
        let state = self.state.lock().unwrap();
        state.accounts.get(phone).map(|a| a.phone_copies.clone()).unwrap_or_default()
    }

    /// Waits until contact `contact` got `n` distinct messages; returns them.
    pub async fn wait_messages_of(
        &self,
        contact: &str,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<Received>> {
        self.wait_until(&format!("{n} messages at {contact}"), timeout, |f| {
            f.messages_of(contact).len() >= n
        })
        .await?;
        Ok(self.messages_of(contact))
    }

    /// Makes the next `count` `<message>` stanzas from `phone`'s clients vanish: no ack, no
    /// delivery (a server that lost them).
    pub fn swallow_sends(&self, phone: &str, count: u32) {
        self.set_switch(phone, |s| &mut s.swallow, count);
    }

    /// The next `count` `<message>` stanzas from `phone`'s clients are delivered, but the
    /// connection drops instead of the ack (the ack is lost).
    pub fn drop_before_ack(&self, phone: &str, count: u32) {
        self.set_switch(phone, |s| &mut s.drop_before_ack, count);
    }

    /// The next `count` `<message>` stanzas from `phone`'s clients are delivered but never
    /// acked; the connection stays up.
    pub fn withhold_acks(&self, phone: &str, count: u32) {
        self.set_switch(phone, |s| &mut s.withhold_ack, count);
    }

    /// After the next `count` messages delivered to `phone`'s companions, the connection drops
    /// before the client can answer (the server delivers them again at the next login).
    pub fn drop_after_delivery(&self, phone: &str, count: u32) {
        self.set_switch(phone, |s| &mut s.drop_after_delivery, count);
    }

    fn set_switch(&self, phone: &str, field: impl Fn(&mut Switches) -> &mut u32, count: u32) {
        let mut state = self.state.lock().unwrap();
        if let Some(account) = state.accounts.get_mut(phone) {
            *field(&mut account.switches) = count;
        }
    }

    /// Uses up one activation of a switch; whether it was on.
    pub(super) fn take_switch(&self, phone: &str, field: impl Fn(&mut Switches) -> &mut u32) -> bool {
        let mut state = self.state.lock().unwrap();
        let Some(account) = state.accounts.get_mut(phone) else { return false };
        let n = field(&mut account.switches);
        if *n == 0 {
            return false;
        }
        *n -= 1;
        true
    }
}

/// A receipt from `contact` for `ids` (several in a `<list>`); in `group`, from the group with
/// the contact as participant.
fn receipt_node(contact: &str, group: Option<&Jid>, ids: &[String], kind: ReceiptKind) -> Node {
    let (first, rest) = ids.split_first().expect("a receipt has an id");
    let mut builder = match group {
        Some(group) => NodeBuilder::new("receipt")
            .attr("from", group.clone())
            .attr("participant", Jid::pn(contact.to_string())),
        None => NodeBuilder::new("receipt").attr("from", Jid::pn(contact.to_string())),
    };
    builder = builder.attr("id", first.clone()).attr("t", unix_now().to_string());
    if kind == ReceiptKind::Read {
        builder = builder.attr("type", "read");
    }
    if !rest.is_empty() {
        builder = builder.children([NodeBuilder::new("list")
            .children(rest.iter().map(|id| NodeBuilder::new("item").attr("id", id.clone()).build()))
            .build()]);
    }
    builder.build()
}

/// The pairwise copies of a message stanza: `(addressee, kind, ciphertext)` for each
/// `<participants><to jid><enc>`, or the bare `<enc>` children addressed to `to`.
pub fn pairwise_copies(node: &Node, to: &Jid) -> Vec<(Jid, EncKind, Vec<u8>)> {
    let enc_of = |n: &Node| -> Option<(EncKind, Vec<u8>)> {
        let kind = EncKind::parse(&attr(n, "type")?)?;
        (kind != EncKind::Skmsg).then(|| (kind, bytes_of(n).unwrap_or_default().to_vec()))
    };
    let mut copies = Vec::new();
    if let Some(participants) = node.get_optional_child("participants") {
        for t in participants.children().unwrap_or_default().iter().filter(|t| t.tag == "to") {
            let Some(jid) = attr(t, "jid").and_then(|j| j.parse::<Jid>().ok()) else { continue };
            for enc in t.children().unwrap_or_default().iter().filter(|e| e.tag == "enc") {
                if let Some((kind, bytes)) = enc_of(enc) {
                    copies.push((jid.clone(), kind, bytes));
                }
            }
        }
    }
    for enc in node.children().unwrap_or_default().iter().filter(|e| e.tag == "enc") {
        if let Some((kind, bytes)) = enc_of(enc) {
            copies.push((to.clone(), kind, bytes));
        }
    }
    copies
}
