//! The Redis limiter against a real redis-server (started per test on a
//! free loopback port, stopped by the test).

use std::sync::Arc;
use std::time::Duration;

use modelgate_core::error::StoreError;
use modelgate_core::ports::RateLimiter;
use modelgate_redis::RedisLimiter;
use modelgate_testkit::service::{Service, free_port};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_sharing_redis_admit_exactly_rpm() {
    let Some(redis) = Service::redis() else {
        return;
    };
    // Two limiters with their own connections: two gateway processes.
    let a = Arc::new(RedisLimiter::new(&redis.url("redis")).unwrap());
    let b = Arc::new(RedisLimiter::new(&redis.url("redis")).unwrap());
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let l = if i % 2 == 0 {
                Arc::clone(&a)
            } else {
                Arc::clone(&b)
            };
            tokio::spawn(async move { l.acquire("key_x", 10, 1, 0).await.unwrap() })
        })
        .collect();
    let mut allowed = 0;
    for t in tasks {
        let d = t.await.unwrap();
        if d.allowed {
            allowed += 1;
        } else {
            assert!(d.retry_after_ms > 0 && d.retry_after_ms <= 6_000, "{d:?}");
        }
    }
    assert_eq!(allowed, 10);
    assert!(
        a.acquire("key_y", 10, 1, 0).await.unwrap().allowed,
        "keys are independent"
    );
}

#[tokio::test]
async fn refusals_cost_nothing_and_headers_add_up() {
    let Some(redis) = Service::redis() else {
        return;
    };
    let l = RedisLimiter::new(&redis.url("redis")).unwrap();
    let first = l.acquire("k", 3, 1, 0).await.unwrap();
    assert!(first.allowed);
    assert_eq!(first.remaining, 2);
    assert!((19_000..=20_000).contains(&first.reset_ms), "{first:?}");
    assert!(l.acquire("k", 3, 1, 0).await.unwrap().allowed);
    assert!(l.acquire("k", 3, 1, 0).await.unwrap().allowed);
    for _ in 0..10 {
        assert!(!l.acquire("k", 3, 1, 0).await.unwrap().allowed);
    }
    // A refused request did not move the limit: at 1 per 20 s nothing is
    // back yet, and the wait reported is under one interval.
    let d = l.acquire("k", 3, 1, 0).await.unwrap();
    assert!(!d.allowed && d.retry_after_ms <= 20_000, "{d:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tokens_per_minute_are_exact_across_instances_and_given_back() {
    let Some(redis) = Service::redis() else {
        return;
    };
    let a = Arc::new(RedisLimiter::new(&redis.url("redis")).unwrap());
    let b = Arc::new(RedisLimiter::new(&redis.url("redis")).unwrap());
    let started = std::time::Instant::now();
    // 1,000 tokens a minute, 50 requests of 70: 14 fit, plus what the
    // time the test takes brings back (Redis keeps the real clock).
    let burst = |n: usize| {
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                let l = Arc::clone(if i % 2 == 0 { &a } else { &b });
                tokio::spawn(async move { l.acquire("tpm:key_t", 1000, 70, 0).await.unwrap() })
            })
            .collect();
        async move {
            let mut allowed = 0;
            for t in tasks {
                allowed += usize::from(t.await.unwrap().allowed);
            }
            allowed
        }
    };
    let first = burst(50).await;
    assert!(first >= 14, "{first}");
    // The request limit of the same key is apart from its token limit.
    assert!(a.acquire("key_t", 1, 1, 0).await.unwrap().allowed);
    // 700 of what was taken is given back: 10 more requests of 70 fit.
    a.refund("tpm:key_t", 1000, 700, 0).await.unwrap();
    let second = burst(20).await;
    assert!(second >= 10, "{second}");
    // Never more than the minute's 1,000, the 700 given back, and what
    // came back with the time.
    let replenished = started.elapsed().as_secs_f64() * 1000.0 / 60.0;
    let most = ((1700.0 + replenished) / 70.0).floor() as usize;
    assert!(first + second <= most, "{first} + {second} > {most}");
}

#[tokio::test]
async fn unreachable_redis_is_an_error_never_an_open_gate() {
    let port = free_port();
    let l = RedisLimiter::new(&format!("redis://127.0.0.1:{port}")).unwrap();
    let started = std::time::Instant::now();
    match l.acquire("k", 10, 1, 0).await {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5), "fails fast");
}

#[tokio::test]
async fn recovers_when_redis_comes_back() {
    let Some(redis) = Service::redis() else {
        return;
    };
    let port = redis.port();
    let l = RedisLimiter::new(&redis.url("redis")).unwrap();
    assert!(l.acquire("k", 100, 1, 0).await.unwrap().allowed);
    drop(redis);
    assert!(matches!(
        l.acquire("k", 100, 1, 0).await,
        Err(StoreError::Unavailable(_))
    ));
    let _redis = Service::redis_on(port);
    let mut recovered = false;
    for _ in 0..50 {
        if let Ok(d) = l.acquire("k", 100, 1, 0).await {
            recovered = d.allowed;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "the same limiter works again without a restart");
}
