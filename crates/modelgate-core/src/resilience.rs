//! Retry, ejection and routing settings (the state they drive is in
//! [`crate::routing`]).

use serde::Serialize;

/// How a deployment is chosen within a tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Power of two choices by load and latency, biased by weight.
    Latency,
    /// Weighted random, blind to load and latency.
    Weighted,
}

/// Retry, ejection and routing settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resilience {
    /// Extra rounds over the deployments after the first.
    pub retries: u32,
    /// Backoff before the second round; doubles each round.
    pub backoff_ms: u64,
    /// Failed attempts a deployment needs within the window before its
    /// failure ratio can eject it.
    pub breaker_threshold: u32,
    /// How long a failing deployment stays ejected before its trial.
    pub breaker_cooldown_ms: u64,
    /// Share of failed attempts within the window that ejects.
    pub eject_ratio: f64,
    /// The window failures are counted over.
    pub eject_window_ms: u64,
    /// Ejection after a 429 that did not say how long to wait.
    pub rate_limit_cooldown_ms: u64,
    /// Time constant of the latency estimate's decay.
    pub latency_decay_ms: u64,
    /// How a deployment is chosen within a tier.
    pub strategy: Strategy,
    /// Readiness checks of deployments that ask for them (native server).
    pub health_check_interval_ms: u64,
}

impl Default for Resilience {
    fn default() -> Self {
        Self {
            retries: 2,
            backoff_ms: 200,
            breaker_threshold: 5,
            breaker_cooldown_ms: 10_000,
            eject_ratio: 0.5,
            eject_window_ms: 30_000,
            rate_limit_cooldown_ms: 5_000,
            latency_decay_ms: 10_000,
            strategy: Strategy::Latency,
            health_check_interval_ms: 10_000,
        }
    }
}

impl Resilience {
    /// Backoff before round `round` (1-based for retries).
    pub fn backoff(&self, round: u32) -> u64 {
        self.backoff_ms
            .saturating_mul(1u64 << round.saturating_sub(1).min(16))
    }
}

/// Whether an upstream status is worth another try elsewhere or later.
pub fn retryable_status(status: u16) -> bool {
    status == 429 || status >= 500
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles() {
        let r = Resilience::default();
        assert_eq!((r.backoff(1), r.backoff(2), r.backoff(3)), (200, 400, 800));
    }

    #[test]
    fn retryable() {
        assert!(retryable_status(429) && retryable_status(500) && retryable_status(503));
        assert!(!retryable_status(400) && !retryable_status(404));
    }
}
