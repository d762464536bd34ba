//! The plugin stage of the inbound pipeline (SPEC §8, step 3): after the keyword rules, before
//! the reply webhooks, each of the tenant's enabled plugins attached to the device runs in
//! `order` (then id). Their replies are sent through the device by the pipeline, counted
//! against the monthly limit; a plugin that says `stop` ends the chain.
//!
//! A failed run (trap, timeout, memory, too much output, an error it returns) is recorded and
//! the chain goes on with the next plugin: a broken plugin never loses the message. Each run is
//! bounded by its own deadline, and every message runs its pipeline in its own task, so a slow
//! plugin holds up only the message it is handling.
//!
//! Loop guard, as for rules: no reply to text this gateway sent into the chat, nor to another
//! gateway device's automatic reply, and at most `[rules] max_replies_per_chat_per_minute`
//! plugin replies per chat per minute.

use std::time::Instant;

use async_trait::async_trait;

use super::runtime::{Action, Outcome, PluginContext, PluginMedia, PluginMessage, RunInput};
use super::service::Plugins;
use crate::db::{now_ms, Db, MessageRow};
use crate::devices::driver::InboundMedia;
use crate::messages::inbound::{InboundContext, Reply, ReplyMedia, Stage, StageOutcome};
use crate::rules::guard::ReplyWindow;
use crate::rules::stage::ECHO_WINDOW;

/// The `plugin` pipeline stage.
pub struct PluginStage {
    plugins: Plugins,
    db: Db,
    window: ReplyWindow,
}

impl PluginStage {
    pub fn new(plugins: Plugins, db: Db, max_replies_per_chat_per_minute: u32) -> Self {
        PluginStage { plugins, db, window: ReplyWindow::new(max_replies_per_chat_per_minute) }
    }

    /// Whether replies to this message must be held back because it is the gateway's own text.
    async fn is_echo(&self, ctx: &InboundContext) -> bool {
        let m = &ctx.message;
        let Some(text) = m.text.as_deref() else { return false };
        let since = now_ms() - ECHO_WINDOW.as_millis() as i64;
        self.db
            .is_gateway_echo(ctx.device.id, &ctx.device.phone, &m.chat, &m.sender, text, since)
            .await
            .unwrap_or(false)
    }
}

/// What a plugin sees of a stored message and its device.
pub fn run_input(ctx: &InboundContext, plugin_id: i64, config: &str) -> RunInput {
    RunInput { message: plugin_message(&ctx.message), context: plugin_context(ctx, plugin_id, config) }
}

fn plugin_context(ctx: &InboundContext, plugin_id: i64, config: &str) -> PluginContext {
    PluginContext {
        tenant_id: ctx.tenant_id,
        device_id: ctx.device.id,
        device_phone: ctx.device.phone.clone(),
        plugin_id,
        config: config.to_string(),
    }
}

/// The plugin's view of a message.
pub fn plugin_message(m: &MessageRow) -> PluginMessage {
    let media = m
        .media
        .as_deref()
        .and_then(|j| serde_json::from_str::<InboundMedia>(j).ok())
        .map(|x| PluginMedia { kind: x.kind, mime_type: x.mime, file_name: x.filename, size: x.size });
    PluginMessage {
        id: m.id,
        wa_id: m.wa_id.clone().unwrap_or_default(),
        chat: m.chat.clone(),
        sender: m.sender.clone(),
        push_name: m.push_name.clone(),
        is_group: m.is_group,
        text: m.text.clone(),
        media,
        timestamp_ms: m.created_at,
    }
}

/// The replies a decision asks for.
pub fn replies(actions: &[Action]) -> Vec<Reply> {
    actions
        .iter()
        .map(|a| match a {
            Action::ReplyText { text } => Reply::text(text.clone(), "plugin"),
            Action::ReplyMedia { url, kind, caption, file_name } => Reply::media(
                ReplyMedia {
                    url: url.clone(),
                    kind: Some(kind.clone()),
                    caption: caption.clone(),
                    filename: file_name.clone(),
                },
                "plugin",
            ),
        })
        .collect()
}

#[async_trait]
impl Stage for PluginStage {
    fn name(&self) -> &'static str {
        "plugin"
    }

    async fn run(&self, ctx: &InboundContext) -> StageOutcome {
        if ctx.message.direction != "in" {
            return StageOutcome::default();
        }
        let plugins = match self.db.active_plugins(ctx.tenant_id, ctx.device.id).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(message_id = ctx.message.id, error = %e, "cannot load plugins");
                return StageOutcome::default();
            }
        };
        let mut outcome = StageOutcome::default();
        let mut echo: Option<bool> = None;
        for plugin in plugins {
            let report = self.plugins.run(&plugin, run_input(ctx, plugin.id, &plugin.config), false).await;
            let Some(decision) = report.decision.filter(|_| report.outcome == Outcome::Success) else {
                continue;
            };
            if !decision.actions.is_empty() {
                let is_echo = match echo {
                    Some(e) => e,
                    None => *echo.insert(self.is_echo(ctx).await),
                };
                if is_echo {
                    tracing::info!(
                        message_id = ctx.message.id,
                        "loop guard: not answering text the gateway sent"
                    );
                } else {
                    for reply in replies(&decision.actions) {
                        if self.window.try_take(ctx.device.id, &ctx.message.chat, Instant::now()) {
                            outcome.replies.push(reply);
                        } else {
                            tracing::info!(
                                message_id = ctx.message.id,
                                plugin_id = plugin.id,
                                "loop guard: too many plugin replies to this chat in the last minute"
                            );
                        }
                    }
                }
            }
            if decision.stop {
                outcome.stop = true;
                break;
            }
        }
        outcome
    }
}
