//! `faq-bot`: answers questions from a configured FAQ and counts the questions of each chat
//! in the key-value store.
//!
//! Every message with text is a question. The plugin adds one to the chat's counter (key
//! `count:<chat>`, e.g. `count:6281234567890@s.whatsapp.net`, the number as decimal text) and
//! replies, in exactly this format:
//!
//! ```text
//! Pertanyaan ke-<N> dari chat ini: <answer>
//! ```
//!
//! `<N>` is the chat's count including this message (1, 2, 3, …). `<answer>` is the answer of
//! the first FAQ entry one of whose keywords the text contains (ignoring case), else
//! `fallback`. With the default configuration, `halo` then `apa kabar` in one chat get
//! `Pertanyaan ke-1 dari chat ini: Terima kasih, pertanyaan Anda sudah kami catat.` and
//! `Pertanyaan ke-2 dari chat ini: Terima kasih, pertanyaan Anda sudah kami catat.`
//!
//! Messages without text are not counted and get no reply. Counts are per chat, per tenant and
//! per plugin (the store is scoped); a run that fails does not count.
//!
//! Configuration, every field optional (defaults shown):
//!
//! ```json
//! {
//!   "faq": [
//!     {"keywords": ["ongkir", "pengiriman"], "answer": "Ongkir gratis untuk pembelian di atas Rp100.000."}
//!   ],
//!   "fallback": "Terima kasih, pertanyaan Anda sudah kami catat.",
//!   "stop": false
//! }
//! ```
//!
//! (`faq` defaults to `[]`; `stop: true` stops the chain after a reply.)

use serde::Deserialize;
use wa_gateway_plugin_sdk::{config, export_plugin, kv, Context, Decision, Message, Plugin, PluginError};

/// The configuration, as documented above.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    faq: Vec<Entry>,
    fallback: String,
    stop: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            faq: Vec::new(),
            fallback: "Terima kasih, pertanyaan Anda sudah kami catat.".into(),
            stop: false,
        }
    }
}

/// One FAQ entry: any of its keywords selects its answer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    keywords: Vec<String>,
    answer: String,
}

impl Config {
    /// The answer for `text`: the first entry with a keyword in it, else the fallback.
    fn answer_for(&self, text: &str) -> &str {
        let text = text.to_lowercase();
        self.faq
            .iter()
            .find(|entry| {
                entry.keywords.iter().any(|k| !k.trim().is_empty() && text.contains(&k.to_lowercase()))
            })
            .map_or(self.fallback.as_str(), |entry| entry.answer.as_str())
    }
}

/// The reply text for the `count`-th question of a chat.
fn reply_text(count: u64, answer: &str) -> String {
    format!("Pertanyaan ke-{count} dari chat ini: {answer}")
}

struct FaqBot;

impl Plugin for FaqBot {
    fn handle(msg: Message, ctx: Context) -> Result<Decision, PluginError> {
        let config: Config = config(&ctx)?;
        let Some(text) = msg.text.filter(|t| !t.trim().is_empty()) else {
            return Ok(Decision::none());
        };
        let count = kv::increment(&format!("count:{}", msg.chat))?;
        let decision = Decision::reply(reply_text(count, config.answer_for(&text)));
        Ok(if config.stop { decision.stop() } else { decision })
    }
}

export_plugin!(FaqBot);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reply_shows_the_count_and_the_answer() {
        let config: Config = parse_config(
            r#"{"faq": [{"keywords": ["", "Ongkir"], "answer": "gratis"}], "fallback": "dicatat"}"#,
        );
        assert_eq!(
            reply_text(2, config.answer_for("berapa ONGKIR?")),
            "Pertanyaan ke-2 dari chat ini: gratis"
        );
        assert_eq!(config.answer_for("halo"), "dicatat");
        assert_eq!(Config::default().answer_for("x"), "Terima kasih, pertanyaan Anda sudah kami catat.");
    }

    fn parse_config(json: &str) -> Config {
        let ctx = Context {
            tenant_id: 1,
            device_id: 1,
            device_phone: "62".into(),
            plugin_id: 1,
            config: json.into(),
        };
        config(&ctx).unwrap()
    }
}
