//! A chat completion request as a Messages request, for chat (and, through
//! the Responses bridge, Responses) clients of an Anthropic upstream.
//!
//! System and developer messages become the top-level `system`; a run of
//! `tool` messages becomes one user turn of `tool_result` blocks (Anthropic
//! wants them at the start of the turn after the `tool_use`); an assistant's
//! `tool_calls` become `tool_use` blocks. `max_tokens` is required upstream:
//! the client's, else the gateway's cap, else [`DEFAULT_MAX_TOKENS`].

use serde_json::{Map, Value, json};

use crate::backend::UpstreamCall;
use crate::error::RequestError;

/// `max_tokens` for a chat client that set no cap (as LiteLLM and
/// agentgateway do).
pub(crate) const DEFAULT_MAX_TOKENS: u64 = 4096;

/// Thinking budgets for OpenAI's `reasoning_effort` (Anthropic's minimum is
/// 1,024 tokens).
fn thinking_budget(effort: &str) -> Option<u64> {
    match effort {
        "minimal" | "low" => Some(1024),
        "medium" => Some(2048),
        "high" => Some(4096),
        _ => None,
    }
}

/// The Messages body for chat call `call`, for upstream model `model`.
pub(crate) fn from_chat(call: &UpstreamCall, model: &str) -> Result<Value, RequestError> {
    let src = &call.body;
    let (system, turns) = conversation(src)?;
    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    let max_tokens = ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|k| src.get(*k).and_then(Value::as_u64))
        .or(call.injected_max_tokens)
        .unwrap_or(DEFAULT_MAX_TOKENS);
    out.insert("max_tokens".into(), json!(max_tokens));
    if !system.is_empty() {
        out.insert("system".into(), json!(system.join("\n\n")));
    }
    let turns: Vec<Value> = turns
        .into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    out.insert("messages".into(), Value::Array(turns));
    if call.stream {
        out.insert("stream".into(), json!(true));
    }
    settings(src, max_tokens, &mut out);
    tools(src, &mut out);
    Ok(Value::Object(out))
}

/// A turn of the conversation: its role and blocks.
type Turn = (String, Vec<Value>);

/// The system texts and the turns of a chat request's messages.
fn conversation(src: &Map<String, Value>) -> Result<(Vec<String>, Vec<Turn>), RequestError> {
    let mut system = Vec::new();
    let mut turns = Vec::new();
    let messages = src
        .get("messages")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    for (i, m) in messages.iter().enumerate() {
        let param = format!("messages[{i}]");
        match m.get("role").and_then(Value::as_str) {
            Some("system" | "developer") => system.push(text_of(m.get("content"))),
            Some("user") => push(&mut turns, "user", user_blocks(m.get("content"), &param)?),
            Some("assistant") => push(&mut turns, "assistant", assistant_blocks(m)),
            Some("tool") => {
                let id = m.get("tool_call_id").and_then(Value::as_str).unwrap_or("");
                let block = json!({"type": "tool_result", "tool_use_id": id,
                    "content": text_of(m.get("content"))});
                push(&mut turns, "user", vec![block]);
            }
            _ => {}
        }
    }
    system.retain(|s| !s.is_empty());
    Ok((system, turns))
}

/// Sampling, stop sequences, the user, thinking and the output format.
fn settings(src: &Map<String, Value>, max_tokens: u64, out: &mut Map<String, Value>) {
    for k in ["temperature", "top_p", "top_k"] {
        if let Some(v) = src.get(k).filter(|v| !v.is_null()) {
            out.insert(k.into(), v.clone());
        }
    }
    match src.get("stop") {
        Some(Value::String(s)) => {
            out.insert("stop_sequences".into(), json!([s]));
        }
        Some(Value::Array(a)) if !a.is_empty() => {
            out.insert("stop_sequences".into(), Value::Array(a.clone()));
        }
        _ => {}
    }
    if let Some(user) = src.get("user").and_then(Value::as_str) {
        out.insert("metadata".into(), json!({"user_id": user}));
    }
    if let Some(budget) = src
        .get("reasoning_effort")
        .and_then(Value::as_str)
        .and_then(thinking_budget)
        .filter(|b| *b < max_tokens)
    {
        out.insert(
            "thinking".into(),
            json!({"type": "enabled", "budget_tokens": budget}),
        );
    }
    if let Some(schema) = src
        .get("response_format")
        .filter(|f| f.get("type").and_then(Value::as_str) == Some("json_schema"))
        .and_then(|f| f.pointer("/json_schema/schema"))
    {
        out.insert(
            "output_config".into(),
            json!({"format": {"type": "json_schema", "schema": schema}}),
        );
    }
}

/// Append `blocks` to the conversation as `role`'s, merging a run of turns
/// of one role (tool results and the user text after them are one turn).
fn push(turns: &mut Vec<Turn>, role: &str, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some((last, content)) if last == role => content.extend(blocks),
        _ => turns.push((role.to_owned(), blocks)),
    }
}

/// The text of a chat content (a string or parts).
fn text_of(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn user_blocks(content: Option<&Value>, param: &str) -> Result<Vec<Value>, RequestError> {
    let parts = match content {
        Some(Value::String(s)) if s.is_empty() => return Ok(vec![]),
        Some(Value::String(s)) => return Ok(vec![json!({"type": "text", "text": s})]),
        Some(Value::Array(parts)) => parts,
        _ => return Ok(vec![]),
    };
    let mut blocks = Vec::new();
    for (j, p) in parts.iter().enumerate() {
        match p.get("type").and_then(Value::as_str) {
            Some("text") => {
                let t = p.get("text").and_then(Value::as_str).unwrap_or("");
                if !t.is_empty() {
                    blocks.push(json!({"type": "text", "text": t}));
                }
            }
            Some("image_url") => {
                let url = p
                    .pointer("/image_url/url")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                blocks.push(image(url, &format!("{param}.content[{j}]"))?);
            }
            _ => {
                return Err(RequestError::invalid(
                    format!(
                        "'{param}.content[{j}]' is a kind of content an Anthropic model cannot take."
                    ),
                    Some(&format!("{param}.content[{j}]")),
                ));
            }
        }
    }
    Ok(blocks)
}

/// An image part's URL as an image block: a data URL's bytes, or the URL.
fn image(url: &str, param: &str) -> Result<Value, RequestError> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (media, data) = rest.split_once(";base64,").ok_or_else(|| {
            RequestError::invalid(
                format!("'{param}' must be a base64 data URL or an http(s) URL."),
                Some(param),
            )
        })?;
        return Ok(
            json!({"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}),
        );
    }
    Ok(json!({"type": "image", "source": {"type": "url", "url": url}}))
}

fn assistant_blocks(m: &Value) -> Vec<Value> {
    let mut blocks = Vec::new();
    let text = text_of(m.get("content"));
    if !text.is_empty() {
        blocks.push(json!({"type": "text", "text": text}));
    }
    let calls = m.get("tool_calls").and_then(Value::as_array);
    for c in calls.into_iter().flatten() {
        let args = c
            .pointer("/function/arguments")
            .and_then(Value::as_str)
            .unwrap_or("");
        let input = match serde_json::from_str::<Value>(args) {
            Ok(v @ Value::Object(_)) => v,
            _ => json!({}),
        };
        blocks.push(json!({
            "type": "tool_use",
            "id": c.get("id").and_then(Value::as_str).unwrap_or(""),
            "name": c.pointer("/function/name").and_then(Value::as_str).unwrap_or(""),
            "input": input,
        }));
    }
    blocks
}

/// Function tools as custom tools, and the tool choice.
fn tools(src: &Map<String, Value>, out: &mut Map<String, Value>) {
    let listed = src.get("tools").and_then(Value::as_array);
    let tools: Vec<Value> = listed
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("function"))
        .map(|f| {
            let mut tool = Map::new();
            tool.insert("name".into(), f.get("name").cloned().unwrap_or_default());
            if let Some(d) = f.get("description") {
                tool.insert("description".into(), d.clone());
            }
            let schema = f
                .get("parameters")
                .filter(|p| p.is_object())
                .cloned()
                .unwrap_or_else(|| json!({"type": "object"}));
            tool.insert("input_schema".into(), schema);
            Value::Object(tool)
        })
        .collect();
    if tools.is_empty() {
        return;
    }
    out.insert("tools".into(), Value::Array(tools));
    let mut choice = match src.get("tool_choice") {
        Some(Value::String(s)) if s == "required" => json!({"type": "any"}),
        Some(Value::String(s)) if s == "none" => json!({"type": "none"}),
        Some(Value::Object(c)) => match c.get("function").and_then(|f| f.get("name")) {
            Some(name) => json!({"type": "tool", "name": name}),
            None => json!({"type": "auto"}),
        },
        _ => json!({"type": "auto"}),
    };
    if src.get("parallel_tool_calls") == Some(&Value::Bool(false)) && choice["type"] != "none" {
        choice["disable_parallel_tool_use"] = json!(true);
    }
    out.insert("tool_choice".into(), choice);
}
