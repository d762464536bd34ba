//! The plain Rust side of a run: its input (mirrors of the WIT records), the decision, the log
//! lines and the report.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The inbound message a plugin is given (the WIT `message`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginMessage {
    pub id: i64,
    pub wa_id: String,
    pub chat: String,
    pub sender: String,
    pub push_name: Option<String>,
    pub is_group: bool,
    pub text: Option<String>,
    pub media: Option<PluginMedia>,
    pub timestamp_ms: i64,
}

/// Media metadata of an inbound message (the WIT `media`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginMedia {
    pub kind: String,
    pub mime_type: Option<String>,
    pub file_name: Option<String>,
    pub size: Option<u64>,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInput {
    pub message: PluginMessage,
    pub context: PluginContext,
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
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the plugin decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub actions: Vec<Action>,
    /// Stop the chain: later plugins and reply webhooks do not see the message.
    pub stop: bool,
}

/// One thing to do, in order, through the device that received the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Action {
    ReplyText {
        text: String,
    },
    ReplyMedia {
        /// An http(s) URL.
        url: String,
        /// `image`, `video`, `audio` or `document`.
        kind: String,
        caption: Option<String>,
        file_name: Option<String>,
    },
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
    /// Present exactly when the outcome is `success`.
    pub decision: Option<Decision>,
    /// Why the run failed, for the tenant.
    pub error: Option<String>,
    /// At most `max_log_lines` lines, then one counting the lines dropped, if any.
    pub logs: Vec<LogLine>,
    /// From the call to `run` to its answer (waiting for a free slot included).
    pub latency: Duration,
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
    }
}
