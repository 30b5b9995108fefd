use http::{HeaderName, HeaderValue};
use serde_json::{Value, json};

use super::*;
use crate::backend::{BackendKind, Relay, Target, UpstreamCall};

fn call(endpoint: Endpoint, body: Value, stream: bool) -> UpstreamCall {
    let Value::Object(body) = body else {
        unreachable!()
    };
    UpstreamCall {
        endpoint,
        body,
        public_model: "public".into(),
        request_id: "req_0a".into(),
        stream,
        client_include_usage: true,
        upstream_include_usage: true,
        injected_max_tokens: None,
        anthropic_headers: vec![],
    }
}

fn target() -> Target<'static> {
    Target {
        base_url: "https://api.anthropic.test",
        model: "claude-up",
        api_key: Some("sk-ant"),
    }
}

#[test]
fn a_chat_request_becomes_a_messages_request() {
    let c = call(
        Endpoint::Chat,
        json!({"model": "public", "stream": true, "stop": "END", "user": "u", "parallel_tool_calls": false,
            "reasoning_effort": "low", "max_tokens": 2000,
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "No lists."}]},
                {"role": "user", "content": [{"type": "text", "text": "Weather?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}}]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "w", "arguments": "{\"c\":\"P\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "w", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
                {"role": "tool", "tool_call_id": "call_2", "content": "rain"},
                {"role": "user", "content": "thanks"}
            ],
            "tools": [{"type": "function", "function": {"name": "w", "description": "weather"}}]}),
        true,
    );
    let req = BackendKind::Anthropic.build(&target(), &c).unwrap();
    assert_eq!(req.uri(), "https://api.anthropic.test/v1/messages");
    assert_eq!(req.headers()["x-api-key"], "sk-ant");
    assert_eq!(req.headers()["anthropic-version"], "2023-06-01");
    assert!(req.headers().get("authorization").is_none());
    let b: Value = serde_json::from_slice(req.body()).unwrap();
    assert_eq!(b["model"], "claude-up");
    assert_eq!(b["max_tokens"], 2000);
    assert_eq!(b["system"], "Be brief.\n\nNo lists.");
    assert_eq!(b["stream"], true);
    assert_eq!(b["stop_sequences"], json!(["END"]));
    assert_eq!(b["metadata"], json!({"user_id": "u"}));
    assert_eq!(
        b["thinking"],
        json!({"type": "enabled", "budget_tokens": 1024})
    );
    let roles: Vec<&str> = b["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant", "user"]);
    assert_eq!(
        b["messages"][0]["content"][1]["source"],
        json!({"type": "base64", "media_type": "image/png", "data": "iVBO"})
    );
    assert_eq!(
        b["messages"][1]["content"][0],
        json!({"type": "tool_use", "id": "call_1", "name": "w", "input": {"c": "P"}})
    );
    let results = &b["messages"][2]["content"];
    assert_eq!(
        results[0],
        json!({"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"})
    );
    assert_eq!(results[1]["tool_use_id"], "call_2");
    assert_eq!(results[2], json!({"type": "text", "text": "thanks"}));
    assert_eq!(
        b["tools"][0],
        json!({"name": "w", "description": "weather", "input_schema": {"type": "object"}})
    );
    assert_eq!(
        b["tool_choice"],
        json!({"type": "auto", "disable_parallel_tool_use": true})
    );
    // No cap from the client or the gateway: the documented default.
    let bare = call(
        Endpoint::Chat,
        json!({"messages": [{"role": "user", "content": "hi"}]}),
        false,
    );
    let b: Value = serde_json::from_slice(
        BackendKind::Anthropic
            .build(&target(), &bare)
            .unwrap()
            .body(),
    )
    .unwrap();
    assert_eq!(b["max_tokens"], 4096);
    assert!(b.get("thinking").is_none() && b.get("stream").is_none());
}

#[test]
fn a_messages_request_goes_as_it_came_with_its_headers() {
    let mut c = call(
        Endpoint::Messages,
        json!({"model": "public", "max_tokens": 9, "messages": [{"role": "user", "content": [
            {"type": "thinking", "thinking": "t", "signature": "sig=="},
            {"type": "thinking", "thinking": "bridged", "signature": ""},
            {"type": "text", "text": "x"}]}], "context_management": {"x": 1}}),
        false,
    );
    c.anthropic_headers = vec![
        (
            HeaderName::from_static("anthropic-version"),
            HeaderValue::from_static("2026-10-21"),
        ),
        (
            HeaderName::from_static("anthropic-beta"),
            HeaderValue::from_static("a-1,b-2"),
        ),
    ];
    let req = BackendKind::Anthropic.build(&target(), &c).unwrap();
    assert_eq!(req.headers()["anthropic-version"], "2026-10-21");
    assert_eq!(req.headers()["anthropic-beta"], "a-1,b-2");
    let b: Value = serde_json::from_slice(req.body()).unwrap();
    assert_eq!(b["model"], "claude-up");
    // A signed thinking block goes as it came; an unsigned one (the
    // bridge's) would be refused by Claude: dropped.
    assert_eq!(b["messages"][0]["content"][0]["signature"], "sig==");
    assert_eq!(
        b["messages"][0]["content"][1],
        json!({"type": "text", "text": "x"})
    );
    // To another backend serving Messages, the body goes whole.
    let req = BackendKind::Llamacpp.build(&target(), &c).unwrap();
    let b: Value = serde_json::from_slice(req.body()).unwrap();
    assert_eq!(b["messages"][0]["content"].as_array().unwrap().len(), 3);
    assert_eq!(b["context_management"], json!({"x": 1}));
}

fn message() -> Value {
    json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-up",
        "content": [{"type": "thinking", "thinking": "hm", "signature": "s"},
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_1", "name": "w", "input": {"c": "P"}}],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 30, "cache_creation": {"ephemeral_5m_input_tokens": 10, "ephemeral_1h_input_tokens": 20}}})
}

#[test]
fn a_message_answers_a_chat_client_and_counts_the_cache() {
    let c = call(Endpoint::Chat, json!({"messages": []}), false);
    let (body, usage) = BackendKind::Anthropic
        .parse_response(&c, 200, message().to_string().as_bytes(), 7)
        .unwrap();
    let usage = usage.unwrap();
    assert_eq!(
        (
            usage.prompt_tokens,
            usage.cached_tokens,
            usage.completion_tokens
        ),
        (140, 100, 5)
    );
    assert_eq!(usage.cache_writes, (10, 20));
    let chat: Value = serde_json::from_slice(&body).unwrap();
    let m = &chat["choices"][0]["message"];
    assert_eq!(m["content"], "Let me check.");
    assert_eq!(m["reasoning_content"], "hm");
    assert_eq!(
        m["tool_calls"][0]["function"],
        json!({"name": "w", "arguments": "{\"c\":\"P\"}"})
    );
    assert_eq!(chat["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(chat["usage"]["prompt_tokens"], 140);
    assert_eq!(chat["usage"]["prompt_tokens_details"]["cached_tokens"], 100);
    assert_eq!(chat["model"], "public");
    // A Messages client gets it as it came, named as it asked.
    let m = call(Endpoint::Messages, json!({}), false);
    let raw = message().to_string();
    let (body, _) = BackendKind::Anthropic
        .parse_response(&m, 200, raw.as_bytes(), 7)
        .unwrap();
    let mut want = message();
    want["model"] = json!("public");
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), want);
}

fn events() -> String {
    let ev = |v: Value| format!("event: {}\ndata: {v}\n\n", v["type"].as_str().unwrap());
    [
        ev(json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "content": [],
            "model": "m", "stop_reason": null, "usage": {"input_tokens": 10, "cache_read_input_tokens": 100, "output_tokens": 1}}})),
        ev(json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})),
        ev(json!({"type": "ping"})),
        ev(json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}})),
        ev(json!({"type": "content_block_stop", "index": 0})),
        ev(json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "w", "input": {}}})),
        ev(json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"c\":"}})),
        ev(json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "\"P\"}"}})),
        ev(json!({"type": "content_block_stop", "index": 1})),
        ev(json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 12}})),
        ev(json!({"type": "message_stop"})),
    ]
    .concat()
}

fn run(relay: &mut Relay, sse: &str) -> String {
    let mut out = Vec::new();
    for b in sse.as_bytes().chunks(7) {
        relay.feed(b, &mut out);
    }
    relay.finish(&mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn a_stream_becomes_chat_chunks_with_the_whole_usage() {
    let c = call(Endpoint::Chat, json!({}), true);
    let mut relay = BackendKind::Anthropic.relay(&c, 7);
    let out = run(&mut relay, &events());
    let chunks: Vec<Value> = out
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(out.ends_with("data: [DONE]\n\n"));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(chunks[1]["choices"][0]["delta"]["content"], "Hi");
    assert_eq!(
        chunks[2]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"],
        "w"
    );
    let args: String = chunks[3..5]
        .iter()
        .map(|c| {
            c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(args, "{\"c\":\"P\"}");
    assert_eq!(chunks[5]["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(chunks[6]["usage"]["prompt_tokens"], 110);
    assert_eq!(chunks[6]["usage"]["completion_tokens"], 12);
    let state = relay.state();
    assert_eq!(state.outcome, Some(crate::backend::StreamOutcome::Complete));
    assert_eq!(
        state
            .usage
            .map(|u| (u.prompt_tokens, u.cached_tokens, u.completion_tokens)),
        Some((110, 100, 12))
    );
}

#[test]
fn a_messages_stream_passes_through_and_a_cut_one_ends_in_an_error_event() {
    let c = call(Endpoint::Messages, json!({}), true);
    let mut relay = BackendKind::Anthropic.relay(&c, 7);
    let all = events();
    let out = run(&mut relay, &all);
    assert_eq!(out, all.replace(r#""model":"m""#, r#""model":"public""#));
    assert_eq!(relay.state().usage.map(|u| u.completion_tokens), Some(12));
    let mut cut = BackendKind::Anthropic.relay(&c, 7);
    let out = run(&mut cut, &all[..all.len() / 2]);
    assert!(out.ends_with("event: error\ndata: {\"error\":{\"message\":\"The upstream stream ended before it was complete.\",\"type\":\"api_error\"},\"type\":\"error\"}\n\n"), "{out}");
}

#[test]
fn completions_and_embeddings_are_refused() {
    for (endpoint, body) in [
        (Endpoint::Completion, json!({"model": "m", "prompt": "x"})),
        (Endpoint::Embeddings, json!({"model": "m", "input": "x"})),
    ] {
        let req = crate::request::parse(endpoint, body.to_string().as_bytes()).unwrap();
        assert!(BackendKind::Anthropic.supports(&req).is_err());
    }
}
