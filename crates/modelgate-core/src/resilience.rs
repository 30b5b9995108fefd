//! Retries, backoff and a circuit breaker per upstream endpoint.
//!
//! The breaker is a plain state machine driven by the caller's clock: after
//! `threshold` failures in a row an endpoint is skipped for `cooldown_ms`,
//! then exactly one trial request is let through (half-open); its outcome
//! closes the circuit or opens it again. State is per process (per isolate
//! on Workers), which is what a breaker wants: it protects this caller.

use std::collections::HashMap;
use std::sync::Mutex;

/// Retry and breaker settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resilience {
    /// Extra rounds over the endpoints after the first.
    pub retries: u32,
    /// Backoff before the second round; doubles each round.
    pub backoff_ms: u64,
    /// Consecutive failures that open an endpoint's circuit.
    pub breaker_threshold: u32,
    /// How long an open circuit stays open.
    pub breaker_cooldown_ms: u64,
}

impl Default for Resilience {
    fn default() -> Self {
        Self {
            retries: 2,
            backoff_ms: 200,
            breaker_threshold: 5,
            breaker_cooldown_ms: 30_000,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed { failures: u32 },
    Open { until_ms: i64 },
    HalfOpen,
}

/// Circuit breakers keyed by endpoint (base URL).
#[derive(Debug, Default)]
pub struct Breakers {
    states: Mutex<HashMap<String, State>>,
}

impl Breakers {
    /// Breakers with every circuit closed.
    pub fn new() -> Self {
        Self::default()
    }

    /// May a request go to `endpoint` now? Moves an expired open circuit to
    /// half-open and lets exactly that one trial through.
    pub fn allow(&self, endpoint: &str, now_ms: i64) -> bool {
        let Ok(mut states) = self.states.lock() else {
            return true;
        };
        match states.get(endpoint).copied() {
            None | Some(State::Closed { .. }) => true,
            Some(State::Open { until_ms }) if now_ms >= until_ms => {
                states.insert(endpoint.to_owned(), State::HalfOpen);
                true
            }
            Some(State::Open { .. } | State::HalfOpen) => false,
        }
    }

    /// Record the outcome of a request to `endpoint`.
    pub fn record(&self, endpoint: &str, ok: bool, now_ms: i64, cfg: &Resilience) {
        let Ok(mut states) = self.states.lock() else {
            return;
        };
        if ok {
            states.remove(endpoint);
            return;
        }
        let open = State::Open {
            until_ms: now_ms.saturating_add_unsigned(cfg.breaker_cooldown_ms),
        };
        let next = match states.get(endpoint).copied() {
            None => State::Closed { failures: 1 },
            Some(State::Closed { failures }) => State::Closed {
                failures: failures + 1,
            },
            Some(State::HalfOpen | State::Open { .. }) => open,
        };
        let next = match next {
            State::Closed { failures } if failures >= cfg.breaker_threshold.max(1) => open,
            s => s,
        };
        states.insert(endpoint.to_owned(), next);
    }

    /// A request that was let through but never sent (e.g. cancelled) must
    /// not leave a half-open circuit waiting forever.
    pub fn release(&self, endpoint: &str) {
        if let Ok(mut states) = self.states.lock()
            && states.get(endpoint) == Some(&State::HalfOpen)
        {
            states.insert(endpoint.to_owned(), State::Open { until_ms: i64::MIN });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_then_half_opens_once() {
        let cfg = Resilience {
            breaker_threshold: 3,
            breaker_cooldown_ms: 1000,
            ..Default::default()
        };
        let b = Breakers::new();
        for _ in 0..2 {
            assert!(b.allow("u", 0));
            b.record("u", false, 0, &cfg);
        }
        assert!(b.allow("u", 0), "two failures keep it closed");
        b.record("u", false, 0, &cfg);
        assert!(!b.allow("u", 999), "open during the cooldown");
        assert!(b.allow("u", 1000), "one trial after the cooldown");
        assert!(!b.allow("u", 1000), "only one trial at a time");
        b.record("u", false, 1000, &cfg);
        assert!(!b.allow("u", 1999), "a failed trial opens it again");
        assert!(b.allow("u", 2000));
        b.record("u", true, 2000, &cfg);
        assert!(
            b.allow("u", 2000) && b.allow("u", 2000),
            "a good trial closes it"
        );
        assert!(b.allow("other", 0), "endpoints are independent");
    }

    #[test]
    fn success_resets_the_count() {
        let cfg = Resilience {
            breaker_threshold: 2,
            ..Default::default()
        };
        let b = Breakers::new();
        b.record("u", false, 0, &cfg);
        b.record("u", true, 0, &cfg);
        b.record("u", false, 0, &cfg);
        assert!(b.allow("u", 0));
    }

    #[test]
    fn released_trial_allows_another() {
        let cfg = Resilience {
            breaker_threshold: 1,
            breaker_cooldown_ms: 10,
            ..Default::default()
        };
        let b = Breakers::new();
        b.record("u", false, 0, &cfg);
        assert!(b.allow("u", 10));
        b.release("u");
        assert!(b.allow("u", 10));
    }

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
