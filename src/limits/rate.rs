//! Request rate limiting: token buckets whose burst is one minute's allowance, one per tenant
//! (every key and the dashboard together) and one per API key.
//!
//! A request is judged in memory, never with a database round trip: the request path must
//! keep up with tens of thousands of requests a second.
//!
//! On SQLite the gateway is one process and its buckets are the whole truth.
//!
//! On PostgreSQL several processes may serve one database, and a bucket is shared by all of
//! them: `rate_buckets` holds each owner's bucket (level, time, allowance) and every process
//! keeps a copy in memory. A process spends from its copy; every [`SYNC_INTERVAL`] it takes
//! what it spent from the shared bucket and reads the level back, in one statement for all
//! owners it serves, and its copy becomes that level minus what it spent since. So each
//! process sees what the others took at most two intervals late. To keep N processes from
//! spending the same tokens in that time, between two publishes a process admits at most
//! ⌈level / N⌉ per owner, N being the live processes (`gateway_nodes`) and level the one it
//! last read (a full bucket for an owner it has not published yet). With one live process
//! that share is the whole bucket, and the limit behaves exactly as on SQLite.
//!
//! The bound: the processes together admit at most what one bucket would (`per_minute`, plus
//! the refill) plus what several of them spent of the same tokens before seeing each other's
//! publishes, at most (N − 1) × ⌈per_minute / N⌉: a process never holds more than one share
//! the others cannot see, and a share is at most ⌈per_minute / N⌉. The worst case is every
//! process spending its share of a full bucket at one instant; for traffic spread evenly the
//! overshoot is about (N − 1) / N × what the cluster admits in two sync intervals (1 s). A
//! model test checks the bound over random interleavings of requests and publishes. An
//! overshoot is owed, not forgiven: the shared bucket goes below zero (down to −per_minute)
//! and admits nothing until it has refilled past it, so over a few minutes the rate is the
//! allowance.
//!
//! A share spent before the next publish is refused with a one-second `Retry-After`, even when
//! the bucket had more: the price of not asking the database. While the database cannot be
//! reached, each process falls back to its own copy of the bucket (the limit then holds per
//! process, as it did before buckets were shared).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::db::shared_limits::{RateLevels, RateSpent};
use crate::db::{Db, Dialect};

/// How often a process publishes what it spent and reads the shared levels back.
pub const SYNC_INTERVAL: Duration = Duration::from_millis(500);
/// An owner without a request here for this long is forgotten (and no longer published).
const IDLE: Duration = Duration::from_secs(300);
/// Shared buckets nobody spent from for this long are deleted: they are full again.
const ROW_IDLE_MS: i64 = 180_000;
/// How often a process deletes idle shared buckets.
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// What a bucket belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Owner {
    Tenant(i64),
    Key(i64),
}

impl Owner {
    fn name(self) -> String {
        match self {
            Owner::Tenant(id) => format!("tenant:{id}"),
            Owner::Key(id) => format!("key:{id}"),
        }
    }

    fn parse(name: &str) -> Option<Owner> {
        let (kind, id) = name.split_once(':')?;
        let id = id.parse().ok()?;
        match kind {
            "tenant" => Some(Owner::Tenant(id)),
            "key" => Some(Owner::Key(id)),
            _ => None,
        }
    }
}

/// An owner's bucket in this process, with what the shared bucket does not know yet.
#[derive(Debug, Clone, Copy)]
struct Entry {
    bucket: Bucket,
    per_minute: f64,
    /// Taken here since the last publish that came back (`in_flight` included).
    unsynced: i64,
    /// Of `unsynced`, what the publish under way carries.
    in_flight: i64,
    /// Most `unsynced` may reach before the next publish comes back: this process's share.
    budget: i64,
    /// When a request was last admitted here.
    used: Instant,
}

impl Entry {
    fn fresh(per_minute: f64, now: Instant, processes: u32) -> Entry {
        Entry {
            bucket: Bucket { tokens: per_minute, updated: now },
            per_minute,
            unsynced: 0,
            in_flight: 0,
            budget: share(per_minute, processes),
            used: now,
        }
    }
}

/// What one of `processes` may spend of a bucket at `level` before it hears from the others.
fn share(level: f64, processes: u32) -> i64 {
    if processes <= 1 {
        i64::MAX
    } else {
        (level.max(0.0) / processes as f64).ceil() as i64
    }
}

/// Token buckets by tenant and by API key.
pub struct RateLimiter {
    entries: Mutex<HashMap<Owner, Entry>>,
    /// Whether the buckets are shared with other processes through the database.
    shared: bool,
    /// The live gateway processes at the last publish.
    processes: AtomicU32,
}

impl Default for RateLimiter {
    /// Buckets of this process alone.
    fn default() -> Self {
        RateLimiter { entries: Mutex::new(HashMap::new()), shared: false, processes: AtomicU32::new(1) }
    }
}

/// The pure bucket arithmetic: refill at `per_minute / 60` tokens a second up to `per_minute`,
/// then take one token. Returns the new level, or the wait until a token is there.
fn take(bucket: Bucket, now: Instant, per_minute: f64) -> Result<Bucket, Duration> {
    let rate = per_minute / 60.0;
    let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
    let tokens = (bucket.tokens + elapsed * rate).min(per_minute);
    if tokens >= 1.0 {
        Ok(Bucket { tokens: tokens - 1.0, updated: now })
    } else {
        Err(Duration::from_secs_f64((1.0 - tokens) / rate))
    }
}

impl RateLimiter {
    /// The limiter for a gateway on `db`: on PostgreSQL its buckets are shared with the other
    /// processes by a task on `tasks` that runs until `shutdown`; on SQLite it is
    /// [`RateLimiter::default`] and never touches the database.
    pub fn start(db: &Db, shutdown: &CancellationToken, tasks: &TaskTracker) -> Arc<RateLimiter> {
        let shared = db.dialect() == Dialect::Postgres;
        let limiter = Arc::new(RateLimiter { shared, ..RateLimiter::default() });
        if shared {
            let (me, db, shutdown) = (limiter.clone(), db.clone(), shutdown.clone());
            tasks.spawn(async move { me.sync(db, shutdown).await });
        }
        limiter
    }

    /// The live gateway processes the buckets are shared with, as last counted (1 on SQLite).
    pub fn processes(&self) -> u32 {
        self.processes.load(Ordering::Relaxed)
    }

    /// Takes one request from the tenant's bucket and, for an API request, from its key's
    /// (`key`; `None` for the dashboard), each holding `per_minute`. Both must have a token:
    /// a refused request takes none. `Err` carries the wait before the next one fits.
    pub fn check(&self, tenant: i64, key: Option<i64>, per_minute: Option<i64>) -> Result<(), Duration> {
        self.check_at(tenant, key, per_minute, Instant::now())
    }

    fn check_at(
        &self,
        tenant: i64,
        key: Option<i64>,
        per_minute: Option<i64>,
        now: Instant,
    ) -> Result<(), Duration> {
        let Some(per_minute) = per_minute else {
            return Ok(());
        };
        if per_minute <= 0 {
            return Err(Duration::from_secs(60));
        }
        let per_minute = per_minute as f64;
        let processes = self.processes();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() > 100_000 {
            // Forget buckets that have been full for a while, so memory stays bounded.
            entries.retain(|_, e| {
                e.unsynced > 0 || now.saturating_duration_since(e.bucket.updated) < Duration::from_secs(60)
            });
        }
        let owners = [Some(Owner::Tenant(tenant)), key.map(Owner::Key)];
        let mut taken = [None, None];
        for (slot, owner) in taken.iter_mut().zip(owners) {
            if let Some(owner) = owner {
                let entry =
                    entries.get(&owner).copied().unwrap_or_else(|| Entry::fresh(per_minute, now, processes));
                let bucket = take(entry.bucket, now, per_minute)?;
                if entry.unsynced >= entry.budget {
                    // This process's share is spent; the next publish brings a new one.
                    return Err(SYNC_INTERVAL);
                }
                let unsynced = entry.unsynced + i64::from(self.shared);
                *slot = Some((owner, Entry { bucket, per_minute, unsynced, used: now, ..entry }));
            }
        }
        for (owner, entry) in taken.into_iter().flatten() {
            entries.insert(owner, entry);
        }
        Ok(())
    }

    /// Publishes what this process spent, reads the shared levels back, and repeats every
    /// [`SYNC_INTERVAL`] until `shutdown`.
    async fn sync(&self, db: Db, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(SYNC_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        let mut pruned = Instant::now();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let spent = self.collect(Instant::now());
            let published = tokio::select! {
                _ = shutdown.cancelled() => return,
                published = db.rate_publish(&spent) => published,
            };
            match published {
                Ok(levels) => {
                    self.apply(&levels, Instant::now());
                    if failing {
                        tracing::info!("request rate buckets are shared again");
                        failing = false;
                    }
                }
                Err(e) => {
                    self.abandon();
                    if !failing {
                        tracing::warn!(error = %e, "cannot share the request rate buckets: each process limits alone");
                        failing = true;
                    }
                }
            }
            if pruned.elapsed() >= PRUNE_INTERVAL {
                pruned = Instant::now();
                if let Err(e) = db.rate_prune(ROW_IDLE_MS).await {
                    tracing::warn!(error = %e, "cannot delete idle request rate buckets");
                }
            }
        }
    }

    /// What this process spent per owner since its last publish (zero for owners it only
    /// reads), marked as under way.
    fn collect(&self, now: Instant) -> Vec<RateSpent> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|_, e| e.unsynced > 0 || now.saturating_duration_since(e.used) < IDLE);
        entries
            .iter_mut()
            .map(|(owner, e)| {
                e.in_flight = e.unsynced;
                RateSpent { owner: owner.name(), spent: e.unsynced, per_minute: e.per_minute }
            })
            .collect()
    }

    /// Takes in the shared levels after a publish: each copy becomes the shared level minus
    /// what was spent here since, with a new share.
    fn apply(&self, levels: &RateLevels, now: Instant) {
        let processes = u32::try_from(levels.processes).unwrap_or(u32::MAX).max(1);
        self.processes.store(processes, Ordering::Relaxed);
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        for (name, level) in &levels.levels {
            let Some(e) = Owner::parse(name).and_then(|owner| entries.get_mut(&owner)) else { continue };
            e.unsynced -= e.in_flight;
            e.in_flight = 0;
            let tokens = level - e.unsynced as f64;
            e.bucket = Bucket { tokens, updated: now };
            // What was spent here after the publish was collected counts against the new
            // share: no process ever holds more than one share the others cannot see.
            e.budget = share(tokens, processes);
        }
    }

    /// After a failed publish: what was under way is published next time, and until a publish
    /// succeeds each copy is limited by itself alone.
    fn abandon(&self) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        for e in entries.values_mut() {
            e.in_flight = 0;
            e.budget = i64::MAX;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_burst_is_one_minute_of_allowance_then_requests_are_refused() {
        let limiter = RateLimiter::default();
        for _ in 0..5 {
            assert!(limiter.check(1, Some(10), Some(5)).is_ok());
        }
        let wait = limiter.check(1, Some(10), Some(5)).unwrap_err();
        assert!(wait > Duration::from_secs(10) && wait <= Duration::from_secs(12), "{wait:?}");
        // Another tenant has its own buckets.
        assert!(limiter.check(2, Some(20), Some(5)).is_ok());
        assert!(limiter.check(1, Some(10), None).is_ok());
    }

    #[test]
    fn the_keys_of_one_tenant_and_its_dashboard_share_the_tenant_bucket() {
        let limiter = RateLimiter::default();
        for i in 0..6 {
            let key = [Some(10), Some(11), None][i % 3];
            assert!(limiter.check(1, key, Some(6)).is_ok(), "request {i}");
        }
        assert!(limiter.check(1, Some(12), Some(6)).is_err(), "a new key of the same tenant");
        assert!(limiter.check(1, None, Some(6)).is_err(), "the dashboard");
    }

    #[test]
    fn a_refused_request_takes_no_token_from_the_other_bucket() {
        let limiter = RateLimiter::default();
        for _ in 0..3 {
            assert!(limiter.check(1, Some(10), Some(3)).is_ok());
        }
        // Key 10 is empty; tenant 2's bucket is full and must stay so when the key refuses.
        assert!(limiter.check(2, Some(10), Some(3)).is_err());
        for i in 0..3 {
            assert!(limiter.check(2, Some(20 + i), Some(3)).is_ok(), "request {i} of tenant 2");
        }
    }

    #[test]
    fn a_limiter_of_its_own_publishes_nothing() {
        let limiter = RateLimiter::default();
        assert!(limiter.check(1, Some(10), Some(5)).is_ok());
        assert!(limiter.collect(Instant::now()).iter().all(|s| s.spent == 0));
    }

    fn shared(processes: u32) -> RateLimiter {
        RateLimiter { shared: true, processes: AtomicU32::new(processes), ..RateLimiter::default() }
    }

    /// The shared buckets as `rate_publish` keeps them, with time standing still.
    #[derive(Default)]
    struct Table {
        tokens: HashMap<String, f64>,
    }

    impl Table {
        fn publish(&mut self, spent: &[RateSpent], processes: i64) -> RateLevels {
            let levels = spent
                .iter()
                .map(|s| {
                    let tokens = self.tokens.entry(s.owner.clone()).or_insert(s.per_minute);
                    *tokens = (*tokens - s.spent as f64).max(-s.per_minute);
                    (s.owner.clone(), *tokens)
                })
                .collect();
            RateLevels { levels, processes }
        }
    }

    #[test]
    fn a_second_process_sees_what_the_first_spent_after_a_publish() {
        let now = Instant::now();
        let (a, b) = (shared(2), shared(2));
        let mut table = Table::default();
        let sync = |p: &RateLimiter, table: &mut Table| {
            let levels = table.publish(&p.collect(now), 2);
            p.apply(&levels, now);
        };
        for i in 0..5 {
            assert!(a.check_at(1, None, Some(10), now).is_ok(), "request {i} on a");
        }
        assert_eq!(a.check_at(1, None, Some(10), now), Err(SYNC_INTERVAL), "a's half is spent");
        sync(&a, &mut table);
        // b has not published yet: it may spend half a full bucket.
        assert!(b.check_at(1, None, Some(10), now).is_ok());
        sync(&b, &mut table);
        sync(&a, &mut table);
        // Four tokens are left for both: two each until they hear from each other.
        for p in [&a, &b] {
            assert!(p.check_at(1, None, Some(10), now).is_ok());
            assert!(p.check_at(1, None, Some(10), now).is_ok());
            assert_eq!(p.check_at(1, None, Some(10), now), Err(SYNC_INTERVAL));
        }
        for _ in 0..2 {
            sync(&a, &mut table);
            sync(&b, &mut table);
        }
        assert_eq!(table.tokens["tenant:1"], 0.0);
        for p in [&a, &b] {
            let wait = p.check_at(1, None, Some(10), now).unwrap_err();
            assert!(wait > Duration::from_secs(5), "the shared bucket is empty: {wait:?}");
        }
    }

    #[test]
    fn a_failed_publish_leaves_each_process_its_own_bucket() {
        let now = Instant::now();
        let a = shared(2);
        for _ in 0..5 {
            assert!(a.check_at(1, None, Some(10), now).is_ok());
        }
        a.collect(now);
        a.abandon();
        for _ in 0..5 {
            assert!(a.check_at(1, None, Some(10), now).is_ok());
        }
        assert!(a.check_at(1, None, Some(10), now).unwrap_err() > Duration::from_secs(1));
        let spent = a.collect(now);
        assert_eq!(spent[0].spent, 10, "what was under way is published again");
    }

    /// One step of a cluster run: a request at a process, a process starting a publish, or a
    /// started publish reaching the table and coming back.
    #[derive(Debug, Clone)]
    enum Step {
        Request(usize),
        Start(usize),
        Finish(usize),
    }

    fn step(processes: usize) -> impl Strategy<Value = Step> {
        prop_oneof![
            6 => (0..processes).prop_map(Step::Request),
            1 => (0..processes).prop_map(Step::Start),
            1 => (0..processes).prop_map(Step::Finish),
        ]
    }

    proptest! {
        #[test]
        fn a_bucket_never_grants_more_than_burst_plus_refill(per_minute in 1u32..10_000, secs in 0u32..600) {
            let start = Instant::now();
            let mut b = Bucket { tokens: per_minute as f64, updated: start };
            let end = start + Duration::from_secs(secs as u64);
            let mut granted = 0u64;
            // Ask as often as possible at the end: the grants are bounded by the bucket size.
            while let Ok(next) = take(b, end, per_minute as f64) {
                b = next;
                granted += 1;
                prop_assert!(granted <= per_minute as u64);
            }
        }

        /// However requests and publishes interleave (time standing still, so nothing
        /// refills), processes sharing a bucket admit at most the bucket plus the stated bound.
        #[test]
        fn processes_sharing_a_bucket_overshoot_at_most_the_stated_bound(
            n in 2usize..5,
            per_minute in 1i64..200,
            steps in proptest::collection::vec(step(4), 0..600),
        ) {
            let now = Instant::now();
            let processes: Vec<RateLimiter> = (0..n).map(|_| shared(n as u32)).collect();
            let mut under_way: Vec<Option<Vec<RateSpent>>> = vec![None; n];
            let mut table = Table::default();
            let mut admitted = 0i64;
            for s in steps {
                match s {
                    Step::Request(p) if p < n => {
                        admitted += i64::from(processes[p].check_at(1, None, Some(per_minute), now).is_ok());
                    }
                    Step::Start(p) if p < n && under_way[p].is_none() => {
                        under_way[p] = Some(processes[p].collect(now));
                    }
                    Step::Finish(p) if p < n => {
                        if let Some(spent) = under_way[p].take() {
                            let levels = table.publish(&spent, n as i64);
                            processes[p].apply(&levels, now);
                        }
                    }
                    _ => {}
                }
            }
            let bound = (n as i64 - 1) * ((per_minute + n as i64 - 1) / n as i64);
            prop_assert!(admitted <= per_minute + bound, "{admitted} admitted of {per_minute}, bound {bound}");
        }
    }
}
