//! Keyword auto-reply rules (`auto_replies`), their per-chat cooldowns, and the loop guard's
//! look-up of recent gateway-sent messages.

use std::sync::Arc;

use super::tenants::announce_tenant_change;
use super::{insert_within_limit, now_ms, reader, writer, Db, DbResult};
use crate::resource::Resource;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RuleRow {
    pub id: i64,
    pub user_id: i64,
    pub device_id: Option<i64>,
    /// The device's phone number, when the rule is for one device.
    pub device_phone: Option<String>,
    pub keyword: String,
    pub match_mode: String,
    pub reply: String,
    pub case_sensitive: bool,
    pub priority: i64,
    pub enabled: bool,
    pub stop_chain: bool,
    pub cooldown_seconds: i64,
    /// Whether the rule also answers messages in groups (by default only direct chats).
    pub in_groups: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

const SELECT: &str = "SELECT r.id, r.user_id, r.device_id, d.phone AS device_phone, r.keyword, r.match_mode, \
     r.reply, r.case_sensitive, r.priority, r.enabled, r.stop_chain, r.cooldown_seconds, r.in_groups, r.created_at, \
     r.updated_at \
     FROM auto_replies r LEFT JOIN devices d ON d.id = r.device_id";

/// A rule's fields as stored (already checked by the caller).
#[derive(Debug, Clone)]
pub struct NewRule {
    pub device_id: Option<i64>,
    pub keyword: String,
    pub match_mode: String,
    pub reply: String,
    pub case_sensitive: bool,
    pub priority: i64,
    pub enabled: bool,
    pub stop_chain: bool,
    pub cooldown_seconds: i64,
    pub in_groups: bool,
}

impl Db {
    /// Creates a rule unless the tenant already has `limit` rules (`None` = unlimited; the
    /// answer is `None` at the limit).
    pub async fn create_rule(
        &self,
        tenant: i64,
        rule: &NewRule,
        limit: Option<i64>,
    ) -> DbResult<Option<RuleRow>> {
        let id: Option<i64> = insert_within_limit!(self, tenant, Resource::AutoReplies, limit, |tx| {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO auto_replies (user_id, device_id, keyword, match_mode, reply, case_sensitive, \
                 priority, enabled, stop_chain, cooldown_seconds, in_groups, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $12, $11, $11) RETURNING id",
            )
            .bind(tenant)
            .bind(rule.device_id)
            .bind(&rule.keyword)
            .bind(&rule.match_mode)
            .bind(&rule.reply)
            .bind(rule.case_sensitive)
            .bind(rule.priority)
            .bind(rule.enabled)
            .bind(rule.stop_chain)
            .bind(rule.cooldown_seconds)
            .bind(now_ms())
            .bind(rule.in_groups)
            .fetch_one(&mut *tx)
            .await?;
            announce_tenant_change!(self, tx, tenant);
            id
        })?;
        self.tenants.forget_tenant(tenant);
        match id {
            Some(id) => self.rule(tenant, id).await,
            None => Ok(None),
        }
    }

    pub async fn rule(&self, tenant: i64, id: i64) -> DbResult<Option<RuleRow>> {
        let sql = format!("{SELECT} WHERE r.user_id = $1 AND r.id = $2");
        Ok(reader!(self, |p| sqlx::query_as(&sql).bind(tenant).bind(id).fetch_optional(p).await)?)
    }

    /// A page of the tenant's rules in the order they are tried, with the total.
    /// Only rules for every device or for one of `devices`, when given.
    pub async fn list_rules(
        &self,
        tenant: i64,
        devices: Option<&[i64]>,
        limit: i64,
        offset: i64,
    ) -> DbResult<(Vec<RuleRow>, i64)> {
        let scope = super::device_scope("device_id", devices, true);
        let sql = format!(
            "{SELECT} WHERE r.user_id = $1{} ORDER BY r.priority DESC, r.id LIMIT $2 OFFSET $3",
            super::device_scope("r.device_id", devices, true)
        );
        let rows =
            reader!(self, |p| sqlx::query_as(&sql).bind(tenant).bind(limit).bind(offset).fetch_all(p).await)?;
        let count = format!("SELECT COUNT(*) FROM auto_replies WHERE user_id = $1{scope}");
        let total: i64 = reader!(self, |p| sqlx::query_scalar(&count).bind(tenant).fetch_one(p).await)?;
        Ok((rows, total))
    }

    /// Replaces a rule's fields; `None` when the tenant has no such rule. Its cooldowns start
    /// over, since the rule may now answer different messages.
    pub async fn update_rule(&self, tenant: i64, id: i64, rule: &NewRule) -> DbResult<Option<RuleRow>> {
        let changed = writer!(self, |p| {
            let mut tx = p.begin().await?;
            let n = sqlx::query(
                "UPDATE auto_replies SET device_id = $3, keyword = $4, match_mode = $5, reply = $6, \
                 case_sensitive = $7, priority = $8, enabled = $9, stop_chain = $10, cooldown_seconds = $11, \
                 updated_at = $12, in_groups = $13 WHERE user_id = $1 AND id = $2",
            )
            .bind(tenant)
            .bind(id)
            .bind(rule.device_id)
            .bind(&rule.keyword)
            .bind(&rule.match_mode)
            .bind(&rule.reply)
            .bind(rule.case_sensitive)
            .bind(rule.priority)
            .bind(rule.enabled)
            .bind(rule.stop_chain)
            .bind(rule.cooldown_seconds)
            .bind(now_ms())
            .bind(rule.in_groups)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 1 {
                sqlx::query("DELETE FROM auto_reply_cooldowns WHERE rule_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            announce_tenant_change!(self, tx, tenant);
            tx.commit().await?;
            n == 1
        });
        self.tenants.forget_tenant(tenant);
        if !changed {
            return Ok(None);
        }
        self.rule(tenant, id).await
    }

    /// Deletes a rule; false when the tenant has no such rule.
    pub async fn delete_rule(&self, tenant: i64, id: i64) -> DbResult<bool> {
        let n = writer!(self, |p| {
            let mut tx = p.begin().await?;
            let n = sqlx::query("DELETE FROM auto_replies WHERE user_id = $1 AND id = $2")
                .bind(tenant)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            announce_tenant_change!(self, tx, tenant);
            tx.commit().await?;
            n
        });
        self.tenants.forget_tenant(tenant);
        Ok(n == 1)
    }

    /// The tenant's enabled rules that apply to `device_id` (its own and the all-device ones),
    /// in the order they are tried; from memory when read in the last moments (every change
    /// to the tenant's rules forgets them, see `tenant_cache`).
    pub async fn active_rules(&self, tenant: i64, device_id: i64) -> DbResult<Arc<Vec<RuleRow>>> {
        if let Some(rules) = self.tenants.rules(tenant, device_id) {
            return Ok(rules);
        }
        let generation = self.tenants.generation();
        let sql = format!(
            "{SELECT} WHERE r.user_id = $1 AND r.enabled = $2 AND (r.device_id IS NULL OR r.device_id = $3) \
             ORDER BY r.priority DESC, r.id"
        );
        let rows: Vec<RuleRow> = reader!(self, |p| sqlx::query_as(&sql)
            .bind(tenant)
            .bind(true)
            .bind(device_id)
            .fetch_all(p)
            .await)?;
        let rules = Arc::new(rows);
        self.tenants.put_rules(generation, tenant, device_id, &rules);
        Ok(rules)
    }

    /// Records that a rule answers a chat now, unless it already did within `cooldown_ms`.
    /// One conditional upsert: of two messages arriving together only one gets `true`.
    pub async fn claim_rule_cooldown(
        &self,
        rule_id: i64,
        device_id: i64,
        chat: &str,
        cooldown_ms: i64,
    ) -> DbResult<bool> {
        let now = now_ms();
        let claimed: Option<i64> = writer!(self, |p| {
            sqlx::query_scalar(
            "INSERT INTO auto_reply_cooldowns (rule_id, device_id, chat, fired_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (rule_id, device_id, chat) DO UPDATE SET fired_at = excluded.fired_at \
             WHERE auto_reply_cooldowns.fired_at <= $5 RETURNING rule_id"
        )
        .bind(rule_id)
        .bind(device_id)
        .bind(chat)
        .bind(now)
        .bind(now.saturating_sub(cooldown_ms))
        .fetch_optional(p)
        .await
        })?;
        Ok(claimed.is_some())
    }

    /// Whether `text` is something this gateway sent since `since_ms` (Unix ms) into this chat
    /// of this device (messages typed on the phone do not count), or an automatic reply
    /// (auto-reply, plugin, webhook) that a device whose number is `sender` (another device of
    /// this gateway, any tenant) sent to this device's number.
    pub async fn is_gateway_echo(
        &self,
        device_id: i64,
        device_phone: &str,
        chat: &str,
        sender: &str,
        text: &str,
        since_ms: i64,
    ) -> DbResult<bool> {
        let here: Option<i64> = reader!(self, |p| sqlx::query_scalar(
            "SELECT id FROM messages WHERE device_id = $1 AND chat = $2 AND direction = 'out' \
             AND source <> 'phone' AND created_at >= $3 AND text = $4 LIMIT 1"
        )
        .bind(device_id)
        .bind(chat)
        .bind(since_ms)
        .bind(text)
        .fetch_optional(p)
        .await)?;
        if here.is_some() {
            return Ok(true);
        }
        let own_chat = format!("{device_phone}@s.whatsapp.net");
        let there: Option<i64> = reader!(self, |p| sqlx::query_scalar(
            "SELECT m.id FROM messages m JOIN devices d ON d.id = m.device_id \
             WHERE d.phone = $1 AND m.chat IN ($2, $3) AND m.direction = 'out' \
             AND m.source IN ('auto_reply', 'plugin', 'webhook') \
             AND m.created_at >= $4 AND m.text = $5 LIMIT 1"
        )
        .bind(sender)
        .bind(&own_chat)
        .bind(chat)
        .bind(since_ms)
        .bind(text)
        .fetch_optional(p)
        .await)?;
        Ok(there.is_some())
    }
}
