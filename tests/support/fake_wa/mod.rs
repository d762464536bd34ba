//! An in-process fake WhatsApp server for tests, plugged into a real `whatsapp-rust` client
//! through the client's transport seam (`TransportFactory`), and a real peer for that client:
//! the contacts it talks to are Signal peers the fake holds the keys of.
//!
//! Every `create_transport()` is a new connection. The fake answers the Noise handshake as the
//! responder (XX for a new device, IK for a reconnect of a paired device, XXfallback when the
//! client's cached server key is stale), then speaks the framed, encrypted binary XML stream.
//!
//! What it models:
//!
//! - pairing: an unpaired client gets `<pair-device>` refs and shows QR codes;
//!   [`FakeWhatsApp::scan_as`] plays the phone scanning one (`<pair-success>` with an ADV
//!   identity signed by the account key, then stream error 515), or the client asks for a pair
//!   code and [`FakeWhatsApp::enter_pair_code`] plays the user typing it (`pair_code.rs`);
//! - login: `<success>`, answers to the login IQs (`login.rs`), and the phone's app-state key
//!   share right after it (without it the client waits 10 s, `KEY_SHARE_GRACE_SECS`, whenever
//!   it bootstraps app state);
//! - a directory (`directory.rs`): every number is on WhatsApp with one device (its phone)
//!   unless [`FakeWhatsApp::set_unregistered`] says otherwise; contacts are found by phone
//!   number or by LID, and usync answers carry the LID once a test gave a contact one;
//! - contacts and the account's phone as Signal peers (`peer.rs`) with real published bundles
//!   whose private halves the fake keeps: prekey fetches hand them out;
//! - outbound messages (`messaging.rs`): every copy is decrypted by the peer it is for and
//!   filed, typed, in its inbox; the server acks; the contact sends delivery receipts (and read
//!   receipts on demand);
//! - inbound messages (`inbound.rs`): a contact encrypts to each companion (pkmsg first, msg
//!   once it has a session it was answered on) with its push name, from its phone number or
//!   its LID (with or without `sender_pn`);
//! - delivery (`delivery.rs`): stanzas for a companion wait until the client answers them;
//!   an offline companion gets them at its next login through the offline preview, primer,
//!   batch requests and end marker; a dropped connection means redelivery;
//! - switches for a server in trouble: swallowed sends, lost or withheld acks, connections
//!   dropped right after a delivery; and the lifecycle controls: dropped connections,
//!   logouts, replaced streams, refused logins, a rotated server key;
//! - media (`media.rs`): the media-connection IQ and an in-process media host behind the
//!   client's `HttpClient` seam; uploads are checked (auth, hash token) and kept, tests open
//!   them as a recipient does (hashes, MAC, decryption), contacts upload their own files;
//! - groups (`groups.rs`, addressed by phone number): metadata answers, the client's sender
//!   keys and group messages decrypted by every member, group messages sent by members; the
//!   group IQs (list, create, participants, settings, invites, leave) and the notifications
//!   of members' changes (`group_admin.rs`);
//! - contacts' profiles (about text, picture, business) and the account's blocklist
//!   (`contacts.rs`);
//! - what a client reports (`activity.rs`): its receipts (read marks among them), presence
//!   and chat states (typing, recording) are journaled, not relayed;
//! - app state (`app_state.rs`): the phone archives, pins or mutes a chat or saves a contact
//!   as a patch encrypted with the shared app-state key, announced by `server_sync`;
//!   collections without patches answer 409 "in sync".
//!
//! Not modelled: LID-addressed groups, large-file resumable uploads (every upload starts at
//! byte 0), media re-upload requests, app-state snapshots and REMOVE mutations, history sync,
//! notifications (but the pair-code one, groups' `w:gp2` and `server_sync`), retry receipts answered with a fresh session,
//! companions of other accounts as recipients, presence and chat states of contacts, calls,
//! newsletters and status.
//!
//! Tests observe the server side through the journal ([`FakeWhatsApp::journal`]) and wait on
//! any condition with [`FakeWhatsApp::wait_until`] and friends, never by sleeping.
//!
//! Shared by the test binaries through `#[path]`; it is not a test binary itself. The client
//! must be built with `danger-skip-cert-chain-verify` (the dev-dependency does that): the fake's
//! certificate chain is self-made. Set `FAKE_WA_LOG=1` to print the server side as it happens.

// Each test binary uses a part of the fake.
#![allow(dead_code, unused_imports)]

mod activity;
mod app_state;
mod conn;
mod contacts;
mod delivery;
mod directory;
mod group_admin;
mod groups;
mod handshake;
mod inbound;
mod login;
mod media;
mod messaging;
mod observe;
mod pair_code;
mod pairing;
mod peer;
mod phone;
mod session;
mod signal;
mod stanza;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::sync::{broadcast, watch};
use whatsapp_rust::transport::{Transport, TransportEvent, TransportFactory};
use whatsapp_rust::wacore::crypto::generate_curve_key_pair;
use whatsapp_rust::wacore::libsignal::protocol::KeyPair;
use whatsapp_rust::wacore_binary::{Jid, Node, NodeContent};

pub use activity::SentReceipt;
pub use app_state::PhoneAction;
pub use conn::ConnectionInfo;
pub use contacts::ContactProfile;
pub use handshake::HandshakeKind;
pub use inbound::{Addressing, ContactMessage, ContactSent};
pub use media::{FakeMediaHost, Uploaded};
pub use messaging::{Content, MediaRef, ReceiptKind, Received};
pub use observe::FakeEvent;
#[allow(unused_imports)]
pub use pair_code::PairCodeRequest;
pub use peer::EncKind;
pub use phone::QrCode;

use conn::Conn;
use delivery::{Drain, Pending};
use directory::{Directory, Who};
use handshake::ServerKeys;
use peer::Peer;
use signal::Bundle;

/// How long the phone waits, after the companion signed the pairing, before the server sends
/// stream error 515. A 515 right behind the client's `<pair-device-sign>` races the client's
/// own pairing bookkeeping.
pub const DEFAULT_PAIR_TO_515_DELAY: Duration = Duration::from_millis(500);

/// Number of pairing refs pushed to an unpaired client (the real server sends 6: one QR code
/// for 60 s, then five for 20 s each).
pub const PAIRING_REFS: usize = 6;

/// The journal keeps the most recent events only (keepalives of long runs add up).
pub const JOURNAL_CAPACITY: usize = 10_000;

/// What a successful scan produced.
#[derive(Debug, Clone)]
pub struct PairedPhone {
    /// The account's phone number, digits only.
    pub phone: String,
    /// The companion device number assigned to the client.
    pub device: u16,
    /// The companion's JID, `phone:device@s.whatsapp.net`.
    pub jid: Jid,
    /// The companion's LID, `lid:device@lid`.
    pub lid: Jid,
    /// The connection the pairing happened on.
    pub connection: u64,
    /// When the phone sent `<pair-success>` and when it sent the 515.
    pub pair_success_at: Instant,
    pub stream_error_at: Instant,
}

/// How the simulated phone scans.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Phone number of the account, digits only.
    pub phone: String,
    /// Sent as `<biz name>`: the client takes it as its push name, and a client with a push
    /// name skips the initial app-state bootstrap on later logins.
    pub business_name: Option<String>,
    /// `<platform name>` of the phone.
    pub platform: String,
}

impl ScanOptions {
    pub fn phone(phone: &str) -> ScanOptions {
        ScanOptions { phone: phone.to_string(), business_name: None, platform: "android".to_string() }
    }

    pub fn business_name(mut self, name: &str) -> ScanOptions {
        self.business_name = Some(name.to_string());
        self
    }
}

/// A `<failure>` the fake answers logins with instead of `<success>` (see
/// [`FakeWhatsApp::set_login_failure`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginFailure {
    /// `reason`: 401 logged out, 402 temporarily banned, 403 locked, 405 client outdated,
    /// 503 unavailable (the client retries), …
    pub reason: u16,
    /// `code`: the ban reason of a 402.
    pub code: Option<u16>,
    /// `expire`: seconds until a ban ends.
    pub expire: Option<u64>,
}

impl LoginFailure {
    /// A temporary ban (`TemporaryBan` on the client, which stops reconnecting).
    pub fn temporary_ban(code: u16, expire_secs: u64) -> LoginFailure {
        LoginFailure { reason: 402, code: Some(code), expire: Some(expire_secs) }
    }

    pub fn reason(reason: u16) -> LoginFailure {
        LoginFailure { reason, code: None, expire: None }
    }
}

/// A companion device of an account.
struct Companion {
    noise_pub: [u8; 32],
    identity_pub: [u8; 32],
    logged_out: bool,
    logins: u64,
    prekeys: usize,
    /// Its published keys: the registration data until it uploads prekeys.
    bundle: Option<Bundle>,
    /// Its ADV identity as it signed it at pairing (`<device-identity>` of its bundle).
    adv_identity: Vec<u8>,
    /// Stanzas for it that it has not answered yet (`delivery.rs`).
    pending: VecDeque<Pending>,
}

impl Companion {
    fn new(
        noise_pub: [u8; 32],
        identity_pub: [u8; 32],
        bundle: Option<Bundle>,
        adv_identity: Vec<u8>,
    ) -> Companion {
        Companion {
            noise_pub,
            identity_pub,
            logged_out: false,
            logins: 0,
            prekeys: 0,
            bundle,
            adv_identity,
            pending: VecDeque::new(),
        }
    }
}

/// Switches a test turns on for an account's next stanzas; each counts down as it fires.
#[derive(Debug, Default, Clone)]
pub struct Switches {
    /// `<message>` stanzas from a client neither acked nor delivered.
    pub swallow: u32,
    /// `<message>` stanzas delivered, then the connection drops instead of the ack.
    pub drop_before_ack: u32,
    /// `<message>` stanzas delivered, and never acked (the connection stays).
    pub withhold_ack: u32,
    /// Messages delivered to a companion, then its connection drops before it can answer.
    pub drop_after_delivery: u32,
}

struct Account {
    phone: String,
    lid: String,
    /// The phone's identity key: signs the companions' ADV identities.
    key: Arc<KeyPair>,
    devices: BTreeMap<u16, Companion>,
    next_device: u16,
    sent: Vec<(String, String)>,
    /// The phone as a Signal peer, created on first use.
    phone_peer: Arc<tokio::sync::OnceCell<Arc<Peer>>>,
    /// The copies of the companions' messages the phone decrypted.
    phone_copies: Vec<Received>,
    /// The app-state sync key the phone shares with its companions.
    sync_key_id: Vec<u8>,
    sync_key: [u8; 32],
    /// The app-state collections the phone wrote patches to, by name.
    app_state: HashMap<&'static str, app_state::Collection>,
    switches: Switches,
}

impl Account {
    fn new(phone: &str) -> Account {
        Account {
            phone: phone.to_string(),
            lid: format!("1{:014}", rand::random::<u64>() % 100_000_000_000_000),
            key: Arc::new(generate_curve_key_pair()),
            devices: BTreeMap::new(),
            next_device: 1,
            sent: Vec::new(),
            phone_peer: Arc::new(tokio::sync::OnceCell::new()),
            phone_copies: Vec::new(),
            sync_key_id: {
                let mut id = vec![0, 0, 0, 0];
                id.extend_from_slice(&rand::random::<[u8; 2]>());
                id
            },
            sync_key: rand::random(),
            app_state: HashMap::new(),
            switches: Switches::default(),
        }
    }
}

struct State {
    conns: BTreeMap<u64, Arc<Conn>>,
    /// Pairing ref → connection that showed it.
    refs: HashMap<String, u64>,
    accounts: BTreeMap<String, Account>,
    /// Everyone else.
    directory: Directory,
    /// Logins of these accounts are refused with this failure.
    login_failures: HashMap<String, LoginFailure>,
    /// Pair-code requests and the phones answering them.
    pair_codes: pair_code::Registry,
    /// Connections that finished their offline backlog: deliveries go out at once.
    online: HashSet<u64>,
    /// Offline backlogs being delivered, by connection.
    drains: HashMap<u64, Drain>,
    /// Contacts send a delivery receipt for what they decrypt.
    auto_receipts: bool,
    /// Groups by id (`groups.rs`).
    groups: BTreeMap<String, groups::Group>,
    /// Blobs on the media host (`media.rs`).
    media: media::Blobs,
}

impl Default for State {
    fn default() -> State {
        State {
            conns: BTreeMap::new(),
            refs: HashMap::new(),
            accounts: BTreeMap::new(),
            directory: Directory::default(),
            login_failures: HashMap::new(),
            pair_codes: pair_code::Registry::default(),
            online: HashSet::new(),
            drains: HashMap::new(),
            auto_receipts: true,
            groups: BTreeMap::new(),
            media: media::Blobs::default(),
        }
    }
}

impl State {
    /// Who a JID on the wire stands for: a device of one of the fake's accounts (by phone
    /// number or LID), a contact, or nobody.
    fn who(&self, jid: &Jid) -> Who {
        let account = if jid.is_lid() {
            self.accounts.values().find(|a| a.lid == jid.user.as_str())
        } else if jid.is_pn() {
            self.accounts.get(jid.user.as_str())
        } else {
            None
        };
        if let Some(account) = account {
            return Who::Account { phone: account.phone.clone(), device: jid.device };
        }
        match self.directory.contact_phone(jid) {
            Some(phone) => Who::Contact { phone },
            None => Who::Nobody,
        }
    }

    fn conns_of_device(&self, phone: &str, device: u16) -> Vec<Arc<Conn>> {
        self.conns
            .values()
            .filter(|c| {
                let info = c.info();
                info.logged_in && info.phone.as_deref() == Some(phone) && info.device == Some(device)
            })
            .cloned()
            .collect()
    }

    /// The connection of companion `device` of `phone` that takes deliveries now.
    fn online_conn(&self, phone: &str, device: u16) -> Option<Arc<Conn>> {
        self.conns_of_device(phone, device).into_iter().find(|c| self.online.contains(&c.id))
    }
}

pub struct FakeWhatsApp {
    keys: Mutex<Arc<ServerKeys>>,
    state: Mutex<State>,
    changes: watch::Sender<u64>,
    events: broadcast::Sender<FakeEvent>,
    journal: Mutex<VecDeque<(Duration, FakeEvent)>>,
    /// IQs received per (phone, xmlns, first child).
    iq_counts: Mutex<HashMap<(String, String, String), usize>>,
    pairing_refs: AtomicUsize,
    next_id: AtomicU64,
    started: Instant,
    pair_delay: Mutex<Duration>,
    key_share: AtomicBool,
    verbose: bool,
}

/// The `TransportFactory` to hand to `Bot::builder().with_transport_factory(..)`.
#[derive(Clone)]
pub struct FakeTransportFactory {
    fake: Arc<FakeWhatsApp>,
}

#[whatsapp_rust::async_trait]
impl TransportFactory for FakeTransportFactory {
    async fn create_transport(
        &self,
    ) -> Result<(Arc<dyn Transport>, whatsapp_rust::async_channel::Receiver<TransportEvent>)> {
        let fake = &self.fake;
        let id = fake.next_id.fetch_add(1, Ordering::Relaxed);
        let (conn, transport, events) = conn::open(fake, id);
        fake.state.lock().unwrap().conns.insert(id, conn);
        fake.record(FakeEvent::ConnectionOpened { conn: id });
        Ok((transport, events))
    }
}

impl FakeWhatsApp {
    pub fn new() -> Arc<FakeWhatsApp> {
        let (changes, _) = watch::channel(0);
        let (events, _) = broadcast::channel(1024);
        Arc::new(FakeWhatsApp {
            keys: Mutex::new(Arc::new(ServerKeys::generate())),
            state: Mutex::new(State::default()),
            changes,
            events,
            journal: Mutex::new(VecDeque::new()),
            iq_counts: Mutex::new(HashMap::new()),
            pairing_refs: AtomicUsize::new(PAIRING_REFS),
            next_id: AtomicU64::new(1),
            started: Instant::now(),
            pair_delay: Mutex::new(DEFAULT_PAIR_TO_515_DELAY),
            key_share: AtomicBool::new(true),
            verbose: std::env::var_os("FAKE_WA_LOG").is_some(),
        })
    }

    /// A transport factory for one client (or many: every client gets its own connections).
    pub fn transport_factory(self: &Arc<Self>) -> FakeTransportFactory {
        FakeTransportFactory { fake: self.clone() }
    }

    /// The account's LID (digits), once the account exists (after its first pairing).
    pub fn lid_of(&self, phone: &str) -> Option<String> {
        self.state.lock().unwrap().accounts.get(phone).map(|a| a.lid.clone())
    }

    /// The linked (not logged out) companions of `phone` that published keys.
    fn companions(&self, phone: &str) -> Vec<u16> {
        let state = self.state.lock().unwrap();
        state
            .accounts
            .get(phone)
            .map(|a| {
                a.devices
                    .iter()
                    .filter(|(_, c)| !c.logged_out && c.bundle.is_some())
                    .map(|(d, _)| *d)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn server_keys(&self) -> Arc<ServerKeys> {
        self.keys.lock().unwrap().clone()
    }

    fn conns_of(&self, phone: &str) -> Vec<Arc<Conn>> {
        let state = self.state.lock().unwrap();
        state.conns.values().filter(|c| c.info().phone.as_deref() == Some(phone)).cloned().collect()
    }

    fn next_iq_id(&self) -> String {
        format!("fake-{}", self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    fn bump(&self) {
        self.changes.send_modify(|v| *v += 1);
    }

    fn note(&self, text: String) {
        self.record(FakeEvent::Note(text));
    }

    pub(crate) fn log(&self, text: String) {
        self.note(text);
    }
}

/// A message id shaped like the ones WhatsApp clients make.
fn new_message_id() -> String {
    format!("3EB0{}", hex::encode_upper(rand::random::<[u8; 8]>()))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn content_bytes(node: &Node) -> Option<&[u8]> {
    match node.content.as_ref()? {
        NodeContent::Bytes(b) => Some(b),
        _ => None,
    }
}

/// A stanza as text, for messages.
fn render(node: &Node) -> String {
    let mut out = format!("<{}", node.tag);
    for (k, v) in node.attrs.iter() {
        let _ = write!(out, " {k}=\"{}\"", v.as_str());
    }
    match &node.content {
        None => out.push_str("/>"),
        Some(NodeContent::Nodes(children)) => {
            out.push('>');
            for child in children {
                out.push_str(&render(child));
            }
            let _ = write!(out, "</{}>", node.tag);
        }
        Some(NodeContent::Bytes(b)) => {
            let _ = write!(out, ">[{} bytes]</{}>", b.len(), node.tag);
        }
        Some(NodeContent::String(s)) => {
            let _ = write!(out, ">{s}</{}>", node.tag);
        }
    }
    out
}
