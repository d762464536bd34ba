//! An in-process fake WhatsApp server for tests, plugged into a real `whatsapp-rust` client
//! through the client's transport seam (`TransportFactory`).
//!
//! Every `create_transport()` is a new connection. The fake answers the Noise handshake as the
//! responder (XX for a new device, IK for a reconnect of a paired device, XXfallback when the
//! client's cached server key is stale), then speaks the framed, encrypted binary XML stream:
//!
//! - an unpaired client gets `<pair-device>` refs and shows QR codes; [`FakeWhatsApp::scan_as`]
//!   plays the phone scanning one (`<pair-success>` with an ADV identity signed by the account
//!   key), then sends stream error 515; the client reconnects and logs in;
//! - an unpaired client may ask for a pair code instead (`companion_hello`, answered with a
//!   ref); [`FakeWhatsApp::enter_pair_code`] plays the user typing the code on the phone (the
//!   primary's side of the exchange, see `pair_code.rs`), then links it as a scan does;
//! - a paired client gets `<success>` and answers to its login IQs, and reaches
//!   `Event::Connected`. Right after `<success>` the phone (a Signal peer with the account key
//!   as identity) sends the companion an encrypted app-state key share, as a real phone does
//!   after linking: without it the client waits 10 s (`KEY_SHARE_GRACE_SECS`) before
//!   `Connected` whenever it bootstraps app state;
//! - what the client sends is answered: prekey fetches with made-up bundles (so sends work),
//!   usync with "on WhatsApp, one device" (or "not on WhatsApp", see
//!   [`FakeWhatsApp::set_unregistered`]), `<message>` with an ack (recorded, never delivered);
//! - the test can drop connections, log devices out and replace streams, and wait for the
//!   server-side state with [`FakeWhatsApp::wait_until`] and friends.
//!
//! Shared by the test binaries through `#[path]`; it is not a test binary itself. The client
//! must be built with `danger-skip-cert-chain-verify` (the dev-dependency does that): the fake's
//! certificate chain is self-made.
//!
//! Not modelled: delivery of messages between clients or to the test, inbound messages,
//! receipts, app-state contents (every collection answers 409 "in sync", so no push name comes
//! from app state), media, groups, notifications (but the pair-code one), offline queues,
//! history sync. Set `FAKE_WA_LOG=1` to print the server side as it happens.

#![allow(dead_code)]

mod conn;
mod handshake;
mod login;
mod pair_code;
mod phone;
mod signal;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use tokio::sync::{broadcast, watch};
use whatsapp_rust::transport::{DisconnectReason, Transport, TransportEvent, TransportFactory};
use whatsapp_rust::wacore::crypto::generate_curve_key_pair;
use whatsapp_rust::wacore::libsignal::protocol::KeyPair;
use whatsapp_rust::wacore_binary::builder::NodeBuilder;
use whatsapp_rust::wacore_binary::{Jid, Node, NodeContent, SERVER_JID};
use whatsapp_rust::waproto::whatsapp as wa;

pub use conn::ConnectionInfo;
pub use handshake::HandshakeKind;
#[allow(unused_imports)]
pub use pair_code::PairCodeRequest;
pub use phone::QrCode;

use conn::{attr, Conn};
use handshake::ServerKeys;
use signal::{Bundle, PhoneSignal};

/// How long the phone waits, after the companion signed the pairing, before the server sends
/// stream error 515. A 515 right behind the client's `<pair-device-sign>` races the client's
/// own pairing bookkeeping (see the research notes, §6.2).
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

/// Something that happened on the server side, in [`FakeWhatsApp::journal`] order.
#[derive(Debug, Clone)]
pub enum FakeEvent {
    ConnectionOpened {
        conn: u64,
    },
    Handshake {
        conn: u64,
        kind: HandshakeKind,
    },
    PairingRefs {
        conn: u64,
        refs: Vec<String>,
    },
    /// A `companion_hello` was accepted (a code is on the companion's screen).
    PairCodeRequested {
        conn: u64,
        phone: String,
        platform_id: String,
        platform_display: String,
    },
    /// The phone went through the code exchange; `accepted` when the companion's key bundle
    /// opened with the code typed.
    PairCodeEntered {
        conn: u64,
        phone: String,
        accepted: bool,
    },
    Paired {
        conn: u64,
        phone: String,
        device: u16,
    },
    StreamError {
        conn: u64,
        code: String,
    },
    LoggedIn {
        conn: u64,
        phone: String,
        device: u16,
        handshake: HandshakeKind,
    },
    LoginRejected {
        conn: u64,
        phone: String,
        device: u16,
        reason: &'static str,
    },
    /// An IQ from a client (answered right away).
    Iq {
        conn: u64,
        phone: Option<String>,
        xmlns: String,
        child: String,
    },
    PrekeysUploaded {
        phone: String,
        count: usize,
    },
    MessageReceived {
        phone: String,
        to: String,
        id: String,
    },
    KeyShareSent {
        conn: u64,
        phone: String,
        device: u16,
    },
    ClientNack {
        conn: u64,
        stanza: String,
    },
    ConnectionClosed {
        conn: u64,
        phone: Option<String>,
    },
    Note(String),
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
    signal: Arc<tokio::sync::OnceCell<PhoneSignal>>,
    /// The app-state sync key the phone shares with its companions.
    sync_key_id: Vec<u8>,
    sync_key: [u8; 32],
}

#[derive(Default)]
struct State {
    conns: BTreeMap<u64, Arc<Conn>>,
    /// Pairing ref → connection that showed it.
    refs: HashMap<String, u64>,
    accounts: BTreeMap<String, Account>,
    /// Made-up prekey bundles of everyone else (device 0 only).
    contacts: HashMap<String, Bundle>,
    /// Numbers that are not on WhatsApp.
    unregistered: std::collections::HashSet<String>,
    /// Logins of these accounts are refused with this failure.
    login_failures: HashMap<String, LoginFailure>,
    /// Pair-code requests and the phones answering them.
    pair_codes: pair_code::Registry,
}

pub struct FakeWhatsApp {
    keys: Mutex<Arc<ServerKeys>>,
    state: Mutex<State>,
    changes: watch::Sender<u64>,
    events: broadcast::Sender<FakeEvent>,
    journal: Mutex<std::collections::VecDeque<(Duration, FakeEvent)>>,
    /// IQs received per (phone, xmlns, first child).
    iq_counts: Mutex<HashMap<(String, String, String), usize>>,
    pairing_refs: std::sync::atomic::AtomicUsize,
    next_id: AtomicU64,
    started: Instant,
    pair_delay: Mutex<Duration>,
    key_share: std::sync::atomic::AtomicBool,
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
            journal: Mutex::new(std::collections::VecDeque::new()),
            iq_counts: Mutex::new(HashMap::new()),
            pairing_refs: std::sync::atomic::AtomicUsize::new(PAIRING_REFS),
            next_id: AtomicU64::new(1),
            started: Instant::now(),
            pair_delay: Mutex::new(DEFAULT_PAIR_TO_515_DELAY),
            key_share: std::sync::atomic::AtomicBool::new(true),
            verbose: std::env::var_os("FAKE_WA_LOG").is_some(),
        })
    }

    /// A transport factory for one client (or many: every client gets its own connections).
    pub fn transport_factory(self: &Arc<Self>) -> FakeTransportFactory {
        FakeTransportFactory { fake: self.clone() }
    }

    // ---- the simulated phone ----------------------------------------------------------

    /// Scans `qr` with a phone whose number the fake picks (`62800000` and a counter).
    pub async fn scan(&self, qr: &str) -> Result<PairedPhone> {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.scan_with(qr, ScanOptions::phone(&format!("62800000{n:04}"))).await
    }

    /// Scans `qr` as the phone of `phone` (digits only): links the client as a new companion
    /// device of that account, then sends the 515 that makes the client reconnect and log in.
    pub async fn scan_as(&self, qr: &str, phone: &str) -> Result<PairedPhone> {
        self.scan_with(qr, ScanOptions::phone(phone)).await
    }

    pub async fn scan_with(&self, qr: &str, options: ScanOptions) -> Result<PairedPhone> {
        let qr = QrCode::parse(qr)?;
        let phone = options.phone.clone();
        if phone.is_empty() || !phone.chars().all(|c| c.is_ascii_digit()) {
            bail!("phone number must be digits only, got {phone:?}");
        }
        let conn = {
            let state = self.state.lock().unwrap();
            let id = state
                .refs
                .get(&qr.pairing_ref)
                .copied()
                .ok_or_else(|| anyhow!("no open connection shows ref {}", qr.pairing_ref))?;
            state
                .conns
                .get(&id)
                .cloned()
                .ok_or_else(|| anyhow!("connection {id} that showed the ref is closed"))?
        };
        if conn.info().client_static != Some(qr.noise_pub) {
            bail!("the QR code's noise key is not the key of the connection showing its ref");
        }
        self.link(conn, &qr, &options).await
    }

    /// The phone vouches for a companion whose keys it learnt (from a QR code or a pair-code
    /// exchange): `<pair-success>` with an ADV identity signed by the account key, checks the
    /// companion's `<pair-device-sign>`, registers the companion, then sends the 515.
    async fn link(&self, conn: Arc<Conn>, qr: &QrCode, options: &ScanOptions) -> Result<PairedPhone> {
        let phone = options.phone.clone();
        let key = self.account_key(&phone);
        let (device, lid) = {
            let mut state = self.state.lock().unwrap();
            let account = state.accounts.get_mut(&phone).expect("account created above");
            let device = account.next_device;
            account.next_device += 1;
            (device, account.lid.clone())
        };
        let jid = Jid::pn_device(phone.clone(), device);
        let lid_jid = Jid::lid_device(lid.clone(), device);
        let identity = phone::device_identity(&key, qr, u32::from(device), rand::random())?;
        let mut success_children = vec![
            NodeBuilder::new("device-identity").bytes(identity).build(),
            NodeBuilder::new("platform").attr("name", options.platform.clone()).build(),
            NodeBuilder::new("device").attr("jid", jid.clone()).attr("lid", lid_jid.clone()).build(),
        ];
        if let Some(name) = &options.business_name {
            success_children.push(NodeBuilder::new("biz").attr("name", name.clone()).build());
        }
        let iq = NodeBuilder::new("iq")
            .attr("from", SERVER_JID)
            .attr("type", "set")
            .attr("id", self.next_iq_id())
            .attr("xmlns", "md")
            .children([NodeBuilder::new("pair-success").children(success_children).build()])
            .build();
        let answer = conn.request(&iq)?;
        let pair_success_at = Instant::now();
        let answer = tokio::time::timeout(Duration::from_secs(10), answer)
            .await
            .context("the client did not answer <pair-success> within 10 s")?
            .context("the connection closed before the client answered <pair-success>")?;
        if attr(&answer, "type").as_deref() != Some("result") {
            bail!("the client refused the pairing: {}", render(&answer));
        }
        let signed = answer
            .get_optional_child("pair-device-sign")
            .and_then(|s| s.get_optional_child("device-identity"))
            .and_then(content_bytes)
            .ok_or_else(|| anyhow!("no <pair-device-sign> in {}", render(&answer)))?;
        phone::verify_device_sign(&key, qr, signed)?;
        let adv_identity = signed.to_vec();
        let registration = conn.registration.lock().unwrap().take();
        {
            let mut state = self.state.lock().unwrap();
            let account = state.accounts.get_mut(&phone).expect("account created above");
            account.devices.insert(
                device,
                Companion {
                    noise_pub: qr.noise_pub,
                    identity_pub: qr.identity_pub,
                    logged_out: false,
                    logins: 0,
                    prekeys: 0,
                    bundle: registration,
                    adv_identity,
                },
            );
            state.refs.retain(|_, c| *c != conn.id);
            let mut info = conn.info.lock().unwrap();
            info.phone = Some(phone.clone());
            info.device = Some(device);
            info.refs.clear();
        }
        self.record(FakeEvent::Paired { conn: conn.id, phone: phone.clone(), device });
        let delay = *self.pair_delay.lock().unwrap();
        tokio::time::sleep(delay).await;
        self.stream_error(&conn, "515", None);
        Ok(PairedPhone {
            phone,
            device,
            jid,
            lid: lid_jid,
            connection: conn.id,
            pair_success_at,
            stream_error_at: Instant::now(),
        })
    }

    /// The identity key of `phone`'s account, creating the account on first use.
    fn account_key(&self, phone: &str) -> Arc<KeyPair> {
        let mut state = self.state.lock().unwrap();
        let account = state.accounts.entry(phone.to_string()).or_insert_with(|| Account {
            phone: phone.to_string(),
            lid: format!("1{:014}", rand::random::<u64>() % 100_000_000_000_000),
            key: Arc::new(generate_curve_key_pair()),
            devices: BTreeMap::new(),
            next_device: 1,
            sent: Vec::new(),
            signal: Arc::new(tokio::sync::OnceCell::new()),
            sync_key_id: {
                let mut id = vec![0, 0, 0, 0];
                id.extend_from_slice(&rand::random::<[u8; 2]>());
                id
            },
            sync_key: rand::random(),
        });
        account.key.clone()
    }

    /// Whether the phone sends the app-state key share to a companion after each of its logins
    /// (default: yes). Without it the client waits `KEY_SHARE_GRACE_SECS` (10 s) for the key
    /// before `Connected` whenever it bootstraps app state: the first login after pairing, and
    /// every login of a client with no push name.
    pub fn set_key_share(&self, enabled: bool) {
        self.key_share.store(enabled, Ordering::Relaxed);
    }

    /// How many pairing refs an unpaired client gets (default [`PAIRING_REFS`]). The client
    /// shows the first for 60 s and each further one for 20 s, then gives up
    /// (`PairingQrCodesExhausted`): one ref makes that happen after 60 s.
    pub fn set_pairing_refs(&self, count: usize) {
        self.pairing_refs.store(count.max(1), Ordering::Relaxed);
    }

    /// Changes the wait between the client's `<pair-device-sign>` and the 515.
    pub fn set_pair_to_515_delay(&self, delay: Duration) {
        *self.pair_delay.lock().unwrap() = delay;
    }

    // ---- lifecycle control --------------------------------------------------------------

    /// Closes every open connection of `phone` abruptly (the client sees a read error and
    /// reconnects by itself). Returns how many were closed.
    pub fn drop_connection(&self, phone: &str) -> usize {
        let conns = self.conns_of(phone);
        for conn in &conns {
            self.note(format!("dropping connection {}", conn.id));
            conn.close(Some(DisconnectReason::ReadError("connection reset by the fake server".to_string())));
        }
        conns.len()
    }

    /// Unlinks every companion of `phone`, as if the user logged them out on the phone: open
    /// connections get stream error 401 (the client emits `LoggedOut` and stops reconnecting),
    /// and later logins of those devices get `<failure reason="401">` (also `LoggedOut`).
    /// Returns how many open connections were told.
    pub fn logout(&self, phone: &str) -> usize {
        {
            let mut state = self.state.lock().unwrap();
            if let Some(account) = state.accounts.get_mut(phone) {
                for companion in account.devices.values_mut() {
                    companion.logged_out = true;
                }
            }
        }
        let conns = self.conns_of(phone);
        for conn in &conns {
            self.stream_error(conn, "401", None);
        }
        self.bump();
        conns.len()
    }

    /// Tells the open connections of `phone` that another client took over the session
    /// (`<conflict type="replaced">`): the client emits `StreamReplaced` and stops reconnecting.
    pub fn stream_replaced(&self, phone: &str) -> usize {
        let conns = self.conns_of(phone);
        for conn in &conns {
            self.stream_error(conn, "conflict", Some("replaced"));
        }
        conns.len()
    }

    /// Declares `phone` (digits) not on WhatsApp: usync answers `<contact type="out">` with no
    /// devices, prekey fetches answer 406. Every other number is on WhatsApp with one device.
    pub fn set_unregistered(&self, phone: &str) {
        self.state.lock().unwrap().unregistered.insert(phone.to_string());
    }

    /// Makes later logins of `phone` fail with `failure` (`None` lets them succeed again).
    /// Open connections are not touched: combine with [`Self::drop_connection`].
    pub fn set_login_failure(&self, phone: &str, failure: Option<LoginFailure>) {
        let mut state = self.state.lock().unwrap();
        match failure {
            Some(f) => state.login_failures.insert(phone.to_string(), f),
            None => state.login_failures.remove(phone),
        };
    }

    /// A new server static key: clients that cached the old one fail their IK attempt and are
    /// switched to XX mid-handshake (XXfallback) on their next connect.
    pub fn rotate_server_key(&self) {
        *self.keys.lock().unwrap() = Arc::new(ServerKeys::generate());
        self.note("server key rotated".to_string());
    }

    // ---- observation ------------------------------------------------------------------

    /// The open connections.
    pub fn connections(&self) -> Vec<ConnectionInfo> {
        let state = self.state.lock().unwrap();
        state.conns.values().map(|c| c.info()).collect()
    }

    /// Whether `phone` has an open, logged-in connection.
    pub fn is_connected(&self, phone: &str) -> bool {
        self.connections().iter().any(|c| c.logged_in && c.phone.as_deref() == Some(phone))
    }

    /// Successful logins (`<success>` sent) of all companions of `phone`.
    pub fn login_count(&self, phone: &str) -> u64 {
        let state = self.state.lock().unwrap();
        state.accounts.get(phone).map(|a| a.devices.values().map(|d| d.logins).sum()).unwrap_or(0)
    }

    /// Whether `phone` has a companion that is linked and not logged out.
    pub fn is_linked(&self, phone: &str) -> bool {
        let state = self.state.lock().unwrap();
        state.accounts.get(phone).is_some_and(|a| a.devices.values().any(|d| !d.logged_out))
    }

    /// Prekeys the client uploaded for `phone`'s companions.
    pub fn prekeys_uploaded(&self, phone: &str) -> usize {
        let state = self.state.lock().unwrap();
        state.accounts.get(phone).map(|a| a.devices.values().map(|d| d.prekeys).sum()).unwrap_or(0)
    }

    /// The `(to, id)` of every `<message>` the clients of `phone` sent, in order.
    pub fn sent(&self, phone: &str) -> Vec<(String, String)> {
        let state = self.state.lock().unwrap();
        state.accounts.get(phone).map(|a| a.sent.clone()).unwrap_or_default()
    }

    /// How many IQs with namespace `xmlns` and first child `child` the clients of `phone` sent.
    pub fn iq_count(&self, phone: &str, xmlns: &str, child: &str) -> usize {
        let key = (phone.to_string(), xmlns.to_string(), child.to_string());
        self.iq_counts.lock().unwrap().get(&key).copied().unwrap_or(0)
    }

    /// Waits until the client of `phone` has sent the post-login queries of its `count`-th
    /// login. The last of them is the prekey digest, which the client asks only once its
    /// prekey upload (if any) and the offline queue are done. (The client may still be reading
    /// the answers: a connection dropped right after this may log failed background queries.)
    pub async fn wait_settled(&self, phone: &str, count: usize, timeout: Duration) -> Result<()> {
        self.wait_until(&format!("the post-login queries of login #{count} of {phone}"), timeout, |f| {
            f.iq_count(phone, "encrypt", "digest") >= count
        })
        .await
    }

    /// Live server-side events (lossy if the receiver lags by more than 1024).
    pub fn subscribe(&self) -> broadcast::Receiver<FakeEvent> {
        self.events.subscribe()
    }

    /// What happened so far (the last [`JOURNAL_CAPACITY`] events), with the time since the
    /// fake was created.
    pub fn journal(&self) -> Vec<(Duration, FakeEvent)> {
        self.journal.lock().unwrap().iter().cloned().collect()
    }

    /// The journal as text, one event a line (for failure messages).
    pub fn journal_text(&self) -> String {
        let mut out = String::new();
        for (at, event) in self.journal() {
            let _ = writeln!(out, "{:>8.3}s {event:?}", at.as_secs_f64());
        }
        out
    }

    /// Waits until `condition` holds, re-checking whenever the server-side state changes.
    pub async fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        condition: impl Fn(&FakeWhatsApp) -> bool,
    ) -> Result<()> {
        let mut changes = self.changes.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            changes.borrow_and_update();
            if condition(self) {
                return Ok(());
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) => bail!("fake server gone while waiting for {what}"),
                Err(_) => bail!(
                    "timed out after {timeout:?} waiting for {what}; server journal:\n{}",
                    self.journal_text()
                ),
            }
        }
    }

    /// Waits until `phone` has a logged-in connection.
    pub async fn wait_logged_in(&self, phone: &str, timeout: Duration) -> Result<()> {
        self.wait_until(&format!("{phone} logged in"), timeout, |f| f.is_connected(phone)).await
    }

    /// Waits until `phone` has logged in at least `count` times in total.
    pub async fn wait_login_count(&self, phone: &str, count: u64, timeout: Duration) -> Result<()> {
        self.wait_until(&format!("login #{count} of {phone}"), timeout, |f| {
            f.login_count(phone) >= count && f.is_connected(phone)
        })
        .await
    }

    /// Waits until `phone` has no open connection.
    pub async fn wait_disconnected(&self, phone: &str, timeout: Duration) -> Result<()> {
        self.wait_until(&format!("{phone} disconnected"), timeout, |f| f.conns_of(phone).is_empty()).await
    }

    /// Waits until some open connection shows pairing refs; returns its id.
    pub async fn wait_pairing(&self, timeout: Duration) -> Result<u64> {
        self.wait_until("a connection showing pairing refs", timeout, |f| {
            f.connections().iter().any(|c| !c.refs.is_empty())
        })
        .await?;
        self.connections()
            .iter()
            .find(|c| !c.refs.is_empty())
            .map(|c| c.id)
            .ok_or_else(|| anyhow!("pairing connection closed again"))
    }

    // ---- internals --------------------------------------------------------------------

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

    fn record(&self, event: FakeEvent) {
        if self.verbose {
            eprintln!("[fake-wa {:>8.3}s] {event:?}", self.started.elapsed().as_secs_f64());
        }
        if let FakeEvent::Iq { phone: Some(phone), xmlns, child, .. } = &event {
            let key = (phone.clone(), xmlns.clone(), child.clone());
            *self.iq_counts.lock().unwrap().entry(key).or_default() += 1;
        }
        {
            let mut journal = self.journal.lock().unwrap();
            if journal.len() == JOURNAL_CAPACITY {
                journal.pop_front();
            }
            journal.push_back((self.started.elapsed(), event.clone()));
        }
        let _ = self.events.send(event);
        self.bump();
    }

    fn note(&self, text: String) {
        self.record(FakeEvent::Note(text));
    }

    pub(crate) fn log(&self, text: String) {
        self.note(text);
    }

    /// Sends `<stream:error>` and closes the connection, as the server does.
    fn stream_error(&self, conn: &Conn, code: &str, conflict: Option<&str>) {
        let node = match conflict {
            Some(kind) => NodeBuilder::new("stream:error")
                .children([NodeBuilder::new("conflict").attr("type", kind.to_string()).build()])
                .build(),
            None => NodeBuilder::new("stream:error").attr("code", code.to_string()).build(),
        };
        if conn.send_node(&node).is_ok() {
            self.record(FakeEvent::StreamError { conn: conn.id, code: conflict.unwrap_or(code).to_string() });
        }
        conn.close(Some(DisconnectReason::StreamEnded));
    }

    /// Called by the connection task once the handshake is done.
    fn connection_established(
        self: &Arc<Self>,
        conn: &Arc<Conn>,
        kind: HandshakeKind,
        payload: &wa::ClientPayload,
    ) -> Result<()> {
        self.record(FakeEvent::Handshake { conn: conn.id, kind });
        let Some(username) = payload.username else {
            if let Some(data) = payload.device_pairing_data.as_option() {
                *conn.registration.lock().unwrap() = Bundle::from_registration(data);
            }
            return self.push_pairing_refs(conn);
        };
        let phone = username.to_string();
        let device = payload.device.unwrap_or(0) as u16;
        let client_static = conn.info().client_static;
        let logged_out = LoginFailure::reason(401);
        let verdict = {
            let mut state = self.state.lock().unwrap();
            let imposed = state.login_failures.get(&phone).cloned();
            match state.accounts.get_mut(&phone) {
                None => Err(("unknown account", logged_out)),
                Some(account) => match account.devices.get_mut(&device) {
                    None => Err(("unknown device", logged_out)),
                    Some(c) if c.logged_out => Err(("logged out", logged_out)),
                    Some(c) if Some(c.noise_pub) != client_static => Err(("wrong noise key", logged_out)),
                    Some(c) => match imposed {
                        Some(failure) => Err(("failure set by the test", failure)),
                        None => {
                            c.logins += 1;
                            Ok(account.lid.clone())
                        }
                    },
                },
            }
        };
        {
            let mut info = conn.info.lock().unwrap();
            info.phone = Some(phone.clone());
            info.device = Some(device);
            info.logged_in = verdict.is_ok();
        }
        match verdict {
            Ok(lid) => {
                let now = unix_now();
                let success = NodeBuilder::new("success")
                    .attr("t", now.to_string())
                    .attr("props", "1")
                    .attr("abprops", "1")
                    .attr("location", "fake")
                    .attr("creation", now.to_string())
                    .attr("lid", Jid::lid_device(lid, device))
                    .build();
                conn.send_node(&success)?;
                self.record(FakeEvent::LoggedIn {
                    conn: conn.id,
                    phone: phone.clone(),
                    device,
                    handshake: kind,
                });
                if self.key_share.load(Ordering::Relaxed) {
                    let fake = self.clone();
                    let conn = conn.clone();
                    tokio::spawn(async move {
                        if let Err(e) = fake.send_key_share(&conn, &phone, device).await {
                            fake.note(format!("key share to {phone}:{device} failed: {e:#}"));
                        }
                    });
                }
            }
            Err((reason, failure)) => {
                let mut builder = NodeBuilder::new("failure")
                    .attr("reason", failure.reason.to_string())
                    .attr("location", "fake");
                if let Some(code) = failure.code {
                    builder = builder.attr("code", code.to_string());
                }
                if let Some(expire) = failure.expire {
                    builder = builder.attr("expire", expire.to_string());
                }
                let failure = builder.build();
                let _ = conn.send_node(&failure);
                self.record(FakeEvent::LoginRejected { conn: conn.id, phone, device, reason });
                conn.close(Some(DisconnectReason::StreamEnded));
            }
        }
        Ok(())
    }

    /// The phone's Signal peer for `phone`'s account.
    async fn phone_signal(&self, phone: &str) -> Result<Arc<tokio::sync::OnceCell<PhoneSignal>>> {
        let (cell, key) = {
            let state = self.state.lock().unwrap();
            let account = state.accounts.get(phone).ok_or_else(|| anyhow!("no account {phone}"))?;
            (account.signal.clone(), account.key.clone())
        };
        cell.get_or_try_init(|| PhoneSignal::new(&key, phone)).await?;
        Ok(cell)
    }

    /// The phone sends its companion the app-state sync key, Signal-encrypted from device 0,
    /// as a real phone does right after linking.
    async fn send_key_share(&self, conn: &Conn, phone: &str, device: u16) -> Result<()> {
        let cell = self.phone_signal(phone).await?;
        let signal = cell.get().expect("initialized above");
        let companion = Jid::pn_device(phone.to_string(), device);
        let (bundle, key_id, key) = {
            let mut state = self.state.lock().unwrap();
            let account = state.accounts.get_mut(phone).ok_or_else(|| anyhow!("no account {phone}"))?;
            let (key_id, key) = (account.sync_key_id.clone(), account.sync_key);
            let c = account.devices.get_mut(&device).ok_or_else(|| anyhow!("no device {device}"))?;
            let adv = c.adv_identity.clone();
            let bundle = c
                .bundle
                .as_mut()
                .map(|b| {
                    let mut node = b.take_user_node(&companion);
                    if !adv.is_empty() {
                        if let Some(NodeContent::Nodes(children)) = node.content.as_mut() {
                            children.retain(|n| n.tag != "device-identity");
                            children.push(NodeBuilder::new("device-identity").bytes(adv).build());
                        }
                    }
                    node
                })
                .ok_or_else(|| anyhow!("no keys known for {companion}"))?;
            (bundle, key_id, key)
        };
        let message = signal::app_state_key_share(&key_id, &key, (unix_now() * 1000) as i64);
        let enc = signal.encrypt(&companion, bundle, &message).await?;
        let stanza = NodeBuilder::new("message")
            .attr("from", Jid::pn(phone.to_string()))
            .attr("id", hex::encode_upper(rand::random::<[u8; 10]>()))
            .attr("t", unix_now().to_string())
            .attr("type", "text")
            .attr("category", "peer")
            .children([enc])
            .build();
        conn.send_node(&stanza)?;
        self.record(FakeEvent::KeyShareSent { conn: conn.id, phone: phone.to_string(), device });
        Ok(())
    }

    /// Answers a prekey fetch (`<iq xmlns="encrypt" type="get"><key><user jid/>…`): the
    /// account's phone and companions with their keys, anyone else with made-up keys for
    /// device 0, unknown devices with error 406.
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
            let user = jid.user.to_string();
            let is_account = self.state.lock().unwrap().accounts.contains_key(&user);
            let node = if is_account && jid.device == 0 {
                match self.phone_signal(&user).await {
                    Ok(cell) => Some(cell.get().expect("initialized").take_user_node(&jid)),
                    Err(_) => None,
                }
            } else {
                let mut state = self.state.lock().unwrap();
                if is_account {
                    state
                        .accounts
                        .get_mut(&user)
                        .and_then(|a| a.devices.get_mut(&jid.device))
                        .filter(|c| !c.logged_out)
                        .and_then(|c| {
                            let adv = c.adv_identity.clone();
                            let b = c.bundle.as_mut()?;
                            let mut node = b.take_user_node(&jid);
                            if let Some(NodeContent::Nodes(children)) = node.content.as_mut() {
                                children.push(NodeBuilder::new("device-identity").bytes(adv).build());
                            }
                            Some(node)
                        })
                } else if jid.device == 0 && !state.unregistered.contains(&user) {
                    let bundle = state.contacts.entry(user.clone()).or_insert_with(|| {
                        let identity = generate_curve_key_pair();
                        Bundle::generate(
                            &identity,
                            rand::random::<u32>() % 16_380 + 1,
                            &generate_curve_key_pair(),
                            1,
                        )
                    });
                    Some(bundle.take_user_node(&jid))
                } else {
                    None
                }
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

    fn push_pairing_refs(&self, conn: &Arc<Conn>) -> Result<()> {
        let refs: Vec<String> = (0..self.pairing_refs.load(Ordering::Relaxed))
            .map(|_| format!("2@{}", hex::encode(rand::random::<[u8; 18]>())))
            .collect();
        {
            let mut state = self.state.lock().unwrap();
            for r in &refs {
                state.refs.insert(r.clone(), conn.id);
            }
            conn.info.lock().unwrap().refs = refs.clone();
        }
        let iq = NodeBuilder::new("iq")
            .attr("from", SERVER_JID)
            .attr("type", "set")
            .attr("id", self.next_iq_id())
            .attr("xmlns", "md")
            .children([NodeBuilder::new("pair-device")
                .children(refs.iter().map(|r| NodeBuilder::new("ref").bytes(r.as_bytes().to_vec()).build()))
                .build()])
            .build();
        conn.send_node(&iq)?;
        self.record(FakeEvent::PairingRefs { conn: conn.id, refs });
        Ok(())
    }

    /// Called by the connection task for every stanza the client sends (answers to the fake's
    /// own requests excepted).
    async fn handle_stanza(&self, conn: &Arc<Conn>, node: Node) {
        let info = conn.info();
        if node.tag == "iq" && matches!(attr(&node, "type").as_deref(), Some("get") | Some("set")) {
            self.record(FakeEvent::Iq {
                conn: conn.id,
                phone: info.phone.clone(),
                xmlns: attr(&node, "xmlns").unwrap_or_default(),
                child: node.children().and_then(|c| c.first()).map(|c| c.tag.to_string()).unwrap_or_default(),
            });
        }
        match node.tag.as_ref() {
            "iq" if attr(&node, "xmlns").as_deref() == Some("encrypt")
                && attr(&node, "type").as_deref() == Some("get")
                && node.get_optional_child("key").is_some() =>
            {
                let answer = self.prekey_answer(&node).await;
                let _ = conn.send_node(&answer);
            }
            "iq" if node.get_optional_child("link_code_companion_reg").is_some() => {
                let reg = node.get_optional_child("link_code_companion_reg").expect("checked above");
                self.link_code_iq(conn, &node, reg);
            }
            "iq" => {
                if attr(&node, "xmlns").as_deref() == Some("encrypt")
                    && attr(&node, "type").as_deref() == Some("set")
                {
                    if let (Some(phone), Some(device), Some(bundle)) =
                        (&info.phone, info.device, Bundle::from_upload(&node))
                    {
                        let mut state = self.state.lock().unwrap();
                        if let Some(c) =
                            state.accounts.get_mut(phone).and_then(|a| a.devices.get_mut(&device))
                        {
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
                    let directory = login::Directory { unregistered: &state.unregistered };
                    login::answer_iq(account.as_ref(), &directory, &node, on_server)
                };
                self.apply(&info, effects);
                for answer in answers {
                    if conn.send_node(&answer).is_err() {
                        break;
                    }
                }
            }
            "message" => {
                let to = attr(&node, "to").unwrap_or_default();
                let id = attr(&node, "id").unwrap_or_default();
                if let Some(phone) = &info.phone {
                    let mut state = self.state.lock().unwrap();
                    if let Some(account) = state.accounts.get_mut(phone) {
                        account.sent.push((to.clone(), id.clone()));
                    }
                }
                let ack = NodeBuilder::new("ack")
                    .attr("class", "message")
                    .attr("id", id.clone())
                    .attr("from", to.clone())
                    .attr("t", unix_now().to_string())
                    .build();
                let _ = conn.send_node(&ack);
                self.record(FakeEvent::MessageReceived {
                    phone: info.phone.clone().unwrap_or_default(),
                    to,
                    id,
                });
            }
            // A receipt of type retry: the client could not decrypt something we sent.
            "receipt" if attr(&node, "type").as_deref() == Some("retry") => {
                self.record(FakeEvent::ClientNack { conn: conn.id, stanza: render(&node) });
            }
            "ack" if attr(&node, "error").is_some() => {
                self.record(FakeEvent::ClientNack { conn: conn.id, stanza: render(&node) });
            }
            // Acks, receipts, presence, ib, notifications the client sends: nothing to answer.
            _ => {}
        }
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

    /// Called by the connection task when the connection is gone.
    fn connection_closed(&self, conn: &Conn) {
        let phone = conn.info().phone;
        {
            let mut state = self.state.lock().unwrap();
            state.conns.remove(&conn.id);
            state.refs.retain(|_, c| *c != conn.id);
            state.pair_codes.connection_closed(conn.id);
        }
        self.record(FakeEvent::ConnectionClosed { conn: conn.id, phone });
    }
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
