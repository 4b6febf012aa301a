//! What keeps calls alive when providers misbehave: retries with backoff ([`RetryPolicy`]),
//! per-provider request and token rate limits ([`RateLimiter`]) and a circuit breaker that
//! skips a provider that keeps failing ([`CircuitBreaker`]). The [`Router`](crate::Router)
//! combines them with failover; each piece is plain state and arithmetic, testable without
//! a clock of its own (every method takes `now`).

mod breaker;
mod limiter;
mod retry;

pub use breaker::{BreakerConfig, CircuitBreaker};
pub use limiter::{RateLimiter, RateLimits};
pub use retry::RetryPolicy;
