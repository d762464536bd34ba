//! `keyword-router`: replies chosen by keyword, from the plugin's configuration.
//!
//! Configuration (`PATCH /api/user/plugins/{id}` with `"config": {…}`):
//!
//! ```json
//! {
//!   "routes": [
//!     {"keyword": "harga", "reply": "Harga paket mulai Rp50.000."},
//!     {"keyword": "alamat", "reply": "Jl. Merdeka 1, Bandung."}
//!   ],
//!   "default": null,
//!   "stop": false
//! }
//! ```
//!
//! - `routes`: tried in order; a route matches when the message text contains its `keyword`,
//!   ignoring case. The first match wins and its `reply` is sent. Keywords must not be empty.
//! - `default`: the reply when no route matches, or `null` (the default) for no reply.
//! - `stop`: when `true`, a message this plugin answers stops the chain (later plugins and the
//!   reply webhooks do not see it). Default `false`.
//!
//! Messages without text get no reply. Every field is optional; `{}` routes nothing.

use serde::Deserialize;
use wa_gateway_plugin_sdk::{config, export_plugin, Context, Decision, Message, Plugin, PluginError};

/// The configuration, as documented above.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    routes: Vec<Route>,
    #[serde(default)]
    default: Option<String>,
    #[serde(default)]
    stop: bool,
}

/// One keyword and its reply.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Route {
    keyword: String,
    reply: String,
}

impl Config {
    /// The reply for `text`: the first matching route's, else the default.
    fn reply_for(&self, text: &str) -> Option<&str> {
        let text = text.to_lowercase();
        self.routes
            .iter()
            .find(|route| text.contains(&route.keyword.to_lowercase()))
            .map(|route| route.reply.as_str())
            .or(self.default.as_deref())
    }
}

struct KeywordRouter;

impl Plugin for KeywordRouter {
    fn handle(msg: Message, ctx: Context) -> Result<Decision, PluginError> {
        let config: Config = config(&ctx)?;
        if let Some(i) = config.routes.iter().position(|route| route.keyword.trim().is_empty()) {
            return Err(PluginError::bad_config(format!("routes[{i}].keyword is empty")));
        }
        let Some(text) = msg.text else {
            return Ok(Decision::none());
        };
        Ok(match config.reply_for(&text) {
            Some(reply) if config.stop => Decision::reply(reply).stop(),
            Some(reply) => Decision::reply(reply),
            None => Decision::none(),
        })
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

    #[test]
    fn the_first_matching_route_wins_ignoring_case() {
        let c = cfg(
            r#"{"routes": [{"keyword": "harga", "reply": "a"}, {"keyword": "HARGA paket", "reply": "b"}]}"#,
        );
        assert_eq!(c.reply_for("Berapa HARGA paket?"), Some("a"));
    }

    #[test]
    fn no_match_falls_back_to_the_default() {
        let c = cfg(r#"{"routes": [{"keyword": "harga", "reply": "a"}], "default": "d"}"#);
        assert_eq!(c.reply_for("halo"), Some("d"));
        assert_eq!(cfg("{}").reply_for("halo"), None);
    }
}
