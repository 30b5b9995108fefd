//! The mock's embeddings: OpenAI's `/v1/embeddings` and Ollama's
//! `/api/embed`. A vector is a deterministic function of its text (so
//! tests can compare), of `dimensions` length (default 8); usage counts
//! the words embedded.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};

use super::{Plan, Proto, Shared, count_or_refuse, error_body};

/// The vector for `text`: `dims` floats from a hash of it, in [-1, 1).
pub fn vector(text: &str, dims: usize) -> Vec<f32> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (0..dims)
        .map(|i| {
            h = h.rotate_left(7) ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            // 16 bits are exact in f32.
            #[allow(clippy::cast_precision_loss)]
            let x = (h & 0xffff) as f32 / 32_768.0 - 1.0;
            x
        })
        .collect()
}

fn texts(input: Option<&Value>) -> Vec<String> {
    match input {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) if items.iter().all(Value::is_u64) => {
            vec![serde_json::to_string(items).unwrap_or_default()]
        }
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect(),
        _ => vec![],
    }
}

pub(super) async fn embed(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
    proto: Proto,
) -> Response {
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, Json(error_body(proto, 400))).into_response();
    };
    if let Ok(mut last) = shared.last.lock() {
        *last = json!({"body": req, "embed": true});
    }
    let model = req
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("mock")
        .to_owned();
    let plan = Plan::from_model(&model);
    let texts = texts(req.get("input"));
    let words: u64 = texts
        .iter()
        .map(|t| t.split_whitespace().count() as u64)
        .sum();
    if let Some(refusal) = count_or_refuse(&shared, &model, &plan, proto, words) {
        return refusal;
    }
    match plan.fault.as_str() {
        "hang" => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return StatusCode::GATEWAY_TIMEOUT.into_response();
        }
        "garbage" => return (StatusCode::OK, "this is not json").into_response(),
        _ => {}
    }
    let dims = req
        .get("dimensions")
        .and_then(Value::as_u64)
        .map_or(8, |d| usize::try_from(d).unwrap_or(8));
    let vectors: Vec<Vec<f32>> = texts.iter().map(|t| vector(t, dims)).collect();
    let tokens = if plan.usage { words } else { 0 };
    if proto == Proto::Ollama {
        let mut b = json!({"model": model, "embeddings": vectors});
        if tokens > 0 {
            b["prompt_eval_count"] = tokens.into();
        }
        return Json(b).into_response();
    }
    let base64 = req.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(index, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    Json(json!({"object": "list", "data": data, "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}))
    .into_response()
}
