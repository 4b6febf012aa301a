use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use serde::{Deserialize, Serialize};

/// When a provider is considered down, and for how long it is skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Consecutive failed attempts (server errors, timeouts, broken streams) that open the
    /// circuit.
    pub failures: u32,
    /// How long an open circuit skips the provider before one trial call is let through.
    pub cooldown_secs: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failures: 5,
            cooldown_secs: 30,
        }
    }
}

/// A circuit breaker per provider: closed (calls go), open (skipped until the cool-down
/// ends), half-open (one trial call; its outcome closes or re-opens the circuit).
#[derive(Debug)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    consecutive: u32,
    open_until: Option<Instant>,
    trial_running: bool,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether a call may go now. In the half-open state only one caller gets `true` until
    /// its outcome is recorded.
    pub fn allow(&self, now: Instant) -> bool {
        let mut s = self.state();
        match s.open_until {
            None => true,
            Some(until) if now < until => false,
            Some(_) if s.trial_running => false,
            Some(_) => {
                s.trial_running = true;
                true
            }
        }
    }

    /// How long the circuit stays open, if it is.
    pub fn open_for(&self, now: Instant) -> Option<Duration> {
        self.state()
            .open_until
            .and_then(|until| until.checked_duration_since(now))
            .filter(|d| !d.is_zero())
    }

    /// A call succeeded (or failed in a way that says nothing about the provider's health):
    /// the circuit closes.
    pub fn record_success(&self) {
        let mut s = self.state();
        *s = State::default();
    }

    /// A call failed in a way that suggests the provider is down; returns whether this
    /// opened the circuit.
    pub fn record_failure(&self, now: Instant) -> bool {
        let mut s = self.state();
        s.consecutive += 1;
        let trial_failed = s.trial_running;
        s.trial_running = false;
        if trial_failed || s.consecutive >= self.config.failures.max(1) {
            s.open_until = Some(now + Duration::from_secs(self.config.cooldown_secs));
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_and_recovers_through_one_trial() {
        let t0 = Instant::now();
        let b = CircuitBreaker::new(BreakerConfig {
            failures: 3,
            cooldown_secs: 10,
        });
        assert!(b.allow(t0));
        assert!(!b.record_failure(t0));
        b.record_success();
        assert!(!b.record_failure(t0));
        assert!(!b.record_failure(t0));
        assert!(b.record_failure(t0), "third consecutive failure opens");
        assert!(!b.allow(t0 + Duration::from_secs(9)));
        assert_eq!(
            b.open_for(t0 + Duration::from_secs(4)),
            Some(Duration::from_secs(6))
        );
        // Cool-down over: one trial only.
        let t1 = t0 + Duration::from_secs(10);
        assert!(b.allow(t1));
        assert!(!b.allow(t1));
        // The trial fails: open again for a whole cool-down.
        assert!(b.record_failure(t1));
        assert!(!b.allow(t1 + Duration::from_secs(9)));
        let t2 = t1 + Duration::from_secs(10);
        assert!(b.allow(t2));
        b.record_success();
        assert!(b.allow(t2) && b.allow(t2));
        assert_eq!(b.open_for(t2), None);
    }
}
