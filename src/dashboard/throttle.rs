//! The login throttle: slows password guessing without letting a stranger lock anyone out.
//!
//! Failed logins are counted, in memory, over a window of [`WINDOW`] from the first failure:
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
//! reverse proxy are not counted as one. Counts are per process: with several gateway
//! processes a guesser gets that many tries per process; argon2's cost bounds the rest.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

/// What to do with a login attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Check the password after waiting this long (zero: at once).
    Try { delay: Duration },
    /// Refuse without checking; the refusal ends after this long.
    Refuse { retry_after: Duration },
}

#[derive(Debug, Clone, Copy)]
struct Count {
    failures: u32,
    since: Instant,
}

impl Count {
    /// The failures still inside the window at `now`.
    fn live(self, now: Instant) -> u32 {
        if now.saturating_duration_since(self.since) < WINDOW {
            self.failures
        } else {
            0
        }
    }

    fn ends(self, now: Instant) -> Duration {
        WINDOW.saturating_sub(now.saturating_duration_since(self.since))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Pair(String, String),
    Address(String),
    Account(String),
}

/// Failed logins by pair, address and account.
#[derive(Default)]
pub struct Throttle {
    counts: Mutex<HashMap<Key, Count>>,
}

impl Throttle {
    /// What to do with an attempt on `account` (an email, or `admin`) from `ip`.
    pub fn check(&self, account: &str, ip: &str) -> Verdict {
        self.check_at(account, ip, Instant::now())
    }

    /// Waits as [`Throttle::check`] says; `Err(retry_after)` when the attempt is refused.
    pub async fn admit(&self, account: &str, ip: &str) -> Result<(), Duration> {
        match self.check(account, ip) {
            Verdict::Refuse { retry_after } => Err(retry_after),
            Verdict::Try { delay } => {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                Ok(())
            }
        }
    }

    /// Counts a failed attempt.
    pub fn failed(&self, account: &str, ip: &str) {
        self.failed_at(account, ip, Instant::now())
    }

    /// After a successful login: the pair's failures are forgotten. The account's and the
    /// address's stay, so a guesser gains nothing from the owner logging in meanwhile.
    pub fn succeeded(&self, account: &str, ip: &str) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.remove(&Key::Pair(account.to_string(), ip.to_string()));
    }

    fn check_at(&self, account: &str, ip: &str, now: Instant) -> Verdict {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let get = |key: Key| counts.get(&key).copied().filter(|c| c.live(now) > 0);
        for (key, max) in [
            (Key::Pair(account.to_string(), ip.to_string()), PAIR_FAILURES),
            (Key::Address(ip.to_string()), ADDRESS_FAILURES),
        ] {
            if let Some(count) = get(key).filter(|c| c.failures >= max) {
                return Verdict::Refuse { retry_after: count.ends(now) };
            }
        }
        let failures = get(Key::Account(account.to_string())).map_or(0, |c| c.failures);
        Verdict::Try { delay: delay_for(failures) }
    }

    fn failed_at(&self, account: &str, ip: &str, now: Instant) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if counts.len() > 30_000 {
            counts.retain(|_, c| c.live(now) > 0);
        }
        for key in [
            Key::Pair(account.to_string(), ip.to_string()),
            Key::Address(ip.to_string()),
            Key::Account(account.to_string()),
        ] {
            let count = counts.entry(key).or_insert(Count { failures: 0, since: now });
            if count.live(now) == 0 {
                *count = Count { failures: 0, since: now };
            }
            count.failures = count.failures.saturating_add(1);
        }
    }
}

/// The wait before an attempt on an account with `failures` recent failures.
fn delay_for(failures: u32) -> Duration {
    if failures < ACCOUNT_FAILURES {
        return Duration::ZERO;
    }
    let doublings = (failures - ACCOUNT_FAILURES).min(16);
    Duration::from_secs(1u64 << doublings).min(MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn one_address_is_refused_after_five_failures_on_an_account_and_forgiven_on_success() {
        let t = Throttle::default();
        let now = Instant::now();
        for _ in 0..PAIR_FAILURES {
            assert!(matches!(t.check_at("a@b.id", "1.2.3.4", now), Verdict::Try { .. }));
            t.failed_at("a@b.id", "1.2.3.4", now);
        }
        assert!(matches!(t.check_at("a@b.id", "1.2.3.4", now), Verdict::Refuse { .. }));
        assert!(matches!(t.check_at("a@b.id", "1.2.3.5", now), Verdict::Try { .. }), "another address");
        assert!(matches!(t.check_at("c@d.id", "1.2.3.4", now), Verdict::Try { .. }), "another account");
        t.succeeded("a@b.id", "1.2.3.4");
        assert!(matches!(t.check_at("a@b.id", "1.2.3.4", now), Verdict::Try { .. }));
    }

    #[test]
    fn a_guessed_at_account_is_slowed_down_never_refused() {
        let t = Throttle::default();
        let now = Instant::now();
        // Strangers from many addresses guess, each staying under its own limits.
        for i in 0..40 {
            t.failed_at("owner@toko.id", &format!("198.51.100.{i}"), now);
        }
        assert_eq!(t.check_at("owner@toko.id", "203.0.113.1", now), Verdict::Try { delay: MAX_DELAY });
        // The window passes: no wait.
        let later = now + WINDOW;
        assert_eq!(t.check_at("owner@toko.id", "203.0.113.1", later), Verdict::Try { delay: Duration::ZERO });
    }

    #[test]
    fn an_address_spraying_accounts_is_refused() {
        let t = Throttle::default();
        let now = Instant::now();
        for i in 0..ADDRESS_FAILURES {
            t.failed_at(&format!("user{i}@x.id"), "198.51.100.1", now);
        }
        match t.check_at("fresh@x.id", "198.51.100.1", now + Duration::from_secs(60)) {
            Verdict::Refuse { retry_after } => assert_eq!(retry_after, WINDOW - Duration::from_secs(60)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(t.check_at("fresh@x.id", "198.51.100.2", now), Verdict::Try { .. }));
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
