//! `/v1/responses`: the request's checks and its input bound (how it is
//! served is [`crate::responses`]; stored state, `previous_response_id` and
//! `item_reference`, is resolved by the gateway before admission).

use serde_json::{Map, Value};

use super::{
    Endpoint, IMAGE_TOKENS, MAX_TOKENS_LIMIT, MESSAGE_OVERHEAD, ProxyRequest, json_len, opt_bool,
    opt_int, opt_model, opt_num, wrong_type,
};
use crate::error::RequestError;

/// Parse and check a Responses request.
pub(super) fn parse(body: Map<String, Value>) -> Result<ProxyRequest, RequestError> {
    let model = opt_model(&body)?;
    let stream = opt_bool(&body, "stream")?.unwrap_or(false);
    opt_bool(&body, "store")?;
    opt_bool(&body, "parallel_tool_calls")?;
    if opt_bool(&body, "background")? == Some(true) {
        return Err(RequestError::invalid(
            "Background responses are not supported: send the request without 'background'.",
            Some("background"),
        ));
    }
    if body.get("conversation").is_some_and(|v| !v.is_null()) {
        return Err(RequestError::invalid(
            "'conversation' is not supported: continue with 'previous_response_id', or send the whole conversation in 'input'.",
            Some("conversation"),
        ));
    }
    match body.get("previous_response_id") {
        None | Some(Value::Null) => {}
        Some(Value::String(id)) if valid_id(id) => {}
        Some(_) => return Err(wrong_type("previous_response_id", "a response id")),
    }
    let max_tokens = opt_int(&body, "max_output_tokens", 1, MAX_TOKENS_LIMIT)?;
    opt_num(&body, "temperature", 0.0, 2.0)?;
    opt_num(&body, "top_p", 0.0, 1.0)?;
    match body.get("tools") {
        None | Some(Value::Null | Value::Array(_)) => {}
        Some(_) => return Err(wrong_type("tools", "an array")),
    }
    match body.get("metadata") {
        None | Some(Value::Null | Value::Object(_)) => {}
        Some(_) => return Err(wrong_type("metadata", "an object")),
    }
    let prompt_bound = prompt_bound(&body)?;
    Ok(ProxyRequest {
        endpoint: Endpoint::Responses,
        body,
        model,
        stream,
        include_usage: false,
        max_tokens,
        choices: 1,
        prompt_bound,
    })
}

/// Whether `id` may be a response or item id: short and printable ASCII.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic())
}

/// An upper bound of the prompt's tokens: instructions, input (with any
/// stored conversation already in it), tools and the text format.
pub(crate) fn prompt_bound(body: &Map<String, Value>) -> Result<u64, RequestError> {
    let instructions = match body.get("instructions") {
        None | Some(Value::Null) => 0,
        Some(Value::String(s)) => s.len() as u64 + MESSAGE_OVERHEAD,
        Some(_) => return Err(wrong_type("instructions", "a string")),
    };
    Ok(MESSAGE_OVERHEAD
        + instructions
        + input_bound(body.get("input"))?
        + ["tools", "text"]
            .iter()
            .filter_map(|k| body.get(*k))
            .map(json_len)
            .sum::<u64>())
}

/// The input's bound, and the items' shape checked as far as every
/// upstream needs it.
pub(crate) fn input_bound(input: Option<&Value>) -> Result<u64, RequestError> {
    let items = match input {
        None | Some(Value::Null) => {
            return Err(RequestError::invalid(
                "Missing required parameter: 'input'.",
                Some("input"),
            ));
        }
        Some(Value::String(s)) => return Ok(s.len() as u64 + MESSAGE_OVERHEAD),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(wrong_type("input", "a string or an array of items")),
    };
    let mut bound = 0;
    for (i, item) in items.iter().enumerate() {
        let param = format!("input[{i}]");
        let Value::Object(item) = item else {
            return Err(wrong_type(&param, "an object"));
        };
        if item.get("type").and_then(Value::as_str) == Some("item_reference")
            && !item.get("id").and_then(Value::as_str).is_some_and(valid_id)
        {
            return Err(wrong_type(&format!("{param}.id"), "an item id"));
        }
        bound += MESSAGE_OVERHEAD;
        bound += match item.get("content") {
            Some(Value::String(s)) => s.len() as u64,
            Some(Value::Array(parts)) => parts.iter().map(part_bound).sum(),
            _ => json_len(&Value::Object(item.clone())),
        };
    }
    Ok(bound)
}

fn part_bound(part: &Value) -> u64 {
    match (
        part.get("type").and_then(Value::as_str),
        part.get("text").and_then(Value::as_str),
    ) {
        (Some("input_image"), _) => IMAGE_TOKENS,
        (_, Some(t)) => t.len() as u64,
        _ => json_len(part),
    }
}
