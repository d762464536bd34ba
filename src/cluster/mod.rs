//! This process among the gateway processes that share one database.
//!
//! Each process registers a node with a new random id and renews it on the database's clock
//! (`db/cluster.rs`); a device's WhatsApp session is opened only by the node holding the
//! device's lease, and the lease's `(node, epoch)` is the [`Fence`] that the holder's writes
//! are checked against, so a process that stalled past its lease cannot write over the new
//! holder's work. [`Bus`] carries the wake-ups between processes.
//!
//! SQLite serves one process: [`SingleProcessLock`] keeps a second `serve` off the same file,
//! and the node and lease rows work the same way there (one node holding every device).

pub mod bus;

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

pub use bus::{Bus, Signal};

use crate::config::ClusterConfig;
use crate::db::{sqlite_file, Db, DbResult, Dialect};

/// The right to act for a device: the node that took its lease and the lease's epoch, which
/// grows on every change of holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub node: Arc<str>,
    pub epoch: i64,
}

/// The lease timing, validated at start (renew < deadline < ttl).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub ttl: Duration,
    pub renew: Duration,
    pub deadline: Duration,
    pub scan: Duration,
    pub handover_batch: usize,
}

impl From<&ClusterConfig> for Timing {
    fn from(c: &ClusterConfig) -> Self {
        Timing {
            ttl: Duration::from_millis(c.node_ttl_ms),
            renew: Duration::from_millis(c.renew_interval_ms),
            deadline: Duration::from_millis(c.renew_deadline_ms),
            scan: Duration::from_millis(c.scan_interval_ms),
            handover_batch: c.handover_batch,
        }
    }
}

/// What this process did as a node since it started, for the operator's cluster view.
#[derive(Debug, Default)]
pub struct Stats {
    /// Device leases taken (at start, from a dead or stopped process, for pairing).
    pub leases_taken: AtomicU64,
    /// Device leases given up (handed over, logged out, stopping).
    pub leases_given_up: AtomicU64,
    /// Writes refused because this process no longer held the device (status, queue claims
    /// and records): each is a stale write the fence kept out.
    pub fenced_writes: AtomicU64,
    /// Messages sent again after their device changed process while they were in flight
    /// (under the same WhatsApp id).
    pub resent_after_takeover: AtomicU64,
    /// Times this process stopped its sessions because it could not renew in time.
    pub stopped_unrenewed: AtomicU64,
    /// Times this process was declared dead and joined again under a new id.
    pub rejoined: AtomicU64,
    /// Session commands this process ran for others, and asked others to run.
    pub commands_run: AtomicU64,
    pub commands_sent: AtomicU64,
}

impl Stats {
    /// Adds one to a counter.
    pub fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// This process as a node of the cluster. Its id changes when it was declared dead and
/// registers again. Cheap to clone.
#[derive(Clone)]
pub struct Node {
    db: Db,
    name: Arc<str>,
    /// Whether `name` was configured (then a restart takes over its previous run's devices).
    named: bool,
    timing: Timing,
    id: Arc<RwLock<Arc<str>>>,
    bus: Bus,
    /// Renewals skipped on purpose: a process cut off from the database, for tests.
    cut_off: Arc<AtomicBool>,
    /// Whether the node registered once.
    joined: Arc<AtomicBool>,
    stats: Arc<Stats>,
    /// When the last good renewal (or the registration) began, on this process's monotonic
    /// clock.
    last_good: Arc<std::sync::Mutex<tokio::time::Instant>>,
}

impl Node {
    pub fn new(db: Db, config: &ClusterConfig) -> Node {
        let named = !config.node_name.trim().is_empty();
        let name = if named { config.node_name.trim().to_string() } else { default_name() };
        let bus = Bus::new(&db);
        Node {
            db,
            name: name.into(),
            named,
            timing: Timing::from(config),
            id: Arc::new(RwLock::new(new_id())),
            bus,
            cut_off: Arc::new(AtomicBool::new(false)),
            joined: Arc::new(AtomicBool::new(false)),
            stats: Arc::default(),
            last_good: Arc::new(std::sync::Mutex::new(tokio::time::Instant::now())),
        }
    }

    /// The node id this process acts under now.
    pub fn id(&self) -> Arc<str> {
        self.id.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn timing(&self) -> Timing {
        self.timing
    }

    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// What this process did as a node since it started.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Registers this process. On SQLite (one process, held by the
    /// [`SingleProcessLock`]) the rows of earlier runs are dropped, so their devices are free at
    /// once; a configured name does the same for its own earlier runs on PostgreSQL.
    pub async fn register(&self) -> DbResult<Arc<str>> {
        // The first registration uses the id the node was made with; a later one (after the
        // node was declared dead) a new one, so its old leases stay fenced off.
        let id = if self.joined.swap(true, Ordering::Relaxed) { new_id() } else { self.id() };
        if self.db.dialect() == Dialect::Sqlite {
            self.db.cluster_forget_all().await?;
        } else if self.named {
            self.db.cluster_expire_named(&self.name).await?;
        }
        let ttl = self.timing.ttl.as_millis() as i64;
        let began = tokio::time::Instant::now();
        self.db.cluster_register(&id, &self.name, env!("CARGO_PKG_VERSION"), ttl).await?;
        self.renewed(began);
        *self.id.write().unwrap_or_else(|e| e.into_inner()) = id.clone();
        Ok(id)
    }

    /// Makes the node behave as if it could not reach the database to renew (`true`) or
    /// ends that (`false`). For tests of what a process cut off from the others does.
    #[doc(hidden)]
    pub fn cut_off(&self, cut: bool) {
        self.cut_off.store(cut, Ordering::Relaxed);
    }

    /// Records a good renewal (or registration) that began at `began`.
    pub fn renewed(&self, began: tokio::time::Instant) {
        *self.last_good.lock().unwrap_or_else(|e| e.into_inner()) = began;
    }

    /// Whether this process may still act for its devices: its last good renewal began less
    /// than `renew_deadline` ago. Checked right before a message goes on the wire, so a
    /// process that was frozen (or cut off) past its deadline sends nothing when it wakes up,
    /// even before its balancer has stopped its sessions.
    pub fn within_deadline(&self) -> bool {
        self.last_good.lock().unwrap_or_else(|e| e.into_inner()).elapsed() < self.timing.deadline
    }

    /// Fails as a lost database would while [`Node::cut_off`] is on.
    fn reachable(&self) -> DbResult<()> {
        if self.cut_off.load(Ordering::Relaxed) {
            return Err(crate::db::DbError::Sqlx(sqlx::Error::PoolTimedOut));
        }
        Ok(())
    }

    /// Extends the node's life; false when it was declared dead (see
    /// [`Db::cluster_renew`]).
    pub async fn renew(&self) -> DbResult<bool> {
        self.reachable()?;
        self.db.cluster_renew(&self.id(), self.timing.ttl.as_millis() as i64).await
    }

    /// Takes the device's lease for this node unless a live node holds it.
    pub async fn acquire(&self, device_id: i64) -> DbResult<Option<Fence>> {
        self.reachable()?;
        let node = self.id();
        let fence = self.db.cluster_acquire(device_id, &node).await?.map(|epoch| Fence { node, epoch });
        if fence.is_some() {
            Stats::count(&self.stats.leases_taken);
        }
        Ok(fence)
    }

    /// Gives the device's lease up (if `fence` still holds it) and tells the others.
    pub async fn release(&self, device_id: i64, fence: &Fence) {
        let released = match self.reachable() {
            Ok(()) => self.db.cluster_release(device_id, &fence.node, fence.epoch).await,
            Err(e) => Err(e),
        };
        match released {
            Ok(true) => {
                Stats::count(&self.stats.leases_given_up);
                self.bus.publish(Signal::LeaseFree).await
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(device_id, error = %e, "could not give a device lease up; it frees when this process's lease expires")
            }
        }
    }

    /// Whether `fence` still holds the device (false also when the database cannot say).
    pub async fn holds(&self, device_id: i64, fence: &Fence) -> bool {
        self.reachable().is_ok()
            && self.db.cluster_holds(device_id, &fence.node, fence.epoch).await.unwrap_or(false)
    }
}

/// A random node id: 32 hex digits.
fn new_id() -> Arc<str> {
    let bytes: [u8; 16] = rand::random();
    hex::encode(bytes).into()
}

/// `host:pid`.
fn default_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "gateway".into());
    format!("{host}:{}", std::process::id())
}

/// An exclusive lock on `<database file>.lock`, held while a gateway serves a SQLite database:
/// two processes on one SQLite file would both open every device.
pub struct SingleProcessLock {
    _file: File,
}

impl SingleProcessLock {
    /// Takes the lock for a `sqlite:` URL naming a file; `Ok(None)` for PostgreSQL or an
    /// in-memory database. Fails with a message naming the file when another process holds it.
    pub fn take(url: &str) -> anyhow::Result<Option<SingleProcessLock>> {
        let Some(path) = sqlite_file(url) else { return Ok(None) };
        let mut lock_path = path.clone().into_os_string();
        lock_path.push(".lock");
        let lock_path = PathBuf::from(lock_path);
        if let Some(parent) = lock_path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", parent.display()))?;
        }
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", lock_path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(SingleProcessLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
                "another gateway process already serves the SQLite database {}: only one process may \
                 use a SQLite database (run several processes on PostgreSQL)",
                path.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                anyhow::bail!("cannot lock {}: {e}", lock_path.display())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{sqlite_file, SingleProcessLock};

    #[test]
    fn only_sqlite_files_are_locked() {
        assert_eq!(sqlite_file("sqlite:data/g.db?mode=rwc").unwrap().to_str(), Some("data/g.db"));
        assert_eq!(sqlite_file("sqlite:///tmp/g.db").unwrap().to_str(), Some("/tmp/g.db"));
        assert!(sqlite_file("sqlite::memory:").is_none());
        assert!(sqlite_file("postgres://u@h/db").is_none());
    }

    #[tokio::test]
    async fn a_node_past_its_deadline_may_not_act() {
        let (_dir, db) = crate::db::temp_sqlite().await;
        let config = crate::config::Config::from_toml("").unwrap().cluster;
        let node = super::Node::new(db, &config);
        node.register().await.unwrap();
        assert!(node.within_deadline(), "just registered");
        let deadline = node.timing().deadline;
        node.renewed(tokio::time::Instant::now() - deadline - std::time::Duration::from_millis(1));
        assert!(!node.within_deadline(), "the last good renewal began longer ago than the deadline");
        node.renewed(tokio::time::Instant::now());
        assert!(node.within_deadline());
    }

    #[test]
    fn a_second_lock_on_one_file_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("data").join("g.db").display());
        let first = SingleProcessLock::take(&url).unwrap().expect("a file is locked");
        let second = SingleProcessLock::take(&url).err().expect("the file is locked already").to_string();
        assert!(second.contains("another gateway process"), "{second}");
        drop(first);
        assert!(SingleProcessLock::take(&url).unwrap().is_some());
    }
}
