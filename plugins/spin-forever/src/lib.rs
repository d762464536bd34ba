//! `spin-forever` (adversarial, for tests): never returns.
//!
//! Every call spins in a loop the optimizer cannot remove, without importing anything. The
//! gateway must stop it at its CPU deadline (epoch interruption) and record `timeout`, while
//! other messages and tenants carry on. No configuration.

use core::hint::black_box;
use wa_gateway_plugin_sdk::{export_plugin, Context, Decision, Message, Plugin, PluginError};

struct SpinForever;

impl Plugin for SpinForever {
    fn handle(_msg: Message, _ctx: Context) -> Result<Decision, PluginError> {
        let mut turns: u64 = 0;
        loop {
            turns = black_box(turns.wrapping_add(1));
        }
    }
}

export_plugin!(SpinForever);
