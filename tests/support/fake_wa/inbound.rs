//! Messages contacts send to an account: encrypted by the contact's peer to each linked
//! companion (a pkmsg from the companion's published keys until the contact has a session it
//! got an answer on, then msg), with the contact's push name, and addressed from its phone
//! number or from its LID (with or without `sender_pn`), as the server relays them.

use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use whatsapp_rust::wacore::send::stanza_type_from_message;
use whatsapp_rust::wacore::types::message::EditAttribute;
use whatsapp_rust::wacore_binary::builder::NodeBuilder;
use whatsapp_rust::wacore_binary::Jid;
use whatsapp_rust::waproto::whatsapp as wa;

use super::observe::FakeEvent;
use super::peer::EncKind;
use super::{new_message_id, unix_now, FakeWhatsApp};

/// How a contact's message names its sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressing {
    /// `from="<number>@s.whatsapp.net"`.
    Pn,
    /// `from="<lid>@lid"`, with `sender_pn="<number>@s.whatsapp.net"` when `with_pn`.
    Lid { with_pn: bool },
}

/// A message for [`FakeWhatsApp::contact_sends`].
#[derive(Debug, Clone)]
pub struct ContactMessage {
    pub message: wa::Message,
    /// The stanza id; a fresh one when `None`.
    pub id: Option<String>,
    pub addressing: Addressing,
}

impl ContactMessage {
    pub fn text(text: &str) -> ContactMessage {
        ContactMessage::of(wa::Message { conversation: Some(text.to_string()), ..Default::default() })
    }

    pub fn of(message: wa::Message) -> ContactMessage {
        ContactMessage { message, id: None, addressing: Addressing::Pn }
    }

    /// Sent from the contact's LID (the contact needs one, see
    /// [`FakeWhatsApp::set_contact_lid`]).
    pub fn sent_from_lid(mut self, with_pn: bool) -> ContactMessage {
        self.addressing = Addressing::Lid { with_pn };
        self
    }

    pub fn with_id(mut self, id: &str) -> ContactMessage {
        self.id = Some(id.to_string());
        self
    }
}

/// What [`FakeWhatsApp::contact_sends`] did.
#[derive(Debug, Clone)]
pub struct ContactSent {
    pub id: String,
    /// How it was encrypted to the first companion.
    pub enc: EncKind,
}

impl FakeWhatsApp {
    /// Contact `contact` (digits) sends `message` to the account `phone`: one stanza per linked
    /// companion, delivered now or at the companion's next login.
    pub async fn contact_sends(
        &self,
        phone: &str,
        contact: &str,
        message: ContactMessage,
    ) -> Result<ContactSent> {
        let peer = self.contact_peer(contact).await?;
        let (push_name, lid) = {
            let mut state = self.state.lock().unwrap();
            let c = state.directory.contact(contact);
            (c.push_name.clone(), c.lid.clone())
        };
        let (from, sender_pn) = match message.addressing {
            Addressing::Pn => (Jid::pn(contact.to_string()), None),
            Addressing::Lid { with_pn } => {
                let lid = lid.ok_or_else(|| anyhow!("contact {contact} has no LID"))?;
                (Jid::lid(lid), with_pn.then(|| Jid::pn(contact.to_string())))
            }
        };
        let devices = self.companions(phone);
        if devices.is_empty() {
            bail!("{phone} has no linked companion");
        }
        let id = message.id.clone().unwrap_or_else(new_message_id);
        let mut first_enc = None;
        for device in devices {
            let enc = self.encrypt_to_companion(&peer, phone, device, &message.message).await?;
            let kind = enc_kind(&enc);
            first_enc.get_or_insert(kind);
            // The stanza's `type` (text, media, reaction, poll, …) and `edit` mark, as the
            // sending app derives them from the message.
            let mut builder = NodeBuilder::new("message")
                .attr("from", from.clone())
                .attr("id", id.clone())
                .attr("t", unix_now().to_string())
                .attr("type", stanza_type_from_message(&message.message))
                .attr("notify", push_name.clone());
            if let Some(edit) = EditAttribute::infer_from_message(&message.message) {
                builder = builder.attr("edit", edit.to_string_val().to_string());
            }
            if let Some(pn) = &sender_pn {
                builder = builder.attr("sender_pn", pn.clone());
            }
            self.deliver(phone, device, builder.children([enc]).build());
        }
        let enc = first_enc.expect("at least one companion");
        self.record(FakeEvent::ContactSent {
            contact: contact.to_string(),
            phone: phone.to_string(),
            id: id.clone(),
            enc,
        });
        Ok(ContactSent { id, enc })
    }

    /// Sets the name contact `contact` sends as its push name (`notify`).
    pub fn set_push_name(&self, contact: &str, name: &str) {
        self.state.lock().unwrap().directory.contact(contact).push_name = name.to_string();
    }

    /// Gives contact `contact` a LID (digits): usync answers carry it, and it can send from it.
    pub fn set_contact_lid(&self, contact: &str, lid: &str) {
        self.state.lock().unwrap().directory.set_lid(contact, lid);
    }

    /// Whether a companion of `phone` sent a delivery receipt for message `id`. With the
    /// gateway's durability hook the client sends it only once the gateway stored the message,
    /// so this is "the gateway has it" (a retry receipt or an ack, for a message the client
    /// could not take, does not count).
    pub fn client_answered(&self, phone: &str, id: &str) -> bool {
        self.journal().iter().any(|(_, e)| {
            matches!(e, FakeEvent::ClientAnswered { phone: p, tag, kind, ids, .. }
                if p == phone && tag == "message" && (kind == "delivery" || kind == "inactive")
                    && ids.iter().any(|i| i == id))
        })
    }

    /// Waits until a companion of `phone` answered message `id`.
    pub async fn wait_client_answered(&self, phone: &str, id: &str, timeout: Duration) -> Result<()> {
        self.wait_until(&format!("{phone}'s answer to message {id}"), timeout, |f| {
            f.client_answered(phone, id)
        })
        .await
    }
}

pub(super) fn enc_kind(enc: &whatsapp_rust::wacore_binary::Node) -> EncKind {
    super::conn::attr(enc, "type").as_deref().and_then(EncKind::parse).unwrap_or(EncKind::Msg)
}
