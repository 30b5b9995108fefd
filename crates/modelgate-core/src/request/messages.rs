//! `/v1/messages` (Anthropic's Messages API): the request's checks and its
//! prompt bound. How it is served is [`crate::anthropic`]; the checks that
//! depend on the conversation's shape (role order, tool results that answer
//! tool uses, block types a translation can carry) are made there, before
//! admission, so every refusal is a 400 that names its field.

use serde_json::{Map, Value};

use super::{
    Endpoint, IMAGE_TOKENS, MAX_TOKENS_LIMIT, MESSAGE_OVERHEAD, ProxyRequest, json_len, opt_bool,
    opt_int, opt_model, opt_num, wrong_type,
};
use crate::error::RequestError;

/// The suffix Claude Code puts on a model name to ask for a 1M-token
/// context window: routing ignores it.
const LONG_CONTEXT_SUFFIX: &str = "[1m]";

/// Parse and check a Messages request (`count`: a `count_tokens` request,
/// which has no `max_tokens`).
pub(super) fn parse(
    mut body: Map<String, Value>,
    count: bool,
) -> Result<ProxyRequest, RequestError> {
    let model = opt_model(&body)?.map(|m| {
        let base = m.strip_suffix(LONG_CONTEXT_SUFFIX).unwrap_or(&m).to_owned();
        body.insert("model".into(), Value::String(base.clone()));
        base
    });
    let max_tokens = if count {
        None
    } else {
        match opt_int(&body, "max_tokens", 1, MAX_TOKENS_LIMIT)? {
            Some(m) => Some(m),
            None => {
                return Err(RequestError::invalid(
                    "max_tokens: Field required",
                    Some("max_tokens"),
                ));
            }
        }
    };
    let stream = opt_bool(&body, "stream")?.unwrap_or(false) && !count;
    opt_num(&body, "temperature", 0.0, 1.0)?;
    opt_num(&body, "top_p", 0.0, 1.0)?;
    opt_int(&body, "top_k", 0, u64::from(u32::MAX))?;
    match body.get("stop_sequences") {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => {}
        Some(_) => return Err(wrong_type("stop_sequences", "an array of strings")),
    }
    for (k, what) in [
        ("tools", "an array"),
        ("metadata", "an object"),
        ("tool_choice", "an object"),
        ("thinking", "an object"),
    ] {
        let ok = match body.get(k) {
            None | Some(Value::Null) => true,
            Some(Value::Array(_)) => what == "an array",
            Some(Value::Object(_)) => what == "an object",
            Some(_) => false,
        };
        if !ok {
            return Err(wrong_type(k, what));
        }
    }
    let prompt_bound = prompt_bound(&body)?;
    Ok(ProxyRequest {
        endpoint: Endpoint::Messages,
        body,
        model,
        stream,
        include_usage: false,
        max_tokens,
        choices: 1,
        prompt_bound,
    })
}

/// An upper bound of the prompt's tokens: system, messages and tools.
fn prompt_bound(body: &Map<String, Value>) -> Result<u64, RequestError> {
    let system = match body.get("system") {
        None | Some(Value::Null) => 0,
        Some(Value::String(s)) => s.len() as u64 + MESSAGE_OVERHEAD,
        Some(Value::Array(blocks)) => blocks_bound(blocks) + MESSAGE_OVERHEAD,
        Some(_) => return Err(wrong_type("system", "a string or an array of text blocks")),
    };
    let messages = match body.get("messages") {
        Some(Value::Array(m)) if !m.is_empty() => m,
        Some(Value::Array(_)) => {
            return Err(RequestError::invalid(
                "messages: at least one message is required",
                Some("messages"),
            ));
        }
        None | Some(Value::Null) => {
            return Err(RequestError::invalid(
                "messages: Field required",
                Some("messages"),
            ));
        }
        Some(_) => return Err(wrong_type("messages", "an array")),
    };
    let mut bound = MESSAGE_OVERHEAD + system;
    for (i, m) in messages.iter().enumerate() {
        let param = format!("messages[{i}]");
        let Value::Object(m) = m else {
            return Err(wrong_type(&param, "an object"));
        };
        bound += MESSAGE_OVERHEAD
            + match m.get("content") {
                Some(Value::String(s)) => s.len() as u64,
                Some(Value::Array(blocks)) => blocks_bound(blocks),
                _ => {
                    return Err(wrong_type(
                        &format!("{param}.content"),
                        "a string or an array of content blocks",
                    ));
                }
            };
    }
    Ok(bound + body.get("tools").map_or(0, json_len))
}

fn blocks_bound(blocks: &[Value]) -> u64 {
    blocks.iter().map(block_bound).sum()
}

fn block_bound(block: &Value) -> u64 {
    match block.get("type").and_then(Value::as_str) {
        Some("text") => block
            .get("text")
            .and_then(Value::as_str)
            .map_or(0, str::len) as u64,
        Some("image") => IMAGE_TOKENS,
        Some("tool_result") => {
            MESSAGE_OVERHEAD
                + match block.get("content") {
                    Some(Value::String(s)) => s.len() as u64,
                    Some(Value::Array(inner)) => blocks_bound(inner),
                    _ => 0,
                }
        }
        _ => json_len(block),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(body: &str) -> Result<ProxyRequest, RequestError> {
        let Ok(Value::Object(body)) = serde_json::from_str(body) else {
            panic!("not an object: {body}");
        };
        parse(body, false)
    }

    #[test]
    fn a_claude_code_shaped_request() {
        let r = parse_str(
            r#"{"model":"claude-sonnet-4-5[1m]","max_tokens":32000,"stream":true,
            "system":[{"type":"text","text":"You are Claude Code."}],
            "messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],
            "tools":[{"name":"Bash","input_schema":{"type":"object"}}],
            "thinking":{"type":"adaptive"},"context_management":{"edits":[]},
            "metadata":{"user_id":"u"}}"#,
        )
        .unwrap();
        assert_eq!(r.model.as_deref(), Some("claude-sonnet-4-5"));
        assert_eq!(r.body["model"], "claude-sonnet-4-5");
        assert_eq!(r.max_tokens, Some(32000));
        assert!(r.stream);
        assert!(r.body.contains_key("context_management"));
        assert!(r.prompt_bound > "You are Claude Code.hi".len() as u64);
    }

    #[test]
    fn bad_requests_name_the_field() {
        let cases = [
            (
                r#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#,
                "max_tokens",
            ),
            (
                r#"{"model":"m","max_tokens":0,"messages":[{"role":"user","content":"x"}]}"#,
                "max_tokens",
            ),
            (r#"{"model":"m","max_tokens":5,"messages":[]}"#, "messages"),
            (r#"{"model":"m","max_tokens":5}"#, "messages"),
            (
                r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":5}]}"#,
                "messages[0].content",
            ),
            (
                r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"temperature":1.5}"#,
                "temperature",
            ),
            (
                r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"stop_sequences":"x"}"#,
                "stop_sequences",
            ),
            (
                r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"system":5}"#,
                "system",
            ),
            (
                r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"tools":{}}"#,
                "tools",
            ),
        ];
        for (body, field) in cases {
            match parse_str(body) {
                Err(RequestError::Invalid { param, .. }) => {
                    assert_eq!(param.as_deref(), Some(field), "{body}")
                }
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn count_tokens_needs_no_max_tokens_and_never_streams() {
        let Ok(Value::Object(body)) = serde_json::from_str(
            r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}"#,
        ) else {
            unreachable!()
        };
        let r = parse(body, true).unwrap();
        assert_eq!(r.max_tokens, None);
        assert!(!r.stream);
    }
}
