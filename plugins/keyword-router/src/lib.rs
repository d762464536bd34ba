//! `keyword-router`: replies chosen by keyword, from the plugin's configuration.
//!
//! Configuration (`PATCH /api/user/plugins/{id}` with `"config": {…}`):
//!
//! ```json
//! {
//!   "routes": [
//!     {"keyword": "harga", "reply": "Harga paket mulai Rp50.000."},
//!     {"keyword": "alamat", "reply": "Jl. Merdeka 1, Bandung.",
//!      "location": {"latitude": -6.9175, "longitude": 107.6191, "name": "Toko Sinar", "address": "Jl. Merdeka 1, Bandung"}}
//!   ],
//!   "default": null,
//!   "quote": false,
//!   "stop": false
//! }
//! ```
//!
//! - `routes`: tried in order; a route matches when the message text contains its `keyword`,
//!   ignoring case. The first match wins and its answer is sent: the text `reply`, then the
//!   point `location` (`latitude`, `longitude`, optional `name` and `address`), whichever
//!   the route has. A route needs a non-empty `keyword` and at least one of the two.
//! - `default`: the text reply when no route matches, or `null` (the default) for no reply.
//! - `quote`: when `true`, the answers quote the message they answer. Default `false`.
//! - `stop`: when `true`, a message this plugin answers stops the chain (later plugins and the
//!   reply webhooks do not see it). Default `false`.
//!
//! Messages without text get no reply. Every field is optional; `{}` routes nothing.

use serde::Deserialize;
use wa_gateway_plugin_sdk::{
    config, export_plugin, Context, Decision, Location, Message, Plugin, PluginError,
};

/// The configuration, as documented above.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    routes: Vec<Route>,
    #[serde(default)]
    default: Option<String>,
    #[serde(default)]
    quote: bool,
    #[serde(default)]
    stop: bool,
}

/// One keyword and its answer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Route {
    keyword: String,
    #[serde(default)]
    reply: Option<String>,
    #[serde(default)]
    location: Option<Point>,
}

/// A point on the map, as configured.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Point {
    latitude: f64,
    longitude: f64,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    address: Option<String>,
}

/// What to answer: a text, a point, or both (text first).
#[derive(Debug, PartialEq)]
struct Answer<'a> {
    text: Option<&'a str>,
    location: Option<&'a Point>,
}

impl Config {
    /// Refuses routes that could never answer.
    fn check(&self) -> Result<(), PluginError> {
        for (i, route) in self.routes.iter().enumerate() {
            if route.keyword.trim().is_empty() {
                return Err(PluginError::bad_config(format!("routes[{i}].keyword is empty")));
            }
            if route.reply.is_none() && route.location.is_none() {
                return Err(PluginError::bad_config(format!("routes[{i}] has neither reply nor location")));
            }
        }
        Ok(())
    }

    /// The answer for `text`: the first matching route's, else the default.
    fn answer_for(&self, text: &str) -> Option<Answer<'_>> {
        let text = text.to_lowercase();
        match self.routes.iter().find(|route| text.contains(&route.keyword.to_lowercase())) {
            Some(route) => Some(Answer { text: route.reply.as_deref(), location: route.location.as_ref() }),
            None => self.default.as_deref().map(|text| Answer { text: Some(text), location: None }),
        }
    }
}

struct KeywordRouter;

impl Plugin for KeywordRouter {
    fn handle(msg: Message, ctx: Context) -> Result<Decision, PluginError> {
        let config: Config = config(&ctx)?;
        config.check()?;
        let Some(text) = msg.text else {
            return Ok(Decision::none());
        };
        let Some(answer) = config.answer_for(&text) else {
            return Ok(Decision::none());
        };
        let mut decision = Decision::none();
        if let Some(reply) = answer.text {
            decision = decision.and_reply(reply);
        }
        if let Some(point) = answer.location {
            let mut at = Location::new(point.latitude, point.longitude);
            at.name = point.name.clone();
            at.address = point.address.clone();
            decision = decision.and_location(at);
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

export_plugin!(KeywordRouter);

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `json` the way the plugin does, through the SDK's `config`.
    fn cfg(json: &str) -> Config {
        let ctx = Context {
            tenant_id: 1,
            device_id: 1,
            device_phone: "62".into(),
            plugin_id: 1,
            config: json.into(),
        };
        config(&ctx).unwrap()
    }

    fn text(answer: Option<Answer<'_>>) -> Option<&str> {
        answer.and_then(|a| a.text)
    }

    #[test]
    fn the_first_matching_route_wins_ignoring_case() {
        let c = cfg(
            r#"{"routes": [{"keyword": "harga", "reply": "a"}, {"keyword": "HARGA paket", "reply": "b"}]}"#,
        );
        assert_eq!(text(c.answer_for("Berapa HARGA paket?")), Some("a"));
    }

    #[test]
    fn no_match_falls_back_to_the_default() {
        let c = cfg(r#"{"routes": [{"keyword": "harga", "reply": "a"}], "default": "d"}"#);
        assert_eq!(text(c.answer_for("halo")), Some("d"));
        assert!(cfg("{}").answer_for("halo").is_none());
    }

    #[test]
    fn a_route_may_answer_with_a_location() {
        let c = cfg(
            r#"{"routes": [{"keyword": "alamat", "location": {"latitude": -6.9, "longitude": 107.6, "name": "Toko"}}]}"#,
        );
        c.check().unwrap();
        let answer = c.answer_for("minta ALAMAT").unwrap();
        assert_eq!(answer.text, None);
        let point = answer.location.unwrap();
        assert_eq!((point.latitude, point.name.as_deref()), (-6.9, Some("Toko")));
    }

    #[test]
    fn a_route_without_an_answer_is_bad_config() {
        let c = cfg(r#"{"routes": [{"keyword": "x"}]}"#);
        assert!(matches!(c.check(), Err(PluginError::BadConfig(why)) if why.contains("neither")));
    }
}
