//! `slack-notify`: a webhook transformation that turns the gateway's events into Slack
//! incoming-webhook messages.
//!
//! Attach it to a `notify` webhook endpoint whose URL is the Slack incoming webhook
//! (`https://hooks.slack.com/services/T…/B…/…`). Each event the endpoint subscribes to and the
//! configuration lists becomes one Slack message: JSON with `text` (what notifications show)
//! and `blocks` (a section in Slack's `mrkdwn`, and a context line naming the device and the
//! time). An inbound message reads
//!
//! > *Budi* (+6281234567890) on Toko Sinar: halo, stok ada?
//!
//! with its kind in brackets when it is not text (`[image] the caption`). Other events get one
//! line naming the event and what it is about. Events the configuration does not list are
//! skipped: nothing is sent for them. Slack ignores the Standard Webhooks headers the gateway
//! adds; a receiver of your own can check them.
//!
//! Configuration (every field optional; defaults shown):
//!
//! ```json
//! {
//!   "events": ["message.received"],
//!   "title": "WhatsApp",
//!   "groups": true,
//!   "max_text": 500
//! }
//! ```
//!
//! `groups: false` skips messages from groups; `max_text` cuts a long message (in characters).
//! A configuration that is not this shape fails the run with `bad-config`, and the event is
//! not sent (the tenant sees why in the webhook log).

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/transform/v0.1.0",
        world: "transform",
        // The imports (kv, log, clock, http) are interfaces of the `wa-gateway:plugin`
        // package the world depends on: generate them here too.
        generate_all,
    });
}

use bindings::wa_gateway::plugin::log::{log, Level};
use bindings::{Context, Event, Guest, Outcome, Request, TransformError};
use serde_json::{json, Value};

struct SlackNotify;

/// The configuration, as documented above.
struct Config {
    events: Vec<String>,
    title: String,
    groups: bool,
    max_text: usize,
}

impl Config {
    fn parse(text: &str) -> Result<Config, TransformError> {
        let bad = |why: &str| TransformError::BadConfig(why.to_string());
        let value: Value = serde_json::from_str(text).map_err(|e| bad(&format!("not JSON: {e}")))?;
        let Value::Object(map) = value else {
            return Err(bad("must be a JSON object"));
        };
        let mut config = Config {
            events: vec!["message.received".into()],
            title: "WhatsApp".into(),
            groups: true,
            max_text: 500,
        };
        for (key, value) in map {
            match (key.as_str(), value) {
                ("events", Value::Array(list)) => {
                    config.events = list
                        .into_iter()
                        .map(|e| match e {
                            Value::String(name) => Ok(name),
                            _ => Err(bad("`events` must be a list of event names")),
                        })
                        .collect::<Result<_, _>>()?;
                }
                ("events", _) => return Err(bad("`events` must be a list of event names")),
                ("title", Value::String(title)) => config.title = title,
                ("title", _) => return Err(bad("`title` must be text")),
                ("groups", Value::Bool(groups)) => config.groups = groups,
                ("groups", _) => return Err(bad("`groups` must be true or false")),
                ("max_text", Value::Number(n)) if n.as_u64().is_some_and(|n| n > 0) => {
                    config.max_text = n.as_u64().unwrap_or(500) as usize;
                }
                ("max_text", _) => return Err(bad("`max_text` must be a whole number above 0")),
                (other, _) => return Err(bad(&format!("unknown setting `{other}`"))),
            }
        }
        Ok(config)
    }
}

impl Guest for SlackNotify {
    fn transform(event: Event, ctx: Context) -> Result<Outcome, TransformError> {
        let config = Config::parse(&ctx.config)?;
        if !config.events.iter().any(|e| *e == event.type_) {
            return Ok(Outcome::Skip);
        }
        let data: Value = serde_json::from_str(&event.data)
            .map_err(|e| TransformError::Failed(format!("the event's data is not JSON: {e}")))?;
        if event.type_.starts_with("message.") && data["is_group"] == true && !config.groups {
            return Ok(Outcome::Skip);
        }
        let line = match event.type_.as_str() {
            "message.received" => message_line(&data, config.max_text),
            other => event_line(other, &data),
        };
        let device = data["device"].as_str().unwrap_or_default();
        let context = format!("{} · {} · {}", config.title, plus(device), event.timestamp);
        let body = json!({
            "text": line,
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": line}},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
            ],
        });
        log(Level::Info, &format!("{} {} → Slack", event.type_, event.id));
        Ok(Outcome::Send(Request {
            body: body.to_string(),
            content_type: None,
            headers: Vec::new(),
            path: None,
        }))
    }
}

/// `*Budi* (+628…): text`, for an inbound message.
fn message_line(data: &Value, max_text: usize) -> String {
    let from = data["from"].as_str().unwrap_or_default();
    let who = match data["push_name"].as_str().filter(|n| !n.trim().is_empty()) {
        Some(name) => format!("*{}* ({})", escape(name), plus(from)),
        None => format!("*{}*", plus(from)),
    };
    let kind = data["type"].as_str().unwrap_or("text");
    let text = data["text"].as_str().map(|t| cut(t, max_text)).unwrap_or_default();
    let text = escape(&text);
    let body = match (kind, text.is_empty()) {
        ("text", _) => text,
        (kind, true) => format!("[{kind}]"),
        (kind, false) => format!("[{kind}] {text}"),
    };
    if data["is_group"] == true {
        format!("{who} in group {}: {body}", data["chat"].as_str().unwrap_or_default())
    } else {
        format!("{who}: {body}")
    }
}

/// One line for any other event: its type and the fields that say what it is about.
fn event_line(kind: &str, data: &Value) -> String {
    let mut parts = vec![format!("`{kind}`")];
    for field in ["status", "to", "from", "group", "subject", "plugin", "outcome", "error", "detail"] {
        if let Some(value) = data[field].as_str().filter(|v| !v.is_empty()) {
            parts.push(format!("{field}: {}", escape(&cut(value, 200))));
        }
    }
    parts.join(" · ")
}

/// A phone number as people read it: `+628…`; a JID keeps its user part.
fn plus(phone: &str) -> String {
    let user = phone.split('@').next().unwrap_or(phone);
    if user.is_empty() || !user.bytes().all(|b| b.is_ascii_digit()) {
        return user.to_string();
    }
    format!("+{user}")
}

/// Slack's three control characters in `mrkdwn`.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// At most `max` characters, with `…` when cut.
fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

bindings::export!(SlackNotify with_types_in bindings);
