use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How often and how patiently a failed call is tried again on the same provider.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0: none).
    pub max_retries: u32,
    /// Delay before the first retry; doubled for each further one.
    #[serde(with = "millis")]
    pub base_delay: Duration,
    /// Longest computed delay.
    #[serde(with = "millis")]
    pub max_delay: Duration,
    /// Longest `retry-after` honoured: a provider that asks for more is failed over instead.
    #[serde(with = "millis")]
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }

    /// The wait before retry number `retry` (from 0), or `None` when the provider asked
    /// for a longer wait than [`RetryPolicy::max_retry_after`].
    ///
    /// Exponential backoff with "equal jitter" (between half and all of
    /// `base · 2^retry`, capped at `max_delay`), so clients that failed together do not
    /// retry together; a `retry-after` from the provider is a floor, never shortened.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Option<Duration> {
        let exp = self
            .base_delay
            .saturating_mul(1u32.checked_shl(retry.min(20)).unwrap_or(u32::MAX))
            .min(self.max_delay);
        let half = exp / 2;
        let jitter = half.mul_f64(unit_random());
        let computed = half + jitter;
        match retry_after {
            Some(asked) if asked > self.max_retry_after => None,
            Some(asked) => Some(asked.max(computed)),
            None => Some(computed),
        }
    }
}

/// A number in [0, 1) that differs from call to call (not for cryptography): splitmix64 over
/// a process-wide counter seeded by the clock.
fn unit_random() -> f64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let seed = STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
        ^ u64::from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos()),
        );
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// Durations as whole milliseconds in configuration files.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_and_caps() {
        let p = RetryPolicy {
            max_retries: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1_000),
            max_retry_after: Duration::from_secs(5),
        };
        for _ in 0..200 {
            for (retry, full) in [
                (0, 100),
                (1, 200),
                (2, 400),
                (3, 800),
                (4, 1_000),
                (9, 1_000),
            ] {
                let d = p.delay(retry, None).unwrap().as_millis() as u64;
                assert!(
                    (full / 2..=full).contains(&d),
                    "retry {retry}: {d} ms not in [{}, {full}]",
                    full / 2
                );
            }
        }
        // Jitter actually varies.
        let seen: std::collections::HashSet<u128> = (0..50)
            .map(|_| p.delay(3, None).unwrap().as_micros())
            .collect();
        assert!(seen.len() > 10, "{seen:?}");
    }

    #[test]
    fn retry_after_is_a_floor_and_too_long_means_give_up() {
        let p = RetryPolicy::default();
        let asked = Duration::from_secs(7);
        assert!(p.delay(0, Some(asked)).unwrap() >= asked);
        assert_eq!(p.delay(0, Some(Duration::from_secs(121))), None);
        // A short hint does not shorten the backoff.
        assert!(p.delay(5, Some(Duration::from_millis(1))).unwrap() >= Duration::from_secs(8));
    }
}
