use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use serde::{Deserialize, Serialize};

/// A provider's limits, per minute (`None`: unlimited).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimits {
    /// Requests per minute.
    pub requests_per_minute: Option<u32>,
    /// Tokens (prompt estimate plus output cap) per minute.
    pub tokens_per_minute: Option<u32>,
}

/// Two token buckets (requests and tokens) refilled continuously, shared by every run in the
/// process that calls the same provider. A bucket starts full, so a burst up to the
/// per-minute figure goes at once and the rest is spread evenly.
#[derive(Debug)]
pub struct RateLimiter {
    limits: RateLimits,
    state: Mutex<Buckets>,
}

#[derive(Debug)]
struct Buckets {
    requests: f64,
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// A limiter with full buckets.
    pub fn new(limits: RateLimits, now: Instant) -> Self {
        Self {
            limits,
            state: Mutex::new(Buckets {
                requests: f64::from(limits.requests_per_minute.unwrap_or(0)),
                tokens: f64::from(limits.tokens_per_minute.unwrap_or(0)),
                at: now,
            }),
        }
    }

    /// The limits.
    pub fn limits(&self) -> RateLimits {
        self.limits
    }

    /// Takes one request and `tokens` tokens if both are available now (`Ok`), or says how
    /// long to wait before asking again (`Err`); nothing is taken then. A request larger
    /// than the whole per-minute token figure is let through when the bucket is full, or it
    /// could never run.
    pub fn try_acquire(&self, tokens: u64, now: Instant) -> Result<(), Duration> {
        let mut b = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.at = now;
        let mut wait: f64 = 0.0;
        if let Some(rpm) = self.limits.requests_per_minute {
            let cap = f64::from(rpm.max(1));
            b.requests = (b.requests + elapsed * cap / 60.0).min(cap);
            if b.requests < 1.0 {
                wait = wait.max((1.0 - b.requests) * 60.0 / cap);
            }
        }
        if let Some(tpm) = self.limits.tokens_per_minute {
            let cap = f64::from(tpm.max(1));
            b.tokens = (b.tokens + elapsed * cap / 60.0).min(cap);
            let need = (tokens as f64).min(cap);
            if b.tokens < need {
                wait = wait.max((need - b.tokens) * 60.0 / cap);
            }
        }
        if wait > 0.0 {
            // Never ask for a wait that rounds to nothing, or callers would spin.
            return Err(Duration::from_secs_f64(wait).max(Duration::from_millis(1)));
        }
        if self.limits.requests_per_minute.is_some() {
            b.requests -= 1.0;
        }
        if let Some(tpm) = self.limits.tokens_per_minute {
            b.tokens -= (tokens as f64).min(f64::from(tpm.max(1)));
        }
        Ok(())
    }

    /// Waits until one request of `tokens` tokens may go, then takes it.
    pub async fn acquire(&self, tokens: u64) {
        while let Err(wait) = self.try_acquire(tokens, Instant::now()) {
            tokio::time::sleep(wait).await;
        }
    }

    /// Gives tokens back when a call used fewer than were taken for it (the estimate
    /// includes the whole output cap).
    pub fn refund(&self, tokens: u64) {
        if let Some(tpm) = self.limits.tokens_per_minute {
            let mut b = self
                .state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            b.tokens = (b.tokens + tokens as f64).min(f64::from(tpm.max(1)));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn limiter(rpm: Option<u32>, tpm: Option<u32>, now: Instant) -> RateLimiter {
        RateLimiter::new(
            RateLimits {
                requests_per_minute: rpm,
                tokens_per_minute: tpm,
            },
            now,
        )
    }

    #[test]
    fn requests_burst_then_refill_evenly() {
        let t0 = Instant::now();
        let l = limiter(Some(60), None, t0);
        for _ in 0..60 {
            l.try_acquire(0, t0).unwrap();
        }
        let wait = l.try_acquire(0, t0).unwrap_err();
        assert!((990..=1_000).contains(&wait.as_millis()), "{wait:?}");
        // Half a second later: still not enough for one request.
        assert!(l.try_acquire(0, t0 + Duration::from_millis(500)).is_err());
        l.try_acquire(0, t0 + Duration::from_millis(1_001)).unwrap();
        assert!(l.try_acquire(0, t0 + Duration::from_millis(1_002)).is_err());
    }

    #[test]
    fn tokens_are_limited_and_refunded() {
        let t0 = Instant::now();
        let l = limiter(None, Some(1_000), t0);
        l.try_acquire(800, t0).unwrap();
        let wait = l.try_acquire(400, t0).unwrap_err();
        // 200 missing at 1000/min = 12 s.
        assert_eq!(wait.as_secs(), 12);
        l.refund(300);
        l.try_acquire(400, t0).unwrap();
        // A request larger than the whole minute goes when the bucket is full.
        let big = limiter(None, Some(100), t0);
        big.try_acquire(5_000, t0).unwrap();
        assert!(big.try_acquire(1, t0).is_err());
    }

    #[test]
    fn unlimited_never_waits() {
        let t0 = Instant::now();
        let l = limiter(None, None, t0);
        for _ in 0..10_000 {
            l.try_acquire(1_000_000, t0).unwrap();
        }
    }

    #[test]
    fn a_refused_request_takes_nothing() {
        let t0 = Instant::now();
        let l = limiter(Some(2), Some(100), t0);
        l.try_acquire(90, t0).unwrap();
        // Refused for tokens: the request it would have used stays.
        assert!(l.try_acquire(50, t0).is_err());
        l.try_acquire(10, t0).unwrap();
        // Now both requests are gone.
        assert!(l.try_acquire(0, t0).is_err());
    }
}
