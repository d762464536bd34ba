//! The plugin stage of the inbound pipeline: after the keyword rules, before the reply
//! webhooks, each of the tenant's enabled plugins attached to the device runs in `order` (then
//! id). Their replies (text, media, locations, contact cards, quoting the message or not) are
//! sent through the device by the pipeline, counted against the monthly limit; their reactions
//! and read marks are done on the message at once; a plugin that says `stop` ends the chain.
//!
//! A failed run (trap, timeout, memory, too much output, an error it returns) is recorded and
//! the chain goes on with the next plugin: a broken plugin never loses the message. Each run is
//! bounded by its own deadline, and every message runs its pipeline in its own task, so a slow
//! plugin holds up only the message it is handling.
//! The pipeline's loop guard (`messages::guard`) decides whether the replies go out.

use crate::messages::media::store::MediaLinks;
use async_trait::async_trait;

use super::runtime::{Action, Decision, Outcome, PluginContext, PluginMedia, PluginMessage, RunInput};
use super::service::Plugins;
use crate::db::{Db, MessageRow};
use crate::devices::driver::InboundMedia;
use crate::messages::inbound::{InboundContext, Reply, ReplyContent, ReplyMedia, Stage, StageOutcome};

/// The `plugin` pipeline stage.
pub struct PluginStage {
    plugins: Plugins,
    db: Db,
    links: MediaLinks,
}

impl PluginStage {
    pub fn new(plugins: Plugins, db: Db, links: MediaLinks) -> Self {
        PluginStage { plugins, db, links }
    }
}

/// What a plugin sees of a stored message and its device; `links` signs the media's
/// download link.
pub fn run_input(ctx: &InboundContext, plugin_id: i64, config: &str, links: &MediaLinks) -> RunInput {
    let message = plugin_message(&ctx.message, media_download_url(ctx, links));
    RunInput { message, context: plugin_context(ctx, plugin_id, config) }
}

/// The link a plugin is given to fetch the bytes of the message's media (`download-url` of the
/// 0.2.0 world's `media`; 0.1.0 plugins never see it): a signed link that works without an API
/// key until it expires. The download usually finishes while the pipeline runs; a plugin that
/// fetches the link before that gets a 409 and may try again.
fn media_download_url(ctx: &InboundContext, links: &MediaLinks) -> Option<String> {
    let downloadable = matches!(ctx.message.media_state.as_deref(), Some("pending" | "stored"));
    (ctx.message.media.is_some() && downloadable)
        .then(|| links.signed_url(ctx.message.id, crate::db::now_ms() / 1000))
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

/// The plugin's view of a message: its kind and everything it carries, with `download_url` as
/// the link to its media's bytes (ignored when it has no media).
pub fn plugin_message(m: &MessageRow, download_url: Option<String>) -> PluginMessage {
    let media = m.media.as_deref().and_then(|j| serde_json::from_str::<InboundMedia>(j).ok()).map(|x| {
        PluginMedia { kind: x.kind, mime_type: x.mime, file_name: x.filename, size: x.size, download_url }
    });
    let details = m.details();
    PluginMessage {
        id: m.id,
        wa_id: m.wa_id.clone().unwrap_or_default(),
        chat: m.chat.clone(),
        sender: m.sender.clone(),
        push_name: m.push_name.clone(),
        is_group: m.is_group,
        kind: m.kind.clone(),
        text: m.text.clone(),
        media,
        location: details.location,
        contacts: details.contacts,
        poll: details.poll,
        reply_to: details.reply_to,
        mentions: details.mentions,
        timestamp_ms: m.created_at,
    }
}

/// The replies, reactions and read marks a decision asks for, in its order. With `quote`, the
/// replies that send a message quote the message they answer.
pub fn replies(decision: &Decision) -> Vec<Reply> {
    decision
        .actions
        .iter()
        .map(|a| {
            let content = match a {
                Action::ReplyText { text } => ReplyContent::Text(text.clone()),
                Action::ReplyMedia { url, kind, caption, file_name } => ReplyContent::Media(ReplyMedia {
                    url: url.clone(),
                    kind: Some(kind.clone()),
                    caption: caption.clone(),
                    filename: file_name.clone(),
                }),
                Action::ReplyLocation { location } => ReplyContent::Location(location.clone()),
                Action::ReplyContacts { contacts } => ReplyContent::Contacts(contacts.clone()),
                Action::React { emoji } => ReplyContent::React(emoji.clone()),
                Action::MarkRead => ReplyContent::MarkRead,
            };
            let reply = Reply::new(content, "plugin");
            if decision.quote && a.is_reply() {
                reply.quoting()
            } else {
                reply
            }
        })
        .collect()
}

#[async_trait]
impl Stage for PluginStage {
    fn name(&self) -> &'static str {
        "plugins"
    }

    async fn run(&self, ctx: &InboundContext) -> StageOutcome {
        if ctx.message.direction != "in" {
            return StageOutcome::default();
        }
        let plugins = match self.db.active_plugins(ctx.tenant_id, ctx.device.id, ctx.message.is_group).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(message_id = ctx.message.id, error = %e, "cannot load plugins");
                return StageOutcome::default();
            }
        };
        let mut outcome = StageOutcome::default();
        for plugin in plugins {
            let input = run_input(ctx, plugin.id, &plugin.config, &self.links);
            let Some(report) = self.plugins.run_for_message(&plugin, input).await else { continue };
            let Some(decision) = report.decision.filter(|_| report.outcome == Outcome::Success) else {
                continue;
            };
            outcome.replies.extend(replies(&decision));
            if decision.stop {
                outcome.stop = true;
                break;
            }
        }
        outcome
    }
}
