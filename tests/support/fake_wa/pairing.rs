//! The simulated phone linking companions: scanning a QR code (or typing a pair code, see
//! `pair_code.rs`), vouching for the companion with the account key, and the 515 that makes
//! the client log in.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use whatsapp_rust::wacore::libsignal::protocol::KeyPair;
use whatsapp_rust::wacore_binary::builder::NodeBuilder;
use whatsapp_rust::wacore_binary::{Jid, SERVER_JID};

use super::conn::{attr, Conn};
use super::phone::{self, QrCode};
use super::{content_bytes, render, Account, Companion, FakeEvent, FakeWhatsApp, PairedPhone, ScanOptions};

impl FakeWhatsApp {
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
    pub(super) async fn link(
        &self,
        conn: Arc<Conn>,
        qr: &QrCode,
        options: &ScanOptions,
    ) -> Result<PairedPhone> {
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
            account
                .devices
                .insert(device, Companion::new(qr.noise_pub, qr.identity_pub, registration, adv_identity));
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
    pub(super) fn account_key(&self, phone: &str) -> Arc<KeyPair> {
        let mut state = self.state.lock().unwrap();
        let account = state.accounts.entry(phone.to_string()).or_insert_with(|| Account::new(phone));
        account.key.clone()
    }

    /// How many pairing refs an unpaired client gets (default [`super::PAIRING_REFS`]). The client
    /// shows the first for 60 s and each further one for 20 s, then gives up
    /// (`PairingQrCodesExhausted`): one ref makes that happen after 60 s.
    pub fn set_pairing_refs(&self, count: usize) {
        self.pairing_refs.store(count.max(1), Ordering::Relaxed);
    }

    /// Changes the wait between the client's `<pair-device-sign>` and the 515.
    pub fn set_pair_to_515_delay(&self, delay: Duration) {
        *self.pair_delay.lock().unwrap() = delay;
    }

    pub(super) fn push_pairing_refs(&self, conn: &Arc<Conn>) -> Result<()> {
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
}
