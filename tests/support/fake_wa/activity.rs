//! What a client says about what it received and about itself: receipts (delivery, read,
//! played), its presence (online, offline) and chat states (typing, recording, paused). The
//! server relays them without an answer; the fake files each in the journal, where the
//! queries here find them.

use std::time::Duration;

use anyhow::{anyhow, Result};
use whatsapp_rust::wacore_binary::Node;

use super::conn::{attr, Conn};
use super::delivery::receipt_ids;
use super::{FakeEvent, FakeWhatsApp};

/// A `<receipt>` a client sent for messages it received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentReceipt {
    /// The chat: the contact's JID, or the group's.
    pub to: String,
    /// In a group, the member who wrote the messages.
    pub participant: Option<String>,
    /// `read`, `read-self`, `played`, `retry`, …; `delivery` when the stanza has no type.
    pub kind: String,
    pub ids: Vec<String>,
}

impl FakeWhatsApp {
    /// Files a `<receipt>` from a client.
    pub(super) fn note_client_receipt(&self, conn: &Conn, node: &Node) {
        let info = conn.info();
        let (Some(phone), Some(device)) = (info.phone, info.device) else { return };
        let receipt = SentReceipt {
            to: attr(node, "to").unwrap_or_default(),
            participant: attr(node, "participant"),
            kind: attr(node, "type").unwrap_or_else(|| "delivery".to_string()),
            ids: receipt_ids(node),
        };
        self.record(FakeEvent::ReceiptSent { phone, device, receipt });
    }

    /// Files a `<presence>` from a client: its own state (`available`, `unavailable`), or a
    /// subscription to someone's (`subscribe`, with `to`).
    pub(super) fn on_client_presence(&self, conn: &Conn, node: &Node) {
        let Some(phone) = conn.info().phone else { return };
        self.record(FakeEvent::PresenceSent {
            phone,
            state: attr(node, "type").unwrap_or_else(|| "available".to_string()),
            to: attr(node, "to"),
        });
    }

    /// Files a `<chatstate to>` from a client: `<composing/>` is typing, `<composing
    /// media="audio"/>` recording, `<paused/>` paused.
    pub(super) fn on_client_chatstate(&self, conn: &Conn, node: &Node) {
        let Some(phone) = conn.info().phone else { return };
        let Some(child) = node.children().and_then(|c| c.first()) else { return };
        let state = match (child.tag.as_ref(), attr(child, "media").as_deref()) {
            ("composing", Some("audio")) => "recording".to_string(),
            (tag, _) => tag.to_string(),
        };
        self.record(FakeEvent::ChatStateSent { phone, to: attr(node, "to").unwrap_or_default(), state });
    }

    /// The receipts `phone`'s clients sent for messages they received, in order.
    pub fn receipts_sent(&self, phone: &str) -> Vec<SentReceipt> {
        self.journal()
            .into_iter()
            .filter_map(|(_, e)| match e {
                FakeEvent::ReceiptSent { phone: p, receipt, .. } if p == phone => Some(receipt),
                _ => None,
            })
            .collect()
    }

    /// Waits until a client of `phone` sent a receipt of type `kind` covering message `id`;
    /// returns it.
    pub async fn wait_receipt_sent(
        &self,
        phone: &str,
        kind: &str,
        id: &str,
        timeout: Duration,
    ) -> Result<SentReceipt> {
        let find = |f: &FakeWhatsApp| {
            f.receipts_sent(phone).into_iter().find(|r| r.kind == kind && r.ids.iter().any(|i| i == id))
        };
        self.wait_until(&format!("a {kind} receipt from {phone} for {id}"), timeout, |f| find(f).is_some())
            .await?;
        find(self).ok_or_else(|| anyhow!("the receipt vanished from the journal"))
    }

    /// The presence stanzas `phone`'s clients sent: `(type, to)`, in order.
    pub fn presences_sent(&self, phone: &str) -> Vec<(String, Option<String>)> {
        self.journal()
            .into_iter()
            .filter_map(|(_, e)| match e {
                FakeEvent::PresenceSent { phone: p, state, to } if p == phone => Some((state, to)),
                _ => None,
            })
            .collect()
    }

    /// The chat states `phone`'s clients sent: `(to, state)`, in order.
    pub fn chat_states(&self, phone: &str) -> Vec<(String, String)> {
        self.journal()
            .into_iter()
            .filter_map(|(_, e)| match e {
                FakeEvent::ChatStateSent { phone: p, to, state } if p == phone => Some((to, state)),
                _ => None,
            })
            .collect()
    }

    /// Waits until a client of `phone` showed `state` in chat `to`.
    pub async fn wait_chat_state(&self, phone: &str, to: &str, state: &str, timeout: Duration) -> Result<()> {
        self.wait_until(&format!("{phone} showing {state} to {to}"), timeout, |f| {
            f.chat_states(phone).iter().any(|(t, s)| t == to && s == state)
        })
        .await
    }

    /// Waits until a client of `phone` sent presence `state` (`available`, `unavailable`).
    pub async fn wait_presence(&self, phone: &str, state: &str, timeout: Duration) -> Result<()> {
        self.wait_until(&format!("{phone} sending presence {state}"), timeout, |f| {
            f.presences_sent(phone).iter().any(|(s, to)| s == state && to.is_none())
        })
        .await
    }
}
