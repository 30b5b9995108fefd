//! Which deployment serves a request: priority tiers, then power of two
//! choices by load and latency, biased by weight; passive ejection on
//! failures and 429s, trial requests after a cooldown.
//!
//! The state is this instance's own (this process; this isolate on
//! Workers): in-flight counts and latencies are what this instance sees,
//! so there is no shared counter to drift or to read stale.
//!
//! The choice, within the best tier that has an available deployment:
//! 1. a deployment whose ejection cooldown is over and has no trial out
//!    takes the request as its trial;
//! 2. otherwise draw one deployment by weight, then a second by weight
//!    among the rest, and keep the first unless the second costs clearly
//!    less, the cost being the latency estimate times `1 + in_flight /
//!    weight`. With equal costs the first draw decides, so traffic follows
//!    the weights exactly; a slow or overloaded deployment loses every
//!    comparison it is drawn into.
//!
//! If nothing untried is available, the untried ejected ones are tried
//! anyway (best tier, soonest back first) as trials: the gateway's guess
//! that they are down is not a reason to fail a request they may serve.

mod health;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::Serialize;

use crate::deployment::Deployment;
use crate::resilience::Resilience;
pub use crate::resilience::Strategy;

use health::Health;
pub use health::{Outcome, Reason};

/// A second draw wins only if it costs less than the first by this factor:
/// latencies within it are noise, and the weights decide.
const CLEARLY_LESS: f64 = 1.25;

struct State {
    rng: fastrand::Rng,
    health: HashMap<String, Health>,
}

/// The routing state of one instance (see the module docs).
pub struct Router {
    state: Mutex<State>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Router")
    }
}

/// A deployment's state is keyed by its URL too: pointed elsewhere, it
/// starts afresh.
fn key(model: &str, d: &Deployment) -> String {
    format!("{model}\u{1f}{}\u{1f}{}", d.name, d.base_url)
}

/// A deployment as the admin API shows its state on this instance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeploymentState {
    /// The deployment's name.
    pub name: String,
    /// `available`, `ejected`, or `trial` (ejection over, next request is
    /// its trial).
    pub state: &'static str,
    /// Why it was ejected, while it is.
    pub reason: Option<Reason>,
    /// Until when (ms since the epoch); `null` while ejected: until a
    /// readiness check passes.
    pub ejected_until: Option<i64>,
    /// Requests in flight on this instance.
    pub in_flight: u32,
    /// Latency estimate in ms (time to first byte for streams), if any.
    pub latency_ms: Option<f64>,
    /// Attempts and failed attempts on this instance since it started.
    pub requests: u64,
    /// See `requests`.
    pub failures: u64,
}

impl Router {
    /// A router whose random draws start from `seed`.
    pub fn new(seed: u64) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                rng: fastrand::Rng::with_seed(seed),
                health: HashMap::new(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Choose among `deployments` of `model`, leaving out those `skip`
    /// marks (already tried by this request, or unable to serve it).
    /// `None` when every one is skipped.
    pub fn choose(
        self: &Arc<Self>,
        model: &str,
        deployments: &[Deployment],
        skip: &[bool],
        strategy: Strategy,
        now_ms: i64,
    ) -> Option<Pick> {
        let mut st = self.lock();
        let State { rng, health } = &mut *st;
        let keys: Vec<String> = deployments.iter().map(|d| key(model, d)).collect();
        let untried: Vec<usize> = (0..deployments.len())
            .filter(|&i| !skip.get(i).copied().unwrap_or(false))
            .collect();
        let state = |i: usize| health.get(&keys[i]);
        let available: Vec<usize> = untried
            .iter()
            .copied()
            .filter(|&i| state(i).is_none_or(|h| h.available(now_ms)))
            .collect();
        let forced = available.is_empty();
        let pool = if forced { untried } else { available };
        let tier = pool.iter().map(|&i| deployments[i].priority).min()?;
        let pool: Vec<usize> = pool
            .into_iter()
            .filter(|&i| deployments[i].priority == tier)
            .collect();
        let (index, trial) = if forced {
            let back = |i: usize| {
                state(i)
                    .and_then(|h| h.ejected)
                    .map_or(i64::MIN, |e| e.until_ms.unwrap_or(i64::MAX))
            };
            (pool.iter().copied().min_by_key(|&i| back(i))?, true)
        } else if let Some(i) = pool
            .iter()
            .copied()
            .find(|&i| state(i).is_some_and(|h| h.trial_due(now_ms)))
        {
            (i, true)
        } else {
            (
                two_choices(rng, &pool, deployments, strategy, state)?,
                false,
            )
        };
        let h = health.entry(keys[index].clone()).or_default();
        h.in_flight += 1;
        if trial {
            h.trial = true;
        }
        Some(Pick {
            router: Arc::clone(self),
            key: keys[index].clone(),
            index,
            trial,
            started_ms: now_ms,
            recorded: false,
            timed: false,
        })
    }

    /// Take the result of a readiness check of `deployment`: a failure
    /// ejects it until a check passes; a pass ends such an ejection.
    pub fn checked(&self, model: &str, deployment: &Deployment, ready: bool, now_ms: i64) {
        let mut st = self.lock();
        let h = st.health.entry(key(model, deployment)).or_default();
        if !ready {
            h.eject(Reason::HealthCheck, None, now_ms);
        } else if h.ejected.is_some_and(|e| e.reason == Reason::HealthCheck) {
            h.readmit();
        }
    }

    /// The state of each of `deployments` of `model` on this instance.
    pub fn states(
        &self,
        model: &str,
        deployments: &[Deployment],
        now_ms: i64,
    ) -> Vec<DeploymentState> {
        let st = self.lock();
        deployments
            .iter()
            .map(|d| {
                let h = st.health.get(&key(model, d)).cloned().unwrap_or_default();
                let state = match (h.ejected, h.ejected_at(now_ms)) {
                    (None, _) => "available",
                    (Some(_), true) => "ejected",
                    (Some(_), false) => "trial",
                };
                DeploymentState {
                    name: d.name.clone(),
                    state,
                    reason: h.ejected.map(|e| e.reason),
                    ejected_until: h.ejected.and_then(|e| e.until_ms),
                    in_flight: h.in_flight,
                    latency_ms: h.latency_ms().map(|l| (l * 10.0).round() / 10.0),
                    requests: h.requests,
                    failures: h.failures,
                }
            })
            .collect()
    }
}

/// One weighted draw from `pool`.
fn draw(rng: &mut fastrand::Rng, pool: &[usize], weight: impl Fn(usize) -> u64) -> Option<usize> {
    let total: u64 = pool.iter().map(|&i| weight(i)).sum();
    if total == 0 {
        return None;
    }
    let mut r = rng.u64(0..total);
    for &i in pool {
        let w = weight(i);
        if r < w {
            return Some(i);
        }
        r -= w;
    }
    None
}

/// A chosen deployment with a request in flight on it. Dropping it ends
/// the request's share of the load (and lets another trial go, if this
/// trial ended without an outcome).
#[derive(Debug)]
pub struct Pick {
    router: Arc<Router>,
    key: String,
    /// Index into the deployments chosen among.
    pub index: usize,
    trial: bool,
    started_ms: i64,
    recorded: bool,
    timed: bool,
}

impl Pick {
    /// Record what the attempt came to (once; later calls are ignored).
    pub fn record(&mut self, outcome: Outcome, now_ms: i64, cfg: &Resilience) {
        if std::mem::replace(&mut self.recorded, true) {
            return;
        }
        let mut st = self.router.lock();
        let h = st.health.entry(self.key.clone()).or_default();
        h.record(outcome, self.trial, now_ms, cfg);
        if self.trial {
            h.trial = false;
        }
    }

    /// Record the time from the choice to now as a latency sample (once):
    /// the first byte of a stream, the whole of a buffered answer. A trial
    /// gives none: it opens a cold connection, and a deployment that lost
    /// every comparison on one slow sample would never be measured again.
    pub fn observe_latency(&mut self, now_ms: i64, cfg: &Resilience) {
        if std::mem::replace(&mut self.timed, true) || self.trial {
            return;
        }
        let sample = (now_ms - self.started_ms).max(0) as f64;
        let mut st = self.router.lock();
        if let Some(h) = st.health.get_mut(&self.key) {
            h.observe_latency(sample, now_ms, cfg.latency_decay_ms);
        }
    }
}

impl Drop for Pick {
    fn drop(&mut self) {
        let mut st = self.router.lock();
        if let Some(h) = st.health.get_mut(&self.key) {
            h.in_flight = h.in_flight.saturating_sub(1);
            if self.trial && !self.recorded {
                h.trial = false;
            }
        }
    }
}

/// Two deployments of `pool` drawn by weight; with the latency strategy,
/// the second wins if its expected wait (latency, scaled by its load per
/// weight) is clearly less than the first's.
fn two_choices<'a>(
    rng: &mut fastrand::Rng,
    pool: &[usize],
    deployments: &[Deployment],
    strategy: Strategy,
    state: impl Fn(usize) -> Option<&'a Health>,
) -> Option<usize> {
    let weight = |i: usize| u64::from(deployments[i].weight.max(1));
    let a = draw(rng, pool, weight)?;
    let rest: Vec<usize> = pool.iter().copied().filter(|&i| i != a).collect();
    let b = match (strategy, draw(rng, &rest, weight)) {
        (Strategy::Latency, Some(b)) => b,
        _ => return Some(a),
    };
    let known = pool
        .iter()
        .filter_map(|&i| state(i).and_then(Health::latency_ms))
        .fold(f64::INFINITY, f64::min);
    let cost = |i: usize| {
        let h = state(i);
        let latency = h
            .and_then(Health::latency_ms)
            .unwrap_or(if known.is_finite() { known } else { 1.0 });
        let load = f64::from(h.map_or(0, |h| h.in_flight));
        latency * (1.0 + load / weight(i) as f64)
    };
    Some(if cost(b) * CLEARLY_LESS < cost(a) {
        b
    } else {
        a
    })
}

#[cfg(test)]
mod tests;
