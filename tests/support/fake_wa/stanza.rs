//! What the server does with each stanza a client sends: IQ answers (prekey fetches here, the
//! login sequence in `login.rs`, media connections in `media.rs`), messages (`messaging.rs`),
//! and the client's answers to what the server delivered (`delivery.rs`).

use std::sync::Arc;

use whatsapp_rust::wacore_binary::builder::NodeBuilder;
use whatsapp_rust::wacore_binary::{Jid, Node, NodeContent, SERVER_JID};

use super::conn::{attr, Conn, ConnectionInfo};
use super::directory::Who;
use super::signal::Bundle;
use super::{login, FakeEvent, FakeWhatsApp};

impl FakeWhatsApp {
    /// Called by the connection task for every stanza the client sends (answers to the fake's
    /// own requests excepted).
    pub(super) async fn handle_stanza(self: &Arc<Self>, conn: &Arc<Conn>, node: Node) {
        let info = conn.info();
        let xmlns = attr(&node, "xmlns").unwrap_or_default();
        let kind = attr(&node, "type").unwrap_or_default();
        if node.tag == "iq" && (kind == "get" || kind == "set") {
            self.record(FakeEvent::Iq {
                conn: conn.id,
                phone: info.phone.clone(),
                xmlns: xmlns.clone(),
                child: node.children().and_then(|c| c.first()).map(|c| c.tag.to_string()).unwrap_or_default(),
            });
        }
        match node.tag.as_ref() {
            "iq" if xmlns == "encrypt" && kind == "get" && node.get_optional_child("key").is_some() => {
                let answer = self.prekey_answer(&node).await;
                let _ = conn.send_node(&answer);
            }
            "iq" if node.get_optional_child("link_code_companion_reg").is_some() => {
                let reg = node.get_optional_child("link_code_companion_reg").expect("checked above");
                self.link_code_iq(conn, &node, reg);
            }
            "iq" if xmlns == "w:g2" => match self.group_iq(info.phone.as_deref(), &node) {
                Some(answer) => {
                    let _ = conn.send_node(&answer);
                }
                None => self.answer_iq(conn, &info, &node),
            },
            "iq" if xmlns == "usync" && Self::is_profile_usync(&node) => {
                let _ = conn.send_node(&self.profile_usync(&node));
            }
            "iq" if xmlns == "w:profile:picture" => match self.picture_iq(&node) {
                Some(answer) => {
                    let _ = conn.send_node(&answer);
                }
                None => self.answer_iq(conn, &info, &node),
            },
            "iq" if xmlns == "blocklist" && info.phone.is_some() => {
                let phone = info.phone.as_deref().unwrap_or_default();
                let _ = conn.send_node(&self.blocklist_iq(phone, &node));
            }
            "iq" if xmlns == "w:sync:app:state" && info.phone.is_some() => {
                let phone = info.phone.as_deref().unwrap_or_default();
                let _ = conn.send_node(&self.app_state_iq(phone, &node));
            }
            "iq" if xmlns == "w:m" && node.get_optional_child("media_conn").is_some() => {
                let answer = self.media_conn_answer(&node);
                let _ = conn.send_node(&answer);
            }
            "iq" => {
                self.answer_iq(conn, &info, &node);
                if xmlns == "passive" && (kind == "set" || kind == "get") {
                    self.start_offline_delivery(conn);
                }
            }
            "message" => self.on_client_message(conn, node).await,
            "receipt" => {
                self.note_client_receipt(conn, &node);
                self.on_client_receipt(conn, &node);
            }
            "presence" => self.on_client_presence(conn, &node),
            "chatstate" => self.on_client_chatstate(conn, &node),
            "ack" => self.on_client_ack(conn, &node),
            "ib" => {
                if let Some(batch) = node.get_optional_child("offline_batch") {
                    let count = attr(batch, "count").and_then(|c| c.parse().ok()).unwrap_or(200);
                    self.record(FakeEvent::OfflineBatchRequested { conn: conn.id, count });
                    self.continue_offline_delivery(conn, count);
                }
            }
            // Notifications the client sends: nothing to answer.
            _ => {}
        }
    }

    /// IQs of the login sequence and everything else a logged-in client asks (`login.rs`).
    fn answer_iq(&self, conn: &Conn, info: &ConnectionInfo, node: &Node) {
        if attr(node, "xmlns").as_deref() == Some("encrypt") && attr(node, "type").as_deref() == Some("set") {
            if let (Some(phone), Some(device), Some(bundle)) =
                (&info.phone, info.device, Bundle::from_upload(node))
            {
                let mut state = self.state.lock().unwrap();
                if let Some(c) = state.accounts.get_mut(phone).and_then(|a| a.devices.get_mut(&device)) {
                    c.bundle = Some(bundle);
                }
            }
        }
        let lid = info.phone.as_ref().and_then(|p| {
            let state = self.state.lock().unwrap();
            state.accounts.get(p).map(|a| a.lid.clone())
        });
        let account = match (&info.phone, info.device, &lid) {
            (Some(phone), Some(device), Some(lid)) => Some(login::Account { phone, device, lid }),
            _ => None,
        };
        let on_server = self.prekeys_uploaded(info.phone.as_deref().unwrap_or(""));
        let (answers, effects) = {
            let state = self.state.lock().unwrap();
            login::answer_iq(account.as_ref(), &state.directory, node, on_server)
        };
        self.apply(info, effects);
        for answer in answers {
            if conn.send_node(&answer).is_err() {
                break;
            }
        }
    }

    /// Answers a prekey fetch (`<iq xmlns="encrypt" type="get"><key><user jid/>…`): the
    /// account's phone and companions, and contacts (by phone number or LID), with their
    /// published keys; unknown devices and numbers not on WhatsApp with error 406.
    async fn prekey_answer(&self, iq: &Node) -> Node {
        let jids: Vec<Jid> = iq
            .get_optional_child("key")
            .and_then(|k| k.children())
            .unwrap_or_default()
            .iter()
            .filter(|u| u.tag == "user")
            .filter_map(|u| attr(u, "jid")?.parse::<Jid>().ok())
            .collect();
        let mut users = Vec::new();
        for jid in jids {
            let who = self.state.lock().unwrap().who(&jid);
            let node = match who {
                Who::Account { phone, device: 0 } => match self.phone_peer(&phone).await {
                    Ok(peer) => Some(peer.take_user_node(&jid)),
                    Err(_) => None,
                },
                Who::Account { phone, device } => {
                    let linked = {
                        let state = self.state.lock().unwrap();
                        state
                            .accounts
                            .get(&phone)
                            .and_then(|a| a.devices.get(&device))
                            .is_some_and(|c| !c.logged_out)
                    };
                    if linked {
                        self.companion_user_node(&phone, device, &jid).ok()
                    } else {
                        None
                    }
                }
                Who::Contact { phone } => match self.contact_peer(&phone).await {
                    Ok(peer) => Some(peer.take_user_node(&jid)),
                    Err(e) => {
                        self.note(format!("no peer for contact {phone}: {e:#}"));
                        None
                    }
                },
                Who::Nobody => None,
            };
            users.push(node.unwrap_or_else(|| {
                NodeBuilder::new("user")
                    .attr("jid", jid.clone())
                    .children([NodeBuilder::new("error")
                        .attr("code", "406")
                        .attr("text", "not-acceptable")
                        .build()])
                    .build()
            }));
        }
        NodeBuilder::new("iq")
            .attr("id", attr(iq, "id").unwrap_or_default())
            .attr("type", "result")
            .attr("from", SERVER_JID)
            .children([NodeBuilder::new("list").children(users).build()])
            .build()
    }

    fn apply(&self, info: &ConnectionInfo, effects: login::Effects) {
        let (Some(phone), Some(device)) = (&info.phone, info.device) else {
            return;
        };
        let mut changed = false;
        {
            let mut state = self.state.lock().unwrap();
            if let Some(companion) = state.accounts.get_mut(phone).and_then(|a| a.devices.get_mut(&device)) {
                if let Some(n) = effects.prekeys_uploaded {
                    companion.prekeys += n;
                    changed = true;
                }
                if effects.removed_companion {
                    companion.logged_out = true;
                    changed = true;
                }
            }
        }
        if let Some(count) = effects.prekeys_uploaded {
            self.record(FakeEvent::PrekeysUploaded { phone: phone.clone(), count });
        } else if changed {
            self.bump();
        }
    }
}

/// The bytes of a node, if it holds bytes.
pub fn bytes_of(node: &Node) -> Option<&[u8]> {
    match node.content.as_ref()? {
        NodeContent::Bytes(b) => Some(b),
        _ => None,
    }
}
