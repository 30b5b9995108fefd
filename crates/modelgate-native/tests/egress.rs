//! Egress: what the gateway calls and what it relays back. No redirect is
//! followed (an upstream key must not travel to another host), link-local
//! and cloud metadata addresses are never upstreams unless the operator
//! allows them, and a 2xx that is not the endpoint's answer is not relayed.

mod common;

use common::{Harness, hello};
use modelgate_core::domain::{Model, NewModel};
use modelgate_core::ports::{ModelStore, Ports};
use modelgate_testkit::MockUpstream;
use serde_json::json;

#[tokio::test]
async fn a_redirect_is_not_followed_and_the_key_stays_home() {
    let h = Harness::new().await;
    let elsewhere = MockUpstream::start().await.unwrap();
    let port = elsewhere.url().rsplit(':').next().unwrap().to_owned();
    let (key, id) = h.key(json!({"name": "r", "quota": 1000})).await;
    let base = format!("{}/v1", h.mock.url());
    let upstream = format!("mock?redirect_port={port}");
    // api3 sends x-api-key, which reqwest would carry across hosts.
    h.model_at(
        "m",
        "api3",
        &base,
        &upstream,
        json!({"api_key": "sk-stays-home"}),
    )
    .await;
    let a = h.chat(&key, hello("m")).await;
    assert_eq!(a.status, 502, "{}", a.text());
    assert!(!a.text().contains("localhost"), "{}", a.text());
    assert_eq!(
        elsewhere.stats().requests,
        0,
        "nothing reached the other host"
    );
    let k = h.stored_key(&id).await;
    assert_eq!(k.quota_reserved, 0, "the reservation was released");
}

#[tokio::test]
async fn a_2xx_that_is_no_completion_is_not_relayed() {
    let h = Harness::new().await;
    let (key, _) = h.key(json!({"name": "j"})).await;
    h.model("m", "vllm", "mock?fault=foreign_json").await;
    let a = h.chat(&key, hello("m")).await;
    assert_eq!(a.status, 502, "{}", a.text());
    assert_eq!(a.json()["error"]["code"], "upstream_error");
    assert!(!a.text().contains("mock-metadata-secret"), "{}", a.text());
}

#[tokio::test]
async fn metadata_and_link_local_upstreams_are_refused_unless_allowed() {
    let h = Harness::new().await;
    for url in [
        "http://169.254.169.254/latest",
        "http://[fd00:ec2::254]",
        "http://metadata.google.internal/v1",
    ] {
        let body = json!({"name": "meta", "backend": "vllm", "base_url": url});
        let a = h.admin("POST", "/admin/api/models", Some(body)).await;
        assert_eq!(a.status, 400, "{url}: {}", a.text());
        assert_eq!(a.json()["error"]["param"], "base_url");
        let fallback = json!({"name": "meta", "backend": "vllm", "base_url": h.mock.url(),
            "fallback_urls": [url]});
        let a = h.admin("POST", "/admin/api/models", Some(fallback)).await;
        assert_eq!(a.status, 400, "{url}: {}", a.text());
        let sync = json!({"backend": "vllm", "base_url": url});
        let a = h.admin("POST", "/admin/api/models/sync", Some(sync)).await;
        assert_eq!(a.status, 400, "{url}: {}", a.text());
    }
    // A model stored before the policy (written around the admin API) is
    // not called either: a quick 502, no connection attempt.
    let (key, _) = h.key(json!({"name": "k"})).await;
    let store = h.gateway.ports().store();
    let model = Model {
        id: "mdl_old".into(),
        name: "old".into(),
        backend: modelgate_core::BackendKind::Vllm,
        base_url: "http://169.254.169.254".into(),
        fallback_urls: vec![],
        upstream_model: "mock".into(),
        api_key: None,
        enabled: true,
        stream_usage: true,
        responses_api: None,
        messages_api: None,
        deployments: vec![],
        prices: None,
        created_at: 0,
        updated_at: 0,
    };
    store.insert_model(NewModel { model }).await.unwrap();
    let a = h.chat(&key, hello("old")).await;
    assert_eq!(a.status, 502, "{}", a.text());
    assert!(!a.text().contains("169.254"), "{}", a.text());

    // The operator can allow them (e.g. a backend on a link-local LAN).
    let open = Harness::with(|c| c.allow_link_local_upstreams = true).await;
    let body = json!({"name": "ll", "backend": "vllm", "base_url": "http://169.254.10.1:8000"});
    let a = open.admin("POST", "/admin/api/models", Some(body)).await;
    assert_eq!(a.status, 201, "{}", a.text());
}
