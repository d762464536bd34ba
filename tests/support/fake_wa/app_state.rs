//! App state the phone syncs to its companions (`w:sync:app:state`): a chat archived, pinned or
//! muted, a contact saved in the address book. The phone writes each change as a one-mutation
//! patch of its collection, encrypted and MACed with the app-state key it shared at login (the
//! library's own `encode_record`, ltHash and MAC functions, so the unmodified client verifies
//! it as it verifies WhatsApp's), then tells the online companions with a `server_sync`
//! notification; the client asks for the collection and gets every patch after its version.
//! A collection without patches still answers 409 ("already in sync"), as at login.

use std::collections::HashMap;

use whatsapp_rust::buffa::{Message as _, MessageField};
use whatsapp_rust::schemas::{self, Schema};
use whatsapp_rust::wacore::appstate::hash::{generate_patch_mac, HashState};
use whatsapp_rust::wacore::appstate::{encode_record, expand_app_state_keys};
use whatsapp_rust::wacore_binary::builder::NodeBuilder;
use whatsapp_rust::wacore_binary::{Node, SERVER_JID};
use whatsapp_rust::waproto::whatsapp as wa;
use whatsapp_rust::waproto::whatsapp::sync_action_value as action;

use super::conn::attr;
use super::{new_message_id, unix_now, FakeWhatsApp};

/// A change the account's phone makes, synced to its companions.
#[derive(Debug, Clone)]
pub enum PhoneAction {
    /// Archives (`true`) or unarchives a chat (a JID).
    Archive {
        chat: String,
        archived: bool,
    },
    Pin {
        chat: String,
        pinned: bool,
    },
    /// Mutes until `end_ms` (milliseconds, `-1`: no end), or unmutes (`None`).
    Mute {
        chat: String,
        end_ms: Option<i64>,
    },
    /// Saves a contact (a JID) in the address book.
    SaveContact {
        jid: String,
        full_name: String,
        first_name: Option<String>,
    },
}

/// The patches of one collection, and the state they lead to.
#[derive(Default)]
pub(super) struct Collection {
    hash: HashState,
    /// Value MAC of each index's latest SET, by index MAC (the ltHash subtracts it when the
    /// index is set again).
    values: HashMap<Vec<u8>, Vec<u8>>,
    /// Encoded `SyncdPatch`es; the one at position `i` is version `i + 1`.
    patches: Vec<Vec<u8>>,
}

impl PhoneAction {
    fn schema(&self) -> Schema {
        match self {
            PhoneAction::Archive { .. } => schemas::ARCHIVE,
            PhoneAction::Pin { .. } => schemas::PIN,
            PhoneAction::Mute { .. } => schemas::MUTE,
            PhoneAction::SaveContact { .. } => schemas::CONTACT,
        }
    }

    fn index(&self) -> Vec<u8> {
        let (kind, jid) = match self {
            PhoneAction::Archive { chat, .. } => ("archive", chat),
            PhoneAction::Pin { chat, .. } => ("pin_v1", chat),
            PhoneAction::Mute { chat, .. } => ("mute", chat),
            PhoneAction::SaveContact { jid, .. } => ("contact", jid),
        };
        serde_json::to_vec(&[kind, jid.as_str()]).expect("strings serialise")
    }

    fn value(&self) -> wa::SyncActionValue {
        let mut value =
            wa::SyncActionValue { timestamp: Some((unix_now() * 1000) as i64), ..Default::default() };
        match self {
            PhoneAction::Archive { archived, .. } => {
                value.archive_chat_action = MessageField::some(action::ArchiveChatAction {
                    archived: Some(*archived),
                    ..Default::default()
                });
            }
            PhoneAction::Pin { pinned, .. } => {
                value.pin_action = MessageField::some(action::PinAction { pinned: Some(*pinned) });
            }
            PhoneAction::Mute { end_ms, .. } => {
                value.mute_action = MessageField::some(action::MuteAction {
                    muted: Some(end_ms.is_some()),
                    mute_end_timestamp: Some(end_ms.unwrap_or(0)),
                    ..Default::default()
                });
            }
            PhoneAction::SaveContact { full_name, first_name, .. } => {
                value.contact_action = MessageField::some(action::ContactAction {
                    full_name: Some(full_name.clone()),
                    first_name: first_name.clone(),
                    ..Default::default()
                });
            }
        }
        value
    }
}

impl FakeWhatsApp {
    /// The account's phone makes `change`: a new patch of its collection, and a `server_sync`
    /// notification to every online companion. Answers the collection's new version.
    pub fn phone_syncs(&self, phone: &str, change: PhoneAction) -> u64 {
        let schema = change.schema();
        let name = schema.collection.as_str();
        let version = {
            let mut state = self.state.lock().unwrap();
            let account = state.accounts.get_mut(phone).expect("the account exists (paired once)");
            let keys = expand_app_state_keys(&account.sync_key);
            let key_id = account.sync_key_id.clone();
            let (mutation, value_mac) = encode_record(
                wa::syncd_mutation::SyncdOperation::SET,
                &change.index(),
                &change.value(),
                &keys,
                &key_id,
                &rand::random::<[u8; 16]>(),
                schema.version as i32,
            );
            let collection = account.app_state.entry(name).or_default();
            let index_mac = mutation.record.index.blob.clone().expect("encode_record writes the index MAC");
            let previous = collection.values.get(&index_mac).cloned();
            let (_, updated) =
                collection.hash.update_hash(std::slice::from_ref(&mutation), |_, _| Ok(previous.clone()));
            updated.expect("the ltHash takes a SET");
            collection.values.insert(index_mac, value_mac.to_vec());
            let version = collection.patches.len() as u64 + 1;
            collection.hash.version = version;
            let mut patch = wa::SyncdPatch {
                version: MessageField::some(wa::SyncdVersion { version: Some(version) }),
                mutations: vec![mutation],
                key_id: MessageField::some(wa::KeyId { id: Some(key_id) }),
                snapshot_mac: Some(collection.hash.generate_snapshot_mac(name, &keys.snapshot_mac)),
                ..Default::default()
            };
            patch.patch_mac = Some(generate_patch_mac(&patch, name, &keys.patch_mac, version));
            collection.patches.push(patch.encode_to_vec());
            version
        };
        let notification = NodeBuilder::new("notification")
            .attr("type", "server_sync")
            .attr("from", SERVER_JID)
            .attr("id", new_message_id())
            .attr("t", unix_now().to_string())
            .children([NodeBuilder::new("collection")
                .attr("name", name)
                .attr("version", version.to_string())
                .build()])
            .build();
        for device in self.companions(phone) {
            let conn = self.state.lock().unwrap().online_conn(phone, device);
            match conn {
                Some(conn) if conn.send_node(&notification).is_ok() => {
                    self.note(format!("server_sync {name} v{version} to {phone}:{device}"))
                }
                _ => self.note(format!("{phone}:{device} is offline: server_sync dropped")),
            }
        }
        version
    }

    /// Answers a `w:sync:app:state` IQ of `phone`'s companion: per collection asked, the
    /// patches after the client's version, else 409 (nothing new).
    pub(super) fn app_state_iq(&self, phone: &str, iq: &Node) -> Node {
        let asked: Vec<(String, u64)> = iq
            .get_optional_child("sync")
            .and_then(|s| s.children())
            .unwrap_or_default()
            .iter()
            .filter(|c| c.tag == "collection")
            .filter_map(|c| {
                Some((attr(c, "name")?, attr(c, "version").and_then(|v| v.parse().ok()).unwrap_or(0)))
            })
            .collect();
        let state = self.state.lock().unwrap();
        let account = state.accounts.get(phone);
        let collections = asked.into_iter().map(|(name, from)| {
            let patches = account
                .and_then(|a| a.app_state.get(name.as_str()))
                .map(|c| c.patches.iter().skip(from as usize).cloned().collect::<Vec<_>>())
                .unwrap_or_default();
            if patches.is_empty() {
                return NodeBuilder::new("collection")
                    .attr("name", name)
                    .attr("type", "error")
                    .children([NodeBuilder::new("error")
                        .attr("code", "409")
                        .attr("text", "conflict")
                        .build()])
                    .build();
            }
            let version = from + patches.len() as u64;
            NodeBuilder::new("collection")
                .attr("name", name)
                .attr("version", version.to_string())
                .children([NodeBuilder::new("patches")
                    .children(patches.into_iter().map(|p| NodeBuilder::new("patch").bytes(p).build()))
                    .build()])
                .build()
        });
        let sync = NodeBuilder::new("sync").children(collections.collect::<Vec<_>>()).build();
        let id = attr(iq, "id").unwrap_or_default();
        NodeBuilder::new("iq")
            .attr("id", id)
            .attr("type", "result")
            .attr("from", SERVER_JID)
            .children([sync])
            .build()
    }
}
