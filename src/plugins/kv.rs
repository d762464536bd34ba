//! The key-value store plugins import (`wa-gateway:plugin/kv`), scoped to (tenant, plugin).
//!
//! A run gets a [`KvSession`]: reads go to the database (or the run's own earlier writes),
//! writes are buffered in the session and applied in one transaction only when the run
//! succeeds. The host functions are synchronous (the plugin runs on a blocking thread), so
//! the session waits for the database with `Handle::block_on` on the read pool, bounded by
//! what is left of the run's wall-clock timeout.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::config::PluginsConfig;
use crate::db::{Db, DbResult};

/// Which store a run sees.
#[derive(Clone)]
pub enum KvAccess {
    /// The plugin's store: reads it, and its writes are applied when the run succeeds.
    Store { db: Db, tenant: i64, plugin_id: i64 },
    /// Reads the plugin's store and discards writes (a dry run). Reads see the run's own
    /// writes.
    ReadOnly { db: Db, tenant: i64, plugin_id: i64 },
    /// No store: the run starts from an empty store and its writes are discarded.
    None,
}

impl std::fmt::Debug for KvAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KvAccess::Store { tenant, plugin_id, .. } => {
                write!(f, "Store {{ tenant: {tenant}, plugin_id: {plugin_id} }}")
            }
            KvAccess::ReadOnly { tenant, plugin_id, .. } => {
                write!(f, "ReadOnly {{ tenant: {tenant}, plugin_id: {plugin_id} }}")
            }
            KvAccess::None => f.write_str("None"),
        }
    }
}

/// The operator's limits on one plugin's store (`[plugins] kv_*`).
#[derive(Debug, Clone, Copy)]
pub struct KvLimits {
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
    pub quota_bytes: usize,
}

impl KvLimits {
    pub fn from_config(cfg: &PluginsConfig) -> KvLimits {
        KvLimits {
            max_key_bytes: cfg.kv_max_key_bytes,
            max_value_bytes: cfg.kv_max_value_bytes,
            quota_bytes: cfg.kv_quota_bytes,
        }
    }
}

/// Why a store operation was refused (the WIT `kv-error`, plus running out of time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvError {
    InvalidKey(String),
    QuotaExceeded(String),
    Unavailable(String),
    /// The database did not answer before the run's wall-clock timeout.
    TimedOut,
}

/// Where a session reads from.
struct Source {
    db: Db,
    tenant: i64,
    plugin_id: i64,
    handle: tokio::runtime::Handle,
}

/// One run's view of the store.
pub struct KvSession {
    source: Option<Source>,
    /// Apply the writes when the run succeeds.
    persist: bool,
    limits: KvLimits,
    /// Buffered writes: `None` deletes the key.
    writes: BTreeMap<String, Option<Vec<u8>>>,
    /// Bytes of the keys the buffered deletes name.
    deleted_key_bytes: usize,
    /// Stored size (key plus value bytes, 0 when absent) of keys looked at.
    stored_sizes: HashMap<String, usize>,
    /// The plugin's total after the buffered writes; read from the database on first need.
    total: Option<usize>,
}

impl KvSession {
    /// A session for `access`. `handle` runs the database queries; it is needed only when
    /// `access` names a database.
    pub fn new(access: KvAccess, limits: KvLimits, handle: Option<tokio::runtime::Handle>) -> KvSession {
        let (source, persist) = match (access, handle) {
            (KvAccess::Store { db, tenant, plugin_id }, Some(handle)) => {
                (Some(Source { db, tenant, plugin_id, handle }), true)
            }
            (KvAccess::ReadOnly { db, tenant, plugin_id }, Some(handle)) => {
                (Some(Source { db, tenant, plugin_id, handle }), false)
            }
            _ => (None, false),
        };
        KvSession {
            source,
            persist,
            limits,
            writes: BTreeMap::new(),
            deleted_key_bytes: 0,
            stored_sizes: HashMap::new(),
            total: None,
        }
    }

    fn check_key(&self, key: &str) -> Result<(), KvError> {
        if key.is_empty() {
            return Err(KvError::InvalidKey("the key is empty".into()));
        }
        if key.contains('\0') {
            return Err(KvError::InvalidKey("the key contains the NUL character (U+0000)".into()));
        }
        if key.len() > self.limits.max_key_bytes {
            return Err(KvError::InvalidKey(format!(
                "the key is {} bytes, the limit is {}",
                key.len(),
                self.limits.max_key_bytes
            )));
        }
        Ok(())
    }

    /// Runs a database query, giving up after `budget`.
    fn wait<T>(
        &self,
        budget: Duration,
        query: impl FnOnce(&Db, i64, i64) -> futures::future::BoxFuture<'_, DbResult<T>>,
    ) -> Result<T, KvError> {
        let Some(src) = &self.source else {
            return Err(KvError::Unavailable("no store".into()));
        };
        if budget.is_zero() {
            return Err(KvError::TimedOut);
        }
        let future = query(&src.db, src.tenant, src.plugin_id);
        match src.handle.block_on(async { tokio::time::timeout(budget, future).await }) {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "plugin key-value store unavailable");
                Err(KvError::Unavailable("the store could not be read".into()))
            }
            Err(_) => Err(KvError::TimedOut),
        }
    }

    /// The value under `key`: the run's own write if any, else the stored one.
    pub fn get(&mut self, key: &str, budget: Duration) -> Result<Option<Vec<u8>>, KvError> {
        self.check_key(key)?;
        if let Some(value) = self.writes.get(key) {
            return Ok(value.clone());
        }
        if self.source.is_none() {
            return Ok(None);
        }
        let owned = key.to_string();
        let value = self.wait(budget, |db, tenant, plugin| {
            Box::pin(async move { db.plugin_kv_get(tenant, plugin, &owned).await })
        })?;
        let size = value.as_ref().map_or(0, |v| key.len() + v.len());
        self.stored_sizes.insert(key.to_string(), size);
        Ok(value)
    }

    /// Buffers `key = value`, refused when it would take the plugin over its quota.
    pub fn set(&mut self, key: String, value: Vec<u8>, budget: Duration) -> Result<(), KvError> {
        self.check_key(&key)?;
        if value.len() > self.limits.max_value_bytes {
            return Err(KvError::QuotaExceeded(format!(
                "the value is {} bytes, the limit is {}",
                value.len(),
                self.limits.max_value_bytes
            )));
        }
        let size = key.len() + value.len();
        let total = self.total_without(&key, budget)?;
        if total + size > self.limits.quota_bytes {
            return Err(KvError::QuotaExceeded(format!(
                "the store would hold {} bytes, the quota is {}",
                total + size,
                self.limits.quota_bytes
            )));
        }
        self.buffer(key, Some(value))?;
        self.total = Some(total + size);
        Ok(())
    }

    /// Buffers the removal of `key`.
    pub fn delete(&mut self, key: String, budget: Duration) -> Result<(), KvError> {
        self.check_key(&key)?;
        let total = self.total_without(&key, budget)?;
        self.buffer(key, None)?;
        self.total = Some(total);
        Ok(())
    }

    /// Records a write. Buffered values count against the quota already (they are the
    /// plugin's current values); deletes are bounded here, by the quota too, so a run cannot
    /// make the host hold more than that however it mixes sets and deletes.
    fn buffer(&mut self, key: String, value: Option<Vec<u8>>) -> Result<(), KvError> {
        let was_delete = matches!(self.writes.get(&key), Some(None));
        let mut deleted = self.deleted_key_bytes;
        if was_delete {
            deleted -= key.len();
        }
        if value.is_none() {
            deleted += key.len();
        }
        if deleted > self.limits.quota_bytes {
            return Err(KvError::QuotaExceeded(format!(
                "this run deletes {deleted} bytes of keys, more than the quota of {}",
                self.limits.quota_bytes
            )));
        }
        self.deleted_key_bytes = deleted;
        self.writes.insert(key, value);
        Ok(())
    }

    /// The plugin's total with `key` taken out (as the run currently sees it).
    fn total_without(&mut self, key: &str, budget: Duration) -> Result<usize, KvError> {
        let total = match self.total {
            Some(total) => total,
            None if self.source.is_none() => 0,
            None => {
                let (_, bytes) = self.wait(budget, |db, tenant, plugin| {
                    Box::pin(async move { db.plugin_kv_usage(tenant, plugin).await })
                })?;
                bytes.max(0) as usize
            }
        };
        self.total = Some(total);
        let current = match self.writes.get(key) {
            Some(value) => value.as_ref().map_or(0, |v| key.len() + v.len()),
            None => self.stored_size(key, budget)?,
        };
        Ok(total.saturating_sub(current))
    }

    /// The stored size of `key` (0 when absent).
    fn stored_size(&mut self, key: &str, budget: Duration) -> Result<usize, KvError> {
        if let Some(size) = self.stored_sizes.get(key) {
            return Ok(*size);
        }
        if self.source.is_none() {
            return Ok(0);
        }
        let owned = key.to_string();
        let size = self.wait(budget, |db, tenant, plugin| {
            Box::pin(async move { db.plugin_kv_entry_size(tenant, plugin, &owned).await })
        })?;
        let size = size.unwrap_or(0).max(0) as usize;
        self.stored_sizes.insert(key.to_string(), size);
        Ok(size)
    }

    /// The writes to apply now that the run succeeded; `None` when there is nothing to apply
    /// (no writes, or a read-only or storeless run).
    pub fn into_pending(self) -> Option<PendingWrites> {
        let src = self.source.filter(|_| self.persist)?;
        if self.writes.is_empty() {
            return None;
        }
        Some(PendingWrites {
            db: src.db,
            tenant: src.tenant,
            plugin_id: src.plugin_id,
            writes: self.writes.into_iter().collect(),
        })
    }
}

/// A successful run's writes, to apply in one transaction.
pub struct PendingWrites {
    db: Db,
    tenant: i64,
    plugin_id: i64,
    writes: Vec<(String, Option<Vec<u8>>)>,
}

impl PendingWrites {
    pub async fn apply(self) -> DbResult<()> {
        self.db.apply_plugin_kv(self.tenant, self.plugin_id, &self.writes).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(quota: usize) -> KvSession {
        let limits = KvLimits { max_key_bytes: 8, max_value_bytes: 16, quota_bytes: quota };
        KvSession::new(KvAccess::None, limits, None)
    }

    const T: Duration = Duration::from_secs(1);

    #[test]
    fn reads_see_the_runs_own_writes() {
        let mut kv = session(100);
        assert_eq!(kv.get("a", T), Ok(None));
        kv.set("a".into(), b"1".to_vec(), T).unwrap();
        assert_eq!(kv.get("a", T), Ok(Some(b"1".to_vec())));
        kv.delete("a".into(), T).unwrap();
        assert_eq!(kv.get("a", T), Ok(None));
        // A storeless session has nothing to apply.
        assert!(kv.into_pending().is_none());
    }

    #[test]
    fn empty_and_long_keys_are_invalid() {
        let mut kv = session(100);
        assert!(matches!(kv.get("", T), Err(KvError::InvalidKey(_))));
        assert!(matches!(kv.set("123456789".into(), vec![], T), Err(KvError::InvalidKey(_))));
        assert!(matches!(kv.delete("".into(), T), Err(KvError::InvalidKey(_))));
        assert!(kv.set("12345678".into(), vec![], T).is_ok());
    }

    #[test]
    fn values_and_totals_over_the_quota_are_refused() {
        let mut kv = session(20);
        assert!(matches!(kv.set("a".into(), vec![0; 17], T), Err(KvError::QuotaExceeded(_))));
        // 1 + 16 = 17 bytes: fits.
        kv.set("a".into(), vec![0; 16], T).unwrap();
        // Another 1 + 3 would make 21.
        assert!(matches!(kv.set("b".into(), vec![0; 3], T), Err(KvError::QuotaExceeded(_))));
        kv.set("b".into(), vec![0; 2], T).unwrap();
        // Replacing a value counts the new size only.
        kv.set("a".into(), vec![0; 10], T).unwrap();
        kv.set("b".into(), vec![0; 8], T).unwrap();
        // Deleting frees room.
        kv.delete("a".into(), T).unwrap();
        kv.set("c".into(), vec![0; 10], T).unwrap();
        assert_eq!(kv.total, Some(9 + 11));
    }

    #[test]
    fn deletes_are_bounded_by_the_quota_too() {
        let mut kv = session(20);
        for key in ["k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9"] {
            kv.delete(key.into(), T).unwrap();
        }
        // 2 * 9 + 3 = 21 bytes of deleted keys.
        assert!(matches!(kv.delete("k10".into(), T), Err(KvError::QuotaExceeded(_))));
        // Deleting a key twice counts it once; setting a deleted key takes it off the list.
        kv.delete("k1".into(), T).unwrap();
        kv.set("k1".into(), vec![1], T).unwrap();
        kv.delete("k10".into(), T).unwrap();
    }
}
