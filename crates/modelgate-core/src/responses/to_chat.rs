//! A Responses request as a chat completion request (the bridge's way in).
//!
//! `instructions` become the first system message; input items become
//! messages (consecutive `function_call` items join one assistant message,
//! as parallel tool calls); function tools, `tool_choice`, `text.format`
//! and the sampling settings map to their chat spelling. Reasoning items
//! from earlier turns are dropped: chat has no place for them. What chat
//! cannot express (hosted tools, file inputs) is a 400 naming it.

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

/// The chat request for Responses request `body`.
pub(crate) fn to_chat(body: &Map<String, Value>) -> Result<Map<String, Value>, RequestError> {
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
    if let Some(tools) = tools(body.get("tools"))? {
        chat.insert("tools".into(), tools);
    }
    if let Some(choice) = tool_choice(body.get("tool_choice"))? {
        chat.insert("tool_choice".into(), choice);
    }
    if let Some(format) = response_format(body.get("text"))? {
        chat.insert("response_format".into(), format);
    }
    Ok(chat)
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

/// Function tools in chat's shape; any other tool type is refused.
fn tools(tools: Option<&Value>) -> Result<Option<Value>, RequestError> {
    let Some(Value::Array(tools)) = tools else {
        return Ok(None);
    };
    if tools.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(tools.len());
    for (i, t) in tools.iter().enumerate() {
        let param = format!("tools[{i}]");
        match t.get("type").and_then(Value::as_str) {
            Some("function") => {}
            other => {
                return Err(RequestError::invalid(
                    format!(
                        "'{param}' is a '{}' tool: this model's backend takes function tools only.",
                        other.unwrap_or("untyped")
                    ),
                    Some(&format!("{param}.type")),
                ));
            }
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
    Ok(Some(Value::Array(out)))
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
