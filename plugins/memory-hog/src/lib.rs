//! `memory-hog` (adversarial, for tests): allocates memory until the gateway says no.
//!
//! Every call keeps 1 MiB blocks, each filled with non-zero bytes so the memory is really
//! written, and never stops asking for more. Under the gateway's memory cap (16 MiB by default)
//! growing the linear memory fails, the allocator aborts and the run traps; the gateway records
//! `memory`. No configuration.

use core::hint::black_box;
use wa_gateway_plugin_sdk::{export_plugin, Context, Decision, Message, Plugin, PluginError};

const BLOCK: usize = 1 << 20;

struct MemoryHog;

impl Plugin for MemoryHog {
    fn handle(_msg: Message, _ctx: Context) -> Result<Decision, PluginError> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(black_box(vec![0xa5u8; BLOCK]));
            black_box(&hoard);
        }
    }
}

export_plugin!(MemoryHog);
