//! The Signal side of the fake: published prekey bundles, and the phone as a Signal peer.
//!
//! - [`Bundle`]: the keys a device published (a companion's `encrypt` upload, or the signed
//!   prekey in its registration payload), handed out one one-time key per fetch in the server's
//!   `<user>` format. Fake contacts get generated bundles, so a client can open sessions to
//!   anyone (the fake never decrypts what it is sent).
//! - [`PhoneSignal`]: the primary phone (device 0) with the account key as its identity, backed
//!   by the library's own store adapters over an in-memory backend. It encrypts one kind of
//!   message, the app-state key share a real phone sends to a freshly linked companion; that is
//!   what lets the client skip its 10 s wait for the key (`KEY_SHARE_GRACE_SECS`).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Context, Result};
use whatsapp_rust::buffa::{Message as _, MessageField};
use whatsapp_rust::store::persistence_manager::PersistenceManager;
use whatsapp_rust::store::signal_adapter::SignalProtocolStoreAdapter;
use whatsapp_rust::store::signal_cache::SignalStoreCache;
use whatsapp_rust::wacore::client::context::{GroupInfo, SendContextResolver};
use whatsapp_rust::wacore::crypto::{calculate_curve_signature, generate_curve_key_pair};
use whatsapp_rust::wacore::libsignal::protocol::{KeyPair, PreKeyBundle};
use whatsapp_rust::wacore::messages::MessageUtils;
use whatsapp_rust::wacore::prekeys::{PreKeyFetchOutcome, PreKeyUtils};
use whatsapp_rust::wacore::store::InMemoryBackend;
use whatsapp_rust::wacore_binary::builder::NodeBuilder;
use whatsapp_rust::wacore_binary::{Jid, Node, NodeContent};
use whatsapp_rust::waproto::whatsapp as wa;
use whatsapp_rust::TokioRuntime;

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

    /// A made-up device with fresh keys (a contact's phone, or our account's phone).
    pub fn generate(
        identity: &KeyPair,
        registration_id: u32,
        signed_prekey: &KeyPair,
        signed_id: u32,
    ) -> Bundle {
        let signature =
            calculate_curve_signature(&identity.private_key, &signed_prekey.public_key.serialize())
                .map(|s| s.to_vec())
                .unwrap_or_else(|_| vec![0; 64]);
        let keys = (1..=5u32)
            .map(|id| {
                let kp = generate_curve_key_pair();
                NodeBuilder::new("key")
                    .children([
                        bytes_node("id", id3(id)),
                        bytes_node("value", kp.public_key.public_key_bytes().to_vec()),
                    ])
                    .build()
            })
            .collect();
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
            keys,
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

/// The primary phone as a Signal peer.
pub struct PhoneSignal {
    pm: Arc<PersistenceManager>,
    stores: tokio::sync::Mutex<SignalProtocolStoreAdapter>,
    /// The phone's own published bundle (device 0), for clients that open a session to it.
    bundle: Mutex<Bundle>,
}

impl PhoneSignal {
    /// A phone whose Signal identity is the account key (the key that signs companions).
    pub async fn new(account_key: &KeyPair, phone: &str) -> Result<PhoneSignal> {
        let pm = Arc::new(
            PersistenceManager::new(Arc::new(InMemoryBackend::new()))
                .await
                .map_err(|e| anyhow!("phone store: {e}"))?,
        );
        let identity = account_key.clone();
        let jid = Jid::pn(phone.to_string());
        let (registration_id, signed_prekey, signed_id) = pm
            .modify_device(move |d| {
                // The signed prekey must be signed by the identity it is published with.
                if let Ok(sig) =
                    calculate_curve_signature(&identity.private_key, &d.signed_pre_key.public_key.serialize())
                {
                    d.signed_pre_key_signature = sig;
                }
                d.identity_key = identity;
                d.pn = Some(jid);
                (d.registration_id, d.signed_pre_key.clone(), d.signed_pre_key_id)
            })
            .await;
        let bundle = Bundle::generate(account_key, registration_id, &signed_prekey, signed_id);
        let device = pm.get_device_arc().await;
        let stores = SignalProtocolStoreAdapter::new(device, Arc::new(SignalStoreCache::new()));
        Ok(PhoneSignal { pm, stores: tokio::sync::Mutex::new(stores), bundle: Mutex::new(bundle) })
    }

    /// The `<user>` node for a client fetching the phone's prekeys.
    pub fn take_user_node(&self, jid: &Jid) -> Node {
        self.bundle.lock().unwrap().take_user_node(jid)
    }

    /// Encrypts `message` for one companion device; returns the `<enc>` node. `bundle` is the
    /// companion's `<user>` prekey node, used when the phone has no session with it yet.
    pub async fn encrypt(&self, to: &Jid, bundle: Node, message: &wa::Message) -> Result<Node> {
        let plaintext = MessageUtils::pad_message_v2(message.encode_to_vec());
        let resolver = OneBundle { node: Mutex::new(Some(bundle)) };
        let mut stores = self.stores.lock().await;
        let result = whatsapp_rust::wacore::send::encrypt_for_devices(
            &TokioRuntime,
            &mut stores.as_signal_stores(),
            &resolver,
            std::slice::from_ref(to),
            &plaintext,
            false,
            None,
        )
        .await
        .context("phone-side Signal encryption")?;
        result
            .participant_nodes
            .into_iter()
            .find_map(|to| to.get_optional_child("enc").cloned())
            .ok_or_else(|| anyhow!("phone-side encryption produced no <enc> for {to}"))
    }
}

/// Serves one prefetched `<user>` node as the prekey fetch answer.
struct OneBundle {
    node: Mutex<Option<Node>>,
}

impl OneBundle {
    fn outcome(&self) -> Result<PreKeyFetchOutcome> {
        let user =
            self.node.lock().unwrap().take().ok_or_else(|| anyhow!("no prekey bundle for the companion"))?;
        let answer =
            NodeBuilder::new("iq").children([NodeBuilder::new("list").children([user]).build()]).build();
        PreKeyUtils::parse_prekeys_response(&answer.as_node_ref(), &HashMap::new())
    }
}

#[whatsapp_rust::async_trait]
impl SendContextResolver for OneBundle {
    async fn resolve_devices(&self, jids: &[Jid]) -> Result<Vec<Jid>> {
        Ok(jids.to_vec())
    }

    async fn fetch_prekeys(&self, _jids: &[Jid]) -> Result<HashMap<Jid, PreKeyBundle>> {
        Ok(self.outcome()?.bundles)
    }

    async fn fetch_prekeys_for_identity_check(&self, _jids: &[Jid]) -> Result<PreKeyFetchOutcome> {
        self.outcome()
    }

    async fn resolve_group_info(&self, jid: &Jid) -> Result<Arc<GroupInfo>> {
        Err(anyhow!("the fake phone has no group {jid}"))
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
