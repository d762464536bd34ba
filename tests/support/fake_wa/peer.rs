//! A device the fake plays itself: a contact's phone, or the account's own phone. It is a full
//! Signal peer built from the library's own store adapters over an in-memory backend, and it
//! keeps the private halves of the keys it publishes, so the fake can both encrypt to the
//! client (inbound messages, the app-state key share) and decrypt what the client encrypts to
//! it (outbound messages, the phone's copies of them, sender keys of groups).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context, Result};
use whatsapp_rust::buffa::Message as _;
use whatsapp_rust::store::persistence_manager::PersistenceManager;
use whatsapp_rust::store::signal_adapter::SignalProtocolStoreAdapter;
use whatsapp_rust::store::signal_cache::SignalStoreCache;
use whatsapp_rust::wacore::client::context::{GroupInfo, SendContextResolver};
use whatsapp_rust::wacore::crypto::{calculate_curve_signature, generate_curve_key_pair};
use whatsapp_rust::wacore::libsignal::protocol::{
    message_decrypt, CiphertextMessage, KeyPair, PreKeyBundle, PreKeyRecord, PreKeySignalMessage,
    PreKeyStore as _, SignalMessage, UsePQRatchet,
};
use whatsapp_rust::wacore::messages::MessageUtils;
use whatsapp_rust::wacore::prekeys::{PreKeyFetchOutcome, PreKeyUtils};
use whatsapp_rust::wacore::store::InMemoryBackend;
use whatsapp_rust::wacore::types::jid::JidExt as _;
use whatsapp_rust::wacore_binary::builder::NodeBuilder;
use whatsapp_rust::wacore_binary::{Jid, Node};
use whatsapp_rust::waproto::whatsapp as wa;
use whatsapp_rust::TokioRuntime;

use super::signal::Bundle;

/// One-time prekeys a peer publishes. A client fetches one per new session; a bundle that ran
/// dry still works (a pkmsg without a one-time key is legal).
const ONE_TIME_PREKEYS: u32 = 20;

/// How a `<enc>` was encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncKind {
    /// A `PreKeySignalMessage`: the sender has no acknowledged session yet.
    Pkmsg,
    /// A `SignalMessage` on an established session.
    Msg,
    /// A sender-key (group) message.
    Skmsg,
}

impl EncKind {
    pub fn parse(wire: &str) -> Option<EncKind> {
        match wire {
            "pkmsg" => Some(EncKind::Pkmsg),
            "msg" => Some(EncKind::Msg),
            "skmsg" => Some(EncKind::Skmsg),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EncKind::Pkmsg => "pkmsg",
            EncKind::Msg => "msg",
            EncKind::Skmsg => "skmsg",
        }
    }
}

/// A Signal peer held by the fake.
pub struct Peer {
    /// The peer's own device JID (`number@s.whatsapp.net`, device 0).
    pub jid: Jid,
    stores: tokio::sync::Mutex<SignalProtocolStoreAdapter>,
    /// What the server hands out for this device.
    bundle: Mutex<Bundle>,
    /// Keeps the device (and its backend) alive behind the adapters.
    _pm: Arc<PersistenceManager>,
}

impl Peer {
    /// A new device for `jid` with fresh keys, or with `identity` as its identity key (the
    /// account's phone signs its companions with the key it is known by).
    pub async fn new(jid: Jid, identity: Option<&KeyPair>) -> Result<Peer> {
        let pm = Arc::new(
            PersistenceManager::new(Arc::new(InMemoryBackend::new()))
                .await
                .map_err(|e| anyhow!("peer store: {e}"))?,
        );
        let identity = identity.cloned();
        let own = jid.clone();
        let (identity, registration_id, signed_prekey, signed_id, signature) = pm
            .modify_device(move |d| {
                if let Some(identity) = identity {
                    // The signed prekey must be signed by the identity it is published with.
                    if let Ok(sig) = calculate_curve_signature(
                        &identity.private_key,
                        &d.signed_pre_key.public_key.serialize(),
                    ) {
                        d.signed_pre_key_signature = sig;
                    }
                    d.identity_key = identity;
                }
                d.pn = Some(own);
                (
                    d.identity_key.clone(),
                    d.registration_id,
                    d.signed_pre_key.clone(),
                    d.signed_pre_key_id,
                    d.signed_pre_key_signature,
                )
            })
            .await;
        let device = pm.get_device_arc().await;
        let mut stores = SignalProtocolStoreAdapter::new(device, Arc::new(SignalStoreCache::new()));
        let mut keys = Vec::new();
        for id in 1..=ONE_TIME_PREKEYS {
            let pair = generate_curve_key_pair();
            stores
                .pre_key_store
                .save_pre_key(id.into(), &PreKeyRecord::new(id.into(), &pair))
                .await
                .context("save a one-time prekey")?;
            keys.push((id, pair.public_key.public_key_bytes().to_vec()));
        }
        let bundle = Bundle::published(
            &identity,
            registration_id,
            signed_id,
            &signed_prekey,
            signature.to_vec(),
            keys,
        );
        Ok(Peer { jid, stores: tokio::sync::Mutex::new(stores), bundle: Mutex::new(bundle), _pm: pm })
    }

    /// The `<user>` node of a prekey fetch answer for `jid`, using up one one-time key.
    pub fn take_user_node(&self, jid: &Jid) -> Node {
        self.bundle.lock().unwrap().take_user_node(jid)
    }

    /// Whether this peer has a Signal session with `device`.
    pub async fn has_session(&self, device: &Jid) -> Result<bool> {
        let stores = self.stores.lock().await;
        Ok(whatsapp_rust::wacore::libsignal::protocol::has_session(
            &stores.session_store,
            &device.to_protocol_address(),
        )
        .await?)
    }

    /// Encrypts `message` (padded) for `to`; returns the `<enc>` node. `bundle` is `to`'s
    /// `<user>` prekey node, needed only when there is no session yet.
    pub async fn encrypt(&self, to: &Jid, bundle: Option<Node>, message: &wa::Message) -> Result<Node> {
        let plaintext = MessageUtils::pad_message_v2(message.encode_to_vec());
        let resolver = OneBundle { node: Mutex::new(bundle) };
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
        .with_context(|| format!("{} encrypting to {to}", self.jid))?;
        result
            .participant_nodes
            .into_iter()
            .find_map(|to| to.get_optional_child("enc").cloned())
            .ok_or_else(|| anyhow!("encryption produced no <enc> for {to}"))
    }

    /// Decrypts a pairwise `<enc>` from `from` (pkmsg or msg), unpads and decodes it.
    pub async fn decrypt(&self, from: &Jid, kind: EncKind, ciphertext: &[u8]) -> Result<wa::Message> {
        let parsed = match kind {
            EncKind::Pkmsg => CiphertextMessage::PreKeySignalMessage(
                PreKeySignalMessage::try_from(ciphertext).context("not a pkmsg")?,
            ),
            EncKind::Msg => {
                CiphertextMessage::SignalMessage(SignalMessage::try_from(ciphertext).context("not a msg")?)
            }
            EncKind::Skmsg => bail!("a sender-key message is not pairwise"),
        };
        let mut rng = rand10::make_rng::<rand10::rngs::StdRng>();
        let mut stores = self.stores.lock().await;
        let stores = &mut *stores;
        let decrypted = message_decrypt(
            &parsed,
            &from.to_protocol_address(),
            &mut stores.session_store,
            &mut stores.identity_store,
            &mut stores.pre_key_store,
            &stores.signed_pre_key_store,
            &mut rng,
            UsePQRatchet::No,
        )
        .await
        .with_context(|| format!("{} decrypting a {} from {from}", self.jid, kind.as_str()))?;
        decode_padded(&decrypted.plaintext)
    }

    /// Locks the peer's stores (sender keys of groups live there too).
    pub async fn stores(&self) -> tokio::sync::MutexGuard<'_, SignalProtocolStoreAdapter> {
        self.stores.lock().await
    }
}

/// Unpads (padding version 2) and decodes a decrypted plaintext.
pub fn decode_padded(plaintext: &[u8]) -> Result<wa::Message> {
    let unpadded = MessageUtils::unpad_message_ref(plaintext, 2).context("bad padding")?;
    wa::Message::decode_from_slice(unpadded).context("not a wa::Message")
}

/// Serves one prefetched `<user>` node as the prekey fetch answer.
struct OneBundle {
    node: Mutex<Option<Node>>,
}

impl OneBundle {
    fn outcome(&self) -> Result<PreKeyFetchOutcome> {
        let user =
            self.node.lock().unwrap().take().ok_or_else(|| anyhow!("no prekey bundle to start a session"))?;
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
        Err(anyhow!("the fake's peers resolve no group {jid}"))
    }
}
