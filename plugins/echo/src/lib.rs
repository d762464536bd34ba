//! `echo`: the smallest useful plugin, and the tutorial's example.
//!
//! Replies `echo: <text>` to every message that has text (or a caption); messages without
//! text (or with only whitespace) get no reply. The chain is not stopped. No configuration.

use wa_gateway_plugin_sdk::{export_plugin, Context, Decision, Message, Plugin, PluginError};

struct Echo;

impl Plugin for Echo {
    fn handle(msg: Message, _ctx: Context) -> Result<Decision, PluginError> {
        Ok(match msg.text {
            Some(text) if !text.trim().is_empty() => Decision::reply(format!("echo: {text}")),
            _ => Decision::none(),
        })
    }
}

export_plugin!(Echo);
