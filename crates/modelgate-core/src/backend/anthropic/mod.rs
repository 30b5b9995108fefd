//! Anthropic's Messages API as an upstream (`backend: "anthropic"`).
//!
//! A Messages client's request is forwarded as it came (the model name
//! replaced; `anthropic-version` and `anthropic-beta` passed on), so prompt
//! caching, thinking signatures and betas reach Claude intact; its answer
//! comes back as it came but for the model name, the client's. A chat
//! client's request is translated ([`request`]) and the answer translated
//! back, buffered here or streamed ([`stream`]); Responses clients come
//! through the Responses bridge as chat.
//!
//! Usage: Anthropic's `input_tokens` excludes cache reads and writes, so
//! the gateway's prompt tokens are the three summed, the reads are the
//! cached tokens and the writes are priced apart ([`Usage::cache_writes`]).

mod request;
mod stream;

use bytes::Bytes;
use serde_json::{Value, json};

use super::{UpstreamCall, Usage};
use crate::error::{RequestError, UpstreamError};
use crate::request::{Endpoint, ProxyRequest};

pub use stream::{ChatFromMessagesRelay, MessagesPassRelay};

/// The API version sent when the client named none (a chat client).
pub(super) const VERSION: &str = "2023-06-01";

/// The Messages endpoint, or the model list, under the API root (a base
/// URL ending in `/v1` is tolerated).
pub(super) fn url(base: &str, endpoint: Option<Endpoint>) -> String {
    let root = base.strip_suffix("/v1").unwrap_or(base);
    match endpoint {
        None => format!("{root}/v1/models"),
        Some(_) => format!("{root}/v1/messages"),
    }
}

/// The upstream body for `call`; `to_claude`: the upstream is Anthropic's.
pub(super) fn body(
    call: &UpstreamCall,
    model: &str,
    to_claude: bool,
) -> Result<Value, RequestError> {
    match call.endpoint {
        Endpoint::Messages => {
            let mut body = call.body.clone();
            body.insert("model".into(), json!(model));
            if to_claude {
                drop_unsigned_thinking(&mut body);
            }
            Ok(Value::Object(body))
        }
        _ => request::from_chat(call, model),
    }
}

/// Drop the thinking blocks that carry no signature: a conversation that
/// began on a bridged model holds thinking the gateway wrote from a chat
/// model's reasoning, unsigned, and Claude refuses a thinking block whose
/// signature it did not mint. Signed blocks stay byte for byte.
fn drop_unsigned_thinking(body: &mut serde_json::Map<String, Value>) {
    let turns = body.get_mut("messages").and_then(Value::as_array_mut);
    for turn in turns.into_iter().flatten() {
        if let Some(Value::Array(blocks)) = turn.get_mut("content") {
            blocks.retain(|b| {
                b.get("type").and_then(Value::as_str) != Some("thinking")
                    || b.get("signature")
                        .and_then(Value::as_str)
                        .is_some_and(|s| !s.is_empty())
            });
        }
    }
}

/// Chat and Messages only (Responses arrive as chat through the bridge).
pub(super) fn supports(req: &ProxyRequest) -> Result<(), RequestError> {
    match req.endpoint {
        Endpoint::Completion | Endpoint::Embeddings => Err(RequestError::invalid(
            format!(
                "Anthropic models do not serve /v1/{}.",
                req.endpoint.as_str()
            ),
            None,
        )),
        _ if req.choices > 1 => Err(RequestError::invalid(
            "Anthropic models answer one choice: 'n' must be 1.",
            Some("n"),
        )),
        _ => Ok(()),
    }
}

/// The gateway's usage of a Messages `usage` object.
pub(crate) fn usage_of(u: &Value) -> Option<Usage> {
    let n = |k: &str| u.get(k).and_then(Value::as_i64).unwrap_or(0).max(0);
    u.get("input_tokens").or_else(|| u.get("output_tokens"))?;
    let read = n("cache_read_input_tokens");
    let written = n("cache_creation_input_tokens");
    let written_1h = u
        .pointer("/cache_creation/ephemeral_1h_input_tokens")
        .and_then(Value::as_i64)
        .unwrap_or(0)
        .clamp(0, written);
    let prompt = n("input_tokens")
        .saturating_add(read)
        .saturating_add(written);
    Some(
        Usage::reported(prompt, n("output_tokens"))
            .with_cached(read)
            .with_cache_writes(written - written_1h, written_1h),
    )
}

/// Read a buffered answer: a Messages client's as it is, a chat client's
/// as a chat completion.
pub(super) fn parse(
    call: &UpstreamCall,
    body: &[u8],
    created_s: i64,
) -> Result<(Bytes, Option<Usage>), UpstreamError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| UpstreamError::BadResponse {
        status: 0,
        detail: format!("non-JSON Messages answer: {e}"),
    })?;
    if v.get("type").and_then(Value::as_str) != Some("message") {
        return Err(UpstreamError::BadResponse {
            status: 0,
            detail: "the answer is not a Message".into(),
        });
    }
    let usage = v.get("usage").and_then(usage_of);
    if call.endpoint == Endpoint::Messages {
        // As it came, but for the model name: the client's.
        let mut v = v;
        v["model"] = json!(call.public_model);
        return Ok((Bytes::from(v.to_string()), usage));
    }
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for b in v
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(b.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("thinking") => {
                reasoning.push_str(b.get("thinking").and_then(Value::as_str).unwrap_or(""));
            }
            Some("tool_use" | "server_tool_use") => calls.push(json!({
                "id": b.get("id").cloned().unwrap_or_default(),
                "type": "function",
                "function": {
                    "name": b.get("name").cloned().unwrap_or_default(),
                    "arguments": b.get("input").map_or_else(|| "{}".to_owned(), Value::to_string),
                },
            })),
            _ => {}
        }
    }
    let mut message = json!({
        "role": "assistant",
        "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { json!(text) },
        "refusal": null,
    });
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    if !reasoning.is_empty() {
        message["reasoning_content"] = json!(reasoning);
    }
    let finish = finish_reason(v.get("stop_reason").and_then(Value::as_str));
    let id = v.get("id").and_then(Value::as_str).unwrap_or("");
    let chat = json!({
        "id": format!("chatcmpl-{id}"),
        "object": "chat.completion",
        "created": created_s,
        "model": call.public_model,
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
        "usage": usage.unwrap_or_default().to_json(),
    });
    Ok((Bytes::from(chat.to_string()), usage))
}

/// A chat `finish_reason` for a Messages `stop_reason`.
pub(super) fn finish_reason(stop: Option<&str>) -> &'static str {
    match stop {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        _ => "stop",
    }
}

#[cfg(test)]
mod tests;
