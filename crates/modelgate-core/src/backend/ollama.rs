//! Ollama's native API, transcoded to and from OpenAI's.
//!
//! Chat goes to `/api/chat`, completions to `/api/generate`, the model list
//! to `/api/tags`. Sampling parameters go under `options` (Ollama ignores
//! them top-level), `max_tokens` becomes `num_predict`, tool-call arguments
//! are objects rather than JSON strings, streams are NDJSON, and usage comes
//! from `prompt_eval_count` / `eval_count` on the last line.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::{StreamOutcome, StreamState, UpstreamCall, Usage, write_error_event, write_event};
use crate::codec::NdjsonDecoder;
use crate::error::{RequestError, UpstreamError};
use crate::request::{Endpoint, ProxyRequest};

pub(super) fn url(base: &str, endpoint: Option<Endpoint>) -> String {
    let path = match endpoint {
        Some(Endpoint::Chat) => "/api/chat",
        Some(Endpoint::Completion) => "/api/generate",
        Some(Endpoint::Embeddings) => "/api/embed",
        // Ollama >= 0.13.3 serves the Responses API beside its own.
        Some(Endpoint::Responses) => "/v1/responses",
        // And, since 0.14, the Messages API.
        Some(Endpoint::Messages) => "/v1/messages",
        None => "/api/tags",
    };
    format!("{base}{path}")
}

pub(super) fn supports(req: &ProxyRequest) -> Result<(), RequestError> {
    if req.choices > 1 {
        return Err(RequestError::invalid(
            "This model's backend (Ollama) supports only n=1.",
            Some("n"),
        ));
    }
    if req.endpoint == Endpoint::Completion && !req.body.get("prompt").is_some_and(Value::is_string)
    {
        return Err(RequestError::invalid(
            "This model's backend (Ollama) takes a single string prompt.",
            Some("prompt"),
        ));
    }
    Ok(())
}

/// OpenAI sampling parameter -> Ollama `options` key.
const OPTIONS: &[(&str, &str)] = &[
    ("temperature", "temperature"),
    ("top_p", "top_p"),
    ("seed", "seed"),
    ("presence_penalty", "presence_penalty"),
    ("frequency_penalty", "frequency_penalty"),
    ("max_tokens", "num_predict"),
    ("max_completion_tokens", "num_predict"),
];

pub(super) fn body(call: &UpstreamCall, model: &str) -> Result<Value, RequestError> {
    let src = &call.body;
    let mut out = Map::new();
    out.insert("model".into(), Value::String(model.to_owned()));
    out.insert("stream".into(), Value::Bool(call.stream));
    let mut options = Map::new();
    for (from, to) in OPTIONS {
        if let Some(v) = src.get(*from).filter(|v| !v.is_null()) {
            options.insert((*to).into(), v.clone());
        }
    }
    if let Some(cap) = call.injected_max_tokens {
        options.insert("num_predict".into(), Value::from(cap));
    }
    match src.get("stop") {
        Some(Value::String(s)) => {
            options.insert("stop".into(), json!([s]));
        }
        Some(a @ Value::Array(_)) => {
            options.insert("stop".into(), a.clone());
        }
        _ => {}
    }
    if !options.is_empty() {
        out.insert("options".into(), Value::Object(options));
    }
    match src
        .get("response_format")
        .and_then(|f| f.get("type"))
        .and_then(Value::as_str)
    {
        Some("json_object") => {
            out.insert("format".into(), Value::from("json"));
        }
        Some("json_schema") => {
            if let Some(schema) = src
                .get("response_format")
                .and_then(|f| f.pointer("/json_schema/schema"))
            {
                out.insert("format".into(), schema.clone());
            }
        }
        _ => {}
    }
    for k in ["keep_alive", "think"] {
        if let Some(v) = src.get(k) {
            out.insert(k.into(), v.clone());
        }
    }
    match call.endpoint {
        Endpoint::Chat | Endpoint::Embeddings | Endpoint::Responses | Endpoint::Messages => {
            let messages = src
                .get("messages")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            out.insert(
                "messages".into(),
                Value::Array(messages.iter().map(message).collect()),
            );
            if let Some(tools) = src.get("tools") {
                out.insert("tools".into(), tools.clone());
            }
        }
        Endpoint::Completion => {
            for k in ["prompt", "suffix", "system"] {
                if let Some(v) = src.get(k) {
                    out.insert(k.into(), v.clone());
                }
            }
        }
    }
    Ok(Value::Object(out))
}

/// One OpenAI message as Ollama wants it.
fn message(m: &Value) -> Value {
    let mut out = Map::new();
    let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
    out.insert(
        "role".into(),
        Value::from(if role == "developer" { "system" } else { role }),
    );
    let mut images = vec![];
    let content = match m.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for p in parts {
                if let Some(t) = p.get("text").and_then(Value::as_str) {
                    text.push_str(t);
                } else if let Some(url) = p.pointer("/image_url/url").and_then(Value::as_str) {
                    // Ollama takes raw base64; only data: URLs can be passed.
                    if let Some((_, b64)) = url.split_once(";base64,") {
                        images.push(Value::from(b64));
                    }
                }
            }
            text
        }
        _ => String::new(),
    };
    out.insert("content".into(), Value::String(content));
    if !images.is_empty() {
        out.insert("images".into(), Value::Array(images));
    }
    if let Some(Value::Array(calls)) = m.get("tool_calls") {
        let calls = calls
            .iter()
            .map(|c| {
                let f = c.get("function").cloned().unwrap_or(Value::Null);
                let args = match f.get("arguments") {
                    Some(Value::String(s)) => serde_json::from_str(s).unwrap_or(Value::Object(Map::new())),
                    Some(v) => v.clone(),
                    None => Value::Object(Map::new()),
                };
                json!({"function": {"name": f.get("name").cloned().unwrap_or(Value::Null), "arguments": args}})
            })
            .collect();
        out.insert("tool_calls".into(), Value::Array(calls));
    }
    if let Some(name) = m.get("name").filter(|_| role == "tool") {
        out.insert("tool_name".into(), name.clone());
    }
    Value::Object(out)
}

fn finish_reason(line: &Value, had_tool_calls: bool) -> &'static str {
    match line.get("done_reason").and_then(Value::as_str) {
        Some("length") => "length",
        _ if had_tool_calls => "tool_calls",
        _ => "stop",
    }
}

fn usage(line: &Value) -> Option<Usage> {
    let p = line.get("prompt_eval_count").and_then(Value::as_i64);
    let c = line.get("eval_count").and_then(Value::as_i64);
    (p.is_some() || c.is_some()).then(|| Usage::reported(p.unwrap_or(0), c.unwrap_or(0)))
}

/// Ollama tool calls -> OpenAI tool calls (arguments as a JSON string).
fn tool_calls(calls: &[Value], request_id: &str, with_index: bool) -> Value {
    let calls = calls
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let args = match c.pointer("/function/arguments") {
                Some(Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
                None => "{}".to_owned(),
            };
            let mut call = json!({
                "id": format!("call_{request_id}_{i}"),
                "type": "function",
                "function": {"name": c.pointer("/function/name").cloned().unwrap_or(Value::Null), "arguments": args},
            });
            if with_index {
                call["index"] = Value::from(i);
            }
            call
        })
        .collect();
    Value::Array(calls)
}

fn response_id(call: &UpstreamCall) -> String {
    let prefix = if call.endpoint == Endpoint::Chat {
        "chatcmpl"
    } else {
        "cmpl"
    };
    format!("{prefix}-{}", call.request_id)
}

pub(super) fn parse(
    call: &UpstreamCall,
    body: &[u8],
    created_s: i64,
) -> Result<(Bytes, Option<Usage>), UpstreamError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| UpstreamError::BadResponse {
        status: 0,
        detail: format!("non-JSON 2xx body: {e}"),
    })?;
    if v.get("error").is_some() {
        return Err(super::upstream_error(502, body));
    }
    let usage = usage(&v);
    let choice = match call.endpoint {
        Endpoint::Chat | Endpoint::Embeddings | Endpoint::Responses | Endpoint::Messages => {
            let msg = v.get("message").cloned().unwrap_or(Value::Null);
            let calls = msg
                .get("tool_calls")
                .and_then(Value::as_array)
                .filter(|c| !c.is_empty());
            let mut message = json!({
                "role": "assistant",
                "content": msg.get("content").and_then(Value::as_str).unwrap_or(""),
                "refusal": null,
            });
            if let Some(calls) = calls {
                message["tool_calls"] = tool_calls(calls, &call.request_id, false);
            }
            // A thinking model's reasoning, named as vLLM and llama.cpp name it.
            if let Some(t) = msg
                .get("thinking")
                .filter(|t| t.as_str().is_some_and(|t| !t.is_empty()))
            {
                message["reasoning_content"] = t.clone();
            }
            json!({"index": 0, "message": message, "logprobs": null, "finish_reason": finish_reason(&v, calls.is_some())})
        }
        Endpoint::Completion => json!({
            "index": 0,
            "text": v.get("response").and_then(Value::as_str).unwrap_or(""),
            "logprobs": null,
            "finish_reason": finish_reason(&v, false),
        }),
    };
    let out = json!({
        "id": response_id(call),
        "object": call.endpoint.object(),
        "created": created_s,
        "model": call.public_model,
        "system_fingerprint": null,
        "choices": [choice],
        "usage": usage.unwrap_or_default().to_json(),
    });
    Ok((Bytes::from(out.to_string()), usage))
}

/// Transcodes an Ollama NDJSON stream into OpenAI SSE chunks.
#[derive(Debug)]
pub struct NdjsonRelay {
    decoder: NdjsonDecoder,
    endpoint: Endpoint,
    id: String,
    request_id: String,
    model: String,
    created_s: i64,
    client_include_usage: bool,
    sent_role: bool,
    had_tool_calls: bool,
    pub(super) state: StreamState,
}

impl NdjsonRelay {
    /// A relay for `call`, stamping chunks with `created_s`.
    pub fn new(call: &UpstreamCall, created_s: i64) -> Self {
        Self {
            decoder: NdjsonDecoder::new(),
            endpoint: call.endpoint,
            id: response_id(call),
            request_id: call.request_id.clone(),
            model: call.public_model.clone(),
            created_s,
            client_include_usage: call.client_include_usage,
            sent_role: false,
            had_tool_calls: false,
            state: StreamState::default(),
        }
    }

    pub(super) fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        if self.state.outcome.is_some() {
            return;
        }
        self.decoder.push(chunk);
        loop {
            match self.decoder.next_line() {
                Ok(Some(line)) => {
                    self.line(&line, out);
                    if self.state.outcome.is_some() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(_) => {
                    return self.fail(
                        out,
                        "upstream_malformed",
                        "The upstream sent an unreadable stream.",
                    );
                }
            }
        }
    }

    pub(super) fn finish(&mut self, out: &mut Vec<u8>) {
        if self.state.outcome.is_some() {
            return;
        }
        if let Some(line) = self.decoder.finish()
            && serde_json::from_str::<serde::de::IgnoredAny>(&line).is_ok()
        {
            self.line(&line, out);
        }
        if self.state.outcome.is_none() {
            self.fail(
                out,
                "upstream_stream_cut",
                "The upstream stream ended before it was complete.",
            );
        }
    }

    fn fail(&mut self, out: &mut Vec<u8>, code: &'static str, message: &str) {
        write_error_event(out, code, message);
        self.state.outcome = Some(StreamOutcome::Failed(code));
    }

    fn chunk(&self, choices: Value, usage: Option<Value>) -> String {
        let object = match self.endpoint {
            Endpoint::Chat | Endpoint::Embeddings | Endpoint::Responses | Endpoint::Messages => {
                "chat.completion.chunk"
            }
            Endpoint::Completion => "text_completion",
        };
        let mut c = json!({
            "id": self.id, "object": object, "created": self.created_s,
            "model": self.model, "system_fingerprint": null, "choices": choices,
        });
        if let Some(u) = usage {
            c["usage"] = u;
        }
        c.to_string()
    }

    fn choice(&self, delta: Value, finish: Option<&str>) -> Value {
        match self.endpoint {
            Endpoint::Chat | Endpoint::Embeddings | Endpoint::Responses | Endpoint::Messages => {
                json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}])
            }
            Endpoint::Completion => json!([{
                "index": 0,
                "text": delta.get("content").and_then(Value::as_str).unwrap_or(""),
                "logprobs": null,
                "finish_reason": finish,
            }]),
        }
    }

    fn line(&mut self, line: &str, out: &mut Vec<u8>) {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            return self.fail(
                out,
                "upstream_malformed",
                "The upstream sent a malformed stream line.",
            );
        };
        if let Some(err) = v.get("error") {
            let message = err.as_str().map_or_else(|| err.to_string(), str::to_owned);
            write_error_event(out, "upstream_error", &message);
            self.state.outcome = Some(StreamOutcome::UpstreamError);
            return;
        }
        let text = match self.endpoint {
            Endpoint::Chat | Endpoint::Embeddings | Endpoint::Responses | Endpoint::Messages => {
                v.pointer("/message/content")
            }
            Endpoint::Completion => v.get("response"),
        }
        .and_then(Value::as_str)
        .unwrap_or("");
        let calls = v
            .pointer("/message/tool_calls")
            .and_then(Value::as_array)
            .filter(|c| !c.is_empty());
        let mut delta = Map::new();
        if !self.sent_role && self.endpoint == Endpoint::Chat {
            delta.insert("role".into(), Value::from("assistant"));
            self.sent_role = true;
        }
        if !text.is_empty() {
            delta.insert("content".into(), Value::from(text));
        }
        let thinking = v
            .pointer("/message/thinking")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty());
        if let Some(t) = thinking {
            delta.insert("reasoning_content".into(), Value::from(t));
        }
        if let Some(calls) = calls {
            delta.insert(
                "tool_calls".into(),
                tool_calls(calls, &self.request_id, true),
            );
            self.had_tool_calls = true;
        }
        if !delta.is_empty() {
            if !text.is_empty() || thinking.is_some() || calls.is_some() {
                self.state.output_chunks += 1;
            }
            write_event(
                out,
                &self.chunk(self.choice(Value::Object(delta), None), None),
            );
        }
        if v.get("done").and_then(Value::as_bool) == Some(true) {
            let finish = finish_reason(&v, self.had_tool_calls);
            write_event(out, &self.chunk(self.choice(json!({}), Some(finish)), None));
            self.state.usage = usage(&v);
            if self.client_include_usage {
                let u = self.state.usage.unwrap_or_default().to_json();
                write_event(out, &self.chunk(json!([]), Some(u)));
            }
            out.extend_from_slice(b"data: [DONE]\n\n");
            self.state.outcome = Some(StreamOutcome::Complete);
        }
    }
}
