//! Ollama's native `/api/embed`, transcoded to and from OpenAI's
//! `/v1/embeddings` (the OpenAI-compatible backends forward the request as
//! it is).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::{UpstreamCall, Usage};
use crate::error::{RequestError, UpstreamError};
use crate::request::ProxyRequest;

/// Whether Ollama can take the request: it embeds text only.
pub(crate) fn ollama_supports(req: &ProxyRequest) -> Result<(), RequestError> {
    let text = match req.body.get("input") {
        Some(Value::String(_)) => true,
        Some(Value::Array(items)) => items.iter().all(Value::is_string),
        _ => false,
    };
    if text {
        return Ok(());
    }
    Err(RequestError::invalid(
        "This model's backend (Ollama) embeds text only: send 'input' as a string or an array of strings, not token ids.",
        Some("input"),
    ))
}

/// The body for Ollama's `/api/embed`.
pub(crate) fn ollama_body(call: &UpstreamCall, model: &str) -> Value {
    let mut out = Map::new();
    out.insert("model".into(), Value::String(model.to_owned()));
    for k in ["input", "dimensions"] {
        if let Some(v) = call.body.get(k).filter(|v| !v.is_null()) {
            out.insert(k.into(), v.clone());
        }
    }
    Value::Object(out)
}

/// Ollama's `/api/embed` answer as OpenAI's, vectors as the client asked
/// (`base64`: the little-endian float32 bytes, as the SDKs decode them).
/// A missing or zero `prompt_eval_count` is no usage (it is estimated).
pub(crate) fn from_ollama(
    call: &UpstreamCall,
    body: &[u8],
) -> Result<(Bytes, Option<Usage>), UpstreamError> {
    let bad = |detail: &str| UpstreamError::BadResponse {
        status: 0,
        detail: format!("Ollama embed answer: {detail}"),
    };
    let v: Value = serde_json::from_slice(body).map_err(|e| bad(&e.to_string()))?;
    let vectors = v
        .get("embeddings")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("no 'embeddings'"))?;
    let base64 = call.body.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let mut data = Vec::with_capacity(vectors.len());
    for (index, vector) in vectors.iter().enumerate() {
        let floats = vector
            .as_array()
            .ok_or_else(|| bad("an embedding is not an array"))?;
        let embedding = if base64 {
            let mut bytes = Vec::with_capacity(floats.len() * 4);
            for f in floats {
                // Narrowing to float32 is the format's definition.
                #[allow(clippy::cast_possible_truncation)]
                let x = f
                    .as_f64()
                    .ok_or_else(|| bad("a non-number in an embedding"))?
                    as f32;
                bytes.extend_from_slice(&x.to_le_bytes());
            }
            Value::String(STANDARD.encode(bytes))
        } else {
            Value::Array(floats.clone())
        };
        data.push(json!({"object": "embedding", "index": index, "embedding": embedding}));
    }
    let tokens = v
        .get("prompt_eval_count")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let usage = (tokens > 0).then(|| Usage::reported(tokens, 0));
    let answer = json!({
        "object": "list",
        "data": data,
        "model": call.public_model,
        "usage": {"prompt_tokens": tokens.max(0), "total_tokens": tokens.max(0)},
    });
    Ok((Bytes::from(answer.to_string()), usage))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{self, Endpoint};

    fn parsed(body: &str) -> ProxyRequest {
        request::parse(Endpoint::Embeddings, body.as_bytes()).unwrap()
    }

    #[test]
    fn ollama_takes_text_only() {
        assert!(ollama_supports(&parsed(r#"{"input":["a","b"]}"#)).is_ok());
        let ids = ollama_supports(&parsed(r#"{"input":[1,2]}"#));
        assert!(matches!(ids, Err(RequestError::Invalid { param: Some(p), .. }) if p == "input"));
    }

    fn call(format: Option<&str>) -> UpstreamCall {
        let mut body = Map::new();
        if let Some(f) = format {
            body.insert("encoding_format".into(), json!(f));
        }
        UpstreamCall {
            endpoint: Endpoint::Embeddings,
            body,
            public_model: "emb".into(),
            request_id: "req_1".into(),
            stream: false,
            client_include_usage: false,
            upstream_include_usage: false,
            injected_max_tokens: None,
            anthropic_headers: Vec::new(),
        }
    }

    #[test]
    fn ollama_answers_become_openai_lists() {
        let raw =
            br#"{"model":"nomic","embeddings":[[0.5,-1.0],[0.25,2.0]],"prompt_eval_count":7}"#;
        let (body, usage) = from_ollama(&call(None), raw).unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["data"][1]["embedding"], json!([0.25, 2.0]));
        assert_eq!(v["data"][1]["index"], 1);
        assert_eq!(v["model"], "emb");
        assert_eq!(usage, Some(Usage::reported(7, 0)));

        let (body, _) = from_ollama(&call(Some("base64")), raw).unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        let bytes = STANDARD
            .decode(v["data"][0]["embedding"].as_str().unwrap())
            .unwrap();
        let floats: Vec<f32> = bytes
            .chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(floats, [0.5, -1.0]);
    }

    #[test]
    fn ollama_without_a_count_is_estimated() {
        let (_, usage) = from_ollama(&call(None), br#"{"embeddings":[[1.0]]}"#).unwrap();
        assert_eq!(usage, None);
        assert!(from_ollama(&call(None), br#"{"error":"x"}"#).is_err());
    }
}
