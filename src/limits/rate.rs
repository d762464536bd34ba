//! Per-API-key request rate limiting: a token bucket whose burst is one minute's allowance.
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

/// Token buckets keyed by API key id.
#[derive(Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<i64, Bucket>>,
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
    /// Takes one request from `key`'s bucket. `Err` carries the wait before the next one fits.
    pub fn check(&self, key: i64, per_minute: Option<i64>) -> Result<(), Duration> {
        let Some(per_minute) = per_minute else {
            return Ok(());
        };
        if per_minute <= 0 {
            return Err(Duration::from_secs(60));
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > 100_000 {
            // Forget buckets that have been full for a while, so memory stays bounded.
            buckets.retain(|_, b| now.saturating_duration_since(b.updated) < Duration::from_secs(60));
        }
        let bucket = buckets.entry(key).or_insert(Bucket { tokens: per_minute as f64, updated: now });
        match take(*bucket, now, per_minute as f64) {
            Ok(next) => {
                *bucket = next;
                Ok(())
            }
            Err(wait) => Err(wait),
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
            assert!(limiter.check(1, Some(5)).is_ok());
        }
        let wait = limiter.check(1, Some(5)).unwrap_err();
        assert!(wait > Duration::from_secs(10) && wait <= Duration::from_secs(12), "{wait:?}");
        // Another key has its own bucket.
        assert!(limiter.check(2, Some(5)).is_ok());
        assert!(limiter.check(1, None).is_ok());
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
