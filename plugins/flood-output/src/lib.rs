//! `flood-output` (adversarial, for tests): returns far more than the output caps allow.
//!
//! By default every call returns 1,000 text replies of 8,192 bytes each (8 MiB in all; the
//! default caps are 5 actions and 4,096 bytes per reply) and first logs 100 lines of 1,024
//! bytes (the default log caps keep 20 lines of 512 bytes). The gateway must refuse the whole
//! decision, send nothing and record `output_too_large`. The output fits well inside the
//! default 16 MiB memory cap, so the run does not fail for memory first.
//!
//! Configuration, to aim at one cap at a time (defaults shown):
//!
//! ```json
//! {"actions": 1000, "reply_bytes": 8192, "log_lines": 100}
//! ```
//!
//! e.g. `{"actions": 6, "reply_bytes": 10}` is over the action cap only, and
//! `{"actions": 1, "reply_bytes": 4097}` over the reply cap only. Each reply is the text
//! `flood <i> ` (i from 1) padded with `x` to exactly `reply_bytes` bytes. `actions` times
//! `reply_bytes` may be at most 12 MiB.

use serde::Deserialize;
use wa_gateway_plugin_sdk::{config, export_plugin, log, Context, Decision, Message, Plugin, PluginError};

const MAX_TOTAL_BYTES: usize = 12 << 20;

/// The configuration, as documented above.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    actions: usize,
    reply_bytes: usize,
    log_lines: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config { actions: 1000, reply_bytes: 8192, log_lines: 100 }
    }
}

/// The `i`-th reply: `flood <i> ` padded with `x` to `len` bytes (cut short if `len` is tiny).
fn reply(i: usize, len: usize) -> String {
    let mut text = format!("flood {i} ");
    text.truncate(len);
    text.extend(std::iter::repeat_n('x', len - text.len()));
    text
}

struct FloodOutput;

impl Plugin for FloodOutput {
    fn handle(_msg: Message, ctx: Context) -> Result<Decision, PluginError> {
        let config: Config = config(&ctx)?;
        let total = config.actions.checked_mul(config.reply_bytes);
        if total.is_none_or(|total| total > MAX_TOTAL_BYTES) {
            return Err(PluginError::bad_config("actions × reply_bytes must be at most 12 MiB"));
        }
        let line = "y".repeat(1024);
        for _ in 0..config.log_lines.min(10_000) {
            log::info(&line);
        }
        let mut decision = Decision { actions: Vec::with_capacity(config.actions), ..Decision::none() };
        for i in 1..=config.actions {
            decision = decision.and_reply(reply(i, config.reply_bytes));
        }
        Ok(decision)
    }
}

export_plugin!(FloodOutput);

#[cfg(test)]
mod tests {
    use super::reply;

    #[test]
    fn replies_have_exactly_the_asked_length() {
        assert_eq!(reply(7, 12), "flood 7 xxxx");
        assert_eq!(reply(12, 3), "flo");
        assert_eq!(reply(1, 8192).len(), 8192);
    }
}
