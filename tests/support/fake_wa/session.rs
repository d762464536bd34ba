//! Connections of linked companions: login (`<success>` or `<failure>`), the phone's key share
//! after it, the end of a connection, and the test's controls over them (drops, logouts,
//! replaced streams, refused logins, a rotated server key).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::{anyhow, Result};
use whatsapp_rust::transport::DisconnectReason;
use whatsapp_rust::wacore_binary::builder::NodeBuilder;
use whatsapp_rust::wacore_binary::{Jid, Node, NodeContent};
use whatsapp_rust::waproto::whatsapp as wa;

use super::conn::Conn;
use super::handshake::{HandshakeKind, ServerKeys};
use super::peer::Peer;
use super::signal::{self, Bundle};
use super::{new_message_id, unix_now, FakeEvent, FakeWhatsApp, LoginFailure};

impl FakeWhatsApp {
    /// Whether the phone sends the app-state key share to a companion after each of its logins
    /// (default: yes). Without it the client waits `KEY_SHARE_GRACE_SECS` (10 s) for the key
    /// before `Connected` whenever it bootstraps app state: the first login after pairing, and
    /// every login of a client with no push name.
    pub fn set_key_share(&self, enabled: bool) {
        self.key_share.store(enabled, Ordering::Relaxed);
    }

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
        self.state.lock().unwrap().directory.unregistered.insert(phone.to_string());
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

    /// Sends `<stream:error>` and closes the connection, as the server does.
    pub(super) fn stream_error(&self, conn: &Conn, code: &str, conflict: Option<&str>) {
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
    pub(super) fn connection_established(
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

    /// The phone's Signal peer for `phone`'s account (device 0, the account key as identity).
    pub(super) async fn phone_peer(&self, phone: &str) -> Result<Arc<Peer>> {
        let (cell, key) = {
            let state = self.state.lock().unwrap();
            let account = state.accounts.get(phone).ok_or_else(|| anyhow!("no account {phone}"))?;
            (account.phone_peer.clone(), account.key.clone())
        };
        let peer = cell
            .get_or_try_init(|| async {
                Peer::new(Jid::pn(phone.to_string()), Some(&key)).await.map(Arc::new)
            })
            .await?;
        Ok(peer.clone())
    }

    /// The prekey `<user>` node of companion `device` of `phone` (with its ADV identity) as
    /// `jid`, using up one of its one-time keys.
    pub(super) fn companion_user_node(&self, phone: &str, device: u16, jid: &Jid) -> Result<Node> {
        let companion = jid.clone();
        let mut state = self.state.lock().unwrap();
        let account = state.accounts.get_mut(phone).ok_or_else(|| anyhow!("no account {phone}"))?;
        let c = account.devices.get_mut(&device).ok_or_else(|| anyhow!("no device {device}"))?;
        let adv = c.adv_identity.clone();
        let bundle = c.bundle.as_mut().ok_or_else(|| anyhow!("no keys known for {companion}"))?;
        let mut node = bundle.take_user_node(&companion);
        if !adv.is_empty() {
            if let Some(NodeContent::Nodes(children)) = node.content.as_mut() {
                children.retain(|n| n.tag != "device-identity");
                children.push(NodeBuilder::new("device-identity").bytes(adv).build());
            }
        }
        Ok(node)
    }

    /// Encrypts `message` from `peer` to companion `device` of `phone`, starting a session from
    /// the companion's published keys when there is none.
    pub(super) async fn encrypt_to_companion(
        &self,
        peer: &Peer,
        phone: &str,
        device: u16,
        message: &wa::Message,
    ) -> Result<Node> {
        let companion = Jid::pn_device(phone.to_string(), device);
        let bundle = if peer.has_session(&companion).await? {
            None
        } else {
            Some(self.companion_user_node(phone, device, &companion)?)
        };
        peer.encrypt(&companion, bundle, message).await
    }

    /// The phone sends its companion the app-state sync key, Signal-encrypted from device 0,
    /// as a real phone does right after linking.
    async fn send_key_share(&self, conn: &Conn, phone: &str, device: u16) -> Result<()> {
        let peer = self.phone_peer(phone).await?;
        let (key_id, key) = {
            let state = self.state.lock().unwrap();
            let account = state.accounts.get(phone).ok_or_else(|| anyhow!("no account {phone}"))?;
            (account.sync_key_id.clone(), account.sync_key)
        };
        let message = signal::app_state_key_share(&key_id, &key, (unix_now() * 1000) as i64);
        let enc = self.encrypt_to_companion(&peer, phone, device, &message).await?;
        let stanza = NodeBuilder::new("message")
            .attr("from", Jid::pn(phone.to_string()))
            .attr("id", new_message_id())
            .attr("t", unix_now().to_string())
            .attr("type", "text")
            .attr("category", "peer")
            .children([enc])
            .build();
        conn.send_node(&stanza)?;
        self.record(FakeEvent::KeyShareSent { conn: conn.id, phone: phone.to_string(), device });
        Ok(())
    }

    /// Called by the connection task when the connection is gone.
    pub(super) fn connection_closed(&self, conn: &Conn) {
        let phone = conn.info().phone;
        {
            let mut state = self.state.lock().unwrap();
            state.conns.remove(&conn.id);
            state.online.remove(&conn.id);
            state.drains.remove(&conn.id);
            state.refs.retain(|_, c| *c != conn.id);
            state.pair_codes.connection_closed(conn.id);
        }
        self.record(FakeEvent::ConnectionClosed { conn: conn.id, phone });
    }
}
