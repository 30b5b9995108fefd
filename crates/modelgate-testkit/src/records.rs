//! Records for the stores' tests: keys, models, deployments, leases,
//! settlements and stored responses with the fields the suites expect.

use modelgate_core::auth;
use modelgate_core::backend::{BackendKind, ResponsesApi};
use modelgate_core::cost::Prices;
use modelgate_core::deployment::Deployment;
use modelgate_core::domain::{
    ApiKey, KeyStatus, Lease, Model, Settlement, StoredResponse, UsageRecord,
};
use modelgate_core::period::Period;

/// A lease on `key_id`'s quota for a request of its own (a fresh request
/// id each time), expiring in the far future.
pub fn lease(key_id: &str) -> Lease {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Lease {
        request_id: format!("req_t{n}"),
        key_id: key_id.to_owned(),
        model: "m".into(),
        backend: "vllm".into(),
        amount: 0,
        money: 0,
        created_at: 0,
        expires_at: i64::MAX / 2,
    }
}

/// A key record for tests.
pub fn key(id: &str, quota: Option<i64>) -> ApiKey {
    ApiKey {
        id: id.into(),
        name: format!("key {id}"),
        prefix: "mg-test...".into(),
        hash: auth::hash_key(id).into(),
        status: KeyStatus::Active,
        admin: false,
        rpm: Some(60),
        tpm: Some(6_000),
        model_limits: [(
            "m1".to_owned(),
            modelgate_core::domain::ModelLimit {
                rpm: Some(5),
                tpm: None,
            },
        )]
        .into(),
        quota,
        quota_used: 0,
        quota_reserved: 0,
        quota_period: Period::None,
        quota_window: 0,
        budget_nanos: None,
        budget_used_nanos: 0,
        budget_reserved_nanos: 0,
        budget_period: Period::None,
        budget_window: 0,
        allowed_models: vec!["m1".into()],
        allowed_tools: vec!["github".into(), "docs_search".into()],
        allowed_ips: vec!["10.0.0.0/8".into()],
        default_model: None,
        expires_at: None,
        created_at: 1_000,
        updated_at: 1_000,
        last_used_at: None,
    }
}

/// A model record for tests.
pub fn model(id: &str, name: &str) -> Model {
    Model {
        id: id.into(),
        name: name.into(),
        backend: BackendKind::Vllm,
        base_url: "http://127.0.0.1:9".into(),
        fallback_urls: vec!["http://127.0.0.1:10".into()],
        upstream_model: format!("up-{name}"),
        api_key: Some("sk-upstream".into()),
        enabled: true,
        stream_usage: true,
        responses_api: Some(ResponsesApi::Bridge),
        messages_api: None,
        deployments: vec![],
        prices: Some(Prices {
            input: 150_000,
            cached_input: Some(75_000),
            output: 600_000,
            cache_write: None,
            cache_write_1h: None,
        }),
        created_at: 1_000,
        updated_at: 1_000,
    }
}

/// A deployment record for tests.
pub fn deployment(name: &str, backend: BackendKind, weight: u32, priority: u32) -> Deployment {
    Deployment {
        name: name.into(),
        backend,
        base_url: format!("http://127.0.0.1:9/{name}"),
        upstream_model: format!("up-{name}"),
        api_key: Some(format!("sk-{name}").into()),
        weight,
        priority,
        health_check: priority == 0,
        prices: (priority > 0).then_some(Prices {
            input: 2_500_000,
            cached_input: None,
            output: 10_000_000,
            cache_write: None,
            cache_write_1h: None,
        }),
        first_byte_timeout_secs: None,
    }
}

/// A settlement for tests.
pub fn settlement(
    request_id: &str,
    key_id: &str,
    reserved: i64,
    prompt: i64,
    completion: i64,
    at: i64,
) -> Settlement {
    Settlement {
        key_id: key_id.into(),
        reserved,
        reserved_money: 0,
        quota_window: 0,
        budget_window: 0,
        usage: UsageRecord {
            request_id: request_id.into(),
            key_id: key_id.into(),
            model: "m1".into(),
            backend: "vllm".into(),
            prompt_tokens: prompt,
            completion_tokens: completion,
            cached_tokens: prompt / 2,
            cost_nanos: Some(prompt + 10 * completion),
            status: 200,
            usage_reported: true,
            stream: false,
            endpoint: Some("chat".into()),
            deployment: Some("primary".into()),
            error: None,
            latency_ms: 5,
            created_at: at,
            arguments: None,
        },
    }
}

/// A stored response for tests.
pub fn stored_response(id: &str, key_id: &str, created_at: i64, expires_at: i64) -> StoredResponse {
    StoredResponse {
        id: id.into(),
        key_id: key_id.into(),
        model: "m1".into(),
        previous_response_id: Some("resp_before".into()),
        input: r#"[{"role":"user","content":"héllo \"there\""}]"#.into(),
        response: format!(r#"{{"id":"{id}","object":"response","output":[]}}"#),
        created_at,
        expires_at,
    }
}
