//! `echo-v1` (for tests): the `echo` plugin as it was built for `wa-gateway:plugin@0.1.0`,
//! before the SDK moved to 0.2.0. The gateway must go on running such components unchanged.
//!
//! Replies `echo: <text>` to every message that has text (or a caption); messages without
//! text (or with only whitespace) get no reply. The chain is not stopped. No configuration.
//!
//! It uses `wit-bindgen` directly against `wit/v0.1.0`, the way any guest toolchain targets
//! an older version of the world.

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/v0.1.0",
        world: "auto-reply",
    });
}

use bindings::wa_gateway::plugin::types::Action;
use bindings::{Context, Decision, Guest, Message, PluginError};

struct Echo;

impl Guest for Echo {
    fn handle(msg: Message, _ctx: Context) -> Result<Decision, PluginError> {
        let actions = match msg.text {
            Some(text) if !text.trim().is_empty() => vec![Action::ReplyText(format!("echo: {text}"))],
            _ => Vec::new(),
        };
        Ok(Decision { actions, stop: false })
    }
}

bindings::export!(Echo with_types_in bindings);
