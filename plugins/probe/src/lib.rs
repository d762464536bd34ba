//! `probe` (for tests): reports what it saw of a message and does what its configuration asks,
//! so the gateway's tests can check both sides of the 0.2.0 world through the real pipeline.
//!
//! Its first action is a text reply holding a JSON object with what the plugin was given: the
//! message's `kind`, `text`, `media` (`mime_type`, `file_name`, `size`, `download_url`),
//! `location`, `contacts`, `poll`, `reply_to` (`wa_id`, `id`, `sender`, `text`) and
//! `mentions` (absent parts are `null` or `[]`). Then the actions of its configuration, in
//! this order. Every field is optional (defaults shown):
//!
//! ```json
//! {
//!   "report": true,
//!   "location": null,
//!   "contacts": [],
//!   "react": null,
//!   "mark_read": false,
//!   "quote": false,
//!   "stop": false
//! }
//! ```
//!
//! - `report`: send the JSON report (`false`: only the configured actions).
//! - `location`: `{"latitude", "longitude", "name"?, "address"?}`, sent as a location reply
//!   (as given: the gateway's output caps judge it).
//! - `contacts`: `[{"name", "phone"}]`, sent as one contact reply when not empty.
//! - `react`: an emoji to react with (`""` removes the reaction).
//! - `mark_read`: mark the message read.
//! - `quote`: the replies quote the message.
//! - `stop`: stop the chain.

use serde::Deserialize;
use serde_json::{json, Value};
use wa_gateway_plugin_sdk::{
    config, export_plugin, Contact, Context, Decision, Location, Message, Plugin, PluginError,
};

/// The configuration, as documented above.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    report: bool,
    location: Option<Point>,
    contacts: Vec<Card>,
    react: Option<String>,
    mark_read: bool,
    quote: bool,
    stop: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            report: true,
            location: None,
            contacts: Vec::new(),
            react: None,
            mark_read: false,
            quote: false,
            stop: false,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Point {
    latitude: f64,
    longitude: f64,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    address: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Card {
    name: String,
    phone: String,
}

/// What the plugin was given, as JSON.
fn report(msg: &Message) -> Value {
    json!({
        "kind": msg.kind.as_str(),
        "text": msg.text,
        "media": msg.media.as_ref().map(|m| json!({
            "mime_type": m.mime_type,
            "file_name": m.file_name,
            "size": m.size,
            "download_url": m.download_url,
        })),
        "location": msg.location.as_ref().map(|l| json!({
            "latitude": l.latitude,
            "longitude": l.longitude,
            "name": l.name,
            "address": l.address,
        })),
        "contacts": msg.contacts.iter().map(|c| json!({"name": c.name, "phone": c.phone})).collect::<Vec<_>>(),
        "poll": msg.poll.as_ref().map(|p| json!({
            "question": p.question,
            "options": p.options,
            "multiple": p.multiple,
        })),
        "reply_to": msg.reply_to.as_ref().map(|q| json!({
            "wa_id": q.wa_id,
            "id": q.id,
            "sender": q.sender,
            "text": q.text,
        })),
        "mentions": msg.mentions,
    })
}

struct Probe;

impl Plugin for Probe {
    fn handle(msg: Message, ctx: Context) -> Result<Decision, PluginError> {
        let config: Config = config(&ctx)?;
        let mut decision = Decision::none();
        if config.report {
            decision = decision.and_reply(report(&msg).to_string());
        }
        if let Some(p) = config.location {
            let mut at = Location::new(p.latitude, p.longitude);
            at.name = p.name;
            at.address = p.address;
            decision = decision.and_location(at);
        }
        if !config.contacts.is_empty() {
            decision = decision
                .and_contacts(config.contacts.into_iter().map(|c| Contact::new(c.name, c.phone)).collect());
        }
        if let Some(emoji) = config.react {
            decision = decision.and_react(emoji);
        }
        if config.mark_read {
            decision = decision.and_mark_read();
        }
        if config.quote {
            decision = decision.quoting();
        }
        if config.stop {
            decision = decision.stop();
        }
        Ok(decision)
    }
}

export_plugin!(Probe);
