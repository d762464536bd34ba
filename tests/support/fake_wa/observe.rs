//! What the tests see of the server side: the journal of events, live subscriptions, simple
//! state queries, and waits on any condition (re-checked whenever the state changes, never by
//! sleeping).

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use tokio::sync::broadcast;

use super::activity::SentReceipt;
use super::conn::ConnectionInfo;
use super::handshake::HandshakeKind;
use super::peer::EncKind;
use super::{FakeWhatsApp, JOURNAL_CAPACITY};

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
    /// A `<message>` from a client was taken by the server (acked or not, see the switches).
    MessageReceived {
        phone: String,
        to: String,
        id: String,
    },
    /// The fake decrypted a `<enc>` addressed to one of its peers (a contact, or the account's
    /// phone for the copy every companion sends it).
    Decrypted {
        by: String,
        from: String,
        id: String,
        enc: EncKind,
    },
    /// A `<enc>` for one of the fake's peers did not decrypt: a bug on one side.
    DecryptFailed {
        by: String,
        from: String,
        id: String,
        error: String,
    },
    /// The fake kept a `<message>` from a client without acking or delivering it.
    Swallowed {
        phone: String,
        id: String,
    },
    /// A contact sent the account a message (encrypted to each companion).
    ContactSent {
        contact: String,
        phone: String,
        id: String,
        enc: EncKind,
    },
    /// A client asked for the next part of its offline backlog (`<ib><offline_batch count>`).
    OfflineBatchRequested {
        conn: u64,
        count: usize,
    },
    /// A client uploaded a file to the media host.
    MediaUploaded {
        path: String,
        direct_path: String,
    },
    /// A stanza reached a companion's connection (`offline` when drained after a login).
    Delivered {
        conn: u64,
        phone: String,
        device: u16,
        tag: String,
        id: String,
        offline: bool,
    },
    /// A companion answered a delivered stanza: a `<receipt>` for messages (`kind` its type,
    /// `delivery` when absent), an `<ack>` for receipts and failures.
    ClientAnswered {
        phone: String,
        device: u16,
        tag: String,
        kind: String,
        ids: Vec<String>,
    },
    /// A client sent a `<receipt>` for messages it received (`delivery`, `read`, …).
    ReceiptSent {
        phone: String,
        device: u16,
        receipt: SentReceipt,
    },
    /// A client sent a `<presence>`: its own state, or a subscription when `to` is set.
    PresenceSent {
        phone: String,
        state: String,
        to: Option<String>,
    },
    /// A client sent a `<chatstate>` to chat `to`: `composing`, `recording` or `paused`.
    ChatStateSent {
        phone: String,
        to: String,
        state: String,
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

impl FakeWhatsApp {
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

    pub(super) fn record(&self, event: FakeEvent) {
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
}
