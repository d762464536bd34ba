//! What every request and every inbound message reads about its tenant (the API key it
//! presents, the tenant row, the limit overrides, the keyword rules, the enabled plugins, the
//! reply webhooks), kept in memory so the common path asks the database nothing.
//!
//! Correctness rests on three rules:
//! - every write that changes one of these rows goes through a `Db` method that forgets the
//!   tenant's entries after it committed (and, on PostgreSQL, sends a notification in the same
//!   transaction, so every other process forgets them as soon as it commits);
//! - a value read from the database is only kept when no tenant was forgotten while it was
//!   being read (a generation counter), so a read that raced a write never caches the old row;
//! - entries live [`TTL`] at most, a backstop for a notification that never arrived.
//!
//! Unknown keys are not remembered: a key created a moment ago must work at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::plugins::PluginRow;
use super::rules::RuleRow;
use super::tenants::{AuthRow, TenantRow};
use super::webhooks::EndpointRow;

/// How long an entry is trusted without a notification.
pub const TTL: Duration = Duration::from_secs(30);

/// Entries kept at most per map; a full map is emptied (simple, and refills in one read each).
const MAX_ENTRIES: usize = 20_000;

/// The channel the gateway processes of one PostgreSQL database notify each other on.
pub(crate) const NOTIFY_CHANNEL: &str = "wa_gateway";

/// The notification payload saying a tenant's key, row or overrides changed.
pub(crate) fn tenant_changed_payload(tenant: i64) -> String {
    format!("t:{tenant}")
}

struct Entry<T> {
    value: T,
    at: Instant,
}

#[derive(Default)]
struct Maps {
    generation: u64,
    /// By key hash.
    keys: HashMap<String, Entry<AuthRow>>,
    tenants: HashMap<i64, Entry<TenantRow>>,
    /// The overrides JSON as stored.
    overrides: HashMap<i64, Entry<String>>,
    /// The enabled keyword rules by (tenant, device), in the order they are tried.
    rules: HashMap<(i64, i64), Entry<Arc<Vec<RuleRow>>>>,
    /// The tenant's enabled plugins, in the order they run (for every device).
    plugins: HashMap<i64, Entry<Arc<Vec<PluginRow>>>>,
    /// The enabled reply webhooks by (tenant, device), in the order they are asked.
    reply_hooks: HashMap<(i64, i64), Entry<Arc<Vec<EndpointRow>>>>,
}

/// See the module documentation. Shared by every clone of a `Db`.
#[derive(Default)]
pub struct TenantCache {
    maps: Mutex<Maps>,
}

impl TenantCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Maps> {
        self.maps.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores with `store` unless a tenant was forgotten since `generation` was read.
    fn put_if(&self, generation: u64, store: impl FnOnce(&mut Maps)) {
        let mut maps = self.lock();
        if maps.generation == generation {
            store(&mut maps);
        }
    }

    /// The generation to pass to the `put_*` calls that store what is read from now on.
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    pub fn key(&self, hash: &str) -> Option<AuthRow> {
        get(&self.lock().keys, hash)
    }

    pub fn put_key(&self, generation: u64, hash: &str, row: &AuthRow) {
        self.put_if(generation, |m| put(&mut m.keys, hash.to_string(), row.clone()));
    }

    pub fn tenant(&self, id: i64) -> Option<TenantRow> {
        get(&self.lock().tenants, &id)
    }

    pub fn put_tenant(&self, generation: u64, row: &TenantRow) {
        self.put_if(generation, |m| put(&mut m.tenants, row.id, row.clone()));
    }

    pub fn overrides(&self, tenant: i64) -> Option<String> {
        get(&self.lock().overrides, &tenant)
    }

    pub fn put_overrides(&self, generation: u64, tenant: i64, json: &str) {
        self.put_if(generation, |m| put(&mut m.overrides, tenant, json.to_string()));
    }

    pub fn rules(&self, tenant: i64, device: i64) -> Option<Arc<Vec<RuleRow>>> {
        get(&self.lock().rules, &(tenant, device))
    }

    pub fn put_rules(&self, generation: u64, tenant: i64, device: i64, rules: &Arc<Vec<RuleRow>>) {
        self.put_if(generation, |m| put(&mut m.rules, (tenant, device), rules.clone()));
    }

    pub fn plugins(&self, tenant: i64) -> Option<Arc<Vec<PluginRow>>> {
        get(&self.lock().plugins, &tenant)
    }

    pub fn put_plugins(&self, generation: u64, tenant: i64, plugins: &Arc<Vec<PluginRow>>) {
        self.put_if(generation, |m| put(&mut m.plugins, tenant, plugins.clone()));
    }

    pub fn reply_hooks(&self, tenant: i64, device: i64) -> Option<Arc<Vec<EndpointRow>>> {
        get(&self.lock().reply_hooks, &(tenant, device))
    }

    pub fn put_reply_hooks(&self, generation: u64, tenant: i64, device: i64, hooks: &Arc<Vec<EndpointRow>>) {
        self.put_if(generation, |m| put(&mut m.reply_hooks, (tenant, device), hooks.clone()));
    }

    /// A key was used at `at`: its cached row says so, so the next touch waits its minute.
    pub fn touched(&self, key_id: i64, at: i64) {
        for entry in self.lock().keys.values_mut().filter(|e| e.value.key_id == key_id) {
            entry.value.last_used_at = Some(at);
        }
    }

    /// Forgets everything about one tenant (a key revoked; status, package, overrides, rules,
    /// plugins or webhook endpoints changed).
    pub fn forget_tenant(&self, tenant: i64) {
        let mut maps = self.lock();
        maps.generation += 1;
        maps.keys.retain(|_, e| e.value.user_id != tenant);
        maps.tenants.remove(&tenant);
        maps.overrides.remove(&tenant);
        maps.rules.retain(|(t, _), _| *t != tenant);
        maps.plugins.remove(&tenant);
        maps.reply_hooks.retain(|(t, _), _| *t != tenant);
    }

    /// Forgets everything (notifications from other processes may have been lost).
    pub fn forget_all(&self) {
        let mut maps = self.lock();
        maps.generation += 1;
        maps.keys.clear();
        maps.tenants.clear();
        maps.overrides.clear();
        maps.rules.clear();
        maps.plugins.clear();
        maps.reply_hooks.clear();
    }
}

fn get<K: std::hash::Hash + Eq + ?Sized, Q, T: Clone>(map: &HashMap<Q, Entry<T>>, key: &K) -> Option<T>
where
    Q: std::borrow::Borrow<K> + std::hash::Hash + Eq,
{
    map.get(key).filter(|e| e.at.elapsed() < TTL).map(|e| e.value.clone())
}

fn put<K: std::hash::Hash + Eq, T>(map: &mut HashMap<K, Entry<T>>, key: K, value: T) {
    if map.len() >= MAX_ENTRIES {
        map.clear();
    }
    map.insert(key, Entry { value, at: Instant::now() });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(key_id: i64, user_id: i64) -> AuthRow {
        AuthRow {
            key_id,
            user_id,
            status: "active".into(),
            package: "basic".into(),
            last_used_at: None,
            overrides: "{}".into(),
            scopes: "[]".into(),
            devices: None,
        }
    }

    #[test]
    fn a_read_that_raced_a_change_is_not_kept() {
        let cache = TenantCache::default();
        let before = cache.generation();
        cache.forget_tenant(9);
        cache.put_key(before, "h1", &auth(1, 7));
        assert!(cache.key("h1").is_none());
        cache.put_key(cache.generation(), "h1", &auth(1, 7));
        assert_eq!(cache.key("h1").map(|a| a.key_id), Some(1));
    }

    #[test]
    fn forgetting_a_tenant_drops_its_keys_only() {
        let cache = TenantCache::default();
        let g = cache.generation();
        cache.put_key(g, "a", &auth(1, 7));
        cache.put_key(g, "b", &auth(2, 8));
        cache.put_overrides(g, 7, "{}");
        cache.touched(1, 123);
        assert_eq!(cache.key("a").and_then(|a| a.last_used_at), Some(123));
        cache.forget_tenant(7);
        assert!(cache.key("a").is_none() && cache.overrides(7).is_none());
        assert!(cache.key("b").is_some());
        cache.forget_all();
        assert!(cache.key("b").is_none());
    }
}
