//! `trap` (adversarial, for tests): traps as soon as it is called.
//!
//! It executes the wasm `unreachable` instruction before doing anything else; the gateway
//! records `trap`. No configuration.

use wa_gateway_plugin_sdk::{export_plugin, Context, Decision, Message, Plugin, PluginError};

struct Trap;

impl Plugin for Trap {
    fn handle(_msg: Message, _ctx: Context) -> Result<Decision, PluginError> {
        #[cfg(target_arch = "wasm32")]
        core::arch::wasm32::unreachable();
        #[cfg(not(target_arch = "wasm32"))]
        unreachable!("the trap plugin traps");
    }
}

export_plugin!(Trap);
