//! `/v1/responses`: the request's checks, and the two ways a model serves
//! it (see [`crate::backend::ResponsesApi`]):
//!
//! - **native**: the request goes to the upstream's own `/v1/responses`
//!   and the answer comes back as it is
//!   ([`crate::backend::NativeResponsesRelay`]);
//! - **bridge**: the request becomes a chat completion ([`to_chat`]), and
//!   the chat answer becomes a Response ([`from_chat`]) or, streamed, the
//!   Responses event grammar ([`events`]).
//!
//! Stored state (`previous_response_id`, `item_reference`, the `GET`
//! routes) is the gateway's (`gateway::conversation`, over [`state`]); the
//! request's checks are in `request::responses`.

mod events;
mod from_chat;
pub mod state;
mod to_chat;

use serde_json::{Map, Value, json};

pub use events::BridgeRelay;
pub(crate) use from_chat::from_chat;
pub(crate) use to_chat::to_chat;

/// What a Response says about the request that made it: its id and the
/// request's settings, echoed as OpenAI does.
#[derive(Debug, Clone)]
pub struct Echo {
    /// `resp_...`.
    pub id: String,
    /// The hex that item ids share with the response id.
    tag: String,
    created_at: i64,
    model: String,
    settings: Map<String, Value>,
    store: bool,
    previous_response_id: Option<String>,
}

/// Request fields a Response repeats.
const ECHOED: &[&str] = &[
    "instructions",
    "max_output_tokens",
    "metadata",
    "parallel_tool_calls",
    "temperature",
    "text",
    "tool_choice",
    "tools",
    "top_p",
    "user",
];

/// What a Response says for an echoed field the request left out
/// (OpenAI's defaults).
fn echo_default(field: &str) -> Value {
    match field {
        "metadata" => json!({}),
        "parallel_tool_calls" => Value::Bool(true),
        "temperature" | "top_p" => json!(1.0),
        "text" => json!({"format": {"type": "text"}}),
        "tool_choice" => json!("auto"),
        "tools" => json!([]),
        _ => Value::Null,
    }
}

impl Echo {
    /// The echo of `body` for request `request_id` (`req_` + hex), answered
    /// as model `model` at `created_at` (seconds).
    pub fn new(body: &Map<String, Value>, request_id: &str, model: &str, created_at: i64) -> Self {
        let tag = request_id.trim_start_matches("req_").to_owned();
        let settings = ECHOED
            .iter()
            .map(|k| {
                let v = body.get(*k).filter(|v| !v.is_null()).cloned();
                ((*k).to_owned(), v.unwrap_or_else(|| echo_default(k)))
            })
            .collect();
        Self {
            id: format!("resp_{tag}"),
            tag,
            created_at,
            model: model.to_owned(),
            settings,
            store: false,
            previous_response_id: None,
        }
    }

    /// Say whether the response is kept and which one it continued.
    pub fn with_state(mut self, store: bool, previous_response_id: Option<String>) -> Self {
        self.store = store;
        self.previous_response_id = previous_response_id;
        self
    }

    /// The id of output item `n` of kind `prefix` (`msg`, `fc`, `rs`).
    fn item_id(&self, prefix: &str, n: usize) -> String {
        format!("{prefix}_{}{n:02x}", self.tag)
    }

    /// The Response object with `status`, `output` and `usage`.
    fn response(&self, status: &str, output: Vec<Value>, usage: Value) -> Map<String, Value> {
        let mut r = Map::new();
        r.insert("id".into(), json!(self.id));
        r.insert("object".into(), json!("response"));
        r.insert("created_at".into(), json!(self.created_at));
        r.insert("status".into(), json!(status));
        r.insert("background".into(), json!(false));
        r.insert("error".into(), Value::Null);
        r.insert("incomplete_details".into(), Value::Null);
        r.insert("model".into(), json!(self.model));
        r.insert("output".into(), Value::Array(output));
        r.insert(
            "previous_response_id".into(),
            json!(self.previous_response_id),
        );
        r.insert("reasoning".into(), json!({"effort": null, "summary": null}));
        r.insert("store".into(), json!(self.store));
        r.insert("truncation".into(), json!("disabled"));
        r.insert("usage".into(), usage);
        for (k, v) in &self.settings {
            r.insert(k.clone(), v.clone());
        }
        r
    }
}

/// A chat `usage` object as a Responses one (`null` stays `null`).
fn usage(chat: Option<&Value>) -> Value {
    let Some(u) = chat.filter(|u| u.is_object()) else {
        return Value::Null;
    };
    let n = |v: Option<&Value>| v.and_then(Value::as_i64).unwrap_or(0).max(0);
    let input = n(u.get("prompt_tokens"));
    let output = n(u.get("completion_tokens"));
    json!({
        "input_tokens": input,
        "input_tokens_details": {
            "cached_tokens": n(u.pointer("/prompt_tokens_details/cached_tokens")),
        },
        "output_tokens": output,
        "output_tokens_details": {
            "reasoning_tokens": n(u.pointer("/completion_tokens_details/reasoning_tokens")),
        },
        "total_tokens": input.saturating_add(output),
    })
}

/// The status and `incomplete_details` for a chat `finish_reason`.
fn status_of(finish_reason: Option<&str>) -> (&'static str, Value) {
    match finish_reason {
        Some("length") => ("incomplete", json!({"reason": "max_output_tokens"})),
        Some("content_filter") => ("incomplete", json!({"reason": "content_filter"})),
        _ => ("completed", Value::Null),
    }
}

#[cfg(test)]
mod tests;
