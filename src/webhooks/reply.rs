//! Reply mode: the inbound pipeline stage that lets an external bot answer a message.
//!
//! For an inbound message, after the keyword rules, each of the tenant's enabled `reply`
//! endpoints (subscribed to `message.received`, for this device or all) gets the signed
//! `message.received` event at once, all of them in parallel, with `[webhooks] reply_timeout`
//! and one attempt (logged like any other, and retryable from the log, though a retried
//! answer is not sent). A 2xx answer may say what to send back to the chat, through the same
//! device, counted against the monthly limit:
//!
//! ```json
//! {"reply": "text"}
//! {"replies": [{"text": "..."}, {"url": "https://…/a.jpg", "type": "image", "caption": "..."}]}
//! ```
//!
//! An empty body, `{}` or `null` fields send nothing. At most [`MAX_REPLIES`] items; a text up
//! to 65,536 characters; `type` is `image`, `video`, `audio` or `document` (detected from the
//! content when left out) and the media is fetched through the hardened client. An answer that
//! is not like this is logged as a failure with the reason and nothing is sent. The answers go
//! back through the pipeline (`StageOutcome.replies`), whose loop guard decides whether they go
//! out (`messages::guard`), and which sends them in order (fetching media) and records one it
//! cannot send as a failed message. A slow endpoint holds up only the message it is answering:
//! every inbound message runs its pipeline in its own task.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::Value;

use super::events::{self, EventType, MessageData};
use super::{signing, Webhooks};
use crate::db::webhooks::{EndpointRow, NewDelivery, NewLog};
use crate::db::{now_ms, Db};
use crate::messages::inbound::{InboundContext, Reply, ReplyMedia, Stage, StageOutcome};
use crate::messages::media::MediaOptions;

/// Most items one answer may ask to send.
pub const MAX_REPLIES: usize = 5;
/// Longest reply text, in characters (as for `send-message`).
pub use crate::messages::MAX_TEXT_CHARS;
/// Largest answer body read, in bytes.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// One thing an answer asks to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyItem {
    Text(String),
    Media { url: String, kind: Option<String>, caption: Option<String>, filename: Option<String> },
}

/// Reads a reply endpoint's answer body.
pub fn parse_answer(body: &[u8]) -> Result<Vec<ReplyItem>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("the answer is not JSON: {e}"))?;
    let Value::Object(map) = value else {
        return Err("the answer must be a JSON object like {\"reply\": \"...\"}".into());
    };
    let mut items = Vec::new();
    match map.get("reply") {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) => items.push(ReplyItem::Text(check_text(text, "reply")?)),
        Some(_) => return Err("`reply` must be a string".into()),
    }
    match map.get("replies") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) => {
            for (i, entry) in list.iter().enumerate() {
                items.push(parse_item(entry).map_err(|e| format!("`replies[{i}]`: {e}"))?);
            }
        }
        Some(_) => return Err("`replies` must be an array".into()),
    }
    if items.len() > MAX_REPLIES {
        return Err(format!("at most {MAX_REPLIES} replies per answer"));
    }
    Ok(items)
}

fn parse_item(entry: &Value) -> Result<ReplyItem, String> {
    let Value::Object(map) = entry else { return Err("must be an object with `text` or `url`".into()) };
    let string = |key: &str| -> Result<Option<String>, String> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("`{key}` must be a string")),
        }
    };
    match (string("text")?, string("url")?) {
        (Some(text), None) => Ok(ReplyItem::Text(check_text(&text, "text")?)),
        (None, Some(url)) => {
            let kind = string("type")?;
            let caption = string("caption")?.filter(|c| !c.trim().is_empty());
            let filename = string("filename")?;
            MediaOptions::parse(kind.as_deref(), caption.clone(), filename.as_deref())
                .map_err(|e| e.to_string())?;
            Ok(ReplyItem::Media { url, kind, caption, filename })
        }
        (Some(_), Some(_)) => Err("give `text` or `url`, not both".into()),
        (None, None) => Err("needs `text` or `url`".into()),
    }
}

fn check_text(text: &str, field: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        return Err(format!("`{field}` is empty"));
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(format!("`{field}` is longer than {MAX_TEXT_CHARS} characters"));
    }
    Ok(text.to_string())
}

/// The `webhook` pipeline stage (reply mode).
pub struct ReplyStage {
    webhooks: Webhooks,
    db: Db,
}

impl Webhooks {
    /// The reply-mode pipeline stage. Its answers are sent by the pipeline, media included.
    pub fn reply_stage(&self) -> ReplyStage {
        ReplyStage { webhooks: self.clone(), db: self.inner.db.clone() }
    }
}

impl ReplyStage {
    /// Asks one endpoint and logs the attempt; returns what its answer asks to send.
    async fn ask(&self, ctx: &InboundContext, endpoint: &EndpointRow, payload: &str) -> Vec<ReplyItem> {
        let webhook_id = signing::new_message_id();
        let timeout = Duration::from_secs(self.webhooks.inner.config.reply_timeout);
        let started = Instant::now();
        let (mut outcome, request, body) =
            self.webhooks.post(endpoint, &webhook_id, payload, Some(timeout), MAX_ANSWER_BYTES).await;
        let latency_ms = started.elapsed().as_millis() as i64;
        let mut items = Vec::new();
        if outcome.success() {
            match body.as_deref().map(parse_answer) {
                Some(Ok(found)) => items = found,
                Some(Err(why)) => {
                    outcome.kind = "failure";
                    outcome.error = Some(format!("invalid answer: {why}"));
                }
                None => {
                    outcome.kind = "failure";
                    outcome.error = Some(format!("invalid answer: larger than {MAX_ANSWER_BYTES} bytes"));
                }
            }
        }
        let event = EventType::MessageReceived.as_str().to_string();
        let delivery = NewDelivery {
            user_id: ctx.tenant_id,
            endpoint_id: endpoint.id,
            webhook_id: webhook_id.clone(),
            event: event.clone(),
            message_id: Some(ctx.message.id),
            device_id: Some(ctx.device.id),
            payload: payload.to_string(),
            max_attempts: 1,
            due: now_ms(),
        };
        let log = NewLog {
            user_id: ctx.tenant_id,
            kind: "webhook".into(),
            target: endpoint.url.clone(),
            event,
            message_id: Some(ctx.message.id),
            attempt: 1,
            outcome: outcome.kind.into(),
            http_status: outcome.http_status.map(i64::from),
            latency_ms: Some(latency_ms),
            error: outcome.error.clone(),
            request: Some(request),
            response: outcome.response.clone(),
            endpoint_id: Some(endpoint.id),
            delivery_id: None,
            webhook_id: Some(webhook_id),
            plugin_id: None,
            device_id: Some(ctx.device.id),
        };
        if let Err(e) = self.db.record_reply_attempt(&delivery, outcome.success(), &log).await {
            tracing::warn!(message_id = ctx.message.id, error = %e, "cannot log a reply webhook attempt");
        }
        items
    }
}

#[async_trait]
impl Stage for ReplyStage {
    fn name(&self) -> &'static str {
        "webhooks"
    }

    async fn run(&self, ctx: &InboundContext) -> StageOutcome {
        if ctx.message.direction != "in" {
            return StageOutcome::default();
        }
        let endpoints = match self.db.reply_webhooks(ctx.tenant_id, ctx.device.id).await {
            Ok(e) if !e.is_empty() => e,
            Ok(_) => return StageOutcome::default(),
            Err(e) => {
                tracing::warn!(message_id = ctx.message.id, error = %e, "cannot load reply webhooks");
                return StageOutcome::default();
            }
        };
        let data =
            MessageData::reporting(&ctx.message, "received", None).with_links(&self.webhooks.inner.links);
        let payload = events::body(EventType::MessageReceived, ctx.message.created_at, &data);
        let answers = futures::future::join_all(endpoints.iter().map(|e| self.ask(ctx, e, &payload))).await;
        let items: Vec<ReplyItem> = answers.into_iter().flatten().collect();
        let replies = items
            .into_iter()
            .map(|item| match item {
                ReplyItem::Text(text) => Reply::text(text, "webhook"),
                ReplyItem::Media { url, kind, caption, filename } => {
                    Reply::media(ReplyMedia { url, kind, caption, filename }, "webhook")
                }
            })
            .collect();
        StageOutcome { replies, stop: false }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> ReplyItem {
        ReplyItem::Text(s.into())
    }

    #[test]
    fn answers_are_read() {
        assert_eq!(parse_answer(b""), Ok(vec![]));
        assert_eq!(parse_answer(b"  \n"), Ok(vec![]));
        assert_eq!(parse_answer(b"{}"), Ok(vec![]));
        assert_eq!(parse_answer(br#"{"reply": null, "ok": true}"#), Ok(vec![]));
        assert_eq!(parse_answer(br#"{"reply": "halo"}"#), Ok(vec![text("halo")]));
        assert_eq!(
            parse_answer(br#"{"replies": [{"text": "a"}, {"url": "https://x.test/a.png", "type": "image", "caption": "c"}]}"#),
            Ok(vec![
                text("a"),
                ReplyItem::Media {
                    url: "https://x.test/a.png".into(),
                    kind: Some("image".into()),
                    caption: Some("c".into()),
                    filename: None
                }
            ])
        );
    }

    #[test]
    fn malformed_answers_say_why() {
        for (body, why) in [
            (&b"not json"[..], "not JSON"),
            (b"[1]", "JSON object"),
            (br#"{"reply": 5}"#, "`reply` must be a string"),
            (br#"{"reply": "  "}"#, "empty"),
            (br#"{"replies": {}}"#, "must be an array"),
            (br#"{"replies": [5]}"#, "replies[0]"),
            (br#"{"replies": [{}]}"#, "needs `text` or `url`"),
            (br#"{"replies": [{"text": "a", "url": "b"}]}"#, "not both"),
            (br#"{"replies": [{"url": "https://x.test/a", "type": "hologram"}]}"#, "replies[0]"),
            (br#"{"replies": [{"text":"1"},{"text":"2"},{"text":"3"},{"text":"4"},{"text":"5"},{"text":"6"}]}"#, "at most 5"),
        ] {
            let err = parse_answer(body).unwrap_err();
            assert!(err.contains(why), "{}: {err}", String::from_utf8_lossy(body));
        }
        let long = format!(r#"{{"reply": "{}"}}"#, "a".repeat(MAX_TEXT_CHARS + 1));
        assert!(parse_answer(long.as_bytes()).unwrap_err().contains("longer than"));
    }
}
