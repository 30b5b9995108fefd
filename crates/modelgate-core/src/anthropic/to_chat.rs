//! A Messages request as a chat completion request.
//!
//! `system` becomes the first message; a user turn's `tool_result` blocks
//! become `tool` messages ahead of the rest of the turn (OpenAI wants them
//! right after the assistant's `tool_calls`); an assistant turn's `tool_use`
//! blocks become its `tool_calls`. Thinking blocks are the model's own
//! earlier output and are not replayed to a chat model. What a chat model
//! cannot take (a PDF, a server tool's result, a block type this gateway does
//! not know) is refused with a 400 that names the block: the conversation
//! would otherwise reach the model changed without anyone knowing. Server
//! tools (`web_search_...`) are left out and named in the answer's
//! `x-modelgate-ignored-tools` header, as the Responses bridge does.

use serde_json::{Map, Value, json};

use crate::error::RequestError;
use crate::request::wrong_type;

/// A Messages request translated.
#[derive(Debug)]
pub(crate) struct Translated {
    /// The chat completion request (without `model`: the deployment's).
    pub(crate) chat: Map<String, Value>,
    /// Server tools the translation left out.
    pub(crate) ignored_tools: Vec<String>,
}

fn invalid(message: String, param: &str) -> RequestError {
    RequestError::invalid(message, Some(param))
}

/// Translate `body` (checked by `request::messages`).
pub(crate) fn to_chat(body: &Map<String, Value>) -> Result<Translated, RequestError> {
    let mut messages = Vec::new();
    if let Some(system) = system_text(body.get("system"), "system")? {
        messages.push(json!({"role": "system", "content": system}));
    }
    let turns = body
        .get("messages")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let mut open_uses: Vec<String> = Vec::new();
    let mut spoken = false;
    for (i, turn) in turns.iter().enumerate() {
        let param = format!("messages[{i}]");
        let role = turn.get("role").and_then(Value::as_str);
        match (role, spoken) {
            (Some("user"), _) => {
                user_turn(turn.get("content"), &param, &mut open_uses, &mut messages)?
            }
            (Some("assistant"), false) => {
                return Err(invalid(
                    format!("{param}.role: the first message must use the \"user\" role"),
                    &format!("{param}.role"),
                ));
            }
            (Some("assistant"), true) => {
                if !open_uses.is_empty() {
                    return Err(unanswered(&open_uses, &param));
                }
                messages.push(assistant_turn(turn.get("content"), &param, &mut open_uses)?);
            }
            // Instructions updated mid-conversation, where they were given.
            (Some("system"), _) => {
                if let Some(text) = system_text(turn.get("content"), &format!("{param}.content"))? {
                    messages.push(json!({"role": "system", "content": text}));
                }
                continue;
            }
            _ => {
                return Err(invalid(
                    format!("{param}.role: must be \"user\", \"assistant\" or \"system\""),
                    &format!("{param}.role"),
                ));
            }
        }
        spoken = true;
    }
    if !spoken {
        return Err(invalid(
            "messages: at least one user message is required".into(),
            "messages",
        ));
    }
    // A last assistant turn with open tool uses is a prefill the model
    // continues; otherwise every tool use must have been answered.
    if !open_uses.is_empty()
        && turns.last().and_then(|t| t.get("role")) != Some(&json!("assistant"))
    {
        return Err(unanswered(&open_uses, "messages"));
    }
    let mut chat = Map::new();
    chat.insert("messages".into(), Value::Array(messages));
    copy_settings(body, &mut chat)?;
    let ignored_tools = tools(body, &mut chat)?;
    Ok(Translated {
        chat,
        ignored_tools,
    })
}

fn unanswered(ids: &[String], param: &str) -> RequestError {
    invalid(
        format!(
            "{param}: tool_use ids were found without tool_result blocks immediately after: {}. Each tool_use block must have a corresponding tool_result block in the next message.",
            ids.join(", ")
        ),
        param,
    )
}

/// System instructions as one string (text blocks joined by a blank line).
fn system_text(system: Option<&Value>, param: &str) -> Result<Option<String>, RequestError> {
    match system {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Array(blocks)) => {
            let mut texts = Vec::new();
            for (j, b) in blocks.iter().enumerate() {
                let param = format!("{param}[{j}]");
                match (b.get("type").and_then(Value::as_str), b.get("text")) {
                    (Some("text"), Some(Value::String(t))) => texts.push(t.as_str()),
                    _ => return Err(wrong_type(&param, "a text block")),
                }
            }
            Ok((!texts.is_empty()).then(|| texts.join("\n\n")))
        }
        Some(_) => Err(wrong_type(param, "a string or an array of text blocks")),
    }
}

/// The blocks of a turn (a string is one text block).
fn blocks<'a>(content: Option<&'a Value>, param: &str) -> Result<Vec<&'a Value>, RequestError> {
    match content {
        Some(Value::String(_)) => Ok(vec![content.unwrap_or(&Value::Null)]),
        Some(Value::Array(a)) => Ok(a.iter().collect()),
        _ => Err(wrong_type(
            &format!("{param}.content"),
            "a string or an array of content blocks",
        )),
    }
}

fn block_type<'a>(b: &'a Value, param: &str) -> Result<&'a str, RequestError> {
    b.get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| wrong_type(&format!("{param}.type"), "a string"))
}

fn str_field<'a>(b: &'a Value, k: &str, param: &str) -> Result<&'a str, RequestError> {
    b.get(k)
        .and_then(Value::as_str)
        .ok_or_else(|| wrong_type(&format!("{param}.{k}"), "a string"))
}

/// A user turn: its tool results as `tool` messages, then the rest.
fn user_turn(
    content: Option<&Value>,
    param: &str,
    open_uses: &mut Vec<String>,
    out: &mut Vec<Value>,
) -> Result<(), RequestError> {
    if let Some(Value::String(s)) = content {
        if !open_uses.is_empty() {
            return Err(unanswered(open_uses, param));
        }
        out.push(json!({"role": "user", "content": s}));
        return Ok(());
    }
    let mut parts = Vec::new();
    let answers_uses = !open_uses.is_empty();
    for (j, b) in blocks(content, param)?.into_iter().enumerate() {
        let param = format!("{param}.content[{j}]");
        match block_type(b, &param)? {
            "tool_result" => {
                let id = str_field(b, "tool_use_id", &param)?;
                let Some(at) = open_uses.iter().position(|u| u == id) else {
                    return Err(invalid(
                        format!(
                            "{param}.tool_use_id: unexpected tool_use_id found in tool_result blocks: {id}. Each tool_result block must have a corresponding tool_use block in the previous message."
                        ),
                        &format!("{param}.tool_use_id"),
                    ));
                };
                open_uses.remove(at);
                let text = tool_result_text(b, &param, &mut parts)?;
                out.push(json!({"role": "tool", "tool_call_id": id, "content": text}));
            }
            _ => parts.push(user_part(b, &param)?),
        }
    }
    if answers_uses && !open_uses.is_empty() {
        return Err(unanswered(open_uses, param));
    }
    let parts: Vec<Value> = parts.into_iter().flatten().collect();
    if !parts.is_empty() {
        out.push(json!({"role": "user", "content": parts}));
    }
    Ok(())
}

/// A tool result's content as text; its images go to the user message
/// that follows the tool messages (`parts`).
fn tool_result_text(
    b: &Value,
    param: &str,
    parts: &mut Vec<Option<Value>>,
) -> Result<String, RequestError> {
    let mut text = match b.get("content") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(inner)) => {
            let mut texts = Vec::new();
            for (k, ib) in inner.iter().enumerate() {
                let param = format!("{param}.content[{k}]");
                match block_type(ib, &param)? {
                    "text" => texts.push(str_field(ib, "text", &param)?.to_owned()),
                    _ => parts.push(user_part(ib, &param)?),
                }
            }
            texts.join("\n")
        }
        Some(_) => {
            return Err(wrong_type(
                &format!("{param}.content"),
                "a string or an array of content blocks",
            ));
        }
    };
    if b.get("is_error") == Some(&Value::Bool(true)) {
        text = format!("Error: {text}");
    }
    Ok(text)
}

/// A user block as a chat content part (`None`: nothing to send).
fn user_part(b: &Value, param: &str) -> Result<Option<Value>, RequestError> {
    match block_type(b, param)? {
        "text" => {
            let t = str_field(b, "text", param)?;
            Ok((!t.is_empty()).then(|| json!({"type": "text", "text": t})))
        }
        "image" => image_part(b, param).map(Some),
        "document" => document_part(b, param).map(Some),
        "tool_use" | "thinking" | "redacted_thinking" => Err(invalid(
            format!(
                "{param}: a {} block belongs in an assistant message",
                block_type(b, param)?
            ),
            &format!("{param}.type"),
        )),
        other => Err(cannot_carry(other, param)),
    }
}

fn cannot_carry(kind: &str, param: &str) -> RequestError {
    invalid(
        format!(
            "{param}.type: content blocks of type \"{kind}\" cannot be sent to this model's backend"
        ),
        &format!("{param}.type"),
    )
}

fn image_part(b: &Value, param: &str) -> Result<Value, RequestError> {
    let source = b.get("source").unwrap_or(&Value::Null);
    let sparam = format!("{param}.source");
    let url = match source.get("type").and_then(Value::as_str) {
        Some("base64") => {
            let media = str_field(source, "media_type", &sparam)?;
            if !["image/jpeg", "image/png", "image/gif", "image/webp"].contains(&media) {
                return Err(invalid(
                    format!(
                        "{sparam}.media_type: must be one of image/jpeg, image/png, image/gif, image/webp"
                    ),
                    &format!("{sparam}.media_type"),
                ));
            }
            format!(
                "data:{media};base64,{}",
                str_field(source, "data", &sparam)?
            )
        }
        Some("url") => str_field(source, "url", &sparam)?.to_owned(),
        _ => {
            return Err(invalid(
                format!(
                    "{sparam}.type: must be \"base64\" or \"url\" (file ids are not supported)"
                ),
                &format!("{sparam}.type"),
            ));
        }
    };
    Ok(json!({"type": "image_url", "image_url": {"url": url}}))
}

/// A plain-text document is sent as text; a PDF (or other binary) cannot
/// be read by a chat model.
fn document_part(b: &Value, param: &str) -> Result<Value, RequestError> {
    let source = b.get("source").unwrap_or(&Value::Null);
    match source.get("type").and_then(Value::as_str) {
        Some("text") => {
            let data = str_field(source, "data", &format!("{param}.source"))?;
            let text = match b.get("title").and_then(Value::as_str) {
                Some(title) => format!("{title}\n\n{data}"),
                None => data.to_owned(),
            };
            Ok(json!({"type": "text", "text": text}))
        }
        _ => Err(invalid(
            format!(
                "{param}.source: this model's backend reads only plain-text documents (source type \"text\")"
            ),
            &format!("{param}.source"),
        )),
    }
}

/// An assistant turn as one chat message.
fn assistant_turn(
    content: Option<&Value>,
    param: &str,
    open_uses: &mut Vec<String>,
) -> Result<Value, RequestError> {
    if let Some(Value::String(s)) = content {
        return Ok(json!({"role": "assistant", "content": s}));
    }
    let mut text = String::new();
    let mut calls = Vec::new();
    for (j, b) in blocks(content, param)?.into_iter().enumerate() {
        let param = format!("{param}.content[{j}]");
        match block_type(b, &param)? {
            "text" => text.push_str(str_field(b, "text", &param)?),
            "tool_use" => {
                let id = str_field(b, "id", &param)?;
                let name = str_field(b, "name", &param)?;
                let input = b.get("input").cloned().unwrap_or_else(|| json!({}));
                open_uses.push(id.to_owned());
                calls.push(json!({
                    "id": id,
                    "type": "function",
                    "function": {"name": name, "arguments": input.to_string()},
                }));
            }
            "thinking" | "redacted_thinking" => {}
            other => return Err(cannot_carry(other, &param)),
        }
    }
    let mut m = Map::new();
    m.insert("role".into(), json!("assistant"));
    let has_text = !text.is_empty();
    m.insert(
        "content".into(),
        if has_text || calls.is_empty() {
            json!(text)
        } else {
            Value::Null
        },
    );
    if !calls.is_empty() {
        m.insert("tool_calls".into(), Value::Array(calls));
    }
    Ok(Value::Object(m))
}

/// Sampling, stop sequences, streaming, the user and the output format.
fn copy_settings(
    body: &Map<String, Value>,
    chat: &mut Map<String, Value>,
) -> Result<(), RequestError> {
    for k in ["max_tokens", "temperature", "top_p", "top_k", "stream"] {
        if let Some(v) = body.get(k).filter(|v| !v.is_null()) {
            chat.insert(k.into(), v.clone());
        }
    }
    if let Some(Value::Array(stops)) = body.get("stop_sequences")
        && !stops.is_empty()
    {
        chat.insert("stop".into(), Value::Array(stops.clone()));
    }
    if let Some(user) = body
        .get("metadata")
        .and_then(|m| m.get("user_id"))
        .and_then(Value::as_str)
    {
        chat.insert("user".into(), json!(user));
    }
    if let Some(format) = body.get("output_config").and_then(|c| c.get("format")) {
        match format.get("type").and_then(Value::as_str) {
            Some("json_schema") => {
                let schema = format.get("schema").cloned().unwrap_or_else(|| json!({}));
                chat.insert(
                    "response_format".into(),
                    json!({"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}),
                );
            }
            _ => {
                return Err(wrong_type("output_config.format.type", "\"json_schema\""));
            }
        }
    }
    Ok(())
}

/// Custom tools as functions, and `tool_choice`; the server tools left out.
fn tools(
    body: &Map<String, Value>,
    chat: &mut Map<String, Value>,
) -> Result<Vec<String>, RequestError> {
    let mut functions = Vec::new();
    let mut ignored = Vec::new();
    let listed = body.get("tools").and_then(Value::as_array);
    for (i, t) in listed.into_iter().flatten().enumerate() {
        let param = format!("tools[{i}]");
        let kind = t.get("type").and_then(Value::as_str);
        if kind.is_some_and(|k| k != "custom") {
            ignored.push(
                t.get("name")
                    .and_then(Value::as_str)
                    .or(kind)
                    .unwrap_or("tool")
                    .to_owned(),
            );
            continue;
        }
        let name = str_field(t, "name", &param)?;
        if name.is_empty() {
            return Err(invalid(
                format!("{param}.name: must not be empty"),
                &format!("{param}.name"),
            ));
        }
        let mut schema = match t.get("input_schema") {
            Some(Value::Object(s)) => s.clone(),
            _ => {
                return Err(wrong_type(
                    &format!("{param}.input_schema"),
                    "a JSON Schema object",
                ));
            }
        };
        schema.entry("type").or_insert_with(|| json!("object"));
        let mut function = Map::new();
        function.insert("name".into(), json!(name));
        if let Some(d) = t.get("description").and_then(Value::as_str) {
            function.insert("description".into(), json!(d));
        }
        function.insert("parameters".into(), Value::Object(schema));
        functions.push(json!({"type": "function", "function": function}));
    }
    let choice = body.get("tool_choice").filter(|c| !c.is_null());
    if !functions.is_empty() {
        chat.insert("tools".into(), Value::Array(functions));
        if let Some(c) = choice {
            tool_choice(c, chat)?;
        }
    }
    Ok(ignored)
}

fn tool_choice(c: &Value, chat: &mut Map<String, Value>) -> Result<(), RequestError> {
    let choice = match c.get("type").and_then(Value::as_str) {
        Some("auto") => json!("auto"),
        Some("any") => json!("required"),
        Some("none") => json!("none"),
        Some("tool") => {
            let name = str_field(c, "name", "tool_choice")?;
            json!({"type": "function", "function": {"name": name}})
        }
        _ => {
            return Err(wrong_type(
                "tool_choice.type",
                "one of \"auto\", \"any\", \"tool\", \"none\"",
            ));
        }
    };
    chat.insert("tool_choice".into(), choice);
    if c.get("disable_parallel_tool_use") == Some(&Value::Bool(true)) {
        chat.insert("parallel_tool_calls".into(), Value::Bool(false));
    }
    Ok(())
}
