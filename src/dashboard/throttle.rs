//! The login throttle: slows password guessing without letting a stranger lock anyone out.
//!
//! Failed logins are counted over a window of [`WINDOW`] from the first failure:
//!
//! - per (account, client address): after [`PAIR_FAILURES`] that address may not try that
//!   account again until the window ends;
//! - per client address, any account: after [`ADDRESS_FAILURES`] the address may not log in
//!   at all until the window ends (one address spraying many accounts);
//! - per account, any address: from [`ACCOUNT_FAILURES`] failures on, every attempt on the
//!   account (right or wrong, so the wait tells nothing) first waits 1 s, doubling with each
//!   further failure up to [`MAX_DELAY`]. Never a refusal: whoever has the password still
//!   gets in, however many strangers guess at it from elsewhere.
//!
//! The client address is the one `[server] trusted_proxies` vouch for, so users behind one
//! reverse proxy are not counted as one.
//!
//! The counts live in the database (`login_failures`), so every gateway process sees every
//! failure. An attempt is counted as a failure when it is admitted, in the same statement that
//! reads the counts, and taken back when it is refused or succeeds: concurrent guesses, on one
//! process or several, each see the ones before them, so the limits are exact. An attempt that
//! ends without a verdict (a database error on the way) stays counted. When the counts cannot
//! be read, attempts are refused for a short while rather than let through uncounted.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::db::{now_ms, Db};
use crate::tenants::hash_key;

/// Failures of one account from one address before that pair is refused.
pub const PAIR_FAILURES: u32 = 5;
/// Failures from one address, any account, before the address is refused.
pub const ADDRESS_FAILURES: u32 = 20;
/// Failures of one account, any address, from which on every attempt waits.
pub const ACCOUNT_FAILURES: u32 = 5;
/// The longest wait before an attempt on a much-guessed account.
pub const MAX_DELAY: Duration = Duration::from_secs(8);
/// How long failures count.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// How long attempts are refused when the counts cannot be read.
const UNCOUNTED_RETRY: Duration = Duration::from_secs(30);
/// Every this many attempts, counts whose window has passed are deleted.
const PRUNE_EVERY: u32 = 64;

/// What to do with a login attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Check the password after waiting this long (zero: at once).
    Try { delay: Duration },
    /// Refuse without checking; the refusal ends after this long.
    Refuse { retry_after: Duration },
}

/// Failures inside the window, and when the window began (Unix milliseconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Count {
    pub failures: u32,
    pub since: i64,
}

impl Count {
    /// The failures still inside the window at `now`.
    fn live(self, now: i64) -> u32 {
        if now.saturating_sub(self.since) < window_ms() {
            self.failures
        } else {
            0
        }
    }

    fn ends(self, now: i64) -> Duration {
        Duration::from_millis(window_ms().saturating_sub(now.saturating_sub(self.since)).max(0) as u64)
    }
}

/// The failures an attempt is judged on: those before it, per pair, address and account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Before {
    pub pair: Count,
    pub address: Count,
    pub account: Count,
}

/// The decision on an attempt, from the failures before it: the pure rule.
pub fn verdict(before: &Before, now: i64) -> Verdict {
    for (count, max) in [(before.pair, PAIR_FAILURES), (before.address, ADDRESS_FAILURES)] {
        if count.live(now) >= max {
            return Verdict::Refuse { retry_after: count.ends(now) };
        }
    }
    Verdict::Try { delay: delay_for(before.account.live(now)) }
}

/// The wait before an attempt on an account with `failures` recent failures.
fn delay_for(failures: u32) -> Duration {
    if failures < ACCOUNT_FAILURES {
        return Duration::ZERO;
    }
    let doublings = (failures - ACCOUNT_FAILURES).min(16);
    Duration::from_secs(1u64 << doublings).min(MAX_DELAY)
}

fn window_ms() -> i64 {
    WINDOW.as_millis() as i64
}

/// The stored keys of an attempt: pair, address, account. Hashed, with a prefix each, so no
/// two kinds collide and what was typed as the account is not stored.
fn keys(account: &str, ip: &str) -> [String; 3] {
    [
        hash_key(&format!("pair\n{account}\n{ip}")),
        hash_key(&format!("address\n{ip}")),
        hash_key(&format!("account\n{account}")),
    ]
}

/// Failed logins by pair, address and account, counted in the database.
pub struct Throttle {
    db: Db,
    attempts: AtomicU32,
}

impl Throttle {
    pub fn new(db: Db) -> Throttle {
        Throttle { db, attempts: AtomicU32::new(0) }
    }

    /// Counts an attempt on `account` (an email, or `admin`) from `ip` and waits as the
    /// failures before it say; `Err(retry_after)` when the attempt is refused (then it is not
    /// counted). The attempt stays counted as a failure unless [`Throttle::succeeded`] follows.
    pub async fn admit(&self, account: &str, ip: &str) -> Result<(), Duration> {
        match self.attempt_at(account, ip, now_ms()).await {
            Verdict::Refuse { retry_after } => Err(retry_after),
            Verdict::Try { delay } => {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                Ok(())
            }
        }
    }

    /// After a wrong password: nothing left to do, the attempt was counted when admitted.
    pub fn failed(&self, _account: &str, _ip: &str) {}

    /// After a successful login: the pair's failures are forgotten and the attempt itself is
    /// taken back. The account's and the address's earlier failures stay, so a guesser gains
    /// nothing from the owner logging in meanwhile. Done on a task: the login does not wait.
    pub fn succeeded(&self, account: &str, ip: &str) {
        let db = self.db.clone();
        let [pair, address, account] = keys(account, ip);
        tokio::spawn(async move {
            let forgotten = db.login_failures_forget(&pair).await;
            if let Err(e) = forgotten.and(db.login_failures_take_back(&[address, account]).await) {
                tracing::warn!(error = %e, "could not clear the failed logins after a login");
            }
        });
    }

    /// Counts an attempt at `now` (Unix milliseconds) and judges it on the failures before it;
    /// a refused attempt is taken back.
    async fn attempt_at(&self, account: &str, ip: &str, now: i64) -> Verdict {
        let stale_before = now - window_ms();
        if self.attempts.fetch_add(1, Ordering::Relaxed).is_multiple_of(PRUNE_EVERY) {
            if let Err(e) = self.db.login_failures_prune(stale_before).await {
                tracing::warn!(error = %e, "could not delete old failed-login counts");
            }
        }
        let keys = keys(account, ip);
        let rows = match self.db.login_failures_add(&keys, now, stale_before).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!(error = %e, "cannot count a login attempt: refused");
                return Verdict::Refuse { retry_after: UNCOUNTED_RETRY };
            }
        };
        // The returned counts include this attempt; it is judged on the ones before it.
        let before_of = |key: &str| {
            rows.iter().find(|r| r.key == key).map_or(Count::default(), |r| Count {
                failures: u32::try_from(r.failures.saturating_sub(1)).unwrap_or(u32::MAX),
                since: r.since,
            })
        };
        let before =
            Before { pair: before_of(&keys[0]), address: before_of(&keys[1]), account: before_of(&keys[2]) };
        let verdict = verdict(&before, now);
        if matches!(verdict, Verdict::Refuse { .. }) {
            if let Err(e) = self.db.login_failures_take_back(&keys).await {
                tracing::warn!(error = %e, "could not take back a refused login attempt");
            }
        }
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    async fn throttle() -> (tempfile::TempDir, Throttle) {
        let (dir, db) = crate::db::temp_sqlite().await;
        (dir, Throttle::new(db))
    }

    fn count(failures: u32, since: i64) -> Count {
        Count { failures, since }
    }

    #[test]
    fn the_rule_refuses_a_pair_or_an_address_and_only_slows_an_account() {
        let now = 10 * window_ms();
        let pair = Before { pair: count(PAIR_FAILURES, now - 60_000), ..Before::default() };
        assert_eq!(verdict(&pair, now), Verdict::Refuse { retry_after: WINDOW - Duration::from_secs(60) });
        let address = Before { address: count(ADDRESS_FAILURES, now), ..Before::default() };
        assert_eq!(verdict(&address, now), Verdict::Refuse { retry_after: WINDOW });
        let account = Before { account: count(40, now), ..Before::default() };
        assert_eq!(verdict(&account, now), Verdict::Try { delay: MAX_DELAY });
        // Counts whose window has passed weigh nothing.
        let old = Before {
            pair: count(99, now - window_ms()),
            address: count(99, now - window_ms()),
            account: count(99, now - window_ms()),
        };
        assert_eq!(verdict(&old, now), Verdict::Try { delay: Duration::ZERO });
        let under = Before { pair: count(PAIR_FAILURES - 1, now), ..old };
        assert_eq!(verdict(&under, now), Verdict::Try { delay: Duration::ZERO });
    }

    #[tokio::test]
    async fn one_address_is_refused_after_five_failures_on_an_account_and_forgiven_on_success() {
        let (_dir, t) = throttle().await;
        let now = now_ms();
        for _ in 0..PAIR_FAILURES {
            assert!(matches!(t.attempt_at("a@b.id", "1.2.3.4", now).await, Verdict::Try { .. }));
        }
        assert!(matches!(t.attempt_at("a@b.id", "1.2.3.4", now).await, Verdict::Refuse { .. }));
        // The refused attempts were not counted: still exactly five.
        assert!(matches!(t.attempt_at("a@b.id", "1.2.3.4", now).await, Verdict::Refuse { .. }));
        assert!(
            matches!(t.attempt_at("a@b.id", "1.2.3.5", now).await, Verdict::Try { .. }),
            "another address"
        );
        assert!(
            matches!(t.attempt_at("c@d.id", "1.2.3.4", now).await, Verdict::Try { .. }),
            "another account"
        );
        // A success from another address leaves this pair refused; one from this address
        // forgives it (on a task: wait for it).
        t.succeeded("a@b.id", "1.2.3.5");
        t.succeeded("a@b.id", "1.2.3.4");
        let pair = keys("a@b.id", "1.2.3.4")[0].clone();
        for _ in 0..500 {
            let left: Option<i64> = sqlx::query_scalar("SELECT failures FROM login_failures WHERE key = $1")
                .bind(&pair)
                .fetch_optional(match &t.db.pools {
                    crate::db::Pools::Sqlite { read, .. } => read,
                    crate::db::Pools::Postgres(_) => unreachable!("a SQLite test"),
                })
                .await
                .unwrap();
            if left.is_none() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(matches!(t.attempt_at("a@b.id", "1.2.3.4", now).await, Verdict::Try { .. }));
    }

    #[tokio::test]
    async fn a_guessed_at_account_is_slowed_down_never_refused() {
        let (_dir, t) = throttle().await;
        let now = now_ms();
        // Strangers from many addresses guess, each staying under its own limits.
        for i in 0..40 {
            t.attempt_at("owner@toko.id", &format!("198.51.100.{i}"), now).await;
        }
        assert_eq!(
            t.attempt_at("owner@toko.id", "203.0.113.1", now).await,
            Verdict::Try { delay: MAX_DELAY }
        );
        // The window passes: no wait.
        let later = now + window_ms();
        assert_eq!(
            t.attempt_at("owner@toko.id", "203.0.113.1", later).await,
            Verdict::Try { delay: Duration::ZERO }
        );
    }

    #[tokio::test]
    async fn an_address_spraying_accounts_is_refused() {
        let (_dir, t) = throttle().await;
        let now = now_ms();
        for i in 0..ADDRESS_FAILURES {
            t.attempt_at(&format!("user{i}@x.id"), "198.51.100.1", now).await;
        }
        match t.attempt_at("fresh@x.id", "198.51.100.1", now + 60_000).await {
            Verdict::Refuse { retry_after } => assert_eq!(retry_after, WINDOW - Duration::from_secs(60)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(t.attempt_at("fresh@x.id", "198.51.100.2", now).await, Verdict::Try { .. }));
    }

    #[tokio::test]
    async fn concurrent_guesses_on_one_pair_get_exactly_the_allowed_tries() {
        let (_dir, t) = throttle().await;
        let t = std::sync::Arc::new(t);
        let now = now_ms();
        let tries: Vec<_> = (0..20)
            .map(|_| {
                let t = t.clone();
                tokio::spawn(async move { t.attempt_at("a@b.id", "1.2.3.4", now).await })
            })
            .collect();
        let mut admitted = 0;
        for t in tries {
            if matches!(t.await.unwrap(), Verdict::Try { .. }) {
                admitted += 1;
            }
        }
        assert_eq!(admitted, PAIR_FAILURES);
    }

    proptest! {
        #[test]
        fn the_delay_grows_with_failures_and_stays_capped(a in 0u32..1000, b in 0u32..1000) {
            let (lo, hi) = (a.min(b), a.max(b));
            prop_assert!(delay_for(lo) <= delay_for(hi));
            prop_assert!(delay_for(hi) <= MAX_DELAY);
            prop_assert_eq!(delay_for(lo) == Duration::ZERO, lo < ACCOUNT_FAILURES);
        }
    }
}
