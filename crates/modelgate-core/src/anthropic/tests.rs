use serde_json::{Map, Value, json};

use super::*;
use crate::backend::{Relay, SseRelay};
use crate::codec::SseDecoder;
use crate::error::RequestError;

fn echo() -> Echo {
    Echo::new("req_00ab", "claude-sonnet", vec!["STOP".into()])
}

fn body(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

fn translate(v: Value) -> Result<Translated, RequestError> {
    to_chat(&body(v))
}

#[test]
fn a_tool_turn_translates_to_chat() {
    let t = translate(json!({
        "model": "m", "max_tokens": 100, "stream": true,
        "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Be kind."}],
        "stop_sequences": ["STOP"], "temperature": 0.5, "top_k": 5,
        "metadata": {"user_id": "u1"},
        "tools": [
            {"name": "Read", "description": "read a file", "input_schema": {"properties": {"path": {"type": "string"}}}},
            {"type": "web_search_20250305", "name": "web_search"}
        ],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
        "messages": [
            {"role": "user", "content": "read a"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hm", "signature": "sig"},
                {"type": "text", "text": "Reading."},
                {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"path": "a"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "A!"}], "is_error": false},
                {"type": "text", "text": "and?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}}
            ]}
        ]
    }))
    .unwrap();
    let c = &t.chat;
    assert_eq!(t.ignored_tools, ["web_search"]);
    assert_eq!(
        c["messages"][0],
        json!({"role": "system", "content": "Be brief.\n\nBe kind."})
    );
    assert_eq!(
        c["messages"][1],
        json!({"role": "user", "content": "read a"})
    );
    assert_eq!(c["messages"][2]["content"], "Reading.");
    assert_eq!(
        c["messages"][2]["tool_calls"][0]["function"]["arguments"],
        r#"{"path":"a"}"#
    );
    assert_eq!(
        c["messages"][3],
        json!({"role": "tool", "tool_call_id": "toolu_1", "content": "A!"})
    );
    assert_eq!(
        c["messages"][4]["content"][0],
        json!({"type": "text", "text": "and?"})
    );
    assert_eq!(
        c["messages"][4]["content"][1]["image_url"]["url"],
        "data:image/png;base64,iVBO"
    );
    assert_eq!(c["stop"], json!(["STOP"]));
    assert_eq!(c["user"], "u1");
    assert_eq!(c["top_k"], 5);
    assert_eq!(c["tool_choice"], "required");
    assert_eq!(c["parallel_tool_calls"], false);
    assert_eq!(c["tools"][0]["function"]["parameters"]["type"], "object");
    assert_eq!(c["tools"].as_array().unwrap().len(), 1);
    assert!(!c.contains_key("model") && !c.contains_key("thinking"));
}

#[test]
fn bad_conversations_are_refused_naming_the_field() {
    let user = |content: Value| json!({"role": "user", "content": content});
    let uses = json!({"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]});
    let cases = [
        (
            vec![json!({"role": "assistant", "content": "hi"})],
            "messages[0].role",
        ),
        (
            vec![json!({"role": "tool", "content": "hi"})],
            "messages[0].role",
        ),
        (vec![json!({"role": "system", "content": "hi"})], "messages"),
        (
            vec![
                json!({"role": "system", "content": "hi"}),
                json!({"role": "assistant", "content": "x"}),
            ],
            "messages[1].role",
        ),
        (
            vec![user(
                json!([{"type": "tool_result", "tool_use_id": "nope", "content": "x"}]),
            )],
            "messages[0].content[0].tool_use_id",
        ),
        (
            vec![user(json!("x")), uses.clone(), user(json!("no result"))],
            "messages[2]",
        ),
        (
            vec![user(json!("x")), uses.clone(), user(json!("a"))],
            "messages[2]",
        ),
        (
            vec![user(json!([{"type": "video", "url": "x"}]))],
            "messages[0].content[0].type",
        ),
        (
            vec![user(
                json!([{"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}}]),
            )],
            "messages[0].content[0].source",
        ),
        (
            vec![user(
                json!([{"type": "image", "source": {"type": "base64", "media_type": "image/tiff", "data": "x"}}]),
            )],
            "messages[0].content[0].source.media_type",
        ),
        (
            vec![user(
                json!([{"type": "tool_use", "id": "t", "name": "f", "input": {}}]),
            )],
            "messages[0].content[0].type",
        ),
    ];
    for (messages, field) in cases {
        let r = translate(json!({"model": "m", "max_tokens": 5, "messages": messages}));
        match r {
            Err(RequestError::Invalid { param, .. }) => {
                assert_eq!(param.as_deref(), Some(field), "{messages:?}")
            }
            other => panic!("{messages:?}: {other:?}"),
        }
    }
    // Answered, the same conversation is fine; a last assistant turn with
    // a tool use is a prefill.
    let answered = user(json!([{"type": "tool_result", "tool_use_id": "t1"}]));
    assert!(translate(json!({"model": "m", "max_tokens": 5, "messages": [user(json!("x")), uses.clone(), answered]})).is_ok());
    assert!(
        translate(json!({"model": "m", "max_tokens": 5, "messages": [user(json!("x")), uses]}))
            .is_ok()
    );
    // Instructions updated mid-conversation (Claude Code sends them) stay
    // where they were given.
    let t = translate(json!({"model": "m", "max_tokens": 5, "messages": [
        user(json!("x")),
        {"role": "system", "content": [{"type": "text", "text": "Now in French."}]},
        user(json!("y"))
    ]}))
    .unwrap();
    assert_eq!(
        t.chat["messages"][1],
        json!({"role": "system", "content": "Now in French."})
    );
}

#[test]
fn a_chat_answer_becomes_a_message() {
    let chat = json!({
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Let me look.", "reasoning_content": "thinking...",
            "tool_calls": [
                {"id": "functions.Read:0", "type": "function", "function": {"name": "Read", "arguments": "{\"path\":\"a\"}"}},
                {"type": "function", "function": {"name": "Ls", "arguments": "not json"}}
            ]}}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 60}}
    });
    let m: Value =
        serde_json::from_slice(&from_chat(&echo(), chat.to_string().as_bytes()).unwrap()).unwrap();
    assert_eq!(m["id"], "msg_00ab");
    assert_eq!(m["type"], "message");
    assert_eq!(m["model"], "claude-sonnet");
    assert_eq!(m["stop_reason"], "tool_use");
    let kinds: Vec<&str> = m["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["thinking", "text", "tool_use", "tool_use"]);
    assert_eq!(m["content"][2]["id"], "functions_Read_0");
    assert_eq!(m["content"][2]["input"], json!({"path": "a"}));
    assert_eq!(m["content"][3]["id"], "toolu_00ab01");
    assert_eq!(m["content"][3]["input"], json!({}));
    assert_eq!(
        m["usage"],
        json!({"input_tokens": 40, "cache_read_input_tokens": 60, "cache_creation_input_tokens": 0, "output_tokens": 7})
    );
    let stops = [
        (json!("stop"), Value::Null, "end_turn", Value::Null),
        (json!("length"), Value::Null, "max_tokens", Value::Null),
        (json!("content_filter"), Value::Null, "refusal", Value::Null),
        (json!("stop"), json!("STOP"), "stop_sequence", json!("STOP")),
        (json!("stop"), json!("other"), "end_turn", Value::Null),
    ];
    for (finish, matched, reason, sequence) in stops {
        let chat = json!({"choices": [{"finish_reason": finish, "stop_reason": matched, "message": {"content": "x"}}]});
        let m: Value =
            serde_json::from_slice(&from_chat(&echo(), chat.to_string().as_bytes()).unwrap())
                .unwrap();
        assert_eq!(
            (m["stop_reason"].as_str().unwrap(), &m["stop_sequence"]),
            (reason, &sequence)
        );
    }
}

/// Feed chat SSE through a Messages relay in pieces of `step` bytes, end
/// it (cut: as if the upstream broke off), and check the grammar: every
/// event named after its `type`, `message_start` first, indexes 0, 1, ...
/// in start order, one block open at a time, deltas only to the open block
/// of the matching kind, every start stopped, and the stream ending with
/// `message_stop` after a `message_delta`, or with one `error`.
fn relay(sse: &[u8], step: usize, cut: bool) -> Vec<Value> {
    let mut r = MessagesRelay::new(Relay::Sse(SseRelay::new(true)), echo());
    let mut out = Vec::new();
    for piece in sse.chunks(step.max(1)) {
        r.feed(piece, &mut out);
    }
    if cut {
        r.fail("upstream_stream_broken", "broke", &mut out);
    } else {
        r.finish(&mut out);
    }
    assert!(r.is_done());
    let mut dec = SseDecoder::new();
    dec.push(&out);
    let mut events = Vec::new();
    while let Some(ev) = dec.next_event().expect("valid SSE") {
        let data: Value = serde_json::from_str(&ev.data).expect("JSON data");
        assert_eq!(ev.event.as_deref(), data["type"].as_str(), "{data}");
        events.push(data);
    }
    assert!(dec.finish().is_none());
    check_grammar(&events);
    events
}

fn check_grammar(events: &[Value]) {
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    let last = *kinds.last().expect("some event");
    if last == "error" {
        assert_eq!(kinds.iter().filter(|k| **k == "error").count(), 1);
    } else {
        assert_eq!(kinds[0], "message_start", "{kinds:?}");
        assert_eq!(last, "message_stop", "{kinds:?}");
        assert_eq!(kinds[kinds.len() - 2], "message_delta");
    }
    let mut open: Option<(u64, String)> = None;
    let mut next = 0;
    for e in events {
        match e["type"].as_str().unwrap() {
            "message_start" => assert_eq!(e["message"]["stop_reason"], Value::Null),
            "content_block_start" => {
                assert!(open.is_none(), "one block at a time");
                assert_eq!(e["index"], next);
                let kind = e["content_block"]["type"].as_str().unwrap().to_owned();
                open = Some((next, kind));
                next += 1;
            }
            "content_block_delta" => {
                let (i, kind) = open.as_ref().expect("a delta to an open block");
                assert_eq!(e["index"], *i);
                let want = match kind.as_str() {
                    "text" => "text_delta",
                    "thinking" => "thinking_delta",
                    _ => "input_json_delta",
                };
                assert_eq!(e["delta"]["type"], want);
            }
            "content_block_stop" => {
                let (i, _) = open.take().expect("a stop to an open block");
                assert_eq!(e["index"], i);
            }
            "message_delta" => {
                assert!(open.is_none(), "every block stopped first");
                assert!(e["usage"]["output_tokens"].is_u64());
            }
            _ => {}
        }
    }
}

fn chunk(delta: Value, finish: Option<&str>) -> String {
    format!(
        "data: {}\n\n",
        json!({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    )
}

fn tool(index: u64, id: Option<&str>, name: Option<&str>, args: &str) -> Value {
    let mut f = json!({"arguments": args});
    if let Some(n) = name {
        f["name"] = json!(n);
    }
    let mut c = json!({"index": index, "function": f});
    if let Some(id) = id {
        c["id"] = json!(id);
    }
    json!({"tool_calls": [c]})
}

fn tool_stream() -> String {
    [
        chunk(json!({"role": "assistant"}), None),
        chunk(json!({"reasoning_content": "Think"}), None),
        chunk(json!({"content": "I'll read."}), None),
        chunk(json!({"content": ""}), None),
        chunk(tool(0, Some("call_1"), Some("Read"), ""), None),
        chunk(tool(0, None, None, "{\"path\":"), None),
        chunk(tool(0, None, None, "\"a\"}"), None),
        // Arguments before the name (some servers), held until it comes.
        chunk(tool(1, Some("call_2"), None, "{}"), None),
        chunk(tool(1, None, Some("Ls"), ""), Some("tool_calls")),
        r#"data: {"choices":[],"usage":{"prompt_tokens":30,"completion_tokens":9,"prompt_tokens_details":{"cached_tokens":10}}}"#.to_owned() + "\n\n",
        "data: [DONE]\n\n".to_owned(),
    ]
    .concat()
}

#[test]
fn a_tool_stream_follows_the_grammar() {
    let events = relay(tool_stream().as_bytes(), 1, false);
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    assert_eq!(events[0]["message"]["id"], "msg_00ab");
    assert_eq!(events[1]["content_block"]["type"], "thinking");
    assert_eq!(events[5]["delta"]["text"], "I'll read.");
    assert_eq!(
        events[7]["content_block"],
        json!({"type": "tool_use", "id": "call_1", "name": "Read", "input": {}})
    );
    let args: String = [&events[8], &events[9]]
        .iter()
        .map(|e| e["delta"]["partial_json"].as_str().unwrap())
        .collect();
    assert_eq!(args, r#"{"path":"a"}"#);
    assert_eq!(events[11]["content_block"]["name"], "Ls");
    assert_eq!(events[12]["delta"]["partial_json"], "{}");
    assert_eq!(events[14]["delta"]["stop_reason"], "tool_use");
    assert_eq!(
        events[14]["usage"],
        json!({"input_tokens": 20, "cache_read_input_tokens": 10, "cache_creation_input_tokens": 0, "output_tokens": 9})
    );
}

#[test]
fn an_upstream_error_mid_stream_is_an_error_event() {
    let sse = chunk(json!({"content": "Hi"}), None)
        + "data: {\"error\":{\"message\":\"boom\",\"type\":\"overloaded_error\"}}\n\n";
    let events = relay(sse.as_bytes(), 3, false);
    assert_eq!(
        events.last().unwrap()["error"],
        json!({"type": "overloaded_error", "message": "boom"})
    );
    let broken = relay(chunk(json!({"content": "Hi"}), None).as_bytes(), 5, true);
    assert_eq!(broken.last().unwrap()["type"], "error");
}

#[test]
fn a_ping_starts_the_message_and_never_follows_the_end() {
    let mut r = MessagesRelay::new(Relay::Sse(SseRelay::new(true)), echo());
    let mut out = Vec::new();
    r.ping(&mut out);
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(text.starts_with("event: message_start\n"), "{text}");
    assert!(text.contains("event: ping\ndata: {\"type\":\"ping\"}\n\n"));
    r.feed(b"data: [DONE]\n\n", &mut out);
    let n = out.len();
    r.ping(&mut out);
    assert_eq!(out.len(), n);
}

/// Any cut of any stream of random chat chunks: the grammar holds.
#[test]
fn the_grammar_holds_for_any_stream_cut_anywhere() {
    for seed in 0..400u64 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut sse = String::new();
        for _ in 0..rng.usize(0..12) {
            let d = match rng.u8(0..6) {
                0 => json!({"content": (["", "a", "bc"][rng.usize(0..3)])}),
                1 => json!({"reasoning": "r"}),
                2 => tool(
                    rng.u64(0..3),
                    rng.bool().then_some("c"),
                    rng.bool().then_some("f"),
                    "{",
                ),
                3 => json!({"role": "assistant"}),
                4 => {
                    json!({"tool_calls": [{"index": rng.u64(0..3), "function": {"arguments": "1}"}}]})
                }
                _ => json!({}),
            };
            let finish = [None, Some("stop"), Some("length"), Some("tool_calls")][rng.usize(0..4)];
            sse.push_str(&chunk(d, finish));
        }
        match rng.u8(0..4) {
            0 => sse.push_str("data: [DONE]\n\n"),
            1 => sse.push_str("data: {\"error\":{\"message\":\"x\"}}\n\n"),
            2 => sse.push_str("data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}\n\ndata: [DONE]\n\n"),
            _ => {}
        }
        let len = sse.len();
        let upto = if rng.bool() { len } else { rng.usize(0..=len) };
        let cut = rng.bool();
        relay(&sse.as_bytes()[..upto], rng.usize(1..20), cut);
    }
}

#[test]
fn errors_take_anthropics_types() {
    let cases = [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "overloaded_error"),
        (504, "timeout_error"),
    ];
    for (status, kind) in cases {
        assert_eq!(error_type(status), kind);
    }
    assert_eq!(
        error_body(401, "no", "req_1"),
        json!({"type": "error", "error": {"type": "authentication_error", "message": "no"}, "request_id": "req_1"})
    );
}
