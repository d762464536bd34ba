//! How stanzas reach a companion: at once while it is online, otherwise at its next login
//! through the offline protocol, and again until the companion answers them.
//!
//! Every stanza for a companion (a contact's message, a contact's receipt) is kept in the
//! companion's pending list until the client answers it: a `<receipt>` for a message, an
//! `<ack>` for a receipt (or for a message it could not take). A connection that drops before
//! the answer leaves the stanza pending, and the next login delivers it again, byte for byte
//! apart from `offline="1"`, as the server redelivers.
//!
//! After a login the client leaves passive mode; the fake then announces the backlog
//! (`<ib><offline_preview count>`), sends a primer of up to [`PRIMER`] stanzas, sends more
//! when the client asks (`<ib><offline_batch count>`), and ends with `<ib><offline count>`.
//! Stanzas arriving for the companion during that drain join its end. The client holds every
//! send until it saw the end marker (up to 60 s), so the marker always comes.

use std::collections::VecDeque;
use std::sync::Arc;

use whatsapp_rust::transport::DisconnectReason;
use whatsapp_rust::wacore_binary::builder::NodeBuilder;
use whatsapp_rust::wacore_binary::{Node, SERVER_JID};

use super::conn::{attr, Conn};
use super::{FakeEvent, FakeWhatsApp};

/// Stanzas the server sends right after the offline preview, before the client asks.
pub const PRIMER: usize = 5;

/// A stanza waiting for the companion's answer.
#[derive(Clone)]
pub struct Pending {
    /// `message` or `receipt`.
    pub tag: String,
    pub id: String,
    /// A receipt's `type` (`None` for a delivery receipt).
    pub kind: Option<String>,
    pub node: Node,
}

impl Pending {
    pub fn new(node: Node) -> Pending {
        Pending {
            tag: node.tag.to_string(),
            id: attr(&node, "id").unwrap_or_default(),
            kind: attr(&node, "type").filter(|_| node.tag == "receipt"),
            node,
        }
    }
}

/// An offline drain in progress on one connection: what is still to send, and how many went.
#[derive(Default)]
pub struct Drain {
    queue: VecDeque<Pending>,
    sent: usize,
}

impl FakeWhatsApp {
    /// Delivers `node` to companion `device` of `phone`: now if that companion is online,
    /// else at its next login; either way kept until the companion answers it.
    pub(super) fn deliver(&self, phone: &str, device: u16, node: Node) {
        let pending = Pending::new(node);
        let live = {
            let mut state = self.state.lock().unwrap();
            let live = state.online_conn(phone, device);
            let draining =
                state.conns_of_device(phone, device).into_iter().find(|c| state.drains.contains_key(&c.id));
            let Some(companion) = state.accounts.get_mut(phone).and_then(|a| a.devices.get_mut(&device))
            else {
                return;
            };
            companion.pending.push_back(pending.clone());
            if let Some(conn) = draining {
                // Joins the end of the backlog being drained on that connection.
                if let Some(drain) = state.drains.get_mut(&conn.id) {
                    drain.queue.push_back(pending.clone());
                }
            }
            live
        };
        self.bump();
        if let Some(conn) = live {
            self.write_delivery(&conn, phone, device, &pending, false);
        }
    }

    /// Writes one delivery on `conn`, and drops the connection right after it when the test
    /// asked for that.
    fn write_delivery(&self, conn: &Arc<Conn>, phone: &str, device: u16, pending: &Pending, offline: bool) {
        let mut node = pending.node.clone();
        if offline {
            node.attrs.insert("offline", "1");
        }
        if conn.send_node(&node).is_err() {
            return;
        }
        self.record(FakeEvent::Delivered {
            conn: conn.id,
            phone: phone.to_string(),
            device,
            tag: pending.tag.clone(),
            id: pending.id.clone(),
            offline,
        });
        if pending.tag == "message" && self.take_switch(phone, |s| &mut s.drop_after_delivery) {
            self.note(format!("dropping connection {} after delivering {}", conn.id, pending.id));
            conn.close(Some(DisconnectReason::ReadError("connection reset by the fake server".to_string())));
        }
    }

    /// After a login's `passive` IQ: announces and starts delivering everything pending for
    /// the companion (or just the end marker when nothing is).
    pub(super) fn start_offline_delivery(&self, conn: &Arc<Conn>) {
        let info = conn.info();
        let (Some(phone), Some(device)) = (info.phone, info.device) else { return };
        let (total, messages, receipts) = {
            let mut state = self.state.lock().unwrap();
            let Some(companion) = state.accounts.get_mut(&phone).and_then(|a| a.devices.get_mut(&device))
            else {
                return;
            };
            let queue: VecDeque<Pending> = companion.pending.iter().cloned().collect();
            let messages = queue.iter().filter(|p| p.tag == "message").count();
            let total = queue.len();
            if total > 0 {
                state.drains.insert(conn.id, Drain { queue, sent: 0 });
            }
            (total, messages, total - messages)
        };
        if total == 0 {
            self.end_offline_delivery(conn, 0);
            return;
        }
        let preview = NodeBuilder::new("ib")
            .attr("from", SERVER_JID)
            .children([NodeBuilder::new("offline_preview")
                .attr("count", total.to_string())
                .attr("message", messages.to_string())
                .attr("receipt", receipts.to_string())
                .attr("notification", "0")
                .attr("call", "0")
                .build()])
            .build();
        if conn.send_node(&preview).is_ok() {
            self.note(format!("offline preview to connection {}: {total} stanzas", conn.id));
            self.continue_offline_delivery(conn, PRIMER);
        }
    }

    /// Sends up to `count` more stanzas of the connection's offline backlog; ends the drain
    /// with the end marker once it is empty.
    pub(super) fn continue_offline_delivery(&self, conn: &Arc<Conn>, count: usize) {
        let info = conn.info();
        let (Some(phone), Some(device)) = (info.phone, info.device) else { return };
        let (batch, done, sent) = {
            let mut state = self.state.lock().unwrap();
            let Some(drain) = state.drains.get_mut(&conn.id) else { return };
            let n = count.min(drain.queue.len());
            let batch: Vec<Pending> = drain.queue.drain(..n).collect();
            drain.sent += batch.len();
            (batch, drain.queue.is_empty(), drain.sent)
        };
        for pending in &batch {
            self.write_delivery(conn, &phone, device, pending, true);
        }
        if done {
            self.end_offline_delivery(conn, sent);
        }
    }

    /// The end of the offline backlog: the connection is online from now on.
    fn end_offline_delivery(&self, conn: &Arc<Conn>, count: usize) {
        {
            let mut state = self.state.lock().unwrap();
            state.drains.remove(&conn.id);
            state.online.insert(conn.id);
        }
        let end = NodeBuilder::new("ib")
            .attr("from", SERVER_JID)
            .children([NodeBuilder::new("offline").attr("count", count.to_string()).build()])
            .build();
        let _ = conn.send_node(&end);
        self.bump();
    }

    /// A `<receipt>` from a client: for messages a contact sent it (delivery, read, or a
    /// retry request when it could not decrypt one).
    pub(super) fn on_client_receipt(&self, conn: &Conn, node: &Node) {
        let kind = attr(node, "type").unwrap_or_else(|| "delivery".to_string());
        if kind == "retry" {
            self.record(FakeEvent::ClientNack { conn: conn.id, stanza: super::render(node) });
        }
        let ids = receipt_ids(node);
        self.answered(conn, "message", None, &kind, ids);
    }

    /// An `<ack>` from a client: for a receipt it got, or for a message it did not take.
    pub(super) fn on_client_ack(&self, conn: &Conn, node: &Node) {
        if attr(node, "error").is_some() {
            self.record(FakeEvent::ClientNack { conn: conn.id, stanza: super::render(node) });
        }
        let class = attr(node, "class").unwrap_or_default();
        let Some(id) = attr(node, "id") else { return };
        let kind = attr(node, "type");
        match class.as_str() {
            "receipt" => self.answered(conn, "receipt", Some(kind), "ack", vec![id]),
            "message" => self.answered(conn, "message", None, "ack", vec![id]),
            _ => {}
        }
    }

    /// Clears the pending `tag` stanzas with these ids (and, when given, this receipt type) of
    /// the connection's companion.
    fn answered(
        &self,
        conn: &Conn,
        tag: &str,
        receipt_kind: Option<Option<String>>,
        kind: &str,
        ids: Vec<String>,
    ) {
        let info = conn.info();
        let (Some(phone), Some(device)) = (info.phone, info.device) else { return };
        {
            let mut state = self.state.lock().unwrap();
            if let Some(companion) = state.accounts.get_mut(&phone).and_then(|a| a.devices.get_mut(&device)) {
                companion.pending.retain(|p| {
                    !(p.tag == tag
                        && ids.contains(&p.id)
                        && receipt_kind.as_ref().is_none_or(|k| *k == p.kind))
                });
            }
        }
        self.record(FakeEvent::ClientAnswered {
            phone,
            device,
            tag: tag.to_string(),
            kind: kind.to_string(),
            ids,
        });
    }

    /// Stanzas waiting for an answer from `phone`'s companions.
    pub fn pending_deliveries(&self, phone: &str) -> usize {
        let state = self.state.lock().unwrap();
        state.accounts.get(phone).map(|a| a.devices.values().map(|d| d.pending.len()).sum()).unwrap_or(0)
    }
}

/// The message ids a receipt covers: its `id` and those of its `<list>` items.
pub fn receipt_ids(node: &Node) -> Vec<String> {
    let mut ids: Vec<String> = attr(node, "id").into_iter().collect();
    if let Some(list) = node.get_optional_child("list") {
        for item in list.children().unwrap_or_default() {
            if let Some(id) = attr(item, "id") {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
    }
    ids
}
