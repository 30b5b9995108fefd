//! The MCP gateway's `tools/call`: routed to the server the name names,
//! within the key's allowlist and the server's calls a minute, answered
//! under the client's id, and recorded once (usage record, metrics, log).

use http::{HeaderName, HeaderValue, Method, StatusCode};
use serde_json::{Map, Value, json};

use super::mcp_answer::{event_stream, relay, reply, session_ended};
use super::mcp_record::{ToolCall, outcome};
use super::mcp_stream::{McpStream, Route};
use super::mcp_upstream::{Answer, Failure, Sent, sent_events};
use super::{Gateway, Response};
use crate::domain::ApiKey;
use crate::error::GatewayError;
use crate::mcp::McpServer;
use crate::mcp::modern;
use crate::mcp::session::{Session, Upstream};
use crate::mcp::state::Binding;
use crate::mcp::{jsonrpc, links};
use crate::ports::Ports;

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
        let state = Binding {
            key_id: key.id.clone(),
            server: server.name.clone(),
            method: "tools/call".into(),
            target: tool.to_owned(),
        };
        if let Err(refusal) = self.open_request_state(&mut params, &state, &id) {
            return Ok(reply(refusal, call.modern));
        }
        let upstream_id = match call.session_token {
            Some(token) => Value::String(call_id(token, &id)),
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
            arguments: params.get("arguments").map(crate::mcp::shape::shape),
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
        let route = Route {
            server: server.clone(),
            upstream: opened,
            once,
            client_id: id,
            upstream_id: req["id"].clone(),
            modern: call.modern,
            prefixed: call.only.is_none(),
            relay: call.session.is_some() && !call.modern,
            state,
        };
        self.forward_tool_call(&call, route, &req, record).await
    }

    /// Send the call on `route` and answer: as the events come, to a
    /// client that takes them when the server sends them; else whole.
    async fn forward_tool_call(
        &self,
        call: &Call<'_>,
        route: Route,
        req: &Value,
        record: ToolCall,
    ) -> Result<Response<P>, GatewayError> {
        let (server, opened) = (&route.server, &route.upstream);
        let sent = self.send_tool_call(call, &route, req).await;
        let sent = match sent {
            Ok(Dispatched::Head(sent)) if call.sse && sent_events(&sent.resp) => {
                let (body, deadline) = (sent.resp.into_body(), sent.deadline);
                let mut stream = McpStream::new(self.clone(), body, route, deadline, record);
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
            Ok(Dispatched::Head(sent)) => {
                self.mcp_read(sent, (server, Some(opened)), req.get("id"))
                    .await
            }
            Ok(Dispatched::Whole(answer)) => Ok(answer),
            Err(e) => Err(e),
        };
        if route.once {
            self.end_sessions(&[(server.clone(), opened.clone())]).await;
        }
        self.record_tool_call(record, outcome(&answer)).await;
        let id = &route.client_id;
        match answer {
            Ok(mut answer) => {
                let result = answer.response.as_mut().and_then(|r| r.get_mut("result"));
                if let Some(result) = result {
                    if route.prefixed {
                        links::rename(result, &server.name);
                    }
                    self.seal_request_state(result, &route.state);
                }
                Ok(relay(answer, id, call.sse, call.modern))
            }
            Err(Failure::SessionEnded) => Ok(session_ended(id, &server.name)),
            Err(e) => {
                let body = jsonrpc::error(id, jsonrpc::INTERNAL_ERROR, &e.describe(&server.name));
                Ok(reply(body, call.modern))
            }
        }
    }

    /// Send the call on `route`. A stateless-era server that refuses it
    /// for its `Mcp-Param-*` headers (`-32020`), when the client sent none
    /// (a handshake-era client has no way to), is sent it again with the
    /// headers its tool's schema asks for: it refused before running it.
    async fn send_tool_call(
        &self,
        call: &Call<'_>,
        route: &Route,
        req: &Value,
    ) -> Result<Dispatched<P>, Failure> {
        let (server, opened) = (&route.server, &route.upstream);
        let sent = self
            .mcp_send(
                server,
                Method::POST,
                Some(opened),
                Some(req),
                &call.forwarded,
            )
            .await?;
        let own = call
            .forwarded
            .iter()
            .any(|(n, _)| n.as_str().starts_with(modern::PARAM_HEADER_PREFIX));
        if opened.version != modern::MODERN || own || sent.resp.status() != StatusCode::BAD_REQUEST
        {
            return Ok(Dispatched::Head(sent));
        }
        let refused = self
            .mcp_read(sent, (server, Some(opened)), req.get("id"))
            .await?;
        let code = refused
            .response
            .as_ref()
            .and_then(|r| r.pointer("/error/code"));
        let tool = req.pointer("/params/name").and_then(Value::as_str);
        let derived = match (code.and_then(Value::as_i64), tool) {
            (Some(modern::HEADER_MISMATCH), Some(tool)) => {
                let arguments = req.pointer("/params/arguments").unwrap_or(&Value::Null);
                self.param_headers(server, opened, tool, arguments).await
            }
            _ => Vec::new(),
        };
        if derived.is_empty() {
            return Ok(Dispatched::Whole(refused));
        }
        let headers: Vec<_> = call.forwarded.iter().cloned().chain(derived).collect();
        let sent = self
            .mcp_send(server, Method::POST, Some(opened), Some(req), &headers)
            .await?;
        Ok(Dispatched::Head(sent))
    }

    /// The `Mcp-Param-*` headers `server`'s `tool` asks of a call with
    /// `arguments`, from the schema it lists it with.
    async fn param_headers(
        &self,
        server: &McpServer,
        upstream: &Upstream,
        tool: &str,
        arguments: &Value,
    ) -> Vec<(HeaderName, HeaderValue)> {
        let tools = self
            .server_tools(server, upstream)
            .await
            .unwrap_or_default();
        let Some(schema) = tools
            .iter()
            .find(|t| t.get("name").and_then(Value::as_str) == Some(tool))
            .and_then(|t| t.get("inputSchema"))
        else {
            return Vec::new();
        };
        crate::mcp::params::derive(schema, arguments)
            .into_iter()
            .filter_map(|(n, v)| {
                Some((
                    HeaderName::try_from(n).ok()?,
                    HeaderValue::try_from(v).ok()?,
                ))
            })
            .collect()
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

/// What sending a call gave: the head of the server's answer, or (a
/// refusal not sent again) the answer read whole.
enum Dispatched<P: Ports> {
    Head(Sent<P>),
    Whole(Answer),
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

/// The id a session's request `client_id` is forwarded under: the same
/// every time (so a cancellation finds it), unique within the session
/// (clients do not reuse ids in one), and not the client's own (servers
/// see ids from one gateway session per client session, none guessable
/// without the session's token).
pub(super) fn call_id(token: &str, client_id: &Value) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(token.as_bytes());
    h.update([0]);
    h.update(client_id.to_string().as_bytes());
    format!("mg-{}", hex::encode(&h.finalize()[..16]))
}
