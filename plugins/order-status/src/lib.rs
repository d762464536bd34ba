//! `order-status`: answers "status <order>" with what the shop's own HTTP API says about the
//! order.
//!
//! A message whose text starts with the keyword (ignoring case), then an order number
//! (`status 1234`, `Status #1234`), makes the plugin `GET` the configured `url` with `{order}`
//! replaced by the number, and reply:
//!
//! - the answer is 200 and a JSON object: `reply` with `{order}` and `{status}` filled in
//!   (`{status}` is the answer's `field`, text or number);
//! - the answer is 404: `not_found` with `{order}` filled in;
//! - anything else (another status, no answer in time, a host the tenant did not allow):
//!   `unavailable`, and a `warn` log line saying what went wrong.
//!
//! Other messages are left alone. The reply quotes the question. The plugin needs the API's
//! host in its `allowed_hosts`. It also counts the lookups of each order in its key-value
//! store (`lookups:<order>`) and logs the count.
//!
//! Configuration (only `url` is required; defaults shown):
//!
//! ```json
//! {
//!   "url": "https://api.toko.id/orders/{order}",
//!   "headers": {"authorization": "Bearer …"},
//!   "keyword": "status",
//!   "field": "status",
//!   "reply": "Pesanan {order}: {status}",
//!   "not_found": "Pesanan {order} tidak ditemukan.",
//!   "unavailable": "Maaf, status pesanan belum bisa dicek. Silakan coba lagi nanti.",
//!   "stop": true
//! }
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;
use wa_gateway_plugin_sdk::http::{self, Request};
use wa_gateway_plugin_sdk::{
    config, export_plugin, kv, log, Context, Decision, Message, Plugin, PluginError,
};

/// The configuration, as documented above.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    url: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default = "default_keyword")]
    keyword: String,
    #[serde(default = "default_field")]
    field: String,
    #[serde(default = "default_reply")]
    reply: String,
    #[serde(default = "default_not_found")]
    not_found: String,
    #[serde(default = "default_unavailable")]
    unavailable: String,
    #[serde(default = "default_stop")]
    stop: bool,
}

fn default_keyword() -> String {
    "status".into()
}
fn default_field() -> String {
    "status".into()
}
fn default_reply() -> String {
    "Pesanan {order}: {status}".into()
}
fn default_not_found() -> String {
    "Pesanan {order} tidak ditemukan.".into()
}
fn default_unavailable() -> String {
    "Maaf, status pesanan belum bisa dicek. Silakan coba lagi nanti.".into()
}
fn default_stop() -> bool {
    true
}

struct OrderStatus;

impl Plugin for OrderStatus {
    fn handle(msg: Message, ctx: Context) -> Result<Decision, PluginError> {
        let cfg: Config = config(&ctx)?;
        let Some(order) = msg.text.as_deref().and_then(|t| order_number(t, &cfg.keyword)) else {
            return Ok(Decision::none());
        };
        let lookups = kv::increment(&format!("lookups:{order}"))?;
        log::info!("order {order}: lookup {lookups}");
        let mut request = Request::new("GET", &cfg.url.replace("{order}", &order));
        for (name, value) in &cfg.headers {
            request = request.with_header(name, value);
        }
        let text = match http::send(&request) {
            Ok(answer) if answer.status == 200 => match answer.json::<serde_json::Value>() {
                Ok(body) => match status_text(&body, &cfg.field) {
                    Some(status) => cfg.reply.replace("{order}", &order).replace("{status}", &status),
                    None => {
                        log::warn!("order {order}: the answer has no `{}`", cfg.field);
                        cfg.unavailable.replace("{order}", &order)
                    }
                },
                Err(err) => {
                    log::warn!("order {order}: {err:?}");
                    cfg.unavailable.replace("{order}", &order)
                }
            },
            Ok(answer) if answer.status == 404 => cfg.not_found.replace("{order}", &order),
            Ok(answer) => {
                log::warn!("order {order}: the API answered HTTP {}", answer.status);
                cfg.unavailable.replace("{order}", &order)
            }
            Err(err) => {
                log::warn!("order {order}: {err:?}");
                cfg.unavailable.replace("{order}", &order)
            }
        };
        let decision = Decision::reply(text).quoting();
        Ok(if cfg.stop { decision.stop() } else { decision })
    }
}

/// The order number after the keyword at the start of `text`: digits (and letters and `-`),
/// after an optional `#`.
fn order_number(text: &str, keyword: &str) -> Option<String> {
    let text = text.trim();
    let head = text.get(..keyword.len())?;
    if keyword.is_empty() || !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = &text[keyword.len()..];
    if !rest.starts_with([' ', ':', '#']) {
        return None;
    }
    let rest = rest.trim_start_matches([' ', ':']).trim_start_matches('#');
    let order: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
    (!order.is_empty() && order.len() <= 64).then_some(order)
}

/// `field` of a JSON object as text: a string as it is, a number or boolean written out.
fn status_text(body: &serde_json::Value, field: &str) -> Option<String> {
    match body.get(field)? {
        serde_json::Value::String(s) => Some(s.clone()),
        v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_)) => Some(v.to_string()),
        _ => None,
    }
}

export_plugin!(OrderStatus);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_order_number_follows_the_keyword() {
        assert_eq!(order_number("status 1234", "status").as_deref(), Some("1234"));
        assert_eq!(order_number("Status #A-77 tolong", "status").as_deref(), Some("A-77"));
        assert_eq!(order_number("STATUS: 9", "status").as_deref(), Some("9"));
        assert_eq!(order_number("status", "status"), None);
        assert_eq!(order_number("statuses 12", "status"), None);
        assert_eq!(order_number("cek status 12", "status"), None);
        assert_eq!(order_number("halo", "status"), None);
    }

    #[test]
    fn the_status_field_is_read_as_text() {
        let body = serde_json::json!({"status": "dikirim", "step": 3, "x": {"y": 1}});
        assert_eq!(status_text(&body, "status").as_deref(), Some("dikirim"));
        assert_eq!(status_text(&body, "step").as_deref(), Some("3"));
        assert_eq!(status_text(&body, "x"), None);
        assert_eq!(status_text(&body, "missing"), None);
    }
}
