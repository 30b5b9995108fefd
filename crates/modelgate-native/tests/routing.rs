//! One model, several deployments, through the real router, reqwest and
//! SQLite, with three mock upstreams: shares by latency and weight,
//! ejection and its end, 429s, tiers, readiness checks. Bounds, not exact
//! numbers: the machine may be slow or busy.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Harness, closed_port, hello};
use futures_util::{StreamExt, stream};
use modelgate_core::routing::Strategy;
use modelgate_testkit::MockUpstream;
use modelgate_testkit::clock::ManualClock;
use serde_json::{Value, json};

fn deployment(name: &str, url: &str, upstream: &str, weight: u32, priority: u32) -> Value {
    json!({"name": name, "backend": "vllm", "base_url": url, "upstream_model": upstream,
        "weight": weight, "priority": priority})
}

async fn model(h: &Harness, name: &str, deployments: Vec<Value>) -> String {
    let body = json!({"name": name, "deployments": deployments});
    let a = h.admin("POST", "/admin/api/models", Some(body)).await;
    assert_eq!(a.status, 201, "{}", a.text());
    a.json()["id"].as_str().unwrap().to_owned()
}

/// Send `n` chats, `parallel` at a time; each answer's status and latency.
async fn load(
    h: &Harness,
    key: &str,
    model: &str,
    n: usize,
    parallel: usize,
) -> Vec<(u16, Duration)> {
    stream::iter(0..n)
        .map(|_| async {
            let t = Instant::now();
            let a = h.chat(key, hello(model)).await;
            (a.status, t.elapsed())
        })
        .buffer_unordered(parallel)
        .collect()
        .await
}

/// The state the admin API shows of `model`'s deployment `name`.
async fn state(h: &Harness, model: &str, name: &str) -> Value {
    let all = h.admin("GET", "/admin/api/deployments", None).await.json();
    let m = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["model"] == model)
        .unwrap()
        .clone();
    m["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == name)
        .unwrap()
        .clone()
}

async fn mocks<const N: usize>() -> [MockUpstream; N] {
    let mut v = Vec::new();
    for _ in 0..N {
        v.push(MockUpstream::start().await.unwrap());
    }
    v.try_into().ok().unwrap()
}

#[tokio::test]
async fn a_slow_replica_gets_a_small_share() {
    let h = Harness::new().await;
    let (key, _) = h
        .key(json!({"name": "r", "quota": null, "rpm": 100000}))
        .await;
    let [a, b, slow] = mocks().await;
    let fast = "mock?ttft_ms=5";
    model(
        &h,
        "m",
        vec![
            deployment("a", &a.url(), fast, 1, 0),
            deployment("b", &b.url(), fast, 1, 0),
            deployment("slow", &slow.url(), "mock?ttft_ms=200", 1, 0),
        ],
    )
    .await;
    let answers = load(&h, &key, "m", 300, 2).await;
    assert!(answers.iter().all(|(s, _)| *s == 200));
    let served = [
        a.stats().requests,
        b.stats().requests,
        slow.stats().requests,
    ];
    // Only its first answers (before its latency was known) went to the
    // slow one: few enough that the p99 is the fast ones'.
    assert!(served[2] <= 10, "the slow replica served {served:?}");
    assert!(served[0] >= 60 && served[1] >= 60, "{served:?}");
    let mut lat: Vec<Duration> = answers.iter().map(|(_, l)| *l).collect();
    lat.sort();
    eprintln!("p50 {:?} p99 {:?} served {served:?}", lat[150], lat[296]);
    // Usage records name the deployment that served each request.
    let rows = h.usage().await["data"].as_array().unwrap().clone();
    let by = |name: &str| -> i64 {
        rows.iter()
            .filter(|r| r["deployment"] == name)
            .map(|r| r["requests"].as_i64().unwrap())
            .sum()
    };
    let recorded = [by("a"), by("b"), by("slow")].map(|n| u64::try_from(n).unwrap());
    assert_eq!(recorded, served);
}

#[tokio::test]
async fn weights_three_to_one_give_about_three_to_one() {
    let h = Harness::new().await;
    let (key, _) = h
        .key(json!({"name": "r", "quota": null, "rpm": 100000}))
        .await;
    let [heavy, light] = mocks().await;
    let same = "mock?ttft_ms=50";
    model(
        &h,
        "w",
        vec![
            deployment("heavy", &heavy.url(), same, 3, 0),
            deployment("light", &light.url(), same, 1, 0),
        ],
    )
    .await;
    let answers = load(&h, &key, "w", 400, 4).await;
    assert!(answers.iter().all(|(s, _)| *s == 200));
    let (x, y) = (heavy.stats().requests, light.stats().requests);
    let share = x as f64 / (x + y) as f64;
    assert!((0.6..0.9).contains(&share), "heavy {x}, light {y}");
}

#[tokio::test]
async fn a_refusing_replica_is_ejected_and_back_after_its_cooldown() {
    let clock = ManualClock::new();
    let h = Harness::on_clock(&clock, |c| {
        c.resilience.breaker_threshold = 3;
        c.resilience.breaker_cooldown_ms = 1_000;
    })
    .await;
    let (key, _) = h
        .key(json!({"name": "r", "quota": null, "rpm": 100000}))
        .await;
    let [live] = mocks().await;
    let dead = closed_port();
    model(
        &h,
        "e",
        vec![
            deployment("dead", &dead, "mock", 1, 0),
            deployment("live", &live.url(), "mock", 1, 0),
        ],
    )
    .await;
    let answers = load(&h, &key, "e", 40, 1).await;
    assert!(
        answers.iter().all(|(s, _)| *s == 200),
        "every request fails over"
    );
    let s = state(&h, "e", "dead").await;
    assert_eq!(
        (s["state"].as_str(), s["reason"].as_str()),
        (Some("ejected"), Some("failures")),
        "{s}"
    );
    // Three failures eject it; a slow machine may have reached its first
    // trial (which fails again) before this look.
    let tried = s["requests"].as_i64().unwrap();
    assert!(tried >= 3 && s["failures"] == tried, "{s}");
    assert!(s["ejected_until"].is_i64());
    // It comes back to life; after the cooldown its trial finds it.
    let back = MockUpstream::bind(dead[7..].parse().unwrap())
        .await
        .unwrap();
    clock.advance(1_000);
    // Its trial finds it, then it serves again: how soon depends on the
    // shares the router gives by latency, which a busy machine moves.
    let mut sent = 0;
    while back.stats().requests < 5 && sent < 400 {
        assert_eq!(h.chat(&key, hello("e")).await.status, 200);
        sent += 1;
    }
    assert_eq!(state(&h, "e", "dead").await["state"], "available");
    assert!(
        back.stats().requests >= 5,
        "back in rotation: {:?} after {sent} requests",
        back.stats()
    );
}

#[tokio::test]
async fn a_429_moves_traffic_away_for_its_retry_after() {
    let clock = ManualClock::new();
    let h = Harness::on_clock(&clock, |_| {}).await;
    let (key, _) = h
        .key(json!({"name": "r", "quota": null, "rpm": 100000}))
        .await;
    let [limited, free] = mocks().await;
    model(
        &h,
        "l",
        vec![
            deployment(
                "limited",
                &limited.url(),
                "mock?fail_first=1&fail_status=429&retry_after=2",
                1,
                0,
            ),
            deployment("free", &free.url(), "mock", 1, 0),
        ],
    )
    .await;
    // Until the limited one has had its 429; the client never sees it.
    for _ in 0..200 {
        assert_eq!(h.chat(&key, hello("l")).await.status, 200);
        if limited.stats().requests > 0 {
            break;
        }
    }
    assert_eq!(limited.stats().requests, 1);
    let s = state(&h, "l", "limited").await;
    assert_eq!(
        (s["state"].as_str(), s["reason"].as_str()),
        (Some("ejected"), Some("rate_limited")),
        "{s}"
    );
    // Ejected for its Retry-After, counted from when the 429 came.
    let until = s["ejected_until"].as_i64().unwrap();
    assert_eq!(until, clock.now_ms() + 2_000, "{s}");
    for _ in 0..20 {
        assert_eq!(h.chat(&key, hello("l")).await.status, 200);
    }
    assert_eq!(
        limited.stats().requests,
        1,
        "nothing went to it for its Retry-After"
    );
    clock.advance(1_999);
    for _ in 0..20 {
        assert_eq!(h.chat(&key, hello("l")).await.status, 200);
    }
    assert_eq!(
        limited.stats().requests,
        1,
        "nor a millisecond before its end"
    );
    clock.advance(1);
    // Back in rotation after it: its trial and more. How soon depends on
    // the shares the router gives by latency, which a busy machine moves:
    // so the verdict is that it serves again, within a generous count.
    let mut sent = 0;
    while limited.stats().requests < 4 && sent < 400 {
        assert_eq!(h.chat(&key, hello("l")).await.status, 200);
        sent += 1;
    }
    assert!(
        limited.stats().requests >= 4,
        "back after it: {:?} after {sent} requests",
        limited.stats()
    );
}

#[tokio::test]
async fn lower_tiers_serve_only_when_the_top_tier_is_gone() {
    let h = Harness::new().await;
    let (key, _) = h
        .key(json!({"name": "r", "quota": null, "rpm": 100000}))
        .await;
    let [a, b, backup] = mocks().await;
    let id = model(
        &h,
        "t",
        vec![
            deployment("a", &a.url(), "mock", 1, 0),
            deployment("b", &b.url(), "mock", 1, 0),
            deployment("backup", &backup.url(), "mock", 1, 1),
        ],
    )
    .await;
    let answers = load(&h, &key, "t", 60, 2).await;
    assert!(answers.iter().all(|(s, _)| *s == 200));
    assert_eq!(
        backup.stats().requests,
        0,
        "the backup tier served while the top tier was up"
    );
    assert_eq!(a.stats().requests + b.stats().requests, 60);
    // The top tier goes down (both refuse connections): the backup serves
    // every request, and the failures eject the top tier.
    let patch = json!({"deployments": [
        deployment("a", &closed_port(), "mock", 1, 0),
        deployment("b", &closed_port(), "mock", 1, 0),
        deployment("backup", &backup.url(), "mock", 1, 1),
    ]});
    let p = h
        .admin("PATCH", &format!("/admin/api/models/{id}"), Some(patch))
        .await;
    assert_eq!(p.status, 200, "{}", p.text());
    let answers = load(&h, &key, "t", 30, 1).await;
    assert!(answers.iter().all(|(s, _)| *s == 200));
    assert_eq!(backup.stats().requests, 30);
    assert_eq!(state(&h, "t", "a").await["state"], "ejected");
}

#[tokio::test]
async fn a_replica_that_never_finishes_tls_is_given_up_at_the_connect_timeout() {
    // Accepts connections and holds them without a word: the TCP handshake
    // succeeds, the TLS one never ends.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", silent.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&accepted);
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = silent.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            held.push(conn);
        }
    });
    // Far above the connect timeout: a request that waited for it would
    // end in a 504, not an answer.
    let h = Harness::with(|c| {
        // Generous for the backup on a busy machine, far under the deadline.
        c.connect_timeout_ms = 2_000;
        c.timeout_ms = 60_000;
    })
    .await;
    let (key, _) = h.key(json!({"name": "r", "quota": null})).await;
    let [backup] = mocks().await;
    model(
        &h,
        "s",
        vec![
            deployment("silent", &url, "mock", 1, 0),
            deployment("backup", &backup.url(), "mock", 1, 1),
        ],
    )
    .await;
    let a = h.chat(&key, hello("s")).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(backup.stats().requests, 1);
    assert!(
        accepted.load(Ordering::SeqCst) >= 1,
        "the top tier was tried"
    );
    // Alone, it is a timeout of the attempt, not of the whole request.
    model(&h, "lone", vec![deployment("silent", &url, "mock", 1, 0)]).await;
    let a = h.chat(&key, hello("lone")).await;
    assert_eq!(
        (a.status, a.json()["error"]["code"].clone()),
        (504, json!("upstream_timeout"))
    );
    holder.abort();
}

#[tokio::test]
async fn a_replica_failing_its_readiness_check_gets_nothing_until_it_passes() {
    // Weighted choice: by latency, the share a readmitted replica wins
    // depends on how fast this machine answers its first requests.
    let h = Harness::with(|c| c.resilience.strategy = Strategy::Weighted).await;
    let (key, _) = h
        .key(json!({"name": "r", "quota": null, "rpm": 100000}))
        .await;
    let [loading, ready] = mocks().await;
    let mut checked = deployment("loading", &loading.url(), "mock", 1, 0);
    checked["health_check"] = json!(true);
    model(
        &h,
        "h",
        vec![checked, deployment("ready", &ready.url(), "mock", 1, 0)],
    )
    .await;
    loading.set_ready(false);
    h.gateway.check_deployments().await.unwrap();
    let s = state(&h, "h", "loading").await;
    assert_eq!(
        (s["reason"].as_str(), s["ejected_until"].is_null()),
        (Some("health_check"), true),
        "{s}"
    );
    load(&h, &key, "h", 20, 2).await;
    assert_eq!(loading.stats().requests, 0);
    loading.set_ready(true);
    h.gateway.check_deployments().await.unwrap();
    assert_eq!(state(&h, "h", "loading").await["state"], "available");
    // Half of 40 on average; under 5 has a chance below one in a million.
    load(&h, &key, "h", 40, 2).await;
    assert!(loading.stats().requests >= 5, "{:?}", loading.stats());
}

#[tokio::test]
async fn deployments_are_checked_and_never_show_their_keys() {
    let h = Harness::new().await;
    let [m] = mocks().await;
    let bad = [
        json!({"name": "x", "backend": "vllm", "base_url": m.url(), "deployments": [deployment("a", &m.url(), "mock", 1, 0)]}),
        json!({"name": "x", "deployments": [deployment("a", &m.url(), "mock", 0, 0)]}),
        json!({"name": "x", "deployments": [deployment("a", &m.url(), "mock", 1, 0), deployment("a", &m.url(), "mock", 1, 0)]}),
        json!({"name": "x", "deployments": [deployment("a", "ftp://h", "mock", 1, 0)]}),
        json!({"name": "x", "deployments": [{"backend": "vllm", "base_url": m.url(), "surprise": 1}]}),
    ];
    for body in bad {
        let a = h
            .admin("POST", "/admin/api/models", Some(body.clone()))
            .await;
        assert_eq!(a.status, 400, "{body}: {}", a.text());
        assert!(a.json()["error"]["param"].is_string() || a.json()["error"]["message"].is_string());
    }
    let mut keyed = deployment("k", &m.url(), "mock", 1, 0);
    keyed["api_key"] = json!("sk-deployment-secret");
    let id = model(
        &h,
        "k",
        vec![keyed, deployment("n", &m.url(), "mock", 1, 0)],
    )
    .await;
    let shown = h
        .admin("GET", &format!("/admin/api/models/{id}"), None)
        .await;
    assert!(!shown.text().contains("sk-deployment-secret"));
    assert_eq!(shown.json()["deployments"][0]["has_api_key"], true);
    let all = h.admin("GET", "/admin/api/deployments", None).await.text();
    assert!(
        !all.contains("sk-deployment-secret") && !all.contains(&m.url()),
        "{all}"
    );
    // A patch that leaves a deployment's key out keeps it.
    let patch = json!({"deployments": [deployment("k", &m.url(), "mock", 2, 0)]});
    let p = h
        .admin("PATCH", &format!("/admin/api/models/{id}"), Some(patch))
        .await;
    assert_eq!(p.status, 200, "{}", p.text());
    assert_eq!(p.json()["deployments"][0]["has_api_key"], true);
    let (key, _) = h
        .key(json!({"name": "r", "quota": null, "rpm": 100000}))
        .await;
    assert_eq!(h.chat(&key, hello("k")).await.status, 200);
    assert_eq!(
        m.last_request()["authorization"],
        "Bearer sk-deployment-secret"
    );
    // Changing the backend fields of a model with deployments is refused.
    let p = h
        .admin(
            "PATCH",
            &format!("/admin/api/models/{id}"),
            Some(json!({"base_url": m.url()})),
        )
        .await;
    assert_eq!(
        (p.status, p.json()["error"]["param"].as_str()),
        (400, Some("deployments"))
    );
}

/// A replica that accepts connections and never answers (an overloaded
/// server does this) is given up at its first-byte deadline, streamed or
/// not, and the request fails over; the silences count against its health
/// until it is ejected.
#[tokio::test]
async fn a_replica_silent_past_its_first_byte_deadline_fails_over_and_is_ejected() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = silent.accept().await {
            held.push(conn);
        }
    });
    // Far above the first-byte deadline: a request that waited for the
    // whole deadline would not be answered within the test's patience.
    let h = Harness::with(|c| {
        c.timeout_ms = 600_000;
        c.resilience.breaker_threshold = 2;
        c.resilience.breaker_cooldown_ms = 600_000;
    })
    .await;
    let (key, _) = h.key(json!({"name": "r", "quota": null})).await;
    let [backup] = mocks().await;
    let mut first = deployment("silent", &url, "mock", 1, 0);
    first["first_byte_timeout_secs"] = json!(1);
    model(
        &h,
        "s",
        vec![first, deployment("backup", &backup.url(), "mock", 1, 1)],
    )
    .await;
    let patience = Duration::from_secs(60);
    let buffered = tokio::time::timeout(patience, h.chat(&key, hello("s"))).await;
    assert_eq!(buffered.expect("answered").status, 200);
    let mut stream = hello("s");
    stream["stream"] = json!(true);
    let streamed = tokio::time::timeout(patience, h.chat(&key, stream)).await;
    let streamed = streamed.expect("answered");
    assert_eq!(streamed.status, 200, "{}", streamed.text());
    assert!(streamed.text().contains("[DONE]"));
    assert_eq!(backup.stats().requests, 2);
    let s = state(&h, "s", "silent").await;
    assert_eq!(
        (s["state"].as_str(), s["failures"].as_i64()),
        (Some("ejected"), Some(2)),
        "{s}"
    );
    holder.abort();
}
