//! The proxy path end to end through the router: answers, streams, usage
//! accounting, backend transcoding.

mod common;

use common::{Harness, hello};
use serde_json::{Value, json};

#[tokio::test]
async fn buffered_chat_is_relayed_and_settled() {
    let h = Harness::new().await;
    let (key, id) = h.key(json!({"name": "a", "quota": 1000})).await;
    h.model("m", "vllm", "mock?tokens=5").await;
    let a = h.chat(&key, hello("m")).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let v = a.json();
    assert_eq!(v["choices"][0]["message"]["content"], " w0 w1 w2 w3 w4");
    assert_eq!(v["usage"]["total_tokens"], 8);
    assert!(
        a.headers["x-request-id"]
            .to_str()
            .unwrap()
            .starts_with("req_")
    );
    assert_eq!(a.headers["x-ratelimit-limit-requests"], "60");
    assert_eq!(a.headers["x-ratelimit-remaining-requests"], "59");
    let k = h.stored_key(&id).await;
    assert_eq!(
        (k.quota_used, k.quota_reserved),
        (8, 0),
        "charged exactly the reported usage"
    );
    let u = h.usage().await;
    assert_eq!(u["totals"]["requests"], 1);
    assert_eq!(u["totals"]["total_tokens"], 8);
    // The gateway set a completion cap upstream because the key has a quota.
    assert!(
        h.mock.last_request()["body"]["max_tokens"]
            .as_u64()
            .is_some()
    );
}

/// The native runtime needs `Send` futures; the core promises them (the
/// MaybeSend ports) and this fails to compile if that ever breaks.
#[tokio::test]
async fn handle_is_send() {
    fn assert_send<T: Send>(t: T) -> T {
        t
    }
    let h = Harness::new().await;
    let req = http::Request::get("/health")
        .body(bytes::Bytes::new())
        .unwrap();
    let resp = assert_send(h.gateway.handle(req, modelgate_core::Peer::default())).await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn static_answers_carry_a_request_id_too() {
    let h = Harness::new().await;
    let a = h.request("GET", "/", None, None).await;
    assert_eq!(a.status, 307);
    assert!(
        a.headers["x-request-id"]
            .to_str()
            .unwrap()
            .starts_with("req_")
    );
}

/// Request ids sort by time (usage records append to the request-id
/// index) and stay unique: 12 hex digits of milliseconds, 24 random.
#[tokio::test]
async fn request_ids_sort_by_time_and_are_unique() {
    let h = Harness::new().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.extend((0..200).map(|_| h.gateway.new_request_id()));
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    for id in &ids {
        let hex = id.strip_prefix("req_").unwrap();
        assert_eq!(hex.len(), 36, "{id}");
        assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let stamp = u128::from_str_radix(&ids[0][4..16], 16).unwrap();
    assert!(
        now - stamp < 60_000,
        "the prefix is the time: {stamp} vs {now}"
    );
    let stamps: Vec<&str> = ids.iter().map(|id| &id[..16]).collect();
    assert!(stamps.is_sorted(), "ids sort by time");
    assert!(stamps.first() < stamps.last());
    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len());
}

#[tokio::test]
async fn completions_endpoint_works() {
    let h = Harness::new().await;
    let (key, _) = h.key(json!({"name": "a"})).await;
    h.model("m", "llamacpp", "mock?tokens=3").await;
    let a = h
        .request(
            "POST",
            "/v1/completions",
            Some(&key),
            Some(json!({"model": "m", "prompt": "one two", "max_tokens": 2})),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.json()["choices"][0]["text"], " w0 w1");
    assert_eq!(a.json()["choices"][0]["finish_reason"], "length");
}

#[tokio::test]
async fn stream_hides_the_usage_chunk_unless_asked_and_still_counts_it() {
    let h = Harness::new().await;
    let (key, id) = h.key(json!({"name": "a", "quota": 1000})).await;
    h.model_at(
        "m",
        "openai",
        &format!("{}/v1", h.mock.url()),
        "mock?tokens=4",
        json!({}),
    )
    .await;
    let mut body = hello("m");
    body["stream"] = json!(true);
    let a = h.chat(&key, body.clone()).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.headers["content-type"], "text/event-stream");
    let ev = a.events();
    assert_eq!(ev.last().unwrap(), "[DONE]");
    assert!(ev.iter().all(|e| !e.contains("\"usage\"")), "{ev:?}");
    assert_eq!(
        h.mock.last_request()["body"]["stream_options"]["include_usage"],
        true,
        "the gateway asked for usage"
    );
    let k = h.wait_key(&id, |k| k.quota_used > 0).await;
    assert_eq!((k.quota_used, k.quota_reserved), (3 + 4, 0));

    body["stream_options"] = json!({"include_usage": true});
    let a = h.chat(&key, body).await;
    let ev = a.events();
    let usage: Value = serde_json::from_str(&ev[ev.len() - 2]).unwrap();
    assert_eq!(usage["usage"]["completion_tokens"], 4);
    assert_eq!(usage["choices"], json!([]));
}

#[tokio::test]
async fn stream_usage_opt_out_leaves_the_body_alone_and_estimates() {
    let h = Harness::new().await;
    let (key, id) = h.key(json!({"name": "a", "quota": 1000})).await;
    let base = format!("{}/v1", h.mock.url());
    h.model_at(
        "m",
        "openai",
        &base,
        "mock?tokens=4",
        json!({"stream_usage": false}),
    )
    .await;
    let mut body = hello("m");
    body["stream"] = json!(true);
    let a = h.chat(&key, body).await;
    assert_eq!(a.events().last().unwrap(), "[DONE]");
    assert!(
        h.mock.last_request()["body"]
            .get("stream_options")
            .is_none()
    );
    // No usage from upstream: one token per output chunk, prompt ~bytes/4.
    let k = h.wait_key(&id, |k| k.quota_used > 0).await;
    assert_eq!(k.quota_reserved, 0);
    assert_eq!(
        k.quota_used,
        4 + 9,
        "4 chunks + ceil((18 + 16) / 4) prompt estimate"
    );
}

#[tokio::test]
async fn ollama_is_transcoded_both_ways() {
    let h = Harness::new().await;
    let (key, _) = h.key(json!({"name": "a"})).await;
    h.model("llama", "ollama", "mock?tokens=3").await;
    let mut body = hello("llama");
    body["temperature"] = json!(0.3);
    body["max_tokens"] = json!(2);
    let a = h.chat(&key, body.clone()).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let v = a.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "llama");
    assert_eq!(v["choices"][0]["message"]["content"], " w0 w1");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5})
    );
    let sent = h.mock.last_request()["body"].clone();
    assert_eq!(sent["options"]["temperature"], 0.3);
    assert_eq!(sent["options"]["num_predict"], 2);
    assert!(sent.get("temperature").is_none());

    body["stream"] = json!(true);
    let a = h.chat(&key, body).await;
    let ev = a.events();
    assert_eq!(ev.last().unwrap(), "[DONE]");
    let text: String = ev[..ev.len() - 1]
        .iter()
        .map(|e| serde_json::from_str::<Value>(e).unwrap())
        .filter_map(|c| {
            c.pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(text, " w0 w1");
}

#[tokio::test]
async fn upstream_auth_per_backend() {
    let h = Harness::new().await;
    let (key, _) = h.key(json!({"name": "a"})).await;
    h.model_at(
        "o",
        "openai",
        &format!("{}/v1", h.mock.url()),
        "mock",
        json!({"api_key": "sk-up-1"}),
    )
    .await;
    h.model_at(
        "a3",
        "api3",
        &format!("{}/v1", h.mock.url()),
        "mock",
        json!({"api_key": "sk-up-2"}),
    )
    .await;
    assert_eq!(h.chat(&key, hello("o")).await.status, 200);
    assert_eq!(h.mock.last_request()["authorization"], "Bearer sk-up-1");
    assert_eq!(h.chat(&key, hello("a3")).await.status, 200);
    assert_eq!(h.mock.last_request()["x-api-key"], "sk-up-2");
    assert_eq!(h.mock.last_request()["authorization"], Value::Null);
}

#[tokio::test]
async fn upstream_keys_can_refer_to_declared_deployment_secrets_only() {
    let h = Harness::with(|c| {
        // HOME is always set; the other is declared but not set.
        c.declare_secret("HOME").unwrap();
        c.declare_secret("NO_SUCH_SECRET_SET_HERE").unwrap();
    })
    .await;
    let (key, _) = h.key(json!({"name": "a"})).await;
    let base = format!("{}/v1", h.mock.url());
    h.model_at("s", "openai", &base, "mock", json!({"api_key": "env:HOME"}))
        .await;
    h.model_at(
        "missing",
        "openai",
        &base,
        "mock",
        json!({"api_key": "env:NO_SUCH_SECRET_SET_HERE"}),
    )
    .await;
    assert_eq!(h.chat(&key, hello("s")).await.status, 200);
    let home = std::env::var("HOME").unwrap();
    assert_eq!(
        h.mock.last_request()["authorization"],
        format!("Bearer {home}")
    );
    let a = h.chat(&key, hello("missing")).await;
    assert_eq!(a.status, 502);
    assert!(!a.text().contains("NO_SUCH_SECRET"), "{}", a.text());
    assert_eq!(h.mock.stats().requests, 1, "nothing sent without its key");

    // Anything undeclared, the gateway's own settings above all, is refused
    // when written (create, patch, sync), so it never reaches an upstream.
    let id = h.model("plain", "openai", "mock").await;
    for name in ["PATH", "MG_ADMIN_API_KEY", "AWS_SECRET_ACCESS_KEY"] {
        let body = json!({"name": "x", "backend": "openai", "base_url": base,
            "api_key": format!("env:{name}")});
        let created = h.admin("POST", "/admin/api/models", Some(body)).await;
        let patched = h
            .admin(
                "PATCH",
                &format!("/admin/api/models/{id}"),
                Some(json!({"api_key": format!("env:{name}")})),
            )
            .await;
        let synced = h
            .admin(
                "POST",
                "/admin/api/models/sync",
                Some(json!({"backend": "openai", "base_url": base, "api_key": format!("env:{name}")})),
            )
            .await;
        for a in [created, patched, synced] {
            assert_eq!(a.status, 400, "{name}: {}", a.text());
            assert_eq!(a.json()["error"]["param"], "api_key");
        }
    }
    assert_eq!(h.mock.stats().requests, 1, "no upstream saw any of them");
}

#[tokio::test]
async fn models_listing_respects_the_key() {
    let h = Harness::new().await;
    h.model("a", "vllm", "mock").await;
    h.model("b", "vllm", "mock").await;
    let off = h.model("c", "vllm", "mock").await;
    h.admin(
        "PATCH",
        &format!("/admin/api/models/{off}"),
        Some(json!({"enabled": false})),
    )
    .await;
    let (all, _) = h.key(json!({"name": "all"})).await;
    let (only_a, _) = h.key(json!({"name": "one", "allowed_models": ["a"]})).await;
    let ids = |v: Value| {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(h
            .request("GET", "/v1/models", Some(&all), None)
            .await
            .json()),
        vec!["a", "b"]
    );
    assert_eq!(
        ids(h
            .request("GET", "/v1/models", Some(&only_a), None)
            .await
            .json()),
        vec!["a"]
    );
    let m = h.request("GET", "/v1/models/a", Some(&only_a), None).await;
    assert_eq!(
        (m.status, m.json()["object"].clone()),
        (200, json!("model"))
    );
    assert_eq!(
        h.request("GET", "/v1/models/b", Some(&only_a), None)
            .await
            .status,
        404
    );
    assert_eq!(
        h.chat(&only_a, hello("b")).await.json()["error"]["code"],
        "model_not_found"
    );
    assert_eq!(h.chat(&all, hello("c")).await.status, 404, "disabled model");
    let text = h
        .request("GET", "/v1/models", Some(&all), None)
        .await
        .text();
    assert!(
        !text.contains("127.0.0.1"),
        "no upstream URL in client answers"
    );
}

#[tokio::test]
async fn key_default_model_is_used_when_none_is_named() {
    let h = Harness::new().await;
    h.model("m", "vllm", "mock?tokens=1").await;
    let (key, _) = h.key(json!({"name": "d", "default_model": "m"})).await;
    let a = h
        .chat(
            &key,
            json!({"messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let (plain, _) = h.key(json!({"name": "p"})).await;
    let a = h
        .chat(
            &plain,
            json!({"messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert_eq!(
        (a.status, a.json()["error"]["param"].clone()),
        (400, json!("model"))
    );
}

/// An upstream key is write-only, so it must not follow a changed URL or
/// backend to a host the admin controls: such a patch must give the key
/// again (or null), for the model and for a deployment.
#[tokio::test]
async fn an_upstream_key_never_follows_a_changed_url() {
    let h = Harness::new().await;
    let other = modelgate_testkit::MockUpstream::start().await.unwrap();
    let (key, _) = h.key(json!({"name": "a"})).await;
    let home = format!("{}/v1", h.mock.url());
    let away = format!("{}/v1", other.url());
    let id = h
        .model_at(
            "o",
            "openai",
            &home,
            "mock",
            json!({"api_key": "sk-very-secret-upstream"}),
        )
        .await;
    let path = format!("/admin/api/models/{id}");
    for patch in [
        json!({"base_url": away}),
        json!({"fallback_urls": [away]}),
        json!({"backend": "api3"}),
    ] {
        let a = h.admin("PATCH", &path, Some(patch.clone())).await;
        assert_eq!(a.status, 400, "{patch}: {}", a.text());
        assert_eq!(a.json()["error"]["param"], "api_key");
    }
    // The panel sends the URLs it shows with every edit: unchanged, the key stays.
    let same = json!({"base_url": format!("{home}/"), "fallback_urls": [], "name": "o"});
    assert_eq!(h.admin("PATCH", &path, Some(same)).await.status, 200);
    assert_eq!(h.chat(&key, hello("o")).await.status, 200);
    assert_eq!(
        h.mock.last_request()["authorization"],
        "Bearer sk-very-secret-upstream"
    );
    let moved = json!({"base_url": away, "api_key": null});
    assert_eq!(h.admin("PATCH", &path, Some(moved)).await.status, 200);
    assert_eq!(h.chat(&key, hello("o")).await.status, 200);
    assert_eq!(other.stats().requests, 1);
    assert_eq!(other.last_request()["authorization"], Value::Null);

    let dep = |url: &str| json!({"name": "d", "backend": "openai", "base_url": url});
    let mut first = dep(&home);
    first["api_key"] = json!("sk-deployment-secret");
    let body = json!({"name": "dep", "upstream_model": "mock", "deployments": [first]});
    let created = h.admin("POST", "/admin/api/models", Some(body)).await;
    assert_eq!(created.status, 201, "{}", created.text());
    let path = format!(
        "/admin/api/models/{}",
        created.json()["id"].as_str().unwrap()
    );
    let a = h
        .admin("PATCH", &path, Some(json!({"deployments": [dep(&away)]})))
        .await;
    assert_eq!(a.status, 400, "{}", a.text());
    assert_eq!(a.json()["error"]["param"], "deployments");
    // Unmoved, a deployment keeps its key without restating it.
    let kept = h
        .admin("PATCH", &path, Some(json!({"deployments": [dep(&home)]})))
        .await;
    assert_eq!(kept.status, 200, "{}", kept.text());
    assert_eq!(h.chat(&key, hello("dep")).await.status, 200);
    assert_eq!(
        h.mock.last_request()["authorization"],
        "Bearer sk-deployment-secret"
    );
    assert_eq!(other.stats().requests, 1);
}
