//! `GET /metrics`: the Prometheus text format, for admins only, with the
//! requests, refusals, attempts, durations and tokens the test produced.
//! A file of its own: the recorder is global to the test process.

mod common;

use common::{ADMIN, Harness, hello};
use serde_json::json;

/// The value of the sample of `name` whose labels include all of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .find(|l| labels.iter().all(|want| l.contains(want)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test]
async fn metrics_count_what_was_served_for_admins_only() {
    modelgate_native::metrics::install().unwrap();
    let h = Harness::new().await;
    let (key, key_id) = h.key(json!({"name": "m", "rpm": 3, "quota": null})).await;
    h.model("m", "vllm", "mock?tokens=8").await;
    for _ in 0..3 {
        assert_eq!(h.chat(&key, hello("m")).await.status, 200);
    }
    assert_eq!(
        h.chat(&key, hello("m")).await.status,
        429,
        "the fourth is over the RPM"
    );
    assert_eq!(h.chat(&key, hello("m")).await.status, 429);
    let (other, _) = h.key(json!({"name": "n", "quota": null})).await;
    assert_eq!(h.chat(&other, hello("nope")).await.status, 404);
    h.model("s", "vllm", "mock?tokens=4").await;
    let mut streamed = hello("s");
    streamed["stream"] = json!(true);
    for _ in 0..2 {
        assert_eq!(h.chat(&other, streamed.clone()).await.status, 200);
    }

    assert_eq!(h.request("GET", "/metrics", None, None).await.status, 401);
    assert_eq!(
        h.request("GET", "/metrics", Some(&key), None).await.status,
        403
    );
    let m = h.request("GET", "/metrics", Some(ADMIN), None).await;
    assert_eq!(m.status, 200);
    assert!(
        m.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = m.text();
    let ok = [
        "endpoint=\"chat\"",
        "model=\"m\"",
        "status_class=\"2xx\"",
        "error_type=\"none\"",
    ];
    assert_eq!(
        sample(&text, "modelgate_requests_total", &ok),
        Some(3.0),
        "{text}"
    );
    let streamed = ["model=\"s\"", "status_class=\"2xx\""];
    assert_eq!(
        sample(&text, "modelgate_requests_total", &streamed),
        Some(2.0)
    );
    // An unknown model is no label of its own.
    let unknown = ["model=\"\"", "error_type=\"client\""];
    assert_eq!(
        sample(&text, "modelgate_requests_total", &unknown),
        Some(1.0)
    );
    assert!(!text.contains("nope"), "{text}");
    let limited = [
        "endpoint=\"chat\"",
        "status_class=\"4xx\"",
        "error_type=\"limit\"",
    ];
    assert_eq!(
        sample(&text, "modelgate_requests_total", &limited),
        Some(2.0)
    );
    let client = ["status_class=\"4xx\"", "error_type=\"client\""];
    assert_eq!(
        sample(&text, "modelgate_requests_total", &client),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "modelgate_refusals_total",
            &["reason=\"rate_limit\""]
        ),
        Some(2.0)
    );
    let attempts = ["model=\"m\"", "deployment=\"primary\"", "outcome=\"ok\""];
    assert_eq!(
        sample(&text, "modelgate_upstream_attempts_total", &attempts),
        Some(3.0)
    );
    let output = ["gen_ai_request_model=\"m\"", "gen_ai_token_type=\"output\""];
    assert_eq!(
        sample(&text, "gen_ai_client_token_usage_sum", &output),
        Some(24.0)
    );
    assert_eq!(
        sample(&text, "gen_ai_client_token_usage_count", &output),
        Some(3.0)
    );
    let chat = [
        "gen_ai_operation_name=\"chat\"",
        "gen_ai_request_model=\"m\"",
    ];
    assert_eq!(
        sample(
            &text,
            "gen_ai_client_operation_duration_seconds_count",
            &chat
        ),
        Some(3.0)
    );
    let top = [r#"le="+Inf""#, "gen_ai_request_model=\"m\""];
    assert_eq!(
        sample(
            &text,
            "gen_ai_client_operation_duration_seconds_bucket",
            &top
        ),
        Some(3.0),
        "a histogram"
    );
    assert_eq!(
        sample(&text, "modelgate_requests_in_flight", &[]),
        Some(0.0)
    );
    let first = ["gen_ai_request_model=\"s\"", r#"le="+Inf""#];
    let streams = sample(
        &text,
        "gen_ai_server_time_to_first_token_seconds_bucket",
        &first,
    );
    assert_eq!(streams, Some(2.0), "both streams");
    let buffered = ["gen_ai_request_model=\"m\""];
    let count = sample(
        &text,
        "gen_ai_server_time_to_first_token_seconds_count",
        &buffered,
    );
    assert_eq!(count, None, "streams only");
    // Bounded labels: no key, no key id, no request id, no unknown model.
    assert!(!text.contains(&key_id) && !text.contains("req_") && !text.contains("nope"));
}
