//! The choice and ejection rules, with an explicit clock and a seeded
//! random source.

use super::*;
use crate::backend::BackendKind;

fn deployments(spec: &[(&str, u32, u32)]) -> Vec<Deployment> {
    spec.iter()
        .map(|&(name, weight, priority)| Deployment {
            name: name.into(),
            backend: BackendKind::Vllm,
            base_url: format!("http://{name}"),
            upstream_model: "m".into(),
            api_key: None,
            weight,
            priority,
            health_check: false,
            prices: None,
            first_byte_timeout_secs: None,
        })
        .collect()
}

fn cfg() -> Resilience {
    Resilience {
        breaker_threshold: 3,
        breaker_cooldown_ms: 1_000,
        ..Resilience::default()
    }
}

/// One request: choose, answer after `latency(name)` ms, record success.
fn serve(r: &Arc<Router>, d: &[Deployment], now: &mut i64, latency: impl Fn(&str) -> i64) -> usize {
    let mut pick = r
        .choose("m", d, &vec![false; d.len()], Strategy::Latency, *now)
        .unwrap();
    *now += latency(&d[pick.index].name);
    pick.record(Outcome::Ok, *now, &cfg());
    pick.observe_latency(*now, &cfg());
    pick.index
}

fn shares(counts: &[u32]) -> Vec<f64> {
    let total: u32 = counts.iter().sum();
    counts
        .iter()
        .map(|&c| f64::from(c) / f64::from(total))
        .collect()
}

#[test]
fn equal_latencies_follow_the_weights() {
    let r = Router::new(7);
    let d = deployments(&[("heavy", 3, 0), ("light", 1, 0)]);
    let (mut now, mut counts) = (0, [0u32; 2]);
    for _ in 0..4_000 {
        counts[serve(&r, &d, &mut now, |_| 20)] += 1;
    }
    let s = shares(&counts);
    assert!((0.72..0.78).contains(&s[0]), "{s:?}");
}

#[test]
fn a_slow_deployment_is_left_alone_once_measured() {
    let r = Router::new(11);
    let d = deployments(&[("a", 1, 0), ("b", 1, 0), ("slow", 1, 0)]);
    let (mut now, mut counts) = (0, [0u32; 3]);
    let latency = |n: &str| if n == "slow" { 200 } else { 5 };
    for _ in 0..1_000 {
        counts[serve(&r, &d, &mut now, latency)] += 1;
    }
    assert!(counts[2] <= 3, "the slow one served {counts:?}");
    assert!(counts[0] > 300 && counts[1] > 300, "{counts:?}");
}

#[test]
fn load_moves_traffic_to_the_idle_deployment() {
    let r = Router::new(3);
    let d = deployments(&[("busy", 1, 0), ("idle", 1, 0)]);
    let mut now = 0;
    for _ in 0..20 {
        serve(&r, &d, &mut now, |_| 10);
    }
    // Ten requests held open on whichever was chosen: the rest go elsewhere.
    let skip = [false, true];
    let held: Vec<Pick> = (0..10)
        .map(|_| r.choose("m", &d, &skip, Strategy::Latency, now).unwrap())
        .collect();
    let next: Vec<usize> = (0..50)
        .map(|_| {
            r.choose("m", &d, &[false; 2], Strategy::Latency, now)
                .unwrap()
                .index
        })
        .collect();
    assert!(next.iter().all(|&i| i == 1), "{next:?}");
    drop(held);
    assert!(r.states("m", &d, now).iter().all(|s| s.in_flight == 0));
}

#[test]
fn weighted_routing_ignores_latency() {
    let r = Router::new(5);
    let d = deployments(&[("fast", 1, 0), ("slow", 1, 0)]);
    let mut counts = [0u32; 2];
    let mut now = 0;
    for _ in 0..2_000 {
        let mut pick = r
            .choose("m", &d, &[false; 2], Strategy::Weighted, now)
            .unwrap();
        now += if pick.index == 0 { 1 } else { 100 };
        pick.observe_latency(now, &cfg());
        counts[pick.index] += 1;
    }
    let s = shares(&counts);
    assert!((0.45..0.55).contains(&s[0]), "{s:?}");
}

#[test]
fn failures_eject_and_a_trial_after_the_cooldown_readmits() {
    let c = cfg();
    let r = Router::new(1);
    let d = deployments(&[("dead", 1, 0), ("ok", 1, 0)]);
    let only_dead = [false, true];
    for t in 0..3 {
        let mut p = r.choose("m", &d, &only_dead, Strategy::Latency, t).unwrap();
        assert_eq!(p.index, 0);
        p.record(Outcome::Failed, t, &c);
    }
    let s = &r.states("m", &d, 3)[0];
    assert_eq!(
        (s.state, s.reason, s.ejected_until),
        ("ejected", Some(Reason::Failures), Some(1_002))
    );
    for t in 3..1_002 {
        let p = r
            .choose("m", &d, &[false; 2], Strategy::Latency, t)
            .unwrap();
        assert_eq!(p.index, 1, "ejected: never chosen at {t}");
    }
    let mut trial = r
        .choose("m", &d, &[false; 2], Strategy::Latency, 1_002)
        .unwrap();
    assert_eq!(
        trial.index, 0,
        "the first request after the cooldown is the trial"
    );
    let other = r
        .choose("m", &d, &[false; 2], Strategy::Latency, 1_002)
        .unwrap();
    assert_eq!(other.index, 1, "one trial at a time");
    trial.record(Outcome::Ok, 1_003, &c);
    drop(trial);
    assert_eq!(r.states("m", &d, 1_003)[0].state, "available");
}

#[test]
fn a_dropped_trial_lets_the_next_one_go() {
    let c = cfg();
    let r = Router::new(1);
    let d = deployments(&[("x", 1, 0), ("y", 1, 0)]);
    let mut p = r
        .choose("m", &d, &[false, true], Strategy::Latency, 0)
        .unwrap();
    p.record(
        Outcome::RateLimited {
            retry_after_ms: Some(2_000),
        },
        0,
        &c,
    );
    drop(p);
    assert_eq!(
        r.choose("m", &d, &[false; 2], Strategy::Latency, 1_999)
            .unwrap()
            .index,
        1
    );
    let trial = r
        .choose("m", &d, &[false; 2], Strategy::Latency, 2_000)
        .unwrap();
    assert_eq!(trial.index, 0);
    drop(trial);
    let again = r
        .choose("m", &d, &[false; 2], Strategy::Latency, 2_001)
        .unwrap();
    assert_eq!(
        again.index, 0,
        "the trial ended without an outcome: another goes"
    );
}

#[test]
fn lower_tiers_serve_only_when_the_upper_one_is_gone() {
    let c = cfg();
    let r = Router::new(9);
    let d = deployments(&[("p1", 1, 0), ("p2", 1, 0), ("backup", 5, 1)]);
    for _ in 0..200 {
        let i = r
            .choose("m", &d, &[false; 3], Strategy::Latency, 0)
            .unwrap()
            .index;
        assert!(i < 2, "the backup tier served while the top tier was up");
    }
    let p1 = r
        .choose("m", &d, &[false, true, true], Strategy::Latency, 0)
        .unwrap();
    assert_eq!(p1.index, 0);
    let mut p1 = p1;
    p1.record(
        Outcome::RateLimited {
            retry_after_ms: None,
        },
        0,
        &c,
    );
    assert_eq!(
        r.choose("m", &d, &[false; 3], Strategy::Latency, 1)
            .unwrap()
            .index,
        1
    );
    // Tried p2 already in this request: the next tier, not the ejected p1.
    assert_eq!(
        r.choose("m", &d, &[false, true, false], Strategy::Latency, 1)
            .unwrap()
            .index,
        2
    );
    let mut p2 = r
        .choose("m", &d, &[true, false, true], Strategy::Latency, 1)
        .unwrap();
    p2.record(
        Outcome::RateLimited {
            retry_after_ms: Some(60_000),
        },
        1,
        &c,
    );
    assert_eq!(
        r.choose("m", &d, &[false; 3], Strategy::Latency, 2)
            .unwrap()
            .index,
        2
    );
}

#[test]
fn when_everything_is_ejected_it_is_tried_anyway() {
    let c = cfg();
    let r = Router::new(2);
    let d = deployments(&[("a", 1, 0), ("b", 1, 0)]);
    for (i, wait) in [(0usize, 5_000u64), (1, 1_000)] {
        let mut skip = [true; 2];
        skip[i] = false;
        let mut p = r.choose("m", &d, &skip, Strategy::Latency, 0).unwrap();
        p.record(
            Outcome::RateLimited {
                retry_after_ms: Some(wait),
            },
            0,
            &c,
        );
    }
    let p = r
        .choose("m", &d, &[false; 2], Strategy::Latency, 10)
        .unwrap();
    assert_eq!(p.index, 1, "the one back soonest");
    assert!(
        r.choose("m", &d, &[true; 2], Strategy::Latency, 10)
            .is_none()
    );
}

#[test]
fn readiness_checks_eject_until_one_passes() {
    let r = Router::new(4);
    let d = deployments(&[("loading", 1, 0), ("ready", 1, 0)]);
    r.checked("m", &d[0], false, 0);
    let s = &r.states("m", &d, 1_000_000)[0];
    assert_eq!(
        (s.state, s.reason, s.ejected_until),
        ("ejected", Some(Reason::HealthCheck), None)
    );
    for t in 0..100 {
        assert_eq!(
            r.choose("m", &d, &[false; 2], Strategy::Latency, t)
                .unwrap()
                .index,
            1
        );
    }
    r.checked("m", &d[0], true, 100);
    assert_eq!(r.states("m", &d, 100)[0].state, "available");
}
