use serde_json::{Map, Value, json};

use super::*;
use crate::backend::{Relay, SseRelay, StreamOutcome};
use crate::error::RequestError;
use crate::request::{self, Endpoint};

fn body(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

fn parse_err(v: Value) -> Option<String> {
    match request::parse(Endpoint::Responses, v.to_string().as_bytes()) {
        Err(RequestError::Invalid { param, .. }) => param,
        other => panic!("{v}: {other:?}"),
    }
}

#[test]
fn requests_are_checked_and_bounded() {
    let r = request::parse(
        Endpoint::Responses,
        br#"{"model":"m","input":"hello","instructions":"be brief","max_output_tokens":32,"stream":true,"store":true}"#,
    )
    .unwrap();
    assert_eq!((r.max_tokens, r.stream), (Some(32), true));
    assert!(r.prompt_bound >= 13);
    let cases = [
        (json!({"model": "m"}), "input"),
        (json!({"input": 5}), "input"),
        (
            json!({"input": "x", "previous_response_id": 5}),
            "previous_response_id",
        ),
        (
            json!({"input": "x", "conversation": "conv_1"}),
            "conversation",
        ),
        (json!({"input": "x", "background": true}), "background"),
        (
            json!({"input": [{"type": "item_reference"}]}),
            "input[0].id",
        ),
        (json!({"input": ["x"]}), "input[0]"),
        (
            json!({"input": "x", "max_output_tokens": 0}),
            "max_output_tokens",
        ),
        (json!({"input": "x", "temperature": 9}), "temperature"),
        (json!({"input": "x", "tools": {}}), "tools"),
    ];
    for (v, param) in cases {
        assert_eq!(parse_err(v.clone()).as_deref(), Some(param), "{v}");
    }
}

#[test]
fn a_conversation_with_tools_becomes_chat() {
    let chat = to_chat(&body(json!({
        "model": "m",
        "instructions": "sys",
        "input": [
            {"role": "developer", "content": "dev"},
            {"role": "user", "content": [
                {"type": "input_text", "text": "weather?"},
                {"type": "input_image", "image_url": "data:image/png;base64,AA", "detail": "low"},
            ]},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "checking"}]},
            {"type": "function_call", "call_id": "c1", "name": "get", "arguments": "{\"city\":\"A\"}"},
            {"type": "function_call", "call_id": "c2", "name": "get", "arguments": "{\"city\":\"B\"}"},
            {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
            {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "rain"}]},
        ],
        "tools": [{"type": "function", "name": "get", "description": "d", "parameters": {"type": "object"}, "strict": true}],
        "tool_choice": {"type": "function", "name": "get"},
        "parallel_tool_calls": false,
        "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}, "strict": true}},
        "max_output_tokens": 50,
        "temperature": 0.5,
        "metadata": {"a": "b"},
        "store": true,
        "stream": true,
    })))
    .unwrap()
    .chat;
    let messages = chat["messages"].as_array().unwrap();
    let roles: Vec<&str> = messages
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        ["system", "system", "user", "assistant", "tool", "tool"]
    );
    assert_eq!(messages[2]["content"][1]["image_url"]["detail"], "low");
    assert_eq!(messages[3]["content"], "checking");
    assert_eq!(messages[3]["tool_calls"][1]["id"], "c2");
    assert_eq!(messages[5]["content"], "rain");
    assert_eq!(chat["tools"][0]["function"]["strict"], true);
    assert_eq!(chat["tool_choice"]["function"]["name"], "get");
    assert_eq!(chat["response_format"]["json_schema"]["name"], "w");
    assert_eq!(chat["max_tokens"], 50);
    assert_eq!(chat["parallel_tool_calls"], false);
    assert_eq!(chat["stream"], true);
    for k in [
        "metadata",
        "store",
        "input",
        "instructions",
        "text",
        "max_output_tokens",
    ] {
        assert!(chat.get(k).is_none(), "{k}");
    }
}

#[test]
fn namespaced_tools_join_and_hosted_tools_are_left_out() {
    let fun =
        |name: &str| json!({"type": "function", "name": name, "parameters": {"type": "object"}});
    let b = to_chat(&body(json!({"input": "x", "tools": [
        fun("a"),
        {"type": "namespace", "name": "ns", "tools": [fun("b"), {"type": "web_search"}]},
        {"type": "web_search", "external_web_access": false},
        {"type": "file_search"},
    ]})))
    .unwrap();
    let names: Vec<&str> = b.chat["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(b.ignored_tools, ["web_search", "file_search"]);
    let only_hosted = to_chat(&body(
        json!({"input": "x", "tools": [{"type": "web_search"}]}),
    ))
    .unwrap();
    assert!(only_hosted.chat.get("tools").is_none());
}

#[test]
fn what_chat_cannot_say_is_refused_by_name() {
    let err = |v: Value| match to_chat(&body(v)) {
        Err(RequestError::Invalid { param, .. }) => param.unwrap_or_default(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        err(json!({"input": "x", "tools": [{"name": "untyped"}]})),
        "tools[0].type"
    );
    assert_eq!(
        err(json!({"input": [{"type": "computer_call_output", "call_id": "c"}]})),
        "input[0].type"
    );
    assert_eq!(
        err(
            json!({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]})
        ),
        "input[0].content[0].type"
    );
    assert_eq!(
        err(json!({"input": [{"role": "king", "content": "x"}]})),
        "input[0].role"
    );
    assert_eq!(
        err(json!({"input": "x", "text": {"format": {"type": "yaml"}}})),
        "text.format.type"
    );
    assert_eq!(
        err(json!({"input": [{"type": "reasoning", "summary": []}]})),
        "input"
    );
}

fn echo() -> Echo {
    let req = body(json!({"input": "x", "max_output_tokens": 9, "metadata": {"k": "v"}}));
    Echo::new(&req, "req_00ab", "public", 1_700_000_000)
}

#[test]
fn a_chat_answer_becomes_a_response() {
    let chat = json!({
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Let me look.", "reasoning_content": "think",
            "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": "get", "arguments": "{}"}}],
        }}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
            "prompt_tokens_details": {"cached_tokens": 4}, "completion_tokens_details": {"reasoning_tokens": 2}},
    });
    let r: Value =
        serde_json::from_slice(&from_chat(&echo(), chat.to_string().as_bytes()).unwrap()).unwrap();
    assert_eq!(r["id"], "resp_00ab");
    assert_eq!(r["object"], "response");
    assert_eq!(r["status"], "completed");
    assert_eq!(r["model"], "public");
    assert_eq!(r["store"], false);
    assert_eq!(r["max_output_tokens"], 9);
    assert_eq!(r["metadata"]["k"], "v");
    let kinds: Vec<&str> = r["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["reasoning", "message", "function_call"]);
    assert_eq!(r["output"][0]["content"][0]["text"], "think");
    assert_eq!(r["output"][1]["content"][0]["text"], "Let me look.");
    assert_eq!(r["output"][2]["call_id"], "call_9");
    assert_eq!(
        r["usage"],
        json!({"input_tokens": 10, "input_tokens_details": {"cached_tokens": 4}, "output_tokens": 5,
            "output_tokens_details": {"reasoning_tokens": 2}, "total_tokens": 15})
    );
}

#[test]
fn a_capped_answer_is_incomplete() {
    let chat = json!({"choices": [{"finish_reason": "length", "message": {"role": "assistant", "content": "abc"}}]});
    let r: Value =
        serde_json::from_slice(&from_chat(&echo(), chat.to_string().as_bytes()).unwrap()).unwrap();
    assert_eq!(r["status"], "incomplete");
    assert_eq!(r["incomplete_details"]["reason"], "max_output_tokens");
    assert_eq!(r["usage"], Value::Null);
}

/// Feed chat SSE text through a bridge over the OpenAI-compatible relay;
/// return the events (type, data) and the relay.
fn bridge(sse: &str, cut: bool) -> (Vec<Value>, BridgeRelay) {
    let mut relay = BridgeRelay::new(Relay::Sse(SseRelay::new(true)), echo());
    let mut out = Vec::new();
    // One byte at a time: events may split anywhere.
    for b in sse.as_bytes() {
        relay.feed(std::slice::from_ref(b), &mut out);
    }
    if cut {
        relay.finish(&mut out);
    }
    let text = String::from_utf8(out).unwrap();
    let mut events = Vec::new();
    for block in text.split("\n\n").filter(|b| !b.is_empty()) {
        let mut lines = block.lines();
        let kind = lines.next().unwrap().strip_prefix("event: ").unwrap();
        let data: Value =
            serde_json::from_str(lines.next().unwrap().strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(data["type"], kind);
        assert!(lines.next().is_none());
        events.push(data);
    }
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["sequence_number"], i, "{e}");
    }
    (events, relay)
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

fn chunk(delta: Value, finish: Option<&str>) -> String {
    format!(
        "data: {}\n\n",
        json!({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    )
}

#[test]
fn a_text_stream_follows_the_event_grammar() {
    let sse = [
        chunk(json!({"role": "assistant"}), None),
        chunk(json!({"content": "Hel"}), None),
        chunk(json!({"content": "lo"}), Some("stop")),
        r#"data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#.to_owned()
            + "\n\n",
        "data: [DONE]\n\n".to_owned(),
    ]
    .concat();
    let (events, relay) = bridge(&sse, false);
    assert_eq!(
        kinds(&events),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    assert_eq!(events[0]["response"]["status"], "in_progress");
    assert_eq!(events[6]["text"], "Hello");
    let done = &events[9]["response"];
    assert_eq!(done["output"][0]["content"][0]["text"], "Hello");
    assert_eq!(done["usage"]["total_tokens"], 5);
    assert_eq!(relay.state().outcome, Some(StreamOutcome::Complete));
    assert!(relay.is_done());
}

#[test]
fn tool_calls_stream_as_function_call_items() {
    let call = |index: u64, id: Option<&str>, name: Option<&str>, args: &str| {
        let mut c = json!({"index": index, "function": {"arguments": args}});
        if let Some(id) = id {
            c["id"] = json!(id);
            c["type"] = json!("function");
        }
        if let Some(name) = name {
            c["function"]["name"] = json!(name);
        }
        chunk(json!({"tool_calls": [c]}), None)
    };
    let sse = [
        chunk(json!({"reasoning_content": "hmm"}), None),
        call(0, Some("call_a"), Some("get"), ""),
        call(0, None, None, "{\"city\""),
        call(0, None, None, ":\"A\"}"),
        call(1, Some("call_b"), Some("put"), "{}"),
        chunk(json!({}), Some("tool_calls")),
        "data: [DONE]\n\n".to_owned(),
    ]
    .concat();
    let (events, _) = bridge(&sse, false);
    assert_eq!(
        kinds(&events),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.reasoning_text.delta",
            "response.reasoning_text.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    assert_eq!(events[9]["arguments"], "{\"city\":\"A\"}");
    assert_eq!(events[9]["name"], "get");
    let output = &events[15]["response"]["output"];
    assert_eq!(output[1]["call_id"], "call_a");
    assert_eq!(output[2]["call_id"], "call_b");
    assert_eq!(events[11]["output_index"], 2);
}

#[test]
fn a_capped_stream_is_incomplete() {
    let sse = chunk(json!({"content": "a"}), Some("length")) + "data: [DONE]\n\n";
    let (events, _) = bridge(&sse, false);
    let last = events.last().unwrap();
    assert_eq!(last["type"], "response.incomplete");
    assert_eq!(
        last["response"]["incomplete_details"]["reason"],
        "max_output_tokens"
    );
}

#[test]
fn failures_end_with_response_failed() {
    // An error the upstream reported in-band.
    let sse = chunk(json!({"content": "a"}), None)
        + "data: {\"error\":{\"message\":\"boom\",\"code\":\"overloaded\"}}\n\n";
    let (events, relay) = bridge(&sse, false);
    let last = events.last().unwrap();
    assert_eq!(last["type"], "response.failed");
    assert_eq!(last["response"]["error"]["code"], "overloaded");
    // The open message was closed before it.
    assert_eq!(
        events[events.len() - 2]["type"],
        "response.output_item.done"
    );
    assert_eq!(relay.state().outcome, Some(StreamOutcome::UpstreamError));

    // A stream cut before [DONE].
    let (events, relay) = bridge(&chunk(json!({"content": "a"}), None), true);
    assert_eq!(events.last().unwrap()["type"], "response.failed");
    assert_eq!(
        events.last().unwrap()["response"]["error"]["code"],
        "upstream_stream_cut"
    );
    assert!(matches!(
        relay.state().outcome,
        Some(StreamOutcome::Failed(_))
    ));
    assert_eq!(
        kinds(&events)
            .iter()
            .filter(|k| k.starts_with("response.failed"))
            .count(),
        1
    );

    // The gateway ends it (a timeout) before anything came.
    let mut relay = BridgeRelay::new(Relay::Sse(SseRelay::new(true)), echo());
    let mut out = Vec::new();
    relay.fail("upstream_timeout", "late", &mut out);
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("event: response.created\n"));
    assert!(text.contains("\"code\":\"upstream_timeout\""));
    assert!(relay.is_done());
}

#[test]
fn an_empty_answer_is_one_empty_message() {
    let sse = chunk(json!({"role": "assistant"}), Some("stop")) + "data: [DONE]\n\n";
    let (events, _) = bridge(&sse, false);
    assert!(!kinds(&events).contains(&"response.output_text.delta"));
    let done = &events.last().unwrap()["response"];
    assert_eq!(done["output"][0]["content"][0]["text"], "");
}
