//! Anthropic's Messages API (`POST /v1/messages`), for the `anthropic`
//! backend: `x-api-key` and `anthropic-version` required (401 / 400 in
//! Anthropic's error shape otherwise); text of `tokens` words, or a call of
//! the first tool when tools are offered and the last user turn holds no
//! `tool_result`; usage with `cached=N` tokens read from the cache and
//! `cache_write=N` (`cache_write_1h=N`) written to it; buffered or streamed
//! (Anthropic's event grammar, `ttft_ms` before the first block). Honours
//! `status` and `fail_first` (with `fail_status`, `retry_after`). Also
//! `count_tokens`, and vLLM's `/tokenize` of chat messages (words, as the
//! mock counts prompts).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{StreamExt, stream};
use serde_json::{Value, json};

use super::{Plan, Shared, remember};

fn error(status: u16, kind: &str, message: &str, plan: Option<&Plan>) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({"type": "error", "error": {"type": kind, "message": message}});
    let mut resp = (code, Json(body)).into_response();
    if let Some(secs) = plan.and_then(|p| p.retry_after) {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
    }
    resp
}

/// Words of every text in a system prompt or a turn's content.
fn words(v: Option<&Value>) -> u64 {
    match v {
        Some(Value::String(s)) => s.split_whitespace().count() as u64,
        Some(Value::Array(blocks)) => blocks
            .iter()
            .map(|b| words(b.get("text")) + words(b.get("content")))
            .sum(),
        _ => 0,
    }
}

/// The tool to call: the first offered, unless the last turn answers one.
fn tool_use(req: &Value) -> Option<Value> {
    let tool = req.get("tools")?.as_array()?.first()?;
    let last = req.get("messages")?.as_array()?.last()?;
    let answered = last
        .get("content")
        .and_then(Value::as_array)
        .is_some_and(|c| c.iter().any(|b| b["type"] == "tool_result"));
    if answered {
        return None;
    }
    let mut input = serde_json::Map::new();
    if let Some(Value::Object(props)) = tool.pointer("/input_schema/properties") {
        for k in props.keys() {
            input.insert(k.clone(), json!("mock"));
        }
    }
    Some(
        json!({"type": "tool_use", "id": "toolu_mock1", "name": tool.get("name")?, "input": input}),
    )
}

/// `POST /v1/messages/count_tokens`: the words of the system prompt and
/// the turns.
pub(super) async fn count_tokens(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return error(400, "invalid_request_error", "not JSON", None);
    };
    remember(&shared, &headers, &req, false);
    Json(json!({"input_tokens": prompt_words(&req)})).into_response()
}

/// vLLM's `POST /tokenize` of chat messages: their words.
pub(super) async fn tokenize(body: Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "not JSON").into_response();
    };
    Json(json!({"count": prompt_words(&req), "max_model_len": 4096})).into_response()
}

/// Words of a request's system prompt and turns.
fn prompt_words(req: &Value) -> u64 {
    words(req.get("system"))
        + req
            .get("messages")
            .and_then(Value::as_array)
            .map_or(0, |ms| ms.iter().map(|m| words(m.get("content"))).sum())
}

pub(super) async fn messages(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if headers.get("x-api-key").is_none() {
        return error(
            401,
            "authentication_error",
            "x-api-key header is required",
            None,
        );
    }
    if headers.get("anthropic-version").is_none() {
        let message = "anthropic-version: header is required";
        return error(400, "invalid_request_error", message, None);
    }
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return error(400, "invalid_request_error", "not JSON", None);
    };
    remember(&shared, &headers, &req, true);
    let model = req
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("mock")
        .to_owned();
    let plan = Plan::from_model(&model);
    let prompt = prompt_words(&req);
    if let Ok(mut s) = shared.stats.lock() {
        s.requests += 1;
        s.prompt_tokens += prompt;
    }
    if let Some(refusal) = refusal(&shared, &model, &plan) {
        return refusal;
    }
    let message = answer(&req, &model, &plan, prompt);
    let n = message["usage"]["output_tokens"].as_u64().unwrap_or(0);
    if let Ok(mut s) = shared.stats.lock() {
        s.completion_tokens += n;
    }
    if req.get("stream") != Some(&json!(true)) {
        return Json(message).into_response();
    }
    stream_of(message, n, plan.ttft)
}

/// The error the plan asks for, if any (`fail_first`, `status`).
fn refusal(shared: &Shared, model: &str, plan: &Plan) -> Option<Response> {
    if plan.fail_first > 0 {
        let mut counts = shared.fail_counts.lock().unwrap_or_else(|e| e.into_inner());
        let c = counts.entry(model.to_owned()).or_insert(0);
        *c += 1;
        if *c <= plan.fail_first {
            let message = "mock upstream error";
            return Some(error(
                plan.fail_status,
                "overloaded_error",
                message,
                Some(plan),
            ));
        }
    }
    let status = plan.status?;
    let message = format!("mock upstream error {status}");
    Some(error(status, "api_error", &message, Some(plan)))
}

/// The Message for `req`: its content, stop and usage.
fn answer(req: &Value, model: &str, plan: &Plan, prompt: u64) -> Value {
    let cap = req
        .get("max_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(u64::MAX);
    let tool = if plan.tools { tool_use(req) } else { None };
    let n = if tool.is_some() {
        1
    } else {
        plan.tokens.min(cap)
    };
    let stop = match (&tool, n < plan.tokens) {
        (Some(_), _) => "tool_use",
        (None, true) => "max_tokens",
        (None, false) => "end_turn",
    };
    let read = plan.cached.min(prompt);
    let written = plan.cache_write.0.min(prompt - read);
    let written_1h = plan.cache_write.1.min(prompt - read - written);
    let usage = json!({
        "input_tokens": prompt - read - written - written_1h,
        "cache_read_input_tokens": read,
        "cache_creation_input_tokens": written + written_1h,
        "cache_creation": {"ephemeral_5m_input_tokens": written, "ephemeral_1h_input_tokens": written_1h},
        "output_tokens": n,
    });
    let text: String = (0..n).map(|i| format!(" w{i}")).collect();
    let content = match tool {
        Some(t) => vec![t],
        None => vec![json!({"type": "text", "text": text})],
    };
    json!({"id": "msg_mock1", "type": "message", "role": "assistant", "model": model,
        "content": content, "stop_reason": stop, "stop_sequence": null, "usage": usage})
}

/// The Message as Anthropic's event stream.
fn stream_of(message: Value, n: u64, ttft: Duration) -> Response {
    let ev = |v: Value| {
        Bytes::from(format!(
            "event: {}\ndata: {v}\n\n",
            v["type"].as_str().unwrap_or_default()
        ))
    };
    let mut start = message.clone();
    start["content"] = json!([]);
    start["stop_reason"] = Value::Null;
    start["usage"]["output_tokens"] = json!(1);
    let mut events = vec![(
        Duration::ZERO,
        ev(json!({"type": "message_start", "message": start})),
    )];
    let block = &message["content"][0];
    let mut first = ttft;
    let mut next = |v: Value| (std::mem::take(&mut first), ev(v));
    if block["type"] == "tool_use" {
        let mut opened = block.clone();
        opened["input"] = json!({});
        events.push(next(
            json!({"type": "content_block_start", "index": 0, "content_block": opened}),
        ));
        let args = block["input"].to_string();
        events.push(next(json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": args}})));
    } else {
        events.push(next(json!({"type": "content_block_start", "index": 0,
            "content_block": {"type": "text", "text": ""}})));
        for i in 0..n {
            events.push(next(json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": format!(" w{i}")}})));
        }
    }
    events.push(next(json!({"type": "content_block_stop", "index": 0})));
    events.push(next(json!({"type": "message_delta",
        "delta": {"stop_reason": message["stop_reason"], "stop_sequence": null},
        "usage": {"output_tokens": message["usage"]["output_tokens"]}})));
    events.push(next(json!({"type": "message_stop"})));
    let body = stream::iter(events).then(|(delay, bytes)| async move {
        tokio::time::sleep(delay).await;
        Ok::<_, Infallible>(bytes)
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
