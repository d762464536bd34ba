//! The auto-reply stage of the inbound pipeline: the first stage after a message is stored.
//!
//! For a message with text it loads the tenant's enabled rules for the device, finds the
//! matching ones best first ([`engine::matching`]), and answers with the first that is not
//! cooling down for this chat. Messages sent from the phone (`from_me`) are stored as outbound
//! and never reach the pipeline (see `Inbound::inbound`); the stage checks the direction again.
//! The pipeline's loop guard (`messages::guard`) decides whether the answer goes out; a rule
//! that matched counts as fired for its cooldown and for `stop` either way.
//!
//! Cooldowns are claimed in the database (`auto_reply_cooldowns`): they may be hours long and
//! must survive a restart, and one conditional upsert makes two messages arriving together
//! fire the rule once.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::Utc;

use super::engine::{self, MatchMode, Matcher, Rule, Text, Vars};
use crate::db::rules::RuleRow;
use crate::db::{Db, DbError};
use crate::messages::inbound::{InboundContext, Reply, Stage, StageOutcome};
use crate::time::timezone_or_default;

/// Compiled rules kept before the cache is emptied (rules are compiled again on next use).
const CACHE_CAP: usize = 20_000;

/// The `auto_reply` pipeline stage.
pub struct RulesStage {
    db: Db,
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
    pub fn new(db: Db) -> Self {
        RulesStage { db, cache: Mutex::new(HashMap::new()) }
    }

    fn compile<'a>(&self, rows: impl Iterator<Item = &'a RuleRow>) -> Vec<Rule> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() > CACHE_CAP {
            cache.clear();
        }
        rows.filter_map(|row| {
            let matcher = match cache.get(&row.id) {
                Some(c) if c.is_for(row) => c.matcher.clone(),
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
                reply: row.reply.clone(),
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
        // Rules answer direct chats only, unless a rule says groups too.
        let rules = self.compile(rows.iter().filter(|r| !message.is_group || r.in_groups));
        if rules.is_empty() {
            return Ok(StageOutcome::default());
        }
        let text = Text::new(raw);
        let candidates = engine::matching(&rules, ctx.device.id, &text);
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
                if rule.reply.contains("{date}") { today(&ctx.tenant.timezone) } else { String::new() };
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
        // Every matching rule is cooling down for this chat: nothing to send.
        Ok(StageOutcome::default())
    }
}

/// Today in the tenant's time zone (`users.timezone`, default Asia/Jakarta), `YYYY-MM-DD`.
fn today(zone: &str) -> String {
    Utc::now().with_timezone(&timezone_or_default(zone)).format("%Y-%m-%d").to_string()
}

#[async_trait]
impl Stage for RulesStage {
    fn name(&self) -> &'static str {
        "rules"
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
