//! What the account's phone syncs to its linked devices as app state: a chat archived, pinned
//! or muted, a contact saved in the address book. The control calls play the phone making the
//! change; the device hears it as `DriverEvent::ChatState` or `DriverEvent::ContactName`, and
//! the call answers once the gateway stored it.

use chrono::Utc;

use super::{Ack, SimError, Simulator, ACK_TIMEOUT};
use crate::devices::driver::{ChatChange, DriverEvent, SavedName};
use crate::phone::ChatAddress;

/// A chat or contact JID as WhatsApp names it, from a JID or LID JID (any case of domain).
fn jid_of(field: &str, input: &str) -> Result<ChatAddress, SimError> {
    ChatAddress::parse(input, "")
        .ok()
        .filter(|_| input.contains('@'))
        .ok_or_else(|| SimError::Invalid(format!("`{field}` must be a user JID, a group JID or a LID")))
}

impl Simulator {
    /// The account's phone changes a chat's state (`chat`: a user JID, group JID or LID).
    pub async fn chat_state(&self, device_id: i64, chat: &str, change: ChatChange) -> Result<(), SimError> {
        let chat = jid_of("chat", chat)?.jid();
        self.phone_syncs(device_id, |ack| DriverEvent::ChatState { chat, change, at: Utc::now(), ack }).await
    }

    /// The account saves a contact (`jid`: a user JID or LID) in its address book.
    pub async fn saved_name(&self, device_id: i64, jid: &str, name: SavedName) -> Result<(), SimError> {
        let jid = jid_of("jid", jid)?;
        if jid.is_group() {
            return Err(SimError::Invalid("`jid` must be a user JID or a LID".into()));
        }
        let jid = jid.jid();
        self.phone_syncs(device_id, |ack| DriverEvent::ContactName { jid, name, ack }).await
    }

    /// Emits an app-state event to the device's connected session and waits until the gateway
    /// stored it.
    async fn phone_syncs(
        &self,
        device_id: i64,
        event: impl FnOnce(Option<Ack>) -> DriverEvent,
    ) -> Result<(), SimError> {
        let (ack, stored) = Ack::new();
        let event = event(Some(ack));
        let delivered = self.inner.with_live(device_id, None, |live| {
            if live.is_connected() {
                live.emit(event);
            }
            live.is_connected()
        });
        if delivered != Some(true) {
            return Err(SimError::NotConnected);
        }
        match tokio::time::timeout(ACK_TIMEOUT, stored).await {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) | Ok(Err(_)) => Err(SimError::NotStored),
            Err(_) => Err(SimError::AckTimeout),
        }
    }
}
