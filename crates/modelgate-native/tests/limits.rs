//! Admission under concurrency: exact rate limits, quotas that are never
//! overspent, and the body limit.

mod common;

use std::sync::Arc;

use axum::body::Body;
use common::{Harness, hello};
use serde_json::json;
use tower::ServiceExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_parallel_requests_on_rpm_ten_admit_exactly_ten() {
    let h = Arc::new(Harness::new().await);
    let (key, _) = h.key(json!({"name": "r", "rpm": 10})).await;
    h.model("m", "vllm", "mock?tokens=1").await;
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (h, key) = (Arc::clone(&h), key.clone());
            tokio::spawn(async move { h.chat(&key, hello("m")).await })
        })
        .collect();
    let mut answers = vec![];
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    let ok = answers.iter().filter(|a| a.status == 200).count();
    let limited: Vec<_> = answers.iter().filter(|a| a.status == 429).collect();
    assert_eq!((ok, limited.len()), (10, 40));
    for a in &limited {
        assert_eq!(a.json()["error"]["code"], "rate_limit_exceeded");
        assert_eq!(a.json()["error"]["type"], "requests");
        let retry: u64 = a.headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=6).contains(&retry), "{retry}");
        assert_eq!(a.headers["x-ratelimit-remaining-requests"], "0");
        assert_eq!(a.headers["x-ratelimit-limit-requests"], "10");
    }
    assert_eq!(
        h.mock.stats().requests,
        10,
        "refused requests never reach the upstream"
    );
    assert_eq!(
        h.usage().await["totals"]["requests"],
        10,
        "one usage record per admitted request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_requests_never_settle_more_than_the_quota() {
    let h = Arc::new(Harness::new().await);
    // Each request reserves its prompt bound (3 words = 18 bytes + 16) + 10.
    let (key, id) = h.key(json!({"name": "q", "quota": 200, "rpm": 1000})).await;
    h.model("m", "vllm", "mock?tokens=10&itl_ms=2").await;
    let tasks: Vec<_> = (0..30)
        .map(|_| {
            let (h, key) = (Arc::clone(&h), key.clone());
            tokio::spawn(async move {
                let mut body = hello("m");
                body["max_tokens"] = json!(10);
                h.chat(&key, body).await
            })
        })
        .collect();
    let mut ok = 0;
    let mut refused = 0;
    for t in tasks {
        let a = t.await.unwrap();
        match a.status {
            200 => ok += 1,
            429 => {
                assert_eq!(a.json()["error"]["code"], "insufficient_quota");
                refused += 1;
            }
            s => panic!("unexpected {s}: {}", a.text()),
        }
    }
    let k = h.stored_key(&id).await;
    assert_eq!(k.quota_reserved, 0, "every reservation released");
    assert!(k.quota_used <= 200, "overspent: {}", k.quota_used);
    assert_eq!(
        k.quota_used,
        ok * 13,
        "charged exactly the real usage of the admitted requests"
    );
    assert!(ok >= 4 && refused > 0, "ok {ok}, refused {refused}");
}

#[tokio::test]
async fn quota_without_max_tokens_caps_the_completion() {
    let h = Harness::new().await;
    // 50 left: the prompt bound (34) leaves 16 for the completion.
    let (key, id) = h.key(json!({"name": "c", "quota": 50})).await;
    h.model("m", "vllm", "mock?tokens=40").await;
    let a = h.chat(&key, hello("m")).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(h.mock.last_request()["body"]["max_tokens"], 16);
    assert_eq!(a.json()["choices"][0]["finish_reason"], "length");
    let k = h.stored_key(&id).await;
    assert_eq!(k.quota_used, 3 + 16);
    let mut body = hello("m");
    body["max_tokens"] = json!(100);
    assert_eq!(
        h.chat(&key, body).await.status,
        429,
        "an explicit cap that does not fit is refused"
    );
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused_before_buffering() {
    let h = Harness::with(|c| c.max_body_bytes = 1024).await;
    let (key, _) = h.key(json!({"name": "b"})).await;
    h.model("m", "vllm", "mock").await;
    let big = json!({"model": "m", "messages": [{"role": "user", "content": "x".repeat(2000)}]});
    let a = h.chat(&key, big.clone()).await;
    assert_eq!(a.status, 413);
    assert_eq!(a.json()["error"]["code"], "request_too_large");
    // Chunked, with no Content-Length: cut off while reading.
    let chunks = futures_util::stream::iter(
        (0..10).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 200]))),
    );
    let req = http::Request::post("/v1/chat/completions")
        .header("authorization", format!("Bearer {key}"))
        .body(Body::from_stream(chunks))
        .unwrap();
    let resp = h.app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(h.mock.stats().requests, 0);
}

#[tokio::test]
async fn bad_requests_get_openai_errors() {
    let h = Harness::new().await;
    let (key, _) = h.key(json!({"name": "b"})).await;
    h.model("m", "vllm", "mock").await;
    let cases = [
        (json!({"model": "m"}), 400, "messages"),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 5}),
            400,
            "temperature",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 1000}),
            400,
            "n",
        ),
        (
            json!({"model": "nope", "messages": [{"role": "user", "content": "x"}]}),
            404,
            "model",
        ),
    ];
    for (body, status, param) in cases {
        let a = h.chat(&key, body).await;
        assert_eq!(a.status, status, "{}", a.text());
        assert_eq!(a.json()["error"]["param"], param);
    }
    let a = h
        .request("POST", "/v1/chat/completions", Some(&key), None)
        .await;
    assert_eq!(a.status, 400);
    assert_eq!(
        h.mock.stats().requests,
        0,
        "nothing invalid reached the upstream"
    );
}

#[tokio::test]
async fn a_key_at_zero_rpm_is_refused_before_any_limiter() {
    use modelgate_core::domain::KeyPatch;
    use modelgate_core::ports::{KeyStore, Ports};
    let h = Harness::new().await;
    let (key, id) = h.key(json!({"name": "z"})).await;
    h.model("m", "vllm", "mock").await;
    // Only a direct store edit can set 0: the admin API refuses it.
    let patch = KeyPatch {
        rpm: Some(Some(0)),
        ..KeyPatch::default()
    };
    h.gateway
        .ports()
        .store()
        .update_key(&id, patch, 0)
        .await
        .unwrap();
    let a = h.chat(&key, hello("m")).await;
    assert_eq!(
        (a.status, a.json()["error"]["code"].clone()),
        (429, json!("rate_limit_exceeded"))
    );
    assert_eq!(h.mock.stats().requests, 0);
}

/// An upstream that reports absurd usage is charged what it reported
/// (bounded), with a quota or without: usage past the reservation is never
/// dropped, the quota goes past its limit and the key's next request is
/// refused; the usage API still adds up.
#[tokio::test]
async fn an_upstream_reporting_more_than_reserved_is_charged_in_full() {
    use modelgate_core::backend::MAX_REPORTED_TOKENS;
    let h = Harness::new().await;
    h.model("liar", "vllm", "mock?report_tokens=99999999999999999999999")
        .await;
    h.model("i64", "vllm", "mock?report_tokens=9223372036854775807")
        .await;
    let (open, open_id) = h.key(json!({"name": "u", "quota": null})).await;
    for model in ["liar", "i64"] {
        let (limited, limited_id) = h.key(json!({"name": "q", "quota": 10_000})).await;
        let body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 16});
        let a = h.chat(&limited, body.clone()).await;
        assert_eq!(a.status, 200, "{}", a.text());
        // Charged what was reported (each figure read as at most 10^12),
        // not the reservation: the quota is past its limit...
        let k = h.stored_key(&limited_id).await;
        assert!(
            k.quota_used > MAX_REPORTED_TOKENS,
            "{model}: {}",
            k.quota_used
        );
        assert_eq!(k.quota_reserved, 0);
        // ...so the next request is refused.
        let next = h.chat(&limited, body.clone()).await;
        assert_eq!(next.status, 429, "{}", next.text());
        assert_eq!(next.json()["error"]["code"], "insufficient_quota");
        assert_eq!(h.chat(&open, body).await.status, 200);
    }
    let k = h.stored_key(&open_id).await;
    assert!(k.quota_used > 2 * MAX_REPORTED_TOKENS, "{}", k.quota_used);
    let u = h.admin("GET", "/admin/api/usage", None).await;
    assert_eq!(u.status, 200, "{}", u.text());
    assert_eq!(
        u.json()["totals"]["completion_tokens"],
        json!(4 * MAX_REPORTED_TOKENS),
        "every record keeps the reported figure, bounded"
    );
}

/// An unpriced model costs 0, so a budget would never stop it: a key with
/// a budget is refused there (403), unless the model is priced at 0.
#[tokio::test]
async fn a_budget_key_may_use_only_priced_models() {
    let h = Harness::new().await;
    h.model("unpriced", "vllm", "mock?tokens=1").await;
    let free = json!({"prices": {"input": 0, "output": 0}});
    h.model_at("free", "vllm", &h.mock.url(), "mock?tokens=1", free)
        .await;
    let (budget, _) = h.key(json!({"name": "b", "budget_usd": 1})).await;
    let refused = h.chat(&budget, hello("unpriced")).await;
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert_eq!(refused.json()["error"]["code"], "model_not_priced");
    assert_eq!(h.chat(&budget, hello("free")).await.status, 200);
    let (plain, _) = h.key(json!({"name": "p"})).await;
    assert_eq!(h.chat(&plain, hello("unpriced")).await.status, 200);
    assert_eq!(h.mock.stats().requests, 2);
}
