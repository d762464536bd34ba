//! The plain Rust side of a run, the same for every world version: its input (what the WIT
//! records of the newest version hold; an older world is given the part it knows), the
//! decision, the log lines and the report.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::content::{ContactCard, Location, PollSpec, QuotedRef};

/// The inbound message a plugin is given (the WIT `message`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PluginMessage {
    pub id: i64,
    pub wa_id: String,
    pub chat: String,
    pub sender: String,
    pub push_name: Option<String>,
    pub is_group: bool,
    /// The message's `type`: `text`, `image`, `video`, `audio`, `voice`, `document`,
    /// `sticker`, `location`, `contact`, `poll` or `unsupported` (empty reads as `text`).
    #[serde(default)]
    pub kind: String,
    pub text: Option<String>,
    pub media: Option<PluginMedia>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<ContactCard>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll: Option<PollSpec>,
    /// The message this one quotes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<QuotedRef>,
    /// Phone numbers mentioned in the text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<String>,
    pub timestamp_ms: i64,
}

/// Media metadata of an inbound message (the WIT `media`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginMedia {
    /// `image`, `video`, `audio`, `voice`, `document` or `sticker`.
    pub kind: String,
    pub mime_type: Option<String>,
    pub file_name: Option<String>,
    pub size: Option<u64>,
    /// A link that fetches the bytes (0.2.0 plugins only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_url: Option<String>,
}

/// Where the message arrived and the plugin's configuration (the WIT `context`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginContext {
    pub tenant_id: i64,
    pub device_id: i64,
    pub device_phone: String,
    pub plugin_id: i64,
    /// JSON, `{}` when unset.
    pub config: String,
}

/// One run's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInput {
    pub message: PluginMessage,
    pub context: PluginContext,
}

/// An event a webhook transformation is given (the WIT `event` of the `transform` world).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransformEvent {
    /// The delivery's `webhook-id`.
    pub id: String,
    /// The event type (`message.received`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// RFC 3339, as in the standard body.
    pub timestamp: String,
    /// The event's `data`, JSON.
    pub data: String,
}

/// The endpoint and the plugin's configuration (the WIT `context` of the `transform` world).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransformContext {
    pub tenant_id: i64,
    pub endpoint_id: i64,
    pub url: String,
    pub plugin_id: i64,
    /// JSON, `{}` when unset.
    pub config: String,
}

/// One transformation run's input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransformInput {
    pub event: TransformEvent,
    pub context: TransformContext,
}

/// What a run is given: a message (auto-reply plugins) or an event (transformations).
// Made once per run and moved, never stored in bulk: boxing the message would add an
// allocation to every message's run for no saving.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Message(RunInput),
    Event(TransformInput),
}

impl From<RunInput> for Input {
    fn from(input: RunInput) -> Input {
        Input::Message(input)
    }
}

impl From<TransformInput> for Input {
    fn from(input: TransformInput) -> Input {
        Input::Event(input)
    }
}

/// What a transformation decided for one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Transformed {
    /// Send this request in place of the standard one.
    Send(TransformedRequest),
    /// Send nothing for this event.
    Skip,
}

/// The request a transformation returned, checked against the caps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransformedRequest {
    pub body: String,
    /// `application/json` when the plugin named none.
    pub content_type: String,
    /// Extra headers, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
    /// Appended to the endpoint's URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The plugin returned a decision within the caps.
    Success,
    /// The plugin returned its own error (`plugin-error`).
    Error,
    /// The plugin trapped (a panic, an out-of-bounds access, `unreachable`, ...).
    Trap,
    /// The CPU deadline or the wall-clock timeout passed.
    Timeout,
    /// The plugin tried to grow its memory past the limit.
    Memory,
    /// The decision had too many actions or too long a reply.
    OutputTooLarge,
    /// The decision was malformed (an empty reply, a media URL that is not http(s), ...).
    InvalidOutput,
    /// The gateway could not run the plugin (not the plugin's fault).
    Internal,
    /// The plugin did not run: its tenant's plugin runs were all taken for longer than
    /// `[plugins] queue_timeout_ms` (not the plugin's fault, not counted as a failure).
    Busy,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Error => "error",
            Outcome::Trap => "trap",
            Outcome::Timeout => "timeout",
            Outcome::Memory => "memory",
            Outcome::OutputTooLarge => "output_too_large",
            Outcome::InvalidOutput => "invalid_output",
            Outcome::Internal => "internal",
            Outcome::Busy => "busy",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the plugin decided, whichever world version it was built for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub actions: Vec<Action>,
    /// Stop the chain: later plugins and reply webhooks do not see the message.
    pub stop: bool,
    /// The replies quote the message they answer (0.2.0 plugins; absent when not).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub quote: bool,
}

/// One thing to do, in order, through the device that received the message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Action {
    ReplyText {
        text: String,
    },
    ReplyMedia {
        /// An http(s) URL.
        url: String,
        /// `image`, `video`, `audio`, `voice`, `document` or `sticker`.
        kind: String,
        caption: Option<String>,
        file_name: Option<String>,
    },
    ReplyLocation {
        location: Location,
    },
    ReplyContacts {
        contacts: Vec<ContactCard>,
    },
    /// A reaction to the message; an empty emoji removes the plugin's device's reaction.
    React {
        emoji: String,
    },
    /// Marks the message read.
    MarkRead,
}

impl Action {
    /// Whether this sends a message to the chat (a reaction or a read mark does not).
    pub fn is_reply(&self) -> bool {
        !matches!(self, Action::React { .. } | Action::MarkRead)
    }
}

/// One line the plugin logged (cut to `max_log_line_bytes`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// `debug`, `info`, `warn` or `error`.
    pub level: String,
    pub message: String,
}

/// The record of one run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub outcome: Outcome,
    /// Present exactly when the outcome is `success` of an auto-reply plugin.
    pub decision: Option<Decision>,
    /// Present exactly when the outcome is `success` of a transformation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transformed: Option<Transformed>,
    /// Why the run failed, for the tenant.
    pub error: Option<String>,
    /// At most `max_log_lines` lines, then one counting the lines dropped, if any.
    pub logs: Vec<LogLine>,
    /// The HTTP requests the plugin made.
    pub http: super::HttpLog,
    /// From the call to `run` to its answer (waiting for a free slot included).
    pub latency: Duration,
    /// Whether the run used the CPU long enough to have its thread's priority lowered.
    pub lowered: bool,
}

impl RunReport {
    /// A run that failed before (or instead of) running the plugin.
    pub fn failure(outcome: Outcome, error: String, latency: Duration) -> RunReport {
        RunReport {
            outcome,
            decision: None,
            transformed: None,
            error: Some(error),
            logs: Vec::new(),
            http: super::HttpLog::default(),
            latency,
            lowered: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_have_stable_names() {
        let all = [
            (Outcome::Success, "success"),
            (Outcome::Error, "error"),
            (Outcome::Trap, "trap"),
            (Outcome::Timeout, "timeout"),
            (Outcome::Memory, "memory"),
            (Outcome::OutputTooLarge, "output_too_large"),
            (Outcome::InvalidOutput, "invalid_output"),
            (Outcome::Internal, "internal"),
        ];
        for (outcome, name) in all {
            assert_eq!(outcome.as_str(), name);
            assert_eq!(serde_json::to_value(outcome).unwrap(), serde_json::json!(name));
        }
    }

    #[test]
    fn actions_serialize_tagged() {
        let text = serde_json::to_value(Action::ReplyText { text: "hi".into() }).unwrap();
        assert_eq!(text, serde_json::json!({"type": "reply_text", "text": "hi"}));
        let media = Action::ReplyMedia {
            url: "https://x.id/a.png".into(),
            kind: "image".into(),
            caption: None,
            file_name: None,
        };
        assert_eq!(serde_json::to_value(media).unwrap()["type"], "reply_media");
        let location = Action::ReplyLocation {
            location: Location { latitude: -6.2, longitude: 106.8, name: Some("Toko".into()), address: None },
        };
        assert_eq!(
            serde_json::to_value(location).unwrap(),
            serde_json::json!({"type": "reply_location", "location": {"latitude": -6.2, "longitude": 106.8, "name": "Toko"}})
        );
        let react = serde_json::to_value(Action::React { emoji: "👍".into() }).unwrap();
        assert_eq!(react, serde_json::json!({"type": "react", "emoji": "👍"}));
        assert_eq!(serde_json::to_value(Action::MarkRead).unwrap(), serde_json::json!({"type": "mark_read"}));
    }

    #[test]
    fn a_decision_says_quote_only_when_it_quotes() {
        let plain = Decision { actions: vec![], stop: false, quote: false };
        assert_eq!(serde_json::to_value(&plain).unwrap(), serde_json::json!({"actions": [], "stop": false}));
        let quoting = Decision { quote: true, ..plain };
        assert_eq!(serde_json::to_value(quoting).unwrap()["quote"], true);
    }
}
