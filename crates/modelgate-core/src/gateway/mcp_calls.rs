//! The MCP gateway's `tools/call`: routed to the server the name names,
//! within the key's allowlist and the server's calls a minute, answered
//! under the client's id, and recorded once (usage record, metrics, log).

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderName, HeaderValue, Method, StatusCode};
use serde_json::{Map, Value, json};

use super::mcp_record::{ToolCall, outcome};
use super::mcp_stream::{McpStream, Route};
use super::mcp_upstream::{Answer, Failure, sent_events};
use super::{Body, Gateway, Response, json_response};
use crate::domain::ApiKey;
use crate::error::GatewayError;
use crate::mcp::McpServer;
use crate::mcp::session::Session;
use crate::mcp::{jsonrpc, modern};
use crate::ports::Ports;

/// The answer to a forwarded request: JSON, or the notifications that
/// came before it and the response as one event stream when the client
/// takes one.
pub(super) fn relay<P: Ports>(answer: Answer, id: &Value, call: &Call<'_>) -> Response<P> {
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
    if !call.sse || answer.notifications.is_empty() {
        return reply(response, call.modern);
    }
    let mut response = response;
    if call.modern
        && let Some(result) = response.get_mut("result")
    {
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
fn event_stream<P: Ports>(stream: McpStream<P>) -> Response<P> {
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

impl<P: Ports> Gateway<P> {
    pub(super) async fn mcp_call_tool(
        &self,
        call: Call<'_>,
        id: Value,
        mut params: Map<String, Value>,
    ) -> Result<Response<P>, GatewayError> {
        let key = call.key;
        let asked = params.get("name").and_then(Value::as_str);
        let name = call.canonical(asked.unwrap_or_default(), '_');
        let servers = self.reach_servers(&call).await?;
        // A tool the key may not use is not one it can tell from a tool
        // that does not exist.
        let target = name.split_once('_').and_then(|(server, tool)| {
            let (s, u) = servers.iter().find(|(s, _)| s.name == server)?;
            // A tool that came after the server's definitions were
            // accepted is not called before an admin accepts it.
            let pinned = s.pins.is_empty() || s.pins.contains_key(tool);
            (pinned && crate::mcp::access::allows(&key.allowed_tools, server, Some(&name)))
                .then_some((s, u, tool))
        });
        let Some((server, upstream, tool)) = target else {
            let message = format!("Unknown tool: {}", asked.unwrap_or_default());
            let body = jsonrpc::error(&id, jsonrpc::INVALID_PARAMS, &message);
            return Ok(reply(body, call.modern));
        };
        if let Some(refusal) = self.mcp_rate(key, server, &id).await? {
            return Ok(reply(refusal, call.modern));
        }
        params.insert("name".into(), Value::String(tool.to_owned()));
        let upstream_id = match call.session_token {
            Some(token) => Value::String(super::mcp::call_id(token, &id)),
            None => self.upstream_id(),
        };
        let req =
            json!({"jsonrpc": "2.0", "id": upstream_id, "method": "tools/call", "params": params});
        let record = ToolCall {
            key_id: key.id.clone(),
            request_id: call.request_id.to_owned(),
            stream: call.sse,
            server: server.name.clone(),
            tool: name.clone(),
            started: self.now_ms(),
        };
        // A stateless call opens the server's side for this call alone.
        let Some((opened, once)) = self.upstream_for(server, upstream.as_ref()).await else {
            self.record_tool_call(record, "unreachable").await;
            let message = Failure::Unreachable.describe(&server.name);
            return Ok(reply(
                jsonrpc::error(&id, jsonrpc::INTERNAL_ERROR, &message),
                call.modern,
            ));
        };
        let sent = self
            .mcp_send(
                server,
                Method::POST,
                Some(&opened),
                Some(&req),
                &call.forwarded,
            )
            .await;
        // Events go on as they come to a client that takes them.
        let sent = match sent {
            Ok(sent) if call.sse && sent_events(&sent.resp) => {
                let route = Route {
                    server: server.clone(),
                    upstream: opened,
                    once,
                    client_id: id,
                    upstream_id: req["id"].clone(),
                    modern: call.modern,
                };
                let mut stream = McpStream::new(
                    self.clone(),
                    sent.resp.into_body(),
                    route,
                    sent.deadline,
                    record,
                );
                let Some(whole) = stream.open().await else {
                    return Ok(event_stream(stream));
                };
                if let Some(settle) = stream.take_settlement() {
                    settle.await;
                }
                return Ok(reply(whole, call.modern));
            }
            sent => sent,
        };
        let answer = match sent {
            Ok(sent) => {
                self.mcp_read(sent, (server, Some(&opened)), req.get("id"))
                    .await
            }
            Err(e) => Err(e),
        };
        if once {
            self.end_sessions(&[(server.clone(), opened)]).await;
        }
        self.record_tool_call(record, outcome(&answer)).await;
        match answer {
            Ok(answer) => Ok(relay(answer, &id, &call)),
            Err(Failure::SessionEnded) => Ok(session_ended(&id, &server.name)),
            Err(e) => {
                let body = jsonrpc::error(&id, jsonrpc::INTERNAL_ERROR, &e.describe(&server.name));
                Ok(reply(body, call.modern))
            }
        }
    }

    /// The key's calls a minute to `server`, if it has a limit: a refusal
    /// is a JSON-RPC error naming the limit and when to try again.
    async fn mcp_rate(
        &self,
        key: &ApiKey,
        server: &McpServer,
        id: &Value,
    ) -> Result<Option<Value>, GatewayError> {
        let Some(rpm) = server.rpm else {
            return Ok(None);
        };
        let subject = format!("mcp:{}/{}", key.id, server.id);
        let d = self.step(&subject, rpm, 1).await?;
        if d.allowed {
            return Ok(None);
        }
        crate::observe::mcp_tool_call(&server.name, "", "rate_limited", 0);
        let message = format!(
            "Rate limit: {rpm} tool calls a minute to MCP server '{}'. Try again in {} ms.",
            server.name, d.retry_after_ms
        );
        let mut body = jsonrpc::error(id, jsonrpc::REFUSED, &message);
        body["error"]["data"] = json!({"retry_after_ms": d.retry_after_ms});
        Ok(Some(body))
    }
}

/// Who makes a tool call, in which session (none in the stateless era),
/// and how it takes answers.
pub(super) struct Call<'a> {
    pub(super) key: &'a ApiKey,
    pub(super) session: Option<&'a Session>,
    /// Its `Mcp-Session-Id`, which names the session's requests upstream.
    pub(super) session_token: Option<&'a str>,
    /// The one server of `/mcp/{server}`.
    pub(super) only: Option<&'a str>,
    pub(super) request_id: &'a str,
    pub(super) sse: bool,
    /// The client speaks the stateless era.
    pub(super) modern: bool,
    /// Headers passed on to the server (a modern client's `Mcp-Param-*`).
    pub(super) forwarded: Vec<(HeaderName, HeaderValue)>,
}

impl Call<'_> {
    /// The gateway's name (`{server}{sep}{own}`) for what the client calls
    /// `shown`: on `/mcp/{server}` a server's names are its own.
    pub(super) fn canonical(&self, shown: &str, sep: char) -> String {
        match self.only {
            Some(server) => format!("{server}{sep}{shown}"),
            None => shown.to_owned(),
        }
    }

    /// What the client is shown for the gateway's `canonical` name.
    pub(super) fn shown<'n>(&self, canonical: &'n str, sep: char) -> &'n str {
        let own = self
            .only
            .and_then(|server| canonical.strip_prefix(server)?.strip_prefix(sep));
        own.unwrap_or(canonical)
    }
}
