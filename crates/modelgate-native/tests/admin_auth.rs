//! Keys and the admin API: authentication, key lifecycle, secrets that never
//! come back.

mod common;

use common::{ADMIN, Harness, hello};
use serde_json::json;

#[tokio::test]
async fn keys_are_refused_with_the_right_error() {
    let h = Harness::new().await;
    h.model("m", "vllm", "mock").await;
    let (key, id) = h.key(json!({"name": "k"})).await;
    assert_eq!(h.chat(&key, hello("m")).await.status, 200);
    let missing = h
        .request("POST", "/v1/chat/completions", None, Some(hello("m")))
        .await;
    assert_eq!(
        (missing.status, missing.json()["error"]["code"].clone()),
        (401, json!("missing_api_key"))
    );
    let wrong = h.chat("mg-0000", hello("m")).await;
    assert_eq!(
        (wrong.status, wrong.json()["error"]["code"].clone()),
        (401, json!("invalid_api_key"))
    );

    let path = format!("/admin/api/keys/{id}");
    let patch = |body| h.admin("PATCH", &path, Some(body));
    assert_eq!(patch(json!({"status": "disabled"})).await.status, 200);
    assert_eq!(
        h.chat(&key, hello("m")).await.json()["error"]["code"],
        "api_key_disabled"
    );
    patch(json!({"status": "active", "expires_at": 1})).await;
    assert_eq!(
        h.chat(&key, hello("m")).await.json()["error"]["code"],
        "api_key_expired"
    );
    patch(json!({"expires_at": null, "allowed_ips": ["10.0.0.0/8"]})).await;
    let a = h.chat(&key, hello("m")).await;
    assert_eq!(
        (a.status, a.json()["error"]["code"].clone()),
        (403, json!("ip_not_allowed"))
    );
    patch(json!({"allowed_ips": ["127.0.0.0/8"]})).await;
    assert_eq!(
        h.chat(&key, hello("m")).await.status,
        200,
        "the test client is 127.0.0.1"
    );
    assert_eq!(
        h.admin("DELETE", &format!("/admin/api/keys/{id}"), None)
            .await
            .json()["status"],
        "revoked"
    );
    assert_eq!(
        h.chat(&key, hello("m")).await.json()["error"]["code"],
        "api_key_revoked",
        "revoked at once"
    );
}

#[tokio::test]
async fn admin_routes_need_an_admin_key() {
    let h = Harness::new().await;
    let (user, _) = h.key(json!({"name": "user"})).await;
    let (admin, _) = h.key(json!({"name": "ops", "admin": true})).await;
    assert_eq!(
        h.request("GET", "/admin/api/keys", None, None).await.status,
        401
    );
    assert_eq!(
        h.request("GET", "/admin/api/keys", Some("nope"), None)
            .await
            .status,
        401
    );
    let a = h.request("GET", "/admin/api/keys", Some(&user), None).await;
    assert_eq!(
        (a.status, a.json()["error"]["code"].clone()),
        (403, json!("admin_key_required"))
    );
    assert_eq!(
        h.request("GET", "/admin/api/keys", Some(&admin), None)
            .await
            .status,
        200
    );
    assert_eq!(
        h.request("GET", "/admin/api/verify", Some(ADMIN), None)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn key_secrets_are_shown_once_and_never_again() {
    let h = Harness::new().await;
    let created = h
        .admin(
            "POST",
            "/admin/api/keys",
            Some(json!({"name": "once", "rpm": 7, "quota": null})),
        )
        .await;
    assert_eq!(created.status, 201);
    let v = created.json();
    let plain = v["key"].as_str().unwrap().to_owned();
    assert!(
        plain.starts_with("mg-") && plain.len() >= 3 + 32,
        "at least 128 random bits"
    );
    assert_eq!(v["quota"], json!(null), "null quota: unlimited");
    let hash = modelgate_core::auth::hash_key(&plain);
    for path in [
        "/admin/api/keys".to_owned(),
        format!("/admin/api/keys/{}", v["id"].as_str().unwrap()),
    ] {
        let text = h.admin("GET", &path, None).await.text();
        assert!(!text.contains(&plain) && !text.contains(&hash), "{text}");
        assert!(
            text.contains(&v["prefix"].as_str().unwrap()[..8]),
            "the display prefix is shown"
        );
    }
}

#[tokio::test]
async fn upstream_keys_are_write_only() {
    let h = Harness::new().await;
    let id = h
        .model_at(
            "m",
            "openai",
            &h.mock.url(),
            "mock",
            json!({"api_key": "sk-very-secret"}),
        )
        .await;
    for path in [
        "/admin/api/models".to_owned(),
        format!("/admin/api/models/{id}"),
    ] {
        let a = h.admin("GET", &path, None).await;
        assert!(!a.text().contains("sk-very-secret"));
        assert!(a.text().contains("\"has_api_key\":true"), "{}", a.text());
    }
    let p = h
        .admin(
            "PATCH",
            &format!("/admin/api/models/{id}"),
            Some(json!({"api_key": null})),
        )
        .await;
    assert_eq!(p.json()["has_api_key"], false);
}

#[tokio::test]
async fn admin_input_is_validated() {
    let h = Harness::new().await;
    let bad_keys = [
        json!({}),
        json!({"name": ""}),
        json!({"name": "x", "rpm": 0}),
        json!({"name": "x", "quota": -1}),
        json!({"name": "x", "allowed_ips": ["300.1.1.1"]}),
        json!({"name": "x", "hash": "abc"}),
        json!({"name": "x'); DROP TABLE api_keys; --", "rpm": "fast"}),
    ];
    for b in bad_keys {
        let a = h.admin("POST", "/admin/api/keys", Some(b.clone())).await;
        assert_eq!(a.status, 400, "{b}: {}", a.text());
        assert!(a.json()["error"]["message"].is_string());
    }
    let sqlish = h
        .admin(
            "POST",
            "/admin/api/keys",
            Some(json!({"name": "x'); DROP TABLE api_keys; --"})),
        )
        .await;
    assert_eq!(sqlish.status, 201, "stored as text, harmlessly");
    assert_eq!(
        h.admin("GET", "/admin/api/keys", None).await.json()["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    for path in [
        "/admin/api/keys/..%2F..%2Fetc",
        "/admin/api/keys/key_x' OR 1=1",
        "/admin/api/models/mdl_1",
    ] {
        let a = h.admin("GET", &path.replace(' ', "%20"), None).await;
        assert_eq!(a.status, 404, "{path}");
    }
    let bad_models = [
        json!({"name": "m", "backend": "bogus", "base_url": "http://x"}),
        json!({"name": "m", "backend": "vllm", "base_url": "ftp://x"}),
        json!({"name": "m\nX", "backend": "vllm", "base_url": "http://x"}),
    ];
    for b in bad_models {
        assert_eq!(
            h.admin("POST", "/admin/api/models", Some(b)).await.status,
            400
        );
    }
    h.model("dup", "vllm", "mock").await;
    let a = h
        .admin(
            "POST",
            "/admin/api/models",
            Some(json!({"name": "dup", "backend": "vllm", "base_url": "http://x"})),
        )
        .await;
    assert_eq!(a.status, 409);
}

#[tokio::test]
async fn sync_imports_what_the_backends_list() {
    let h = Harness::new().await;
    let a = h
        .admin(
            "POST",
            "/admin/api/models/sync",
            Some(json!({"backend": "ollama", "base_url": h.mock.url()})),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.json()["created"], json!(["mock", "mock-2"]));
    // Without a body: every backend the models point at; nothing new now.
    let again = h.admin("POST", "/admin/api/models/sync", None).await;
    assert_eq!(again.json()["created"], json!([]));
    let (key, _) = h.key(json!({"name": "s"})).await;
    assert_eq!(h.chat(&key, hello("mock-2")).await.status, 200);
}

#[tokio::test]
async fn usage_report_groups_and_filters() {
    let h = Harness::new().await;
    h.model("m", "vllm", "mock?tokens=2").await;
    let (k1, id1) = h.key(json!({"name": "1"})).await;
    let (k2, _) = h.key(json!({"name": "2"})).await;
    for k in [&k1, &k1, &k2] {
        h.chat(k, hello("m")).await;
    }
    let all = h.usage().await;
    assert_eq!(all["totals"]["requests"], 3);
    assert_eq!(all["totals"]["total_tokens"], 15);
    let one = h
        .admin(
            "GET",
            &format!("/admin/api/usage?key_id={id1}&from=2020-01-01"),
            None,
        )
        .await
        .json();
    assert_eq!(one["totals"]["requests"], 2);
    assert_eq!(one["data"][0]["key_id"], id1);
    assert_eq!(
        h.admin("GET", "/admin/api/usage?from=yesterday", None)
            .await
            .status,
        400
    );
}

/// The client writes `X-Forwarded-For` itself: only the entries our own
/// proxies appended count (the harness's socket peer is 127.0.0.1).
#[tokio::test]
async fn x_forwarded_for_counts_only_as_far_as_trusted_proxies_wrote_it() {
    let cases = [
        // No proxy trusted: the header is ignored.
        (0, "10.1.2.3", 403),
        // One proxy: it appended 127.0.0.1; the client forged 10.1.2.3.
        (1, "10.1.2.3, 127.0.0.1", 403),
        // One proxy, which saw the client at 10.1.2.3.
        (1, "203.0.113.5, 10.1.2.3", 200),
        // Two proxies: the client is second from the right.
        (2, "10.9.9.9, 203.0.113.5, 10.1.2.3", 403),
        (2, "203.0.113.5, 10.1.2.3, 192.0.2.7", 200),
    ];
    for (hops, xff, want) in cases {
        let h = Harness::with(|c| c.trusted_proxy_hops = hops).await;
        h.model("m", "vllm", "mock").await;
        let (key, _) = h
            .key(json!({"name": "ip", "allowed_ips": ["10.0.0.0/8"]}))
            .await;
        let body = hello("m").to_string().into_bytes();
        let auth = format!("Bearer {key}");
        let headers = [("authorization", auth.as_str()), ("x-forwarded-for", xff)];
        let a = h.raw("POST", "/v1/chat/completions", &headers, body).await;
        assert_eq!(a.status, want, "hops={hops} xff={xff}: {}", a.text());
    }
}

#[tokio::test]
async fn one_key_never_spends_or_sees_another_keys_quota() {
    let h = Harness::new().await;
    h.model("m", "vllm", "mock?tokens=4").await;
    let (a_key, a_id) = h.key(json!({"name": "a", "quota": 20})).await;
    let (b_key, b_id) = h.key(json!({"name": "b", "quota": 1000})).await;
    let body =
        || json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 4});
    while h.chat(&a_key, body()).await.status == 200 {}
    assert_eq!(h.chat(&a_key, body()).await.status, 429);
    assert_eq!(
        h.chat(&b_key, body()).await.status,
        200,
        "b is untouched by a's exhaustion"
    );
    let (a, b) = (h.stored_key(&a_id).await, h.stored_key(&b_id).await);
    assert!(a.quota_used <= 20, "{a:?}");
    assert_eq!(
        b.quota_used, 5,
        "b pays only for its own request (1 prompt + 4)"
    );
    // A key is no admin: it cannot read anyone's usage or keys.
    for path in [
        "/admin/api/usage",
        "/admin/api/keys",
        &format!("/admin/api/keys/{b_id}"),
    ] {
        assert_eq!(
            h.request("GET", path, Some(&a_key), None).await.status,
            403,
            "{path}"
        );
    }
}
