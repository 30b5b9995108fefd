//! Adapter tests from recorded fixtures (`crates/modelgate-testkit/fixtures`).

use serde_json::{Value, json};

use super::*;
use crate::codec::SseDecoder;
use crate::error::UpstreamError;
use crate::request::{self, Endpoint};

macro_rules! fixture {
    ($path:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../modelgate-testkit/fixtures/",
            $path
        ))
    };
}

fn call(endpoint: Endpoint, body: Value, client_usage: bool) -> UpstreamCall {
    let req = request::parse(endpoint, body.to_string().as_bytes()).unwrap();
    UpstreamCall {
        endpoint,
        stream: req.stream,
        body: req.body,
        public_model: "public".into(),
        request_id: "req1".into(),
        client_include_usage: client_usage,
        upstream_include_usage: true,
        injected_max_tokens: None,
        anthropic_headers: Vec::new(),
    }
}

fn chat_call(stream: bool, client_usage: bool) -> UpstreamCall {
    call(
        Endpoint::Chat,
        json!({"model":"public","messages":[{"role":"user","content":"hi"}],"stream":stream}),
        client_usage,
    )
}

/// Relay `input` split into pieces at `cuts`; return the client bytes.
fn relay_with_cuts(mut relay: Relay, input: &[u8], cuts: &[usize]) -> (Vec<u8>, Relay) {
    let mut out = vec![];
    let mut last = 0;
    for &c in cuts.iter().chain(std::iter::once(&input.len())) {
        relay.feed(&input[last..c], &mut out);
        last = c;
    }
    relay.finish(&mut out);
    (out, relay)
}

fn events(bytes: &[u8]) -> Vec<String> {
    let mut d = SseDecoder::new();
    d.push(bytes);
    let mut out = vec![];
    while let Some(e) = d.next_event().unwrap() {
        out.push(e.data);
    }
    out
}

#[test]
fn urls_and_auth_per_backend() {
    let c = chat_call(false, false);
    let t = |base| Target {
        base_url: base,
        model: "up-model",
        api_key: Some("sk-up"),
    };
    let r = BackendKind::Openai
        .build(&t("https://api.example.com/v1/"), &c)
        .unwrap();
    assert_eq!(r.uri(), "https://api.example.com/v1/chat/completions");
    assert_eq!(r.headers()["authorization"], "Bearer sk-up");
    let r = BackendKind::Api3
        .build(&t("https://api3.example.com/v1"), &c)
        .unwrap();
    assert_eq!(r.headers()["x-api-key"], "sk-up");
    assert!(r.headers().get("authorization").is_none());
    let r = BackendKind::Vllm.build(&t("http://h:8000"), &c).unwrap();
    assert_eq!(r.uri(), "http://h:8000/v1/chat/completions");
    let r = BackendKind::Llamacpp
        .build(
            &Target {
                base_url: "http://h:8080/v1",
                model: "up-model",
                api_key: None,
            },
            &c,
        )
        .unwrap();
    assert_eq!(r.uri(), "http://h:8080/v1/chat/completions");
    assert!(r.headers().get("authorization").is_none());
    let r = BackendKind::Ollama.build(&t("http://h:11434"), &c).unwrap();
    assert_eq!(r.uri(), "http://h:11434/api/chat");
    let r = BackendKind::Ollama
        .models_request(&t("http://h:11434"))
        .unwrap();
    assert_eq!(r.uri(), "http://h:11434/api/tags");
    assert!(
        BackendKind::Openai
            .build(
                &Target {
                    base_url: "http://h",
                    model: "up-model",
                    api_key: Some("a\nb")
                },
                &c
            )
            .is_err()
    );
}

#[test]
fn compat_body_asks_for_usage_and_sets_the_cap() {
    let mut c = chat_call(true, false);
    c.injected_max_tokens = Some(77);
    let r = BackendKind::Vllm
        .build(
            &Target {
                base_url: "http://h",
                model: "up-model",
                api_key: None,
            },
            &c,
        )
        .unwrap();
    let body: Value = serde_json::from_slice(r.body()).unwrap();
    assert_eq!(body["model"], "up-model");
    assert_eq!(body["stream_options"]["include_usage"], true);
    assert_eq!(body["max_tokens"], 77);
    let r = BackendKind::Openai
        .build(
            &Target {
                base_url: "http://h",
                model: "up-model",
                api_key: None,
            },
            &c,
        )
        .unwrap();
    let body: Value = serde_json::from_slice(r.body()).unwrap();
    assert_eq!(body["max_completion_tokens"], 77);
    c.upstream_include_usage = false;
    let r = BackendKind::Vllm
        .build(
            &Target {
                base_url: "http://h",
                model: "up-model",
                api_key: None,
            },
            &c,
        )
        .unwrap();
    let body: Value = serde_json::from_slice(r.body()).unwrap();
    assert!(body.get("stream_options").is_none());
}

#[test]
fn ollama_body_puts_sampling_under_options() {
    let c = call(
        Endpoint::Chat,
        json!({"model":"m","temperature":0.2,"top_p":0.9,"seed":4,"max_tokens":30,"stop":"\n",
            "response_format":{"type":"json_object"},
            "messages":[{"role":"developer","content":[{"type":"text","text":"be brief"}]},
                {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function",
                 "function":{"name":"f","arguments":"{\"a\":1}"}}]},
                {"role":"tool","content":"42","tool_call_id":"c1","name":"f"}]}),
        false,
    );
    let r = BackendKind::Ollama
        .build(
            &Target {
                base_url: "http://h",
                model: "up-model",
                api_key: None,
            },
            &c,
        )
        .unwrap();
    let b: Value = serde_json::from_slice(r.body()).unwrap();
    assert_eq!(
        b["options"],
        json!({"temperature":0.2,"top_p":0.9,"seed":4,"num_predict":30,"stop":["\n"]})
    );
    assert!(b.get("temperature").is_none());
    assert_eq!(b["format"], "json");
    assert_eq!(b["stream"], false);
    assert_eq!(
        b["messages"][0],
        json!({"role":"system","content":"be brief"})
    );
    assert_eq!(
        b["messages"][1]["tool_calls"][0]["function"]["arguments"],
        json!({"a":1})
    );
    assert_eq!(b["messages"][2]["tool_name"], "f");
}

#[test]
fn buffered_answers_pass_through_with_usage() {
    let c = chat_call(false, false);
    let (body, usage) = BackendKind::Openai
        .parse_response(&c, 200, fixture!("openai/chat.json"), 0)
        .unwrap();
    assert_eq!(&body[..], fixture!("openai/chat.json"));
    assert_eq!(usage, Some(Usage::reported(19, 10)));
    let (_, usage) = BackendKind::Vllm
        .parse_response(&c, 200, fixture!("vllm/chat.json"), 0)
        .unwrap();
    assert_eq!(usage, Some(Usage::reported(12, 3)));
    let c = call(
        Endpoint::Completion,
        json!({"model":"m","prompt":"The sky is"}),
        false,
    );
    let (_, usage) = BackendKind::Llamacpp
        .parse_response(&c, 200, fixture!("llamacpp/completion.json"), 0)
        .unwrap();
    assert_eq!(usage, Some(Usage::reported(3, 6)));
    assert!(matches!(
        BackendKind::Llamacpp.parse_response(&c, 200, b"<html>", 0),
        Err(UpstreamError::BadResponse { status: 0, .. })
    ));
}

#[test]
fn a_2xx_answer_without_its_list_is_an_upstream_error() {
    let c = chat_call(false, false);
    let bad = |body: &[u8]| BackendKind::Vllm.parse_response(&c, 200, body, 0);
    for body in [
        &br#"{"choices":{"0":{}},"usage":{"prompt_tokens":1,"completion_tokens":1}}"#[..],
        br#"{"choices":null}"#,
        br#"{"data":[]}"#,
        b"{\"choices\":[{\"text\":\"\xff\"}]}",
    ] {
        assert!(
            matches!(bad(body), Err(UpstreamError::BadResponse { status: 0, .. })),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    assert!(matches!(
        bad(br#"{"error":{"message":"overloaded"}}"#),
        Err(UpstreamError::OpenAi { status: 502, .. })
    ));
    // Embeddings list theirs under `data`.
    let e = call(
        Endpoint::Embeddings,
        json!({"model":"m","input":"x"}),
        false,
    );
    let (_, usage) = BackendKind::Vllm
        .parse_response(
            &e,
            200,
            br#"{"data":[{"embedding":[0.1]}],"usage":{"prompt_tokens":2,"total_tokens":2}}"#,
            0,
        )
        .unwrap();
    assert_eq!(usage.map(|u| u.prompt_tokens), Some(2));
    assert!(
        BackendKind::Vllm
            .parse_response(&e, 200, br#"{"choices":[]}"#, 0)
            .is_err()
    );
}

#[test]
fn upstream_errors_map_without_leaking() {
    let c = chat_call(false, false);
    match BackendKind::Openai.parse_response(&c, 429, fixture!("openai/error_429.json"), 0) {
        Err(UpstreamError::OpenAi {
            status: 429, error, ..
        }) => {
            assert_eq!(error["code"], "rate_limit_exceeded")
        }
        other => panic!("{other:?}"),
    }
    match BackendKind::Llamacpp.parse_response(&c, 400, fixture!("llamacpp/error_400.json"), 0) {
        Err(UpstreamError::OpenAi {
            status: 400, error, ..
        }) => {
            assert_eq!(error["message"], "Expected 'messages' to be an array")
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        BackendKind::Vllm.parse_response(
            &c,
            500,
            b"<html>Internal error at http://10.0.0.5</html>",
            0
        ),
        Err(UpstreamError::BadResponse { status: 500, .. })
    ));
    assert!(matches!(
        BackendKind::Openai.parse_response(&c, 401, br#"{"error":{"message":"bad key"}}"#, 0),
        Err(UpstreamError::BadResponse { status: 401, .. })
    ));
    match BackendKind::Ollama.parse_response(&c, 404, br#"{"error":"model 'x' not found"}"#, 0) {
        Err(UpstreamError::OpenAi {
            status: 404, error, ..
        }) => {
            assert_eq!(error["message"], "model 'x' not found")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn models_lists() {
    let names = BackendKind::Llamacpp
        .parse_models(fixture!("llamacpp/models.json"))
        .unwrap();
    assert_eq!(names, vec!["smollm2-135m"]);
    let names = BackendKind::Ollama
        .parse_models(fixture!("ollama/tags.json"))
        .unwrap();
    assert_eq!(names, vec!["llama3.2:latest", "qwen2.5:0.5b"]);
}

#[test]
fn sse_relay_strips_the_usage_chunk_the_client_did_not_ask_for() {
    let input = fixture!("llamacpp/chat_stream_usage.sse");
    let c = chat_call(true, false);
    let (whole, relay) = relay_with_cuts(BackendKind::Llamacpp.relay(&c, 0), input, &[]);
    let ev = events(&whole);
    assert_eq!(ev.last().unwrap(), "[DONE]");
    assert!(
        ev.iter().all(|e| !e.contains("\"usage\"")),
        "usage chunk leaked"
    );
    // llama.cpp says 31 of the 32 prompt tokens came from its cache.
    assert_eq!(
        relay.state().usage,
        Some(Usage::reported(32, 5).with_cached(31))
    );
    assert_eq!(relay.state().outcome, Some(StreamOutcome::Complete));
    for cut in 0..=input.len() {
        let (out, _) = relay_with_cuts(BackendKind::Llamacpp.relay(&c, 0), input, &[cut]);
        assert_eq!(out, whole, "cut at {cut}");
    }
    // Asked for: kept, byte for byte.
    let c = chat_call(true, true);
    let (out, _) = relay_with_cuts(
        BackendKind::Openai.relay(&c, 0),
        fixture!("openai/chat_stream_usage.sse"),
        &[],
    );
    assert_eq!(out, fixture!("openai/chat_stream_usage.sse"));
}

#[test]
fn sse_relay_ends_a_cut_stream_with_an_error_event() {
    let input = fixture!("openai/chat_stream_usage.sse");
    let c = chat_call(true, false);
    let cut = input.len() / 2;
    let (out, relay) = relay_with_cuts(BackendKind::Openai.relay(&c, 0), &input[..cut], &[]);
    let ev = events(&out);
    assert_eq!(ev.last().unwrap(), "[DONE]");
    let err: Value = serde_json::from_str(&ev[ev.len() - 2]).unwrap();
    assert_eq!(err["error"]["code"], "upstream_stream_cut");
    assert_eq!(
        relay.state().outcome,
        Some(StreamOutcome::Failed("upstream_stream_cut"))
    );
    // Garbage mid-stream is an error too, not a pass-through.
    let (out, relay) = relay_with_cuts(
        BackendKind::Openai.relay(&c, 0),
        b"data: {\"choices\":[]}\n\ndata: {not json\n\n",
        &[],
    );
    assert!(
        String::from_utf8(out)
            .unwrap()
            .contains("upstream_malformed")
    );
    assert_eq!(
        relay.state().outcome,
        Some(StreamOutcome::Failed("upstream_malformed"))
    );
}

#[test]
fn sse_relay_passes_an_in_band_upstream_error() {
    let c = chat_call(true, false);
    let (out, relay) = relay_with_cuts(
        BackendKind::Vllm.relay(&c, 0),
        fixture!("vllm/chat_stream_error.sse"),
        &[],
    );
    let ev = events(&out);
    assert_eq!(ev.len(), 4);
    assert!(ev[2].contains("The engine has encountered an error."));
    assert_eq!(ev[3], "[DONE]");
    assert_eq!(relay.state().outcome, Some(StreamOutcome::UpstreamError));
}

#[test]
fn ollama_stream_becomes_openai_chunks() {
    let input = fixture!("ollama/chat_stream.ndjson");
    let c = chat_call(true, true);
    let (whole, relay) = relay_with_cuts(BackendKind::Ollama.relay(&c, 1_700_000_000), input, &[]);
    let ev = events(&whole);
    assert_eq!(ev.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = ev[..ev.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| {
            c.pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
        })
        .collect();
    assert_eq!(text, "The sky is blue.");
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(chunks[0]["object"], "chat.completion.chunk");
    assert_eq!(chunks[0]["model"], "public");
    assert_eq!(
        chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
        "stop"
    );
    assert_eq!(chunks.last().unwrap()["usage"]["total_tokens"], 30);
    assert_eq!(relay.state().usage, Some(Usage::reported(26, 4)));
    for cut in 0..=input.len() {
        let (out, _) = relay_with_cuts(BackendKind::Ollama.relay(&c, 1_700_000_000), input, &[cut]);
        assert_eq!(out, whole, "cut at {cut}");
    }
}

#[test]
fn ollama_generate_stream_and_errors() {
    let c = call(
        Endpoint::Completion,
        json!({"model":"m","prompt":"Why","stream":true}),
        false,
    );
    let (out, relay) = relay_with_cuts(
        BackendKind::Ollama.relay(&c, 0),
        fixture!("ollama/generate_stream.ndjson"),
        &[],
    );
    let ev = events(&out);
    let last: Value = serde_json::from_str(&ev[ev.len() - 2]).unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "length");
    assert_eq!(last["object"], "text_completion");
    assert!(ev.iter().all(|e| !e.contains("usage")));
    assert_eq!(relay.state().usage, Some(Usage::reported(5, 2)));
    let c = chat_call(true, false);
    let (out, relay) = relay_with_cuts(
        BackendKind::Ollama.relay(&c, 0),
        fixture!("ollama/chat_stream_error.ndjson"),
        &[],
    );
    assert!(String::from_utf8(out).unwrap().contains("unexpected EOF"));
    assert_eq!(relay.state().outcome, Some(StreamOutcome::UpstreamError));
}

#[test]
fn ollama_buffered_answers() {
    let c = chat_call(false, false);
    let (body, usage) = BackendKind::Ollama
        .parse_response(&c, 200, fixture!("ollama/chat.json"), 7)
        .unwrap();
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["created"], 7);
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Hello! How are you today?"
    );
    assert_eq!(v["usage"]["total_tokens"], 34);
    assert_eq!(usage, Some(Usage::reported(26, 8)));
    let (body, _) = BackendKind::Ollama
        .parse_response(&c, 200, fixture!("ollama/chat_tool_call.json"), 7)
        .unwrap();
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    let args = v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
        .as_str()
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(args).unwrap()["location"],
        "Paris, FR"
    );
}

#[test]
fn ollama_refuses_what_it_cannot_do() {
    let req = request::parse(
        Endpoint::Chat,
        br#"{"model":"m","messages":[{"role":"user","content":"x"}],"n":2}"#,
    )
    .unwrap();
    assert!(BackendKind::Ollama.supports(&req).is_err());
    assert!(BackendKind::Vllm.supports(&req).is_ok());
}

#[test]
fn sse_relay_keeps_multi_line_data_whole_for_the_client() {
    let c = chat_call(true, false);
    let input = b"data: {\"choices\":[\ndata: {\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\ndata: [DONE]\n\n";
    let (out, relay) = relay_with_cuts(BackendKind::Vllm.relay(&c, 0), input, &[]);
    let ev = events(&out);
    assert_eq!(ev.len(), 2, "{}", String::from_utf8_lossy(&out));
    let chunk: Value = serde_json::from_str(&ev[0]).unwrap();
    assert_eq!(chunk["choices"][0]["delta"]["content"], "a");
    assert_eq!(relay.state().outcome, Some(StreamOutcome::Complete));
}

/// A thinking model's `message.thinking` (Ollama's native API) becomes
/// `reasoning_content`, buffered and streamed, as vLLM and llama.cpp name it.
#[test]
fn ollama_thinking_is_reasoning_content() {
    let answer = json!({"model": "m", "done": true, "done_reason": "stop", "prompt_eval_count": 3, "eval_count": 4,
        "message": {"role": "assistant", "content": "Blue.", "thinking": "The sky scatters blue light."}});
    let (body, _) = BackendKind::Ollama
        .parse_response(
            &chat_call(false, false),
            200,
            answer.to_string().as_bytes(),
            7,
        )
        .unwrap();
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        v["choices"][0]["message"]["reasoning_content"],
        "The sky scatters blue light."
    );
    assert_eq!(v["choices"][0]["message"]["content"], "Blue.");
    let lines = [
        json!({"model": "m", "done": false, "message": {"role": "assistant", "content": "", "thinking": "Hm."}}),
        json!({"model": "m", "done": false, "message": {"role": "assistant", "content": "Blue."}}),
        json!({"model": "m", "done": true, "done_reason": "stop", "prompt_eval_count": 3, "eval_count": 4,
            "message": {"role": "assistant", "content": ""}}),
    ]
    .map(|l| l.to_string() + "\n")
    .concat();
    let (out, _) = relay_with_cuts(
        BackendKind::Ollama.relay(&chat_call(true, false), 0),
        lines.as_bytes(),
        &[],
    );
    let deltas: Vec<Value> = events(&out)
        .iter()
        .filter(|e| *e != "[DONE]")
        .map(|e| serde_json::from_str::<Value>(e).unwrap()["choices"][0]["delta"].clone())
        .collect();
    assert_eq!(deltas[0]["reasoning_content"], "Hm.");
    assert_eq!(deltas[1]["content"], "Blue.");
}
