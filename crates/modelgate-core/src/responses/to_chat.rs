//! A Responses request as a chat completion request (the bridge's way in).
//!
//! `instructions` become the first system message; input items become
//! messages (consecutive `function_call` items join one assistant message,
//! as parallel tool calls); function tools, `tool_choice`, `text.format`
//! and the sampling settings map to their chat spelling. Reasoning items
//! from earlier turns are dropped: chat has no place for them. Function
//! tools grouped in a `namespace` (as Codex sends them) join the others.
//! Hosted tools (`web_search`, `file_search`, ...) run at the provider,
//! which a chat backend is not: they are left out and named in the
//! answer's `x-modelgate-ignored-tools` header, so that clients which
//! merely offer them (Codex offers web search) still work. Inputs chat
//! cannot express (file inputs, hosted tools' items) are a 400 naming them.

use serde_json::{Map, Value, json};

use crate::error::RequestError;
use crate::request::wrong_type;

/// Settings that mean the same in both APIs.
const SAME: &[&str] = &[
    "temperature",
    "top_p",
    "parallel_tool_calls",
    "user",
    "stream",
    "seed",
    "stop",
];

/// A Responses request as chat.
#[derive(Debug)]
pub(crate) struct Bridged {
    /// The chat request.
    pub(crate) chat: Map<String, Value>,
    /// Types of the tools left out (see the module docs).
    pub(crate) ignored_tools: Vec<String>,
}

/// The chat request for Responses request `body`.
pub(crate) fn to_chat(body: &Map<String, Value>) -> Result<Bridged, RequestError> {
    let mut chat = Map::new();
    for k in SAME {
        if let Some(v) = body.get(*k).filter(|v| !v.is_null()) {
            chat.insert((*k).into(), v.clone());
        }
    }
    if let Some(max) = body.get("max_output_tokens").filter(|v| !v.is_null()) {
        chat.insert("max_tokens".into(), max.clone());
    }
    let mut messages = Vec::new();
    if let Some(Value::String(s)) = body.get("instructions") {
        messages.push(json!({"role": "system", "content": s}));
    }
    match body.get("input") {
        Some(Value::String(s)) => messages.push(json!({"role": "user", "content": s})),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                add_item(&mut messages, item, &format!("input[{i}]"))?;
            }
        }
        _ => {}
    }
    if messages.is_empty() {
        return Err(RequestError::invalid(
            "'input' holds no message the model could answer.",
            Some("input"),
        ));
    }
    chat.insert("messages".into(), Value::Array(messages));
    let mut ignored_tools = Vec::new();
    if let Some(Value::Array(offered)) = body.get("tools") {
        let mut out = Vec::new();
        tools(offered, "tools", &mut out, &mut ignored_tools)?;
        if !out.is_empty() {
            chat.insert("tools".into(), Value::Array(out));
        }
    }
    if let Some(choice) = tool_choice(body.get("tool_choice"))? {
        chat.insert("tool_choice".into(), choice);
    }
    if let Some(format) = response_format(body.get("text"))? {
        chat.insert("response_format".into(), format);
    }
    Ok(Bridged {
        chat,
        ignored_tools,
    })
}

fn add_item(messages: &mut Vec<Value>, item: &Value, param: &str) -> Result<(), RequestError> {
    let kind = item
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("message");
    match kind {
        "message" => messages.push(message(item, param)?),
        "function_call" => {
            let call = json!({
                "id": str_field(item, "call_id", param)?,
                "type": "function",
                "function": {
                    "name": str_field(item, "name", param)?,
                    "arguments": str_field(item, "arguments", param)?,
                },
            });
            // Calls made in one turn belong to one assistant message.
            match messages.last_mut() {
                Some(Value::Object(last))
                    if last.get("role").and_then(Value::as_str) == Some("assistant") =>
                {
                    if let Value::Array(calls) = last.entry("tool_calls").or_insert(json!([])) {
                        calls.push(call);
                    }
                }
                _ => messages
                    .push(json!({"role": "assistant", "content": null, "tool_calls": [call]})),
            }
        }
        "function_call_output" => {
            let output = match item.get("output") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(parts)) => text_of(parts, param)?,
                _ => return Err(wrong_type(&format!("{param}.output"), "a string")),
            };
            messages.push(json!({
                "role": "tool",
                "tool_call_id": str_field(item, "call_id", param)?,
                "content": output,
            }));
        }
        "reasoning" => {}
        other => {
            return Err(RequestError::invalid(
                format!(
                    "'{param}' is a '{other}' item, which this model's backend cannot take (it is served through chat completions)."
                ),
                Some(&format!("{param}.type")),
            ));
        }
    }
    Ok(())
}

fn message(item: &Value, param: &str) -> Result<Value, RequestError> {
    let role = match item.get("role").and_then(Value::as_str) {
        Some(r @ ("user" | "assistant" | "system")) => r,
        // Chat templates of open models know `system`, rarely `developer`.
        Some("developer") => "system",
        _ => {
            return Err(RequestError::invalid(
                format!("'{param}.role' must be one of user, assistant, system, developer."),
                Some(&format!("{param}.role")),
            ));
        }
    };
    let content = match item.get("content") {
        Some(Value::String(s)) => Value::String(s.clone()),
        Some(Value::Array(parts)) if role == "user" => user_parts(parts, param)?,
        Some(Value::Array(parts)) => Value::String(text_of(parts, param)?),
        _ => {
            return Err(wrong_type(
                &format!("{param}.content"),
                "a string or an array",
            ));
        }
    };
    Ok(json!({"role": role, "content": content}))
}

/// A user message's parts: text and images.
fn user_parts(parts: &[Value], param: &str) -> Result<Value, RequestError> {
    let mut out = Vec::with_capacity(parts.len());
    for (i, p) in parts.iter().enumerate() {
        let param = format!("{param}.content[{i}]");
        match p.get("type").and_then(Value::as_str) {
            Some("input_text" | "output_text" | "text") => {
                out.push(json!({"type": "text", "text": str_field(p, "text", &param)?}));
            }
            Some("input_image") => {
                let Some(url) = p.get("image_url").and_then(Value::as_str) else {
                    return Err(RequestError::invalid(
                        format!("'{param}.image_url' is required (file ids are not supported)."),
                        Some(&format!("{param}.image_url")),
                    ));
                };
                let detail = p.get("detail").and_then(Value::as_str).unwrap_or("auto");
                out.push(json!({"type": "image_url", "image_url": {"url": url, "detail": detail}}));
            }
            _ => return Err(unsupported_part(&param)),
        }
    }
    Ok(Value::Array(out))
}

/// The text of parts that may only hold text (assistant, system, tool).
fn text_of(parts: &[Value], param: &str) -> Result<String, RequestError> {
    let mut text = String::new();
    for (i, p) in parts.iter().enumerate() {
        let param = format!("{param}.content[{i}]");
        match p.get("type").and_then(Value::as_str) {
            Some("input_text" | "output_text" | "text") => {
                text.push_str(str_field(p, "text", &param)?);
            }
            Some("refusal") => text.push_str(str_field(p, "refusal", &param)?),
            _ => return Err(unsupported_part(&param)),
        }
    }
    Ok(text)
}

fn unsupported_part(param: &str) -> RequestError {
    RequestError::invalid(
        format!("'{param}' is a kind of content this model's backend cannot take."),
        Some(&format!("{param}.type")),
    )
}

fn str_field<'a>(v: &'a Value, k: &str, param: &str) -> Result<&'a str, RequestError> {
    v.get(k)
        .and_then(Value::as_str)
        .ok_or_else(|| wrong_type(&format!("{param}.{k}"), "a string"))
}

/// Function tools in chat's shape (into `out`); the types of hosted tools
/// into `ignored`.
fn tools(
    offered: &[Value],
    param: &str,
    out: &mut Vec<Value>,
    ignored: &mut Vec<String>,
) -> Result<(), RequestError> {
    for (i, t) in offered.iter().enumerate() {
        let param = format!("{param}[{i}]");
        match t.get("type").and_then(Value::as_str) {
            Some("function") => {}
            Some("namespace") => {
                let inner = t
                    .get("tools")
                    .and_then(Value::as_array)
                    .ok_or_else(|| wrong_type(&format!("{param}.tools"), "an array"))?;
                tools(inner, &format!("{param}.tools"), out, ignored)?;
                continue;
            }
            Some(other) => {
                if !ignored.iter().any(|k| k == other) {
                    ignored.push(other.to_owned());
                }
                continue;
            }
            None => return Err(wrong_type(&format!("{param}.type"), "a string")),
        }
        let mut f = Map::new();
        f.insert("name".into(), json!(str_field(t, "name", &param)?));
        for k in ["description", "parameters", "strict"] {
            if let Some(v) = t.get(k).filter(|v| !v.is_null()) {
                f.insert(k.into(), v.clone());
            }
        }
        out.push(json!({"type": "function", "function": f}));
    }
    Ok(())
}

fn tool_choice(choice: Option<&Value>) -> Result<Option<Value>, RequestError> {
    match choice {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if matches!(s.as_str(), "auto" | "none" | "required") => {
            Ok(Some(json!(s)))
        }
        Some(Value::Object(o)) if o.get("type").and_then(Value::as_str) == Some("function") => {
            let name = o
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| wrong_type("tool_choice.name", "a string"))?;
            Ok(Some(
                json!({"type": "function", "function": {"name": name}}),
            ))
        }
        Some(_) => Err(RequestError::invalid(
            "'tool_choice' must be 'auto', 'none', 'required' or a function.",
            Some("tool_choice"),
        )),
    }
}

fn response_format(text: Option<&Value>) -> Result<Option<Value>, RequestError> {
    let Some(format) = text.and_then(|t| t.get("format")).filter(|f| !f.is_null()) else {
        return Ok(None);
    };
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "json_object"}))),
        Some("json_schema") => {
            let mut schema = Map::new();
            schema.insert(
                "name".into(),
                json!(str_field(format, "name", "text.format")?),
            );
            for k in ["schema", "strict", "description"] {
                if let Some(v) = format.get(k).filter(|v| !v.is_null()) {
                    schema.insert(k.into(), v.clone());
                }
            }
            Ok(Some(json!({"type": "json_schema", "json_schema": schema})))
        }
        _ => Err(RequestError::invalid(
            "'text.format.type' must be 'text', 'json_object' or 'json_schema'.",
            Some("text.format.type"),
        )),
    }
}
