//! Published prekey bundles, as the server stores and hands them out.
//!
//! [`Bundle`]: the keys a device published (a companion's `encrypt` upload, the signed prekey in
//! an unpaired client's registration payload, or a fake-held [`super::peer::Peer`]'s keys),
//! handed out one one-time key per fetch in the server's `<user>` format. Also the app-state
//! key share a phone sends a freshly linked companion.

use std::collections::VecDeque;

use whatsapp_rust::buffa::MessageField;
use whatsapp_rust::wacore::libsignal::protocol::KeyPair;
use whatsapp_rust::wacore_binary::builder::NodeBuilder;
use whatsapp_rust::wacore_binary::{Jid, Node, NodeContent};
use whatsapp_rust::waproto::whatsapp as wa;

/// A device's published keys, as the stanza children the server hands out.
pub struct Bundle {
    registration: Vec<u8>,
    identity: Vec<u8>,
    skey: Node,
    keys: VecDeque<Node>,
    /// The companion's ADV identity (for companions only).
    device_identity: Option<Vec<u8>>,
}

fn bytes_node(tag: &'static str, bytes: impl Into<Vec<u8>>) -> Node {
    NodeBuilder::new(tag).bytes(bytes).build()
}

fn child_bytes(node: &Node, tag: &str) -> Option<Vec<u8>> {
    match node.get_optional_child(tag)?.content.as_ref()? {
        NodeContent::Bytes(b) => Some(b.clone()),
        _ => None,
    }
}

fn id3(id: u32) -> Vec<u8> {
    id.to_be_bytes()[1..].to_vec()
}

impl Bundle {
    /// From a client's `<iq xmlns="encrypt" type="set">` prekey upload.
    pub fn from_upload(iq: &Node) -> Option<Bundle> {
        Some(Bundle {
            registration: child_bytes(iq, "registration")?,
            identity: child_bytes(iq, "identity")?,
            skey: iq.get_optional_child("skey")?.clone(),
            keys: iq
                .get_optional_child("list")
                .and_then(|l| l.children())
                .unwrap_or_default()
                .iter()
                .filter(|k| k.tag == "key")
                .cloned()
                .collect(),
            device_identity: None,
        })
    }

    /// From the registration data an unpaired client sends in its handshake: the signed
    /// prekey only, no one-time keys.
    pub fn from_registration(data: &wa::client_payload::DevicePairingRegistrationData) -> Option<Bundle> {
        Some(Bundle {
            registration: data.e_regid.clone()?,
            identity: data.e_ident.clone()?,
            skey: NodeBuilder::new("skey")
                .children([
                    bytes_node("id", data.e_skey_id.clone()?),
                    bytes_node("value", data.e_skey_val.clone()?),
                    bytes_node("signature", data.e_skey_sig.clone()?),
                ])
                .build(),
            keys: VecDeque::new(),
            device_identity: None,
        })
    }

    /// The keys a fake-held peer publishes: its identity, its signed prekey with the
    /// signature, and one-time prekeys `(id, public key)` whose private halves the peer keeps.
    pub fn published(
        identity: &KeyPair,
        registration_id: u32,
        signed_id: u32,
        signed_prekey: &KeyPair,
        signature: Vec<u8>,
        keys: Vec<(u32, Vec<u8>)>,
    ) -> Bundle {
        Bundle {
            registration: registration_id.to_be_bytes().to_vec(),
            identity: identity.public_key.public_key_bytes().to_vec(),
            skey: NodeBuilder::new("skey")
                .children([
                    bytes_node("id", id3(signed_id)),
                    bytes_node("value", signed_prekey.public_key.public_key_bytes().to_vec()),
                    bytes_node("signature", signature),
                ])
                .build(),
            keys: keys
                .into_iter()
                .map(|(id, public)| {
                    NodeBuilder::new("key")
                        .children([bytes_node("id", id3(id)), bytes_node("value", public)])
                        .build()
                })
                .collect(),
            device_identity: None,
        }
    }

    pub fn with_device_identity(mut self, identity: Vec<u8>) -> Bundle {
        self.device_identity = Some(identity);
        self
    }

    pub fn identity(&self) -> &[u8] {
        &self.identity
    }

    /// The `<user>` node of a prekey fetch answer for `jid`, using up one one-time key.
    pub fn take_user_node(&mut self, jid: &Jid) -> Node {
        let mut children = vec![
            bytes_node("registration", self.registration.clone()),
            bytes_node("type", vec![5u8]),
            bytes_node("identity", self.identity.clone()),
            self.skey.clone(),
        ];
        if let Some(key) = self.keys.pop_front() {
            children.push(key);
        }
        if let Some(identity) = &self.device_identity {
            children.push(bytes_node("device-identity", identity.clone()));
        }
        NodeBuilder::new("user").attr("jid", jid.clone()).children(children).build()
    }

    pub fn one_time_keys_left(&self) -> usize {
        self.keys.len()
    }
}

/// The app-state key share a phone sends its new companion: one sync key.
pub fn app_state_key_share(key_id: &[u8], key_data: &[u8; 32], timestamp_ms: i64) -> wa::Message {
    use wa::message::protocol_message::Type;
    use wa::message::{
        AppStateSyncKey, AppStateSyncKeyData, AppStateSyncKeyFingerprint, AppStateSyncKeyId,
        AppStateSyncKeyShare, ProtocolMessage,
    };
    wa::Message {
        protocol_message: MessageField::some(ProtocolMessage {
            r#type: Some(Type::AppStateSyncKeyShare),
            app_state_sync_key_share: MessageField::some(AppStateSyncKeyShare {
                keys: vec![AppStateSyncKey {
                    key_id: MessageField::some(AppStateSyncKeyId { key_id: Some(key_id.to_vec()) }),
                    key_data: MessageField::some(AppStateSyncKeyData {
                        key_data: Some(key_data.to_vec()),
                        fingerprint: MessageField::some(AppStateSyncKeyFingerprint {
                            raw_id: Some(1),
                            current_index: Some(0),
                            device_indexes: vec![0],
                        }),
                        timestamp: Some(timestamp_ms),
                    }),
                }],
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}
