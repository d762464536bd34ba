//! The driver side of the simulator: opening sessions, their timers (QR rotation, pair-code
//! expiry, connect delay) and the [`Session`] the gateway sends through.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use sha2::Digest;

use super::groups::{jid_digits, GroupRefusal};
use super::{
    failed, new_pair_code, new_wa_id, phone_digits, random_b64, valid_jid, Inner, LinkState, Live, SimEdit,
    SimMedia, SimReaction, SimSent, SimTarget, Simulator, JID_KEY, OUTBOX_CAP, PAIR_CODE_TTL,
};
use crate::devices::driver::{
    ContactProfile, Content, DeviceKey, Driver, DriverError, DriverEvent, GroupChange, GroupInfo, Jid,
    NumberCheck, Outgoing, ParticipantAction, ParticipantOutcome, PresenceState, Session, StopReason,
};

/// The digits of a contact's user JID.
fn contact_digits(contact: &str) -> Result<String, DriverError> {
    jid_digits(&[contact.to_string()]).map(|mut d| d.remove(0)).map_err(DriverError::Invalid)
}

fn refused(r: GroupRefusal) -> DriverError {
    match r {
        GroupRefusal::NotFound(m) => DriverError::NotFound(m),
        GroupRefusal::Forbidden(m) => DriverError::Forbidden(m),
        GroupRefusal::Invalid(m) => DriverError::Invalid(m),
    }
}

#[async_trait]
impl Driver for Simulator {
    async fn open(
        &self,
        device: DeviceKey,
        events: mpsc::Sender<DriverEvent>,
    ) -> Result<Arc<dyn Session>, DriverError> {
        let device_id = device.device_id;
        let paired = self.inner.db.session_get(device_id, JID_KEY).await.map_err(failed)?.is_some();
        let generation = self.inner.generations.fetch_add(1, Ordering::Relaxed) + 1;
        let (queue, mut rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                if events.send(event).await.is_err() {
                    break;
                }
            }
        });
        let cancel = CancellationToken::new();
        let phase = cancel.child_token();
        let live = Live {
            generation,
            phone: device.phone,
            queue,
            state: if paired {
                LinkState::Connecting
            } else {
                LinkState::Pairing { qr: None, pair_phone: None }
            },
            cancel,
            phase: phase.clone(),
        };
        let replaced = {
            let mut devices = self.inner.lock();
            let sim = devices.entry(device_id).or_default();
            sim.sessions.opened += 1;
            let replaced = sim.live.replace(live);
            sim.sessions.replaced += u64::from(replaced.is_some());
            replaced
        };
        if let Some(old) = replaced {
            old.stop(StopReason::StreamReplaced);
        }
        let inner = self.inner.clone();
        if paired {
            tokio::spawn(connect_after_delay(inner, device_id, generation, phase));
        } else {
            tokio::spawn(pairing_round(inner, device_id, generation, phase));
        }
        Ok(Arc::new(SimSession { inner: self.inner.clone(), device_id, generation }))
    }

    async fn forget(&self, device_id: i64) -> Result<(), DriverError> {
        self.inner.db.session_delete_all(device_id).await.map_err(failed)
    }

    async fn is_paired(&self, device_id: i64) -> Result<bool, DriverError> {
        self.inner.db.session_exists(device_id).await.map_err(failed)
    }
}

async fn connect_after_delay(inner: Arc<Inner>, device_id: i64, generation: u64, phase: CancellationToken) {
    tokio::select! {
        _ = phase.cancelled() => return,
        _ = tokio::time::sleep(inner.timing.connect_delay) => {}
    }
    inner.with_live(device_id, Some(generation), |live| {
        if matches!(live.state, LinkState::Connecting) {
            live.state = LinkState::Connected;
            live.emit(DriverEvent::Connected);
        }
    });
}

/// Shows `qr_codes` QR codes, one per ttl, then ends the session unless it was scanned or
/// switched to a pair code (which cancels `phase`).
async fn pairing_round(inner: Arc<Inner>, device_id: i64, generation: u64, phase: CancellationToken) {
    // Like the real QR payload: a fresh reference per code, the same keys for the round.
    let keys = [random_b64(32), random_b64(32), random_b64(32)];
    for n in 0..inner.timing.qr_codes {
        let ttl = if n == 0 { inner.timing.first_qr_ttl } else { inner.timing.next_qr_ttl };
        let shown = inner.with_live(device_id, Some(generation), |live| {
            let LinkState::Pairing { qr, .. } = &mut live.state else {
                return false;
            };
            if phase.is_cancelled() {
                return false;
            }
            let code = format!("2@{},{},{},{},1", random_b64(33), keys[0], keys[1], keys[2]);
            *qr = Some(code.clone());
            live.emit(DriverEvent::Qr { code, ttl });
            true
        });
        if shown != Some(true) {
            return;
        }
        tokio::select! {
            _ = phase.cancelled() => return,
            _ = tokio::time::sleep(ttl) => {}
        }
    }
    inner.expire_pairing(device_id, generation, &phase);
}

async fn expire_pair_code(inner: Arc<Inner>, device_id: i64, generation: u64, phase: CancellationToken) {
    tokio::select! {
        _ = phase.cancelled() => {}
        _ = tokio::time::sleep(PAIR_CODE_TTL) => inner.expire_pairing(device_id, generation, &phase),
    }
}

/// The gateway's handle on one simulated session.
struct SimSession {
    inner: Arc<Inner>,
    device_id: i64,
    generation: u64,
}

impl SimSession {
    /// Puts `sent` in the device's outbox, if the session is live and connected.
    fn record(&self, sent: SimSent) -> Result<(), DriverError> {
        if !valid_jid(&sent.to) {
            return Err(DriverError::Invalid(format!(
                "not a WhatsApp JID: {:?}",
                sent.to.chars().take(64).collect::<String>()
            )));
        }
        let mut devices = self.inner.lock();
        let device = devices.get_mut(&self.device_id).ok_or(DriverError::NotConnected)?;
        match &device.live {
            Some(live) if live.generation == self.generation && live.is_connected() => {}
            _ => return Err(DriverError::NotConnected),
        }
        device.sent_total += 1;
        device.outbox.push_back(SimSent { at: Utc::now(), seq: device.sent_total, ..sent });
        while device.outbox.len() > OUTBOX_CAP {
            device.outbox.pop_front();
        }
        Ok(())
    }

    /// The account's number, when the session is connected.
    fn me(&self) -> Result<String, DriverError> {
        self.inner
            .with_live(self.device_id, Some(self.generation), |l| l.is_connected().then(|| l.phone.clone()))
            .flatten()
            .ok_or(DriverError::NotConnected)
    }

    fn connected(&self) -> bool {
        self.inner.with_live(self.device_id, Some(self.generation), |l| l.is_connected()).unwrap_or(false)
    }
}

#[async_trait]
impl Session for SimSession {
    fn new_message_id(&self) -> String {
        new_wa_id()
    }

    async fn send(&self, to: &Jid, message: &Outgoing, id: &str) -> Result<(), DriverError> {
        let mut sent = SimSent {
            id: id.to_string(),
            to: to.clone(),
            reply_to: message.reply_to.as_ref().map(|q| q.key.wa_id.clone()),
            mentions: message
                .mentions
                .iter()
                .map(|j| j.split('@').next().unwrap_or_default().to_string())
                .collect(),
            forwarded: message.forwarded,
            ..Default::default()
        };
        match &message.content {
            Content::Text(text) => {
                sent.kind = "text".into();
                sent.text = Some(text.clone());
            }
            Content::Media(media) => {
                sent.kind = media.kind.as_str().into();
                sent.media = Some(SimMedia {
                    kind: media.kind,
                    mime: media.mime.clone(),
                    size: media.bytes.len() as u64,
                    filename: media.filename.clone(),
                    caption: media.caption.clone(),
                    sha256: hex::encode(sha2::Sha256::digest(media.bytes.as_slice())),
                });
            }
            Content::Location(location) => {
                sent.kind = "location".into();
                sent.location = Some(location.clone());
            }
            Content::Contacts(cards) => {
                sent.kind = "contact".into();
                sent.contacts = cards.clone();
            }
            Content::Poll(poll) => {
                sent.kind = "poll".into();
                sent.poll = Some(poll.clone());
            }
            Content::Reaction { target, emoji } => {
                sent.kind = "reaction".into();
                sent.reaction = Some(SimReaction { message: target.wa_id.clone(), emoji: emoji.clone() });
            }
            Content::Edit { target, text } => {
                sent.kind = "edit".into();
                sent.edit = Some(SimEdit { message: target.wa_id.clone(), text: text.clone() });
            }
            Content::Revoke { target } => {
                sent.kind = "revoke".into();
                sent.revoke = Some(SimTarget { message: target.wa_id.clone() });
            }
        }
        self.record(sent)
    }

    async fn mark_read(
        &self,
        chat: &Jid,
        _sender: Option<&Jid>,
        wa_ids: &[String],
    ) -> Result<(), DriverError> {
        self.record(SimSent {
            to: chat.clone(),
            kind: "read".into(),
            read: wa_ids.to_vec(),
            ..Default::default()
        })
    }

    async fn presence(&self, chat: Option<&Jid>, state: PresenceState) -> Result<(), DriverError> {
        let own = self.inner.with_live(self.device_id, Some(self.generation), |l| l.phone.clone());
        let to = match chat {
            Some(chat) => chat.clone(),
            // Presence to everyone: shown as the device's own JID.
            None => format!("{}@s.whatsapp.net", own.unwrap_or_default()),
        };
        self.record(SimSent {
            to,
            kind: "presence".into(),
            presence: Some(state.as_str().into()),
            ..Default::default()
        })
    }

    async fn download(&self, _kind: &str, source: &str) -> Result<Vec<u8>, DriverError> {
        if !self.connected() {
            return Err(DriverError::NotConnected);
        }
        let blob = self
            .inner
            .hosted_media(source)
            .ok_or_else(|| DriverError::Invalid("the media server no longer has this media".into()))?;
        if !blob.delay.is_zero() {
            tokio::time::sleep(blob.delay).await;
        }
        Ok(blob.bytes.as_ref().clone())
    }

    async fn groups(&self) -> Result<Vec<GroupInfo>, DriverError> {
        let me = self.me()?;
        Ok(self.inner.groups_of(&me))
    }

    async fn group(&self, group: &Jid) -> Result<GroupInfo, DriverError> {
        let me = self.me()?;
        self.inner.group_of(&me, group).map_err(refused)
    }

    async fn create_group(
        &self,
        subject: &str,
        participants: &[Jid],
    ) -> Result<(GroupInfo, Vec<ParticipantOutcome>), DriverError> {
        let me = self.me()?;
        let others = jid_digits(participants).map_err(DriverError::Invalid)?;
        self.inner.create_group(&me, subject, &others).map_err(refused)
    }

    async fn update_group(&self, group: &Jid, change: &GroupChange) -> Result<(), DriverError> {
        let me = self.me()?;
        self.inner.update_group(&me, group, change).map_err(refused)
    }

    async fn group_participants(
        &self,
        group: &Jid,
        action: ParticipantAction,
        participants: &[Jid],
    ) -> Result<Vec<ParticipantOutcome>, DriverError> {
        let me = self.me()?;
        let who = jid_digits(participants).map_err(DriverError::Invalid)?;
        self.inner.change_participants(&me, group, action, &who).map_err(refused)
    }

    async fn group_invite(&self, group: &Jid, reset: bool) -> Result<String, DriverError> {
        let me = self.me()?;
        self.inner.group_invite(&me, group, reset).map_err(refused)
    }

    async fn join_group(&self, code: &str) -> Result<Jid, DriverError> {
        let me = self.me()?;
        self.inner.join_group(&me, code).map_err(refused)
    }

    async fn leave_group(&self, group: &Jid) -> Result<(), DriverError> {
        let me = self.me()?;
        self.inner
            .change_participants(&me, group, ParticipantAction::Remove, std::slice::from_ref(&me))
            .map(|_| ())
            .map_err(refused)
    }

    async fn contact_profile(&self, contact: &Jid) -> Result<ContactProfile, DriverError> {
        self.me()?;
        let phone = contact_digits(contact)?;
        self.inner.profile(&phone).ok_or_else(|| DriverError::NotFound(format!("{phone} is not on WhatsApp")))
    }

    /// Recorded in the outbox as `block` or `unblock` to the contact.
    async fn block(&self, contact: &Jid, blocked: bool) -> Result<(), DriverError> {
        let phone = contact_digits(contact)?;
        self.record(SimSent {
            to: format!("{phone}@s.whatsapp.net"),
            kind: if blocked { "block" } else { "unblock" }.into(),
            ..Default::default()
        })
    }

    /// Emits `PairCode` (`ABCD-EFGH`, valid [`PAIR_CODE_TTL`]) and stops the QR rotation;
    /// `Simulator::scan` then completes the pairing as `phone`.
    async fn request_pair_code(&self, phone: &str) -> Result<String, DriverError> {
        let phone = phone_digits(phone)
            .ok_or_else(|| DriverError::Invalid("the phone must have 8 to 15 digits".into()))?;
        let code = new_pair_code();
        let phase = self
            .inner
            .with_live(self.device_id, Some(self.generation), |live| {
                let LinkState::Pairing { qr, pair_phone } = &mut live.state else {
                    return None;
                };
                *qr = None;
                *pair_phone = Some(phone);
                live.phase.cancel();
                live.phase = live.cancel.child_token();
                live.emit(DriverEvent::PairCode { code: code.clone(), ttl: PAIR_CODE_TTL });
                Some(live.phase.clone())
            })
            .flatten()
            .ok_or_else(|| DriverError::Invalid("the device is not waiting to be paired".into()))?;
        let inner = self.inner.clone();
        tokio::spawn(expire_pair_code(inner, self.device_id, self.generation, phase));
        Ok(code)
    }

    /// The simulated rule: a number is on WhatsApp iff it has 8 to 15 digits (nothing else)
    /// and does not end in `0000`; its JID is `<digits>@s.whatsapp.net`.
    async fn check_numbers(&self, numbers: &[String]) -> Result<Vec<NumberCheck>, DriverError> {
        if !self.connected() {
            return Err(DriverError::NotConnected);
        }
        Ok(numbers
            .iter()
            .map(|number| {
                let on = (8..=15).contains(&number.len())
                    && number.bytes().all(|b| b.is_ascii_digit())
                    && !number.ends_with("0000");
                NumberCheck {
                    number: number.clone(),
                    on_whatsapp: on,
                    jid: on.then(|| format!("{number}@s.whatsapp.net")),
                }
            })
            .collect())
    }

    async fn logout(&self) -> Result<(), DriverError> {
        self.inner.db.session_delete_all(self.device_id).await.map_err(failed)?;
        if let Some(live) = self.inner.take_live(self.device_id, Some(self.generation), |_| true) {
            live.stop(StopReason::LoggedOut("logged out by the gateway".into()));
        }
        Ok(())
    }

    async fn close(&self) {
        if let Some(live) = self.inner.take_live(self.device_id, Some(self.generation), |_| true) {
            live.stop(StopReason::Closed);
        }
    }
}
