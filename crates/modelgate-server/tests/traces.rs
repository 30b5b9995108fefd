//! OpenTelemetry traces from the real binary: an OTLP/HTTP receiver in the
//! test decodes what the server exports (protobuf, as a collector would),
//! and a request that came with a W3C `traceparent` gives one span for the
//! request, in the client's trace, and one per upstream attempt, whose
//! context the upstream received.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::PATIENCE;

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use modelgate_testkit::MockUpstream;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::{Value, json};

const ADMIN: &str = "traces-test-admin-key-0123456789";
const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const PARENT_ID: &str = "b7ad6b7169203331";

/// An OTLP/HTTP trace receiver on a free loopback port: the spans it got.
async fn receiver() -> (u16, Arc<Mutex<Vec<Span>>>) {
    let spans = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&spans);
    let app = Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| {
            let kept = Arc::clone(&kept);
            async move {
                let req = ExportTraceServiceRequest::decode(body).unwrap();
                let all = req.resource_spans.into_iter().flat_map(|r| r.scope_spans);
                kept.lock().unwrap().extend(all.flat_map(|s| s.spans));
                ExportTraceServiceResponse::default().encode_to_vec()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, spans)
}

fn attr(span: &Span, key: &str) -> Option<Value> {
    let v = span
        .attributes
        .iter()
        .find(|a| a.key == key)?
        .value
        .clone()?;
    Some(match v.value? {
        Any::StringValue(s) => json!(s),
        Any::IntValue(i) => json!(i),
        Any::BoolValue(b) => json!(b),
        Any::DoubleValue(d) => json!(d),
        _ => Value::Null,
    })
}

async fn call(method: reqwest::Method, url: &str, token: &str, body: Value) -> Value {
    let text = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01"))
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_one_span_in_the_clients_trace_and_one_per_attempt() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (otlp, spans) = receiver().await;
    let mock = MockUpstream::start().await.unwrap();
    let dir = std::env::temp_dir().join(format!("mg-traces-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut cmd = common::command(&dir.join("db.sqlite"), ADMIN);
    cmd.env(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        format!("http://127.0.0.1:{otlp}"),
    )
    .env("OTEL_BSP_SCHEDULE_DELAY", "100")
    .env("OTEL_SERVICE_NAME", "mg-traces-test")
    .env_remove("OTEL_EXPORTER_OTLP_PROTOCOL")
    .env_remove("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL");
    let (_server, base) = common::start(cmd);
    let model = json!({"name": "traced", "backend": "vllm", "base_url": mock.url(),
        "upstream_model": "mock?tokens=3", "api_key": "sk-upstream-secret"});
    call(
        reqwest::Method::POST,
        &format!("{base}/admin/api/models"),
        ADMIN,
        model,
    )
    .await;
    let key = call(
        reqwest::Method::POST,
        &format!("{base}/admin/api/keys"),
        ADMIN,
        json!({"name": "t"}),
    )
    .await;
    let chat = json!({"model": "traced", "messages": [{"role": "user", "content": "hello there"}]});
    let answer = call(
        reqwest::Method::POST,
        &format!("{base}/v1/chat/completions"),
        key["key"].as_str().unwrap(),
        chat,
    )
    .await;
    assert_eq!(answer["usage"]["completion_tokens"], 3, "{answer}");

    // The upstream got the attempt's context, in the client's trace.
    let seen = reqwest::get(format!("{}/_mock/last", mock.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let seen: Value = serde_json::from_str(&seen).unwrap();
    let sent = seen["traceparent"]
        .as_str()
        .expect("traceparent sent upstream");
    let parts: Vec<&str> = sent.split('-').collect();
    assert_eq!(
        (parts[0], parts[1], parts[3]),
        ("00", TRACE_ID, "01"),
        "{sent}"
    );
    assert_ne!(parts[2], PARENT_ID);

    let found = |name: &str| {
        spans
            .lock()
            .unwrap()
            .iter()
            .find(|s| s.name == name)
            .cloned()
    };
    let deadline = Instant::now() + PATIENCE;
    while found("chat traced").is_none() || found("chat mock?tokens=3").is_none() {
        let names: Vec<String> = spans
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.name.clone())
            .collect();
        assert!(Instant::now() < deadline, "spans not exported: {names:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let request = found("chat traced").unwrap();
    let attempt = found("chat mock?tokens=3").unwrap();
    assert_eq!(hex(&request.trace_id), TRACE_ID);
    assert_eq!(hex(&request.parent_span_id), PARENT_ID);
    assert_eq!(request.kind, 2, "server");
    assert_eq!(attr(&request, "gen_ai.operation.name"), Some(json!("chat")));
    assert_eq!(
        attr(&request, "gen_ai.request.model"),
        Some(json!("traced"))
    );
    assert_eq!(attr(&request, "gen_ai.usage.output_tokens"), Some(json!(3)));
    assert!(attr(&request, "gen_ai.usage.input_tokens").is_some_and(|n| n.as_i64() > Some(0)));
    assert_eq!(
        attr(&request, "http.response.status_code"),
        Some(json!(200))
    );
    assert_eq!(hex(&attempt.trace_id), TRACE_ID);
    assert_eq!(
        attempt.parent_span_id, request.span_id,
        "a child of the request"
    );
    assert_eq!(
        hex(&attempt.span_id),
        parts[2],
        "the context the upstream got"
    );
    assert_eq!(attempt.kind, 3, "client");
    assert_eq!(
        attr(&attempt, "modelgate.deployment"),
        Some(json!("primary"))
    );
    assert_eq!(attr(&attempt, "gen_ai.provider.name"), Some(json!("vllm")));
    assert_eq!(
        attr(&attempt, "http.response.status_code"),
        Some(json!(200))
    );
    // No URL and no key in any exported attribute.
    let all = format!("{:?}", spans.lock().unwrap());
    assert!(!all.contains(&mock.url()) && !all.contains("sk-upstream-secret"));
    assert!(!all.contains(key["key"].as_str().unwrap()));
    let _ = std::fs::remove_dir_all(&dir);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
