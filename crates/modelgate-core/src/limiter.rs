//! Requests- and tokens-per-minute limiting with GCRA (the generic cell
//! rate algorithm).
//!
//! One number per key and limit, the "theoretical arrival time" (TAT,
//! microseconds), makes the decision: a key with `rpm` requests per minute
//! may burst `rpm` requests at once and then gets one back every
//! `60 s / rpm`. Tokens per minute are the same with a cost: a request
//! takes its estimated tokens at once (moving the TAT by that many
//! intervals) and gives back what it did not use when it is settled. A
//! refused request does not move the TAT, so it costs nothing. Every
//! backend stores the same number with its own atomic step: a mutex here,
//! a Lua script in Redis, an `UPDATE ... RETURNING` in SQL; [`gcra_cost`]
//! is the rule they share.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::error::StoreError;
use crate::ports::{RateDecision, RateLimiter};

const MINUTE_US: i64 = 60_000_000;

/// The GCRA step for one request: given the stored TAT (µs) and now (µs),
/// the decision and the TAT to store (`None` when refused: store nothing).
pub fn gcra(tat_us: Option<i64>, now_us: i64, rpm: u32) -> (RateDecision, Option<i64>) {
    gcra_cost(tat_us, now_us, rpm, 1)
}

/// The GCRA step taking `cost` units of a `per_minute` allowance (a cost
/// above the allowance is never allowed).
pub fn gcra_cost(
    tat_us: Option<i64>,
    now_us: i64,
    per_minute: u32,
    cost: i64,
) -> (RateDecision, Option<i64>) {
    let rpm = per_minute;
    if rpm == 0 {
        let d = RateDecision {
            allowed: false,
            remaining: 0,
            reset_ms: 0,
            retry_after_ms: u64::MAX / 2,
        };
        return (d, None);
    }
    let (interval, window) = gcra_params(rpm);
    let base = tat_us.map_or(now_us, |t| t.max(now_us));
    let new_tat = base.saturating_add(interval.saturating_mul(cost.max(0)));
    let ahead = new_tat - now_us;
    if ahead > window {
        // More than the whole allowance can never be taken.
        let retry_after_us = if cost > i64::from(rpm) {
            i64::MAX / 2
        } else {
            ahead - window
        };
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
/// statement needs (`RATE_STEP` in `modelgate-sql`), the increment being
/// `interval` times the cost.
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
    cost: i64,
) -> RateDecision {
    let (interval, window) = gcra_params(rpm);
    match new_tat {
        Some(t) => allowed(t, now_us, interval, window),
        None => {
            let (mut d, _) = gcra_cost(stored, now_us, rpm, cost);
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

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, i64>>, StoreError> {
        self.tats
            .lock()
            .map_err(|_| StoreError::Unavailable("limiter lock poisoned".into()))
    }

    fn step_cost(
        &self,
        key: &str,
        limit: u32,
        cost: i64,
        now_ms: i64,
    ) -> Result<RateDecision, StoreError> {
        let now_us = now_ms.saturating_mul(1000);
        let mut tats = self.lock()?;
        let (decision, new_tat) = gcra_cost(tats.get(key).copied(), now_us, limit, cost);
        if let Some(t) = new_tat {
            if tats.len() >= PRUNE_AT && !tats.contains_key(key) {
                tats.retain(|_, tat| *tat > now_us);
            }
            tats.insert(key.to_owned(), t);
        }
        Ok(decision)
    }

    #[cfg(test)]
    fn step(&self, key_id: &str, rpm: u32, now_ms: i64) -> Result<RateDecision, StoreError> {
        self.step_cost(key_id, rpm, 1, now_ms)
    }
}

/// How far giving back `units` moves a TAT back (µs).
pub fn refund_us(per_minute: u32, units: i64) -> i64 {
    gcra_params(per_minute).0.saturating_mul(units.max(0))
}

impl RateLimiter for MemoryLimiter {
    async fn acquire(
        &self,
        subject: &str,
        per_minute: u32,
        cost: i64,
        now_ms: i64,
    ) -> Result<RateDecision, StoreError> {
        self.step_cost(subject, per_minute, cost, now_ms)
    }

    async fn refund(
        &self,
        subject: &str,
        per_minute: u32,
        units: i64,
        _now_ms: i64,
    ) -> Result<(), StoreError> {
        if let Some(tat) = self.lock()?.get_mut(subject) {
            *tat -= refund_us(per_minute, units);
        }
        Ok(())
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
        assert_eq!(store_decision(tat, None, 0, 10, 1), d);
        let full = 60_000_000;
        let (refused, _) = gcra(Some(full), 0, 10);
        assert_eq!(store_decision(None, Some(full), 0, 10, 1), refused);
        assert!(
            !store_decision(None, None, 0, 10, 1).allowed,
            "a refusal stays a refusal"
        );
    }

    #[test]
    fn tokens_are_taken_at_once_and_given_back() {
        let l = MemoryLimiter::new();
        let take = |n, at| l.step_cost("t", 1000, n, at).unwrap();
        let d = take(600, 0);
        assert!(d.allowed);
        assert_eq!(d.remaining, 400);
        // 500 do not fit in the 400 left; refused costs nothing.
        let refused = take(500, 0);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after_ms, 6_000, "100 tokens come back in 6 s");
        assert!(take(400, 0).allowed);
        assert!(!take(1, 0).allowed);
        // 300 of the first 600 were not used: given back, they fit again.
        let mut tats = l.lock().unwrap();
        *tats.get_mut("t").unwrap() -= refund_us(1000, 300);
        drop(tats);
        assert!(take(300, 0).allowed);
        assert!(!take(1, 0).allowed);
        // More than a minute's worth is never allowed.
        let l = MemoryLimiter::new();
        let huge = l.step_cost("h", 1000, 1001, 0).unwrap();
        assert!(!huge.allowed && huge.retry_after_ms > 3_600_000);
    }
}
