//! Upstream faults: what the client gets, what is recorded, and that the
//! gateway keeps serving.

mod common;

use std::time::Duration;

use axum::body::Body;
use common::{Harness, closed_port, hello};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

#[tokio::test]
async fn refused_connection_is_a_502_without_the_url() {
    let h = Harness::new().await;
    let (key, id) = h.key(json!({"name": "f", "quota": 1000})).await;
    let url = closed_port();
    h.model_at("m", "vllm", &url, "mock", json!({})).await;
    let a = h.chat(&key, hello("m")).await;
    assert_eq!(a.status, 502);
    assert_eq!(a.json()["error"]["code"], "upstream_unavailable");
    assert!(!a.text().contains(&url[7..]), "{}", a.text());
    let k = h.stored_key(&id).await;
    assert_eq!((k.quota_used, k.quota_reserved), (0, 0), "refunded");
    let u = h.usage().await;
    assert_eq!(
        (
            u["totals"]["requests"].clone(),
            u["totals"]["errors"].clone()
        ),
        (json!(1), json!(1))
    );
}

#[tokio::test]
async fn retries_and_fallbacks_happen_before_the_first_byte() {
    let h = Harness::new().await;
    let (key, _) = h.key(json!({"name": "f", "quota": null})).await;
    // Two 503s, then success: the default two retries absorb them.
    h.model("flaky", "vllm", "mock?fail_first=2").await;
    assert_eq!(h.chat(&key, hello("flaky")).await.status, 200);
    // A dead primary falls back to the mock at once.
    h.model_at(
        "fb",
        "vllm",
        &closed_port(),
        "mock",
        json!({"fallback_urls": [h.mock.url()]}),
    )
    .await;
    assert_eq!(h.chat(&key, hello("fb")).await.status, 200);
}

#[tokio::test]
async fn upstream_errors_pass_through_or_are_wrapped() {
    let h = Harness::with(|c| c.resilience.retries = 0).await;
    let (key, _) = h.key(json!({"name": "f", "quota": null})).await;
    h.model("e400", "vllm", "mock?status=400").await;
    h.model("e429", "vllm", "mock?status=429").await;
    h.model("html", "vllm", "mock?fault=html").await;
    h.model("garbage", "vllm", "mock?fault=garbage").await;
    let a = h.chat(&key, hello("e400")).await;
    assert_eq!(
        (a.status, a.json()["error"]["code"].clone()),
        (400, json!("mock_400"))
    );
    assert_eq!(h.chat(&key, hello("e429")).await.status, 429);
    for status in [500, 502, 503] {
        h.model(
            &format!("e{status}"),
            "vllm",
            &format!("mock?status={status}"),
        )
        .await;
        let a = h.chat(&key, hello(&format!("e{status}"))).await;
        assert_eq!(a.status, status, "{}", a.text());
        assert_eq!(
            a.json()["error"]["code"],
            format!("mock_{status}"),
            "the upstream's own error body"
        );
        assert!(
            !a.text().contains(&h.mock.url()[7..]),
            "no upstream address"
        );
    }
    let a = h.chat(&key, hello("html")).await;
    assert_eq!(
        (a.status, a.json()["error"]["code"].clone()),
        (502, json!("upstream_error"))
    );
    assert!(!a.text().contains("exploded"));
    let a = h.chat(&key, hello("garbage")).await;
    assert_eq!(a.status, 502);
    h.model("ok", "vllm", "mock").await;
    assert_eq!(h.chat(&key, hello("ok")).await.status, 200, "still serving");
}

#[tokio::test]
async fn hanging_upstream_times_out_with_504() {
    let h = Harness::with(|c| c.timeout_ms = 300).await;
    let (key, id) = h.key(json!({"name": "t", "quota": 1000})).await;
    h.model("hang", "vllm", "mock?fault=hang").await;
    let a = h.chat(&key, hello("hang")).await;
    assert_eq!(
        (a.status, a.json()["error"]["code"].clone()),
        (504, json!("upstream_timeout"))
    );
    assert_eq!(h.stored_key(&id).await.quota_reserved, 0);
}

#[tokio::test]
async fn failures_after_the_first_byte_end_the_stream_in_band() {
    let h = Harness::with(|c| c.timeout_ms = 500).await;
    let (key, id) = h.key(json!({"name": "s", "quota": 10_000})).await;
    for (name, fault, code) in [
        ("cut", "fault=cut&after=2", "upstream_stream_cut"),
        ("bad", "fault=malformed&after=2", "upstream_malformed"),
        ("hung", "fault=hang_body&after=2", "upstream_timeout"),
        ("drip", "itl_ms=150", "upstream_timeout"),
    ] {
        h.model(name, "vllm", &format!("mock?tokens=5&{fault}"))
            .await;
        let mut body = hello(name);
        body["stream"] = json!(true);
        let a = h.chat(&key, body).await;
        assert_eq!(a.status, 200);
        let ev = a.events();
        assert_eq!(ev.last().unwrap(), "[DONE]", "{name}: {ev:?}");
        let err: Value = serde_json::from_str(&ev[ev.len() - 2]).unwrap();
        assert_eq!(err["error"]["code"], code, "{name}");
        assert!(
            ev.iter().any(|e| e.contains(" w1")),
            "{name}: what was generated reached the client"
        );
    }
    let k = h.wait_key(&id, |k| k.quota_reserved == 0).await;
    assert_eq!(k.quota_reserved, 0);
    // 2 chunks + the prompt estimate (9) for three; the drip got 1 to 4
    // chunks in before the 500 ms deadline, depending on machine load.
    let expected = 3 * (2 + 9) + 9 + 1..=3 * (2 + 9) + 9 + 4;
    assert!(expected.contains(&k.quota_used), "{}", k.quota_used);
    let u = h.usage().await;
    assert_eq!(u["totals"]["errors"], 4);
}

#[tokio::test]
async fn a_lone_ejected_deployment_is_still_tried() {
    let h = Harness::with(|c| {
        c.resilience.retries = 0;
        c.resilience.breaker_threshold = 2;
        c.resilience.breaker_cooldown_ms = 60_000;
    })
    .await;
    let (key, _) = h.key(json!({"name": "b", "rpm": 1000})).await;
    h.model("down", "vllm", "mock?status=500").await;
    for _ in 0..2 {
        assert_eq!(h.chat(&key, hello("down")).await.status, 500);
    }
    let all = h.admin("GET", "/admin/api/deployments", None).await.json();
    let d = &all["data"][0]["deployments"][0];
    assert_eq!(
        (d["name"].as_str(), d["state"].as_str()),
        (Some("primary"), Some("ejected")),
        "{all}"
    );
    // Nothing else could serve it: the gateway's guess that the upstream
    // is down is no reason to answer for it.
    let served = h.mock.stats().requests;
    let a = h.chat(&key, hello("down")).await;
    assert_eq!(
        (a.status, a.json()["error"]["code"].clone()),
        (500, json!("mock_500"))
    );
    assert_eq!(h.mock.stats().requests, served + 1);
}

#[tokio::test]
async fn client_disconnect_mid_stream_settles_once_and_frees_the_reservation() {
    let h = Harness::new().await;
    let (key, id) = h.key(json!({"name": "d", "quota": 10_000})).await;
    h.model("slow", "vllm", "mock?tokens=50&itl_ms=20").await;
    let mut body = hello("slow");
    body["stream"] = json!(true);
    let req = http::Request::post("/v1/chat/completions")
        .header("authorization", format!("Bearer {key}"))
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = h.app.clone().oneshot(req).await.unwrap();
    let mut body = resp.into_body();
    let mut got = 0;
    while got < 3 {
        if body.frame().await.unwrap().unwrap().data_ref().is_some() {
            got += 1;
        }
    }
    assert!(
        h.stored_key(&id).await.quota_reserved > 0,
        "reserved while streaming"
    );
    drop(body);
    let k = h.wait_key(&id, |k| k.quota_reserved == 0).await;
    assert_eq!(
        k.quota_reserved, 0,
        "reservation released after the disconnect"
    );
    assert!(
        k.quota_used > 0 && k.quota_used < 50 + 9,
        "charged what was generated: {}",
        k.quota_used
    );
    // Time for a second settlement, were there one, to land: this wait can
    // only let a slower machine miss a double, never fail a correct run.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let u = h.usage().await;
    assert_eq!(u["totals"]["requests"], 1, "settled exactly once");
    assert!(
        h.mock.stats().completion_tokens < 50,
        "the upstream request was cancelled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_closing_the_connection_at_once_is_a_502() {
    let h = Harness::new().await;
    let (key, _) = h.key(json!({"name": "r"})).await;
    // Accepts, then closes without a byte: a reset as the client sees it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let closer = tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            drop(sock);
        }
    });
    h.model_at("closer", "vllm", &url, "m", json!({})).await;
    let a = h.chat(&key, hello("closer")).await;
    assert_eq!(a.status, 502, "{}", a.text());
    assert!(
        !a.text().contains(&url[7..]),
        "no upstream address: {}",
        a.text()
    );
    closer.abort();
    h.model("fine", "vllm", "mock").await;
    assert_eq!(
        h.chat(&key, hello("fine")).await.status,
        200,
        "keeps serving"
    );
}

/// SQLite locked by another process (the CLI, a second Lambda on EFS):
/// a reservation that cannot get the lock is a 503 before any upstream
/// call; a settlement waiting on it retries and lands; nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_sqlite_is_a_503_then_recovers_and_loses_no_record() {
    use modelgate_sqlite::{Options, SqliteStore};
    let dir = std::env::temp_dir().join(format!("mg-busy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("db.sqlite");
    let opts = Options {
        busy_timeout: Duration::from_millis(100),
        ..Options::default()
    };
    let h = Harness::build(|_| {}, SqliteStore::open(&path, opts).unwrap()).await;
    h.model("m", "vllm", "mock?tokens=3").await;
    let (quota_key, quota_id) = h.key(json!({"name": "q", "quota": 1000})).await;
    let (free_key, _) = h.key(json!({"name": "f", "quota": null})).await;

    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let a = h.chat(&quota_key, hello("m")).await;
    assert_eq!(a.status, 503, "{}", a.text());
    assert_eq!(a.json()["error"]["code"], "service_unavailable");
    assert_eq!(
        h.mock.stats().requests,
        0,
        "no upstream call without a reservation"
    );

    // A key without a quota reserves nothing: its request runs, and its
    // settlement waits out the lock (released after 300 ms) by retrying.
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        other.execute_batch("COMMIT").unwrap();
    });
    let a = h.chat(&free_key, hello("m")).await;
    assert_eq!(a.status, 200, "{}", a.text());
    release.await.unwrap();

    assert_eq!(
        h.chat(&quota_key, hello("m")).await.status,
        200,
        "recovered"
    );
    let u = h.usage().await;
    // The refused request spent nothing and has no record; the other two
    // have one each.
    assert_eq!(
        u["totals"]["requests"], 2,
        "every served request recorded once: {u}"
    );
    assert_eq!(u["totals"]["completion_tokens"], 6);
    let k = h.stored_key(&quota_id).await;
    assert_eq!((k.quota_reserved, k.quota_used), (0, 3 + 3));
    drop(h);
    std::fs::remove_dir_all(&dir).unwrap();
}
