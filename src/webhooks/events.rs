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
//! | `device.status` | a device's connection state changed | [`DeviceStatusData`] |
//! | `device.qr` | a device offers a new pairing QR code | [`DeviceQrData`] |
//! | `scheduled.sent` | a run of a scheduled message was queued for sending | [`ScheduledSentData`] |
//! | `plugin.failed` | a plugin run failed (trap, timeout, too much output) | [`PluginFailedData`] |

use chrono::{SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::db::MessageRow;
use crate::messages::outbound::MediaMeta;

/// An event a webhook endpoint can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "message.received")]
    MessageReceived,
    #[serde(rename = "message.sent")]
    MessageSent,
    #[serde(rename = "message.status")]
    MessageStatus,
    #[serde(rename = "device.status")]
    DeviceStatus,
    #[serde(rename = "device.qr")]
    DeviceQr,
    #[serde(rename = "scheduled.sent")]
    ScheduledSent,
    #[serde(rename = "plugin.failed")]
    PluginFailed,
}

impl EventType {
    pub const ALL: [EventType; 7] = [
        EventType::MessageReceived,
        EventType::MessageSent,
        EventType::MessageStatus,
        EventType::DeviceStatus,
        EventType::DeviceQr,
        EventType::ScheduledSent,
        EventType::PluginFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::MessageReceived => "message.received",
            EventType::MessageSent => "message.sent",
            EventType::MessageStatus => "message.status",
            EventType::DeviceStatus => "device.status",
            EventType::DeviceQr => "device.qr",
            EventType::ScheduledSent => "scheduled.sent",
            EventType::PluginFailed => "plugin.failed",
        }
    }

    pub fn parse(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|e| e.as_str() == name)
    }

    /// The message event a status-history entry stands for (`queued` stands for none).
    pub fn for_message_status(status: &str) -> Option<EventType> {
        match status {
            "received" => Some(EventType::MessageReceived),
            "sent" => Some(EventType::MessageSent),
            "delivered" | "read" | "failed" => Some(EventType::MessageStatus),
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
    let envelope = Envelope { kind: event.as_str(), timestamp: rfc3339(at_ms), data };
    serde_json::to_string(&envelope).unwrap_or_else(|_| "{}".into())
}

pub fn rfc3339(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A message, as the history API shows it (`message.received`, `message.sent`,
/// `message.status`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MessageData {
    /// The gateway's message id (as in `/api/user/chat-history/{id}`).
    pub id: i64,
    /// The device's phone number.
    pub device: String,
    pub device_id: i64,
    /// `in` or `out`.
    pub direction: String,
    /// The chat's WhatsApp id (`…@s.whatsapp.net`, or a group's `…@g.us`).
    pub chat: String,
    pub from: String,
    pub to: String,
    pub text: Option<String>,
    /// `text`, `image`, `video`, `audio` or `document`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The status this event reports: `received`, `sent`, `delivered`, `read` or `failed`.
    pub status: String,
    pub push_name: Option<String>,
    pub is_group: bool,
    /// Media metadata (`kind`, `mime`, `size`, `filename`, `caption`); the bytes are not sent.
    pub media: Option<serde_json::Value>,
    pub error: Option<String>,
    /// What produced it: `whatsapp` (inbound), `api`, `auto_reply`, `webhook`, `scheduled`,
    /// `plugin`, `phone`.
    pub source: String,
    /// WhatsApp's id of the message.
    pub wa_id: Option<String>,
    pub created_at: String,
}

impl MessageData {
    /// The message as it is now, reporting `status` (with `detail` as the error for `failed`).
    pub fn from_row(row: &MessageRow, status: &str, detail: Option<&str>) -> MessageData {
        let media =
            row.media.as_deref().and_then(|m| serde_json::from_str::<MediaMeta>(m).ok()).map(|mut m| {
                m.blob_id = None;
                serde_json::to_value(m).unwrap_or_default()
            });
        let error =
            if status == "failed" { detail.map(str::to_string).or_else(|| row.error.clone()) } else { None };
        MessageData {
            id: row.id,
            device: row.device_phone.clone(),
            device_id: row.device_id,
            direction: row.direction.clone(),
            chat: row.chat.clone(),
            from: row.sender.clone(),
            to: row.recipient.clone(),
            text: row.text.clone(),
            kind: row.kind.clone(),
            status: status.to_string(),
            push_name: row.push_name.clone(),
            is_group: row.is_group,
            media,
            error,
            source: row.source.clone(),
            wa_id: row.wa_id.clone(),
            created_at: rfc3339(row.created_at),
        }
    }
}

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
