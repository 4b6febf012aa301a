//! Per-caller rate limits: a token bucket per key (a token's id, a JWT's subject) that
//! holds up to `requests` and refills at `requests / per_secs` a second, so a burst of the
//! whole allowance is fine and a steady rate beyond it is not.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use botarmy_store::RateLimit;

/// Buckets kept before full, idle ones are dropped.
const PRUNE_AT: usize = 10_000;

struct Bucket {
    /// Requests left (fractional while refilling).
    left: f64,
    updated: Instant,
    limit: RateLimit,
}

/// The buckets of every caller.
#[derive(Default)]
pub(crate) struct Limiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

fn refill(bucket: &mut Bucket, now: Instant) {
    let capacity = f64::from(bucket.limit.requests);
    let rate = capacity / f64::from(bucket.limit.per_secs.max(1));
    let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
    bucket.left = (bucket.left + elapsed * rate).min(capacity);
    bucket.updated = now;
}

impl Limiter {
    /// Takes one request from `key`'s bucket; `Err(wait)` if it is empty.
    pub(crate) fn take(&self, key: &str, limit: RateLimit, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= PRUNE_AT {
            buckets.retain(|_, b| {
                refill(b, now);
                b.left < f64::from(b.limit.requests)
            });
        }
        let bucket = buckets.entry(key.to_string()).or_insert(Bucket {
            left: f64::from(limit.requests),
            updated: now,
            limit,
        });
        if bucket.limit != limit {
            // The limit changed (the server's default, a token's own): start over at it.
            bucket.limit = limit;
            bucket.left = bucket.left.min(f64::from(limit.requests));
        }
        refill(bucket, now);
        if bucket.left >= 1.0 {
            bucket.left -= 1.0;
            Ok(())
        } else {
            let rate = f64::from(limit.requests) / f64::from(limit.per_secs.max(1));
            Err(Duration::from_secs_f64((1.0 - bucket.left) / rate))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_its_rate() {
        let limiter = Limiter::default();
        let limit = RateLimit {
            requests: 2,
            per_secs: 60,
        };
        let t0 = Instant::now();
        assert!(limiter.take("a", limit, t0).is_ok());
        assert!(limiter.take("a", limit, t0).is_ok());
        let wait = limiter.take("a", limit, t0).unwrap_err();
        assert_eq!(wait.as_secs(), 30, "one request every 30 s");
        // Another key has its own bucket.
        assert!(limiter.take("b", limit, t0).is_ok());
        assert!(
            limiter
                .take("a", limit, t0 + Duration::from_secs(29))
                .is_err()
        );
        assert!(
            limiter
                .take("a", limit, t0 + Duration::from_secs(31))
                .is_ok()
        );
        assert!(
            limiter
                .take("a", limit, t0 + Duration::from_secs(31))
                .is_err()
        );
    }
}
