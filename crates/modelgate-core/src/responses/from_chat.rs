//! A buffered chat completion as a Response (the bridge's way out), and
//! the output items that the streamed bridge builds too.

use bytes::Bytes;
use serde_json::{Value, json};

use super::{Echo, status_of, usage};
use crate::error::UpstreamError;

/// A `message` item holding one `output_text` part.
pub(super) fn message_item(id: &str, text: &str, status: &str) -> Value {
    json!({
        "type": "message",
        "id": id,
        "status": status,
        "role": "assistant",
        "content": if status == "in_progress" { json!([]) } else { json!([text_part(text)]) },
    })
}

/// An `output_text` content part.
pub(super) fn text_part(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

/// A `function_call` item.
pub(super) fn call_item(
    id: &str,
    call_id: &str,
    name: &str,
    arguments: &str,
    status: &str,
) -> Value {
    json!({
        "type": "function_call",
        "id": id,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    })
}

/// A `reasoning` item carrying the model's raw reasoning text.
pub(super) fn reasoning_item(id: &str, text: &str) -> Value {
    let content = if text.is_empty() {
        json!([])
    } else {
        json!([{"type": "reasoning_text", "text": text}])
    };
    json!({"type": "reasoning", "id": id, "summary": [], "content": content})
}

/// The Response for a chat completion `body` (already checked to have
/// `choices`), with its `usage` read from it.
pub(crate) fn from_chat(echo: &Echo, body: &[u8]) -> Result<Bytes, UpstreamError> {
    let chat: Value = serde_json::from_slice(body).map_err(|e| UpstreamError::BadResponse {
        status: 0,
        detail: format!("non-JSON chat answer: {e}"),
    })?;
    let choice = chat.pointer("/choices/0");
    let message = choice.and_then(|c| c.get("message"));
    let text = |k: &str| {
        message
            .and_then(|m| m.get(k))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let mut output = Vec::new();
    if let Some(r) = text("reasoning_content").or_else(|| text("reasoning")) {
        output.push(reasoning_item(&echo.item_id("rs", output.len()), r));
    }
    let calls = message
        .and_then(|m| m.get("tool_calls"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if let Some(t) = text("content").or_else(|| text("refusal")) {
        output.push(message_item(
            &echo.item_id("msg", output.len()),
            t,
            "completed",
        ));
    }
    for c in calls {
        let f = |k: &str| c.pointer(&format!("/function/{k}")).and_then(Value::as_str);
        let id = echo.item_id("fc", output.len());
        let call_id = c
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or(&id)
            .to_owned();
        output.push(call_item(
            &id,
            &call_id,
            f("name").unwrap_or_default(),
            f("arguments").unwrap_or("{}"),
            "completed",
        ));
    }
    if output.is_empty() {
        output.push(message_item(&echo.item_id("msg", 0), "", "completed"));
    }
    let finish = choice
        .and_then(|c| c.get("finish_reason"))
        .and_then(Value::as_str);
    let (status, details) = status_of(finish);
    let mut r = echo.response(status, output, usage(chat.get("usage")));
    r.insert("incomplete_details".into(), details);
    r.insert("completed_at".into(), json!(echo.created_at));
    Ok(Bytes::from(Value::Object(r).to_string()))
}
