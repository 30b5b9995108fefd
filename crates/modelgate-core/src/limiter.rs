//! Requests-per-minute limiting with GCRA (the generic cell rate algorithm).
//!
//! One number per key, the "theoretical arrival time" (TAT, microseconds),
//! makes the decision: a key with `rpm` requests per minute may burst `rpm`
//! requests at once and then gets one back every `60 s / rpm`. A refused
//! request does not move the TAT, so it costs nothing. Every backend stores
//! the same number with its own atomic step: a mutex here, a Lua script in
//! Redis, an `UPDATE ... RETURNING` in SQL; [`gcra`] is the rule they share.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::error::StoreError;
use crate::ports::{RateDecision, RateLimiter};

const MINUTE_US: i64 = 60_000_000;

/// The GCRA step: given the stored TAT (µs) and now (µs), the decision and
/// the TAT to store (`None` when refused: store nothing).
pub fn gcra(tat_us: Option<i64>, now_us: i64, rpm: u32) -> (RateDecision, Option<i64>) {
    if rpm == 0 {
        let d = RateDecision {
            allowed: false,
            remaining: 0,
            reset_ms: 0,
            retry_after_ms: u64::MAX / 2,
        };
        return (d, None);
    }
    let interval = MINUTE_US / i64::from(rpm);
    let window = interval * i64::from(rpm);
    let base = tat_us.map_or(now_us, |t| t.max(now_us));
    let new_tat = base + interval;
    let ahead = new_tat - now_us;
    if ahead > window {
        let retry_after_us = ahead - window;
        let d = RateDecision {
            allowed: false,
            remaining: 0,
            reset_ms: us_to_ms_ceil(base - now_us),
            retry_after_ms: us_to_ms_ceil(retry_after_us),
        };
        return (d, None);
    }
    (allowed(new_tat, now_us, interval, window), Some(new_tat))
}

fn allowed(new_tat: i64, now_us: i64, interval: i64, window: i64) -> RateDecision {
    let ahead = new_tat - now_us;
    let remaining = u32::try_from((window - ahead) / interval).unwrap_or(0);
    RateDecision {
        allowed: true,
        remaining,
        reset_ms: us_to_ms_ceil(ahead),
        retry_after_ms: 0,
    }
}

/// `(interval, window)` in µs for `rpm` (≥ 1): what a store's atomic GCRA
/// statement needs ([`crate::sql::RATE_STEP`]).
pub fn gcra_params(rpm: u32) -> (i64, i64) {
    let interval = MINUTE_US / i64::from(rpm.max(1));
    (interval, interval * i64::from(rpm.max(1)))
}

/// The decision for a store that ran the GCRA step itself: `new_tat` is
/// what its statement stored when it allowed the request, else `None` with
/// the TAT it found (`stored`), to tell when to come back.
pub fn store_decision(
    new_tat: Option<i64>,
    stored: Option<i64>,
    now_us: i64,
    rpm: u32,
) -> RateDecision {
    let (interval, window) = gcra_params(rpm);
    match new_tat {
        Some(t) => allowed(t, now_us, interval, window),
        None => {
            let (mut d, _) = gcra(stored, now_us, rpm);
            // The TAT moved between the two statements: refuse all the same.
            if d.allowed {
                d = RateDecision {
                    allowed: false,
                    remaining: 0,
                    reset_ms: d.reset_ms,
                    retry_after_ms: 1,
                };
            }
            d
        }
    }
}

fn us_to_ms_ceil(us: i64) -> u64 {
    u64::try_from((us.max(0) + 999) / 1000).unwrap_or(0)
}

/// Format milliseconds the way OpenAI's `x-ratelimit-reset-*` headers do:
/// `20ms`, `6s`, `1m30s`.
pub fn format_duration(ms: u64) -> String {
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = ms.div_ceil(1000);
    if secs < 60 {
        format!("{secs}s")
    } else {
        format!("{}m{}s", secs / 60, secs % 60)
    }
}

/// The in-process limiter of the native server: exact because one mutex
/// guards every step, bounded because expired entries are pruned.
#[derive(Debug, Default)]
pub struct MemoryLimiter {
    tats: Mutex<HashMap<String, i64>>,
}

/// Entries kept before a prune pass drops the expired ones.
const PRUNE_AT: usize = 10_000;

impl MemoryLimiter {
    /// An empty limiter.
    pub fn new() -> Self {
        Self::default()
    }

    fn step(&self, key_id: &str, rpm: u32, now_ms: i64) -> Result<RateDecision, StoreError> {
        let now_us = now_ms.saturating_mul(1000);
        let mut tats = self
            .tats
            .lock()
            .map_err(|_| StoreError::Unavailable("limiter lock poisoned".into()))?;
        let (decision, new_tat) = gcra(tats.get(key_id).copied(), now_us, rpm);
        if let Some(t) = new_tat {
            if tats.len() >= PRUNE_AT && !tats.contains_key(key_id) {
                tats.retain(|_, tat| *tat > now_us);
            }
            tats.insert(key_id.to_owned(), t);
        }
        Ok(decision)
    }
}

impl RateLimiter for MemoryLimiter {
    async fn acquire(
        &self,
        key_id: &str,
        rpm: u32,
        now_ms: i64,
    ) -> Result<RateDecision, StoreError> {
        self.step(key_id, rpm, now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_of_rpm_then_one_per_interval() {
        let l = MemoryLimiter::new();
        let now = 1_000_000;
        for i in 0..10 {
            let d = l.step("k", 10, now).unwrap();
            assert!(d.allowed, "request {i}");
            assert_eq!(d.remaining, 9 - i);
        }
        let refused = l.step("k", 10, now).unwrap();
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after_ms, 6000);
        // Refusals are free: still exactly one allowed after 6 s.
        for _ in 0..20 {
            assert!(!l.step("k", 10, now + 5_999).unwrap().allowed);
        }
        assert!(l.step("k", 10, now + 6_000).unwrap().allowed);
        assert!(!l.step("k", 10, now + 6_000).unwrap().allowed);
        // After a full minute idle, the whole burst is back.
        let later = now + 6_000 + 60_000;
        for _ in 0..10 {
            assert!(l.step("k", 10, later).unwrap().allowed);
        }
        assert!(!l.step("k", 10, later).unwrap().allowed);
    }

    #[test]
    fn keys_are_independent_and_reset_is_reported() {
        let l = MemoryLimiter::new();
        assert!(l.step("a", 1, 0).unwrap().allowed);
        assert!(!l.step("a", 1, 0).unwrap().allowed);
        let b = l.step("b", 1, 0).unwrap();
        assert!(b.allowed);
        assert_eq!(b.reset_ms, 60_000);
        assert_eq!(b.remaining, 0);
    }

    #[test]
    fn zero_rpm_refuses() {
        assert!(!gcra(None, 0, 0).0.allowed);
    }

    #[test]
    fn prune_keeps_live_entries() {
        let l = MemoryLimiter::new();
        for i in 0..PRUNE_AT {
            l.step(&format!("k{i}"), 60, 0).unwrap();
        }
        l.step("live", 1, 0).unwrap();
        // Far later: everything old expired; the new key triggers the prune.
        l.step("new", 1, 10_000_000).unwrap();
        assert!(l.tats.lock().unwrap().len() <= 2);
    }

    #[test]
    fn store_decisions_agree_with_the_in_memory_step() {
        let (interval, window) = gcra_params(10);
        assert_eq!((interval, window), (6_000_000, 60_000_000));
        let (d, tat) = gcra(None, 0, 10);
        assert_eq!(store_decision(tat, None, 0, 10), d);
        let full = 60_000_000;
        let (refused, _) = gcra(Some(full), 0, 10);
        assert_eq!(store_decision(None, Some(full), 0, 10), refused);
        assert!(
            !store_decision(None, None, 0, 10).allowed,
            "a refusal stays a refusal"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(format_duration(20), "20ms");
        assert_eq!(format_duration(6000), "6s");
        assert_eq!(format_duration(90_000), "1m30s");
    }
}
