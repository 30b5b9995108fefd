//! The MCP gateway's `tools/call`: routed to the server the name names,
//! within the key's allowlist and the server's calls a minute, answered
//! under the client's id, and recorded once (usage record, metrics, log).

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderName, HeaderValue, Method, StatusCode};
use serde_json::{Map, Value, json};

use super::mcp_upstream::{Answer, Failure};
use super::{Body, Gateway, Response, json_response};
use crate::domain::{ApiKey, Settlement, UsageRecord};
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
        let req = json!({"jsonrpc": "2.0", "id": self.upstream_id(), "method": "tools/call", "params": params});
        let started = self.now_ms();
        // A stateless call opens the server's side for this call alone.
        let opened = self.upstream_for(server, upstream.as_ref()).await;
        let answer = match &opened {
            Some((u, _)) => {
                self.mcp_exchange_with(server, Method::POST, Some(u), Some(&req), &call.forwarded)
                    .await
            }
            None => Err(Failure::Unreachable),
        };
        if let Some((u, true)) = &opened {
            self.end_sessions(std::slice::from_ref(&(server.clone(), u.clone())))
                .await;
        }
        self.record_tool_call(&call, server, &name, outcome(&answer), started)
            .await;
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

    /// One usage record per tool call routed to a server (nothing charged:
    /// tool calls carry no tokens), its metrics and its log line.
    async fn record_tool_call(
        &self,
        call: &Call<'_>,
        server: &McpServer,
        tool: &str,
        outcome: &'static str,
        started: i64,
    ) {
        let now = self.now_ms();
        // Only a tool that answered is known to exist: a client chooses
        // the names it calls, and servers answer an unknown one in more
        // than one way, so no other name becomes a label.
        let known = if outcome == "ok" { tool } else { "" };
        crate::observe::mcp_tool_call(&server.name, known, outcome, now - started);
        let usage = UsageRecord {
            request_id: call.request_id.to_owned(),
            key_id: call.key.id.clone(),
            model: tool.to_owned(),
            backend: "mcp".into(),
            prompt_tokens: 0,
            completion_tokens: 0,
            cached_tokens: 0,
            cost_nanos: None,
            status: 200,
            usage_reported: false,
            stream: call.sse,
            endpoint: Some("mcp".into()),
            deployment: Some(server.name.clone()),
            error: (outcome != "ok").then(|| outcome.to_owned()),
            latency_ms: now - started,
            created_at: now,
        };
        // Nothing is charged, so no window is named.
        let settlement = Settlement {
            key_id: call.key.id.clone(),
            reserved: 0,
            reserved_money: 0,
            quota_window: 0,
            budget_window: 0,
            usage,
        };
        self.settle(settlement).await;
    }
}

/// Who makes a tool call, in which session (none in the stateless era),
/// and how it takes answers.
pub(super) struct Call<'a> {
    pub(super) key: &'a ApiKey,
    pub(super) session: Option<&'a Session>,
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

/// How a tool call ended, as records and metrics name it.
fn outcome(answer: &Result<Answer, Failure>) -> &'static str {
    match answer {
        Ok(a) => match a.response.as_ref() {
            Some(r) if r.get("error").is_some() => "error",
            Some(r) if r.pointer("/result/isError") == Some(&Value::Bool(true)) => "tool_error",
            Some(_) => "ok",
            None => "no_response",
        },
        Err(Failure::Timeout) => "timeout",
        Err(Failure::Unreachable) => "unreachable",
        Err(Failure::SessionEnded) => "session_ended",
        Err(Failure::Refused(_)) => "refused",
        Err(Failure::Misconfigured) => "misconfigured",
    }
}
