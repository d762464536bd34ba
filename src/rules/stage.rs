//! The auto-reply stage of the inbound pipeline: the first stage after a message is stored.
//!
//! For a message with text it loads the tenant's enabled rules for the device, finds the
//! matching ones best first ([`engine::matching`]), and answers with the first that is not
//! cooling down for this chat. Before answering, the loop guard:
//!
//! - never answers the device's own messages: messages sent from the phone (`from_me`) are
//!   stored as outbound and never reach the pipeline (see `Inbound::inbound`); the stage checks
//!   the direction again;
//! - never answers text this gateway sent (in the last [`ECHO_WINDOW`]) into this chat, nor an
//!   automatic reply that another device of this gateway sent to this device's number: an
//!   echo of our own message, or two gateway devices with rules answering each other;
//! - answers at most `[rules] max_replies_per_chat_per_minute` times per chat per minute
//!   ([`ReplyWindow`], in memory).
//!
//! A reply that the guard holds back still counts as the rule's decision: the chain stops when
//! the rule says so. Cooldowns are claimed in the database (`auto_reply_cooldowns`): they may
//! be hours long and must survive a restart, and one conditional upsert makes two messages
//! arriving together fire the rule once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;

use super::engine::{self, MatchMode, Matcher, Rule, Text, Vars};
use super::guard::ReplyWindow;
use crate::config::RulesConfig;
use crate::db::rules::RuleRow;
use crate::db::{now_ms, Db, DbError};
use crate::messages::inbound::{InboundContext, Reply, Stage, StageOutcome};
use crate::scheduler::cron::timezone_or_default;

/// How far back the echo check looks for text the gateway sent.
pub const ECHO_WINDOW: Duration = Duration::from_secs(600);
/// Compiled rules kept before the cache is emptied (rules are compiled again on next use).
const CACHE_CAP: usize = 20_000;

/// The `auto_reply` pipeline stage.
pub struct RulesStage {
    db: Db,
    window: ReplyWindow,
    /// Compiled matchers by rule id, with what they were compiled from: a regex is compiled
    /// once per rule version, not once per message.
    cache: Mutex<HashMap<i64, Compiled>>,
}

/// A rule's matcher and the stored fields it was made from.
struct Compiled {
    keyword: String,
    match_mode: String,
    case_sensitive: bool,
    matcher: Matcher,
}

impl Compiled {
    fn is_for(&self, row: &RuleRow) -> bool {
        self.keyword == row.keyword
            && self.match_mode == row.match_mode
            && self.case_sensitive == row.case_sensitive
    }
}

impl RulesStage {
    pub fn new(db: Db, config: &RulesConfig) -> Self {
        RulesStage {
            db,
            window: ReplyWindow::new(config.max_replies_per_chat_per_minute),
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn compile(&self, rows: Vec<RuleRow>) -> Vec<Rule> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() > CACHE_CAP {
            cache.clear();
        }
        rows.into_iter()
            .filter_map(|row| {
                let matcher = match cache.get(&row.id) {
                    Some(c) if c.is_for(&row) => c.matcher.clone(),
                    _ => {
                        let mode = MatchMode::parse(&row.match_mode).ok()?;
                        let m = match Matcher::parse(&row.keyword, mode, row.case_sensitive) {
                            Ok(m) => m,
                            Err(e) => {
                                tracing::warn!(rule_id = row.id, error = %e, "a stored rule does not compile");
                                return None;
                            }
                        };
                        let compiled = Compiled {
                            keyword: row.keyword.clone(),
                            match_mode: row.match_mode.clone(),
                            case_sensitive: row.case_sensitive,
                            matcher: m.clone(),
                        };
                        cache.insert(row.id, compiled);
                        m
                    }
                };
                Some(Rule {
                    id: row.id,
                    priority: row.priority,
                    device_id: row.device_id,
                    matcher,
                    reply: row.reply,
                    stop: row.stop_chain,
                    cooldown_seconds: row.cooldown_seconds,
                })
            })
            .collect()
    }

    async fn decide(&self, ctx: &InboundContext) -> Result<StageOutcome, DbError> {
        let message = &ctx.message;
        if message.direction != "in" {
            return Ok(StageOutcome::default());
        }
        let Some(raw) = message.text.as_deref().filter(|t| !t.trim().is_empty()) else {
            return Ok(StageOutcome::default());
        };
        let rows = self.db.active_rules(ctx.tenant_id, ctx.device.id).await?;
        if rows.is_empty() {
            return Ok(StageOutcome::default());
        }
        let rules = self.compile(rows);
        let text = Text::new(raw);
        let candidates = engine::matching(&rules, ctx.device.id, &text);
        let Some(best) = candidates.first() else { return Ok(StageOutcome::default()) };
        let held_back = StageOutcome { replies: Vec::new(), stop: best.stop };

        let since = now_ms() - ECHO_WINDOW.as_millis() as i64;
        if self
            .db
            .is_gateway_echo(ctx.device.id, &ctx.device.phone, &message.chat, &message.sender, raw, since)
            .await?
        {
            tracing::info!(
                message_id = message.id,
                rule_id = best.id,
                "loop guard: not answering text the gateway sent"
            );
            return Ok(held_back);
        }
        if !self.window.try_take(ctx.device.id, &message.chat, Instant::now()) {
            tracing::info!(
                message_id = message.id,
                rule_id = best.id,
                "loop guard: too many auto-replies to this chat in the last minute"
            );
            return Ok(held_back);
        }
        for rule in &candidates {
            let fires = rule.cooldown_seconds <= 0
                || self
                    .db
                    .claim_rule_cooldown(
                        rule.id,
                        ctx.device.id,
                        &message.chat,
                        rule.cooldown_seconds.saturating_mul(1000),
                    )
                    .await?;
            if !fires {
                continue;
            }
            let date =
                if rule.reply.contains("{date}") { self.today(ctx.tenant_id).await? } else { String::new() };
            let vars = Vars {
                name: message.push_name.as_deref(),
                phone: &message.sender,
                message: raw,
                date: &date,
            };
            let text = engine::render(&rule.reply, &vars);
            tracing::debug!(message_id = message.id, rule_id = rule.id, "auto-reply rule matched");
            return Ok(StageOutcome { replies: vec![Reply::text(text, "auto_reply")], stop: rule.stop });
        }
        // Every matching rule is cooling down for this chat: nothing was sent.
        self.window.give_back(ctx.device.id, &message.chat);
        Ok(StageOutcome::default())
    }

    /// Today in the tenant's time zone (`users.timezone`, default Asia/Jakarta), `YYYY-MM-DD`.
    async fn today(&self, tenant: i64) -> Result<String, DbError> {
        let zone = self.db.tenant(tenant).await?.map(|t| t.timezone).unwrap_or_default();
        Ok(Utc::now().with_timezone(&timezone_or_default(&zone)).format("%Y-%m-%d").to_string())
    }
}

#[async_trait]
impl Stage for RulesStage {
    fn name(&self) -> &'static str {
        "auto_reply"
    }

    async fn run(&self, ctx: &InboundContext) -> StageOutcome {
        match self.decide(ctx).await {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::warn!(message_id = ctx.message.id, error = %e, "auto-reply rules failed");
                StageOutcome::default()
            }
        }
    }
}
