//! Request rate limiting: token buckets whose burst is one minute's allowance, one per tenant
//! (every key and the dashboard together) and one per API key.
//!
//! Buckets live in this process's memory; with several gateway processes each enforces the
//! limit on the requests it serves (documented in the README).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

/// Token buckets by tenant and by API key.
#[derive(Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<Owner, Bucket>>,
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
    /// Takes one request from the tenant's bucket and, for an API request, from its key's
    /// (`key`; `None` for the dashboard), each holding `per_minute`. Both must have a token:
    /// a refused request takes none. `Err` carries the wait before the next one fits.
    pub fn check(&self, tenant: i64, key: Option<i64>, per_minute: Option<i64>) -> Result<(), Duration> {
        let Some(per_minute) = per_minute else {
            return Ok(());
        };
        if per_minute <= 0 {
            return Err(Duration::from_secs(60));
        }
        let per_minute = per_minute as f64;
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > 100_000 {
            // Forget buckets that have been full for a while, so memory stays bounded.
            buckets.retain(|_, b| now.saturating_duration_since(b.updated) < Duration::from_secs(60));
        }
        let full = Bucket { tokens: per_minute, updated: now };
        let owners = [Some(Owner::Tenant(tenant)), key.map(Owner::Key)];
        let mut taken = [None, None];
        for (slot, owner) in taken.iter_mut().zip(owners) {
            if let Some(owner) = owner {
                let bucket = buckets.get(&owner).copied().unwrap_or(full);
                *slot = Some((owner, take(bucket, now, per_minute)?));
            }
        }
        for (owner, bucket) in taken.into_iter().flatten() {
            buckets.insert(owner, bucket);
        }
        Ok(())
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
    }
}
