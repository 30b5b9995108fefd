//! Hostile requests, table-driven, through the real router: each gets a 4xx
//! OpenAI-shaped error, and nothing reaches the upstream that should not.

mod common;

use common::{ADMIN, Harness};
use serde_json::{Value, json};

/// The OpenAI error shape, with every field present.
fn assert_openai_error(a: &common::Answer, case: &str) {
    let v: Value = serde_json::from_slice(&a.body)
        .unwrap_or_else(|_| panic!("{case}: not JSON: {}", a.text()));
    let e = &v["error"];
    assert!(e["message"].is_string(), "{case}: {v}");
    assert!(e["type"].is_string(), "{case}: {v}");
    let fields = e.as_object().unwrap();
    assert!(
        fields.contains_key("param") && fields.contains_key("code"),
        "{case}: {v}"
    );
}

/// Request headers as name-value pairs.
type Headers<'a> = Vec<(&'a str, &'a str)>;

fn nested(depth: usize) -> String {
    format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":"x"}}],"metadata":{}1{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    )
}

#[tokio::test]
async fn hostile_bodies_get_4xx_openai_errors_and_never_reach_the_upstream() {
    let h = Harness::new().await;
    let (key, _) = h.key(json!({"name": "h"})).await;
    h.model("m", "vllm", "mock").await;
    let msgs = r#""messages":[{"role":"user","content":"x"}]"#;
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("empty body", b"".to_vec(), 400),
        (
            "truncated JSON",
            br#"{"model":"m","messages":[{"role":"us"#.to_vec(),
            400,
        ),
        ("JSON null", b"null".to_vec(), 400),
        ("JSON array", b"[]".to_vec(), 400),
        ("JSON string", br#""hello""#.to_vec(), 400),
        ("deeply nested JSON", nested(100_000).into_bytes(), 400),
        (
            "nesting past the parser's limit",
            nested(200).into_bytes(),
            400,
        ),
        (
            "messages is a string",
            br#"{"model":"m","messages":"hi"}"#.to_vec(),
            400,
        ),
        (
            "message without role",
            br#"{"model":"m","messages":[{"content":"x"}]}"#.to_vec(),
            400,
        ),
        (
            "model is a number",
            format!(r#"{{"model":7,{msgs}}}"#).into_bytes(),
            400,
        ),
        (
            "stream is a string",
            format!(r#"{{"model":"m",{msgs},"stream":"yes"}}"#).into_bytes(),
            400,
        ),
        (
            "max_tokens is a string",
            format!(r#"{{"model":"m",{msgs},"max_tokens":"ten"}}"#).into_bytes(),
            400,
        ),
        (
            "huge max_tokens",
            format!(r#"{{"model":"m",{msgs},"max_tokens":1000000000000}}"#).into_bytes(),
            400,
        ),
        (
            "max_tokens past f64",
            format!(r#"{{"model":"m",{msgs},"max_tokens":1e999}}"#).into_bytes(),
            400,
        ),
        (
            "negative max_tokens",
            format!(r#"{{"model":"m",{msgs},"max_tokens":-5}}"#).into_bytes(),
            400,
        ),
        (
            "huge n",
            format!(r#"{{"model":"m",{msgs},"n":4294967297}}"#).into_bytes(),
            400,
        ),
        (
            "zero n",
            format!(r#"{{"model":"m",{msgs},"n":0}}"#).into_bytes(),
            400,
        ),
        (
            "non-UTF-8 in a string",
            [
                br#"{"model":"m","messages":[{"role":"user","content":""#.as_slice(),
                b"\xff\xfe\"}]}",
            ]
            .concat(),
            400,
        ),
        (
            "invalid surrogate escape",
            format!(r#"{{"model":"m",{msgs},"user":"\udc00"}}"#).into_bytes(),
            400,
        ),
        (
            "header injection in the model name",
            format!(r#"{{"model":"m\r\nX-Injected: yes",{msgs}}}"#).into_bytes(),
            400,
        ),
        (
            "path traversal as a model",
            format!(r#"{{"model":"../../etc/passwd",{msgs}}}"#).into_bytes(),
            404,
        ),
        (
            "over-long model name",
            format!(r#"{{"model":"{}",{msgs}}}"#, "m".repeat(10_000)).into_bytes(),
            400,
        ),
    ];
    for (case, body, status) in cases {
        let a = h
            .raw(
                "POST",
                "/v1/chat/completions",
                &[("authorization", &format!("Bearer {key}"))],
                body,
            )
            .await;
        assert_eq!(a.status, status, "{case}: {}", a.text());
        assert_openai_error(&a, case);
        assert!(
            a.headers
                .keys()
                .all(|k| !k.as_str().starts_with("x-injected")),
            "{case}: a header was injected"
        );
    }
    assert_eq!(
        h.mock.stats().requests,
        0,
        "nothing hostile reached the upstream"
    );

    // Unknown fields are vendor extensions (vLLM's `top_k`, llama.cpp's
    // `cache_prompt`): passed through, never in place of what the gateway
    // decides (the upstream model name).
    let a = h
        .chat(&key, json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "top_k": 5, "frobnicate": {"a": 1}}))
        .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let seen = h.mock.last_request();
    assert_eq!(seen["body"]["top_k"], 5);
    assert_eq!(seen["body"]["model"], "mock");
}

#[tokio::test]
async fn hostile_paths_methods_and_headers_get_openai_errors() {
    let h = Harness::new().await;
    let (key, _) = h.key(json!({"name": "h"})).await;
    let bearer = format!("Bearer {key}");
    let almost = format!("Bearer {key}x");
    let cases: Vec<(&str, &str, Headers<'_>, u16)> = vec![
        (
            "GET",
            "/v1/chat/completions",
            vec![("authorization", &bearer)],
            405,
        ),
        (
            "POST",
            "/v1/../admin/api/keys",
            vec![("authorization", &bearer)],
            404,
        ),
        (
            "POST",
            "/v1/chat/completions",
            vec![("authorization", "Bearer")],
            401,
        ),
        (
            "POST",
            "/v1/chat/completions",
            vec![("authorization", "Basic Zm9vOmJhcg==")],
            401,
        ),
        (
            "POST",
            "/v1/chat/completions",
            vec![("authorization", &almost)],
            401,
        ),
        (
            "POST",
            "/v1/chat/completions",
            vec![("x-api-key", "sk-guess")],
            401,
        ),
        (
            "GET",
            "/admin/api/keys",
            vec![("authorization", &bearer)],
            403,
        ),
        ("GET", "/v1/nope", vec![("authorization", &bearer)], 404),
    ];
    for (method, path, headers, status) in cases {
        let case = format!("{method} {path} {headers:?}");
        let a = h
            .raw(
                method,
                path,
                &headers,
                br#"{"model":"m","messages":[]}"#.to_vec(),
            )
            .await;
        assert_eq!(a.status, status, "{case}: {}", a.text());
        assert_openai_error(&a, &case);
    }
    assert_eq!(h.mock.stats().requests, 0);
}

const SQLISH: &str = "x'); DROP TABLE api_keys; --";

#[tokio::test]
async fn sql_metacharacters_in_every_admin_field_are_stored_as_text_or_refused() {
    let h = Harness::new().await;
    let key_bodies = [
        json!({"name": SQLISH}),
        json!({"name": "k", "default_model": SQLISH}),
        json!({"name": "k", "allowed_models": [SQLISH, "\" OR \"1\"=\"1"]}),
        json!({"name": "k", "allowed_ips": [SQLISH]}),
        json!({"name": "k", "rpm": SQLISH}),
        json!({"name": "k", "quota": SQLISH}),
        json!({"name": "k", "expires_at": SQLISH}),
        json!({"name": "k", "status": SQLISH}),
    ];
    let mut created = 0;
    for b in key_bodies {
        let a = h.admin("POST", "/admin/api/keys", Some(b.clone())).await;
        match a.status {
            201 => {
                created += 1;
                let id = a.json()["id"].as_str().unwrap().to_owned();
                let back = h
                    .admin("GET", &format!("/admin/api/keys/{id}"), None)
                    .await
                    .json();
                for (field, sent) in b.as_object().unwrap() {
                    assert_eq!(&back[field], sent, "{field} comes back verbatim");
                }
            }
            400 => assert_openai_error(&a, &b.to_string()),
            s => panic!("{b}: {s} {}", a.text()),
        }
    }
    let model_bodies = [
        json!({"name": SQLISH, "backend": "vllm", "base_url": "http://127.0.0.1:9", "upstream_model": "u"}),
        json!({"name": "a", "backend": SQLISH, "base_url": "http://127.0.0.1:9", "upstream_model": "u"}),
        json!({"name": "b", "backend": "vllm", "base_url": format!("http://127.0.0.1:9/{SQLISH}"), "upstream_model": "u"}),
        json!({"name": "c", "backend": "vllm", "base_url": "http://127.0.0.1:9", "upstream_model": SQLISH}),
        json!({"name": "d", "backend": "vllm", "base_url": "http://127.0.0.1:9", "upstream_model": "u", "api_key": SQLISH}),
        json!({"name": "e", "backend": "vllm", "base_url": "http://127.0.0.1:9", "upstream_model": "u", "fallback_urls": [SQLISH]}),
    ];
    for b in model_bodies {
        let a = h.admin("POST", "/admin/api/models", Some(b.clone())).await;
        assert!(
            matches!(a.status, 201 | 400),
            "{b}: {} {}",
            a.status,
            a.text()
        );
        if a.status == 400 {
            assert_openai_error(&a, &b.to_string());
        }
    }
    // Every table is still there and holds exactly what was created.
    let keys = h.admin("GET", "/admin/api/keys", None).await;
    assert_eq!(keys.status, 200);
    assert_eq!(keys.json()["data"].as_array().unwrap().len(), created);
    assert_eq!(h.admin("GET", "/admin/api/models", None).await.status, 200);
    assert_eq!(h.admin("GET", "/admin/api/usage", None).await.status, 200);
}

#[tokio::test]
async fn path_traversal_and_injection_in_admin_ids_are_404s() {
    let h = Harness::new().await;
    let (_, id) = h.key(json!({"name": "victim"})).await;
    for path in [
        "/admin/api/keys/..%2F..%2Fetc%2Fpasswd",
        "/admin/api/keys/%2e%2e",
        "/admin/api/keys/key_x'%20OR%20'1'='1",
        "/admin/api/keys/%00",
        "/admin/api/models/..%2Fkeys",
        "/admin/api/models/1%3BDROP%20TABLE%20models",
    ] {
        for method in ["GET", "PATCH", "DELETE"] {
            let body = (method == "PATCH").then(|| json!({"name": "renamed"}));
            let a = h.request(method, path, Some(ADMIN), body).await;
            assert_eq!(a.status, 404, "{method} {path}: {}", a.text());
            assert_openai_error(&a, path);
        }
    }
    let victim = h
        .admin("GET", &format!("/admin/api/keys/{id}"), None)
        .await
        .json();
    assert_eq!(
        victim["name"], "victim",
        "nothing was changed by any of them"
    );
}
