//! `/v1/embeddings` and `/v1/responses` end to end through the router, on
//! the mock upstream: what the client gets, what goes upstream, and what is
//! charged and recorded.

mod common;

use base64::Engine;
use common::{Answer, Harness};
use serde_json::{Value, json};

async fn embed(h: &Harness, key: &str, body: Value) -> Answer {
    h.request("POST", "/v1/embeddings", Some(key), Some(body))
        .await
}

async fn respond(h: &Harness, key: &str, body: Value) -> Answer {
    h.request("POST", "/v1/responses", Some(key), Some(body))
        .await
}

fn floats(b64: &str) -> Vec<f32> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    bytes
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// The usage rows of one endpoint.
async fn rows(h: &Harness, endpoint: &str) -> Vec<Value> {
    h.usage().await["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["endpoint"] == endpoint)
        .cloned()
        .collect()
}

#[tokio::test]
async fn embeddings_on_openai_compatible_backends_pass_through_and_charge_the_input() {
    let h = Harness::new().await;
    let (key, id) = h.key(json!({"name": "e", "quota": 1000})).await;
    h.model("emb", "vllm", "mock").await;
    let a = embed(
        &h,
        &key,
        json!({"model": "emb", "input": ["one two", "three"], "dimensions": 4}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let v = a.json();
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(v["data"][1]["embedding"].as_array().unwrap().len(), 4);
    assert_eq!(v["usage"]["prompt_tokens"], 3);
    assert_eq!(h.mock.last_request()["body"]["dimensions"], 4);
    assert_eq!(h.mock.last_request()["body"]["model"], "mock");
    let k = h.stored_key(&id).await;
    assert_eq!((k.quota_used, k.quota_reserved), (3, 0));
    let r = rows(&h, "embeddings").await;
    assert_eq!((r.len(), &r[0]["prompt_tokens"]), (1, &json!(3)), "{r:?}");
    assert_eq!(r[0]["completion_tokens"], 0);

    // base64 is the upstream's own; token ids go through as they are.
    let a = embed(
        &h,
        &key,
        json!({"model": "emb", "input": [[1, 2, 3]], "encoding_format": "base64"}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(
        floats(a.json()["data"][0]["embedding"].as_str().unwrap()).len(),
        8
    );
}

#[tokio::test]
async fn embeddings_without_reported_usage_are_estimated() {
    let h = Harness::new().await;
    let (key, id) = h.key(json!({"name": "e", "quota": 1000})).await;
    // Older llama.cpp builds answer prompt_tokens 0.
    h.model("emb", "llamacpp", "mock?no_usage=1").await;
    let a = embed(&h, &key, json!({"model": "emb", "input": "abcdefgh"})).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.json()["usage"]["prompt_tokens"], 0);
    let k = h.stored_key(&id).await;
    assert_eq!(
        (k.quota_used, k.quota_reserved),
        (2, 0),
        "8 bytes at ~4 a token"
    );
}

#[tokio::test]
async fn embeddings_on_ollama_are_built_by_the_gateway() {
    let h = Harness::new().await;
    let (key, _) = h.key(json!({"name": "e"})).await;
    h.model("emb", "ollama", "mock").await;
    let a = embed(
        &h,
        &key,
        json!({"model": "emb", "input": ["a b", "c"], "encoding_format": "base64"}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let v = a.json();
    assert_eq!(v["model"], "emb");
    assert_eq!(v["usage"]["prompt_tokens"], 3);
    let got = floats(v["data"][1]["embedding"].as_str().unwrap());
    assert_eq!(got, modelgate_testkit::mock::vector("c", 8));
    assert_eq!(h.mock.last_request()["body"]["input"], json!(["a b", "c"]));

    let a = embed(&h, &key, json!({"model": "emb", "input": "a"})).await;
    assert_eq!(
        a.json()["data"][0]["embedding"].as_array().unwrap().len(),
        8
    );
    let a = embed(&h, &key, json!({"model": "emb", "input": [1, 2]})).await;
    assert_eq!(a.status, 400);
    assert_eq!(a.json()["error"]["param"], "input");
}

#[tokio::test]
async fn bad_embeddings_requests_name_the_parameter() {
    let h = Harness::new().await;
    let (key, _) = h.key(json!({"name": "e"})).await;
    h.model("emb", "vllm", "mock").await;
    for (body, param) in [
        (json!({"model": "emb"}), "input"),
        (json!({"model": "emb", "input": ""}), "input"),
        (
            json!({"model": "emb", "input": "x", "encoding_format": "int8"}),
            "encoding_format",
        ),
    ] {
        let a = embed(&h, &key, body).await;
        assert_eq!(a.status, 400);
        assert_eq!(a.json()["error"]["param"], param);
    }
    let a = embed(&h, &key, json!({"model": "nope", "input": "x"})).await;
    assert_eq!(a.status, 404);
    let a = h.request("GET", "/v1/embeddings", Some(&key), None).await;
    assert_eq!(a.status, 405);
}

#[tokio::test]
async fn bridged_responses_translate_both_ways_and_settle() {
    let h = Harness::new().await;
    let (key, id) = h.key(json!({"name": "r", "quota": 1000})).await;
    h.model("m", "vllm", "mock?tokens=3").await;
    let a = respond(
        &h,
        &key,
        json!({"model": "m", "instructions": "be brief", "input": "hello there", "store": true,
            "metadata": {"trace": "t1"}}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let v = a.json();
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    assert_eq!(v["model"], "m");
    assert_eq!(v["store"], true);
    assert_eq!(v["metadata"]["trace"], "t1");
    assert_eq!(v["output"][0]["content"][0]["text"], " w0 w1 w2");
    assert_eq!(v["usage"]["input_tokens"], 4);
    assert_eq!(v["usage"]["output_tokens"], 3);
    let up = h.mock.last_request();
    assert_eq!(up["chat"], true);
    assert_eq!(up["body"]["messages"][0]["role"], "system");
    assert!(
        up["body"]["max_tokens"].as_u64().is_some(),
        "capped for the quota"
    );
    let k = h.stored_key(&id).await;
    assert_eq!((k.quota_used, k.quota_reserved), (7, 0));
    assert_eq!(rows(&h, "responses").await.len(), 1);
}

/// The events of an SSE answer: (type, data).
fn events(a: &Answer) -> Vec<Value> {
    let text = a.text();
    let mut out = Vec::new();
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let mut kind = None;
        let mut data = None;
        for line in block.lines() {
            if let Some(k) = line.strip_prefix("event: ") {
                kind = Some(k.to_owned());
            } else if let Some(d) = line.strip_prefix("data: ") {
                data = Some(serde_json::from_str::<Value>(d).unwrap());
            }
        }
        let data = data.unwrap_or_else(|| panic!("event without data: {block:?}"));
        assert_eq!(kind.as_deref(), data["type"].as_str(), "{block}");
        out.push(data);
    }
    for (i, e) in out.iter().enumerate() {
        assert_eq!(e["sequence_number"], i, "{text}");
    }
    out
}

fn terminal(events: &[Value]) -> &Value {
    let ends: Vec<&Value> = events
        .iter()
        .filter(|e| {
            matches!(
                e["type"].as_str(),
                Some("response.completed" | "response.incomplete" | "response.failed")
            )
        })
        .collect();
    assert_eq!(ends.len(), 1, "exactly one terminal event: {events:?}");
    assert_eq!(ends[0], events.last().unwrap());
    ends[0]
}

#[tokio::test]
async fn bridged_streams_follow_the_event_grammar_on_every_backend_protocol() {
    for backend in ["vllm", "ollama"] {
        let h = Harness::new().await;
        let (key, id) = h.key(json!({"name": "r", "quota": 1000})).await;
        h.model("m", backend, "mock?tokens=4").await;
        let a = respond(
            &h,
            &key,
            json!({"model": "m", "input": [{"role": "user", "content": "hi you"}], "stream": true}),
        )
        .await;
        assert_eq!(a.status, 200, "{backend}: {}", a.text());
        assert_eq!(a.headers["content-type"], "text/event-stream");
        let ev = events(&a);
        assert_eq!(ev[0]["type"], "response.created");
        let done = terminal(&ev);
        assert_eq!(done["type"], "response.completed", "{backend}");
        assert_eq!(
            done["response"]["output"][0]["content"][0]["text"],
            " w0 w1 w2 w3"
        );
        assert_eq!(done["response"]["usage"]["output_tokens"], 4, "{backend}");
        let k = h.wait_key(&id, |k| k.quota_reserved == 0).await;
        assert_eq!(k.quota_used, 6, "{backend}");
    }
}

#[tokio::test]
async fn a_function_tool_round_trip_through_the_bridge() {
    let h = Harness::new().await;
    let (key, _) = h.key(json!({"name": "r"})).await;
    h.model("m", "vllm", "mock?tokens=2").await;
    let tools = json!([{"type": "function", "name": "get_weather", "description": "w",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]);
    let a = respond(
        &h,
        &key,
        json!({"model": "m", "input": "weather in Paris?", "tools": tools, "stream": true}),
    )
    .await;
    let ev = events(&a);
    let done = terminal(&ev);
    let call = &done["response"]["output"][0];
    assert_eq!(call["type"], "function_call");
    assert_eq!(call["name"], "get_weather");
    assert_eq!(call["arguments"], "{\"city\":\"mock\"}");
    assert!(
        ev.iter()
            .any(|e| e["type"] == "response.function_call_arguments.done")
    );
    let up = h.mock.last_request()["body"].clone();
    assert_eq!(up["tools"][0]["function"]["name"], "get_weather");

    let input = json!([
        {"role": "user", "content": "weather in Paris?"},
        call,
        {"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"},
    ]);
    let a = respond(
        &h,
        &key,
        json!({"model": "m", "input": input, "tools": tools}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.json()["output"][0]["type"], "message");
    let up = h.mock.last_request()["body"].clone();
    assert_eq!(up["messages"][1]["tool_calls"][0]["id"], call["call_id"]);
    assert_eq!(up["messages"][2]["role"], "tool");
}

#[tokio::test]
async fn native_responses_reach_every_backend_kind_at_its_path() {
    let h = Harness::new().await;
    let (key, _) = h.key(json!({"name": "r"})).await;
    let root = h.mock.url();
    let v1 = format!("{root}/v1");
    for (backend, base) in [
        ("openai", &v1),
        ("api3", &v1),
        ("vllm", &root),
        ("llamacpp", &root),
        ("ollama", &root),
    ] {
        let name = format!("n-{backend}");
        h.model_at(
            &name,
            backend,
            base,
            "mock?tokens=2",
            json!({"responses_api": "native"}),
        )
        .await;
        let a = respond(&h, &key, json!({"model": name, "input": "x"})).await;
        assert_eq!(a.status, 200, "{backend}: {}", a.text());
        // Named by the gateway, not by the upstream (whose ids may repeat).
        let named = a.json()["id"].as_str().unwrap().to_owned();
        assert!(
            named.starts_with("resp_") && named != "resp_mock1",
            "{backend}: {named}"
        );
        // And embeddings at theirs.
        let a = embed(&h, &key, json!({"model": name, "input": "x"})).await;
        assert_eq!(a.status, 200, "{backend}: {}", a.text());
        assert_eq!(
            a.json()["data"][0]["embedding"].as_array().unwrap().len(),
            8
        );
    }
}

#[tokio::test]
async fn native_responses_pass_through_and_settle_from_the_terminal_event() {
    let h = Harness::new().await;
    let (key, id) = h.key(json!({"name": "r", "quota": 1000})).await;
    let url = h.mock.url();
    h.model_at(
        "n",
        "vllm",
        &url,
        "mock?tokens=3",
        json!({"responses_api": "native"}),
    )
    .await;
    let a = respond(&h, &key, json!({"model": "n", "input": "one two"})).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let named = a.json()["id"].as_str().unwrap().to_owned();
    assert!(
        named.starts_with("resp_") && named != "resp_mock1",
        "{named}"
    );
    let up = h.mock.last_request()["body"].clone();
    assert_eq!(up["input"], "one two");
    assert!(
        up["max_output_tokens"].as_u64().is_some(),
        "capped for the quota"
    );
    assert_eq!(h.stored_key(&id).await.quota_used, 5);

    let a = respond(
        &h,
        &key,
        json!({"model": "n", "input": "one two", "stream": true}),
    )
    .await;
    let ev = events(&a);
    assert_eq!(terminal(&ev)["type"], "response.completed");
    let k = h.wait_key(&id, |k| k.quota_used == 10).await;
    assert_eq!(k.quota_reserved, 0);
}

#[tokio::test]
async fn native_streams_that_break_end_with_one_response_failed() {
    let h = Harness::new().await;
    let (key, id) = h.key(json!({"name": "r", "quota": 1000})).await;
    // OpenAI's base URL includes the version.
    let url = format!("{}/v1", h.mock.url());
    for (name, fault) in [("cut", "cut"), ("bad", "malformed"), ("err", "error_event")] {
        h.model_at(
            name,
            "openai",
            &url,
            &format!("mock?tokens=5&fault={fault}&after=2"),
            json!({}),
        )
        .await;
        let a = respond(
            &h,
            &key,
            json!({"model": name, "input": "x", "stream": true}),
        )
        .await;
        let ev = events(&a);
        let end = terminal(&ev);
        assert_eq!(end["type"], "response.failed", "{fault}");
        assert_eq!(end["response"]["status"], "failed");
    }
    let k = h.wait_key(&id, |k| k.quota_reserved == 0).await;
    assert!(k.quota_used > 0, "what was relayed is charged");
}

#[tokio::test]
async fn unsupported_responses_features_are_clear_400s() {
    let h = Harness::new().await;
    let (key, _) = h.key(json!({"name": "r"})).await;
    h.model("m", "vllm", "mock").await;
    for (body, param) in [
        (
            json!({"model": "m", "input": "x", "conversation": "conv_1"}),
            "conversation",
        ),
        (
            json!({"model": "m", "input": "x", "background": true}),
            "background",
        ),
        (
            json!({"model": "m", "input": [{"type": "web_search_call", "id": "ws_1"}]}),
            "input[0].type",
        ),
    ] {
        let a = respond(&h, &key, body).await;
        assert_eq!(a.status, 400, "{}", a.text());
        assert_eq!(a.json()["error"]["param"], param);
    }
    assert_eq!(h.mock.stats().requests, 0, "nothing went upstream");
}

#[tokio::test]
async fn compressed_bodies_are_decoded_within_the_limit() {
    let h = Harness::with(|c| c.max_body_bytes = 64 * 1024).await;
    let (key, _) = h.key(json!({"name": "z"})).await;
    h.model("m", "vllm", "mock?tokens=1").await;
    let auth = format!("Bearer {key}");
    let body = json!({"model": "m", "input": "hello"}).to_string();
    let zstd = ruzstd::encoding::compress_to_vec(
        body.as_bytes(),
        ruzstd::encoding::CompressionLevel::Fastest,
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, body.as_bytes()).unwrap();
    let gzip = gz.finish().unwrap();
    for (encoding, bytes) in [("zstd", zstd), ("gzip", gzip)] {
        let headers = [
            ("authorization", auth.as_str()),
            ("content-encoding", encoding),
        ];
        let a = h.raw("POST", "/v1/responses", &headers, bytes).await;
        assert_eq!(a.status, 200, "{encoding}: {}", a.text());
    }
    // 1 MiB of spaces is a few KB compressed: refused on its decoded size.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut gz, &vec![b' '; 1 << 20]).unwrap();
    let headers = [
        ("authorization", auth.as_str()),
        ("content-encoding", "gzip"),
    ];
    let a = h
        .raw("POST", "/v1/responses", &headers, gz.finish().unwrap())
        .await;
    assert_eq!(a.status, 413, "{}", a.text());
    let headers = [("authorization", auth.as_str()), ("content-encoding", "br")];
    let a = h
        .raw("POST", "/v1/responses", &headers, body.into_bytes())
        .await;
    assert_eq!(a.status, 415);
    assert_eq!(a.json()["error"]["code"], "unsupported_content_encoding");
}

#[tokio::test]
async fn hosted_tools_are_left_out_of_the_bridge_and_named() {
    let h = Harness::new().await;
    let (key, _) = h.key(json!({"name": "r"})).await;
    h.model("m", "vllm", "mock?tokens=1").await;
    let tools = json!([{"type": "web_search", "external_web_access": false},
        {"type": "namespace", "name": "ns", "tools": [{"type": "function", "name": "f", "parameters": {}}]}]);
    let a = respond(
        &h,
        &key,
        json!({"model": "m", "input": "x", "tools": tools}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.headers["x-modelgate-ignored-tools"], "web_search");
    let up = h.mock.last_request()["body"].clone();
    assert_eq!(up["tools"].as_array().unwrap().len(), 1);
    assert_eq!(up["tools"][0]["function"]["name"], "f");
}
