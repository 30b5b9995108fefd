//! One deployment's state on this instance: requests in flight, a
//! peak-sensitive latency estimate, recent outcomes, and whether it is
//! ejected. Plain data driven by the caller's clock; [`super::Router`]
//! holds it under its lock.

use serde::Serialize;

use crate::resilience::Resilience;

/// Buckets the failure window is split into: outcomes age out a tenth of
/// the window at a time, not all at once.
const BUCKETS: usize = 10;

/// Why a deployment was taken out of rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Too many of its recent requests failed (connection, timeout, 5xx).
    Failures,
    /// It answered 429.
    RateLimited,
    /// Its readiness check failed (native server, opt-in per deployment).
    HealthCheck,
}

/// Out of rotation until `until_ms`; `None`: until a readiness check
/// passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Ejection {
    pub(super) until_ms: Option<i64>,
    pub(super) reason: Reason,
}

/// What one attempt on a deployment came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An answer that says nothing against the deployment (2xx, or a 4xx
    /// about the request).
    Ok,
    /// A connection error, a timeout or a 5xx.
    Failed,
    /// A 429, with how long the upstream asked us to wait.
    RateLimited {
        /// From `retry-after-ms` or `retry-after`, if it said.
        retry_after_ms: Option<u64>,
    },
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    start_ms: i64,
    ok: u32,
    failed: u32,
}

/// The state of one deployment (see the module docs).
#[derive(Debug, Clone, Default)]
pub(super) struct Health {
    pub(super) in_flight: u32,
    /// Peak-EWMA latency in ms and when it was last updated.
    latency: Option<(f64, i64)>,
    buckets: [Bucket; BUCKETS],
    pub(super) ejected: Option<Ejection>,
    /// A trial request is out: nobody else is let through until it ends.
    pub(super) trial: bool,
    pub(super) requests: u64,
    pub(super) failures: u64,
    /// Failures since the last success.
    streak: u32,
}

impl Health {
    /// The latency estimate, if there is one.
    pub(super) fn latency_ms(&self) -> Option<f64> {
        self.latency.map(|(l, _)| l)
    }

    /// Record a latency sample: a sample above the estimate replaces it at
    /// once (a replica that turns slow is avoided from its first slow
    /// answer); one below pulls it down with a weight that grows with the
    /// time since the last sample.
    pub(super) fn observe_latency(&mut self, sample_ms: f64, now_ms: i64, decay_ms: u64) {
        let next = match self.latency {
            Some((est, _)) if sample_ms >= est => sample_ms,
            Some((est, at)) => {
                let elapsed = (now_ms - at).max(0) as f64;
                let keep = (-elapsed / decay_ms.max(1) as f64).exp();
                est * keep + sample_ms * (1.0 - keep)
            }
            None => sample_ms,
        };
        self.latency = Some((next, now_ms));
    }

    /// Whether the deployment is ejected at `now_ms`.
    pub(super) fn ejected_at(&self, now_ms: i64) -> bool {
        self.ejected
            .is_some_and(|e| e.until_ms.is_none_or(|u| now_ms < u))
    }

    /// Whether a trial may go now: ejected, the cooldown over, no trial out.
    pub(super) fn trial_due(&self, now_ms: i64) -> bool {
        self.ejected.is_some() && !self.ejected_at(now_ms) && !self.trial
    }

    /// Whether a request may go here in the normal course.
    pub(super) fn available(&self, now_ms: i64) -> bool {
        self.ejected.is_none() || self.trial_due(now_ms)
    }

    /// Record the outcome of an attempt; `trial`: it was the trial.
    pub(super) fn record(&mut self, outcome: Outcome, trial: bool, now_ms: i64, cfg: &Resilience) {
        self.requests += 1;
        match outcome {
            Outcome::Ok => {
                self.streak = 0;
                self.bucket(now_ms, cfg).ok += 1;
                if trial
                    || self
                        .ejected
                        .is_some_and(|e| e.reason != Reason::HealthCheck)
                {
                    self.readmit();
                }
            }
            Outcome::Failed => {
                self.failures += 1;
                self.streak += 1;
                self.bucket(now_ms, cfg).failed += 1;
                let (ok, failed) = self.window(now_ms, cfg);
                let (total, min) = (ok + failed, cfg.breaker_threshold.max(1));
                // A ratio over the window, or a run of failures: a dead
                // host with a long good history is not kept for as many
                // failures as it had successes.
                let over = (total >= min
                    && f64::from(failed) >= cfg.eject_ratio * f64::from(total))
                    || self.streak >= min;
                if trial || over {
                    self.eject(Reason::Failures, Some(cfg.breaker_cooldown_ms), now_ms);
                }
            }
            Outcome::RateLimited { retry_after_ms } => {
                let wait = retry_after_ms.unwrap_or(cfg.rate_limit_cooldown_ms);
                self.eject(Reason::RateLimited, Some(wait), now_ms);
            }
        }
    }

    /// Out of rotation for `for_ms` (`None`: until a check passes). A
    /// longer ejection already running is kept.
    pub(super) fn eject(&mut self, reason: Reason, for_ms: Option<u64>, now_ms: i64) {
        let until_ms = for_ms.map(|ms| now_ms.saturating_add_unsigned(ms));
        let keep = self.ejected.is_some_and(|e| {
            self.ejected_at(now_ms)
                && match (e.until_ms, until_ms) {
                    (None, _) => true,
                    (Some(_), None) => false,
                    (Some(old), Some(new)) => old > new,
                }
        });
        if !keep {
            self.ejected = Some(Ejection { until_ms, reason });
        }
        self.buckets = [Bucket::default(); BUCKETS];
    }

    /// Back in rotation with a clean slate: the old latency estimate and
    /// failures describe the deployment before it was ejected.
    pub(super) fn readmit(&mut self) {
        self.ejected = None;
        self.latency = None;
        self.streak = 0;
        self.buckets = [Bucket::default(); BUCKETS];
    }

    fn bucket_ms(cfg: &Resilience) -> i64 {
        i64::try_from(cfg.eject_window_ms / BUCKETS as u64)
            .unwrap_or(i64::MAX)
            .max(1)
    }

    fn bucket(&mut self, now_ms: i64, cfg: &Resilience) -> &mut Bucket {
        let width = Self::bucket_ms(cfg);
        let start = now_ms - now_ms.rem_euclid(width);
        let slot = usize::try_from((start / width).rem_euclid(BUCKETS as i64)).unwrap_or(0);
        let b = &mut self.buckets[slot];
        if b.start_ms != start {
            *b = Bucket {
                start_ms: start,
                ..Bucket::default()
            };
        }
        b
    }

    /// Outcomes (ok, failed) within the window ending at `now_ms`.
    fn window(&self, now_ms: i64, cfg: &Resilience) -> (u32, u32) {
        let horizon = now_ms - Self::bucket_ms(cfg) * BUCKETS as i64;
        self.buckets
            .iter()
            .filter(|b| b.start_ms > horizon)
            .fold((0, 0), |(ok, f), b| (ok + b.ok, f + b.failed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Resilience {
        Resilience {
            breaker_threshold: 4,
            eject_ratio: 0.5,
            eject_window_ms: 10_000,
            breaker_cooldown_ms: 1_000,
            rate_limit_cooldown_ms: 3_000,
            ..Resilience::default()
        }
    }

    #[test]
    fn ejects_past_the_ratio_only_after_the_minimum() {
        let c = cfg();
        let mut h = Health::default();
        for t in 0..3 {
            h.record(Outcome::Failed, false, t, &c);
        }
        assert!(
            h.available(3),
            "three failures are under the minimum of four"
        );
        h.record(Outcome::Failed, false, 3, &c);
        assert!(!h.available(4), "four of four: ejected");
        let mut h = Health::default();
        for t in 0..3 {
            h.record(Outcome::Ok, false, t, &c);
        }
        h.record(Outcome::Failed, false, 3, &c);
        h.record(Outcome::Failed, false, 4, &c);
        assert!(h.available(5), "2 of 5 is under half");
        h.record(Outcome::Failed, false, 5, &c);
        assert!(!h.available(6), "3 of 6 is half: ejected");
        assert_eq!(h.ejected.map(|e| e.reason), Some(Reason::Failures));
        assert!(
            !h.available(1_004) && h.trial_due(1_005),
            "cooldown, then a trial"
        );
    }

    #[test]
    fn a_run_of_failures_ejects_despite_a_good_history() {
        let c = cfg();
        let mut h = Health::default();
        for t in 0..100 {
            h.record(Outcome::Ok, false, t, &c);
        }
        for t in 100..103 {
            h.record(Outcome::Failed, false, t, &c);
        }
        assert!(h.available(103), "three in a row");
        h.record(Outcome::Failed, false, 103, &c);
        assert!(!h.available(104), "four in a row: ejected");
    }

    #[test]
    fn old_failures_age_out_of_the_window() {
        let c = cfg();
        let mut h = Health::default();
        for t in 0..3 {
            h.record(Outcome::Failed, false, t, &c);
        }
        h.record(Outcome::Ok, false, 20_000, &c);
        h.record(Outcome::Failed, false, 20_001, &c);
        assert!(
            h.available(20_002),
            "the first three are outside the window"
        );
    }

    #[test]
    fn a_trial_readmits_or_ejects_again() {
        let c = cfg();
        let mut h = Health::default();
        h.eject(Reason::Failures, Some(1_000), 0);
        h.trial = true;
        assert!(!h.trial_due(1_000), "one trial at a time");
        h.trial = false;
        h.record(Outcome::Failed, true, 1_000, &c);
        assert!(!h.available(1_999), "a failed trial ejects it again");
        h.record(Outcome::Ok, true, 2_000, &c);
        assert!(h.ejected.is_none() && h.latency_ms().is_none());
    }

    #[test]
    fn a_429_ejects_for_its_retry_after_or_the_default() {
        let c = cfg();
        let mut h = Health::default();
        let limited = |ms| Outcome::RateLimited { retry_after_ms: ms };
        h.record(limited(Some(2_000)), false, 0, &c);
        assert!(!h.available(1_999) && h.available(2_000));
        h.record(limited(None), false, 2_000, &c);
        assert!(!h.available(4_999) && h.available(5_000));
        h.record(limited(Some(10_000)), false, 5_000, &c);
        h.record(limited(Some(1)), false, 5_001, &c);
        assert!(
            !h.available(14_999),
            "a shorter ejection does not cut a longer one"
        );
    }

    #[test]
    fn health_check_ejections_wait_for_a_passing_check() {
        let c = cfg();
        let mut h = Health::default();
        h.eject(Reason::HealthCheck, None, 0);
        assert!(!h.available(i64::MAX), "no cooldown ends it");
        h.record(Outcome::Ok, false, 1, &c);
        assert!(
            h.ejected.is_some(),
            "a forced request does not override the check"
        );
        h.readmit();
        assert!(h.available(2));
    }

    #[test]
    fn latency_is_peak_sensitive_and_decays() {
        let mut h = Health::default();
        h.observe_latency(10.0, 0, 1_000);
        h.observe_latency(100.0, 1, 1_000);
        assert_eq!(h.latency_ms(), Some(100.0), "a peak is taken at once");
        h.observe_latency(10.0, 2, 1_000);
        assert!(
            h.latency_ms().unwrap() > 99.0,
            "a quick fall barely moves it"
        );
        h.observe_latency(10.0, 5_000, 1_000);
        assert!(
            h.latency_ms().unwrap() < 11.0,
            "after five decay times it is the new level"
        );
    }
}
