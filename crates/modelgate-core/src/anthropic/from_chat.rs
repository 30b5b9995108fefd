//! A buffered chat completion as a Message: thinking (the backend's
//! `reasoning_content` or `reasoning`), then text, then one `tool_use` per
//! tool call, in Anthropic's order.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::{Echo, clean_id, usage};
use crate::error::UpstreamError;

/// A tool call's `arguments` as the `input` object (text that is not a
/// JSON object becomes `{}`: `input` is never a string).
pub(super) fn input_of(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({}),
    }
}

/// The reasoning text of a chat message or delta, if any.
pub(super) fn reasoning_of(m: &Value) -> Option<&str> {
    ["reasoning_content", "reasoning"]
        .iter()
        .find_map(|k| m.get(*k).and_then(Value::as_str).filter(|s| !s.is_empty()))
}

/// The Message for a chat completion `body`.
pub(crate) fn from_chat(echo: &Echo, body: &[u8]) -> Result<Bytes, UpstreamError> {
    let chat: Value = serde_json::from_slice(body).map_err(|e| UpstreamError::BadResponse {
        status: 0,
        detail: format!("non-JSON chat answer: {e}"),
    })?;
    let choice = chat.pointer("/choices/0").unwrap_or(&Value::Null);
    let message = choice.get("message").unwrap_or(&Value::Null);
    let mut content = Vec::new();
    if let Some(r) = reasoning_of(message) {
        content.push(json!({"type": "thinking", "thinking": r, "signature": ""}));
    }
    if let Some(t) = message
        .get("content")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        content.push(json!({"type": "text", "text": t}));
    }
    let calls = message.get("tool_calls").and_then(Value::as_array);
    for (n, c) in calls.into_iter().flatten().enumerate() {
        let id = c
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .map_or_else(|| echo.tool_use_id(n), clean_id);
        let f = c.get("function").unwrap_or(&Value::Null);
        content.push(json!({
            "type": "tool_use",
            "id": id,
            "name": f.get("name").and_then(Value::as_str).unwrap_or_default(),
            "input": input_of(f.get("arguments").and_then(Value::as_str).unwrap_or("")),
        }));
    }
    let (stop_reason, stop_sequence) = echo.stop(
        choice.get("finish_reason").and_then(Value::as_str),
        choice.get("stop_reason").and_then(Value::as_str),
    );
    let message = echo.message(
        content,
        stop_reason,
        stop_sequence,
        usage(chat.get("usage")),
    );
    Ok(Bytes::from(Value::Object(message).to_string()))
}

impl Echo {
    /// A Message with `content`, its stop and `usage`.
    pub(super) fn message(
        &self,
        content: Vec<Value>,
        stop_reason: impl Into<Value>,
        stop_sequence: Value,
        usage: Value,
    ) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("id".into(), json!(self.id));
        m.insert("type".into(), json!("message"));
        m.insert("role".into(), json!("assistant"));
        m.insert("model".into(), json!(self.model));
        m.insert("content".into(), Value::Array(content));
        m.insert("stop_reason".into(), stop_reason.into());
        m.insert("stop_sequence".into(), stop_sequence);
        m.insert("usage".into(), usage);
        m
    }
}
