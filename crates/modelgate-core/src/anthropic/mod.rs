//! Anthropic's Messages API (`/v1/messages`) served over chat completions:
//! the request becomes a chat completion ([`to_chat`]), and the chat answer
//! becomes a Message ([`from_chat`]) or, streamed, Anthropic's event grammar
//! ([`MessagesRelay`]). The request's field checks are in
//! `request::messages`; the route's error shape is [`error_body`].
//!
//! Token arithmetic differs between the two APIs: OpenAI's `prompt_tokens`
//! includes cached tokens, Anthropic's `input_tokens` excludes them (the
//! cache reads and writes are counted beside it), so the translation
//! subtracts them ([`usage`]). Usage records keep OpenAI's reading.

mod events;
mod from_chat;
mod to_chat;

use serde_json::{Value, json};

pub use events::MessagesRelay;
pub(crate) use from_chat::from_chat;
#[cfg(test)]
use to_chat::Translated;
pub(crate) use to_chat::to_chat;

/// What a Message says about the request that made it.
#[derive(Debug, Clone)]
pub struct Echo {
    /// `msg_...`: the request id's hex, so a Message names its usage record.
    pub id: String,
    model: String,
    stop_sequences: Vec<String>,
}

impl Echo {
    /// The echo of a request `request_id` (`req_` + hex) for `model`,
    /// with its `stop_sequences`.
    pub fn new(request_id: &str, model: &str, stop_sequences: Vec<String>) -> Self {
        Self {
            id: format!("msg_{}", request_id.trim_start_matches("req_")),
            model: model.to_owned(),
            stop_sequences,
        }
    }

    /// The id of tool use `n` when the upstream gave none.
    fn tool_use_id(&self, n: usize) -> String {
        format!("toolu_{}{n:02x}", self.id.trim_start_matches("msg_"))
    }

    /// `stop_reason` and `stop_sequence` for a chat `finish_reason`, and
    /// the stop string the upstream said it matched (vLLM's `stop_reason`).
    fn stop(&self, finish_reason: Option<&str>, matched: Option<&str>) -> (&'static str, Value) {
        match finish_reason {
            Some("length") => ("max_tokens", Value::Null),
            Some("tool_calls" | "function_call") => ("tool_use", Value::Null),
            Some("content_filter") => ("refusal", Value::Null),
            _ => match matched.filter(|m| self.stop_sequences.iter().any(|s| s == m)) {
                Some(m) => ("stop_sequence", json!(m)),
                None => ("end_turn", Value::Null),
            },
        }
    }
}

/// A chat `usage` object as Anthropic's: `input_tokens` without the cached
/// tokens, which are `cache_read_input_tokens`.
pub(crate) fn usage(chat: Option<&Value>) -> Value {
    let n = |p: &str| {
        chat.and_then(|u| u.pointer(p))
            .and_then(Value::as_i64)
            .unwrap_or(0)
            .max(0)
    };
    let cached = n("/prompt_tokens_details/cached_tokens");
    json!({
        "input_tokens": n("/prompt_tokens").saturating_sub(cached).max(0),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
        "output_tokens": n("/completion_tokens"),
    })
}

/// An id as Anthropic accepts it back (`^[a-zA-Z0-9_-]+$`): some servers
/// mint ids like `functions.Bash:0`.
fn clean_id(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Anthropic's error type for an HTTP status.
pub fn error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        409 => "conflict_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        408 | 504 => "timeout_error",
        503 | 529 => "overloaded_error",
        500.. => "api_error",
        _ => "invalid_request_error",
    }
}

/// Anthropic's error body: `{"type":"error","error":{type,message},request_id}`.
pub fn error_body(status: u16, message: &str, request_id: &str) -> Value {
    json!({
        "type": "error",
        "error": {"type": error_type(status), "message": message},
        "request_id": request_id,
    })
}

#[cfg(test)]
mod tests;
