//! The MCP gateway's answers, in the client's era: JSON-RPC with the
//! status the era gives it, a forwarded answer under the client's id
//! (whole, or as the events that came before it), a streamed call, the
//! 202 for a notification; and what the gateway says it offers.

use bytes::Bytes;
use http::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, StatusCode};
use serde_json::{Value, json};

use super::mcp_upstream::{Answer, Failure};
use super::{Body, Response, ResponseStream, json_response};
use crate::mcp::{jsonrpc, modern};
use crate::ports::Ports;

/// What the gateway offers a client: the servers' tools, prompts,
/// resources and completions, and logging; with a standing stream (the
/// handshake era's `GET`), subscriptions and notifications of changes.
pub(super) fn capabilities(standing: bool) -> Value {
    json!({"tools": {"listChanged": standing}, "prompts": {"listChanged": standing},
           "resources": {"subscribe": standing, "listChanged": standing},
           "completions": {}, "logging": {}})
}

/// A notification taken: 202, no body.
pub(super) fn accepted<P: Ports>() -> Response<P> {
    let mut resp = http::Response::new(Body::Full(Bytes::new()));
    *resp.status_mut() = StatusCode::ACCEPTED;
    resp
}

/// The answer to a forwarded request: JSON, or the notifications that
/// came before it and the response as one event stream when the client
/// takes one.
pub(super) fn relay<P: Ports>(answer: Answer, id: &Value, sse: bool, modern: bool) -> Response<P> {
    let response = match answer.response {
        // Under the client's own id again.
        Some(Value::Object(mut r)) => {
            r.insert("id".into(), id.clone());
            Value::Object(r)
        }
        _ => jsonrpc::error(
            id,
            jsonrpc::INTERNAL_ERROR,
            "The MCP server sent no response.",
        ),
    };
    if !sse || answer.notifications.is_empty() {
        return reply(response, modern);
    }
    let mut response = response;
    if modern && let Some(result) = response.get_mut("result") {
        modern::complete(result);
    }
    let mut text = String::new();
    for message in answer.notifications.iter().chain([&response]) {
        text.push_str("event: message\ndata: ");
        text.push_str(&message.to_string());
        text.push_str("\n\n");
    }
    let mut resp = http::Response::new(Body::Full(Bytes::from(text)));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    resp
}

/// A streamed answer.
pub(super) fn event_stream<P: Ports>(stream: impl Into<ResponseStream<P>>) -> Response<P> {
    let mut resp = http::Response::new(Body::Stream(Box::new(stream.into())));
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

/// A JSON-RPC answer in the client's era: a modern one has `resultType`
/// on its result and the spec's HTTP status for its error; a handshake-era
/// one is a 200 either way.
pub(super) fn reply<P: Ports>(mut body: Value, modern: bool) -> Response<P> {
    if !modern {
        return rpc(StatusCode::OK, &body);
    }
    if let Some(result) = body.get_mut("result") {
        modern::complete(result);
    }
    let code = body.pointer("/error/code").and_then(Value::as_i64);
    let status = code.map_or(200, modern::http_status);
    rpc(
        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        &body,
    )
}

/// A JSON-RPC answer with an HTTP status.
pub(super) fn rpc<P: Ports>(status: StatusCode, body: &Value) -> Response<P> {
    json_response(status, body)
}

/// An upstream ended its session: 404, so the client opens a new one.
pub(super) fn session_ended<P: Ports>(id: &Value, server: &str) -> Response<P> {
    let message = Failure::SessionEnded.describe(server) + " Initialize again.";
    rpc(
        StatusCode::NOT_FOUND,
        &jsonrpc::error(id, jsonrpc::REFUSED, &message),
    )
}

/// The answer to a method the gateway does not serve.
pub(super) fn not_served(id: &Value, method: &str) -> Value {
    let message = format!("Method '{method}' is not served by this gateway.");
    jsonrpc::error(id, jsonrpc::METHOD_NOT_FOUND, &message)
}

/// Whether the client takes an event stream as its answer.
pub(super) fn accepts_sse(headers: &http::HeaderMap) -> bool {
    headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/event-stream"))
}
