//! A device's session as seen from a process that does not run it.
//!
//! The session runs in the process holding the device's lease. Another process answers a
//! request that needs it (a reaction, a read mark, presence, a group or contact operation)
//! through [`routed_session`]: each call becomes a session command (see `commands.rs`) that
//! the holder runs on its live session, and the answer comes back through the database. So
//! every endpoint works on any process, as the send endpoints already do through the queue.
//!
//! Not routed: media sends (they go through the outbound queue, which the holder drains),
//! media downloads (the holder keeps inbound media itself) and logout, which has its own
//! command.
//!
//! The same calls, through another [`Carrier`], reach the simulated network that several
//! processes share (`simulator/remote.rs`).

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::commands::{Answer, Command};
use super::driver::{
    ContactCard, ContactProfile, Content, DriverError, GroupChange, GroupInfo, Jid, Location, MessageKey,
    NumberCheck, Outgoing, ParticipantAction, ParticipantOutcome, PollSpec, PresenceState, Quote, Session,
};
use super::manager::{DeviceError, DeviceManager};

/// A session method, as stored for the holder. Built once per call and stored as JSON, so
/// the size of its largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub enum SessionCall {
    Send {
        to: Jid,
        id: String,
        content: RoutedContent,
        reply_to: Option<Quote>,
        mentions: Vec<Jid>,
        forwarded: bool,
    },
    MarkRead {
        chat: Jid,
        sender: Option<Jid>,
        wa_ids: Vec<String>,
    },
    Presence {
        chat: Option<Jid>,
        state: PresenceState,
    },
    Groups,
    Group {
        group: Jid,
    },
    CreateGroup {
        subject: String,
        participants: Vec<Jid>,
    },
    UpdateGroup {
        group: Jid,
        change: GroupChange,
    },
    GroupParticipants {
        group: Jid,
        action: ParticipantAction,
        participants: Vec<Jid>,
    },
    GroupInvite {
        group: Jid,
        reset: bool,
    },
    JoinGroup {
        code: String,
    },
    LeaveGroup {
        group: Jid,
    },
    ContactProfile {
        contact: Jid,
    },
    Block {
        contact: Jid,
        blocked: bool,
    },
}

/// What a routed send carries: everything but media, whose bytes go through the queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RoutedContent {
    Text { text: String },
    Location { location: Location },
    Contacts { contacts: Vec<ContactCard> },
    Poll { poll: PollSpec },
    Reaction { target: MessageKey, emoji: String },
    Edit { target: MessageKey, text: String },
    Revoke { target: MessageKey },
}

impl RoutedContent {
    fn of(content: &Content) -> Result<RoutedContent, DriverError> {
        Ok(match content.clone() {
            Content::Text(text) => RoutedContent::Text { text },
            Content::Location(location) => RoutedContent::Location { location },
            Content::Contacts(contacts) => RoutedContent::Contacts { contacts },
            Content::Poll(poll) => RoutedContent::Poll { poll },
            Content::Reaction { target, emoji } => RoutedContent::Reaction { target, emoji },
            Content::Edit { target, text } => RoutedContent::Edit { target, text },
            Content::Revoke { target } => RoutedContent::Revoke { target },
            Content::Media(_) => {
                return Err(DriverError::Invalid(
                    "media is not carried to a session in another process".into(),
                ))
            }
        })
    }

    fn content(self) -> Content {
        match self {
            RoutedContent::Text { text } => Content::Text(text),
            RoutedContent::Location { location } => Content::Location(location),
            RoutedContent::Contacts { contacts } => Content::Contacts(contacts),
            RoutedContent::Poll { poll } => Content::Poll(poll),
            RoutedContent::Reaction { target, emoji } => Content::Reaction { target, emoji },
            RoutedContent::Edit { target, text } => Content::Edit { target, text },
            RoutedContent::Revoke { target } => Content::Revoke { target },
        }
    }
}

/// An answer as JSON, to carry it back to the caller.
pub(crate) fn to_value<T: Serialize>(value: T) -> Result<Value, DriverError> {
    serde_json::to_value(value).map_err(|e| DriverError::Failed(format!("unserializable answer: {e}")))
}

impl SessionCall {
    /// Runs the call on the live session (in the holder); the answer as JSON.
    pub async fn run(self, session: &dyn Session) -> Result<Value, DriverError> {
        match self {
            SessionCall::Send { to, id, content, reply_to, mentions, forwarded } => {
                let message = Outgoing { content: content.content(), reply_to, mentions, forwarded };
                session.send(&to, &message, &id).await.map(|()| Value::Null)
            }
            SessionCall::MarkRead { chat, sender, wa_ids } => {
                session.mark_read(&chat, sender.as_ref(), &wa_ids).await.map(|()| Value::Null)
            }
            SessionCall::Presence { chat, state } => {
                session.presence(chat.as_ref(), state).await.map(|()| Value::Null)
            }
            SessionCall::Groups => to_value(session.groups().await?),
            SessionCall::Group { group } => to_value(session.group(&group).await?),
            SessionCall::CreateGroup { subject, participants } => {
                to_value(session.create_group(&subject, &participants).await?)
            }
            SessionCall::UpdateGroup { group, change } => {
                session.update_group(&group, &change).await.map(|()| Value::Null)
            }
            SessionCall::GroupParticipants { group, action, participants } => {
                to_value(session.group_participants(&group, action, &participants).await?)
            }
            SessionCall::GroupInvite { group, reset } => to_value(session.group_invite(&group, reset).await?),
            SessionCall::JoinGroup { code } => to_value(session.join_group(&code).await?),
            SessionCall::LeaveGroup { group } => session.leave_group(&group).await.map(|()| Value::Null),
            SessionCall::ContactProfile { contact } => to_value(session.contact_profile(&contact).await?),
            SessionCall::Block { contact, blocked } => {
                session.block(&contact, blocked).await.map(|()| Value::Null)
            }
        }
    }
}

/// Where a [`CarriedSession`]'s calls go: the process holding the device, or a simulated
/// network served by another process. What a carrier cannot take answers its own error.
#[async_trait]
pub trait Carrier: Send + Sync + 'static {
    /// Runs the call where the session lives; its answer as JSON.
    async fn carry(&self, call: SessionCall) -> Result<Value, DriverError>;
    async fn download(&self, kind: &str, source: &str) -> Result<Vec<u8>, DriverError>;
    async fn request_pair_code(&self, phone: &str) -> Result<String, DriverError>;
    async fn check_numbers(&self, numbers: &[String]) -> Result<Vec<NumberCheck>, DriverError>;
    async fn logout(&self) -> Result<(), DriverError>;
    async fn close(&self);
}

/// A [`Session`] whose calls a [`Carrier`] takes to where the session runs.
pub struct CarriedSession<C>(pub C);

impl<C: Carrier> CarriedSession<C> {
    async fn call_as<T: for<'de> Deserialize<'de>>(&self, call: SessionCall) -> Result<T, DriverError> {
        let value = self.0.carry(call).await?;
        serde_json::from_value(value).map_err(|e| DriverError::Failed(format!("unreadable answer: {e}")))
    }

    async fn call_unit(&self, call: SessionCall) -> Result<(), DriverError> {
        self.0.carry(call).await.map(|_| ())
    }
}

#[async_trait]
impl<C: Carrier> Session for CarriedSession<C> {
    /// An id in WhatsApp's shape, chosen here: the session sends under it as given.
    fn new_message_id(&self) -> String {
        format!("3EB0{}", hex::encode_upper(rand::random::<[u8; 10]>()))
    }

    async fn send(&self, to: &Jid, message: &Outgoing, id: &str) -> Result<(), DriverError> {
        let call = SessionCall::Send {
            to: to.clone(),
            id: id.to_string(),
            content: RoutedContent::of(&message.content)?,
            reply_to: message.reply_to.clone(),
            mentions: message.mentions.clone(),
            forwarded: message.forwarded,
        };
        self.call_unit(call).await
    }

    async fn mark_read(
        &self,
        chat: &Jid,
        sender: Option<&Jid>,
        wa_ids: &[String],
    ) -> Result<(), DriverError> {
        let call =
            SessionCall::MarkRead { chat: chat.clone(), sender: sender.cloned(), wa_ids: wa_ids.to_vec() };
        self.call_unit(call).await
    }

    async fn presence(&self, chat: Option<&Jid>, state: PresenceState) -> Result<(), DriverError> {
        self.call_unit(SessionCall::Presence { chat: chat.cloned(), state }).await
    }

    async fn download(&self, kind: &str, source: &str) -> Result<Vec<u8>, DriverError> {
        self.0.download(kind, source).await
    }

    async fn groups(&self) -> Result<Vec<GroupInfo>, DriverError> {
        self.call_as(SessionCall::Groups).await
    }

    async fn group(&self, group: &Jid) -> Result<GroupInfo, DriverError> {
        self.call_as(SessionCall::Group { group: group.clone() }).await
    }

    async fn create_group(
        &self,
        subject: &str,
        participants: &[Jid],
    ) -> Result<(GroupInfo, Vec<ParticipantOutcome>), DriverError> {
        let call =
            SessionCall::CreateGroup { subject: subject.to_string(), participants: participants.to_vec() };
        self.call_as(call).await
    }

    async fn update_group(&self, group: &Jid, change: &GroupChange) -> Result<(), DriverError> {
        self.call_unit(SessionCall::UpdateGroup { group: group.clone(), change: change.clone() }).await
    }

    async fn group_participants(
        &self,
        group: &Jid,
        action: ParticipantAction,
        participants: &[Jid],
    ) -> Result<Vec<ParticipantOutcome>, DriverError> {
        let call = SessionCall::GroupParticipants {
            group: group.clone(),
            action,
            participants: participants.to_vec(),
        };
        self.call_as(call).await
    }

    async fn group_invite(&self, group: &Jid, reset: bool) -> Result<String, DriverError> {
        self.call_as(SessionCall::GroupInvite { group: group.clone(), reset }).await
    }

    async fn join_group(&self, code: &str) -> Result<Jid, DriverError> {
        self.call_as(SessionCall::JoinGroup { code: code.to_string() }).await
    }

    async fn leave_group(&self, group: &Jid) -> Result<(), DriverError> {
        self.call_unit(SessionCall::LeaveGroup { group: group.clone() }).await
    }

    async fn contact_profile(&self, contact: &Jid) -> Result<ContactProfile, DriverError> {
        self.call_as(SessionCall::ContactProfile { contact: contact.clone() }).await
    }

    async fn block(&self, contact: &Jid, blocked: bool) -> Result<(), DriverError> {
        self.call_unit(SessionCall::Block { contact: contact.clone(), blocked }).await
    }

    async fn request_pair_code(&self, phone: &str) -> Result<String, DriverError> {
        self.0.request_pair_code(phone).await
    }

    async fn check_numbers(&self, numbers: &[String]) -> Result<Vec<NumberCheck>, DriverError> {
        self.0.check_numbers(numbers).await
    }

    async fn logout(&self) -> Result<(), DriverError> {
        self.0.logout().await
    }

    async fn close(&self) {
        self.0.close().await
    }
}

/// The session of a device held by another live process: its calls are stored as session
/// commands, which the holder runs.
pub fn routed_session(manager: DeviceManager, device_id: i64) -> Arc<dyn Session> {
    Arc::new(CarriedSession(ToHolder { manager, device_id }))
}

/// Carries calls to the device's holder through `device_commands`.
struct ToHolder {
    manager: DeviceManager,
    device_id: i64,
}

impl ToHolder {
    async fn ask(&self, command: Command) -> Result<Answer, DriverError> {
        match self.manager.ask_holder(self.device_id, &command).await {
            Ok(answer) => Ok(answer),
            Err(DeviceError::Driver(e)) => Err(e),
            Err(DeviceError::NotConnected) => Err(DriverError::NotConnected),
            Err(e) => Err(DriverError::Failed(e.to_string())),
        }
    }
}

#[async_trait]
impl Carrier for ToHolder {
    async fn carry(&self, call: SessionCall) -> Result<Value, DriverError> {
        match self.ask(Command::Session(Box::new(call))).await? {
            Answer::Value { value } => Ok(value),
            other => {
                Err(DriverError::Failed(format!("unexpected answer from the device's process: {other:?}")))
            }
        }
    }

    async fn download(&self, _kind: &str, _source: &str) -> Result<Vec<u8>, DriverError> {
        // Inbound media is fetched and kept by the holder that received it.
        Err(DriverError::NotConnected)
    }

    async fn request_pair_code(&self, _phone: &str) -> Result<String, DriverError> {
        Err(DriverError::Invalid("a pair code is asked through the device's pairing command".into()))
    }

    async fn check_numbers(&self, numbers: &[String]) -> Result<Vec<NumberCheck>, DriverError> {
        let answer = self.ask(Command::CheckNumbers { numbers: numbers.to_vec() }).await?;
        answer.numbers().map_err(|e| DriverError::Failed(e.to_string()))
    }

    async fn logout(&self) -> Result<(), DriverError> {
        Err(DriverError::Invalid("a logout goes through the device's logout command".into()))
    }

    /// Nothing to close here: the session belongs to the holder.
    async fn close(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_survive_the_database() {
        let key = MessageKey {
            chat: "628111@s.whatsapp.net".into(),
            wa_id: "3EB0AA".into(),
            from_me: true,
            participant: None,
        };
        for call in [
            SessionCall::Send {
                to: "628111@s.whatsapp.net".into(),
                id: "3EB0BB".into(),
                content: RoutedContent::Reaction { target: key.clone(), emoji: "👍".into() },
                reply_to: Some(Quote { key: key.clone(), text: Some("hi".into()) }),
                mentions: vec![],
                forwarded: false,
            },
            SessionCall::Presence { chat: None, state: PresenceState::Available },
            SessionCall::UpdateGroup {
                group: "1203@g.us".into(),
                change: GroupChange { subject: Some("s".into()), ..Default::default() },
            },
            SessionCall::Groups,
        ] {
            let command = Command::Session(Box::new(call.clone()));
            let json = serde_json::to_string(&command).unwrap();
            assert_eq!(serde_json::from_str::<Command>(&json).unwrap(), command, "{json}");
        }
        let media = Content::Media(crate::devices::driver::OutboundMedia {
            kind: crate::devices::driver::MediaKind::Image,
            bytes: Arc::new(vec![1]),
            mime: "image/png".into(),
            filename: None,
            caption: None,
        });
        assert!(matches!(RoutedContent::of(&media), Err(DriverError::Invalid(_))));
    }
}
