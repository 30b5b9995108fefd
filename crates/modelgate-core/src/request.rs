//! Parsing and validating client requests for `/v1/chat/completions` and
//! `/v1/completions` (and the shared checks that embeddings, Responses and
//! Messages use for theirs, in the submodules).
//!
//! The body stays a JSON map so that fields the gateway does not know
//! (vLLM's extras, new OpenAI parameters) reach the upstream untouched; the
//! fields the gateway acts on, or that could hurt it, are checked here.

use serde_json::{Map, Value};

use crate::error::RequestError;

mod embeddings;
mod messages;
mod responses;

pub use responses::valid_id;
pub(crate) use responses::{
    input_bound as responses_input_bound, prompt_bound as responses_prompt_bound,
};

/// Which client API endpoint a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/v1/chat/completions`
    Chat,
    /// `/v1/completions`
    Completion,
    /// `/v1/embeddings`
    Embeddings,
    /// `/v1/responses`
    Responses,
    /// `/v1/messages` (Anthropic's Messages API)
    Messages,
}

impl Endpoint {
    /// The name usage records keep.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Completion => "completions",
            Self::Embeddings => "embeddings",
            Self::Responses => "responses",
            Self::Messages => "messages",
        }
    }

    /// The `object` of a buffered chat or completion answer.
    pub fn object(self) -> &'static str {
        match self {
            Self::Completion => "text_completion",
            Self::Embeddings => "list",
            Self::Responses => "response",
            Self::Messages => "message",
            Self::Chat => "chat.completion",
        }
    }

    /// Whether the answer has generated output (everything but embeddings).
    pub fn generates(self) -> bool {
        self != Self::Embeddings
    }
}

/// Largest `max_tokens` accepted.
pub const MAX_TOKENS_LIMIT: u64 = 1 << 20;
/// Largest `n` accepted.
pub const MAX_N: u64 = 128;
/// Longest model name accepted.
const MAX_MODEL_LEN: usize = 256;
/// Prompt tokens assumed for one image part (a high-detail image is ~1,100).
pub(crate) const IMAGE_TOKENS: u64 = 2_000;
/// Per-message template tokens (role markers, separators).
pub(crate) const MESSAGE_OVERHEAD: u64 = 8;

/// A validated request.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyRequest {
    /// Which endpoint.
    pub endpoint: Endpoint,
    /// The body as sent, for the upstream.
    pub body: Map<String, Value>,
    /// The public model name (`None`: use the key's default).
    pub model: Option<String>,
    /// `stream: true`.
    pub stream: bool,
    /// The client asked for the usage chunk (`stream_options.include_usage`).
    pub include_usage: bool,
    /// `max_completion_tokens` or `max_tokens`.
    pub max_tokens: Option<u64>,
    /// Choices asked for (`n`, or `best_of` when larger).
    pub choices: u64,
    /// An upper bound of the prompt's tokens (UTF-8 bytes: a byte-level
    /// BPE token is at least one byte; plus template overhead).
    pub prompt_bound: u64,
}

/// Parse and validate `raw` for `endpoint`.
pub fn parse(endpoint: Endpoint, raw: &[u8]) -> Result<ProxyRequest, RequestError> {
    let body = json_object(raw)?;
    match endpoint {
        Endpoint::Chat | Endpoint::Completion => parse_completion(endpoint, body),
        Endpoint::Embeddings => embeddings::parse(body),
        Endpoint::Responses => responses::parse(body),
        Endpoint::Messages => messages::parse(body, false),
    }
}

/// Parse and validate `raw` as a `/v1/messages/count_tokens` request.
pub fn parse_count_tokens(raw: &[u8]) -> Result<ProxyRequest, RequestError> {
    messages::parse(json_object(raw)?, true)
}

/// The body as a JSON object.
fn json_object(raw: &[u8]) -> Result<Map<String, Value>, RequestError> {
    let value: Value = serde_json::from_slice(raw).map_err(|e| {
        RequestError::invalid(
            format!("We could not parse the JSON body of your request: {e}"),
            None,
        )
    })?;
    let Value::Object(body) = value else {
        return Err(RequestError::invalid(
            "The request body must be a JSON object.",
            None,
        ));
    };
    Ok(body)
}

/// The `model` field, checked (`None`: the key's default).
pub(crate) fn opt_model(body: &Map<String, Value>) -> Result<Option<String>, RequestError> {
    match body.get("model") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(m)) => Ok(Some(valid_model(m)?.to_owned())),
        Some(_) => Err(wrong_type("model", "a string")),
    }
}

fn parse_completion(
    endpoint: Endpoint,
    body: Map<String, Value>,
) -> Result<ProxyRequest, RequestError> {
    let model = opt_model(&body)?;
    let stream = opt_bool(&body, "stream")?.unwrap_or(false);
    let include_usage = match body.get("stream_options") {
        None | Some(Value::Null) => false,
        Some(Value::Object(o)) => match o.get("include_usage") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(wrong_type("stream_options.include_usage", "a boolean")),
        },
        Some(_) => return Err(wrong_type("stream_options", "an object")),
    };
    let max_tokens = match opt_int(&body, "max_completion_tokens", 1, MAX_TOKENS_LIMIT)? {
        Some(m) => Some(m),
        None => opt_int(&body, "max_tokens", 1, MAX_TOKENS_LIMIT)?,
    };
    let n = opt_int(&body, "n", 1, MAX_N)?.unwrap_or(1);
    let best_of = opt_int(&body, "best_of", 1, 20)?.unwrap_or(1);
    opt_num(&body, "temperature", 0.0, 2.0)?;
    opt_num(&body, "top_p", 0.0, 1.0)?;
    opt_num(&body, "presence_penalty", -2.0, 2.0)?;
    opt_num(&body, "frequency_penalty", -2.0, 2.0)?;
    opt_int(&body, "top_logprobs", 0, 20)?;
    check_stop(&body)?;
    let prompt_bound = if endpoint == Endpoint::Chat {
        chat_prompt_bound(&body)?
    } else {
        completion_prompt_bound(&body)?
    } + tools_bound(&body);
    Ok(ProxyRequest {
        endpoint,
        body,
        model,
        stream,
        include_usage,
        max_tokens,
        choices: n.max(best_of),
        prompt_bound,
    })
}

/// Check a model name: non-empty, short, printable.
pub fn valid_model(m: &str) -> Result<&str, RequestError> {
    if m.is_empty() || m.len() > MAX_MODEL_LEN || m.chars().any(char::is_control) {
        return Err(RequestError::invalid(
            "'model' must be a non-empty name of at most 256 printable characters.",
            Some("model"),
        ));
    }
    Ok(m)
}

pub(crate) fn wrong_type(param: &str, what: &str) -> RequestError {
    RequestError::invalid(format!("'{param}' must be {what}."), Some(param))
}

pub(crate) fn opt_bool(body: &Map<String, Value>, k: &str) -> Result<Option<bool>, RequestError> {
    match body.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(wrong_type(k, "a boolean")),
    }
}

pub(crate) fn opt_int(
    body: &Map<String, Value>,
    k: &str,
    min: u64,
    max: u64,
) -> Result<Option<u64>, RequestError> {
    match body.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(RequestError::invalid(
                format!("'{k}' must be an integer from {min} to {max}."),
                Some(k),
            )),
        },
    }
}

pub(crate) fn opt_num(
    body: &Map<String, Value>,
    k: &str,
    min: f64,
    max: f64,
) -> Result<(), RequestError> {
    match body.get(k) {
        None | Some(Value::Null) => Ok(()),
        Some(v) => match v.as_f64() {
            Some(x) if (min..=max).contains(&x) => Ok(()),
            _ => Err(RequestError::invalid(
                format!("'{k}' must be a number from {min} to {max}."),
                Some(k),
            )),
        },
    }
}

fn check_stop(body: &Map<String, Value>) -> Result<(), RequestError> {
    match body.get("stop") {
        None | Some(Value::Null) | Some(Value::String(_)) => Ok(()),
        Some(Value::Array(a)) if a.len() <= 4 && a.iter().all(Value::is_string) => Ok(()),
        Some(_) => Err(wrong_type(
            "stop",
            "a string or an array of at most 4 strings",
        )),
    }
}

const ROLES: &[&str] = &[
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "function",
];

pub(crate) fn chat_prompt_bound(body: &Map<String, Value>) -> Result<u64, RequestError> {
    let messages = match body.get("messages") {
        Some(Value::Array(m)) if !m.is_empty() => m,
        Some(Value::Array(_)) => {
            return Err(RequestError::invalid(
                "'messages' must not be empty.",
                Some("messages"),
            ));
        }
        None | Some(Value::Null) => {
            return Err(RequestError::invalid(
                "Missing required parameter: 'messages'.",
                Some("messages"),
            ));
        }
        Some(_) => return Err(wrong_type("messages", "an array")),
    };
    let mut bound = MESSAGE_OVERHEAD;
    for (i, m) in messages.iter().enumerate() {
        let param = format!("messages[{i}]");
        let Value::Object(m) = m else {
            return Err(wrong_type(&param, "an object"));
        };
        match m.get("role") {
            Some(Value::String(r)) if ROLES.contains(&r.as_str()) => {}
            _ => {
                return Err(RequestError::invalid(
                    format!("'{param}.role' must be one of {}.", ROLES.join(", ")),
                    Some(&format!("{param}.role")),
                ));
            }
        }
        bound += MESSAGE_OVERHEAD;
        bound += match m.get("content") {
            None | Some(Value::Null) => 0,
            Some(Value::String(s)) => s.len() as u64,
            Some(Value::Array(parts)) => parts_bound(parts, &param)?,
            Some(_) => {
                return Err(wrong_type(
                    &format!("{param}.content"),
                    "a string or an array",
                ));
            }
        };
        for k in ["name", "tool_calls", "function_call", "tool_call_id"] {
            if let Some(v) = m.get(k) {
                bound += json_len(v);
            }
        }
    }
    Ok(bound)
}

fn parts_bound(parts: &[Value], param: &str) -> Result<u64, RequestError> {
    let mut bound = 0;
    for p in parts {
        let Value::Object(p) = p else {
            return Err(wrong_type(&format!("{param}.content[]"), "an object"));
        };
        bound += match (p.get("type").and_then(Value::as_str), p.get("text")) {
            (Some("text"), Some(Value::String(t))) => t.len() as u64,
            (Some("image_url" | "input_image" | "image"), _) => IMAGE_TOKENS,
            _ => json_len(&Value::Object(p.clone())),
        };
    }
    Ok(bound)
}

fn completion_prompt_bound(body: &Map<String, Value>) -> Result<u64, RequestError> {
    let bad = || {
        wrong_type(
            "prompt",
            "a string, an array of strings, or an array of token arrays",
        )
    };
    let bound = match body.get("prompt") {
        None | Some(Value::Null) => {
            return Err(RequestError::invalid(
                "Missing required parameter: 'prompt'.",
                Some("prompt"),
            ));
        }
        Some(Value::String(s)) => s.len() as u64,
        Some(Value::Array(items)) => {
            let mut total = 0u64;
            for item in items {
                total += match item {
                    Value::String(s) => s.len() as u64,
                    Value::Number(n) if n.is_u64() => 1,
                    Value::Array(toks) if toks.iter().all(Value::is_u64) => toks.len() as u64,
                    _ => return Err(bad()),
                };
            }
            total
        }
        Some(_) => return Err(bad()),
    };
    if let Some(s) = body.get("suffix").and_then(Value::as_str) {
        return Ok(bound + s.len() as u64 + MESSAGE_OVERHEAD);
    }
    Ok(bound + MESSAGE_OVERHEAD)
}

fn tools_bound(body: &Map<String, Value>) -> u64 {
    ["tools", "functions", "response_format"]
        .iter()
        .filter_map(|k| body.get(*k))
        .map(json_len)
        .sum()
}

pub(crate) fn json_len(v: &Value) -> u64 {
    serde_json::to_string(v).map_or(0, |s| s.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(body: &str) -> Result<ProxyRequest, RequestError> {
        parse(Endpoint::Chat, body.as_bytes())
    }

    #[test]
    fn a_normal_chat_request() {
        let r = chat(
            r#"{"model":"m","messages":[{"role":"user","content":"hello"}],"stream":true,
            "stream_options":{"include_usage":true},"max_tokens":16,"n":2,"vendor_extra":{"x":1}}"#,
        )
        .unwrap();
        assert_eq!(r.model.as_deref(), Some("m"));
        assert!(r.stream && r.include_usage);
        assert_eq!(r.max_tokens, Some(16));
        assert_eq!(r.choices, 2);
        assert_eq!(r.prompt_bound, 5 + 2 * MESSAGE_OVERHEAD);
        assert!(r.body.contains_key("vendor_extra"));
    }

    #[test]
    fn bad_requests_name_the_parameter() {
        let cases = [
            (r#"[1]"#, None),
            (r#"{"model":"m"}"#, Some("messages")),
            (r#"{"model":"m","messages":[]}"#, Some("messages")),
            (
                r#"{"model":5,"messages":[{"role":"user","content":"x"}]}"#,
                Some("model"),
            ),
            (
                r#"{"model":"m\r\nX: y","messages":[{"role":"user","content":"x"}]}"#,
                Some("model"),
            ),
            (
                r#"{"model":"m","messages":[{"role":"king","content":"x"}]}"#,
                Some("messages[0].role"),
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":5}]}"#,
                Some("messages[0].content"),
            ),
            (
                r#"{"model":"m","messages":[{"role":"user"}],"max_tokens":0}"#,
                Some("max_tokens"),
            ),
            (
                r#"{"model":"m","messages":[{"role":"user"}],"max_tokens":99999999999}"#,
                Some("max_tokens"),
            ),
            (
                r#"{"model":"m","messages":[{"role":"user"}],"n":100000}"#,
                Some("n"),
            ),
            (
                r#"{"model":"m","messages":[{"role":"user"}],"temperature":"hot"}"#,
                Some("temperature"),
            ),
            (
                r#"{"model":"m","messages":[{"role":"user"}],"temperature":3}"#,
                Some("temperature"),
            ),
            (
                r#"{"model":"m","messages":[{"role":"user"}],"stream":"yes"}"#,
                Some("stream"),
            ),
            (
                r#"{"model":"m","messages":[{"role":"user"}],"stop":[1]}"#,
                Some("stop"),
            ),
        ];
        for (body, param) in cases {
            match chat(body) {
                Err(RequestError::Invalid { param: p, .. }) => {
                    assert_eq!(p.as_deref(), param, "{body}")
                }
                other => panic!("{body}: {other:?}"),
            }
        }
        assert!(chat("{\"model\":").is_err());
    }

    #[test]
    fn completion_prompts() {
        let p = |b: &str| parse(Endpoint::Completion, b.as_bytes());
        assert_eq!(
            p(r#"{"model":"m","prompt":"abcd"}"#).unwrap().prompt_bound,
            4 + MESSAGE_OVERHEAD
        );
        assert_eq!(
            p(r#"{"model":"m","prompt":[[1,2,3],[4]]}"#)
                .unwrap()
                .prompt_bound,
            4 + MESSAGE_OVERHEAD
        );
        assert!(p(r#"{"model":"m","prompt":[{"a":1}]}"#).is_err());
        assert!(p(r#"{"model":"m"}"#).is_err());
        assert_eq!(
            p(r#"{"model":"m","prompt":"x","best_of":3,"n":2}"#)
                .unwrap()
                .choices,
            3
        );
    }

    #[test]
    fn model_may_be_left_to_the_key_default() {
        assert_eq!(
            chat(r#"{"messages":[{"role":"user","content":"x"}]}"#)
                .unwrap()
                .model,
            None
        );
    }
}
