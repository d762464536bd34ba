//! Webhook event types and the `data` each carries.
//!
//! Every body is `{"type": "<event>", "timestamp": "<RFC 3339, when it happened>", "data": {...}}`,
//! serialised once and sent byte for byte on every attempt (the signature covers it).
//!
//! | type | when | `data` |
//! | --- | --- | --- |
//! | `message.received` | an inbound message is stored | [`MessageData`], `status` `received` |
//! | `message.sent` | WhatsApp took an outbound message (also one sent from the phone) | [`MessageData`], `status` `sent` |
//! | `message.status` | an outbound message became `delivered`, `read` or `failed` | [`MessageData`] with that `status` (`error` says why it failed) |
//! | `message.reaction` | someone (or this device) reacted to a message, or took the reaction back | [`MessageData`] with `change` `{from, emoji}` (empty emoji: removed) |
//! | `message.edited` | a message's text was edited | [`MessageData`] (the new text) with `change` `{from, text, previous}` |
//! | `message.revoked` | a message was deleted for everyone | [`MessageData`] with `change` `{from}` |
//! | `message.poll_vote` | someone voted on a poll | [`MessageData`] (`poll` with the counts) with `change` `{from, options}` |
//! | `device.status` | a device's connection state changed | [`DeviceStatusData`] |
//! | `device.qr` | a device offers a new pairing QR code | [`DeviceQrData`] |
//! | `contact.resolved` | a device learned the phone number behind a LID (or it changed); messages stored under the LID now show the number | [`ContactResolvedData`] |
//! | `group.joined` | the device was added to a group, created one or joined by invite link | [`GroupEventData`] |
//! | `group.left` | the device left a group or was removed | [`GroupEventData`] |
//! | `group.participants` | members were added, removed, promoted or demoted (`action`, `participants`, `by`) | [`GroupEventData`] |
//! | `group.updated` | the subject, description or settings changed (`changes`) | [`GroupEventData`] |
//! | `scheduled.sent` | a run of a scheduled message was queued for sending | [`ScheduledSentData`] |
//! | `plugin.failed` | a plugin run failed (trap, timeout, too much output) | [`PluginFailedData`] |

use serde::{Deserialize, Serialize};

use crate::devices::groups::{GroupChange, GroupEvent, GroupEventKind};
use crate::time::rfc3339_ms;

pub use crate::messages::view::{CHANGE_EDITED, CHANGE_POLL_VOTE, CHANGE_REACTION, CHANGE_REVOKED};

/// An event a webhook endpoint can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "message.received")]
    MessageReceived,
    #[serde(rename = "message.sent")]
    MessageSent,
    #[serde(rename = "message.status")]
    MessageStatus,
    #[serde(rename = "message.reaction")]
    MessageReaction,
    #[serde(rename = "message.edited")]
    MessageEdited,
    #[serde(rename = "message.revoked")]
    MessageRevoked,
    #[serde(rename = "message.poll_vote")]
    MessagePollVote,
    #[serde(rename = "device.status")]
    DeviceStatus,
    #[serde(rename = "device.qr")]
    DeviceQr,
    #[serde(rename = "contact.resolved")]
    ContactResolved,
    #[serde(rename = "group.joined")]
    GroupJoined,
    #[serde(rename = "group.left")]
    GroupLeft,
    #[serde(rename = "group.participants")]
    GroupParticipants,
    #[serde(rename = "group.updated")]
    GroupUpdated,
    #[serde(rename = "scheduled.sent")]
    ScheduledSent,
    #[serde(rename = "plugin.failed")]
    PluginFailed,
}

impl EventType {
    pub const ALL: [EventType; 16] = [
        EventType::MessageReceived,
        EventType::MessageSent,
        EventType::MessageStatus,
        EventType::MessageReaction,
        EventType::MessageEdited,
        EventType::MessageRevoked,
        EventType::MessagePollVote,
        EventType::DeviceStatus,
        EventType::DeviceQr,
        EventType::ContactResolved,
        EventType::GroupJoined,
        EventType::GroupLeft,
        EventType::GroupParticipants,
        EventType::GroupUpdated,
        EventType::ScheduledSent,
        EventType::PluginFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::MessageReceived => "message.received",
            EventType::MessageSent => "message.sent",
            EventType::MessageStatus => "message.status",
            EventType::MessageReaction => "message.reaction",
            EventType::MessageEdited => "message.edited",
            EventType::MessageRevoked => "message.revoked",
            EventType::MessagePollVote => "message.poll_vote",
            EventType::DeviceStatus => "device.status",
            EventType::DeviceQr => "device.qr",
            EventType::ContactResolved => "contact.resolved",
            EventType::GroupJoined => "group.joined",
            EventType::GroupLeft => "group.left",
            EventType::GroupParticipants => "group.participants",
            EventType::GroupUpdated => "group.updated",
            EventType::ScheduledSent => "scheduled.sent",
            EventType::PluginFailed => "plugin.failed",
        }
    }

    pub fn parse(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|e| e.as_str() == name)
    }

    /// The message event a status-history entry stands for (`queued` and `read_mark` stand
    /// for none).
    pub fn for_message_status(status: &str) -> Option<EventType> {
        match status {
            "received" => Some(EventType::MessageReceived),
            "sent" => Some(EventType::MessageSent),
            "delivered" | "read" | "failed" => Some(EventType::MessageStatus),
            CHANGE_REACTION => Some(EventType::MessageReaction),
            CHANGE_EDITED => Some(EventType::MessageEdited),
            CHANGE_REVOKED => Some(EventType::MessageRevoked),
            CHANGE_POLL_VOTE => Some(EventType::MessagePollVote),
            _ => None,
        }
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of every delivery.
#[derive(Debug, Serialize)]
pub struct Envelope<'a, T: Serialize> {
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub timestamp: String,
    pub data: &'a T,
}

/// Serialises an event body; `at_ms` is when it happened.
pub fn body<T: Serialize>(event: EventType, at_ms: i64, data: &T) -> String {
    let envelope = Envelope { kind: event.as_str(), timestamp: rfc3339_ms(at_ms), data };
    serde_json::to_string(&envelope).unwrap_or_else(|_| "{}".into())
}

/// The data of a message event: the message as the API shows it, reporting the event's
/// status (`message.received`, `message.status`).
pub type MessageData = crate::messages::view::MessageOut;

/// `device.status`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeviceStatusData {
    pub device_id: i64,
    /// The device's phone number.
    pub device: String,
    /// `disconnected`, `connecting`, `qr`, `connected` or `logged_out`.
    pub status: String,
    /// Why, when there is something to say (an error, a logout reason).
    pub detail: Option<String>,
}

/// `device.qr`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeviceQrData {
    pub device_id: i64,
    pub device: String,
    /// The string to encode as a QR code and scan with WhatsApp's "Link a device".
    pub qr: String,
    pub expires_at: String,
}

/// `contact.resolved`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContactResolvedData {
    pub device_id: i64,
    /// The device's phone number.
    pub device: String,
    /// The LID JID (`…@lid`).
    pub lid: String,
    /// The phone number behind it (digits).
    pub phone: String,
}

/// A group member named in a group event.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GroupMemberData {
    /// The phone number (digits), when known.
    pub phone: Option<String>,
    /// The LID JID, when WhatsApp named the member by it.
    pub lid: Option<String>,
}

/// `group.joined`, `group.left`, `group.participants` and `group.updated`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GroupEventData {
    pub device_id: i64,
    /// The device's phone number.
    pub device: String,
    /// The group JID (`…@g.us`).
    pub group: String,
    /// The group's subject, when known (after the change).
    pub subject: Option<String>,
    /// The member who did it (number, or LID when no number is known), when WhatsApp says.
    pub by: Option<String>,
    /// `group.participants`: `add`, `remove`, `promote` or `demote`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// `group.participants`: the members the change was about.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub participants: Vec<GroupMemberData>,
    /// `group.updated`: the fields that changed, with their new values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<GroupChange>,
}

impl GroupEventData {
    /// The event type and data of a group event of device `device_id` (number `device`).
    pub fn of(
        device_id: i64,
        device: String,
        event: &GroupEvent,
        subject: Option<String>,
    ) -> (EventType, Self) {
        let mut data = GroupEventData {
            device_id,
            device,
            group: event.group.clone(),
            subject,
            by: event.by.clone(),
            action: None,
            participants: Vec::new(),
            changes: None,
        };
        let kind = match &event.kind {
            GroupEventKind::Joined(_) => EventType::GroupJoined,
            GroupEventKind::Left => EventType::GroupLeft,
            GroupEventKind::Participants { action, participants } => {
                data.action = Some(action.as_str().into());
                data.participants = participants
                    .iter()
                    .map(|p| GroupMemberData { phone: p.phone.clone(), lid: p.lid.clone() })
                    .collect();
                EventType::GroupParticipants
            }
            GroupEventKind::Updated(change) => {
                data.changes = Some(change.clone());
                EventType::GroupUpdated
            }
        };
        (kind, data)
    }
}

/// `scheduled.sent` (emitted by the scheduler).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScheduledSentData {
    pub schedule_id: i64,
    /// The outbound message this run queued.
    pub message_id: i64,
    pub device_id: i64,
    pub device: String,
    pub to: String,
    pub text: Option<String>,
    /// The run's due time.
    pub run_at: String,
    /// The next run of a recurring message, `null` for a one-off.
    pub next_run_at: Option<String>,
}

/// `plugin.failed` (emitted by the plugin runner).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PluginFailedData {
    pub plugin_id: i64,
    pub plugin: String,
    /// The inbound message the run was for.
    pub message_id: Option<i64>,
    /// `trap`, `timeout`, `memory`, `output_too_large`, ...
    pub outcome: String,
    pub error: String,
    /// Whether repeated failures disabled the plugin.
    pub disabled: bool,
}

/// The message a log row of this event points at: `data.message_id`, or `data.id` of a
/// message event.
pub fn message_id_of(event: EventType, data: &serde_json::Value) -> Option<i64> {
    match event {
        EventType::MessageReceived | EventType::MessageSent | EventType::MessageStatus => data["id"].as_i64(),
        _ => data["message_id"].as_i64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for e in EventType::ALL {
            assert_eq!(EventType::parse(e.as_str()), Some(e));
            assert_eq!(serde_json::to_value(e).unwrap(), e.as_str());
        }
        assert_eq!(EventType::parse("message.deleted"), None);
        assert_eq!(EventType::for_message_status("queued"), None);
        assert_eq!(EventType::for_message_status("read"), Some(EventType::MessageStatus));
    }

    #[test]
    fn bodies_have_type_timestamp_and_data() {
        let data =
            DeviceStatusData { device_id: 3, device: "628".into(), status: "connected".into(), detail: None };
        let b = body(EventType::DeviceStatus, 1_700_000_000_123, &data);
        assert_eq!(
            b,
            r#"{"type":"device.status","timestamp":"2023-11-14T22:13:20.123Z","data":{"device_id":3,"device":"628","status":"connected","detail":null}}"#
        );
    }
}
